//! The message IDs of a Message-ID, In-Reply-To or References field, for THREAD (RFC 5256
//! §2.1 step 1), read the way Dovecot 2.3 reads them (`message_id_get_next`), so both servers
//! link the same messages: the text between `<` and `>` when it holds an `@`, whitespace
//! removed; when a `"` or `(` comes first, the RFC 5322 `msg-id` tokenizer (quoted local
//! part, comments); anything else is skipped up to the next `<`. IDs compare byte for byte.
//!
//! Pure: no I/O, no panics, linear in the value (a field of 10,000 IDs is one pass). The
//! tokenizer may rescan the rest of the value from every `<(` (an unclosed comment), which
//! Dovecot does without bound; here all such rescans together read at most [`SLOW_BUDGET`]
//! times the value's length, after which the tokenizer path finds nothing.

use super::rfc822::is_atext;

/// Bytes the tokenizer path may read, per byte of the value.
pub const SLOW_BUDGET: usize = 4;

/// Every valid ID in `value`, in order.
pub fn all(value: &[u8]) -> Vec<Vec<u8>> {
    let mut pos = 0;
    let mut budget = budget(value);
    let mut out = Vec::new();
    while let Some(id) = next(value, &mut pos, &mut budget) {
        out.push(id);
    }
    out
}

/// The first valid ID in `value`.
pub fn first(value: &[u8]) -> Option<Vec<u8>> {
    next(value, &mut 0, &mut budget(value))
}

fn budget(value: &[u8]) -> usize {
    value.len().saturating_mul(SLOW_BUDGET).saturating_add(4096)
}

/// The next valid ID at or after `*pos` (which moves past it); `None` at the end. A NUL ends
/// the value, as it does Dovecot's C string. `budget`: what the tokenizer path may still read.
fn next(s: &[u8], pos: &mut usize, budget: &mut usize) -> Option<Vec<u8>> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    loop {
        // Up to and past the next '<'.
        while at(*pos) != b'<' {
            if at(*pos) == 0 {
                return None;
            }
            *pos += 1;
        }
        *pos += 1;
        let start = *pos;
        // The quick scan: bytes from 'A' up never end it (so neither does '['), as in Dovecot.
        let mut p = start;
        let mut found_at = false;
        let stop = loop {
            let b = at(p);
            if b >= b'A' {
                p += 1;
                continue;
            }
            found_at |= b == b'@';
            if matches!(b, b'>' | b'"' | b'(') || b == 0 {
                break b;
            }
            p += 1;
        };
        match stop {
            0 => return None,
            b'>' => {
                *pos = p + 1;
                if found_at {
                    let id = &s[start..p];
                    return Some(id.iter().copied().filter(|b| !is_lwsp(*b)).collect());
                }
            }
            _ => {
                let end = s.len().min(start.saturating_add(*budget));
                let mut t = Tokens {
                    s: &s[..end],
                    pos: start,
                };
                let id = t.msg_id();
                *budget -= t.pos.min(end) - start;
                if let Some(id) = id {
                    *pos = t.pos;
                    return Some(id);
                }
            }
        }
    }
}

fn is_lwsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The slow path: `[CFWS] (dot-atom / quoted-string) "@" [CFWS] dot-atom ">"`.
struct Tokens<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Tokens<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.pos).copied().unwrap_or(0)
    }

    /// Skip whitespace and (nested) comments; false at the end or in an unclosed comment.
    fn skip_cfws(&mut self) -> bool {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                0 => return false,
                b if is_lwsp(b) => {}
                b'(' => depth += 1,
                b')' if depth > 0 => depth -= 1,
                b'\\' if depth > 0 => self.pos += 1,
                _ if depth > 0 => {}
                _ => return true,
            }
            self.pos += 1;
        }
    }

    fn msg_id(&mut self) -> Option<Vec<u8>> {
        let mut id = Vec::new();
        self.skip_cfws();
        if self.peek() == b'"' {
            self.quoted(&mut id)?;
        } else {
            self.dot_atom(&mut id)?;
        }
        if self.peek() != b'@' {
            return None;
        }
        id.push(b'@');
        self.pos += 1;
        self.skip_cfws();
        self.dot_atom(&mut id)?;
        if self.peek() != b'>' {
            return None;
        }
        self.pos += 1;
        Some(id)
    }

    /// A quoted string's content (escapes resolved, line breaks dropped), then CFWS; `None`
    /// if the value ends first.
    fn quoted(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.pos += 1;
        loop {
            match self.peek() {
                0 => return None,
                b'"' => break,
                b'\r' | b'\n' => {}
                b'\\' => {
                    self.pos += 1;
                    match self.peek() {
                        0 => return None,
                        b => out.push(b),
                    }
                }
                b => out.push(b),
            }
            self.pos += 1;
        }
        self.pos += 1;
        self.skip_cfws().then_some(())
    }

    /// `1*atext *("." 1*atext)`, CFWS allowed around the dots; `None` if it does not start
    /// with atext or the value ends in it.
    fn dot_atom(&mut self, out: &mut Vec<u8>) -> Option<()> {
        if !is_atext(self.peek()) {
            return None;
        }
        loop {
            while is_atext(self.peek()) {
                out.push(self.peek());
                self.pos += 1;
            }
            if !self.skip_cfws() {
                return None;
            }
            if self.peek() != b'.' {
                return Some(());
            }
            out.push(b'.');
            self.pos += 1;
            if !self.skip_cfws() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &str) -> Vec<String> {
        all(v.as_bytes())
            .into_iter()
            .map(|i| String::from_utf8(i).unwrap())
            .collect()
    }

    #[test]
    fn plain_and_garbage() {
        assert_eq!(ids("<a@b> <c@d>"), ["a@b", "c@d"]);
        assert_eq!(ids("junk <nodomain> x <a@b>"), ["a@b"]);
        assert_eq!(ids("<a @ b\r\n .c>"), ["a@b.c"]);
        assert_eq!(ids("<a<b@c>"), ["a<b@c"]);
        assert_eq!(ids("<A@B>"), ["A@B"]);
        assert!(ids("").is_empty());
        assert!(ids("<a@b").is_empty());
        assert!(ids("a@b").is_empty());
        assert_eq!(ids("<x@y>\0<a@b>"), ["x@y"]);
    }

    #[test]
    fn slow_path() {
        assert_eq!(ids("<\"a b\"@c>"), ["a b@c"]);
        assert_eq!(ids("<(comment) a.b @ (c) d.e>"), ["a.b@d.e"]);
        assert_eq!(ids("<\"unterminated@x> <ok@y>"), ["ok@y"]);
        assert_eq!(ids("<(x@y> <a@b>"), ["a@b"]);
        assert_eq!(ids("<a(c)@[1.2.3.4]> <q@r>"), ["q@r"]);
    }

    #[test]
    fn many_is_linear() {
        let v = "<a@b> ".repeat(100_000);
        assert_eq!(all(v.as_bytes()).len(), 100_000);
        let junk = "<".repeat(100_000);
        assert!(all(junk.as_bytes()).is_empty());
        // Each `<(` would rescan the rest as an unclosed comment: bounded by the budget.
        let t = std::time::Instant::now();
        let comments = "<(".repeat(200_000) + "<a@b>";
        assert!(all(comments.as_bytes()).len() <= 1);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
