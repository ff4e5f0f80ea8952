//! An authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707, RFC 9126, OpenID Connect Core §3.1.2.1),
//! validated in two steps with a function boundary between them, as RFC 6749 §4.1.2.1 draws it:
//!
//! 1. [`bind`]: the client and its redirect URI. Until both are known to be good, every error is a page
//!    shown to the user, never a redirect (no open redirector).
//! 2. [`BoundClient::validate`]: everything else, against the bound client. Every error now goes back to
//!    the client's redirect URI with `error`, `state` and `iss`.

use std::sync::Arc;

use auth_core::id::Jkt;
use auth_core::id_token::read_id_token_hint;
use auth_core::pkce::{CodeChallenge, PkceError};
use auth_core::scope::ScopeSet;
use auth_core::secret::SecretDigest;
use auth_core::wire::{ErrorCode, GrantType};

use super::outcome::{ErrorRedirect, Refusal};
use crate::error::{Error, OAuthError};
use crate::params::Params;
use crate::state::AppState;
use crate::store::ClientRecord;
use crate::tokens::openid::OPENID;
use crate::tokens::rules::{requested_scope, resolve_audience};

/// From its first use, how long a `request_uri` serves the browser that used it (RFC 9126 §4 leaves its
/// lifetime to the server): long enough to sign in and consent.
pub const REQUEST_URI_BOUND_TTL: i64 = 600;

/// The authorization-request parameters this server reads: what the login and consent forms carry, and
/// what a pushed request stores.
pub const REQUEST_FIELDS: [&str; 13] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "nonce",
    "prompt",
    "max_age",
    "dpop_jkt",
    "login_hint",
];

/// The longest `login_hint` used to pre-fill the login form (a longer one is ignored).
pub const MAX_LOGIN_HINT_CHARS: usize = 256;

/// The longest `id_token_hint` read (a longer one is ignored, as one that does not verify).
pub const MAX_ID_TOKEN_HINT_BYTES: usize = 8 * 1024;

/// The longest `nonce` accepted (it is echoed in every ID token of the grant).
pub const MAX_NONCE_CHARS: usize = 512;

/// The prefix of the `request_uri`s this server issues (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The page of a `request_uri` that cannot be used (RFC 9126 §4).
pub const INVALID_REQUEST_URI: &str = "invalid_request_uri: the request_uri was not issued by this server to this client, was already used or has expired.";

/// What `prompt` asks for (Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Show nothing: answer with an error if the user must sign in or consent.
    pub none: bool,
    /// Sign in again even with a session (`login`, and `select_account`: one account per browser here).
    pub login: bool,
    /// Ask for consent even when it is remembered or the client skips it.
    pub consent: bool,
}

impl Prompt {
    /// Parses the space-separated values; `none` with any other value, or a value this server does not
    /// know, is an error.
    fn parse(text: Option<&str>) -> Result<Self, &'static str> {
        let mut prompt = Self::default();
        for value in text
            .unwrap_or_default()
            .split(' ')
            .filter(|value| !value.is_empty())
        {
            match value {
                "none" => prompt.none = true,
                "login" | "select_account" => prompt.login = true,
                "consent" => prompt.consent = true,
                _ => return Err("prompt has a value this server does not support"),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with other values");
        }
        Ok(prompt)
    }
}

/// What an `id_token_hint` says about who the client expects to be signed in (Core §3.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenHint {
    /// An ID token of this server (signature and `iss`; expiry ignored): its `sub`.
    Subject(String),
    /// Given, but not verifiable as one of ours (or longer than [`MAX_ID_TOKEN_HINT_BYTES`]): ignored,
    /// except that `prompt=none` cannot vouch for the user then.
    Unusable,
}

impl IdTokenHint {
    fn read(state: &AppState, hint: Option<&str>) -> Option<Self> {
        let hint = hint.filter(|hint| !hint.is_empty())?;
        if hint.len() > MAX_ID_TOKEN_HINT_BYTES {
            return Some(Self::Unusable);
        }
        Some(
            match read_id_token_hint(
                hint,
                &state.keys.snapshot().published,
                &state.settings.issuer,
            ) {
                Ok(claims) => Self::Subject(claims.sub),
                Err(_) => Self::Unusable,
            },
        )
    }
}

/// Where the parameters of a request came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The query or form of /authorize itself.
    Direct,
    /// A pushed request (RFC 9126 §4): the digest of its `request_uri`, consumed when a code or an error
    /// redirect comes from it.
    Pushed(SecretDigest),
    /// Parameters being pushed to /par right now (validated as /authorize will, RFC 9126 §2.1).
    BeingPushed,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The client and the redirect URI every answer goes to.
    pub bound: BoundClient,
    pub scope: ScopeSet,
    pub challenge: CodeChallenge,
    pub audience: String,
    /// OpenID Connect `nonce`, echoed in the ID token.
    pub nonce: Option<String>,
    pub prompt: Prompt,
    /// OpenID Connect `max_age`: sign in again when the last sign-in is at least this old (seconds).
    pub max_age: Option<i64>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is to be bound to.
    pub dpop_jkt: Option<Jkt>,
    /// `login_hint`, to pre-fill the login form's username (at most [`MAX_LOGIN_HINT_CHARS`]).
    pub login_hint: Option<String>,
    /// `id_token_hint`, when given.
    pub id_token_hint: Option<IdTokenHint>,
    /// The request's own parameters, to carry through the forms (for a pushed request: `client_id` and
    /// `request_uri` only).
    pub fields: Vec<(&'static str, String)>,
    pub origin: Origin,
}

impl AuthorizationRequest {
    /// The client.
    pub fn client(&self) -> &Arc<ClientRecord> {
        &self.bound.client
    }

    /// A digest of the request's parameters, as the forms carry them: what a consent form's CSRF token is
    /// bound to, so a consent answers exactly the request that was shown.
    pub fn fingerprint(&self) -> SecretDigest {
        let mut text = String::new();
        for (name, value) in &self.fields {
            text.push_str(&format!("{}:{name}{}:{value}", name.len(), value.len()));
        }
        SecretDigest::of(&text)
    }
}

/// A client and a redirect URI registered for it: from here on, errors go back to the client.
#[derive(Debug, Clone)]
pub struct BoundClient {
    pub client: Arc<ClientRecord>,
    /// The registered redirect URI the request names (exactly), or the client's only one.
    pub redirect_uri: String,
    /// The request named it (then the token request must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    /// The request's `state`, echoed in every answer.
    pub state: Option<String>,
}

impl BoundClient {
    /// An error for the client, sent to its redirect URI with `state` and (RFC 9207) `iss`.
    pub fn error(&self, state: &AppState, error: OAuthError) -> ErrorRedirect {
        ErrorRedirect {
            to: self.redirect_uri.clone(),
            error,
            state: self.state.clone(),
            iss: state.settings.issuer.clone(),
        }
    }

    fn refuse(&self, state: &AppState, code: ErrorCode, description: &str) -> Refusal {
        Refusal::Error(self.error(state, OAuthError::new(code, description)))
    }

    /// Step 2: the rest of the request, against this client.
    pub async fn validate(
        self,
        state: &AppState,
        params: &Params,
        origin: Origin,
    ) -> Result<AuthorizationRequest, Refusal> {
        let one = |name: &str| {
            params.get(name).map_err(|_| {
                self.refuse(
                    state,
                    ErrorCode::InvalidRequest,
                    &format!("{name} was given more than once"),
                )
            })
        };
        let client = self.client.clone();
        // RFC 9126 §6: a client registered to push must push.
        if client.require_par && matches!(origin, Origin::Direct) {
            return Err(self.refuse(
                state,
                ErrorCode::InvalidRequest,
                "this client must push its authorization requests to the PAR endpoint",
            ));
        }
        // OpenID Connect Core §6: request objects are not supported (Discovery: request_parameter_supported).
        if one("request")?.is_some() {
            return Err(self.refuse(
                state,
                ErrorCode::RequestNotSupported,
                "the request parameter is not supported",
            ));
        }
        match one("response_type")? {
            Some("code") => {}
            Some(_) => {
                return Err(self.refuse(
                    state,
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
            None => {
                return Err(self.refuse(
                    state,
                    ErrorCode::InvalidRequest,
                    "response_type is required",
                ));
            }
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(self.refuse(
                state,
                ErrorCode::UnauthorizedClient,
                "the client may not use the authorization code grant",
            ));
        }
        let challenge_text = one("code_challenge")?.ok_or_else(|| {
            self.refuse(
                state,
                ErrorCode::InvalidRequest,
                "code_challenge is required (PKCE S256)",
            )
        })?;
        let challenge = CodeChallenge::parse(challenge_text, one("code_challenge_method")?)
            .map_err(|error| match error {
                PkceError::UnsupportedMethod => self.refuse(
                    state,
                    ErrorCode::InvalidRequest,
                    "code_challenge_method must be S256",
                ),
                _ => self.refuse(
                    state,
                    ErrorCode::InvalidRequest,
                    "code_challenge is malformed",
                ),
            })?;
        let to_refusal = |error: Error| match error {
            Error::OAuth(error) => Refusal::Error(self.error(state, error)),
            other => Refusal::Failed(other),
        };
        let scope = requested_scope(one("scope")?, &client).map_err(to_refusal)?;
        let audience =
            resolve_audience(&client, one("resource")?, &state.settings.default_audience)
                .map_err(to_refusal)?;
        let nonce = one("nonce")?;
        if nonce.is_some_and(|nonce| nonce.chars().count() > MAX_NONCE_CHARS) {
            return Err(self.refuse(
                state,
                ErrorCode::InvalidRequest,
                &format!("nonce is longer than {MAX_NONCE_CHARS} characters"),
            ));
        }
        let prompt = Prompt::parse(one("prompt")?)
            .map_err(|why| self.refuse(state, ErrorCode::InvalidRequest, why))?;
        let max_age = match one("max_age")? {
            None => None,
            Some(text) => Some(text.parse::<u32>().map(i64::from).map_err(|_| {
                self.refuse(
                    state,
                    ErrorCode::InvalidRequest,
                    "max_age must be a number of seconds",
                )
            })?),
        };
        let dpop_jkt = one("dpop_jkt")?.map(Jkt::parse).transpose().map_err(|_| {
            self.refuse(
                state,
                ErrorCode::InvalidRequest,
                "dpop_jkt must be a JWK SHA-256 thumbprint",
            )
        })?;
        // `display`, `ui_locales`, `claims_locales` and `acr_values` are accepted and ignored (Core
        // §3.1.2.1: OPTIONAL); a `login_hint` too long to be a username is ignored.
        let login_hint = one("login_hint")?
            .filter(|hint| !hint.is_empty() && hint.chars().count() <= MAX_LOGIN_HINT_CHARS)
            .map(str::to_owned);
        let id_token_hint = IdTokenHint::read(state, one("id_token_hint")?);
        let mut fields = Vec::new();
        for name in REQUEST_FIELDS {
            if let Ok(Some(value)) = params.get(name)
                && (name != "login_hint" || login_hint.is_some())
            {
                fields.push((name, value.to_owned()));
            }
        }
        Ok(AuthorizationRequest {
            bound: self,
            scope,
            challenge,
            audience,
            nonce: nonce.map(str::to_owned),
            prompt,
            max_age,
            dpop_jkt,
            login_hint,
            id_token_hint,
            fields,
            origin,
        })
    }
}

/// Validates an authorization request (from the query of a GET, or the form fields of a POST) that
/// `browser` (the digest of its browser id) made. With a `request_uri` (RFC 9126 §4), the pushed parameters
/// are the request: the others, but `client_id`, are ignored, and a `request_uri` that is unknown, another
/// client's, used or expired is an error page. Its first use binds it to the browser: from then on it serves
/// that browser alone, for [`REQUEST_URI_BOUND_TTL`] seconds (through login and consent).
pub async fn validate(
    state: &AppState,
    params: &Params,
    browser: Option<&SecretDigest>,
) -> Result<AuthorizationRequest, Refusal> {
    let page = |message: &str| Refusal::Page(message.to_owned());
    let (Ok(request_uri), Ok(client_id)) = (params.get("request_uri"), params.get("client_id"))
    else {
        return Err(page("A parameter was given more than once."));
    };
    let Some(request_uri) = request_uri else {
        return bind(state, params)
            .await?
            .validate(state, params, Origin::Direct)
            .await;
    };
    let client_id = client_id.ok_or_else(|| page("The request names no client."))?;
    let digest = SecretDigest::of(request_uri);
    let now = state.clock.now();
    let pushed = state
        .store
        .find_pushed_request(&digest)
        .await?
        .filter(|pushed| {
            pushed.client_id == client_id && pushed.consumed_at.is_none() && now < pushed.expires_at
        })
        .ok_or_else(|| page(INVALID_REQUEST_URI))?;
    // Another browser presenting it (a link passed on, a stolen one) gets the page.
    let Some(browser) = browser else {
        return Err(page(INVALID_REQUEST_URI));
    };
    if !state
        .store
        .bind_pushed_request(&digest, browser, now, now + REQUEST_URI_BOUND_TTL)
        .await?
    {
        return Err(page(INVALID_REQUEST_URI));
    }
    let pushed_params = Params::parse(pushed.params.as_bytes());
    let mut request = bind(state, &pushed_params)
        .await?
        .validate(state, &pushed_params, Origin::Pushed(digest))
        .await?;
    request.fields = vec![
        ("client_id", client_id.to_owned()),
        ("request_uri", request_uri.to_owned()),
    ];
    Ok(request)
}

/// Step 1: the client and its redirect URI. Every refusal here is a page.
pub async fn bind(state: &AppState, params: &Params) -> Result<BoundClient, Refusal> {
    let page = |message: &str| Refusal::Page(message.to_owned());
    let get = |name: &str| {
        params
            .get(name)
            .map_err(|_| page(&format!("The parameter {name} was given more than once.")))
    };
    let client_id = get("client_id")?.ok_or_else(|| page("The request names no client."))?;
    let client = state
        .clients
        .get(state.store.as_ref(), client_id)
        .await?
        .ok_or_else(|| page("The client is not registered."))?;
    // RFC 9126 §4: a request_uri inside pushed parameters is not one this server issued.
    if get("request_uri")?.is_some() {
        return Err(page(INVALID_REQUEST_URI));
    }
    // OpenID Connect Core §3.1.2.1: an OpenID request names its redirect_uri, always.
    let openid = get("scope")?.is_some_and(|scope| scope.split(' ').any(|token| token == OPENID));
    if openid && get("redirect_uri")?.is_none() {
        return Err(page(
            "invalid_request: an OpenID Connect request must name its redirect_uri.",
        ));
    }
    // Exact string match against the registered form (RFC 9700 §4.1.3, §2.1), but for the port of a
    // loopback redirect URI (RFC 8252 §7.3).
    let (redirect_uri, redirect_uri_given) = match get("redirect_uri")? {
        Some(uri)
            if client
                .redirect_uris
                .iter()
                .any(|registered| redirect_uri_matches(registered, uri)) =>
        {
            (uri.to_owned(), true)
        }
        Some(_) => return Err(page("The redirect URI is not registered for this client.")),
        None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        None => return Err(page("The request must name a redirect URI.")),
    };
    Ok(BoundClient {
        client,
        redirect_uri,
        redirect_uri_given,
        state: get("state")?.map(str::to_owned),
    })
}

/// Whether a presented `redirect_uri` is the registered one: the same string, or (RFC 8252 §7.3) for an
/// `http` URI on `127.0.0.1`, `[::1]` or `localhost`, the same string but for the port, which a native app
/// picks when it runs. Compared as text, so nothing a URL parser would normalise (case, `..`, a user part,
/// another host) can slip through: only the digits after the host may differ.
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (loopback_parts(registered), loopback_parts(presented)) {
        (Some((host, rest)), Some((other_host, other_rest))) => {
            host == other_host && rest == other_rest
        }
        _ => false,
    }
}

/// An `http` loopback URI split around its port: (host, everything after the port), or `None` when it is
/// not one.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let after_scheme = uri.strip_prefix("http://")?;
    let host = ["127.0.0.1", "[::1]", "localhost"]
        .into_iter()
        .find(|host| after_scheme.starts_with(host))?;
    let after_host = &after_scheme[host.len()..];
    let rest = match after_host.strip_prefix(':') {
        Some(port_and_rest) => {
            let digits = port_and_rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(port_and_rest.len());
            port_and_rest[..digits]
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)?;
            &port_and_rest[digits..]
        }
        None => after_host,
    };
    // The authority ends here: a path, a query or nothing (never `@`, `.` or more host).
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then_some((host, rest))
}

#[cfg(test)]
mod tests {
    use super::redirect_uri_matches;

    #[test]
    fn a_loopback_redirect_uri_matches_on_any_port_and_nothing_else_differs() {
        let registered = "http://127.0.0.1/callback";
        for presented in [
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53211/callback",
            "http://127.0.0.1:1/callback",
        ] {
            assert!(redirect_uri_matches(registered, presented), "{presented}");
        }
        assert!(redirect_uri_matches(
            "http://localhost:8080/cb",
            "http://localhost:9/cb"
        ));
        assert!(redirect_uri_matches(
            "http://[::1]:8080/cb?x=1",
            "http://[::1]:41000/cb?x=1"
        ));
        for (registered, presented) in [
            ("http://127.0.0.1/callback", "http://127.0.0.1:53211/other"),
            (
                "http://127.0.0.1/callback",
                "http://127.0.0.1:53211/callback/",
            ),
            (
                "http://127.0.0.1/callback",
                "http://localhost:53211/callback",
            ),
            (
                "http://127.0.0.1/callback",
                "http://127.0.0.1.evil.example/callback",
            ),
            (
                "http://127.0.0.1/callback",
                "http://127.0.0.1@evil.example/callback",
            ),
            (
                "http://127.0.0.1/callback",
                "http://127.0.0.1:80@evil.example/callback",
            ),
            ("http://127.0.0.1/callback", "http://127.0.0.1:0/callback"),
            (
                "http://127.0.0.1/callback",
                "http://127.0.0.1:99999/callback",
            ),
            (
                "http://127.0.0.1/callback",
                "https://127.0.0.1:8443/callback",
            ),
            ("http://localhost/cb", "http://localhost.evil.example:80/cb"),
            ("https://127.0.0.1/cb", "https://127.0.0.1:8443/cb"),
            ("https://app.example/cb", "https://app.example:8443/cb"),
            ("http://10.0.0.1/cb", "http://10.0.0.1:8080/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:8080/cb#fragment"),
        ] {
            assert!(
                !redirect_uri_matches(registered, presented),
                "{registered} {presented}"
            );
        }
    }
}
