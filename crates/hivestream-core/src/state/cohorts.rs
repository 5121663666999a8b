//! Cohort metadata and `segment` snapshots.
//!
//! Cohorts live in redb (durable commit per change). Every change bumps a
//! `cohort_generation` counter in the same transaction. The snapshot
//! writer (`crate::snapshot`, beside `serve`) decides by
//! [`crate::state::snapshot_rule`] from that generation and its own
//! progress (`snapshot_generation`, `snapshot_hash`, `snapshot_at_ms`),
//! kept here too. A crash between a change and its snapshot leaves the
//! generation ahead of the progress, so the snapshot is written after
//! restart. The snapshot's content holds no timestamp of its own, so an
//! unchanged set of cohorts hashes the same.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::state::index_db::IndexDb;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::clock::write_rfc3339_ms;
use crate::state::index_db::{IndexDbError, META};
use crate::state::snapshot_rule::SnapshotProgress;

/// id → cohort JSON.
const COHORTS: TableDefinition<&str, &str> = TableDefinition::new("cohorts");
/// name → id, for uniqueness.
const NAMES: TableDefinition<&str, &str> = TableDefinition::new("cohort_names");

/// A cohort's state, as the Cohorts API spells it. Earlier versions stored
/// every cohort as `live`, read as `Enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CohortState {
    #[serde(alias = "live")]
    Enabled,
    Disabled,
}

impl CohortState {
    /// The state a client names, spelt as the API spells it.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Enabled" => Some(Self::Enabled),
            "Disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// The segment types the Cohorts API lists (`RealTime`, `Offline`), in the
/// snake_case its examples use.
pub const SEGMENT_TYPES: [&str; 2] = ["real_time", "offline"];
/// A new cohort's `segment_type` unless the request sets one.
pub const DEFAULT_SEGMENT_TYPE: &str = "real_time";
/// What earlier versions stored when no type was given, read as
/// [`DEFAULT_SEGMENT_TYPE`].
const LEGACY_DEFAULT_SEGMENT_TYPE: &str = "standard";

fn stored_segment_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let t = String::deserialize(d)?;
    Ok(match t.as_str() {
        LEGACY_DEFAULT_SEGMENT_TYPE => DEFAULT_SEGMENT_TYPE.to_string(),
        _ => t,
    })
}

/// A cohort as stored and returned by the API, in the field order of the
/// Cohorts API's examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    pub id: Uuid,
    pub code: u64,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub state: CohortState,
    /// The deployment's workspace (setting `workspace_id`): stamped by the
    /// store on every read, so a changed setting applies to every cohort.
    #[serde(default)]
    pub workspace_id: Uuid,
    #[serde(deserialize_with = "stored_segment_type")]
    pub segment_type: String,
    pub created_at: String,
    pub last_updated_at: String,
    /// Stored as given, never evaluated.
    pub query: Option<serde_json::Value>,
}

impl Cohort {
    /// Parses a stored cohort (of this or an earlier version) as of
    /// `workspace`.
    pub fn from_stored(json: &[u8], workspace: Uuid) -> Result<Self, serde_json::Error> {
        let mut c: Cohort = serde_json::from_slice(json)?;
        c.workspace_id = workspace;
        Ok(c)
    }
}

/// One line of a `segment` snapshot: the contract's fields, in order.
#[derive(Serialize)]
struct SnapshotLine<'a> {
    id: &'a Uuid,
    code: u64,
    name: &'a str,
    description: &'a str,
    tags: &'a [String],
    state: CohortState,
    workspace_id: &'a Uuid,
    segment_type: &'a str,
    created_at: &'a str,
    last_updated_at: &'a str,
}

/// `null` as `Some(None)` (clear the field), absence as `None` (keep it).
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Fields a client may set; all optional (PATCH sets only what is given).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortInput {
    pub name: Option<String>,
    /// `null` clears the description (as the API's `UpdateOrDelete`).
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub query: Option<serde_json::Value>,
    pub segment_type: Option<String>,
    /// `Enabled` or `Disabled`.
    pub state: Option<String>,
}

/// Why a cohort operation failed.
#[derive(Debug, Error)]
pub enum CohortError {
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error("a cohort named {0:?} already exists")]
    DuplicateName(String),
    #[error("no cohort with id {0}")]
    NotFound(Uuid),
    /// A compare-and-set lost to a concurrent change of the same cohort
    /// (cluster mode): nothing was written, and a retry can succeed.
    #[error("the cohort was changed concurrently; retry")]
    Conflict,
    #[error("cohort store: {0}")]
    Db(String),
}

macro_rules! db_err {
    ($($t:ty),*) => { $( impl From<$t> for CohortError { fn from(e: $t) -> Self { CohortError::Db(e.to_string()) } } )* };
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<IndexDbError> for CohortError {
    fn from(e: IndexDbError) -> Self {
        CohortError::Db(e.to_string())
    }
}

fn invalid(field: &'static str, why: impl Into<String>) -> CohortError {
    CohortError::Invalid(field, why.into())
}

fn check_text(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), CohortError> {
    let n = s.chars().count();
    if n < min || n > max || s.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be {min} to {max} characters, no control characters"),
        ));
    }
    Ok(())
}

impl CohortInput {
    /// Checks every field that is set.
    pub fn validate(&self) -> Result<(), CohortError> {
        if let Some(name) = &self.name {
            check_text("name", name, 1, 256)?;
        }
        if let Some(Some(d)) = &self.description {
            check_text("description", d, 0, 4096)?;
        }
        if let Some(tags) = &self.tags {
            if tags.len() > 100 {
                return Err(invalid("tags", "at most 100 tags"));
            }
            for t in tags {
                check_text("tags", t, 1, 128)?;
            }
        }
        if let Some(t) = &self.segment_type {
            if !SEGMENT_TYPES.contains(&t.as_str()) {
                return Err(invalid(
                    "segment_type",
                    format!("must be one of {}", SEGMENT_TYPES.join(", ")),
                ));
            }
        }
        if let Some(st) = &self.state {
            if CohortState::parse(st).is_none() {
                return Err(invalid("state", "must be Enabled or Disabled"));
            }
        }
        if let Some(q) = &self.query {
            if q.to_string().len() > 64 * 1024 {
                return Err(invalid("query", "at most 64 KiB of JSON"));
            }
        }
        Ok(())
    }
}

impl CohortInput {
    /// A new cohort from validated input (`name` is required), `Enabled`
    /// unless the input says otherwise.
    pub fn into_cohort(self, name: String, code: u64, now_ms: i64) -> Cohort {
        let now = rfc3339(now_ms);
        Cohort {
            id: Uuid::new_v4(),
            code,
            name,
            description: self.description.flatten().unwrap_or_default(),
            tags: self.tags.unwrap_or_default(),
            state: self
                .state
                .as_deref()
                .and_then(CohortState::parse)
                .unwrap_or(CohortState::Enabled),
            workspace_id: Uuid::nil(),
            segment_type: self
                .segment_type
                .unwrap_or_else(|| DEFAULT_SEGMENT_TYPE.into()),
            created_at: now.clone(),
            last_updated_at: now,
            query: self.query,
        }
    }

    /// Applies a PATCH to `cohort` (the name, if it changes, is the
    /// caller's to check for uniqueness first).
    pub fn apply_to(self, cohort: &mut Cohort, now_ms: i64) {
        if let Some(name) = self.name {
            cohort.name = name;
        }
        if let Some(d) = self.description {
            cohort.description = d.unwrap_or_default();
        }
        if let Some(st) = self.state.as_deref().and_then(CohortState::parse) {
            cohort.state = st;
        }
        if let Some(t) = self.tags {
            cohort.tags = t;
        }
        if let Some(t) = self.segment_type {
            cohort.segment_type = t;
        }
        if self.query.is_some() {
            cohort.query = self.query;
        }
        cohort.last_updated_at = rfc3339(now_ms);
    }
}

/// Cohorts as `segment` snapshot lines (the contract's fields, in order,
/// one line each ending in `\n`), ordered by code.
pub fn snapshot_lines(cohorts: &mut [Cohort]) -> Vec<u8> {
    cohorts.sort_by_key(|c| c.code);
    let mut out = Vec::new();
    for c in cohorts.iter() {
        let line = SnapshotLine {
            id: &c.id,
            code: c.code,
            name: &c.name,
            description: &c.description,
            tags: &c.tags,
            state: c.state,
            workspace_id: &c.workspace_id,
            segment_type: &c.segment_type,
            created_at: &c.created_at,
            last_updated_at: &c.last_updated_at,
        };
        serde_json::to_writer(&mut out, &line).expect("serialises");
        out.push(b'\n');
    }
    out
}

fn rfc3339(ms: i64) -> String {
    let mut v = Vec::with_capacity(24);
    write_rfc3339_ms(ms, &mut v);
    String::from_utf8(v).expect("ascii")
}

/// The cohort store.
#[derive(Clone)]
pub struct CohortStore {
    db: Arc<IndexDb>,
    workspace: Uuid,
}

fn parse_stored(json: &str, workspace: Uuid) -> Result<Cohort, CohortError> {
    Cohort::from_stored(json.as_bytes(), workspace).map_err(|e| CohortError::Db(e.to_string()))
}

fn read_cohort(
    table: &impl ReadableTable<&'static str, &'static str>,
    id: &Uuid,
    workspace: Uuid,
) -> Result<Cohort, CohortError> {
    let json = table
        .get(id.to_string().as_str())?
        .ok_or(CohortError::NotFound(*id))?;
    parse_stored(json.value(), workspace)
}

type Meta<'t> = redb::Table<'t, &'static str, u64>;

fn bump(meta: &mut Meta<'_>, key: &str) -> Result<u64, CohortError> {
    let next = meta.get(key)?.map_or(0, |v| v.value()) + 1;
    meta.insert(key, next)?;
    Ok(next)
}

impl CohortStore {
    /// The store over `db`, its cohorts in `workspace`.
    pub fn new(db: Arc<IndexDb>, workspace: Uuid) -> Result<Self, CohortError> {
        let store = Self { db, workspace };
        store.with_db(|db| {
            let txn = db.begin_write()?;
            txn.open_table(COHORTS)?;
            txn.open_table(NAMES)?;
            txn.open_table(META)?;
            txn.commit()?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Runs `op` on the database, reopening it after a storage error.
    fn with_db<T>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, CohortError>,
    ) -> Result<T, CohortError> {
        self.db.run(op, |e| matches!(e, CohortError::Db(_)))
    }

    pub fn create(&self, input: CohortInput, now_ms: i64) -> Result<Cohort, CohortError> {
        input.validate()?;
        let name = input
            .name
            .clone()
            .ok_or_else(|| invalid("name", "required"))?;
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let cohort = {
                let mut names = txn.open_table(NAMES)?;
                if names.get(name.as_str())?.is_some() {
                    return Err(CohortError::DuplicateName(name));
                }
                let mut meta = txn.open_table(META)?;
                let code = bump(&mut meta, "cohort_next_code")?;
                bump(&mut meta, "cohort_generation")?;
                let mut cohort = input.into_cohort(name, code, now_ms);
                cohort.workspace_id = self.workspace;
                let id = cohort.id.to_string();
                names.insert(cohort.name.as_str(), id.as_str())?;
                txn.open_table(COHORTS)?.insert(
                    id.as_str(),
                    serde_json::to_string(&cohort).expect("serialises").as_str(),
                )?;
                cohort
            };
            txn.commit()?;
            Ok(cohort)
        })
    }

    pub fn get(&self, id: &Uuid) -> Result<Cohort, CohortError> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            read_cohort(&txn.open_table(COHORTS)?, id, self.workspace)
        })
    }

    /// Every cohort, ordered by code.
    pub fn list(&self) -> Result<Vec<Cohort>, CohortError> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(COHORTS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, v) = entry?;
                out.push(parse_stored(v.value(), self.workspace)?);
            }
            out.sort_by_key(|c| c.code);
            Ok(out)
        })
    }

    pub fn patch(&self, id: &Uuid, input: CohortInput, now_ms: i64) -> Result<Cohort, CohortError> {
        input.validate()?;
        self.with_db(|db| {
            let txn = db.begin_write()?;
            // Read inside the write transaction: concurrent patches serialise.
            let mut cohort = read_cohort(&txn.open_table(COHORTS)?, id, self.workspace)?;
            {
                let mut names = txn.open_table(NAMES)?;
                if let Some(name) = input.name.clone().filter(|n| *n != cohort.name) {
                    if names.get(name.as_str())?.is_some() {
                        return Err(CohortError::DuplicateName(name));
                    }
                    names.remove(cohort.name.as_str())?;
                    names.insert(name.as_str(), id.to_string().as_str())?;
                    cohort.name = name;
                }
                input.apply_to(&mut cohort, now_ms);
                bump(&mut txn.open_table(META)?, "cohort_generation")?;
                let json = serde_json::to_string(&cohort).expect("serialises");
                txn.open_table(COHORTS)?
                    .insert(id.to_string().as_str(), json.as_str())?;
            }
            txn.commit()?;
            Ok(cohort)
        })
    }

    /// Deletes a cohort; returns it as it was.
    pub fn delete(&self, id: &Uuid) -> Result<Cohort, CohortError> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let cohort = read_cohort(&txn.open_table(COHORTS)?, id, self.workspace)?;
            txn.open_table(COHORTS)?.remove(id.to_string().as_str())?;
            txn.open_table(NAMES)?.remove(cohort.name.as_str())?;
            bump(&mut txn.open_table(META)?, "cohort_generation")?;
            txn.commit()?;
            Ok(cohort)
        })
    }

    /// The snapshot writer's progress and the current generation.
    pub fn snapshot_progress(&self) -> Result<(SnapshotProgress, u64), CohortError> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            let get = |k: &str| -> Result<Option<u64>, CohortError> {
                Ok(meta.get(k)?.map(|v| v.value()))
            };
            let progress = SnapshotProgress {
                covered: get("snapshot_generation")?,
                content_hash: get("snapshot_hash")?,
                at_ms: get("snapshot_at_ms")?.unwrap_or(0) as i64,
            };
            Ok((progress, get("cohort_generation")?.unwrap_or(0)))
        })
    }

    /// Every cohort as `segment` lines, each ending in `\n`.
    pub fn snapshot_content(&self) -> Result<Vec<u8>, CohortError> {
        Ok(snapshot_lines(&mut self.list()?))
    }

    /// Records the writer's progress (after its snapshot is durable in the
    /// WAL, or after a skip).
    pub fn save_snapshot_progress(&self, p: SnapshotProgress) -> Result<(), CohortError> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                if let Some(generation) = p.covered {
                    meta.insert("snapshot_generation", generation)?;
                }
                if let Some(hash) = p.content_hash {
                    meta.insert("snapshot_hash", hash)?;
                }
                meta.insert("snapshot_at_ms", p.at_ms.max(0) as u64)?;
            }
            txn.commit()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;
