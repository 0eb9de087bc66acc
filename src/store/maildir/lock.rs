//! Dovecot-style dotlocks (touches disk): `<file>.lock` is created with `O_CREAT|O_EXCL`; the
//! holder writes the file's new content into the lock and renames it over the file, so the
//! lock file *is* the new file (Dovecot's `file_dotlock_replace`). A lock whose mtime is older
//! than the stale timeout (Dovecot's uidlist default: 2 minutes) is removed and retaken.

use crate::store::{Result, StoreError};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for a busy lock before giving up with `Locked`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A lock not modified for this long is considered left behind by a dead process.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

pub struct DotLock {
    lock: PathBuf,
    target: PathBuf,
    file: Option<File>,
    /// This lock's entry in [`GATE`], released on drop.
    _gate: Gate,
}

/// The writer lock inside the process: the lock files its sessions hold. A session waiting
/// for another session of this process sleeps on [`GATE_FREED`] and wakes when the lock is
/// released, instead of polling the lock file; the lock file itself then only ever waits for
/// another process (Dovecot, an MDA), and is taken once per write.
static GATE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
static GATE_FREED: Condvar = Condvar::new();

/// A path held in [`GATE`] (removed and waiters woken on drop).
struct Gate(PathBuf);

impl Gate {
    fn enter(lock: &Path, deadline: Instant) -> Result<Gate> {
        let mut held = GATE.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let set = held.get_or_insert_with(HashSet::new);
            if set.insert(lock.to_path_buf()) {
                return Ok(Gate(lock.to_path_buf()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Locked(format!(
                    "{} is held by another session",
                    lock.display()
                )));
            }
            held = GATE_FREED
                .wait_timeout(held, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let mut held = GATE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = held.as_mut() {
            set.remove(&self.0);
        }
        drop(held);
        GATE_FREED.notify_all();
    }
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
        let gate = Gate::enter(&lock, start + timeout)?;
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
                        _gate: gate,
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
        // `_gate` is dropped after this: the lock file is gone before a waiter of this
        // process is woken.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_of_the_process_queue_on_the_gate_and_other_processes_on_the_file() {
        let dir = crate::store::maildir::test_dir("lock-gate");
        let target = dir.join("f");
        std::fs::write(&target, "0").unwrap();
        // Eight threads each add one under the lock: none is lost, none times out.
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let target = target.clone();
                std::thread::spawn(move || {
                    let l = DotLock::acquire(&target).unwrap();
                    let n: u32 = std::fs::read_to_string(&target).unwrap().parse().unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                    l.replace((n + 1).to_string().as_bytes()).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "8");
        // Held in this process: a second taker times out with Locked, then gets it once
        // the first is dropped.
        let l = DotLock::acquire(&target).unwrap();
        let r = DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER);
        assert!(matches!(r, Err(StoreError::Locked(_))));
        drop(l);
        drop(DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER).unwrap());
        // A lock file made by another process still excludes us, though the gate is free.
        std::fs::write(dir.join("f.lock"), "").unwrap();
        let r = DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER);
        assert!(matches!(r, Err(StoreError::Locked(_))));
        std::fs::remove_file(dir.join("f.lock")).unwrap();
        drop(DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER).unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }

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
