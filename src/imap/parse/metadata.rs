//! GETMETADATA and SETMETADATA (RFC 5464 §4.2, §4.3), with the entry name rules of §3.2 as
//! Dovecot applies them (its answers to bad names are tagged BAD, and so are pimap's).
//!
//! ```text
//! getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries
//! getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")"
//! getmetadata-option  = "MAXSIZE" SP number / "DEPTH" SP ("0" / "1" / "infinity")
//! entries     = entry / "(" entry *(SP entry) ")"
//! setmetadata = "SETMETADATA" SP mailbox SP "(" entry-value *(SP entry-value) ")"
//! entry-value = entry SP (nstring / literal8)
//! ```
//! Dovecot also takes empty lists, `()`, for entries and entry-values (doing nothing); so does
//! this parser.

use super::lexer::{is_list_char, show, Cursor, PResult};
use crate::imap::types::{Command, MetadataDepth};

/// `"GETMETADATA" ...` after the command name.
pub(super) fn getmetadata(c: &mut Cursor) -> PResult<Command> {
    c.sp("after GETMETADATA")?;
    let (mut max_size, mut depth) = (None, MetadataDepth::Zero);
    if c.eat(b'(') {
        loop {
            let opt = c.atom("GETMETADATA option")?.to_ascii_uppercase();
            c.sp("after the GETMETADATA option")?;
            match opt.as_slice() {
                b"MAXSIZE" => max_size = Some(c.number("MAXSIZE")?),
                b"DEPTH" => depth = self::depth(c)?,
                _ => return Err(format!("Unknown GETMETADATA option {}", show(&opt))),
            }
            if c.eat(b')') {
                break;
            }
            c.sp("between GETMETADATA options")?;
        }
        c.sp("after the GETMETADATA options")?;
    }
    let mailbox = c.mailbox()?;
    c.sp("before the entry names")?;
    let mut entries = Vec::new();
    if c.eat(b'(') {
        while !c.eat(b')') {
            if !entries.is_empty() {
                c.sp("between entry names")?;
            }
            entries.push(entry(c, false)?);
        }
    } else {
        entries.push(entry(c, false)?);
    }
    Ok(Command::GetMetadata {
        mailbox,
        entries,
        max_size,
        depth,
    })
}

fn depth(c: &mut Cursor) -> PResult<MetadataDepth> {
    if c.eat_word("infinity") {
        return Ok(MetadataDepth::Infinity);
    }
    match c.atom("DEPTH")? {
        b"0" => Ok(MetadataDepth::Zero),
        b"1" => Ok(MetadataDepth::One),
        other => Err(format!(
            "Invalid DEPTH {}: must be 0, 1 or infinity",
            show(other)
        )),
    }
}

/// `"SETMETADATA" ...` after the command name.
pub(super) fn setmetadata(c: &mut Cursor) -> PResult<Command> {
    c.sp("after SETMETADATA")?;
    let mailbox = c.mailbox()?;
    c.sp("before the entry list")?;
    c.expect(b'(', "'(' starting the SETMETADATA entry list")?;
    let mut entries = Vec::new();
    while !c.eat(b')') {
        if !entries.is_empty() {
            c.sp("between SETMETADATA entries")?;
        }
        let name = entry(c, true)?;
        c.sp("after the entry name")?;
        let value = match c.peek() {
            // literal8: NUL is refused by the session with Dovecot's NO, not here.
            Some(b'{' | b'~') => Some(c.literal(true, true)?.to_vec()),
            _ => c.nstring("entry value")?,
        };
        entries.push((name, value));
    }
    Ok(Command::SetMetadata { mailbox, entries })
}

/// An entry name, checked (RFC 5464 §3.2) and lower-cased. `to_set`: it must name an entry
/// below `/private` or `/shared`, not the prefix itself (Dovecot 2.3 takes `/private` alone
/// but then fails on its own empty key).
fn entry(c: &mut Cursor, to_set: bool) -> PResult<String> {
    // An atom here may hold `*` and `%`, to be refused below with a reason, not as syntax.
    let name = match c.peek() {
        Some(b'"' | b'{') => c.astring_utf8("entry name")?,
        _ => {
            let a = c.take_while(is_list_char);
            if a.is_empty() {
                return Err(format!("Expected entry name, found {}", c.found()));
            }
            String::from_utf8_lossy(a).into_owned()
        }
    }
    .to_ascii_lowercase();
    check_entry(&name)?;
    if to_set && (name == "/private" || name == "/shared") {
        return Err(format!("Entry name {name} must name an entry below it"));
    }
    Ok(name)
}

/// Longest entry name accepted, bytes.
pub const MAX_ENTRY_NAME: usize = 1024;

/// RFC 5464 §3.2: starts with `/private` or `/shared`, no `*` or `%`, no empty component
/// (`//`, a trailing `/`), no control characters.
fn check_entry(name: &str) -> PResult<()> {
    if !name.starts_with('/') {
        return Err("Entry name must begin with '/'".into());
    }
    if name.len() > MAX_ENTRY_NAME {
        return Err(format!(
            "Entry name is too long (at most {MAX_ENTRY_NAME} bytes)"
        ));
    }
    if name.contains("//") {
        return Err("Entry name can't contain consecutive '/'".into());
    }
    if name.ends_with('/') {
        return Err("Entry name can't end with '/'".into());
    }
    if let Some(bad) = name.chars().find(|&ch| matches!(ch, '*' | '%')) {
        return Err(format!("Entry name can't contain '{bad}'"));
    }
    if name.chars().any(|ch| ch.is_control()) {
        return Err("Entry name can't contain control characters".into());
    }
    let first = name[1..].split('/').next().unwrap_or("");
    if first != "private" && first != "shared" {
        return Err("Entry name must begin with /private or /shared".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ok, reason};
    use super::*;

    #[test]
    fn getmetadata_forms() {
        assert_eq!(
            ok("a GETMETADATA INBOX /Private/Comment"),
            Command::GetMetadata {
                mailbox: "INBOX".into(),
                entries: vec!["/private/comment".into()],
                max_size: None,
                depth: MetadataDepth::Zero,
            }
        );
        assert_eq!(
            ok("a getmetadata (maxsize 1024 DEPTH Infinity) \"\" (/shared/a /private/b)"),
            Command::GetMetadata {
                mailbox: "".into(),
                entries: vec!["/shared/a".into(), "/private/b".into()],
                max_size: Some(1024),
                depth: MetadataDepth::Infinity,
            }
        );
        let Command::GetMetadata { depth, entries, .. } = ok("a GETMETADATA (DEPTH 1) x ()") else {
            panic!()
        };
        assert_eq!((depth, entries.len()), (MetadataDepth::One, 0));
        assert_eq!(ok("a GETMETADATA x /private").name(), "GETMETADATA");
    }

    #[test]
    fn setmetadata_values() {
        assert_eq!(
            ok("a SETMETADATA INBOX (/private/A \"x\" /shared/b NIL /private/c {3}\r\na\0b /private/d ~{1}\r\n\0)"),
            Command::SetMetadata {
                mailbox: "INBOX".into(),
                entries: vec![
                    ("/private/a".into(), Some(b"x".to_vec())),
                    ("/shared/b".into(), None),
                    ("/private/c".into(), Some(b"a\0b".to_vec())),
                    ("/private/d".into(), Some(b"\0".to_vec())),
                ],
            }
        );
        assert_eq!(
            ok("a SETMETADATA x ()"),
            Command::SetMetadata {
                mailbox: "x".into(),
                entries: vec![],
            }
        );
    }

    #[test]
    fn bad_names_and_syntax() {
        for (line, want) in [
            ("a GETMETADATA INBOX /private/a*", "can't contain '*'"),
            ("a GETMETADATA INBOX /private/%", "can't contain '%'"),
            ("a GETMETADATA INBOX /private//a", "consecutive '/'"),
            ("a GETMETADATA INBOX /private/a/", "end with '/'"),
            ("a GETMETADATA INBOX /", "end with '/'"),
            ("a GETMETADATA INBOX private/a", "begin with '/'"),
            ("a GETMETADATA INBOX /other/a", "/private or /shared"),
            ("a GETMETADATA INBOX /privatex", "/private or /shared"),
            ("a GETMETADATA INBOX \"/private/a\tb\"", "control"),
            ("a GETMETADATA (DEPTH 2) INBOX /private", "Invalid DEPTH 2"),
            (
                "a GETMETADATA (FOO 1) INBOX /private",
                "Unknown GETMETADATA option",
            ),
            ("a GETMETADATA (MAXSIZE x) INBOX /private", "MAXSIZE"),
            ("a GETMETADATA INBOX", "Expected SP"),
            (
                "a SETMETADATA INBOX (/private \"x\")",
                "must name an entry below",
            ),
            ("a SETMETADATA INBOX (/private/a)", "Expected SP"),
            ("a SETMETADATA INBOX /private/a \"x\"", "'('"),
            ("a SETMETADATA INBOX (/private/a (x))", "entry value"),
        ] {
            assert!(reason(line).contains(want), "{line}: {}", reason(line));
        }
        let long = format!(
            "a GETMETADATA INBOX /private/{}",
            "x".repeat(MAX_ENTRY_NAME)
        );
        assert!(reason(&long).contains("too long"));
    }
}
