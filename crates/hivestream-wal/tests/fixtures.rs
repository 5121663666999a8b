//! Committed regression files: WAL directories as crashes and disks leave
//! them (torn headers and payloads, flipped bits, zero and garbage tails,
//! impossible lengths, a newer format version), each with the exact
//! recovery it must get. Because the files are committed, they also pin
//! the on-disk format: a change that could no longer read an existing WAL
//! fails here.
//!
//! `cargo test -p hivestream-wal --test fixtures -- --ignored` rewrites the
//! files from their descriptions below (only when the format changes on
//! purpose, with a new version number).

use std::path::{Path, PathBuf};

use hivestream_wal::{encode_frame, Wal, WalError, WalOptions, WalReader, SEGMENT_HEADER};

/// What opening a fixture must give.
enum Expect {
    /// These payloads, after cutting this many bytes.
    Recovered(&'static [&'static str], u64),
    /// Refused as corrupt (never misread).
    Corrupt,
    /// Refused as written by a newer release, untouched.
    NewerFormat,
}

struct Fixture {
    name: &'static str,
    /// Segment files: (base LSN, bytes).
    segments: fn() -> Vec<(u64, Vec<u8>)>,
    expect: Expect,
}

fn frames(payloads: &[&str]) -> Vec<u8> {
    let mut out = SEGMENT_HEADER.to_vec();
    for p in payloads {
        encode_frame(p.as_bytes(), &mut out);
    }
    out
}

fn one(bytes: Vec<u8>) -> Vec<(u64, Vec<u8>)> {
    vec![(0, bytes)]
}

/// Three frames with one byte of the third changed at `offset` into it.
fn third_damaged(offset: usize) -> Vec<u8> {
    let mut b = frames(&["alpha", "beta", "gamma"]);
    let third = SEGMENT_HEADER.len() + (8 + 5) + (8 + 4);
    b[third + offset] ^= 0x10;
    b
}

fn fixtures() -> Vec<Fixture> {
    use Expect::*;
    vec![
        Fixture {
            name: "clean",
            segments: || one(frames(&["alpha", "beta", "gamma"])),
            expect: Recovered(&["alpha", "beta", "gamma"], 0),
        },
        Fixture {
            name: "header_only",
            segments: || one(SEGMENT_HEADER.to_vec()),
            expect: Recovered(&[], 0),
        },
        Fixture {
            name: "torn_frame_header",
            segments: || {
                let mut b = frames(&["alpha", "beta"]);
                b.extend_from_slice(&[5, 0, 0, 0, 0xaa]);
                one(b)
            },
            expect: Recovered(&["alpha", "beta"], 5),
        },
        Fixture {
            name: "torn_payload",
            segments: || {
                let full = frames(&["alpha", "beta", "gamma-and-more"]);
                one(full[..full.len() - 6].to_vec())
            },
            expect: Recovered(&["alpha", "beta"], 8 + 14 - 6),
        },
        Fixture {
            name: "flipped_payload_bit",
            segments: || one(third_damaged(8 + 2)),
            expect: Recovered(&["alpha", "beta"], 8 + 5),
        },
        Fixture {
            name: "flipped_length_bit",
            segments: || one(third_damaged(0)),
            expect: Recovered(&["alpha", "beta"], 8 + 5),
        },
        Fixture {
            name: "flipped_crc_bit",
            segments: || one(third_damaged(5)),
            expect: Recovered(&["alpha", "beta"], 8 + 5),
        },
        Fixture {
            name: "zero_tail",
            segments: || {
                let mut b = frames(&["alpha", "beta"]);
                b.extend_from_slice(&[0; 4096]);
                one(b)
            },
            expect: Recovered(&["alpha", "beta"], 4096),
        },
        Fixture {
            name: "garbage_tail",
            segments: || {
                let mut b = frames(&["alpha", "beta"]);
                b.extend((0..100u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
                one(b)
            },
            expect: Recovered(&["alpha", "beta"], 100),
        },
        Fixture {
            name: "impossible_length",
            segments: || {
                let mut b = frames(&["alpha"]);
                b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5]);
                one(b)
            },
            expect: Recovered(&["alpha"], 9),
        },
        Fixture {
            name: "two_segments_second_torn",
            segments: || {
                let first = frames(&["alpha", "beta"]);
                let base = (first.len() - SEGMENT_HEADER.len()) as u64;
                let second = frames(&["gamma", "delta"]);
                vec![(0, first), (base, second[..second.len() - 3].to_vec())]
            },
            expect: Recovered(&["alpha", "beta", "gamma"], 8 + 5 - 3),
        },
        Fixture {
            name: "newer_format_version",
            segments: || {
                let mut b = frames(&["alpha"]);
                b[7] = 2;
                one(b)
            },
            expect: NewerFormat,
        },
        Fixture {
            name: "short_header",
            segments: || one(SEGMENT_HEADER[..3].to_vec()),
            expect: Corrupt,
        },
    ]
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn segment_name(base: u64) -> String {
    format!("{base:020}.wal")
}

#[test]
fn committed_fixtures_recover_exactly() {
    for f in fixtures() {
        let src = fixture_dir(f.name);
        let dir = tempfile::tempdir().unwrap();
        for (base, bytes) in (f.segments)() {
            let committed = std::fs::read(src.join(segment_name(base))).unwrap_or_else(|e| {
                panic!(
                    "{}: fixture file missing ({e}); run the ignored generator",
                    f.name
                )
            });
            assert_eq!(
                committed, bytes,
                "{}: committed file differs from its description",
                f.name
            );
            std::fs::write(dir.path().join(segment_name(base)), committed).unwrap();
        }
        match (Wal::open(dir.path(), WalOptions::default()), f.expect) {
            (Ok((wal, recovery)), Expect::Recovered(payloads, cut)) => {
                assert_eq!(recovery.truncated_bytes, cut, "{}: bytes cut", f.name);
                let mut reader = WalReader::open(dir.path(), wal.start_lsn()).unwrap();
                let mut got = Vec::new();
                while let Some((_, p)) = reader.next(wal.end_lsn()).unwrap() {
                    got.push(String::from_utf8(p.to_vec()).unwrap());
                }
                assert_eq!(got, payloads, "{}: recovered frames", f.name);
            }
            (Err(WalError::Corrupt { .. }), Expect::Corrupt) => {}
            (Err(WalError::NewerFormat { found: 2, .. }), Expect::NewerFormat) => {}
            (Ok(_), Expect::Corrupt | Expect::NewerFormat) => {
                panic!("{}: opened a file it must refuse", f.name)
            }
            (Err(e), Expect::Recovered(..)) => panic!("{}: {e}", f.name),
            (Err(e), Expect::Corrupt | Expect::NewerFormat) => {
                panic!("{}: wrong error {e}", f.name)
            }
        }
    }
}

#[test]
#[ignore = "rewrites the committed fixture files"]
fn write_fixtures() {
    for f in fixtures() {
        let dir = fixture_dir(f.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (base, bytes) in (f.segments)() {
            std::fs::write(dir.join(segment_name(base)), bytes).unwrap();
        }
    }
}
