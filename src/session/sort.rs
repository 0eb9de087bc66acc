//! SORT and UID SORT (RFC 5256 §3) with the DISPLAYFROM / DISPLAYTO keys (RFC 5957) and
//! `RETURN (MIN MAX ALL COUNT SAVE)` answered by `* ESEARCH` (RFC 5267 §3, ESORT).
//!
//! The messages are those SEARCH would find (the same evaluation, [`Session::matching`]); the
//! values compared come from the header block in the metadata cache (`store::cache`), so a
//! SORT over a mailbox whose cache is warm opens no message file. Strings compare in
//! `i;unicode-casemap` form (RFC 5255 I18NLEVEL=1); equal keys fall back to the next key, and
//! last to the sequence number, ascending even under REVERSE (RFC 5256 §3; Dovecot does so).

use super::search::{Answer, Fields, Hit};
use super::{Action, HandlerError, Output, Session};
use crate::imap::types::{Command, SearchKey, SearchReturn, SortCriterion, SortKey};
use crate::mime::sortkey;
use crate::store::MessageMeta;
use std::cmp::Ordering;
use std::sync::Arc;

/// One compared value. Text compares by its UTF-8 bytes, which is code point order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Value {
    Num(i64),
    Text(Arc<[u8]>),
}

impl Session {
    pub(super) fn sort(&mut self, tag: &str, cmd: Command) -> Result<Output, HandlerError> {
        let Command::Sort {
            uid,
            returns,
            program,
            charset,
            criteria,
        } = cmd
        else {
            return Err(HandlerError::Bad("not a SORT".into()));
        };
        self.check_charset(Some(&charset), returns.as_deref())?;
        self.check_update_tag(tag, returns.as_deref())?;
        let header = program
            .iter()
            .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size));
        let update = returns
            .as_ref()
            .is_some_and(|r| r.contains(&SearchReturn::Update));
        let mut out = Vec::new();
        let (sorted, kept) = if update {
            // An updating SORT keeps every message's keys, to place later changes.
            let mut keyed: Vec<(Vec<Value>, Hit)> = Vec::new();
            let mut found_values = Vec::new();
            let found = self.matching_fields(uid, &criteria, header, &mut out, |_, meta, f| {
                let v = values(&program, meta, f);
                // A message whose file went away while it was read is not reported.
                let keep = !f.unreadable();
                if keep {
                    found_values.push(v);
                }
                keep
            })?;
            keyed.extend(found_values.into_iter().zip(found));
            keyed.sort_by(|a, b| compare(&program, a, b));
            let kept: Vec<(Vec<Value>, u32)> =
                keyed.iter().map(|(v, h)| (v.clone(), h.uid)).collect();
            (keyed.into_iter().map(|(_, h)| h).collect(), kept)
        } else {
            let sorted = self.sorted_hits(uid, &criteria, &program, header, &mut out)?;
            (sorted, Vec::new())
        };
        let answer = Answer {
            uid,
            modseq: super::search::has_modseq(&criteria),
            word: "SORT",
        };
        let answer_at = out.len();
        self.answer(tag, &answer, returns, &sorted, &mut out)?;
        if update {
            let u = super::context::Update::sort(tag, uid, criteria, program, kept);
            self.start_update(u, &mut out, answer_at)?;
        }
        let name = if uid { "UID SORT" } else { "SORT" };
        out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }
}

impl Session {
    /// The messages matching `criteria` in `program`'s order: first the matches alone (no
    /// header is read), then the order the folder's cache kept for exactly those messages
    /// sorted this way, else their keys (derived values, see [`Fields::derived`]), sorted
    /// and the order kept. Webmail sorts the same folder the same way for every page it shows.
    fn sorted_hits(
        &mut self,
        uid: bool,
        criteria: &SearchKey,
        program: &[SortCriterion],
        header: bool,
        out: &mut Vec<u8>,
    ) -> Result<Vec<Hit>, HandlerError> {
        let found = self.matching(uid, criteria, false, out, |_, _, _| {})?;
        let view = self.view_mut()?;
        let cache = view.shared.cache();
        let members: Vec<u32> = found.iter().map(|h| h.uid).collect();
        // Under another UIDVALIDITY the same UIDs are other messages.
        let key = format!("{program:?} {}", view.uid_validity()).into_bytes();
        if let Some(order) = cache.order(&key, &members) {
            let hit = |u: &u32| found.get(members.binary_search(u).ok()?).copied();
            return Ok(order.iter().filter_map(hit).collect());
        }
        let at: Vec<usize> = found.iter().map(|h| h.seq as usize - 1).collect();
        let mut keyed = Vec::with_capacity(found.len());
        super::search::scan(
            view,
            &SearchKey::All,
            header,
            &at,
            &mut Vec::new(),
            |h, meta, f| {
                let v = values(program, meta, f);
                // A message whose file went away while it was read is not reported.
                if f.unreadable() {
                    return false;
                }
                keyed.push((v, *h));
                true
            },
        )?;
        keyed.sort_by(|a, b| compare(program, a, b));
        let sorted: Vec<Hit> = keyed.into_iter().map(|(_, h)| h).collect();
        if sorted.len() == found.len() {
            cache.keep_order(&key, members, sorted.iter().map(|h| h.uid).collect());
        }
        Ok(sorted)
    }
}

/// Key by key, each reversed if asked; then the sequence number, ascending.
fn compare(program: &[SortCriterion], a: &(Vec<Value>, Hit), b: &(Vec<Value>, Hit)) -> Ordering {
    compare_values(program, &a.0, &b.0).then(a.1.seq.cmp(&b.1.seq))
}

/// Key by key, each reversed if asked (`a` and `b` are [`values`] of `program`).
pub(super) fn compare_values(program: &[SortCriterion], a: &[Value], b: &[Value]) -> Ordering {
    for (c, (x, y)) in program.iter().zip(a.iter().zip(b)) {
        let o = x.cmp(y);
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// The values of one message for each key of `program`.
pub(super) fn values(program: &[SortCriterion], meta: &MessageMeta, f: &Fields) -> Vec<Value> {
    program.iter().map(|c| value(c.key, meta, f)).collect()
}

/// The value of `key` for one message (RFC 5256 §3). Those read from header fields are
/// [derived](Fields::derived) once per message file and kept by the metadata cache.
fn value(key: SortKey, meta: &MessageMeta, f: &Fields) -> Value {
    let text = |kind: u8, name: &str, fold: fn(Option<&[u8]>) -> String| {
        Value::Text(f.derived(kind, |doc| {
            let field = doc.and_then(|d| d.first_field(name));
            fold(field.as_deref()).into_bytes().into()
        }))
    };
    match key {
        SortKey::Arrival => Value::Num(meta.internal_date),
        SortKey::Size => Value::Num(meta.size as i64),
        // The sent date in UTC; without a usable Date field, the INTERNALDATE.
        SortKey::Date => {
            let kept = f.derived(derived::DATE, |doc| {
                let field = doc.and_then(|d| d.first_field("Date"));
                let t = sortkey::sent_time(field.as_deref());
                t.map_or(Arc::from(&[][..]), |t| Arc::from(&t.to_be_bytes()[..]))
            });
            let t = <[u8; 8]>::try_from(&*kept).map(i64::from_be_bytes);
            Value::Num(t.unwrap_or(meta.internal_date))
        }
        SortKey::Subject => text(derived::SUBJECT, "Subject", sortkey::subject),
        SortKey::From => text(derived::FROM, "From", sortkey::mailbox),
        SortKey::To => text(derived::TO, "To", sortkey::mailbox),
        SortKey::Cc => text(derived::CC, "Cc", sortkey::mailbox),
        SortKey::DisplayFrom => text(derived::DISPLAY_FROM, "From", sortkey::display),
        SortKey::DisplayTo => text(derived::DISPLAY_TO, "To", sortkey::display),
    }
}

/// The kinds of [derived](Fields::derived) values SORT keeps, one per key read from a header.
mod derived {
    pub const DATE: u8 = 0;
    pub const SUBJECT: u8 = 1;
    pub const FROM: u8 = 2;
    pub const TO: u8 = 3;
    pub const CC: u8 = 4;
    pub const DISPLAY_FROM: u8 = 5;
    pub const DISPLAY_TO: u8 = 6;
}
