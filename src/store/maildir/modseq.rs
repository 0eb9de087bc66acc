//! Per-message mod-sequences (RFC 7162 CONDSTORE / QRESYNC) kept in `pimap-modseq`, a
//! pimap-owned file beside `dovecot-uidlist` that Dovecot ignores.
//!
//! Owns: the file format ([`ModSeqFile::parse`] / [`ModSeqFile::serialize`] /
//! [`Change::encode`], pure), and [`ModSeqs`], which compares what the mailbox holds now with
//! what the file recorded and hands out new mod-sequences for every difference. Never: changes
//! a UID or UIDVALIDITY (those belong to `dovecot-uidlist`), or panics on a damaged file (it is
//! rebuilt, with a log line).
//!
//! # Why a diff, not hooks
//! Dovecot keeps mod-sequences in its index, which pimap does not write; and other processes
//! (Dovecot renaming a file to change flags, a delivery into `new/`, an expunge) change the
//! Maildir behind pimap's back. So the file records, per UID, the mod-sequence and a 64-bit
//! hash of the flags last seen; every time a session looks at the mailbox ([`ModSeqs::observe`])
//! a message that is new or whose flags hash differs gets a new mod-sequence, and a UID that
//! disappeared is moved to the expunged list with a new mod-sequence (RFC 7162 §3.1.1: every
//! change to a message's metadata increases its mod-sequence; §3.2.5: expunges are remembered
//! for VANISHED (EARLIER)). All changes noticed together share one new value, as one
//! transaction does in Dovecot.
//!
//! # Never lower than a value a client saw
//! A new file (first use, deleted file, corrupt file, or a UIDVALIDITY change) starts at the
//! current time in microseconds since the epoch (at least one more than any highest value a
//! corrupt file still shows, in its header or in any journal record), and later changes count
//! up by one from there. Within a mailbox a value is therefore "at most one per microsecond
//! since the file was created", so a rebuilt file always starts above every value the old file
//! could have handed out, without any other persisted state — provided the clock does not go
//! backwards across the rebuild (on a Raspberry Pi without RTC, systemd-timesyncd restores the
//! clock to at least the last shutdown time before network time arrives). A convenient side
//! effect: Dovecot's own small counters are always below pimap's, so a client that moves from
//! Dovecot to pimap re-fetches flags instead of trusting stale ones. Messages present at a
//! rebuild all get the rebuild value; expunges from before it are unknown, which
//! [`ModSeqFile::expunge_floor`] records: a client whose mod-sequence is below the floor gets a
//! VANISHED (EARLIER) of every UID of its known range that does not exist now (RFC 7162
//! §3.2.5.1 allows reporting UIDs the client already knows are gone).
//!
//! # File format (version 1, text, LF line ends): a snapshot, then a journal
//! ```text
//! pimap-modseq 1 V<uidvalidity> H<highest modseq> E<expunge floor>
//! M <uid> <modseq> <flags hash, 16 hex digits>      one per existing message, ascending UID
//! X <uid> <modseq>                                  one per remembered expunge, ascending UID
//! J <body length> <body FNV-1a, 16 hex digits> <body>   one per recorded batch of changes
//! ```
//! A journal body is `H<new modseq>` followed by ` M<uid>:<flags hash>` (message new or
//! changed) and ` X<uid>` (message expunged) items; replaying it ([`ModSeqFile::apply_change`])
//! is exactly what [`ModSeqFile::apply`] did when it was recorded, so snapshot + journal and a
//! compacted snapshot are the same state (a test pins this).
//!
//! # Cost of a change, durability, concurrency
//! Recording a change costs one `write(2)` of its record with `O_APPEND` plus one
//! `fdatasync`, under the dotlock `pimap-modseq.lock` ([`super::lock::DotLock`]), so it is
//! proportional to the change, not to the mailbox. The fdatasync is needed because the value is
//! shown to a client right after (MODSEQ in FETCH, HIGHESTMODSEQ): were the record lost in a
//! crash while the file stayed valid, the next change would get the same value again and a
//! client holding it would miss that change (RFC 7162 §3.1.1 requires strictly increasing
//! values). The directory is not synced for an append (no name changes). When the journal has
//! grown past the snapshot (and past [`MIN_COMPACT`]), the writer instead compacts: the whole
//! state is written into the lock, fsynced, renamed over the file and the directory fsynced, so
//! a compaction costs the snapshot's size but happens once per that many journal bytes
//! (amortised: proportional to the change). A rebuild also writes a snapshot.
//!
//! What stays proportional to the mailbox is in memory only: the diff is one merge pass over
//! the messages and the record (no allocation when nothing changed), done once per `observe`
//! (its result is reused under the lock when nobody appended meanwhile).
//!
//! A crash in the middle of an append leaves a torn last record: its line is not terminated,
//! or it starts with `J ` but its length or checksum does not match. It is ignored (the change it held was never shown
//! to a client: that happens only after the fdatasync), and the next writer, holding the lock,
//! compacts so nothing is ever appended after it. A bad record followed by more data cannot
//! come from a crash: the file is corrupt and rebuilt. Readers do not take the lock: they
//! remember the inode and how many bytes they applied, and only read and apply the new tail;
//! a record being appended at that moment looks torn to them and is read next time. A new
//! inode (a compaction or rebuild by another process) means a full re-read. Only the newest
//! [`MAX_EXPUNGED`] expunges are kept; dropping older ones raises the floor.

mod file;

use file::modseq;
pub use file::{flags_hash, to_ranges, Change, JournalRead, ModSeqFile};

use super::lock::DotLock;
use crate::store::{MessageMeta, Result, StoreError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file's name inside the mailbox directory.
pub const FILE: &str = "pimap-modseq";
/// How many expunged UIDs are remembered for VANISHED (EARLIER).
pub const MAX_EXPUNGED: usize = 10_000;
/// RFC 7162 §7: mod-sequence values are at most 2^63 - 1.
pub const MAX_MODSEQ: u64 = i64::MAX as u64;
/// The journal is compacted once it is longer than both the snapshot and this many bytes.
pub const MIN_COMPACT: u64 = 16 * 1024;

/// Microseconds since the Unix epoch (the base of a new file), within the modseq range.
fn now_micros() -> u64 {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    u64::try_from(us).unwrap_or(MAX_MODSEQ).clamp(1, MAX_MODSEQ)
}

/// Where the state a session holds came from on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    /// The file's inode: a compaction or rebuild renames a new file in, with a new inode.
    ino: u64,
    /// Bytes of the file the state reflects: the snapshot plus whole journal records.
    offset: u64,
    /// Length of the snapshot part.
    snap_len: u64,
}

/// What catching up with the file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loaded {
    /// The state is the file's up to `pos.offset`; `torn`: bytes after that did not form a
    /// whole record.
    Current { torn: bool },
    /// The file must be read in full (another inode, shorter, missing, unreadable, corrupt).
    Reread,
}

/// The mod-sequences of one mailbox as this session knows them (touches disk).
pub struct ModSeqs {
    dir: PathBuf,
    state: Option<ModSeqFile>,
    /// `None`: the state does not match the disk (nothing read yet, or not persisted).
    pos: Option<Pos>,
}

impl ModSeqs {
    /// For the mailbox directory `dir`; nothing is read until [`ModSeqs::observe`].
    pub fn new(dir: &Path) -> ModSeqs {
        ModSeqs {
            dir: dir.to_path_buf(),
            state: None,
            pos: None,
        }
    }

    /// HIGHESTMODSEQ as of the last `observe` (0 before the first).
    pub fn highest(&self) -> u64 {
        self.state.as_ref().map(|s| s.highest).unwrap_or(0)
    }

    /// A message's mod-sequence as of the last `observe` (0 if unknown).
    pub fn get(&self, uid: u32) -> u64 {
        self.state
            .as_ref()
            .and_then(|s| s.msgs.get(&uid))
            .map(|r| r.0)
            .unwrap_or(0)
    }

    /// The record as of the last `observe`.
    pub fn file(&self) -> Option<&ModSeqFile> {
        self.state.as_ref()
    }

    /// Compare the mailbox's current `messages` (ascending UIDs) with the record and give
    /// every difference a new mod-sequence, persisting the result. Cheap when nothing changed:
    /// one `stat`, plus reading only the records other processes appended since.
    pub fn observe(&mut self, uid_validity: u32, messages: &[MessageMeta]) -> Result<()> {
        let path = self.dir.join(FILE);
        let same_validity =
            |s: &Option<ModSeqFile>| s.as_ref().is_some_and(|s| s.uid_validity == uid_validity);
        // Without the lock: read the file (or only what others appended since), then see
        // whether anything is left to record (usually not: a SELECT, or another session
        // already recorded the same change).
        let current = match same_validity(&self.state) {
            true => matches!(self.catch_up(&path), Loaded::Current { .. }),
            false => false,
        } || self.read_valid(&path, uid_validity);
        // The difference found here is still right under the lock if nobody appended since.
        let mut pending = None;
        if current {
            if let Some(s) = &self.state {
                match s.diff(messages) {
                    None => return Ok(()),
                    Some(c) => pending = self.pos.map(|p| (p, c)),
                }
            }
        }
        let lock = match DotLock::acquire(&path) {
            Ok(l) => Some(l),
            Err(e) => {
                // Read-only storage: keep the values in memory for this session.
                log::warn!(
                    "{}: cannot lock ({e}); mod-sequences not persisted",
                    path.display()
                );
                None
            }
        };
        // Under the lock nobody appends: bytes that do not form a record are a crash's torn
        // write, and the file is compacted so that nothing is appended after them.
        let (mut snapshot, reread) = match same_validity(&self.state) {
            true => match self.catch_up(&path) {
                Loaded::Current { torn } => (torn, false),
                Loaded::Reread => (self.reread(&path, uid_validity, lock.is_some())?, true),
            },
            false => (self.reread(&path, uid_validity, lock.is_some())?, true),
        };
        let Some(state) = self.state.as_mut() else {
            return Err(StoreError::Cannot(format!("{}: no state", path.display())));
        };
        let change = match pending {
            Some((p, c)) if !reread && self.pos == Some(p) => Some(c),
            _ => state.diff(messages),
        };
        if let Some(c) = &change {
            state
                .apply_change(c)
                .map_err(|e| StoreError::Cannot(format!("{}: {e}", path.display())))?;
        }
        let Some(lock) = lock else {
            // Kept only in memory. `pos` stays: while the file does not change, later calls
            // compare with this state instead of handing the same changes new values again;
            // when it does change, records that do not fit make `catch_up` re-read it, and
            // `reread` keeps values above the ones handed out here.
            return Ok(());
        };
        match (self.pos, &change) {
            (None, _) => snapshot = true,
            (Some(p), Some(c)) if !snapshot => {
                let after = p.offset.saturating_sub(p.snap_len) + c.encode().len() as u64;
                snapshot = after > p.snap_len.max(MIN_COMPACT);
            }
            _ => {}
        }
        if snapshot {
            self.pos = self.write_snapshot(lock, &path);
        } else if let (Some(c), Some(p)) = (change, self.pos) {
            self.pos = append(&path, p, &c);
            drop(lock);
        }
        Ok(())
    }

    /// Bring the state up to date with the records appended since it was read. Never
    /// changes the state when it answers `Reread` (a bad record may have been half applied:
    /// the caller then reads the file in full).
    fn catch_up(&mut self, path: &Path) -> Loaded {
        use std::os::unix::fs::MetadataExt;
        let (Some(p), Some(state)) = (self.pos, self.state.as_mut()) else {
            return Loaded::Reread;
        };
        let Ok(md) = std::fs::metadata(path) else {
            return Loaded::Reread;
        };
        if md.ino() != p.ino || md.len() < p.offset {
            return Loaded::Reread;
        }
        if md.len() == p.offset {
            return Loaded::Current { torn: false };
        }
        let tail = std::fs::File::open(path).and_then(|mut f| {
            if f.metadata()?.ino() != p.ino {
                return Err(std::io::Error::other("replaced meanwhile"));
            }
            f.seek(SeekFrom::Start(p.offset))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Ok(buf)
        });
        let Ok(tail) = tail else {
            return Loaded::Reread;
        };
        // Applied in place: on an error the caller re-reads the file anyway.
        match state.apply_journal(&tail) {
            Ok(j) => {
                self.pos = Some(Pos {
                    offset: p.offset + j.used as u64,
                    ..p
                });
                Loaded::Current { torn: j.torn }
            }
            Err(why) => {
                log::warn!("{}: journal at byte {}+{why}", path.display(), p.offset);
                self.pos = None;
                Loaded::Reread
            }
        }
    }

    /// Without the lock: read the whole file into the state if it is valid and for
    /// `uid_validity` (a torn tail may be a record being appended: left out). False, and the
    /// state untouched, otherwise: the caller takes the lock and [`ModSeqs::reread`]s.
    fn read_valid(&mut self, path: &Path, uid_validity: u32) -> bool {
        let floor = self.state.as_ref().map(|s| s.highest).unwrap_or(0);
        let Ok(Some((ino, bytes))) = read_file(path) else {
            return false;
        };
        match ModSeqFile::parse_bytes(&bytes) {
            Ok((f, snap, j)) if f.uid_validity == uid_validity && f.highest >= floor => {
                self.state = Some(f);
                self.pos = Some(Pos {
                    ino,
                    offset: (snap + j.used) as u64,
                    snap_len: snap as u64,
                });
                true
            }
            _ => false,
        }
    }

    /// Read the whole file into the state, or start a new record when it is missing, corrupt
    /// (logged, kept as `pimap-modseq.corrupt` when `locked`) or for another UIDVALIDITY.
    /// Returns whether a snapshot must be written (a rebuild, or a torn tail to cut off).
    fn reread(&mut self, path: &Path, uid_validity: u32, locked: bool) -> Result<bool> {
        // Never below what this session has already handed out.
        let mut floor = self.state.as_ref().map(|s| s.highest).unwrap_or(0);
        self.pos = None;
        if let Some((ino, bytes)) = read_file(path)? {
            match ModSeqFile::parse_bytes(&bytes) {
                Ok((mut f, snap, j)) if f.uid_validity == uid_validity => {
                    let mut snapshot = j.torn;
                    if f.highest < floor {
                        // Only when persisting failed earlier: keep values strictly rising.
                        log::warn!(
                            "{}: highest {} below {floor} already handed out; raised",
                            path.display(),
                            f.highest
                        );
                        f.highest = floor;
                        snapshot = true;
                    }
                    self.state = Some(f);
                    self.pos = Some(Pos {
                        ino,
                        offset: (snap + j.used) as u64,
                        snap_len: snap as u64,
                    });
                    return Ok(snapshot);
                }
                Ok((f, _, _)) => {
                    log::info!(
                        "{}: UIDVALIDITY changed ({} → {uid_validity}); mod-sequences restart",
                        path.display(),
                        f.uid_validity
                    );
                    floor = floor.max(f.highest);
                }
                Err(reason) => {
                    log::error!(
                        "{}: corrupt ({reason}); rebuilding (UIDs are not affected)",
                        path.display()
                    );
                    floor = floor.max(salvage_highest(&String::from_utf8_lossy(&bytes)));
                    if locked {
                        let _ = std::fs::rename(path, self.dir.join(format!("{FILE}.corrupt")));
                    }
                }
            }
        }
        let base = now_micros().max(floor.saturating_add(1)).min(MAX_MODSEQ);
        self.state = Some(ModSeqFile::new(uid_validity, base));
        Ok(true)
    }

    /// Replace the file with a snapshot of the state (written into the lock, fsynced,
    /// renamed, directory fsynced). The new position, or `None` when it failed (logged).
    fn write_snapshot(&self, lock: DotLock, path: &Path) -> Option<Pos> {
        use std::os::unix::fs::MetadataExt;
        let text = self.state.as_ref()?.serialize();
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let ino = std::fs::metadata(PathBuf::from(lock_path)).map(|m| m.ino());
        match lock.replace(text.as_bytes()) {
            Ok(()) => ino.ok().map(|ino| Pos {
                ino,
                offset: text.len() as u64,
                snap_len: text.len() as u64,
            }),
            Err(e) => {
                log::warn!("{}: {e}; mod-sequences not persisted", path.display());
                None
            }
        }
    }
}

/// The file's inode and content; `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<(u64, Vec<u8>)>> {
    use std::os::unix::fs::MetadataExt;
    let read = std::fs::File::open(path).and_then(|mut f| {
        let ino = f.metadata()?.ino();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok((ino, buf))
    });
    match read {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(super::io_err("reading", path, e)),
    }
}

/// Append one record (the caller holds the lock) and fdatasync it: see the module doc for
/// why. The new position, or `None` when it failed (logged; the next writer re-reads).
fn append(path: &Path, p: Pos, c: &Change) -> Option<Pos> {
    use std::os::unix::fs::MetadataExt;
    let rec = c.encode();
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| {
            let md = f.metadata()?;
            if md.ino() != p.ino || md.len() != p.offset {
                return Err(std::io::Error::other(
                    "changed by another process without the lock",
                ));
            }
            // One write(2): O_APPEND puts the record at the end even if a writer that does
            // not honour the lock appends too.
            f.write_all(rec.as_bytes())?;
            f.sync_data()
        });
    match written {
        Ok(()) => Some(Pos {
            offset: p.offset + rec.len() as u64,
            ..p
        }),
        Err(e) => {
            log::warn!(
                "{}: appending: {e}; mod-sequences not persisted",
                path.display()
            );
            None
        }
    }
}

/// The highest `H` value still readable anywhere in a damaged file (header or journal
/// records), so a rebuild stays above it.
fn salvage_highest(text: &str) -> u64 {
    text.split(['\n', ' '])
        .filter_map(|w| w.strip_prefix('H'))
        .filter_map(|v| modseq(v).ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
