//! The API against the published descriptions it is shaped like: Schemathesis
//! generates requests from the Events, Identity and Cohorts API files in
//! `../shared/reference/permutive-openapi` (read as published but for the
//! defects `reference/schemathesis_run.py` names) and runs them against a
//! real `serve`. Every answer must be below 500, and every documented answer
//! must match its schema and content type.

mod common;

use std::path::PathBuf;

use common::*;

const ADMIN_KEY: &str = "sk_reference_admin_key_0001";

fn reference_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/permutive-openapi");
    assert!(
        root.join("cohorts.json").exists(),
        "the published API descriptions are not at {}",
        root.display()
    );
    root
}

#[test]
fn the_three_published_descriptions_pass_schemathesis() {
    let mut setup = Setup::new(Backend::Local, "reference");
    setup.extra = vec!["--admin-key".into(), ADMIN_KEY.into()];
    let server = setup.start("1s");
    let work = setup.dir.path().join("schemathesis");
    std::fs::create_dir_all(&work).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/schemathesis_run.py");
    let examples = env_number("HIVESTREAM_SCHEMATHESIS_EXAMPLES", 30).to_string();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(reference_dir())
        .arg(format!("http://{}", server.addr))
        .arg(ADMIN_KEY)
        .arg(&work)
        .arg(&examples)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for file in ["events.json", "identity.json", "cohorts.json"] {
        let r = &results[file];
        println!("schemathesis {file}: {} ({})", r["summary"], r["cases"]);
        let log = std::fs::read_to_string(r["log"].as_str().unwrap()).unwrap_or_default();
        assert_eq!(
            r["exit"], 0,
            "schemathesis found failures in {file}:\n{log}"
        );
        assert!(
            r["cases"].as_str().is_some_and(|c| c.contains("generated")),
            "{file}: no test case ran:\n{log}"
        );
    }
    assert_eq!(server.terminate(), 0);
}
