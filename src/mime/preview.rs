//! PREVIEW text (RFC 8970 §3): the start of a message's first text part, decoded (transfer
//! encoding and charset undone by mail-parser), HTML turned into text, whitespace collapsed,
//! at most [`MAX_CHARS`] characters.
//!
//! The plain-text rules follow Dovecot 2.3's "fuzzy" snippet, so both servers give the same
//! preview for the same plain-text message: quoted lines (starting with `>`) are skipped, and
//! used (after a `>`) only when there is nothing else; runs of whitespace become one space,
//! none at the start or the end; NUL and byte-order marks are dropped. HTML is made text by
//! mail-parser, not Dovecot's converter, so HTML previews may differ from Dovecot's.

use mail_parser::{Message, MessageParser, PartType};

/// The longest preview, in characters (Dovecot's; RFC 8970 §3 allows up to 256).
pub const MAX_CHARS: usize = 200;

/// The preview of `msg` (the whole message): empty when it has no text part.
pub fn preview(msg: &[u8]) -> String {
    let Some(m) = MessageParser::default().parse(msg) else {
        return String::new();
    };
    match first_text(msg, &m) {
        Some(text) => snippet(&text),
        None => String::new(),
    }
}

/// The decoded text of the message's first text body part (text/plain preferred to
/// text/html in a multipart/alternative, as Dovecot does). `None` when it has none, or
/// when that part's transfer encoding is unknown (Dovecot then has no text either).
fn first_text(msg: &[u8], m: &Message<'_>) -> Option<String> {
    let idx = m.text_body.first().or(m.html_body.first())?;
    let part = m.parts.get(*idx as usize)?;
    let header = msg.get(part.offset_header as usize..part.offset_body as usize)?;
    if !super::binary::decodable(header) {
        return None;
    }
    match &part.body {
        PartType::Text(t) => Some(t.to_string()),
        PartType::Html(h) => Some(mail_parser::decoders::html::html_to_text(h)),
        _ => None,
    }
}

/// Where the text being read goes.
#[derive(Default)]
struct Target {
    text: String,
    left: usize,
}

impl Target {
    fn new() -> Target {
        Target {
            text: String::new(),
            left: MAX_CHARS,
        }
    }
}

/// Dovecot's snippet of plain text (see the module doc).
fn snippet(text: &str) -> String {
    let mut body = Target::new();
    let mut quoted = Target::new();
    let mut at_line_start = true;
    let mut in_quote = false;
    let mut space = false;
    let mut chars = text.chars().peekable();
    while let Some(mut c) = chars.next() {
        if at_line_start {
            at_line_start = false;
            in_quote = c == '>';
            if in_quote {
                // The `>` itself is not part of the text.
                match chars.next() {
                    Some(next) => c = next,
                    None => break,
                }
            }
        }
        let target = if in_quote { &mut quoted } else { &mut body };
        if c == '\0' || c == '\u{feff}' {
            continue;
        }
        if c.is_ascii_whitespace() || c == '\x0b' {
            // No space before the text.
            if !target.text.is_empty() {
                space = true;
            }
            at_line_start = c == '\n';
            continue;
        }
        if space {
            space = false;
            if target.left == 0 {
                break;
            }
            target.text.push(' ');
            target.left -= 1;
        }
        if target.left == 0 {
            if in_quote {
                continue;
            }
            break;
        }
        target.left -= 1;
        target.text.push(c);
        if body.left == 0 {
            break;
        }
    }
    if !body.text.is_empty() {
        body.text.trim().to_string()
    } else if !quoted.text.is_empty() {
        format!(">{}", quoted.text.trim())
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_collapses_and_quotes_are_skipped() {
        assert_eq!(
            snippet("  Hello\r\n\r\n  world\tand  more  \r\n"),
            "Hello world and more"
        );
        assert_eq!(snippet("Hi,\r\n> quoted\r\n>> more\r\nreply"), "Hi, reply");
        assert_eq!(snippet("> only quoted\r\n> text"), ">only quoted text");
        assert_eq!(snippet("\u{feff}a\0b"), "ab");
        assert_eq!(snippet(""), "");
    }

    #[test]
    fn at_most_200_characters() {
        let long = "é".repeat(500);
        assert_eq!(snippet(&long).chars().count(), MAX_CHARS);
        let words = "word ".repeat(100);
        let s = snippet(&words);
        assert!(!s.ends_with(' '));
        assert_eq!(s.chars().count(), MAX_CHARS - 1);
        assert_eq!(snippet("I am here"), "I am here");
    }

    #[test]
    fn first_text_part_decoded() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: application/pdf\r\n\r\nxx\r\n--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=FC=DFe\r\n--b--\r\n";
        assert_eq!(preview(msg), "Grüße");
        let html =
            b"Content-Type: text/html\r\n\r\n<html><body><p>Hello <b>you</b></p></body></html>\r\n";
        assert_eq!(preview(html), "Hello you");
        assert_eq!(preview(b"Content-Type: image/png\r\n\r\nxx\r\n"), "");
        let alt = b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/html\r\n\r\n<p>html</p>\r\n--b\r\n\r\nplain\r\n--b--\r\n";
        assert_eq!(preview(alt), "plain");
        assert_eq!(
            preview(b"Content-Transfer-Encoding: x-uue\r\n\r\ntext\r\n"),
            ""
        );
    }
}
