//! The object settings on the wire, for what SeaweedFS cannot check
//! (SSE-KMS needs a KMS; ACL grants are not stored): a tiny fake S3
//! endpoint records every request the real S3 client sends, and the tests
//! assert which headers each request carries and that they are signed.

use std::sync::{Arc, Mutex};

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::object::{ObjectSettings, ObjectTags, RawObjectSettings};
use super::{put_new, s3_store};
use crate::config::{S3Settings, Secret};

/// One request as the endpoint saw it: method, path with query, headers
/// (names lower-cased).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn signed(&self) -> String {
        let auth = self.header("authorization").unwrap_or("");
        auth.split("SignedHeaders=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("")
            .to_string()
    }
}

/// Answers every request like S3 would for the calls uploads make.
async fn fake_s3() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                while let Some(req) = read_request(&mut sock).await {
                    let reply = answer(&req);
                    log.lock().unwrap().push(req);
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body).await.ok()?;
    Some(Seen {
        method,
        target,
        headers,
    })
}

fn answer(req: &Seen) -> String {
    let body = match (req.method.as_str(), req.target.as_str()) {
        ("POST", t) if t.contains("?uploads") => {
            "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>"
        }
        ("POST", t) if t.contains("?delete") => {
            "<DeleteResult><Deleted><Key>type=events/a.jsonl.gz</Key></Deleted></DeleteResult>"
        }
        ("POST", _) => "<CompleteMultipartUploadResult><ETag>\"e\"</ETag></CompleteMultipartUploadResult>",
        ("GET", _) => "x",
        _ => "",
    };
    format!(
        "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nLast-Modified: Thu, 26 Nov 2026 08:00:00 GMT\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn settings(endpoint: &str, objects: ObjectSettings) -> S3Settings {
    S3Settings {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        access_key_id: Some("AKIDWIRETEST".into()),
        secret_access_key: Some(Secret("wire-test-secret".into())),
        session_token: None,
        profile: None,
        objects,
    }
}

fn all_settings() -> ObjectSettings {
    ObjectSettings::from_raw(RawObjectSettings {
        server_side_encryption: Some("aws:kms"),
        sse_kms_key_id: Some("alias/hivestream-events".into()),
        sse_bucket_key: Some(true),
        storage_class: Some("INTELLIGENT_TIERING"),
        object_tags: Some("team=data,env=prod".parse::<ObjectTags>().unwrap()),
        acl: Some("bucket-owner-full-control"),
    })
    .unwrap()
}

const WRITE_HEADERS: [(&str, &str); 6] = [
    ("x-amz-server-side-encryption", "aws:kms"),
    (
        "x-amz-server-side-encryption-aws-kms-key-id",
        "alias/hivestream-events",
    ),
    ("x-amz-server-side-encryption-bucket-key-enabled", "true"),
    ("x-amz-storage-class", "INTELLIGENT_TIERING"),
    ("x-amz-tagging", "env=prod&team=data"),
    ("x-amz-acl", "bucket-owner-full-control"),
];

fn assert_write(req: &Seen) {
    for (name, value) in WRITE_HEADERS {
        assert_eq!(req.header(name), Some(value), "{name} on {req:?}");
        assert!(
            req.signed().split(';').any(|h| h == name),
            "{name} is not signed: {}",
            req.signed()
        );
    }
}

#[tokio::test]
async fn puts_and_multipart_creates_carry_every_setting_signed() {
    let (endpoint, seen) = fake_s3().await;
    let store = s3_store("b", &settings(&endpoint, all_settings())).unwrap();
    let small = Path::from("type=events/a.jsonl.gz");
    put_new(store.as_ref(), &small, PutPayload::from_static(b"x"))
        .await
        .unwrap();
    let big = Path::from("type=events/b.jsonl.gz");
    let mut upload = store.put_multipart(&big).await.unwrap();
    upload
        .put_part(PutPayload::from_static(b"part"))
        .await
        .unwrap();
    upload.complete().await.unwrap();
    store.get(&small).await.unwrap().bytes().await.unwrap();
    store.delete(&small).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let put = seen
        .iter()
        .find(|r| r.method == "PUT" && !r.target.contains("partNumber"));
    assert_write(put.expect("a PUT"));
    let create = seen.iter().find(|r| r.target.contains("?uploads"));
    assert_write(create.expect("a CreateMultipartUpload"));
    // Reads and deletes go through the client without the ACL, and never
    // carry the write settings.
    assert!(seen.iter().any(|r| r.target.contains("?delete")));
    for r in seen
        .iter()
        .filter(|r| r.method == "GET" || r.method == "DELETE")
    {
        for (name, _) in WRITE_HEADERS {
            assert!(
                r.header(name).is_none(),
                "{name} on {} {}",
                r.method,
                r.target
            );
        }
    }
}

/// The requests one small upload with `objects` makes.
async fn one_put(objects: ObjectSettings) -> Vec<Seen> {
    let (endpoint, seen) = fake_s3().await;
    let store = s3_store("b", &settings(&endpoint, objects)).unwrap();
    let payload = PutPayload::from_static(b"x");
    put_new(store.as_ref(), &Path::from("k"), payload)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    seen
}

#[tokio::test]
async fn default_settings_send_none_of_the_headers() {
    for r in one_put(ObjectSettings::default()).await {
        for (name, _) in WRITE_HEADERS {
            assert!(r.header(name).is_none(), "{name} on {r:?}");
        }
    }
}

#[tokio::test]
async fn sse_s3_sends_aes256_alone() {
    let objects = ObjectSettings::from_raw(RawObjectSettings {
        server_side_encryption: Some("AES256"),
        ..Default::default()
    })
    .unwrap();
    let seen = one_put(objects).await;
    let put = seen.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(put.header("x-amz-server-side-encryption"), Some("AES256"));
    assert!(put
        .header("x-amz-server-side-encryption-aws-kms-key-id")
        .is_none());
    assert!(put.header("x-amz-acl").is_none());
}
