//! What is under load: the authorization server (found through its RFC 8414 metadata), the protected API,
//! and the credentials the scenarios use.

use std::sync::{Arc, RwLock};

use auth_core::jwks::KeySet;
use clap::Args;
use serde_json::Value;

use crate::exchange::{Direct, Exchange, FlowError, Step};

/// The servers and credentials, from the command line (every flag also reads an environment variable).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Issuer URL of the authorization server; its endpoints come from RFC 8414 metadata (or OpenID discovery)
    #[arg(long, env = "LOADTEST_ISSUER", default_value = "http://127.0.0.1:8080")]
    pub issuer: String,
    /// Base URL of the protected API (validate and mixed scenarios)
    #[arg(long, env = "LOADTEST_API", default_value = "http://127.0.0.1:8081")]
    pub api: String,
    /// Path of the bearer-protected route on the API
    #[arg(long, env = "LOADTEST_PROTECTED_PATH", default_value = "/protected")]
    pub protected_path: String,
    /// Confidential client with the client_credentials grant (issue, validate, introspect, mixed)
    #[arg(long, env = "LOADTEST_CLIENT_ID", default_value = "demo")]
    pub client_id: String,
    /// Secret of --client-id (sent with HTTP Basic). A generated secret may start with '-': it is still
    /// read as the value
    #[arg(
        long,
        env = "LOADTEST_CLIENT_SECRET",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub client_secret: String,
    /// Client that calls the introspection endpoint (introspect, mixed). Our server lets only clients
    /// registered with `client create --introspection` introspect (RFC 7662 §4). Default: --client-id
    #[arg(long, env = "LOADTEST_INTROSPECTION_CLIENT_ID")]
    pub introspection_client_id: Option<String>,
    /// Secret of --introspection-client-id (HTTP Basic)
    #[arg(
        long,
        env = "LOADTEST_INTROSPECTION_SECRET",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub introspection_secret: String,
    /// Scope asked for with client_credentials (none: the client's default)
    #[arg(long, env = "LOADTEST_SCOPE")]
    pub scope: Option<String>,
    /// RFC 8707 resource indicator to ask tokens for (none: the server's default audience)
    #[arg(long, env = "LOADTEST_RESOURCE")]
    pub resource: Option<String>,
    /// Public client with authorization_code + refresh_token (authcode, refresh, mixed)
    /// The audience the `exchange` scenario asks for: one of the `--client-id` client's exchange audiences
    /// (`client create --token-exchange --exchange-audience AUD`)
    #[arg(
        long,
        env = "LOADTEST_EXCHANGE_AUDIENCE",
        default_value = "resource-api"
    )]
    pub exchange_audience: String,
    #[arg(long, env = "LOADTEST_PUBLIC_CLIENT_ID", default_value = "demo-spa")]
    pub public_client_id: String,
    /// Redirect URI registered for --public-client-id (never fetched: the code is read from the redirect)
    #[arg(
        long,
        env = "LOADTEST_REDIRECT_URI",
        default_value = "http://127.0.0.1:8082/callback"
    )]
    pub redirect_uri: String,
    /// Scope asked for in the authorization request (the `openid` scenario adds `openid`)
    #[arg(long, env = "LOADTEST_USER_SCOPE", default_value = "read")]
    pub user_scope: String,
    /// User who signs in on the login form
    #[arg(long, env = "LOADTEST_USERNAME", default_value = "demo")]
    pub username: String,
    /// That user's password
    #[arg(
        long,
        env = "LOADTEST_PASSWORD",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub password: String,
}

/// The target after discovery.
#[derive(Debug, Clone)]
pub struct Target {
    pub args: TargetArgs,
    pub issuer: String,
    pub token_endpoint: String,
    pub authorization_endpoint: Option<String>,
    pub introspection_endpoint: Option<String>,
    /// The JWKS the ID tokens are checked against (OpenID Connect Discovery `jwks_uri`).
    pub jwks_uri: Option<String>,
    pub protected_url: String,
    /// The provider's keys, fetched on first use and again for an unknown `kid`.
    pub keys: Arc<RwLock<KeySet>>,
    /// The key of the DPoP scenarios' proofs (one client, one key).
    pub dpop: Arc<crate::dpop::ProofSigner>,
}

fn trim_slash(url: &str) -> &str {
    url.trim_end_matches('/')
}

impl Target {
    /// Reads the authorization server's metadata: RFC 8414 first, then OpenID Connect discovery (Keycloak,
    /// Hydra and node-oidc-provider publish the latter).
    pub async fn discover(args: TargetArgs, client: &reqwest::Client) -> Result<Self, FlowError> {
        let issuer = trim_slash(&args.issuer).to_owned();
        let mut direct = Direct(client.clone());
        let mut metadata = None;
        let mut last_error = None;
        for well_known in [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let url = format!("{issuer}{well_known}");
            let step = Step {
                name: "metadata",
                method: reqwest::Method::GET,
                url: &url,
                expect: &[200],
            };
            match direct.exchange(step, |request| request).await {
                Ok(reply) => {
                    metadata = reply.json();
                    if metadata.is_some() {
                        break;
                    }
                }
                // Nothing listens: no point asking the second address.
                Err(error @ FlowError::Unreachable { .. }) => {
                    return Err(FlowError::Invalid {
                        step: "discovery".into(),
                        reason: format!(
                            "the authorization server at {issuer} does not answer ({error})"
                        ),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        let Some(metadata) = metadata else {
            return Err(FlowError::Invalid {
                step: "discovery".into(),
                reason: format!(
                    "{issuer} publishes no authorization server metadata{}",
                    last_error
                        .map(|error| format!(" ({error})"))
                        .unwrap_or_default()
                ),
            });
        };
        let member = |name: &str| {
            metadata
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        // RFC 8414 §3.3: the metadata must name the issuer it was asked for.
        let published = member("issuer").unwrap_or_default();
        if trim_slash(&published) != issuer {
            return Err(FlowError::Invalid {
                step: "discovery".into(),
                reason: format!("metadata at {issuer} names the issuer {published:?}"),
            });
        }
        let token_endpoint = member("token_endpoint").ok_or_else(|| FlowError::Invalid {
            step: "discovery".into(),
            reason: format!("metadata at {issuer} has no token_endpoint"),
        })?;
        let protected_url = format!(
            "{}/{}",
            trim_slash(&args.api),
            args.protected_path.trim_start_matches('/')
        );
        Ok(Self {
            issuer,
            token_endpoint,
            authorization_endpoint: member("authorization_endpoint"),
            introspection_endpoint: member("introspection_endpoint"),
            jwks_uri: member("jwks_uri"),
            protected_url,
            keys: Arc::default(),
            dpop: Arc::new(crate::dpop::ProofSigner::generate().map_err(|error| {
                FlowError::Invalid {
                    step: "dpop".into(),
                    reason: error.to_string(),
                }
            })?),
            args,
        })
    }

    /// The authorization endpoint, or an error naming the scenario that needs it.
    pub fn authorization_endpoint(&self) -> Result<&str, FlowError> {
        self.authorization_endpoint
            .as_deref()
            .ok_or_else(|| FlowError::Invalid {
                step: "discovery".into(),
                reason: format!("{} publishes no authorization_endpoint", self.issuer),
            })
    }

    /// Who introspects: --introspection-client-id and its secret, or else the confidential client.
    pub fn introspection_credentials(&self) -> (&str, &str) {
        match &self.args.introspection_client_id {
            Some(id) => (id, &self.args.introspection_secret),
            None => (&self.args.client_id, &self.args.client_secret),
        }
    }

    /// The JWKS URL, or an error.
    pub fn jwks_uri(&self) -> Result<&str, FlowError> {
        self.jwks_uri.as_deref().ok_or_else(|| FlowError::Invalid {
            step: "discovery".into(),
            reason: format!("{} publishes no jwks_uri", self.issuer),
        })
    }

    /// The introspection endpoint, or an error.
    pub fn introspection_endpoint(&self) -> Result<&str, FlowError> {
        self.introspection_endpoint
            .as_deref()
            .ok_or_else(|| FlowError::Invalid {
                step: "discovery".into(),
                reason: format!("{} publishes no introspection_endpoint", self.issuer),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        target: TargetArgs,
    }

    #[test]
    fn a_secret_or_password_starting_with_a_dash_is_a_value() {
        // `client create` prints 256-bit base64url secrets: one in 64 starts with '-'.
        let cli = Cli::try_parse_from([
            "loadtest",
            "--client-secret",
            "-dGVzdA_secret",
            "--password",
            "-p4ss",
        ])
        .map_err(|error| error.to_string());
        let cli = match cli {
            Ok(cli) => cli,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(cli.target.client_secret, "-dGVzdA_secret");
        assert_eq!(cli.target.password, "-p4ss");
    }
}
