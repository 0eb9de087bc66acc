//! Changes to open mailboxes by file name, from inotify (Linux): how a mailbox learns what
//! other processes (Dovecot, the S3 sync, an MDA) and its own writes did without reading its
//! directories again.
//!
//! One non-blocking inotify instance serves every open mailbox of the process (the kernel
//! allows 128 instances per user by default; the IDLE hub has its own). The kernel queues an
//! event inside the system call that caused it, so a reader that drains the queue has seen
//! every change made before it started: [`Watch::take`] drains it (sorting each event to the
//! mailbox that watches its directory) and hands back this mailbox's names. Anything that
//! makes the names incomplete — a queue overflow, a watched directory deleted or moved, a
//! read error — is reported as `lost`, and the mailbox reads its directories in full.
//!
//! Not used where inotify does not see every change: NFS, SMB and FUSE file systems report
//! only this host's own changes, so mailboxes there keep comparing directory mtimes.

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// Which directory of a mailbox an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The mailbox directory itself (dovecot-uidlist, the keywords files).
    Dir,
    New,
    Cur,
}

/// What happened to a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Created, renamed or linked to, or written.
    Appeared,
    /// Renamed to another name (a flag change, or new/ to cur/).
    MovedAway,
    /// Unlinked: the file behind the name is gone for good, so a file that appears later
    /// under the same base name is another message (Dovecot's COPY keeps a message's base
    /// name, so a copy back into the mailbox it was expunged from reuses it).
    Deleted,
}

/// What one [`Watch::take`] found.
#[derive(Debug, Default)]
pub struct Taken {
    /// Names of entries created, deleted or renamed, in order, with what happened.
    pub names: Vec<(Part, String, Event)>,
    /// Events were lost or a watched directory went away: read everything again.
    pub lost: bool,
}

/// Names queued for one mailbox before it counts as `lost` (a mailbox kept open without a
/// session that keeps receiving mail).
const MAX_QUEUED: usize = 10_000;

#[derive(Default)]
struct Queue {
    taken: Taken,
}

/// Watch descriptor → the mailboxes watching that directory (two states of one mailbox,
/// read-write and EXAMINE, share a descriptor: the kernel gives one per inode).
type Watchers = HashMap<i32, Vec<(Weak<Mutex<Queue>>, Part)>>;

struct Instance {
    fd: OwnedFd,
    by_wd: Watchers,
}

static INSTANCE: OnceLock<Option<Mutex<Instance>>> = OnceLock::new();

fn instance() -> Option<MutexGuard<'static, Instance>> {
    INSTANCE
        .get_or_init(
            || match inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK) {
                Ok(fd) => Some(Mutex::new(Instance {
                    fd,
                    by_wd: HashMap::new(),
                })),
                Err(e) => {
                    log::warn!("inotify unavailable ({e}); mailboxes compare directory mtimes");
                    None
                }
            },
        )
        .as_ref()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A mailbox's watches on its directory, new/ and cur/; dropping it removes them.
pub struct Watch {
    queue: Arc<Mutex<Queue>>,
    wds: Vec<i32>,
}

impl Watch {
    /// Watch the mailbox in `dir`. `None` (the caller compares mtimes instead) when inotify
    /// is unavailable, the file system does not report other hosts' changes, or a directory
    /// cannot be watched.
    pub fn new(dir: &Path) -> Option<Watch> {
        if !reports_all_changes(dir) {
            return None;
        }
        let files = WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;
        // dovecot-uidlist is also appended to in place (MODIFY).
        let top = files | WatchFlags::MODIFY | WatchFlags::CLOSE_WRITE;
        let queue = Arc::new(Mutex::new(Queue::default()));
        let mut inst = instance()?;
        let mut wds = Vec::new();
        for (part, path, mask) in [
            (Part::Dir, dir.to_path_buf(), top),
            (Part::New, dir.join("new"), files),
            (Part::Cur, dir.join("cur"), files),
        ] {
            match inotify::add_watch(&inst.fd, path.as_path(), mask) {
                Ok(wd) => {
                    inst.by_wd
                        .entry(wd)
                        .or_default()
                        .push((Arc::downgrade(&queue), part));
                    wds.push(wd);
                }
                Err(e) => {
                    log::debug!("inotify watch on {}: {e}", path.display());
                    let w = Watch { queue, wds };
                    w.release(&mut inst);
                    return None;
                }
            }
        }
        Some(Watch { queue, wds })
    }

    /// Everything that happened to the mailbox's names since the last call.
    pub fn take(&self) -> Taken {
        if let Some(mut inst) = instance() {
            drain(&mut inst);
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut q.taken)
    }

    fn release(&self, inst: &mut Instance) {
        for wd in &self.wds {
            let Some(v) = inst.by_wd.get_mut(wd) else {
                continue;
            };
            v.retain(|(q, _)| q.upgrade().is_some_and(|q| !Arc::ptr_eq(&q, &self.queue)));
            if v.is_empty() {
                inst.by_wd.remove(wd);
                let _ = inotify::remove_watch(&inst.fd, *wd);
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut inst) = instance() {
            // Events already queued for it are dropped with the queue.
            drain(&mut inst);
            self.release(&mut inst);
        }
    }
}

/// Read every queued event and hand it to the mailboxes watching its directory.
fn drain(inst: &mut Instance) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
    let Instance { fd, by_wd } = inst;
    let mut reader = inotify::Reader::new(&*fd, &mut buf);
    loop {
        let ev = match reader.next() {
            Ok(ev) => ev,
            Err(rustix::io::Errno::AGAIN) => return,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                log::error!("inotify read failed ({e}); open mailboxes read their directories");
                lose_all(by_wd);
                return;
            }
        };
        let flags = ev.events();
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            log::warn!("inotify queue overflowed; open mailboxes read their directories");
            lose_all(by_wd);
            continue;
        }
        let wd = ev.wd();
        let gone =
            flags.intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF);
        let event = if flags.contains(ReadFlags::DELETE) {
            Event::Deleted
        } else if flags.contains(ReadFlags::MOVED_FROM) {
            Event::MovedAway
        } else {
            Event::Appeared
        };
        let name = ev
            .file_name()
            .and_then(|n| n.to_str().ok())
            .filter(|n| !n.is_empty());
        if let Some(v) = by_wd.get_mut(&wd) {
            v.retain(|(q, part)| {
                let Some(q) = q.upgrade() else {
                    return false;
                };
                let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                if gone {
                    q.taken.lost = true;
                } else if q.taken.names.len() >= MAX_QUEUED {
                    // Nobody refreshed this mailbox for a long time: a full read is cheaper.
                    q.taken.names = Vec::new();
                    q.taken.lost = true;
                } else if let Some(n) = name {
                    q.taken.names.push((*part, n.to_string(), event));
                } else if !flags.is_empty() {
                    // A non-UTF-8 name: not a message file pimap accepts, but be safe.
                    q.taken.lost = true;
                }
                true
            });
        }
        if flags.contains(ReadFlags::IGNORED) {
            by_wd.remove(&wd);
        }
    }
}

fn lose_all(by_wd: &Watchers) {
    for (q, _) in by_wd.values().flatten() {
        if let Some(q) = q.upgrade() {
            q.lock().unwrap_or_else(|e| e.into_inner()).taken.lost = true;
        }
    }
}

/// False for file systems where other hosts change files without local inotify events.
fn reports_all_changes(dir: &Path) -> bool {
    const NFS: i64 = 0x6969;
    const SMB: i64 = 0x517B;
    const CIFS: i64 = 0xFF53_4D42;
    const SMB2: i64 = 0xFE53_4D42;
    const FUSE: i64 = 0x6573_5546;
    const CEPH: i64 = 0x00C3_6400;
    match rustix::fs::statfs(dir) {
        #[allow(clippy::unnecessary_cast)]
        Ok(s) => !matches!(s.f_type as i64, NFS | SMB | CIFS | SMB2 | FUSE | CEPH),
        Err(_) => false,
    }
}
