//! The OpenID Connect claims, each built in one place: the ID token of an `openid` grant (Core §2,
//! §3.1.3.3, §12.2) and the standard claims about a user that UserInfo answers (Core §5.1, §5.4). With an
//! access token beside it, an ID token carries no profile claims: those belong to UserInfo (Core §5.4).

use auth_core::id::UnixTime;
use auth_core::id_token::{IdTokenClaims, at_hash, issue_id_token};
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::scope::ScopeSet;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::UserRecord;

/// The scope of an OpenID Connect request.
pub const OPENID: &str = "openid";
/// UserInfo `name` and `preferred_username` (Core §5.4).
pub const PROFILE: &str = "profile";
/// UserInfo `email` and `email_verified` (Core §5.4).
pub const EMAIL: &str = "email";
/// The scopes OpenID Connect defines and this server supports: granted only to clients registered with
/// them, never to `client_credentials` (they describe a user).
pub const USER_SCOPES: [&str; 3] = [OPENID, PROFILE, EMAIL];

/// The algorithms a client may have its ID tokens signed with, the default first (Discovery §3:
/// `id_token_signing_alg_values_supported` must include RS256).
pub const ID_TOKEN_ALGORITHMS: [SigningAlgorithm; 4] = [
    SigningAlgorithm::Rs256,
    SigningAlgorithm::Ps256,
    SigningAlgorithm::Es256,
    SigningAlgorithm::EdDsa,
];

/// The claims ID tokens and UserInfo may carry (Discovery `claims_supported`).
pub const CLAIMS_SUPPORTED: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
    "name",
    "preferred_username",
    "email",
    "email_verified",
    "client_id",
];

/// Does the scope make the grant an OpenID Connect one?
pub fn is_openid(scope: &ScopeSet) -> bool {
    scope.contains(OPENID)
}

/// What an ID token says.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdTokenGrant<'a> {
    /// The user: the same `sub` as the access token's.
    pub subject: &'a str,
    /// The client: the ID token's audience.
    pub client_id: &'a str,
    pub auth_time: UnixTime,
    /// The authorization request's nonce (never on a refresh).
    pub nonce: Option<&'a str>,
    /// The login session the grant came from.
    pub sid: Option<&'a str>,
    /// The access token issued with it, for `at_hash`.
    pub access_token: &'a str,
}

/// Signs an ID token with `signer`. It lives as long as an access token. To add an ID-token claim, add it
/// here (and to `auth_core::id_token::IdTokenClaims`).
pub(super) fn mint_id_token(
    state: &AppState,
    signer: &SigningKey,
    grant: &IdTokenGrant<'_>,
) -> Result<String> {
    let now = state.clock.now();
    let claims = IdTokenClaims {
        iss: state.settings.issuer.clone(),
        sub: grant.subject.to_owned(),
        aud: grant.client_id.to_owned(),
        exp: now + state.settings.access_token_ttl,
        iat: now,
        auth_time: Some(grant.auth_time.seconds()),
        nonce: grant.nonce.map(str::to_owned),
        at_hash: Some(at_hash(signer.alg(), grant.access_token)),
        sid: grant.sid.map(str::to_owned),
    };
    issue_id_token(&claims, signer).map_err(|_| Error::Signing)
}

/// A UserInfo answer (Core §5.3.2): `sub` always, the rest by scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl UserInfo {
    /// The standard claims about `user` that `scope` allows (Core §5.4): `sub` always; `name` and
    /// `preferred_username` with `profile`; `email` and `email_verified` with `email`. To add a UserInfo
    /// claim, add it here.
    pub fn of(user: UserRecord, scope: &ScopeSet) -> Self {
        let profile = scope.contains(PROFILE);
        let email = scope.contains(EMAIL);
        Self {
            sub: user.user_id.into_string(),
            name: if profile { user.name } else { None },
            preferred_username: profile.then_some(user.username),
            email_verified: (email && user.email.is_some()).then_some(user.email_verified),
            email: if email { user.email } else { None },
        }
    }
}
