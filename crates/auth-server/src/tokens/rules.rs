//! The scope (RFC 6749 §3.3) and audience (RFC 8707) rules that the authorization endpoint and every grant
//! share.

use auth_core::scope::ScopeSet;
use auth_core::wire::ErrorCode;

use crate::error::{Result, oauth};
use crate::store::ClientRecord;

/// RFC 8707 §2: `resource` is an absolute URI without a fragment, registered for the client ([`same_resource`]).
/// The audience is the registered form, so a resource server comparing `aud` exactly finds its own
/// identifier. Without `resource`, the client's first registered audience, else the server default.
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
            client
                .audiences
                .iter()
                .find(|audience| same_resource(audience, resource))
                .cloned()
                .ok_or_else(|| {
                    oauth(
                        ErrorCode::InvalidTarget,
                        "resource is not registered for this client",
                    )
                })
        }
        None => Ok(client
            .audiences
            .first()
            .cloned()
            .unwrap_or_else(|| default_audience.to_owned())),
    }
}

/// Whether a requested `resource` names the `registered` one: the same string, or, for http and https, the
/// same URL once an empty path is written `/` (RFC 3986 §6.2.3: `https://api.example` and
/// `https://api.example/` are one resource). Clients serialize through a URL parser (the MCP SDK sends
/// `new URL(resource).href`), so an identifier registered without its `/` would otherwise be refused to
/// them. Nothing else is normalized: case, ports, dot segments and percent-encoding must match.
pub fn same_resource(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let root = |shorter: &str, longer: &str| {
        longer.strip_suffix('/') == Some(shorter)
            && url::Url::parse(shorter).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.path() == "/"
                    && url.query().is_none()
                    && !shorter.ends_with('/')
                    // `https://host` only: no `?` or `#` that the parser may have dropped.
                    && !shorter.contains(['?', '#'])
            })
    };
    root(registered, requested) || root(requested, registered)
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
pub(crate) mod tests {
    use super::*;
    use crate::error::Error;
    use auth_core::wire::GrantType;

    pub(crate) fn client(audiences: &[&str]) -> ClientRecord {
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
            exchange_audiences: vec![],
            backchannel_logout_uri: None,
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
    fn a_root_resource_matches_with_or_without_its_slash_and_nothing_else_is_normalized() {
        let registered = client(&["http://127.0.0.1:8081", "https://api.example/v1"]);
        for requested in ["http://127.0.0.1:8081/", "http://127.0.0.1:8081"] {
            assert_eq!(
                resolve_audience(&registered, Some(requested), "d").unwrap(),
                "http://127.0.0.1:8081",
                "the registered form is the audience"
            );
        }
        assert!(same_resource("https://api.example/", "https://api.example"));
        for (registered, requested) in [
            ("https://api.example/v1", "https://api.example/v1/"),
            ("https://api.example", "https://API.example/"),
            ("https://api.example", "https://api.example:443/"),
            ("https://api.example", "https://api.example//"),
            ("resource-api", "resource-api/"),
            ("urn:example:api", "urn:example:api/"),
        ] {
            assert!(!same_resource(registered, requested), "{requested}");
        }
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
