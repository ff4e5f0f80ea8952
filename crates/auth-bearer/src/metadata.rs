//! RFC 9728 protected-resource metadata: where a client that got a 401 learns which authorization server
//! issues tokens for this resource, and how to present them. Built once, from the configuration.

/// The document of one resource, and where it is served.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// Its URL (RFC 9728 §3.1): `/.well-known/oauth-protected-resource` inserted between the identifier's
    /// authority and its path. Named in every 401 challenge (§5.1).
    pub url: String,
    /// The path it is served at on this service.
    pub path: String,
    /// The JSON document (§2), with `resource` exactly the identifier as configured (§3.3).
    pub json: String,
}

/// The well-known suffix of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

impl ResourceMetadata {
    /// The metadata of the resource `identifier` whose tokens `issuer` issues; `None` for an identifier
    /// that is not an absolute http(s) URL without a fragment (RFC 9728 §1.2), or that has a query.
    pub fn new(
        identifier: &str,
        issuer: &str,
        scopes_supported: &[String],
        resource_name: Option<&str>,
        dpop_algorithms: &[&str],
    ) -> Option<Self> {
        let (scheme, rest) = identifier.split_once("://")?;
        if !matches!(scheme, "https" | "http") || identifier.contains(['#', '?']) {
            return None;
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return None;
        }
        // A path of `/` alone names no path (RFC 9728 §3.1: "any terminating slash" is removed).
        let path = path.trim_end_matches('/');
        let served = format!("{WELL_KNOWN}{path}");
        let mut document = serde_json::json!({
            "resource": identifier,
            "authorization_servers": [issuer],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": dpop_algorithms,
            "dpop_bound_access_tokens_required": false,
        });
        if !scopes_supported.is_empty() {
            document["scopes_supported"] = serde_json::json!(scopes_supported);
        }
        if let Some(name) = resource_name {
            document["resource_name"] = name.into();
        }
        Some(Self {
            url: format!("{scheme}://{authority}{served}"),
            path: served,
            json: document.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_served_under_the_identifier_path_and_names_it_exactly() {
        let scopes = vec!["read".to_owned()];
        let root = ResourceMetadata::new(
            "https://api.example",
            "https://as.example",
            &scopes,
            Some("API"),
            &["ES256"],
        )
        .unwrap();
        assert_eq!(
            root.url,
            "https://api.example/.well-known/oauth-protected-resource"
        );
        assert_eq!(root.path, "/.well-known/oauth-protected-resource");
        let json: serde_json::Value = serde_json::from_str(&root.json).unwrap();
        assert_eq!(json["resource"], "https://api.example");
        assert_eq!(json["authorization_servers"][0], "https://as.example");
        assert_eq!(json["scopes_supported"][0], "read");
        assert_eq!(json["resource_name"], "API");
        assert_eq!(json["bearer_methods_supported"][0], "header");
        let with_path =
            ResourceMetadata::new("http://127.0.0.1:8081/mcp/", "i", &[], None, &[]).unwrap();
        assert_eq!(
            with_path.url,
            "http://127.0.0.1:8081/.well-known/oauth-protected-resource/mcp"
        );
        let json: serde_json::Value = serde_json::from_str(&with_path.json).unwrap();
        assert_eq!(
            json["resource"], "http://127.0.0.1:8081/mcp/",
            "never re-serialized"
        );
        for bad in [
            "api.example",
            "ftp://x/",
            "https://x/#f",
            "https://x/?q",
            "https:///p",
        ] {
            assert!(
                ResourceMetadata::new(bad, "i", &[], None, &[]).is_none(),
                "{bad}"
            );
        }
    }
}
