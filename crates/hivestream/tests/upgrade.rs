//! What a binary does with a data directory written by another release
//! (README "Operating hivestream" → Upgrades): a directory from before the
//! `FORMAT` file existed is adopted as format 1 and its backlog uploaded
//! exactly once; a directory or WAL segment of a newer format is refused
//! with a message naming the cause, and nothing in it is changed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A data dir holding `n` acknowledged, not yet uploaded events.
fn backlog(name: &str, n: usize) -> (Setup, Vec<String>) {
    let setup = Setup::new(Backend::Local, name);
    let server = setup.start("1h");
    let acked = send_batch(&server.addr, 0, n);
    server.kill9();
    (setup, acked)
}

#[test]
fn a_directory_from_before_the_format_file_is_adopted_and_drained() {
    let (setup, acked) = backlog("preformat", 200);
    let format = setup.data_dir().join("FORMAT");
    std::fs::remove_file(&format).unwrap();
    let server = setup.start("500ms");
    let objects = wait_for_objects(&setup, Duration::from_secs(15), |o| {
        event_counts(o).len() >= acked.len()
    });
    let counts = event_counts(&objects);
    assert!(acked.iter().all(|id| counts.get(id) == Some(&1)));
    assert_eq!(counts.len(), acked.len());
    assert_eq!(server.terminate(), 0);
    assert_eq!(
        std::fs::read_to_string(&format).unwrap(),
        "hivestream-data 1\n"
    );
}

fn refused(setup: &Setup) -> String {
    let before = snapshot(&setup.data_dir());
    assert!(setup.try_start("1s").is_none(), "a newer format was served");
    assert_eq!(
        snapshot(&setup.data_dir()),
        before,
        "the refused directory was changed"
    );
    std::fs::read_to_string(setup.log_path()).unwrap()
}

#[test]
fn a_newer_data_format_is_refused_untouched() {
    let (setup, _) = backlog("newerdir", 50);
    std::fs::write(setup.data_dir().join("FORMAT"), "hivestream-data 2\n").unwrap();
    let log = refused(&setup);
    assert!(
        log.contains("says format 2; this release reads up to format 1"),
        "{log}"
    );
}

#[test]
fn a_newer_wal_segment_is_refused_untouched() {
    let (setup, _) = backlog("newerwal", 50);
    let wal = setup.data_dir().join("wal");
    let segment = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[7] = 2;
    std::fs::write(&segment, &bytes).unwrap();
    let log = refused(&setup);
    assert!(log.contains("has format version 2"), "{log}");
    assert!(log.contains("written by a newer hivestream"), "{log}");
}
