//! Group commit for the fsyncs that make a write durable: concurrent requests to sync the same
//! directory (after a rename into `cur/`) or the same file's data (after an append to
//! `dovecot-uidlist`) share one `fsync`/`fdatasync` (SD cards punish fsync storms).
//!
//! A request is satisfied only by a sync that starts after it was made, so a caller still
//! returns only once what it wrote before asking is on disk. Requests arriving while a sync of
//! that path runs form the next batch, which one of them runs as soon as the first ends: with
//! many sessions writing, about two syncs cover all of them instead of one each. Each batch
//! carries its own result, so every caller learns whether its sync failed.
//!
//! Callers release their locks before asking: a session waiting here does not hold up the
//! next writer of the mailbox, whose request then joins the batch.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// What to sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// A directory's entries (`fsync` of the directory).
    Dir,
    /// A file's data (`fdatasync`).
    Data,
}

/// The requests that one sync answers.
#[derive(Default)]
struct Batch {
    /// Set by the caller that ran the sync: its outcome (the error's kind and text).
    done: OnceLock<Result<(), (io::ErrorKind, String)>>,
}

#[derive(Default)]
struct Slot {
    /// A sync of this path is running (its batch is no longer `next`).
    running: bool,
    /// Requests made since the running sync started, waiting for the next one.
    next: Option<Arc<Batch>>,
}

type Slots = HashMap<(PathBuf, Kind), Slot>;

static SLOTS: Mutex<Option<Slots>> = Mutex::new(None);
static FINISHED: Condvar = Condvar::new();

/// Make the entries of directory `dir` durable (after a rename or link into it), sharing
/// the `fsync` with concurrent callers.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    batched(dir, Kind::Dir, &run)
}

/// Make the data written to the file at `path` durable, sharing the `fdatasync` with
/// concurrent callers.
pub(crate) fn sync_data(path: &Path) -> io::Result<()> {
    batched(path, Kind::Data, &run)
}

/// Syncs a write still owes before it may be acknowledged: run them (after letting go of the
/// mailbox's lock, so other sessions' writes join the same syncs) with [`Pending::wait`].
#[must_use = "a write is durable only once its Pending is waited for"]
#[derive(Debug, Default)]
pub struct Pending {
    /// Files whose data to sync (the uidlist after an append to it).
    data: Vec<PathBuf>,
    /// Directories whose entries to sync (cur/ after renames or links into it).
    dirs: Vec<PathBuf>,
}

impl Pending {
    pub(crate) fn data(&mut self, path: PathBuf) {
        if !self.data.contains(&path) {
            self.data.push(path);
        }
    }

    pub(crate) fn dir(&mut self, path: PathBuf) {
        if !self.dirs.contains(&path) {
            self.dirs.push(path);
        }
    }

    /// Run the syncs (each shared with concurrent callers); the first error, naming its path.
    pub fn wait(self) -> crate::store::Result<()> {
        for p in &self.data {
            sync_data(p).map_err(|e| super::io_err("syncing", p, e))?;
        }
        for p in &self.dirs {
            sync_dir(p).map_err(|e| super::io_err("syncing", p, e))?;
        }
        Ok(())
    }
}

fn run(path: &Path, kind: Kind) -> io::Result<()> {
    let f = File::open(path)?;
    match kind {
        Kind::Dir => f.sync_all(),
        Kind::Data => f.sync_data(),
    }
}

/// The sync itself, as `batched` runs it (tests pass a slow one).
type Op = dyn Fn(&Path, Kind) -> io::Result<()> + Send + Sync;

fn batched(path: &Path, kind: Kind, op: &Op) -> io::Result<()> {
    let key = (path.to_path_buf(), kind);
    let mut g = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    let batch = {
        let slot = g
            .get_or_insert_with(HashMap::new)
            .entry(key.clone())
            .or_default();
        slot.next.get_or_insert_with(Default::default).clone()
    };
    loop {
        if let Some(r) = batch.done.get() {
            return r.clone().map_err(|(k, m)| io::Error::new(k, m));
        }
        let slots = g.get_or_insert_with(HashMap::new);
        let slot = slots.entry(key.clone()).or_default();
        if !slot.running {
            // Not done and nobody running it: this batch is still `next`; run it.
            let mine = slot.next.take().unwrap_or_else(|| batch.clone());
            slot.running = true;
            drop(g);
            let r = op(path, kind).map_err(|e| (e.kind(), e.to_string()));
            let _ = mine.done.set(r);
            g = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
            let slots = g.get_or_insert_with(HashMap::new);
            if let Some(slot) = slots.get_mut(&key) {
                slot.running = false;
                if slot.next.is_none() {
                    slots.remove(&key);
                }
            }
            FINISHED.notify_all();
            continue;
        }
        g = FINISHED.wait(g).unwrap_or_else(|e| e.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Callers arriving while a sync runs share the next one, and each returns only after a
    /// sync that started after its request ended.
    #[test]
    fn concurrent_requests_share_syncs_that_start_after_them() {
        let dir = crate::store::maildir::test_dir("durable-batch");
        let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let op = {
            let starts = starts.clone();
            move |p: &Path, k: Kind| {
                starts.lock().unwrap().push(Instant::now());
                std::thread::sleep(Duration::from_millis(30));
                run(p, k)
            }
        };
        let op: Arc<Op> = Arc::new(op);
        let threads: Vec<_> = (0..12)
            .map(|i| {
                let (dir, op) = (dir.clone(), op.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(i * 7));
                    let asked = Instant::now();
                    batched(&dir, Kind::Dir, &*op).unwrap();
                    (asked, Instant::now())
                })
            })
            .collect();
        let spans: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let starts = starts.lock().unwrap().clone();
        assert!(
            starts.len() < spans.len(),
            "{} syncs for {} callers",
            starts.len(),
            spans.len()
        );
        for (asked, answered) in spans {
            assert!(
                starts
                    .iter()
                    .any(|s| *s >= asked && *s + Duration::from_millis(30) <= answered),
                "a caller was answered by a sync that started before it asked"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_caller_is_answered_and_errors_reach_each_of_them() {
        let dir = crate::store::maildir::test_dir("durable");
        std::fs::write(dir.join("f"), b"x").unwrap();
        let ok = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (dir, ok) = (dir.clone(), ok.clone());
                std::thread::spawn(move || {
                    let r = if i % 2 == 0 {
                        sync_dir(&dir)
                    } else {
                        sync_data(&dir.join("f"))
                    };
                    if r.is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    // A path that does not exist: every caller of the batch gets the error.
                    assert!(sync_data(&dir.join("missing")).is_err());
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ok.load(Ordering::Relaxed), 16);
        let left = SLOTS
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |s| s.keys().filter(|(p, _)| p.starts_with(&dir)).count());
        assert_eq!(left, 0, "finished slots are removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
