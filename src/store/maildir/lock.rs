//! Dovecot-style dotlocks (touches disk): `<file>.lock` is created with `O_CREAT|O_EXCL` and
//! holds `<pid>:<hostname>` (the content Dovecot's `file-dotlock.c` writes and reads back).
//! The holder writes the file's new content into `<file>.lock.new`, fsyncs it and renames it
//! over the file, then removes the lock (`replace`), so readers see the old or the new file
//! whole and the lock names its holder until the very end.
//!
//! A lock is stale, and removed and retaken, when its PID is dead on this host (at once, like
//! Dovecot), or when its mtime is older than the stale timeout (Dovecot's uidlist default: 2
//! minutes; for locks that name no PID of this host, e.g. Dovecot's own `O_EXCL` locks whose
//! content is the new file). A live holder's lock is never taken.

use crate::store::{Result, StoreError};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for a busy lock before giving up with `Locked`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A lock not modified for this long is considered left behind by a dead process.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

pub struct DotLock {
    lock: PathBuf,
    target: PathBuf,
    /// This lock's entry in [`GATE`], released on drop.
    _gate: Gate,
    /// The lock file's identity, so Drop never removes a lock someone else took since.
    id: Option<FileId>,
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

/// Device, inode and change time: a lock file removed and created again (which may reuse
/// the inode number) differs in its ctime.
type FileId = (u64, u64, i64, i64);

fn file_id(md: &std::fs::Metadata) -> FileId {
    (md.dev(), md.ino(), md.ctime(), md.ctime_nsec())
}

/// This host's name as the kernel reports it, unaltered (Dovecot compares it verbatim).
fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    })
}

/// The PID a lock's content names, when it is `<pid>:<host>` with this host's name.
fn local_pid(content: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(content).ok()?;
    let (pid, h) = text.trim_end_matches('\n').split_once(':')?;
    if h != host() || host().is_empty() {
        return None;
    }
    pid.parse::<i32>().ok().filter(|p| *p > 0)
}

/// True only when no process with this PID exists (`kill(pid, 0)` says ESRCH).
fn pid_is_dead(pid: i32) -> bool {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    matches!(
        kill(Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Why the existing lock at `lock` is stale, or None while it may be live.
fn stale_reason(lock: &Path, md: &std::fs::Metadata, stale: Duration) -> Option<String> {
    let age = md
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age > stale {
        return Some(format!("{}s old", age.as_secs()));
    }
    let mut buf = Vec::new();
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(lock)
        .ok()?;
    f.take(512).read_to_end(&mut buf).ok()?;
    let pid = local_pid(&buf)?;
    if pid_is_dead(pid) {
        Some(format!("its process {pid} is gone"))
    } else {
        None
    }
}

/// Create `lock` already holding `<pid>:<host>` (never empty, even if this process is
/// killed meanwhile: a lock without a PID would block the mailbox for the whole stale
/// timeout): the content goes into a file of our own, hard-linked to the lock name (fails
/// with `AlreadyExists` when held), as Dovecot's non-`O_EXCL` dotlocks do. Where hard
/// links are not supported, `O_EXCL` then write.
fn create_named(lock: &Path) -> std::io::Result<()> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let me = format!("{}:{}", std::process::id(), host());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = lock.as_os_str().to_owned();
    tmp.push(format!(".{}.{n}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let linked = f
        .write_all(me.as_bytes())
        .and_then(|()| std::fs::hard_link(&tmp, lock));
    drop(f);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            // No hard links here (some network or FUSE file systems).
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(lock)?;
            f.write_all(me.as_bytes()).inspect_err(|_| {
                let _ = std::fs::remove_file(lock);
            })
        }
        other => other,
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
            match create_named(&lock) {
                Ok(()) => {
                    let id = std::fs::symlink_metadata(&lock).ok().map(|m| file_id(&m));
                    return Ok(DotLock {
                        lock,
                        target: target.to_path_buf(),
                        id,
                        _gate: gate,
                    });
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
            let Ok(md) = std::fs::symlink_metadata(&lock) else {
                continue; // vanished meanwhile: retry at once
            };
            if let Some(why) = stale_reason(&lock, &md, stale) {
                // Remove it only if it is still the lock judged (not one taken since).
                let same = std::fs::symlink_metadata(&lock)
                    .map(|m| file_id(&m) == file_id(&md))
                    .unwrap_or(false);
                if same {
                    log::warn!("overriding stale lock {} ({why})", lock.display());
                    let _ = std::fs::remove_file(&lock);
                }
                continue;
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

    /// Write `content` to `<file>.lock.new`, fsync it and rename it over the target, then
    /// release the lock: the target is replaced atomically while the lock is held.
    pub fn replace(self, content: &[u8]) -> Result<()> {
        self.replace_with_mtime(content, None)
    }

    /// `replace`, giving the new file this mtime (Dovecot notices some files' changes by
    /// their mtime in whole seconds, so a writer must make it grow).
    pub fn replace_with_mtime(self, content: &[u8], mtime: Option<SystemTime>) -> Result<()> {
        let mut new = self.lock.as_os_str().to_owned();
        new.push(".new");
        let new = PathBuf::from(new);
        let ctx = |what: &str, e| StoreError::Io(format!("{what} {}", new.display()), e);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&new)
            .map_err(|e| ctx("creating", e))?;
        file.write_all(content).map_err(|e| ctx("writing", e))?;
        if let Some(t) = mtime {
            file.set_times(std::fs::FileTimes::new().set_modified(t))
                .map_err(|e| ctx("setting the mtime of", e))?;
        }
        file.sync_all().map_err(|e| ctx("fsync", e))?;
        drop(file);
        std::fs::rename(&new, &self.target).map_err(|e| ctx("renaming", e))?;
        if let Some(dir) = self.target.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(()) // Drop releases the lock.
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.lock)
            .map(|m| Some(file_id(&m)) == self.id)
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.lock);
        }
        // `_gate` is dropped after this: the lock file is gone before a waiter of this
        // process is woken.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, secs: u64) {
        let f = File::options().write(true).open(path).unwrap();
        f.set_times(
            std::fs::FileTimes::new().set_modified(SystemTime::now() - Duration::from_secs(secs)),
        )
        .unwrap();
    }

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
        // The lock names its holder like Dovecot's: <pid>:<host>.
        let content = std::fs::read_to_string(dir.join("f.lock")).unwrap();
        assert_eq!(content, format!("{}:{}", std::process::id(), host()));
        // Born with that content (hard-linked), nothing else left in the directory.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let r = DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER);
        assert!(matches!(r, Err(StoreError::Locked(_))));
        l.replace(b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!dir.join("f.lock").exists());
        assert!(!dir.join("f.lock.new").exists());
        // Dropped without replace: lock removed, target untouched.
        drop(DotLock::acquire(&target).unwrap());
        assert!(!dir.join("f.lock").exists());
        // A stale lock (by mtime, no PID of ours in it) is overridden.
        std::fs::write(dir.join("f.lock"), "dovecot-uidlist content").unwrap();
        age(&dir.join("f.lock"), 200);
        let l = DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER).unwrap();
        l.replace_with_mtime(
            b"newer",
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"newer");
        let md = std::fs::metadata(&target).unwrap();
        assert_eq!(md.mtime(), 5);
        // A fresh lock without a PID is someone's live lock: waited for, never taken.
        std::fs::write(dir.join("f.lock"), "").unwrap();
        let r = DotLock::acquire_with(&target, Duration::from_millis(50), STALE_AFTER);
        assert!(matches!(r, Err(StoreError::Locked(_))));
        std::fs::remove_file(dir.join("f.lock")).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_lock_of_a_dead_process_is_stale_at_once_a_live_ones_never() {
        let dir = crate::store::maildir::test_dir("lock-pid");
        let target = dir.join("f");
        // A process that has exited (and been reaped): its PID is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(dir.join("f.lock"), format!("{dead}:{}", host())).unwrap();
        let t = Instant::now();
        let l = DotLock::acquire_with(&target, Duration::from_secs(5), STALE_AFTER).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
        drop(l);
        // A live process's lock, even a minute old, is waited for.
        let mut live = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        std::fs::write(dir.join("f.lock"), format!("{}:{}", live.id(), host())).unwrap();
        age(&dir.join("f.lock"), 60);
        let r = DotLock::acquire_with(&target, Duration::from_millis(100), STALE_AFTER);
        assert!(matches!(r, Err(StoreError::Locked(_))));
        // The same dead PID on another host is not ours to judge: waited for.
        std::fs::write(dir.join("f.lock"), format!("{dead}:not-{}", host())).unwrap();
        let r = DotLock::acquire_with(&target, Duration::from_millis(100), STALE_AFTER);
        assert!(matches!(r, Err(StoreError::Locked(_))));
        let _ = live.kill();
        let _ = live.wait();
        // Dropping a lock that was taken over by someone else leaves theirs alone.
        std::fs::remove_file(dir.join("f.lock")).unwrap();
        let mine = DotLock::acquire(&target).unwrap();
        std::fs::remove_file(dir.join("f.lock")).unwrap();
        std::fs::write(dir.join("f.lock"), "theirs").unwrap();
        drop(mine);
        assert_eq!(std::fs::read(dir.join("f.lock")).unwrap(), b"theirs");
        let _ = std::fs::remove_dir_all(dir);
    }
}
