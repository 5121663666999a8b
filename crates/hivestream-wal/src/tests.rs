//! Unit and model tests for the log: the model is a plain `Vec` of committed
//! payloads; random operation sequences (append, commit, torn crash, bit-flip
//! of a torn tail, reopen, truncate) must leave the log reading back exactly
//! the model.

use super::*;
use proptest::prelude::*;
use std::io::{Seek, SeekFrom};

fn small() -> WalOptions {
    WalOptions { segment_bytes: 64 }
}

fn read_all(dir: &Path, from: Lsn, limit: Lsn) -> Vec<(Lsn, Vec<u8>)> {
    let mut reader = WalReader::open(dir, from).unwrap();
    let mut out = Vec::new();
    while let Some((lsn, p)) = reader.next(limit).unwrap() {
        out.push((lsn, p.to_vec()));
    }
    out
}

#[test]
fn append_commit_read_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, rec) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(rec.truncated_bytes, 0);
    let mut lsns = Vec::new();
    for i in 0..20u8 {
        lsns.push(wal.append(&[i; 10]).unwrap());
        if i % 3 == 0 {
            wal.commit().unwrap();
        }
    }
    let end = wal.commit().unwrap();
    assert!(list_segments(dir.path()).unwrap().len() > 3);
    let got = read_all(dir.path(), 0, end);
    assert_eq!(got.len(), 20);
    for (i, (lsn, p)) in got.iter().enumerate() {
        assert_eq!(*lsn, lsns[i]);
        assert_eq!(p, &vec![i as u8; 10]);
    }
}

#[test]
fn reader_stops_at_limit_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(b"one").unwrap();
    let first_end = wal.commit().unwrap();
    wal.append(b"two").unwrap();
    let end = wal.commit().unwrap();
    let mut reader = WalReader::open(dir.path(), 0).unwrap();
    assert_eq!(reader.next(first_end).unwrap().unwrap().1, b"one");
    assert!(reader.next(first_end).unwrap().is_none());
    assert_eq!(reader.next(end).unwrap().unwrap().1, b"two");
    assert!(reader.next(end).unwrap().is_none());
}

#[test]
fn torn_tail_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(b"kept").unwrap();
    let end = wal.commit().unwrap();
    let path = segment_path(dir.path(), 0);
    drop(wal);
    let mut partial = Vec::new();
    encode_frame(b"torn frame payload", &mut partial);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&partial[..partial.len() - 3]).unwrap();
    drop(f);
    let (mut wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(rec.truncated_bytes, partial.len() as u64 - 3);
    assert_eq!(wal.end_lsn(), end);
    wal.append(b"after").unwrap();
    let end = wal.commit().unwrap();
    let got: Vec<_> = read_all(dir.path(), 0, end)
        .into_iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(got, vec![b"kept".to_vec(), b"after".to_vec()]);
}

#[test]
fn a_newer_format_is_refused_untouched_and_a_foreign_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(b"written by this release").unwrap();
    wal.commit().unwrap();
    drop(wal);
    let path = segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    // A newer release's segment: same magic, version 2, frames this
    // release cannot judge. Opening must not cut them as a torn tail.
    bytes[7] = FORMAT_VERSION + 1;
    bytes.extend_from_slice(b"frames of an unknown shape");
    std::fs::write(&path, &bytes).unwrap();
    let Err(err) = Wal::open(dir.path(), WalOptions::default()) else {
        panic!("a newer segment was opened");
    };
    assert!(
        matches!(&err, WalError::NewerFormat { found, .. } if *found == FORMAT_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("newer hivestream"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the segment was changed"
    );
    bytes[..5].copy_from_slice(b"XXXXX");
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Wal::open(dir.path(), WalOptions::default()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn truncate_keeps_active_segment_and_reader_reports_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
    for i in 0..10u8 {
        wal.append(&[i; 40]).unwrap();
        wal.commit().unwrap();
    }
    let end = wal.end_lsn();
    let before = list_segments(dir.path()).unwrap().len();
    assert!(before > 2);
    let removed = wal.truncate_before(end).unwrap();
    assert_eq!(removed, before - 1);
    assert_eq!(wal.start_lsn(), list_segments(dir.path()).unwrap()[0].0);
    assert!(matches!(
        WalReader::open(dir.path(), 0).unwrap().next(end),
        Err(WalError::Truncated(0, _))
    ));
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.end_lsn(), end);
}

#[test]
fn damaged_committed_frame_is_reported_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(b"aaaa").unwrap();
    wal.append(b"bbbb").unwrap();
    let end = wal.commit().unwrap();
    let path = segment_path(dir.path(), 0);
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(HEADER_LEN + 8)).unwrap();
    f.write_all(b"X").unwrap();
    let mut reader = WalReader::open(dir.path(), 0).unwrap();
    assert!(matches!(
        reader.next(end),
        Err(WalError::Corrupt { lsn: 0, .. })
    ));
}

#[test]
fn rejects_empty_and_oversize_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(matches!(wal.append(b""), Err(WalError::PayloadSize(0))));
    let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
    assert!(matches!(wal.append(&big), Err(WalError::PayloadSize(_))));
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Commit,
    /// Crash while the staged frames were being written: only `keep` of
    /// their bytes reach the file, the last of them with `flip` xor'ed in.
    TornCrash {
        keep: usize,
        flip: u8,
    },
    /// Crash after the staged frames were written whole but not synced,
    /// with one byte among them damaged.
    DamagedCrash {
        at: usize,
        flip: u8,
    },
    /// Crash that leaves zeros after the last byte (ext4 can, when the
    /// file's size reached disk before its data).
    ZeroTail(usize),
    /// Crash while rolling to a new segment: a temp file is left behind.
    TmpLeftover,
    Reopen,
    /// Truncate at the LSN of the n-th committed record (modulo count).
    Truncate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 1..48).prop_map(Op::Append),
        3 => Just(Op::Commit),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(keep, flip)| Op::TornCrash { keep, flip }),
        1 => (any::<usize>(), 1..=255u8).prop_map(|(at, flip)| Op::DamagedCrash { at, flip }),
        1 => (0usize..64).prop_map(Op::ZeroTail),
        1 => Just(Op::TmpLeftover),
        1 => Just(Op::Reopen),
        1 => any::<usize>().prop_map(Op::Truncate),
    ]
}

/// Writes `bytes` after the end of the active segment, as a crash would
/// leave them, and drops what was staged.
fn crash_with(wal: &mut Wal, bytes: &[u8]) {
    wal.staged.clear();
    let mut f = OpenOptions::new()
        .append(true)
        .open(wal.active_path())
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// The model's answer to "which staged frames survive a crash that left
/// `len` of their bytes on disk, with byte `damaged` (if any) changed":
/// exactly the frames that lie whole before both the cut and the damage.
/// Computed from frame sizes alone, independent of the decoder under test.
fn surviving(staged: &[(Lsn, Vec<u8>)], len: usize, damaged: Option<usize>) -> usize {
    let limit = damaged.map_or(len, |d| d.min(len));
    let mut end = 0;
    staged
        .iter()
        .take_while(|(_, p)| {
            end += frame::frame_len(p.len());
            end <= limit
        })
        .count()
}

fn reopen(dir: &Path) -> Wal {
    Wal::open(dir, small()).unwrap().0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = reopen(dir.path());
        // (lsn, payload) of every committed record not truncated away.
        let mut model: Vec<(Lsn, Vec<u8>)> = Vec::new();
        let mut staged: Vec<(Lsn, Vec<u8>)> = Vec::new();
        for op in ops {
            match op {
                Op::Append(p) => {
                    let lsn = wal.append(&p).unwrap();
                    staged.push((lsn, p));
                }
                Op::Commit => {
                    wal.commit().unwrap();
                    model.append(&mut staged);
                }
                Op::TornCrash { keep, flip } => {
                    let bytes = wal.staged.clone();
                    let keep = if bytes.is_empty() { 0 } else { keep % bytes.len() };
                    let mut torn = bytes[..keep].to_vec();
                    let damaged = (flip != 0 && keep > 0).then(|| keep - 1);
                    if let Some(d) = damaged {
                        torn[d] ^= flip;
                    }
                    // Frames that reached the disk whole and intact survive
                    // (never acknowledged, so either way is allowed); the
                    // first torn or damaged one and all after it must not.
                    let n = surviving(&staged, keep, damaged);
                    crash_with(&mut wal, &torn);
                    model.extend(staged.drain(..).take(n));
                    wal = reopen(dir.path());
                }
                Op::DamagedCrash { at, flip } => {
                    let mut bytes = wal.staged.clone();
                    let damaged = (!bytes.is_empty()).then(|| at % bytes.len());
                    if let Some(d) = damaged {
                        bytes[d] ^= flip;
                    }
                    let n = surviving(&staged, bytes.len(), damaged);
                    crash_with(&mut wal, &bytes);
                    model.extend(staged.drain(..).take(n));
                    wal = reopen(dir.path());
                }
                Op::ZeroTail(n) => {
                    crash_with(&mut wal, &vec![0; n]);
                    staged.clear();
                    wal = reopen(dir.path());
                }
                Op::TmpLeftover => {
                    staged.clear();
                    let tmp = segment_path(dir.path(), wal.end_lsn()).with_extension("tmp");
                    drop(wal);
                    std::fs::write(&tmp, b"HSWAL\0\0\x01partial").unwrap();
                    wal = reopen(dir.path());
                    prop_assert!(!tmp.exists(), "temp segment not cleaned up");
                }
                Op::Reopen => {
                    staged.clear();
                    drop(wal);
                    wal = reopen(dir.path());
                }
                Op::Truncate(n) => {
                    if !model.is_empty() {
                        let at = model[n % model.len()].0;
                        wal.truncate_before(at).unwrap();
                        let start = wal.start_lsn();
                        model.retain(|(lsn, _)| *lsn >= start);
                        prop_assert!(start <= at);
                    }
                }
            }
            let expected_end = model.last().map_or(wal.start_lsn(), |(l, p)| l + frame::frame_len(p.len()) as u64);
            prop_assert_eq!(wal.end_lsn(), expected_end);
            let got = read_all(dir.path(), wal.start_lsn(), wal.end_lsn());
            prop_assert_eq!(&got, &model);
        }
    }
}
