//! The one way tokens are issued. Every grant builds an [`IssueRequest`] (who the token is about, for which
//! client, scope, audience and family, bound to which key, and whether an ID token and a refresh token are
//! due) and [`Issuer::issue`] turns it into the RFC 6749 §5.1 answer: the RFC 9068 access token, the OpenID
//! Connect ID token, the refresh token the grant stored, the token type, counted per grant. To add a claim
//! to access tokens, start here.

use std::sync::Arc;

use auth_core::id::{FamilyId, Jkt, UnixTime, UserId};
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::scope::ScopeSet;
use auth_core::secret::OpaqueToken;
use auth_core::token::{self, AccessTokenClaims, Actor, Audience, Confirmation};
use auth_core::wire::{ACCESS_TOKEN_TYPE_URN, GrantType, TokenResponse, TokenType};

use super::openid;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::ClientRecord;

/// Who a token is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A user, who signed in at `auth_time`.
    User {
        user_id: UserId,
        auth_time: UnixTime,
    },
    /// The client itself (client_credentials).
    Client,
    /// The subject of a token exchanged for this one (RFC 8693): a user, or the client a
    /// client_credentials token was issued to, with the user's `auth_time` if any.
    Delegated {
        sub: String,
        auth_time: Option<UnixTime>,
    },
}

/// An ID token is due with the access token (OpenID Connect Core §3.1.3.3, §12.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdTokenDue {
    /// The authorization request's `nonce` (never on a refresh).
    pub nonce: Option<String>,
    /// The login session the grant came from (`sid`).
    pub sid: Option<String>,
}

/// What a grant issues.
#[derive(Debug)]
pub struct IssueRequest<'a> {
    /// The grant, for the metrics.
    pub grant: GrantType,
    /// The client the tokens are issued to.
    pub client: &'a ClientRecord,
    pub subject: Subject,
    pub scope: ScopeSet,
    /// The resource server(s) the access token is for.
    pub audience: Audience,
    /// The family the tokens descend from (user grants): revoking it revokes them.
    pub family: Option<FamilyId>,
    /// The thumbprint of the client's DPoP key, for a sender-constrained token (RFC 9449 §6).
    pub cnf: Option<Jkt>,
    /// An ID token is due (an `openid` grant of a user).
    pub id_token: Option<IdTokenDue>,
    /// The refresh token the grant stored, to hand out once.
    pub refresh_token: Option<OpaqueToken>,
    /// Who acts for the subject (RFC 8693 §4.1), on an exchanged token.
    pub act: Option<Actor>,
    /// When the access token expires, if sooner than the configured lifetime (an exchanged token never
    /// outlives its subject token, RFC 8693 §2.1).
    pub expires_at: Option<i64>,
}

/// The keys that sign this request's tokens, taken before a grant changes anything: a replica that cannot
/// sign (no key active yet) refuses before a code or refresh token is used up.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The access token's: `--signing-alg`.
    signer: Arc<SigningKey>,
    /// The ID token's: the algorithm `client` registered, RS256 by default (OpenID Connect Registration
    /// §2); `None` when no key of it signs (then no ID token can be issued).
    id_signer: Option<Arc<SigningKey>>,
}

impl Issuer {
    /// The keys that sign now, for `client`'s tokens.
    pub fn ready(state: &AppState, client: &ClientRecord) -> Result<Self> {
        let snapshot = state.keys.snapshot();
        let signer = snapshot
            .signer(state.keys.access_alg())
            .cloned()
            .ok_or(Error::NoSigningKey)?;
        let id_alg = client
            .id_token_signed_response_alg
            .unwrap_or(SigningAlgorithm::Rs256);
        Ok(Self {
            signer,
            id_signer: snapshot.signer(id_alg).cloned(),
        })
    }

    /// Signs the access token (and the ID token when due) and answers RFC 6749 §5.1. Writes nothing
    /// anywhere: revocation is decided by the token's family (`fam`) or `jti`, looked up when it is
    /// introspected.
    pub fn issue(&self, state: &AppState, request: IssueRequest<'_>) -> Result<TokenResponse> {
        let now = state.clock.now();
        let (sub, auth_time) = match &request.subject {
            Subject::User { user_id, auth_time } => (user_id.as_str(), Some(*auth_time)),
            Subject::Client => (request.client.client_id.as_str(), None),
            Subject::Delegated { sub, auth_time } => (sub.as_str(), *auth_time),
        };
        let lifetime_end = now + state.settings.access_token_ttl;
        let exp = request
            .expires_at
            .map_or(lifetime_end, |cap| cap.min(lifetime_end));
        let claims = AccessTokenClaims {
            iss: state.settings.issuer.clone(),
            sub: sub.to_owned(),
            aud: request.audience,
            client_id: request.client.client_id.as_str().to_owned(),
            scope: request.scope.clone(),
            iat: now,
            exp,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            auth_time: auth_time.map(UnixTime::seconds),
            fam: request.family.map(FamilyId::into_string),
            cnf: request.cnf.clone().map(|jkt| Confirmation { jkt }),
            act: request.act,
            may_act: None,
        };
        let access_token = token::issue(&claims, &self.signer).map_err(|_| Error::Signing)?;
        let id_token = match (request.id_token, auth_time) {
            (Some(due), Some(auth_time)) => Some(openid::mint_id_token(
                state,
                self.id_signer.as_ref().ok_or(Error::NoSigningKey)?,
                &openid::IdTokenGrant {
                    subject: sub,
                    client_id: request.client.client_id.as_str(),
                    auth_time,
                    nonce: due.nonce.as_deref(),
                    sid: due.sid.as_deref(),
                    access_token: &access_token,
                },
            )?),
            _ => None,
        };
        state.metrics.increment(
            "auth_tokens_issued_total",
            &[("grant", request.grant.as_str())],
        );
        Ok(TokenResponse {
            access_token,
            // RFC 9449 §5: a DPoP-bound token is of type DPoP.
            token_type: if request.cnf.is_some() {
                TokenType::Dpop
            } else {
                TokenType::Bearer
            },
            expires_in: u64::try_from(exp - now).unwrap_or(0),
            scope: (!request.scope.is_empty()).then(|| request.scope.to_string()),
            refresh_token: request.refresh_token.map(OpaqueToken::into_string),
            id_token,
            // RFC 8693 §2.2.1.
            issued_token_type: (request.grant == GrantType::TokenExchange)
                .then(|| ACCESS_TOKEN_TYPE_URN.to_owned()),
        })
    }
}
