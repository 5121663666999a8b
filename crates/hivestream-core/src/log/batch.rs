//! A batch: the records of one request, encoded as log payloads back to
//! back, with the events whose user must still be decided from their
//! aliases (their lines hold a placeholder UUID until then), the events
//! that carry a client-given id (retries of those are deduplicated), and
//! the events found to be such retries (skipped when written).

use uuid::Uuid;

use crate::collect::event::Alias;
use crate::log::record::{DataType, Record, RECORD_HEADER_LEN};
use crate::state::dedup::Stored;
use crate::state::identity::{write_sync_line, Link};

/// An event whose user is known only by aliases; its line holds a
/// placeholder UUID at `user_offset` that the committer overwrites.
#[derive(Debug)]
struct PendingUser {
    item: usize,
    user_offset: usize,
    aliases: Vec<Alias>,
}

/// Records to append together, encoded as WAL payloads back to back.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
    pending: Vec<PendingUser>,
    /// Holds `sync_aliases` records: an alias change, which must reach the
    /// identity index before the client hears 2xx (read-your-writes).
    links: bool,
    /// `(item, event id)` of events whose id the client gave.
    client_ids: Vec<(usize, Uuid)>,
    /// Items not to write (retries of acknowledged events), ascending.
    skipped: Vec<usize>,
}

impl Batch {
    pub fn push(&mut self, rec: &Record<'_>) {
        rec.encode(&mut self.buf);
        self.ends.push(self.buf.len());
        self.links |= rec.data_type == DataType::SyncAliases;
    }

    /// Whether committing this batch needs a healthy index: it resolves
    /// users from aliases, changes aliases, or has client ids to check.
    pub fn needs_index(&self) -> bool {
        self.links || !self.pending.is_empty() || !self.client_ids.is_empty()
    }

    /// Pushes an event whose `user_id` the committer resolves from
    /// `aliases`; `user_offset` is where the 36-character placeholder UUID
    /// starts in `rec.line`.
    pub fn push_resolving(&mut self, rec: &Record<'_>, user_offset: usize, aliases: Vec<Alias>) {
        let user_offset = self.buf.len() + RECORD_HEADER_LEN + user_offset;
        self.pending.push(PendingUser {
            item: self.ends.len(),
            user_offset,
            aliases,
        });
        self.push(rec);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Encoded size of every record.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The records to write, encoded as log payloads, in push order
    /// (skipped ones left out).
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .enumerate()
            .filter(|(i, _)| !self.is_skipped(*i))
            .map(|(_, (s, e))| &self.buf[s..e])
    }

    /// The encoded record of `item`.
    pub fn item(&self, item: usize) -> &[u8] {
        let start = if item == 0 { 0 } else { self.ends[item - 1] };
        &self.buf[start..self.ends[item]]
    }

    /// Notes that the event pushed last carries the client's id `id`.
    pub fn mark_client_id(&mut self, id: Uuid) {
        self.client_ids.push((self.ends.len() - 1, id));
    }

    /// `(item, id)` of the events whose id the client gave.
    pub fn client_ids(&self) -> &[(usize, Uuid)] {
        &self.client_ids
    }

    /// Leaves `item` out of the write (a retry of an acknowledged event).
    pub fn skip(&mut self, item: usize) {
        if let Err(at) = self.skipped.binary_search(&item) {
            self.skipped.insert(at, item);
        }
    }

    pub fn is_skipped(&self, item: usize) -> bool {
        self.skipped.binary_search(&item).is_ok()
    }

    /// The item index of every event waiting for its user, in push order
    /// (skipped ones included).
    pub fn pending_items(&self) -> Vec<usize> {
        self.pending.iter().map(|p| p.item).collect()
    }

    /// The `time` and `user_id` stored for an event (once its user is set).
    pub fn stored(&self, item: usize) -> Option<Stored> {
        let rec = Record::decode(self.item(item)).ok()?;
        let (_, user) = crate::collect::event::line_ids(rec.line)?;
        Some(Stored {
            time_ms: rec.time_ms,
            user,
        })
    }

    /// Whether it holds `sync_aliases` records (an identify).
    pub fn has_links(&self) -> bool {
        self.links
    }

    /// How many events to write wait for their user.
    pub fn pending_len(&self) -> usize {
        self.live_pending().count()
    }

    fn live_pending(&self) -> impl Iterator<Item = &PendingUser> {
        self.pending.iter().filter(|p| !self.is_skipped(p.item))
    }

    /// The aliases and time of each event to write that waits for its
    /// user, in push order.
    pub fn pending_aliases(&self) -> Vec<(Vec<Alias>, i64)> {
        self.live_pending()
            .map(|p| (p.aliases.clone(), self.item_time(p.item)))
            .collect()
    }

    /// Writes the users chosen for the waiting events to write (one each,
    /// in push order) into their lines; nothing waits afterwards.
    pub fn set_users(&mut self, users: &[Uuid]) {
        debug_assert_eq!(users.len(), self.pending_len());
        let pending: Vec<PendingUser> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|p| !self.is_skipped(p.item))
            .collect();
        for (p, user) in pending.iter().zip(users) {
            let mut hex = [0u8; 36];
            user.hyphenated().encode_lower(&mut hex);
            self.buf[p.user_offset..p.user_offset + 36].copy_from_slice(&hex);
        }
    }

    fn item_time(&self, item: usize) -> i64 {
        Record::decode(self.item(item)).map_or_else(|_| crate::clock::now_ms(), |r| r.time_ms)
    }
}

/// The WAL payload of one `sync_aliases` record.
pub fn sync_payload(time_ms: i64, link: &Link) -> Vec<u8> {
    let mut line = Vec::with_capacity(160);
    write_sync_line(time_ms, link, &mut line);
    let mut out = Vec::with_capacity(line.len() + RECORD_HEADER_LEN);
    Record {
        data_type: DataType::SyncAliases,
        time_ms,
        line: &line,
    }
    .encode(&mut out);
    out
}
