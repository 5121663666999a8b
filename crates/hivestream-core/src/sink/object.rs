//! S3 object settings: server-side encryption, storage class, tags and a
//! canned ACL, applied to every object hivestream writes (events,
//! sync_aliases, segment snapshots, and `doctor`'s probe, so a green doctor
//! means the bucket accepts real uploads).
//!
//! Where each setting goes on the wire:
//!
//! ```text
//!   setting            header                                  set by
//!   encryption         x-amz-server-side-encryption             the S3 builder (object_store sends
//!                      (-aws-kms-key-id, -bucket-key-enabled)   it on PUT and CreateMultipartUpload)
//!   storage class      x-amz-storage-class                      PutOptions attributes  } added by
//!   tags               x-amz-tagging                            PutOptions tags        } ObjectDefaults
//!   canned ACL         x-amz-acl                                default header of the write client
//! ```
//!
//! S3 refuses `x-amz-*` headers that are not signed, so the ACL cannot be
//! added after signing; object_store signs its default headers, so the ACL
//! rides on a second client used only for writes ([`ObjectDefaults`] sends
//! reads, lists and deletes to the first).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, TagSet,
};
use serde::Deserialize;

/// How objects are encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Encryption {
    /// No header: the bucket's default encryption applies (SSE-S3 on every
    /// bucket created since January 2023).
    #[default]
    BucketDefault,
    /// SSE-S3 (`AES256`).
    S3,
    /// SSE-KMS (`aws:kms`) with this key (id, ARN or alias) or, without
    /// one, the account's `aws/s3` key; `bucket_key` sets the S3 Bucket Key.
    Kms {
        key_id: Option<String>,
        bucket_key: Option<bool>,
    },
}

impl Encryption {
    /// The `x-amz-server-side-encryption` value, if one is sent.
    pub fn header_value(&self) -> Option<&'static str> {
        match self {
            Encryption::BucketDefault => None,
            Encryption::S3 => Some("AES256"),
            Encryption::Kms { .. } => Some("aws:kms"),
        }
    }

    /// The KMS key named in the configuration, if any.
    pub fn kms_key_id(&self) -> Option<&str> {
        match self {
            Encryption::Kms { key_id, .. } => key_id.as_deref(),
            _ => None,
        }
    }
}

/// Canned ACLs that keep objects private to the two accounts involved.
/// Public ones (`public-read`, …) are refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannedAcl {
    Private,
    BucketOwnerRead,
    BucketOwnerFullControl,
}

impl CannedAcl {
    /// The `x-amz-acl` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CannedAcl::Private => "private",
            CannedAcl::BucketOwnerRead => "bucket-owner-read",
            CannedAcl::BucketOwnerFullControl => "bucket-owner-full-control",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "private" => Ok(CannedAcl::Private),
            "bucket-owner-read" => Ok(CannedAcl::BucketOwnerRead),
            "bucket-owner-full-control" => Ok(CannedAcl::BucketOwnerFullControl),
            "public-read" | "public-read-write" | "authenticated-read" | "aws-exec-read" => Err(
                format!("{s:?} would expose events beyond the two accounts; hivestream never writes public objects"),
            ),
            _ => Err(format!(
                "{s:?} is not one of private, bucket-owner-read, bucket-owner-full-control"
            )),
        }
    }
}

/// Storage classes an object can be written in and still be queried at
/// once. The archive classes (`GLACIER`, `DEEP_ARCHIVE`) need a restore
/// before Athena or Spark can read them: move old partitions there with a
/// lifecycle rule instead.
const STORAGE_CLASSES: [&str; 6] = [
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "REDUCED_REDUNDANCY",
];

/// Object tags as configured: a TOML table (`object_tags = { team = "data" }`)
/// or, in flags and the environment, `team=data,env=prod`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectTags(pub BTreeMap<String, String>);

impl std::str::FromStr for ObjectTags {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut tags = BTreeMap::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            tags.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(ObjectTags(tags))
    }
}

impl<'de> Deserialize<'de> for ObjectTags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Table(BTreeMap<String, String>),
            Text(String),
        }
        match Form::deserialize(d)? {
            Form::Table(t) => Ok(ObjectTags(t)),
            Form::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The raw object settings, as [`ObjectSettings::from_raw`] takes them.
#[derive(Debug, Default)]
pub struct RawObjectSettings<'a> {
    pub server_side_encryption: Option<&'a str>,
    pub sse_kms_key_id: Option<String>,
    pub sse_bucket_key: Option<bool>,
    pub storage_class: Option<&'a str>,
    pub object_tags: Option<ObjectTags>,
    pub acl: Option<&'a str>,
}

/// Validated object settings. `Default` sends no extra header at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSettings {
    pub encryption: Encryption,
    pub storage_class: Option<&'static str>,
    /// At most 10, checked against S3's rules.
    pub tags: Vec<(String, String)>,
    pub acl: Option<CannedAcl>,
}

/// A setting and why it is invalid.
pub type FieldError = (&'static str, String);

impl ObjectSettings {
    /// Checks each setting against what S3 accepts.
    pub fn from_raw(raw: RawObjectSettings<'_>) -> Result<Self, FieldError> {
        Ok(ObjectSettings {
            encryption: encryption(&raw)?,
            storage_class: raw.storage_class.map(storage_class).transpose()?,
            tags: tags(raw.object_tags.unwrap_or_default())?,
            acl: raw
                .acl
                .map(|a| CannedAcl::parse(a).map_err(|e| ("acl", e)))
                .transpose()?,
        })
    }

    /// Whether every setting is left to the bucket's defaults.
    pub fn is_default(&self) -> bool {
        *self == ObjectSettings::default()
    }

    /// One line for logs and `doctor`: which headers writes carry.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.encryption {
            Encryption::BucketDefault => {}
            Encryption::S3 => parts.push("SSE-S3".to_string()),
            Encryption::Kms { key_id, bucket_key } => parts.push(format!(
                "SSE-KMS (key {}{})",
                key_id.as_deref().unwrap_or("aws/s3"),
                if *bucket_key == Some(true) {
                    ", bucket key"
                } else {
                    ""
                }
            )),
        }
        if let Some(class) = self.storage_class {
            parts.push(format!("storage class {class}"));
        }
        if !self.tags.is_empty() {
            parts.push(format!("{} tag(s)", self.tags.len()));
        }
        if let Some(acl) = self.acl {
            parts.push(format!("ACL {}", acl.as_str()));
        }
        if parts.is_empty() {
            return "bucket defaults".into();
        }
        parts.join(", ")
    }

    /// The S3 builder with the encryption settings applied.
    pub fn apply_encryption(
        &self,
        b: object_store::aws::AmazonS3Builder,
    ) -> object_store::aws::AmazonS3Builder {
        // object_store does not export its encryption key enum; its config
        // key names are part of its documented interface.
        let set = |b: object_store::aws::AmazonS3Builder, key: &str, value: &str| {
            match key.parse::<object_store::aws::AmazonS3ConfigKey>() {
                Ok(k) => b.with_config(k, value),
                Err(_) => b,
            }
        };
        let Some(sse) = self.encryption.header_value() else {
            return b;
        };
        let mut b = set(b, "aws_server_side_encryption", sse);
        if let Encryption::Kms { key_id, bucket_key } = &self.encryption {
            if let Some(key) = key_id {
                b = set(b, "aws_sse_kms_key_id", key);
            }
            if let Some(on) = bucket_key {
                b = b.with_bucket_key(*on);
            }
        }
        b
    }

    fn tag_set(&self) -> TagSet {
        let mut set = TagSet::default();
        for (k, v) in &self.tags {
            set.push(k, v);
        }
        set
    }

    fn attributes(&self) -> Attributes {
        let mut a = Attributes::new();
        if let Some(class) = self.storage_class {
            a.insert(Attribute::StorageClass, class.into());
        }
        a
    }
}

fn encryption(raw: &RawObjectSettings<'_>) -> Result<Encryption, FieldError> {
    let kms_only = |field: &'static str| {
        (
            field,
            "applies to SSE-KMS only: set server_side_encryption = \"aws:kms\"".to_string(),
        )
    };
    let e = match raw.server_side_encryption.map(str::trim) {
        None | Some("") | Some("none") => Encryption::BucketDefault,
        Some("AES256") | Some("sse-s3") => Encryption::S3,
        Some("aws:kms") | Some("sse-kms") => Encryption::Kms {
            key_id: raw.sse_kms_key_id.clone().filter(|k| !k.trim().is_empty()),
            bucket_key: raw.sse_bucket_key,
        },
        Some(other) => {
            return Err((
                "server_side_encryption",
                format!("{other:?} is not AES256 (SSE-S3) or aws:kms (SSE-KMS)"),
            ))
        }
    };
    if !matches!(e, Encryption::Kms { .. }) {
        if raw.sse_kms_key_id.is_some() {
            return Err(kms_only("sse_kms_key_id"));
        }
        if raw.sse_bucket_key.is_some() {
            return Err(kms_only("sse_bucket_key"));
        }
    }
    if let Some(key) = e.kms_key_id() {
        let ok = key.len() <= 2048 && key.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err((
                "sse_kms_key_id",
                "must be a KMS key id, key ARN or alias (printable ASCII, no spaces)".into(),
            ));
        }
    }
    Ok(e)
}

fn storage_class(s: &str) -> Result<&'static str, FieldError> {
    let upper = s.trim().to_ascii_uppercase();
    if let Some(class) = STORAGE_CLASSES.into_iter().find(|c| *c == upper) {
        return Ok(class);
    }
    let why = if matches!(upper.as_str(), "GLACIER" | "DEEP_ARCHIVE") {
        format!("{s:?} objects cannot be queried without a restore; write STANDARD and move old partitions with a lifecycle rule")
    } else {
        format!("{s:?} is not one of {}", STORAGE_CLASSES.join(", "))
    };
    Err(("storage_class", why))
}

/// S3's tag rules: at most 10, keys 1-128 and values 0-256 characters of
/// letters, digits, spaces and `. : + = @ _ / -`, keys not starting `aws:`.
fn tags(raw: ObjectTags) -> Result<Vec<(String, String)>, FieldError> {
    let err = |why: String| ("object_tags", why);
    if raw.0.len() > 10 {
        return Err(err(format!("{} tags; S3 allows at most 10", raw.0.len())));
    }
    let allowed = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || " .:+=@_/-".contains(c))
    };
    for (k, v) in &raw.0 {
        if k.is_empty() || k.chars().count() > 128 || !allowed(k) {
            return Err(err(format!(
                "key {k:?} must be 1-128 letters, digits, spaces or . : + = @ _ / -"
            )));
        }
        if k.starts_with("aws:") {
            return Err(err(format!("key {k:?}: the aws: prefix is reserved")));
        }
        if v.chars().count() > 256 || !allowed(v) {
            return Err(err(format!(
                "value of {k:?} must be up to 256 letters, digits, spaces or . : + = @ _ / -"
            )));
        }
    }
    Ok(raw.0.into_iter().collect())
}

/// An [`ObjectStore`] that adds the configured storage class and tags to
/// every write and sends writes through a client carrying the canned ACL.
#[derive(Debug)]
pub struct ObjectDefaults {
    reads: Arc<dyn ObjectStore>,
    writes: Arc<dyn ObjectStore>,
    tags: TagSet,
    attributes: Attributes,
}

impl ObjectDefaults {
    /// Wraps `reads` (every request but writes) and `writes` (puts and
    /// multipart uploads; the same store when no ACL is set).
    pub fn new(
        reads: Arc<dyn ObjectStore>,
        writes: Arc<dyn ObjectStore>,
        settings: &ObjectSettings,
    ) -> Self {
        ObjectDefaults {
            reads,
            writes,
            tags: settings.tag_set(),
            attributes: settings.attributes(),
        }
    }

    fn fill(&self, tags: &mut TagSet, attributes: &mut Attributes) {
        if tags.encoded().is_empty() {
            *tags = self.tags.clone();
        }
        for (k, v) in &self.attributes {
            if attributes.get(k).is_none() {
                attributes.insert(k.clone(), v.clone());
            }
        }
    }
}

impl fmt::Display for ObjectDefaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectDefaults({})", self.reads)
    }
}

#[async_trait]
impl ObjectStore for ObjectDefaults {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.fill(&mut opts.tags, &mut opts.attributes);
        self.writes.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        mut opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.fill(&mut opts.tags, &mut opts.attributes);
        self.writes.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.reads.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.reads.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.reads.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.reads.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.reads.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.writes.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawObjectSettings<'static> {
        RawObjectSettings::default()
    }

    #[test]
    fn defaults_send_nothing() {
        let s = ObjectSettings::from_raw(raw()).unwrap();
        assert!(s.is_default());
        assert_eq!(s.describe(), "bucket defaults");
    }

    #[test]
    fn encryption_settings_are_checked() {
        let kms = ObjectSettings::from_raw(RawObjectSettings {
            server_side_encryption: Some("aws:kms"),
            sse_kms_key_id: Some("alias/events".into()),
            sse_bucket_key: Some(true),
            ..raw()
        })
        .unwrap();
        assert_eq!(kms.encryption.header_value(), Some("aws:kms"));
        assert_eq!(kms.describe(), "SSE-KMS (key alias/events, bucket key)");
        let s3 = ObjectSettings::from_raw(RawObjectSettings {
            server_side_encryption: Some("AES256"),
            ..raw()
        })
        .unwrap();
        assert_eq!(s3.encryption, Encryption::S3);
        for bad in [
            RawObjectSettings {
                sse_kms_key_id: Some("k".into()),
                ..raw()
            },
            RawObjectSettings {
                server_side_encryption: Some("AES256"),
                sse_bucket_key: Some(true),
                ..raw()
            },
            RawObjectSettings {
                server_side_encryption: Some("aws:kms:dsse-x"),
                ..raw()
            },
        ] {
            assert!(ObjectSettings::from_raw(bad).is_err());
        }
    }

    #[test]
    fn storage_classes_and_acls() {
        assert_eq!(storage_class("standard_ia").unwrap(), "STANDARD_IA");
        let (field, why) = storage_class("GLACIER").unwrap_err();
        assert_eq!(field, "storage_class");
        assert!(why.contains("lifecycle"), "{why}");
        assert_eq!(
            CannedAcl::parse("bucket-owner-full-control").unwrap(),
            CannedAcl::BucketOwnerFullControl
        );
        assert!(CannedAcl::parse("public-read")
            .unwrap_err()
            .contains("public"));
    }

    #[test]
    fn tags_follow_s3_rules() {
        let t: ObjectTags = "team=data, env=prod".parse().unwrap();
        assert_eq!(tags(t).unwrap().len(), 2);
        let eleven: ObjectTags = (0..11)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
            .parse()
            .unwrap();
        assert!(tags(eleven).is_err());
        for bad in ["aws:x=1", "a=b&c", "=v", "k=v;"] {
            let t: ObjectTags = bad.parse().unwrap_or_default();
            assert!(t.0.is_empty() || tags(t).is_err(), "{bad}");
        }
        let table: ObjectTags =
            toml::from_str::<BTreeMap<String, ObjectTags>>("t = { team = \"data\" }")
                .unwrap()
                .remove("t")
                .unwrap();
        assert_eq!(table.0["team"], "data");
    }

    #[tokio::test]
    async fn writes_carry_tags_and_class_and_go_to_the_write_store() {
        use object_store::memory::InMemory;
        use object_store::ObjectStoreExt;
        let reads: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let writes: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let settings = ObjectSettings {
            storage_class: Some("STANDARD_IA"),
            tags: vec![("team".into(), "data".into())],
            ..Default::default()
        };
        let store = ObjectDefaults::new(reads.clone(), writes.clone(), &settings);
        let mut opts = PutOptions::default();
        store.fill(&mut opts.tags, &mut opts.attributes);
        assert_eq!(opts.tags.encoded(), "team=data");
        assert_eq!(
            opts.attributes
                .get(&Attribute::StorageClass)
                .map(|v| v.as_ref()),
            Some("STANDARD_IA")
        );
        // InMemory refuses no attribute it stores, and keeps them.
        let p = Path::from("a");
        store.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        assert!(writes.head(&p).await.is_ok());
        assert!(reads.head(&p).await.is_err());
    }
}
