//! A selected mailbox (touches disk): scanning `cur/` and `new/`, matching files to
//! `dovecot-uidlist`, assigning UIDs under the uidlist dotlock, flag renames, APPEND, COPY,
//! EXPUNGE. RFC 3501 §2.3.1.1 (UIDs strictly ascending, never reused within a UIDVALIDITY),
//! §2.3.2 (flags; `\Recent` for the session that first sees a message).

use super::filename::{self, Letters, FORWARDED};
use super::keywords::{self, Keywords};
use super::lock::DotLock;
use super::uidlist::{Entry, UidList};
use super::{io_err, new_unique, read_optional, sync_dir, uidvalidity};
use crate::store::{Flags, MessageMeta, Result, StoreError};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) const UIDLIST: &str = "dovecot-uidlist";
pub(super) const KEYWORDS: &str = "dovecot-keywords";

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

/// List the message files of `dir/cur` and `dir/new`, skipping (and logging) anything that
/// is not a plain file with an acceptable name. A missing subdirectory is empty. When the
/// same base name appears twice (a rename seen half-way), the `cur/` one wins.
pub(super) fn scan(dir: &Path) -> Result<Vec<Found>> {
    let mut out: Vec<Found> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for sub in [Sub::Cur, Sub::New] {
        let d = dir.join(sub.dir());
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("reading directory", &d, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| io_err("reading directory", &d, e))?;
            let Some(name) = ent.file_name().to_str().map(str::to_string) else {
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
            let f = Found { sub, name };
            if seen.insert(f.base().to_string()) {
                out.push(f);
            }
        }
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
    unknown.sort_by(|a, b| a.base().cmp(b.base()));
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

/// Modification times that tell whether a rescan is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    times: [Option<SystemTime>; 4],
}

fn stamp(dir: &Path) -> Stamp {
    let t = |n: &str| fs::metadata(dir.join(n)).and_then(|m| m.modified()).ok();
    Stamp {
        times: [t("new"), t("cur"), t(UIDLIST), t(KEYWORDS)],
    }
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
    messages: Vec<MessageMeta>,
    locs: Vec<Loc>,
    recent: HashSet<u32>,
    /// base name → (RFC822.SIZE, INTERNALDATE); never changes for a file.
    cache: HashMap<String, (u64, i64)>,
    last_stamp: Option<Stamp>,
    last_scan: SystemTime,
    /// Messages in new/ at the last scan (STATUS RECENT).
    pub(super) in_new: u32,
}

impl Mailbox {
    pub(super) fn load(root: &Path, dir: &Path, name: &str, read_only: bool) -> Result<Mailbox> {
        let mut mb = Mailbox {
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
            name: name.to_string(),
            read_only,
            uid_validity: 0,
            uid_next: 1,
            keywords: Keywords::default(),
            messages: Vec::new(),
            locs: Vec::new(),
            recent: HashSet::new(),
            cache: HashMap::new(),
            last_stamp: None,
            last_scan: UNIX_EPOCH,
            in_new: 0,
        };
        mb.rescan()?;
        Ok(mb)
    }

    pub fn name(&self) -> &str {
        &self.name
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

    /// Keywords defined for this mailbox (for FLAGS / PERMANENTFLAGS), plus `$Forwarded` when
    /// a message carries the maildir `P` flag.
    pub fn keywords(&self) -> Vec<String> {
        let mut k = self.keywords.all();
        let fwd = self
            .messages
            .iter()
            .any(|m| m.flags.keywords.iter().any(|x| x == FORWARDED));
        if fwd && !k.iter().any(|x| x.eq_ignore_ascii_case(FORWARDED)) {
            k.push(FORWARDED.to_string());
        }
        k
    }

    /// Rescan the disk if anything changed: cheap when the mtimes of new/, cur/, the uidlist
    /// and the keywords file are unchanged and the last scan began more than a second after
    /// the newest of them (mtime granularity can hide a change made in the same tick).
    pub fn refresh(&mut self) -> Result<()> {
        let st = stamp(&self.dir);
        if self.last_stamp.as_ref() == Some(&st) {
            let newest = st
                .times
                .iter()
                .flatten()
                .max()
                .copied()
                .unwrap_or(UNIX_EPOCH);
            let settled = self
                .last_scan
                .duration_since(newest)
                .map(|d| d > Duration::from_secs(1))
                .unwrap_or(false);
            if settled {
                return Ok(());
            }
        }
        self.rescan()
    }

    fn rescan(&mut self) -> Result<()> {
        if !self.dir.is_dir() {
            // Deleted or renamed by another session.
            return Err(StoreError::NotFound(self.name.clone()));
        }
        let scan_start = SystemTime::now();
        let st = stamp(&self.dir);
        self.keywords = read_keywords(&self.dir)?;
        let mut files = scan(&self.dir)?;
        let mut list = match read_uidlist(&self.dir)? {
            Ok(Some(l)) => Some(l),
            _ => None,
        };
        let needs_sync = match &list {
            None => true,
            Some(l) => {
                let known: HashSet<&str> = l.entries.iter().map(|e| e.base.as_str()).collect();
                files.iter().any(|f| !known.contains(f.base()))
            }
        };
        if needs_sync {
            let synced = DotLock::acquire(&self.dir.join(UIDLIST))
                .and_then(|l| sync_locked(&self.root, &self.dir, l));
            match synced {
                Ok((l, f)) => {
                    list = Some(l);
                    files = f;
                }
                // EXAMINE on storage we cannot write: show the messages that have UIDs.
                Err(e) if self.read_only && list.is_some() => {
                    log::warn!(
                        "{}: cannot assign UIDs in a read-only session: {e}",
                        self.dir.display()
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let Some(list) = list else {
            return Err(StoreError::Cannot(format!(
                "{}: no usable dovecot-uidlist",
                self.dir.display()
            )));
        };
        let uids: HashMap<&str, &Entry> =
            list.entries.iter().map(|e| (e.base.as_str(), e)).collect();

        // Move new/ → cur/ (maildir spec: a reader that has seen a message moves it to cur/).
        self.in_new = files.iter().filter(|f| f.sub == Sub::New).count() as u32;
        if !self.read_only {
            for f in files.iter_mut().filter(|f| f.sub == Sub::New) {
                let Some(e) = uids.get(f.base()) else {
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
                        self.recent.insert(e.uid);
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

        let mut rows: Vec<(MessageMeta, Loc)> = Vec::with_capacity(files.len());
        let mut live: HashSet<String> = HashSet::new();
        for f in files {
            let Some(e) = uids.get(f.base()) else {
                continue;
            };
            let path = self.dir.join(f.sub.dir()).join(&f.name);
            let (size, date) = match self.cache.get(f.base()) {
                Some(v) => *v,
                None => {
                    let md = match fs::symlink_metadata(&path) {
                        Ok(md) => md,
                        Err(_) => continue, // vanished: expunged meanwhile
                    };
                    let size = match filename::sizes(f.base()).1.or_else(|| e.vsize()) {
                        Some(w) => w,
                        None => match file_vsize(&path) {
                            Ok(v) => v,
                            Err(err) => {
                                log::warn!("reading {}: {err}", path.display());
                                continue;
                            }
                        },
                    };
                    let v = (size, mtime_secs(&md));
                    self.cache.insert(f.base().to_string(), v);
                    v
                }
            };
            live.insert(f.base().to_string());
            let flags = self.flags_of(&f.name);
            let meta = MessageMeta {
                uid: e.uid,
                flags,
                size,
                internal_date: date,
                recent: self.recent.contains(&e.uid),
            };
            rows.push((
                meta,
                Loc {
                    sub: f.sub,
                    name: f.name,
                },
            ));
        }
        rows.sort_by_key(|(m, _)| m.uid);
        self.cache.retain(|k, _| live.contains(k));
        let uid_set: HashSet<u32> = rows.iter().map(|(m, _)| m.uid).collect();
        self.recent.retain(|u| uid_set.contains(u));
        let (messages, locs) = rows.into_iter().unzip();
        self.messages = messages;
        self.locs = locs;
        self.uid_validity = list.uid_validity;
        self.uid_next = list.next_uid;
        self.last_stamp = Some(st);
        self.last_scan = scan_start;
        Ok(())
    }

    fn flags_of(&self, name: &str) -> Flags {
        let l = filename::decode_letters(filename::split(name).letters);
        let mut keywords: Vec<String> = l
            .keyword_indexes
            .iter()
            .filter_map(|&i| self.keywords.get(i).map(str::to_string))
            .collect();
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

    fn index_of(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    fn path_of(&self, loc: &Loc) -> PathBuf {
        self.dir.join(loc.sub.dir()).join(&loc.name)
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

    /// Letter indexes for keywords, adding new ones to `dovecot-keywords` under its dotlock.
    fn keyword_indexes(&mut self, kws: &[String]) -> Result<Vec<usize>> {
        let wanted: Vec<&String> = kws.iter().collect();
        for k in &wanted {
            if !keywords::valid_keyword(k) {
                return Err(StoreError::Cannot(format!("invalid keyword {k:?}")));
            }
        }
        if wanted.iter().all(|k| self.keywords.index_of(k).is_some()) {
            return Ok(wanted
                .iter()
                .filter_map(|k| self.keywords.index_of(k))
                .collect());
        }
        let path = self.dir.join(KEYWORDS);
        let lock = DotLock::acquire(&path)?;
        let mut kw = read_keywords(&self.dir)?;
        let before = kw.clone();
        let mut out = Vec::new();
        for k in wanted {
            match kw.get_or_add(k) {
                Ok(i) => out.push(i),
                Err(keywords::TooMany) => {
                    return Err(StoreError::Cannot(format!(
                        "too many keywords in this mailbox (at most {})",
                        keywords::MAX_LETTERS
                    )))
                }
            }
        }
        if kw != before {
            lock.replace(kw.serialize().as_bytes())?;
        }
        self.keywords = kw;
        Ok(out)
    }

    /// File-name letters for `flags`, keeping the letters of `old_letters` we don't
    /// interpret. `$Forwarded` is stored like Dovecot 2.3 stores it (a keyword letter); a `P`
    /// already present stands for it and is kept while `$Forwarded` stays set.
    fn letters_for(&mut self, flags: &Flags, old_letters: &str) -> Result<String> {
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
        let idx = self.keyword_indexes(&kws)?;
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
        Ok(filename::encode_letters(&l))
    }

    /// Replace a message's flags (renames the file within cur/; records new keywords).
    pub fn set_flags(&mut self, uid: u32, flags: &Flags) -> Result<()> {
        self.check_writable()?;
        let i = self.index_of(uid).ok_or(StoreError::Expunged(uid))?;
        let mut loc = self.locs.get(i).cloned().ok_or(StoreError::Expunged(uid))?;
        for attempt in 0..2 {
            let old_letters = filename::split(&loc.name).letters.to_string();
            let letters = self.letters_for(flags, &old_letters)?;
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
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => {
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
        let letters = self.letters_for(flags, "")?;
        let unique = new_unique();
        let tmp = self.dir.join("tmp").join(&unique);
        let mtime = match internal_date {
            Some(t) if t >= 0 => UNIX_EPOCH + Duration::from_secs(t as u64),
            Some(t) => UNIX_EPOCH
                .checked_sub(Duration::from_secs(t.unsigned_abs()))
                .unwrap_or(UNIX_EPOCH),
            None => SystemTime::now(),
        };
        write_new_file(&tmp, data, mtime)?;
        let base = filename::base_with_sizes(&unique, data.len() as u64, filename::vsize(data));
        let dest = self
            .dir
            .join("cur")
            .join(filename::cur_name(&base, &letters));
        let result = self.link_in_locked(&[(tmp.clone(), dest, base.clone(), true)]);
        let _ = fs::remove_file(&tmp);
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
        let (list, _) = sync_locked(&self.root, &self.dir, lock)?;
        let by_base: HashMap<&str, u32> = list
            .entries
            .iter()
            .map(|e| (e.base.as_str(), e.uid))
            .collect();
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

    /// COPY `uids` into `dest` (RFC 3501 §6.4.7; hard links when possible); returns
    /// (source UID, new UID) pairs for the messages that still existed.
    pub fn copy_to(&self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>> {
        dest.check_writable()?;
        let mut items = Vec::new();
        let mut src_uids = Vec::new();
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
            let letters = dest.letters_for(&m.flags, &keep)?;
            let phys = filename::sizes(loc.base())
                .0
                .or_else(|| fs::metadata(&src).ok().map(|md| md.len()))
                .unwrap_or(0);
            let base = filename::base_with_sizes(&new_unique(), phys, m.size);
            let dst = dest
                .dir
                .join("cur")
                .join(filename::cur_name(&base, &letters));
            items.push((src, dst, base, false));
            src_uids.push(uid);
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let got = dest.link_in_locked(&items)?;
        Ok(src_uids
            .into_iter()
            .zip(got)
            .filter_map(|(s, (_, d))| d.map(|d| (s, d)))
            .collect())
    }

    /// Remove messages (RFC 3501 §6.4.3); returns the UIDs actually removed by this call.
    pub fn expunge(&mut self, uids: &[u32]) -> Result<Vec<u32>> {
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
        let (messages, locs) = std::mem::take(&mut self.messages)
            .into_iter()
            .zip(std::mem::take(&mut self.locs))
            .filter(|(m, _)| !gone.contains(&m.uid))
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

/// Copy `src` to `dst` through `tmp_dir`, keeping the mtime (INTERNALDATE).
fn copy_file(src: &Path, dst: &Path, tmp_dir: &Path) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut f = open_nofollow(src)?;
    f.read_to_end(&mut data)?;
    let mtime = f.metadata()?.modified()?;
    let tmp = tmp_dir.join(new_unique());
    write_new_file(&tmp, &data, mtime).map_err(|e| match e {
        StoreError::Io(_, e) => e,
        other => std::io::Error::other(other.to_string()),
    })?;
    let r = fs::rename(&tmp, dst);
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}
