//! RFC 8693 token exchange, for delegation: a service that received a user's access token asks for one to
//! call another service on the user's behalf. The new token keeps the subject (`sub`), its family (revoking
//! the user's grant kills exchanged tokens too) and at most its scope and lifetime; it names the caller in
//! `act` (RFC 8693 §4.1), nesting whoever acted before. Only clients registered for the grant, only towards
//! their registered exchange audiences, only from access tokens this server issued that are still active.
//! Nothing is written (a DPoP-bound result spends its proof's `jti`, as every grant does).

use auth_core::id::{FamilyId, Jkt, UnixTime};
use auth_core::scope::ScopeSet;
use auth_core::token::{AccessTokenClaims, Actor, Audience};
use auth_core::wire::{ErrorCode, GrantType, TokenResponse};

use crate::error::{Result, oauth};
use crate::state::AppState;
use crate::store::ClientRecord;
use crate::tokens::access::{OwnAccessToken, read_own_access_token};
use crate::tokens::issue::{IssueRequest, Issuer, Subject};
use crate::tokens::rules::same_resource;

/// The most audiences one exchange may name.
pub const MAX_TARGETS: usize = 10;

/// The longest `act` chain an exchanged token may carry (the new actor included).
pub const MAX_ACTOR_DEPTH: usize = 5;

/// The parameters of a token-exchange request, their types already checked (RFC 8693 §2.1).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub subject_token: &'a str,
    pub actor_token: Option<&'a str>,
    pub scope: Option<&'a str>,
    /// Every `audience` and `resource` value, in order (1 to [`MAX_TARGETS`]).
    pub targets: Vec<&'a str>,
}

fn invalid_request(description: &str) -> crate::error::Error {
    oauth(ErrorCode::InvalidRequest, description)
}

/// An active access token of this server, or `invalid_request` (RFC 8693 §2.2.2) naming which one.
async fn active_token(state: &AppState, token: &str, which: &str) -> Result<AccessTokenClaims> {
    match read_own_access_token(state, token).await? {
        Some(OwnAccessToken {
            claims,
            active: true,
        }) => Ok(claims),
        _ => Err(invalid_request(&format!(
            "the {which} is not an active access token of this server"
        ))),
    }
}

/// The registered forms of the requested targets: each must be one of the client's exchange audiences.
fn resolve_targets(client: &ClientRecord, targets: &[&str]) -> Result<Audience> {
    if targets.len() > MAX_TARGETS {
        return Err(oauth(
            ErrorCode::InvalidTarget,
            format!("at most {MAX_TARGETS} audiences per exchange"),
        ));
    }
    let mut resolved: Vec<String> = Vec::with_capacity(targets.len());
    for target in targets {
        let registered = client
            .exchange_audiences
            .iter()
            .find(|audience| same_resource(audience, target))
            .ok_or_else(|| {
                oauth(
                    ErrorCode::InvalidTarget,
                    "the audience is not one this client may exchange for",
                )
            })?;
        if !resolved.contains(registered) {
            resolved.push(registered.clone());
        }
    }
    Ok(match <[String; 1]>::try_from(resolved) {
        Ok([one]) => Audience::One(one),
        Err(many) => Audience::Many(many),
    })
}

/// The `act` of the new token: the acting party (RFC 8693 §4.1), nesting the subject token's own `act`.
/// The subject token's `may_act` (§4.4), when it has one, must name the acting party.
pub fn actor_chain(subject: &AccessTokenClaims, acting: &str) -> Result<Actor> {
    if let Some(may_act) = &subject.may_act
        && may_act.sub != acting
    {
        return Err(invalid_request(
            "the subject token's may_act does not name the actor",
        ));
    }
    let actor = Actor {
        sub: acting.to_owned(),
        act: subject.act.clone().map(Box::new),
    };
    if actor.depth() > MAX_ACTOR_DEPTH {
        return Err(invalid_request(&format!(
            "the delegation chain would be more than {MAX_ACTOR_DEPTH} actors deep"
        )));
    }
    Ok(actor)
}

/// Issues an access token for `request.targets` acting for the subject token's subject.
pub async fn grant(
    state: &AppState,
    client: &ClientRecord,
    request: Request<'_>,
    jkt: Option<Jkt>,
) -> Result<TokenResponse> {
    // Requested scope is checked for form before any token is read.
    let asked = match request.scope {
        None => None,
        Some(text) => Some(
            ScopeSet::parse(text)
                .map_err(|error| oauth(ErrorCode::InvalidScope, error.to_string()))?,
        ),
    };
    let audience = resolve_targets(client, &request.targets)?;
    let issuer = Issuer::ready(state, client)?;
    // A DPoP-bound subject token is accepted without its key: the exchanging client is the party it was
    // presented to, and it authenticated here. The new token is bound only to the exchanger's own proof.
    let subject = active_token(state, request.subject_token, "subject_token").await?;
    // The actor token is the acting party's own credential: one issued to the caller (RFC 8693 §2.1), so
    // a caller cannot write someone else into `act`.
    let acting = match request.actor_token {
        Some(token) => {
            let actor = active_token(state, token, "actor_token").await?;
            if actor.client_id != client.client_id.as_str() {
                return Err(invalid_request(
                    "the actor_token was not issued to this client",
                ));
            }
            actor.sub
        }
        None => client.client_id.as_str().to_owned(),
    };
    let act = actor_chain(&subject, &acting)?;
    // Never wider than the subject token (RFC 8693 §5: the exchange must not escalate).
    let scope = match asked {
        Some(asked) if !asked.is_subset_of(&subject.scope) => {
            return Err(oauth(
                ErrorCode::InvalidScope,
                "the scope is wider than the subject token's",
            ));
        }
        Some(asked) => asked,
        None => subject.scope.clone(),
    };
    let subject_of = Subject::Delegated {
        sub: subject.sub.clone(),
        auth_time: subject.auth_time.map(UnixTime),
    };
    issuer.issue(
        state,
        IssueRequest {
            grant: GrantType::TokenExchange,
            client,
            subject: subject_of,
            scope,
            audience,
            family: subject.fam.clone().map(FamilyId::from_trusted),
            cnf: jkt,
            id_token: None,
            refresh_token: None,
            act: Some(act),
            expires_at: Some(subject.exp),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(act: Option<Actor>, may_act: Option<Actor>) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "alice".into(),
            aud: Audience::One("https://api.example".into()),
            client_id: "front".into(),
            scope: ScopeSet::parse("read").unwrap(),
            iat: 0,
            exp: 60,
            nbf: None,
            jti: "j".into(),
            auth_time: Some(0),
            fam: Some("f".into()),
            cnf: None,
            act,
            may_act,
        }
    }

    fn actor(sub: &str, act: Option<Actor>) -> Actor {
        Actor {
            sub: sub.into(),
            act: act.map(Box::new),
        }
    }

    #[test]
    fn the_new_actor_nests_the_earlier_ones_up_to_five_deep() {
        let once = actor_chain(&subject(None, None), "svc-a").unwrap();
        assert_eq!(once, actor("svc-a", None));
        let twice = actor_chain(&subject(Some(once.clone()), None), "svc-b").unwrap();
        assert_eq!(twice, actor("svc-b", Some(once)));
        let mut chain = twice;
        for n in 3..=5 {
            chain = actor_chain(&subject(Some(chain), None), &format!("svc-{n}")).unwrap();
        }
        assert_eq!(chain.depth(), 5);
        let error = actor_chain(&subject(Some(chain), None), "svc-6").unwrap_err();
        assert!(format!("{error:?}").contains("5 actors"), "{error:?}");
    }

    #[test]
    fn may_act_must_name_the_actor() {
        let allowed = subject(None, Some(actor("svc-a", None)));
        assert!(actor_chain(&allowed, "svc-a").is_ok());
        assert!(actor_chain(&allowed, "svc-b").is_err());
    }

    #[test]
    fn targets_must_be_exchange_audiences_and_are_deduplicated() {
        let mut client = crate::tokens::rules::tests::client(&[]);
        client.exchange_audiences = vec!["https://a.example/".into(), "https://b.example".into()];
        assert_eq!(
            resolve_targets(&client, &["https://a.example"]).unwrap(),
            Audience::One("https://a.example/".into())
        );
        assert_eq!(
            resolve_targets(
                &client,
                &[
                    "https://b.example",
                    "https://a.example/",
                    "https://b.example"
                ]
            )
            .unwrap(),
            Audience::Many(vec![
                "https://b.example".into(),
                "https://a.example/".into()
            ])
        );
        assert!(resolve_targets(&client, &["https://c.example"]).is_err());
        assert!(resolve_targets(&client, &["https://a.example/"; 11]).is_err());
    }
}
