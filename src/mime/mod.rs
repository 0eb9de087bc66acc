//! Message structure for FETCH and SEARCH, built on mail-parser: ENVELOPE, BODYSTRUCTURE,
//! body sections (`BODY[1.2.HEADER]`...), and decoded text for SEARCH.
//!
//! All functions take the message as served: CRLF line endings (see [`to_crlf`]); sizes and
//! offsets are of that form. Output matches what Dovecot 2.3 returns for the same message.
//! Never panics on any input (malformed MIME is served as best it can be, like Dovecot).
//!
//! RFC 3501 §7.4.2 (ENVELOPE, BODYSTRUCTURE), §6.4.5 (sections), RFC 2045–2047, RFC 2231.

use crate::imap::types::{Date, Section};
use std::borrow::Cow;

/// The message with every bare LF turned into CRLF (Maildir files written by Dovecot use LF).
pub fn to_crlf(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r')) {
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

/// Append the ENVELOPE list `(date subject from sender reply-to to cc bcc in-reply-to message-id)`.
pub fn envelope(_msg: &[u8], _out: &mut Vec<u8>) {
    todo!("envelope")
}

/// Append BODYSTRUCTURE (`extensible = true`) or BODY (`false`).
pub fn body_structure(_msg: &[u8], _extensible: bool, _out: &mut Vec<u8>) {
    todo!("bodystructure")
}

/// The bytes of `BODY[section]` (before any partial), or `None` when the part does not exist
/// (served as an empty string, as Dovecot does).
pub fn section(_msg: &[u8], _section: &Section) -> Option<Vec<u8>> {
    todo!("section")
}

/// RFC 3516 BINARY[part]: the part's content with its Content-Transfer-Encoding removed.
/// `Err(())` when the encoding is unknown (`NO [UNKNOWN-CTE]`); `Ok(None)` if no such part.
#[allow(clippy::result_unit_err)]
pub fn binary(_msg: &[u8], _part: &[u32]) -> Result<Option<Vec<u8>>, ()> {
    todo!("binary")
}

/// A parsed message for SEARCH: header fields and decoded text, matched case-insensitively.
pub struct SearchDoc {
    _p: (),
}

impl SearchDoc {
    pub fn new(_msg: &[u8]) -> SearchDoc {
        todo!("SearchDoc")
    }
    /// HEADER name needle (and FROM/TO/CC/BCC/SUBJECT): does any field `name` contain `needle`
    /// (after RFC 2047 decoding, case-insensitive)? An empty needle matches if the field exists.
    pub fn header_contains(&self, _name: &str, _needle: &str) -> bool {
        todo!()
    }
    /// BODY: the decoded text of the body parts contains `needle`.
    pub fn body_contains(&self, _needle: &str) -> bool {
        todo!()
    }
    /// TEXT: headers or body contain `needle`.
    pub fn text_contains(&self, _needle: &str) -> bool {
        todo!()
    }
    /// The Date: header's date (in its own zone), for SENTBEFORE/SENTON/SENTSINCE.
    pub fn sent_date(&self) -> Option<Date> {
        todo!()
    }
}
