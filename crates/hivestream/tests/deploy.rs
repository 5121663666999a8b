//! The deployment files in `deploy/` against the real binary and tools:
//!
//! - `hivestream.toml` documents every setting with exactly the reference
//!   doc comments of `RawConfig`, parses as shipped, and parses and
//!   validates with every line uncommented;
//! - the systemd unit passes `systemd-analyze verify`, rates "OK" or better
//!   in `systemd-analyze security`, and its command line starts a server;
//! - the Dockerfile is multi-stage, runs as a non-root user with the data
//!   dir as its volume, builds with a toolchain the workspace accepts, and
//!   its environment starts a server (and refuses to without a key).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hivestream_core::config::RawConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `RawConfig`'s fields in order, each with its doc comment lines.
fn reference_docs() -> Vec<(String, Vec<String>)> {
    let src = read("crates/hivestream-core/src/config/raw.rs");
    let start = src.find("pub struct RawConfig {").unwrap();
    let body = &src[start..start + src[start..].find("\n}\n").unwrap()];
    let mut out = Vec::new();
    let mut doc = Vec::new();
    for line in body.lines().skip(1).map(str::trim) {
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if let Some(field) = line.strip_prefix("pub ") {
            let name = field.split(':').next().unwrap().to_string();
            out.push((name, std::mem::take(&mut doc)));
        }
    }
    out
}

/// The comment block right above line `at` (up to a blank line).
fn comment_above(lines: &[&str], at: usize) -> Vec<String> {
    let mut block: Vec<String> = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim().to_string())
        .collect();
    block.reverse();
    block
}

/// The sample with every `# key = value` (and `# [[keys]]`) line active.
fn uncommented(sample: &str) -> String {
    sample
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_setting(rest) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_setting(line: &str) -> bool {
    if line == "[[keys]]" {
        return true;
    }
    let Some((key, _)) = line.split_once(" = ") else {
        return false;
    };
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

#[test]
fn sample_config_documents_every_setting_and_every_line_is_valid() {
    let sample = read("deploy/hivestream.toml");
    let lines: Vec<&str> = sample.lines().collect();
    let reference = reference_docs();
    assert!(reference.len() >= 50, "{} fields", reference.len());
    for (field, doc) in &reference {
        let marker = if field == "keys" {
            "# [[keys]]".to_string()
        } else {
            format!("# {field} = ")
        };
        let at = lines
            .iter()
            .position(|l| l.starts_with(&marker))
            .unwrap_or_else(|| panic!("{field} is not in deploy/hivestream.toml"));
        assert_eq!(&comment_above(&lines, at), doc, "{field}: doc differs");
    }
    let before_keys = sample.split("# [[keys]]").next().unwrap();
    for line in before_keys.lines().filter_map(|l| l.strip_prefix("# ")) {
        if is_setting(line) {
            let key = line.split(" = ").next().unwrap();
            assert!(
                reference.iter().any(|(f, _)| f == key),
                "{key} is not a setting"
            );
        }
    }
    RawConfig::from_toml(&sample)
        .unwrap()
        .validate()
        .expect("the sample as shipped");
    let all = RawConfig::from_toml(&uncommented(&sample))
        .expect("every line uncommented parses")
        .validate()
        .expect("every line uncommented validates");
    assert!(!all.s3.objects.is_default());
    assert_eq!(all.cluster.nats.len(), 3);
    assert_eq!(all.keys.len(), 4);
}

/// Starts `hivestream ARGS` with `env`, returns whether it listened
/// (stopping it with SIGTERM) and its stderr.
fn starts(args: &[String], env: &[(&str, String)]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hivestream"))
        .args(args)
        .env_remove("HIVESTREAM_LOG_FORMAT")
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listened = line.starts_with("listening on ");
    if listened {
        assert!(common::signal(child.id(), "-TERM"), "kill -TERM failed");
    }
    let out = child.wait_with_output().unwrap();
    if listened {
        assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
    }
    (listened, String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn systemd_unit_verifies_is_hardened_and_its_command_starts() {
    let unit = read("deploy/systemd/hivestream.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            "/etc/hivestream/hivestream.toml" => {
                repo().join("deploy/hivestream.toml").display().to_string()
            }
            "/var/lib/hivestream" => data.display().to_string(),
            other => other.to_string(),
        })
        .chain(["--listen".to_string(), "127.0.0.1:0".to_string()])
        .collect();
    let (listened, log) = starts(&args, &[]);
    assert!(listened, "{log}");

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed; unit checks skipped");
        return;
    }
    let local = dir.path().join("hivestream.service");
    std::fs::write(
        &local,
        unit.replace(
            "/usr/local/bin/hivestream",
            env!("CARGO_BIN_EXE_hivestream"),
        ),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&local)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| l.split("hivestream.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(exposure <= 1.5, "exposure {exposure}:\n{text}");
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_its_environment_starts() {
    let file = read("deploy/Dockerfile");
    let from: Vec<&str> = file
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "build and runtime stages: {from:?}");
    // The build image's Rust is at least the workspace's rust-version.
    let image = from[0].split_whitespace().next().unwrap();
    let tag = image
        .strip_prefix("rust:")
        .unwrap()
        .split('-')
        .next()
        .unwrap();
    let minor = |v: &str| -> u32 { v.split('.').nth(1).unwrap().parse().unwrap() };
    let manifest = read("Cargo.toml");
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(minor(tag) >= minor(msrv), "{image} is older than {msrv}");
    let runtime = file.split("\nFROM ").nth(2).unwrap();
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "runs as root");
    let mut env: Vec<(&str, String)> = Vec::new();
    for line in runtime.lines().skip_while(|l| !l.starts_with("ENV ")) {
        let body = line.trim_start_matches("ENV ").trim_end_matches('\\');
        for (k, v) in body.split_whitespace().filter_map(|kv| kv.split_once('=')) {
            env.push((k, v.to_string()));
        }
        if !line.ends_with('\\') {
            break;
        }
    }
    let data_dir = &env
        .iter()
        .find(|(k, _)| *k == "HIVESTREAM_DATA_DIR")
        .unwrap()
        .1;
    assert!(
        runtime.contains(&format!("VOLUME [\"{data_dir}\"]")),
        "the data dir is not the volume"
    );
    assert!(read(".dockerignore").lines().any(|l| l == "target/"));

    // Its environment and command, with the data dir moved to a temp dir.
    let dir = tempfile::tempdir().unwrap();
    let local: Vec<(&str, String)> = env
        .iter()
        .map(|(k, v)| match *k {
            "HIVESTREAM_DATA_DIR" => (*k, dir.path().display().to_string()),
            "HIVESTREAM_LISTEN" => (*k, v.replace(":8080", ":0")),
            _ => (*k, v.clone()),
        })
        .collect();
    let cmd = vec!["serve".to_string()];
    assert!(runtime.contains("CMD [\"serve\"]"));
    let (listened, log) = starts(&cmd, &local);
    assert!(!listened, "listened on 0.0.0.0 without a key");
    assert!(log.contains("refusing to listen"), "{log}");
    let mut keyed = local.clone();
    keyed.push(("HIVESTREAM_API_KEYS", "container-test-key-0001".into()));
    let (listened, log) = starts(&cmd, &keyed);
    assert!(listened, "{log}");
    let first = log.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "logs are not JSON: {first}"
    );
}
