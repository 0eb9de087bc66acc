//! `BODY[section]` bytes (RFC 3501 §6.4.5), and the quoted-printable decoder `BINARY[part]`
//! (RFC 3516, see [`mod@super::binary`]) uses.
//!
//! Part numbers are resolved the way Dovecot 2.3 resolves them: in a multipart, `n` is its
//! n-th part; a non-multipart part has only part 1, itself (so `1` of a single-part message is
//! its body and `1.MIME` its header); after a message/rfc822 part, further numbers address the
//! encapsulated message. HEADER, TEXT and HEADER.FIELDS after a part number need a
//! message/rfc822 part.

use super::parse::{name_is, Kind, Part};
use crate::imap::types::{Section, SectionText};
use std::borrow::Cow;

/// The part at `path` (empty = the message itself).
pub fn find<'p>(root: &'p Part, path: &[u32]) -> Option<&'p Part> {
    let mut part = root;
    // The last number named the part it was applied to (`1` of a non-multipart).
    let mut itself = false;
    for (i, &num) in path.iter().enumerate() {
        match &part.kind {
            Kind::Multipart(children) => {
                let idx = usize::try_from(num.saturating_sub(1)).ok()?;
                part = children.get(idx)?;
                itself = false;
            }
            _ if num != 1 => return None,
            // Dovecot: a single-part message has part 1 (itself), but no `1.1`; a leaf part
            // `n` has `n.1` (itself), but no `n.1.1`.
            _ if i > 0 && std::ptr::eq(part, root) => return None,
            _ if itself => return None,
            _ => itself = true,
        }
        if i + 1 < path.len() {
            if let Kind::Message(child) = &part.kind {
                part = child;
                itself = false;
            }
        }
    }
    Some(part)
}

/// The header fields of `part` selected by `names` (or all others when `not`), each as its
/// raw lines (RFC 3501 §6.4.5 HEADER.FIELDS), then the empty line. As Dovecot does: a line
/// without `:` is never selected by name, and when the header has no empty line of its own
/// (cut by EOF or a boundary) HEADER.FIELDS.NOT adds none.
pub fn header_fields(msg: &[u8], part: &Part, names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &part.fields {
        let hit = f.has_colon && names.iter().any(|n| name_is(msg, f, n));
        if hit != not {
            let end = f.raw.end.min(part.header.end);
            out.extend_from_slice(msg.get(f.raw.start..end).unwrap_or_default());
        }
    }
    if part.complete_header || !not {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn slice(msg: &[u8], r: std::ops::Range<usize>) -> Cow<'_, [u8]> {
    Cow::Borrowed(msg.get(r).unwrap_or_default())
}

/// The bytes of `BODY[section]`, or `None` when there is no such part: a slice of `msg`
/// (no copy of a big part) except for HEADER.FIELDS, which are put together.
pub fn section<'m>(msg: &'m [u8], root: &Part, s: &Section) -> Option<Cow<'m, [u8]>> {
    let part = find(root, &s.part)?;
    let message = if s.part.is_empty() {
        part
    } else {
        match (&s.text, &part.kind) {
            (None, _) => return Some(slice(msg, part.body.clone())),
            (Some(SectionText::Mime), _) => return Some(slice(msg, part.header.clone())),
            (Some(_), Kind::Message(child)) => child,
            (Some(_), _) => return None,
        }
    };
    Some(match &s.text {
        None => slice(msg, message.header.start..message.body.end),
        Some(SectionText::Header) => slice(msg, message.header.clone()),
        Some(SectionText::Text) => slice(msg, message.body.clone()),
        Some(SectionText::HeaderFields(names)) => {
            Cow::Owned(header_fields(msg, message, names, false))
        }
        Some(SectionText::HeaderFieldsNot(names)) => {
            Cow::Owned(header_fields(msg, message, names, true))
        }
        Some(SectionText::Mime) => return None,
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// RFC 2045 §6.7: `=XX`, soft line breaks, trailing whitespace dropped; a malformed `=` is
/// kept as it is.
pub fn decode_qp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        let (line, eol, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let l = &rest[..i];
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                (l, true, &rest[i + 1..])
            }
            None => (rest, false, &rest[rest.len()..]),
        };
        let mut end = line.len();
        while end > 0 && matches!(line[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        let line = &line[..end];
        let mut soft = false;
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            if b == b'=' {
                if i + 1 == line.len() {
                    soft = true;
                    break;
                }
                if let (Some(h), Some(l)) = (
                    line.get(i + 1).and_then(|&c| hex(c)),
                    line.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(b);
            i += 1;
        }
        if eol && !soft {
            out.extend_from_slice(b"\r\n");
        }
        rest = next;
    }
    out
}
