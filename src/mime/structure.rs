//! BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, extension data per RFC 3501 §9 `body-ext-1part`
//! and `body-ext-mpart`), written the way Dovecot 2.3 writes them.
//!
//! Decisions that follow Dovecot rather than a stricter reading of the RFCs:
//! - type, subtype and parameter names keep the case they have in the message;
//! - the first Content-* field of each kind wins; Content-* fields are ignored in a message
//!   that has neither MIME-Version nor Content-Type (RFC 2045 §4);
//! - no Content-Type means `"text" "plain" ("charset" "us-ascii")` (RFC 2045 §5.2), or
//!   message/rfc822 inside multipart/digest (RFC 2046 §5.1.5);
//! - text parts without a charset parameter get `"charset" "us-ascii"` appended;
//! - RFC 2231 continuations are joined but not decoded;
//! - a multipart without parts is served with one empty text/plain part.

use super::envelope::{self, nstring_nolf};
use super::parse::{Field, Kind, Part};
use super::rfc822::Parser;
use crate::imap::encode::string;

type Params = Vec<(Vec<u8>, Vec<u8>)>;

const EMPTY_BODY: &[u8] = b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
const EMPTY_BODYSTRUCTURE: &[u8] =
    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";

/// The Content-Type of a part: type, subtype, parameters (`None` when absent or not MIME).
pub fn content_type(msg: &[u8], part: &Part) -> Option<(Vec<u8>, Vec<u8>, Params)> {
    let f = part.mime_field(msg, "Content-Type")?;
    let mut p = Parser::new(&f.value);
    p.skip_lwsp();
    let mut t = Vec::new();
    let ret = p.content_type_checked(&mut t);
    let (ty, sub) = match t.iter().position(|&b| b == b'/') {
        Some(i) => (t[..i].to_vec(), t[i + 1..].to_vec()),
        None => (t, Vec::new()),
    };
    let params = if ret >= 0 { p.params() } else { Vec::new() };
    Some((ty, sub, params))
}

/// The Content-Transfer-Encoding token, when the field holds exactly one token.
pub fn transfer_encoding(msg: &[u8], part: &Part) -> Option<Vec<u8>> {
    let f = part.mime_field(msg, "Content-Transfer-Encoding")?;
    let mut p = Parser::new(&f.value);
    p.skip_lwsp();
    let mut t = Vec::new();
    if p.mime_token(&mut t) >= 0 && p.skip_lwsp() == 0 && !t.is_empty() {
        Some(t)
    } else {
        None
    }
}

fn raw<'p>(msg: &[u8], part: &'p Part, name: &str) -> Option<&'p [u8]> {
    part.mime_field(msg, name)
        .map(|f: &Field| f.value.as_slice())
}

fn write_params(out: &mut Vec<u8>, params: &Params, default_charset: bool) {
    if !default_charset && params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    let mut seen_charset = false;
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        seen_charset |= k.eq_ignore_ascii_case(b"charset");
        string(out, k);
        out.push(b' ');
        string(out, v);
    }
    if default_charset && !seen_charset {
        if !params.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}

/// ` disposition language location` (with leading spaces).
fn write_common(msg: &[u8], part: &Part, out: &mut Vec<u8>) {
    out.push(b' ');
    match part.mime_field(msg, "Content-Disposition") {
        None => out.extend_from_slice(b"NIL"),
        Some(f) => {
            let mut p = Parser::new(&f.value);
            p.skip_lwsp();
            let mut t = Vec::new();
            if p.mime_token(&mut t) < 0 {
                out.extend_from_slice(b"NIL");
            } else {
                let params = p.params();
                out.push(b'(');
                string(out, &t);
                out.push(b' ');
                write_params(out, &params, false);
                out.push(b')');
            }
        }
    }
    out.push(b' ');
    let mut langs = Vec::new();
    if let Some(f) = part.mime_field(msg, "Content-Language") {
        let mut p = Parser::new(&f.value);
        p.skip_lwsp();
        let mut s = Vec::new();
        while p.atom(&mut s) >= 0 {
            langs.push(std::mem::take(&mut s));
            if !p.at(b',') {
                break;
            }
            p.bump();
            p.skip_lwsp();
        }
    }
    if langs.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, l) in langs.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            string(out, l);
        }
        out.push(b')');
    }
    out.push(b' ');
    nstring_nolf(out, raw(msg, part, "Content-Location"));
}

/// Append the body structure of `part` (with its parentheses).
pub fn write(msg: &[u8], part: &Part, ext: bool, out: &mut Vec<u8>) {
    out.push(b'(');
    if let Kind::Multipart(children) = &part.kind {
        if children.is_empty() {
            out.extend_from_slice(if ext { EMPTY_BODYSTRUCTURE } else { EMPTY_BODY });
        }
        for c in children {
            write(msg, c, ext, out);
        }
        let (sub, params) = match content_type(msg, part) {
            Some((_, sub, params)) => (sub, params),
            None => (Vec::new(), Vec::new()),
        };
        out.push(b' ');
        string(out, &sub);
        if ext {
            out.push(b' ');
            write_params(out, &params, false);
            write_common(msg, part, out);
        }
        out.push(b')');
        return;
    }
    let ct = content_type(msg, part);
    let text;
    let params = match (&part.kind, ct) {
        (Kind::Message(_), ct) => {
            out.extend_from_slice(b"\"message\" \"rfc822\"");
            text = false;
            ct.map(|c| c.2).unwrap_or_default()
        }
        (_, None) => {
            out.extend_from_slice(b"\"text\" \"plain\"");
            text = true;
            Vec::new()
        }
        (_, Some((ty, sub, params))) => {
            text = ty.eq_ignore_ascii_case(b"text");
            string(out, &ty);
            out.push(b' ');
            string(out, &sub);
            params
        }
    };
    out.push(b' ');
    write_params(out, &params, text);
    out.push(b' ');
    nstring_nolf(out, raw(msg, part, "Content-ID"));
    out.push(b' ');
    nstring_nolf(out, raw(msg, part, "Content-Description"));
    out.push(b' ');
    match transfer_encoding(msg, part) {
        Some(t) => string(out, &t),
        None => out.extend_from_slice(b"\"7bit\""),
    }
    let body = msg.get(part.body.clone()).unwrap_or_default();
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    if text {
        out.extend_from_slice(format!(" {lines}").as_bytes());
    } else if let Kind::Message(child) = &part.kind {
        out.push(b' ');
        envelope::write(msg, &child.fields, out);
        out.push(b' ');
        write(msg, child, ext, out);
        out.extend_from_slice(format!(" {lines}").as_bytes());
    }
    if ext {
        out.push(b' ');
        nstring_nolf(out, raw(msg, part, "Content-MD5"));
        write_common(msg, part, out);
    }
    out.push(b')');
}
