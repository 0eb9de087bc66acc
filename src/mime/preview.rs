//! PREVIEW text (RFC 8970 §3): the start of a message's first text part, decoded (transfer
//! encoding and charset undone by mail-parser), HTML turned into text, whitespace collapsed,
//! at most [`MAX_CHARS`] characters.
//!
//! The rules follow Dovecot 2.3's "fuzzy" snippet, so both servers give the same preview for
//! the same message: quoted lines (starting with `>`) are skipped, and used
//! (after a `>`) only when there is nothing else; runs of whitespace become one space, none
//! at the start or the end; NUL and byte-order marks are dropped. HTML becomes text the way
//! Dovecot's converter makes it ([`html_text`]): every tag is a space, comments, scripts,
//! styles and `<blockquote>` contents are dropped, entities are decoded.

use mail_parser::{Message, MessageParser, PartType};

/// The longest preview, in characters (Dovecot's; RFC 8970 §3 allows up to 256).
pub const MAX_CHARS: usize = 200;

/// The preview of `msg` (the whole message): empty when it has no text part.
pub fn preview(msg: &[u8]) -> String {
    let Some(m) = MessageParser::default().parse(msg) else {
        return String::new();
    };
    match first_text(msg, &m) {
        Some(Text::Plain(text)) => snippet(&text),
        Some(Text::Html(html)) => snippet(&html_text(&html)),
        None => String::new(),
    }
}

/// A text part's decoded content.
enum Text {
    Plain(String),
    Html(String),
}

/// The decoded text of the message's first text body part (text/plain preferred to
/// text/html in a multipart/alternative, as Dovecot does). `None` when it has none, or
/// when that part's transfer encoding is unknown (Dovecot then has no text either).
fn first_text(msg: &[u8], m: &Message<'_>) -> Option<Text> {
    let idx = m.text_body.first().or(m.html_body.first())?;
    let part = m.parts.get(*idx as usize)?;
    let header = msg.get(part.offset_header as usize..part.offset_body as usize)?;
    if !super::binary::decodable(header) {
        return None;
    }
    match &part.body {
        PartType::Text(t) => Some(Text::Plain(t.to_string())),
        PartType::Html(h) => Some(Text::Html(h.to_string())),
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

/// Dovecot's snippet of text (see the module doc); also of the text of HTML, where a line
/// starting with `>` is quoted too.
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

/// Most bytes of text taken from HTML: the preview needs a few hundred, but whitespace and
/// quoted text are dropped only later.
const HTML_TEXT_MAX: usize = 64 * 1024;

/// The text of an HTML document as Dovecot's converter makes it for a preview: each tag is a
/// space; comments, `<script>`, `<style>` and what is inside `<blockquote>` are dropped
/// (entities inside a blockquote are not, as in Dovecot); `<![CDATA[...]]>` is text; an
/// entity is decoded, or dropped when unknown; a `&` not starting an entity within 9
/// characters is dropped.
pub fn html_text(html: &str) -> String {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut quoted = 0u32;
    let mut i = 0;
    while i < b.len() && out.len() < HTML_TEXT_MAX {
        i = match b[i] {
            b'<' => tag(b, i + 1, &mut out, &mut quoted),
            b'&' => entity(b, i + 1, &mut out),
            c => {
                if quoted == 0 {
                    out.push(c);
                }
                i + 1
            }
        };
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn add_space(out: &mut Vec<u8>) {
    if out.last().is_some_and(|&c| c != b' ') {
        out.push(b' ');
    }
}

fn starts_with_ci(b: &[u8], at: usize, word: &[u8]) -> bool {
    b.get(at..at + word.len())
        .is_some_and(|w| w.eq_ignore_ascii_case(word))
}

/// Where `word` (any case) starts in `b` at or after `at`.
fn find_ci(b: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    (at..b.len()).find(|&i| starts_with_ci(b, i, word))
}

/// A tag name (`word`) ends with a blank or `>`.
fn is_tag(b: &[u8], at: usize, word: &[u8]) -> bool {
    starts_with_ci(b, at, word)
        && matches!(
            b.get(at + word.len()),
            Some(b' ' | b'\t' | b'\r' | b'\n' | b'>')
        )
}

/// The markup after a `<` at `at`: where the text goes on.
fn tag(b: &[u8], at: usize, out: &mut Vec<u8>, quoted: &mut u32) -> usize {
    if b.get(at..at + 3) == Some(b"!--") {
        // A comment ends at `--`, blanks, `>`.
        let mut i = at + 3;
        while let Some(dash) = find_ci(b, i, b"--") {
            let mut j = dash + 2;
            while matches!(b.get(j), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                j += 1;
            }
            if b.get(j) == Some(&b'>') {
                return j + 1;
            }
            i = dash + 2;
        }
        return b.len();
    }
    for (name, end) in [(&b"script"[..], &b"</script>"[..]), (b"style", b"</style>")] {
        if is_tag(b, at, name) {
            return match find_ci(b, at, end) {
                Some(e) => {
                    add_space(out);
                    e + end.len()
                }
                None => b.len(),
            };
        }
    }
    if starts_with_ci(b, at, b"![CDATA[") {
        let start = at + 8;
        let end = find_ci(b, start, b"]]>").unwrap_or(b.len());
        if *quoted == 0 {
            out.extend_from_slice(&b[start.min(end)..end]);
        }
        return (end + 3).min(b.len());
    }
    if is_tag(b, at, b"blockquote") {
        *quoted += 1;
    } else if *quoted > 0 && starts_with_ci(b, at, b"/blockquote>") {
        *quoted -= 1;
    }
    // The rest of the tag; `>` inside quoted attribute values does not end it.
    let mut quote = None;
    let mut i = at;
    while let Some(&c) = b.get(i) {
        match (quote, c) {
            (Some(_), b'\\') => i += 1,
            (Some(q), _) if c == q => quote = None,
            (None, b'"' | b'\'') => quote = Some(c),
            (None, b'>') => {
                add_space(out);
                return i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The entity after a `&` at `at`: where the text goes on.
fn entity(b: &[u8], at: usize, out: &mut Vec<u8>) -> usize {
    let mut i = at;
    loop {
        match b.get(i) {
            None => return b.len(),
            Some(b' ' | b'\t' | b'\r' | b'\n') => return at,
            Some(_) if i - at >= 10 => return at,
            Some(b';') => break,
            Some(_) => i += 1,
        }
    }
    let name = &b[at..i];
    let code = match name {
        [b'#', b'x', hex @ ..] => std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok()),
        [b'#', dec @ ..] => std::str::from_utf8(dec).ok().and_then(|d| d.parse().ok()),
        _ => {
            let token = &b[at - 1..=i];
            let mut decoded = String::new();
            mail_parser::decoders::html::add_html_token(&mut decoded, token, false);
            if decoded.as_bytes() != token {
                out.extend_from_slice(decoded.as_bytes());
            }
            return i + 1;
        }
    };
    if let Some(c) = code.and_then(char::from_u32) {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    i + 1
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
    fn html_markup_is_dropped() {
        let t = |h| snippet(&html_text(h));
        assert_eq!(t("a<!-- x -- y -->b<!-- z --  >c"), "abc");
        assert_eq!(t("a<SCRIPT type=x>if (a<b) {}</script>b"), "a b");
        assert_eq!(t("<a href=\"x>y\" title='q\\'>'>link</a>"), "link");
        assert_eq!(t("x<![CDATA[<raw>]]>y"), "x<raw>y");
        assert_eq!(
            t("<blockquote>q<blockquote>qq</blockquote>&lt;q</blockquote>after"),
            "< after"
        );
        assert_eq!(t("AT&T and &unknown; &#233;&#xE9; &amp"), "ATT and éé");
        assert_eq!(t("<p>unclosed <b"), "unclosed");
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
