//! IMAP URLs (RFC 5092) as CATENATE (RFC 4469 §5) uses them: a relative URL naming one
//! message of the user's mailboxes, optionally a section of it (RFC 5092 §5 `isection`) and
//! a byte range of that (RFC 5550 URL-PARTIAL).
//!
//! ```text
//! url        = "/" enc-mailbox [";UIDVALIDITY=" nz-number] "/;UID=" nz-number
//!              ["/;SECTION=" enc-section] ["/;PARTIAL=" number ["." nz-number]]
//! ```
//!
//! Keywords are case-insensitive; the mailbox and section are percent-decoded. Absolute
//! URLs (`imap://...`) and URLAUTH are refused, as Dovecot refuses them here. Every byte is
//! the client's: errors are reasons, never panics.

use super::types::Section;

/// A parsed relative IMAP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// The mailbox name, percent-decoded (UTF-8 per RFC 5092 §3.2, or modified UTF-7 as
    /// clients also send it).
    pub mailbox: String,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    pub section: Option<Section>,
    /// `PARTIAL=offset[.length]`: the bytes from `offset`, at most `length` of them.
    pub partial: Option<(u32, Option<u32>)>,
}

/// Longest URL accepted (the command line limits it anyway).
const MAX_URL: usize = 8192;

/// Parse `url` (as sent in CATENATE's `URL` astring).
pub fn parse(url: &[u8]) -> Result<ImapUrl, String> {
    if url.len() > MAX_URL {
        return Err("URL too long".into());
    }
    if url.iter().any(|&b| b <= b' ' || b >= 0x7f) {
        return Err("Invalid character in URL".into());
    }
    let Some(rest) = url.strip_prefix(b"/") else {
        return Err("Relative URL required".into());
    };
    if rest.starts_with(b"/") {
        return Err("Relative URL required".into());
    }
    // The mailbox runs to the first ';' (bchar has none): then UIDVALIDITY or "/;UID=".
    let semi = rest.iter().position(|&b| b == b';');
    let Some(semi) = semi else {
        return Err("Missing the message UID".into());
    };
    let (mut enc_mailbox, mut rest) = rest.split_at(semi);
    let mut uid_validity = None;
    if let Some(v) = strip_keyword(rest, b";UIDVALIDITY=") {
        let (value, after) = split_at_slash(v);
        uid_validity = Some(nz_number(value, "UIDVALIDITY")?);
        rest = after;
    } else {
        enc_mailbox = enc_mailbox
            .strip_suffix(b"/")
            .ok_or("Expected '/' before ';UID='")?;
    }
    let mailbox = decode_mailbox(enc_mailbox)?;
    let mut parts = segments(rest)?.into_iter();
    let uid = match parts.next() {
        Some((k, v)) if k.eq_ignore_ascii_case(b"UID") => nz_number(v, "UID")?,
        _ => return Err("Missing the message UID".into()),
    };
    let mut section = None;
    let mut partial = None;
    for (k, v) in parts {
        match k.to_ascii_uppercase().as_slice() {
            b"SECTION" if section.is_none() && partial.is_none() => {
                section = Some(parse_section(&percent_decode(v)?)?);
            }
            b"PARTIAL" if partial.is_none() => partial = Some(parse_partial(v)?),
            b"URLAUTH" | b"EXPIRE" => return Err("URLAUTH is not supported".into()),
            _ => {
                return Err(format!(
                    "Unexpected ;{} in the URL",
                    String::from_utf8_lossy(k)
                ))
            }
        }
    }
    Ok(ImapUrl {
        mailbox,
        uid_validity,
        uid,
        section,
        partial,
    })
}

/// `rest` minus a case-insensitive `kw` prefix.
fn strip_keyword<'a>(rest: &'a [u8], kw: &[u8]) -> Option<&'a [u8]> {
    let head = rest.get(..kw.len())?;
    head.eq_ignore_ascii_case(kw).then(|| &rest[kw.len()..])
}

/// The value up to the next '/' and what follows from that '/' on.
fn split_at_slash(v: &[u8]) -> (&[u8], &[u8]) {
    match v.iter().position(|&b| b == b'/') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, &[]),
    }
}

/// A URL parameter: `;key=value`.
type Segment<'a> = (&'a [u8], &'a [u8]);

/// `*("/;" key "=" value)` (the first one may lack its '/', see [`parse`]).
fn segments(mut rest: &[u8]) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix(b"/").unwrap_or(rest);
        let Some(r) = rest.strip_prefix(b";") else {
            return Err("Expected '/;' in the URL".into());
        };
        let eq = r
            .iter()
            .position(|&b| b == b'=')
            .ok_or("Expected '=' in the URL")?;
        let (key, after) = (&r[..eq], &r[eq + 1..]);
        let (value, next) = split_at_slash(after);
        if key.is_empty() || key.contains(&b';') || value.contains(&b';') {
            return Err("Unexpected ';' in the URL".into());
        }
        out.push((key, value));
        rest = next;
        if out.len() > 8 {
            return Err("Too many URL parameters".into());
        }
    }
    Ok(out)
}

fn nz_number(v: &[u8], what: &str) -> Result<u32, String> {
    let n = number(v, what)?;
    if n == 0 {
        return Err(format!("{what} must not be 0"));
    }
    Ok(n)
}

fn number(v: &[u8], what: &str) -> Result<u32, String> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "Value '{}' of {what} is not a valid IMAP number",
            String::from_utf8_lossy(v)
        ));
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| format!("{what} is too large"))
}

/// `partial-range = number ["." nz-number]` (RFC 5092 §9).
fn parse_partial(v: &[u8]) -> Result<(u32, Option<u32>), String> {
    match v.iter().position(|&b| b == b'.') {
        None => Ok((number(v, "PARTIAL")?, None)),
        Some(i) => Ok((
            number(&v[..i], "PARTIAL")?,
            Some(nz_number(&v[i + 1..], "PARTIAL length")?),
        )),
    }
}

/// `%XX` decoded; a '%' without two hex digits is an error.
fn percent_decode(v: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("Invalid %-escape in the URL")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The mailbox as the command's mailbox argument would name it: UTF-8 names (RFC 5092
/// §3.2) become modified UTF-7, names already in modified UTF-7 stay as they are.
fn decode_mailbox(enc: &[u8]) -> Result<String, String> {
    if enc.is_empty() {
        return Err("Missing the mailbox name".into());
    }
    let raw = percent_decode(enc)?;
    let name = String::from_utf8(raw).map_err(|_| "Mailbox name is not UTF-8".to_string())?;
    if name.chars().any(char::is_control) {
        return Err("Invalid character in the mailbox name".into());
    }
    Ok(if name.is_ascii() {
        name
    } else {
        super::utf7::encode(&name)
    })
}

/// The section as FETCH `BODY[section]` reads it.
fn parse_section(v: &[u8]) -> Result<Section, String> {
    if v.is_empty() {
        return Err("Empty SECTION".into());
    }
    let mut s = Vec::with_capacity(v.len() + 2);
    s.push(b'[');
    s.extend_from_slice(v);
    s.push(b']');
    super::parse::parse_section(&s)
}

#[cfg(test)]
mod tests;
