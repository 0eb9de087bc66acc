//! New `dovecot-uidlist` lines appended in place, as Dovecot appends its own: an APPEND or
//! COPY costs the lines it adds (plus whatever other writers appended since), not a read and a
//! rewrite of the whole file. The file is rewritten (by the caller's full path) only when it is
//! not known yet, was replaced by someone else, is version 1, does not end in a whole line, or
//! is mostly dead lines (fewer than 3 in 4 lines are messages this mailbox holds).
//!
//! The header's `N<next uid>` is left as it was: readers take the next UID as at least one more
//! than the highest line, as Dovecot's own appends rely on.

use super::{file_vsize, io_err, Mailbox, UIDLIST};
use crate::store::maildir::filename;
use crate::store::maildir::lock::DotLock;
use crate::store::maildir::uidlist::{Entry, UidList};
use crate::store::{Result, StoreError};
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Base name → (UID, RFC822.SIZE from the uidlist's `W`, if any).
pub(super) type Uids = HashMap<String, (u32, Option<u64>)>;

/// What this mailbox knows of the uidlist file it last read or appended to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tail {
    dev: u64,
    ino: u64,
    /// Bytes read (through the last newline).
    len: u64,
    uid_validity: u32,
    /// One more than the highest UID in the file, at least the header's next UID.
    next_uid: u32,
    /// Message lines in the file.
    lines: usize,
}

/// Files smaller than this are always rewritten in full when dead lines dominate; below it
/// compaction saves nothing worth a rewrite.
const MIN_COMPACT_LINES: usize = 64;

/// Appends larger than this go through the rewrite (tmp file + rename) instead: the kernel
/// can cut a bigger `write(2)` short when the process is killed (it checks for a fatal signal
/// between pages), which would leave a torn line for Dovecot to read; one page it copies
/// whole.
const MAX_APPEND: usize = 4096;

impl Mailbox {
    /// With the uidlist lock held: give `placed` (base names of files just put in cur/, their
    /// paths in `items`) the next UIDs by appending their lines to the file, synced. `None`
    /// when the file must be rewritten instead (see the module's doc).
    pub(super) fn append_uid_lines(
        &mut self,
        placed: &[String],
        items: &[(PathBuf, PathBuf, String, bool)],
    ) -> Result<Option<HashMap<String, u32>>> {
        let path = self.dir.join(UIDLIST);
        let Some((mut tail, _)) = self.catch_up_tail(&path) else {
            self.uidlist_tail = None;
            return Ok(None);
        };
        let live = self.messages.len();
        if tail.uid_validity != self.uid_validity
            || (tail.lines >= MIN_COMPACT_LINES && live * 4 < tail.lines * 3)
        {
            self.uidlist_tail = None;
            return Ok(None);
        }
        let mut text = String::new();
        let mut uids = HashMap::with_capacity(placed.len());
        for b in placed {
            let uid = tail.next_uid;
            if uid == 0 || uid == u32::MAX {
                return Err(StoreError::Cannot("mailbox ran out of UIDs".into()));
            }
            text.push_str(&uid.to_string());
            let dst = items.iter().find(|(_, _, base, _)| base == b).map(|i| &i.1);
            if filename::sizes(b).1.is_none() {
                // Cache RFC822.SIZE in the uidlist (Dovecot's `W` extension).
                if let Some(v) = dst.and_then(|d| file_vsize(d).ok()) {
                    text.push_str(&format!(" W{v}"));
                }
            }
            // The whole name, flags included (see `UidList::add`).
            let name = dst
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or(b);
            text.push_str(" :");
            text.push_str(name);
            text.push('\n');
            uids.insert(b.clone(), uid);
            tail.next_uid = uid + 1;
            tail.lines += 1;
        }
        if text.len() > MAX_APPEND {
            self.uidlist_tail = None;
            return Ok(None);
        }
        let mut f = fs::OpenOptions::new()
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| io_err("opening", &path, e))?;
        // One write: a reader (or a crash) never sees part of a line in between.
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| io_err("appending to", &path, e))?;
        tail.len += text.len() as u64;
        self.uidlist_tail = Some(tail);
        self.uid_next = self.uid_next.max(tail.next_uid);
        Ok(Some(uids))
    }

    /// The tail as of now, with the lines read to get there: only the bytes appended since
    /// the last read (by anyone: Dovecot appends too); a replaced, shrunk or unknown file is
    /// read in full once (and all its lines returned).
    fn catch_up_tail(&mut self, path: &Path) -> Option<(Tail, Vec<Entry>)> {
        let md = fs::symlink_metadata(path).ok()?;
        if let Some(mut t) = self.uidlist_tail {
            if t.dev == md.dev() && t.ino == md.ino() && md.len() >= t.len {
                if md.len() == t.len {
                    return Some((t, Vec::new()));
                }
                let mut f = fs::File::open(path).ok()?;
                f.seek(SeekFrom::Start(t.len)).ok()?;
                let mut buf = Vec::new();
                f.take(md.len() - t.len).read_to_end(&mut buf).ok()?;
                let text = std::str::from_utf8(&buf).ok()?;
                if !text.ends_with('\n') {
                    return None; // a line being written, or a torn one: rewrite in full
                }
                let mut last = t.next_uid.saturating_sub(1);
                let mut entries = Vec::new();
                for line in text.lines() {
                    let e = Entry::parse_v3(line)?;
                    if e.uid <= last {
                        return None; // out of order: the full path decides what to do
                    }
                    last = e.uid;
                    t.lines += 1;
                    entries.push(e);
                }
                t.next_uid = last.saturating_add(1);
                t.len = md.len();
                return Some((t, entries));
            }
        }
        let bytes = fs::read(path).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        if !text.starts_with("3 ") || !text.ends_with('\n') {
            return None;
        }
        let parsed = UidList::parse(text).ok()?;
        if parsed.skipped > 0 {
            return None;
        }
        let t = Tail {
            dev: md.dev(),
            ino: md.ino(),
            len: bytes.len() as u64,
            uid_validity: parsed.list.uid_validity,
            next_uid: parsed.list.next_uid,
            lines: parsed.list.entries.len(),
        };
        Some((t, parsed.list.entries))
    }

    /// UIDs (and the uidlist's RFC822.SIZE, if any) of the new files `fresh` (base name,
    /// path): from the lines other writers appended since the last read, and, for files no
    /// line names yet (an MDA's delivery, the S3 sync), from new lines appended under the
    /// uidlist lock, as Dovecot gives a delivery its UID. `None`: the caller reads the
    /// uidlist in full instead (the tail is unusable, or the file is due for a rewrite).
    pub(super) fn uids_for_fresh(&mut self, fresh: &[(String, PathBuf)]) -> Result<Option<Uids>> {
        let path = self.dir.join(UIDLIST);
        let mut found: Uids = HashMap::new();
        let wanted: HashMap<&str, ()> = fresh.iter().map(|(b, _)| (b.as_str(), ())).collect();
        let take = |this: &mut Mailbox, found: &mut Uids| {
            let (t, entries) = this.catch_up_tail(&path)?;
            if t.uid_validity != this.uid_validity {
                return None;
            }
            this.uidlist_tail = Some(t);
            for e in entries {
                if wanted.contains_key(e.base.as_str()) {
                    let v = e.vsize();
                    found.insert(e.base, (e.uid, v));
                }
            }
            Some(())
        };
        if take(self, &mut found).is_none() {
            self.uidlist_tail = None;
            return Ok(None);
        }
        if found.len() == wanted.len() {
            return Ok(Some(found));
        }
        // Whoever is adding the lines holds the lock; once it is free they are there, or
        // nobody will add them and they are ours to add.
        let Ok(lock) = DotLock::acquire(&path) else {
            return Ok(None);
        };
        if take(self, &mut found).is_none() {
            self.uidlist_tail = None;
            return Ok(None);
        }
        let missing: Vec<(PathBuf, PathBuf, String, bool)> = (fresh.iter())
            .filter(|(b, _)| !found.contains_key(b))
            .map(|(b, p)| (p.clone(), p.clone(), b.clone(), false))
            .collect();
        if !missing.is_empty() {
            let bases: Vec<String> = missing.iter().map(|m| m.2.clone()).collect();
            match self.append_uid_lines(&bases, &missing)? {
                Some(uids) => found.extend(uids.into_iter().map(|(b, u)| (b, (u, None)))),
                None => return Ok(None),
            }
        }
        drop(lock);
        Ok(Some(found))
    }
}
