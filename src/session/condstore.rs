//! CONDSTORE and QRESYNC (RFC 7162) in the session: ENABLE (RFC 5161), turning CONDSTORE on
//! by a CONDSTORE-enabling command, the QRESYNC part of SELECT / EXAMINE, `VANISHED (EARLIER)`,
//! and STATUS HIGHESTMODSEQ.
//!
//! Owns: which extensions this session has enabled ([`Enabled`]) and the responses that only
//! exist because of them. The mod-sequences themselves live in the store
//! (`store::maildir::modseq`, one `pimap-modseq` file per mailbox); the per-command parts sit
//! with their commands (MODSEQ / CHANGEDSINCE in `fetch`, UNCHANGEDSINCE in `message`, the
//! MODSEQ search key in `search`, unsolicited FETCH / VANISHED in `view`). Never: hands out a
//! mod-sequence itself.

use super::view::{flags_list, ranges_text, View};
use super::{Action, HandlerError, Output, Session, State};
use crate::imap::types::{QresyncParams, SeqNum, SequenceSet};
use crate::store::maildir::modseq::ModSeqFile;
use crate::store::maildir::shared::Open;
use crate::store::Result as StoreResult;

/// Extensions this session has enabled (RFC 5161 ENABLE, or implicitly, RFC 7162 §3.1).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
    /// RFC 9051 IMAP4rev2 behaviour (see `rev2`).
    pub rev2: bool,
    /// RFC 6855 UTF8=ACCEPT: UTF-8 mailbox names, like rev2 (see `rev2`).
    pub utf8: bool,
}

impl Enabled {
    /// Mailbox names are UTF-8 on the wire (RFC 9051 §5.1, RFC 6855 §3).
    pub fn utf8_names(&self) -> bool {
        self.rev2 || self.utf8
    }
}

impl Session {
    /// `ENABLE cap...` (RFC 5161 §3.1): names pimap does not know are ignored; the `ENABLED`
    /// response lists the requested names that are enabled now. QRESYNC implies CONDSTORE
    /// (RFC 7162 §3.2.3).
    pub(super) fn enable(&mut self, tag: &str, caps: &[String]) -> Result<Output, HandlerError> {
        let mut out = Vec::new();
        let mut listed: Vec<&'static str> = Vec::new();
        let mut condstore = false;
        for c in caps {
            let name = if c.eq_ignore_ascii_case("CONDSTORE") {
                condstore = true;
                "CONDSTORE"
            } else if c.eq_ignore_ascii_case("QRESYNC") {
                condstore = true;
                self.enabled.qresync = true;
                "QRESYNC"
            } else if c.eq_ignore_ascii_case("IMAP4rev2") {
                // RFC 9051 §6.3.1.
                self.enabled.rev2 = true;
                "IMAP4rev2"
            } else if c.eq_ignore_ascii_case("UTF8=ACCEPT") {
                // RFC 6855 §3.
                self.enabled.utf8 = true;
                "UTF8=ACCEPT"
            } else {
                continue;
            };
            if !listed.contains(&name) {
                listed.push(name);
            }
        }
        let mut pre = Vec::new();
        if condstore {
            self.enable_condstore(&mut pre);
        }
        self.apply_enabled();
        out.extend_from_slice(b"* ENABLED");
        for n in &listed {
            out.extend_from_slice(format!(" {n}").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&pre);
        out.extend_from_slice(format!("{tag} OK ENABLE completed.\r\n").as_bytes());
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }

    /// A CONDSTORE-enabling command ran (RFC 7162 §3.1). The first time, with a mailbox
    /// selected, the client learns the HIGHESTMODSEQ it has not seen in SELECT (§3.1.2.1).
    pub(super) fn enable_condstore(&mut self, out: &mut Vec<u8>) {
        if self.enabled.condstore {
            return;
        }
        self.enabled.condstore = true;
        if let State::Selected { view, .. } = &mut self.state {
            view.condstore = true;
            match view.highest_modseq() {
                Ok(h) => out
                    .extend_from_slice(format!("* OK [HIGHESTMODSEQ {h}] Highest\r\n").as_bytes()),
                Err(e) => log::warn!("{}: mod-sequences: {e}", self.peer),
            }
        }
    }

    /// Copy the enabled extensions into the selected mailbox's view.
    pub(super) fn apply_enabled(&mut self) {
        let e = self.enabled;
        if let State::Selected { view, .. } = &mut self.state {
            view.condstore = e.condstore;
            view.qresync = e.qresync;
            if e.rev2 {
                view.set_rev2();
            }
        }
    }

    pub(super) fn condstore_enabled(&self) -> bool {
        self.enabled.condstore
    }

    pub(super) fn qresync_enabled(&self) -> bool {
        self.enabled.qresync
    }
}

/// The QRESYNC part of a SELECT / EXAMINE response (RFC 7162 §3.2.5.1), sent after the usual
/// untagged responses: when the client's UIDVALIDITY is current, `VANISHED (EARLIER)` for the
/// UIDs (of its known UIDs, or all) expunged since its mod-sequence, then
/// `FETCH (UID FLAGS MODSEQ)` for every message changed since.
pub(super) fn qresync_select(
    view: &mut View,
    p: &QresyncParams,
    out: &mut Vec<u8>,
) -> StoreResult<()> {
    let shared = view.shared.clone();
    let mut st = shared.lock();
    // A keyword added since the view was made is announced before a FETCH carries it.
    view.announce_keywords_in(&st, out);
    if p.uid_validity != st.mbox.uid_validity() {
        return Ok(()); // §3.2.5.1: a stale UIDVALIDITY gets a plain SELECT.
    }
    // seq-match-data (§3.2.5.2) only helps a server whose expunge history is incomplete to
    // send fewer UIDs; pimap either answers from its history or, below the expunge floor,
    // reports every missing UID of the known range, which is always correct. It is ignored.
    let known = match &p.known_uids {
        Some(set) => set_ranges(set, u32::MAX),
        None => vec![(1, u32::MAX)],
    };
    vanished_earlier(view, &mut st, p.mod_seq, &known, out)?;
    let (modseqs, mbox) = st.observed()?;
    for (i, m) in view.msgs.iter().enumerate() {
        let ms = modseqs.get(m.uid);
        let Some(meta) = mbox.meta(m.uid) else {
            continue;
        };
        if ms > p.mod_seq {
            out.extend_from_slice(
                format!(
                    "* {} FETCH (UID {} FLAGS {} MODSEQ ({ms}))\r\n",
                    i + 1,
                    m.uid,
                    flags_list(&meta.flags, m.recent)
                )
                .as_bytes(),
            );
        }
    }
    Ok(())
}

/// `* VANISHED (EARLIER) uids` for the UIDs of `within` expunged after `since` (nothing when
/// there are none; RFC 7162 §3.2.5.1, §3.2.6).
pub(super) fn vanished_earlier(
    view: &View,
    st: &mut Open,
    since: u64,
    within: &[(u32, u32)],
    out: &mut Vec<u8>,
) -> StoreResult<()> {
    let (modseqs, mbox) = st.observed()?;
    let Some(f) = modseqs.file() else {
        return Ok(());
    };
    let mut gone = vanished_within(f, since, within, mbox.uid_next());
    // Never report a UID the client still sees in this session's view.
    gone = subtract_present(&gone, view);
    if !gone.is_empty() {
        out.extend_from_slice(
            format!("* VANISHED (EARLIER) {}\r\n", ranges_text(&gone)).as_bytes(),
        );
    }
    Ok(())
}

/// The UIDs of `within` (ascending, merged) expunged after `since`. The store is asked once
/// for the whole UID space and the answer intersected with `within` in one merge pass: asking
/// it with the client's ranges costs (expunge history × ranges), and a 64 KiB command line
/// holds ~10,000 ranges against up to `MAX_EXPUNGED` history entries (~10^8 steps per
/// command). Both ways give the same UIDs.
fn vanished_within(
    f: &ModSeqFile,
    since: u64,
    within: &[(u32, u32)],
    uid_next: u32,
) -> Vec<(u32, u32)> {
    if within.is_empty() {
        return Vec::new();
    }
    let mut all = f.vanished_since(since, &[(1, u32::MAX)], uid_next);
    all.sort_unstable();
    intersect(&all, within)
}

/// Intersection of two ascending lists of disjoint `(lo, hi)` ranges, in O(a + b).
fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while let (Some(&(a0, a1)), Some(&(b0, b1))) = (a.get(i), b.get(j)) {
        let (lo, hi) = (a0.max(b0), a1.min(b1));
        if lo <= hi {
            match out.last_mut() {
                Some((_, ph)) if lo <= ph.saturating_add(1) => *ph = (*ph).max(hi),
                _ => out.push((lo, hi)),
            }
        }
        if a1 < b1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Remove the UIDs that are in the view (not yet reported expunged) from `rs`.
fn subtract_present(rs: &[(u32, u32)], view: &View) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(a, b) in rs {
        let mut next = a;
        let lo = view.msgs.partition_point(|m| m.uid < a);
        for m in view.msgs.get(lo..).unwrap_or(&[]) {
            if m.uid > b {
                break;
            }
            if m.uid > next {
                out.push((next, m.uid - 1));
            }
            next = m.uid.saturating_add(1);
        }
        if next <= b && !(next == u32::MAX && view.msgs.last().is_some_and(|m| m.uid == u32::MAX)) {
            out.push((next, b));
        }
    }
    out
}

/// A UID set as ascending, merged `(lo, hi)` ranges, `*` standing for `star`.
pub(super) fn set_ranges(set: &SequenceSet, star: u32) -> Vec<(u32, u32)> {
    let SequenceSet::Ranges(rs) = set else {
        return Vec::new();
    };
    let v = |n: SeqNum| match n {
        SeqNum::Value(v) => v,
        SeqNum::Star => star,
    };
    let mut out: Vec<(u32, u32)> = rs
        .iter()
        .map(|r| {
            let (a, b) = (v(r.start), v(r.end));
            if a <= b {
                (a, b)
            } else {
                (b, a)
            }
        })
        .collect();
    out.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in out {
        match merged.last_mut() {
            Some((_, pb)) if a <= pb.saturating_add(1) => *pb = (*pb).max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::types::SeqRange;

    #[test]
    fn ranges_of_sets() {
        let r = |a, b| SeqRange { start: a, end: b };
        let set = SequenceSet::Ranges(vec![
            r(SeqNum::Value(7), SeqNum::Value(5)),
            r(SeqNum::Value(1), SeqNum::Value(1)),
            r(SeqNum::Value(8), SeqNum::Star),
            r(SeqNum::Value(2), SeqNum::Value(2)),
        ]);
        assert_eq!(set_ranges(&set, 20), vec![(1, 2), (5, 20)]);
        assert_eq!(set_ranges(&SequenceSet::Saved, 20), vec![]);
    }

    #[test]
    fn intersect_ranges() {
        assert_eq!(
            intersect(&[(1, 10)], &[(3, 4), (6, 20)]),
            vec![(3, 4), (6, 10)]
        );
        assert_eq!(intersect(&[(1, 2), (5, 5)], &[(3, 4)]), vec![]);
        assert_eq!(
            intersect(&[(1, u32::MAX)], &[(u32::MAX, u32::MAX)]),
            vec![(u32::MAX, u32::MAX)]
        );
        assert_eq!(intersect(&[], &[(1, 2)]), vec![]);
    }

    /// A file with `n` messages (odd UIDs kept, even UIDs expunged at increasing modseqs).
    fn history(n: u32) -> ModSeqFile {
        let mut f = ModSeqFile::new(1, 100);
        for u in 1..=n {
            if u % 2 == 1 {
                f.msgs.insert(u, (100, 0));
            } else {
                f.expunged.insert(u, 100 + u64::from(u));
            }
        }
        f.highest = 100 + u64::from(n);
        f.expunge_floor = 0;
        f
    }

    #[test]
    fn vanished_within_matches_the_store() {
        // Same answer as asking the store with the client's ranges, in both branches (inside
        // the expunge history and below its floor).
        let mut f = history(40);
        let sets: [&[(u32, u32)]; 5] = [
            &[(1, u32::MAX)],
            &[(2, 2), (4, 9), (30, 35)],
            &[(41, 100)],
            &[(u32::MAX, u32::MAX)],
            &[],
        ];
        for floor in [0, 120] {
            f.expunge_floor = floor;
            for since in [0, 99, 110, 139, 140, 1000] {
                for w in sets {
                    assert_eq!(
                        vanished_within(&f, since, w, 41),
                        f.vanished_since(since, w, 41),
                        "floor {floor} since {since} within {w:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn vanished_within_many_client_ranges_is_linear() {
        // 10,000 history entries against 10,000 single-UID client ranges (what a 64 KiB
        // QRESYNC / UID FETCH line can carry): one merge pass, not 10^8 range tests.
        let f = history(20_000);
        let within: Vec<(u32, u32)> = (0..10_000u32).map(|k| (2 * k + 1, 2 * k + 1)).collect();
        let t = std::time::Instant::now();
        for _ in 0..20 {
            assert_eq!(vanished_within(&f, 0, &within, 20_001), vec![]);
        }
        let all: Vec<(u32, u32)> = (1..=10_000u32).map(|k| (2 * k, 2 * k)).collect();
        assert_eq!(vanished_within(&f, 0, &all, 20_001).len(), 10_000);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
}
