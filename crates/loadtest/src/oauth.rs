//! The OAuth 2.0 exchanges the scenarios are made of, written once for both the measured run and the
//! pre-flight check.

use std::time::{Duration, Instant};

use auth_core::id_token::{self, IdTokenChecks};
use auth_core::jwks::KeySet;
use auth_core::pkce;
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::Value;

use crate::dpop::ProofSigner;
use crate::exchange::{Exchange, FlowError, Reply, Step};
use crate::flow::{AuthorizationResponse, CookieJar, HtmlForm, authorization_response};
use crate::target::Target;

/// Report names of the steps (Goose groups requests by them).
pub mod step {
    pub const CLIENT_CREDENTIALS: &str = "token: client_credentials";
    pub const CLIENT_CREDENTIALS_DPOP: &str = "token: client_credentials (DPoP)";
    pub const PROTECTED_DPOP: &str = "api: protected (DPoP)";
    pub const REFRESH: &str = "token: refresh_token";
    pub const TOKEN_EXCHANGE: &str = "token: token-exchange";
    pub const CODE_EXCHANGE: &str = "token: authorization_code";
    pub const INTROSPECT: &str = "introspect";
    pub const PROTECTED: &str = "api: protected";
    pub const AUTHORIZE: &str = "authorize: login form";
    pub const LOGIN: &str = "authorize: sign in";
    pub const CONSENT: &str = "authorize: consent";
    pub const JWKS: &str = "jwks";
}

/// Whether an authorization-code flow is an OpenID Connect sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Plain OAuth: the `--user-scope`.
    OAuth,
    /// `openid` added to the scope, a nonce sent, and the ID token validated like a relying party.
    OpenId,
}

/// An access token and when to stop using it (a little before it expires, as a careful client does).
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub renew_at: Instant,
}

impl AccessToken {
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// The tokens of one token response.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: AccessToken,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

fn tokens<E: Exchange>(exchange: &mut E, name: &str, reply: Reply) -> Result<Tokens, FlowError> {
    let json = reply.json().unwrap_or(Value::Null);
    let Some(access_token) = json.get("access_token").and_then(Value::as_str) else {
        return Err(exchange.reject(name, reply, "the token response has no access_token".into()));
    };
    let lifetime = json
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(300);
    // Renew ten seconds early (or at half-life for very short tokens).
    let margin = (lifetime / 2).min(10);
    Ok(Tokens {
        access: AccessToken {
            token: access_token.to_owned(),
            renew_at: Instant::now() + Duration::from_secs(lifetime - margin),
        },
        refresh_token: json
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_owned),
        id_token: json
            .get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// POST to the token endpoint (RFC 6749 §3.2), with HTTP Basic as the confidential client when `basic`,
/// else as the public client (its `client_id` is in the form), and with a DPoP proof (RFC 9449 §5) by
/// `dpop`'s key when given.
async fn token_request<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    name: &str,
    form: &[(&str, &str)],
    basic: bool,
    dpop: Option<&ProofSigner>,
) -> Result<Reply, FlowError> {
    let step = Step {
        name,
        method: Method::POST,
        url: &target.token_endpoint,
        expect: &[200],
    };
    let proof = dpop.map(|signer| signer.proof("POST", &target.token_endpoint, None));
    exchange
        .exchange(step, |request| {
            let mut request = request.form(form);
            if basic {
                request =
                    request.basic_auth(&target.args.client_id, Some(&target.args.client_secret));
            }
            if let Some(proof) = proof {
                request = request.header("DPoP", proof);
            }
            request
        })
        .await
}

/// The client_credentials form with the run's scope and resource (RFC 8707).
fn client_credentials_form(target: &Target) -> Vec<(&'static str, &str)> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &target.args.scope {
        form.push(("scope", scope));
    }
    if let Some(resource) = &target.args.resource {
        form.push(("resource", resource));
    }
    form
}

/// RFC 9449 §5: a client_credentials token bound to `signer`'s key; the answer must say `DPoP`.
pub async fn client_credentials_dpop<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    signer: &ProofSigner,
) -> Result<Tokens, FlowError> {
    let form = client_credentials_form(target);
    let name = step::CLIENT_CREDENTIALS_DPOP;
    let reply = token_request(exchange, target, name, &form, true, Some(signer)).await?;
    let json = reply.json().unwrap_or(Value::Null);
    if json.get("token_type").and_then(Value::as_str) != Some("DPoP") {
        return Err(exchange.reject(
            step::CLIENT_CREDENTIALS_DPOP,
            reply,
            "the token response is not of type DPoP".into(),
        ));
    }
    tokens(exchange, step::CLIENT_CREDENTIALS_DPOP, reply)
}

/// RFC 9449 §7: the protected route with a DPoP-bound token and a new proof by `signer` for this request.
pub async fn call_api_dpop<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    signer: &ProofSigner,
    token: &str,
) -> Result<(), FlowError> {
    let step = Step {
        name: step::PROTECTED_DPOP,
        method: Method::GET,
        url: &target.protected_url,
        expect: &[200],
    };
    let htu = target
        .protected_url
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    let proof = signer.proof("GET", htu, Some(token));
    exchange
        .exchange(step, |request| {
            request
                .header("Authorization", format!("DPoP {token}"))
                .header("DPoP", proof)
        })
        .await?;
    Ok(())
}

/// RFC 6749 §4.4: a client_credentials token.
pub async fn client_credentials<E: Exchange>(
    exchange: &mut E,
    target: &Target,
) -> Result<Tokens, FlowError> {
    let form = client_credentials_form(target);
    let reply = token_request(
        exchange,
        target,
        step::CLIENT_CREDENTIALS,
        &form,
        true,
        None,
    )
    .await?;
    tokens(exchange, step::CLIENT_CREDENTIALS, reply)
}

/// RFC 8693 §2.1: the confidential client exchanges `subject_token` (one of its own access tokens) for one
/// to `--exchange-audience`; the answer must name the issued token type.
pub async fn token_exchange<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    subject_token: &str,
) -> Result<Tokens, FlowError> {
    const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", subject_token),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("audience", target.args.exchange_audience.as_str()),
    ];
    let reply = token_request(exchange, target, step::TOKEN_EXCHANGE, &form, true, None).await?;
    let json = reply.json().unwrap_or(Value::Null);
    if json.get("issued_token_type").and_then(Value::as_str) != Some(ACCESS_TOKEN_TYPE) {
        return Err(exchange.reject(
            step::TOKEN_EXCHANGE,
            reply,
            "the exchange response names no access-token issued_token_type".into(),
        ));
    }
    tokens(exchange, step::TOKEN_EXCHANGE, reply)
}

/// RFC 6749 §6: a refresh, as the public client. The server rotates refresh tokens, so the answer must
/// carry the next one.
pub async fn refresh<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    refresh_token: &str,
) -> Result<Tokens, FlowError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", &target.args.public_client_id),
    ];
    let reply = token_request(exchange, target, step::REFRESH, &form, false, None).await?;
    let json = reply.json().unwrap_or(Value::Null);
    if json.get("refresh_token").and_then(Value::as_str).is_none() {
        return Err(exchange.reject(
            step::REFRESH,
            reply,
            "the refresh response carries no new refresh_token".into(),
        ));
    }
    tokens(exchange, step::REFRESH, reply)
}

/// RFC 7662: introspects `token` with the introspection client's credentials; it must be active.
pub async fn introspect<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    token: &str,
) -> Result<(), FlowError> {
    let url = target.introspection_endpoint()?;
    let (client_id, secret) = target.introspection_credentials();
    let step = Step {
        name: step::INTROSPECT,
        method: Method::POST,
        url,
        expect: &[200],
    };
    let reply = exchange
        .exchange(step, |request| {
            request
                .basic_auth(client_id, Some(secret))
                .form(&[("token", token)])
        })
        .await?;
    let active = reply
        .json()
        .and_then(|json| json.get("active").and_then(Value::as_bool));
    if active != Some(true) {
        return Err(exchange.reject(
            step::INTROSPECT,
            reply,
            "a fresh token was reported inactive".into(),
        ));
    }
    Ok(())
}

/// RFC 6750 §2.1: calls the protected route with the token.
pub async fn call_api<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    token: &str,
) -> Result<(), FlowError> {
    let step = Step {
        name: step::PROTECTED,
        method: Method::GET,
        url: &target.protected_url,
        expect: &[200],
    };
    exchange
        .exchange(step, |request| request.bearer_auth(token))
        .await?;
    Ok(())
}

/// Resolves a form action against the page it came from.
fn action_url(page: &str, action: Option<&str>) -> Result<String, FlowError> {
    let base = url::Url::parse(page).map_err(|error| FlowError::Invalid {
        step: step::AUTHORIZE.into(),
        reason: format!("{page}: {error}"),
    })?;
    match action.filter(|action| !action.is_empty()) {
        None => Ok(page.to_owned()),
        Some(action) => base
            .join(action)
            .map(String::from)
            .map_err(|error| FlowError::Invalid {
                step: step::AUTHORIZE.into(),
                reason: format!("form action {action:?}: {error}"),
            }),
    }
}

/// Posts an HTML form back, with its hidden fields, `extra` fields and the browser's cookies.
async fn submit<E: Exchange>(
    exchange: &mut E,
    name: &str,
    url: &str,
    form: &HtmlForm,
    extra: &[(&str, &str)],
    jar: &mut CookieJar,
) -> Result<Reply, FlowError> {
    let fields = form.submission(extra);
    let cookie = jar.header();
    let step = Step {
        name,
        method: Method::POST,
        url,
        expect: &[200, 302, 303],
    };
    let reply = exchange
        .exchange(step, |request| {
            let request = request.form(&fields);
            match cookie {
                Some(cookie) => request.header(COOKIE, cookie),
                None => request,
            }
        })
        .await?;
    jar.store(reply.set_cookies());
    Ok(reply)
}

/// RFC 6749 §4.1 with RFC 7636 S256: a browser with an empty cookie jar opens the authorization URL, signs
/// in on the HTML form, approves on the consent page, and the client exchanges the code.
pub async fn authorization_code<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    flavor: Flavor,
) -> Result<Tokens, FlowError> {
    let endpoint = target.authorization_endpoint()?.to_owned();
    let args = &target.args;
    let verifier = pkce::generate_verifier();
    let challenge = pkce::s256_challenge(&verifier);
    let state = pkce::generate_verifier();
    let mut url = url::Url::parse(&endpoint).map_err(|error| FlowError::Invalid {
        step: step::AUTHORIZE.into(),
        reason: format!("{endpoint}: {error}"),
    })?;
    let nonce = pkce::generate_verifier();
    let scope = match flavor {
        Flavor::OAuth => args.user_scope.clone(),
        Flavor::OpenId => format!("openid {}", args.user_scope).trim().to_owned(),
    };
    if flavor == Flavor::OpenId {
        url.query_pairs_mut().append_pair("nonce", &nonce);
    }
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &args.public_client_id)
        .append_pair("redirect_uri", &args.redirect_uri)
        .append_pair("scope", &scope)
        .append_pair("state", &state[..22])
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(resource) = &args.resource {
        url.query_pairs_mut().append_pair("resource", resource);
    }
    let page_url = String::from(url);

    let mut jar = CookieJar::default();
    let step = Step {
        name: step::AUTHORIZE,
        method: Method::GET,
        url: &page_url,
        expect: &[200],
    };
    let reply = exchange.exchange(step, |request| request).await?;
    jar.store(reply.set_cookies());
    let Some(login) = HtmlForm::parse(&reply.body) else {
        return Err(exchange.reject(step::AUTHORIZE, reply, "no login form on the page".into()));
    };
    let login_url = action_url(&page_url, login.action.as_deref())?;
    let mut reply = submit(
        exchange,
        step::LOGIN,
        &login_url,
        &login,
        &[("username", &args.username), ("password", &args.password)],
        &mut jar,
    )
    .await?;
    if reply.status == 200 {
        // Either the consent page, or the login form again with an error (a wrong password).
        let Some(consent) = HtmlForm::parse(&reply.body) else {
            return Err(exchange.reject(
                step::LOGIN,
                reply,
                "no consent form after signing in".into(),
            ));
        };
        if reply.body.contains("type=\"password\"") {
            return Err(exchange.reject(
                step::LOGIN,
                reply,
                format!(
                    "user {:?} could not sign in (wrong password?)",
                    args.username
                ),
            ));
        }
        let consent_url = action_url(&login_url, consent.action.as_deref())?;
        reply = submit(
            exchange,
            step::CONSENT,
            &consent_url,
            &consent,
            &[("decision", "approve")],
            &mut jar,
        )
        .await?;
    }
    let location = reply
        .header(LOCATION.as_str())
        .unwrap_or_default()
        .to_owned();
    let code = match authorization_response(&location, &args.redirect_uri) {
        Ok(AuthorizationResponse::Code {
            code,
            state: returned,
        }) if returned.as_deref() == Some(&state[..22]) => code,
        Ok(AuthorizationResponse::Code { .. }) => {
            return Err(exchange.reject(
                step::CONSENT,
                reply,
                "the state did not come back".into(),
            ));
        }
        Ok(AuthorizationResponse::Error { error, description }) => {
            return Err(exchange.reject(
                step::CONSENT,
                reply,
                format!(
                    "authorization refused: {error} {}",
                    description.unwrap_or_default()
                ),
            ));
        }
        Err(reason) => return Err(exchange.reject(step::CONSENT, reply, reason)),
    };
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", &args.redirect_uri),
        ("client_id", &args.public_client_id),
        ("code_verifier", &verifier),
    ];
    let reply = token_request(exchange, target, step::CODE_EXCHANGE, &form, false, None).await?;
    if flavor == Flavor::OpenId {
        let json = reply.json().unwrap_or(Value::Null);
        let member = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_owned);
        let checked = match (member("id_token"), member("access_token")) {
            (Some(id_token), Some(access_token)) => {
                check_id_token(exchange, target, &id_token, &nonce, &access_token).await
            }
            (None, _) => Err("the token response has no id_token".to_owned()),
            (_, None) => Err("the token response has no access_token".to_owned()),
        };
        if let Err(reason) = checked {
            return Err(exchange.reject(step::CODE_EXCHANGE, reply, reason));
        }
    }
    tokens(exchange, step::CODE_EXCHANGE, reply)
}

/// The provider's keys, fetched (and measured as `jwks`) when none is known yet or `kid` is not among them.
async fn keys_for<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    kid: &str,
) -> Result<KeySet, FlowError> {
    if let Ok(keys) = target.keys.read()
        && keys.contains(kid)
    {
        return Ok(keys.clone());
    }
    let step = Step {
        name: step::JWKS,
        method: Method::GET,
        url: target.jwks_uri()?,
        expect: &[200],
    };
    let reply = exchange.exchange(step, |request| request).await?;
    let Ok(keys) = KeySet::from_jwks_json(reply.body.as_bytes()) else {
        return Err(exchange.reject(step::JWKS, reply, "the JWKS does not parse".into()));
    };
    if let Ok(mut cached) = target.keys.write() {
        *cached = keys.clone();
    }
    Ok(keys)
}

/// Validates an ID token as a relying party does (OpenID Connect Core §3.1.3.7): the provider's signature,
/// issuer, this client as audience, expiry, the nonce of this flow, and `at_hash` against the access token.
async fn check_id_token<E: Exchange>(
    exchange: &mut E,
    target: &Target,
    id_token: &str,
    nonce: &str,
    access_token: &str,
) -> Result<(), String> {
    let (kid, _) = id_token::header_kid(id_token).map_err(|error| format!("id_token: {error}"))?;
    let keys = keys_for(exchange, target, &kid)
        .await
        .map_err(|error| format!("fetching the JWKS: {error}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let checks = IdTokenChecks {
        issuer: &target.issuer,
        client_id: &target.args.public_client_id,
        nonce: Some(nonce),
        now,
        leeway: 60,
    };
    let (claims, alg) = id_token::validate_id_token(id_token, &keys, &checks)
        .map_err(|error| format!("id_token: {error}"))?;
    if let Some(at_hash) = &claims.at_hash
        && *at_hash != id_token::at_hash(alg, access_token)
    {
        return Err("id_token: at_hash does not match the access token".into());
    }
    Ok(())
}
