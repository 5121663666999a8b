//! The raw S3 requests doctor makes besides the object store's own: SigV4
//! signed with object_store's authorizer, for what the store cannot ask
//! (the bucket's region, its public access block, its policy, and the
//! headers S3 stored on the probe object).

use std::sync::Arc;

use object_store::aws::AwsAuthorizer;
use object_store::client::{HttpRequest, HttpRequestBody};

use super::{Outcome, Report};

/// `AKIA…WXYZ`: enough to tell keys apart, not enough to matter.
pub(super) fn mask(key_id: &str) -> String {
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
pub(super) fn bucket_url(endpoint: Option<&str>, bucket: &str, region: &str) -> String {
    match endpoint {
        Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
        None if bucket.contains('.') => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
    }
}

/// Sends raw requests signed with SigV4.
pub(super) struct Signer {
    pub cred: Arc<object_store::aws::AwsCredential>,
    pub region: String,
    /// The bucket's URL, without a trailing `/`.
    pub base: String,
}

pub(super) struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl RawResponse {
    /// A response header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An object key as a URL path: every byte but S3's unreserved ones and
/// `/` percent-encoded, as SigV4's canonical URI wants it.
pub(super) fn key_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Signer {
    /// `method` on the bucket URL followed by `tail` (`?query` or an
    /// encoded object key).
    pub async fn send(&self, method: &str, tail: &str) -> Result<RawResponse, String> {
        let url = format!("{}/{tail}", self.base);
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
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

/// The `<Code>` of an S3 error body.
pub(super) fn error_code(body: &str) -> &str {
    xml_value(body, "Code").unwrap_or("")
}

pub(super) fn xml_value<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find("</")?;
    Some(body[start..start + len].trim())
}

/// HEAD bucket: does it exist, and is it in the configured region?
/// Returns whether the later checks can run.
pub(super) async fn check_region(report: &mut Report, signer: &Signer, region: &str) -> bool {
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
    if let Some(actual) = resp.header("x-amz-bucket-region").filter(|r| *r != region) {
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

pub(super) async fn check_public_access_block(
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
}
