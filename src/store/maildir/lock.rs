//! Dovecot-style dotlocks (touches disk): `<file>.lock` is created with `O_CREAT|O_EXCL`; the
//! holder writes the file's new content into the lock and renames it over the file, so the
//! lock file *is* the new file (Dovecot's `file_dotlock_replace`). A lock whose mtime is older
//! than the stale timeout (Dovecot's uidlist default: 2 minutes) is removed and retaken.

use crate::store::{Result, StoreError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for a busy lock before giving up with `Locked`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A lock not modified for this long is considered left behind by a dead process.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

pub struct DotLock {
    lock: PathBuf,
    target: PathBuf,
    file: Option<File>,
}

impl DotLock {
    /// Lock `target` with the default timeouts.
    pub fn acquire(target: &Path) -> Result<DotLock> {
        Self::acquire_with(target, DEFAULT_TIMEOUT, STALE_AFTER)
    }

    pub fn acquire_with(target: &Path, timeout: Duration, stale: Duration) -> Result<DotLock> {
        let mut lock = target.as_os_str().to_owned();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let start = Instant::now();
        let mut delay = Duration::from_millis(5);
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&lock)
            {
                Ok(file) => {
                    return Ok(DotLock {
                        lock,
                        target: target.to_path_buf(),
                        file: Some(file),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(StoreError::Io(
                        format!("creating lock {}", lock.display()),
                        e,
                    ))
                }
            }
            // Someone holds it: stale?
            if let Ok(md) = std::fs::symlink_metadata(&lock) {
                let age = md
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or_default();
                if age > stale {
                    log::warn!(
                        "overriding stale lock {} ({}s old)",
                        lock.display(),
                        age.as_secs()
                    );
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
            } else {
                continue; // vanished meanwhile: retry at once
            }
            if start.elapsed() >= timeout {
                return Err(StoreError::Locked(format!(
                    "{} is held by another process",
                    lock.display()
                )));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    /// Write `content` into the lock file, fsync it and rename it over the target: the lock
    /// is released and the target replaced atomically.
    pub fn replace(mut self, content: &[u8]) -> Result<()> {
        let ctx = |what: &str, e| StoreError::Io(format!("{what} {}", self.lock.display()), e);
        let mut file = match self.file.take() {
            Some(f) => f,
            None => return Err(StoreError::Cannot("lock already used".into())),
        };
        file.write_all(content).map_err(|e| ctx("writing", e))?;
        file.sync_all().map_err(|e| ctx("fsync", e))?;
        drop(file);
        std::fs::rename(&self.lock, &self.target).map_err(|e| ctx("renaming", e))?;
        if let Some(dir) = self.target.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        // Renamed: nothing left for Drop to remove.
        self.lock = PathBuf::new();
        Ok(())
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if !self.lock.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_replace_and_stale() {
        let dir = crate::store::maildir::test_dir("lock");
        let target = dir.join("f");
        std::fs::write(&target, "old").unwrap();
        let l = DotLock::acquire(&target).unwrap();
        let r = DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER);
        assert!(matches!(r, Err(StoreError::Locked(_))));
        l.replace(b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!dir.join("f.lock").exists());
        // Dropped without replace: lock removed, target untouched.
        drop(DotLock::acquire(&target).unwrap());
        assert!(!dir.join("f.lock").exists());
        // A stale lock is overridden.
        let f = std::fs::File::create(dir.join("f.lock")).unwrap();
        f.set_times(
            std::fs::FileTimes::new().set_modified(SystemTime::now() - Duration::from_secs(200)),
        )
        .unwrap();
        let l = DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER).unwrap();
        l.replace(b"newer").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"newer");
        let _ = std::fs::remove_dir_all(dir);
    }
}
