//! THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT, REFERENCES and Dovecot's REFS.
//!
//! The messages are those SEARCH would find ([`Session::matching`]); Message-ID,
//! In-Reply-To, References, Subject and Date come from the header block in the metadata
//! cache, so a THREAD over a mailbox whose cache is warm opens no message file. The
//! algorithms are pure, in [`crate::mime::thread`].

use super::{Action, HandlerError, Output, Session};
use crate::imap::types::{Command, ThreadAlgorithm};
use crate::mime::thread::{thread, Algorithm, Message};
use crate::mime::{msgid, sortkey, subject, SearchDoc};
use crate::store::MessageMeta;

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
        let mut msgs = Vec::new();
        let mut out = Vec::new();
        self.matching(uid, &criteria, true, &mut out, |hit, meta, doc| {
            msgs.push(message(hit.number(uid), meta, doc));
        })?;
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
}

/// What THREAD needs of one message. The date: the sent date, else (missing, unparsable or
/// the epoch itself, as Dovecot has it) the INTERNALDATE.
fn message(number: u32, meta: &MessageMeta, doc: Option<&SearchDoc>) -> Message {
    let [id, refs, reply_to, subj, date] = match doc {
        Some(d) => d.first_fields(["Message-ID", "References", "In-Reply-To", "Subject", "Date"]),
        None => Default::default(),
    };
    let mut references = refs.as_deref().map(msgid::all).unwrap_or_default();
    if references.is_empty() {
        references.extend(reply_to.as_deref().and_then(msgid::first));
    }
    Message {
        number,
        date: sortkey::sent_time(date.as_deref())
            .filter(|&t| t != 0)
            .unwrap_or(meta.internal_date),
        message_id: id.as_deref().and_then(msgid::first),
        references,
        subject: subj.as_deref().map(subject::base_subject),
    }
}
