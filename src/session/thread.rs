//! THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT, REFERENCES and Dovecot's REFS.
//!
//! The messages are those SEARCH would find ([`Session::matching`]); Message-ID,
//! In-Reply-To, References, Subject and Date come from the header block in the metadata
//! cache, so a THREAD over a mailbox whose cache is warm opens no message file. What was read
//! is kept for the session's view of the mailbox ([`Memo`]: a message's bytes never change
//! under its UID), so the next THREAD reads only new messages' headers, as Dovecot keeps its
//! thread index. The algorithms are pure, in [`crate::mime::thread`].

use super::{Action, HandlerError, Output, Session};
use crate::imap::types::{Command, ThreadAlgorithm};
use crate::mime::thread::{thread, Algorithm, Keys, Message};
use crate::mime::{msgid, sortkey, subject, SearchDoc};
use std::collections::HashMap;
use std::sync::Arc;

/// Most bytes of keys one [`Memo`] holds; a message whose keys are over [`MEMO_ENTRY`] bytes
/// (10,000 References) is read each time instead.
pub const MEMO_BYTES: usize = 16 * 1024 * 1024;
/// See [`MEMO_BYTES`].
pub const MEMO_ENTRY: usize = 4096;

/// THREAD's keys of the view's messages, by UID.
#[derive(Default)]
pub(super) struct Memo {
    by_uid: HashMap<u32, Arc<Keys>>,
    bytes: usize,
}

impl Memo {
    fn insert(&mut self, uid: u32, keys: &Arc<Keys>) {
        let size = cost(keys);
        if size <= MEMO_ENTRY && self.bytes + size <= MEMO_BYTES {
            self.bytes += size;
            self.by_uid.insert(uid, keys.clone());
        }
    }

    /// Forget UIDs no longer in the mailbox (`live`, ascending), once they are many.
    fn prune(&mut self, live: &[u32]) {
        if self.by_uid.len() > 2 * live.len() + 1024 {
            self.by_uid.retain(|u, _| live.binary_search(u).is_ok());
            self.bytes = self.by_uid.values().map(|k| cost(k)).sum();
        }
    }
}

/// About what `keys` take in memory, bytes.
fn cost(keys: &Keys) -> usize {
    let refs: usize = keys.references.iter().map(|r| r.len() + 24).sum();
    let id = keys.message_id.as_ref().map_or(0, |i| i.len());
    let subject = keys.subject.as_ref().map_or(0, |s| s.0.len());
    96 + refs + id + subject
}

impl Session {
    pub(super) fn thread(&mut self, tag: &str, cmd: Command) -> Result<Output, HandlerError> {
        let Command::Thread {
            uid,
            algorithm,
            charset,
            criteria,
        } = cmd
        else {
            return Err(HandlerError::Bad("not a THREAD".into()));
        };
        self.check_charset(Some(&charset), None)?;
        let mut out = Vec::new();
        let msgs = self.thread_messages(uid, &criteria, &mut out)?;
        let alg = match algorithm {
            ThreadAlgorithm::OrderedSubject => Algorithm::OrderedSubject,
            ThreadAlgorithm::References => Algorithm::References,
            ThreadAlgorithm::Refs => Algorithm::Refs,
        };
        // Dovecot writes the space even when there are no threads: `* THREAD \r\n`.
        out.extend_from_slice(b"* THREAD ");
        out.extend_from_slice(thread(&msgs, alg).as_bytes());
        out.extend_from_slice(b"\r\n");
        let name = if uid { "UID THREAD" } else { "THREAD" };
        out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }

    /// The matching messages with their keys: from the view's [`Memo`], else read (and kept).
    fn thread_messages(
        &mut self,
        uid: bool,
        criteria: &crate::imap::types::SearchKey,
        out: &mut Vec<u8>,
    ) -> Result<Vec<Message>, HandlerError> {
        let mut dates = Vec::new();
        let found = self.matching(uid, criteria, false, out, |_, meta, _| {
            dates.push(meta.internal_date);
        })?;
        let mut memo = std::mem::take(&mut self.view_mut()?.thread_memo);
        let missing: Vec<u32> = found
            .iter()
            .map(|h| h.uid)
            .filter(|u| !memo.by_uid.contains_key(u))
            .collect();
        let mut read = HashMap::with_capacity(missing.len());
        let date_of: HashMap<u32, i64> = missing
            .iter()
            .filter_map(|u| found.binary_search_by_key(u, |h| h.uid).ok())
            .map(|i| (found[i].uid, dates[i]))
            .collect();
        let loaded = self.with_headers(&missing, |u, doc| {
            if let Some(doc) = doc {
                let keys = Arc::new(keys(date_of.get(&u).copied().unwrap_or(0), doc));
                memo.insert(u, &keys);
                read.insert(u, keys);
            }
        });
        let live: Vec<u32> = self.view_mut()?.msgs.iter().map(|m| m.uid).collect();
        memo.prune(&live);
        let mut msgs = Vec::with_capacity(found.len());
        for h in &found {
            // A message that could not be read is left out, as SEARCH leaves it out.
            if let Some(k) = memo.by_uid.get(&h.uid).or_else(|| read.get(&h.uid)) {
                msgs.push(Message {
                    number: h.number(uid),
                    keys: k.clone(),
                });
            }
        }
        self.view_mut()?.thread_memo = memo;
        loaded.map(|()| msgs)
    }
}

/// What THREAD reads of one message. The date: the sent date, else (missing, unparsable or
/// the epoch itself, as Dovecot has it) the INTERNALDATE, `internal`.
fn keys(internal: i64, doc: &SearchDoc) -> Keys {
    let [id, refs, reply_to, subj, date] =
        doc.first_fields(["Message-ID", "References", "In-Reply-To", "Subject", "Date"]);
    let mut references = refs.as_deref().map(msgid::all).unwrap_or_default();
    if references.is_empty() {
        references.extend(reply_to.as_deref().and_then(msgid::first));
    }
    Keys {
        date: sortkey::sent_time(date.as_deref())
            .filter(|&t| t != 0)
            .unwrap_or(internal),
        message_id: id.as_deref().and_then(msgid::first),
        references,
        subject: subj.as_deref().map(subject::base_subject),
    }
}
