//! RP-Initiated Logout 1.0: who asks (`id_token_hint`, `client_id`), where the browser may go afterwards
//! (`post_logout_redirect_uri`, an exact match to a URI the client registered), and which login sessions
//! end. The handlers in `http::logout` map these decisions to pages, cookies and redirects.
//!
//! A request is acted on at once only when its `id_token_hint` (however long ago it expired) names the very
//! session whose cookie came with it (its `sub` and `sid`); in every other case the browser is asked to
//! confirm first (RP-Initiated Logout §2: the OP MUST ask unless the hint is the current session's), so a
//! link on another site, or anybody's own ID token, cannot sign anybody out. Confirming ends the requesting
//! browser's own session and nothing else: a request never ends a session other than the one its cookie
//! names, and a cookie is cleared only when its session ended. A URI that is not registered, or a hint that
//! does not match `client_id`, is a page, never a redirect (§3).

use std::sync::Arc;

use auth_core::id_token::{IdTokenClaims, read_id_token_hint};
use service_kit::telemetry::untrusted;

use super::outcome::{Redirect, Refusal};
use crate::error::Error;
use crate::params::Params;
use crate::state::AppState;
use crate::store::ClientRecord;

/// The parameters the confirmation form carries.
const LOGOUT_FIELDS: [&str; 3] = ["client_id", "post_logout_redirect_uri", "state"];

/// A validated logout request.
#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// The client asking, from `client_id` or the hint's audience.
    pub client: Option<Arc<ClientRecord>>,
    /// The ID token the client holds for the user (its signature and issuer checked).
    pub hint: Option<IdTokenClaims>,
    /// A registered post-logout redirect URI.
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    /// The parameters to carry through the confirmation form.
    pub fields: Vec<(&'static str, String)>,
}

/// What a logout request leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The hint names the session of this browser's cookie: sign it out now.
    SignOut,
    /// Anything else: ask the user first.
    Confirm,
}

/// Whether the request may sign out at once: only when its hint's `sub` and `sid` are those of the session
/// whose cookie came with it.
pub async fn step(
    state: &AppState,
    request: &LogoutRequest,
    session_cookie: Option<&str>,
) -> Result<Step, Error> {
    let Some(hint) = &request.hint else {
        return Ok(Step::Confirm);
    };
    let session = crate::authorize::login::current_session(state, session_cookie).await?;
    Ok(match session {
        Some(session)
            if session.user_id == hint.sub.as_str()
                && session.sid.is_some()
                && session.sid == hint.sid =>
        {
            Step::SignOut
        }
        _ => Step::Confirm,
    })
}

/// What signing out did.
#[derive(Debug)]
pub struct SignedOut {
    /// The browser's own session ended (its cookie is to be cleared).
    pub ended: bool,
    /// Where to send the browser, if anywhere.
    pub redirect: Option<Redirect>,
}

/// Validates a logout request (from a query or a form).
pub async fn validate(state: &AppState, params: &Params) -> Result<LogoutRequest, Refusal> {
    let page = |message: &str| Refusal::Page(message.to_owned());
    let get = |name: &str| {
        params
            .get(name)
            .map_err(|_| page(&format!("The parameter {name} was given more than once.")))
    };
    let hint = match get("id_token_hint")? {
        None | Some("") => None,
        Some(token) => Some(
            read_id_token_hint(
                token,
                &state.keys.snapshot().published,
                &state.settings.issuer,
            )
            .map_err(|_| page("The id_token_hint is not an ID token this server issued."))?,
        ),
    };
    let client_id = match (get("client_id")?, &hint) {
        (Some(client_id), Some(hint)) if client_id != hint.aud => {
            return Err(page(
                "The id_token_hint was not issued to the client that sent the request.",
            ));
        }
        (Some(client_id), _) => Some(client_id.to_owned()),
        (None, Some(hint)) => Some(hint.aud.clone()),
        (None, None) => None,
    };
    let client = match &client_id {
        Some(client_id) => Some(
            state
                .clients
                .get(state.store.as_ref(), client_id)
                .await?
                .ok_or_else(|| page("The client is not registered."))?,
        ),
        None => None,
    };
    let post_logout_redirect_uri = match get("post_logout_redirect_uri")? {
        None => None,
        Some(uri) => {
            let Some(client) = &client else {
                return Err(page(
                    "A post_logout_redirect_uri needs the client_id or id_token_hint that names its client.",
                ));
            };
            if !client
                .post_logout_redirect_uris
                .iter()
                .any(|registered| registered == uri)
            {
                return Err(page(
                    "The post_logout_redirect_uri is not registered for this client.",
                ));
            }
            Some(uri.to_owned())
        }
    };
    let mut fields = Vec::new();
    for name in LOGOUT_FIELDS {
        if let Ok(Some(value)) = params.get(name) {
            fields.push((name, value.to_owned()));
        }
    }
    if !fields.iter().any(|(name, _)| *name == "client_id")
        && let Some(client_id) = &client_id
    {
        fields.push(("client_id", client_id.clone()));
    }
    Ok(LogoutRequest {
        client,
        hint,
        post_logout_redirect_uri,
        state: get("state")?.map(str::to_owned),
        fields,
    })
}

/// Ends the session of the browser's own cookie, if it has one, and nothing else: a hint's `sid` never ends
/// another session. Refresh tokens stay valid: logout ends the browser's session at the provider, not the
/// client's grant. Says whether a session ended, and where to send the browser.
pub async fn sign_out(
    state: &AppState,
    request: &LogoutRequest,
    session_cookie: Option<&str>,
) -> Result<SignedOut, Error> {
    let ended = match session_cookie {
        Some(cookie) => crate::authorize::login::end_session(state, cookie).await?,
        None => false,
    };
    let client_id = request
        .client
        .as_ref()
        .map(|client| client.client_id.as_str())
        .unwrap_or_default();
    tracing::info!(target: "audit", event = "logout", client_id = &*untrusted(client_id), sessions_ended = u8::from(ended), outcome = "signed_out", "logout");
    let redirect = request
        .post_logout_redirect_uri
        .as_ref()
        .map(|uri| Redirect {
            to: uri.clone(),
            params: request
                .state
                .iter()
                .map(|request_state| ("state", request_state.clone()))
                .collect(),
        });
    Ok(SignedOut { ended, redirect })
}
