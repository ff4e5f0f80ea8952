//! Wire types every crate shares: token responses (RFC 6749 §5.1), error bodies and codes (RFC 6749 §5.2,
//! RFC 6750 §3.1, RFC 8707 §2), introspection responses (RFC 7662 §2.2) and server metadata (RFC 8414 §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The device authorization grant's `grant_type` (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The token exchange grant's `grant_type` (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type URN of an access token (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE_URN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The grant types the server implements; on the wire as their `grant_type` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 §4.1.
    AuthorizationCode,
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 8628 §3.4: `urn:ietf:params:oauth:grant-type:device_code`.
    DeviceCode,
    /// RFC 8693 §2.1: `urn:ietf:params:oauth:grant-type:token-exchange`.
    TokenExchange,
}

impl GrantType {
    /// Every grant type.
    pub const ALL: [GrantType; 5] = [
        Self::AuthorizationCode,
        Self::ClientCredentials,
        Self::RefreshToken,
        Self::DeviceCode,
        Self::TokenExchange,
    ];

    /// The `grant_type` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::DeviceCode => DEVICE_CODE_GRANT,
            Self::TokenExchange => TOKEN_EXCHANGE_GRANT,
        }
    }
}

impl Serialize for GrantType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for GrantType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        value
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("unknown grant type {value:?}")))
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = ErrorCode;

    /// An unknown value is `unsupported_grant_type` (RFC 6749 §5.2).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "authorization_code" => Ok(Self::AuthorizationCode),
            "client_credentials" => Ok(Self::ClientCredentials),
            "refresh_token" => Ok(Self::RefreshToken),
            DEVICE_CODE_GRANT => Ok(Self::DeviceCode),
            TOKEN_EXCHANGE_GRANT => Ok(Self::TokenExchange),
            _ => Err(ErrorCode::UnsupportedGrantType),
        }
    }
}

/// OAuth error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// RFC 6749 §5.2.
    InvalidRequest,
    /// RFC 6749 §5.2 (HTTP 401).
    InvalidClient,
    /// RFC 6749 §5.2.
    InvalidGrant,
    /// RFC 6749 §5.2.
    UnauthorizedClient,
    /// RFC 6749 §5.2.
    UnsupportedGrantType,
    /// RFC 6749 §5.2.
    InvalidScope,
    /// RFC 8707 §2.
    InvalidTarget,
    /// RFC 6749 §4.1.2.1.
    AccessDenied,
    /// RFC 6749 §4.1.2.1.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1.
    ServerError,
    /// RFC 6749 §4.1.2.1.
    TemporarilyUnavailable,
    /// RFC 7009 §2.2.1.
    UnsupportedTokenType,
    /// RFC 6750 §3.1.
    InvalidToken,
    /// RFC 6750 §3.1.
    InsufficientScope,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` and the user must sign in.
    LoginRequired,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` and the user must consent.
    ConsentRequired,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` and the user must interact otherwise.
    InteractionRequired,
    /// OpenID Connect Core §3.1.2.6: the `request` parameter is not supported.
    RequestNotSupported,
    /// RFC 9126 §4, OpenID Connect Core §3.1.2.6: the `request_uri` is not one the server issued, or no longer.
    InvalidRequestUri,
    /// RFC 9449 §5.4, §7.1: the DPoP proof is missing, invalid or replayed.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the server's current nonce (given in the `DPoP-Nonce` header).
    UseDpopNonce,
    /// RFC 8628 §3.5: the user has not finished at the verification page yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: polling too often; the interval grew by 5 seconds.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
}

impl ErrorCode {
    /// The code as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error body of RFC 6749 §5.2: `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The code.
    pub error: ErrorCode,
    /// Human-readable detail for the client developer (never internal error text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl ErrorResponse {
    /// An error with a description.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: Some(description.into()),
        }
    }
}

/// How the access token is to be presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenType {
    /// RFC 6750.
    Bearer,
    /// RFC 9449 §5: bound to the key of the client's DPoP proofs.
    #[serde(rename = "DPoP")]
    Dpop,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The JWT access token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: TokenType,
    /// Lifetime in seconds, a JSON number.
    pub expires_in: u64,
    /// Granted scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A refresh token, when one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// An OpenID Connect ID token, for grants with scope `openid` (Core §3.1.3.3, §12.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The type of the token issued by a token exchange (RFC 8693 §2.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// An introspection response (RFC 7662 §2.2). Inactive tokens carry `active: false` and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    /// Whether the token is active.
    pub active: bool,
    /// Scope, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Resource owner name, for user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` for access tokens; `refresh_token` for refresh tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<crate::token::Audience>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// RFC 7800 confirmation: `{"jkt": …}` for a DPoP-bound token (RFC 9449 §6.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::token::Confirmation>,
    /// RFC 8693 §4.1: who acts for the subject, on an exchanged token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<crate::token::Actor>,
}

impl IntrospectionResponse {
    /// `{"active": false}`: for expired, revoked, malformed and unknown tokens alike (RFC 7662 §2.2).
    pub fn inactive() -> Self {
        Self::default()
    }
}

/// Authorization server metadata (RFC 8414 §2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// RFC 6749 authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// RFC 6749 token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// RFC 7517 JWK set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The scopes this server grants; always present, even when empty.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// `["code"]`.
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// Supported grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2: required once `private_key_jwt` is a method: the algorithms of client assertions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// RFC 7009 revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Client authentication methods at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2, for the revocation endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// RFC 7591 registration endpoint (absent when clients cannot register themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// draft-ietf-oauth-client-id-metadata-document: an https `client_id` names the client's metadata
    /// document (omitted when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_id_metadata_document_supported: bool,
    /// RFC 7662 introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Client authentication methods at the introspection endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2, for the introspection endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// RFC 7636: `["S256"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// OpenID Connect Core §5.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// OpenID Connect RP-Initiated Logout 1.0 §2.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    /// OpenID Connect Discovery §3: `["public"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_types_supported: Vec<String>,
    /// OpenID Connect Discovery §3: every algorithm an ID token may be signed with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// OpenID Connect Discovery §3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_supported: Vec<String>,
    /// OpenID Connect Discovery §3: `["query"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_modes_supported: Vec<String>,
    /// OpenID Connect Discovery §3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_parameter_supported: Option<bool>,
    /// OpenID Connect Discovery §3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri_parameter_supported: Option<bool>,
    /// RFC 8628 §4: the device authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens are sent to clients' back channels.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_supported: bool,
    /// OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens carry `sid`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_supported: bool,
    /// RFC 9126 §5: the PAR endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// RFC 9126 §5: whether every client must push (some clients may be required to, one by one).
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.1: the algorithms a DPoP proof may be signed with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_rfc_strings() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidTarget,
            ErrorCode::UnsupportedGrantType,
            ErrorCode::InsufficientScope,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let body = serde_json::to_value(ErrorResponse::new(
            ErrorCode::InvalidGrant,
            "code was already used",
        ))
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "error": "invalid_grant", "error_description": "code was already used" })
        );
    }

    #[test]
    fn token_response_has_numeric_expires_in_and_omits_absent_refresh_token() {
        let response = TokenResponse {
            access_token: "a.b.c".into(),
            token_type: TokenType::Bearer,
            expires_in: 900,
            scope: Some("read".into()),
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
        };
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["expires_in"], 900);
        assert!(json.get("refresh_token").is_none());
        assert!(json.get("id_token").is_none());
    }

    #[test]
    fn inactive_introspection_is_only_active_false() {
        assert_eq!(
            serde_json::to_value(IntrospectionResponse::inactive()).unwrap(),
            serde_json::json!({ "active": false })
        );
    }

    #[test]
    fn grant_types_parse_and_unknown_is_unsupported() {
        for grant in GrantType::ALL {
            assert_eq!(grant.as_str().parse::<GrantType>().unwrap(), grant);
        }
        assert_eq!(
            "password".parse::<GrantType>(),
            Err(ErrorCode::UnsupportedGrantType)
        );
    }
}
