//! Text for SEARCH (RFC 3501 §6.4.4): header values with RFC 2047 encoded-words decoded, the
//! decoded text of the body parts (transfer encoding and charset undone by mail-parser), and
//! the Date: field. Matching is a substring test on text in `i;unicode-casemap` form
//! ([`super::casemap`], RFC 5255 I18NLEVEL=1), as Dovecot's: `e` finds `café` (E + U+0301).

use super::casemap::fold;
use super::parse::{self, Field, Part};
use crate::imap::types::Date;
use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderValue, Message, MessageParser, PartType};
use std::cell::OnceCell;

/// Encapsulated messages searched at most this deep.
const MAX_DEPTH: usize = 20;

/// Decode one header value (RFC 2047 encoded-words; folding removed).
pub fn decode_header_value(value: &[u8]) -> String {
    let mut v = Vec::with_capacity(value.len() + 2);
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n");
    match MessageStream::new(&v).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        _ => String::new(),
    }
}

fn header_pairs(msg: &[u8], fields: &[Field]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| {
            let name = String::from_utf8_lossy(msg.get(f.name.clone()).unwrap_or_default())
                .to_ascii_uppercase();
            (name, fold(&decode_header_value(&f.value)))
        })
        .collect()
}

fn collect_text(m: &Message<'_>, depth: usize, out: &mut String) {
    for p in &m.parts {
        match &p.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(&fold(t));
                out.push('\n');
            }
            PartType::Message(inner) if depth < MAX_DEPTH => collect_text(inner, depth + 1, out),
            _ => {}
        }
    }
}

/// The searchable form of one message. Each part is built on first use, so a SEARCH on
/// one header (FROM, SUBJECT) looks only at that header's fields (scanned in place, not
/// copied) and never runs the MIME parser over the body, and a SEARCH on the body decodes it
/// once for all its keys.
pub struct Doc {
    msg: Vec<u8>,
    fields: OnceCell<Vec<Field>>,
    /// Every field as (uppercased name, decoded folded value), for TEXT.
    headers: OnceCell<Vec<(String, String)>>,
    body: OnceCell<String>,
    date: OnceCell<Option<Date>>,
}

impl Doc {
    pub fn new(msg: &[u8]) -> Doc {
        Doc::from_vec(msg.to_vec())
    }

    /// A document over `msg` (a whole message, or only its header block).
    pub fn from_vec(msg: Vec<u8>) -> Doc {
        Doc {
            msg,
            fields: OnceCell::new(),
            headers: OnceCell::new(),
            body: OnceCell::new(),
            date: OnceCell::new(),
        }
    }

    pub fn from_part(msg: &[u8], root: &Part) -> Doc {
        let d = Doc::new(msg);
        let _ = d.fields.set(root.fields.clone());
        d
    }

    fn fields(&self) -> &[Field] {
        self.fields
            .get_or_init(|| parse::parse_header(&self.msg, 0).0)
    }

    fn headers(&self) -> &[(String, String)] {
        self.headers
            .get_or_init(|| header_pairs(&self.msg, self.fields()))
    }

    fn body(&self) -> &str {
        self.body.get_or_init(|| {
            let mut body = String::new();
            if let Some(m) = MessageParser::default().parse(&self.msg[..]) {
                collect_text(&m, 0, &mut body);
            }
            body
        })
    }

    /// RFC 3501 §6.4.4 HEADER / FROM / SUBJECT...: a field of that name whose decoded value
    /// contains the needle (any such field when the needle is empty).
    pub fn header_contains(&self, name: &str, needle: &str) -> bool {
        self.any_field(name, needle, value_contains)
    }

    /// The value of the first field `name`, as [`Field::value`] holds it.
    pub fn first_field(&self, name: &str) -> Option<Vec<u8>> {
        let f = parse::RawFields::new(&self.msg, 0)
            .find(|f| self.msg[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))?;
        let mut value = Vec::new();
        f.value_into(&self.msg, &mut value);
        Some(value)
    }

    /// The values of the first field of each of `names`, in one pass over the header.
    pub fn first_fields<const N: usize>(&self, names: [&str; N]) -> [Option<Vec<u8>>; N] {
        let mut out: [Option<Vec<u8>>; N] = std::array::from_fn(|_| None);
        let mut missing = N;
        for f in parse::RawFields::new(&self.msg, 0) {
            let name = &self.msg[f.name.clone()];
            let Some(i) = names
                .iter()
                .position(|n| n.as_bytes().eq_ignore_ascii_case(name))
            else {
                continue;
            };
            if out[i].is_none() {
                let mut value = Vec::new();
                f.value_into(&self.msg, &mut value);
                out[i] = Some(value);
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
        out
    }

    /// RFC 3501 §6.4.4 FROM / TO / CC / BCC: a field of that name whose addresses, written
    /// the way Dovecot matches them ([`address_search_text`]), contain the needle. So
    /// `FROM user@domain.org` finds `<user (comment)@ (comment) domain.org>`.
    pub fn address_contains(&self, name: &str, needle: &str) -> bool {
        self.any_field(name, needle, |value, needle| {
            value_contains(&address_search_text(value), needle)
        })
    }

    /// Whether a field `name` exists (an empty `needle`) or one's value, as [`Field::value`]
    /// holds it, satisfies `matches` with the casemap-folded needle.
    fn any_field(&self, name: &str, needle: &str, matches: impl Fn(&[u8], &str) -> bool) -> bool {
        let needle = fold(needle);
        let mut value = Vec::new();
        parse::RawFields::new(&self.msg, 0).any(|f| {
            if !self.msg[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()) {
                return false;
            }
            if needle.is_empty() {
                return true;
            }
            value.clear();
            f.value_into(&self.msg, &mut value);
            matches(&value, &needle)
        })
    }

    pub fn body_contains(&self, needle: &str) -> bool {
        self.body().contains(&fold(needle))
    }

    pub fn text_contains(&self, needle: &str) -> bool {
        let needle = fold(needle);
        self.headers()
            .iter()
            .any(|(n, v)| n.contains(&needle) || v.contains(&needle))
            || self.body().contains(&needle)
    }

    pub fn sent_date(&self) -> Option<Date> {
        *self.date.get_or_init(|| {
            self.fields()
                .iter()
                .rev()
                .find(|f| parse::name_is(&self.msg, f, "Date"))
                .and_then(|f| parse_date(&f.value))
        })
    }
}

/// Does the header value `value` (as [`Field::value`] holds it), RFC 2047-decoded and
/// folded, contain `needle` (already folded)?
///
/// Most values are plain ASCII without encoded-words, and most needles are one word: then
/// decoding changes nothing a word can match (it only unfolds lines and trims whitespace),
/// so an ASCII case-insensitive search of the raw bytes gives the same answer without the
/// decoder's allocations. Anything else takes the decoder.
pub fn value_contains(value: &[u8], needle: &str) -> bool {
    if let Some(fast) = ascii_contains(value, needle) {
        return fast;
    }
    fold(&decode_header_value(value)).contains(needle)
}

/// [`value_contains`] without the decoder, or `None` when the answer could differ: `value`
/// must be printable ASCII (tabs and the `\n` of unfolding allowed) without `=?`, and
/// `needle` printable ASCII without whitespace or lowercase letters (it is folded).
fn ascii_contains(value: &[u8], needle: &str) -> Option<bool> {
    let n = needle.as_bytes();
    let word = !n.is_empty()
        && n.iter()
            .all(|&b| (0x21..0x7f).contains(&b) && !b.is_ascii_lowercase());
    let plain = value
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t' || b == b'\n')
        && !value.windows(2).any(|w| w == b"=?");
    if !(word && plain) {
        return None;
    }
    Some(value.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n)))
}

/// The decoder's answer, for tests comparing it with [`ascii_contains`].
#[cfg(test)]
pub fn value_contains_slow(value: &[u8], needle: &str) -> bool {
    fold(&decode_header_value(value)).contains(needle)
}

/// An address list written back as Dovecot 2.3 matches FROM / TO / CC / BCC against it
/// (then RFC 2047-decoded): comments and folding gone, each address as `<mailbox@domain>`,
/// `name <@route:mailbox@domain>` (the name quoted unless it is an atom or holds an
/// encoded-word), a group as `"name": a, b;`, all joined by `, `.
pub fn address_search_text(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut in_group = false;
    let mut first_member = false;
    for (i, a) in super::envelope::parse_addresses(value).iter().enumerate() {
        if a.domain.is_none() {
            // A group's start (its name in `mailbox`) or end (all NIL).
            if !in_group {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_phrase(&mut out, a.mailbox.as_deref().unwrap_or_default());
                out.push(b':');
                first_member = true;
            } else {
                out.push(b';');
                first_member = false;
            }
            in_group = !in_group;
            continue;
        }
        if first_member {
            out.push(b' ');
            first_member = false;
        } else if i > 0 {
            out.extend_from_slice(b", ");
        }
        if let Some(name) = a.name.as_deref().filter(|n| !n.is_empty()) {
            write_phrase(&mut out, name);
            out.push(b' ');
        }
        out.push(b'<');
        if let Some(route) = &a.route {
            out.extend_from_slice(route);
            out.push(b':');
        }
        out.extend_from_slice(a.mailbox.as_deref().unwrap_or_default());
        out.push(b'@');
        out.extend_from_slice(a.domain.as_deref().unwrap_or_default());
        out.push(b'>');
    }
    out
}

/// A display name as Dovecot writes it for SEARCH: as is when it is an atom or holds an
/// encoded-word (which must not be quoted, RFC 2047 §5), else a quoted-string.
fn write_phrase(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter().all(|&b| super::rfc822::is_atext(b)) || s.windows(2).any(|w| w == b"=?") {
        out.extend_from_slice(s);
        return;
    }
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// RFC 5322 §3.3 date (obsolete forms accepted by mail-parser), in its own zone.
pub fn parse_date(value: &[u8]) -> Option<Date> {
    let mut v = Vec::with_capacity(value.len() + 2);
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n");
    match MessageStream::new(&v).parse_date() {
        HeaderValue::DateTime(dt) if (1..=12).contains(&dt.month) && (1..=31).contains(&dt.day) => {
            Some(Date {
                year: dt.year,
                month: dt.month,
                day: dt.day,
            })
        }
        _ => None,
    }
}
