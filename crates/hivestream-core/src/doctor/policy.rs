//! Would the bucket policy refuse our uploads? Evaluates the policy's
//! `Deny` statements against the PUT hivestream makes with its configured
//! object settings, for the conditions such policies use in practice:
//! required encryption (`s3:x-amz-server-side-encryption`), a required KMS
//! key, a required ACL (`s3:x-amz-acl`), storage class, object tags, and
//! TLS (`aws:SecureTransport`).
//!
//! It only ever reports a statement it can evaluate completely: one that
//! applies to every principal, names `s3:PutObject` and our objects, and
//! whose every condition uses a key and operator known here. Anything else
//! is left to the probe PUT that follows, which is the real test.

use std::collections::BTreeMap;

use serde_json::Value;

/// The PUT being judged: the object's ARN and the condition keys its
/// request context holds (lower-cased names; absent keys are not there).
#[derive(Debug, Default)]
pub struct PutRequest {
    pub object_arn: String,
    pub keys: BTreeMap<String, Vec<String>>,
}

impl PutRequest {
    /// A request for `object_arn`, over TLS or not.
    pub fn new(object_arn: String, secure_transport: bool) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(
            "aws:securetransport".to_string(),
            vec![secure_transport.to_string()],
        );
        PutRequest { object_arn, keys }
    }

    /// Adds a single-valued key when the request carries it.
    pub fn with(mut self, key: &str, value: Option<&str>) -> Self {
        if let Some(v) = value {
            self.keys
                .entry(key.to_ascii_lowercase())
                .or_default()
                .push(v.to_string());
        }
        self
    }
}

/// A deny statement that matches the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The statement's `Sid`, or its position.
    pub statement: String,
    /// Its conditions, as `Operator key [values]`.
    pub conditions: Vec<String>,
    /// Condition keys it tests (lower-cased), to point at the setting.
    pub keys: Vec<String>,
}

/// Every deny statement of `policy` that would refuse the PUT.
pub fn denials(policy: &str, req: &PutRequest) -> Result<Vec<Denial>, String> {
    let doc: Value =
        serde_json::from_str(policy).map_err(|e| format!("the policy is not JSON: {e}"))?;
    let statements = match &doc["Statement"] {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return Err("the policy has no Statement".into()),
    };
    Ok(statements
        .iter()
        .enumerate()
        .filter_map(|(i, s)| judge(s, req).map(|d| (i, s, d)))
        .map(|(i, s, (conditions, keys))| Denial {
            statement: s["Sid"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("statement #{}", i + 1)),
            conditions,
            keys,
        })
        .collect())
}

/// `Some((conditions, keys))` when statement `s` surely denies the PUT.
fn judge(s: &Value, req: &PutRequest) -> Option<(Vec<String>, Vec<String>)> {
    let is_deny = s["Effect"].as_str() == Some("Deny");
    if !is_deny || !everyone(&s["Principal"]) || s.get("NotPrincipal").is_some() {
        return None;
    }
    let action = |p: &str| glob(&p.to_ascii_lowercase(), "s3:putobject");
    let resource = |p: &str| glob(p, &req.object_arn);
    let applies = listed(s, "Action", "NotAction", action)?
        && listed(s, "Resource", "NotResource", resource)?;
    if !applies {
        return None;
    }
    let mut texts = Vec::new();
    let mut keys = Vec::new();
    if let Some(blocks) = s["Condition"].as_object() {
        for (op, tests) in blocks {
            for (key, want) in tests.as_object()? {
                let key = key.to_ascii_lowercase();
                let want = strings(want);
                if !condition(op, req.keys.get(&key), &want)? {
                    return None;
                }
                texts.push(format!("{op} {key} {want:?}"));
                keys.push(key);
            }
        }
    }
    Some((texts, keys))
}

/// Whether `Principal` covers every caller (`"*"` or `{"AWS": "*"}`).
fn everyone(p: &Value) -> bool {
    match p {
        Value::String(s) => s == "*",
        Value::Object(m) => m
            .get("AWS")
            .is_some_and(|a| strings(a).iter().any(|s| s == "*")),
        _ => false,
    }
}

/// Whether `field` (or, inverted, `not_field`) matches; `None` if neither
/// is there.
fn listed(s: &Value, field: &str, not_field: &str, hit: impl Fn(&str) -> bool) -> Option<bool> {
    if let Some(v) = s.get(field) {
        return Some(strings(v).iter().any(|p| hit(p)));
    }
    s.get(not_field).map(|v| !strings(v).iter().any(|p| hit(p)))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// One condition: `Some(holds)`, or `None` for an operator not known here.
fn condition(op: &str, have: Option<&Vec<String>>, want: &[String]) -> Option<bool> {
    let (set, op) = match op.split_once(':') {
        Some((set @ ("ForAnyValue" | "ForAllValues"), rest)) => (Some(set), rest),
        Some(_) => return None,
        None => (None, op),
    };
    let (op, if_exists) = match op.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (op, false),
    };
    if op == "Null" {
        let absent = have.is_none_or(|v| v.is_empty());
        return Some(want.iter().any(|w| (w == "true") == absent));
    }
    let (base, negated) = match op {
        "StringNotEquals" => ("StringEquals", true),
        "StringNotEqualsIgnoreCase" => ("StringEqualsIgnoreCase", true),
        "StringNotLike" => ("StringLike", true),
        other => (other, false),
    };
    if !matches!(
        base,
        "StringEquals" | "StringEqualsIgnoreCase" | "StringLike" | "Bool"
    ) {
        return None;
    }
    let Some(have) = have.filter(|v| !v.is_empty()) else {
        return Some(if_exists || negated || set == Some("ForAllValues"));
    };
    let one = |value: &str| {
        let hit = want.iter().any(|w| match base {
            "StringEqualsIgnoreCase" => w.eq_ignore_ascii_case(value),
            "StringLike" => glob(w, value),
            "Bool" => w.eq_ignore_ascii_case(value),
            _ => w == value,
        });
        hit != negated
    };
    Some(match set {
        Some("ForAllValues") => have.iter().all(|v| one(v)),
        Some(_) => have.iter().any(|v| one(v)),
        // A single-valued key: the negated operators hold when no value matches.
        None if negated => have.iter().all(|v| one(v)),
        None => have.iter().any(|v| one(v)),
    })
}

/// IAM wildcards: `*` any run of characters, `?` any one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:s3:::events-bucket/raw/type=events/x.jsonl.gz";

    fn put(sse: Option<&str>, key: Option<&str>, acl: Option<&str>) -> PutRequest {
        PutRequest::new(ARN.into(), true)
            .with("s3:x-amz-server-side-encryption", sse)
            .with("s3:x-amz-server-side-encryption-aws-kms-key-id", key)
            .with("s3:x-amz-acl", acl)
    }

    fn policy(statement: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#)
    }

    const REQUIRE_KMS: &str = r#"{"Sid":"RequireKms","Effect":"Deny","Principal":"*",
        "Action":"s3:PutObject","Resource":"arn:aws:s3:::events-bucket/*",
        "Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}}"#;

    #[test]
    fn required_encryption_is_spotted() {
        let p = policy(REQUIRE_KMS);
        let d = denials(&p, &put(None, None, None)).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].statement, "RequireKms");
        assert_eq!(d[0].keys, ["s3:x-amz-server-side-encryption"]);
        assert!(denials(&p, &put(Some("aws:kms"), None, None))
            .unwrap()
            .is_empty());
        assert_eq!(
            denials(&p, &put(Some("AES256"), None, None)).unwrap().len(),
            1
        );
    }

    #[test]
    fn null_conditions_kms_keys_and_acls() {
        let null = policy(
            r#"{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:Put*","Resource":"*",
            "Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}}"#,
        );
        assert_eq!(
            denials(&null, &put(None, None, None)).unwrap()[0].statement,
            "statement #1"
        );
        assert!(denials(&null, &put(Some("AES256"), None, None))
            .unwrap()
            .is_empty());
        let key = policy(
            r#"{"Effect":"Deny","Principal":"*","Action":["s3:PutObject"],"Resource":"arn:aws:s3:::events-bucket/*",
            "Condition":{"StringNotEqualsIfExists":{"s3:x-amz-server-side-encryption-aws-kms-key-id":"arn:aws:kms:eu-west-1:1:key/k"}}}"#,
        );
        // IfExists: an absent key makes the condition true, so it denies.
        let no_key = denials(&key, &put(Some("aws:kms"), None, None)).unwrap();
        assert_eq!(no_key.len(), 1);
        let arn = Some("arn:aws:kms:eu-west-1:1:key/k");
        assert!(denials(&key, &put(Some("aws:kms"), arn, None))
            .unwrap()
            .is_empty());
        assert_eq!(
            denials(&key, &put(Some("aws:kms"), Some("alias/x"), None))
                .unwrap()
                .len(),
            1
        );
        let acl = policy(
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::events-bucket/*",
            "Condition":{"StringNotEquals":{"s3:x-amz-acl":"bucket-owner-full-control"}}}"#,
        );
        assert_eq!(denials(&acl, &put(None, None, None)).unwrap().len(), 1);
        assert!(
            denials(&acl, &put(None, None, Some("bucket-owner-full-control")))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn statements_it_cannot_judge_are_left_alone() {
        for s in [
            // Another principal: we do not know who we are.
            r#"{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:PutObject","Resource":"*"}"#,
            // An unknown operator.
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"*",
               "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#,
            // Another action, another bucket, an Allow.
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"*"}"#,
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::other/*"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"*"}"#,
        ] {
            assert!(
                denials(&policy(s), &put(None, None, None))
                    .unwrap()
                    .is_empty(),
                "{s}"
            );
        }
    }

    #[test]
    fn tls_and_unconditional_denials() {
        let tls = policy(
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::events-bucket","arn:aws:s3:::events-bucket/*"],
            "Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
        );
        assert!(denials(&tls, &put(None, None, None)).unwrap().is_empty());
        let plain = PutRequest::new(ARN.into(), false);
        assert_eq!(denials(&tls, &plain).unwrap().len(), 1);
        let all = policy(
            r#"{"Effect":"Deny","Principal":"*","NotAction":"s3:GetObject","Resource":"*"}"#,
        );
        assert_eq!(denials(&all, &plain).unwrap().len(), 1);
        assert!(denials("not json", &plain).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("arn:aws:s3:::b/*", "arn:aws:s3:::b/raw/x"));
        assert!(glob("s3:put*", "s3:putobject"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("arn:aws:s3:::b/raw/*", "arn:aws:s3:::b/other"));
        assert!(glob("*", ""));
    }
}
