//! The authorization endpoint's decisions (RFC 6749 §4.1, RFC 7636, RFC 8707, RFC 9207): whether a request
//! is valid, what the user must do next (sign in, consent), and the code or the error it ends with. The
//! handlers in `http::authorize` only turn these outcomes into pages, cookies and redirects.
//!
//! Errors found before the client and its redirect URI are known to be good are shown to the user, never
//! redirected (RFC 6749 §4.1.2.1: no open redirector); later errors go back to the client with `error`,
//! `state` and `iss`.
//!
//! OpenID Connect (Core 1.0 §3.1.2): `nonce` (echoed in the ID token), `prompt` (`none`, `login`,
//! `consent`, `select_account`) and `max_age` decide whether the login and consent pages are shown; consent is
//! remembered per (user, client) and a later request within it skips the page.

use std::sync::Arc;

use auth_core::pkce::{CodeChallenge, PkceError};
use auth_core::scope::ScopeSet;
use auth_core::secret::{OpaqueToken, SecretDigest};
use auth_core::wire::{ErrorCode, GrantType};

use crate::error::{Error, OAuthError};
use crate::grants::{resolve_audience, resolve_scope};
use crate::login::Session;
use crate::openid::OPENID;
use crate::params::Params;
use crate::state::AppState;
use crate::store::{Authorization, AuthorizationCodeRecord, ClientRecord};

/// The authorization-request parameters carried through the login and consent forms.
const REQUEST_FIELDS: [&str; 12] = [
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
];

/// The longest `nonce` accepted (it is echoed in every ID token of the grant).
pub const MAX_NONCE_CHARS: usize = 512;

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

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: Arc<ClientRecord>,
    /// The registered redirect URI it names (exactly), or the client's only one.
    pub redirect_uri: String,
    /// The request named it (then the token request must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    pub scope: ScopeSet,
    pub state: Option<String>,
    pub challenge: CodeChallenge,
    pub audience: String,
    /// OpenID Connect `nonce`, echoed in the ID token.
    pub nonce: Option<String>,
    pub prompt: Prompt,
    /// OpenID Connect `max_age`: sign in again when the last sign-in is at least this old (seconds).
    pub max_age: Option<i64>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is to be bound to.
    pub dpop_jkt: Option<String>,
    /// The request's own parameters, to carry through the forms (for a pushed request: `client_id` and
    /// `request_uri` only).
    pub fields: Vec<(&'static str, String)>,
    /// A pushed request (RFC 9126): the digest of its `request_uri`, consumed when a code or an error
    /// redirect comes from it.
    pub pushed: Option<SecretDigest>,
}

impl AuthorizationRequest {
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

/// Where to send the browser: an authorization response, success or error (RFC 6749 §4.1.2, §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub location: String,
}

/// Why a request cannot go on.
#[derive(Debug)]
pub enum Refusal {
    /// Shown to the user: the client or the redirect URI is not trustworthy, so no redirect.
    Page(String),
    /// Sent back to the verified redirect URI.
    Redirect(Redirect),
    /// The server failed (the database, the random number generator).
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

impl From<crate::store::StoreError> for Refusal {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Failed(error.into())
    }
}

/// What the user must do next.
#[derive(Debug)]
pub enum Next {
    /// Show the login form.
    SignIn,
    /// Show the consent form to this signed-in user.
    Consent(Session),
    /// Done: send the browser back to the client.
    Redirect(Redirect),
    /// `prompt=none` and an interaction was needed: the error goes back to the client.
    Refused(Refusal),
}

/// Appends query parameters to a redirect URI, keeping its own query.
fn location(redirect_uri: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    Some(url.to_string())
}

/// An error response to the client's redirect URI, with `state` and (RFC 9207) `iss`.
pub fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    request_state: Option<&str>,
    error: &OAuthError,
) -> Refusal {
    state.metrics.increment(
        "auth_oauth_errors_total",
        &[("error", error.error.as_str())],
    );
    let description = error.error_description.as_deref().unwrap_or_default();
    let mut params = vec![
        ("error", error.error.as_str()),
        ("error_description", description),
    ];
    if let Some(request_state) = request_state {
        params.push(("state", request_state));
    }
    params.push(("iss", state.settings.issuer.as_str()));
    match location(redirect_uri, &params) {
        Some(location) => Refusal::Redirect(Redirect { location }),
        None => Refusal::Page("The redirect URI is invalid.".into()),
    }
}

/// The prefix of the `request_uri`s this server issues (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

const INVALID_REQUEST_URI: &str = "invalid_request_uri: the request_uri was not issued by this server to this client, was already used or has expired.";

/// Validates an authorization request (from the query of a GET, or the form fields of a POST). With a
/// `request_uri` (RFC 9126 §4), the pushed parameters are the request: the others, but `client_id`, are
/// ignored, and a `request_uri` that is unknown, another client's, used or expired is an error page.
pub async fn validate(state: &AppState, params: &Params) -> Result<AuthorizationRequest, Refusal> {
    let page = |message: &str| Refusal::Page(message.to_owned());
    let (Ok(request_uri), Ok(client_id)) = (params.get("request_uri"), params.get("client_id"))
    else {
        return Err(page("A parameter was given more than once."));
    };
    let Some(request_uri) = request_uri else {
        return validate_parameters(state, params, None).await;
    };
    let client_id = client_id.ok_or_else(|| page("The request names no client."))?;
    let digest = SecretDigest::of(request_uri);
    let pushed = state
        .store
        .find_pushed_request(&digest)
        .await?
        .filter(|pushed| {
            pushed.client_id == client_id
                && pushed.consumed_at.is_none()
                && state.clock.now() < pushed.expires_at
        })
        .ok_or_else(|| page(INVALID_REQUEST_URI))?;
    let mut request = validate_parameters(
        state,
        &Params::parse(pushed.params.as_bytes()),
        Some(&digest),
    )
    .await?;
    request.fields = vec![
        ("client_id", client_id.to_owned()),
        ("request_uri", request_uri.to_owned()),
    ];
    request.pushed = Some(digest);
    Ok(request)
}

/// Validates the parameters of a request, pushed (`pushed` is its digest) or not.
pub async fn validate_parameters(
    state: &AppState,
    params: &Params,
    pushed: Option<&SecretDigest>,
) -> Result<AuthorizationRequest, Refusal> {
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
    // Exact string match against the registered form (RFC 9700 §4.1.3, §2.1).
    let (redirect_uri, redirect_uri_given) = match get("redirect_uri")? {
        Some(uri)
            if client
                .redirect_uris
                .iter()
                .any(|registered| registered == uri) =>
        {
            (uri.to_owned(), true)
        }
        Some(_) => return Err(page("The redirect URI is not registered for this client.")),
        None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        None => return Err(page("The request must name a redirect URI.")),
    };
    let request_state = get("state")?.map(str::to_owned);
    // From here on the redirect URI is trusted: every error goes back to the client.
    let redirect =
        |error: OAuthError| error_redirect(state, &redirect_uri, request_state.as_deref(), &error);
    let refuse = |code: ErrorCode, description: &str| redirect(OAuthError::new(code, description));
    let one = |name: &str| {
        params.get(name).map_err(|_| {
            refuse(
                ErrorCode::InvalidRequest,
                &format!("{name} was given more than once"),
            )
        })
    };
    // RFC 9126 §6: a client registered to push must push.
    if client.require_par && pushed.is_none() {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "this client must push its authorization requests to the PAR endpoint",
        ));
    }
    // OpenID Connect Core §6: request objects are not supported (Discovery: request_parameter_supported).
    if one("request")?.is_some() {
        return Err(refuse(
            ErrorCode::RequestNotSupported,
            "the request parameter is not supported",
        ));
    }
    match one("response_type")? {
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "response_type is required",
            ));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(refuse(
            ErrorCode::UnauthorizedClient,
            "the client may not use the authorization code grant",
        ));
    }
    let challenge_text = one("code_challenge")?.ok_or_else(|| {
        refuse(
            ErrorCode::InvalidRequest,
            "code_challenge is required (PKCE S256)",
        )
    })?;
    let challenge =
        CodeChallenge::parse(challenge_text, one("code_challenge_method")?).map_err(|error| {
            match error {
                PkceError::UnsupportedMethod => refuse(
                    ErrorCode::InvalidRequest,
                    "code_challenge_method must be S256",
                ),
                _ => refuse(ErrorCode::InvalidRequest, "code_challenge is malformed"),
            }
        })?;
    let to_redirect = |error: Error| match error {
        Error::OAuth(error) => redirect(error),
        other => Refusal::Failed(other),
    };
    let scope = resolve_scope(one("scope")?, &client.scope).map_err(to_redirect)?;
    let audience = resolve_audience(&client, one("resource")?, &state.settings.default_audience)
        .map_err(to_redirect)?;
    let nonce = one("nonce")?.filter(|nonce| !nonce.is_empty());
    if nonce.is_some_and(|nonce| nonce.chars().count() > MAX_NONCE_CHARS) {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            &format!("nonce is longer than {MAX_NONCE_CHARS} characters"),
        ));
    }
    let prompt =
        Prompt::parse(one("prompt")?).map_err(|why| refuse(ErrorCode::InvalidRequest, why))?;
    let max_age = match one("max_age")? {
        None | Some("") => None,
        Some(text) => Some(text.parse::<u32>().map(i64::from).map_err(|_| {
            refuse(
                ErrorCode::InvalidRequest,
                "max_age must be a number of seconds",
            )
        })?),
    };
    // An RFC 7638 thumbprint: base64url of a SHA-256 digest, 43 characters.
    let dpop_jkt = match one("dpop_jkt")? {
        None => None,
        Some(jkt)
            if jkt.len() == 43
                && jkt
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_') =>
        {
            Some(jkt.to_owned())
        }
        Some(_) => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "dpop_jkt must be a JWK SHA-256 thumbprint",
            ));
        }
    };
    let mut fields = Vec::new();
    for name in REQUEST_FIELDS {
        if let Ok(Some(value)) = params.get(name) {
            fields.push((name, value.to_owned()));
        }
    }
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        redirect_uri_given,
        scope,
        state: request_state,
        challenge,
        audience,
        nonce: nonce.map(str::to_owned),
        prompt,
        max_age,
        dpop_jkt,
        fields,
        pushed: None,
    })
}

/// RFC 9126 §4: a pushed request serves one authorization: the first code or error redirect that comes from
/// it consumes it. `false` when it was consumed (or expired) meanwhile: nothing may come from it then.
async fn consume(state: &AppState, request: &AuthorizationRequest) -> Result<bool, Error> {
    match &request.pushed {
        Some(digest) => Ok(state
            .store
            .consume_pushed_request(digest, state.clock.now())
            .await?),
        None => Ok(true),
    }
}

/// An error redirect for a valid request, consuming its pushed request (a page if that was used meanwhile).
async fn refuse_request(
    state: &AppState,
    request: &AuthorizationRequest,
    error: OAuthError,
) -> Refusal {
    match consume(state, request).await {
        Ok(true) => error_redirect(
            state,
            &request.redirect_uri,
            request.state.as_deref(),
            &error,
        ),
        Ok(false) => Refusal::Page(INVALID_REQUEST_URI.to_owned()),
        Err(error) => Refusal::Failed(error),
    }
}

/// What comes after a valid request, for a browser with or without a session: sign in, consent, or
/// straight back with a code (consent remembered, or a client registered to skip it) or, with
/// `prompt=none`, with the error that says what was needed (Core §3.1.2.6). `signed_in_now` is true right
/// after the login form was accepted: `prompt=login` and `max_age` are then satisfied.
pub async fn next_step(
    state: &AppState,
    request: &AuthorizationRequest,
    session: Option<Session>,
    signed_in_now: bool,
) -> Result<Next, Error> {
    let now = state.clock.now();
    let fresh_enough = |session: &Session| {
        signed_in_now
            || !(request.prompt.login
                || request
                    .max_age
                    .is_some_and(|max_age| now - session.auth_time >= max_age))
    };
    let Some(session) = session.filter(fresh_enough) else {
        if request.prompt.none {
            return Ok(prompt_none_refusal(
                state,
                request,
                ErrorCode::LoginRequired,
                "the user must sign in",
            )
            .await);
        }
        return Ok(Next::SignIn);
    };
    if !request.prompt.consent
        && (request.client.skip_consent || has_consented(state, request, &session).await?)
    {
        return Ok(match approve(state, request, &session).await? {
            Some(to) => Next::Redirect(to),
            None => Next::Refused(Refusal::Page(INVALID_REQUEST_URI.to_owned())),
        });
    }
    if request.prompt.none {
        return Ok(prompt_none_refusal(
            state,
            request,
            ErrorCode::ConsentRequired,
            "the user must consent",
        )
        .await);
    }
    Ok(Next::Consent(session))
}

async fn prompt_none_refusal(
    state: &AppState,
    request: &AuthorizationRequest,
    code: ErrorCode,
    description: &str,
) -> Next {
    Next::Refused(refuse_request(state, request, OAuthError::new(code, description)).await)
}

/// Has the user consented to every scope of the request before (remembered consent)?
async fn has_consented(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &Session,
) -> Result<bool, Error> {
    Ok(state
        .store
        .find_consent(&session.user_id, &request.client.client_id)
        .await?
        .is_some_and(|granted| request.scope.is_subset_of(&granted)))
}

/// The user approved on the consent page: remembered for later requests within the same scopes, then the
/// code.
pub async fn approve_and_remember(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &Session,
) -> Result<Option<Redirect>, Error> {
    state
        .store
        .remember_consent(
            &session.user_id,
            &request.client.client_id,
            &request.scope,
            state.clock.now(),
        )
        .await?;
    approve(state, request, session).await
}

/// The user approved: a new authorization (a token family) and its code, sent with `state` and `iss`.
/// `None` when the request was pushed and its `request_uri` was used meanwhile (no second code from it).
pub async fn approve(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &Session,
) -> Result<Option<Redirect>, Error> {
    if !consume(state, request).await? {
        return Ok(None);
    }
    let authorization = Authorization {
        family_id: uuid::Uuid::new_v4().to_string(),
        client_id: request.client.client_id.clone(),
        user_id: session.user_id.clone(),
        scope: request.scope.clone(),
        audience: request.audience.clone(),
        auth_time: session.auth_time,
        sid: session.sid.clone(),
    };
    let code = OpaqueToken::try_generate()?;
    let now = state.clock.now();
    let record = AuthorizationCodeRecord {
        code_digest: code.digest(),
        authorization,
        redirect_uri: request.redirect_uri.clone(),
        redirect_uri_given: request.redirect_uri_given,
        code_challenge: request.challenge.as_str().to_owned(),
        nonce: request.nonce.clone(),
        dpop_jkt: request.dpop_jkt.clone(),
        expires_at: now + state.settings.auth_code_ttl,
        used_at: None,
        family_revoked: false,
    };
    state.store.create_code(&record, now).await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(request_state) = request.state.as_deref() {
        params.push(("state", request_state));
    }
    // RFC 9207: the issuer in every authorization response.
    params.push(("iss", state.settings.issuer.as_str()));
    // `client create` stored the redirect URI as URL parsing serializes it: one that no longer parses was
    // edited in the database by hand.
    let location = location(&request.redirect_uri, &params)
        .ok_or(crate::store::StoreError::Corrupt("client redirect URI"))?;
    Ok(Some(Redirect { location }))
}

/// The user denied: `access_denied` to the client (RFC 6749 §4.1.2.1).
pub async fn deny(state: &AppState, request: &AuthorizationRequest) -> Refusal {
    refuse_request(
        state,
        request,
        OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_registered_query_and_escape_values() {
        assert_eq!(
            location(
                "http://app.example/cb?tenant=1",
                &[("code", "a b"), ("state", "x&y")]
            )
            .as_deref(),
            Some("http://app.example/cb?tenant=1&code=a+b&state=x%26y")
        );
        assert_eq!(location("not a uri", &[("code", "c")]), None);
    }
}
