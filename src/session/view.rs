//! The selected mailbox as this session sees it: message sequence numbers ⇄ UIDs, the flags
//! last reported, and the untagged EXISTS / RECENT / EXPUNGE / FETCH updates that bring the
//! client up to date with the disk (RFC 3501 §7.3.1, §7.4.1, §5.2); with CONDSTORE enabled
//! the FETCH updates carry MODSEQ (RFC 7162 §3.1.4.1), with QRESYNC enabled they carry UID and
//! expunges are reported as one `VANISHED` (RFC 7162 §3.2.10) instead of `EXPUNGE`s.

use crate::imap::types::{SeqNum, SequenceSet};
use crate::store::maildir::modseq::ModSeqs;
use crate::store::maildir::recent;
use crate::store::{flag, Flags, Mailbox, MessageMeta, Result};

/// One message as the client knows it.
#[derive(Debug, Clone)]
pub struct ViewMsg {
    pub uid: u32,
    pub flags: Flags,
    pub recent: bool,
}

pub struct View {
    pub mbox: Mailbox,
    /// Index = sequence number - 1.
    pub msgs: Vec<ViewMsg>,
    pub read_only: bool,
    /// RFC 5182 SEARCHRES saved result (UIDs).
    pub saved: Vec<u32>,
    /// Per-message mod-sequences (RFC 7162), refreshed by every [`View::sync`].
    pub modseqs: ModSeqs,
    /// CONDSTORE is enabled in this session: FETCH updates include MODSEQ.
    pub condstore: bool,
    /// QRESYNC is enabled: FETCH updates include UID, expunges are `VANISHED`.
    pub qresync: bool,
    /// IMAP4rev2 is enabled: no `\Recent`, no `RECENT` response (RFC 9051 Appendix E).
    pub rev2: bool,
    /// Keywords the client was told of by a FLAGS response (RFC 3501 §7.2.6); a FETCH may
    /// carry no other keyword. Never shrinks while the mailbox is selected.
    announced: Vec<String>,
    /// The [`Mailbox::generation`] this view last matched in full: every message of the
    /// mailbox is in the view with the flags the client was told, no expunge is pending, and
    /// every keyword was announced. While the mailbox keeps that generation a sync has
    /// nothing to compare, so a command in an unchanged mailbox costs O(1).
    synced: Option<u64>,
    /// The generation whose keywords were last announced.
    announced_gen: Option<u64>,
    /// What [`View::sync`] and [`View::announce_keywords`] wrote since the command began:
    /// the view counts it as told, so a failed command must still send it
    /// ([`View::take_told`]).
    told: Vec<u8>,
}

impl View {
    pub fn new(mut mbox: Mailbox, read_only: bool) -> Result<View> {
        mbox.refresh()?;
        let claimed = mbox.recent_claimed();
        let msgs: Vec<ViewMsg> = mbox
            .messages()
            .iter()
            .map(|m| ViewMsg {
                uid: m.uid,
                flags: m.flags.clone(),
                recent: recent::is_recent(claimed, m),
            })
            .collect();
        if !read_only {
            mbox.claim_recent(
                msgs.last()
                    .map(|m| m.uid)
                    .unwrap_or(0)
                    .max(claimed.unwrap_or(0)),
            );
        }
        let mut modseqs = mbox.mod_seqs();
        modseqs.observe(mbox.uid_validity(), mbox.messages())?;
        let announced = mbox.keywords();
        Ok(View {
            mbox,
            msgs,
            read_only,
            saved: Vec::new(),
            modseqs,
            condstore: false,
            qresync: false,
            rev2: false,
            announced,
            synced: None,
            announced_gen: None,
            told: Vec::new(),
        })
    }

    /// A new command begins: what earlier syncs told has been sent.
    pub fn begin_command(&mut self) {
        self.told.clear();
        if self.told.capacity() > 64 * 1024 {
            self.told.shrink_to(4096);
        }
    }

    /// The untagged responses this command's syncs produced (for a failed command, whose own
    /// output is discarded).
    pub fn take_told(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.told)
    }

    /// The `* FLAGS` and `* OK [PERMANENTFLAGS]` responses for the announced keywords (as
    /// SELECT sends them, and again whenever a keyword is added: RFC 3501 §7.2.6).
    pub fn flags_responses(&self) -> String {
        let mut flags: Vec<&str> = SYSTEM_FLAGS.iter().map(|(_, n)| *n).collect();
        flags.extend(self.announced.iter().map(String::as_str));
        let list = flags.join(" ");
        if self.read_only {
            format!("* FLAGS ({list})\r\n* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n")
        } else {
            format!("* FLAGS ({list})\r\n* OK [PERMANENTFLAGS ({list} \\*)] Flags permitted.\r\n")
        }
    }

    /// Announce keywords of the mailbox that the client was not told of yet with a new
    /// FLAGS (and PERMANENTFLAGS) response, before any FETCH that could carry them.
    pub fn announce_keywords(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        self.announce_keywords_untracked(out);
        self.told.extend_from_slice(out.get(start..).unwrap_or(&[]));
    }

    fn announce_keywords_untracked(&mut self, out: &mut Vec<u8>) {
        let generation = self.mbox.generation();
        if self.announced_gen == Some(generation) {
            return;
        }
        self.announced_gen = Some(generation);
        let mut grew = false;
        for k in self.mbox.keywords() {
            if !self.announced.iter().any(|a| a.eq_ignore_ascii_case(&k)) {
                self.announced.push(k);
                grew = true;
            }
        }
        if grew {
            out.extend_from_slice(self.flags_responses().as_bytes());
        }
    }

    /// Switch to IMAP4rev2 behaviour: `\Recent` no longer exists (RFC 9051 Appendix E).
    pub fn set_rev2(&mut self) {
        self.rev2 = true;
        for m in &mut self.msgs {
            m.recent = false;
        }
    }

    pub fn exists(&self) -> usize {
        self.msgs.len()
    }

    pub fn recent(&self) -> usize {
        self.msgs.iter().filter(|m| m.recent).count()
    }

    /// The store's current metadata for `uid`, if it still exists on disk.
    pub fn meta(&self, uid: u32) -> Option<&MessageMeta> {
        let all = self.mbox.messages();
        all.binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .and_then(|i| all.get(i))
    }

    /// Re-read the disk and append the untagged updates to `out`.
    pub fn sync(&mut self, out: &mut Vec<u8>, allow_expunge: bool) -> Result<()> {
        let start = out.len();
        let r = self.sync_inner(out, allow_expunge);
        self.told.extend_from_slice(out.get(start..).unwrap_or(&[]));
        r
    }

    fn sync_inner(&mut self, out: &mut Vec<u8>, allow_expunge: bool) -> Result<()> {
        self.mbox.refresh()?;
        let generation = self.mbox.generation();
        if self.synced == Some(generation) {
            return Ok(());
        }
        self.synced = None;
        self.modseqs
            .observe(self.mbox.uid_validity(), self.mbox.messages())?;
        self.announce_keywords_untracked(out);
        let current = self.mbox.messages();
        let present = |uid: u32| current.binary_search_by_key(&uid, |m| m.uid).ok();
        if allow_expunge {
            let mut seq = 1usize;
            let mut kept = Vec::with_capacity(self.msgs.len());
            let mut vanished = Vec::new();
            for m in self.msgs.drain(..) {
                if present(m.uid).is_some() {
                    kept.push(m);
                    seq += 1;
                } else if self.qresync {
                    vanished.push(m.uid);
                } else {
                    // Sequence numbers shift down after each EXPUNGE (RFC 3501 §7.4.1).
                    out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
                }
            }
            self.msgs = kept;
            if !vanished.is_empty() {
                // RFC 7162 §3.2.10: one VANISHED (without EARLIER) replaces the EXPUNGEs.
                out.extend_from_slice(
                    format!("* VANISHED {}\r\n", uid_ranges(&vanished)).as_bytes(),
                );
            }
        }
        let mut matched = 0usize;
        for (i, m) in self.msgs.iter_mut().enumerate() {
            if let Some(ix) = present(m.uid) {
                matched += 1;
                let cur = &current[ix];
                if cur.flags != m.flags {
                    m.flags = cur.flags.clone();
                    let mut items = String::new();
                    if self.qresync {
                        items.push_str(&format!("UID {} ", m.uid));
                    }
                    items.push_str(&format!("FLAGS {}", flags_list(&m.flags, m.recent)));
                    if self.condstore {
                        items.push_str(&format!(" MODSEQ ({})", self.modseqs.get(m.uid)));
                    }
                    out.extend_from_slice(format!("* {} FETCH ({items})\r\n", i + 1).as_bytes());
                }
            }
        }
        // Every view message is still there (no expunge pending) and, with the new ones
        // below, every mailbox message is in the view (UIDs only grow, so none was skipped).
        let complete = matched == self.msgs.len();
        let last_uid = self.msgs.last().map(|m| m.uid).unwrap_or(0);
        let before = self.msgs.len();
        if current.last().map(|m| m.uid > last_uid).unwrap_or(false) {
            // New messages are \Recent for the first read-write session that sees them.
            let claimed = self.mbox.recent_claimed();
            let mut top = last_uid;
            for m in current.iter().filter(|m| m.uid > last_uid) {
                self.msgs.push(ViewMsg {
                    uid: m.uid,
                    flags: m.flags.clone(),
                    recent: !self.rev2 && recent::is_recent(claimed, m),
                });
                top = m.uid;
            }
            if !self.read_only {
                self.mbox.claim_recent(top.max(claimed.unwrap_or(0)));
            }
        }
        if self.msgs.len() != before {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.msgs.len()).as_bytes());
            if !self.rev2 {
                out.extend_from_slice(format!("* {} RECENT\r\n", self.recent()).as_bytes());
            }
        }
        if complete && self.msgs.len() == current.len() {
            self.synced = Some(generation);
        }
        Ok(())
    }

    /// Resolve a set to view indices (ascending, deduplicated). `uid` selects UID semantics;
    /// numbers outside the view are ignored for UIDs and are an error for sequence numbers.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> std::result::Result<Vec<usize>, String> {
        let ranges = match set {
            SequenceSet::Saved => {
                let mut idx: Vec<usize> = self
                    .saved
                    .iter()
                    .filter_map(|u| self.msgs.binary_search_by_key(u, |m| m.uid).ok())
                    .collect();
                idx.sort_unstable();
                idx.dedup();
                return Ok(idx);
            }
            SequenceSet::Ranges(r) => r,
        };
        let mut out = Vec::new();
        if uid {
            let star = self.msgs.last().map(|m| m.uid).unwrap_or(0);
            for r in ranges {
                let a = val(r.start, star);
                let b = val(r.end, star);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                // RFC 3501 §6.4.8: `n:*` with n > largest UID still matches the largest.
                let lo_ix = self.msgs.partition_point(|m| m.uid < lo);
                let hi_ix = self.msgs.partition_point(|m| m.uid <= hi);
                if lo_ix < hi_ix {
                    out.extend(lo_ix..hi_ix);
                } else if (matches!(r.start, SeqNum::Star) || matches!(r.end, SeqNum::Star))
                    && !self.msgs.is_empty()
                {
                    out.push(self.msgs.len() - 1);
                }
            }
        } else {
            let n = self.msgs.len() as u32;
            for r in ranges {
                if n == 0 {
                    return Err("No messages in the mailbox".into());
                }
                let a = val(r.start, n);
                let b = val(r.end, n);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                if lo == 0 || hi > n {
                    return Err(format!(
                        "Invalid messageset: {} is beyond the {n} messages",
                        hi.max(lo)
                    ));
                }
                out.extend((lo as usize - 1)..(hi as usize));
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// Ascending UIDs as a compact `1:3,7` set.
pub fn uid_ranges(uids: &[u32]) -> String {
    ranges_text(&crate::store::maildir::modseq::to_ranges(uids))
}

/// `(a, b)` ranges as `a:b,c` text.
pub fn ranges_text(rs: &[(u32, u32)]) -> String {
    rs.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn val(n: SeqNum, star: u32) -> u32 {
    match n {
        SeqNum::Value(v) => v,
        SeqNum::Star => star,
    }
}

/// `(\Seen \Flagged kw)` for FETCH FLAGS.
pub fn flags_list(f: &Flags, recent: bool) -> String {
    let mut v: Vec<&str> = Vec::new();
    for (bit, name) in SYSTEM_FLAGS {
        if f.system & bit != 0 {
            v.push(name);
        }
    }
    if recent {
        v.push("\\Recent");
    }
    for k in &f.keywords {
        v.push(k);
    }
    format!("({})", v.join(" "))
}

pub const SYSTEM_FLAGS: [(u8, &str); 5] = [
    (flag::ANSWERED, "\\Answered"),
    (flag::FLAGGED, "\\Flagged"),
    (flag::DELETED, "\\Deleted"),
    (flag::SEEN, "\\Seen"),
    (flag::DRAFT, "\\Draft"),
];
