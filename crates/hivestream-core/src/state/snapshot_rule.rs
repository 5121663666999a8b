//! When to write a `segment` snapshot: one rule for `serve` and the
//! cluster, a pure function over the writer's progress so that both
//! decide alike and the rule is tested once.
//!
//! Every cohort change moves a *generation* (a counter in the index for
//! `serve`, the cohort bucket's stream sequence for a cluster). A snapshot
//! is written when the generation moved since the last snapshot covered it
//! *and* the content differs from the last one written, or when
//! `segment_snapshot_interval` passed since the last one (so readers always
//! find a recent snapshot). A generation that moved without a visible
//! change (a code reserved, a name freed, a PATCH that set what was there)
//! is only marked covered: no object is written.

/// What the writer last did, as it keeps it durably.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// The generation the last snapshot (or a skip) covered.
    pub covered: Option<u64>,
    /// XXH3-64 of the last snapshot's content.
    pub content_hash: Option<u64>,
    /// When the last snapshot was written (ms since the epoch).
    pub at_ms: i64,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStep {
    /// The last snapshot covers this generation and is recent.
    UpToDate,
    /// The generation moved but the content is the last snapshot's: record
    /// `generation` as covered, keep `at_ms`, write nothing.
    Cover { generation: u64 },
    /// Write a snapshot of the content (hash `content_hash`) covering
    /// `generation`.
    Write { generation: u64, content_hash: u64 },
}

/// The hash a snapshot's content is compared by.
pub fn content_hash(content: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(content)
}

/// Whether the content must be read to decide: the generation moved since
/// the last snapshot, or the interval passed.
pub fn needs_content(
    progress: &SnapshotProgress,
    generation: u64,
    now_ms: i64,
    interval_ms: i64,
) -> bool {
    let stale = now_ms - progress.at_ms >= interval_ms;
    progress.covered != Some(generation) || stale
}

/// The step once the content was read (see [`needs_content`]).
pub fn decide(
    progress: &SnapshotProgress,
    generation: u64,
    content_hash: u64,
    now_ms: i64,
    interval_ms: i64,
) -> SnapshotStep {
    if !needs_content(progress, generation, now_ms, interval_ms) {
        return SnapshotStep::UpToDate;
    }
    let stale = now_ms - progress.at_ms >= interval_ms;
    if progress.content_hash == Some(content_hash) && !stale {
        return SnapshotStep::Cover { generation };
    }
    SnapshotStep::Write {
        generation,
        content_hash,
    }
}

/// The step for `generation` at `now_ms`; `hash` reads and hashes the
/// current content, and is called only when [`needs_content`].
pub fn next_step<E>(
    progress: &SnapshotProgress,
    generation: u64,
    now_ms: i64,
    interval_ms: i64,
    hash: impl FnOnce() -> Result<u64, E>,
) -> Result<SnapshotStep, E> {
    if !needs_content(progress, generation, now_ms, interval_ms) {
        return Ok(SnapshotStep::UpToDate);
    }
    Ok(decide(progress, generation, hash()?, now_ms, interval_ms))
}

impl SnapshotProgress {
    /// The progress after `step` was carried out at `now_ms`.
    pub fn after(self, step: SnapshotStep, now_ms: i64) -> Self {
        match step {
            SnapshotStep::UpToDate => self,
            SnapshotStep::Cover { generation } => Self {
                covered: Some(generation),
                ..self
            },
            SnapshotStep::Write {
                generation,
                content_hash,
            } => Self {
                covered: Some(generation),
                content_hash: Some(content_hash),
                at_ms: now_ms,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn step(p: &SnapshotProgress, generation: u64, now: i64, hash: u64) -> SnapshotStep {
        next_step::<()>(p, generation, now, HOUR, || Ok(hash)).unwrap()
    }

    #[test]
    fn the_first_snapshot_is_written_at_once_even_when_empty() {
        let p = SnapshotProgress::default();
        let s = step(&p, 0, 10, content_hash(b""));
        assert_eq!(
            s,
            SnapshotStep::Write {
                generation: 0,
                content_hash: content_hash(b"")
            }
        );
        let p = p.after(s, 10);
        assert_eq!(p.at_ms, 10);
        assert_eq!(step(&p, 0, 20, content_hash(b"")), SnapshotStep::UpToDate);
    }

    #[test]
    fn a_change_is_written_but_an_invisible_one_only_covered() {
        let p = SnapshotProgress::default().after(step(&SnapshotProgress::default(), 1, 0, 7), 0);
        assert_eq!(
            step(&p, 2, 5, 8),
            SnapshotStep::Write {
                generation: 2,
                content_hash: 8
            }
        );
        let covered = step(&p, 2, 5, 7);
        assert_eq!(covered, SnapshotStep::Cover { generation: 2 });
        let p = p.after(covered, 5);
        assert_eq!(
            (p.covered, p.at_ms),
            (Some(2), 0),
            "a skip keeps the interval clock"
        );
        assert_eq!(step(&p, 2, 6, 7), SnapshotStep::UpToDate);
    }

    #[test]
    fn the_interval_writes_the_same_content_again() {
        let p = SnapshotProgress {
            covered: Some(3),
            content_hash: Some(7),
            at_ms: 0,
        };
        assert_eq!(step(&p, 3, HOUR - 1, 7), SnapshotStep::UpToDate);
        assert_eq!(
            step(&p, 3, HOUR, 7),
            SnapshotStep::Write {
                generation: 3,
                content_hash: 7
            }
        );
        assert_eq!(
            step(&p, 4, HOUR, 7),
            SnapshotStep::Write {
                generation: 4,
                content_hash: 7
            }
        );
    }

    #[test]
    fn the_content_is_read_only_when_needed() {
        let p = SnapshotProgress {
            covered: Some(3),
            content_hash: Some(7),
            at_ms: 0,
        };
        let untouched = next_step(&p, 3, 1, HOUR, || -> Result<u64, ()> { panic!("read") });
        assert_eq!(untouched, Ok(SnapshotStep::UpToDate));
        assert_eq!(next_step(&p, 4, 1, HOUR, || Err("down")), Err("down"));
    }
}
