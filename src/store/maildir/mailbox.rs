//! A selected mailbox (touches disk): scanning `cur/` and `new/`, matching files to
//! `dovecot-uidlist`, assigning UIDs under the uidlist dotlock, flag renames, APPEND, COPY,
//! EXPUNGE. RFC 3501 §2.3.1.1 (UIDs strictly ascending, never reused within a UIDVALIDITY),
//! §2.3.2 (flags; `\Recent` for the session that first sees a message).

use super::changes::{Change, ChangeLog, Origin};
use super::extra_keywords::{self, ExtraKeywords, Unusable};
use super::filename::{self, Letters, FORWARDED};
use super::keywords::{self, Keywords};
use super::lock::DotLock;
use super::uidlist::UidList;
use super::watch::Watch;
use super::{io_err, new_unique, read_optional, sync_dir, uidvalidity};
use crate::store::cache;
use crate::store::{Flags, MessageMeta, Result, StoreError};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod events;
mod stream;
mod uidtail;
pub use stream::{MessageFile, Spool};

pub(super) const UIDLIST: &str = "dovecot-uidlist";
pub(super) const KEYWORDS: &str = "dovecot-keywords";
/// pimap's own file of keywords beyond the 26 file-name letters ([`extra_keywords`]).
pub(super) const EXTRAS: &str = "pimap-keywords";
/// A `pimap-keywords` larger than this is not read (logged).
const MAX_EXTRAS_FILE: u64 = 32 << 20;
/// A `pimap-keywords` line whose message is gone may still be waiting for its file (an APPEND
/// or COPY writes the line first): lines are dropped only once their file name's timestamp is
/// older than this.
const EXTRAS_GRACE: Duration = Duration::from_secs(3600);

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

/// List the message files of `dir/new` and `dir/cur`, skipping (and logging) anything that
/// is not a plain file with an acceptable name. A missing subdirectory is empty. When the
/// same base name appears twice (a rename seen half-way), the `cur/` one wins.
///
/// new/ is read before cur/: a message moved from new/ to cur/ while the scan runs (any
/// reader does that) is then seen in one of them at least; in the other order it could be
/// missed in both, and look expunged.
pub(super) fn scan(dir: &Path) -> Result<Vec<Found>> {
    let mut out: Vec<Found> = Vec::new();
    for sub in [Sub::New, Sub::Cur] {
        let d = dir.join(sub.dir());
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("reading directory", &d, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| io_err("reading directory", &d, e))?;
            let Ok(name) = ent.file_name().into_string() else {
                log::warn!("skipping non-UTF-8 file name in {}", d.display());
                continue;
            };
            if name.starts_with('.') {
                continue; // dotfiles are not messages (maildir spec)
            }
            if !filename::acceptable(&name) {
                log::warn!("skipping malformed file name {name:?} in {}", d.display());
                continue;
            }
            match ent.file_type() {
                Ok(t) if t.is_file() => {}
                Ok(_) => {
                    log::warn!("skipping {name:?} in {}: not a regular file", d.display());
                    continue;
                }
                Err(_) => continue, // vanished
            }
            out.push(Found { sub, name });
        }
    }
    // The last file of each base name wins (cur/ was read last). The set borrows the
    // names: this runs on every rescan, so no allocation per file.
    let keep: Vec<bool> = {
        let mut seen: HashSet<&str> = HashSet::with_capacity(out.len());
        let mut k: Vec<bool> = out.iter().rev().map(|f| seen.insert(f.base())).collect();
        k.reverse();
        k
    };
    if keep.contains(&false) {
        let mut k = keep.into_iter();
        out.retain(|_| k.next().unwrap_or(true));
    }
    Ok(out)
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

/// Read the uidlist without a lock. `Ok(None)` if missing; `Err(Some(reason))` if corrupt.
fn read_uidlist(dir: &Path) -> Result<std::result::Result<Option<UidList>, String>> {
    let path = dir.join(UIDLIST);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(Ok(None));
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(match UidList::parse(&text) {
        Ok(p) => {
            if p.skipped > 0 {
                log::warn!("{}: skipped {} malformed lines", path.display(), p.skipped);
            }
            Ok(Some(p.list))
        }
        Err(c) => Err(c.0),
    })
}

pub(super) fn read_keywords(dir: &Path) -> Result<Keywords> {
    let path = dir.join(KEYWORDS);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(Keywords::default());
    };
    let (k, bad) = Keywords::parse(&String::from_utf8_lossy(&bytes));
    if bad > 0 {
        log::warn!("{}: ignored {bad} malformed lines", path.display());
    }
    Ok(k)
}

/// Read `pimap-keywords`. Never fails: a missing file is empty; an unreadable, oversized or
/// malformed one is logged and treated as empty (those messages then show only their first
/// 26 keywords, from the file names; no mail is touched).
fn read_extras(dir: &Path) -> ExtraKeywords {
    let path = dir.join(EXTRAS);
    match fs::metadata(&path) {
        Ok(md) if md.len() > MAX_EXTRAS_FILE => {
            log::error!(
                "{}: larger than {MAX_EXTRAS_FILE} bytes, not read; keywords beyond the 26 in \
                 file names are not shown",
                path.display()
            );
            return ExtraKeywords::default();
        }
        _ => {}
    }
    let bytes = match read_optional(&path) {
        Ok(Some(b)) => b,
        Ok(None) => return ExtraKeywords::default(),
        Err(e) => {
            log::error!("{e}; keywords beyond the 26 in file names are not shown");
            return ExtraKeywords::default();
        }
    };
    match ExtraKeywords::parse(&String::from_utf8_lossy(&bytes)) {
        Ok((k, bad)) => {
            if bad > 0 {
                log::warn!("{}: ignored {bad} malformed lines", path.display());
            }
            k
        }
        Err(Unusable(reason)) => {
            log::error!(
                "{}: not usable ({reason}); keywords beyond the 26 in file names are not shown \
                 (the file is set aside as {EXTRAS}.corrupt at the next keyword change)",
                path.display()
            );
            ExtraKeywords::default()
        }
    }
}

/// The Unix time at the start of a file name written by a maildir writer (`<secs>.`).
fn name_secs(base: &str) -> Option<u64> {
    base.split_once('.')?.0.parse().ok()
}

fn random_guid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// With the uidlist lock held: re-read the uidlist (creating or, as a last resort,
/// rebuilding it), rescan the directory, give every file without a UID the next UIDs in
/// name order, drop lines of files that are gone, and write it back if anything changed.
/// Returns the list as written and the scan it matches.
pub(super) fn sync_locked(root: &Path, dir: &Path, lock: DotLock) -> Result<(UidList, Vec<Found>)> {
    sync_locked_first(root, dir, lock, &[])
}

/// [`sync_locked`], giving the files named in `first` (base names, e.g. what a COPY just
/// placed, in its source UID order) their UIDs before any other new file and in that order,
/// so COPYUID's destination UIDs ascend with its source UIDs as in Dovecot (RFC 4315 allows
/// any correspondence, but clients assume this one).
pub(super) fn sync_locked_first(
    root: &Path,
    dir: &Path,
    lock: DotLock,
    first: &[String],
) -> Result<(UidList, Vec<Found>)> {
    let mut changed = false;
    let mut list = match read_uidlist(dir)? {
        Ok(Some(l)) => l,
        Ok(None) => {
            changed = true;
            UidList::new(uidvalidity::claim(root), random_guid())
        }
        Err(reason) => {
            let v = uidvalidity::claim(root);
            log::error!(
                "{}: corrupt ({reason}); rebuilding with new UIDVALIDITY {v} (clients will resync)",
                dir.join(UIDLIST).display()
            );
            let _ = fs::rename(dir.join(UIDLIST), dir.join(format!("{UIDLIST}.corrupt")));
            changed = true;
            UidList::new(v, random_guid())
        }
    };
    let files = scan(dir)?;
    let present: HashSet<&str> = files.iter().map(Found::base).collect();
    let known: HashSet<String> = list.entries.iter().map(|e| e.base.clone()).collect();
    let mut unknown: Vec<&Found> = files.iter().filter(|f| !known.contains(f.base())).collect();
    let rank: HashMap<&str, usize> = first
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    unknown.sort_by(|a, b| {
        let ra = rank.get(a.base()).copied().unwrap_or(usize::MAX);
        let rb = rank.get(b.base()).copied().unwrap_or(usize::MAX);
        ra.cmp(&rb).then_with(|| a.base().cmp(b.base()))
    });
    if !unknown.is_empty() {
        // Compact lines of expunged files; a second scan guards against missing a file that
        // was being renamed while we read the directory.
        let gone: Vec<String> = list
            .entries
            .iter()
            .filter(|e| !present.contains(e.base.as_str()))
            .map(|e| e.base.clone())
            .collect();
        if !gone.is_empty() {
            let again: HashSet<String> = scan(dir)?.iter().map(|f| f.base().to_string()).collect();
            let gone: HashSet<String> = gone.into_iter().filter(|b| !again.contains(b)).collect();
            list.entries.retain(|e| !gone.contains(&e.base));
        }
        for f in unknown {
            let mut ext = Vec::new();
            if filename::sizes(f.base()).1.is_none() {
                // Cache RFC822.SIZE in the uidlist (Dovecot's `W` extension).
                if let Ok(v) = file_vsize(&dir.join(f.sub.dir()).join(&f.name)) {
                    ext.push(format!("W{v}"));
                }
            }
            if list.add(f.base(), ext).is_none() {
                return Err(StoreError::Cannot("mailbox ran out of UIDs".into()));
            }
        }
        changed = true;
    }
    if changed {
        lock.replace(list.serialize().as_bytes())?;
    }
    Ok((list, files))
}

/// How far the last scan must follow the newest mtime, on file systems with sub-second
/// timestamps, for an unchanged stamp to prove nothing changed (see [`Mailbox::refresh`]).
const FINE_SETTLE: Duration = Duration::from_millis(50);

/// Modification times that tell whether a rescan is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    times: [Option<SystemTime>; 5],
}

fn stamp(dir: &Path) -> Stamp {
    let t = |n: &str| fs::metadata(dir.join(n)).and_then(|m| m.modified()).ok();
    Stamp {
        times: [t("new"), t("cur"), t(UIDLIST), t(KEYWORDS), t(EXTRAS)],
    }
}

/// Identity of a file's content: it is replaced by rename, never rewritten in place
/// (`DotLock::replace`), so a new version has another inode (or size, or mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(path).ok()?;
    Some(FileId {
        dev: md.dev(),
        ino: md.ino(),
        len: md.len(),
        mtime: md.modified().ok(),
    })
}

/// A message an earlier scan saw (this mailbox's last scan, or the process-wide one).
struct Prev<'a> {
    name: &'a str,
    size: u64,
    date: i64,
    /// Its flags, when that scan decoded them with the current keywords.
    flags: Option<&'a Flags>,
}

/// The last expensive scan of a mailbox directory, shared by the whole process: a session
/// opening a mailbox that another session (or this one, for APPEND/COPY) scanned before
/// stats only the files that scan did not see, instead of every file for its INTERNALDATE.
struct SharedScan {
    uid_validity: u32,
    /// (UID, RFC822.SIZE, INTERNALDATE), ascending UID; parallel to `names`.
    rows: Vec<(u32, u64, i64)>,
    names: Vec<Box<str>>,
}

/// A scan that had to stat more files than this is published for other openers.
const PUBLISH_AFTER_STATS: usize = 256;
/// Mailboxes whose last scan the process keeps (most recently published first).
const SHARED_SCANS: usize = 8;

static SHARED: Mutex<Vec<(PathBuf, Arc<SharedScan>)>> = Mutex::new(Vec::new());

fn shared_scan(dir: &Path) -> Option<Arc<SharedScan>> {
    let v = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    v.iter().find(|(d, _)| d == dir).map(|(_, s)| s.clone())
}

fn publish_scan(dir: &Path, uid_validity: u32, messages: &[MessageMeta], locs: &[Loc]) {
    let scan = Arc::new(SharedScan {
        uid_validity,
        rows: messages
            .iter()
            .map(|m| (m.uid, m.size, m.internal_date))
            .collect(),
        names: locs.iter().map(|l| l.name.as_str().into()).collect(),
    });
    let mut v = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|(d, _)| d != dir);
    v.insert(0, (dir.to_path_buf(), scan));
    v.truncate(SHARED_SCANS);
}

/// Log what a rescan found changed: every UID of `old` missing from `new` is expunged, and
/// every UID in both with other flags changed (both ascending by UID; one merge pass).
fn record_diff(log: &mut ChangeLog, old: &[MessageMeta], new: &[MessageMeta]) {
    let mut n = new.iter().peekable();
    for o in old {
        while n.next_if(|m| m.uid < o.uid).is_some() {}
        match n.peek() {
            Some(m) if m.uid == o.uid => {
                if m.flags != o.flags {
                    log.push(Change::Flags {
                        uid: o.uid,
                        origin: 0,
                    });
                }
            }
            _ => log.push(Change::Expunged {
                uid: o.uid,
                flags: o.flags.clone(),
            }),
        }
    }
}

fn has_forwarded(f: &Flags) -> bool {
    f.keywords.iter().any(|x| x == FORWARDED)
}

/// Messages to copy, as [`Mailbox::copy_sources`] found them.
pub struct CopySources {
    /// The source mailbox's directory (for its metadata cache).
    dir: PathBuf,
    items: Vec<CopySource>,
}

struct CopySource {
    uid: u32,
    path: PathBuf,
    base: String,
    flags: Flags,
    /// Unknown upper-case letters of the source name, kept on the copy.
    keep: String,
    phys: u64,
    vsize: u64,
}

/// Location of a message (parallel to `messages`).
#[derive(Debug, Clone)]
struct Loc {
    sub: Sub,
    name: String,
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
    /// Base name hash → UID, for applying events by name (built on first use).
    base_index: Option<HashMap<u64, u32>>,
    /// A read-only state saw files without a UID: the next uidlist change rescans.
    awaiting_uids: bool,
    /// Full directory reads so far (tests check that events made none).
    rescans: u64,
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

    /// The directories whose changes (by any process) may change this mailbox: for a watcher
    /// such as IDLE's.
    pub fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone(), self.dir.join("new"), self.dir.join("cur")]
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

    fn rescan(&mut self) -> Result<()> {
        self.touch();
        self.base_index = None;
        self.awaiting_uids = false;
        self.rescans += 1;
        if !self.dir.is_dir() {
            // Deleted or renamed by another session.
            return Err(StoreError::NotFound(self.name.clone()));
        }
        let scan_start = SystemTime::now();
        let st = stamp(&self.dir);
        self.keywords = read_keywords(&self.dir)?;
        let mut files = scan(&self.dir)?;
        if !self.locs.is_empty() {
            let have: HashSet<&str> = files.iter().map(Found::base).collect();
            if self.locs.iter().any(|l| !have.contains(l.base())) {
                // readdir may miss a file renamed (a flag change by another process) while
                // the directory was read: look once more before taking it for expunged.
                let again = scan(&self.dir)?;
                let have: HashSet<String> = files.iter().map(|f| f.base().to_string()).collect();
                files.extend(again.into_iter().filter(|f| !have.contains(f.base())));
            }
        }
        // After the scan: a writer adds a message's line before its file appears.
        let extras_id = file_id(&self.dir.join(EXTRAS));
        let extras_changed = extras_id != self.extras_id;
        if extras_changed {
            self.extras = if extras_id.is_some() {
                read_extras(&self.dir)
            } else {
                ExtraKeywords::default()
            };
            self.extra_names = self.extras.names();
        }
        // What the last scan knew, by UID: a base name keeps its UID within a UIDVALIDITY,
        // and its RFC822.SIZE and INTERNALDATE never change, so most files need neither the
        // uidlist parsed again (when it is the same file) nor a stat.
        let old_messages = std::mem::take(&mut self.messages);
        let old_locs = std::mem::take(&mut self.locs);
        let uidlist_id = file_id(&self.dir.join(UIDLIST));
        let mut uids: HashMap<&str, (u32, Option<u64>)> = HashMap::new();
        let reuse = uidlist_id.is_some() && uidlist_id == self.uidlist_id && !old_locs.is_empty();
        if reuse {
            uids.reserve(old_locs.len());
            for (m, l) in old_messages.iter().zip(&old_locs) {
                uids.insert(l.base(), (m.uid, None));
            }
        }
        let mut list = None;
        let mut synced = false;
        if !reuse || files.iter().any(|f| !uids.contains_key(f.base())) {
            // Unknown files (or a new uidlist): read it, and sync it under the lock if a
            // file still has no UID.
            uids.clear();
            let mut l = match read_uidlist(&self.dir)? {
                Ok(Some(l)) => Some(l),
                _ => None,
            };
            let needs_sync = match &l {
                None => true,
                Some(l) => {
                    let known: HashSet<&str> = l.entries.iter().map(|e| e.base.as_str()).collect();
                    files.iter().any(|f| !known.contains(f.base()))
                }
            };
            if needs_sync {
                let result = DotLock::acquire(&self.dir.join(UIDLIST))
                    .and_then(|lk| sync_locked(&self.root, &self.dir, lk));
                match result {
                    Ok((written, f)) => {
                        l = Some(written);
                        files = f;
                        synced = true;
                    }
                    // EXAMINE on storage we cannot write: show the messages that have UIDs.
                    Err(e) if self.read_only && l.is_some() => {
                        self.awaiting_uids = true;
                        log::warn!(
                            "{}: cannot assign UIDs in a read-only session: {e}",
                            self.dir.display()
                        );
                    }
                    Err(e) => {
                        self.messages = old_messages;
                        self.locs = old_locs;
                        return Err(e);
                    }
                }
            }
            let Some(l) = l else {
                self.messages = old_messages;
                self.locs = old_locs;
                return Err(StoreError::Cannot(format!(
                    "{}: no usable dovecot-uidlist",
                    self.dir.display()
                )));
            };
            list = Some(l);
        }
        let (uid_validity, uid_next) = match &list {
            Some(l) => (l.uid_validity, l.next_uid),
            None => (self.uid_validity, self.uid_next),
        };
        if let Some(l) = &list {
            uids.reserve(l.entries.len());
            for e in &l.entries {
                uids.insert(e.base.as_str(), (e.uid, e.vsize()));
            }
        }
        // Old rows are only valid under the same UIDVALIDITY. A mailbox opened afresh (SELECT,
        // or APPEND/COPY opening its destination) starts from the process-wide last scan.
        let shared = if old_locs.is_empty() {
            shared_scan(&self.dir).filter(|s| s.uid_validity == uid_validity)
        } else {
            None
        };
        let old_valid = uid_validity == self.uid_validity;
        let known_before = |uid: u32, base: &str| -> Option<Prev<'_>> {
            if let Some(s) = &shared {
                let i = s.rows.binary_search_by_key(&uid, |r| r.0).ok()?;
                let (_, size, date) = *s.rows.get(i)?;
                let name = s.names.get(i)?;
                return (filename::split(name).base == base).then_some(Prev {
                    name,
                    size,
                    date,
                    flags: None,
                });
            }
            if !old_valid {
                return None;
            }
            let i = old_messages.binary_search_by_key(&uid, |m| m.uid).ok()?;
            let (m, l) = (old_messages.get(i)?, old_locs.get(i)?);
            (l.base() == base).then_some(Prev {
                name: &l.name,
                size: m.size,
                date: m.internal_date,
                flags: Some(&m.flags),
            })
        };
        let mut stats = 0usize;

        // Move new/ → cur/ (maildir spec: a reader that has seen a message moves it to cur/).
        self.in_new = files.iter().filter(|f| f.sub == Sub::New).count() as u32;
        let mut moved: Vec<u32> = Vec::new();
        if !self.read_only {
            for f in files.iter_mut().filter(|f| f.sub == Sub::New) {
                let Some(&(uid, _)) = uids.get(f.base()) else {
                    continue;
                };
                let to = if f.name.contains(':') {
                    f.name.clone()
                } else {
                    filename::cur_name(&f.name, "")
                };
                let from_p = self.dir.join("new").join(&f.name);
                match fs::rename(&from_p, self.dir.join("cur").join(&to)) {
                    Ok(()) => {
                        f.sub = Sub::Cur;
                        f.name = to;
                        moved.push(uid);
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        if let Some(now) = locate(&self.dir, f.base()) {
                            *f = now;
                        }
                    }
                    Err(err) => log::warn!("moving {} to cur/: {err}", from_p.display()),
                }
            }
        }
        self.recent.extend(moved);

        let mut rows: Vec<(MessageMeta, Loc)> = Vec::with_capacity(files.len());
        for f in files {
            let Some(&(uid, vsize)) = uids.get(f.base()) else {
                continue;
            };
            let old = known_before(uid, f.base());
            let (size, date, flags) = match old {
                Some(p) => {
                    // Same name: same flags, unless it has keyword letters (the keywords
                    // file may have changed under them).
                    let letters = filename::split(&f.name).letters;
                    let flags = match p.flags {
                        Some(fl)
                            if p.name == f.name
                                && !extras_changed
                                && !letters.bytes().any(|b| b.is_ascii_lowercase()) =>
                        {
                            fl.clone()
                        }
                        _ => self.flags_of(&f.name),
                    };
                    (p.size, p.date, flags)
                }
                None => {
                    let path = self.dir.join(f.sub.dir()).join(&f.name);
                    stats += 1;
                    let md = match fs::symlink_metadata(&path) {
                        Ok(md) => md,
                        Err(_) => continue, // vanished: expunged meanwhile
                    };
                    let size = match filename::sizes(f.base()).1.or(vsize) {
                        Some(w) => w,
                        None => match file_vsize(&path) {
                            Ok(v) => v,
                            Err(err) => {
                                log::warn!("reading {}: {err}", path.display());
                                continue;
                            }
                        },
                    };
                    (size, mtime_secs(&md), self.flags_of(&f.name))
                }
            };
            let meta = MessageMeta {
                uid,
                flags,
                size,
                internal_date: date,
                recent: self.recent.contains(&uid),
            };
            rows.push((
                meta,
                Loc {
                    sub: f.sub,
                    name: f.name,
                },
            ));
        }
        // Sort small keys, not the rows: (UID, position), so that for a UID seen twice (one
        // base name in cur/ and new/) cur/, scanned first, wins.
        let mut order: Vec<u64> = rows
            .iter()
            .enumerate()
            .map(|(i, (m, _))| (u64::from(m.uid) << 32) | i as u64)
            .collect();
        order.sort_unstable();
        order.dedup_by_key(|k| *k >> 32);
        let mut slots: Vec<Option<(MessageMeta, Loc)>> = rows.into_iter().map(Some).collect();
        let rows: Vec<(MessageMeta, Loc)> = order
            .iter()
            .filter_map(|k| {
                slots
                    .get_mut((*k & 0xffff_ffff) as usize)
                    .and_then(Option::take)
            })
            .collect();
        drop(slots);
        self.recent
            .retain(|u| rows.binary_search_by_key(u, |(m, _)| m.uid).is_ok());
        drop(uids);
        drop(shared);
        let (messages, locs): (Vec<MessageMeta>, Vec<Loc>) = rows.into_iter().unzip();
        if old_valid {
            record_diff(&mut self.changes, &old_messages, &messages);
        } else {
            self.changes.reset();
        }
        drop(old_messages);
        drop(old_locs);
        if stats > PUBLISH_AFTER_STATS {
            publish_scan(&self.dir, uid_validity, &messages, &locs);
        }
        self.forwarded = messages.iter().any(|m| has_forwarded(&m.flags));
        self.messages = messages;
        self.locs = locs;
        self.uid_validity = uid_validity;
        self.uid_next = uid_next;
        // The uidlist as of the stat taken before reading it (a newer file has another
        // identity, so the next rescan reads it); after a sync, read it again next time.
        self.uidlist_id = if synced { None } else { uidlist_id };
        self.extras_id = extras_id;
        self.last_stamp = Some(st);
        self.last_scan = scan_start;
        self.touch();
        Ok(())
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

    /// The key of the message's `pimap-cache` entry: its file's base name and size on disk
    /// (a `stat`, not an `open`); `None` when the file is not where the last scan saw it.
    pub fn cache_key(&self, uid: u32) -> Option<(&str, u64)> {
        let loc = self.locs.get(self.index_of(uid)?)?;
        let md = fs::symlink_metadata(self.path_of(loc)).ok()?;
        md.is_file().then(|| (loc.base(), md.len()))
    }

    /// The message's bytes as stored.
    pub fn read(&self, uid: u32) -> Result<Vec<u8>> {
        let i = self.index_of(uid).ok_or(StoreError::Expunged(uid))?;
        let loc = self.locs.get(i).ok_or(StoreError::Expunged(uid))?;
        let read = |p: &Path| -> std::io::Result<Vec<u8>> {
            let mut v = Vec::new();
            open_nofollow(p)?.read_to_end(&mut v)?;
            Ok(v)
        };
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

    /// Letter indexes for keywords, adding new ones to `dovecot-keywords` under its dotlock,
    /// and the keywords left without a letter (all 26 taken) for `pimap-keywords`.
    fn keyword_indexes(&mut self, kws: &[String]) -> Result<(Vec<usize>, Vec<String>)> {
        self.touch();
        let wanted: Vec<&String> = kws.iter().collect();
        for k in &wanted {
            if !keywords::valid_keyword(k) {
                return Err(StoreError::Cannot(format!("invalid keyword {k:?}")));
            }
        }
        let full = (0..keywords::MAX_LETTERS).all(|i| self.keywords.get(i).is_some());
        if full || wanted.iter().all(|k| self.keywords.index_of(k).is_some()) {
            let mut idx = Vec::new();
            let mut overflow = Vec::new();
            for k in wanted {
                match self.keywords.index_of(k) {
                    Some(i) => idx.push(i),
                    None => overflow.push(k.clone()),
                }
            }
            return Ok((idx, overflow));
        }
        // Dovecot adds keywords to dovecot-keywords only under the uidlist lock (and then
        // under dovecot-keywords.lock, which it removes unasked first): take both, in that
        // order, and re-read the file under them, so no letter is ever given twice.
        let _uidlist = DotLock::acquire(&self.dir.join(UIDLIST))?;
        let path = self.dir.join(KEYWORDS);
        let lock = DotLock::acquire(&path)?;
        let old_mtime = fs::metadata(&path).ok().map(|md| mtime_secs(&md));
        let mut kw = read_keywords(&self.dir)?;
        let before = kw.clone();
        let mut out = Vec::new();
        let mut overflow = Vec::new();
        for k in wanted {
            match kw.get_or_add(k) {
                Ok(i) => out.push(i),
                Err(keywords::TooMany) => overflow.push(k.clone()),
            }
        }
        if kw != before {
            // Dovecot re-reads the file only when its mtime (whole seconds) changed.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let secs = old_mtime.map_or(now, |old| now.max(old.saturating_add(1)));
            let mtime = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
            lock.replace_with_mtime(kw.serialize().as_bytes(), Some(mtime))?;
        }
        self.keywords = kw;
        Ok((out, overflow))
    }

    /// Change `pimap-keywords` under its dotlock: re-read it, apply `change`, drop lines of
    /// messages long gone, and write it back (tmp + fsync + rename) if anything changed. An
    /// unusable file is set aside as `pimap-keywords.corrupt` first (logged).
    fn update_extras(&mut self, change: impl FnOnce(&mut ExtraKeywords) -> bool) -> Result<()> {
        self.touch();
        let path = self.dir.join(EXTRAS);
        let lock = DotLock::acquire(&path)?;
        let mut k = match read_optional(&path)? {
            None => ExtraKeywords::default(),
            Some(b) => match ExtraKeywords::parse(&String::from_utf8_lossy(&b)) {
                Ok((k, _)) => k,
                Err(Unusable(reason)) => {
                    let aside = self.dir.join(format!("{EXTRAS}.corrupt"));
                    log::error!(
                        "{}: not usable ({reason}); moved to {} and started afresh",
                        path.display(),
                        aside.display()
                    );
                    let _ = fs::rename(&path, &aside);
                    ExtraKeywords::default()
                }
            },
        };
        let before = k.clone();
        let before_names = before.names().len();
        if !change(&mut k) {
            return Err(StoreError::Cannot("keyword cannot be stored".into()));
        }
        let names = k.names();
        if names.len() > extra_keywords::MAX_EXTRA && names.len() > before_names {
            return Err(StoreError::Cannot(format!(
                "too many keywords in this mailbox (at most {})",
                keywords::MAX_LETTERS + extra_keywords::MAX_EXTRA
            )));
        }
        self.collect_extras(&mut k);
        if k != before {
            lock.replace(k.serialize().as_bytes())?;
        }
        self.extra_names = k.names();
        self.extras = k;
        Ok(())
    }

    /// Drop the lines of messages that are gone: not in this mailbox's last scan, written
    /// long enough ago that no APPEND or COPY can still be placing the file, and absent from
    /// two fresh directory scans (a flag rename can hide a file from one readdir).
    fn collect_extras(&self, k: &mut ExtraKeywords) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let known: HashSet<&str> = self.locs.iter().map(Loc::base).collect();
        let candidates: Vec<String> = k
            .bases()
            .filter(|b| !known.contains(b))
            .filter(|b| name_secs(b).is_some_and(|t| t + EXTRAS_GRACE.as_secs() < now))
            .map(str::to_string)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let mut present: HashSet<String> = HashSet::new();
        for _ in 0..2 {
            match scan(&self.dir) {
                Ok(files) => present.extend(files.iter().map(|f| f.base().to_string())),
                Err(_) => return,
            }
        }
        for b in candidates {
            if !present.contains(&b) {
                k.set(&b, &[]);
            }
        }
    }

    /// File-name letters for `flags`, keeping the letters of `old_letters` we don't
    /// interpret. `$Forwarded` is stored like Dovecot 2.3 stores it (a keyword letter); a `P`
    /// already present stands for it and is kept while `$Forwarded` stays set.
    /// Also returns the keywords that got no letter (for `pimap-keywords`).
    fn letters_for(&mut self, flags: &Flags, old_letters: &str) -> Result<(String, Vec<String>)> {
        let old = filename::decode_letters(old_letters);
        let fwd = flags
            .keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(FORWARDED));
        let passed = fwd && old.passed;
        let kws: Vec<String> = flags
            .keywords
            .iter()
            .filter(|k| !(passed && k.eq_ignore_ascii_case(FORWARDED)))
            .cloned()
            .collect();
        let (idx, overflow) = self.keyword_indexes(&kws)?;
        let mut unknown = old.unknown.clone();
        // Letters of keywords this mailbox does not define are kept as they were.
        for i in old.keyword_indexes {
            if self.keywords.get(i).is_none() && i < 26 {
                unknown.push((b'a' + i as u8) as char);
            }
        }
        let l = Letters {
            system: flags.system & 0x1f,
            passed,
            keyword_indexes: idx,
            unknown,
        };
        Ok((filename::encode_letters(&l), overflow))
    }

    /// Set a message's flags to `flags` (renames the file within cur/; records new
    /// keywords). Only what differs from the flags of the last `refresh` is changed, and it
    /// is applied to the message's state on disk at that moment (its current file name,
    /// `pimap-keywords` re-read under its lock), so flags other sessions or processes
    /// changed meanwhile are kept, as when Dovecot applies a STORE.
    pub fn set_flags(&mut self, uid: u32, flags: &Flags) -> Result<()> {
        self.touch();
        self.check_writable()?;
        let i = self.index_of(uid).ok_or(StoreError::Expunged(uid))?;
        let mut loc = self.locs.get(i).cloned().ok_or(StoreError::Expunged(uid))?;
        let seen = self
            .messages
            .get(i)
            .map(|m| m.flags.clone())
            .unwrap_or_default();
        let has = |set: &[String], k: &str| set.iter().any(|x| x.eq_ignore_ascii_case(k));
        let added: Vec<String> = (flags.keywords.iter())
            .filter(|k| !has(&seen.keywords, k))
            .cloned()
            .collect();
        let removed: Vec<String> = (seen.keywords.iter())
            .filter(|k| !has(&flags.keywords, k))
            .cloned()
            .collect();
        let (set_sys, clear_sys) = (flags.system & !seen.system, seen.system & !flags.system);
        let apply = |cur: &Flags| -> Flags {
            let mut keywords: Vec<String> = (cur.keywords.iter())
                .filter(|k| !has(&removed, k))
                .cloned()
                .collect();
            for k in &added {
                if !has(&keywords, k) {
                    keywords.push(k.clone());
                }
            }
            Flags {
                system: (cur.system & !clear_sys) | set_sys,
                keywords,
            }
        };
        // Keywords without a letter first: if they cannot be stored, nothing changes.
        let (_, overflow) = self.letters_for(
            &Flags {
                system: 0,
                keywords: added.clone(),
            },
            "",
        )?;
        let base = loc.base().to_string();
        if !overflow.is_empty() || (!removed.is_empty() && self.dir.join(EXTRAS).exists()) {
            self.update_extras(|k| {
                let mut kws: Vec<String> = (k.get(&base).iter())
                    .filter(|x| !has(&removed, x))
                    .cloned()
                    .collect();
                for o in &overflow {
                    if !has(&kws, o) {
                        kws.push(o.clone());
                    }
                }
                k.get(&base) == kws.as_slice() || k.set(&base, &kws)
            })?;
        }
        // A rename by someone else meanwhile (ENOENT): find the file again and re-apply.
        for attempt in 0..20 {
            let old_letters = filename::split(&loc.name).letters.to_string();
            let target = apply(&self.flags_with_extras(&loc.name, false));
            let (letters, _) = self.letters_for(&target, &old_letters)?;
            let new_name = filename::cur_name(loc.base(), &letters);
            if loc.sub == Sub::Cur && new_name == loc.name {
                break;
            }
            match fs::rename(self.path_of(&loc), self.dir.join("cur").join(&new_name)) {
                Ok(()) => {
                    loc = Loc {
                        sub: Sub::Cur,
                        name: new_name,
                    };
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 19 => {
                    let f = locate(&self.dir, loc.base()).ok_or(StoreError::Expunged(uid))?;
                    loc = Loc {
                        sub: f.sub,
                        name: f.name,
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Expunged(uid))
                }
                Err(e) => return Err(io_err("renaming", &self.path_of(&loc), e)),
            }
        }
        let new_flags = self.flags_of(&loc.name);
        if let (Some(m), Some(l)) = (self.messages.get_mut(i), self.locs.get_mut(i)) {
            self.forwarded |= has_forwarded(&new_flags);
            if m.flags != new_flags {
                self.changes.push(Change::Flags {
                    uid,
                    origin: self.origin,
                });
            }
            m.flags = new_flags;
            *l = loc;
        }
        Ok(())
    }

    /// APPEND into this mailbox (RFC 3501 §6.3.11); returns the new UID.
    pub fn append(
        &mut self,
        data: &[u8],
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> Result<u32> {
        self.check_writable()?;
        let (letters, overflow) = self.letters_for(flags, "")?;
        let unique = new_unique();
        let tmp = self.dir.join("tmp").join(&unique);
        write_new_file(&tmp, data, mtime_of(internal_date))?;
        let (size, vsize) = (data.len() as u64, filename::vsize(data));
        let uid = self.place_tmp(&tmp, &unique, size, vsize, &letters, &overflow)?;
        // Filled on arrival: the message is in memory now, parsed once here.
        let base = filename::base_with_sizes(&unique, size, vsize);
        let meta = cache::compute(&crate::mime::to_crlf(data));
        let c = cache::for_mailbox(&self.dir);
        c.put(&base, size, &meta);
        c.flush();
        Ok(uid)
    }

    /// Rename the complete, fsynced `tmp` file (named `unique` in this mailbox's tmp/) into
    /// cur/ under the uidlist lock and return its new UID; `tmp` is gone afterwards. Keywords
    /// without a file-name letter (`overflow`) are recorded first, so no reader sees the
    /// message without them.
    fn place_tmp(
        &mut self,
        tmp: &Path,
        unique: &str,
        size: u64,
        vsize: u64,
        letters: &str,
        overflow: &[String],
    ) -> Result<u32> {
        let base = filename::base_with_sizes(unique, size, vsize);
        if !overflow.is_empty() {
            if let Err(e) = self.update_extras(|k| k.set(&base, overflow)) {
                let _ = fs::remove_file(tmp);
                return Err(e);
            }
        }
        let dest = self
            .dir
            .join("cur")
            .join(filename::cur_name(&base, letters));
        let result = self.link_in_locked(&[(tmp.to_path_buf(), dest, base.clone(), true)]);
        let _ = fs::remove_file(tmp);
        let uids = result?;
        uids.first()
            .and_then(|(_, u)| *u)
            .ok_or_else(|| StoreError::Cannot("appended message vanished".into()))
    }

    /// Under the uidlist lock: move or link each `(source, destination)` into place, then
    /// assign UIDs. Returns the base names with their UIDs (`None` when the source vanished).
    fn link_in_locked(
        &mut self,
        items: &[(PathBuf, PathBuf, String, bool)],
    ) -> Result<Vec<(String, Option<u32>)>> {
        let lock = DotLock::acquire(&self.dir.join(UIDLIST))?;
        let mut placed = Vec::new();
        for (src, dst, base, is_rename) in items {
            let r = if *is_rename {
                fs::rename(src, dst)
            } else {
                fs::hard_link(src, dst)
            };
            match r {
                Ok(()) => placed.push(base.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if *is_rename => return Err(io_err("moving into place", dst, e)),
                Err(_) => {
                    // No hard links here (EXDEV, EPERM, EMLINK, ...): copy.
                    match copy_file(src, dst, &self.dir.join("tmp")) {
                        Ok(()) => placed.push(base.clone()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err("copying to", dst, e)),
                    }
                }
            }
        }
        sync_dir(&self.dir.join("cur"));
        let by_base: HashMap<String, u32> = match self.append_uid_lines(&placed, items)? {
            Some(uids) => uids,
            None => self.rewrite_uid_lines(lock, &placed, items)?,
        };
        // The new messages are in the state at once: no session has to find them on disk.
        let mut rows = Vec::new();
        for (_, dst, base, _) in items {
            let (Some(&uid), true) = (by_base.get(base.as_str()), placed.contains(base)) else {
                continue;
            };
            let Some(name) = dst.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Ok(md) = fs::symlink_metadata(dst) else {
                continue;
            };
            let size = match filename::sizes(base).1 {
                Some(w) => w,
                None => file_vsize(dst).unwrap_or(md.len()),
            };
            let meta = MessageMeta {
                uid,
                flags: self.flags_of(name),
                size,
                internal_date: mtime_secs(&md),
                recent: false,
            };
            rows.push((
                meta,
                Loc {
                    sub: Sub::Cur,
                    name: name.to_string(),
                },
            ));
        }
        self.insert_rows(rows);
        Ok(items
            .iter()
            .map(|(_, _, b, _)| {
                (
                    b.clone(),
                    if placed.contains(b) {
                        by_base.get(b.as_str()).copied()
                    } else {
                        None
                    },
                )
            })
            .collect())
    }

    /// [`Mailbox::link_in_locked`]'s UIDs when the uidlist is rewritten: read it in full, add
    /// the lines (dropping this state's own expunged ones), or run the full sync when it holds
    /// lines this state does not know, is missing or corrupt. Returns the placed files' UIDs.
    fn rewrite_uid_lines(
        &mut self,
        lock: DotLock,
        placed: &[String],
        items: &[(PathBuf, PathBuf, String, bool)],
    ) -> Result<HashMap<String, u32>> {
        self.uidlist_tail = None;
        let list = match read_uidlist(&self.dir)? {
            // We know the new files: add their lines without scanning the directory (other
            // files without a UID get theirs at the next rescan, in arrival order anyway).
            // Only when every line is a message of our last scan: a line we don't know is a
            // file expunged since (the full sync drops it) or one added by another process.
            // Lines of files this session expunged itself are dropped here.
            Ok(Some(mut list))
                if list.entries.iter().all(|e| {
                    self.knows(e.uid, &e.base) || self.own_expunged.binary_search(&e.uid).is_ok()
                }) =>
            {
                let own = std::mem::take(&mut self.own_expunged);
                list.entries.retain(|e| own.binary_search(&e.uid).is_err());
                let have: HashSet<&str> = placed.iter().map(String::as_str).collect();
                let listed: HashSet<String> = list
                    .entries
                    .iter()
                    .filter(|e| have.contains(e.base.as_str()))
                    .map(|e| e.base.clone())
                    .collect();
                for b in placed {
                    if listed.contains(b) {
                        continue;
                    }
                    let mut ext = Vec::new();
                    if filename::sizes(b).1.is_none() {
                        if let Some((_, dst, _, _)) = items.iter().find(|(_, _, base, _)| base == b)
                        {
                            if let Ok(v) = file_vsize(dst) {
                                ext.push(format!("W{v}"));
                            }
                        }
                    }
                    if list.add(b, ext).is_none() {
                        return Err(StoreError::Cannot("mailbox ran out of UIDs".into()));
                    }
                }
                lock.replace(list.serialize().as_bytes())?;
                list
            }
            // Missing or corrupt (the full sync creates or rebuilds it), or due for compaction.
            _ => {
                self.own_expunged.clear();
                sync_locked_first(&self.root, &self.dir, lock, placed)?.0
            }
        };
        self.uid_next = self.uid_next.max(list.next_uid);
        let wanted: HashSet<&str> = placed.iter().map(String::as_str).collect();
        Ok(list
            .entries
            .into_iter()
            .filter(|e| wanted.contains(e.base.as_str()))
            .map(|e| (e.base, e.uid))
            .collect())
    }

    /// COPY `uids` into `dest` (RFC 3501 §6.4.7; hard links when possible); returns
    /// (source UID, new UID) pairs for the messages that still existed.
    pub fn copy_to(&self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>> {
        let sources = self.copy_sources(uids);
        dest.copy_in(&sources)
    }

    /// What [`Mailbox::copy_in`] needs of the messages `uids` (those that still exist): taken
    /// under this mailbox's lock, which is let go before the destination's is taken.
    pub fn copy_sources(&self, uids: &[u32]) -> CopySources {
        let mut items = Vec::new();
        for &uid in uids {
            let Some(i) = self.index_of(uid) else {
                continue;
            };
            let (Some(m), Some(loc)) = (self.messages.get(i), self.locs.get(i)) else {
                continue;
            };
            let mut src = self.path_of(loc);
            if !src.exists() {
                match locate(&self.dir, loc.base()) {
                    Some(f) => src = self.dir.join(f.sub.dir()).join(&f.name),
                    None => continue,
                }
            }
            let old = filename::decode_letters(filename::split(&loc.name).letters);
            let keep: String = old
                .unknown
                .chars()
                .filter(|c| c.is_ascii_uppercase())
                .collect();
            let phys = filename::sizes(loc.base())
                .0
                .or_else(|| fs::metadata(&src).ok().map(|md| md.len()))
                .unwrap_or(0);
            items.push(CopySource {
                uid,
                path: src,
                base: loc.base().to_string(),
                flags: m.flags.clone(),
                keep,
                phys,
                vsize: m.size,
            });
        }
        CopySources {
            dir: self.dir.clone(),
            items,
        }
    }

    /// Place copies of `sources` in this mailbox; returns (source UID, new UID) pairs for
    /// the messages that still existed.
    pub fn copy_in(&mut self, sources: &CopySources) -> Result<Vec<(u32, u32)>> {
        self.check_writable()?;
        let (src_cache, dst_cache) = (
            cache::for_mailbox(&sources.dir),
            cache::for_mailbox(&self.dir),
        );
        let mut items = Vec::new();
        let mut src_uids = Vec::new();
        let mut extras: Vec<(String, Vec<String>)> = Vec::new();
        for s in &sources.items {
            let (letters, overflow) = self.letters_for(&s.flags, &s.keep)?;
            let base = filename::base_with_sizes(&new_unique(), s.phys, s.vsize);
            if !overflow.is_empty() {
                extras.push((base.clone(), overflow));
            }
            let dst = self
                .dir
                .join("cur")
                .join(filename::cur_name(&base, &letters));
            if let Some(meta) = src_cache.get(&s.base, s.phys) {
                dst_cache.put(&base, s.phys, &meta);
            }
            items.push((s.path.clone(), dst, base, false));
            src_uids.push(s.uid);
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if !extras.is_empty() {
            // Before the files appear, so no reader sees the copies without them.
            self.update_extras(|k| extras.iter().all(|(b, kws)| k.set(b, kws)))?;
        }
        let got = self.link_in_locked(&items)?;
        Ok(src_uids
            .into_iter()
            .zip(got)
            .filter_map(|(s, (_, d))| d.map(|d| (s, d)))
            .collect())
    }

    /// Remove messages (RFC 3501 §6.4.3); returns the UIDs actually removed by this call.
    pub fn expunge(&mut self, uids: &[u32]) -> Result<Vec<u32>> {
        self.touch();
        self.check_writable()?;
        let mut removed = Vec::new();
        for &uid in uids {
            let Some(i) = self.index_of(uid) else {
                continue;
            };
            let Some(loc) = self.locs.get(i) else {
                continue;
            };
            let path = self.path_of(loc);
            cache::for_mailbox(&self.dir).forget(loc.base());
            match fs::remove_file(&path) {
                Ok(()) => removed.push(uid),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Some(f) = locate(&self.dir, loc.base()) {
                        let p = self.dir.join(f.sub.dir()).join(&f.name);
                        match fs::remove_file(&p) {
                            Ok(()) => removed.push(uid),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io_err("removing", &p, e)),
                        }
                    }
                }
                Err(e) => return Err(io_err("removing", &path, e)),
            }
        }
        let gone: HashSet<u32> = removed.iter().copied().collect();
        let extra_bases: Vec<String> = self
            .messages
            .iter()
            .zip(&self.locs)
            .filter(|(m, l)| gone.contains(&m.uid) && !self.extras.get(l.base()).is_empty())
            .map(|(_, l)| l.base().to_string())
            .collect();
        if !extra_bases.is_empty() {
            let r = self.update_extras(|k| {
                for b in &extra_bases {
                    k.set(b, &[]);
                }
                true
            });
            if let Err(e) = r {
                // The messages are gone either way; the lines are dropped later.
                log::warn!("{}: {e}", self.dir.join(EXTRAS).display());
            }
        }
        if self.own_expunged.len() > 100_000 {
            self.own_expunged.clear(); // a full sync will compact them
        }
        self.own_expunged.extend(&removed);
        self.own_expunged.sort_unstable();
        self.own_expunged.dedup();
        let changes = &mut self.changes;
        let index = &mut self.base_index;
        let (messages, locs) = std::mem::take(&mut self.messages)
            .into_iter()
            .zip(std::mem::take(&mut self.locs))
            .filter(|(m, l)| {
                if gone.contains(&m.uid) {
                    if let Some(ix) = index.as_mut() {
                        ix.remove(&events::base_hash(l.base()));
                    }
                    changes.push(Change::Expunged {
                        uid: m.uid,
                        flags: m.flags.clone(),
                    });
                    return false;
                }
                true
            })
            .unzip();
        self.messages = messages;
        self.locs = locs;
        self.recent.retain(|u| !gone.contains(u));
        Ok(removed)
    }
}

/// Create `path` exclusively with `data`, fsync it and set its mtime.
pub(super) fn write_new_file(path: &Path, data: &[u8], mtime: SystemTime) -> Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("creating", path, e))?;
    let r = f
        .write_all(data)
        .and_then(|_| f.set_times(fs::FileTimes::new().set_modified(mtime)))
        .and_then(|_| f.sync_all());
    if let Err(e) = r {
        drop(f);
        let _ = fs::remove_file(path);
        return Err(io_err("writing", path, e));
    }
    Ok(())
}

/// INTERNALDATE (Unix seconds) as a file mtime; now when the client gave none.
fn mtime_of(internal_date: Option<i64>) -> SystemTime {
    match internal_date {
        Some(t) if t >= 0 => UNIX_EPOCH + Duration::from_secs(t as u64),
        Some(t) => UNIX_EPOCH
            .checked_sub(Duration::from_secs(t.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH),
        None => SystemTime::now(),
    }
}

/// Copy `src` to `dst` through `tmp_dir`, keeping the mtime (INTERNALDATE); streamed, so a
/// big message is never held in memory.
fn copy_file(src: &Path, dst: &Path, tmp_dir: &Path) -> std::io::Result<()> {
    let mut from = open_nofollow(src)?;
    let mtime = from.metadata()?.modified()?;
    let tmp = tmp_dir.join(new_unique());
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let r = std::io::copy(&mut from, &mut to)
        .and_then(|_| to.set_times(fs::FileTimes::new().set_modified(mtime)))
        .and_then(|_| to.sync_all())
        .and_then(|_| fs::rename(&tmp, dst));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod perf_paths {
    //! The shortcuts that keep per-command cost flat (benches/run.sh): each must still see
    //! what other processes did.
    use super::super::{test_dir, UserStore};
    use super::*;

    fn setup(tag: &str) -> (PathBuf, UserStore) {
        let d = test_dir(tag);
        let s = UserStore::open(&d.join("Maildir")).unwrap();
        (d, s)
    }

    fn settle() {
        // Past FINE_SETTLE and a one-second mtime granularity alike.
        std::thread::sleep(Duration::from_millis(1100));
    }

    #[test]
    fn reused_uidlist_still_sees_a_foreign_flag_change_and_delivery() {
        let (d, s) = setup("perf-foreign");
        let root = d.join("Maildir");
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        let u1 = mb.append(b"a\r\n", &Flags::default(), None).unwrap();
        mb.refresh().unwrap();
        settle();
        // Another process sets \Seen by renaming (uidlist untouched: the reuse path).
        let name = crate::store::maildir::first_cur_name(&root);
        let seen = filename::cur_name(filename::split(&name).base, "S");
        fs::rename(root.join("cur").join(&name), root.join("cur").join(&seen)).unwrap();
        mb.refresh().unwrap();
        assert_eq!(mb.messages()[0].uid, u1);
        assert_eq!(mb.messages()[0].flags.system, crate::store::flag::SEEN);
        // A delivery into new/: a file the reused UIDs don't know gets the next UID.
        fs::write(root.join("new/1800000000.M1P1.other"), "b\r\n").unwrap();
        mb.refresh().unwrap();
        let uids: Vec<u32> = mb.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![u1, u1 + 1]);
        let _ = fs::remove_dir_all(&d);
    }

    fn uidlist_uids(root: &Path) -> (String, Vec<u32>) {
        let text = fs::read_to_string(root.join(UIDLIST)).unwrap();
        let header = text.lines().next().unwrap_or("").to_string();
        let uids = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .collect();
        (header, uids)
    }

    #[test]
    fn appends_add_lines_in_place_and_rewrite_only_when_dead_lines_dominate() {
        let (d, s) = setup("perf-expunge");
        let root = d.join("Maildir");
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        let a = mb.append(b"a\r\n", &Flags::default(), None).unwrap();
        let b = mb.append(b"b\r\n", &Flags::default(), None).unwrap();
        let (header, _) = uidlist_uids(&root);
        let ino =
            |r: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(r.join(UIDLIST)).unwrap());
        let before = ino(&root);
        assert_eq!(mb.expunge(&[a]).unwrap(), vec![a]);
        let c = mb.append(b"c\r\n", &Flags::default(), None).unwrap();
        // Appended to the same file, header as it was; the dead line waits for a rewrite.
        assert_eq!(uidlist_uids(&root), (header.clone(), vec![a, b, c]));
        assert_eq!(ino(&root), before, "appended in place, not replaced");
        // Another process appends; ours reads only that new tail before adding its own.
        let mut other = s.load_mailbox("INBOX", false).unwrap();
        let e = other.append(b"e\r\n", &Flags::default(), None).unwrap();
        let f = mb.append(b"f\r\n", &Flags::default(), None).unwrap();
        assert_eq!(uidlist_uids(&root).1, vec![a, b, c, e, f]);
        assert!(f > e);
        mb.refresh().unwrap();
        let uids: Vec<u32> = mb.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![b, c, e, f]);
        // Mostly dead lines: the next APPEND rewrites the file with the live ones only.
        let many: Vec<u32> = (0..80)
            .map(|i| {
                mb.append(format!("{i}\r\n").as_bytes(), &Flags::default(), None)
                    .unwrap()
            })
            .collect();
        mb.expunge(&many[..70]).unwrap();
        let g = mb.append(b"g\r\n", &Flags::default(), None).unwrap();
        mb.refresh().unwrap();
        let live: Vec<u32> = mb.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uidlist_uids(&root).1, live);
        assert_eq!(live.last(), Some(&g));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_fresh_open_reuses_the_shared_scan_but_not_across_uidvalidity() {
        let (d, s) = setup("perf-shared");
        let root = d.join("Maildir");
        for i in 0..(PUBLISH_AFTER_STATS + 10) {
            let name = format!("17000{i:05}.M{i}P1.h,S=3,W=3:2,S");
            fs::write(root.join("cur").join(name), "x\r\n").unwrap();
        }
        let first = s.load_mailbox("INBOX", false).unwrap();
        assert!(
            shared_scan(&root).is_some(),
            "the expensive first scan is published"
        );
        let second = s.load_mailbox("INBOX", false).unwrap();
        assert_eq!(first.messages(), second.messages());
        // A rebuilt uidlist (new UIDVALIDITY): the shared rows are not used.
        drop((first, second));
        fs::remove_file(root.join(UIDLIST)).unwrap();
        let third = s.load_mailbox("INBOX", false).unwrap();
        assert_eq!(third.messages().len(), PUBLISH_AFTER_STATS + 10);
        assert!(third
            .messages()
            .iter()
            .all(|m| m.size == 3 && m.flags.system == crate::store::flag::SEEN));
        let _ = fs::remove_dir_all(&d);
    }
}

#[cfg(test)]
mod keyword_locks {
    //! dovecot-keywords is shared with Dovecot, which adds to it under the uidlist lock and
    //! notices changes by mtime.
    use super::super::{test_dir, UserStore};
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn kw(k: &str) -> Flags {
        Flags {
            system: 0,
            keywords: vec![k.to_string()],
        }
    }

    #[test]
    fn a_new_keyword_waits_for_the_uidlist_lock_and_keeps_the_letters_given_meanwhile() {
        let d = test_dir("kw-uidlist-lock");
        let root = d.join("Maildir");
        let s = UserStore::open(&root).unwrap();
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        // "Dovecot" holds the uidlist lock while it gives letter a to "theirs" (it writes
        // dovecot-keywords from memory, as Dovecot does).
        let held = DotLock::acquire(&root.join(UIDLIST)).unwrap();
        let r2 = root.clone();
        let dovecot = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            fs::write(r2.join(KEYWORDS), "0 theirs\n").unwrap();
            drop(held);
        });
        std::thread::sleep(Duration::from_millis(50));
        mb.append(b"a\r\n", &kw("mine"), None).unwrap();
        dovecot.join().unwrap();
        let text = fs::read_to_string(root.join(KEYWORDS)).unwrap();
        assert_eq!(text, "0 theirs\n1 mine\n");
        let name = crate::store::maildir::first_cur_name(&root);
        assert!(name.ends_with(":2,b"), "{name}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn dovecot_keywords_mtime_grows_by_whole_seconds() {
        let d = test_dir("kw-mtime");
        let root = d.join("Maildir");
        let s = UserStore::open(&root).unwrap();
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        mb.append(b"a\r\n", &kw("one"), None).unwrap();
        // Dovecot may have set it ahead of the clock (it does so itself).
        let ahead = SystemTime::now() + Duration::from_secs(100);
        let f = fs::File::options()
            .write(true)
            .open(root.join(KEYWORDS))
            .unwrap();
        f.set_times(fs::FileTimes::new().set_modified(ahead))
            .unwrap();
        drop(f);
        let before = fs::metadata(root.join(KEYWORDS)).unwrap().mtime();
        mb.append(b"b\r\n", &kw("two"), None).unwrap();
        let after = fs::metadata(root.join(KEYWORDS)).unwrap().mtime();
        assert_eq!(after, before + 1);
        assert_eq!(
            fs::read_to_string(root.join(KEYWORDS)).unwrap(),
            "0 one\n1 two\n"
        );
        let _ = fs::remove_dir_all(&d);
    }
}

#[cfg(test)]
mod concurrent_stores {
    //! Two sessions (or processes) storing flags on one message: neither loses the other's.
    use super::super::{test_dir, UserStore};
    use super::*;
    use crate::store::flag::{FLAGGED, SEEN};

    fn flags(system: u8, kws: &[&str]) -> Flags {
        Flags {
            system,
            keywords: kws.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn sorted(f: &Flags) -> (u8, Vec<String>) {
        let mut k = f.keywords.clone();
        k.sort();
        (f.system, k)
    }

    #[test]
    fn a_store_keeps_flags_another_session_set_since_its_last_refresh() {
        let d = test_dir("conc-store-letters");
        let s = UserStore::open(&d.join("Maildir")).unwrap();
        let mut a = s.load_mailbox("INBOX", false).unwrap();
        let uid = a.append(b"a\r\n", &flags(0, &["one"]), None).unwrap();
        a.refresh().unwrap();
        let mut b = s.load_mailbox("INBOX", false).unwrap();
        // b: +FLAGS (\Seen two), a (not refreshed since): +FLAGS (\Flagged) -FLAGS (one).
        b.set_flags(uid, &flags(SEEN, &["one", "two"])).unwrap();
        a.set_flags(uid, &flags(FLAGGED, &[])).unwrap();
        let mut c = s.load_mailbox("INBOX", false).unwrap();
        c.refresh().unwrap();
        assert_eq!(
            sorted(&c.messages()[0].flags),
            (SEEN | FLAGGED, vec!["two".to_string()])
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_store_keeps_keywords_without_a_letter_another_session_set() {
        let d = test_dir("conc-store-extras");
        let root = d.join("Maildir");
        let s = UserStore::open(&root).unwrap();
        // All 26 letters taken: further keywords go to pimap-keywords.
        let all: String = (0..26).map(|i| format!("{i} l{i}\n")).collect();
        fs::write(root.join(KEYWORDS), all).unwrap();
        let mut a = s.load_mailbox("INBOX", false).unwrap();
        let uid = a.append(b"a\r\n", &flags(0, &["x0"]), None).unwrap();
        a.refresh().unwrap();
        let mut b = s.load_mailbox("INBOX", false).unwrap();
        b.refresh().unwrap();
        // b: +FLAGS (x1); a, whose view is older: +FLAGS (x2), then -FLAGS (x0).
        b.set_flags(uid, &flags(0, &["x0", "x1"])).unwrap();
        a.set_flags(uid, &flags(0, &["x0", "x2"])).unwrap();
        let mut c = s.load_mailbox("INBOX", false).unwrap();
        c.refresh().unwrap();
        assert_eq!(sorted(&c.messages()[0].flags).1, ["x0", "x1", "x2"]);
        // b: -FLAGS (x0); a, not refreshed (its view still has x0): +FLAGS (x3) must not
        // bring x0 back.
        b.refresh().unwrap();
        b.set_flags(uid, &flags(0, &["x1", "x2"])).unwrap();
        a.set_flags(uid, &flags(0, &["x0", "x1", "x2", "x3"]))
            .unwrap();
        c.refresh().unwrap();
        assert_eq!(sorted(&c.messages()[0].flags).1, ["x1", "x2", "x3"]);
        let _ = fs::remove_dir_all(&d);
    }
}
