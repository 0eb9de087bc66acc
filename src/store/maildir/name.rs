//! Mailbox names ⇄ Maildir++ directory names (pure, no I/O).
//!
//! Names on the wire are IMAP modified UTF-7 (RFC 3501 §5.1.3) with `.` as the hierarchy
//! separator; Dovecot's Maildir++ layout stores them unchanged as `<root>/.<name>/`. INBOX is
//! the root itself and is case-insensitive (RFC 3501 §5.1), but only as the first component:
//! `inbox.Sub` is stored as `.INBOX.Sub`, `Foo.inbox` as `.Foo.inbox`.

/// The hierarchy separator (Maildir++).
pub const SEP: char = '.';

/// Longest directory name most file systems accept (the leading `.` included).
const MAX_DIR_NAME: usize = 255;

/// Validate a wire mailbox name and return its canonical form (`INBOX` upper-cased when it is
/// the first component). The error says why the name is refused.
pub fn validate(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() + 1 > MAX_DIR_NAME {
        return Err("name too long".into());
    }
    for c in name.chars() {
        match c {
            '\0' => return Err("NUL in name".into()),
            '/' => return Err("'/' is not allowed (the separator is '.')".into()),
            // RFC 3501 §6.3.8: servers may refuse the LIST wildcards in names.
            '*' | '%' => return Err("wildcards '*' and '%' are not allowed".into()),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                return Err("control characters are not allowed".into())
            }
            c if !c.is_ascii() => {
                return Err("8-bit characters must be sent as modified UTF-7".into())
            }
            _ => {}
        }
    }
    for comp in name.split(SEP) {
        if comp.is_empty() {
            return Err("empty hierarchy level (leading, trailing or doubled '.')".into());
        }
    }
    if !valid_mutf7(name) {
        return Err("invalid modified UTF-7".into());
    }
    Ok(canonical(name))
}

/// Upper-case a leading `INBOX` component.
fn canonical(name: &str) -> String {
    let (first, rest) = match name.find(SEP) {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    };
    if first.eq_ignore_ascii_case("INBOX") {
        format!("INBOX{rest}")
    } else {
        name.to_string()
    }
}

/// True if the canonical name is INBOX itself.
pub fn is_inbox(canonical: &str) -> bool {
    canonical == "INBOX"
}

/// The directory (relative to the root) holding a canonical name; `None` for INBOX (the root).
pub fn dir_name(canonical: &str) -> Option<String> {
    if is_inbox(canonical) {
        None
    } else {
        Some(format!(".{canonical}"))
    }
}

/// The mailbox name stored in a root entry `.Name`, if the entry is a valid mailbox directory.
pub fn from_dir_name(dir: &str) -> Option<String> {
    let n = dir.strip_prefix('.')?;
    match validate(n) {
        // Only accept names already in canonical form: `.inbox.X` would alias `.INBOX.X`.
        Ok(c) if c == n => Some(c),
        _ => None,
    }
}

/// True if `name` is a strict descendant of `parent`.
pub fn is_descendant(parent: &str, name: &str) -> bool {
    name.len() > parent.len() + 1
        && name.starts_with(parent)
        && name[parent.len()..].starts_with(SEP)
}

/// The strict ancestors of `name` (`A.B.C` → `A`, `A.B`).
pub fn ancestors(name: &str) -> Vec<&str> {
    name.match_indices(SEP).map(|(i, _)| &name[..i]).collect()
}

/// Modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for itself except `&`, which
/// starts a modified-BASE64 run of UTF-16 ended by `-`; `&-` is `&`. Runs must be non-empty,
/// decode to valid UTF-16 with zero padding bits, and must not encode printable ASCII.
pub fn valid_mutf7(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(0x20..=0x7e).contains(&c) {
            return false;
        }
        i += 1;
        if c != b'&' {
            continue;
        }
        let start = i;
        while i < b.len() && b[i] != b'-' {
            i += 1;
        }
        if i >= b.len() {
            return false; // unterminated run
        }
        let run = &b[start..i];
        i += 1; // the '-'
        if run.is_empty() {
            continue; // "&-"
        }
        if !valid_b64_run(run) {
            return false;
        }
    }
    true
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => (c - b'A') as u32,
        b'a'..=b'z' => (c - b'a') as u32 + 26,
        b'0'..=b'9' => (c - b'0') as u32 + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    })
}

fn valid_b64_run(run: &[u8]) -> bool {
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    let mut units: Vec<u16> = Vec::new();
    for &c in run {
        let Some(v) = b64_value(c) else { return false };
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 16 {
            nbits -= 16;
            units.push(((bits >> nbits) & 0xffff) as u16);
            bits &= (1 << nbits) - 1;
        }
    }
    if nbits >= 6 || bits != 0 || units.is_empty() {
        return false;
    }
    let Ok(decoded) = String::from_utf16(&units) else {
        return false;
    };
    // Printable ASCII must be represented directly.
    !decoded.chars().any(|c| (' '..='~').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "Sent",
            "A.B.C",
            "~",
            "Foo Bar",
            "a&-b",
            "Entw&APw-rfe",
            "[Gmail].All",
        ] {
            assert!(validate(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_bad_names_with_reasons() {
        for n in [
            "", ".", "..", "A..B", ".A", "A.", "a/b", "a\0b", "a\nb", "a*", "%", "Ä", "&", "&Jjo",
            "&AGE-", // 'a' encoded: must be direct
            "&2D0-", // lone surrogate
        ] {
            let r = validate(n);
            assert!(r.is_err(), "{n:?} accepted");
        }
        assert!(validate(&"x".repeat(300)).is_err());
    }

    #[test]
    fn inbox_is_case_insensitive_only_at_top() {
        assert_eq!(validate("inbox").unwrap(), "INBOX");
        assert_eq!(validate("InBox.Sub").unwrap(), "INBOX.Sub");
        assert_eq!(validate("Foo.inbox").unwrap(), "Foo.inbox");
        assert_eq!(dir_name("INBOX"), None);
        assert_eq!(dir_name("INBOX.Sub").unwrap(), ".INBOX.Sub");
        assert_eq!(from_dir_name(".INBOX.Sub").unwrap(), "INBOX.Sub");
        assert_eq!(from_dir_name(".inbox.Sub"), None);
        assert_eq!(from_dir_name("..x"), None);
        assert_eq!(from_dir_name("cur"), None);
    }

    #[test]
    fn hierarchy_helpers() {
        assert!(is_descendant("A", "A.B"));
        assert!(!is_descendant("A", "AB"));
        assert!(!is_descendant("A", "A"));
        assert_eq!(ancestors("A.B.C"), vec!["A", "A.B"]);
    }
}
