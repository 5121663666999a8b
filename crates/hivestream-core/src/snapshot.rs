//! `serve`'s `segment` snapshot writer: every `tick`, asks
//! [`snapshot_rule`](crate::state::snapshot_rule) whether a snapshot of the
//! cohorts is due, appends it to the WAL as one `segment` record when it
//! is, then records its progress in the cohort store.
//!
//! ```text
//!  CohortStore ──(progress, generation, content)──▶ next_step
//!       ▲                                              │ Write
//!       └──── save_snapshot_progress ◀── WAL append ◀──┘
//! ```
//!
//! Crash safety: the progress is saved only after the append is durable;
//! a crash between the two writes the snapshot again after restart (same
//! content, a later time). Lives beside `serve` because it joins two
//! stages: it reads the state and writes the log.

use std::time::Duration;

use thiserror::Error;

use crate::log::ingest::{Appender, Batch, CommitError};
use crate::log::record::{DataType, Record};
use crate::state::cohorts::{CohortError, CohortStore};
use crate::state::snapshot_rule::{content_hash, next_step, SnapshotStep};

/// Why a snapshot was not written this time (the writer tries again).
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("cohort store: {0}")]
    Store(#[from] CohortError),
    #[error("WAL append: {0}")]
    Append(#[from] CommitError),
    #[error("snapshot task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Writes due snapshots every `tick`, and once more when `stop` fires, so a
/// change made just before shutdown is still exported.
pub async fn run_snapshotter(
    store: CohortStore,
    appender: Appender,
    interval: Duration,
    tick: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(tick) => false,
            _ = stop.changed() => true,
        };
        if let Err(e) = snapshot_once(&store, &appender, interval.as_millis() as i64).await {
            tracing::warn!(error = %e, "segment snapshot not written; will retry");
        }
        if stopping {
            return;
        }
    }
}

/// One turn: decide, then write or skip, then record the progress.
async fn snapshot_once(
    store: &CohortStore,
    appender: &Appender,
    interval_ms: i64,
) -> Result<(), SnapshotError> {
    let now = crate::clock::now_ms();
    let s = store.clone();
    let decided = tokio::task::spawn_blocking(move || {
        let (progress, generation) = s.snapshot_progress()?;
        let mut content = None;
        let step = next_step(&progress, generation, now, interval_ms, || {
            let c = s.snapshot_content()?;
            let hash = content_hash(&c);
            content = Some(c);
            Ok::<_, CohortError>(hash)
        })?;
        Ok::<_, CohortError>((progress, step, content))
    })
    .await??;
    let (progress, step, content) = decided;
    if step == SnapshotStep::UpToDate {
        return Ok(());
    }
    if let (SnapshotStep::Write { generation, .. }, Some(content)) = (step, &content) {
        append(appender, content, now).await?;
        tracing::info!(
            generation,
            bytes = content.len(),
            "segment snapshot written"
        );
    }
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.save_snapshot_progress(progress.after(step, now)))
        .await??;
    Ok(())
}

/// Appends one `segment` record holding `content`, durable when it returns.
async fn append(appender: &Appender, content: &[u8], now: i64) -> Result<(), SnapshotError> {
    let mut batch = Batch::default();
    batch.push(&Record {
        data_type: DataType::Segment,
        time_ms: now,
        line: content,
    });
    appender.append(batch).await?;
    Ok(())
}
