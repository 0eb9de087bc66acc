//! The selected mailbox as this session sees it: message sequence numbers ⇄ UIDs, the flags
//! last reported, and the untagged EXISTS / RECENT / EXPUNGE / FETCH updates that bring the
//! client up to date with the disk (RFC 3501 §7.3.1, §7.4.1, §5.2); with CONDSTORE enabled
//! the FETCH updates carry MODSEQ (RFC 7162 §3.1.4.1), with QRESYNC enabled they carry UID and
//! expunges are reported as one `VANISHED` (RFC 7162 §3.2.10) instead of `EXPUNGE`s.

use super::HandlerError;
use crate::imap::types::{SeqNum, SequenceSet};
use crate::store::maildir::changes::{Change, Origin};
use crate::store::maildir::recent;
use crate::store::maildir::shared::{Open, Shared};
use crate::store::{flag, Flags, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};

/// One message as the client knows it: 8 bytes. Its flags live once, in the shared mailbox.
#[derive(Debug, Clone, Copy)]
pub struct ViewMsg {
    pub uid: u32,
    pub recent: bool,
}

/// Source of [`View`] origins (0 is "found on disk").
static NEXT_ORIGIN: AtomicU64 = AtomicU64::new(1);

pub struct View {
    /// The mailbox, shared with every other session of the process that has it open.
    pub shared: Arc<Shared>,
    /// Index = sequence number - 1.
    pub msgs: Vec<ViewMsg>,
    pub read_only: bool,
    /// RFC 5182 SEARCHRES saved result (UIDs).
    pub saved: Vec<u32>,
    /// CONDSTORE is enabled in this session: FETCH updates include MODSEQ.
    pub condstore: bool,
    /// QRESYNC is enabled: FETCH updates include UID, expunges are `VANISHED`.
    pub qresync: bool,
    /// IMAP4rev2 is enabled: no `\Recent`, no `RECENT` response (RFC 9051 Appendix E).
    pub rev2: bool,
    /// Keywords the client was told of by a FLAGS response (RFC 3501 §7.2.6); a FETCH may
    /// carry no other keyword. Never shrinks while the mailbox is selected.
    announced: Vec<String>,
    /// The generation whose keywords were last announced.
    announced_gen: Option<u64>,
    /// Where this view stands in the mailbox's change log: everything before it has been
    /// told (or is in `pending`).
    pos: u64,
    /// Messages expunged that the client was not told of yet (no EXPUNGE may be sent during
    /// FETCH, STORE or SEARCH: RFC 3501 §7.4.1), ascending UID, with their last flags. They
    /// keep their sequence numbers until then.
    pending: Vec<(u32, Flags)>,
    /// This view's own flag changes in the log (its client was told by STORE or FETCH).
    origin: Origin,
    /// The updating searches (RFC 5267 §4), which end with the view.
    pub context: super::context::Updates,
    /// What [`View::sync`] and [`View::announce_keywords`] wrote since the command began:
    /// the view counts it as told, so a failed command must still send it
    /// ([`View::take_told`]).
    told: Vec<u8>,
    /// THREAD's keys of messages already read, shared with the mailbox's other views
    /// (`session::thread`); `None` until the first THREAD.
    pub(super) thread_memo: Option<Arc<std::sync::Mutex<super::thread::Memo>>>,
}

impl View {
    pub fn new(shared: Arc<Shared>, read_only: bool) -> Result<View> {
        let (msgs, announced, pos) = {
            let mut st = shared.lock();
            st.mbox.refresh()?;
            let claimed = st.mbox.recent_claimed();
            let msgs: Vec<ViewMsg> = st
                .mbox
                .messages()
                .iter()
                .map(|m| ViewMsg {
                    uid: m.uid,
                    recent: recent::is_recent(claimed, m),
                })
                .collect();
            if !read_only {
                st.mbox.claim_recent(
                    msgs.last()
                        .map(|m| m.uid)
                        .unwrap_or(0)
                        .max(claimed.unwrap_or(0)),
                );
            }
            (msgs, st.mbox.keywords(), st.mbox.changes().end())
        };
        Ok(View {
            shared,
            msgs,
            read_only,
            saved: Vec::new(),
            condstore: false,
            qresync: false,
            rev2: false,
            announced,
            announced_gen: None,
            pos,
            pending: Vec::new(),
            origin: NEXT_ORIGIN.fetch_add(1, Ordering::Relaxed),
            context: Default::default(),
            told: Vec::new(),
            thread_memo: None,
        })
    }

    /// Lock the shared mailbox for one operation. Never held across opening another
    /// mailbox (see `store::maildir::shared`).
    pub fn lock(&self) -> MutexGuard<'_, Open> {
        self.shared.lock()
    }

    /// Set a message's flags through `st` (this view's mailbox, locked), as this view's
    /// change: its own later syncs do not report it again (its client is told by the command).
    pub fn set_flags(&self, st: &mut Open, uid: u32, flags: &Flags) -> Result<()> {
        st.mbox.set_origin(self.origin);
        let r = st.mbox.set_flags(uid, flags);
        st.mbox.set_origin(0);
        r
    }

    /// HIGHESTMODSEQ (RFC 7162 §3.1.2.1), the mod-sequences first brought up to date.
    pub fn highest_modseq(&self) -> Result<u64> {
        Ok(self.lock().modseqs()?.highest())
    }

    pub fn uid_validity(&self) -> u32 {
        self.lock().mbox.uid_validity()
    }

    pub fn uid_next(&self) -> u32 {
        self.lock().mbox.uid_next()
    }

    /// The mailbox's name.
    pub fn name(&self) -> String {
        self.lock().mbox.name().to_string()
    }

    /// The flags a message had when it was expunged, if the client was not told yet.
    pub fn pending_flags(&self, uid: u32) -> Option<&Flags> {
        self.pending
            .binary_search_by_key(&uid, |p| p.0)
            .ok()
            .and_then(|i| self.pending.get(i))
            .map(|p| &p.1)
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
        let shared = self.shared.clone();
        let st = shared.lock();
        self.announce_keywords_locked(&st, out);
        drop(st);
        self.told.extend_from_slice(out.get(start..).unwrap_or(&[]));
    }

    /// [`View::announce_keywords`] with the mailbox already locked: for a command that
    /// writes FLAGS from the shared state after its sync (another session may have added a
    /// keyword since), just before it does.
    pub fn announce_keywords_in(&mut self, st: &Open, out: &mut Vec<u8>) {
        let start = out.len();
        self.announce_keywords_locked(st, out);
        self.told.extend_from_slice(out.get(start..).unwrap_or(&[]));
    }

    fn announce_keywords_locked(&mut self, st: &Open, out: &mut Vec<u8>) {
        let generation = st.mbox.generation();
        if self.announced_gen == Some(generation) {
            return;
        }
        self.announced_gen = Some(generation);
        let mut grew = false;
        for k in st.mbox.keywords() {
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

    /// The view index of `uid`, if the client knows it.
    pub fn index_of(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// Bring the view up to date with the mailbox and append the untagged updates to `out`.
    pub fn sync(&mut self, out: &mut Vec<u8>, allow_expunge: bool) -> Result<()> {
        let start = out.len();
        let r = self.sync_inner(out, allow_expunge);
        if r.is_ok() {
            self.refresh_updates(out);
        }
        self.told.extend_from_slice(out.get(start..).unwrap_or(&[]));
        r
    }

    /// Report how the updating searches' results changed (RFC 5267 §4.3); a failure to
    /// evaluate leaves them as they were (the next sync looks again only at new changes).
    pub fn refresh_updates(&mut self, out: &mut Vec<u8>) {
        if let Err(HandlerError::No(e) | HandlerError::Bad(e)) = super::context::refresh(self, out)
        {
            log::warn!("updating search: {e}");
        }
    }

    /// What changed since `pos`, from the log: work in proportion to the changes. A view
    /// that fell behind the log compares every message (and repeats every message's flags,
    /// not knowing which it was told).
    fn sync_inner(&mut self, out: &mut Vec<u8>, allow_expunge: bool) -> Result<()> {
        let shared = self.shared.clone();
        let mut st = shared.lock();
        st.mbox.refresh()?;
        if self.condstore || self.qresync {
            st.modseqs()?;
        }
        self.announce_keywords_locked(&st, out);
        let mut changed: Vec<u32> = Vec::new();
        match st.mbox.changes().since(self.pos) {
            Some(entries) => {
                for c in entries {
                    match c {
                        Change::Expunged { uid, flags } => self.note_expunged(*uid, flags),
                        Change::Flags { uid, origin } => {
                            if self.index_of(*uid).is_some() {
                                self.context.touch(*uid);
                                if *origin != self.origin {
                                    changed.push(*uid);
                                }
                            }
                        }
                    }
                }
            }
            None => {
                for i in 0..self.msgs.len() {
                    let uid = self.msgs[i].uid;
                    if st.mbox.meta(uid).is_some() {
                        self.context.touch(uid);
                        changed.push(uid);
                    } else {
                        self.note_expunged(uid, &Flags::default());
                    }
                }
            }
        }
        self.pos = st.mbox.changes().end();
        if allow_expunge && !self.pending.is_empty() {
            self.tell_expunges(out);
        }
        changed.sort_unstable();
        changed.dedup();
        for uid in changed {
            let (Some(i), Some(meta)) = (self.index_of(uid), st.mbox.meta(uid)) else {
                continue; // expunged since (or still pending)
            };
            let mut items = String::new();
            if self.qresync {
                items.push_str(&format!("UID {uid} "));
            }
            let recent = self.msgs.get(i).is_some_and(|m| m.recent);
            items.push_str(&format!("FLAGS {}", flags_list(&meta.flags, recent)));
            if self.condstore {
                items.push_str(&format!(" MODSEQ ({})", st.modseqs()?.get(uid)));
            }
            out.extend_from_slice(format!("* {} FETCH ({items})\r\n", i + 1).as_bytes());
        }
        self.add_new(&st, out);
        Ok(())
    }

    fn note_expunged(&mut self, uid: u32, flags: &Flags) {
        if self.index_of(uid).is_none() {
            return;
        }
        if let Err(at) = self.pending.binary_search_by_key(&uid, |p| p.0) {
            self.pending.insert(at, (uid, flags.clone()));
        }
    }

    /// Send the pending expunges: `EXPUNGE`s (sequence numbers shift down after each, RFC
    /// 3501 §7.4.1), or one `VANISHED` with QRESYNC (RFC 7162 §3.2.10).
    /// Costs the expunges (a binary search each) plus the messages after the first one.
    fn tell_expunges(&mut self, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        let idx: Vec<usize> = pending.iter().filter_map(|p| self.index_of(p.0)).collect();
        let uids: Vec<u32> = pending.iter().map(|p| p.0).collect();
        // RFC 5267 §4.3: REMOVEFROM before the EXPUNGE that renumbers.
        super::context::expunged(self, &uids, out);
        if self.qresync {
            out.extend_from_slice(format!("* VANISHED {}\r\n", uid_ranges(&uids)).as_bytes());
        } else {
            // The k-th expunge (ascending) finds k earlier ones gone already.
            for (k, i) in idx.iter().enumerate() {
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1 - k).as_bytes());
            }
        }
        crate::store::maildir::remove_sorted(&mut self.msgs, &idx);
    }

    /// Messages above the last UID the view knows are new: EXISTS (and RECENT); they are
    /// `\Recent` for the first read-write session that sees them.
    fn add_new(&mut self, st: &Open, out: &mut Vec<u8>) {
        let last_uid = self.msgs.last().map(|m| m.uid).unwrap_or(0);
        let current = st.mbox.messages();
        let from = current.partition_point(|m| m.uid <= last_uid);
        let Some(new) = current.get(from..).filter(|n| !n.is_empty()) else {
            return;
        };
        let claimed = st.mbox.recent_claimed();
        let mut top = last_uid;
        for m in new {
            self.msgs.push(ViewMsg {
                uid: m.uid,
                recent: !self.rev2 && recent::is_recent(claimed, m),
            });
            self.context.touch(m.uid);
            top = m.uid;
        }
        if !self.read_only {
            st.mbox.claim_recent(top.max(claimed.unwrap_or(0)));
        }
        out.extend_from_slice(format!("* {} EXISTS\r\n", self.msgs.len()).as_bytes());
        if !self.rev2 {
            out.extend_from_slice(format!("* {} RECENT\r\n", self.recent()).as_bytes());
        }
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
