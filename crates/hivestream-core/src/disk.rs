//! Free space on the data dir's filesystem, and the reserve that keeps the
//! pipeline able to drain.
//!
//! The WAL, the router's spool and ledger, and the index share one disk. If
//! ingest could use the last free byte, a full disk would be a livelock: the
//! router needs space to write the files that let the WAL be deleted, and
//! the WAL, refilled by new writes as soon as anything is freed, never
//! leaves it any. So the committer refuses new records (503) while free
//! space is below `min_free_bytes`; that reserve is only for draining.

use std::io;
use std::path::Path;

/// Sizes of a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    /// Available to unprivileged writers (statvfs `f_bavail`).
    pub available: u64,
}

/// The filesystem holding `path`.
pub fn space(path: &Path) -> io::Result<Space> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` points to
    // writable memory for one `statvfs`, which the call fills on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let (unit, blocks, avail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    Ok(Space {
        total: blocks * unit,
        available: avail * unit,
    })
}

/// The default reserve: 5% of the filesystem, between 16 MiB and 1 GiB.
pub fn default_reserve(total: u64) -> u64 {
    (total / 20).clamp(16 << 20, 1 << 30)
}

/// WAL segment size: segments are deleted whole, so they must be small next
/// to both the backlog limit and the disk, or a half-uploaded active
/// segment could hold space that is needed: an eighth of the backlog limit
/// and a sixteenth of the filesystem, between 1 and 64 MiB.
pub fn segment_bytes(max_backlog_bytes: u64, fs_total: u64) -> u64 {
    (max_backlog_bytes / 8)
        .min(fs_total / 16)
        .clamp(1 << 20, 64 << 20)
}

/// Writes `bytes` as the whole of `path`, atomically and durably: a
/// temporary file beside it, fsync, rename over `path`, fsync of the
/// directory. A crash leaves the old file or the new one, never a mix.
pub fn replace_file(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_filesystem_of_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let s = space(dir.path()).unwrap();
        assert!(s.total > 0 && s.available <= s.total, "{s:?}");
        assert!(space(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn reserve_and_segments_scale_with_the_disk() {
        assert_eq!(default_reserve(48 << 20), 16 << 20);
        assert_eq!(default_reserve(100 << 30), 1 << 30);
        assert_eq!(default_reserve(4 << 30), (4u64 << 30) / 20);
        assert_eq!(segment_bytes(1 << 30, 1 << 40), 64 << 20);
        assert_eq!(segment_bytes(1 << 30, 48 << 20), 3 << 20);
        assert_eq!(segment_bytes(4 << 20, 1 << 40), 1 << 20);
    }
}
