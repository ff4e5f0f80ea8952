//! The Goose scenarios (README, "Load testing"): `issue`, `validate`, `refresh`, `introspect`, `authcode`,
//! `openid`, `exchange` and `mixed`.

use std::sync::Arc;
use std::time::Duration;

use goose::prelude::*;

use crate::exchange::{Direct, FlowError, Measured};
use crate::oauth::{self, AccessToken, Flavor};
use crate::target::Target;

/// Which load to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// client_credentials at the token endpoint
    Issue,
    /// GET on the protected route with tokens taken when each user starts
    Validate,
    /// issue with a DPoP proof: the token is bound to the run's key (RFC 9449)
    IssueDpop,
    /// validate with DPoP-bound tokens: a new proof with every call
    ValidateDpop,
    /// refresh_token rotation chains (each user signs in once, then refreshes)
    Refresh,
    /// RFC 7662 introspection of a fresh token
    Introspect,
    /// the whole authorization code + PKCE flow, HTML login and consent included
    Authcode,
    /// authcode as an OpenID Connect sign-in: scope openid, a nonce, and each ID token validated like a
    /// relying party (signature by the JWKS, issuer, audience, expiry, nonce, at_hash)
    Openid,
    /// RFC 8693 token exchange of a client_credentials token, beside `issue` in the same run (one
    /// transaction each, equally weighted), so the two rates are measured together
    Exchange,
    /// all of the above, weighted like a real deployment: mostly validation
    Mixed,
}

impl ScenarioKind {
    pub const ALL: [Self; 10] = [
        Self::Issue,
        Self::Validate,
        Self::IssueDpop,
        Self::ValidateDpop,
        Self::Refresh,
        Self::Introspect,
        Self::Authcode,
        Self::Openid,
        Self::Exchange,
        Self::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Issue => "issue",
            Self::Validate => "validate",
            Self::IssueDpop => "issue-dpop",
            Self::ValidateDpop => "validate-dpop",
            Self::Refresh => "refresh",
            Self::Introspect => "introspect",
            Self::Authcode => "authcode",
            Self::Openid => "openid",
            Self::Exchange => "exchange",
            Self::Mixed => "mixed",
        }
    }

    fn uses_dpop(self) -> bool {
        matches!(self, Self::IssueDpop | Self::ValidateDpop)
    }

    fn uses_client_credentials(self) -> bool {
        matches!(
            self,
            Self::Issue | Self::Validate | Self::Introspect | Self::Exchange | Self::Mixed
        )
    }

    fn uses_api(self) -> bool {
        matches!(self, Self::Validate | Self::ValidateDpop | Self::Mixed)
    }

    fn uses_introspection(self) -> bool {
        matches!(self, Self::Introspect | Self::Mixed)
    }

    fn uses_login(self) -> bool {
        matches!(
            self,
            Self::Refresh | Self::Authcode | Self::Openid | Self::Mixed
        )
    }

    /// The flavour of the scenario's sign-ins.
    fn flavor(self) -> Flavor {
        match self {
            Self::Openid => Flavor::OpenId,
            _ => Flavor::OAuth,
        }
    }
}

/// Relative weights of the steps of `mixed`: resource servers validate far more often than anyone asks
/// for a token, and people sign in least often.
const MIXED_WEIGHTS: [(Step, usize); 5] = [
    (Step::Validate, 10),
    (Step::Issue, 4),
    (Step::Introspect, 2),
    (Step::Refresh, 2),
    (Step::Authcode, 1),
];

/// The HTTP client every user (and the pre-flight check) uses: redirects are answers to read, not to
/// follow (the code comes back in one), and cookies are kept per flow by hand.
pub fn http_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .user_agent(concat!(
            "auth-platform-loadtest/",
            env!("CARGO_PKG_VERSION")
        ))
}

/// Runs each part of `kind` once, outside the measurement, so that a wrong URL, client secret or password
/// stops the run with one clear message instead of a report full of errors.
pub async fn preflight(
    target: &Target,
    kind: ScenarioKind,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    let mut direct = Direct(client.clone());
    let args = &target.args;
    if kind.uses_dpop() {
        let tokens = oauth::client_credentials_dpop(&mut direct, target, &target.dpop)
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "client {:?} cannot get a DPoP-bound token from {} ({error})",
                    args.client_id,
                    target.token_endpoint
                )
            })?;
        if kind.uses_api() {
            oauth::call_api_dpop(&mut direct, target, &target.dpop, &tokens.access.token)
                .await
                .map_err(|error| {
                    anyhow::anyhow!("the API refuses a DPoP-bound token with its proof ({error})")
                })?;
        }
    }
    if kind.uses_client_credentials() {
        let tokens = oauth::client_credentials(&mut direct, target)
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "client {:?} cannot get a token from {} ({error}); check --client-id/--client-secret",
                    args.client_id,
                    target.token_endpoint
                )
            })?;
        if kind.uses_api() {
            oauth::call_api(&mut direct, target, &tokens.access.token)
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "the API refuses a fresh token ({error}); check --api and --protected-path"
                    )
                })?;
        }
        if kind == ScenarioKind::Exchange {
            oauth::token_exchange(&mut direct, target, &tokens.access.token)
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "client {:?} cannot exchange its token for {:?} ({error}); register it with \
                         `client create --token-exchange --exchange-audience {}`",
                        args.client_id,
                        args.exchange_audience,
                        args.exchange_audience
                    )
                })?;
        }
        if kind.uses_introspection() {
            oauth::introspect(&mut direct, target, &tokens.access.token)
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "client {:?} cannot introspect a fresh token ({error}); check \
                         --introspection-client-id/--introspection-secret (our server needs a client \
                         registered with `client create --introspection`)",
                        target.introspection_credentials().0
                    )
                })?;
        }
    }
    if kind.uses_login() {
        let tokens = oauth::authorization_code(&mut direct, target, kind.flavor())
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "the authorization code flow fails for client {:?} and user {:?} ({error}); check \
                     --public-client-id, --redirect-uri, --username and --password",
                    args.public_client_id,
                    args.username
                )
            })?;
        if matches!(kind, ScenarioKind::Refresh | ScenarioKind::Mixed) {
            let refresh_token = tokens.refresh_token.ok_or_else(|| {
                anyhow::anyhow!(
                    "client {:?} gets no refresh token from the authorization code grant",
                    args.public_client_id
                )
            })?;
            oauth::refresh(&mut direct, target, &refresh_token)
                .await
                .map_err(|error| anyhow::anyhow!("refreshing fails ({error})"))?;
        }
    }
    Ok(())
}

/// What each simulated user keeps between iterations.
#[derive(Debug, Clone, Default)]
struct Session {
    access: Option<AccessToken>,
    refresh_token: Option<String>,
    /// The user's own DPoP key: a resource server shares its replay cache out per key (1/64 of it), so a
    /// run with one key for every user would measure the share, not the server.
    signer: Option<Arc<crate::dpop::ProofSigner>>,
}

fn session(user: &GooseUser) -> Session {
    user.get_session_data::<Session>()
        .cloned()
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Start,
    StartWithToken,
    Issue,
    Validate,
    StartWithDpopToken,
    IssueDpop,
    ValidateDpop,
    Refresh,
    Introspect,
    Exchange,
    Authcode,
    AuthcodeOpenid,
}

impl Step {
    async fn run(self, user: &mut GooseUser, target: &Target) -> Result<(), FlowError> {
        match self {
            Self::Start => start(user).await,
            Self::StartWithToken => {
                start(user).await?;
                access_token(user, target).await.map(drop)
            }
            Self::Issue => oauth::client_credentials(&mut Measured(user), target)
                .await
                .map(drop),
            Self::StartWithDpopToken => {
                start(user).await?;
                dpop_token(user, target).await.map(drop)
            }
            Self::IssueDpop => {
                let signer = signer(user)?;
                oauth::client_credentials_dpop(&mut Measured(user), target, &signer)
                    .await
                    .map(drop)
            }
            Self::ValidateDpop => {
                let token = dpop_token(user, target).await?;
                let signer = signer(user)?;
                oauth::call_api_dpop(&mut Measured(user), target, &signer, &token).await
            }
            Self::Validate => {
                let token = access_token(user, target).await?;
                oauth::call_api(&mut Measured(user), target, &token).await
            }
            Self::Introspect => {
                let token = access_token(user, target).await?;
                oauth::introspect(&mut Measured(user), target, &token).await
            }
            Self::Exchange => {
                let token = access_token(user, target).await?;
                oauth::token_exchange(&mut Measured(user), target, &token)
                    .await
                    .map(drop)
            }
            Self::Refresh => refresh_chain(user, target).await,
            Self::Authcode => oauth::authorization_code(&mut Measured(user), target, Flavor::OAuth)
                .await
                .map(drop),
            Self::AuthcodeOpenid => {
                oauth::authorization_code(&mut Measured(user), target, Flavor::OpenId)
                    .await
                    .map(drop)
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::StartWithToken => "start with a token",
            Self::Issue => "issue",
            Self::Validate => "validate",
            Self::StartWithDpopToken => "start with a DPoP token",
            Self::IssueDpop => "issue (DPoP)",
            Self::ValidateDpop => "validate (DPoP)",
            Self::Refresh => "refresh",
            Self::Introspect => "introspect",
            Self::Exchange => "exchange",
            Self::Authcode => "authcode",
            Self::AuthcodeOpenid => "authcode (openid)",
        }
    }

    fn transaction(self, target: &Arc<Target>) -> Transaction {
        let target = Arc::clone(target);
        let function: TransactionFunction = Arc::new(move |user| {
            let target = Arc::clone(&target);
            Box::pin(async move { self.run(user, &target).await.map_err(Into::into) })
        });
        Transaction::new(function).set_name(self.name())
    }
}

async fn start(user: &mut GooseUser) -> Result<(), FlowError> {
    let builder = http_client();
    user.set_client_builder(builder)
        .await
        .map_err(|error| FlowError::Goose(error.to_string()))?;
    user.set_session_data(Session::default());
    Ok(())
}

/// The user's access token, taken anew when it is about to expire.
async fn access_token(user: &mut GooseUser, target: &Target) -> Result<String, FlowError> {
    let mut session = session(user);
    if let Some(access) = session.access.as_ref().filter(|access| access.is_fresh()) {
        return Ok(access.token.clone());
    }
    let tokens = oauth::client_credentials(&mut Measured(user), target).await?;
    let token = tokens.access.token.clone();
    session.access = Some(tokens.access);
    user.set_session_data(session);
    Ok(token)
}

/// The user's DPoP-bound access token, taken anew when it is about to expire.
/// The user's DPoP key, made at its first use.
fn signer(user: &mut GooseUser) -> Result<Arc<crate::dpop::ProofSigner>, FlowError> {
    let mut session = session(user);
    if let Some(signer) = &session.signer {
        return Ok(signer.clone());
    }
    let signer =
        Arc::new(
            crate::dpop::ProofSigner::generate().map_err(|error| FlowError::Invalid {
                step: "DPoP key".into(),
                reason: error.to_string(),
            })?,
        );
    session.signer = Some(signer.clone());
    user.set_session_data(session);
    Ok(signer)
}

async fn dpop_token(user: &mut GooseUser, target: &Target) -> Result<String, FlowError> {
    let signer = signer(user)?;
    let mut session = session(user);
    if let Some(access) = session.access.as_ref().filter(|access| access.is_fresh()) {
        return Ok(access.token.clone());
    }
    let tokens = oauth::client_credentials_dpop(&mut Measured(user), target, &signer).await?;
    let token = tokens.access.token.clone();
    session.access = Some(tokens.access);
    user.set_session_data(session);
    Ok(token)
}

/// One link of the user's refresh chain; the first link (or the first after a broken chain) signs in.
async fn refresh_chain(user: &mut GooseUser, target: &Target) -> Result<(), FlowError> {
    let mut session = session(user);
    let result = match session.refresh_token.take() {
        Some(refresh_token) => oauth::refresh(&mut Measured(user), target, &refresh_token).await,
        None => oauth::authorization_code(&mut Measured(user), target, Flavor::OAuth).await,
    };
    // On failure the chain starts again with a sign-in; a rotated-out token is never reused.
    session.refresh_token = result
        .as_ref()
        .ok()
        .and_then(|tokens| tokens.refresh_token.clone());
    user.set_session_data(session);
    result.map(drop)
}

/// The Goose scenario for `kind`.
pub fn scenario(kind: ScenarioKind, target: &Arc<Target>) -> Result<Scenario, GooseError> {
    let start = match kind {
        ScenarioKind::Validate
        | ScenarioKind::Introspect
        | ScenarioKind::Exchange
        | ScenarioKind::Mixed => Step::StartWithToken,
        ScenarioKind::ValidateDpop => Step::StartWithDpopToken,
        _ => Step::Start,
    };
    let mut scenario =
        Scenario::new(kind.name()).register_transaction(start.transaction(target).set_on_start());
    let steps: Vec<(Step, usize)> = match kind {
        ScenarioKind::Issue => vec![(Step::Issue, 1)],
        ScenarioKind::Validate => vec![(Step::Validate, 1)],
        ScenarioKind::IssueDpop => vec![(Step::IssueDpop, 1)],
        ScenarioKind::ValidateDpop => vec![(Step::ValidateDpop, 1)],
        ScenarioKind::Refresh => vec![(Step::Refresh, 1)],
        ScenarioKind::Introspect => vec![(Step::Introspect, 1)],
        ScenarioKind::Authcode => vec![(Step::Authcode, 1)],
        ScenarioKind::Openid => vec![(Step::AuthcodeOpenid, 1)],
        ScenarioKind::Exchange => vec![(Step::Issue, 1), (Step::Exchange, 1)],
        ScenarioKind::Mixed => MIXED_WEIGHTS.to_vec(),
    };
    for (step, weight) in steps {
        scenario = scenario.register_transaction(step.transaction(target).set_weight(weight)?);
    }
    Ok(scenario)
}
