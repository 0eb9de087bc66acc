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

use super::lock::DotLock;
use crate::store::{Flags, MessageMeta, Result, StoreError};
use std::collections::BTreeMap;
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

/// The parsed content of `pimap-modseq`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModSeqFile {
    pub uid_validity: u32,
    /// HIGHESTMODSEQ: at least every value in the file.
    pub highest: u64,
    /// Expunges with a mod-sequence up to this value may be missing from `expunged`.
    pub expunge_floor: u64,
    /// UID → (mod-sequence, flags hash) of every existing message.
    pub msgs: BTreeMap<u32, (u64, u64)>,
    /// UID → mod-sequence of the expunge.
    pub expunged: BTreeMap<u32, u64>,
}

/// One batch of changes, all with the same new mod-sequence: one journal record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    pub modseq: u64,
    /// Messages new or with changed flags: UID → flags hash, ascending UID.
    pub set: Vec<(u32, u64)>,
    /// Messages gone, ascending UID.
    pub expunged: Vec<u32>,
}

/// What the journal part of a file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalRead {
    /// Bytes of complete, valid records applied (the reader's next offset).
    pub used: usize,
    /// There were bytes after them: a torn record (crash, or being appended right now).
    pub torn: bool,
}

/// 64-bit FNV-1a over `bytes`, continuing from `h`.
fn fnv(mut h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a hash of a message's flags (system bits and keywords, case-folded and sorted,
/// so the order of keywords on disk does not count as a change).
pub fn flags_hash(f: &Flags) -> u64 {
    let h = fnv(FNV_START, [f.system]);
    if f.keywords.is_empty() {
        return h;
    }
    let folded_sorted = f
        .keywords
        .iter()
        .all(|k| !k.bytes().any(|b| b.is_ascii_uppercase()))
        && f.keywords.windows(2).all(|w| matches!(w, [a, b] if a < b));
    if folded_sorted {
        // The common case (no keywords, or Maildir's usual order): no allocation.
        return f
            .keywords
            .iter()
            .fold(h, |h, k| fnv(fnv(h, [b' ']), k.bytes()));
    }
    let mut kws: Vec<String> = f.keywords.iter().map(|k| k.to_ascii_lowercase()).collect();
    kws.sort();
    kws.dedup();
    kws.iter().fold(h, |h, k| fnv(fnv(h, [b' ']), k.bytes()))
}

impl Change {
    /// The journal line, LF included (see the module doc).
    pub fn encode(&self) -> String {
        use std::fmt::Write;
        let mut body = format!("H{}", self.modseq);
        for (uid, hash) in &self.set {
            let _ = write!(body, " M{uid}:{hash:016x}");
        }
        for uid in &self.expunged {
            let _ = write!(body, " X{uid}");
        }
        format!(
            "J {} {:016x} {body}\n",
            body.len(),
            fnv(FNV_START, body.bytes())
        )
    }

    /// Parse one journal line (without its LF). Never panics.
    pub fn decode(line: &[u8]) -> std::result::Result<Change, String> {
        let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
        let mut parts = text.splitn(4, ' ');
        let (Some("J"), Some(len), Some(sum), Some(body)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("expected 'J length checksum body'".into());
        };
        if num::<usize>(len, "length")? != body.len() {
            return Err("length does not match".into());
        }
        if sum.len() != 16
            || u64::from_str_radix(sum, 16).ok() != Some(fnv(FNV_START, body.bytes()))
        {
            return Err("checksum does not match".into());
        }
        let mut words = body.split(' ');
        let modseq = match words.next().and_then(|w| w.strip_prefix('H')) {
            Some(v) => modseq(v)?,
            None => return Err("body does not start with H".into()),
        };
        let mut c = Change {
            modseq,
            ..Change::default()
        };
        for w in words {
            if let Some(item) = w.strip_prefix('M') {
                let (uid, hash) = item.split_once(':').ok_or("M item without ':'")?;
                if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("flags hash is not 16 hex digits".into());
                }
                let hash = u64::from_str_radix(hash, 16)
                    .map_err(|_| "flags hash is not 16 hex digits".to_string())?;
                c.set.push((nz_uid(uid)?, hash));
            } else if let Some(uid) = w.strip_prefix('X') {
                c.expunged.push(nz_uid(uid)?);
            } else {
                return Err(format!("unknown journal item {w:?}"));
            }
        }
        if c.set.is_empty() && c.expunged.is_empty() {
            return Err("empty record".into());
        }
        Ok(c)
    }
}

impl ModSeqFile {
    /// A fresh record whose values start at `base`.
    pub fn new(uid_validity: u32, base: u64) -> ModSeqFile {
        ModSeqFile {
            uid_validity,
            highest: base,
            expunge_floor: base,
            msgs: BTreeMap::new(),
            expunged: BTreeMap::new(),
        }
    }

    /// Parse a whole file, snapshot and journal; a torn last record is ignored, any other
    /// deviation from the format is an error naming the line (the caller rebuilds). Never
    /// panics.
    pub fn parse(text: &str) -> std::result::Result<ModSeqFile, String> {
        Self::parse_bytes(text.as_bytes()).map(|(f, _, _)| f)
    }

    /// [`ModSeqFile::parse`] on bytes; also returns the snapshot's length and what the
    /// journal held.
    fn parse_bytes(bytes: &[u8]) -> std::result::Result<(ModSeqFile, usize, JournalRead), String> {
        // The snapshot (header, then `M` and `X` lines) ends at the first other line: a
        // journal record, or a torn first record, which the journal reader judges.
        let mut snap_end = 0usize;
        let mut lines = 0usize;
        while snap_end < bytes.len() {
            let rest = bytes.get(snap_end..).unwrap_or_default();
            if lines > 0 && !rest.starts_with(b"M ") && !rest.starts_with(b"X ") {
                break;
            }
            lines += 1;
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => snap_end += i + 1,
                None => snap_end = bytes.len(),
            }
        }
        let snapshot = std::str::from_utf8(bytes.get(..snap_end).unwrap_or_default())
            .map_err(|_| "snapshot is not UTF-8".to_string())?;
        let mut f = Self::parse_snapshot(snapshot)?;
        let j = f
            .apply_journal(bytes.get(snap_end..).unwrap_or_default())
            .map_err(|e| format!("journal at byte {snap_end}+{e}"))?;
        Ok((f, snap_end, j))
    }

    fn parse_snapshot(text: &str) -> std::result::Result<ModSeqFile, String> {
        let mut lines = text.split('\n');
        let header = lines.next().unwrap_or("");
        let mut words = header.split(' ');
        if words.next() != Some("pimap-modseq") || words.next() != Some("1") {
            return Err("not a version 1 pimap-modseq header".into());
        }
        let (mut v, mut h, mut e) = (None, None, None);
        for w in words {
            let mut ch = w.chars();
            let key = ch.next();
            let val = ch.as_str();
            match key {
                Some('V') => v = Some(num::<u32>(val, "UIDVALIDITY")?),
                Some('H') => h = Some(modseq(val)?),
                Some('E') => e = Some(modseq(val)?),
                _ => return Err(format!("unknown header field {w:?}")),
            }
        }
        let (Some(uid_validity), Some(highest), Some(expunge_floor)) = (v, h, e) else {
            return Err("header lacks V, H or E".into());
        };
        if expunge_floor > highest {
            return Err("expunge floor above the highest mod-sequence".into());
        }
        let mut f = ModSeqFile {
            uid_validity,
            highest,
            expunge_floor,
            ..ModSeqFile::default()
        };
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split(' ').collect();
            let bad = |why: &str| format!("line {n}: {why}");
            match parts.as_slice() {
                ["M", uid, ms, hash] => {
                    let uid = nz_uid(uid).map_err(|w| bad(&w))?;
                    let ms = modseq(ms).map_err(|w| bad(&w))?;
                    if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad("flags hash is not 16 hex digits"));
                    }
                    let hash = u64::from_str_radix(hash, 16)
                        .map_err(|_| bad("flags hash is not 16 hex digits"))?;
                    if ms > highest {
                        return Err(bad("mod-sequence above the header's highest"));
                    }
                    if f.msgs.insert(uid, (ms, hash)).is_some() {
                        return Err(bad("UID listed twice"));
                    }
                }
                ["X", uid, ms] => {
                    let uid = nz_uid(uid).map_err(|w| bad(&w))?;
                    let ms = modseq(ms).map_err(|w| bad(&w))?;
                    if ms > highest {
                        return Err(bad("mod-sequence above the header's highest"));
                    }
                    if f.msgs.contains_key(&uid) || f.expunged.insert(uid, ms).is_some() {
                        return Err(bad("UID listed twice"));
                    }
                }
                _ => return Err(bad("expected 'M uid modseq hash' or 'X uid modseq'")),
            }
        }
        Ok(f)
    }

    /// Apply the journal records in `bytes` (read from a record boundary). A last record
    /// without its LF, or a last `J` line that fails its length or checksum, is torn and left
    /// out; any other bad line is an error (the file is corrupt).
    pub fn apply_journal(&mut self, bytes: &[u8]) -> std::result::Result<JournalRead, String> {
        let mut used = 0usize;
        while used < bytes.len() {
            let rest = bytes.get(used..).unwrap_or_default();
            let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
                return Ok(JournalRead { used, torn: true });
            };
            let line = rest.get(..eol).unwrap_or_default();
            let applied = Change::decode(line).and_then(|c| self.apply_change(&c));
            if let Err(why) = applied {
                // Torn: the last line, and its record header made it to disk (a write that
                // lost its end has no LF at all, handled above).
                if eol + 1 == rest.len() && line.starts_with(b"J ") {
                    return Ok(JournalRead { used, torn: true });
                }
                return Err(format!("{used}: {why}"));
            }
            used += eol + 1;
        }
        Ok(JournalRead { used, torn: false })
    }

    /// The file content of a snapshot (see the module doc for the format).
    pub fn serialize(&self) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(40 * (self.msgs.len() + self.expunged.len()) + 64);
        let _ = writeln!(
            s,
            "pimap-modseq 1 V{} H{} E{}",
            self.uid_validity, self.highest, self.expunge_floor
        );
        for (uid, (ms, hash)) in &self.msgs {
            let _ = writeln!(s, "M {uid} {ms} {hash:016x}");
        }
        for (uid, ms) in &self.expunged {
            let _ = writeln!(s, "X {uid} {ms}");
        }
        s
    }

    /// What [`ModSeqFile::apply`] would change for `messages` (ascending UIDs): new messages
    /// and changed flags, and vanished UIDs, all with one fresh mod-sequence (one more than
    /// the highest). `None` when nothing changed. Does not allocate in that case.
    pub fn diff(&self, messages: &[MessageMeta]) -> Option<Change> {
        let sorted = messages
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.uid < b.uid));
        if sorted {
            self.diff_sorted(messages.iter())
        } else {
            // Not what the store hands out, but never trust it blindly: sort, last one wins.
            let mut v: Vec<&MessageMeta> = messages.iter().rev().collect();
            v.sort_by_key(|m| m.uid);
            v.dedup_by_key(|m| m.uid);
            self.diff_sorted(v.into_iter())
        }
    }

    /// A merge of the ascending `messages` with the recorded UIDs: one pass, no lookups.
    fn diff_sorted<'a>(&self, messages: impl Iterator<Item = &'a MessageMeta>) -> Option<Change> {
        let mut c = Change {
            modseq: self.highest.saturating_add(1).min(MAX_MODSEQ),
            ..Change::default()
        };
        let mut rec = self.msgs.iter().peekable();
        for m in messages {
            while let Some((&u, _)) = rec.peek() {
                if u >= m.uid {
                    break;
                }
                c.expunged.push(u);
                rec.next();
            }
            let h = flags_hash(&m.flags);
            match rec.peek() {
                Some((&u, &(_, old))) if u == m.uid => {
                    if old != h {
                        c.set.push((m.uid, h));
                    }
                    rec.next();
                }
                // A UID seen again after it was recorded as expunged (a file seen half-way
                // through a rename) is simply present again, with a new value.
                _ => c.set.push((m.uid, h)),
            }
        }
        c.expunged.extend(rec.map(|(u, _)| *u));
        (!c.set.is_empty() || !c.expunged.is_empty()).then_some(c)
    }

    /// Replay one batch of changes: the messages of `set` get `c.modseq`, those of `expunged`
    /// move to the expunge history, the history is trimmed. Refuses a record that does not
    /// fit the state (a lower mod-sequence, an expunge of an unknown UID).
    pub fn apply_change(&mut self, c: &Change) -> std::result::Result<(), String> {
        if c.modseq > MAX_MODSEQ || !(c.modseq > self.highest || c.modseq == MAX_MODSEQ) {
            return Err(format!(
                "mod-sequence {} not above the highest {}",
                c.modseq, self.highest
            ));
        }
        if let Some(u) = c.expunged.iter().find(|u| !self.msgs.contains_key(u)) {
            if !c.set.iter().any(|(s, _)| s == u) {
                return Err(format!("expunge of unknown UID {u}"));
            }
        }
        for &(uid, hash) in &c.set {
            self.expunged.remove(&uid);
            self.msgs.insert(uid, (c.modseq, hash));
        }
        for &uid in &c.expunged {
            self.msgs.remove(&uid);
            self.expunged.insert(uid, c.modseq);
        }
        self.highest = c.modseq;
        self.trim_expunged(MAX_EXPUNGED);
        Ok(())
    }

    /// Bring the record up to date with `messages` (ascending UIDs): new messages and changed
    /// flags get a fresh mod-sequence (one more than the highest), vanished UIDs become
    /// expunges. Returns true if anything changed.
    pub fn apply(&mut self, messages: &[MessageMeta]) -> bool {
        match self.diff(messages) {
            Some(c) => self.apply_change(&c).is_ok(),
            None => false,
        }
    }

    /// Keep only the newest `max` expunges; the floor rises to the newest value dropped.
    pub fn trim_expunged(&mut self, max: usize) {
        if self.expunged.len() <= max {
            return;
        }
        let mut by_age: Vec<(u64, u32)> = self.expunged.iter().map(|(u, m)| (*m, *u)).collect();
        by_age.sort_unstable();
        let drop = by_age.len() - max;
        for (ms, uid) in by_age.into_iter().take(drop) {
            self.expunged.remove(&uid);
            self.expunge_floor = self.expunge_floor.max(ms);
        }
    }

    /// UIDs expunged after `since`, as ascending ranges, limited to `within` (ranges of UIDs
    /// the client cares about). When the history does not reach back to `since`, every UID of
    /// `within` below `uid_next` that does not exist now is reported instead (RFC 7162
    /// §3.2.5.1: the server may include UIDs the client already knows to be expunged).
    pub fn vanished_since(
        &self,
        since: u64,
        within: &[(u32, u32)],
        uid_next: u32,
    ) -> Vec<(u32, u32)> {
        if since >= self.expunge_floor {
            let uids: Vec<u32> = self
                .expunged
                .iter()
                .filter(|(u, ms)| **ms > since && in_ranges(**u, within))
                .map(|(u, _)| *u)
                .collect();
            return to_ranges(&uids);
        }
        let top = uid_next.saturating_sub(1);
        let mut out: Vec<(u32, u32)> = Vec::new();
        for &(a, b) in within {
            let (lo, hi) = (a.max(1), b.min(top));
            if lo > hi {
                continue;
            }
            // Walk the existing UIDs inside [lo, hi]; the gaps between them are gone.
            let mut next = lo;
            for (&u, _) in self.msgs.range(lo..=hi) {
                if u > next {
                    out.push((next, u - 1));
                }
                next = u.saturating_add(1);
                if u == u32::MAX {
                    break;
                }
            }
            if next <= hi && !(next == u32::MAX && self.msgs.contains_key(&u32::MAX)) {
                out.push((next, hi));
            }
        }
        merge_ranges(out)
    }
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> std::result::Result<T, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid {what} {s:?}"));
    }
    s.parse().map_err(|_| format!("invalid {what} {s:?}"))
}

fn nz_uid(s: &str) -> std::result::Result<u32, String> {
    match num::<u32>(s, "UID")? {
        0 => Err("UID 0".into()),
        u => Ok(u),
    }
}

fn modseq(s: &str) -> std::result::Result<u64, String> {
    let v = num::<u64>(s, "mod-sequence")?;
    if v > MAX_MODSEQ {
        return Err(format!("mod-sequence {v} above 2^63-1"));
    }
    Ok(v)
}

fn in_ranges(u: u32, rs: &[(u32, u32)]) -> bool {
    rs.iter().any(|&(a, b)| u >= a && u <= b)
}

/// Ascending UIDs → ranges.
pub fn to_ranges(uids: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &u in uids {
        match out.last_mut() {
            Some((_, b)) if b.checked_add(1) == Some(u) => *b = u,
            _ => out.push((u, u)),
        }
    }
    out
}

fn merge_ranges(mut rs: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    rs.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (a, b) in rs {
        match out.last_mut() {
            Some((_, pb)) if a <= pb.saturating_add(1) => *pb = (*pb).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

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
mod tests {
    use super::*;

    /// Append `n` pseudo-random characters from `alphabet` (a linear congruential generator:
    /// reproducible, no dependency).
    fn push_noise(s: &mut String, seed: &mut u32, n: usize, alphabet: &[u8]) {
        for _ in 0..n {
            *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if let Some(&b) = alphabet.get((*seed >> 16) as usize % alphabet.len()) {
                s.push(b as char);
            }
        }
    }

    fn meta(uid: u32, system: u8, kws: &[&str]) -> MessageMeta {
        MessageMeta {
            uid,
            flags: Flags {
                system,
                keywords: kws.iter().map(|k| k.to_string()).collect(),
            },
            size: 1,
            internal_date: 0,
            recent: false,
        }
    }

    #[test]
    fn round_trip() {
        let mut f = ModSeqFile::new(42, 1000);
        f.apply(&[meta(1, 0, &[]), meta(3, 1, &["$Junk"])]);
        f.apply(&[meta(3, 1, &["$Junk"])]);
        let text = f.serialize();
        assert_eq!(ModSeqFile::parse(&text).unwrap(), f);
        assert!(
            text.starts_with("pimap-modseq 1 V42 H1002 E1000\n"),
            "{text}"
        );
        assert_eq!(f.expunged.get(&1), Some(&1002));
        assert_eq!(f.msgs.get(&3).map(|r| r.0), Some(1001));
    }

    #[test]
    fn changes_get_new_values_and_noops_do_not() {
        let mut f = ModSeqFile::new(1, 10);
        assert!(f.apply(&[meta(1, 0, &[]), meta(2, 0, &[])]));
        assert_eq!(f.highest, 11);
        // Keyword order and case do not count as a change.
        assert!(!f.apply(&[meta(1, 0, &[]), meta(2, 0, &[])]));
        assert!(f.apply(&[meta(1, 1, &[]), meta(2, 0, &[])]));
        assert_eq!((f.highest, f.msgs[&1].0, f.msgs[&2].0), (12, 12, 11));
        let a = meta(5, 0, &["A", "b"]);
        let b = meta(5, 0, &["B", "a"]);
        assert_eq!(flags_hash(&a.flags), flags_hash(&b.flags));
        assert_ne!(
            flags_hash(&a.flags),
            flags_hash(&meta(5, 1, &["A", "b"]).flags)
        );
    }

    #[test]
    fn corrupt_input_is_an_error_never_a_panic() {
        let good = "pimap-modseq 1 V1 H20 E5\nM 1 7 00000000000000ff\nX 2 9\n";
        assert!(ModSeqFile::parse(good).is_ok());
        for bad in [
            "",
            "\n",
            "pimap-modseq 2 V1 H2 E1\n",
            "pimap-modseq 1 V1 H2\n",
            "pimap-modseq 1 V1 H2 E3\n",
            "pimap-modseq 1 Vx H2 E1\n",
            "pimap-modseq 1 V1 H99999999999999999999 E1\n",
            "pimap-modseq 1 V1 H9223372036854775808 E1\n",
            "pimap-modseq 1 V1 H20 E5 Z1\n",
            "pimap-modseq 1 V1 H20 E5\nM 0 7 00000000000000ff\n",
            "pimap-modseq 1 V1 H20 E5\nM 1 21 00000000000000ff\n",
            "pimap-modseq 1 V1 H20 E5\nM 1 7 ff\n",
            "pimap-modseq 1 V1 H20 E5\nM 1 7 zzzzzzzzzzzzzzzz\n",
            "pimap-modseq 1 V1 H20 E5\nM 1 7 +00000000000000f\n",
            "pimap-modseq 1 V1 H20 E5\nM 1 7 00000000000000ff\nM 1 8 00000000000000ff\n",
            "pimap-modseq 1 V1 H20 E5\nM 1 7 00000000000000ff\nX 1 8\n",
            "pimap-modseq 1 V1 H20 E5\nX 1\n",
            "pimap-modseq 1 V1 H20 E5\nX -1 3\n",
            "pimap-modseq 1 V1 H20 E5\nM 1  7 00000000000000ff\n",
            "pimap-modseq 1 V1 H20 E5\n\u{0}\n",
            "pimap-modseq 1 V1 H20 E5\nX 4294967296 3\n",
        ] {
            assert!(ModSeqFile::parse(bad).is_err(), "accepted {bad:?}");
        }
        // Arbitrary bytes: never a panic.
        let mut seed: u32 = 7;
        for len in 0..400 {
            let mut s = String::from("pimap-modseq 1 V1 H20 E5\n");
            push_noise(&mut s, &mut seed, len % 60, b"MX 0123456789abcdefH\nVE-");
            let _ = ModSeqFile::parse(&s);
        }
        assert_eq!(salvage_highest("pimap-modseq 9 H77 junk"), 77);
    }

    #[test]
    fn expunge_history_is_bounded_and_vanished_falls_back() {
        let mut f = ModSeqFile::new(1, 100);
        let all: Vec<MessageMeta> = (1..=10).map(|u| meta(u, 0, &[])).collect();
        f.apply(&all); // 101
        f.apply(&all[2..]); // 1, 2 expunged at 102
        f.apply(&all[3..]); // 3 expunged at 103
        assert_eq!(f.vanished_since(101, &[(1, 10)], 11), vec![(1, 3)]);
        assert_eq!(f.vanished_since(102, &[(1, 10)], 11), vec![(3, 3)]);
        assert_eq!(f.vanished_since(102, &[(1, 2)], 11), vec![]);
        f.trim_expunged(1);
        assert_eq!(f.expunge_floor, 102);
        assert_eq!(f.vanished_since(102, &[(1, 10)], 11), vec![(3, 3)]);
        // Older than the history: every missing UID of the range (known-uids) below UIDNEXT.
        assert_eq!(f.vanished_since(50, &[(1, 100)], 11), vec![(1, 3)]);
        assert_eq!(f.vanished_since(50, &[(2, 2), (5, 5)], 11), vec![(2, 2)]);
        let mut g = ModSeqFile::new(1, 5);
        g.apply(&[meta(2, 0, &[]), meta(7, 0, &[])]);
        assert_eq!(
            g.vanished_since(1, &[(1, u32::MAX)], 10),
            vec![(1, 1), (3, 6), (8, 9)]
        );
        assert_eq!(
            to_ranges(&[1, 2, 3, 7, u32::MAX]),
            vec![(1, 3), (7, 7), (u32::MAX, u32::MAX)]
        );
    }

    #[test]
    fn observe_persists_and_rebuild_never_goes_lower() {
        let d = super::super::test_dir("modseq");
        let msgs = vec![meta(1, 0, &[]), meta(2, 0, &[])];
        let mut a = ModSeqs::new(&d);
        a.observe(9, &msgs).unwrap();
        let h1 = a.highest();
        assert!(h1 > 1_600_000_000_000_000, "{h1}");
        let mut changed = msgs.clone();
        changed[0].flags.system = 1;
        a.observe(9, &changed).unwrap();
        assert_eq!(a.highest(), h1 + 1);
        // Another session sees the persisted values.
        let mut b = ModSeqs::new(&d);
        b.observe(9, &changed).unwrap();
        assert_eq!((b.highest(), b.get(1), b.get(2)), (h1 + 1, h1 + 1, h1));
        // Corrupt file: rebuilt above the old values, kept aside.
        std::fs::write(
            d.join(FILE),
            "pimap-modseq 1 V9 H999999999999999999 junk\nM x",
        )
        .unwrap();
        let mut c = ModSeqs::new(&d);
        c.observe(9, &changed).unwrap();
        assert!(c.highest() > 999_999_999_999_999_999);
        assert!(d.join("pimap-modseq.corrupt").exists());
        // Deleted file: rebuilt from the clock, still above h1.
        std::fs::remove_file(d.join(FILE)).unwrap();
        let mut e = ModSeqs::new(&d);
        e.observe(9, &changed).unwrap();
        assert!(e.highest() > h1 + 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A deterministic sequence of mailbox states: flag flips, deliveries, expunges.
    fn evolve(msgs: &mut Vec<MessageMeta>, seed: &mut u32, next_uid: &mut u32) {
        *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let r = (*seed >> 8) as usize;
        match r % 5 {
            0 => {
                msgs.push(meta(*next_uid, 0, &["$Forwarded"]));
                *next_uid += 1;
            }
            1 if msgs.len() > 3 => {
                msgs.remove(r / 5 % msgs.len());
            }
            _ => {
                let i = r / 5 % msgs.len().max(1);
                if let Some(m) = msgs.get_mut(i) {
                    m.flags.system ^= 1 << (r / 7 % 5);
                }
            }
        }
    }

    #[test]
    fn journal_replay_equals_compacted_snapshot_and_in_memory_apply() {
        let d = super::super::test_dir("modseq-journal");
        let mut msgs: Vec<MessageMeta> = (1..=20).map(|u| meta(u, 0, &[])).collect();
        let (mut seed, mut next_uid) = (3u32, 21u32);
        let mut writer = ModSeqs::new(&d);
        let mut follower = ModSeqs::new(&d);
        writer.observe(4, &msgs).unwrap();
        let mut model = writer.file().unwrap().clone();
        let mut inodes = std::collections::HashSet::new();
        let mut max_len = 0;
        for round in 0..600 {
            evolve(&mut msgs, &mut seed, &mut next_uid);
            // Alternate who records the change; the other one catches up from the tail.
            let (rec, other) = if round % 3 == 0 {
                (&mut follower, &mut writer)
            } else {
                (&mut writer, &mut follower)
            };
            rec.observe(4, &msgs).unwrap();
            assert!(model.apply(&msgs), "round {round}: nothing changed?");
            assert_eq!(rec.file(), Some(&model), "round {round}");
            other.observe(4, &msgs).unwrap();
            assert_eq!(other.file(), Some(&model), "round {round}");
            let text = std::fs::read_to_string(d.join(FILE)).unwrap();
            // The file (snapshot + journal) is the state; so is its compaction.
            let parsed = ModSeqFile::parse(&text).unwrap();
            assert_eq!(parsed, model, "round {round}");
            assert_eq!(ModSeqFile::parse(&parsed.serialize()).unwrap(), model);
            use std::os::unix::fs::MetadataExt;
            inodes.insert(std::fs::metadata(d.join(FILE)).unwrap().ino());
            max_len = max_len.max(text.len());
        }
        // Mostly appends: a handful of compactions, and the journal stays bounded.
        assert!(
            inodes.len() > 1 && inodes.len() < 20,
            "{} snapshots",
            inodes.len()
        );
        assert!(max_len < MIN_COMPACT as usize + 2 * 1024, "{max_len}");
        // A fresh session reads the same state.
        let mut fresh = ModSeqs::new(&d);
        fresh.observe(4, &msgs).unwrap();
        assert_eq!(fresh.file(), Some(&model));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn torn_journal_tail_is_ignored_then_cut_off() {
        let d = super::super::test_dir("modseq-torn");
        let mut msgs: Vec<MessageMeta> = (1..=5).map(|u| meta(u, 0, &[])).collect();
        let mut a = ModSeqs::new(&d);
        a.observe(2, &msgs).unwrap();
        msgs[1].flags.system = 1;
        a.observe(2, &msgs).unwrap();
        let good = a.file().unwrap().clone();
        let path = d.join(FILE);
        let clean = std::fs::read(&path).unwrap();
        let rec = Change {
            modseq: good.highest + 1,
            set: vec![(3, 77)],
            expunged: vec![4],
        }
        .encode();
        let mut bad_sum = rec.clone().into_bytes();
        if let Some(b) = bad_sum.iter_mut().rev().nth(2) {
            *b ^= 1; // a flipped bit in the body: checksum fails
        }
        for torn in [
            rec.as_bytes()[..rec.len() - 1].to_vec(), // lost its LF
            rec.as_bytes()[..9].to_vec(),
            vec![0u8; 40],
            bad_sum.clone(),
        ] {
            let mut bytes = clean.clone();
            bytes.extend_from_slice(&torn);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            assert_eq!(ModSeqFile::parse(&text).as_ref(), Ok(&good));
            std::fs::write(&path, &bytes).unwrap();
            // A reader ignores it and leaves the file alone.
            let mut r = ModSeqs::new(&d);
            r.observe(2, &msgs).unwrap();
            assert_eq!(r.file(), Some(&good));
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
            // The next writer cuts it off (a snapshot), so nothing follows torn bytes.
            let mut changed = msgs.clone();
            changed[0].flags.system = 8;
            r.observe(2, &changed).unwrap();
            assert_eq!(r.highest(), good.highest + 1);
            let after = std::fs::read_to_string(&path).unwrap();
            assert!(!after.contains("\nJ ") && !after.contains('\0'), "{after}");
            assert_eq!(Some(&ModSeqFile::parse(&after).unwrap()), r.file());
            std::fs::write(&path, &clean).unwrap();
        }
        // A damaged record that is not the last is corruption, not a torn write.
        let mut text = String::from_utf8(clean).unwrap();
        text.push_str(&String::from_utf8_lossy(&bad_sum));
        text.push_str(&rec.replace(
            &format!("H{}", good.highest + 1),
            &format!("H{}", good.highest + 2),
        ));
        assert!(ModSeqFile::parse(&text).is_err());
        // Arbitrary journal bytes: never a panic.
        let mut seed: u32 = 11;
        for len in 0..600 {
            let mut s = String::from("pimap-modseq 1 V1 H20 E5\nM 1 7 00000000000000ff\nJ ");
            push_noise(&mut s, &mut seed, len % 70, b"JMX :0123456789abcdefH\n");
            let _ = ModSeqFile::parse(&s);
            let _ = Change::decode(s.as_bytes());
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn corrupt_journal_rebuilds_above_every_value_it_shows() {
        let d = super::super::test_dir("modseq-corrupt-journal");
        let path = d.join(FILE);
        let msgs: Vec<MessageMeta> = (1..=3).map(|u| meta(u, 0, &[])).collect();
        // Values far above the clock, so only the salvaged ones can explain the result.
        let big = 5_000_000_000_000_000_000u64;
        let mut f = ModSeqFile::new(6, big);
        f.apply(&msgs);
        let mut text = f.serialize();
        let c1 = Change {
            modseq: big + 2,
            set: vec![(1, 5)],
            expunged: vec![],
        };
        let c2 = Change {
            modseq: big + 3,
            set: vec![(2, 5)],
            expunged: vec![3],
        };
        let mut c1_line = c1.encode();
        c1_line = c1_line.replacen("M1:", "M9:", 1); // checksum no longer matches
        text.push_str(&c1_line);
        text.push_str(&c2.encode());
        assert!(ModSeqFile::parse(&text).is_err());
        std::fs::write(&path, &text).unwrap();
        let mut s = ModSeqs::new(&d);
        s.observe(6, &msgs).unwrap();
        assert!(s.highest() > big + 3, "{} <= {}", s.highest(), big + 3);
        assert!(d.join(format!("{FILE}.corrupt")).exists());
        assert!(ModSeqFile::parse(&std::fs::read_to_string(&path).unwrap()).is_ok());
        // A session that already holds the state and finds a corrupt tail: re-read, and its
        // values never go down.
        let before = s.highest();
        let mut more = msgs.clone();
        more[0].flags.system = 2;
        let mut t = std::fs::read_to_string(&path).unwrap();
        t.push_str("J 3 0000000000000000 H1\nJ 3 0000000000000000 H2\n");
        std::fs::write(&path, t).unwrap();
        s.observe(6, &more).unwrap();
        assert!(s.highest() > before);
        assert_eq!(s.get(1), s.highest());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn concurrent_writers_append_every_change_once() {
        let d = super::super::test_dir("modseq-concurrent");
        let mailbox = std::sync::Arc::new(std::sync::Mutex::new(
            (1..=50)
                .map(|u| meta(u, 0, &[]))
                .collect::<Vec<MessageMeta>>(),
        ));
        let mut first = ModSeqs::new(&d);
        first.observe(3, &mailbox.lock().unwrap()).unwrap();
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let (d, mailbox) = (d.clone(), mailbox.clone());
                std::thread::spawn(move || {
                    let mut s = ModSeqs::new(&d);
                    let mut seen = Vec::new();
                    for i in 0..40u32 {
                        let now = {
                            let mut mb = mailbox.lock().unwrap();
                            if let Some(m) = mb.get_mut(((t * 40 + i) % 50) as usize) {
                                m.flags.system ^= 4;
                            }
                            mb.clone()
                        };
                        s.observe(3, &now).unwrap();
                        seen.push(s.highest());
                    }
                    seen
                })
            })
            .collect();
        for t in threads {
            let seen = t.join().unwrap();
            // A session's HIGHESTMODSEQ never goes down.
            assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        }
        // Whatever the interleaving (a session may record a state older than another's, and
        // the next look corrects it): the file parses, holds the last state once it is
        // observed, and then a fresh session finds nothing left to record.
        let last = mailbox.lock().unwrap().clone();
        let mut s = ModSeqs::new(&d);
        s.observe(3, &last).unwrap();
        let bytes = std::fs::read(d.join(FILE)).unwrap();
        let on_disk = ModSeqFile::parse(&String::from_utf8(bytes.clone()).unwrap()).unwrap();
        assert_eq!(s.file(), Some(&on_disk));
        assert!(!on_disk.clone().apply(&last));
        let mut fresh = ModSeqs::new(&d);
        fresh.observe(3, &last).unwrap();
        assert_eq!(fresh.file(), Some(&on_disk));
        assert_eq!(std::fs::read(d.join(FILE)).unwrap(), bytes);
        assert!(!d.join(format!("{FILE}.lock")).exists());
        assert!(!d.join(format!("{FILE}.corrupt")).exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Bytes this process has passed to write(2) so far (`wchar` in /proc/self/io).
    fn bytes_written() -> u64 {
        std::fs::read_to_string("/proc/self/io")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("wchar: ").map(|v| v.trim().parse().ok()))
            })
            .flatten()
            .unwrap_or(0)
    }

    /// Micro benchmark (run alone: `cargo test --lib modseq::tests::bench -- --ignored
    /// --nocapture --test-threads=1`): 10,000 messages, 100 single-message flag changes, each
    /// recorded by one session and picked up by a second one.
    #[test]
    #[ignore]
    fn bench_single_changes_in_a_big_mailbox() {
        let d = super::super::test_dir("modseq-bench");
        let mut msgs: Vec<MessageMeta> = (1..=10_000).map(|u| meta(u, 0, &[])).collect();
        let mut a = ModSeqs::new(&d);
        let mut b = ModSeqs::new(&d);
        a.observe(1, &msgs).unwrap();
        b.observe(1, &msgs).unwrap();
        let size = std::fs::metadata(d.join(FILE)).unwrap().len();
        let (w0, t0) = (bytes_written(), std::time::Instant::now());
        for i in 0..100usize {
            if let Some(m) = msgs.get_mut(i * 97) {
                m.flags.system ^= 1;
            }
            a.observe(1, &msgs).unwrap();
        }
        let (t_write, w_write) = (t0.elapsed(), bytes_written() - w0);
        let t1 = std::time::Instant::now();
        b.observe(1, &msgs).unwrap();
        let t_catch = t1.elapsed();
        let t2 = std::time::Instant::now();
        for _ in 0..100 {
            a.observe(1, &msgs).unwrap();
        }
        let t_noop = t2.elapsed();
        assert_eq!(a.highest(), b.highest());
        println!(
            "BENCH file after first observe {size} B; per change {:.3} ms, {} B written; \
             other session catching up on 100 changes {:.3} ms; unchanged observe {:.3} ms",
            t_write.as_secs_f64() * 10.0,
            w_write / 100,
            t_catch.as_secs_f64() * 1000.0,
            t_noop.as_secs_f64() * 10.0,
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
