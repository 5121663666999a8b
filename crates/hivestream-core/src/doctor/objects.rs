//! Doctor's checks of the object settings (encryption, storage class,
//! tags, ACL): before the probe, whether the bucket policy would refuse
//! PUTs made with them; after it, whether S3 applied them to the probe.

use super::policy::{denials, Denial, PutRequest};
use super::s3::{error_code, key_path, Signer};
use super::{Outcome, Report};
use crate::sink::object::{Encryption, ObjectSettings};

/// The bucket policy's deny statements against our PUT. Returns the
/// denials found, for the probe's failure to explain.
pub(super) async fn check_bucket_policy(
    report: &mut Report,
    signer: &Signer,
    object_arn: String,
    settings: &ObjectSettings,
) -> Vec<Denial> {
    let resp = match signer.send("GET", "?policy").await {
        Ok(r) => r,
        Err(e) => {
            report.push("bucket policy", Outcome::Skip, e);
            return Vec::new();
        }
    };
    match (resp.status, error_code(&resp.body)) {
        (200, _) => {}
        (404, "NoSuchBucketPolicy") => {
            report.push(
                "bucket policy",
                Outcome::Ok,
                "none: nothing to refuse writes",
            );
            return Vec::new();
        }
        (403, _) => {
            report.push(
                "bucket policy",
                Outcome::Skip,
                "cannot read it (403); grant s3:GetBucketPolicy to let doctor check it",
            );
            return Vec::new();
        }
        (status, code) => {
            let detail = format!("not readable here ({status} {code})");
            report.push("bucket policy", Outcome::Skip, detail);
            return Vec::new();
        }
    }
    let request = put_request(object_arn, signer.base.starts_with("https://"), settings);
    match denials(&resp.body, &request) {
        Err(e) => {
            report.push("bucket policy", Outcome::Skip, e);
            Vec::new()
        }
        Ok(found) if found.is_empty() => {
            let detail = format!("allows PUTs with {}", settings.describe());
            report.push("bucket policy", Outcome::Ok, detail);
            found
        }
        Ok(found) => {
            for d in &found {
                report.fail("bucket policy", refusal(d, settings), fix(d));
            }
            found
        }
    }
}

/// The request context of a PUT with `settings`.
fn put_request(object_arn: String, tls: bool, settings: &ObjectSettings) -> PutRequest {
    let mut req = PutRequest::new(object_arn, tls)
        .with(
            "s3:x-amz-server-side-encryption",
            settings.encryption.header_value(),
        )
        .with(
            "s3:x-amz-server-side-encryption-aws-kms-key-id",
            settings.encryption.kms_key_id(),
        )
        .with("s3:x-amz-acl", settings.acl.map(|a| a.as_str()))
        .with("s3:x-amz-storage-class", settings.storage_class);
    for (k, v) in &settings.tags {
        req = req
            .with("s3:RequestObjectTagKeys", Some(k))
            .with(&format!("s3:RequestObjectTag/{k}"), Some(v));
    }
    req
}

fn refusal(d: &Denial, settings: &ObjectSettings) -> String {
    let conditions = if d.conditions.is_empty() {
        "unconditionally".to_string()
    } else {
        format!("when {}", d.conditions.join(" and "))
    };
    format!(
        "statement {:?} denies s3:PutObject {conditions}; hivestream writes with {}",
        d.statement,
        settings.describe()
    )
}

/// Which setting would satisfy the statement.
fn fix(d: &Denial) -> String {
    let hints: Vec<&str> = d
        .keys
        .iter()
        .map(|k| match k.as_str() {
            "s3:x-amz-server-side-encryption" => {
                "set server_side_encryption (AES256 or aws:kms) to what the policy requires"
            }
            "s3:x-amz-server-side-encryption-aws-kms-key-id" => {
                "set sse_kms_key_id to the key ARN the policy names"
            }
            "s3:x-amz-acl" => {
                "set acl to the value the policy requires (usually bucket-owner-full-control)"
            }
            "s3:x-amz-storage-class" => "set storage_class to one the policy allows",
            "aws:securetransport" => "use an https:// endpoint",
            k if k.starts_with("s3:requestobjecttag") => "set object_tags as the policy requires",
            _ => "change the setting the condition tests",
        })
        .collect();
    if hints.is_empty() {
        return "the statement denies every PutObject on these objects: change the policy".into();
    }
    hints.join("; ")
}

/// HEAD of the probe object: did S3 store the encryption and storage
/// class asked for? An endpoint that accepts a header without applying it
/// gets a warning, not a failure: uploads still work.
pub(super) async fn check_applied(
    report: &mut Report,
    signer: &Signer,
    key: &str,
    settings: &ObjectSettings,
) {
    if settings.is_default() {
        return;
    }
    let resp = match signer.send("HEAD", &key_path(key)).await {
        Ok(r) if r.status == 200 => r,
        Ok(r) => {
            let detail = format!("HEAD of the probe answered {}", r.status);
            return report.push("object settings", Outcome::Skip, detail);
        }
        Err(e) => return report.push("object settings", Outcome::Skip, e),
    };
    let mut missing = Vec::new();
    let sse = resp.header("x-amz-server-side-encryption");
    if let Some(want) = settings.encryption.header_value() {
        if sse != Some(want) {
            missing.push(format!(
                "encryption {want} (stored: {})",
                sse.unwrap_or("none")
            ));
        }
    }
    if let (
        Encryption::Kms {
            key_id: Some(want), ..
        },
        Some(got),
    ) = (
        &settings.encryption,
        resp.header("x-amz-server-side-encryption-aws-kms-key-id"),
    ) {
        // S3 answers with the key's ARN; an alias cannot be compared.
        if !want.starts_with("alias/") && !got.ends_with(want.as_str()) {
            missing.push(format!("KMS key {want} (stored: {got})"));
        }
    }
    if let Some(class) = settings.storage_class.filter(|c| *c != "STANDARD") {
        let got = resp.header("x-amz-storage-class").unwrap_or("STANDARD");
        if got != class {
            missing.push(format!("storage class {class} (stored: {got})"));
        }
    }
    if missing.is_empty() {
        let mut stored = Vec::new();
        match &settings.encryption {
            Encryption::BucketDefault => {}
            Encryption::S3 => stored.push("SSE-S3".to_string()),
            Encryption::Kms { .. } => stored.push("SSE-KMS".to_string()),
        }
        if let Some(class) = settings.storage_class {
            stored.push(format!("storage class {class}"));
        }
        let mut detail = format!("the probe was stored with {}", stored.join(", "));
        if stored.is_empty() {
            detail = "the probe was written with them".into();
        }
        if !settings.tags.is_empty() || settings.acl.is_some() {
            detail.push_str(" (tags and ACL were sent; HEAD does not show them)");
        }
        report.push("object settings", Outcome::Ok, detail);
    } else {
        report.with_fix(
            "object settings",
            Outcome::Warn,
            format!(
                "the endpoint accepted but did not apply: {}",
                missing.join(", ")
            ),
            "check the endpoint supports these settings, or remove them",
        );
    }
}
