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
use crate::store::maildir::uidlist::UidList;
use crate::store::{Result, StoreError};
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
    /// paths in `items`) the next UIDs by appending their lines to the file (not synced: the
    /// caller syncs after letting go of the lock, see `durable`). `None` when the file must be
    /// rewritten instead (see the module's doc).
    pub(super) fn append_uid_lines(
        &mut self,
        placed: &[String],
        items: &[(PathBuf, PathBuf, String, bool)],
    ) -> Result<Option<HashMap<String, u32>>> {
        let path = self.dir.join(UIDLIST);
        let Some(mut tail) = self.catch_up_tail(&path) else {
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
            .map_err(|e| io_err("appending to", &path, e))?;
        tail.len += text.len() as u64;
        self.uidlist_tail = Some(tail);
        self.uid_next = self.uid_next.max(tail.next_uid);
        Ok(Some(uids))
    }

    /// The tail as of now: only the bytes appended since the last read are read (by anyone:
    /// Dovecot appends too); a replaced, shrunk or unknown file is read in full once.
    fn catch_up_tail(&mut self, path: &Path) -> Option<Tail> {
        let md = fs::symlink_metadata(path).ok()?;
        if let Some(mut t) = self.uidlist_tail {
            if t.dev == md.dev() && t.ino == md.ino() && md.len() >= t.len {
                if md.len() == t.len {
                    return Some(t);
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
                for line in text.lines() {
                    let uid: u32 = line.split_once(' ')?.0.parse().ok()?;
                    if uid <= last {
                        return None; // out of order: the full path decides what to do
                    }
                    last = uid;
                    t.lines += 1;
                }
                t.next_uid = last.saturating_add(1);
                t.len = md.len();
                return Some(t);
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
        Some(t)
    }
}
