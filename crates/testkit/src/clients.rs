//! Clients described by a builder and registered the way `auth-server client create` registers them.

use auth_core::wire::GrantType;
use auth_server::clients::registration;
use auth_server::commands::client_metadata;
use auth_server::config::ClientCreate;

/// The redirect URI of the harness's code-flow clients (nothing listens there: redirects are read, not
/// followed).
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// What `client create` is told.
///
/// ```ignore
/// ClientSpec::public("spa").grants([AuthorizationCode, RefreshToken]).skip_consent()
/// ```
#[derive(Debug, Clone)]
pub struct ClientSpec {
    id: String,
    public: bool,
    grants: Vec<GrantType>,
    redirect_uris: Vec<String>,
    scope: String,
    audiences: Vec<String>,
    skip_consent: bool,
    introspection: bool,
    post_logout_redirect_uris: Vec<String>,
    require_dpop: bool,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    require_par: bool,
    name: Option<String>,
    id_token_alg: Option<String>,
    exchange_audiences: Vec<String>,
    backchannel_logout_uri: Option<String>,
}

impl ClientSpec {
    fn new(id: &str, public: bool) -> Self {
        Self {
            id: id.to_owned(),
            public,
            grants: Vec::new(),
            redirect_uris: Vec::new(),
            scope: String::new(),
            audiences: Vec::new(),
            skip_consent: false,
            introspection: false,
            post_logout_redirect_uris: Vec::new(),
            require_dpop: false,
            jwks: None,
            jwks_uri: None,
            require_par: false,
            name: None,
            id_token_alg: None,
            exchange_audiences: Vec::new(),
            backchannel_logout_uri: None,
        }
    }

    /// May exchange tokens (RFC 8693) for `audience` (repeatable).
    pub fn exchange_audience(mut self, audience: &str) -> Self {
        self.exchange_audiences.push(audience.to_owned());
        self
    }

    /// Told of ended sessions at `uri` (OpenID Connect Back-Channel Logout).
    pub fn backchannel_logout_uri(mut self, uri: &str) -> Self {
        self.backchannel_logout_uri = Some(uri.to_owned());
        self
    }

    /// A client with a generated secret.
    pub fn confidential(id: &str) -> Self {
        Self::new(id, false)
    }

    /// A public client: no secret, PKCE.
    pub fn public(id: &str) -> Self {
        Self::new(id, true)
    }

    /// `machine`: confidential, client_credentials, scope `read write`.
    pub fn machine() -> Self {
        Self::confidential("machine")
            .grants([GrantType::ClientCredentials])
            .scope("read write")
    }

    /// `web`: confidential, authorization_code + refresh_token, scope `openid read write`, audience
    /// `https://api.example/`, the harness's redirect URI.
    pub fn web() -> Self {
        Self::confidential("web")
            .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
            .scope("openid read write")
            .audiences(["https://api.example/"])
    }

    pub fn grants(mut self, grants: impl IntoIterator<Item = GrantType>) -> Self {
        self.grants = grants.into_iter().collect();
        self
    }

    pub fn scope(mut self, scope: &str) -> Self {
        scope.clone_into(&mut self.scope);
        self
    }

    pub fn audiences<'a>(mut self, audiences: impl IntoIterator<Item = &'a str>) -> Self {
        self.audiences = audiences.into_iter().map(str::to_owned).collect();
        self
    }

    /// Adds a redirect URI. Without any, a client with the code grant gets [`REDIRECT_URI`].
    pub fn redirect_uri(mut self, uri: &str) -> Self {
        self.redirect_uris.push(uri.to_owned());
        self
    }

    pub fn skip_consent(mut self) -> Self {
        self.skip_consent = true;
        self
    }

    /// May call /introspect (`client create --introspection`).
    pub fn introspection(mut self) -> Self {
        self.introspection = true;
        self
    }

    /// Authenticates with `private_key_jwt` by these keys (`client create --jwks-file`): no secret.
    pub fn jwks(mut self, keys: &[serde_json::Value]) -> Self {
        self.jwks = Some(serde_json::json!({ "keys": keys }).to_string());
        self
    }

    /// Authenticates with `private_key_jwt` by the keys at `uri` (`client create --jwks-uri`).
    pub fn jwks_uri(mut self, uri: &str) -> Self {
        self.jwks_uri = Some(uri.to_owned());
        self
    }

    /// The name the pages show (`client create --name`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Its ID tokens are signed with `alg` (`client create --id-token-signed-response-alg`).
    pub fn id_token_alg(mut self, alg: &str) -> Self {
        self.id_token_alg = Some(alg.to_owned());
        self
    }

    /// Must push its authorization requests (`client create --require-par`).
    pub fn require_par(mut self) -> Self {
        self.require_par = true;
        self
    }

    /// Must send DPoP proofs (`client create --require-dpop`).
    pub fn require_dpop(mut self) -> Self {
        self.require_dpop = true;
        self
    }

    /// Where RP-initiated logout may return (repeatable).
    pub fn post_logout_redirect_uri(mut self, uri: &str) -> Self {
        self.post_logout_redirect_uris.push(uri.to_owned());
        self
    }

    /// `resource-api`: a confidential client that may only introspect.
    pub fn resource_server(id: &str) -> Self {
        Self::confidential(id).introspection()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `client create` arguments this spec stands for.
    pub fn to_create(&self) -> ClientCreate {
        let redirect_uris = if self.redirect_uris.is_empty()
            && self.grants.contains(&GrantType::AuthorizationCode)
        {
            vec![REDIRECT_URI.to_owned()]
        } else {
            self.redirect_uris.clone()
        };
        ClientCreate {
            client_id: self.id.clone(),
            public: self.public,
            secret_stdin: false,
            grant_types: self
                .grants
                .iter()
                .map(|grant| grant.as_str().to_owned())
                .collect(),
            redirect_uris,
            scope: self.scope.clone(),
            audiences: self.audiences.clone(),
            skip_consent: self.skip_consent,
            introspection: self.introspection,
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            require_dpop: self.require_dpop,
            jwks_file: None,
            jwks_uri: self.jwks_uri.clone(),
            require_par: self.require_par,
            name: self.name.clone(),
            id_token_signed_response_alg: self.id_token_alg.clone(),
            token_exchange: !self.exchange_audiences.is_empty(),
            exchange_audiences: self.exchange_audiences.clone(),
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
        }
    }

    /// The record and the secret `client create` would store and print: the same rules, through the same
    /// registration metadata.
    pub fn record(&self) -> (auth_server::store::ClientRecord, Option<String>) {
        let mut metadata = client_metadata(&self.to_create(), None).expect("a client spec");
        metadata.jwks = self.jwks.clone();
        let (record, secret) = registration::validate(&metadata).expect("a valid client spec");
        (record, secret.map(|shown| shown.0))
    }
}

/// A registered client and its secret (none for public clients).
#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl TestClient {
    /// The same id with another secret (a guess).
    pub fn with_secret(&self, secret: &str) -> Self {
        Self {
            id: self.id.clone(),
            secret: Some(secret.to_owned()),
        }
    }
}
