//! The `pimap-modseq` file format and its state, pure (no disk): parsing the snapshot and the
//! journal, serializing, the diff between the state and the messages a mailbox holds now, and
//! applying a change. The layout is described in the parent module.

use super::{MAX_EXPUNGED, MAX_MODSEQ};
use crate::store::{Flags, MessageMeta};
use std::collections::BTreeMap;

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
    pub(super) fn parse_bytes(
        bytes: &[u8],
    ) -> std::result::Result<(ModSeqFile, usize, JournalRead), String> {
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

pub(super) fn modseq(s: &str) -> std::result::Result<u64, String> {
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
