//! For the tests of services built on [`crate::serve`]: a client that trickles its headers.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a slow-header client saw.
#[derive(Debug)]
pub struct Trickle {
    /// The server closed the connection before the client gave up (after 10 s of trickling).
    pub closed: bool,
    /// How long after connecting the server closed it.
    pub closed_after: Duration,
    /// Whatever the server sent before closing (hyper may answer 408).
    pub received: String,
}

/// Connects to `address`, sends `request_line` and a Host header, then one more header line every 100 ms
/// for up to 10 s, never ending the headers. Right after the first header line it runs `meanwhile` (a
/// well-behaved client's request) to completion, while the slow connection stays open. Stops as soon as
/// the server closes the connection.
pub async fn trickle_headers(
    address: SocketAddr,
    request_line: &str,
    meanwhile: impl Future<Output = ()>,
) -> std::io::Result<Trickle> {
    let started = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(address).await?;
    slow.write_all(format!("{request_line}\r\nHost: x\r\n").as_bytes())
        .await?;
    meanwhile.await;
    let mut received = Vec::new();
    for i in 0..100 {
        if slow
            .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
            .await
            .is_err()
        {
            return Ok(Trickle::new(true, started, &received));
        }
        let mut buffer = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return Ok(Trickle::new(true, started, &received)),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
    }
    Ok(Trickle::new(false, started, &received))
}

impl Trickle {
    fn new(closed: bool, started: Instant, received: &[u8]) -> Self {
        Self {
            closed,
            closed_after: started.elapsed(),
            received: String::from_utf8_lossy(received).into_owned(),
        }
    }
}
