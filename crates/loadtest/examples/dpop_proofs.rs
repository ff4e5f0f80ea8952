//! Prepared DPoP requests for `scripts/bench-validation.sh`: asks the token endpoint for one DPoP-bound
//! access token (client_credentials, client_secret_basic), then prints the token on the first line and
//! COUNT proofs for `GET RESOURCE_URL` with that token, one per line, each with its own `jti`. wrk replays
//! them, so the resource server pays one proof verification per request, as with a real DPoP client, while
//! the load generator signs nothing during the run. Proofs are fresh for a minute (RFC 9449 §11.1 window).
//!
//! Usage: `cargo run --release -p loadtest --example dpop_proofs -- TOKEN_URL CLIENT_ID SECRET RESOURCE_URL COUNT`

use std::io::Write;

use anyhow::Context;
use loadtest::dpop::ProofSigner;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [token_url, client_id, secret, resource_url, count] = args.as_slice() else {
        anyhow::bail!("usage: dpop_proofs TOKEN_URL CLIENT_ID SECRET RESOURCE_URL COUNT");
    };
    let count: usize = count.parse().context("COUNT")?;
    let signer = std::sync::Arc::new(ProofSigner::generate()?);
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
    let token = body["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned();

    // Both cores sign: the proofs must be used within the minute they are made.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = count.div_ceil(threads);
    let proofs: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (signer, token, url) = (&signer, &token, resource_url);
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|_| signer.proof("GET", url, Some(token)))
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
    writeln!(out, "{token}")?;
    for proof in proofs.iter().flatten().take(count) {
        writeln!(out, "{proof}")?;
    }
    out.flush()?;
    Ok(())
}
