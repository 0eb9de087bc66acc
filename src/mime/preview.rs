//! PREVIEW text (RFC 8970 §3): the start of a message's first text part, decoded (transfer
//! encoding undone here, the charset by mail-parser's decoders), HTML turned into text,
//! whitespace collapsed, at most [`MAX_CHARS`] characters. Only that part is decoded: a big
//! attachment costs nothing.
//!
//! The rules follow Dovecot 2.3's "fuzzy" snippet, so both servers give the same preview for
//! the same message: quoted lines (starting with `>`) are skipped, and used
//! (after a `>`) only when there is nothing else; runs of whitespace become one space, none
//! at the start or the end; NUL and byte-order marks are dropped. HTML becomes text the way
//! Dovecot's converter makes it ([`super::html::html_text`]). The part is the first text part,
//! except that a multipart/alternative gives its text/plain part when it has one and attached
//! messages are not looked into; base64 that
//! turns invalid is decoded up to there, and a part whose transfer encoding is unknown has no
//! text, as in Dovecot.

use super::binary::{self, Cte};
use super::html::html_text;
use super::parse::{Kind, Part};
use super::structure::content_type;

/// The longest preview, in characters (Dovecot's; RFC 8970 §3 allows up to 256).
pub const MAX_CHARS: usize = 200;

/// The preview of `msg` (the whole message, CRLF line ends): empty when it has no text part.
pub fn preview(msg: &[u8]) -> String {
    let root = super::parse::parse(msg);
    let Some((part, html)) = text_part(msg, &root, 0) else {
        return String::new();
    };
    let Some(text) = decoded_text(msg, part) else {
        return String::new();
    };
    if html {
        snippet(&html_text(&text))
    } else {
        snippet(&text)
    }
}

/// Parts nested deeper than this are not looked at (the parser limits nesting already).
const MAX_DEPTH: usize = 100;

/// The text part the preview is made of, and whether it is HTML.
fn text_part<'p>(msg: &[u8], part: &'p Part, depth: usize) -> Option<(&'p Part, bool)> {
    if depth > MAX_DEPTH {
        return None;
    }
    match &part.kind {
        Kind::Leaf { .. } => match content_type(msg, part) {
            None => Some((part, false)),
            Some((ty, sub, _)) if ty.is_empty() || ty.eq_ignore_ascii_case(b"text") => {
                Some((part, sub.eq_ignore_ascii_case(b"html")))
            }
            Some(_) => None,
        },
        // Dovecot does not look into an attached message.
        Kind::Message(_) => None,
        Kind::Multipart(children) => {
            let mut found = children.iter().filter_map(|c| text_part(msg, c, depth + 1));
            let alternative = content_type(msg, part)
                .is_some_and(|(_, sub, _)| sub.eq_ignore_ascii_case(b"alternative"));
            if alternative {
                let all: Vec<_> = found.collect();
                all.iter().find(|(_, html)| !html).or(all.first()).copied()
            } else {
                found.next()
            }
        }
    }
}

/// The text of a leaf part: transfer encoding undone (`None` when unknown), then its charset
/// (UTF-8 when it names none or one mail-parser does not know).
fn decoded_text(msg: &[u8], part: &Part) -> Option<String> {
    let raw = msg.get(part.body.clone()).unwrap_or_default();
    let bytes = match Cte::of(msg, part) {
        Cte::Unknown => return None,
        Cte::Identity => raw.to_vec(),
        Cte::Base64 => binary::base64_prefix(raw),
        Cte::QuotedPrintable => super::section::decode_qp(raw),
    };
    let charset = content_type(msg, part).and_then(|(_, _, params)| {
        params
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
            .map(|(_, v)| v)
    });
    let decoder = charset.and_then(|c| mail_parser::decoders::charsets::map::charset_decoder(&c));
    Some(match decoder {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Where the text being read goes.
#[derive(Default)]
struct Target {
    text: String,
    left: usize,
}

impl Target {
    fn new(left: usize) -> Target {
        Target {
            text: String::new(),
            left,
        }
    }
}

/// Dovecot's snippet of text (see the module doc); also of the text of HTML, where a line
/// starting with `>` is quoted too.
fn snippet(text: &str) -> String {
    let mut body = Target::new(MAX_CHARS);
    // One character less: a preview of quoted text starts with the `>` (as in Dovecot).
    let mut quoted = Target::new(MAX_CHARS - 1);
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

/// [`snippet`] for the tests of the HTML converter.
#[cfg(test)]
pub(super) fn tests_snippet(text: &str) -> String {
    snippet(text)
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
        // Only quoted text: the `>` counts (found by the fuzzer: 201 characters).
        let quoted = format!(">{}", "q".repeat(500));
        assert_eq!(snippet(&quoted).chars().count(), MAX_CHARS);
        assert!(snippet(&quoted).starts_with(">qq"));
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
        let page = "<html><head><title>T</title><style>p{}</style></head><body><p>Hi \
<b>there</b>&amp; you</p>\r\n<blockquote>quoted</blockquote><p>second&nbsp;para</p></body></html>";
        assert_eq!(
            snippet(&html_text(page)),
            "T Hi there & you second\u{a0}para"
        );
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
