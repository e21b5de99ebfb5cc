//! One run at a time on a local store: an exclusive `flock` on a file in the
//! store's root, released by the kernel however the process ends (a killed
//! run never leaves a stale lock). Stores on S3 rely on Delta's commit
//! conflicts instead (see [`crate::store::TableWriter::commit_with`]).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name in the store root.
pub const LOCK_FILE: &str = ".emrwatch-run.lock";

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// Takes the lock of the store at `root` (a folder), or returns `Ok(None)` if
/// another process holds it.
pub fn try_lock(root: &Path) -> std::io::Result<Option<RunLock>> {
    std::fs::create_dir_all(root)?;
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    // SAFETY: flock on a file descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(err)
        };
    }
    Ok(Some(RunLock { _file: file, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock(dir.path()).unwrap().expect("free");
        assert!(try_lock(dir.path()).unwrap().is_none());
        drop(first);
        assert!(try_lock(dir.path()).unwrap().is_some());
    }
}
