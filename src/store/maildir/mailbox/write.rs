//! Writing messages: APPEND (tmp/, fsync, rename into cur/ under the uidlist lock), COPY
//! (hard links, sources read under the source's lock and placed under the destination's),
//! EXPUNGE; the new messages enter the state at once.

use super::*;

/// Messages to copy, as [`Mailbox::copy_sources`] found them.
pub struct CopySources {
    /// The source mailbox's directory (for its metadata cache).
    dir: PathBuf,
    items: Vec<CopySource>,
}

pub(super) struct CopySource {
    uid: u32,
    path: PathBuf,
    base: String,
    flags: Flags,
    /// Unknown upper-case letters of the source name, kept on the copy.
    keep: String,
    phys: u64,
    vsize: u64,
}

/// The files [`Mailbox::link_in`] placed: each base name with its new UID (`None` when the
/// source vanished first).
type Placed = Vec<(String, Option<u32>)>;

/// A message written to tmp/ and synced, with its cache entry computed: the part of an APPEND
/// that needs no lock ([`Mailbox::prepare_append`]), so sessions appending at once do it side
/// by side. [`Mailbox::append_prepared`] places it; dropped unplaced, the file is removed.
pub struct Prepared {
    pub(super) tmp: Option<PathBuf>,
    pub(super) unique: String,
    pub(super) size: u64,
    pub(super) vsize: u64,
    /// `None` for a spooled message (not parsed: it is not in memory).
    pub(super) meta: Option<cache::Meta>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(t) = self.tmp.take() {
            let _ = fs::remove_file(t);
        }
    }
}

/// Create `path` exclusively with `data`, fsync it and set its mtime.
pub(in crate::store::maildir) fn write_new_file(
    path: &Path,
    data: &[u8],
    mtime: SystemTime,
) -> Result<()> {
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
pub(super) fn mtime_of(internal_date: Option<i64>) -> SystemTime {
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
pub(super) fn copy_file(src: &Path, dst: &Path, tmp_dir: &Path) -> std::io::Result<()> {
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

impl Mailbox {
    /// APPEND into this mailbox (RFC 3501 §6.3.11); returns the new UID once it is durable.
    pub fn append(
        &mut self,
        data: &[u8],
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> Result<u32> {
        let p = Mailbox::prepare_append(&self.dir, data, internal_date)?;
        let (uid, pending) = self.append_prepared(p, flags)?;
        pending.wait()?;
        Ok(uid)
    }

    /// The lock-free first half of an APPEND into the mailbox directory `dir`: the message
    /// written to tmp/ and synced, its cache entry computed (parsed once, here).
    pub fn prepare_append(dir: &Path, data: &[u8], internal_date: Option<i64>) -> Result<Prepared> {
        let unique = new_unique();
        let tmp = dir.join("tmp").join(&unique);
        write_new_file(&tmp, data, mtime_of(internal_date))?;
        Ok(Prepared {
            tmp: Some(tmp),
            unique,
            size: data.len() as u64,
            vsize: filename::vsize(data),
            meta: Some(cache::compute(&crate::mime::to_crlf(data))),
        })
    }

    /// The second half of an APPEND: place `p` (from [`Mailbox::prepare_append`] for this
    /// mailbox) under the uidlist lock, as [`Mailbox::append_many`] places one. Returns the new UID and the syncs still owed before
    /// the APPEND may be acknowledged (run them after letting go of this state's lock).
    pub fn append_prepared(&mut self, p: Prepared, flags: &Flags) -> Result<(u32, Pending)> {
        let (uids, pending) = self.append_many(vec![(p, flags.clone())])?;
        let uid = (uids.first().copied())
            .ok_or_else(|| StoreError::Cannot("appended message vanished".into()))?;
        Ok((uid, pending))
    }

    /// The cur/ path of a new message file `base` with `flags` (`keep`: letters the source
    /// had); keywords that get no letter go to `extras`, to be recorded before it appears.
    pub(super) fn destination(
        &mut self,
        base: &str,
        flags: &Flags,
        keep: &str,
        extras: &mut Vec<(String, Vec<String>)>,
    ) -> Result<PathBuf> {
        let (letters, overflow) = self.letters_for(flags, keep)?;
        if !overflow.is_empty() {
            extras.push((base.to_string(), overflow));
        }
        Ok(self
            .dir
            .join("cur")
            .join(filename::cur_name(base, &letters)))
    }

    /// Under the uidlist lock: move or link each `(source, destination)` into place, then
    /// assign UIDs. Returns the base names with their UIDs (`None` when the source vanished),
    /// and the syncs that make them durable (owed before acknowledging the write).
    pub(super) fn link_in_locked(
        &mut self,
        items: &[(PathBuf, PathBuf, String, bool)],
    ) -> Result<(Placed, Pending)> {
        let lock = DotLock::acquire(&self.dir.join(UIDLIST))?;
        self.link_in(lock, items, false)
    }

    /// [`Mailbox::link_in_locked`] with the uidlist `lock` already held. `recent`: the
    /// messages are \Recent here (files another process delivered, first seen by this state)
    /// rather than this process's own APPEND or COPY.
    pub(super) fn link_in(
        &mut self,
        lock: DotLock,
        items: &[(PathBuf, PathBuf, String, bool)],
        recent: bool,
    ) -> Result<(Placed, Pending)> {
        let placed = match self.move_in(items) {
            Ok(p) => p,
            Err((done, e)) => {
                undo_move_in(items, &done);
                return Err(e);
            }
        };
        // The new lines and the renames into cur/ are synced by the caller once it has let go
        // of its locks, together with other sessions' (see `durable`). A uidlist line whose
        // file a crash lost before that is a message never acknowledged, which every reader
        // drops as expunged.
        let mut pending = Pending::default();
        let uid_lines = match self.append_uid_lines(&placed, items) {
            Ok(Some(uids)) => {
                pending.data(self.dir.join(UIDLIST));
                Ok(uids)
            }
            // Rewritten and synced under the lock (`DotLock::replace`).
            Ok(None) => self.rewrite_uid_lines(lock, &placed, items),
            Err(e) => Err(e),
        };
        let by_base: HashMap<String, u32> = match uid_lines {
            Ok(uids) => uids,
            Err(e) => {
                // No UIDs: the files go again (a line written without its file is read as
                // expunged), so that the write fails as a whole.
                undo_move_in(items, &placed);
                return Err(e);
            }
        };
        pending.dir(self.dir.join("cur"));
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
                recent,
            };
            rows.push((
                meta,
                Loc {
                    sub: Sub::Cur,
                    name: name.to_string(),
                    raw: md.len(),
                },
            ));
        }
        self.insert_rows(rows);
        let uids = items
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
            .collect();
        Ok((uids, pending))
    }

    /// Move or link each item into place (see [`Mailbox::link_in`]); returns the base names
    /// placed (a source that vanished is skipped), or on failure those placed so far with
    /// the error.
    fn move_in(
        &self,
        items: &[(PathBuf, PathBuf, String, bool)],
    ) -> std::result::Result<Vec<String>, (Vec<String>, StoreError)> {
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
                Err(e) if *is_rename => return Err((placed, io_err("moving into place", dst, e))),
                Err(_) => {
                    // No hard links here (EXDEV, EPERM, EMLINK, ...): copy.
                    match copy_file(src, dst, &self.dir.join("tmp")) {
                        Ok(()) => placed.push(base.clone()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err((placed, io_err("copying to", dst, e))),
                    }
                }
            }
        }
        Ok(placed)
    }

    /// [`Mailbox::link_in_locked`]'s UIDs when the uidlist is rewritten: read it in full, add
    /// the lines (dropping this state's own expunged ones), or run the full sync when it holds
    /// lines this state does not know, is missing or corrupt. Returns the placed files' UIDs.
    pub(super) fn rewrite_uid_lines(
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
                    // The whole name, flags included (see `UidList::add`).
                    let name = items
                        .iter()
                        .find(|(_, _, base, _)| base == b)
                        .and_then(|i| i.1.file_name())
                        .and_then(|n| n.to_str())
                        .unwrap_or(b);
                    if list.add(name, ext).is_none() {
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
    /// the messages that still existed, once the copies are durable.
    pub fn copy_in(&mut self, sources: &CopySources) -> Result<Vec<(u32, u32)>> {
        let (pairs, pending) = self.copy_in_deferred(sources)?;
        pending.wait()?;
        Ok(pairs)
    }

    /// [`Mailbox::copy_in`], returning the syncs still owed before the copies may be
    /// acknowledged (or their sources expunged, for a MOVE): run them after letting go of
    /// this state's lock.
    pub fn copy_in_deferred(
        &mut self,
        sources: &CopySources,
    ) -> Result<(Vec<(u32, u32)>, Pending)> {
        self.check_writable()?;
        let (src_cache, dst_cache) = (
            cache::for_mailbox(&sources.dir),
            cache::for_mailbox(&self.dir),
        );
        let mut items = Vec::new();
        let mut src_uids = Vec::new();
        let mut extras: Vec<(String, Vec<String>)> = Vec::new();
        for s in &sources.items {
            let base = filename::base_with_sizes(&new_unique(), s.phys, s.vsize);
            let dst = self.destination(&base, &s.flags, &s.keep, &mut extras)?;
            if let Some(meta) = src_cache.get(&s.base, s.phys) {
                dst_cache.put(&base, s.phys, &meta);
            }
            items.push((s.path.clone(), dst, base, false));
            src_uids.push(s.uid);
        }
        if items.is_empty() {
            return Ok((Vec::new(), Pending::default()));
        }
        if !extras.is_empty() {
            // Before the files appear, so no reader sees the copies without them.
            self.update_extras(|k| extras.iter().all(|(b, kws)| k.set(b, kws)))?;
        }
        let (got, pending) = self.link_in_locked(&items)?;
        let pairs = src_uids
            .into_iter()
            .zip(got)
            .filter_map(|(s, (_, d))| d.map(|d| (s, d)))
            .collect();
        Ok((pairs, pending))
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
        removed.sort_unstable();
        let extra_bases: Vec<String> = (removed.iter())
            .filter_map(|&u| self.index_of(u).and_then(|i| self.locs.get(i)))
            .filter(|l| !self.extras.get(l.base()).is_empty())
            .map(|l| l.base().to_string())
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
        self.drop_messages(&removed);
        Ok(removed)
    }
}

/// Take back what [`Mailbox::move_in`] placed (the bases in `done`) when the write fails:
/// a renamed file goes back to its source (whose owner removes it), a link or copy is
/// removed. So an APPEND of several messages, or a COPY, leaves none of them behind.
pub(super) fn undo_move_in(items: &[(PathBuf, PathBuf, String, bool)], done: &[String]) {
    for (src, dst, base, is_rename) in items {
        if !done.contains(base) {
            continue;
        }
        if !*is_rename || fs::rename(dst, src).is_err() {
            let _ = fs::remove_file(dst);
        }
    }
}
