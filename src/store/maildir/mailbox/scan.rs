//! Reading a mailbox's directories in full: the scan of new/ and cur/, the uidlist sync that
//! gives files without a UID their UIDs under the dotlock, and [`Mailbox::rescan`], which
//! rebuilds the state from them (the fallback when events by name are not available or were
//! lost: see `events`).

use super::*;

/// List the message files of `dir/new` and `dir/cur`, skipping (and logging) anything that
/// is not a plain file with an acceptable name. A missing subdirectory is empty. When the
/// same base name appears twice (a rename seen half-way), the `cur/` one wins.
///
/// new/ is read before cur/: a message moved from new/ to cur/ while the scan runs (any
/// reader does that) is then seen in one of them at least; in the other order it could be
/// missed in both, and look expunged.
pub(in crate::store::maildir) fn scan(dir: &Path) -> Result<Vec<Found>> {
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

/// Read the uidlist without a lock. `Ok(None)` if missing; `Err(Some(reason))` if corrupt.
pub(in crate::store::maildir) fn read_uidlist(
    dir: &Path,
) -> Result<std::result::Result<Option<UidList>, String>> {
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

pub(in crate::store::maildir) fn read_keywords(dir: &Path) -> Result<Keywords> {
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
pub(super) fn read_extras(dir: &Path) -> ExtraKeywords {
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

pub(in crate::store::maildir) fn random_guid() -> String {
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
pub(in crate::store::maildir) fn sync_locked(
    root: &Path,
    dir: &Path,
    lock: DotLock,
) -> Result<(UidList, Vec<Found>)> {
    sync_locked_first(root, dir, lock, &[])
}

/// [`sync_locked`], giving the files named in `first` (base names, e.g. what a COPY just
/// placed, in its source UID order) their UIDs before any other new file and in that order,
/// so COPYUID's destination UIDs ascend with its source UIDs as in Dovecot (RFC 4315 allows
/// any correspondence, but clients assume this one).
pub(in crate::store::maildir) fn sync_locked_first(
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
            if list.add(&f.name, ext).is_none() {
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
pub(super) const FINE_SETTLE: Duration = Duration::from_millis(50);

/// Modification times that tell whether a rescan is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) times: [Option<SystemTime>; 5],
}

pub(super) fn stamp(dir: &Path) -> Stamp {
    let t = |n: &str| fs::metadata(dir.join(n)).and_then(|m| m.modified()).ok();
    Stamp {
        times: [t("new"), t("cur"), t(UIDLIST), t(KEYWORDS), t(EXTRAS)],
    }
}

/// Identity of a file's content: it is replaced by rename, never rewritten in place
/// (`DotLock::replace`), so a new version has another inode (or size, or mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

pub(super) fn file_id(path: &Path) -> Option<FileId> {
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
pub(super) struct Prev<'a> {
    name: &'a str,
    size: u64,
    date: i64,
    /// Its size on disk, 0 if not known ([`Loc::raw`]).
    raw: u64,
    /// Its flags, when that scan decoded them with the current keywords.
    flags: Option<&'a Flags>,
}

/// The last expensive scan of a mailbox directory, shared by the whole process: a session
/// opening a mailbox that another session (or this one, for APPEND/COPY) scanned before
/// stats only the files that scan did not see, instead of every file for its INTERNALDATE.
pub(super) struct SharedScan {
    uid_validity: u32,
    /// (UID, RFC822.SIZE, INTERNALDATE, size on disk or 0), ascending UID; parallel to `names`.
    rows: Vec<(u32, u64, i64, u64)>,
    names: Vec<Box<str>>,
}

/// A scan that had to stat more files than this is published for other openers.
pub(super) const PUBLISH_AFTER_STATS: usize = 256;

/// Mailboxes whose last scan the process keeps (most recently published first).
pub(super) const SHARED_SCANS: usize = 8;

static SHARED: Mutex<Vec<(PathBuf, Arc<SharedScan>)>> = Mutex::new(Vec::new());

pub(super) fn shared_scan(dir: &Path) -> Option<Arc<SharedScan>> {
    let v = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    v.iter().find(|(d, _)| d == dir).map(|(_, s)| s.clone())
}

pub(super) fn publish_scan(dir: &Path, uid_validity: u32, messages: &[MessageMeta], locs: &[Loc]) {
    let scan = Arc::new(SharedScan {
        uid_validity,
        rows: (messages.iter().zip(locs))
            .map(|(m, l)| (m.uid, m.size, m.internal_date, l.raw))
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
pub(super) fn record_diff(log: &mut ChangeLog, old: &[MessageMeta], new: &[MessageMeta]) {
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

/// A `pimap-keywords` larger than this is not read (logged).
pub(super) const MAX_EXTRAS_FILE: u64 = 32 << 20;

/// A UID's entry in the uidlist: the UID and the cached RFC822.SIZE (Dovecot's `W`), by base
/// name.
type Uids<'a> = HashMap<&'a str, (u32, Option<u64>)>;

/// What earlier scans knew of the messages, by UID (see [`Prev`]).
struct Before<'a> {
    /// The process-wide last scan, for a mailbox opened afresh (under the same UIDVALIDITY).
    shared: Option<Arc<SharedScan>>,
    /// This mailbox's last scan (its rows, its locations), when under the same UIDVALIDITY.
    own: Option<(&'a [MessageMeta], &'a [Loc])>,
}

impl<'a> Before<'a> {
    /// A mailbox opened afresh (SELECT, or APPEND/COPY opening its destination: no `old`
    /// locations) starts from the process-wide last scan; `old` counts when `old_valid`.
    fn new(
        dir: &Path,
        (messages, locs): (&'a [MessageMeta], &'a [Loc]),
        old_valid: bool,
        uid_validity: u32,
    ) -> Before<'a> {
        let shared = match locs.is_empty() {
            true => shared_scan(dir).filter(|s| s.uid_validity == uid_validity),
            false => None,
        };
        Before {
            shared,
            own: old_valid.then_some((messages, locs)),
        }
    }

    /// What the earlier scan knew of `uid`, if it had the base name `base`.
    fn get(&self, uid: u32, base: &str) -> Option<Prev<'_>> {
        if let Some(s) = &self.shared {
            let i = s.rows.binary_search_by_key(&uid, |r| r.0).ok()?;
            let (_, size, date, raw) = *s.rows.get(i)?;
            let name = s.names.get(i)?;
            return (filename::split(name).base == base).then_some(Prev {
                name,
                size,
                date,
                raw,
                flags: None,
            });
        }
        let (messages, locs) = self.own?;
        let i = messages.binary_search_by_key(&uid, |m| m.uid).ok()?;
        let (m, l) = (messages.get(i)?, locs.get(i)?);
        (l.base() == base).then_some(Prev {
            name: &l.name,
            size: m.size,
            date: m.internal_date,
            raw: l.raw,
            flags: Some(&m.flags),
        })
    }
}

impl Mailbox {
    /// Rebuild the state from the directories: the scan, the uidlist (synced under its lock
    /// when a file has no UID yet), the keyword files, new/ moved to cur/. What an earlier
    /// scan knew of a message is reused; only the files it did not know are read.
    pub(super) fn rescan(&mut self) -> Result<()> {
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
        let mut files = self.scan_files()?;
        // After the scan: a writer adds a message's line before its file appears.
        let extras_id = file_id(&self.dir.join(EXTRAS));
        let extras_changed = extras_id != self.extras_id;
        if extras_changed {
            self.reload_extras(extras_id.is_some());
        }
        // What the last scan knew, by UID: a base name keeps its UID within a UIDVALIDITY,
        // and its RFC822.SIZE and INTERNALDATE never change, so most files need neither the
        // uidlist parsed again (when it is the same file) nor a stat.
        let old_messages = std::mem::take(&mut self.messages);
        let old_locs = std::mem::take(&mut self.locs);
        let uidlist_id = file_id(&self.dir.join(UIDLIST));
        let reuse = uidlist_id.is_some() && uidlist_id == self.uidlist_id && !old_locs.is_empty();
        let mut uids: Uids = match reuse {
            true => (old_messages.iter().zip(&old_locs))
                .map(|(m, l)| (l.base(), (m.uid, None)))
                .collect(),
            false => HashMap::new(),
        };
        let (list, synced) = if !reuse || files.iter().any(|f| !uids.contains_key(f.base())) {
            // Unknown files (or a new uidlist): read it, and sync it under the lock if a
            // file still has no UID.
            uids.clear();
            match self.uidlist_for(&mut files)? {
                Ok((l, synced)) => (Some(l), synced),
                Err(e) => {
                    self.messages = old_messages;
                    self.locs = old_locs;
                    return Err(e);
                }
            }
        } else {
            (None, false)
        };
        let (uid_validity, uid_next) = match &list {
            Some(l) => {
                uids.extend((l.entries.iter()).map(|e| (e.base.as_str(), (e.uid, e.vsize()))));
                (l.uid_validity, l.next_uid)
            }
            None => (self.uid_validity, self.uid_next),
        };
        // Old rows are only valid under the same UIDVALIDITY.
        let old_valid = uid_validity == self.uid_validity;
        let before = Before::new(
            &self.dir,
            (&old_messages, &old_locs),
            old_valid,
            uid_validity,
        );
        self.settle_keywords(&files)?;
        self.move_new_to_cur(&mut files, &uids);
        let (rows, stats) = self.rows(files, &uids, &before, extras_changed);
        let rows = dedup_by_uid(rows);
        self.recent
            .retain(|u| rows.binary_search_by_key(u, |(m, _)| m.uid).is_ok());
        drop(uids);
        drop(before);
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
        self.set_messages(messages, locs);
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

    /// Take `messages` (and their `locs`) as the mailbox's, with what is kept about their
    /// flags: whether one has `$Forwarded`, and the UIDs of the `\Deleted` ones.
    fn set_messages(&mut self, messages: Vec<MessageMeta>, locs: Vec<Loc>) {
        self.forwarded = messages.iter().any(|m| has_forwarded(&m.flags));
        self.deleted = (messages.iter())
            .filter(|m| m.flags.system & crate::store::flag::DELETED != 0)
            .map(|m| m.uid)
            .collect();
        self.messages = messages;
        self.locs = locs;
    }

    /// [`scan()`] the directory, and once more when a message of the last scan is not found:
    /// readdir may miss a file renamed (a flag change by another process) while the
    /// directory was read, and it must not be taken for expunged.
    fn scan_files(&self) -> Result<Vec<Found>> {
        let mut files = scan(&self.dir)?;
        if !self.locs.is_empty() {
            let have: HashSet<&str> = files.iter().map(Found::base).collect();
            if self.locs.iter().any(|l| !have.contains(l.base())) {
                let again = scan(&self.dir)?;
                let have: HashSet<String> = files.iter().map(|f| f.base().to_string()).collect();
                files.extend(again.into_iter().filter(|f| !have.contains(f.base())));
            }
        }
        Ok(files)
    }

    /// Read `pimap-keywords` again (it changed), or forget it when it is gone (`exists`).
    fn reload_extras(&mut self, exists: bool) {
        self.extras = if exists {
            read_extras(&self.dir)
        } else {
            ExtraKeywords::default()
        };
        self.extra_names = self.extras.names();
    }

    /// The uidlist giving `files` their UIDs: read, and synced under its lock when a file has
    /// no UID in it (`files` then become the scan made under the lock); true when it synced.
    /// The inner error: no uidlist could be had (the caller keeps its messages as they were).
    /// A read-only session that cannot sync shows the messages that have UIDs.
    fn uidlist_for(
        &mut self,
        files: &mut Vec<Found>,
    ) -> Result<std::result::Result<(UidList, bool), StoreError>> {
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
        let mut synced = false;
        if needs_sync {
            let result = DotLock::acquire(&self.dir.join(UIDLIST))
                .and_then(|lk| sync_locked(&self.root, &self.dir, lk));
            match result {
                Ok((written, f)) => {
                    l = Some(written);
                    *files = f;
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
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(match l {
            Some(l) => Ok((l, synced)),
            None => Err(StoreError::Cannot(format!(
                "{}: no usable dovecot-uidlist",
                self.dir.display()
            ))),
        })
    }

    /// When a file has a keyword letter the keywords don't map, read them again once no writer
    /// holds the uidlist lock (see [`settled_keywords`]).
    fn settle_keywords(&mut self, files: &[Found]) -> Result<()> {
        if files
            .iter()
            .any(|f| has_unmapped_letter(&f.name, &self.keywords))
        {
            self.keywords = settled_keywords(&self.dir)?;
        }
        Ok(())
    }

    /// Move the files in new/ that have a UID to cur/ (maildir spec: a reader that has seen a
    /// message moves it there) unless read-only, updating `files`; they are this session's
    /// \Recent messages. A file another process moved first is looked up where it went.
    fn move_new_to_cur(&mut self, files: &mut [Found], uids: &Uids) {
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
    }

    /// A row for each file that has a UID, in scan order; a file gone meanwhile is left out.
    /// Second: how many files earlier scans did not know (they are read).
    fn rows(
        &self,
        files: Vec<Found>,
        uids: &Uids,
        before: &Before,
        extras_changed: bool,
    ) -> (Vec<(MessageMeta, Loc)>, usize) {
        let mut stats = 0usize;
        let mut rows: Vec<(MessageMeta, Loc)> = Vec::with_capacity(files.len());
        for f in files {
            let Some(&(uid, vsize)) = uids.get(f.base()) else {
                continue;
            };
            let old = before.get(uid, f.base());
            let (size, date, raw, flags) = match old {
                Some(p) => (
                    p.size,
                    p.date,
                    p.raw,
                    self.flags_again(&p, &f.name, extras_changed),
                ),
                None => {
                    stats += 1;
                    let Some((size, date, raw)) = self.size_and_date(&f, vsize) else {
                        continue;
                    };
                    (size, date, raw, self.flags_of(&f.name))
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
                    raw,
                },
            ));
        }
        (rows, stats)
    }

    /// The flags of a file an earlier scan knew as `p`: the same as then when it has the same
    /// name, unless it has keyword letters (the keywords file may have changed under them).
    fn flags_again(&self, p: &Prev, name: &str, extras_changed: bool) -> Flags {
        let letters = filename::split(name).letters;
        match p.flags {
            Some(fl)
                if p.name == name
                    && !extras_changed
                    && !letters.bytes().any(|b| b.is_ascii_lowercase()) =>
            {
                fl.clone()
            }
            _ => self.flags_of(name),
        }
    }

    /// RFC822.SIZE (from the file name, the uidlist's `vsize`, else the file), INTERNALDATE
    /// (the file's mtime) and size on disk of a file no earlier scan knew. `None`: it vanished
    /// (expunged meanwhile) or could not be read (logged).
    fn size_and_date(&self, f: &Found, vsize: Option<u64>) -> Option<(u64, i64, u64)> {
        let path = self.dir.join(f.sub.dir()).join(&f.name);
        let md = fs::symlink_metadata(&path).ok()?;
        let size = match filename::sizes(f.base()).1.or(vsize) {
            Some(w) => w,
            None => match file_vsize(&path) {
                Ok(v) => v,
                Err(err) => {
                    log::warn!("reading {}: {err}", path.display());
                    return None;
                }
            },
        };
        Some((size, mtime_secs(&md), md.len()))
    }
}

/// `rows` in UID order, one per UID. Sorts small keys, not the rows: (UID, position), so that
/// for a UID seen twice (one base name in cur/ and new/) cur/, scanned first, wins.
fn dedup_by_uid(rows: Vec<(MessageMeta, Loc)>) -> Vec<(MessageMeta, Loc)> {
    let mut order: Vec<u64> = rows
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (u64::from(m.uid) << 32) | i as u64)
        .collect();
    order.sort_unstable();
    order.dedup_by_key(|k| *k >> 32);
    let mut slots: Vec<Option<(MessageMeta, Loc)>> = rows.into_iter().map(Some).collect();
    order
        .iter()
        .filter_map(|k| {
            slots
                .get_mut((*k & 0xffff_ffff) as usize)
                .and_then(Option::take)
        })
        .collect()
}

/// True if `name` has a keyword letter that `keywords` does not map.
pub(super) fn has_unmapped_letter(name: &str, keywords: &Keywords) -> bool {
    (filename::split(name).letters.bytes())
        .any(|b| b.is_ascii_lowercase() && keywords.get(usize::from(b - b'a')).is_none())
}

/// `dovecot-keywords` once no writer holds the uidlist lock. Dovecot gives a file the letter of
/// a new keyword before it writes the keyword into dovecot-keywords, both under that lock
/// (maildir-keywords.c commits at the end of its sync), so a letter read before the keyword is
/// one a writer is still defining: read without waiting, the message would show without that
/// keyword, and a COPY or MOVE of it would drop it. Read as it is if the lock cannot be had.
fn settled_keywords(dir: &Path) -> Result<Keywords> {
    match DotLock::acquire(&dir.join(UIDLIST)) {
        Ok(lock) => drop(lock),
        Err(e) => log::warn!("{}: {e}", dir.display()),
    }
    read_keywords(dir)
}
