//! `BINARY[part]` content (RFC 3516 §4.2), as Dovecot 2.3 builds it, so both servers send the
//! same bytes for the same Maildir.
//!
//! The content of a leaf part is its body with the Content-Transfer-Encoding undone. A part
//! that holds other parts (multipart, message/rfc822, or the whole message for `BINARY[]`)
//! keeps its structure, but every base64 or quoted-printable part inside it is decoded too,
//! its `Content-Transfer-Encoding` field replaced by `Content-Transfer-Encoding: binary` at
//! the end of its header. An encoding other than 7bit, 8bit, binary, base64 and
//! quoted-printable anywhere in what is sent fails the FETCH (`NO [UNKNOWN-CTE]`), and so
//! does, as in Dovecot, data that is not valid in its encoding (`NO [PARSE]`): a character
//! outside the base64 alphabet, missing padding or data after it, a `=` in quoted-printable
//! not followed by two hex digits or a line end.

use super::parse::{name_is, Kind, Part};
use super::rfc822::Parser;
use super::section::{decode_qp, find};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// A Content-Transfer-Encoding (RFC 2045 §6.1), read the way Dovecot reads it: the last
/// such field, a single token; anything else is unknown (an empty value, or a token with more
/// after it, included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cte {
    /// 7bit, 8bit, binary or no field: the body is sent as it is.
    Identity,
    Base64,
    QuotedPrintable,
    Unknown,
}

impl Cte {
    pub(super) fn of(msg: &[u8], part: &Part) -> Cte {
        let Some(f) = part
            .fields
            .iter()
            .rev()
            .find(|f| name_is(msg, f, "Content-Transfer-Encoding"))
        else {
            return Cte::Identity;
        };
        let mut p = Parser::new(&f.value);
        p.skip_lwsp();
        let mut token = Vec::new();
        p.mime_token(&mut token);
        p.skip_lwsp();
        if !p.at_end() {
            return Cte::Unknown;
        }
        match token.to_ascii_lowercase().as_slice() {
            b"7bit" | b"8bit" | b"binary" => Cte::Identity,
            b"base64" => Cte::Base64,
            b"quoted-printable" => Cte::QuotedPrintable,
            _ => Cte::Unknown,
        }
    }

    fn converted(self) -> bool {
        matches!(self, Cte::Base64 | Cte::QuotedPrintable)
    }
}

/// The content of `BINARY[...]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Binary {
    pub data: Vec<u8>,
    /// Sent as a `literal8` (`~{n}`): something was decoded or there is a NUL, as Dovecot
    /// decides (for the whole content, whatever part of it a partial FETCH asks for).
    pub literal8: bool,
}

/// Why a part cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecodable {
    /// An encoding this server does not know (`NO [UNKNOWN-CTE]`, RFC 3516 §4.3).
    UnknownCte,
    /// Data that is not valid base64 / quoted-printable (`NO [PARSE]`, as Dovecot answers).
    Invalid,
}

/// `BINARY[path]` of the message `msg` (CRLF line ends) parsed as `root`: `Ok(None)` when
/// there is no such part. `BINARY[]` is the whole message, header included.
pub fn binary(msg: &[u8], root: &Part, path: &[u32]) -> Result<Option<Binary>, Undecodable> {
    let Some(part) = find(root, path) else {
        return Ok(None);
    };
    // Dovecot looks at every encoding before it decodes anything: an unknown one anywhere
    // wins over invalid data anywhere.
    if !known_ctes(msg, part, 0) {
        return Err(Undecodable::UnknownCte);
    }
    let mut out = Binary::default();
    add_part(msg, part, path.is_empty(), &mut out, 0)?;
    Ok(Some(out))
}

/// Is every Content-Transfer-Encoding in `part` and the parts inside it known?
fn known_ctes(msg: &[u8], part: &Part, depth: usize) -> bool {
    if Cte::of(msg, part) == Cte::Unknown {
        return false;
    }
    match &part.kind {
        _ if depth >= MAX_DEPTH => true,
        Kind::Multipart(children) => children.iter().all(|c| known_ctes(msg, c, depth + 1)),
        Kind::Message(child) => known_ctes(msg, child, depth + 1),
        Kind::Leaf { .. } => true,
    }
}

/// Is `BINARY[]` of a message with this header block its bytes as they are (a single part
/// whose encoding is 7bit, 8bit or binary)? Then a big message can be streamed from its file.
pub fn verbatim(header: &[u8]) -> bool {
    let root = super::parse::parse(header);
    matches!(root.kind, Kind::Leaf { .. }) && Cte::of(header, &root) == Cte::Identity
}

/// Can the body under this header block be decoded (its Content-Transfer-Encoding is known)?
/// Dovecot's PREVIEW is empty for a text part it cannot decode.
pub fn decodable(header: &[u8]) -> bool {
    let root = super::parse::parse(header);
    Cte::of(header, &root) != Cte::Unknown
}

/// Nesting beyond this is sent as it is (the parser limits it already).
const MAX_DEPTH: usize = 100;

/// Append the content of `part` (its header too when `with_header`) to `out`.
fn add_part(
    msg: &[u8],
    part: &Part,
    with_header: bool,
    out: &mut Binary,
    depth: usize,
) -> Result<(), Undecodable> {
    let cte = Cte::of(msg, part);
    if cte == Cte::Unknown {
        return Err(Undecodable::UnknownCte);
    }
    let header = msg.get(part.header.clone()).unwrap_or_default();
    // Dovecot: a NUL in the header makes it binary even when only the body is sent.
    out.literal8 |= header.contains(&0);
    if with_header {
        if cte.converted() {
            binary_header(msg, part, &mut out.data);
        } else {
            out.data.extend_from_slice(header);
        }
    }
    let body = part.body.clone();
    let children: Vec<&Part> = match &part.kind {
        Kind::Multipart(children) => children.iter().collect(),
        Kind::Message(child) => vec![child],
        Kind::Leaf { .. } => Vec::new(),
    };
    if children.is_empty() || depth >= MAX_DEPTH {
        let raw = msg.get(body).unwrap_or_default();
        match cte {
            Cte::Base64 => out.data.extend_from_slice(&base64_strict(raw)?),
            Cte::QuotedPrintable if qp_valid(raw) => out.data.extend_from_slice(&decode_qp(raw)),
            Cte::QuotedPrintable => return Err(Undecodable::Invalid),
            _ => {
                out.literal8 |= raw.contains(&0);
                out.data.extend_from_slice(raw);
            }
        }
        out.literal8 |= cte.converted() && !raw.is_empty();
        return Ok(());
    }
    // The bytes between the parts (preamble, boundaries, epilogue) as they are.
    let mut at = body.start;
    for child in children {
        let start = child.header.start.max(at);
        copy(msg, at..start, out);
        add_part(msg, child, true, out, depth + 1)?;
        at = child.body.end.max(start);
    }
    copy(msg, at..body.end.max(at), out);
    Ok(())
}

/// Base64 (RFC 2045 §6.8) with line breaks and blanks between the characters; anything else
/// outside the alphabet, or missing or misplaced padding, is invalid.
fn base64_strict(raw: &[u8]) -> Result<Vec<u8>, Undecodable> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    let chars: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .collect();
    ENGINE.decode(chars).map_err(|_| Undecodable::Invalid)
}

/// Base64 decoded up to where it stops being valid (the first character outside the
/// alphabet, or the end of a padded quantum), as Dovecot's decoder gives it to PREVIEW.
pub(super) fn base64_prefix(raw: &[u8]) -> Vec<u8> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let mut chars = Vec::new();
    let mut padded = false;
    for &b in raw {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if !padded => chars.push(b),
            b'=' => {
                padded = true;
                chars.push(b);
                if chars.len() % 4 == 0 {
                    break;
                }
            }
            _ => break,
        }
    }
    // An unfinished quantum decodes as far as it goes; a single character is nothing. Only
    // the last quantum can be wrong: at most three tries.
    while !chars.is_empty() {
        if let Ok(d) = ENGINE.decode(&chars) {
            return d;
        }
        chars.pop();
    }
    Vec::new()
}

/// Is every `=` of quoted-printable (RFC 2045 §6.7) followed by two hex digits, or by blanks
/// and the end of the line (a soft line break)?
fn qp_valid(raw: &[u8]) -> bool {
    let mut i = 0;
    while let Some(at) = raw.get(i..).and_then(|r| r.iter().position(|&b| b == b'=')) {
        let rest = &raw[i + at + 1..];
        let hex = rest.len() >= 2 && rest[0].is_ascii_hexdigit() && rest[1].is_ascii_hexdigit();
        let blanks = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        let soft = matches!(
            rest.get(blanks..),
            Some([] | [b'\r', b'\n', ..] | [b'\n', ..])
        );
        if !hex && !soft {
            return false;
        }
        i += at + 1;
    }
    true
}

fn copy(msg: &[u8], r: std::ops::Range<usize>, out: &mut Binary) {
    let bytes = msg.get(r).unwrap_or_default();
    out.literal8 |= bytes.contains(&0);
    out.data.extend_from_slice(bytes);
}

/// The header of a decoded part: its fields without Content-Transfer-Encoding, then
/// `Content-Transfer-Encoding: binary`, then the empty line ending it.
fn binary_header(msg: &[u8], part: &Part, out: &mut Vec<u8>) {
    let mut at = part.header.start;
    for f in &part.fields {
        if name_is(msg, f, "Content-Transfer-Encoding") {
            out.extend_from_slice(msg.get(at..f.raw.start).unwrap_or_default());
            at = f.raw.end.min(part.header.end);
        }
    }
    // What follows the last kept field: the empty line, when the header has one.
    let end = part.header.end;
    let tail_start = if part.complete_header {
        end.saturating_sub(2).max(at)
    } else {
        end
    };
    out.extend_from_slice(msg.get(at..tail_start).unwrap_or_default());
    out.extend_from_slice(b"Content-Transfer-Encoding: binary\r\n");
    out.extend_from_slice(msg.get(tail_start..end).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse::parse;

    fn bin(msg: &[u8], path: &[u32]) -> Result<Option<Binary>, Undecodable> {
        binary(msg, &parse(msg), path)
    }

    #[test]
    fn leaf_parts_are_decoded() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAGE=\r\n--b\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nx=3Dy\r\n--b\r\n\r\nplain\r\n--b--\r\n";
        let one = bin(msg, &[1]).unwrap().unwrap();
        assert_eq!((one.data.as_slice(), one.literal8), (&b"\0a"[..], true));
        let two = bin(msg, &[2]).unwrap().unwrap();
        assert_eq!((two.data.as_slice(), two.literal8), (&b"x=y"[..], true));
        let three = bin(msg, &[3]).unwrap().unwrap();
        assert_eq!(
            (three.data.as_slice(), three.literal8),
            (&b"plain"[..], false)
        );
        assert_eq!(bin(msg, &[4]), Ok(None));
    }

    #[test]
    fn whole_message_decodes_every_part_and_rewrites_its_header() {
        let msg = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n\
Content-Transfer-Encoding: BASE64\r\nContent-Type: text/plain\r\n\r\naGk=\r\n--b--\r\nepi\r\n";
        let b = bin(msg, &[]).unwrap().unwrap();
        let want = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n\
Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nhi\r\n--b--\r\nepi\r\n";
        assert_eq!(
            String::from_utf8_lossy(&b.data),
            String::from_utf8_lossy(want)
        );
        assert!(b.literal8);
    }

    #[test]
    fn invalid_data_is_refused() {
        let one = |cte: &str, body: &str| {
            let msg = format!("Content-Transfer-Encoding: {cte}\r\n\r\n{body}");
            bin(msg.as_bytes(), &[1]).map(|b| b.unwrap().data)
        };
        assert_eq!(one("base64", "aGVs\r\n bG8=\r\n"), Ok(b"hello".to_vec()));
        assert_eq!(one("base64", "aGl="), Ok(b"hi".to_vec()));
        assert_eq!(one("base64", ""), Ok(Vec::new()));
        for bad in ["aGVs!!bG8=", "aGVsbG8", "aGVsbG8=aGk=", "aGk=="] {
            assert_eq!(one("base64", bad), Err(Undecodable::Invalid), "{bad}");
        }
        assert_eq!(
            one("quoted-printable", "a=3Db=3d =  \r\nc="),
            Ok(b"a=b= c".to_vec())
        );
        for bad in ["a=ZZ", "a=3", "a= b\r\n", "=é"] {
            assert_eq!(
                one("quoted-printable", bad),
                Err(Undecodable::Invalid),
                "{bad:?}"
            );
        }
        // Inside BINARY[] as well; an unknown encoding anywhere is reported first.
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Transfer-Encoding: base64\r\n\r\n!!\r\n--b\r\n\r\nok\r\n--b--\r\n";
        assert_eq!(bin(msg, &[]), Err(Undecodable::Invalid));
        let both = String::from_utf8_lossy(msg)
            .replace("\r\n\r\nok", "\r\nContent-Transfer-Encoding: x\r\n\r\nok");
        assert_eq!(bin(both.as_bytes(), &[]), Err(Undecodable::UnknownCte));
    }

    #[test]
    fn base64_prefix_stops_where_the_data_does() {
        assert_eq!(base64_prefix(b"aGVs!!bG8="), b"hel");
        assert_eq!(base64_prefix(b"aGVs\r\nbG8=\r\naGk=\r\n"), b"hello");
        assert_eq!(base64_prefix(b"aGVsbG8"), b"hello");
        assert_eq!(base64_prefix(b"aGk=="), b"hi");
        assert_eq!(base64_prefix(b"a"), b"");
        let long = [&b"aG="[..], &[b'A'; 100_000]].concat();
        assert_eq!(base64_prefix(&long), b"h");
    }

    #[test]
    fn verbatim_only_for_a_single_unencoded_part() {
        assert!(verbatim(b"Subject: x\r\n\r\n"));
        assert!(verbatim(b"Content-Transfer-Encoding: 8bit\r\n\r\n"));
        assert!(!verbatim(b"Content-Transfer-Encoding: base64\r\n\r\n"));
        assert!(!verbatim(b"Content-Transfer-Encoding: x-foo\r\n\r\n"));
        assert!(!verbatim(
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        ));
        assert!(!verbatim(
            b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
        ));
    }

    #[test]
    fn unknown_encoding_fails_only_where_it_is_sent() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b\r\n\r\nok\r\n--b--\r\n";
        assert_eq!(bin(msg, &[1]), Err(Undecodable::UnknownCte));
        assert_eq!(bin(msg, &[]), Err(Undecodable::UnknownCte));
        assert_eq!(bin(msg, &[2]).unwrap().unwrap().data, b"ok");
        // An empty value is not an encoding either.
        let empty = b"Content-Transfer-Encoding:\r\n\r\nx\r\n";
        assert_eq!(bin(empty, &[1]), Err(Undecodable::UnknownCte));
        let more = b"Content-Transfer-Encoding: base64 x\r\n\r\naGk=\r\n";
        assert_eq!(bin(more, &[1]), Err(Undecodable::UnknownCte));
        // The last field counts.
        let two =
            b"Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit (c)\r\n\r\naGk=";
        assert_eq!(bin(two, &[1]).unwrap().unwrap().data, b"aGk=");
    }
}
