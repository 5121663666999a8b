//! `hivestream doctor`: checks the sink exactly as `serve` would use it and
//! says what is wrong and how to fix it.
//!
//! Every check goes through the same [`ObjectStore`] and the same calls that
//! uploads use (credentials, list, [`put_new`], get, delete of a probe
//! object under the prefix), so a green doctor means uploads will work. Two S3
//! questions the object store cannot answer are asked with raw requests
//! signed by object_store's own SigV4 authorizer: which region the bucket is
//! in (`HEAD` bucket, `x-amz-bucket-region`) and whether its public access
//! block is on (`GET ?publicAccessBlock`).
//!
//! The probe object's name starts with `_`, which Hive, Athena and Spark
//! treat as hidden, and it is deleted straight away. Secrets never reach the
//! report: the access key id is shown masked, the secret not at all.

use std::fmt::Write as _;
use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::{Config, SinkTarget};
use crate::sink::{build_store, put_new, s3_builder};

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
                Ok(store) => probe(&mut report, store.as_ref(), &cfg.prefix).await,
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
    probe(report, s3.as_ref(), &cfg.prefix).await;
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

/// `AKIA…WXYZ`: enough to tell keys apart, not enough to matter.
fn mask(key_id: &str) -> String {
    let chars: Vec<char> = key_id.chars().collect();
    if chars.len() <= 8 {
        let tail: String = chars[chars.len().saturating_sub(2)..].iter().collect();
        return format!("…{tail}");
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// The bucket's base URL: path-style on a custom endpoint (as uploads use),
/// virtual-hosted on AWS unless the name has dots (TLS would not match).
fn bucket_url(endpoint: Option<&str>, bucket: &str, region: &str) -> String {
    match endpoint {
        Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
        None if bucket.contains('.') => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
    }
}

/// Sends raw requests signed with SigV4.
struct Signer {
    cred: Arc<object_store::aws::AwsCredential>,
    region: String,
    base: String,
}

struct RawResponse {
    status: u16,
    bucket_region: Option<String>,
    body: String,
}

impl Signer {
    async fn send(&self, method: &str, query: &str) -> Result<RawResponse, String> {
        let url = format!("{}/{query}", self.base);
        let mut req: HttpRequest = object_store::client::HttpRequest::new(HttpRequestBody::empty());
        *req.method_mut() = method.parse().map_err(|_| "bad method".to_string())?;
        *req.uri_mut() = url.parse().map_err(|e| format!("{url}: {e}"))?;
        AwsAuthorizer::new(&self.cred, "s3", &self.region).authorize(&mut req, None);
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client
            .request(req.method().clone(), &url)
            .headers(req.headers().clone())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let bucket_region = resp
            .headers()
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        Ok(RawResponse {
            status,
            bucket_region,
            body,
        })
    }
}

/// The `<Code>` of an S3 error body.
fn error_code(body: &str) -> &str {
    xml_value(body, "Code").unwrap_or("")
}

fn xml_value<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find("</")?;
    Some(body[start..start + len].trim())
}

/// HEAD bucket: does it exist, and is it in the configured region?
/// Returns whether the later checks can run.
async fn check_region(report: &mut Report, signer: &Signer, region: &str) -> bool {
    let resp = match signer.send("HEAD", "").await {
        Ok(r) => r,
        Err(e) => {
            report.fail(
                "bucket",
                format!("cannot reach the endpoint: {e}"),
                "check --endpoint, DNS and network access to S3",
            );
            return false;
        }
    };
    if let Some(actual) = resp.bucket_region.as_deref().filter(|r| *r != region) {
        report.fail(
            "region",
            format!("the bucket is in {actual}, not {region}"),
            format!("use --region {actual}"),
        );
        return false;
    }
    match resp.status {
        200 => {
            report.push("bucket", Outcome::Ok, "exists and is reachable");
            true
        }
        404 => {
            report.fail(
                "bucket",
                "does not exist",
                "create it (aws s3 mb s3://BUCKET --region REGION) or fix the name",
            );
            false
        }
        301 | 307 => {
            report.fail(
                "region",
                format!("S3 redirects: the bucket is not in {region}"),
                "set --region to the bucket's region",
            );
            false
        }
        403 => diagnose_forbidden(report, signer).await,
        other => {
            report.with_fix(
                "bucket",
                Outcome::Warn,
                format!("HEAD bucket answered {other}"),
                "check the endpoint and the bucket name",
            );
            true
        }
    }
}

/// HEAD answers 403 without a body; a GET tells a bad key from a missing
/// permission. Returns whether the later checks can run.
async fn diagnose_forbidden(report: &mut Report, signer: &Signer) -> bool {
    let code = match signer.send("GET", "?list-type=2&max-keys=1").await {
        Ok(r) => error_code(&r.body).to_string(),
        Err(_) => String::new(),
    };
    match code.as_str() {
        "SignatureDoesNotMatch" => {
            report.fail(
                "credentials",
                "S3 rejected the signature: the secret access key does not match the key id",
                "check --secret-access-key / AWS_SECRET_ACCESS_KEY (and the clock: SigV4 allows 15 minutes of skew)",
            );
            false
        }
        "InvalidAccessKeyId" => {
            report.fail(
                "credentials",
                "S3 does not know this access key id",
                "check --access-key-id / AWS_ACCESS_KEY_ID, or that the key is active",
            );
            false
        }
        _ => {
            report.with_fix(
                "bucket",
                Outcome::Warn,
                "HEAD bucket was refused (403); the object checks below tell whether writes work",
                "grant s3:ListBucket on the bucket (see `hivestream iam-policy`)",
            );
            true
        }
    }
}

/// List, create-only put, get, conditional re-put and delete of a probe
/// object under the prefix, through the store that uploads use.
async fn probe(report: &mut Report, store: &dyn ObjectStore, prefix: &str) {
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
        return report.fail(
            "put",
            format!("cannot write {key}: {}", short(&e)),
            "grant s3:PutObject on BUCKET/PREFIX/* (see `hivestream iam-policy`)",
        );
    }
    report.push("put", Outcome::Ok, format!("wrote {key}"));
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

async fn check_public_access_block(
    report: &mut Report,
    signer: &Signer,
    bucket: &str,
    custom_endpoint: bool,
) {
    const FLAGS: [&str; 4] = [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ];
    let fix = format!(
        "aws s3api put-public-access-block --bucket {bucket} --public-access-block-configuration \
         BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"
    );
    let resp = match signer.send("GET", "?publicAccessBlock").await {
        Ok(r) => r,
        Err(e) => return report.push("public access", Outcome::Skip, e),
    };
    match (resp.status, error_code(&resp.body)) {
        (200, _) => {
            let off: Vec<&str> = FLAGS
                .into_iter()
                .filter(|f| xml_value(&resp.body, f) != Some("true"))
                .collect();
            if off.is_empty() {
                report.push(
                    "public access",
                    Outcome::Ok,
                    "blocked (all four settings on)",
                );
            } else {
                let detail = format!("not fully blocked: {} off", off.join(", "));
                report.with_fix("public access", Outcome::Warn, detail, fix);
            }
        }
        (404, "NoSuchPublicAccessBlockConfiguration") => report.with_fix(
            "public access",
            Outcome::Warn,
            "the bucket has no public access block: events could be made public by a policy or ACL",
            fix,
        ),
        (403, _) => report.with_fix(
            "public access",
            Outcome::Warn,
            "cannot read the public access block (403)",
            "grant s3:GetBucketPublicAccessBlock (included in s3:Get*)",
        ),
        (status, code) if custom_endpoint => report.push(
            "public access",
            Outcome::Skip,
            format!("this endpoint does not support public access blocks ({status} {code})"),
        ),
        (status, code) => report.push(
            "public access",
            Outcome::Warn,
            format!("unexpected answer {status} {code}"),
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

    #[test]
    fn masks_key_ids() {
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask("short"), "…rt");
    }

    #[test]
    fn reads_s3_xml() {
        let body = "<Error><Code>NoSuchPublicAccessBlockConfiguration</Code></Error>";
        assert_eq!(error_code(body), "NoSuchPublicAccessBlockConfiguration");
        let ok = "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls></PublicAccessBlockConfiguration>";
        assert_eq!(xml_value(ok, "BlockPublicAcls"), Some("true"));
        assert_eq!(xml_value(ok, "IgnorePublicAcls"), None);
    }

    #[test]
    fn bucket_urls() {
        assert_eq!(
            bucket_url(Some("http://127.0.0.1:8333/"), "b", "us-east-1"),
            "http://127.0.0.1:8333/b"
        );
        assert_eq!(
            bucket_url(None, "my-bucket", "eu-west-1"),
            "https://my-bucket.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            bucket_url(None, "a.b", "eu-west-1"),
            "https://s3.eu-west-1.amazonaws.com/a.b"
        );
    }

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
