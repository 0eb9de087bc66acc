//! HTML made text for PREVIEW (RFC 8970 §3), the way Dovecot 2.3's converter makes it, so
//! both servers give the same preview of an HTML message.

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
    fn html_markup_is_dropped() {
        let t = |h| super::super::preview::tests_snippet(&html_text(h));
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
}
