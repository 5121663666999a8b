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
    Reopen,
    /// Truncate at the LSN of the n-th committed record (modulo count).
    Truncate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 1..48).prop_map(Op::Append),
        3 => Just(Op::Commit),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(keep, flip)| Op::TornCrash { keep, flip }),
        1 => Just(Op::Reopen),
        1 => any::<usize>().prop_map(Op::Truncate),
    ]
}

/// Applies a torn write of the staged bytes straight to the active file and
/// returns the bytes that reached it.
fn tear(wal: &mut Wal, keep: usize, flip: u8) -> Vec<u8> {
    let staged = std::mem::take(&mut wal.staged);
    let keep = if staged.is_empty() {
        0
    } else {
        keep % staged.len()
    };
    let mut torn = staged[..keep].to_vec();
    if let Some(last) = torn.last_mut() {
        *last ^= flip;
    }
    let path = wal.active_path();
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&torn).unwrap();
    torn
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
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
                    // Whole frames that reached the disk intact survive the
                    // crash (they were never acknowledged, so either way is
                    // allowed); the first damaged or partial one and all
                    // after it must not.
                    let torn = tear(&mut wal, keep, flip);
                    let survivors = frame::decode_prefix(&torn).0.len();
                    model.extend(staged.drain(..).take(survivors));
                    drop(wal);
                    wal = Wal::open(dir.path(), small()).unwrap().0;
                }
                Op::Reopen => {
                    staged.clear();
                    drop(wal);
                    wal = Wal::open(dir.path(), small()).unwrap().0;
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
