//! SORT and UID SORT (RFC 5256 §3) with the DISPLAYFROM / DISPLAYTO keys (RFC 5957) and
//! `RETURN (MIN MAX ALL COUNT SAVE)` answered by `* ESEARCH` (RFC 5267 §3, ESORT).
//!
//! The messages are those SEARCH would find (the same evaluation, [`Session::matching`]); the
//! values compared come from the header block in the metadata cache (`store::cache`), so a
//! SORT over a mailbox whose cache is warm opens no message file. Strings compare in
//! `i;unicode-casemap` form (RFC 5255 I18NLEVEL=1); equal keys fall back to the next key, and
//! last to the sequence number, ascending even under REVERSE (RFC 5256 §3; Dovecot does so).

use super::search::{Answer, Hit};
use super::{Action, HandlerError, Output, Session};
use crate::imap::types::{Command, SortCriterion, SortKey};
use crate::mime::{sortkey, SearchDoc};
use crate::store::MessageMeta;
use std::cmp::Ordering;

/// One compared value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Num(i64),
    Text(String),
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
        let header = program
            .iter()
            .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size));
        let mut keyed: Vec<(Vec<Value>, Hit)> = Vec::new();
        let mut values = Vec::new();
        let mut out = Vec::new();
        let found = self.matching(uid, &criteria, header, &mut out, |_, meta, doc| {
            values.push(program.iter().map(|c| value(c.key, meta, doc)).collect());
        })?;
        keyed.extend(values.into_iter().zip(found));
        keyed.sort_by(|a, b| compare(&program, a, b));
        let sorted: Vec<Hit> = keyed.into_iter().map(|(_, h)| h).collect();
        let answer = Answer {
            uid,
            modseq: super::search::has_modseq(&criteria),
            word: "SORT",
        };
        self.answer(tag, &answer, returns, &sorted, &mut out)?;
        let name = if uid { "UID SORT" } else { "SORT" };
        out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }
}

/// Key by key, each reversed if asked; then the sequence number, ascending.
fn compare(program: &[SortCriterion], a: &(Vec<Value>, Hit), b: &(Vec<Value>, Hit)) -> Ordering {
    for (i, c) in program.iter().enumerate() {
        let o = a.0[i].cmp(&b.0[i]);
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.1.seq.cmp(&b.1.seq)
}

/// The value of `key` for one message (RFC 5256 §3).
fn value(key: SortKey, meta: &MessageMeta, doc: Option<&SearchDoc>) -> Value {
    let field = |name: &str| doc.and_then(|d| d.first_field(name));
    match key {
        SortKey::Arrival => Value::Num(meta.internal_date),
        SortKey::Size => Value::Num(meta.size as i64),
        // The sent date in UTC; without a usable Date field, the INTERNALDATE.
        SortKey::Date => {
            Value::Num(sortkey::sent_time(field("Date").as_deref()).unwrap_or(meta.internal_date))
        }
        SortKey::Subject => Value::Text(sortkey::subject(field("Subject").as_deref())),
        SortKey::From => Value::Text(sortkey::mailbox(field("From").as_deref())),
        SortKey::To => Value::Text(sortkey::mailbox(field("To").as_deref())),
        SortKey::Cc => Value::Text(sortkey::mailbox(field("Cc").as_deref())),
        SortKey::DisplayFrom => Value::Text(sortkey::display(field("From").as_deref())),
        SortKey::DisplayTo => Value::Text(sortkey::display(field("To").as_deref())),
    }
}
