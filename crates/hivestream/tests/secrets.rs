//! Secrets never appear in logs, errors or metrics: the server runs with S3
//! credentials from a config file and API keys from the environment, at the
//! most verbose log level, takes good and wrong keys, and (in a second run)
//! a wrong S3 secret so that upload errors are logged too. Every byte it
//! wrote to its log, every `/metrics` page and every `doctor` report is
//! searched for each secret.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const API_KEYS: [&str; 2] = ["api-key-Q7f3xK9p", "api-key-Z2m8wL4r"];
const WRONG_PRESENTED: &str = "presented-wrong-key-V5n1";
const WRONG_SECRET: &str = "wrong-secret-R8t2yU6i";

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{what} contains the secret {s:?}");
    }
}

fn exercise(server: &Server) -> String {
    let body = event_json(1);
    let good = [JSON, ("x-api-key", API_KEYS[0])];
    assert_eq!(
        server.post("/v2.0/events", &good, body.as_bytes()).status,
        201
    );
    let q = format!("/v2.0/events?k={}", API_KEYS[1]);
    assert_eq!(server.post(&q, &[JSON], body.as_bytes()).status, 201);
    let bad = [JSON, ("x-api-key", WRONG_PRESENTED)];
    assert_eq!(
        server.post("/v2.0/events", &bad, body.as_bytes()).status,
        401
    );
    let q = format!("/v2.0/events?k={WRONG_PRESENTED}");
    assert_eq!(server.post(&q, &[JSON], body.as_bytes()).status, 401);
    String::from_utf8(server.get("/metrics").body).unwrap()
}

fn config_file(setup: &Setup, secret: &str) -> String {
    let path = setup.dir.path().join("hivestream.toml");
    let key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
    let text = format!(
        "access_key_id = \"{key_id}\"\nsecret_access_key = \"{secret}\"\nshutdown_timeout = \"3s\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn secrets_stay_out_of_logs_metrics_and_reports() {
    for backend in backends() {
        let real_secret =
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "unused".into());
        let mut secrets = API_KEYS.to_vec();
        secrets.extend([WRONG_PRESENTED, WRONG_SECRET, real_secret.as_str()]);
        let mut setup = Setup::new(backend.clone(), "secrets");
        setup.env = vec![
            ("HIVESTREAM_API_KEYS".into(), API_KEYS.join(",")),
            ("HIVESTREAM_LOG".into(), "trace".into()),
        ];
        let is_s3 = matches!(backend, Backend::S3 { .. });
        let mut metrics = Vec::new();
        for secret in [real_secret.as_str(), WRONG_SECRET] {
            if !is_s3 && secret == WRONG_SECRET {
                continue;
            }
            setup.extra = vec!["--config".into(), config_file(&setup, secret)];
            let server = setup.start("200ms");
            metrics.push(exercise(&server));
            // Let uploads run (and, with the wrong secret, fail and log).
            std::thread::sleep(Duration::from_millis(1500));
            metrics.push(exercise(&server));
            server.terminate();
            let report = doctor_report(&setup);
            assert_clean("doctor's report", &report, &secrets);
        }
        let log = std::fs::read_to_string(setup.log_path()).unwrap();
        assert!(
            log.contains("hivestream serving"),
            "the server log is missing"
        );
        if is_s3 {
            assert!(
                log.contains("upload failed"),
                "the wrong secret should have made uploads fail"
            );
        }
        assert_clean("the server log", &log, &secrets);
        for m in &metrics {
            assert_clean("/metrics", m, &secrets);
        }
        eprintln!(
            "{backend:?}: {} log lines and {} metrics pages clean",
            log.lines().count(),
            metrics.len()
        );
    }
}

fn doctor_report(setup: &Setup) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hivestream"));
    cmd.arg("doctor")
        .arg("--data-dir")
        .arg(setup.data_dir())
        .args(&setup.extra)
        .env("HIVESTREAM_LOG", "trace");
    match &setup.backend {
        Backend::Local => {
            cmd.arg("--sink").arg(format!(
                "file://{}",
                setup.dir.path().join("bucket").display()
            ));
        }
        Backend::S3 { endpoint, bucket } => {
            cmd.args([
                "--sink",
                &format!("s3://{bucket}/{}", setup.prefix),
                "--endpoint",
                endpoint,
            ]);
        }
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}
