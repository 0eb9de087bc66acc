//! A persistent cache of parsed message metadata, one `pimap-cache` file per Maildir folder
//! (Dovecot ignores files it does not know): the ENVELOPE, BODY and BODYSTRUCTURE answers, the
//! header block that SEARCH header keys and `BODY[HEADER.FIELDS ...]` read, RFC822.SIZE and the
//! PREVIEW text.
//!
//! Owns: the file (format in [`codec`]), an index of it in memory (base name → size and where
//! the record is, about 100 bytes per message; the records stay on disk and are read with
//! `pread` on a hit), and a process-wide registry so every session of the process shares one
//! [`MailboxCache`] per folder. Never: authoritative. An entry is used only for the base name
//! *and* file size it was computed from; anything wrong with the file (missing, truncated,
//! garbage, a torn write) costs one log line naming it and a rebuild, never a failed command.
//!
//! Easy on SD cards: no fsync at all (a torn record fails its checksum and is dropped), new
//! records are batched in memory and appended by one `write` when the command ends
//! ([`MailboxCache::flush`]) or [`FLUSH_AT`] bytes are pending, and nothing is written unless
//! something new was computed. Bounded: a record holds at most [`codec::MAX_RECORD`] bytes
//! (larger metadata is not cached; header blocks over [`HEADER_KEEP`] are left out), the file
//! is rewritten with only live records once it is over [`COMPACT_FROM`] and more than half
//! dead, and a file over [`MAX_FILE`] is not read (rebuilt).

pub mod codec;
mod derived;
#[cfg(test)]
mod tests;

pub use codec::Meta;
use codec::{Bad, Record};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The cache file's name inside a Maildir folder.
pub const FILE: &str = "pimap-cache";

/// Header blocks longer than this are not kept (the SEARCH/HEADER.FIELDS path then reads the
/// message); ENVELOPE and BODYSTRUCTURE are still cached.
pub const HEADER_KEEP: usize = 16 * 1024;

/// Pending bytes that trigger a write before the command ends.
pub const FLUSH_AT: usize = 256 * 1024;

/// A file at least this big is compacted when most of it is dead records.
pub const COMPACT_FROM: u64 = 1024 * 1024;

/// A cache file bigger than this is not read but rebuilt (and never grown beyond it).
pub const MAX_FILE: u64 = 256 * 1024 * 1024;

/// Folders whose cache stays loaded while no session uses it.
pub const KEEP_LOADED: usize = 32;

/// A stretch of a cache file read ahead by [`MailboxCache::header`], reused across the
/// messages of one SEARCH.
#[derive(Default)]
pub struct Window {
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    at: u64,
    /// `State::files` when `buf` was read.
    file: u64,
}

/// Bytes read ahead by a [`Window`].
const WINDOW: usize = 64 * 1024;

impl Window {
    /// The bytes `range` of `file`, from the window or after refilling it from there on.
    fn read(&mut self, s: &State, range: std::ops::Range<u64>) -> Option<&[u8]> {
        let have = self.at..self.at + self.buf.len() as u64;
        if self.file != s.files || !(have.start <= range.start && range.end <= have.end) {
            self.file = s.files;
            let want = (range.end - range.start) as usize;
            self.buf.resize(want.max(WINDOW), 0);
            let n = read_at_most(s.file.as_ref()?, &mut self.buf, range.start).ok()?;
            self.buf.truncate(n);
            self.at = range.start;
            if n < want {
                return None;
            }
        }
        let from = (range.start - self.at) as usize;
        self.buf
            .get(from..from + (range.end - range.start) as usize)
    }
}

/// `pread` until `buf` is full or the end of the file: the bytes read.
fn read_at_most(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Where a live record is: in the file, or (at or past `State::flushed`) in `pending`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    size: u64,
    off: u64,
    len: u32,
}

#[derive(Default)]
struct State {
    loaded: bool,
    file: Option<File>,
    /// The file's length as this process last wrote or read it.
    flushed: u64,
    /// Counts the files `file` has been (a compaction replaces it): read-ahead of an older
    /// one is stale.
    files: u64,
    index: HashMap<Box<str>, Slot>,
    /// Encoded records not yet written; offsets `flushed..` point into it.
    pending: Vec<u8>,
    live_bytes: u64,
    /// The file needs rewriting from the index (it was damaged or is mostly dead).
    rewrite: bool,
    /// Writing failed once (read-only folder, disk full): the cache lives in memory only for
    /// the rest of the process, so the log gets one line, not one per command.
    disabled: bool,
}

/// The cache of one Maildir folder, shared by every session of the process.
pub struct MailboxCache {
    dir: PathBuf,
    state: Mutex<State>,
    derived: Mutex<derived::Derived>,
}

/// Loaded caches, least recently used first.
type Registry = Mutex<Vec<(PathBuf, Arc<MailboxCache>)>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// The cache of the Maildir folder `dir`, loaded on first use. The process keeps the
/// [`KEEP_LOADED`] most recently used folders' caches, plus any still held elsewhere.
pub fn for_mailbox(dir: &Path) -> Arc<MailboxCache> {
    let mut r = registry().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = r.iter().position(|(d, _)| d == dir) {
        // Most recently used at the end.
        let e = r.remove(i);
        let c = e.1.clone();
        r.push(e);
        return c;
    }
    let c = Arc::new(MailboxCache {
        dir: dir.to_path_buf(),
        state: Mutex::new(State::default()),
        derived: Mutex::default(),
    });
    r.push((dir.to_path_buf(), c.clone()));
    if r.len() > KEEP_LOADED {
        if let Some(i) = r.iter().position(|(_, c)| Arc::strong_count(c) == 1) {
            // Dropped (and flushed) outside the lock would be nicer; a flush is one write.
            let (_, old) = r.remove(i);
            old.flush();
        }
    }
    c
}

impl MailboxCache {
    fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !s.loaded {
            s.loaded = true;
            self.load(&mut s);
        }
        s
    }

    /// The cached metadata of the message file `base` whose size on disk is `size`; `None`
    /// when there is none, it was computed for another size, or its record is unreadable.
    pub fn get(&self, base: &str, size: u64) -> Option<Arc<Meta>> {
        let mut s = self.lock();
        let buf = Self::record(&mut s, base, size)?;
        match codec::decode(&buf) {
            Ok((
                Record::Put {
                    base: b,
                    size: z,
                    meta,
                },
                _,
            )) if b == base && z == size => Some(Arc::new(meta)),
            _ => self.damaged(&mut s, base),
        }
    }

    /// The cached header block of the message file `base` of `size` bytes, as
    /// [`get`](Self::get) would give it in [`Meta::header`], without decoding (and copying)
    /// the rest of the record: SEARCH on header fields asks this of every message, so the
    /// file is read through `window` (records of neighbouring messages usually lie next to
    /// each other: one `pread` serves many), and the checksum is not computed again (every
    /// record in the index was checked when the file was loaded, or written by this process).
    pub fn header(&self, base: &str, size: u64, window: &mut Window) -> Option<Vec<u8>> {
        let mut s = self.lock();
        let slot = *s.index.get(base)?;
        if slot.size != size {
            return None;
        }
        let range = slot.off..slot.off + u64::from(slot.len);
        let rec = if slot.off >= s.flushed {
            let at = (slot.off - s.flushed) as usize;
            s.pending.get(at..at + slot.len as usize)
        } else {
            window.read(&s, range)
        };
        match rec.map(|r| codec::decode_header(r, base, size, false)) {
            Some(Ok(Some(h))) => rec.map(|r| r[h].to_vec()),
            Some(Ok(None)) => None,
            _ => self.damaged(&mut s, base),
        }
    }

    /// The bytes of the live record for `base`, if it was computed for `size`; empty when
    /// they cannot be read (which then fails to decode, as damage).
    fn record(s: &mut State, base: &str, size: u64) -> Option<Vec<u8>> {
        let slot = *s.index.get(base)?;
        if slot.size != size {
            return None;
        }
        if slot.off >= s.flushed {
            let at = (slot.off - s.flushed) as usize;
            return Some(s.pending.get(at..at + slot.len as usize)?.to_vec());
        }
        let mut b = vec![0u8; slot.len as usize];
        let ok = s
            .file
            .as_ref()
            .is_some_and(|f| f.read_exact_at(&mut b, slot.off).is_ok());
        if !ok {
            b.clear();
        }
        Some(b)
    }

    /// A record that does not decode: logged, dropped from the index, and the file marked
    /// for rewriting.
    fn damaged<T>(&self, s: &mut State, base: &str) -> Option<T> {
        log::warn!(
            "{}: damaged record for {base}; rebuilding it",
            self.path().display()
        );
        if let Some(sl) = s.index.remove(base) {
            s.live_bytes = s.live_bytes.saturating_sub(u64::from(sl.len));
        }
        s.rewrite = true;
        None
    }

    /// Remember `meta` for the message file `base` of `size` bytes on disk (written at the
    /// next [`flush`](Self::flush)). Metadata too big for a record is not cached.
    pub fn put(&self, base: &str, size: u64, meta: &Meta) {
        let rec = Record::Put {
            base: base.to_string(),
            size,
            meta: meta.clone(),
        };
        let mut s = self.lock();
        let at = s.flushed + s.pending.len() as u64;
        let before = s.pending.len();
        if !codec::encode(&rec, &mut s.pending) {
            return;
        }
        let len = (s.pending.len() - before) as u32;
        let old = s.index.insert(base.into(), Slot { size, off: at, len });
        s.live_bytes += u64::from(len);
        if let Some(o) = old {
            s.live_bytes = s.live_bytes.saturating_sub(u64::from(o.len));
        }
        if s.pending.len() >= FLUSH_AT {
            self.write_pending(&mut s);
        }
    }

    /// A value derived from the message file `base` of `size` bytes and kept under `kind` by
    /// [`keep_derived`](Self::keep_derived): in memory only, for the life of the loaded cache,
    /// within a process-wide budget.
    pub fn derived(&self, kind: u8, base: &str, size: u64) -> Option<Arc<[u8]>> {
        self.derived_lock().get(kind, base, size)
    }

    /// Keep `value`, derived from the message file `base` of `size` bytes, under `kind`,
    /// while this folder's cache stays loaded and the process's budget allows.
    pub fn keep_derived(&self, kind: u8, base: &str, size: u64, value: Arc<[u8]>) {
        self.derived_lock().keep(kind, base, size, value);
    }

    /// The order of the messages `members` (UIDs, ascending) kept under `key` by
    /// [`keep_order`](Self::keep_order), if they are exactly the members it was made for.
    pub fn order(&self, key: &[u8], members: &[u32]) -> Option<Arc<[u32]>> {
        self.derived_lock().order(key, members)
    }

    /// Keep `order`, how the messages `members` (UIDs, ascending) sort under `key` (the
    /// caller's: what it sorts by and the UIDVALIDITY), for the next [`order`](Self::order):
    /// webmail sorts the same folder the same way for every page it shows. A few per folder,
    /// in memory, within the process's budget.
    pub fn keep_order(&self, key: &[u8], members: Vec<u32>, order: Vec<u32>) {
        self.derived_lock().keep_order(key, members, order);
    }

    fn derived_lock(&self) -> MutexGuard<'_, derived::Derived> {
        self.derived.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop the entry of an expunged message.
    pub fn forget(&self, base: &str) {
        self.derived_lock().forget(base);
        let mut s = self.lock();
        if let Some(o) = s.index.remove(base) {
            s.live_bytes = s.live_bytes.saturating_sub(u64::from(o.len));
            let rec = Record::Forget {
                base: base.to_string(),
            };
            let mut p = std::mem::take(&mut s.pending);
            codec::encode(&rec, &mut p);
            s.pending = p;
        }
    }

    /// Drop the entries of messages for which `live` is false (messages expunged by another
    /// process); they go from the file at its next compaction.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        let mut s = self.lock();
        let dead: Vec<Box<str>> = s.index.keys().filter(|b| !live(b)).cloned().collect();
        let mut derived = self.derived_lock();
        for b in dead {
            derived.forget(&b);
            if let Some(o) = s.index.remove(&b) {
                s.live_bytes = s.live_bytes.saturating_sub(u64::from(o.len));
            }
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.lock().index.len()
    }

    /// True when there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write what was computed since the last flush (one `write`, no fsync), compacting the
    /// file first when it is damaged or mostly dead. Errors are logged, never returned.
    pub fn flush(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.loaded {
            self.write_pending(&mut s);
        }
    }

    fn write_pending(&self, s: &mut State) {
        if s.disabled {
            let flushed = s.flushed;
            s.index.retain(|_, sl| sl.off < flushed);
            s.pending.clear();
            return;
        }
        let dead = s
            .flushed
            .saturating_sub(s.live_bytes + codec::MAGIC.len() as u64);
        if s.rewrite || (s.flushed >= COMPACT_FROM && dead > s.flushed / 2) {
            if let Err(e) = self.compact(s) {
                log::warn!("{}: cannot rewrite: {e}", self.path().display());
                s.disabled = true;
                s.rewrite = false;
                let flushed = s.flushed;
                s.index.retain(|_, sl| sl.off < flushed);
                s.pending.clear();
            }
            return;
        }
        if s.pending.is_empty() {
            return;
        }
        if s.flushed + s.pending.len() as u64 > MAX_FILE {
            s.index.retain(|_, sl| sl.off < s.flushed);
            s.pending.clear();
            return;
        }
        if let Err(e) = self.append(s) {
            log::warn!("{}: cannot write: {e}", self.path().display());
            s.disabled = true;
            // What was pending is not in the file: forget it.
            let flushed = s.flushed;
            s.index.retain(|_, sl| sl.off < flushed);
            s.pending.clear();
        }
    }

    fn append(&self, s: &mut State) -> std::io::Result<()> {
        let before = s.flushed;
        if s.file.is_none() {
            let path = self.path();
            let mut f = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&path)?;
            let len = f.seek(SeekFrom::End(0))?;
            if len == 0 {
                f.write_all(codec::MAGIC)?;
            } else {
                // A file appeared since the load (another process): it is not in the index.
                return Err(std::io::Error::other("cache file appeared under us"));
            }
            s.file = Some(f);
            s.files += 1;
        }
        let Some(f) = s.file.as_mut() else {
            return Ok(());
        };
        let at = f.seek(SeekFrom::End(0))?;
        f.write_all(&s.pending)?;
        // Offsets were given relative to `flushed`; the file may have grown elsewhere.
        let shift = at as i64 - before as i64;
        if shift != 0 {
            for sl in s.index.values_mut() {
                if sl.off >= before {
                    sl.off = (sl.off as i64 + shift) as u64;
                }
            }
        }
        s.flushed = at + s.pending.len() as u64;
        s.pending.clear();
        Ok(())
    }

    /// Rewrite the file with the live records only (tmp file + rename, no fsync: a torn
    /// result is detected at the next load like any damage).
    fn compact(&self, s: &mut State) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(s.live_bytes as usize + s.pending.len() + 8);
        out.extend_from_slice(codec::MAGIC);
        let mut slots: Vec<(Box<str>, Slot)> =
            s.index.iter().map(|(k, v)| (k.clone(), *v)).collect();
        slots.sort_by_key(|(_, sl)| sl.off);
        // Entries of messages expunged by another process (Dovecot, an MDA) go now.
        let present = present_bases(&self.dir);
        let mut index = HashMap::with_capacity(slots.len());
        for (base, sl) in slots {
            let rec = if sl.off >= s.flushed {
                let at = (sl.off - s.flushed) as usize;
                s.pending.get(at..at + sl.len as usize).map(<[u8]>::to_vec)
            } else {
                let mut b = vec![0u8; sl.len as usize];
                s.file
                    .as_ref()
                    .and_then(|f| f.read_exact_at(&mut b, sl.off).ok())
                    .map(|_| b)
            };
            if present.as_ref().is_some_and(|p| !p.contains(&*base)) {
                continue;
            }
            let Some(rec) = rec else { continue };
            if codec::decode(&rec).is_err() {
                continue;
            }
            let off = out.len() as u64;
            out.extend_from_slice(&rec);
            index.insert(base, Slot { off, ..sl });
        }
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&out)?;
        fs::rename(&tmp, &path)?;
        s.live_bytes = (out.len() - codec::MAGIC.len()) as u64;
        s.flushed = out.len() as u64;
        s.index = index;
        s.file = Some(f);
        s.files += 1;
        s.pending.clear();
        s.rewrite = false;
        Ok(())
    }

    /// Read the file's index. Damage stops the reading at the first bad record: one log
    /// line, and the file is rewritten at the next flush.
    fn load(&self, s: &mut State) {
        let path = self.path();
        let f = match OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                log::warn!("{}: cannot open ({e}); rebuilding it", path.display());
                s.rewrite = true;
                return;
            }
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len > MAX_FILE {
            log::warn!("{}: over {MAX_FILE} bytes; rebuilding it", path.display());
            s.rewrite = true;
            return;
        }
        let mut r = BufReader::with_capacity(64 * 1024, &f);
        let mut magic = [0u8; 8];
        if r.read_exact(&mut magic).is_err() || &magic != codec::MAGIC {
            if magic.starts_with(codec::MAGIC_FAMILY) {
                log::info!(
                    "{}: another cache format version; rebuilding it",
                    path.display()
                );
            } else {
                log::warn!("{}: not a pimap cache file; rebuilding it", path.display());
            }
            s.rewrite = true;
            return;
        }
        let mut off = magic.len() as u64;
        let mut buf = Vec::new();
        loop {
            let mut lb = [0u8; 4];
            match r.read(&mut lb[..1]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    s.rewrite = true;
                    break;
                }
            }
            let whole = r.read_exact(&mut lb[1..]).is_ok();
            let n = u32::from_le_bytes(lb) as usize;
            buf.clear();
            buf.extend_from_slice(&lb);
            let got = whole
                && n <= codec::MAX_RECORD
                && r.by_ref().take(n as u64 + 4).read_to_end(&mut buf).is_ok();
            let decoded = if got {
                codec::decode(&buf)
            } else if !whole {
                Err(Bad::Short)
            } else {
                Err(Bad::Corrupt("record length out of bounds"))
            };
            match decoded {
                Ok((Record::Put { base, size, .. }, used)) => {
                    let len = used as u32;
                    let old = s.index.insert(base.into(), Slot { size, off, len });
                    s.live_bytes += u64::from(len);
                    if let Some(o) = old {
                        s.live_bytes = s.live_bytes.saturating_sub(u64::from(o.len));
                    }
                    off += used as u64;
                }
                Ok((Record::Forget { base }, used)) => {
                    if let Some(o) = s.index.remove(base.as_str()) {
                        s.live_bytes = s.live_bytes.saturating_sub(u64::from(o.len));
                    }
                    off += used as u64;
                }
                Err(e) => {
                    let why = match e {
                        Bad::Short => "truncated record",
                        Bad::Corrupt(w) => w,
                    };
                    log::warn!(
                        "{}: damaged at byte {off} ({why}); rebuilding it",
                        path.display()
                    );
                    s.rewrite = true;
                    break;
                }
            }
        }
        drop(r);
        s.flushed = if s.rewrite { off } else { len };
        s.file = Some(f);
        s.files += 1;
    }
}

/// The base names of the message files in `dir`'s `cur/` and `new/`; `None` when a
/// directory cannot be read (then nothing is dropped for being absent).
fn present_bases(dir: &Path) -> Option<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for sub in ["new", "cur"] {
        let rd = fs::read_dir(dir.join(sub)).ok()?;
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            out.insert(
                crate::store::maildir::filename::split(&name)
                    .base
                    .to_string(),
            );
        }
    }
    Some(out)
}

impl Drop for MailboxCache {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Messages delivered by the S3 sync up to this size are parsed into the cache on arrival
/// (read back from the page cache); bigger ones are cached on first use.
pub const FILL_ON_DELIVERY: u64 = 1024 * 1024;

/// Fill the cache for a message just delivered to `path` in the Maildir folder `maildir`
/// (the sync's deliveries). Best effort: any failure just leaves it to the first FETCH.
pub fn note_delivery(maildir: &Path, path: &Path) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let base = crate::store::maildir::filename::split(name).base;
    let Ok(md) = fs::symlink_metadata(path) else {
        return;
    };
    if !md.is_file() || md.len() > FILL_ON_DELIVERY {
        return;
    }
    let c = for_mailbox(maildir);
    if c.get(base, md.len()).is_some() {
        return;
    }
    let mut data = Vec::new();
    let read = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .and_then(|f| f.take(FILL_ON_DELIVERY).read_to_end(&mut data));
    if read.is_ok() && data.len() as u64 == md.len() {
        c.put(base, md.len(), &compute(&crate::mime::to_crlf(&data)));
        c.flush();
    }
}

/// The metadata of a message (`msg` with CRLF line ends, as FETCH serves it).
pub fn compute(msg: &[u8]) -> Meta {
    // One MIME parse for all three (tests/cache_corpus.rs holds them to the one-item functions).
    let parsed = crate::mime::Parsed::new(msg);
    let mut envelope = Vec::new();
    parsed.envelope(&mut envelope);
    let mut body = Vec::new();
    parsed.body_structure(false, &mut body);
    let mut bodystructure = Vec::new();
    parsed.body_structure(true, &mut bodystructure);
    let (_, end, ended) = crate::mime::parse::parse_header_ext(msg, 0);
    let header = msg
        .get(..end)
        .filter(|h| ended && h.len() <= HEADER_KEEP)
        .map(<[u8]>::to_vec);
    Meta {
        vsize: msg.len() as u64,
        envelope,
        body,
        bodystructure,
        header,
        preview: crate::mime::preview::preview(msg).into_bytes(),
    }
}
