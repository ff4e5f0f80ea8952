//! [`Browser`]: what a browser does in the authorization code flow, over real HTTP: it keeps cookies,
//! submits the forms the server renders, and stops at redirects (the harness reads them). The HTML and
//! cookie handling is the load tester's (`loadtest::flow`), so both measure and test the same browser.

use loadtest::flow::{AuthorizationResponse, CookieJar, HtmlForm, authorization_response};
use reqwest::StatusCode;

use crate::clients::REDIRECT_URI;

/// One browser: its cookies for the issuer.
#[derive(Debug, Clone)]
pub struct Browser {
    http: reqwest::Client,
    jar: CookieJar,
    /// Where the forms post (the issuer's /authorize).
    authorize: String,
    issuer: String,
}

/// A page the server answered with.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Page {
    /// The first form of the page.
    pub fn form(&self) -> HtmlForm {
        HtmlForm::parse(&self.html).unwrap_or_else(|| panic!("a form expected: {}", self.html))
    }

    pub fn is_login_form(&self) -> bool {
        self.html.contains("name=\"password\"")
    }

    pub fn is_consent_form(&self) -> bool {
        self.html.contains("value=\"approve\"")
    }

    /// Where a redirect goes.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
    }

    /// The authorization response of a 303 to [`REDIRECT_URI`].
    pub fn authorization_response(&self) -> AuthorizationResponse {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.html);
        authorization_response(self.location().expect("Location"), REDIRECT_URI)
            .expect("a redirect to the redirect URI")
    }

    /// A query parameter of the redirect.
    pub fn redirect_param(&self, name: &str) -> Option<String> {
        let location = url::Url::parse(self.location()?).ok()?;
        location
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

impl Browser {
    pub fn new(http: reqwest::Client, authorize: String, issuer: String) -> Self {
        Self {
            http,
            jar: CookieJar::default(),
            authorize,
            issuer,
        }
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> Option<String> {
        self.jar.header()
    }

    /// Replaces a cookie (an attacker's forgery, or a stale value).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.store([format!("{name}={value}").as_str()]);
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect();
        self.jar.store(set_cookies.iter().map(String::as_str));
        let status = response.status();
        let headers = response.headers().clone();
        let html = response.text().await.expect("page body");
        Page {
            status,
            headers,
            html,
        }
    }

    /// Opens a URL.
    pub async fn get(&mut self, url: &str) -> Page {
        let mut request = self.http.get(url);
        if let Some(cookies) = self.jar.header() {
            request = request.header(reqwest::header::COOKIE, cookies);
        }
        let response = request.send().await.expect("GET");
        self.keep(response).await
    }

    /// Submits `form`'s hidden fields plus `extra` to /authorize.
    pub async fn submit(&mut self, form: &HtmlForm, extra: &[(&str, &str)]) -> Page {
        self.post(&form.submission(extra)).await
    }

    /// Posts raw fields to /authorize.
    pub async fn post(&mut self, fields: &[(&str, &str)]) -> Page {
        let authorize = self.authorize.clone();
        self.post_to(&authorize, fields).await
    }

    /// Posts raw fields to another form of the issuer (`/logout`).
    pub async fn post_to(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        let mut request = self.http.post(url).form(fields);
        if let Some(cookies) = self.jar.header() {
            request = request.header(reqwest::header::COOKIE, cookies);
        }
        let response = request.send().await.expect("POST");
        self.keep(response).await
    }

    /// Opens an authorization URL and expects the login form.
    pub async fn open_login(&mut self, url: &str) -> Page {
        let page = self.get(url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        assert!(page.is_login_form(), "login form expected: {}", page.html);
        page
    }

    /// Signs in on a login page.
    pub async fn sign_in(&mut self, login: &Page, username: &str, password: &str) -> Page {
        self.submit(
            &login.form(),
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Answers a consent page.
    pub async fn decide(&mut self, consent: &Page, decision: &str) -> Page {
        assert!(
            consent.is_consent_form(),
            "consent form expected: {}",
            consent.html
        );
        self.submit(&consent.form(), &[("decision", decision)])
            .await
    }

    /// Login, then consent if asked: the code of the redirect (checked to carry `state` and `iss`).
    pub async fn login_and_approve(&mut self, url: &str, username: &str, password: &str) -> String {
        let login = self.open_login(url).await;
        let mut page = self.sign_in(&login, username, password).await;
        if page.status == StatusCode::OK {
            page = self.decide(&page, "approve").await;
        }
        self.code_of(&page)
    }

    /// The code of a successful authorization response, checked to carry `state` and `iss`.
    pub fn code_of(&self, page: &Page) -> String {
        assert_eq!(page.redirect_param("state").as_deref(), Some("xyz-state"));
        assert_eq!(
            page.redirect_param("iss").as_deref(),
            Some(self.issuer.as_str())
        );
        match page.authorization_response() {
            AuthorizationResponse::Code { code, .. } => code,
            other => panic!("a code expected: {other:?}"),
        }
    }
}
