//! The identity index: which user each alias `(tag, id)` belongs to, and the
//! reverse, kept in redb under the data dir.
//!
//! The log is the source of truth: a `sync_aliases` record *is* an identity
//! change ("alias → user, with this priority"), and the index is what you
//! get by applying those records in log order. The index is fed: whoever
//! owns a log applies each group right after it is committed (a cheap
//! non-durable redb commit, visible to readers at once) and the index makes
//! itself durable, together with the position it has applied up to, at most
//! every [`DURABLE_EVERY`]. On start, and after a failure, the owner replays
//! its log from [`IdentityIndex::applied`] (`serve`: the committer, from the
//! WAL, see `log::replay`; a cluster: the identity leader, from the identity
//! stream), and it never truncates its log past [`IdentityIndex::durable_lsn`],
//! so no identity change is lost to `kill -9`. The index itself reads no log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivestream_wal::Lsn;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Deserialize;
use thiserror::Error;
use uuid::Uuid;

use crate::collect::event::Alias;
use crate::state::dedup::{self, DedupLimits, Stored};
use crate::state::index_db::{IndexDb, IndexDbError, META};

/// `(tag, id)` → `(user uuid, priority)`.
const ALIASES: TableDefinition<(&str, &str), ([u8; 16], i64)> = TableDefinition::new("aliases");
/// `(user uuid, tag, id)` → priority.
const USER_ALIASES: TableDefinition<([u8; 16], &str, &str), i64> =
    TableDefinition::new("user_aliases");
/// Longest time between durable index commits.
pub const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// Index failures.
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("identity index: {0}")]
    Db(String),
    #[error("identity index: {0}")]
    Index(#[from] IndexDbError),
}

macro_rules! db_err {
    ($($t:ty),*) => { $( impl From<$t> for IdentityError { fn from(e: $t) -> Self { IdentityError::Db(e.to_string()) } } )* };
}
db_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::Error
);

/// One `sync_aliases` line, as the index reads it back.
#[derive(Debug, Deserialize)]
struct SyncLine {
    user_id: Uuid,
    tag: String,
    id: String,
    priority: i64,
}

/// An alias link: what a `sync_aliases` record says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Link {
    pub user: Uuid,
    pub tag: String,
    pub id: String,
    pub priority: i64,
}

/// The redb-backed index.
pub struct IdentityIndex {
    db: Arc<IndexDb>,
    /// The [`IndexDb`] generation `applied` and `durable` describe.
    generation: u64,
    /// Applied (visible) up to here.
    applied: Lsn,
    /// Durable up to here: the log must keep everything from this position.
    durable: Lsn,
    durable_at: Instant,
    /// How long and how many client event ids are remembered.
    dedup: DedupLimits,
}

impl IdentityIndex {
    /// Opens the index at the position it is durable up to; its owner then
    /// feeds it from there with [`IdentityIndex::apply`].
    pub fn open(db: Arc<IndexDb>) -> Result<Self, IdentityError> {
        let mut index = Self {
            db,
            generation: 0,
            applied: 0,
            durable: 0,
            durable_at: Instant::now(),
            dedup: DedupLimits::default(),
        };
        index.reload()?;
        Ok(index)
    }

    /// Sets the dedup window and cap (pruned at each durable commit).
    pub fn set_dedup_limits(&mut self, limits: DedupLimits) {
        self.dedup = limits;
    }

    /// What was stored for each client event id, if it is remembered.
    pub fn seen(&self, ids: &[Uuid]) -> Result<Vec<Option<Stored>>, IdentityError> {
        let (_, db) = self.db.handle()?;
        let txn = db.begin_read()?;
        Ok(dedup::lookup(&txn, ids)?)
    }

    /// Position up to which links are applied (exclusive).
    pub fn applied(&self) -> Lsn {
        self.applied
    }

    /// Reads the durable position from the database: everything applied
    /// above it and not made durable is gone with a reopen, and is fed again.
    fn reload(&mut self) -> Result<(), IdentityError> {
        let (generation, db) = self.db.handle()?;
        let txn = db.begin_write()?;
        txn.open_table(ALIASES)?;
        txn.open_table(USER_ALIASES)?;
        dedup::create(&txn)?;
        let applied = txn
            .open_table(META)?
            .get("applied_lsn")?
            .map_or(0, |v| v.value());
        txn.commit()?;
        drop(db);
        self.generation = generation;
        self.applied = applied;
        self.durable = applied;
        Ok(())
    }

    /// Starts over after a failure or a reopen of the database by anyone:
    /// reopens it if this index's generation failed, then reloads the
    /// durable position. The owner replays its log from
    /// [`IdentityIndex::applied`] next. Cheap when nothing happened.
    pub fn recover(&mut self) -> Result<(), IdentityError> {
        if self.db.generation() == self.generation {
            self.db.reopen_after(self.generation)?;
        }
        self.reload()
    }

    /// Whether the database was reopened since this index last loaded: its
    /// non-durable commits are gone, so call [`IdentityIndex::recover`].
    pub fn stale(&self) -> bool {
        self.db.generation() != self.generation
    }

    /// LSN up to which the index is durable: the WAL may be cut below it.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable
    }

    /// Applies links and client event ids committed to the WAL up to `end`
    /// (non-durably, unless a durable commit is due). A group with neither
    /// costs no transaction: replaying the WAL over it would find nothing
    /// to change either.
    pub fn apply(
        &mut self,
        links: &[Link],
        ids: &[(Uuid, Stored)],
        end: Lsn,
    ) -> Result<(), IdentityError> {
        let durable = self.durable_at.elapsed() >= DURABLE_EVERY;
        if links.is_empty() && ids.is_empty() && !durable {
            self.applied = self.applied.max(end);
            return Ok(());
        }
        self.commit_links(Changes { links, ids }, end, durable)
    }

    fn commit_links(
        &mut self,
        changes: Changes<'_>,
        end: Lsn,
        durable: bool,
    ) -> Result<(), IdentityError> {
        let (generation, db) = self.db.handle()?;
        if generation != self.generation {
            return Err(IdentityError::Db("the index was reopened".into()));
        }
        let prune = durable.then_some(self.dedup);
        write_links(&db, changes, end, durable, prune)?;
        self.applied = end;
        if durable {
            crate::failpoint::hit("identity.after_durable");
            self.durable = end;
            self.durable_at = Instant::now();
        }
        Ok(())
    }

    /// Makes everything applied so far durable.
    pub fn make_durable(&mut self) -> Result<(), IdentityError> {
        if self.durable == self.applied {
            return Ok(());
        }
        let none = Changes {
            links: &[],
            ids: &[],
        };
        self.commit_links(none, self.applied, true)
    }

    /// Whether a durable commit is due (called when idle).
    pub fn durable_due(&self) -> bool {
        self.durable < self.applied && self.durable_at.elapsed() >= DURABLE_EVERY
    }

    /// The user and priority each of `aliases` is linked to, if any.
    pub fn lookup(&self, aliases: &[Alias]) -> Result<Vec<Option<(Uuid, i64)>>, IdentityError> {
        let (_, db) = self.db.handle()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(ALIASES)?;
        aliases
            .iter()
            .map(|a| {
                let hit = table.get((a.tag.as_str(), a.id.as_str()))?;
                Ok(hit.map(|v| {
                    let (u, p) = v.value();
                    (Uuid::from_bytes(u), p)
                }))
            })
            .collect()
    }
}

/// What one commit applies.
struct Changes<'a> {
    links: &'a [Link],
    ids: &'a [(Uuid, Stored)],
}

/// One transaction: every link, the reverse map, the client event ids
/// (forgetting expired ones when `prune` is given), and `applied_lsn`.
fn write_links(
    db: &Database,
    changes: Changes<'_>,
    end: Lsn,
    durable: bool,
    prune: Option<DedupLimits>,
) -> Result<(), IdentityError> {
    let links = changes.links;
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })?;
    {
        let mut aliases = txn.open_table(ALIASES)?;
        let mut by_user = txn.open_table(USER_ALIASES)?;
        for l in links {
            let old = aliases.insert(
                (l.tag.as_str(), l.id.as_str()),
                (*l.user.as_bytes(), l.priority),
            )?;
            if let Some(old) = old {
                let (old_user, _) = old.value();
                by_user.remove((old_user, l.tag.as_str(), l.id.as_str()))?;
            }
            by_user.insert(
                (*l.user.as_bytes(), l.tag.as_str(), l.id.as_str()),
                l.priority,
            )?;
        }
        txn.open_table(META)?.insert("applied_lsn", end)?;
    }
    let now = crate::clock::now_ms();
    dedup::insert(&txn, changes.ids, now)?;
    if let Some(limits) = prune {
        dedup::prune(&txn, limits, now)?;
    }
    txn.commit()?;
    Ok(())
}

/// Every alias linked to `user`: `(tag, id, priority)`.
pub fn aliases_of(db: &IndexDb, user: &Uuid) -> Result<Vec<(String, String, i64)>, IdentityError> {
    db.run(|handle| read_aliases(handle, user), |_| true)
}

fn read_aliases(db: &Database, user: &Uuid) -> Result<Vec<(String, String, i64)>, IdentityError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(USER_ALIASES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let key = *user.as_bytes();
    let mut out = Vec::new();
    for entry in table.range((key, "", "")..)? {
        let (k, v) = entry?;
        let (u, tag, id) = k.value();
        if u != key {
            break;
        }
        out.push((tag.to_string(), id.to_string(), v.value()));
    }
    Ok(out)
}

/// The link a `sync_aliases` line records.
pub fn link_of_line(line: &[u8]) -> Option<Link> {
    let line: SyncLine = serde_json::from_slice(line).ok()?;
    Some(Link {
        user: line.user_id,
        tag: line.tag,
        id: line.id,
        priority: line.priority,
    })
}

/// Appends a `sync_aliases` line: `time`, `user_id`, `tag`, `id`, `priority`.
pub fn write_sync_line(time_ms: i64, link: &Link, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    crate::clock::write_rfc3339_ms(time_ms, out);
    out.extend_from_slice(b"\",\"user_id\":");
    crate::collect::event::write_uuid(&link.user, out);
    out.extend_from_slice(b",\"tag\":");
    serde_json::to_writer(&mut *out, &link.tag).expect("strings serialise");
    out.extend_from_slice(b",\"id\":");
    serde_json::to_writer(&mut *out, &link.id).expect("strings serialise");
    out.extend_from_slice(b",\"priority\":");
    out.extend_from_slice(link.priority.to_string().as_bytes());
    out.push(b'}');
}

/// Picks the user of an alias-only event: the user of the known alias with
/// the highest priority (lowest number; the earlier alias on a tie).
pub fn resolve(known: &[Option<(Uuid, i64)>], aliases: &[Alias]) -> Option<Uuid> {
    known
        .iter()
        .zip(aliases)
        .enumerate()
        .filter_map(|(i, (k, a))| k.map(|(user, _)| (a.priority, i, user)))
        .min_by_key(|(priority, i, _)| (*priority, *i))
        .map(|(_, _, user)| user)
}

/// Links staged in the current group, consulted before the index so that
/// requests in one group see each other's changes.
#[derive(Default)]
pub struct Overlay {
    links: HashMap<(String, String), (Uuid, i64)>,
}

impl Overlay {
    pub fn insert(&mut self, link: &Link) {
        self.links.insert(
            (link.tag.clone(), link.id.clone()),
            (link.user, link.priority),
        );
    }

    /// Index answers, overridden by links staged in this group.
    pub fn over(
        &self,
        mut known: Vec<Option<(Uuid, i64)>>,
        aliases: &[Alias],
    ) -> Vec<Option<(Uuid, i64)>> {
        for (k, a) in known.iter_mut().zip(aliases) {
            if let Some(hit) = self.links.get(&(a.tag.clone(), a.id.clone())) {
                *k = Some(*hit);
            }
        }
        known
    }

    pub fn clear(&mut self) {
        self.links.clear();
    }
}

/// Decides the users of alias-only events, one decision per alias set in
/// log order: the single writer of identity (the WAL committer in `serve`,
/// the identity leader in a cluster) runs it over its index, and notes each
/// link it stages so that later requests of the same group see them before
/// they are in the index.
#[derive(Default)]
pub struct Resolver {
    overlay: Overlay,
}

impl Resolver {
    /// Forgets staged links (they are in the index now, or were dropped).
    pub fn clear(&mut self) {
        self.overlay.clear();
    }

    /// Notes a link staged in this group.
    pub fn note(&mut self, link: &Link) {
        self.overlay.insert(link);
    }

    /// The user of an event known by `aliases`: the user of its
    /// highest-priority known alias, or a new user, in which case the links
    /// to write (one per alias) come back too, already noted.
    pub fn decide(
        &mut self,
        index: &IdentityIndex,
        aliases: &[Alias],
    ) -> Result<(Uuid, Vec<Link>), IdentityError> {
        let known = self.overlay.over(index.lookup(aliases)?, aliases);
        if let Some(user) = resolve(&known, aliases) {
            return Ok((user, Vec::new()));
        }
        let user = Uuid::new_v4();
        let links: Vec<Link> = aliases
            .iter()
            .map(|a| Link {
                user,
                tag: a.tag.clone(),
                id: a.id.clone(),
                priority: a.priority,
            })
            .collect();
        links.iter().for_each(|l| self.overlay.insert(l));
        Ok((user, links))
    }
}

#[cfg(test)]
mod tests;
