//! The data directory's format version, so a binary never misreads state
//! written by another release.
//!
//! `{data_dir}/FORMAT` holds one line, `hivestream-data N`. Each release
//! knows the newest format it reads ([`DATA_FORMAT`]) and upgrades older
//! ones in place at start-up (there is nothing to upgrade yet: format 1 is
//! the first, and a directory from before the file existed is format 1).
//! A directory of a newer format is refused before anything in it is
//! opened, with a message saying which release wrote it. The WAL segments
//! carry their own version byte too (see `hivestream_wal::FORMAT_VERSION`),
//! checked on open for the same reason.
//!
//! The file is written once, with [`crate::disk::replace_file`].

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The data directory format this release writes and reads.
pub const DATA_FORMAT: u32 = 1;

const FILE: &str = "FORMAT";
const PREFIX: &str = "hivestream-data ";

/// Why a data directory cannot be used by this release.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error(
        "{path} says format {found}; this release reads up to format {DATA_FORMAT}. \
         The directory was written by a newer hivestream: run that release (or newer), \
         or move the directory aside"
    )]
    Newer { path: PathBuf, found: u32 },
    #[error("{path}: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks the format of `dir` (already created and locked), writing the
/// marker on first use.
pub fn check(dir: &Path) -> Result<(), FormatError> {
    let path = dir.join(FILE);
    let io = |source| FormatError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = parse(&text).ok_or_else(|| FormatError::Unreadable {
                path: path.clone(),
                why: format!("expected `{PREFIX}N`, found {:?}", text.trim()),
            })?;
            if found > DATA_FORMAT {
                return Err(FormatError::Newer { path, found });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::disk::replace_file(&path, format!("{PREFIX}{DATA_FORMAT}\n").as_bytes())
                .map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

fn parse(text: &str) -> Option<u32> {
    text.trim().strip_prefix(PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_once_then_accepted_and_newer_refused() {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path()).unwrap();
        let path = dir.path().join(FILE);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "hivestream-data 1\n"
        );
        check(dir.path()).unwrap();
        std::fs::write(&path, "hivestream-data 2\n").unwrap();
        let err = check(dir.path()).unwrap_err();
        assert!(matches!(err, FormatError::Newer { found: 2, .. }), "{err}");
        assert!(err.to_string().contains("newer hivestream"));
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            check(dir.path()),
            Err(FormatError::Unreadable { .. })
        ));
    }
}
