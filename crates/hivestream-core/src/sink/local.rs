//! The local-directory bucket: a directory laid out exactly like the S3
//! bucket, where nothing but complete objects ever appears.
//!
//! ```text
//!   spool file ──copy──▶ staging/{uuid}.tmp ──fsync──▶ link/rename ──▶ root/type=…/….jsonl.gz
//!                        (outside the tree, or         (atomic: the name
//!                         root/.hivestream-staging)      appears whole or not at all)
//! ```
//!
//! Writes are staged where no reader looks: in a staging directory outside
//! the tree when it is on the same filesystem as the tree (the embedded
//! default: `{data_dir}/staging` beside `{data_dir}/bucket`), otherwise in
//! `{root}/.hivestream-staging`, a name Hive readers, Spark and pyarrow skip.
//! A staged file is written, `fsync`'d, then given its final name with
//! `link` (create-only: an existing object is left alone and reported as
//! `AlreadyExists`, like `If-None-Match: *`) or `rename` (overwrite), and the
//! directory is `fsync`'d, so the object survives a power loss once the
//! call returns. A process killed mid-write leaves only a staging file,
//! which [`LocalBucket::sweep_leftovers`] removes at the next start, along
//! with `name#N` staging files that object_store's `LocalFileSystem` (used
//! by earlier versions) left inside the tree.
//!
//! Reads, listing, copies and deletes go to object_store's
//! [`LocalFileSystem`] over the same root.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

/// Name of the staging directory inside the tree, used only when the
/// preferred staging directory is on another filesystem.
pub const IN_TREE_STAGING: &str = ".hivestream-staging";

/// A local directory used as a bucket.
#[derive(Debug)]
pub struct LocalBucket {
    root: PathBuf,
    staging: PathBuf,
    fs: LocalFileSystem,
}

fn generic(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "local bucket",
        source: Box::new(e),
    }
}

fn blocking_failed(e: tokio::task::JoinError) -> object_store::Error {
    object_store::Error::JoinError { source: e }
}

impl LocalBucket {
    /// Opens the bucket at `root` (created if missing), staging writes in
    /// `preferred_staging` when it is on the same filesystem as `root`.
    pub fn open(root: &Path, preferred_staging: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(root)?;
        let root_dev = fs::metadata(root)?.dev();
        let same_fs = fs::create_dir_all(preferred_staging)
            .and_then(|()| fs::metadata(preferred_staging))
            .is_ok_and(|m| m.dev() == root_dev);
        let staging = if same_fs {
            preferred_staging.to_path_buf()
        } else {
            let dir = root.join(IN_TREE_STAGING);
            fs::create_dir_all(&dir)?;
            dir
        };
        let fs = LocalFileSystem::new_with_prefix(root).map_err(std::io::Error::other)?;
        Ok(Self {
            root: root.to_path_buf(),
            staging,
            fs,
        })
    }

    /// The directory writes are staged in.
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// Removes what interrupted writes left: every file in the staging
    /// directory, and `….jsonl.gz#N` files inside the tree. Call it once at
    /// start, before any upload runs. Returns how many files it removed.
    pub fn sweep_leftovers(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.staging)? {
            let path = entry?.path();
            if path.is_file() {
                fs::remove_file(&path)?;
                removed += 1;
            }
        }
        removed += sweep_hash_files(&self.root, &self.staging)?;
        Ok(removed)
    }

    /// Where `location` lives on disk; refuses anything but plain names.
    fn file_path(&self, location: &ObjectPath) -> object_store::Result<PathBuf> {
        let mut path = self.root.clone();
        for part in location.parts() {
            let part = part.as_ref();
            if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
                return Err(object_store::Error::InvalidPath {
                    source: object_store::path::Error::InvalidPath {
                        path: location.as_ref().into(),
                    },
                });
            }
            path.push(part);
        }
        if path == self.root {
            return Err(object_store::Error::InvalidPath {
                source: object_store::path::Error::EmptySegment {
                    path: location.to_string(),
                },
            });
        }
        Ok(path)
    }

    fn new_staged(&self) -> std::io::Result<(File, PathBuf)> {
        let path = self
            .staging
            .join(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((file, path))
    }
}

/// Deletes `*#N` files (object_store's local staging names) under `dir`,
/// skipping `skip`. Returns how many it deleted.
fn sweep_hash_files(dir: &Path, skip: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path == skip {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            removed += sweep_hash_files(&path, skip)?;
        } else if kind.is_file() && is_staging_name(&entry.file_name().to_string_lossy()) {
            fs::remove_file(&path)?;
            tracing::warn!(path = %path.display(), "local bucket: removed a partial write left by a crash");
            removed += 1;
        }
    }
    Ok(removed)
}

/// `name#digits`: a staging file of object_store's `LocalFileSystem`.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(base, n)| {
        !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates the missing directories from `root` down to `dir`, syncing the
/// parent of each one created so the new entries are durable.
fn create_dirs(root: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| p.starts_with(root));
    if let Some(parent) = parent {
        create_dirs(root, parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent.unwrap_or(root)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Gives a synced staged file its final name; removes the staged name.
fn publish(
    root: &Path,
    staged: &Path,
    target: &Path,
    create_only: bool,
) -> object_store::Result<()> {
    let parent = target.parent().expect("targets are below the root");
    let result = create_dirs(root, parent).and_then(|()| {
        if create_only {
            fs::hard_link(staged, target)
        } else {
            fs::rename(staged, target)
        }
    });
    let _ = fs::remove_file(staged);
    match result {
        Ok(()) => sync_dir(parent).map_err(generic),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(object_store::Error::AlreadyExists {
                path: target.display().to_string(),
                source: Box::new(e),
            })
        }
        Err(e) => Err(generic(e)),
    }
}

/// Writes `payload` to a staged file and syncs it. The failpoint sits
/// half-way, so the crash suite can leave a partial staged file behind.
fn write_staged(mut file: File, payload: &PutPayload) -> std::io::Result<()> {
    let chunks: Vec<&bytes::Bytes> = payload.iter().collect();
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut written = 0;
    for chunk in chunks {
        let half = (total / 2).saturating_sub(written).min(chunk.len());
        file.write_all(&chunk[..half])?;
        written += half;
        if written == total / 2 && half > 0 {
            file.flush()?;
            crate::failpoint::hit("upload.local_partial_write");
        }
        file.write_all(&chunk[half..])?;
        written += chunk.len() - half;
    }
    file.sync_all()
}

fn put_result() -> PutResult {
    PutResult {
        e_tag: None,
        version: None,
    }
}

impl fmt::Display for LocalBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalBucket({})", self.root.display())
    }
}

#[async_trait]
impl ObjectStore for LocalBucket {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let create_only = match opts.mode {
            PutMode::Create => true,
            PutMode::Overwrite => false,
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "put with PutMode::Update".into(),
                    implementer: self.to_string(),
                })
            }
        };
        let target = self.file_path(location)?;
        let (file, staged) = self.new_staged().map_err(generic)?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = write_staged(file, &payload) {
                let _ = fs::remove_file(&staged);
                return Err(generic(e));
            }
            publish(&root, &staged, &target, create_only).map(|()| put_result())
        })
        .await
        .map_err(blocking_failed)?
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let target = self.file_path(location)?;
        let (file, staged) = self.new_staged().map_err(generic)?;
        Ok(Box::new(LocalUpload {
            root: self.root.clone(),
            file: Arc::new(file),
            staged,
            target,
            offset: 0,
            failed: Arc::new(Mutex::new(None)),
        }))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.fs.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.fs.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.fs.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.fs.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.fs.copy_opts(from, to, options).await
    }
}

/// A multipart write: parts land at their offsets in one staged file (so
/// parts may complete in any order); `complete` publishes it with `rename`.
#[derive(Debug)]
struct LocalUpload {
    root: PathBuf,
    file: Arc<File>,
    staged: PathBuf,
    target: PathBuf,
    offset: u64,
    /// The first part write that failed, reported by `complete`.
    failed: Arc<Mutex<Option<std::io::Error>>>,
}

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let at = self.offset;
        self.offset += data.content_length() as u64;
        let (file, failed) = (Arc::clone(&self.file), Arc::clone(&self.failed));
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut pos = at;
                for chunk in data.iter() {
                    if let Err(e) = file.write_all_at(chunk, pos) {
                        let msg = e.to_string();
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        return Err(generic(std::io::Error::other(msg)));
                    }
                    pos += chunk.len() as u64;
                }
                Ok(())
            })
            .await
            .map_err(blocking_failed)?
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        if let Some(e) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = fs::remove_file(&self.staged);
            return Err(generic(e));
        }
        let (root, file, staged, target) = (
            self.root.clone(),
            Arc::clone(&self.file),
            self.staged.clone(),
            self.target.clone(),
        );
        tokio::task::spawn_blocking(move || {
            if let Err(e) = file.sync_all() {
                let _ = fs::remove_file(&staged);
                return Err(generic(e));
            }
            publish(&root, &staged, &target, false).map(|()| put_result())
        })
        .await
        .map_err(blocking_failed)?
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let _ = fs::remove_file(&self.staged);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn bucket(dir: &Path) -> LocalBucket {
        LocalBucket::open(&dir.join("bucket"), &dir.join("staging")).unwrap()
    }

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn create_only_put_publishes_whole_files_and_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let b = bucket(dir.path());
        assert_eq!(b.staging_dir(), dir.path().join("staging"));
        let loc = ObjectPath::parse("type=events/year=2026/x.jsonl.gz").unwrap();
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        b.put_opts(&loc, PutPayload::from_static(b"one"), create())
            .await
            .unwrap();
        let again = b
            .put_opts(&loc, PutPayload::from_static(b"two"), create())
            .await;
        assert!(matches!(
            again,
            Err(object_store::Error::AlreadyExists { .. })
        ));
        let got = b.get(&loc).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.as_ref(), b"one");
        b.put(&loc, PutPayload::from_static(b"three"))
            .await
            .unwrap();
        let got = b.get(&loc).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.as_ref(), b"three");
        assert_eq!(
            tree(&dir.path().join("bucket")),
            ["type=events/year=2026/x.jsonl.gz"]
        );
        assert!(fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .next()
            .is_none());
    }

    #[tokio::test]
    async fn multipart_parts_land_at_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let b = bucket(dir.path());
        let loc = ObjectPath::parse("a/b.bin").unwrap();
        let mut up = b.put_multipart(&loc).await.unwrap();
        let p1 = up.put_part(PutPayload::from(vec![1u8; 10]));
        let p2 = up.put_part(PutPayload::from(vec![2u8; 5]));
        // Completed in reverse order.
        p2.await.unwrap();
        p1.await.unwrap();
        up.complete().await.unwrap();
        let got = b.get(&loc).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..10], &[1u8; 10]);
        assert_eq!(&got[10..], &[2u8; 5]);
    }

    #[tokio::test]
    async fn paths_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let b = bucket(dir.path());
        for bad in ["..", "../x", "/etc/x", "a\\..\\..\\b"] {
            // object_store encodes such parts; whatever is written stays inside.
            let loc = ObjectPath::from_iter([bad, "f"]);
            let _ = b.put(&loc, PutPayload::from_static(b"x")).await;
        }
        let mut top: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert_eq!(top, ["bucket", "staging"]);
        let root = ObjectPath::parse("").unwrap();
        assert!(
            b.file_path(&root).is_err(),
            "the root itself is not an object"
        );
    }

    #[test]
    fn sweep_removes_staging_and_hash_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let b = bucket(dir.path());
        let root = dir.path().join("bucket");
        let hour = root.join("type=events/year=2026/month=11/day=26/hour=05");
        fs::create_dir_all(&hour).unwrap();
        fs::write(hour.join("1-ab-w.jsonl.gz"), b"ok").unwrap();
        fs::write(hour.join("1-ab-w.jsonl.gz#1"), b"partial").unwrap();
        fs::write(hour.join("weird#name.jsonl.gz"), b"kept").unwrap();
        fs::write(b.staging_dir().join("x.tmp"), b"partial").unwrap();
        assert_eq!(b.sweep_leftovers().unwrap(), 2);
        assert_eq!(
            tree(&root),
            [
                "type=events/year=2026/month=11/day=26/hour=05/1-ab-w.jsonl.gz",
                "type=events/year=2026/month=11/day=26/hour=05/weird#name.jsonl.gz"
            ]
        );
        assert!(is_staging_name("a.jsonl.gz#12"));
        assert!(!is_staging_name("#1") && !is_staging_name("a#") && !is_staging_name("a#1x"));
    }

    #[test]
    fn staging_falls_back_into_the_tree_on_another_filesystem() {
        // /dev/shm is tmpfs: another device than the temp dir on most hosts.
        let dir = tempfile::tempdir().unwrap();
        let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let root = dir.path().join("bucket");
        let b = LocalBucket::open(&root, &shm.path().join("staging")).unwrap();
        let same =
            fs::metadata(dir.path()).unwrap().dev() == fs::metadata(shm.path()).unwrap().dev();
        if !same {
            assert_eq!(b.staging_dir(), root.join(IN_TREE_STAGING));
        }
    }
}
