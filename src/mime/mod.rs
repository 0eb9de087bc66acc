//! Message structure for FETCH and SEARCH, built on mail-parser: ENVELOPE, BODYSTRUCTURE,
//! body sections (`BODY[1.2.HEADER]`...), and decoded text for SEARCH.
//!
//! All functions take the message as served: CRLF line endings (see [`to_crlf`]); sizes and
//! offsets are of that form. Output matches what Dovecot 2.3 returns for the same message.
//! Never panics on any input (malformed MIME is served as best it can be, like Dovecot).
//!
//! RFC 3501 §7.4.2 (ENVELOPE, BODYSTRUCTURE), §6.4.5 (sections), RFC 3516 (BINARY),
//! RFC 2045–2047, RFC 2231, RFC 5322.
//!
//! # Layout
//! - [`rfc822`]: the header-value tokenizer (addresses, parameters, RFC 2231 merging).
//! - [`parse`]: header fields and the MIME tree with exact byte ranges (our own boundary
//!   scan, because IMAP sizes must match Dovecot's, which differ from mail-parser's offsets).
//! - [`mod@envelope`], [`structure`], [`mod@section`]: the FETCH items.
//! - [`search`]: decoded text for SEARCH, through mail-parser (RFC 2047, charsets, QP/base64).
//! - [`casemap`], [`subject`], [`sortkey`], [`sentdate`]: the `i;unicode-casemap` comparator,
//!   the base subject and the other values SORT compares (RFC 5051, RFC 5256, RFC 5957).
//!
//! Verified item by item against Dovecot 2.3.19 by `tests/mime_dovecot.rs` (3009 of 3012
//! items equal over ~180 real and malformed messages; the rest is documented there). Callers
//! must still replace NUL bytes in literals (Dovecot sends 0x80), which IMAP can't carry.
//!
//! Parse once with [`Parsed::new`] when several FETCH items of one message are needed; the
//! free functions are shortcuts that parse each time. This module does no I/O and must never
//! panic or take more than linear time on any input (nesting and part counts are bounded).

pub mod binary;
pub mod casemap;
pub mod envelope;
pub mod html;
pub mod msgid;
pub mod parse;
pub mod preview;
pub mod rfc822;
pub mod search;
pub mod section;
pub mod sentdate;
pub mod sortkey;
pub mod structure;
pub mod subject;
pub mod thread;

use crate::imap::types::{Date, Section};
use std::borrow::Cow;

/// The message with every bare LF turned into CRLF (Maildir files written by Dovecot use LF).
pub fn to_crlf(raw: &[u8]) -> Cow<'_, [u8]> {
    // Every LF preceded by CR? Two counting passes the compiler vectorizes: this runs over
    // every message SEARCH or FETCH reads.
    let lf = raw.iter().filter(|&&b| b == b'\n').count();
    let crlf = raw
        .iter()
        .zip(raw.iter().skip(1))
        .filter(|&(&a, &b)| a == b'\r' && b == b'\n')
        .count();
    if lf == crlf {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    Cow::Owned(out)
}

/// A message parsed once, for several FETCH items.
pub struct Parsed<'a> {
    msg: &'a [u8],
    root: parse::Part,
}

impl<'a> Parsed<'a> {
    /// Parse `msg` (CRLF line endings, see [`to_crlf`]).
    pub fn new(msg: &'a [u8]) -> Self {
        Parsed {
            msg,
            root: parse::parse(msg),
        }
    }

    /// The message bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.msg
    }

    /// The MIME tree.
    pub fn root(&self) -> &parse::Part {
        &self.root
    }

    /// Append the ENVELOPE list.
    pub fn envelope(&self, out: &mut Vec<u8>) {
        envelope::write(self.msg, &self.root.fields, out);
    }

    /// Append BODYSTRUCTURE (`extensible = true`) or BODY (`false`).
    pub fn body_structure(&self, extensible: bool, out: &mut Vec<u8>) {
        structure::write(self.msg, &self.root, extensible, out);
    }

    /// The bytes of `BODY[section]`; `None` when there is no such part.
    pub fn section(&self, section: &Section) -> Option<Cow<'a, [u8]>> {
        section::section(self.msg, &self.root, section)
    }

    /// RFC 3516 `BINARY[part]`; `Ok(None)` if there is no such part.
    pub fn binary(&self, part: &[u32]) -> Result<Option<binary::Binary>, binary::Undecodable> {
        binary::binary(self.msg, &self.root, part)
    }

    /// The searchable text of the message.
    pub fn search_doc(&self) -> SearchDoc {
        SearchDoc {
            doc: search::Doc::from_part(self.msg, &self.root),
        }
    }
}

/// Append the ENVELOPE list `(date subject from sender reply-to to cc bcc in-reply-to message-id)`.
pub fn envelope(msg: &[u8], out: &mut Vec<u8>) {
    let (fields, _) = parse::parse_header(msg, 0);
    envelope::write(msg, &fields, out);
}

/// Append BODYSTRUCTURE (`extensible = true`) or BODY (`false`).
pub fn body_structure(msg: &[u8], extensible: bool, out: &mut Vec<u8>) {
    Parsed::new(msg).body_structure(extensible, out)
}

/// The bytes of `BODY[section]` (before any partial), or `None` when the part does not exist
/// (served as an empty string, as Dovecot does).
pub fn section<'m>(msg: &'m [u8], section: &Section) -> Option<Cow<'m, [u8]>> {
    Parsed::new(msg).section(section)
}

/// RFC 3516 `BINARY[part]` (see [`mod@binary`]): `Err` when an encoding is unknown
/// (`NO [UNKNOWN-CTE]`) or its data invalid (`NO [PARSE]`); `Ok(None)` if there is no such
/// part.
pub fn binary(msg: &[u8], part: &[u32]) -> Result<Option<binary::Binary>, binary::Undecodable> {
    Parsed::new(msg).binary(part)
}

/// A parsed message for SEARCH: header fields and decoded text, matched case-insensitively.
pub struct SearchDoc {
    doc: search::Doc,
}

impl SearchDoc {
    pub fn new(msg: &[u8]) -> SearchDoc {
        SearchDoc {
            doc: search::Doc::new(msg),
        }
    }
    /// [`SearchDoc::new`] taking the bytes it searches.
    pub fn from_vec(msg: Vec<u8>) -> SearchDoc {
        SearchDoc {
            doc: search::Doc::from_vec(msg),
        }
    }
    /// HEADER name needle (and SUBJECT): does any field `name` contain `needle` (after RFC
    /// 2047 decoding, case-insensitive)? An empty needle matches if the field exists.
    pub fn header_contains(&self, name: &str, needle: &str) -> bool {
        self.doc.header_contains(name, needle)
    }
    /// FROM/TO/CC/BCC: [`SearchDoc::header_contains`] over the field's addresses as Dovecot
    /// writes them for SEARCH (comments and folding gone, `name <mailbox@domain>`).
    pub fn address_contains(&self, name: &str, needle: &str) -> bool {
        self.doc.address_contains(name, needle)
    }
    /// BODY: the decoded text of the body parts contains `needle`.
    pub fn body_contains(&self, needle: &str) -> bool {
        self.doc.body_contains(needle)
    }
    /// TEXT: headers or body contain `needle`.
    pub fn text_contains(&self, needle: &str) -> bool {
        self.doc.text_contains(needle)
    }
    /// The Date: header's date (in its own zone), for SENTBEFORE/SENTON/SENTSINCE.
    pub fn sent_date(&self) -> Option<Date> {
        self.doc.sent_date()
    }
    /// The value of the first field `name` (raw: folding kept, encoded-words not decoded).
    pub fn first_field(&self, name: &str) -> Option<Vec<u8>> {
        self.doc.first_field(name)
    }
    /// [`SearchDoc::first_field`] of each of `names`, in one pass over the header.
    pub fn first_fields<const N: usize>(&self, names: [&str; N]) -> [Option<Vec<u8>>; N] {
        self.doc.first_fields(names)
    }
}

#[cfg(test)]
mod tests;
