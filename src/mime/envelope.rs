//! ENVELOPE (RFC 3501 §7.4.2) from a header block, as Dovecot 2.3 builds it.
//!
//! Values are served raw (encoded-words are not decoded), with folding line breaks removed.
//! Date, Subject, In-Reply-To and Message-ID: the last field wins; address fields are
//! concatenated over repeated fields. Sender and Reply-To default to From. Addresses are parsed
//! tolerantly (RFC 5322 §3.4 plus obsolete syntax, §4.4): the last comment of a bare address
//! becomes its name (never a comment inside `<...>`: the name is then the phrase before it),
//! a missing local part or domain is served as `MISSING_MAILBOX` /
//! `MISSING_DOMAIN`, and groups become a `(NIL NIL "name" NIL)` ... `(NIL NIL NIL NIL)` pair.

use super::parse::{name_is, Field};
use super::rfc822::Parser;
use crate::imap::encode::nstring;

/// One `address` of RFC 3501 §9 (a group start has only `mailbox`, a group end nothing).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub domain: Option<Vec<u8>>,
}

/// `nstring` with CR and LF removed (folding), as Dovecot writes header values.
pub fn nstring_nolf(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) if s.iter().any(|&b| b == b'\r' || b == b'\n') => {
            let v: Vec<u8> = s
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            nstring(out, Some(&v));
        }
        _ => nstring(out, s),
    }
}

/// Write the ENVELOPE list (with its parentheses) for a header.
pub fn write(msg: &[u8], fields: &[Field], out: &mut Vec<u8>) {
    let mut strs: [Option<&[u8]>; 4] = [None; 4];
    let mut addrs: [Option<Vec<Address>>; 6] = Default::default();
    const STR: [&str; 4] = ["Date", "Subject", "In-Reply-To", "Message-ID"];
    const ADDR: [&str; 6] = ["From", "Sender", "Reply-To", "To", "Cc", "Bcc"];
    for f in fields {
        if let Some(i) = STR.iter().position(|n| name_is(msg, f, n)) {
            strs[i] = Some(&f.value);
        } else if let Some(i) = ADDR.iter().position(|n| name_is(msg, f, n)) {
            let list = parse_addresses(&f.value);
            if !list.is_empty() {
                addrs[i].get_or_insert_with(Vec::new).extend(list);
            }
        }
    }
    out.push(b'(');
    nstring_nolf(out, strs[0]);
    out.push(b' ');
    // Dovecot serves the subject "for humans": whitespace runs (folding included) become one
    // space, leading and trailing whitespace is dropped.
    let subject = strs[1].map(|s| {
        let mut v = Vec::with_capacity(s.len());
        for w in s
            .split(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .filter(|w| !w.is_empty())
        {
            if !v.is_empty() {
                v.push(b' ');
            }
            v.extend_from_slice(w);
        }
        v
    });
    nstring_nolf(out, subject.as_deref());
    for (i, list) in addrs.iter().enumerate() {
        out.push(b' ');
        let list = match (i, list) {
            (1 | 2, None) => addrs[0].as_ref(),
            _ => list.as_ref(),
        };
        write_addresses(out, list.map(|v| v.as_slice()));
    }
    out.push(b' ');
    nstring_nolf(out, strs[2]);
    out.push(b' ');
    nstring_nolf(out, strs[3]);
    out.push(b')');
}

/// `(addr addr ...)` or NIL.
pub fn write_addresses(out: &mut Vec<u8>, list: Option<&[Address]>) {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    for a in list {
        out.push(b'(');
        nstring_nolf(out, a.name.as_deref());
        out.push(b' ');
        nstring_nolf(out, a.route.as_deref());
        out.push(b' ');
        nstring_nolf(out, a.mailbox.as_deref());
        out.push(b' ');
        nstring_nolf(out, a.domain.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// Bound on addresses per field, so a pathological header can't blow up memory.
const MAX_ADDRESSES: usize = 10_000;

struct AddrParser<'a> {
    p: Parser<'a>,
    cur: Address,
    list: Vec<Address>,
}

/// Parse an address-list field value (RFC 5322 §3.4), tolerating broken syntax.
pub fn parse_addresses(value: &[u8]) -> Vec<Address> {
    let mut ap = AddrParser {
        p: Parser::with_comments(value),
        cur: Address::default(),
        list: Vec::new(),
    };
    if ap.p.skip_lwsp() <= 0 {
        return Vec::new();
    }
    let mut n = 0;
    while n < MAX_ADDRESSES {
        n += 1;
        let start = ap.p.pos;
        if ap.address() == 0 {
            break;
        }
        if !ap.p.at(b',') {
            break;
        }
        ap.p.bump();
        if ap.p.skip_lwsp() <= 0 {
            break;
        }
        if ap.p.pos == start {
            break;
        }
    }
    ap.list
}

impl AddrParser<'_> {
    fn push(&mut self) {
        self.list.push(std::mem::take(&mut self.cur));
    }

    fn address(&mut self) -> i32 {
        let start = self.p.pos;
        let ret = self.group();
        if ret >= 0 {
            return ret;
        }
        self.p.pos = start;
        self.mailbox()
    }

    /// `group = display-name ":" [mailbox-list / CFWS] ";" [CFWS]`; -1 when not a group.
    fn group(&mut self) -> i32 {
        let mut name = Vec::new();
        if self.p.phrase(&mut name) <= 0 || !self.p.at(b':') {
            return -1;
        }
        self.p.bump();
        let mut ret = self.p.skip_lwsp();
        self.cur = Address {
            mailbox: Some(name),
            ..Address::default()
        };
        self.push();
        if ret > 0 && !self.p.at(b';') {
            loop {
                if self.mailbox() <= 0 {
                    ret = -1;
                    break;
                }
                if !self.p.at(b',') {
                    break;
                }
                self.p.bump();
                if self.p.skip_lwsp() <= 0 {
                    ret = -1;
                    break;
                }
            }
        }
        if ret >= 0 {
            if !self.p.at(b';') {
                ret = -1;
            } else {
                self.p.bump();
                ret = self.p.skip_lwsp();
            }
        }
        self.push();
        i32::from(ret != 0)
    }

    /// `mailbox = name-addr / addr-spec`, always adds an address.
    fn mailbox(&mut self) -> i32 {
        let start = self.p.pos;
        let mut ret = self.name_addr();
        if ret < 0 {
            self.p.pos = start;
            self.cur = Address::default();
            ret = self.addr_spec(false);
        }
        if self.cur.mailbox.is_none() {
            self.cur.mailbox = Some(b"MISSING_MAILBOX".to_vec());
        }
        if self.cur.domain.is_none() {
            self.cur.domain = Some(b"MISSING_DOMAIN".to_vec());
        }
        self.push();
        ret
    }

    /// `name-addr = [display-name] angle-addr`; -1 when there is no `<`.
    fn name_addr(&mut self) -> i32 {
        let mut name = Vec::new();
        if self.p.phrase(&mut name) <= 0 || !self.p.at(b'<') {
            return -1;
        }
        self.cur.name = if name.is_empty() { None } else { Some(name) };
        if self.angle_addr() < 0 {
            self.cur.domain = Some(b"SYNTAX_ERROR".to_vec());
        }
        i32::from(!self.p.at_end())
    }

    /// `"<" [route ":"] addr-spec ">"` (RFC 5322 §4.4 obs-angle-addr).
    fn angle_addr(&mut self) -> i32 {
        self.p.bump();
        if self.p.skip_lwsp() <= 0 {
            return -1;
        }
        if self.p.at(b'@') {
            if self.domain_list() > 0 && self.p.at(b':') {
                self.p.bump();
            } else {
                self.cur.mailbox = Some(b"INVALID_ROUTE".to_vec());
                if self.p.at_end() {
                    return -1;
                }
            }
            if self.p.skip_lwsp() <= 0 {
                return -1;
            }
        }
        if !self.p.at(b'>') {
            if self.addr_spec(true) < 0 {
                return -1;
            }
            if !self.p.at(b'>') {
                return -1;
            }
        }
        self.p.bump();
        self.p.skip_lwsp()
    }

    /// `obs-domain-list = "@" domain *("," [CFWS] "@" domain)`.
    fn domain_list(&mut self) -> i32 {
        let mut route = Vec::new();
        loop {
            if self.p.at_end() {
                return 0;
            }
            if !self.p.at(b'@') {
                break;
            }
            if !route.is_empty() {
                route.push(b',');
            }
            route.push(b'@');
            let ret = self.p.domain(&mut route);
            if ret <= 0 {
                return ret;
            }
            while self.p.skip_lwsp() > 0 && self.p.at(b',') {
                self.p.bump();
            }
        }
        self.cur.route = Some(route);
        1
    }

    /// `addr-spec = local-part "@" domain`; outside `<...>` (`in_angle` false) a comment
    /// names the address, as Dovecot does: `e@f (Name)`. Inside, comments are only CFWS
    /// (RFC 5322 §3.2.2): `Pete <pete(his account)@silly.test>` is Pete's.
    fn addr_spec(&mut self, in_angle: bool) -> i32 {
        if let Some(c) = self.p.last_comment.as_mut() {
            c.clear();
        }
        let quoted = self.p.at(b'"');
        let mut local = Vec::new();
        let mut ret = if quoted {
            self.p.quoted_string(&mut local)
        } else {
            self.p.dot_atom(&mut local)
        };
        if ret >= 0 {
            self.cur.mailbox = Some(local.clone());
        }
        let mut ret2 = -2;
        if ret != 0 && self.p.at(b'@') {
            let mut dom = Vec::new();
            ret2 = self.p.domain(&mut dom);
            if ret2 >= 0 {
                self.cur.domain = Some(dom);
            }
            if ret2 <= 0 {
                ret = ret2;
            }
        }
        let comment = self
            .p
            .last_comment
            .as_ref()
            .filter(|c| !c.is_empty() && !in_angle)
            .cloned();
        if let Some(c) = comment {
            self.cur.name = Some(c);
        } else if ret2 == -2 {
            // No `@domain`: `user` alone is a mailbox, but words after it (`Foo Bar`) or a
            // quoted string alone (`"text"`) are a display name without an address.
            let mut s = local;
            s.push(b' ');
            let before = s.len();
            self.p.phrase(&mut s);
            if s.len() != before {
                self.cur.mailbox = None;
                self.cur.name = Some(s);
            } else if quoted {
                self.cur.name = self.cur.mailbox.take();
            }
        }
        ret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(h: &str) -> String {
        let m = super::super::to_crlf(h.as_bytes()).into_owned();
        let (fields, _) = super::super::parse::parse_header(&m, 0);
        let mut out = Vec::new();
        write(&m, &fields, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn addresses_like_dovecot() {
        let e = env("From: \"A B\" <a@b>, C D <c@d>, e@f (comment), <g@h>, \"\" <k@l>\nTo: undisclosed-recipients:;\nCc: foo, bad@, @only, <>\n\n");
        assert_eq!(
            e,
            "(NIL NIL ((\"A B\" NIL \"a\" \"b\")(\"C D\" NIL \"c\" \"d\")(\"comment\" NIL \"e\" \"f\")(NIL NIL \"g\" \"h\")(NIL NIL \"k\" \"l\")) \
             ((\"A B\" NIL \"a\" \"b\")(\"C D\" NIL \"c\" \"d\")(\"comment\" NIL \"e\" \"f\")(NIL NIL \"g\" \"h\")(NIL NIL \"k\" \"l\")) \
             ((\"A B\" NIL \"a\" \"b\")(\"C D\" NIL \"c\" \"d\")(\"comment\" NIL \"e\" \"f\")(NIL NIL \"g\" \"h\")(NIL NIL \"k\" \"l\")) \
             ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) \
             ((NIL NIL \"foo\" \"MISSING_DOMAIN\")(NIL NIL \"bad\" \"MISSING_DOMAIN\")(NIL NIL \"MISSING_MAILBOX\" \"only\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) \
             NIL NIL NIL)"
        );
    }

    #[test]
    fn raw_values_last_wins() {
        let e = env("Subject: a\n  b\nSubject: =?utf-8?q?x?=\nMessage-ID: <a@b>\nDate: Mon, 1 Jan 2001  \n\n");
        assert_eq!(
            e,
            "(\"Mon, 1 Jan 2001  \" \"=?utf-8?q?x?=\" NIL NIL NIL NIL NIL NIL NIL \"<a@b>\")"
        );
    }

    #[test]
    fn comments_inside_angle_brackets_are_no_name() {
        let e = env("From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\nTo: <user-from (comment)@ (comment) domain.org>\n\n");
        assert!(
            e.contains("((\"Pete\" NIL \"pete\" \"silly.test\")) ((\"Pete\""),
            "{e}"
        );
        assert!(
            e.contains("((NIL NIL \"user-from\" \"domain.org\"))"),
            "{e}"
        );
    }

    #[test]
    fn route_and_group() {
        let e = env("To: <@r1,@r2:a@b>, g: a@b, c@d;\n\n");
        assert!(e.contains("(NIL \"@r1,@r2\" \"a\" \"b\")(NIL NIL \"g\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")(NIL NIL NIL NIL)"), "{e}");
    }
}
