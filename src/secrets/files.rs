//! File permissions for what may hold private data: the data dir is 0700, the database and log
//! files 0600. No-ops on non-Unix platforms, where the user profile directory is already private.

use std::io;
use std::path::Path;

// Plain io::Error: every caller already wraps it with the path and what it was doing.

/// Create `path` (and its parents) if needed and make it 0700, tightening an existing one.
pub fn ensure_private_dir(path: &Path) -> io::Result<()> {
    if path.exists() && !path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists but is not a directory; move it away or choose another data dir",
        ));
    }
    std::fs::create_dir_all(path)?;
    set_mode(path, 0o700)
}

/// Make an existing file 0600 (database, WAL, logs). A missing file is left alone.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    set_mode(path, 0o600)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_nested_data_dir_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/trademind");
        ensure_private_dir(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn tightens_an_existing_world_readable_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn refuses_a_file_where_the_dir_should_be() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data");
        std::fs::write(&file, b"x").unwrap();
        let err = ensure_private_dir(&file).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn restricts_a_log_file_to_owner_read_write() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("trademind.log");
        std::fs::write(&log, b"line").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict_file(&log).unwrap();
        assert_eq!(mode(&log), 0o600);
        restrict_file(&tmp.path().join("absent.log")).unwrap();
    }
}
