//! The replicated log: JetStream streams as the router's [`LogReader`], and
//! the publishes that make records durable.
//!
//! ```text
//!  collector ──publish(Nats-Msg-Id = request id)──▶ HS_EV  hs.ev.07   (R3, ack = quorum fsync)
//!                                                     │
//!            ordered consumer from the checkpoint ◀───┘  (no server-side state)
//!                     │ tokio task ──bounded channel──▶ JsLogReader ──▶ Router thread
//!                     │                                   │ release_below(checkpoint)
//!                     └──────────── purge(hs.ev.07, seq) ◀┘
//! ```
//!
//! A message is one request's records, each a WAL frame (`len u32 | crc32c
//! u32 | payload`), so a request is stored all or nothing and each record's
//! integrity is checked when read. A record's position packs the message's
//! stream sequence and its index in the message
//! ([`hivestream_core::log::pack_pos`]). Sequences of one subject are not
//! contiguous (partitions share the stream), so the position after a
//! message with sequence `s` is `(s + 1, 0)`.
//!
//! Purging is monotone: a zombie owner purging at its stale checkpoint
//! removes less than the new owner's, never more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{stream, Context};
use bytes::Bytes;
use futures::StreamExt;
use hivestream_core::backoff::Backoff;
use hivestream_core::log::{pack_pos, unpack_pos, LogError, LogReader, Pos, MAX_MESSAGE_RECORDS};
use hivestream_core::metrics::METRICS;
use hivestream_core::signal::Signal;
use hivestream_wal::{decode_frame, encode_frame};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::dedup::{parse_client_msg_id, Done, KvDedup};

/// Messages fetched ahead of the router, per partition.
const READ_AHEAD: usize = 64;

/// Encodes records as one message payload.
pub fn encode_message<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        encode_frame(r, &mut out);
    }
    out
}

/// Decodes every record of a message (for the identity log's replay).
pub fn decode_message(seq: u64, data: &[u8]) -> Result<Vec<&[u8]>, LogError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < data.len() {
        match decode_frame(&data[off..]) {
            Ok(Some((payload, used))) => {
                out.push(payload);
                off += used;
            }
            Ok(None) => return Err(corrupt(seq, "a record is cut short")),
            Err(e) => return Err(corrupt(seq, e.to_string())),
        }
    }
    Ok(out)
}

fn corrupt(seq: u64, reason: impl Into<String>) -> LogError {
    LogError::Corrupt {
        seq,
        reason: reason.into(),
    }
}

/// What the fetch task hands the reader.
enum Fetched {
    /// Sequence, payload, and when the stream stored it (epoch ms).
    Message(u64, Bytes, i64),
}

/// The message being read.
struct Current {
    seq: u64,
    data: Bytes,
    offset: usize,
    index: usize,
    published_ms: i64,
}

/// One subject of a stream as a router's log partition.
pub struct JsLogReader {
    rx: mpsc::Receiver<Fetched>,
    current: Option<Current>,
    /// Position of the next record when no message is being read.
    next_pos: Pos,
    /// Records of the first message below this index were read before.
    skip: Option<(u64, usize)>,
    fetcher: tokio::task::JoinHandle<()>,
    purger: Option<Purger>,
}

impl Drop for JsLogReader {
    fn drop(&mut self) {
        self.fetcher.abort();
    }
}

/// How a [`JsLogReader`] treats what it has read.
pub struct ReadOptions {
    /// Purge the stream below each checkpoint (events partitions).
    pub purge: bool,
    /// Drop every copy of a client-id event but the first.
    pub dedup: Option<KvDedup>,
}

impl JsLogReader {
    /// Reads `subject` of `stream` from `from`, notifying `wake` (its
    /// router's) as messages arrive, treating them as `options` say (see
    /// [`crate::dedup`] for the dedup).
    pub fn open(
        stream: stream::Stream,
        subject: String,
        from: Pos,
        wake: Arc<Signal>,
        ReadOptions { purge, dedup }: ReadOptions,
        rt: &tokio::runtime::Handle,
    ) -> Self {
        let (seq, index) = unpack_pos(from);
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let purger = purge.then(|| Purger::new(stream.clone(), subject.clone(), rt.clone()));
        let source = Source {
            stream,
            subject,
            dedup,
        };
        let fetcher = rt.spawn(fetch(source, seq.max(1), tx, wake));
        Self {
            rx,
            current: None,
            next_pos: from,
            skip: (index > 0).then_some((seq, index)),
            fetcher,
            purger,
        }
    }

    fn take_message(&mut self) -> bool {
        match self.rx.try_recv() {
            Ok(Fetched::Message(seq, data, published_ms)) => {
                let index = match self.skip.take() {
                    Some((s, i)) if s == seq => i,
                    _ => 0,
                };
                self.current = Some(Current {
                    seq,
                    data,
                    offset: 0,
                    index: 0,
                    published_ms,
                });
                self.skip_records(index);
                true
            }
            Err(_) => false,
        }
    }

    /// Steps over the first `n` records of the current message.
    fn skip_records(&mut self, n: usize) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        while cur.index < n {
            match decode_frame(&cur.data[cur.offset..]) {
                Ok(Some((_, used))) => {
                    cur.offset += used;
                    cur.index += 1;
                }
                _ => break,
            }
        }
    }
}

impl LogReader for JsLogReader {
    fn next(&mut self) -> Result<Option<(Pos, &[u8])>, LogError> {
        loop {
            let done = match &self.current {
                Some(cur) => cur.offset >= cur.data.len(),
                None => {
                    if !self.take_message() {
                        return Ok(None);
                    }
                    continue;
                }
            };
            if done {
                let cur = self.current.take().expect("checked");
                self.next_pos = pack_pos(cur.seq + 1, 0);
                continue;
            }
            break;
        }
        let cur = self.current.as_mut().expect("checked");
        if cur.index >= MAX_MESSAGE_RECORDS {
            return Err(corrupt(cur.seq, "more records than a position can address"));
        }
        let (payload, used) = match decode_frame(&cur.data[cur.offset..]) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(corrupt(cur.seq, "a record is cut short")),
            Err(e) => return Err(corrupt(cur.seq, e.to_string())),
        };
        let pos = pack_pos(cur.seq, cur.index);
        let start = cur.offset;
        cur.offset += used;
        cur.index += 1;
        let len = payload.len();
        let payload_start = start + used - len;
        Ok(Some((pos, &cur.data[payload_start..payload_start + len])))
    }

    fn position(&self) -> Pos {
        match &self.current {
            Some(cur) if cur.offset < cur.data.len() => pack_pos(cur.seq, cur.index),
            Some(cur) => pack_pos(cur.seq + 1, 0),
            None => self.next_pos,
        }
    }

    fn caught_up(&self) -> bool {
        self.current
            .as_ref()
            .is_none_or(|c| c.offset >= c.data.len())
            && self.rx.is_empty()
    }

    fn release_below(&mut self, pos: Pos) {
        if let Some(p) = &mut self.purger {
            p.purge_below(unpack_pos(pos).0);
        }
    }

    fn last_ack_ms(&self) -> Option<i64> {
        self.current.as_ref().map(|c| c.published_ms)
    }

    fn oldest_unread_ack_ms(&self) -> Option<i64> {
        self.current
            .as_ref()
            .filter(|c| c.offset < c.data.len())
            .map(|c| c.published_ms)
    }
}

/// What a fetch task reads.
struct Source {
    stream: stream::Stream,
    subject: String,
    dedup: Option<KvDedup>,
}

impl Source {
    /// Whether the message at `seq` is to be routed: anything but a later
    /// copy of a client-id event. Retries the bucket until it answers.
    async fn keep(&self, msg: &async_nats::jetstream::Message, seq: u64) -> bool {
        let Some(dedup) = &self.dedup else {
            return true;
        };
        let client_id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .and_then(|v| parse_client_msg_id(v.as_str()));
        let Some(id) = client_id else {
            return true;
        };
        let Some(done) = first_record(&msg.payload, seq) else {
            return true;
        };
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match dedup.first_copy(&id, done).await {
                Ok(first) => return first,
                Err(e) => {
                    tracing::warn!(subject = %self.subject, error = %e, "log reader: cannot check a client event id; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// The dedup record of a message's (only) event.
fn first_record(payload: &[u8], seq: u64) -> Option<Done> {
    let records = decode_message(seq, payload).ok()?;
    let rec = hivestream_core::log::record::Record::decode(records.first()?).ok()?;
    let (_, user) = hivestream_core::collect::event::line_ids(rec.line)?;
    Some(Done {
        time_ms: rec.time_ms,
        user,
        seq,
    })
}

/// Feeds `tx` with the subject's messages from `start`, recreating the
/// ordered consumer after errors (a server or leader lost), until the
/// reader is dropped.
async fn fetch(source: Source, start: u64, tx: mpsc::Sender<Fetched>, wake: Arc<Signal>) {
    let Source {
        ref stream,
        ref subject,
        ..
    } = source;
    let mut next = start;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let config = pull::OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: next,
            },
            ..Default::default()
        };
        let messages = match stream.create_consumer(config).await {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%subject, error = %e, "log reader: cannot start reading; will retry");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        while let Some(item) = messages.next().await {
            let msg = match item {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%subject, error = %e, "log reader: read failed; resuming");
                    break;
                }
            };
            let Ok(info) = msg.info() else { continue };
            let seq = info.stream_sequence;
            if seq < next {
                continue;
            }
            next = seq + 1;
            backoff.reset();
            if !source.keep(&msg, seq).await {
                tracing::info!(%subject, seq, "log reader: dropped a later copy of a client-id event");
                continue;
            }
            let published_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
            let fetched = Fetched::Message(seq, msg.payload.clone(), published_ms);
            if tx.send(fetched).await.is_err() {
                return;
            }
            wake.notify();
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Purges a subject below checkpoints, one request at a time, never
/// lowering what it asked for before.
struct Purger {
    stream: stream::Stream,
    subject: String,
    rt: tokio::runtime::Handle,
    asked: u64,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Purger {
    fn new(stream: stream::Stream, subject: String, rt: tokio::runtime::Handle) -> Self {
        Self {
            stream,
            subject,
            rt,
            asked: 0,
            running: None,
        }
    }

    fn purge_below(&mut self, seq: u64) {
        if seq <= self.asked || self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.asked = seq;
        let (stream, subject) = (self.stream.clone(), self.subject.clone());
        self.running = Some(self.rt.spawn(async move {
            if let Err(e) = stream.purge().filter(&subject).sequence(seq).await {
                tracing::warn!(%subject, seq, error = %e, "log: purge below the checkpoint failed; the next checkpoint retries");
            }
        }));
    }
}

/// Why a publish was not acknowledged.
#[derive(Debug, Error)]
pub enum PublishFailure {
    /// The stream is at `max_bytes` (`discard: new`): try again later.
    #[error("the stream is full: {0}")]
    Full(String),
    /// No quorum or no answer within the publish timeout.
    #[error("the log did not acknowledge in time: {0}")]
    Unavailable(String),
    /// The stream refused it for good (too large, wrong expected sequence).
    #[error("the log refused the message: {0}")]
    Refused(String),
    /// The expected last sequence did not match: another writer wrote.
    #[error("the log has a newer writer: {0}")]
    Fenced(String),
}

/// Publishes one message and waits for its ack, retrying with the same
/// message id (so the stream stores it once) until `timeout` has passed.
pub async fn publish(
    js: &Context,
    subject: &str,
    msg: PublishMessage,
    timeout: Duration,
) -> Result<PublishAck, PublishFailure> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        let attempt = send(js, subject, msg.clone()).await;
        let err = match attempt {
            Ok(ack) => return Ok(ack),
            Err(e) => e,
        };
        if !matches!(err, PublishFailure::Unavailable(_)) || Instant::now() >= deadline {
            return Err(err);
        }
        METRICS.publish_retries.inc();
        let delay = backoff.next_delay().min(deadline - Instant::now());
        tokio::time::sleep(delay).await;
    }
}

async fn send(
    js: &Context,
    subject: &str,
    msg: PublishMessage,
) -> Result<PublishAck, PublishFailure> {
    let fut: PublishAckFuture = js
        .send_publish(subject.to_string(), msg)
        .await
        .map_err(classify)?;
    fut.await.map_err(classify)
}

fn classify(e: async_nats::jetstream::context::PublishError) -> PublishFailure {
    let text = e.to_string();
    match e.kind() {
        PublishErrorKind::WrongLastSequence => PublishFailure::Fenced(text),
        PublishErrorKind::MaxPayloadExceeded => PublishFailure::Refused(text),
        PublishErrorKind::StreamNotFound => PublishFailure::Unavailable(text),
        _ if text.contains("maximum bytes") || text.contains("resources exceeded") => {
            PublishFailure::Full(text)
        }
        _ if text.contains("wrong last sequence") => PublishFailure::Fenced(text),
        _ => PublishFailure::Unavailable(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_damage_is_caught() {
        let records: Vec<&[u8]> = vec![b"a", b"bb", b""];
        let msg = encode_message(records.iter().copied().filter(|r| !r.is_empty()));
        assert_eq!(decode_message(7, &msg).unwrap(), vec![&b"a"[..], b"bb"]);
        let mut bad = msg.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_message(7, &bad).is_err());
        assert!(decode_message(7, &msg[..msg.len() - 1]).is_err());
    }
}
