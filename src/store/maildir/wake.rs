//! Wake-ups when a mailbox may have changed, for whoever waits on it (an idling session):
//! one inotify instance for the whole process (Linux only), apart from [`super::watch`]'s,
//! which is read without blocking when a mailbox refreshes.
//!
//! Owns: the inotify fd, the map from watch descriptor to the waiters interested in it, and
//! one thread blocked in `read(2)` on the fd that wakes those waiters through channels. One
//! instance instead of one per waiter keeps pimap far below `fs.inotify.max_user_instances`
//! (128 by default) however many clients idle, and costs no CPU while nothing changes.
//! Never: interprets events beyond "this directory changed" (the waiter refreshes the
//! mailbox, which learns what changed from [`super::watch`]).

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use smol::channel::{bounded, Receiver, Sender};
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// One waiter's interest in a directory: its id, its wake-up channel and where it learns
/// which of its directories changed.
type Waiter = (u64, Sender<()>, Arc<Mutex<Fired>>);
type Subscribers = HashMap<i32, Vec<Waiter>>;

/// Which of a subscription's directories changed since the waiter last looked: bounded by
/// the number of directories it watches.
#[derive(Debug, Default)]
pub struct Fired {
    wds: std::collections::HashSet<i32>,
    /// Events were lost: anything may have changed.
    all: bool,
}

fn note(fired: &Mutex<Fired>, wd: Option<i32>) {
    let mut f = fired.lock().unwrap_or_else(|e| e.into_inner());
    match wd {
        Some(wd) => {
            f.wds.insert(wd);
        }
        None => f.all = true,
    }
}

struct Hub {
    fd: OwnedFd,
    subs: Mutex<Subscribers>,
    next_id: AtomicU64,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        // A panic elsewhere must not stop notifications: the map is always consistent.
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static HUB: OnceLock<Option<Arc<Hub>>> = OnceLock::new();

fn hub() -> Option<Arc<Hub>> {
    HUB.get_or_init(|| match start() {
        Ok(h) => Some(h),
        Err(e) => {
            log::warn!("inotify unavailable ({e}); IDLE will poll");
            None
        }
    })
    .clone()
}

fn start() -> std::io::Result<Arc<Hub>> {
    // Blocking fd: only the hub thread reads it.
    let fd = inotify::init(CreateFlags::CLOEXEC)?;
    let hub = Arc::new(Hub {
        fd,
        subs: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
    });
    let h2 = hub.clone();
    std::thread::Builder::new()
        .name("pimap-inotify".into())
        .spawn(move || run(&h2))?;
    Ok(hub)
}

fn run(hub: &Hub) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    let mut reader = inotify::Reader::new(&hub.fd, &mut buf);
    loop {
        let (wd, flags) = match reader.next() {
            Ok(ev) => (ev.wd(), ev.events()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                log::error!("inotify read failed ({e}); idling sessions fall back to polling");
                // Dropping every sender closes the channels: each Watcher notices and polls.
                hub.lock().clear();
                return;
            }
        };
        let mut subs = hub.lock();
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            // Events were lost: wake everyone.
            for v in subs.values() {
                for (_, tx, fired) in v {
                    note(fired, None);
                    let _ = tx.try_send(());
                }
            }
            continue;
        }
        if let Some(v) = subs.get(&wd) {
            for (_, tx, fired) in v {
                note(fired, Some(wd));
                // A full channel already holds a wake-up; that is enough.
                let _ = tx.try_send(());
            }
        }
        if flags.contains(ReadFlags::IGNORED) {
            // The directory is gone (or the watch was removed): forget the descriptor.
            subs.remove(&wd);
        }
    }
}

/// One session's interest in some directories; dropping it removes the watches nobody else
/// needs.
/// Wake-ups for one waiter: ends its watches when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    wds: Vec<i32>,
    rx: Receiver<()>,
    /// The watch descriptor of each path given to `subscribe` (`None`: not watched).
    by_path: Vec<Option<i32>>,
    fired: Arc<Mutex<Fired>>,
}

/// What [`Changes::take`] found: the indexes (into the paths given to `subscribe`) of the
/// directories that changed, or `all` when events were lost.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    pub all: bool,
    pub paths: Vec<usize>,
}

/// A handle on which of a subscription's directories changed, for whoever acts on the
/// wake-ups (the subscription itself stays with the one waiting).
#[derive(Clone)]
pub struct Changes {
    by_path: Vec<Option<i32>>,
    fired: Arc<Mutex<Fired>>,
}

impl Changes {
    /// The directories that changed since the last call.
    pub fn take(&self) -> Changed {
        let f = std::mem::take(&mut *self.fired.lock().unwrap_or_else(|e| e.into_inner()));
        let paths = self
            .by_path
            .iter()
            .enumerate()
            .filter(|(_, wd)| wd.is_some_and(|wd| f.wds.contains(&wd)))
            .map(|(i, _)| i)
            .collect();
        Changed { all: f.all, paths }
    }
}

/// Watch `paths`; fails when inotify is unavailable or none of the paths can be watched.
pub(super) fn subscribe(paths: &[PathBuf]) -> std::io::Result<Subscription> {
    let hub = hub().ok_or_else(|| std::io::Error::other("inotify unavailable"))?;
    // Deliveries arrive as a rename (or link) into new/; flag changes are renames inside
    // cur/; expunges are unlinks; the uidlist and keywords files are replaced by rename.
    let mask = WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR;
    let (tx, rx) = bounded(1);
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let mut wds = Vec::new();
    let mut by_path = Vec::with_capacity(paths.len());
    let fired = Arc::new(Mutex::new(Fired::default()));
    {
        let mut subs = hub.lock();
        for p in paths {
            // Same directory, same mask: the kernel returns the existing descriptor.
            match inotify::add_watch(&hub.fd, p.as_path(), mask) {
                Ok(wd) => {
                    let v = subs.entry(wd).or_default();
                    if !v.iter().any(|(i, _, _)| *i == id) {
                        v.push((id, tx.clone(), fired.clone()));
                        wds.push(wd);
                    }
                    by_path.push(Some(wd));
                }
                // A Maildir without cur/ yet is legal; the others still wake us.
                Err(e) => {
                    log::debug!("inotify watch on {}: {e}", p.display());
                    by_path.push(None);
                }
            }
        }
    }
    if wds.is_empty() {
        return Err(std::io::Error::other("no directory could be watched"));
    }
    Ok(Subscription {
        hub,
        id,
        wds,
        rx,
        by_path,
        fired,
    })
}

impl Subscription {
    /// Wait for the next change; `false` when the hub stopped (the caller should poll).
    pub async fn recv(&self) -> bool {
        self.rx.recv().await.is_ok()
    }

    /// Forget wake-ups that arrived meanwhile (the caller is about to re-read anyway).
    pub fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Where to learn which directories changed.
    pub fn changes(&self) -> Changes {
        Changes {
            by_path: self.by_path.clone(),
            fired: self.fired.clone(),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.lock();
        for wd in &self.wds {
            let Some(v) = subs.get_mut(wd) else { continue };
            v.retain(|(id, _, _)| *id != self.id);
            if v.is_empty() {
                subs.remove(wd);
                // May fail when the directory is already gone; nothing to undo then.
                let _ = inotify::remove_watch(&self.hub.fd, *wd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn changes_name_the_directory_that_changed() {
        let root = crate::store::maildir::test_dir("wake-changes");
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let missing = root.join("missing");
        let Ok(sub) = subscribe(&[a.clone(), missing, b.clone()]) else {
            return; // no inotify here: nothing to check
        };
        let changes = sub.changes();
        assert_eq!(changes.take(), Changed::default());
        std::fs::write(b.join("f"), b"x").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let got = loop {
            let c = changes.take();
            if c != Changed::default() || Instant::now() > deadline {
                break c;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(
            got,
            Changed {
                all: false,
                paths: vec![2]
            }
        );
    }
}
