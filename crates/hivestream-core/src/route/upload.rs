//! Uploads sealed files, at most `concurrency` at a time, retrying each one
//! forever with exponential backoff and jitter: a sealed file is never
//! dropped. When a file is in the bucket its spool copy is deleted and its
//! id is reported to the router that sealed it (one uploader serves every
//! log partition a process routes), which then records it and may advance
//! the checkpoint. A spool file that disappears is the one failure retrying
//! cannot fix: the uploader flags it and the router restarts, rebuilding the
//! file from the log (its seal is pending and no longer in flight).
//!
//! A [`UploadKind::VerifyExists`] job uploads nothing: its rebuild differed
//! from the seal, so the uploader only checks that the sealed object is in
//! the bucket (the original upload happened and its "done" mark was lost)
//! and, when it is not, raises the alarm (`hivestream_seals_lost_total`,
//! an error log) before letting the router move on.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use object_store::ObjectStore;
use tokio::sync::Semaphore;

use crate::backoff::Backoff;
use crate::metrics::METRICS;
use crate::route::signals::UploadTracker;
use crate::sink::upload_file;

/// What to do with a sealed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// Upload the spool file to the key.
    Upload,
    /// Only check the key exists (the rebuild did not match its seal).
    VerifyExists,
}

/// A sealed file waiting for upload.
pub struct UploadJob {
    pub id: u64,
    pub key: String,
    pub kind: UploadKind,
    pub data_type: crate::log::record::DataType,
    /// When the log acknowledged the file's oldest record.
    pub first_ack_ms: i64,
    pub path: PathBuf,
    pub bytes: u64,
    pub records: u64,
    /// Where to report the file as done.
    pub done: mpsc::Sender<u64>,
    /// The sealing router's uploads (in-flight set, wake-up).
    pub tracker: Arc<UploadTracker>,
}

/// Receives jobs until the channel closes, uploading each with retries.
pub async fn run_uploader(
    store: Arc<dyn ObjectStore>,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<UploadJob>,
    concurrency: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(job) = jobs.recv().await {
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let outcome = match job.kind {
                UploadKind::Upload => upload_with_retry(store.as_ref(), &job).await,
                UploadKind::VerifyExists => verify_with_retry(store.as_ref(), &job).await,
            };
            crate::failpoint::hit("upload.after_put");
            METRICS.pending_uploads.sub(1);
            let spool_lost = match outcome {
                Outcome::Uploaded => {
                    let _ = tokio::fs::remove_file(&job.path).await;
                    let _ = job.done.send(job.id);
                    false
                }
                // Not done: the restarted router rebuilds it from the log.
                Outcome::SpoolLost => true,
            };
            job.tracker.finished(job.id, spool_lost);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// How an upload job ended.
enum Outcome {
    Uploaded,
    /// The spool file is gone (deleted by hand, say): retrying cannot help,
    /// but the WAL still holds the records.
    SpoolLost,
}

async fn upload_with_retry(store: &dyn ObjectStore, job: &UploadJob) -> Outcome {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let started = std::time::Instant::now();
    loop {
        if !tokio::fs::try_exists(&job.path).await.unwrap_or(true) {
            tracing::error!(key = %job.key, path = %job.path.display(), "spool file missing; the router rebuilds it from the WAL");
            return Outcome::SpoolLost;
        }
        match upload_file(store, &job.key, &job.path).await {
            Ok(()) => {
                METRICS.files_uploaded.inc(job.data_type);
                METRICS.uploaded_bytes.add(job.data_type, job.bytes);
                METRICS.uploaded_records.add(job.data_type, job.records);
                METRICS
                    .upload_seconds
                    .observe(started.elapsed().as_secs_f64());
                let lag_ms = crate::clock::now_ms() - job.first_ack_ms;
                METRICS
                    .ack_to_upload_seconds
                    .observe(lag_ms.max(0) as f64 / 1000.0);
                tracing::debug!(key = %job.key, bytes = job.bytes, records = job.records, "uploaded");
                return Outcome::Uploaded;
            }
            Err(e) => {
                METRICS.upload_errors.inc();
                let delay = backoff.next_delay();
                tracing::warn!(key = %job.key, error = %e, retry_in_ms = delay.as_millis() as u64, "upload failed; will retry");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Checks a sealed key is in the bucket, retrying errors other than "not
/// found" forever; reports the seal as finished either way.
async fn verify_with_retry(store: &dyn ObjectStore, job: &UploadJob) -> Outcome {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let location = match object_store::path::Path::parse(&job.key) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(key = %job.key, error = %e, "sealed key is not a valid object path");
            return Outcome::Uploaded;
        }
    };
    loop {
        match object_store::ObjectStoreExt::head(store, &location).await {
            Ok(_) => {
                tracing::warn!(key = %job.key, "the sealed object is in the bucket: its upload happened before the log changed");
                return Outcome::Uploaded;
            }
            Err(object_store::Error::NotFound { .. }) => {
                METRICS.seals_lost.inc();
                tracing::error!(key = %job.key, records = job.records,
                    "DATA LOSS: a sealed file can no longer be rebuilt from the log and was never uploaded; \
                     its records are not in the bucket");
                return Outcome::Uploaded;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(key = %job.key, error = %e, retry_in_ms = delay.as_millis() as u64, "checking a sealed key failed; will retry");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
