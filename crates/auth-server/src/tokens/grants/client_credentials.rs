//! RFC 6749 §4.4: the client acts for itself. No refresh token, nothing stored. The OpenID Connect scopes
//! (`openid`, `profile`, `email`) describe a user, so they are never granted here.

use auth_core::id::Jkt;
use auth_core::scope::ScopeSet;
use auth_core::token::Audience;
use auth_core::wire::{GrantType, TokenResponse};

use crate::error::Result;
use crate::state::AppState;
use crate::store::ClientRecord;
use crate::tokens::issue::{IssueRequest, Issuer, Subject};
use crate::tokens::openid::USER_SCOPES;
use crate::tokens::rules::{resolve_audience, resolve_scope};

/// The parameters of a client_credentials request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub scope: Option<&'a str>,
    /// RFC 8707 resource indicator.
    pub resource: Option<&'a str>,
}

/// Issues an access token whose subject is the client.
pub fn grant(
    state: &AppState,
    client: &ClientRecord,
    request: Request<'_>,
    jkt: Option<Jkt>,
) -> Result<TokenResponse> {
    // The OpenID Connect scopes describe a user: never granted here, asked for or by default.
    let own_scope = ScopeSet::from_tokens(
        client
            .scope
            .iter()
            .filter(|scope| !USER_SCOPES.contains(scope)),
    )
    .map_err(|_| crate::store::StoreError::Corrupt("client scope"))?;
    let scope = resolve_scope(request.scope, &own_scope)?;
    let audience = resolve_audience(client, request.resource, &state.settings.default_audience)?;
    Issuer::ready(state, client)?.issue(
        state,
        IssueRequest {
            grant: GrantType::ClientCredentials,
            client,
            subject: Subject::Client,
            scope,
            audience: Audience::One(audience),
            family: None,
            cnf: jkt,
            id_token: None,
            refresh_token: None,
            act: None,
            expires_at: None,
        },
    )
}
