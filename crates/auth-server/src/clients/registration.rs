//! What makes a client registration valid: the one rule set that `client create`, the configuration file and
//! dynamic registration all call, so they can never disagree. Each source describes a client as
//! [`ClientMetadata`]; [`validate`] turns it into the record to store, or a [`ClientError`] that names the
//! offending [`Field`] (each source says the name its own way: a flag, a file key, a registration member) and
//! whether it is a redirect URI (RFC 7591 §3.2.2 answers those with `invalid_redirect_uri`).

use auth_core::id::ClientId;
use auth_core::scope::ScopeSet;
use auth_core::secret::{OpaqueToken, SecretDigest};
use auth_core::wire::GrantType;

use super::keys::parse_jwks;
use crate::store::ClientRecord;

/// Longest client id an operator may register (bytes).
pub const MAX_CLIENT_ID_BYTES: usize = 255;

/// The shortest client secret given by an operator (a generated one is 256 bits).
pub const MIN_GIVEN_SECRET_CHARS: usize = 32;

/// The longest display name (bytes).
pub const MAX_NAME_BYTES: usize = 100;

/// A client as described by whoever registers it, before any rule is applied.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientMetadata {
    pub client_id: String,
    /// A public client: no secret, authenticates with `none` and must use PKCE.
    pub public: bool,
    /// A secret chosen by the registrant; `None` for a generated one (or none at all).
    pub secret: Option<String>,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    /// Space-separated scopes.
    pub scope: String,
    pub audiences: Vec<String>,
    pub skip_consent: bool,
    pub introspection: bool,
    pub post_logout_redirect_uris: Vec<String>,
    pub require_dpop: bool,
    /// A JWK set document (`private_key_jwt`, RFC 7523).
    pub jwks: Option<String>,
    /// Where to fetch the JWK set (`private_key_jwt`).
    pub jwks_uri: Option<String>,
    pub require_par: bool,
    pub name: Option<String>,
    /// The algorithm of its ID tokens (OpenID Connect Registration §2): RS256, PS256, ES256 or EdDSA;
    /// `None` is RS256.
    pub id_token_signed_response_alg: Option<String>,
    /// May exchange tokens (RFC 8693): the token-exchange grant, for a confidential client only.
    pub token_exchange: bool,
    /// The audiences its exchanges may ask for.
    pub exchange_audiences: Vec<String>,
    /// Where it is told that a session ended (OpenID Connect Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
}

impl std::fmt::Debug for ClientMetadata {
    /// Everything but the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetadata")
            .field("client_id", &self.client_id)
            .field("public", &self.public)
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .field("grant_types", &self.grant_types)
            .field("redirect_uris", &self.redirect_uris)
            .field("scope", &self.scope)
            .field("audiences", &self.audiences)
            .field("skip_consent", &self.skip_consent)
            .field("introspection", &self.introspection)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .field("require_dpop", &self.require_dpop)
            .field("jwks", &self.jwks)
            .field("jwks_uri", &self.jwks_uri)
            .field("require_par", &self.require_par)
            .field("name", &self.name)
            .field(
                "id_token_signed_response_alg",
                &self.id_token_signed_response_alg,
            )
            .field("token_exchange", &self.token_exchange)
            .field("exchange_audiences", &self.exchange_audiences)
            .field("backchannel_logout_uri", &self.backchannel_logout_uri)
            .finish()
    }
}

impl std::fmt::Debug for SecretShown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretShown(..)")
    }
}

/// The secret to show the registrant once (generated or as given); stored only as its digest.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretShown(pub String);

/// A field of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ClientId,
    Public,
    Secret,
    GrantTypes,
    RedirectUris,
    Scope,
    Audiences,
    Introspection,
    PostLogoutRedirectUris,
    Jwks,
    JwksUri,
    Name,
    IdTokenSignedResponseAlg,
    TokenExchange,
    ExchangeAudiences,
    BackchannelLogoutUri,
}

impl Field {
    /// Its `client create` flag.
    pub fn flag(self) -> &'static str {
        match self {
            Self::ClientId => "--client-id",
            Self::Public => "--public",
            Self::Secret => "--secret-stdin",
            Self::GrantTypes => "--grant-type",
            Self::RedirectUris => "--redirect-uri",
            Self::Scope => "--scope",
            Self::Audiences => "--audience",
            Self::Introspection => "--introspection",
            Self::PostLogoutRedirectUris => "--post-logout-redirect-uri",
            Self::Jwks => "--jwks-file",
            Self::JwksUri => "--jwks-uri",
            Self::Name => "--name",
            Self::IdTokenSignedResponseAlg => "--id-token-signed-response-alg",
            Self::TokenExchange => "--token-exchange",
            Self::ExchangeAudiences => "--exchange-audience",
            Self::BackchannelLogoutUri => "--backchannel-logout-uri",
        }
    }

    /// Its key in a configuration file's `[[clients]]` entry.
    pub fn key(self) -> &'static str {
        match self {
            Self::ClientId => "client_id",
            Self::Public => "public",
            Self::Secret => "secret",
            Self::GrantTypes => "grant_types",
            Self::RedirectUris => "redirect_uris",
            Self::Scope => "scope",
            Self::Audiences => "audiences",
            Self::Introspection => "introspection",
            Self::PostLogoutRedirectUris => "post_logout_redirect_uris",
            Self::Jwks => "jwks",
            Self::JwksUri => "jwks_uri",
            Self::Name => "name",
            Self::IdTokenSignedResponseAlg => "id_token_signed_response_alg",
            Self::TokenExchange => "token_exchange",
            Self::ExchangeAudiences => "exchange_audiences",
            Self::BackchannelLogoutUri => "backchannel_logout_uri",
        }
    }
}

/// Why a registration is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ClientError {
    pub field: Field,
    pub reason: String,
}

impl ClientError {
    fn new(field: Field, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The field is a redirect URI (RFC 7591 §3.2.2: `invalid_redirect_uri`).
    pub fn is_redirect_uri(&self) -> bool {
        self.field == Field::RedirectUris
    }
}

/// Redirect URIs are stored as URL parsing serializes them (`http://h:9` → `http://h:9/`) and may not
/// carry a fragment (RFC 6749 §3.1.2), nor a scheme that runs or reads something in the browser.
pub fn normalize_redirect_uri(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text)
        .map_err(|_| format!("redirect URI {text:?} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("redirect URI {text:?} must not contain a fragment"));
    }
    if url.cannot_be_a_base() {
        return Err(format!("redirect URI {text:?} is not a hierarchical URI"));
    }
    if matches!(
        url.scheme(),
        "javascript" | "data" | "file" | "vbscript" | "blob"
    ) {
        return Err(format!(
            "redirect URI {text:?} must not use the {} scheme",
            url.scheme()
        ));
    }
    Ok(url.to_string())
}

/// OpenID Connect Back-Channel Logout 1.0 §2.2: an absolute https URL (loopback http for development, as
/// RFC 8252 §7.3 allows redirects), without a fragment; stored as URL parsing writes it.
pub fn backchannel_logout_uri(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text)
        .map_err(|_| format!("backchannel logout URI {text:?} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!(
            "backchannel logout URI {text:?} must not contain a fragment"
        ));
    }
    let loopback = url.scheme() == "http" && super::document_fetch::is_loopback_host(&url);
    if url.scheme() != "https" && !loopback {
        return Err(format!(
            "backchannel logout URI {text:?} must be https (or http on a loopback host)"
        ));
    }
    Ok(url.to_string())
}

/// Applies every rule; returns the record to store and the secret to show once (none for public and
/// `private_key_jwt` clients).
pub fn validate(
    metadata: &ClientMetadata,
) -> Result<(ClientRecord, Option<SecretShown>), ClientError> {
    if metadata.client_id.len() > MAX_CLIENT_ID_BYTES
        || metadata.client_id.contains([' ', ':'])
        || ClientId::parse(&metadata.client_id).is_err()
    {
        return Err(ClientError::new(
            Field::ClientId,
            format!(
                "the client id must be 1 to {MAX_CLIENT_ID_BYTES} bytes without spaces, colons or control characters"
            ),
        ));
    }
    let grant_types = metadata
        .grant_types
        .iter()
        .map(|grant| {
            grant.parse::<GrantType>().map_err(|_| {
                ClientError::new(Field::GrantTypes, format!("unknown grant type {grant:?}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // `--token-exchange` and the token-exchange grant type are one right, stored as the grant type.
    let mut grant_types = grant_types;
    if metadata.token_exchange && !grant_types.contains(&GrantType::TokenExchange) {
        grant_types.push(GrantType::TokenExchange);
    }
    grant_types.dedup();
    let exchanges = grant_types.contains(&GrantType::TokenExchange);
    if exchanges && metadata.public {
        return Err(ClientError::new(
            Field::TokenExchange,
            "a public client cannot exchange tokens: it cannot prove who is acting (RFC 8693 §2.1)",
        ));
    }
    if exchanges && metadata.exchange_audiences.is_empty() {
        return Err(ClientError::new(
            Field::ExchangeAudiences,
            "token exchange needs at least one audience to exchange for",
        ));
    }
    if !exchanges && !metadata.exchange_audiences.is_empty() {
        return Err(ClientError::new(
            Field::ExchangeAudiences,
            "exchange audiences are for a token-exchange client",
        ));
    }
    if metadata
        .exchange_audiences
        .iter()
        .any(|audience| audience.is_empty() || audience.contains(' '))
    {
        return Err(ClientError::new(
            Field::ExchangeAudiences,
            "exchange audiences must be non-empty without spaces",
        ));
    }
    let backchannel_logout_uri = metadata
        .backchannel_logout_uri
        .as_deref()
        .map(|uri| {
            backchannel_logout_uri(uri)
                .map_err(|why| ClientError::new(Field::BackchannelLogoutUri, why))
        })
        .transpose()?;
    if grant_types.is_empty() && !metadata.introspection {
        return Err(ClientError::new(
            Field::GrantTypes,
            "a client needs at least one grant type, or introspection (a resource server's client)",
        ));
    }
    if metadata.public && metadata.introspection {
        return Err(ClientError::new(
            Field::Introspection,
            "a public client cannot introspect: it cannot prove who it is (RFC 7662 §2.1)",
        ));
    }
    if metadata.public && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(ClientError::new(
            Field::GrantTypes,
            "a public client cannot use client_credentials (RFC 6749 §4.4)",
        ));
    }
    if metadata.public && metadata.secret.is_some() {
        return Err(ClientError::new(
            Field::Secret,
            "a public client has no secret",
        ));
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && metadata.redirect_uris.is_empty() {
        return Err(ClientError::new(
            Field::RedirectUris,
            "authorization_code needs at least one redirect URI",
        ));
    }
    let redirect_uris = metadata
        .redirect_uris
        .iter()
        .map(|uri| {
            normalize_redirect_uri(uri).map_err(|why| ClientError::new(Field::RedirectUris, why))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // RP-Initiated Logout 1.0 §3: compared as exact strings, stored as URL parsing serializes them.
    let post_logout_redirect_uris = metadata
        .post_logout_redirect_uris
        .iter()
        .map(|uri| {
            normalize_redirect_uri(uri)
                .map_err(|why| ClientError::new(Field::PostLogoutRedirectUris, why))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let scope = ScopeSet::parse(&metadata.scope)
        .map_err(|error| ClientError::new(Field::Scope, error.to_string()))?;
    if metadata.name.as_ref().is_some_and(|name| {
        name.trim().is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control)
    }) {
        return Err(ClientError::new(
            Field::Name,
            format!(
                "the name must be 1 to {MAX_NAME_BYTES} bytes of text without control characters"
            ),
        ));
    }
    if metadata
        .audiences
        .iter()
        .any(|audience| audience.is_empty() || audience.contains(' '))
    {
        return Err(ClientError::new(
            Field::Audiences,
            "audiences must be non-empty without spaces",
        ));
    }
    if metadata.jwks.is_some() && metadata.jwks_uri.is_some() {
        return Err(ClientError::new(
            Field::Jwks,
            "a client has a JWK set or a jwks_uri, not both",
        ));
    }
    // Stored in one form (compact JSON, members sorted), whatever the spacing of the file it came from: the
    // same keys are the same registration, whichever way they were written.
    let jwks = match &metadata.jwks {
        Some(document) => {
            let keys = parse_jwks(document.as_bytes())
                .map_err(|error| ClientError::new(Field::Jwks, error.to_string()))?;
            if keys.is_empty() {
                return Err(ClientError::new(
                    Field::Jwks,
                    "no usable public signing key (EC P-256, OKP Ed25519 or RSA ≥ 2048 bits)",
                ));
            }
            let canonical = serde_json::from_str::<serde_json::Value>(document)
                .map_err(|error| ClientError::new(Field::Jwks, error.to_string()))?;
            Some(canonical.to_string())
        }
        None => None,
    };
    if let Some(uri) = &metadata.jwks_uri {
        let parsed = url::Url::parse(uri)
            .map_err(|error| ClientError::new(Field::JwksUri, error.to_string()))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(ClientError::new(
                Field::JwksUri,
                "the jwks_uri must be an http(s) URL",
            ));
        }
    }
    let private_key_jwt = metadata.jwks.is_some() || metadata.jwks_uri.is_some();
    if private_key_jwt && metadata.public {
        return Err(ClientError::new(
            Field::Public,
            "a private_key_jwt client is not public: it proves itself with its key",
        ));
    }
    if private_key_jwt && metadata.secret.is_some() {
        // RFC 7523 §2.2: the client proves itself with its key; a secret would be a second, weaker way.
        return Err(ClientError::new(
            Field::Secret,
            "a private_key_jwt client has no secret",
        ));
    }
    let secret = match (&metadata.secret, metadata.public || private_key_jwt) {
        (_, true) => None,
        // A secret is the client's only proof, and nothing throttles guesses at it: it must be long.
        (Some(secret), false) if secret.chars().count() < MIN_GIVEN_SECRET_CHARS => {
            return Err(ClientError::new(
                Field::Secret,
                format!(
                    "a client secret must be at least {MIN_GIVEN_SECRET_CHARS} characters (a generated one is 256 bits)"
                ),
            ));
        }
        (Some(secret), false) => Some(secret.clone()),
        (None, false) => Some(OpaqueToken::generate().into_string()),
    };
    let id_token_signed_response_alg = metadata
        .id_token_signed_response_alg
        .as_deref()
        .map(|alg| {
            alg.parse::<auth_core::keys::SigningAlgorithm>()
                .map_err(|_| {
                    ClientError::new(
                        Field::IdTokenSignedResponseAlg,
                        "the ID token algorithm must be RS256, PS256, ES256 or EdDSA",
                    )
                })
        })
        .transpose()?;
    let record = ClientRecord {
        client_id: ClientId::from_trusted(metadata.client_id.clone()),
        secret_digest: secret.as_deref().map(SecretDigest::of),
        is_public: metadata.public,
        grant_types,
        redirect_uris,
        scope,
        audiences: metadata.audiences.clone(),
        skip_consent: metadata.skip_consent,
        introspection: metadata.introspection,
        post_logout_redirect_uris,
        require_dpop: metadata.require_dpop,
        jwks,
        jwks_uri: metadata.jwks_uri.clone(),
        require_par: metadata.require_par,
        name: metadata.name.clone(),
        id_token_signed_response_alg,
        registered: crate::store::Registered::Operator,
        exchange_audiences: metadata.exchange_audiences.clone(),
        backchannel_logout_uri,
    };
    Ok((record, secret.map(SecretShown)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::keys::{SigningAlgorithm, SigningKey};

    fn metadata(grants: &[&str], uris: &[&str], public: bool) -> ClientMetadata {
        ClientMetadata {
            client_id: "app".into(),
            public,
            grant_types: grants.iter().map(|g| g.to_string()).collect(),
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            scope: "read write".into(),
            ..ClientMetadata::default()
        }
    }

    #[test]
    fn a_jwks_with_private_members_is_refused_and_a_public_one_makes_no_secret() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let public = serde_json::json!({ "keys": [key.public_jwk()] });
        let mut private = public.clone();
        private["keys"][0]["d"] = serde_json::json!("AAAA");
        let mut client = metadata(&["client_credentials"], &[], false);
        client.jwks = Some(private.to_string());
        let refused = validate(&client).unwrap_err();
        assert_eq!(refused.field, Field::Jwks);
        assert!(refused.reason.contains("private members"), "{refused}");
        client.jwks = Some(public.to_string());
        let (record, secret) = validate(&client).unwrap();
        assert!(secret.is_none() && record.secret_digest.is_none());
        assert!(record.uses_private_key_jwt() && !record.is_public);
        client.secret = Some("x".repeat(40));
        assert_eq!(validate(&client).unwrap_err().field, Field::Secret);
    }

    #[test]
    fn redirect_uris_are_stored_as_url_parsing_serializes_them_and_errors_name_them() {
        assert_eq!(normalize_redirect_uri("http://h:9").unwrap(), "http://h:9/");
        assert_eq!(
            normalize_redirect_uri("HTTP://Example.COM/cb?x=1").unwrap(),
            "http://example.com/cb?x=1"
        );
        assert!(normalize_redirect_uri("http://h/cb#frag").is_err());
        assert!(normalize_redirect_uri("/relative").is_err());
        assert!(normalize_redirect_uri("mailto:a@b").is_err());
        for scheme in [
            "javascript://x/%0aalert(1)",
            "data://x/text",
            "file:///etc/passwd",
            "blob://x/y",
            "vbscript://x/y",
        ] {
            assert!(normalize_redirect_uri(scheme).is_err(), "{scheme}");
        }
        assert!(normalize_redirect_uri("com.example.app:/oauth2redirect").is_ok());
        let refused =
            validate(&metadata(&["authorization_code"], &["http://h/cb#f"], true)).unwrap_err();
        assert!(refused.is_redirect_uri(), "{refused:?}");
        let logout = ClientMetadata {
            post_logout_redirect_uris: vec!["http://h/#f".into()],
            ..metadata(&["authorization_code"], &["http://h/cb"], true)
        };
        let refused = validate(&logout).unwrap_err();
        assert_eq!(refused.field, Field::PostLogoutRedirectUris);
        assert!(!refused.is_redirect_uri());
    }

    #[test]
    fn introspection_is_for_confidential_clients_and_needs_no_grant() {
        let resource_server = ClientMetadata {
            introspection: true,
            ..metadata(&[], &[], false)
        };
        let (record, secret) = validate(&resource_server).unwrap();
        assert!(record.introspection && record.grant_types.is_empty());
        assert!(secret.is_some());
        let nothing = validate(&metadata(&[], &[], false)).unwrap_err();
        assert!(nothing.reason.contains("introspection"), "{nothing}");
        let public = ClientMetadata {
            introspection: true,
            ..metadata(&["authorization_code"], &["http://h/cb"], true)
        };
        assert_eq!(validate(&public).unwrap_err().field, Field::Introspection);
        let (ordinary, _) = validate(&metadata(&["client_credentials"], &[], false)).unwrap();
        assert!(!ordinary.introspection, "not by default");
    }

    #[test]
    fn a_jwk_set_is_stored_in_one_form_however_it_was_written_and_debug_hides_the_secret() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let set = serde_json::json!({ "keys": [key.public_jwk()] });
        let mut client = metadata(&["client_credentials"], &[], false);
        client.jwks = Some(serde_json::to_string_pretty(&set).unwrap() + "\n");
        let (pretty, _) = validate(&client).unwrap();
        client.jwks = Some(set.to_string());
        let (compact, _) = validate(&client).unwrap();
        assert_eq!(pretty.jwks, compact.jwks);
        client.jwks = None;
        client.secret = Some("a-secret-nobody-should-see-in-a-log".into());
        assert!(!format!("{client:?}").contains("nobody"));
    }

    #[test]
    fn generated_secrets_are_256_bits_and_stored_as_digests() {
        let (record, secret) = validate(&metadata(&["client_credentials"], &[], false)).unwrap();
        let secret = secret.unwrap();
        assert_eq!(secret.0.len(), 43);
        assert!(record.secret_digest.unwrap().matches(&secret.0));
    }

    #[test]
    fn a_given_secret_must_be_at_least_32_characters() {
        let mut machine = metadata(&["client_credentials"], &[], false);
        machine.secret = Some("x".repeat(31));
        let short = validate(&machine).unwrap_err();
        assert!(short.reason.contains("at least 32") && short.field == Field::Secret);
        machine.secret = Some("é".repeat(32));
        let (record, secret) = validate(&machine).unwrap();
        assert!(record.secret_digest.unwrap().matches(&secret.unwrap().0));
    }

    #[test]
    fn ids_that_could_not_be_looked_up_are_refused() {
        for id in ["", "a b", "a:b", "nul\0", &"x".repeat(256)] {
            let mut spec = metadata(&["client_credentials"], &[], false);
            spec.client_id = id.into();
            assert_eq!(
                validate(&spec).unwrap_err().field,
                Field::ClientId,
                "{id:?}"
            );
        }
    }

    #[test]
    fn inconsistent_clients_are_refused() {
        assert_eq!(
            validate(&metadata(&["client_credentials"], &[], true))
                .unwrap_err()
                .field,
            Field::GrantTypes,
            "public + client_credentials"
        );
        assert!(
            validate(&metadata(&["authorization_code"], &[], false))
                .unwrap_err()
                .is_redirect_uri(),
            "code without redirect URI"
        );
        let (public, secret) =
            validate(&metadata(&["authorization_code"], &["http://a/cb"], true)).unwrap();
        assert!(public.secret_digest.is_none() && secret.is_none());
    }
}
