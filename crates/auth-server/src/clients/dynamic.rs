//! Dynamic client registration (RFC 7591) and its management (RFC 7592): a JSON registration read into
//! the one client rule set ([`super::registration::validate`]) plus the rules of a client nobody vetted:
//! which grants it may ask for under each policy, its redirect URIs by application type (OpenID Connect
//! Registration §2, RFC 8252 §7), its scopes within `--registration-scopes`, the default audience as its
//! only audience, and never a skipped consent. The answer echoes the accepted metadata with its defaults and
//! omits every member without a value (a `null` breaks clients that validate the response).

use serde_json::{Map, Value, json};

use auth_core::id::ClientId;
use auth_core::scope::ScopeSet;
use auth_core::secret::OpaqueToken;
use auth_core::wire::{DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT};

use super::registration::{self, ClientMetadata, Field, SecretShown};
use crate::store::{ClientRecord, Registered};

/// Redirect URIs a registration may list.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Contacts a registration may list.
pub const MAX_CONTACTS: usize = 10;
/// The largest metadata document stored for a client (bytes of JSON).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// The RFC 7591 §3.2.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationErrorCode {
    InvalidRedirectUri,
    InvalidClientMetadata,
}

impl RegistrationErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
        }
    }
}

/// A refused registration: its code and a description naming the member (never echoing a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct RegistrationError {
    pub code: RegistrationErrorCode,
    pub description: String,
}

/// An `invalid_client_metadata` refusal (RFC 7591 §3.2.2).
pub fn metadata_error(description: impl Into<String>) -> RegistrationError {
    RegistrationError {
        code: RegistrationErrorCode::InvalidClientMetadata,
        description: description.into(),
    }
}

fn redirect_error(description: impl Into<String>) -> RegistrationError {
    RegistrationError {
        code: RegistrationErrorCode::InvalidRedirectUri,
        description: description.into(),
    }
}

/// What the server's configuration allows a registration.
#[derive(Debug, Clone)]
pub struct Allowance<'a> {
    /// Registered with an initial access token: `client_credentials` is allowed to confidential clients.
    pub trusted: bool,
    /// A `jwks_uri` may be registered: only with an initial access token, since the server fetches it (an
    /// open registration could point it at addresses inside the server's network).
    pub jwks_uri_allowed: bool,
    /// The scopes a dynamic client may have, and the default.
    pub scopes: &'a ScopeSet,
    /// Its only audience.
    pub audience: &'a str,
}

/// A registration, checked: the client to store, the secret to show once, and the metadata to store and
/// echo (server-assigned members apart).
#[derive(Debug)]
pub struct Registration {
    pub client: ClientRecord,
    pub secret: Option<SecretShown>,
    pub metadata: Map<String, Value>,
}

/// A new client id: 128 random bits, base64url (never a URL, so never taken for a metadata document).
pub fn new_client_id() -> String {
    let token = OpaqueToken::generate().into_string();
    token.chars().take(22).collect()
}

fn is_loopback_http(url: &url::Url) -> bool {
    url.scheme() == "http" && super::document_fetch::is_loopback_host(url)
}

/// A web page of the client's (`client_uri`, `logo_uri`, `tos_uri`, `policy_uri`): https, or http on loopback.
fn check_page_url(member: &str, text: &str) -> Result<(), RegistrationError> {
    let url = url::Url::parse(text)
        .map_err(|_| metadata_error(format!("{member} is not an absolute URL")))?;
    if url.scheme() == "https" || is_loopback_http(&url) {
        Ok(())
    } else {
        Err(metadata_error(format!(
            "{member} must be an https URL (http only on a loopback host)"
        )))
    }
}

/// RFC 8252 §7 and OpenID Connect Registration §2: a `web` client's redirect URIs are https, or http on a
/// loopback host; a `native` client's are http on a loopback host (any port) or a private-use scheme in
/// reverse-domain form (it has a `.`).
fn check_redirect_uri(native: bool, text: &str) -> Result<(), RegistrationError> {
    let normalized = registration::normalize_redirect_uri(text).map_err(redirect_error)?;
    let url = url::Url::parse(&normalized)
        .map_err(|_| redirect_error("a redirect URI is not an absolute URI"))?;
    let allowed = if native {
        is_loopback_http(&url)
            || (url.scheme().contains('.') && !matches!(url.scheme(), "http" | "https"))
    } else {
        url.scheme() == "https" || is_loopback_http(&url)
    };
    if allowed {
        Ok(())
    } else if native {
        Err(redirect_error(
            "a native client's redirect URI is http on 127.0.0.1, [::1] or localhost, or a private-use scheme with a dot (com.example.app:/callback)",
        ))
    } else {
        Err(redirect_error(
            "a web client's redirect URI is https (http only on 127.0.0.1, [::1] or localhost)",
        ))
    }
}

fn strings(
    body: &Map<String, Value>,
    member: &str,
) -> Result<Option<Vec<String>>, RegistrationError> {
    match body.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| metadata_error(format!("{member} must be an array of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(metadata_error(format!(
            "{member} must be an array of strings"
        ))),
    }
}

fn string(body: &Map<String, Value>, member: &str) -> Result<Option<String>, RegistrationError> {
    match body.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(metadata_error(format!("{member} must be a string"))),
    }
}

fn boolean(body: &Map<String, Value>, member: &str) -> Result<bool, RegistrationError> {
    match body.get(member) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(metadata_error(format!("{member} must be true or false"))),
    }
}

/// The member of a registration a refused field of the rule set came from.
fn member_of(field: Field) -> &'static str {
    match field {
        Field::ClientId => "client_id",
        Field::Public | Field::Secret => "token_endpoint_auth_method",
        Field::GrantTypes => "grant_types",
        Field::RedirectUris => "redirect_uris",
        Field::Scope => "scope",
        Field::Audiences => "audience",
        Field::Introspection => "introspection",
        Field::PostLogoutRedirectUris => "post_logout_redirect_uris",
        Field::Jwks => "jwks",
        Field::JwksUri => "jwks_uri",
        Field::Name => "client_name",
        Field::IdTokenSignedResponseAlg => "id_token_signed_response_alg",
        Field::TokenExchange | Field::ExchangeAudiences => "grant_types",
        Field::BackchannelLogoutUri => "backchannel_logout_uri",
    }
}

/// Reads and checks a registration (RFC 7591 §2) for `client_id`; `secret` is the secret to keep (an RFC
/// 7592 update keeps the current one), else a secret method gets a new one.
pub fn register(
    body: &[u8],
    client_id: &str,
    policy: &Allowance<'_>,
    keep_secret: Option<auth_core::secret::SecretDigest>,
) -> Result<Registration, RegistrationError> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(metadata_error("the registration must be a JSON object"));
    };
    let application_type = string(&body, "application_type")?.unwrap_or_else(|| "web".into());
    let native = match application_type.as_str() {
        "web" => false,
        "native" => true,
        _ => return Err(metadata_error("application_type is web or native")),
    };
    let auth_method = string(&body, "token_endpoint_auth_method")?
        .unwrap_or_else(|| "client_secret_basic".into());
    if !matches!(
        auth_method.as_str(),
        "client_secret_basic" | "client_secret_post" | "none" | "private_key_jwt"
    ) {
        return Err(metadata_error(
            "token_endpoint_auth_method is client_secret_basic, client_secret_post, none or private_key_jwt",
        ));
    }
    let public = auth_method == "none";
    let grant_types =
        strings(&body, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    for grant in &grant_types {
        let allowed = match grant.as_str() {
            "authorization_code" | "refresh_token" | DEVICE_CODE_GRANT => true,
            "client_credentials" | TOKEN_EXCHANGE_GRANT => policy.trusted && !public,
            _ => false,
        };
        if !allowed {
            return Err(metadata_error(
                if matches!(grant.as_str(), "client_credentials" | TOKEN_EXCHANGE_GRANT) {
                    format!("{grant} needs an initial access token and a confidential client")
                } else {
                    "grant_types are authorization_code, refresh_token and the device_code grant (and client_credentials and token exchange with an initial access token)".to_owned()
                },
            ));
        }
    }
    let response_types = strings(&body, "response_types")?.unwrap_or_else(|| vec!["code".into()]);
    if response_types != ["code"] {
        return Err(metadata_error("response_types is [\"code\"]"));
    }
    let redirect_uris = strings(&body, "redirect_uris")?.unwrap_or_default();
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(redirect_error(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs"
        )));
    }
    for uri in &redirect_uris {
        check_redirect_uri(native, uri)?;
    }
    let scope = match string(&body, "scope")? {
        Some(text) => {
            let asked = ScopeSet::parse(&text)
                .map_err(|error| metadata_error(format!("scope: {error}")))?;
            if !asked.is_subset_of(policy.scopes) {
                return Err(metadata_error(format!(
                    "scope may hold only {}",
                    policy.scopes
                )));
            }
            asked
        }
        None => policy.scopes.clone(),
    };
    for member in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        if let Some(url) = string(&body, member)? {
            check_page_url(member, &url)?;
        }
    }
    if let Some(contacts) = strings(&body, "contacts")?
        && (contacts.len() > MAX_CONTACTS || contacts.iter().any(|contact| contact.len() > 254))
    {
        return Err(metadata_error(format!(
            "at most {MAX_CONTACTS} contacts of at most 254 bytes"
        )));
    }
    for member in ["software_id", "software_version"] {
        if string(&body, member)?
            .is_some_and(|text| text.len() > 255 || text.chars().any(char::is_control))
        {
            return Err(metadata_error(format!(
                "{member} is at most 255 bytes of text"
            )));
        }
    }
    let jwks = match body.get("jwks") {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => Some(value.to_string()),
        Some(_) => return Err(metadata_error("jwks must be a JWK set object")),
    };
    let jwks_uri = string(&body, "jwks_uri")?;
    if auth_method == "private_key_jwt" && jwks.is_some() == jwks_uri.is_some() {
        return Err(metadata_error(
            "private_key_jwt needs exactly one of jwks and jwks_uri",
        ));
    }
    if auth_method != "private_key_jwt" && (jwks.is_some() || jwks_uri.is_some()) {
        return Err(metadata_error(
            "jwks and jwks_uri are for private_key_jwt clients",
        ));
    }
    if let Some(uri) = &jwks_uri {
        if !policy.jwks_uri_allowed {
            return Err(metadata_error(
                "jwks_uri needs an initial access token; register the public keys as jwks",
            ));
        }
        if uri.chars().any(char::is_control) {
            return Err(metadata_error("jwks_uri is not a URL"));
        }
        check_page_url("jwks_uri", uri)?;
    }
    let post_logout_redirect_uris =
        strings(&body, "post_logout_redirect_uris")?.unwrap_or_default();
    if post_logout_redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(metadata_error(format!(
            "at most {MAX_REDIRECT_URIS} post_logout_redirect_uris"
        )));
    }
    // Where the server sends a browser after logout: the same rules as the redirect URIs.
    for uri in &post_logout_redirect_uris {
        check_redirect_uri(native, uri).map_err(|error| {
            metadata_error(format!("post_logout_redirect_uris: {}", error.description))
        })?;
    }
    let metadata = ClientMetadata {
        client_id: client_id.to_owned(),
        public,
        secret: None,
        grant_types: grant_types.clone(),
        redirect_uris: redirect_uris.clone(),
        scope: scope.to_string(),
        audiences: vec![policy.audience.to_owned()],
        skip_consent: false,
        introspection: false,
        post_logout_redirect_uris,
        require_dpop: boolean(&body, "dpop_bound_access_tokens")?,
        jwks,
        jwks_uri,
        require_par: false,
        name: string(&body, "client_name")?,
        id_token_signed_response_alg: string(&body, "id_token_signed_response_alg")?,
        token_exchange: false,
        // A dynamic client's one exchange target is the server's default audience, as its one audience.
        exchange_audiences: if grant_types
            .iter()
            .any(|grant| grant == TOKEN_EXCHANGE_GRANT)
        {
            vec![policy.audience.to_owned()]
        } else {
            Vec::new()
        },
        backchannel_logout_uri: string(&body, "backchannel_logout_uri")?,
    };
    let (mut client, secret) = registration::validate(&metadata).map_err(|error| {
        let description = format!("{}: {}", member_of(error.field), error.reason);
        if error.is_redirect_uri() {
            redirect_error(description)
        } else {
            metadata_error(description)
        }
    })?;
    client.registered = Registered::Dynamic;
    let secret = match (keep_secret, client.secret_digest) {
        // An update keeps the secret it had.
        (Some(kept), Some(_)) => {
            client.secret_digest = Some(kept);
            None
        }
        _ => secret,
    };
    // The metadata as accepted, with its defaults; server-assigned members are added to the answer.
    let mut accepted = Map::new();
    let mut put = |member: &str, value: Value| {
        accepted.insert(member.to_owned(), value);
    };
    put("redirect_uris", json!(client.redirect_uris));
    put("token_endpoint_auth_method", json!(auth_method));
    put("grant_types", json!(grant_types));
    put("response_types", json!(["code"]));
    put("scope", json!(client.scope.to_string()));
    put("application_type", json!(application_type));
    put(
        "id_token_signed_response_alg",
        json!(
            client
                .id_token_signed_response_alg
                .unwrap_or(auth_core::keys::SigningAlgorithm::Rs256)
                .as_str()
        ),
    );
    put("dpop_bound_access_tokens", json!(client.require_dpop));
    if !client.post_logout_redirect_uris.is_empty() {
        put(
            "post_logout_redirect_uris",
            json!(client.post_logout_redirect_uris),
        );
    }
    if let Some(name) = &client.name {
        put("client_name", json!(name));
    }
    for member in [
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "software_id",
        "software_version",
    ] {
        if let Some(text) = string(&body, member)? {
            put(member, json!(text));
        }
    }
    if let Some(contacts) = strings(&body, "contacts")? {
        put("contacts", json!(contacts));
    }
    if let Some(jwks) = client
        .jwks
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    {
        put("jwks", jwks);
    }
    if let Some(uri) = &client.jwks_uri {
        put("jwks_uri", json!(uri));
    }
    if let Some(uri) = &client.backchannel_logout_uri {
        put("backchannel_logout_uri", json!(uri));
        put("backchannel_logout_session_required", json!(true));
    }
    if Value::Object(accepted.clone()).to_string().len() > MAX_METADATA_BYTES {
        return Err(metadata_error(format!(
            "the registration is over {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(Registration {
        client,
        secret,
        metadata: accepted,
    })
}

/// The answer to a registration or an RFC 7592 read or update: the client's id, its secret when shown (a
/// registration of a secret method), the registration access token and where to use it, and the metadata.
pub fn response(
    client: &ClientRecord,
    metadata: &Map<String, Value>,
    secret: Option<&SecretShown>,
    registration_access_token: &str,
    issuer: &str,
    issued_at: Option<i64>,
) -> Value {
    let mut body = metadata.clone();
    body.insert("client_id".into(), json!(client.client_id.as_str()));
    if let Some(secret) = secret {
        body.insert("client_secret".into(), json!(secret.0));
        body.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(issued_at) = issued_at {
        body.insert("client_id_issued_at".into(), json!(issued_at));
    }
    body.insert(
        "registration_access_token".into(),
        json!(registration_access_token),
    );
    body.insert(
        "registration_client_uri".into(),
        json!(format!(
            "{}/register/{}",
            issuer.trim_end_matches('/'),
            client.client_id.as_str()
        )),
    );
    Value::Object(body)
}

/// Whether an id could be a dynamic client's (ids that cannot are refused before any lookup).
pub fn parse_client_id(text: &str) -> Option<ClientId> {
    ClientId::parse(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(scopes: &ScopeSet) -> Allowance<'_> {
        Allowance {
            trusted: false,
            jwks_uri_allowed: false,
            scopes,
            audience: "https://api.example",
        }
    }

    fn refused(body: Value) -> RegistrationError {
        let scopes = ScopeSet::parse("read write").unwrap();
        register(body.to_string().as_bytes(), "abc", &policy(&scopes), None).unwrap_err()
    }

    #[test]
    fn an_mcp_style_registration_gets_a_public_client_with_the_default_audience() {
        let scopes = ScopeSet::parse("read write").unwrap();
        let body = json!({
            "redirect_uris": ["http://localhost:43123/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "An MCP client",
            "software_statement": "ignored",
            "made_up": {"x": 1},
        });
        let registered =
            register(body.to_string().as_bytes(), "abc", &policy(&scopes), None).unwrap();
        assert!(registered.client.is_public && registered.secret.is_none());
        assert_eq!(registered.client.audiences, ["https://api.example"]);
        assert_eq!(registered.client.registered, Registered::Dynamic);
        assert!(!registered.client.skip_consent);
        assert_eq!(registered.metadata["scope"], "read write");
        assert!(!registered.metadata.contains_key("made_up"));
        assert!(!registered.metadata.contains_key("software_statement"));
        assert!(registered.metadata.values().all(|value| !value.is_null()));
    }

    #[test]
    fn every_metadata_rule_has_its_error() {
        use RegistrationErrorCode::{InvalidClientMetadata as Meta, InvalidRedirectUri as Uri};
        for (body, code) in [
            (json!(["not an object"]), Meta),
            (json!({"redirect_uris": "http://localhost/cb"}), Meta),
            (json!({"redirect_uris": ["http://app.example/cb"]}), Uri),
            (json!({"redirect_uris": ["https://app.example/cb#f"]}), Uri),
            (
                json!({"redirect_uris": ["javascript://x/%0aalert(1)"]}),
                Uri,
            ),
            (json!({"redirect_uris": ["com.example.app:/cb"]}), Uri),
            (
                json!({"application_type": "native", "redirect_uris": ["https://app.example/cb"]}),
                Uri,
            ),
            (
                json!({"application_type": "native", "redirect_uris": ["myapp:/cb"]}),
                Uri,
            ),
            (
                json!({"application_type": "desktop", "redirect_uris": ["http://localhost/cb"]}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "grant_types": ["client_credentials"]}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "grant_types": ["password"]}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "response_types": ["token"]}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "scope": "admin"}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "jwks_uri": "https://x.example/jwks"}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "client_uri": "http://app.example"}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "contacts": vec!["a@b"; 11]}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "client_name": "bad\nname"}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "id_token_signed_response_alg": "none"}),
                Meta,
            ),
            (
                json!({"redirect_uris": ["http://localhost/cb"], "dpop_bound_access_tokens": "yes"}),
                Meta,
            ),
            (
                json!({"redirect_uris": vec!["http://localhost/cb"; 21]}),
                Uri,
            ),
            (json!({}), Uri),
        ] {
            assert_eq!(refused(body.clone()).code, code, "{body}");
        }
        assert!(
            register(
                b"{",
                "abc",
                &policy(&ScopeSet::parse("read").unwrap()),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn native_clients_use_loopback_or_reverse_domain_schemes() {
        let scopes = ScopeSet::parse("read").unwrap();
        for uri in [
            "http://127.0.0.1:5000/cb",
            "http://[::1]/cb",
            "com.example.app:/oauth2redirect",
        ] {
            let body = json!({"application_type": "native", "redirect_uris": [uri], "token_endpoint_auth_method": "none"});
            assert!(
                register(body.to_string().as_bytes(), "abc", &policy(&scopes), None).is_ok(),
                "{uri}"
            );
        }
    }

    #[test]
    fn client_credentials_needs_an_initial_access_token_and_a_secret() {
        let scopes = ScopeSet::parse("read").unwrap();
        let trusted = Allowance {
            trusted: true,
            ..policy(&scopes)
        };
        let body = json!({"grant_types": ["client_credentials"]});
        let registered = register(body.to_string().as_bytes(), "abc", &trusted, None).unwrap();
        assert!(registered.secret.is_some());
        let public =
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"});
        assert!(register(public.to_string().as_bytes(), "abc", &trusted, None).is_err());
    }
}
