//! A port that is bound but serves nothing: every connection is closed at once, as when a server is down.
//! Later the same listener is handed to a real server, so the port is never released and bound again.

use std::net::SocketAddr;

/// A bound port that closes every connection.
pub struct Refuser {
    listener: std::net::TcpListener,
    address: SocketAddr,
    closer: tokio::task::JoinHandle<()>,
}

impl Refuser {
    /// Binds 127.0.0.1:0 and starts closing connections.
    pub fn bind() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        listener.set_nonblocking(true).expect("non-blocking");
        let clone = listener.try_clone().expect("clone the listener");
        let closer = tokio::spawn(async move {
            let Ok(accepting) = tokio::net::TcpListener::from_std(clone) else {
                return;
            };
            while let Ok((connection, _)) = accepting.accept().await {
                drop(connection);
            }
        });
        Self {
            listener,
            address,
            closer,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops closing connections and gives up the listener, still bound, for a real server.
    pub async fn into_listener(self) -> std::net::TcpListener {
        self.closer.abort();
        let _ = self.closer.await;
        self.listener
    }
}
