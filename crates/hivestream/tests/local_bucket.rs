//! The local-directory bucket shows readers nothing but complete objects,
//! whatever moment the process dies at (issue 8).
//!
//! The server aborts half-way through writing an object into the local
//! bucket (failpoint `upload.local_partial_write`). The partial write must
//! sit outside the tree; after a restart it must be gone, the tree must hold
//! only contract keys, and `pyarrow.dataset` (which, like Spark and Hive,
//! reads every file not starting with `.` or `_`) must read every
//! acknowledged event exactly once.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::verify::{assert_exactly_once, files_under, is_contract_key};
use common::*;

const PYARROW: &str = r#"
import json, sys
import pyarrow.dataset as ds
t = ds.dataset(sys.argv[1], format="json", partitioning="hive").to_table()
print(json.dumps([str(x) for x in t.column("event_id").to_pylist()]))
"#;

fn pyarrow_ids(setup: &Setup) -> Vec<String> {
    let tree = setup.dir.path().join("bucket/type=events");
    serde_json::from_value(python_json(PYARROW, &[tree.to_str().unwrap()])).unwrap()
}

#[test]
fn a_crash_mid_write_leaves_nothing_in_the_tree() {
    let mut setup = Setup::new(Backend::Local, "localbucket");
    setup.env = vec![(
        "HIVESTREAM_FAILPOINT".into(),
        "upload.local_partial_write:1".into(),
    )];
    let mut server = setup.start("300ms");
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.extend(send_batch(&server.addr, i * 50, 50));
    }
    assert!(
        server.exited_within(Duration::from_secs(20)),
        "the failpoint inside the local write was never reached"
    );
    server.kill9();
    let staging = setup.data_dir().join("staging");
    let partial = files_under(&staging);
    assert_eq!(
        partial.len(),
        1,
        "the crash should leave exactly one partial write, in the staging dir"
    );
    let tree = files_under(&setup.dir.path().join("bucket"));
    let strays: Vec<&String> = tree.iter().filter(|k| !is_contract_key(k)).collect();
    assert!(strays.is_empty(), "partial files in the tree: {strays:?}");

    setup.env.clear();
    let server = setup.start("300ms");
    acked.extend(send_batch(&server.addr, 5000, 50));
    assert_eq!(server.terminate(), 0);
    assert!(
        files_under(&staging).is_empty(),
        "the restart removes leftover staging files"
    );
    let d = assert_exactly_once(&setup, &acked);
    let ids = pyarrow_ids(&setup);
    assert_eq!(ids.len(), acked.len(), "pyarrow rows");
    assert_eq!(
        ids.iter().collect::<HashSet<_>>(),
        acked.iter().collect::<HashSet<_>>()
    );
    eprintln!("local bucket after a crash mid-write: {d:?}");
}
