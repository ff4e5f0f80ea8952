//! Single-use values (DPoP proof and client assertion `jti`s) recorded in the database so that every replica
//! agrees, in batches: requests that arrive while a batch is being written wait for the next one, and each
//! batch is one statement and one commit. Under load that is one fsync for hundreds of proofs instead of one
//! each; alone, a request waits for its own one-row batch.

use auth_core::secret::SecretDigest;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};

/// The most values written in one statement.
const MAX_BATCH: usize = 512;
/// Requests waiting for a batch at most; beyond that, callers wait to enqueue.
const QUEUE: usize = 8192;

struct Pending {
    digest: SecretDigest,
    expires_at: i64,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The writer's queue.
pub struct JtiRecorder {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for JtiRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JtiRecorder")
    }
}

impl JtiRecorder {
    /// Starts the writer; it stops when the recorder is dropped.
    pub fn start(store: std::sync::Arc<dyn Store>) -> Self {
        let (queue, mut waiting) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match waiting.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let items: Vec<(SecretDigest, i64)> = batch
                    .iter()
                    .map(|pending| (pending.digest, pending.expires_at))
                    .collect();
                match store.first_uses(&items).await {
                    Ok(results) => {
                        for (pending, first) in batch.into_iter().zip(results) {
                            let _ = pending.reply.send(Ok(first));
                        }
                    }
                    Err(error) => {
                        let text = error.to_string();
                        for pending in batch {
                            let _ = pending.reply.send(Err(StoreError::Batch(text.clone())));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// `true` the first time `digest` is recorded (at any replica), until `expires_at`.
    pub async fn first_use(
        &self,
        digest: SecretDigest,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                digest,
                expires_at,
                reply,
            })
            .await
            .map_err(|_| StoreError::Batch("the jti writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Batch("the jti writer has stopped".into()))?
    }
}
