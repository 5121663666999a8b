//! Opening a WAL whose last segment holds arbitrary bytes after its header
//! (what a crash, a bad disk or an attacker could leave): it must never
//! panic, must keep exactly the valid frame prefix, and must leave a log
//! that takes new records and reads them back.
#![no_main]

use hivestream_wal::frame::decode_prefix;
use hivestream_wal::{Wal, WalOptions, WalReader, SEGMENT_HEADER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = SEGMENT_HEADER.to_vec();
    seg.extend_from_slice(data);
    std::fs::write(dir.path().join(format!("{:020}.wal", 0)), &seg).unwrap();
    let (mut wal, recovery) = Wal::open(dir.path(), WalOptions::default()).expect("open");
    let (valid, used) = decode_prefix(data);
    assert_eq!(recovery.truncated_bytes, (data.len() - used) as u64);
    assert_eq!(wal.end_lsn(), used as u64);
    wal.append(b"after recovery").unwrap();
    let end = wal.commit().unwrap();
    let mut reader = WalReader::open(dir.path(), 0).unwrap();
    let mut got = Vec::new();
    while let Some((_, p)) = reader.next(end).unwrap() {
        got.push(p.to_vec());
    }
    assert_eq!(got.len(), valid.len() + 1);
    assert!(got.iter().zip(&valid).all(|(a, b)| a == b));
    assert_eq!(got.last().unwrap(), b"after recovery");
});
