//! Group commit: concurrent writes that each would be a small transaction (a resource
//! creation, an operation's outcome) are queued to one committer task, which applies up to
//! `MAX_BATCH` of them in a single transaction and answers each caller after the commit.
//!
//! Every caller still gets exactly the atomicity it asked for: all of its statements are
//! in the committed transaction or none are. If a batch fails, each write is retried in a
//! transaction of its own, so that one bad write never fails its neighbours. On SQLite,
//! where all writes share one connection, this removes most of the per-transaction cost;
//! on PostgreSQL it takes the audit lock once per batch instead of once per write.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::audit::ChainCursor;
use super::resources::{apply, Write};
use super::{Backend, StoreError, StoreResult};

/// Writes committed together at most.
const MAX_BATCH: usize = 128;

type Reply = oneshot::Sender<StoreResult<bool>>;

/// The handle to the committer task.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<(Write, Reply)>,
}

impl Batcher {
    /// Starts the committer on the current runtime.
    pub(crate) fn start(pool: AnyPool, backend: Backend) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        tokio::spawn(run(pool, backend, rx));
        Self { queue }
    }

    /// Queues a write and waits until it is committed (or failed).
    pub(crate) async fn submit(&self, write: Write) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?
    }
}

async fn run(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<(Write, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if batch.len() > 1 {
            match commit(&pool, backend, batch.iter().map(|(w, _)| w)).await {
                Ok(results) => {
                    for ((_, reply), result) in batch.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, size = batch.len(), "group commit failed; committing one by one")
                }
            }
        }
        for (write, reply) in batch {
            let result = commit(&pool, backend, std::iter::once(&write))
                .await
                .map(|r| r.first().copied().unwrap_or(false));
            let _ = reply.send(result);
        }
    }
}

async fn commit<'a>(
    pool: &AnyPool,
    backend: Backend,
    writes: impl Iterator<Item = &'a Write>,
) -> StoreResult<Vec<bool>> {
    let mut tx = pool.begin().await?;
    let mut cursor = ChainCursor::default();
    let mut results = Vec::new();
    for write in writes {
        results.push(apply(&mut tx, backend, write, &mut cursor).await?);
    }
    tx.commit().await?;
    Ok(results)
}
