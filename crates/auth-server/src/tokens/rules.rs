//! The scope (RFC 6749 §3.3) and audience (RFC 8707) rules that the authorization endpoint and every grant
//! share.

use auth_core::scope::ScopeSet;
use auth_core::wire::ErrorCode;

use crate::error::{Result, oauth};
use crate::store::ClientRecord;

/// RFC 8707 §2: `resource` is an absolute URI without a fragment, registered for the client. Without it the
/// audience is the client's first registered audience, else the server default.
pub fn resolve_audience(
    client: &ClientRecord,
    resource: Option<&str>,
    default_audience: &str,
) -> Result<String> {
    match resource {
        Some(resource) => {
            let parsed = url::Url::parse(resource)
                .map_err(|_| oauth(ErrorCode::InvalidTarget, "resource must be an absolute URI"))?;
            if parsed.fragment().is_some() {
                return Err(oauth(
                    ErrorCode::InvalidTarget,
                    "resource must not contain a fragment",
                ));
            }
            if !client.audiences.iter().any(|audience| audience == resource) {
                return Err(oauth(
                    ErrorCode::InvalidTarget,
                    "resource is not registered for this client",
                ));
            }
            Ok(resource.to_owned())
        }
        None => Ok(client
            .audiences
            .first()
            .cloned()
            .unwrap_or_else(|| default_audience.to_owned())),
    }
}

/// RFC 6749 §3.3: the scope a request without `scope` gets: every scope of the client but the OpenID Connect
/// ones (`openid`, `profile`, `email` describe a user: no ID token or profile nobody asked for). `invalid_scope`
/// when nothing is left.
pub fn default_scope(client: &ClientRecord) -> Result<ScopeSet> {
    let scope = ScopeSet::from_tokens(
        client
            .scope
            .iter()
            .filter(|scope| !super::openid::USER_SCOPES.contains(scope)),
    )
    .map_err(|_| crate::store::StoreError::Corrupt("client scope"))?;
    if scope.is_empty() && !client.scope.is_empty() {
        return Err(oauth(
            ErrorCode::InvalidScope,
            "scope is required: this client has no default scope",
        ));
    }
    Ok(scope)
}

/// The scope of a user's request (RFC 6749 §3.3): what it asks, a subset of the client's; without `scope`,
/// the client's [`default_scope`].
pub fn requested_scope(requested: Option<&str>, client: &ClientRecord) -> Result<ScopeSet> {
    match requested {
        None | Some("") => default_scope(client),
        Some(_) => resolve_scope(requested, &client.scope),
    }
}

/// RFC 6749 §3.3: a requested scope must be a subset of what is allowed; none requested means all of it.
pub fn resolve_scope(requested: Option<&str>, allowed: &ScopeSet) -> Result<ScopeSet> {
    match requested {
        None | Some("") => Ok(allowed.clone()),
        Some(text) => {
            let requested = ScopeSet::parse(text)
                .map_err(|error| oauth(ErrorCode::InvalidScope, error.to_string()))?;
            if !requested.is_subset_of(allowed) {
                let missing: Vec<&str> = requested.missing_from(allowed).collect();
                return Err(oauth(
                    ErrorCode::InvalidScope,
                    format!("scope not allowed: {}", missing.join(" ")),
                ));
            }
            Ok(requested)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use auth_core::wire::GrantType;

    fn client(audiences: &[&str]) -> ClientRecord {
        ClientRecord {
            client_id: auth_core::id::ClientId::from_trusted("c"),
            secret_digest: None,
            is_public: false,
            grant_types: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scope: "read write".parse().unwrap(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            skip_consent: false,
            introspection: false,
            post_logout_redirect_uris: vec![],
            require_dpop: false,
            jwks: None,
            jwks_uri: None,
            require_par: false,
            name: None,
            id_token_signed_response_alg: None,
            registered: crate::store::Registered::Operator,
        }
    }

    fn code(error: Error) -> ErrorCode {
        match error {
            Error::OAuth(error) => error.error,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn audience_resolution_follows_rfc8707() {
        let registered = client(&["https://api.example/", "resource-api"]);
        assert_eq!(
            resolve_audience(&registered, None, "default").unwrap(),
            "https://api.example/"
        );
        assert_eq!(
            resolve_audience(&client(&[]), None, "default").unwrap(),
            "default"
        );
        assert_eq!(
            resolve_audience(&registered, Some("https://api.example/"), "d").unwrap(),
            "https://api.example/"
        );
        assert_eq!(
            code(resolve_audience(&registered, Some("resource-api"), "d").unwrap_err()),
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            code(resolve_audience(&registered, Some("https://other.example/"), "d").unwrap_err()),
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            code(resolve_audience(&registered, Some("https://api.example/#f"), "d").unwrap_err()),
            ErrorCode::InvalidTarget
        );
    }

    #[test]
    fn scope_resolution_allows_subsets_only() {
        let allowed: ScopeSet = "read write".parse().unwrap();
        assert_eq!(resolve_scope(None, &allowed).unwrap(), allowed);
        assert_eq!(resolve_scope(Some(""), &allowed).unwrap(), allowed);
        assert_eq!(
            resolve_scope(Some("read"), &allowed).unwrap().to_string(),
            "read"
        );
        assert_eq!(
            code(resolve_scope(Some("read admin"), &allowed).unwrap_err()),
            ErrorCode::InvalidScope
        );
        assert_eq!(
            code(resolve_scope(Some("read  write"), &allowed).unwrap_err()),
            ErrorCode::InvalidScope
        );
    }
}
