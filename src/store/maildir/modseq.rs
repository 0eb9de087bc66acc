//! Per-message mod-sequences (RFC 7162 CONDSTORE / QRESYNC) kept in `pimap-modseq`, a
//! pimap-owned file beside `dovecot-uidlist` that Dovecot ignores.
//!
//! Owns: the file format ([`ModSeqFile::parse`] / [`ModSeqFile::serialize`], pure), and
//! [`ModSeqs`], which compares what the mailbox holds now with what the file recorded and
//! hands out new mod-sequences for every difference. Never: changes a UID or UIDVALIDITY (those
//! belong to `dovecot-uidlist`), or panics on a damaged file (it is rebuilt, with a log line).
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
//! corrupt file still shows), and later changes count up by one from there. Within a mailbox a
//! value is therefore "at most one per microsecond since the file was created", so a rebuilt
//! file always starts above every value the old file could have handed out, without any other
//! persisted state — provided the clock does not go backwards across the rebuild (on a
//! Raspberry Pi without RTC, systemd-timesyncd restores the clock to at least the last shutdown
//! time before network time arrives). A convenient side effect: Dovecot's own small counters
//! are always below pimap's, so a client that moves from Dovecot to pimap re-fetches flags
//! instead of trusting stale ones. Messages present at a rebuild all get the rebuild value;
//! expunges from before it are unknown, which [`ModSeqFile::expunge_floor`] records: a client
//! whose mod-sequence is below the floor gets a VANISHED (EARLIER) of every UID of its known
//! range that does not exist now (RFC 7162 §3.2.5.1 allows reporting UIDs the client already
//! knows are gone).
//!
//! # File format (version 1, text, LF line ends)
//! ```text
//! pimap-modseq 1 V<uidvalidity> H<highest modseq> E<expunge floor>
//! M <uid> <modseq> <flags hash, 16 hex digits>      one per existing message, ascending UID
//! X <uid> <modseq>                                  one per remembered expunge, ascending UID
//! ```
//! The file is replaced atomically under its own dotlock `pimap-modseq.lock` (written into the
//! lock, fsynced, renamed over the file; [`super::lock::DotLock`]). Only the newest
//! [`MAX_EXPUNGED`] expunges are kept; dropping older ones raises the floor.

use super::lock::DotLock;
use super::read_optional;
use crate::store::{Flags, MessageMeta, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file's name inside the mailbox directory.
pub const FILE: &str = "pimap-modseq";
/// How many expunged UIDs are remembered for VANISHED (EARLIER).
pub const MAX_EXPUNGED: usize = 10_000;
/// RFC 7162 §7: mod-sequence values are at most 2^63 - 1.
pub const MAX_MODSEQ: u64 = i64::MAX as u64;

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

/// 64-bit FNV-1a hash of a message's flags (system bits and keywords, case-folded and sorted,
/// so the order of keywords on disk does not count as a change).
pub fn flags_hash(f: &Flags) -> u64 {
    let mut kws: Vec<String> = f.keywords.iter().map(|k| k.to_ascii_lowercase()).collect();
    kws.sort();
    kws.dedup();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    eat(f.system);
    for k in &kws {
        eat(b' ');
        k.bytes().for_each(&mut eat);
    }
    h
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

    /// Parse the file; any deviation from the format is an error naming the line (the caller
    /// rebuilds). Never panics.
    pub fn parse(text: &str) -> std::result::Result<ModSeqFile, String> {
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

    /// The file content (see the module doc for the format).
    pub fn serialize(&self) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "pimap-modseq 1 V{} H{} E{}\n",
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

    /// Bring the record up to date with `messages` (ascending UIDs): new messages and changed
    /// flags get a fresh mod-sequence (one more than the highest), vanished UIDs become
    /// expunges. Returns true if anything changed.
    pub fn apply(&mut self, messages: &[MessageMeta]) -> bool {
        let fresh = self.highest.saturating_add(1).min(MAX_MODSEQ);
        let mut changed = false;
        let mut present = std::collections::HashSet::with_capacity(messages.len());
        for m in messages {
            present.insert(m.uid);
            let h = flags_hash(&m.flags);
            match self.msgs.get_mut(&m.uid) {
                Some(rec) if rec.1 == h => {}
                Some(rec) => {
                    *rec = (fresh, h);
                    changed = true;
                }
                None => {
                    // A UID seen again after it was recorded as expunged (a file seen half-way
                    // through a rename) is simply present again, with a new value.
                    self.expunged.remove(&m.uid);
                    self.msgs.insert(m.uid, (fresh, h));
                    changed = true;
                }
            }
        }
        let gone: Vec<u32> = self
            .msgs
            .keys()
            .filter(|u| !present.contains(u))
            .copied()
            .collect();
        for uid in gone {
            self.msgs.remove(&uid);
            self.expunged.insert(uid, fresh);
            changed = true;
        }
        if changed {
            self.highest = fresh;
            self.trim_expunged(MAX_EXPUNGED);
        }
        changed
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

/// What identifies one version of the file on disk (it is replaced by rename, so a new
/// version has a new inode).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: md.ino(),
        len: md.len(),
        mtime: md.modified().ok(),
    })
}

/// The mod-sequences of one mailbox as this session knows them (touches disk).
pub struct ModSeqs {
    dir: PathBuf,
    state: Option<ModSeqFile>,
    stamp: Option<Stamp>,
}

impl ModSeqs {
    /// For the mailbox directory `dir`; nothing is read until [`ModSeqs::observe`].
    pub fn new(dir: &Path) -> ModSeqs {
        ModSeqs {
            dir: dir.to_path_buf(),
            state: None,
            stamp: None,
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
    /// every difference a new mod-sequence, persisting the result. Cheap when nothing changed
    /// and no other process rewrote the file.
    pub fn observe(&mut self, uid_validity: u32, messages: &[MessageMeta]) -> Result<()> {
        let path = self.dir.join(FILE);
        if let Some(st) = &self.state {
            if st.uid_validity == uid_validity
                && self.stamp.is_some()
                && stamp(&path) == self.stamp
                && !st.would_change(messages)
            {
                return Ok(());
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
        let mut file = self.read_or_rebuild(&path, uid_validity)?;
        let rebuilt = file.1;
        let changed = file.0.apply(messages);
        if changed || rebuilt {
            if let Some(lock) = lock {
                match lock.replace(file.0.serialize().as_bytes()) {
                    Ok(()) => {}
                    Err(e) => log::warn!("{}: {e}; mod-sequences not persisted", path.display()),
                }
            }
        } else {
            drop(lock);
        }
        self.stamp = stamp(&path);
        self.state = Some(file.0);
        Ok(())
    }

    /// The file as on disk, or a new record when it is missing, corrupt (logged, kept as
    /// `pimap-modseq.corrupt`) or for another UIDVALIDITY. The bool says it was rebuilt.
    fn read_or_rebuild(&self, path: &Path, uid_validity: u32) -> Result<(ModSeqFile, bool)> {
        let mut floor = self.state.as_ref().map(|s| s.highest).unwrap_or(0);
        if let Some(bytes) = read_optional(path)? {
            let text = String::from_utf8_lossy(&bytes);
            match ModSeqFile::parse(&text) {
                Ok(f) if f.uid_validity == uid_validity => return Ok((f, false)),
                Ok(f) => {
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
                    floor = floor.max(salvage_highest(&text));
                    let _ = std::fs::rename(path, self.dir.join(format!("{FILE}.corrupt")));
                }
            }
        }
        let base = now_micros().max(floor.saturating_add(1)).min(MAX_MODSEQ);
        Ok((ModSeqFile::new(uid_validity, base), true))
    }
}

impl ModSeqFile {
    /// Would [`ModSeqFile::apply`] change anything for `messages`?
    fn would_change(&self, messages: &[MessageMeta]) -> bool {
        if messages.len() != self.msgs.len() {
            return true;
        }
        messages.iter().any(|m| match self.msgs.get(&m.uid) {
            Some(rec) => rec.1 != flags_hash(&m.flags),
            None => true,
        })
    }
}

/// The `H` value of a damaged header, if it can still be read (so a rebuild stays above it).
fn salvage_highest(text: &str) -> u64 {
    text.split('\n')
        .next()
        .unwrap_or("")
        .split(' ')
        .filter_map(|w| w.strip_prefix('H'))
        .filter_map(|v| modseq(v).ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            for _ in 0..len % 60 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                s.push(b"MX 0123456789abcdefH\nVE-"[(seed >> 16) as usize % 24] as char);
            }
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
}
