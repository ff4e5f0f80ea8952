//! RP-Initiated Logout 1.0: who asks (`id_token_hint`, `client_id`), where the browser may go afterwards
//! (`post_logout_redirect_uri`, an exact match to a URI the client registered), and which login sessions
//! end. The handlers in `http::logout` map these decisions to pages, cookies and redirects.
//!
//! A request with a valid `id_token_hint` (however long ago it expired) is acted on at once; without one,
//! the browser is asked to confirm first, so a link on another site cannot sign anybody out. A URI that is
//! not registered, or a hint that does not match `client_id`, is a page, never a redirect (§3).

use std::sync::Arc;

use auth_core::id_token::{IdTokenClaims, read_id_token_hint};
use service_kit::telemetry::Untrusted;

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

impl LogoutRequest {
    /// A valid hint identifies the client's user: no confirmation is needed (RP-Initiated Logout §2).
    pub fn needs_confirmation(&self) -> bool {
        self.hint.is_none()
    }
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

/// Ends the login sessions the request concerns: the browser's own (unless the hint names another user),
/// and the session the hint names (`sid`). Refresh tokens stay valid: logout ends the browser's session at
/// the provider, not the client's grant. Returns where to send the browser, if anywhere.
pub async fn sign_out(
    state: &AppState,
    request: &LogoutRequest,
    session_cookie: Option<&str>,
) -> Result<Option<Redirect>, Error> {
    let mut ended = 0;
    if let Some(cookie) = session_cookie {
        let mine = match &request.hint {
            None => true,
            Some(hint) => crate::authorize::login::current_session(state, Some(cookie))
                .await?
                .is_none_or(|session| session.user_id == hint.sub.as_str()),
        };
        if mine && crate::authorize::login::end_session(state, cookie).await? {
            ended += 1;
        }
    }
    if let Some(hint) = &request.hint
        && let Some(sid) = &hint.sid
        && state
            .store
            .end_session_by_sid(sid, &auth_core::id::UserId::from_trusted(hint.sub.clone()))
            .await?
    {
        ended += 1;
    }
    let client_id = request
        .client
        .as_ref()
        .map(|client| client.client_id.as_str())
        .unwrap_or_default();
    tracing::info!(target: "audit", event = "logout", client_id = %Untrusted(client_id), sessions_ended = ended, outcome = "signed_out", "logout");
    let Some(uri) = &request.post_logout_redirect_uri else {
        return Ok(None);
    };
    Ok(Some(Redirect {
        to: uri.clone(),
        params: request
            .state
            .iter()
            .map(|request_state| ("state", request_state.clone()))
            .collect(),
    }))
}
