//! One in-memory state per open mailbox, shared by every session of the process.
//!
//! Sessions that select the same mailbox hold the same [`Shared`]: one list of messages with
//! their flags and file names, one set of mod-sequences, and one [`ChangeLog`]. A change made
//! by one session (or found on disk by any of them) is applied once, and every other session
//! catches up from the log in time proportional to the change. Each session keeps only its
//! own view (sequence numbers, `\Recent`, pending expunges; `session::view`).
//!
//! The lock is a plain mutex held for the length of one store operation; it also serialises
//! the process's own writers of one mailbox, so they never wait on each other's dotlocks.
//! Lock order: never hold two mailboxes' locks at once (COPY takes the source's, lets go, then
//! takes the destination's), and never open a mailbox while holding one's lock.
//!
//! [`ChangeLog`]: super::changes::ChangeLog

use super::modseq::ModSeqs;
use super::Mailbox;
use crate::store::Result;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// An open mailbox shared by the sessions of this process.
pub struct Shared {
    dir: PathBuf,
    state: Mutex<Open>,
}

/// What [`Shared`] guards.
pub struct Open {
    pub mbox: Mailbox,
    modseqs: ModSeqs,
    /// The [`Mailbox::generation`] the mod-sequences last saw.
    observed: Option<u64>,
}

impl Open {
    /// The mod-sequences, first brought up to date with the messages if they changed since
    /// (one pass over the mailbox per change, shared by every session; only sessions that
    /// use CONDSTORE ask).
    pub fn modseqs(&mut self) -> Result<&ModSeqs> {
        let generation = self.mbox.generation();
        if self.observed != Some(generation) {
            self.modseqs
                .observe(self.mbox.uid_validity(), self.mbox.messages())?;
            self.observed = Some(generation);
        }
        Ok(&self.modseqs)
    }

    /// The mod-sequences as of the last [`Open::modseqs`] (without bringing them up to date).
    pub fn last_modseqs(&self) -> &ModSeqs {
        &self.modseqs
    }

    /// [`Open::modseqs`] together with the mailbox they describe.
    pub fn observed(&mut self) -> Result<(&ModSeqs, &Mailbox)> {
        self.modseqs()?;
        Ok((&self.modseqs, &self.mbox))
    }
}

impl Shared {
    /// Lock the state. A panic while it was held (a bug) leaves a state that may be half
    /// updated: it is used anyway, and the next refresh re-reads what changed on disk.
    pub fn lock(&self) -> MutexGuard<'_, Open> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first half of an APPEND, done without the lock ([`Mailbox::prepare_append`]):
    /// place the result with [`Mailbox::append_prepared`] under it.
    pub fn prepare_append(
        &self,
        data: &[u8],
        internal_date: Option<i64>,
    ) -> Result<super::Prepared> {
        Mailbox::prepare_append(&self.dir, data, internal_date)
    }

    /// [`Shared::prepare_append`] for a message received into a file.
    pub fn prepare_spool(
        &self,
        spool: super::Spool,
        internal_date: Option<i64>,
    ) -> Result<super::Prepared> {
        Mailbox::prepare_spool(&self.dir, spool, internal_date)
    }

    /// The mailbox's metadata cache (`store::cache`), shared by the process.
    pub fn cache(&self) -> Arc<crate::store::cache::MailboxCache> {
        crate::store::cache::for_mailbox(&self.dir)
    }
}

/// Every open mailbox of the process, by directory and mode (EXAMINE sessions never move
/// files from new/ to cur/, so they share a state of their own).
static OPEN: Mutex<Vec<(PathBuf, bool, Weak<Shared>)>> = Mutex::new(Vec::new());
/// The last few mailboxes opened stay open without a session (APPEND and COPY into a mailbox
/// that is not selected, STATUS of a folder that was just open), so that these do not read
/// the whole directory each time.
static KEEP: Mutex<VecDeque<Arc<Shared>>> = Mutex::new(VecDeque::new());
/// At most this many mailboxes are kept open without a session (the load mix's 10 users with
/// an INBOX and an Archive each re-read them on every login with 4)...
const KEPT: usize = 32;
/// ...and at most this many messages in them together (about 200 bytes of state each, so
/// about 40 MiB at most: a 1 GiB Pi can afford it, and re-reading is what it saves).
const KEPT_MESSAGES: usize = 200_000;

/// The shared state of the mailbox in `dir`, loading it if no session has it open. The
/// caller refreshes it (under its lock) before use.
pub fn open(root: &Path, dir: &Path, name: &str, read_only: bool) -> Result<Arc<Shared>> {
    if let Some(s) = find(dir, read_only) {
        keep(&s);
        return Ok(s);
    }
    // Loaded without the registry's lock: a slow scan must not stop other mailboxes from
    // opening. Two sessions racing here both load; the first one registered wins.
    let mbox = Mailbox::load_watched(root, dir, name, read_only)?;
    let fresh = Arc::new(Shared {
        dir: dir.to_path_buf(),
        state: Mutex::new(Open {
            modseqs: mbox.mod_seqs(),
            mbox,
            observed: None,
        }),
    });
    let s = {
        let mut all = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(_, _, w)| w.strong_count() > 0);
        let existing = all
            .iter()
            .find(|(d, r, _)| d == dir && *r == read_only)
            .and_then(|(_, _, w)| w.upgrade());
        match existing {
            Some(s) => s,
            None => {
                all.push((dir.to_path_buf(), read_only, Arc::downgrade(&fresh)));
                fresh
            }
        }
    };
    keep(&s);
    Ok(s)
}

/// The shared state of the mailbox in `dir` if it is open now (never loads it).
pub fn find(dir: &Path, read_only: bool) -> Option<Arc<Shared>> {
    let all = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .find(|(d, r, _)| d == dir && *r == read_only)
        .and_then(|(_, _, w)| w.upgrade())
}

fn keep(s: &Arc<Shared>) {
    let dropped: Vec<Arc<Shared>> = {
        let mut k = KEEP.lock().unwrap_or_else(|e| e.into_inner());
        k.retain(|x| !Arc::ptr_eq(x, s));
        k.push_front(s.clone());
        // A mailbox another session holds locked is counted at the size it had when kept.
        let mut total = 0usize;
        let mut n = 0usize;
        for x in k.iter() {
            let len = x
                .state
                .try_lock()
                .map(|g| g.mbox.messages().len())
                .unwrap_or(0);
            if n > 0 && (n >= KEPT || total + len > KEPT_MESSAGES) {
                break;
            }
            total += len;
            n += 1;
        }
        k.split_off(n).into()
    };
    // Dropped outside the registry's lock: the last reference takes the mailbox's watch down.
    drop(dropped);
}

/// Let go of every kept mailbox under `dir` (it was deleted or renamed).
pub fn forget(dir: &Path) {
    let dropped: Vec<Arc<Shared>> = {
        let mut k = KEEP.lock().unwrap_or_else(|e| e.into_inner());
        let (gone, stay): (Vec<_>, Vec<_>) = k.drain(..).partition(|s| s.dir.starts_with(dir));
        k.extend(stay);
        gone
    };
    drop(dropped);
}
