//! The MIME tree of a message, with the exact byte ranges IMAP serves (RFC 2045 §5,
//! RFC 2046 §5.1.1, RFC 3501 §6.4.5).
//!
//! Boundaries are found the way Dovecot 2.3 finds them, because BODYSTRUCTURE sizes and
//! `BODY[n]` bytes must match it: a boundary line is any line starting with `--` plus one of
//! the boundaries of the enclosing multiparts (longest match, innermost first; trailing text on
//! the line is ignored); the CRLF before a boundary line belongs to the boundary, except when
//! the boundary is the first line after a header or after the previous boundary line. A
//! boundary of an outer multipart ends every inner part. Nesting and the number of parts are
//! bounded ([`MAX_DEPTH`], [`MAX_PARTS`]); deeper multiparts are served as single parts.
//! One pass over the message: every line is looked at once per header or body scan.

use super::rfc822::Parser;
use std::ops::Range;

/// Deepest nesting of multipart and message/rfc822 parts (Dovecot's default limit).
pub const MAX_DEPTH: usize = 100;
/// Most MIME parts parsed in one message (Dovecot's default limit).
pub const MAX_PARTS: usize = 10_000;
/// Boundaries are truncated to this length (RFC 2046 §5.1.1 allows 70).
const MAX_BOUNDARY: usize = 70;

/// One header field.
#[derive(Debug, Clone)]
pub struct Field {
    /// The name as written, trailing whitespace removed.
    pub name: Range<usize>,
    /// The value: leading whitespace of the first line skipped, lines joined with `\n`
    /// (folding CRs removed), NULs replaced by U+FFFD.
    pub value: Vec<u8>,
    /// Every line of the field, with line endings.
    pub raw: Range<usize>,
    /// False for a line without `:` (kept as a field named by the whole line).
    pub has_colon: bool,
}

/// Parse the header block at `start`: fields, and where the body starts (after the blank
/// line, or at the end of input when there is none).
pub fn parse_header(msg: &[u8], start: usize) -> (Vec<Field>, usize) {
    let (fields, body, _) = parse_header_ext(msg, start);
    (fields, body)
}

/// [`parse_header`], also telling whether the header ended with the empty line.
pub fn parse_header_ext(msg: &[u8], start: usize) -> (Vec<Field>, usize, bool) {
    let mut it = RawFields::new(msg, start);
    let mut fields = Vec::new();
    for raw in it.by_ref() {
        let mut value = Vec::new();
        raw.value_into(msg, &mut value);
        fields.push(Field {
            name: raw.name,
            value,
            raw: raw.raw,
            has_colon: raw.has_colon,
        });
    }
    (fields, it.body, it.complete)
}

/// One header field located but not copied: what [`Field`] holds, with the value left in
/// the message until [`RawField::value_into`] builds it. Lets a SEARCH on one field skip
/// building every other field's value.
#[derive(Debug, Clone)]
pub struct RawField {
    /// The name as written, trailing whitespace removed.
    pub name: Range<usize>,
    /// The first line's value: after the colon and the whitespace following it, before the
    /// line end.
    first: Range<usize>,
    /// Every line of the field, with line endings.
    pub raw: Range<usize>,
    /// False for a line without `:` (kept as a field named by the whole line).
    pub has_colon: bool,
}

impl RawField {
    /// The value as [`Field::value`] has it (lines joined with `\n`, NULs replaced), into
    /// `out` (appended).
    pub fn value_into(&self, msg: &[u8], out: &mut Vec<u8>) {
        push_value(out, &msg[self.first.clone()]);
        let mut pos = line_end(msg, self.first.end);
        while pos < self.raw.end {
            let end = line_end(msg, pos);
            out.push(b'\n');
            push_value(out, strip_eol(&msg[pos..end]));
            pos = end;
        }
    }
}

/// Where the line containing `pos` ends (after its `\n`, or at the end of input).
fn line_end(msg: &[u8], pos: usize) -> usize {
    match msg[pos..].iter().position(|&b| b == b'\n') {
        Some(i) => pos + i + 1,
        None => msg.len(),
    }
}

/// The fields of the header block at a position, in order, as [`RawField`]s. Once it
/// returns `None`, `body` is where the body starts and `complete` whether the block ended
/// with the empty line (RFC 5322 §2.1).
pub struct RawFields<'a> {
    msg: &'a [u8],
    pos: usize,
    /// Where the body starts (valid once the iterator is exhausted).
    pub body: usize,
    /// The header ended with the empty line (valid once the iterator is exhausted).
    pub complete: bool,
}

impl<'a> RawFields<'a> {
    pub fn new(msg: &'a [u8], start: usize) -> RawFields<'a> {
        RawFields {
            msg,
            pos: start,
            body: msg.len(),
            complete: false,
        }
    }
}

impl Iterator for RawFields<'_> {
    type Item = RawField;

    fn next(&mut self) -> Option<RawField> {
        let msg = self.msg;
        let pos = self.pos;
        if pos >= msg.len() {
            return None;
        }
        let end = line_end(msg, pos);
        let line = &msg[pos..end];
        let content = strip_eol(line);
        if content.is_empty() && line.last() == Some(&b'\n') {
            // RFC 5322 §2.1: the empty line ends the header.
            self.pos = msg.len();
            self.body = end;
            self.complete = true;
            return None;
        }
        let colon = content.iter().position(|&b| b == b':');
        let (name, first) = match colon {
            Some(colon) => {
                let mut n = colon;
                while n > 0 && matches!(content[n - 1], b' ' | b'\t') {
                    n -= 1;
                }
                let mut v = colon + 1;
                while v < content.len() && matches!(content[v], b' ' | b'\t') {
                    v += 1;
                }
                (pos..pos + n, pos + v..pos + content.len())
            }
            None => (
                pos..pos + content.len(),
                pos + content.len()..pos + content.len(),
            ),
        };
        // Folded lines (starting with whitespace) continue this field.
        let mut raw_end = end;
        while raw_end < msg.len() && matches!(msg[raw_end], b' ' | b'\t') {
            raw_end = line_end(msg, raw_end);
        }
        self.pos = raw_end;
        Some(RawField {
            name,
            first,
            raw: pos..raw_end,
            has_colon: colon.is_some(),
        })
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn push_value(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if b == 0 {
            out.extend_from_slice("\u{fffd}".as_bytes());
        } else {
            out.push(b);
        }
    }
}

/// What kind of part this is, as far as the tree goes.
#[derive(Debug)]
pub enum Kind {
    /// A single part; `text` when it is text/* (or has no Content-Type).
    Leaf { text: bool },
    /// multipart/*: its parts (possibly none).
    Multipart(Vec<Part>),
    /// message/rfc822: the encapsulated message.
    Message(Box<Part>),
}

/// A MIME part (the message itself is the root part).
#[derive(Debug)]
pub struct Part {
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub fields: Vec<Field>,
    /// The header ended with an empty line (else it was cut by EOF or a boundary).
    pub complete_header: bool,
    /// Content-* fields apply (RFC 2045 §4: MIME-Version, or Content-Type, or inside a
    /// multipart), as Dovecot decides.
    pub is_mime: bool,
    pub kind: Kind,
}

impl Part {
    /// The first field called `name`.
    pub fn field<'p>(&'p self, msg: &[u8], name: &str) -> Option<&'p Field> {
        self.fields.iter().find(|f| name_is(msg, f, name))
    }

    /// A Content-* field, only when MIME applies to this part.
    pub fn mime_field<'p>(&'p self, msg: &[u8], name: &str) -> Option<&'p Field> {
        if self.is_mime {
            self.field(msg, name)
        } else {
            None
        }
    }
}

pub fn name_is(msg: &[u8], f: &Field, name: &str) -> bool {
    msg.get(f.name.clone())
        .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
}

/// Where a body scan stopped.
#[derive(Debug, Clone, Copy)]
struct Found {
    /// Where the content before the stop ends (before the CRLF that belongs to the boundary).
    content_end: usize,
    /// The boundary found: index in the stack, start of its line, close delimiter or not.
    boundary: Option<(usize, usize, bool)>,
    /// The boundary cut a header: then the enclosing parts (unlike the cut part) keep the
    /// CRLF before it, as Dovecot counts them.
    in_header: bool,
}

impl Found {
    /// Where an enclosing multipart or message/rfc822 part ends.
    fn outer_end(&self) -> usize {
        match self.boundary {
            Some((_, ls, _)) if self.in_header => ls,
            _ => self.content_end,
        }
    }
}

struct Ctx<'a> {
    msg: &'a [u8],
    stack: Vec<Vec<u8>>,
    parts: usize,
}

/// Parse the whole message.
pub fn parse(msg: &[u8]) -> Part {
    let mut ctx = Ctx {
        msg,
        stack: Vec::new(),
        parts: 0,
    };
    ctx.part(0, None, 0).0
}

impl Ctx<'_> {
    fn after_line(&self, pos: usize) -> usize {
        match self
            .msg
            .get(pos..)
            .and_then(|s| s.iter().position(|&b| b == b'\n'))
        {
            Some(i) => pos + i + 1,
            None => self.msg.len(),
        }
    }

    /// The boundary the line at `ls` starts with (longest match, innermost first) and whether
    /// it is a close delimiter.
    fn match_line(&self, ls: usize) -> Option<(usize, bool)> {
        let rest = self.msg.get(ls..)?.strip_prefix(b"--")?;
        let mut best: Option<usize> = None;
        for (i, b) in self.stack.iter().enumerate().rev() {
            if rest.starts_with(b) && best.is_none_or(|j| self.stack[j].len() < b.len()) {
                best = Some(i);
            }
        }
        let i = best?;
        let close = rest
            .get(self.stack[i].len()..)
            .is_some_and(|r| r.starts_with(b"--"));
        Some((i, close))
    }

    /// The stop at a boundary line `ls` found in a region starting at `pos`: the CRLF before
    /// the line belongs to the boundary unless the boundary is the region's first line.
    fn stop_at(&self, pos: usize, ls: usize, i: usize, close: bool, in_header: bool) -> Found {
        let mut end = ls;
        if ls > pos {
            end -= 1;
            if end > pos && self.msg[end - 1] == b'\r' {
                end -= 1;
            }
        }
        Found {
            content_end: end,
            boundary: Some((i, ls, close)),
            in_header,
        }
    }

    /// Scan lines from `pos` (a line start right after a header or a boundary line) for a
    /// boundary of any enclosing multipart.
    fn find_boundary(&self, pos: usize) -> Found {
        let mut ls = pos;
        if !self.stack.is_empty() {
            while ls < self.msg.len() {
                if let Some((i, close)) = self.match_line(ls) {
                    return self.stop_at(pos, ls, i, close, false);
                }
                ls = self.after_line(ls);
            }
        }
        Found {
            content_end: self.msg.len(),
            boundary: None,
            in_header: false,
        }
    }

    /// Parse the header at `start`, stopping early at a boundary line.
    fn header(&self, start: usize) -> (Vec<Field>, usize, bool, Option<Found>) {
        let msg = self.msg;
        let mut ls = start;
        if !self.stack.is_empty() {
            while ls < msg.len() {
                if let Some((i, close)) = self.match_line(ls) {
                    let f = self.stop_at(start, ls, i, close, true);
                    let (fields, _) = parse_header(&msg[..f.content_end], start);
                    return (fields, f.content_end, false, Some(f));
                }
                let next = self.after_line(ls);
                // The empty line ends the header, unless a boundary follows it at once: then
                // its CRLF belongs to that boundary and the header is cut.
                if matches!(&msg[ls..next], b"\r\n" | b"\n") {
                    match self.match_line(next) {
                        None => break,
                        Some((i, _)) => {
                            // ...except the part's own first boundary, if it matches longer.
                            let (fields, _) = parse_header(&msg[..next], start);
                            let own = own_boundary(msg, &fields);
                            let rest = msg.get(next + 2..).unwrap_or_default();
                            if own.is_some_and(|b| {
                                !b.is_empty()
                                    && rest.starts_with(&b)
                                    && b.len() >= self.stack[i].len()
                            }) {
                                break;
                            }
                        }
                    }
                }
                ls = next;
            }
        }
        let (fields, body, complete) = parse_header_ext(msg, start);
        (fields, body, complete, None)
    }

    /// Parse the part whose header starts at `start`. `parent` is `Some(is_digest)` for the
    /// children of a multipart.
    fn part(&mut self, start: usize, parent: Option<bool>, depth: usize) -> (Part, Found) {
        self.parts += 1;
        let msg = self.msg;
        let (fields, body_start, complete_header, cut) = self.header(start);
        let ct = fields.iter().find(|f| name_is(msg, f, "Content-Type"));
        let is_mime = parent.is_some()
            || ct.is_some()
            || fields.iter().any(|f| name_is(msg, f, "MIME-Version"));
        let declared = declared(ct, parent);
        let limited = depth + 1 >= MAX_DEPTH || self.parts >= MAX_PARTS || cut.is_some();
        let header = start..body_start;
        let mk = |kind, end: usize| Part {
            header: header.clone(),
            body: body_start..end.max(body_start),
            fields: Vec::new(),
            complete_header,
            is_mime,
            kind,
        };
        let (mut part, found) = match declared {
            Declared::Multipart(Some(boundary)) if !limited && !boundary.is_empty() => {
                let (children, f) = self.children(boundary, body_start, is_digest(ct), depth);
                (mk(Kind::Multipart(children), f.outer_end()), f)
            }
            Declared::Multipart(_) => {
                let f = cut.unwrap_or_else(|| self.find_boundary(body_start));
                (mk(Kind::Multipart(Vec::new()), f.content_end), f)
            }
            Declared::Message if !limited => {
                let (child, f) = self.part(body_start, None, depth + 1);
                (mk(Kind::Message(Box::new(child)), f.outer_end()), f)
            }
            Declared::Message if cut.is_some() => {
                let f = cut.unwrap_or_else(|| self.find_boundary(body_start));
                let child = Part {
                    header: body_start..body_start,
                    body: body_start..body_start,
                    fields: Vec::new(),
                    complete_header: false,
                    is_mime: false,
                    kind: Kind::Leaf { text: true },
                };
                (mk(Kind::Message(Box::new(child)), f.content_end), f)
            }
            other => {
                let f = cut.unwrap_or_else(|| self.find_boundary(body_start));
                let text = matches!(other, Declared::Text);
                (mk(Kind::Leaf { text }, f.content_end), f)
            }
        };
        part.fields = fields;
        // A part cut short by its parent's boundary can end inside its own header.
        if part.header.end > part.body.end {
            part.header.end = part.body.end.max(part.header.start);
            part.body = part.header.end..part.header.end;
        }
        (part, found)
    }

    /// The children of a multipart whose body starts at `body_start`: the parts between its
    /// `boundary` lines, up to its close line or an enclosing multipart's boundary. `Found`:
    /// where the multipart ends.
    fn children(
        &mut self,
        boundary: Vec<u8>,
        body_start: usize,
        digest: bool,
        depth: usize,
    ) -> (Vec<Part>, Found) {
        let mine = self.stack.len();
        self.stack.push(boundary);
        let mut children = Vec::new();
        let mut f = self.find_boundary(body_start);
        loop {
            match f.boundary {
                Some((i, ls, false)) if i == mine => {
                    let child_start = self.after_line(ls);
                    let (child, cf) = self.part(child_start, Some(digest), depth + 1);
                    children.push(child);
                    f = cf;
                }
                Some((i, ls, true)) if i == mine => {
                    self.stack.truncate(mine);
                    f = self.find_boundary(self.after_line(ls));
                    break;
                }
                _ => break,
            }
        }
        self.stack.truncate(mine);
        (children, f)
    }
}

/// What a part's Content-Type makes of its body.
enum Declared {
    /// `multipart/*`, with its boundary parameter (`None`: none, or a broken Content-Type).
    Multipart(Option<Vec<u8>>),
    /// `message/rfc822`, or no Content-Type in a `multipart/digest`.
    Message,
    /// `text/*`, or no Content-Type elsewhere (RFC 2045 §5.2: `text/plain`).
    Text,
    /// Any other type: a leaf that isn't text.
    Other,
}

/// How the part with Content-Type field `ct` is parsed; `parent` is `Some(is_digest)` for the
/// children of a multipart.
fn declared(ct: Option<&Field>, parent: Option<bool>) -> Declared {
    let Some(f) = ct else {
        return if parent == Some(true) {
            Declared::Message
        } else {
            Declared::Text
        };
    };
    let mut p = Parser::new(&f.value);
    let mut t = Vec::new();
    let ret = p.content_type_checked(&mut t);
    if t.eq_ignore_ascii_case(b"message/rfc822") {
        Declared::Message
    } else if t.len() >= 4 && t[..4].eq_ignore_ascii_case(b"text") && (t.len() == 4 || t[4] == b'/')
    {
        Declared::Text
    } else if t.len() >= 10 && t[..10].eq_ignore_ascii_case(b"multipart/") {
        let mut boundary = None;
        if ret >= 0 {
            for (k, v) in p.params() {
                if k.eq_ignore_ascii_case(b"boundary") {
                    boundary = Some(v.into_iter().take(MAX_BOUNDARY).collect::<Vec<u8>>());
                    break;
                }
            }
        }
        Declared::Multipart(boundary)
    } else {
        Declared::Other
    }
}

/// The boundary parameter of a multipart Content-Type (truncated as Dovecot does).
fn own_boundary(msg: &[u8], fields: &[Field]) -> Option<Vec<u8>> {
    let f = fields.iter().find(|f| name_is(msg, f, "Content-Type"))?;
    let mut p = Parser::new(&f.value);
    let mut t = Vec::new();
    if p.content_type_checked(&mut t) < 0
        || t.len() < 10
        || !t[..10].eq_ignore_ascii_case(b"multipart/")
    {
        return None;
    }
    p.params()
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))
        .map(|(_, v)| v.into_iter().take(MAX_BOUNDARY).collect())
}

fn is_digest(ct: Option<&Field>) -> bool {
    let Some(f) = ct else { return false };
    let mut t = Vec::new();
    Parser::new(&f.value).content_type_checked(&mut t);
    t.eq_ignore_ascii_case(b"multipart/digest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_folding() {
        let m = b"A: 1\r\nB :  x\r\n  y\r\nnocolon\r\n\r\nbody";
        let (f, body) = parse_header(m, 0);
        assert_eq!(body, 30);
        assert_eq!(f.len(), 3);
        assert_eq!(&m[f[1].name.clone()], b"B");
        assert_eq!(f[1].value, b"x\n  y");
        assert_eq!(&m[f[1].raw.clone()], b"B :  x\r\n  y\r\n");
    }

    #[test]
    fn multipart_ranges() {
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n\r\none\r\n--b\r\nX: y\r\n\r\ntwo\r\n--b--\r\nepi\r\n";
        let p = parse(m);
        let Kind::Multipart(c) = &p.kind else {
            panic!("not multipart")
        };
        assert_eq!(c.len(), 2);
        assert_eq!(&m[c[0].body.clone()], b"one");
        assert_eq!(&m[c[1].header.clone()], b"X: y\r\n\r\n");
        assert_eq!(&m[c[1].body.clone()], b"two");
        assert_eq!(p.body.end, m.len());
    }
}
