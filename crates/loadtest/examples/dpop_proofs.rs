//! Prepared DPoP proofs for the wrk benchmarks, so the server pays one proof verification per request, as with
//! a real DPoP client, while the load generator signs nothing during the run. Each proof has its own `jti` and
//! is fresh for a minute (RFC 9449 §11.1 window). One ES256 key per invocation.
//!
//! - `dpop_proofs resource TOKEN_URL CLIENT_ID SECRET RESOURCE_URL COUNT` (`scripts/bench-validation.sh`): asks
//!   the token endpoint for one DPoP-bound token (client_credentials, client_secret_basic), then prints the token
//!   on the first line and COUNT proofs for `GET RESOURCE_URL` with that token (`ath`), one per line.
//! - `dpop_proofs token TOKEN_URL COUNT` (`scripts/bench-issuance.sh`): prints COUNT proofs for `POST TOKEN_URL`,
//!   one per line.
//!
//! Usage: `cargo run --release -p loadtest --example dpop_proofs -- resource|token …`

use std::io::Write;

use anyhow::Context;
use loadtest::dpop::ProofSigner;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let signer = std::sync::Arc::new(ProofSigner::generate()?);
    let (token, method, url, count) = match args.as_slice() {
        [mode, token_url, count] if mode == "token" => (None, "POST", token_url, count),
        [mode, token_url, client_id, secret, resource_url, count] if mode == "resource" => {
            let token = bound_token(&signer, token_url, client_id, secret).await?;
            (Some(token), "GET", resource_url, count)
        }
        _ => anyhow::bail!(
            "usage: dpop_proofs resource TOKEN_URL CLIENT_ID SECRET RESOURCE_URL COUNT | dpop_proofs token TOKEN_URL COUNT"
        ),
    };
    let count: usize = count.parse().context("COUNT")?;
    // Both cores sign: the proofs must be used within the minute they are made.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = count.div_ceil(threads);
    let proofs: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (signer, token) = (&signer, token.as_deref());
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|_| signer.proof(method, url, token))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_default())
            .collect()
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Some(token) = &token {
        writeln!(out, "{token}")?;
    }
    for proof in proofs.iter().flatten().take(count) {
        writeln!(out, "{proof}")?;
    }
    out.flush()?;
    Ok(())
}

/// A client_credentials token bound to `signer`'s key.
async fn bound_token(
    signer: &ProofSigner,
    token_url: &str,
    client_id: &str,
    secret: &str,
) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .post(token_url)
        .basic_auth(client_id, Some(secret))
        .header("DPoP", signer.proof("POST", token_url, None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    anyhow::ensure!(
        status.is_success() && body["token_type"] == "DPoP",
        "no DPoP token: {status} {body}"
    );
    Ok(body["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned())
}
