//! OpenID Connect on top of the OAuth grants: the ID token of an `openid` grant (Core §2, §3.1.3.3, §12.2)
//! and the UserInfo answer (Core §5.3). The handlers in `http::userinfo` only map these to HTTP.

use auth_core::id_token::{IdTokenClaims, at_hash, issue_id_token};
use auth_core::keys::SigningKey;
use auth_core::scope::ScopeSet;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::tokens::{OwnAccessToken, read_own_access_token};

/// The scope of an OpenID Connect request.
pub const OPENID: &str = "openid";
/// UserInfo `name` and `preferred_username` (Core §5.4).
pub const PROFILE: &str = "profile";
/// UserInfo `email` and `email_verified` (Core §5.4).
pub const EMAIL: &str = "email";
/// The scopes OpenID Connect defines and this server supports: granted only to clients registered with
/// them, never to `client_credentials` (they describe a user).
pub const USER_SCOPES: [&str; 3] = [OPENID, PROFILE, EMAIL];

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
pub struct IdTokenGrant<'a> {
    /// The user: the same `sub` as the access token's.
    pub subject: &'a str,
    /// The client: the ID token's audience.
    pub client_id: &'a str,
    pub auth_time: i64,
    /// The authorization request's nonce (never on a refresh).
    pub nonce: Option<&'a str>,
    /// The login session the grant came from.
    pub sid: Option<&'a str>,
    /// The access token issued with it, for `at_hash`.
    pub access_token: &'a str,
}

/// Signs an ID token with `signer` (the same key as the access token beside it). It lives as long as an
/// access token.
pub fn mint_id_token(
    state: &AppState,
    signer: &SigningKey,
    grant: IdTokenGrant<'_>,
) -> Result<String> {
    let now = state.clock.now();
    let claims = IdTokenClaims {
        iss: state.settings.issuer.clone(),
        sub: grant.subject.to_owned(),
        aud: grant.client_id.to_owned(),
        exp: now + state.settings.access_token_ttl,
        iat: now,
        auth_time: Some(grant.auth_time),
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

/// Why UserInfo refuses (RFC 6750 §3.1).
#[derive(Debug)]
pub enum UserInfoRefusal {
    /// Not an unexpired, unrevoked access token of this issuer, or its user is gone: 401 `invalid_token`.
    InvalidToken,
    /// The token lacks scope `openid`: 403 `insufficient_scope`.
    InsufficientScope,
    /// The DPoP proof of a bound token is missing, invalid or replayed (`invalid_dpop_proof`), or lacks the
    /// nonce (`Error::UseDpopNonce`): 401 with a DPoP challenge (RFC 9449 §7.1).
    Proof(Error),
    /// The store failed.
    Failed(Error),
}

/// How the access token came (RFC 6750 §2, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy)]
pub enum Presentation<'a> {
    /// As a bearer token.
    Bearer,
    /// With the DPoP scheme and this proof (`None`: no `DPoP` header), for this method.
    Dpop {
        proof: Option<&'a str>,
        method: &'a str,
    },
}

impl From<Error> for UserInfoRefusal {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

/// The claims about the user of `token`: any access token of this issuer carrying `openid`, whatever its
/// audience (Core §5.3), unexpired and unrevoked (the same rules as introspection).
pub async fn userinfo(
    state: &AppState,
    token: &str,
    presentation: Presentation<'_>,
) -> std::result::Result<UserInfo, UserInfoRefusal> {
    let Some(OwnAccessToken { claims, active }) = read_own_access_token(state, token).await? else {
        return Err(UserInfoRefusal::InvalidToken);
    };
    if !active || claims.auth_time.is_none() {
        // Revoked, or a client's own token (client_credentials has no user).
        return Err(UserInfoRefusal::InvalidToken);
    }
    match (presentation, &claims.cnf) {
        (Presentation::Bearer, None) => {}
        // RFC 9449 §7.2: a bound token is never a bearer token; an unbound one is not presented as DPoP.
        (Presentation::Bearer, Some(_)) | (Presentation::Dpop { .. }, None) => {
            return Err(UserInfoRefusal::InvalidToken);
        }
        (Presentation::Dpop { proof, method }, Some(cnf)) => {
            let proof = proof.ok_or_else(|| {
                UserInfoRefusal::Proof(crate::dpop::invalid_proof(
                    "the DPoP scheme needs a DPoP proof header",
                ))
            })?;
            let verified = crate::dpop::check_proof(state, proof, method, "/userinfo", Some(token))
                .await
                .map_err(|error| match error {
                    Error::Store(_) => UserInfoRefusal::Failed(error),
                    other => UserInfoRefusal::Proof(other),
                })?;
            if verified.jkt != cnf.jkt {
                return Err(UserInfoRefusal::Proof(crate::dpop::invalid_proof(
                    "the proof is not by the key the token is bound to",
                )));
            }
        }
    }
    if !is_openid(&claims.scope) {
        return Err(UserInfoRefusal::InsufficientScope);
    }
    let user = state
        .store
        .find_user(&claims.sub)
        .await
        .map_err(Error::from)?
        .ok_or(UserInfoRefusal::InvalidToken)?;
    let profile = claims.scope.contains(PROFILE);
    let email = claims.scope.contains(EMAIL);
    Ok(UserInfo {
        sub: user.user_id,
        name: if profile { user.name } else { None },
        preferred_username: profile.then_some(user.username),
        email: if email { user.email.clone() } else { None },
        email_verified: (email && user.email.is_some()).then_some(user.email_verified),
    })
}
