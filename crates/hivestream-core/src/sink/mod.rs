//! The object store behind the router: one [`ObjectStore`] trait object for
//! a local directory ([`local::LocalBucket`]), memory or S3 (any
//! S3-compatible endpoint), so uploads take one code path whatever the
//! target.
//!
//! S3 credentials come, in order, from the configuration, the `AWS_*`
//! environment, a profile in `~/.aws/credentials` (`AWS_PROFILE` or
//! `profile`), and finally instance / container / web-identity credentials,
//! which `object_store` fetches itself. Secrets are never formatted into
//! errors or logs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod local;
pub mod object;

use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ClientOptions};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use reqwest::header::{HeaderMap, HeaderValue};
use thiserror::Error;

use crate::config::{Config, S3Settings, SinkTarget};
pub use local::LocalBucket;

/// Files up to this size are sent with one conditional PUT; larger ones
/// with a multipart upload of parts this big.
pub const PART_BYTES: usize = 8 << 20;

/// Why the store could not be built.
#[derive(Debug, Error)]
pub enum SinkError {
    #[error("cannot create the local bucket directory {path}: {source}")]
    LocalDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid S3 settings: {0}")]
    S3(String),
}

/// The local bucket at `dir`, staging its writes under the data dir.
fn local_bucket(cfg: &Config, dir: &Path) -> Result<LocalBucket, SinkError> {
    LocalBucket::open(dir, &cfg.data_dir.join("staging")).map_err(|source| SinkError::LocalDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Builds the store the configuration names.
pub fn build_store(cfg: &Config) -> Result<Arc<dyn ObjectStore>, SinkError> {
    match &cfg.sink {
        SinkTarget::Local(dir) => Ok(Arc::new(local_bucket(cfg, dir)?)),
        SinkTarget::Memory => Ok(Arc::new(InMemory::new())),
        SinkTarget::S3 { bucket } => s3_store(bucket, &cfg.s3),
    }
}

/// The S3 store uploads use: the configured object settings on every
/// write (see [`object`] for which header each becomes).
pub fn s3_store(bucket: &str, s: &S3Settings) -> Result<Arc<dyn ObjectStore>, SinkError> {
    let build = |b: AmazonS3Builder| -> Result<Arc<dyn ObjectStore>, SinkError> {
        Ok(Arc::new(
            b.build().map_err(|e| SinkError::S3(e.to_string()))?,
        ))
    };
    let reads = build(s3_builder(bucket, s))?;
    if s.objects.is_default() {
        return Ok(reads);
    }
    let writes = match s.objects.acl {
        Some(acl) => build(s3_builder_with_headers(bucket, s, acl_headers(acl)))?,
        None => reads.clone(),
    };
    Ok(Arc::new(object::ObjectDefaults::new(
        reads, writes, &s.objects,
    )))
}

fn acl_headers(acl: object::CannedAcl) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-amz-acl", HeaderValue::from_static(acl.as_str()));
    h
}

/// [`s3_builder`] whose client sends `headers` on every request (signed,
/// as S3 requires of `x-amz-*` headers). Replacing the client options
/// drops those `from_env` read, so they are read again here.
fn s3_builder_with_headers(bucket: &str, s: &S3Settings, headers: HeaderMap) -> AmazonS3Builder {
    let mut options = ClientOptions::new();
    for (key, value) in std::env::vars() {
        let Some(name) = key.strip_prefix("AWS_") else {
            continue;
        };
        if let Ok(k) = name.to_ascii_lowercase().parse::<ClientConfigKey>() {
            options = options.with_config(k, value);
        }
    }
    let base =
        AmazonS3Builder::from_env().with_client_options(options.with_default_headers(headers));
    configure(base, bucket, s)
}

/// Builds the store for a process that uploads (`serve`): as
/// [`build_store`], and for a local bucket first removes what writes cut
/// short by a crash left behind. Call it before any upload starts.
pub fn open_for_uploads(cfg: &Config) -> Result<Arc<dyn ObjectStore>, SinkError> {
    let SinkTarget::Local(dir) = &cfg.sink else {
        return build_store(cfg);
    };
    let bucket = local_bucket(cfg, dir)?;
    let removed = bucket
        .sweep_leftovers()
        .map_err(|source| SinkError::LocalDir {
            path: dir.clone(),
            source,
        })?;
    if removed > 0 {
        tracing::warn!(
            removed,
            "local bucket: removed partial writes left by a crash"
        );
    }
    Ok(Arc::new(bucket))
}

/// An S3 builder with every credential source applied in order, and the
/// configured encryption.
pub fn s3_builder(bucket: &str, s: &S3Settings) -> AmazonS3Builder {
    configure(AmazonS3Builder::from_env(), bucket, s)
}

fn configure(b: AmazonS3Builder, bucket: &str, s: &S3Settings) -> AmazonS3Builder {
    let mut b = s.objects.apply_encryption(b.with_bucket_name(bucket));
    let profile = s
        .profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok());
    let explicit_keys =
        s.access_key_id.is_some() || std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    if let (Some(profile), false) = (&profile, explicit_keys) {
        if let Some(p) = read_profile(profile) {
            if let (Some(id), Some(secret)) = (p.access_key_id, p.secret_access_key) {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
            }
            if let Some(token) = p.session_token {
                b = b.with_token(token);
            }
            if let Some(region) = p.region {
                b = b.with_region(region);
            }
        }
    }
    if std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        && s.region.is_none()
    {
        b = b.with_region("us-east-1");
    }
    if let Some(region) = &s.region {
        b = b.with_region(region);
    }
    if let Some(endpoint) = &s.endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    if let Some(id) = &s.access_key_id {
        b = b.with_access_key_id(id);
    }
    if let Some(secret) = &s.secret_access_key {
        b = b.with_secret_access_key(&secret.0);
    }
    if let Some(token) = &s.session_token {
        b = b.with_token(&token.0);
    }
    let retry = object_store::RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    b.with_retry(retry)
}

/// Settings read from a named AWS profile.
#[derive(Debug, Default, PartialEq, Eq)]
struct Profile {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    region: Option<String>,
}

fn aws_file(env: &str, name: &str) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws").join(name)))
}

fn read_profile(name: &str) -> Option<Profile> {
    let mut p = Profile::default();
    if let Some(text) = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
        .and_then(|f| std::fs::read_to_string(f).ok())
    {
        ini_section(&text, name, &mut p);
    }
    if let Some(text) =
        aws_file("AWS_CONFIG_FILE", "config").and_then(|f| std::fs::read_to_string(f).ok())
    {
        let section = if name == "default" {
            name.to_string()
        } else {
            format!("profile {name}")
        };
        ini_section(&text, &section, &mut p);
    }
    Some(p)
}

/// Fills `p` from the `[section]` of an AWS ini file (first value wins).
fn ini_section(text: &str, section: &str, p: &mut Profile) {
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        let Some((k, v)) = line.split_once('=').filter(|_| inside) else {
            continue;
        };
        let v = Some(v.trim().to_string());
        let slot = match k.trim() {
            "aws_access_key_id" => &mut p.access_key_id,
            "aws_secret_access_key" => &mut p.secret_access_key,
            "aws_session_token" => &mut p.session_token,
            "region" => &mut p.region,
            _ => continue,
        };
        if slot.is_none() {
            *slot = v;
        }
    }
}

/// Uploads the file at `path` to `key`. Small files use a create-only PUT
/// (`If-None-Match: *`): an object already at the key has the same content,
/// because keys are derived from content, so "already exists" is success,
/// and a replay after a crash neither rewrites the object nor fires a second
/// "object created" notification downstream. Endpoints that do not support
/// conditional writes get a HEAD, then a plain PUT when the key is free.
pub async fn upload_file(
    store: &dyn ObjectStore,
    key: &str,
    path: &Path,
) -> Result<(), object_store::Error> {
    let location = ObjectPath::parse(key)?;
    let io = |e: std::io::Error| object_store::Error::Generic {
        store: "spool",
        source: Box::new(e),
    };
    let size = tokio::fs::metadata(path).await.map_err(io)?.len();
    if size <= PART_BYTES as u64 {
        let data = tokio::fs::read(path).await.map_err(io)?;
        return put_new(store, &location, PutPayload::from(data)).await;
    }
    upload_multipart(store, &location, path).await
}

/// Writes `payload` at `location` unless an object is there already (which,
/// keys being derived from content, holds the same bytes): a create-only
/// PUT, or HEAD then PUT where the endpoint does not do `If-None-Match`.
pub async fn put_new(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    payload: PutPayload,
) -> Result<(), object_store::Error> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(location, payload.clone(), opts).await {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) if conditional_put_unsupported(&e) => {
            put_if_absent_unconditional(store, location, payload).await
        }
        Err(e) => Err(e),
    }
}

/// Whether an error says the endpoint does not implement `If-None-Match`.
fn conditional_put_unsupported(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => {
            true
        }
        other => {
            let text = other.to_string();
            text.contains("501") || text.contains("NotImplemented")
        }
    }
}

async fn put_if_absent_unconditional(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    payload: PutPayload,
) -> Result<(), object_store::Error> {
    match store.head(location).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => store.put(location, payload).await.map(|_| ()),
        Err(e) => Err(e),
    }
}

async fn upload_multipart(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    path: &Path,
) -> Result<(), object_store::Error> {
    use tokio::io::AsyncReadExt;
    let io = |e: std::io::Error| object_store::Error::Generic {
        store: "spool",
        source: Box::new(e),
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut upload = store.put_multipart(location).await?;
    let result: Result<(), object_store::Error> = async {
        loop {
            let mut part = Vec::with_capacity(PART_BYTES);
            (&mut file)
                .take(PART_BYTES as u64)
                .read_to_end(&mut part)
                .await
                .map_err(io)?;
            if part.is_empty() {
                break;
            }
            upload.put_part(PutPayload::from(part)).await?;
        }
        upload.complete().await.map(|_| ())
    }
    .await;
    if result.is_err() {
        let _ = upload.abort().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_profiles() {
        let text = "[default]\naws_access_key_id = A\n[other]\naws_access_key_id=B\naws_secret_access_key = S\nregion=eu-west-1\n";
        let mut p = Profile::default();
        ini_section(text, "other", &mut p);
        assert_eq!(p.access_key_id.as_deref(), Some("B"));
        assert_eq!(p.secret_access_key.as_deref(), Some("S"));
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
    }

    #[tokio::test]
    async fn upload_small_and_multipart_round_trip_on_memory_and_local() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        let local = LocalBucket::open(&dir.path().join("b"), &dir.path().join("stage")).unwrap();
        let stores: Vec<Arc<dyn ObjectStore>> = vec![Arc::new(InMemory::new()), Arc::new(local)];
        for store in stores {
            for size in [10usize, PART_BYTES + 5] {
                let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                let src = dir.path().join("spool");
                std::fs::write(&src, &data).unwrap();
                let key = format!("type=events/x-{size}.jsonl.gz");
                upload_file(store.as_ref(), &key, &src).await.unwrap();
                // A second upload of the same content is success, not a duplicate.
                upload_file(store.as_ref(), &key, &src).await.unwrap();
                let got = store
                    .get(&ObjectPath::parse(&key).unwrap())
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                assert_eq!(got.as_ref(), &data[..]);
            }
        }
    }
}

#[cfg(test)]
mod object_wire_tests;
