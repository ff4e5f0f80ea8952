//! What comes after a valid authorization request (RFC 6749 §4.1.2, OpenID Connect Core §3.1.2.3–6): the
//! login form, the consent form, the code, or (with `prompt=none`) the error that says what was needed; and
//! the user's answer on the consent page. Consent is remembered per (user, client, audience): a later request
//! within it skips the page; a new scope or another audience asks again.

use auth_core::id::FamilyId;
use auth_core::secret::OpaqueToken;
use auth_core::wire::ErrorCode;

use super::login::Session;
use super::outcome::{Redirect, Refusal};
use super::request::{AuthorizationRequest, INVALID_REQUEST_URI, IdTokenHint, Origin};
use crate::error::{Error, OAuthError};
use crate::state::AppState;
use crate::store::{Authorization, AuthorizationCodeRecord};

/// What the user must do next.
#[derive(Debug)]
pub enum Next {
    /// Show the login form.
    SignIn,
    /// Show the consent form to this signed-in user.
    Consent(Session),
    /// Done: send the browser back to the client with the code.
    Redirect(Redirect),
    /// `prompt=none` and an interaction was needed, or the request can no longer be answered.
    Refused(Refusal),
}

/// When the session's user typed their password, as far as this request is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedIn {
    /// In this very request (the login form was just accepted): `prompt=login` and `max_age` are satisfied.
    JustNow,
    /// Before: the session's `auth_time` decides.
    Earlier,
}

/// RFC 9126 §4: a pushed request serves one authorization: the first code or error redirect that comes from
/// it consumes it. `false` when it was consumed (or expired) meanwhile: nothing may come from it then.
async fn consume(state: &AppState, request: &AuthorizationRequest) -> Result<bool, Error> {
    match &request.origin {
        Origin::Pushed(digest) => Ok(state
            .store
            .consume_pushed_request(digest, state.clock.now())
            .await?),
        Origin::Direct | Origin::BeingPushed => Ok(true),
    }
}

/// An error redirect for a valid request, consuming its pushed request (a page if that was used meanwhile).
async fn refuse_request(
    state: &AppState,
    request: &AuthorizationRequest,
    error: OAuthError,
) -> Refusal {
    match consume(state, request).await {
        Ok(true) => Refusal::Error(request.bound.error(state, error)),
        Ok(false) => Refusal::Page(INVALID_REQUEST_URI.to_owned()),
        Err(error) => Refusal::Failed(error),
    }
}

/// What comes after a valid request, for a browser with or without a session: sign in, consent, or
/// straight back with a code (consent remembered, or a client registered to skip it) or, with
/// `prompt=none`, with the error that says what was needed (Core §3.1.2.6).
pub async fn next_step(
    state: &AppState,
    request: &AuthorizationRequest,
    session: Option<Session>,
    signed_in: SignedIn,
) -> Result<Next, Error> {
    let now = state.clock.now();
    let fresh_enough = |session: &Session| {
        signed_in == SignedIn::JustNow
            || !(request.prompt.login
                || request
                    .max_age
                    .is_some_and(|max_age| now - session.auth_time.seconds() >= max_age))
    };
    // Core §3.1.2.1 `id_token_hint`: a session of another user than the hint names is not the one the
    // client asks about (sign in again); an unusable hint cannot vouch for any session with `prompt=none`.
    // Once the login form was answered in this request, the hint has done its work.
    let hinted = |session: &Session| match (&request.id_token_hint, signed_in) {
        (_, SignedIn::JustNow) | (None, _) => true,
        (Some(IdTokenHint::Subject(sub)), SignedIn::Earlier) => *sub == session.user_id.as_str(),
        (Some(IdTokenHint::Unusable), SignedIn::Earlier) => !request.prompt.none,
    };
    let Some(session) = session.filter(fresh_enough).filter(hinted) else {
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
        && (request.client().skip_consent || has_consented(state, request, &session).await?)
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
        .find_consent(
            &session.user_id,
            &request.client().client_id,
            &request.audience,
        )
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
    // Consent to a client its developer registered is never remembered, so it is asked every time (RFC 8252
    // §8.6): its name is its developer's claim. (Registration never gives it skip_consent.)
    if request.client().registered == crate::store::Registered::Operator {
        state
            .store
            .remember_consent(
                &session.user_id,
                &request.client().client_id,
                &request.audience,
                &request.scope,
                state.clock.now(),
            )
            .await?;
    }
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
        family_id: FamilyId::generate(),
        client_id: request.client().client_id.clone(),
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
        redirect_uri: request.bound.redirect_uri.clone(),
        redirect_uri_given: request.bound.redirect_uri_given,
        code_challenge: request.challenge.as_str().to_owned(),
        nonce: request.nonce.clone(),
        dpop_jkt: request.dpop_jkt.clone(),
        expires_at: now + state.settings.auth_code_ttl,
        used_at: None,
        family_revoked: false,
    };
    state.store.create_code(&record, now).await?;
    let mut params = vec![("code", code.into_string())];
    if let Some(request_state) = &request.bound.state {
        params.push(("state", request_state.clone()));
    }
    // RFC 9207: the issuer in every authorization response.
    params.push(("iss", state.settings.issuer.clone()));
    Ok(Some(Redirect {
        to: request.bound.redirect_uri.clone(),
        params,
    }))
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
