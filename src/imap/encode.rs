//! Response encoding helpers: IMAP strings (atom/quoted/literal), NIL, lists.

/// Append `s` as an IMAP `string`: quoted when it is short printable 7-bit text without CR/LF,
/// else a literal `{n}\r\n...`.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() < 1024 && s.iter().all(|&b| (0x20..0x7f).contains(&b));
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

/// Append `nstring`: `NIL` for `None`.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Append a UTF-8 `string` for an IMAP4rev2 / UTF8=ACCEPT peer: quoted when it is short and
/// holds no control characters (RFC 9051 §9 `QUOTED-CHAR` includes UTF8-2 / UTF8-3 / UTF8-4),
/// else a literal.
pub fn utf8_string(out: &mut Vec<u8>, s: &str) {
    if s.len() < 1024 && !s.chars().any(|c| c.is_control()) {
        out.push(b'"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push(b'\\');
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.push(b'"');
    } else {
        string(out, s.as_bytes());
    }
}

/// Append `astring`: bare atom when possible, else `string`.
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    if !s.is_empty() && s.iter().all(|&b| is_astring_char(b)) {
        out.extend_from_slice(s);
    } else {
        string(out, s)
    }
}

/// `ASTRING-CHAR` (RFC 3501 §9): ATOM-CHAR or `]`.
pub fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// `ATOM-CHAR` (RFC 3501 §9): any CHAR except atom-specials.
pub fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
        && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}
