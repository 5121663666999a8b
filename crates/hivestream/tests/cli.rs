//! The non-serving commands against real sinks: `doctor` passes on a good
//! sink (local directory, SeaweedFS) and fails with the right diagnosis on a
//! missing bucket or a wrong secret, never printing the secret;
//! `iam-policy` prints a policy scoped to the bucket and prefix.

mod common;

use std::process::Command;

use common::*;

fn doctor(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hivestream"))
        .arg("doctor")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run doctor");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn doctor_passes_on_every_working_sink() {
    for backend in backends() {
        let setup = Setup::new(backend.clone(), "doctor");
        let data = setup.data_dir().display().to_string();
        let (code, out) = match &backend {
            Backend::Local => {
                let sink = format!("file://{}", setup.dir.path().join("bucket").display());
                doctor(&["--data-dir", &data, "--sink", &sink], &[])
            }
            Backend::S3 { endpoint, bucket } => {
                let sink = format!("s3://{bucket}/{}", setup.prefix);
                doctor(
                    &["--data-dir", &data, "--sink", &sink, "--endpoint", endpoint],
                    &[],
                )
            }
        };
        assert_eq!(code, 0, "{backend:?}:\n{out}");
        for check in ["list", "put", "get", "conditional put", "delete"] {
            assert!(
                out.contains(&format!("] {check}: ")),
                "{check} missing:\n{out}"
            );
        }
        assert!(out.contains("the sink is ready"), "{out}");
        assert!(
            setup.objects().is_empty(),
            "{backend:?}: doctor left its probe behind"
        );
    }
}

#[test]
fn doctor_explains_a_missing_bucket_and_a_wrong_secret() {
    let Some(Backend::S3 { endpoint, bucket }) = backends().into_iter().nth(1) else {
        eprintln!("no S3 endpoint in this run; skipped");
        return;
    };
    let (code, out) = doctor(
        &[
            "--sink",
            "s3://no-such-bucket-here/x",
            "--endpoint",
            &endpoint,
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] bucket: does not exist"), "{out}");

    let wrong = "wr0ng-s3cr3t-value";
    let sink = format!("s3://{bucket}/x");
    let (code, out) = doctor(
        &["--sink", &sink, "--endpoint", &endpoint],
        &[("AWS_SECRET_ACCESS_KEY", wrong)],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[FAIL] credentials: S3 rejected the signature"),
        "{out}"
    );
    assert!(!out.contains(wrong), "the secret was printed:\n{out}");
}

#[test]
fn iam_policy_is_scoped_to_bucket_and_prefix() {
    let out = Command::new(env!("CARGO_BIN_EXE_hivestream"))
        .args(["iam-policy", "--bucket", "my-bucket", "--prefix", "/raw/"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statements = v["Statement"].as_array().unwrap();
    let objects = statements
        .iter()
        .find(|s| s["Sid"] == "HivestreamObjects")
        .unwrap();
    assert_eq!(objects["Resource"][0], "arn:aws:s3:::my-bucket/raw/*");
    for action in ["s3:Get*", "s3:Put*", "s3:Delete*"] {
        assert!(
            objects["Action"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == action),
            "{action}"
        );
    }
    let list = statements
        .iter()
        .find(|s| s["Sid"] == "HivestreamList")
        .unwrap();
    assert_eq!(list["Resource"][0], "arn:aws:s3:::my-bucket");
    assert_eq!(
        list["Condition"]["StringLike"]["s3:prefix"],
        serde_json::json!(["raw", "raw/*"])
    );
}

#[test]
fn iam_policy_grants_the_kms_key_by_arn_only() {
    let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let out = Command::new(env!("CARGO_BIN_EXE_hivestream"))
        .args(["iam-policy", "--bucket", "b-1", "--kms-key", arn])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kms = v["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "HivestreamKms")
        .expect("a KMS statement");
    assert_eq!(kms["Resource"], serde_json::json!([arn]));
    assert_eq!(
        kms["Action"],
        serde_json::json!(["kms:GenerateDataKey", "kms:Decrypt"])
    );
    let alias = Command::new(env!("CARGO_BIN_EXE_hivestream"))
        .args(["iam-policy", "--bucket", "b-1", "--kms-key", "alias/events"])
        .output()
        .unwrap();
    assert!(!alias.status.success());
    assert!(String::from_utf8_lossy(&alias.stderr).contains("needs the key's ARN"));
}
