//! A real browser for the pages: headless Chromium driven over WebDriver (chromedriver, started here on a
//! free loopback port and stopped on drop), and a stand-in application whose redirect URI answers, so the
//! browser lands on a page whose URL carries the code.
//!
//! Without `chromium` and `chromedriver` (Debian packages of those names) [`HeadlessChrome::start`] fails
//! the test when `REQUIRE_BROWSER` is set (as `cargo xtask ci` and a set `CI` variable do), and otherwise
//! says loudly on stderr that the browser test was skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A program on `PATH` (or at `override_var`), if installed.
fn program(names: &[&str], override_var: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(override_var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Whether a missing browser fails the test (CI) or skips it (a developer's machine).
fn browser_required() -> bool {
    ["REQUIRE_BROWSER", "CI"].iter().any(|name| {
        std::env::var(name).is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
    })
}

/// Where screenshots go: `target/browser-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("browser-screenshots")
}

/// Headless Chromium with its own chromedriver and profile.
pub struct HeadlessChrome {
    client: Client,
    driver: tokio::process::Child,
    profile: PathBuf,
}

impl HeadlessChrome {
    /// A new browser at 1280×900, or `None` (after a loud notice) when none is installed and none is
    /// required.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// The same, with extra Chromium arguments (e.g. `--ignore-certificate-errors-spki-list=…` to trust one
    /// test certificate).
    pub async fn start_with(extra_args: &[String]) -> Option<Self> {
        let chromium = program(
            &["chromium", "chromium-browser", "google-chrome"],
            "CHROME_BIN",
        );
        let driver = program(&["chromedriver"], "CHROMEDRIVER");
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            if browser_required() {
                panic!(
                    "this test needs headless Chromium and chromedriver (apt-get install chromium chromium-driver); \
                     REQUIRE_BROWSER or CI is set, so a missing browser is a failure"
                );
            }
            eprintln!(
                "\n*** BROWSER TEST SKIPPED: chromium or chromedriver is not installed \
                 (apt-get install chromium chromium-driver). CI fails instead. ***\n"
            );
            return None;
        };
        // chromedriver takes a port number, not a listener: a free port is found and passed on, so another
        // process may take it in between (then chromedriver exits) and, on two cores busy compiling and
        // testing, it may start slowly. Up to three drivers, each given 30 s.
        let mut started = None;
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let mut child = tokio::process::Command::new(&driver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start chromedriver");
            let url = format!("http://127.0.0.1:{port}");
            let status = crate::http::http_client();
            let mut ready = false;
            for _ in 0..600 {
                if let Ok(response) = status.get(format!("{url}/status")).send().await
                    && response.status().is_success()
                {
                    ready = true;
                    break;
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if ready {
                started = Some((child, url));
                break;
            }
            let _ = child.kill().await;
        }
        let Some((driver, url)) = started else {
            panic!("chromedriver did not answer in three tries of 30 s");
        };
        let profile = std::env::temp_dir().join(format!("chrome-profile-{}", uuid::Uuid::new_v4()));
        let mut capabilities = serde_json::Map::new();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--window-size=1280,900",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra_args.iter().cloned());
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a WebDriver session with headless Chromium");
        Some(Self {
            client,
            driver,
            profile,
        })
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The URL the browser is on.
    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("current URL")
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.expect("type");
    }

    /// Clicks the element matching `css` (a real click: the browser submits the form) and waits for the
    /// next page: until the current document is gone and the new one has loaded (at most 10 s).
    pub async fn click(&self, css: &str) {
        let page = self.find("html").await;
        self.find(css).await.click().await.expect("click");
        for _ in 0..400 {
            let gone = page
                .attr("lang")
                .await
                .is_err_and(|error| error.is_stale_element_reference());
            if gone {
                let loaded = self
                    .client
                    .execute("return document.readyState === 'complete';", vec![])
                    .await
                    .ok()
                    .and_then(|value| value.as_bool())
                    .unwrap_or(false);
                if loaded {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("clicking {css} led to no new page within 10 s");
    }

    /// The element matching `css`.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element {css}: {error}"))
    }

    /// The `attribute` of the element that has the keyboard focus.
    pub async fn focused(&self, attribute: &str) -> Option<String> {
        let element = self.client.active_element().await.expect("active element");
        element.attr(attribute).await.expect("attribute")
    }

    /// Presses Tab on the element that has the focus.
    pub async fn press_tab(&self) {
        let element = self.client.active_element().await.expect("active element");
        element
            .send_keys(&fantoccini::key::Key::Tab.to_string())
            .await
            .expect("Tab");
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.find("body").await.text().await.expect("page text")
    }

    /// Saves a PNG of the viewport as `target/browser-screenshots/{name}.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the session, the browser and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A stand-in application: `GET /callback` answers 200 with a short page, whatever the query.
pub struct CallbackApp {
    /// The redirect URI to register: `http://127.0.0.1:PORT/callback`.
    pub redirect_uri: String,
    /// Its origin, for post-logout redirect URIs: `http://127.0.0.1:PORT`.
    pub origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackApp {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        let app = axum::Router::new().fallback(|| async {
            axum::response::Html(
                "<!doctype html><title>Example app</title><h1>Back at the app</h1>",
            )
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            redirect_uri: format!("{origin}/callback"),
            origin,
            task,
        }
    }
}

impl Drop for CallbackApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}
