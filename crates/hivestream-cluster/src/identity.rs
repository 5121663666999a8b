//! Identity across stateless collectors: one identity leader (lease
//! `identity`) makes every alias decision, in order, exactly as `serve`'s
//! committer does (the same [`Resolver`]), and writes each request's new
//! links to the identity stream before answering.
//!
//! ```text
//!  collector ──request(hs.svc.identity)──▶ leader: Resolver over its redb index
//!            ◀──── users / ok / aliases ──┘   │ publish links (Nats-Msg-Id = request id,
//!                                             │   Nats-Expected-Last-Sequence = last seen)
//!                                             ▼
//!                                    HS_ID hs.id ──▶ router partition "id" ──▶ sync_aliases files
//! ```
//!
//! The index (redb in the leader's data dir) is derived from `HS_ID`: a
//! new leader replays the stream from where its own index stopped, before
//! it answers. Every write expects the stream's last sequence to be the one
//! the leader has applied, so a paused or partitioned old leader cannot add
//! a decision the new one did not see: its publish fails, and a failure of
//! any kind makes the leader replay the stream before the next request.
//! A retried request carries the same id, so a write that landed before an
//! ambiguous timeout is stored once. One difference from `serve`: a new
//! user's links are committed before the collector publishes the event, so
//! a request that then fails (503) may still have created the user; its
//! retry resolves to that user.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use hivestream_core::collect::backend::AliasEntry;
use hivestream_core::collect::event::Alias;
use hivestream_core::log::batch::sync_payload;
use hivestream_core::log::replay::link_of;
use hivestream_core::log::{pack_pos, unpack_pos, LogError};
use hivestream_core::state::identity::{aliases_of, IdentityError, IdentityIndex, Link, Resolver};
use hivestream_core::state::index_db::IndexDb;
use hivestream_core::state::lease::Lease;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
use uuid::Uuid;

use crate::log::{decode_message, encode_message, publish, PublishFailure};
use crate::names::IDENTITY_LEASE;
use crate::setup::Cluster;
use crate::worker::TaskJob;

/// Most requests decided together.
const MAX_GROUP: usize = 256;

/// How long the replay waits for the identity stream's next message.
const REPLAY_STALL: Duration = Duration::from_secs(10);

/// Why a collector got no decision from the identity leader.
#[derive(Debug, Error)]
pub enum AskError {
    /// The leader's answer is not a [`Reply`] (a different version?).
    #[error("identity leader answered badly: {0}")]
    BadReply(#[source] serde_json::Error),
    /// Every attempt until the publish timeout failed; `last` says how
    /// the last one did.
    #[error("no identity decision within {timeout:?}: {last}")]
    NoDecision {
        timeout: Duration,
        #[source]
        last: AttemptError,
    },
}

/// How one request to the identity leader failed (each is retried).
#[derive(Debug, Error)]
pub enum AttemptError {
    /// The timeout left no time for a request.
    #[error("no request was sent")]
    NotSent,
    /// The leader answered with an error (catching up, a failed write...).
    #[error("{0}")]
    Refused(String),
    /// The request did not reach a leader (none subscribed: a takeover).
    #[error(transparent)]
    Request(#[from] async_nats::RequestError),
    #[error("the identity leader did not answer")]
    Silent,
}

/// Why the identity leader stopped, or could not decide or apply.
#[derive(Debug, Error)]
pub enum IdentityLeaderError {
    /// The leader's redb index failed.
    #[error(transparent)]
    Index(#[from] IdentityError),
    #[error("identity index task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot subscribe to the identity service subject: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("cannot read the identity stream's info: {0}")]
    StreamInfo(#[from] stream::InfoError),
    #[error("cannot create the identity stream's replay consumer: {0}")]
    Consumer(#[from] stream::ConsumerError),
    #[error("cannot read the identity stream: {0}")]
    Messages(#[from] consumer::StreamError),
    #[error("identity stream replay: {0}")]
    Replay(#[from] pull::OrderedError),
    #[error("identity stream replay stalled (no message for {0:?})")]
    ReplayStalled(Duration),
    #[error("identity stream replay ended early")]
    ReplayEnded,
    #[error("identity stream message without stream info: {0}")]
    MessageInfo(#[source] async_nats::Error),
    #[error("identity stream: {0}")]
    Decode(#[from] LogError),
    /// A collector sent something that is not a [`Request`].
    #[error("bad identity request: {0}")]
    BadRequest(#[source] serde_json::Error),
}

/// A question for the leader.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Users for alias-only events (aliases and time of each).
    Resolve {
        id: String,
        items: Vec<(Vec<Alias>, i64)>,
    },
    /// An identify: write these links.
    Link {
        id: String,
        time_ms: i64,
        links: Vec<Link>,
    },
    /// Every alias of a user.
    Aliases { user: Uuid },
}

/// The leader's answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<AliasEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The collectors' side.
#[derive(Clone)]
pub struct IdentityClient {
    cluster: Cluster,
    timeout: Duration,
}

impl IdentityClient {
    pub fn new(cluster: Cluster) -> Self {
        let timeout = cluster.settings.publish_timeout;
        Self { cluster, timeout }
    }

    /// Asks the leader, retrying while there is none (a takeover) or it
    /// does not answer, until the publish timeout.
    pub async fn ask(&self, req: &Request) -> Result<Reply, AskError> {
        let subject = self.cluster.names.identity_service();
        let body: Bytes = serde_json::to_vec(req).expect("requests serialise").into();
        let deadline = Instant::now() + self.timeout;
        let mut last = AttemptError::NotSent;
        while Instant::now() < deadline {
            let left = deadline - Instant::now();
            let ask = self.cluster.client.request(subject.clone(), body.clone());
            last = match tokio::time::timeout(left.min(Duration::from_secs(5)), ask).await {
                Ok(Ok(msg)) => {
                    let reply: Reply =
                        serde_json::from_slice(&msg.payload).map_err(AskError::BadReply)?;
                    match reply.error {
                        Some(e) => AttemptError::Refused(e),
                        None => return Ok(reply),
                    }
                }
                Ok(Err(e)) => AttemptError::Request(e),
                Err(_) => AttemptError::Silent,
            };
            tokio::time::sleep(Duration::from_millis(100).min(deadline - Instant::now())).await;
        }
        Err(AskError::NoDecision {
            timeout: self.timeout,
            last,
        })
    }
}

/// The leader job.
pub struct IdentityLeader {
    pub cluster: Cluster,
    /// Where its index lives (`{data_dir}/identity-cluster.redb`).
    pub data_dir: PathBuf,
    pub cache_bytes: usize,
}

#[async_trait]
impl TaskJob for IdentityLeader {
    fn name(&self) -> String {
        IDENTITY_LEASE.into()
    }

    async fn run(&self, lease: watch::Receiver<Lease>, stop: watch::Receiver<bool>) {
        match self.lead(lease, stop).await {
            Ok(()) => tracing::info!("identity leader: stepped down"),
            Err(e) => tracing::error!(error = %e, "identity leader: stopped"),
        }
    }
}

/// A request's links to write, each with the time of its record.
struct Write {
    id: String,
    links: Vec<(Link, i64)>,
}

/// The leader's state while it leads.
struct Leading {
    cluster: Cluster,
    index: IdentityIndex,
    db: Arc<IndexDb>,
    resolver: Resolver,
    /// Last sequence of the identity stream applied to the index.
    last_seq: u64,
    /// The index may lack writes (after any failure): replay first.
    behind: bool,
}

impl IdentityLeader {
    async fn lead(
        &self,
        lease: watch::Receiver<Lease>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), IdentityLeaderError> {
        let path = self.data_dir.join("identity-cluster.redb");
        let cache = self.cache_bytes;
        let (db, index) = tokio::task::spawn_blocking(move || {
            let db = IndexDb::open(&path, cache)?;
            let index = IdentityIndex::open(Arc::clone(&db))?;
            Ok::<_, IdentityError>((db, index))
        })
        .await??;
        let last_seq = unpack_pos(index.applied()).0.saturating_sub(1);
        let mut l = Leading {
            cluster: self.cluster.clone(),
            index,
            db,
            resolver: Resolver::default(),
            last_seq,
            behind: true,
        };
        l.catch_up().await?;
        let subject = self.cluster.names.identity_service();
        let mut sub = self.cluster.client.subscribe(subject).await?;
        tracing::info!(applied_seq = l.last_seq, "identity leader: serving");
        loop {
            let first = tokio::select! {
                _ = stop.changed() => break,
                m = sub.next() => match m { Some(m) => m, None => break },
            };
            if lease.borrow().expired() {
                tracing::warn!("identity leader: lease expired; stepping down");
                break;
            }
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match futures::FutureExt::now_or_never(sub.next()) {
                    Some(Some(m)) => group.push(m),
                    _ => break,
                }
            }
            l.serve_group(group).await;
        }
        let _ = sub.unsubscribe().await;
        let _ = tokio::task::block_in_place(|| l.index.make_durable());
        Ok(())
    }
}

impl Leading {
    /// Applies every identity-stream message after `last_seq`.
    async fn catch_up(&mut self) -> Result<(), IdentityLeaderError> {
        let mut stream = self.cluster.identity.clone();
        let end = stream.info().await?.state.last_sequence;
        if end > self.last_seq {
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: self.last_seq + 1,
                    },
                    ..Default::default()
                })
                .await?;
            let mut messages = consumer.messages().await?;
            while self.last_seq < end {
                let msg = tokio::time::timeout(REPLAY_STALL, messages.next())
                    .await
                    .map_err(|_| IdentityLeaderError::ReplayStalled(REPLAY_STALL))?
                    .ok_or(IdentityLeaderError::ReplayEnded)??;
                let seq = msg
                    .info()
                    .map_err(IdentityLeaderError::MessageInfo)?
                    .stream_sequence;
                let links: Vec<Link> = decode_message(seq, &msg.payload)?
                    .into_iter()
                    .filter_map(link_of)
                    .collect();
                self.apply(&links, seq)?;
            }
        }
        self.behind = false;
        Ok(())
    }

    fn apply(&mut self, links: &[Link], seq: u64) -> Result<(), IdentityLeaderError> {
        tokio::task::block_in_place(|| self.index.apply(links, &[], pack_pos(seq + 1, 0)))?;
        self.last_seq = seq;
        Ok(())
    }

    async fn serve_group(&mut self, group: Vec<async_nats::Message>) {
        if self.behind {
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "identity leader: replay failed");
                for m in group {
                    self.reply(&m, &error_reply(format!("identity index catching up: {e}")))
                        .await;
                }
                return;
            }
        }
        // Decide everything, then write each request's links in order.
        let mut decided = Vec::with_capacity(group.len());
        for m in group {
            let outcome = self.decide(&m);
            decided.push((m, outcome));
        }
        self.resolver.clear();
        for (m, outcome) in decided {
            let reply = match outcome {
                // Decided with links an earlier write of this group failed
                // to store: the answer could name a user the stream lacks.
                Ok(_) if self.behind && !is_read(&m) => {
                    error_reply("an earlier decision failed; retry".into())
                }
                Ok((reply, None)) => reply,
                Ok((reply, Some(w))) => self.write(w, reply).await,
                Err(e) => error_reply(e.to_string()),
            };
            self.reply(&m, &reply).await;
        }
    }

    /// The answer to a request and, when it changes identity, the links to
    /// write first (each with the time of its record).
    fn decide(
        &mut self,
        m: &async_nats::Message,
    ) -> Result<(Reply, Option<Write>), IdentityLeaderError> {
        let req: Request =
            serde_json::from_slice(&m.payload).map_err(IdentityLeaderError::BadRequest)?;
        match req {
            Request::Aliases { user } => {
                let found = tokio::task::block_in_place(|| aliases_of(&self.db, &user))?;
                let reply = Reply {
                    aliases: Some(found),
                    ..Default::default()
                };
                Ok((reply, None))
            }
            Request::Link { id, time_ms, links } => {
                links.iter().for_each(|l| self.resolver.note(l));
                let links = links.into_iter().map(|l| (l, time_ms)).collect();
                Ok((Reply::default(), Some(Write { id, links })))
            }
            Request::Resolve { id, items } => {
                let mut users = Vec::with_capacity(items.len());
                let mut links = Vec::new();
                for (aliases, time_ms) in &items {
                    let (user, created) =
                        tokio::task::block_in_place(|| self.resolver.decide(&self.index, aliases))?;
                    links.extend(created.into_iter().map(|l| (l, *time_ms)));
                    users.push(user);
                }
                let reply = Reply {
                    users: Some(users),
                    ..Default::default()
                };
                let write = (!links.is_empty()).then_some(Write { id, links });
                Ok((reply, write))
            }
        }
    }

    /// Writes a request's links (fenced by the last sequence applied),
    /// applies them, and returns `ok` as the answer, or an error.
    async fn write(&mut self, w: Write, ok: Reply) -> Reply {
        let records: Vec<Vec<u8>> = w.links.iter().map(|(l, t)| sync_payload(*t, l)).collect();
        let payload = encode_message(records.iter().map(Vec::as_slice));
        let msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(&w.id)
            .expected_last_sequence(self.last_seq);
        let subject = self.cluster.names.identity_subject();
        let timeout = self.cluster.settings.publish_timeout;
        match publish(&self.cluster.js, &subject, msg, timeout).await {
            Ok(ack) if !ack.duplicate && ack.sequence == self.last_seq + 1 => {
                let links: Vec<Link> = w.links.into_iter().map(|(l, _)| l).collect();
                match self.apply(&links, ack.sequence) {
                    Ok(()) => ok,
                    Err(e) => {
                        self.behind = true;
                        error_reply(e.to_string())
                    }
                }
            }
            Ok(_) => {
                // Stored by an earlier attempt of the same request.
                self.behind = true;
                ok
            }
            Err(e) => {
                self.behind = true;
                if matches!(e, PublishFailure::Fenced(_)) {
                    tracing::warn!(error = %e, "identity leader: the stream moved under us; replaying");
                }
                error_reply(e.to_string())
            }
        }
    }

    async fn reply(&self, m: &async_nats::Message, reply: &Reply) {
        if let Some(to) = &m.reply {
            let body: Bytes = serde_json::to_vec(reply).expect("replies serialise").into();
            let _ = self.cluster.client.publish(to.clone(), body).await;
        }
    }
}

/// Whether a request only reads (an alias look-up).
fn is_read(m: &async_nats::Message) -> bool {
    serde_json::from_slice::<Request>(&m.payload)
        .is_ok_and(|r| matches!(r, Request::Aliases { .. }))
}

fn error_reply(e: String) -> Reply {
    Reply {
        error: Some(e),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_decision_says_why_the_last_attempt_failed() {
        let e = AskError::NoDecision {
            timeout: Duration::from_secs(2),
            last: AttemptError::Refused("identity index catching up: x".into()),
        };
        assert_eq!(
            e.to_string(),
            "no identity decision within 2s: identity index catching up: x"
        );
        let e = AskError::NoDecision {
            timeout: Duration::from_millis(1500),
            last: AttemptError::Silent,
        };
        assert_eq!(
            e.to_string(),
            "no identity decision within 1.5s: the identity leader did not answer"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn a_bad_request_is_answered_with_an_error() {
        let bad = serde_json::from_slice::<Request>(b"{\"op\":\"nope\"}").unwrap_err();
        let reply = error_reply(IdentityLeaderError::BadRequest(bad).to_string());
        let text = reply.error.expect("an error");
        assert!(text.starts_with("bad identity request: "), "{text}");
        assert!(reply.users.is_none() && reply.aliases.is_none());
    }
}
