//! Big messages without holding them in memory: an APPEND literal written to `tmp/` as it
//! arrives ([`Spool`], placed by [`Mailbox::append_spool`]) and a stored message opened for
//! reading pieces of it ([`Mailbox::open_message`]).
//!
//! Owns: the spool file's life (created `O_EXCL` with mode 0600, removed when dropped unless
//! placed) and the sizes of a message file. Never: reads a whole message into memory.

use super::{
    file_vsize, io_err, locate, new_unique, open_nofollow, Mailbox, Pending, Result, StoreError,
};
use crate::store::maildir::filename;
use crate::store::Flags;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A message being received into a file in a Maildir's `tmp/` (RFC 3501 §6.3.11 APPEND
/// literal). Dropped before [`Mailbox::append_spool`] took it (the client went away, the
/// command failed): the file is removed.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: Option<fs::File>,
    len: u64,
    /// RFC822.SIZE so far (bare LF counted as CRLF, like `filename::vsize`).
    vsize: u64,
    prev: u8,
}

impl Spool {
    /// Create an empty spool file in `maildir/tmp/` (the directory is created if missing).
    pub fn create(maildir: &Path) -> Result<Spool> {
        let dir = maildir.join("tmp");
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("creating directory", &dir, e)),
        }
        let path = dir.join(new_unique());
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err("creating", &path, e))?;
        Ok(Spool {
            path,
            file: Some(file),
            len: 0,
            vsize: 0,
            prev: 0,
        })
    }

    /// Append the next bytes of the message.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::Cannot("spool file already placed".into()))?;
        file.write_all(data)
            .map_err(|e| io_err("writing", &self.path, e))?;
        self.len += data.len() as u64;
        self.vsize += data.len() as u64;
        for &b in data {
            if b == b'\n' && self.prev != b'\r' {
                self.vsize += 1;
            }
            self.prev = b;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// RFC822.SIZE of what was written (bare LF counted as CRLF).
    pub fn vsize(&self) -> u64 {
        self.vsize
    }

    /// The open file, to finish it; the path then belongs to the caller (the drop no longer
    /// removes it).
    pub(super) fn take_file(&mut self) -> Result<fs::File> {
        self.file
            .take()
            .ok_or_else(|| StoreError::Cannot("spool file already placed".into()))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A stored message opened for reading, with its sizes.
#[derive(Debug)]
pub struct MessageFile {
    pub file: fs::File,
    /// Bytes in the file.
    pub len: u64,
    /// RFC822.SIZE (CRLF line ends): the name's `W=` when the name's `S=` (if any) matches
    /// the file, or the size the mailbox scan found for a name with `S=` only that matches;
    /// else counted by reading the file once in 64 KiB pieces.
    pub vsize: u64,
}

impl Mailbox {
    /// RFC 8514 SAVEDATE of `uid`: its file's ctime (Unix seconds), where Dovecot's Maildir
    /// takes it from for messages it did not save itself (it caches the time of its own
    /// saves, which the ctime matches to the second unless the file was renamed since).
    /// A `stat` of the file, following a rename by another process once.
    pub fn save_date(&self, uid: u32) -> Result<i64> {
        use std::os::unix::fs::MetadataExt;
        let i = self.index_of(uid).ok_or(StoreError::Expunged(uid))?;
        let loc = self.locs.get(i).ok_or(StoreError::Expunged(uid))?;
        let path = self.path_of(loc);
        let md = match fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let f = locate(&self.dir, loc.base()).ok_or(StoreError::Expunged(uid))?;
                let path = self.dir.join(f.sub.dir()).join(&f.name);
                fs::symlink_metadata(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StoreError::Expunged(uid),
                    _ => io_err("reading", &path, e),
                })?
            }
            Err(e) => return Err(io_err("reading", &path, e)),
        };
        Ok(md.ctime())
    }

    /// Open the file of `uid` (following a rename by another process once).
    pub fn open_message(&self, uid: u32) -> Result<MessageFile> {
        let i = self.index_of(uid).ok_or(StoreError::Expunged(uid))?;
        let loc = self.locs.get(i).ok_or(StoreError::Expunged(uid))?;
        let mut path = self.path_of(loc);
        let mut base = loc.base().to_string();
        let file = match open_nofollow(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let f = locate(&self.dir, loc.base()).ok_or(StoreError::Expunged(uid))?;
                path = self.dir.join(f.sub.dir()).join(&f.name);
                base = f.base().to_string();
                open_nofollow(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StoreError::Expunged(uid),
                    _ => io_err("reading", &path, e),
                })?
            }
            Err(e) => return Err(io_err("reading", &path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| io_err("reading", &path, e))?
            .len();
        // The scan's RFC822.SIZE (from W=, the uidlist, or counted once when first seen)
        // when the file is as large as its name says; else counted now.
        let scanned = self.messages.get(i).map(|m| m.size);
        let vsize = match (filename::sizes(&base), scanned) {
            ((s, Some(w)), _) if s.is_none_or(|s| s == len) && w >= len => w,
            ((Some(s), None), Some(v)) if s == len && v >= len => v,
            _ => file_vsize(&path).map_err(|e| io_err("reading", &path, e))?,
        };
        Ok(MessageFile { file, len, vsize })
    }

    /// APPEND a message received into `spool` (RFC 3501 §6.3.11): like [`Mailbox::append`],
    /// the file is fsynced with its INTERNALDATE as mtime, moved into this mailbox's `tmp/`
    /// ([`Mailbox::prepare_spool`]) and renamed into `cur/` under the uidlist lock.
    /// Returns the new UID and the syncs owed before acknowledging it (see [`Pending`]).
    pub fn append_spool(
        &mut self,
        spool: Spool,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> Result<(u32, Pending)> {
        self.check_writable()?;
        self.letters_for(flags, "")?;
        let p = Mailbox::prepare_spool(&self.dir, spool, internal_date)?;
        self.append_prepared(p, flags)
    }
}
