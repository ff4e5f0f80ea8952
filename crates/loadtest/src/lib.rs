//! Goose load tests of an OAuth 2.0 authorization server and a bearer-protected API.
//!
//! The load tester talks HTTP like any client: it finds the endpoints in the server's RFC 8414 (or OpenID)
//! metadata, so it measures other servers as well as ours. Before the load starts, each part of the chosen
//! scenario runs once, unmeasured, so that a wrong URL or credential stops the run with one clear line.

pub mod dpop;
pub mod exchange;
pub mod flow;
pub mod oauth;
pub mod scenarios;
pub mod summary;
pub mod target;

use std::sync::Arc;

use anyhow::Context;
use goose::GooseAttack;
use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};

pub use scenarios::ScenarioKind;
pub use summary::Summary;
pub use target::{Target, TargetArgs};

/// Checks that `kind` can run against `target` (discovery, then the requests its preflight makes), with no
/// load: what `--check` does, so that a comparison finds a misconfigured server before either side runs.
pub async fn check(target: TargetArgs, kind: ScenarioKind) -> anyhow::Result<()> {
    let client = scenarios::http_client().build()?;
    let target = Target::discover(target, &client)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    scenarios::preflight(&target, kind, &client).await
}

/// Discovers the target, checks it, runs `kind` under `goose`'s settings and summarises the run.
pub async fn run(
    target: TargetArgs,
    kind: ScenarioKind,
    mut goose: GooseConfiguration,
) -> anyhow::Result<Summary> {
    let client = scenarios::http_client().build()?;
    let target = Target::discover(target, &client)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    scenarios::preflight(&target, kind, &client).await?;
    let target = Arc::new(target);
    // The telnet controller would listen on a fixed port (two runs at once would collide); a bounded run
    // does not need it. (The WebSocket controller is off unless asked for.)
    goose.no_telnet = true;
    let metrics = GooseAttack::initialize_with_config(goose)
        .context("configuring Goose")?
        .register_scenario(scenarios::scenario(kind, &target).context("building the scenario")?)
        .set_default(GooseDefault::Host, target.issuer.as_str())
        .context("setting the host")?
        .execute()
        .await
        .context("running the load")?;
    Ok(Summary::from_metrics(kind.name(), &metrics))
}
