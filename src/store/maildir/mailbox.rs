//! A selected mailbox (touches disk): scanning `cur/` and `new/`, matching files to
//! `dovecot-uidlist`, assigning UIDs under the uidlist dotlock, flag renames, APPEND, COPY,
//! EXPUNGE. RFC 3501 §2.3.1.1 (UIDs strictly ascending, never reused within a UIDVALIDITY),
//! §2.3.2 (flags; `\Recent` for the session that first sees a message).

use super::changes::{Change, ChangeLog, Origin};
use super::durable::Pending;
use super::extra_keywords::{self, ExtraKeywords, Unusable};
use super::filename::{self, Letters, FORWARDED};
use super::keywords::{self, Keywords};
use super::lock::DotLock;
use super::uidlist::UidList;
use super::watch::Watch;
use super::{io_err, new_unique, read_optional, uidvalidity};
use crate::store::cache;
use crate::store::{Flags, MessageMeta, Result, StoreError};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod base_index;
mod events;
mod flags;
mod multi;
mod scan;
mod stream;
#[cfg(test)]
mod tests;
mod uidtail;
mod write;

use base_index::BaseIndex;
pub(super) use scan::scan;
pub(super) use scan::{random_guid, read_uidlist, sync_locked};
use scan::{read_keywords, stamp, sync_locked_first, FileId, Stamp, FINE_SETTLE};
pub use stream::{MessageFile, Spool};
pub(super) use write::write_new_file;
use write::{copy_file, mtime_of};
pub use write::{CopySources, Prepared};

pub(super) const UIDLIST: &str = "dovecot-uidlist";
pub(super) const KEYWORDS: &str = "dovecot-keywords";
/// pimap's own file of keywords beyond the 26 file-name letters ([`extra_keywords`]).
pub(super) const EXTRAS: &str = "pimap-keywords";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Sub {
    New,
    Cur,
}

impl Sub {
    fn dir(self) -> &'static str {
        match self {
            Sub::New => "new",
            Sub::Cur => "cur",
        }
    }
}

/// A message file found by a directory scan.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub sub: Sub,
    pub name: String,
}

impl Found {
    pub fn base(&self) -> &str {
        filename::split(&self.name).base
    }
}

/// Find the current file of a base name (after another process renamed it).
fn locate(dir: &Path, base: &str) -> Option<Found> {
    scan(dir).ok()?.into_iter().find(|f| f.base() == base)
}

/// Open a message file without following symlinks.
fn open_nofollow(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

fn mtime_secs(md: &fs::Metadata) -> i64 {
    match md.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        },
        Err(_) => 0,
    }
}

/// The length of the header block in `v` (through its empty line) if it ends in `v`; the
/// search starts at `from` (bytes before it were looked at already).
fn header_end(v: &[u8], from: usize) -> Option<usize> {
    if v.starts_with(b"\n") || v.starts_with(b"\r\n") {
        return Some(if v[0] == b'\n' { 1 } else { 2 });
    }
    let at = v.get(from..)?.windows(2).position(|w| w == b"\n\n");
    let crlf = v.get(from..)?.windows(3).position(|w| w == b"\n\r\n");
    match (at, crlf) {
        (Some(a), Some(c)) if c < a => Some(from + c + 3),
        (Some(a), _) => Some(from + a + 2),
        (None, Some(c)) => Some(from + c + 3),
        (None, None) => None,
    }
}

/// RFC822.SIZE of a file by reading it (for names without `W=`).
fn file_vsize(path: &Path) -> std::io::Result<u64> {
    let mut f = open_nofollow(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    let mut prev = 0u8;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        let chunk = buf.get(..k).unwrap_or(&[]);
        n += k as u64;
        for &b in chunk {
            if b == b'\n' && prev != b'\r' {
                n += 1;
            }
            prev = b;
        }
    }
}

/// Remove the entries at `idx` (ascending, distinct; others are sorted first, and those past
/// the end ignored) from `v`, keeping the order. Only the entries after the first removed
/// one move: taking out the newest message costs O(1). Each run of kept entries moves in one
/// `rotate_left` (a memmove, the removed entries rotated behind it), not entry by entry: in
/// the middle of 100,000 messages entry-wise swaps were 40 % of a single-message EXPUNGE.
pub(crate) fn remove_sorted<T>(v: &mut Vec<T>, idx: &[usize]) {
    let len = v.len();
    let mut gone: Vec<usize> = idx.iter().copied().filter(|&g| g < len).collect();
    if !gone.windows(2).all(|p| p[0] < p[1]) {
        gone.sort_unstable();
        gone.dedup();
    }
    let Some(&first) = gone.first() else {
        return;
    };
    // v[..w] is final; v[w..g] holds the k entries removed so far.
    let mut w = first;
    for (k, &g) in gone.iter().enumerate() {
        let end = gone.get(k + 1).copied().unwrap_or(len);
        if let Some(run) = v.get_mut(w..end) {
            run.rotate_left(k + 1);
        }
        w += end - (g + 1);
    }
    v.truncate(w);
}

fn has_forwarded(flags: &Flags) -> bool {
    (flags.keywords.iter()).any(|k| k.eq_ignore_ascii_case(FORWARDED))
}

/// Location of a message (parallel to `messages`).
#[derive(Debug, Clone)]
struct Loc {
    sub: Sub,
    name: String,
    /// The file's size on disk when a stat saw it (0: not known). A Maildir file is never
    /// rewritten in place, so it holds across renames; it keys the file's `pimap-cache`
    /// entry when the name has no `S=`, without a stat per message per SORT.
    raw: u64,
}

impl Loc {
    fn base(&self) -> &str {
        filename::split(&self.name).base
    }
}

/// A selected mailbox. Holds the messages as of the last [`Mailbox::refresh`] in ascending
/// UID order. Its own EXPUNGE and flag changes are reflected at once; appended and copied
/// messages appear at the next refresh.
pub struct Mailbox {
    root: PathBuf,
    dir: PathBuf,
    name: String,
    read_only: bool,
    uid_validity: u32,
    uid_next: u32,
    keywords: Keywords,
    /// Keywords beyond the file-name letters, by base name (`pimap-keywords`).
    extras: ExtraKeywords,
    /// Every keyword in `extras` (for FLAGS).
    extra_names: Vec<String>,
    /// Identity of the `pimap-keywords` that `extras` was read from.
    extras_id: Option<FileId>,
    messages: Vec<MessageMeta>,
    locs: Vec<Loc>,
    /// UIDs of the messages flagged `\Deleted` ([`Mailbox::deleted`]), kept with every change
    /// of a message's flags or of the message list.
    deleted: BTreeSet<u32>,
    recent: HashSet<u32>,
    /// UIDs of files this session unlinked whose uidlist lines may linger (sorted): the next
    /// APPEND/COPY into this mailbox drops them without scanning the directory.
    own_expunged: Vec<u32>,
    /// Identity of the `dovecot-uidlist` the messages' UIDs were last read from.
    uidlist_id: Option<FileId>,
    last_stamp: Option<Stamp>,
    last_scan: SystemTime,
    /// Messages in new/ at the last scan (STATUS RECENT).
    pub(super) in_new: u32,
    /// Changes whenever the messages, their flags or the keywords may have changed
    /// ([`Mailbox::generation`]).
    generation: u64,
    /// Expunges and flag changes, in order, for the sessions sharing this mailbox.
    changes: ChangeLog,
    /// Who the flag changes made now are by ([`Mailbox::set_origin`]).
    origin: Origin,
    /// Some message carries `$Forwarded` (for FLAGS; found by the last scan, or set since).
    forwarded: bool,
    /// Names changed in the directories, from inotify: when present, a refresh applies them
    /// instead of comparing mtimes and reading the directories ([`events`]).
    watch: Option<Watch>,
    /// Base name → UID, for applying events by name (built on first use).
    base_index: Option<BaseIndex>,
    /// A read-only state saw files without a UID: the next uidlist change rescans.
    awaiting_uids: bool,
    /// Full directory reads so far (tests check that events made none).
    rescans: u64,
    /// Lookups by base name that compared every message's name (tests check that events,
    /// this process's own included, made none).
    name_scans: u64,
    /// The `dovecot-uidlist` as last read or appended to ([`uidtail`]).
    uidlist_tail: Option<uidtail::Tail>,
}

/// Source of [`Mailbox::generation`] values: process-wide, so that no two states of any
/// mailbox object ever share a value.
static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Mailbox {
    pub(super) fn load(root: &Path, dir: &Path, name: &str, read_only: bool) -> Result<Mailbox> {
        Self::open(root, dir, name, read_only, false)
    }

    /// [`Mailbox::load`] for a state that lives on (shared by sessions): it watches its
    /// directories, so later refreshes cost what changed.
    pub(super) fn load_watched(
        root: &Path,
        dir: &Path,
        name: &str,
        read_only: bool,
    ) -> Result<Mailbox> {
        Self::open(root, dir, name, read_only, true)
    }

    fn open(root: &Path, dir: &Path, name: &str, read_only: bool, watch: bool) -> Result<Mailbox> {
        let mut mb = Mailbox {
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
            name: name.to_string(),
            read_only,
            uid_validity: 0,
            uid_next: 1,
            keywords: Keywords::default(),
            extras: ExtraKeywords::default(),
            extra_names: Vec::new(),
            extras_id: None,
            messages: Vec::new(),
            locs: Vec::new(),
            deleted: BTreeSet::new(),
            recent: HashSet::new(),
            own_expunged: Vec::new(),
            uidlist_id: None,
            last_stamp: None,
            last_scan: UNIX_EPOCH,
            in_new: 0,
            generation: 0,
            changes: ChangeLog::default(),
            origin: 0,
            forwarded: false,
            // Before the first scan: a change made while it runs is then reported too.
            watch: if watch { Watch::new(dir) } else { None },
            base_index: None,
            awaiting_uids: false,
            rescans: 0,
            name_scans: 0,
            uidlist_tail: None,
        };
        mb.rescan()?;
        Ok(mb)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A value that stays the same exactly while [`Mailbox::messages`] and
    /// [`Mailbox::keywords`] are unchanged: a reader that remembers it can skip comparing
    /// every message when it has not moved. Any rescan or write by this object gives a new
    /// value (before it changes anything, so a failed write also counts as a change).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The log of expunges and flag changes ([`ChangeLog`]).
    pub fn changes(&self) -> &ChangeLog {
        &self.changes
    }

    /// Attribute the flag changes made from now on to `origin` (0: nobody in particular).
    pub fn set_origin(&mut self, origin: Origin) {
        self.origin = origin;
    }

    fn touch(&mut self) {
        self.generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    }
    pub fn uid_validity(&self) -> u32 {
        self.uid_validity
    }
    pub fn uid_next(&self) -> u32 {
        self.uid_next
    }
    pub fn read_only(&self) -> bool {
        self.read_only
    }
    /// The mailbox directory (holding cur/ new/ tmp/).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Wake-ups whenever this mailbox may have changed, by any process (for IDLE): its
    /// `new/`, `cur/` and its own directory (where `dovecot-uidlist` and `dovecot-keywords`
    /// are replaced by rename). Fails when inotify is unavailable; the waiter then polls.
    #[cfg(target_os = "linux")]
    pub fn subscribe(&self) -> std::io::Result<super::wake::Subscription> {
        super::wake::subscribe(&[self.dir.clone(), self.dir.join("new"), self.dir.join("cur")])
    }

    /// Keywords defined for this mailbox (for FLAGS / PERMANENTFLAGS), plus `$Forwarded` when
    /// a message carries the maildir `P` flag.
    pub fn keywords(&self) -> Vec<String> {
        let mut k = self.keywords.all();
        for e in &self.extra_names {
            if !k.iter().any(|x| x.eq_ignore_ascii_case(e)) {
                k.push(e.clone());
            }
        }
        if self.forwarded && !k.iter().any(|x| x.eq_ignore_ascii_case(FORWARDED)) {
            k.push(FORWARDED.to_string());
        }
        k
    }

    /// Rescan the disk if anything changed: cheap when the mtimes of new/, cur/, the uidlist
    /// and the keywords file are unchanged and the last scan began later than the newest of
    /// them by more than the file system's timestamp granularity (a change made in the same
    /// tick as the last one would leave the mtime as it was). That is one second where
    /// mtimes are whole seconds; where they carry nanoseconds (ext4, xfs, btrfs, tmpfs) the
    /// kernel stamps them from a clock that is at most a scheduler tick (≤ 10 ms) coarse, so
    /// `FINE_SETTLE` suffices, and a busy mailbox is not rescanned for a whole second after
    /// every change.
    pub fn refresh(&mut self) -> Result<()> {
        if let Some(w) = &self.watch {
            let taken = w.take();
            return self.apply_events(taken);
        }
        let st = stamp(&self.dir);
        if self.last_stamp.as_ref() == Some(&st) {
            let newest = st
                .times
                .iter()
                .flatten()
                .max()
                .copied()
                .unwrap_or(UNIX_EPOCH);
            let fine = st.times.iter().flatten().any(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map(|d| d.subsec_nanos() != 0)
                    .unwrap_or(false)
            });
            let window = if fine {
                FINE_SETTLE
            } else {
                Duration::from_secs(1)
            };
            let settled = self
                .last_scan
                .duration_since(newest)
                .map(|d| d > window)
                .unwrap_or(false);
            if settled {
                return Ok(());
            }
        }
        self.rescan()
    }

    fn flags_of(&self, name: &str) -> Flags {
        self.flags_with_extras(name, true)
    }

    /// A file name's flags, with (or without) the message's keywords from `pimap-keywords`.
    fn flags_with_extras(&self, name: &str, with_extras: bool) -> Flags {
        let parts = filename::split(name);
        let l = filename::decode_letters(parts.letters);
        let mut keywords: Vec<String> = l
            .keyword_indexes
            .iter()
            .filter_map(|&i| self.keywords.get(i).map(str::to_string))
            .collect();
        let extras = if with_extras {
            self.extras.get(parts.base)
        } else {
            &[]
        };
        for k in extras {
            if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                keywords.push(k.clone());
            }
        }
        if l.passed && !keywords.iter().any(|k| k.eq_ignore_ascii_case(FORWARDED)) {
            keywords.push(FORWARDED.to_string());
        }
        Flags {
            system: l.system,
            keywords,
        }
    }

    /// Messages in ascending UID order, as of the last `refresh`.
    pub fn messages(&self) -> &[MessageMeta] {
        &self.messages
    }

    /// STATUS counts (RFC 3501 §6.3.10); RECENT is the files in new/ at the last scan.
    pub fn status(&self) -> crate::store::MailboxStatus {
        let msgs = &self.messages;
        crate::store::MailboxStatus {
            messages: msgs.len() as u32,
            recent: self.in_new,
            unseen: msgs
                .iter()
                .filter(|m| m.flags.system & crate::store::flag::SEEN == 0)
                .count() as u32,
            uid_next: self.uid_next,
            uid_validity: self.uid_validity,
            size: msgs.iter().map(|m| m.size).sum(),
        }
    }

    /// Take the messages `uids` (ascending) out of the state, logging each as expunged. In
    /// place: no copy of the message list, only the entries after the first one move.
    fn drop_messages(&mut self, uids: &[u32]) {
        let idx: Vec<usize> = uids.iter().filter_map(|&u| self.index_of(u)).collect();
        if idx.is_empty() {
            return;
        }
        self.touch();
        for &i in &idx {
            let (Some(m), Some(l)) = (self.messages.get(i), self.locs.get(i)) else {
                continue;
            };
            if let Some(ix) = self.base_index.as_mut() {
                ix.remove(l.base(), m.uid);
            }
            self.recent.remove(&m.uid);
            self.deleted.remove(&m.uid);
            self.changes.push(Change::Expunged {
                uid: m.uid,
                flags: m.flags.clone(),
            });
        }
        remove_sorted(&mut self.messages, &idx);
        remove_sorted(&mut self.locs, &idx);
    }

    /// The UIDs of the messages flagged `\Deleted`, ascending, as of the last `refresh`: what
    /// EXPUNGE and CLOSE remove (RFC 3501 §6.4.3), found without a pass over every message.
    pub fn deleted(&self) -> impl Iterator<Item = u32> + '_ {
        self.deleted.iter().copied()
    }

    /// Keep [`Mailbox::deleted`] in step: message `uid` now has the system flags `system`.
    fn track_deleted(&mut self, uid: u32, system: u8) {
        if system & crate::store::flag::DELETED != 0 {
            self.deleted.insert(uid);
        } else {
            self.deleted.remove(&uid);
        }
    }

    /// The message with `uid`, as of the last `refresh` (and this object's own changes).
    pub fn meta(&self, uid: u32) -> Option<&MessageMeta> {
        self.index_of(uid).and_then(|i| self.messages.get(i))
    }

    /// True if the last scan saw `base` with this UID.
    fn knows(&self, uid: u32, base: &str) -> bool {
        self.index_of(uid)
            .and_then(|i| self.locs.get(i))
            .is_some_and(|l| l.base() == base)
    }

    fn index_of(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    fn path_of(&self, loc: &Loc) -> PathBuf {
        self.dir.join(loc.sub.dir()).join(&loc.name)
    }

    /// The key of the message's `pimap-cache` entry: its file's base name and size. The size
    /// is the name's `S=` when it has one (every Maildir writer that sets it sets it from the
    /// bytes it wrote, and a Maildir file is never rewritten in place: the profile of the
    /// load mix had a fifth of its CPU in this `stat`); otherwise the size a scan's stat saw
    /// (`Loc::raw`), else a `stat` (not an `open`), `None` when the file is not where the
    /// state says.
    pub fn cache_key(&self, uid: u32) -> Option<(&str, u64)> {
        let loc = self.locs.get(self.index_of(uid)?)?;
        if let Some(size) = filename::sizes(loc.base()).0 {
            return Some((loc.base(), size));
        }
        if loc.raw != 0 {
            return Some((loc.base(), loc.raw));
        }
        let md = fs::symlink_metadata(self.path_of(loc)).ok()?;
        md.is_file().then(|| (loc.base(), md.len()))
    }

    /// The message's bytes as stored.
    pub fn read(&self, uid: u32) -> Result<Vec<u8>> {
        self.read_with(uid, |mut f| {
            let mut v = Vec::new();
            f.read_to_end(&mut v)?;
            Ok(v)
        })
    }

    /// The message's header block as stored, through the empty line that ends it (the whole
    /// message if it has none): SORT's keys without reading the body.
    pub fn read_header(&self, uid: u32) -> Result<Vec<u8>> {
        self.read_with(uid, |mut f| {
            let mut v = Vec::new();
            loop {
                let from = v.len().saturating_sub(3);
                let n = f.by_ref().take(8 * 1024).read_to_end(&mut v)?;
                if let Some(end) = header_end(&v, from) {
                    v.truncate(end);
                    return Ok(v);
                }
                if n == 0 {
                    return Ok(v);
                }
            }
        })
    }

    fn read_with(
        &self,
        uid: u32,
        how: impl Fn(fs::File) -> std::io::Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let i = self.index_of(uid).ok_or(StoreError::Expunged(uid))?;
        let loc = self.locs.get(i).ok_or(StoreError::Expunged(uid))?;
        let read = |p: &Path| how(open_nofollow(p)?);
        let path = self.path_of(loc);
        match read(&path) {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Renamed by a flag change elsewhere: look once more.
                let f = locate(&self.dir, loc.base()).ok_or(StoreError::Expunged(uid))?;
                let p = self.dir.join(f.sub.dir()).join(&f.name);
                read(&p).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StoreError::Expunged(uid),
                    _ => io_err("reading", &p, e),
                })
            }
            Err(e) => Err(io_err("reading", &path, e)),
        }
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(StoreError::Cannot("mailbox is read-only (EXAMINE)".into()))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod header_end_tests {
    use super::header_end;

    #[test]
    fn finds_the_empty_line_in_either_line_ending() {
        assert_eq!(header_end(b"A: 1\r\nB: 2\r\n\r\nbody", 0), Some(14));
        assert_eq!(header_end(b"A: 1\nB: 2\n\nbody\n\n", 0), Some(11));
        assert_eq!(header_end(b"\r\nbody", 0), Some(2));
        assert_eq!(header_end(b"\nbody", 0), Some(1));
        assert_eq!(header_end(b"A: 1\r\nB: 2\r\n", 0), None, "not yet read");
        // Found across a chunk boundary: the search restarts 3 bytes back.
        let v = b"A: 1\r\n\r\nx";
        assert_eq!(header_end(v, 3), Some(8));
    }
}
