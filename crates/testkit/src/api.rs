//! [`TestApi`]: the real resource-api application in-process on 127.0.0.1:0, with its own clock.

use std::sync::Arc;
use std::time::Duration;

use auth_bearer::BearerAuth;
use auth_core::clock::{Clock, ManualClock, SystemClock};
use resource_api::config::Config;
use resource_api::startup::Application;

/// A running resource API.
pub struct TestApi {
    pub base: String,
    pub bearer: BearerAuth,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApi {
    /// An API for `issuer` (a URL), with introspection credentials when given.
    pub async fn start(
        issuer: &str,
        introspection: Option<(&str, &str)>,
        jwks_cooldown_ms: u64,
    ) -> Self {
        Self::start_with(issuer, |config| {
            config.introspection_client_id = introspection.map(|(id, _)| id.to_owned());
            config.introspection_secret = introspection.map(|(_, secret)| secret.into());
            config.jwks_cooldown_ms = jwks_cooldown_ms;
        })
        .await
    }

    /// An API for `issuer`, with `configure` applied to its flags.
    pub async fn start_with(issuer: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            issuer: issuer.to_owned(),
            ..Config::default()
        };
        configure(&mut config);
        let clock = ManualClock::new(SystemClock.now());
        let application = Application::build(config, Arc::new(clock.clone()))
            .await
            .expect("build resource-api");
        let base = format!(
            "http://{}",
            application.local_addr().expect("bound address")
        );
        let bearer = application.bearer().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            if let Err(error) = application
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
            {
                eprintln!("testkit: resource-api stopped with an error: {error:#}");
            }
        });
        Self {
            base,
            bearer,
            clock,
            http: crate::http::http_client(),
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `Authorization: Bearer`.
    pub fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// Waits (polling /readyz, at most 5 s) until the API holds the issuer's keys.
    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if self
                .http
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("resource-api never became ready");
    }
}

/// An issuer with a client `svc` (client_credentials, `scope`), a resource API without introspection that
/// already holds the issuer's keys, and a token of `svc` with all its scope.
pub struct Stack {
    pub issuer: crate::TestIssuer,
    pub api: TestApi,
    pub client: crate::TestClient,
    pub token: String,
}

impl Stack {
    pub async fn start(scope: &str) -> Self {
        let issuer = crate::TestIssuer::spawn(crate::Backend::Sqlite).await;
        let client = issuer
            .register(
                crate::ClientSpec::confidential("svc")
                    .grants([auth_core::wire::GrantType::ClientCredentials])
                    .scope(scope),
            )
            .await;
        let api = TestApi::start(issuer.issuer(), None, 5_000).await;
        api.wait_ready().await;
        let token = issuer.token(&client, None).await;
        Self {
            issuer,
            api,
            client,
            token,
        }
    }
}
