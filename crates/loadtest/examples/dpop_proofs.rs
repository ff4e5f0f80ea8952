//! Prepared DPoP proofs for the wrk benchmarks, so the server pays one proof verification per request, as with
//! a real DPoP client, while the load generator signs nothing during the run. Each proof has its own `jti` and
//! is fresh for a minute (RFC 9449 §11.1 window).
//!
//! - `dpop_proofs resource TOKEN_URL CLIENT_ID SECRET RESOURCE_URL COUNT [KEYS]` (`scripts/bench-validation.sh`):
//!   makes KEYS ES256 keys (default 64, as many clients as a run has connections: a resource server shares its
//!   replay cache out per key, so one key for the whole run would measure that share, not the server), asks the
//!   token endpoint for a DPoP-bound token for each (client_credentials, client_secret_basic), then prints COUNT
//!   lines `TOKEN PROOF`, the proofs for `GET RESOURCE_URL` with their token (`ath`), taking the keys in turn.
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
    // Each key with its token (for a resource), or alone (for the token endpoint).
    let (keys, method, url, count): (Vec<(ProofSigner, Option<String>)>, _, _, _) = match args
        .as_slice()
    {
        [mode, token_url, count] if mode == "token" => (
            vec![(ProofSigner::generate()?, None)],
            "POST",
            token_url,
            count,
        ),
        [
            mode,
            token_url,
            client_id,
            secret,
            resource_url,
            count,
            rest @ ..,
        ] if mode == "resource" && rest.len() <= 1 => {
            let wanted: usize = match rest {
                [keys] => keys.parse().context("KEYS")?,
                _ => 64,
            };
            let mut keys = Vec::with_capacity(wanted);
            for _ in 0..wanted.max(1) {
                let signer = ProofSigner::generate()?;
                let token = bound_token(&signer, token_url, client_id, secret).await?;
                keys.push((signer, Some(token)));
            }
            (keys, "GET", resource_url, count)
        }
        _ => anyhow::bail!(
            "usage: dpop_proofs resource TOKEN_URL CLIENT_ID SECRET RESOURCE_URL COUNT [KEYS] | dpop_proofs token TOKEN_URL COUNT"
        ),
    };
    let count: usize = count.parse().context("COUNT")?;
    // Both cores sign: the proofs must be used within the minute they are made.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = count.div_ceil(threads);
    let lines: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let keys = &keys;
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|index| {
                            let (signer, token) = &keys[(thread * per_thread + index) % keys.len()];
                            let proof = signer.proof(method, url, token.as_deref());
                            match token {
                                Some(token) => format!("{token} {proof}"),
                                None => proof,
                            }
                        })
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
    for line in lines.iter().flatten().take(count) {
        writeln!(out, "{line}")?;
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
