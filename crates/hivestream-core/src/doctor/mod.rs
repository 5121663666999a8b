//! `hivestream doctor`: checks the sink exactly as `serve` would use it and
//! says what is wrong and how to fix it.
//!
//! Every check goes through the same [`ObjectStore`] and the same calls that
//! uploads use (credentials, list, [`put_new`] with the configured object
//! settings, get, delete of a probe object under the prefix), so a green
//! doctor means uploads will work. S3 questions the object store cannot
//! answer are asked with raw requests signed by object_store's own SigV4
//! authorizer ([`s3`]): which region the bucket is in (`HEAD` bucket,
//! `x-amz-bucket-region`), whether its policy would refuse our PUTs
//! (`GET ?policy`, judged by [`policy`]), whether S3 applied the object
//! settings to the probe (`HEAD` probe), and whether its public access
//! block is on (`GET ?publicAccessBlock`).
//!
//! The probe object's name starts with `_`, which Hive, Athena and Spark
//! treat as hidden, and it is deleted straight away. Secrets never reach the
//! report: the access key id is shown masked, the secret not at all.

use std::fmt::Write as _;
use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::{Config, SinkTarget};
use crate::sink::object::ObjectSettings;
use crate::sink::{build_store, put_new, s3_builder, s3_store};

mod objects;
pub mod policy;
mod s3;

use s3::{bucket_url, check_public_access_block, check_region, mask, Signer};

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Works, but something should be changed.
    Warn,
    /// Uploads will not work until this is fixed.
    Fail,
    /// Not checked (not applicable, or an earlier check failed).
    Skip,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    pub fix: Option<String>,
}

/// Every check's result, in the order run.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn push(&mut self, name: &'static str, outcome: Outcome, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            outcome,
            detail: detail.into(),
            fix: None,
        });
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.with_fix(name, Outcome::Fail, detail, fix);
    }

    fn with_fix(
        &mut self,
        name: &'static str,
        outcome: Outcome,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.checks.push(Check {
            name,
            outcome,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.outcome == Outcome::Fail)
    }

    /// The report as text, one check per line, with fixes indented below.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let tag = match c.outcome {
                Outcome::Ok => "ok  ",
                Outcome::Warn => "WARN",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
            };
            let _ = writeln!(out, "[{tag}] {}: {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "       fix: {fix}");
            }
        }
        let verdict = if self.failed() {
            "uploads will fail until the FAIL lines are fixed"
        } else {
            "the sink is ready"
        };
        let _ = writeln!(out, "{verdict}");
        out
    }
}

/// Runs every check that applies to the configured sink.
pub async fn run(cfg: &Config) -> Report {
    let mut report = Report::default();
    match &cfg.sink {
        SinkTarget::Memory => report.with_fix(
            "sink",
            Outcome::Warn,
            "memory:// keeps objects only while the process runs",
            "use s3://BUCKET[/PREFIX] or file://DIR outside tests",
        ),
        SinkTarget::Local(dir) => {
            report.push(
                "sink",
                Outcome::Ok,
                format!("local directory {}", dir.display()),
            );
            match build_store(cfg) {
                Ok(store) => probe(&mut report, store.as_ref(), &cfg.prefix, None, false).await,
                Err(e) => report.fail(
                    "directory",
                    e.to_string(),
                    "create it or choose a writable path",
                ),
            }
        }
        SinkTarget::S3 { bucket } => check_s3(&mut report, cfg, bucket).await,
    }
    report
}

async fn check_s3(report: &mut Report, cfg: &Config, bucket: &str) {
    let builder = s3_builder(bucket, &cfg.s3);
    let region = builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".into());
    let where_ = cfg.s3.endpoint.as_deref().unwrap_or("AWS");
    report.push(
        "sink",
        Outcome::Ok,
        format!("s3://{bucket}/{} in {region} ({where_})", cfg.prefix),
    );
    let s3 = match builder.build() {
        Ok(s3) => Arc::new(s3),
        Err(e) => {
            return report.fail(
                "settings",
                e.to_string(),
                "check --region, --endpoint and the bucket name",
            )
        }
    };
    let Some(cred) = credentials(report, &s3).await else {
        return;
    };
    let signer = Signer {
        cred,
        region: region.clone(),
        base: bucket_url(cfg.s3.endpoint.as_deref(), bucket, &region),
    };
    if !check_region(report, &signer, &region).await {
        return;
    }
    let arn = format!(
        "arn:aws:s3:::{bucket}/{}_hivestream_doctor_probe",
        cfg.prefix
    );
    let denied = objects::check_bucket_policy(report, &signer, arn, &cfg.s3.objects).await;
    match s3_store(bucket, &cfg.s3) {
        Ok(store) => {
            let verify = Some((&signer, &cfg.s3.objects));
            probe(
                report,
                store.as_ref(),
                &cfg.prefix,
                verify,
                !denied.is_empty(),
            )
            .await;
        }
        Err(e) => report.fail("settings", e.to_string(), "check the object settings"),
    }
    check_public_access_block(report, &signer, bucket, cfg.s3.endpoint.is_some()).await;
}

async fn credentials(
    report: &mut Report,
    s3: &AmazonS3,
) -> Option<Arc<object_store::aws::AwsCredential>> {
    match s3.credentials().get_credential().await {
        Ok(cred) => {
            report.push(
                "credentials",
                Outcome::Ok,
                format!("found (access key id {})", mask(&cred.key_id)),
            );
            Some(cred)
        }
        Err(e) => {
            report.fail(
                "credentials",
                format!("none found: {e}"),
                "pass --access-key-id/--secret-access-key, set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run with an instance or task role",
            );
            None
        }
    }
}

/// List, create-only put, get, conditional re-put and delete of a probe
/// object under the prefix, through the store that uploads use.
/// With `verify`, also checks S3 applied the object settings to the probe;
/// `denied` says the bucket policy check already explained a refusal.
async fn probe(
    report: &mut Report,
    store: &dyn ObjectStore,
    prefix: &str,
    verify: Option<(&Signer, &ObjectSettings)>,
    denied: bool,
) {
    use futures::StreamExt;
    let list_prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
    match store.list(list_prefix.as_ref()).next().await.transpose() {
        Ok(_) => report.push("list", Outcome::Ok, "can list the prefix"),
        Err(e) => report.fail(
            "list",
            short(&e),
            "grant s3:ListBucket on the bucket (see `hivestream iam-policy`)",
        ),
    }
    let key = format!(
        "{prefix}_hivestream_doctor_{}",
        uuid::Uuid::new_v4().simple()
    );
    let location = ObjectPath::from(key.as_str());
    let content = PutPayload::from_static(b"hivestream doctor probe\n");
    // The very call uploads make, fallback included.
    if let Err(e) = put_new(store, &location, content.clone()).await {
        let fix = if denied {
            "see the bucket policy line above"
        } else {
            "grant s3:PutObject on BUCKET/PREFIX/* (and, with SSE-KMS, kms:GenerateDataKey on \
             the key; see `hivestream iam-policy`)"
        };
        return report.fail("put", format!("cannot write {key}: {}", short(&e)), fix);
    }
    report.push("put", Outcome::Ok, format!("wrote {key}"));
    if let Some((signer, settings)) = verify {
        objects::check_applied(report, signer, &key, settings).await;
    }
    match store.get(&location).await {
        Ok(got) => match got.bytes().await {
            Ok(b) if b.as_ref() == b"hivestream doctor probe\n" => {
                report.push("get", Outcome::Ok, "read the probe back intact")
            }
            Ok(_) => report.fail("get", "the probe came back different", "check the endpoint"),
            Err(e) => report.fail("get", short(&e), "grant s3:GetObject"),
        },
        Err(e) => report.fail("get", short(&e), "grant s3:GetObject on BUCKET/PREFIX/*"),
    }
    // A bare create-only PUT on an existing key: does the endpoint honour
    // If-None-Match?
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(&location, content, create).await {
        Err(object_store::Error::AlreadyExists { .. }) => report.push(
            "conditional put",
            Outcome::Ok,
            "If-None-Match is honoured: a replayed upload never rewrites an object",
        ),
        Ok(_) => report.push(
            "conditional put",
            Outcome::Warn,
            "the endpoint ignores If-None-Match; replays rewrite identical bytes (still no duplicates)",
        ),
        Err(e) => report.push(
            "conditional put",
            Outcome::Warn,
            format!("not supported ({}); uploads fall back to HEAD + PUT", short(&e)),
        ),
    }
    match store.delete(&location).await {
        Ok(()) => report.push("delete", Outcome::Ok, "removed the probe"),
        Err(e) => report.with_fix(
            "delete",
            Outcome::Warn,
            format!("cannot delete {key}: {}", short(&e)),
            "grant s3:DeleteObject (used to clean up probes and aborted uploads)",
        ),
    }
}
/// The first line of an object_store error, which never holds a secret
/// (object_store redacts credentials) but can be long.
fn short(e: &object_store::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("");
    match first.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &first[..i]),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_sink_passes_and_leaves_no_probe() {
        let dir = tempfile::tempdir().unwrap();
        let raw = crate::config::RawConfig {
            sink: Some(format!("file://{}", dir.path().join("bucket").display())),
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        };
        let report = run(&raw.validate().unwrap()).await;
        assert!(!report.failed(), "{}", report.render());
        let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
        for want in ["list", "put", "get", "conditional put", "delete"] {
            assert!(names.contains(&want), "{names:?}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path().join("bucket"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "probe left behind: {left:?}");
    }
}
