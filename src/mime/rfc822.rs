//! RFC 5322 / RFC 2045 lexical tokens (CFWS, quoted-string, atom, dot-atom, domain, MIME
//! token, `; attr=value` parameters) and RFC 2231 parameter continuation merging.
//!
//! This follows the tolerant tokenizer Dovecot 2.3 uses, because IMAP clients see its results
//! byte for byte (names in ENVELOPE, parameters in BODYSTRUCTURE): comments are skipped (the last
//! one is remembered: it becomes an address's name), folding (CR)LF is removed inside quoted
//! strings and comments, and every function stops at the end of input instead of failing.
//! Pure, linear in the input, no panics: all indexing goes through `peek()`.

/// `atext` (RFC 5322 §3.2.3); 8-bit bytes count as atext (UTF-8 in headers, RFC 6532).
pub fn is_atext(b: u8) -> bool {
    b >= 0x80
        || b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'/'
                | b'='
                | b'?'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
        )
}

/// A MIME `token` character (RFC 2045 §5.1: no tspecials), plus `.` as Dovecot allows.
pub fn is_token_char(b: u8) -> bool {
    (is_atext(b) && !matches!(b, b'/' | b'=' | b'?')) || b == b'.'
}

/// Cursor over one header value.
pub struct Parser<'a> {
    data: &'a [u8],
    pub pos: usize,
    /// Text of the last comment skipped (RFC 5322 §3.2.2), when tracking is on.
    pub last_comment: Option<Vec<u8>>,
}

impl<'a> Parser<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Parser {
            data,
            pos: 0,
            last_comment: None,
        }
    }

    pub fn with_comments(data: &'a [u8]) -> Self {
        Parser {
            data,
            pos: 0,
            last_comment: Some(Vec::new()),
        }
    }

    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub fn at(&self, b: u8) -> bool {
        self.peek() == Some(b)
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn bump(&mut self) {
        if self.pos < self.data.len() {
            self.pos += 1;
        }
    }

    /// 1 when input remains, 0 at the end.
    fn more(&self) -> i32 {
        i32::from(!self.at_end())
    }

    /// Skip a comment starting at `(`: -1 when it is unterminated.
    fn skip_comment(&mut self) -> i32 {
        if let Some(c) = self.last_comment.as_mut() {
            c.clear();
        }
        self.pos += 1;
        let mut level = 1u32;
        let mut start = self.pos;
        while let Some(b) = self.peek() {
            match b {
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        let seg = &self.data[start..self.pos];
                        if let Some(c) = self.last_comment.as_mut() {
                            c.extend_from_slice(seg);
                        }
                        self.pos += 1;
                        return 1;
                    }
                }
                b'\n' => {
                    let mut seg = &self.data[start..self.pos];
                    if let Some(s) = seg.strip_suffix(b"\r") {
                        seg = s;
                    }
                    if let Some(c) = self.last_comment.as_mut() {
                        c.extend_from_slice(seg);
                    }
                    start = self.pos + 1;
                }
                b'\\' => {
                    self.pos += 1;
                    if self.at_end() {
                        return -1;
                    }
                    let seg = &self.data[start..self.pos - 1];
                    if let Some(c) = self.last_comment.as_mut() {
                        c.extend_from_slice(seg);
                    }
                    start = self.pos;
                }
                _ => {}
            }
            self.pos += 1;
        }
        -1
    }

    /// Skip whitespace and comments (CFWS): -1 on an unterminated comment, else 1 if input
    /// remains, 0 at the end.
    pub fn skip_lwsp(&mut self) -> i32 {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => {
                    if self.skip_comment() < 0 {
                        return -1;
                    }
                }
                _ => break,
            }
        }
        self.more()
    }

    /// `quoted-string` at `"`: unescaped content appended to `out` (folding removed).
    pub fn quoted_string(&mut self, out: &mut Vec<u8>) -> i32 {
        self.pos += 1;
        let mut start = self.pos;
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    out.extend_from_slice(&self.data[start..self.pos]);
                    self.pos += 1;
                    return self.skip_lwsp();
                }
                b'\n' => {
                    let mut seg = &self.data[start..self.pos];
                    if let Some(s) = seg.strip_suffix(b"\r") {
                        seg = s;
                    }
                    out.extend_from_slice(seg);
                    start = self.pos + 1;
                }
                b'\\' => {
                    self.pos += 1;
                    if self.at_end() {
                        return -1;
                    }
                    out.extend_from_slice(&self.data[start..self.pos - 1]);
                    start = self.pos;
                }
                _ => {}
            }
            self.pos += 1;
        }
        -1
    }

    /// `atom`: 1*atext then CFWS.
    pub fn atom(&mut self, out: &mut Vec<u8>) -> i32 {
        match self.peek() {
            Some(b) if is_atext(b) => {}
            _ => return -1,
        }
        let start = self.pos;
        while self.peek().is_some_and(is_atext) {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.at_end() {
            0
        } else {
            self.skip_lwsp()
        }
    }

    /// Atoms and dots of an obsolete phrase (RFC 5322 §4.1), without skipping inner spaces.
    fn atom_or_dot(&mut self, out: &mut Vec<u8>) -> i32 {
        let start = self.pos;
        while self.peek().is_some_and(|b| is_atext(b) || b == b'.') {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.at_end() {
            0
        } else {
            self.skip_lwsp()
        }
    }

    /// `phrase` (display names): words joined by one space.
    pub fn phrase(&mut self, out: &mut Vec<u8>) -> i32 {
        match self.peek() {
            None => return 0,
            Some(b'.') => return -1,
            _ => {}
        }
        loop {
            let ret = if self.at(b'"') {
                self.quoted_string(out)
            } else {
                self.atom_or_dot(out)
            };
            if ret <= 0 {
                return ret;
            }
            match self.peek() {
                Some(b) if is_atext(b) || b == b'"' || b == b'.' => out.push(b' '),
                _ => break,
            }
        }
        self.skip_lwsp()
    }

    /// `dot-atom` (with the RFC 822 tolerance of CFWS around dots).
    pub fn dot_atom(&mut self, out: &mut Vec<u8>) -> i32 {
        match self.peek() {
            Some(b) if is_atext(b) => {}
            _ => return -1,
        }
        let mut start = self.pos;
        self.pos += 1;
        while let Some(b) = self.peek() {
            if is_atext(b) {
                self.pos += 1;
                continue;
            }
            out.extend_from_slice(&self.data[start..self.pos]);
            let ret = self.skip_lwsp();
            if ret <= 0 {
                return ret;
            }
            if !self.at(b'.') {
                return 1;
            }
            self.pos += 1;
            out.push(b'.');
            let ret = self.skip_lwsp();
            if ret <= 0 {
                return ret;
            }
            start = self.pos;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        0
    }

    /// `domain` after `@` (the cursor is at the `@`): dot-atom or domain-literal.
    pub fn domain(&mut self, out: &mut Vec<u8>) -> i32 {
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        if self.at(b'[') {
            self.domain_literal(out)
        } else {
            self.dot_atom(out)
        }
    }

    fn domain_literal(&mut self, out: &mut Vec<u8>) -> i32 {
        let mut start = self.pos;
        self.pos += 1;
        while let Some(b) = self.peek() {
            match b {
                b'\\' => {
                    self.pos += 1;
                    if self.at_end() {
                        break;
                    }
                }
                b'\n' => {
                    let mut seg = &self.data[start..self.pos];
                    if let Some(s) = seg.strip_suffix(b"\r") {
                        seg = s;
                    }
                    out.extend_from_slice(seg);
                    start = self.pos + 1;
                }
                b']' => {
                    self.pos += 1;
                    out.extend_from_slice(&self.data[start..self.pos]);
                    return self.skip_lwsp();
                }
                _ => {}
            }
            self.pos += 1;
        }
        -1
    }

    /// MIME `token` (RFC 2045 §5.1) then CFWS; may be empty.
    pub fn mime_token(&mut self, out: &mut Vec<u8>) -> i32 {
        let start = self.pos;
        while self.peek().is_some_and(is_token_char) {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.at_end() {
            0
        } else {
            self.skip_lwsp()
        }
    }

    /// `type "/" subtype` (RFC 2045 §5.1) into `out` as `type/subtype`; -1 when malformed
    /// (then `out` holds what was read, e.g. just the type).
    pub fn content_type(&mut self, out: &mut Vec<u8>) -> i32 {
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        let len = out.len();
        if self.mime_token(out) <= 0 || out.len() == len {
            return -1;
        }
        if !self.at(b'/') {
            return -1;
        }
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        out.push(b'/');
        self.mime_token(out)
    }

    /// [`Parser::content_type`] as Dovecot judges the result: a value that is not
    /// `type/subtype` followed by the end or `;` is invalid, and unless the input ended right
    /// after what was read (`text`, `image`), an invalid value reads as the empty type.
    pub fn content_type_checked(&mut self, out: &mut Vec<u8>) -> i32 {
        let mut ret = self.content_type(out);
        if ret >= 0 && !(self.at_end() || self.at(b';')) {
            ret = -1;
        }
        if ret < 0 && !self.at_end() {
            out.clear();
        }
        ret
    }

    /// One `; attribute=value` (RFC 2045 §5.1): 0 at the end, -1 when malformed.
    fn content_param(&mut self) -> (i32, Vec<u8>, Vec<u8>) {
        let mut key = Vec::new();
        let mut value = Vec::new();
        if self.at_end() {
            return (0, key, value);
        }
        if !self.at(b';') {
            return (-1, key, value);
        }
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return (-1, key, value);
        }
        if self.mime_token(&mut key) <= 0 || key.is_empty() {
            return (-1, key, value);
        }
        if !self.at(b'=') {
            return (-1, key, value);
        }
        self.pos += 1;
        let mut ret = self.skip_lwsp();
        if ret > 0 {
            if self.at(b'"') {
                ret = self.quoted_string(&mut value);
            } else if self.at(b'=') {
                // Broken senders write `name==?utf-8?b?...?=`: take up to whitespace or `;`.
                while let Some(b) = self.peek() {
                    if matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    value.push(b);
                    self.pos += 1;
                }
            } else {
                ret = self.mime_token(&mut value);
            }
        }
        (if ret < 0 { -1 } else { 1 }, key, value)
    }

    /// All parameters, RFC 2231 continuations (`name*0`, `name*1*`) merged like Dovecot:
    /// plain parameters first in order, then merged ones sorted by name. Extended values are
    /// not decoded (`name*` keeps `charset'lang'%XX`), as IMAP serves them.
    pub fn params(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut result = Vec::new();
        let mut conts: Vec<Cont> = Vec::new();
        // Dovecot reuses one record, so a `name*` without an index inherits the previous index.
        let mut idx: u32 = 0;
        loop {
            let (ret, key, value) = self.content_param();
            if ret == 0 {
                break;
            }
            if ret < 0 {
                if self.at_end() {
                    break;
                }
                self.pos += 1;
                continue;
            }
            match continuation_key(&key, &mut idx) {
                Some((star, extended)) => conts.push(Cont {
                    key: key[..star].to_vec(),
                    idx,
                    extended,
                    value,
                    order: conts.len(),
                }),
                None => result.push((key, value)),
            }
        }
        merge_continuations(conts, &mut result);
        result
    }
}

/// One RFC 2231 section of a parameter: `name*idx` or `name*idx*`.
struct Cont {
    /// The name before the `*`.
    key: Vec<u8>,
    idx: u32,
    /// `name*idx*`: the value is percent-encoded.
    extended: bool,
    value: Vec<u8>,
    /// Position among the sections, to keep duplicates in order.
    order: usize,
}

/// If `key` is an RFC 2231 section name (`name*`, `name*N`, `name*N*`): where its `*` is and
/// whether it is extended. A digit run after the `*` sets `idx` (even when the name turns out
/// not to be a section name, as Dovecot's reused record does); `None`: a plain parameter.
fn continuation_key(key: &[u8], idx: &mut u32) -> Option<(usize, bool)> {
    let star = key.iter().position(|&b| b == b'*')?;
    let mut p = star;
    if key.get(p + 1).is_some() {
        p += 1;
        *idx = 0;
        while let Some(&d) = key.get(p).filter(|d| d.is_ascii_digit()) {
            *idx = idx.saturating_mul(10).saturating_add(u32::from(d - b'0'));
            p += 1;
        }
    }
    let extended = key.get(p) == Some(&b'*');
    if extended {
        p += 1;
    }
    (p == key.len()).then_some((star, extended))
}

/// Appends the sections, sorted by name, to `result`: the sections of a name numbered 0, 1,
/// 2, ... become one parameter; any other numbering is kept section by section.
fn merge_continuations(mut conts: Vec<Cont>, result: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    conts.sort_by(|a, b| {
        a.key
            .to_ascii_lowercase()
            .cmp(&b.key.to_ascii_lowercase())
            .then(a.idx.cmp(&b.idx))
            .then(a.order.cmp(&b.order))
    });
    let mut i = 0;
    while i < conts.len() {
        let mut j = i;
        let mut ok = true;
        let mut next_idx = 0u32;
        while j < conts.len() && conts[j].key.eq_ignore_ascii_case(&conts[i].key) {
            if conts[j].idx != next_idx {
                ok = false;
            }
            next_idx = next_idx.saturating_add(1);
            j += 1;
        }
        if ok {
            result.push(merged(&conts[i..j]));
        } else {
            for c in &conts[i..j] {
                let mut k = c.key.clone();
                k.extend_from_slice(format!("*{}", c.idx).as_bytes());
                if c.extended {
                    k.push(b'*');
                }
                result.push((k, c.value.clone()));
            }
        }
        i = j;
    }
}

/// One parameter from the complete sections of a name. If any section is extended the result
/// is `name*` with an extended value: plain sections get their `%` escaped, and a plain first
/// section an empty `''` charset and language.
fn merged(group: &[Cont]) -> (Vec<u8>, Vec<u8>) {
    let have_extended = group.iter().any(|c| c.extended);
    let mut v = Vec::new();
    if !group[0].extended && have_extended {
        v.extend_from_slice(b"''");
    }
    for c in group {
        if !c.extended && have_extended {
            for &b in &c.value {
                if b == b'%' {
                    v.extend_from_slice(b"%25");
                } else {
                    v.push(b);
                }
            }
        } else {
            v.extend_from_slice(&c.value);
        }
    }
    let mut k = group[0].key.clone();
    if have_extended {
        k.push(b'*');
    }
    (k, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_merge_rfc2231_continuations() {
        let mut p = Parser::new(b"; a=1; name*0=\"x\"; name*1=y; b=\"q\\\"\"");
        let got = p.params();
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"q\"".to_vec()),
            (b"name".to_vec(), b"xy".to_vec()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn params_skip_garbage() {
        let mut p = Parser::new(b";;; a=1;b;c=");
        assert_eq!(p.params(), vec![(b"a".to_vec(), b"1".to_vec())]);
    }

    #[test]
    fn comment_is_remembered() {
        let mut p = Parser::with_comments(b" (x) (y\\)z) rest");
        assert_eq!(p.skip_lwsp(), 1);
        assert_eq!(p.last_comment.as_deref(), Some(&b"y)z"[..]));
    }
}
