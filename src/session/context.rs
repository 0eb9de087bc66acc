//! Updating searches: `SEARCH` / `SORT ... RETURN (UPDATE)` and CANCELUPDATE (RFC 5267 §4,
//! CONTEXT=SEARCH and CONTEXT=SORT).
//!
//! The selected [`View`] keeps each updating search's current result. Its syncs mark the
//! messages whose match may have changed (flag changes from any session, new messages), and
//! [`refresh`] evaluates only those, so an update costs the changes, not the mailbox: a
//! NOOP in a 100,000-message mailbox with an updating search reads nothing it did not have
//! to. It reports the differences as `* ESEARCH (TAG "t") [UID] ADDTO (pos set)` after the
//! EXISTS that announced new messages, and `REMOVEFROM (pos set)` ([`expunged`]) just before
//! the EXPUNGEs of removed messages, as RFC 5267 §4.3 orders them. SEARCH results are in
//! ascending order, so their position is 0 (the client knows where they go), as Dovecot
//! sends; SORT's positions are 1-based places in the sorted result.
//!
//! The searches end with CANCELUPDATE or when the mailbox is closed or another selected
//! (the view goes). A session keeps at most [`MAX_UPDATES`]; beyond that the search is
//! answered without updates and an untagged `NO [NOUPDATE "tag"]` says so (RFC 5267 §4.2, as
//! Dovecot does past its own limit).

use super::search::{compress_set, scan};
use super::sort::{compare_values, values, Value};
use super::view::View;
use super::{Action, HandlerError, Output, Session};
use crate::imap::types::{
    SearchKey, SearchReturn, SeqNum, SeqRange, SequenceSet, SortCriterion, SortKey,
};
use std::cmp::Ordering;

/// Most updating searches one session keeps at once: each costs an evaluation of every
/// changed message per sync, and a copy of its result (for SORT with the keys: some 60 bytes
/// a message). Dovecot's bound too; clients use one or two.
pub const MAX_UPDATES: usize = 10;

/// One updating search.
pub struct Update {
    tag: String,
    uid: bool,
    criteria: SearchKey,
    kind: Kind,
}

/// The result an update is kept against.
enum Kind {
    /// SEARCH: the matching UIDs, ascending.
    Search(Vec<u32>),
    /// SORT: the sort program and the matching UIDs in sorted order, with their keys; and
    /// the same UIDs ascending, to tell membership by binary search.
    Sort {
        program: Vec<SortCriterion>,
        sorted: Vec<(Vec<Value>, u32)>,
        members: Vec<u32>,
    },
}

impl Update {
    /// An updating SEARCH whose current result is `uids`.
    pub fn search(tag: &str, uid: bool, criteria: SearchKey, mut uids: Vec<u32>) -> Update {
        uids.sort_unstable();
        Update {
            tag: tag.to_string(),
            uid,
            criteria,
            kind: Kind::Search(uids),
        }
    }

    /// An updating SORT whose current result is `sorted` (keys and UID, in order).
    pub fn sort(
        tag: &str,
        uid: bool,
        criteria: SearchKey,
        program: Vec<SortCriterion>,
        sorted: Vec<(Vec<Value>, u32)>,
    ) -> Update {
        let mut members: Vec<u32> = sorted.iter().map(|s| s.1).collect();
        members.sort_unstable();
        Update {
            tag: tag.to_string(),
            uid,
            criteria,
            kind: Kind::Sort {
                program,
                sorted,
                members,
            },
        }
    }
}

/// The view's updating searches and the messages to look at again.
#[derive(Default)]
pub struct Updates {
    list: Vec<Update>,
    /// UIDs whose match may have changed since the last [`refresh`].
    dirty: Vec<u32>,
}

impl Updates {
    /// Any updating search is active.
    pub fn active(&self) -> bool {
        !self.list.is_empty()
    }

    /// Message `uid` changed (flags) or arrived: look at it again on the next refresh.
    pub fn touch(&mut self, uid: u32) {
        if self.active() {
            self.dirty.push(uid);
        }
    }

    /// Keep `u`; false (and nothing kept) when the session has [`MAX_UPDATES`] already.
    fn add(&mut self, u: Update) -> bool {
        if self.list.len() >= MAX_UPDATES {
            return false;
        }
        self.list.push(u);
        true
    }
}

impl Session {
    /// BAD for an updating search whose tag an active one has (the client could not tell
    /// their updates apart), as Dovecot answers; before the search runs.
    pub(super) fn check_update_tag(
        &mut self,
        tag: &str,
        returns: Option<&[SearchReturn]>,
    ) -> Result<(), HandlerError> {
        if !returns.is_some_and(|r| r.contains(&SearchReturn::Update)) {
            return Ok(());
        }
        if self.view_mut()?.context.list.iter().any(|u| u.tag == tag) {
            return Err(HandlerError::Bad("Duplicate search update tag".into()));
        }
        Ok(())
    }

    /// Keep an updating search after its initial answer (in `out` from `answer_at`), or say
    /// it will not be updated (RFC 5267 §4.2), before that answer as Dovecot says it.
    pub(super) fn start_update(
        &mut self,
        u: Update,
        out: &mut Vec<u8>,
        answer_at: usize,
    ) -> Result<(), HandlerError> {
        let tag = u.tag.clone();
        let view = self.view_mut()?;
        let u = Update {
            criteria: frozen(&u.criteria, view),
            ..u
        };
        if !view.context.add(u) {
            let no = format!(
                "* NO [NOUPDATE \"{}\"] Too many updating searches (at most {MAX_UPDATES}).\r\n",
                quoted(&tag)
            );
            let at = answer_at.min(out.len());
            out.splice(at..at, no.into_bytes());
        }
        Ok(())
    }

    /// `CANCELUPDATE "tag" ...` (RFC 5267 §4.3): end those searches; NO when one of the
    /// tags names none (the others are cancelled all the same, as Dovecot does).
    pub(super) fn cancel_update(
        &mut self,
        tag: &str,
        tags: &[String],
    ) -> Result<Output, HandlerError> {
        let updates = &mut self.view_mut()?.context;
        let known = tags
            .iter()
            .all(|t| updates.list.iter().any(|u| &u.tag == t));
        updates.list.retain(|u| !tags.contains(&u.tag));
        if updates.list.is_empty() {
            updates.dirty.clear();
        }
        if !known {
            return Err(HandlerError::No("Unknown tag".into()));
        }
        Ok(Output {
            bytes: format!("{tag} OK CANCELUPDATE completed.\r\n").into_bytes(),
            action: Action::Continue,
        })
    }
}

/// `k` with the keys that name messages by position (sequence numbers, `*`, `$`) turned
/// into the UIDs they name now: an updating search keeps meaning the messages it meant, so
/// an expunge that renumbers or a new last message changes no result (Dovecot reports none
/// either). Costs one pass over the view, once.
fn frozen(k: &SearchKey, view: &View) -> SearchKey {
    use SearchKey as K;
    let uids_where = |f: &dyn Fn(usize, u32) -> bool| {
        let uids: Vec<u32> = (view.msgs.iter().enumerate())
            .filter(|(i, m)| f(*i, m.uid))
            .map(|(_, m)| m.uid)
            .collect();
        K::Uid(uid_set(&uids))
    };
    let n = view.msgs.len() as u32;
    let star = view.msgs.last().map_or(0, |m| m.uid);
    match k {
        K::SequenceSet(SequenceSet::Saved) | K::Uid(SequenceSet::Saved) => {
            uids_where(&|_, uid| view.saved.contains(&uid))
        }
        K::SequenceSet(set) => uids_where(&|i, _| set.contains(i as u32 + 1, n)),
        K::Uid(set) => uids_where(&|_, uid| set.contains(uid, star)),
        K::Not(k) => K::Not(Box::new(frozen(k, view))),
        K::Or(v) => K::Or(v.iter().map(|k| frozen(k, view)).collect()),
        K::And(v) => K::And(v.iter().map(|k| frozen(k, view)).collect()),
        other => other.clone(),
    }
}

/// Ascending UIDs as a set of ranges.
fn uid_set(uids: &[u32]) -> SequenceSet {
    let ranges = crate::store::maildir::modseq::to_ranges(uids);
    SequenceSet::Ranges(
        ranges
            .into_iter()
            .map(|(a, b)| SeqRange {
                start: SeqNum::Value(a),
                end: SeqNum::Value(b),
            })
            .collect(),
    )
}

/// A tag inside a quoted string: `"` and `\` escaped (tags have neither, but a search tag
/// from the wire is checked anyway).
fn quoted(tag: &str) -> String {
    tag.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The `WORD (pos set)` items telling that `items` (position, UID) were added or removed:
/// one for a SEARCH (position 0, the numbers as one set), one per message for a SORT.
fn items(view: &View, u: &Update, word: &str, items: &[(usize, u32)]) -> Vec<String> {
    if items.is_empty() {
        return Vec::new();
    }
    match u.kind {
        Kind::Search(_) => {
            let nums: Vec<u32> = items.iter().map(|i| number(view, u, i.1)).collect();
            vec![format!("{word} (0 {})", compress_set(&nums))]
        }
        Kind::Sort { .. } => items
            .iter()
            .map(|&(pos, uid)| format!("{word} ({pos} {})", number(view, u, uid)))
            .collect(),
    }
}

/// `* ESEARCH (TAG "t") [UID] item...`: a SEARCH's items on one line (REMOVEFROM then ADDTO,
/// as Dovecot sends them), a SORT's one line each, since each position counts from the
/// result as the previous one left it.
fn emit(out: &mut Vec<u8>, u: &Update, items: &[String]) {
    let head = format!(
        "* ESEARCH (TAG \"{}\"){}",
        quoted(&u.tag),
        if u.uid { " UID" } else { "" }
    );
    let mut put = |body: &str| out.extend_from_slice(format!("{head} {body}\r\n").as_bytes());
    match u.kind {
        Kind::Search(_) if !items.is_empty() => put(&items.join(" ")),
        Kind::Search(_) => {}
        Kind::Sort { .. } => items.iter().for_each(|i| put(i)),
    }
}

/// The number the client knows message `uid` by in search `u`.
fn number(view: &View, u: &Update, uid: u32) -> u32 {
    if u.uid {
        uid
    } else {
        view.index_of(uid).map_or(0, |i| i as u32 + 1)
    }
}

/// Messages `uids` (ascending) are about to be reported expunged: REMOVEFROM for the
/// searches they were in, while their sequence numbers still hold (RFC 5267 §4.3).
pub(super) fn expunged(view: &mut View, uids: &[u32], out: &mut Vec<u8>) {
    if !view.context.active() {
        return;
    }
    let mut list = std::mem::take(&mut view.context.list);
    for u in &mut list {
        let gone = remove(u, uids);
        emit(out, u, &items(view, u, "REMOVEFROM", &gone));
    }
    view.context.list = list;
}

/// Take `uids` out of `u`'s result: their `(position, uid)` before each removal.
fn remove(u: &mut Update, uids: &[u32]) -> Vec<(usize, u32)> {
    let mut gone = Vec::new();
    match &mut u.kind {
        Kind::Search(hits) => {
            for &uid in uids {
                if let Ok(i) = hits.binary_search(&uid) {
                    hits.remove(i);
                    gone.push((0, uid));
                }
            }
        }
        Kind::Sort {
            sorted, members, ..
        } => {
            for &uid in uids {
                let Ok(m) = members.binary_search(&uid) else {
                    continue;
                };
                members.remove(m);
                // A scan, as cheap as the removal's own move of the entries after it.
                if let Some(i) = sorted.iter().position(|s| s.1 == uid) {
                    sorted.remove(i);
                    gone.push((i + 1, uid));
                }
            }
        }
    }
    gone
}

/// Look again at the messages the syncs marked and report how each updating search's
/// result changed (after the EXISTS and FETCH responses of the same sync).
pub(super) fn refresh(view: &mut View, out: &mut Vec<u8>) -> Result<(), HandlerError> {
    if !view.context.active() || view.context.dirty.is_empty() {
        return Ok(());
    }
    let mut dirty = std::mem::take(&mut view.context.dirty);
    dirty.sort_unstable();
    dirty.dedup();
    // Still in the mailbox: one expunged but not yet reported is removed by `expunged`.
    let present: Vec<u32> = {
        let st = view.lock();
        dirty
            .into_iter()
            .filter(|u| view.index_of(*u).is_some() && st.mbox.meta(*u).is_some())
            .collect()
    };
    let indices: Vec<usize> = present.iter().filter_map(|u| view.index_of(*u)).collect();
    let mut list = std::mem::take(&mut view.context.list);
    let mut r = Ok(());
    for u in &mut list {
        r = r.and(refresh_one(view, u, &present, &indices, out));
    }
    view.context.list = list;
    r
}

/// [`refresh`] for one search: `present` are the changed UIDs, at view `indices`.
fn refresh_one(
    view: &View,
    u: &mut Update,
    present: &[u32],
    indices: &[usize],
    out: &mut Vec<u8>,
) -> Result<(), HandlerError> {
    let program = match &u.kind {
        Kind::Sort { program, .. } => program.clone(),
        Kind::Search(_) => Vec::new(),
    };
    let header = program
        .iter()
        .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size));
    let mut keyed: Vec<(Vec<Value>, u32)> = Vec::new();
    // A message that could not be read (going away meanwhile) is left as it was.
    let (mut unread, mut unread_keys) = (Vec::new(), Vec::new());
    let hits = scan(
        view,
        &u.criteria,
        header,
        indices,
        &mut unread,
        |hit, meta, f| {
            let v = values(&program, meta, f);
            if f.unreadable() {
                unread_keys.push(hit.uid);
                return false;
            }
            keyed.push((v, hit.uid));
            true
        },
    )?;
    let mut matched: Vec<u32> = hits.iter().map(|h| h.uid).collect();
    matched.extend(unread);
    matched.extend(unread_keys);
    matched.sort_unstable();
    let was = |u: &Update, uid: u32| match &u.kind {
        Kind::Search(h) => h.binary_search(&uid).is_ok(),
        Kind::Sort { members, .. } => members.binary_search(&uid).is_ok(),
    };
    let left: Vec<u32> = present
        .iter()
        .copied()
        .filter(|x| matched.binary_search(x).is_err() && was(u, *x))
        .collect();
    let gone = remove(u, &left);
    let mut said = items(view, u, "REMOVEFROM", &gone);
    keyed.retain(|(_, x)| !was(u, *x));
    let added = add(u, keyed);
    said.extend(items(view, u, "ADDTO", &added));
    emit(out, u, &said);
    Ok(())
}

/// Put `keyed` (new matches, ascending UID) into `u`'s result: their (position, UID), in
/// the order to report them.
fn add(u: &mut Update, keyed: Vec<(Vec<Value>, u32)>) -> Vec<(usize, u32)> {
    let mut report = Vec::new();
    match &mut u.kind {
        Kind::Search(hits) => {
            for (_, uid) in keyed {
                if let Err(at) = hits.binary_search(&uid) {
                    hits.insert(at, uid);
                    report.push((0, uid));
                }
            }
        }
        Kind::Sort {
            program,
            sorted,
            members,
        } => {
            let mut new = keyed;
            new.sort_by(|a, b| order(program, a, b));
            // In sorted order, so each lands at its final position (which holds when the
            // client applies them in turn).
            for k in new {
                let at = sorted.partition_point(|s| order(program, s, &k) == Ordering::Less);
                if let Err(m) = members.binary_search(&k.1) {
                    members.insert(m, k.1);
                }
                report.push((at + 1, k.1));
                sorted.insert(at, k);
            }
        }
    }
    report
}

/// SORT order of two results: the keys, then the UID (the arrival order, as sequence
/// numbers break ties in SORT itself).
fn order(program: &[SortCriterion], a: &(Vec<Value>, u32), b: &(Vec<Value>, u32)) -> Ordering {
    compare_values(program, &a.0, &b.0).then(a.1.cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(uid: u32, size: i64) -> (Vec<Value>, u32) {
        (vec![Value::Num(size)], uid)
    }

    fn by_size(reverse: bool, result: &[(u32, i64)]) -> Update {
        let program = vec![SortCriterion {
            reverse,
            key: SortKey::Size,
        }];
        let sorted = result.iter().map(|&(u, s)| sized(u, s)).collect();
        Update::sort("T", true, SearchKey::All, program, sorted)
    }

    fn uids(u: &Update) -> Vec<u32> {
        match &u.kind {
            Kind::Sort { sorted, .. } => sorted.iter().map(|s| s.1).collect(),
            Kind::Search(h) => h.clone(),
        }
    }

    #[test]
    fn sort_positions_hold_when_applied_in_turn() {
        let mut u = by_size(false, &[(1, 10), (2, 30)]);
        // Ties break by UID; the reported positions are those in the final order.
        let added = add(&mut u, vec![sized(7, 30), sized(5, 5), sized(6, 20)]);
        assert_eq!(added, vec![(1, 5), (3, 6), (5, 7)]);
        assert_eq!(uids(&u), vec![5, 1, 6, 2, 7]);
        // Each removal's position counts from the result the previous one left.
        assert_eq!(remove(&mut u, &[1, 2, 9]), vec![(2, 1), (3, 2)]);
        assert_eq!(uids(&u), vec![5, 6, 7]);
    }

    #[test]
    fn reversed_sort_and_search() {
        let mut u = by_size(true, &[(2, 30), (1, 10)]);
        assert_eq!(add(&mut u, vec![sized(3, 20)]), vec![(2, 3)]);
        assert_eq!(uids(&u), vec![2, 3, 1]);
        let mut s = Update::search("T", false, SearchKey::All, vec![9, 3]);
        assert_eq!(add(&mut s, vec![sized(5, 0), sized(3, 0)]), vec![(0, 5)]);
        assert_eq!(uids(&s), vec![3, 5, 9]);
        assert_eq!(remove(&mut s, &[4, 9]), vec![(0, 9)]);
    }

    #[test]
    fn bounded() {
        let mut all = Updates::default();
        for i in 0..MAX_UPDATES {
            assert!(all.add(Update::search(
                &format!("T{i}"),
                false,
                SearchKey::All,
                vec![]
            )));
        }
        assert!(!all.add(Update::search("X", false, SearchKey::All, vec![])));
        assert_eq!(all.list.len(), MAX_UPDATES);
        all.touch(4);
        assert_eq!(all.dirty, vec![4]);
    }
}
