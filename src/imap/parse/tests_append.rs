//! APPEND with MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469).

use super::tests::text;
use super::*;

fn messages(input: &[u8]) -> Vec<AppendMessage> {
    match parse_command(input).map(|t| t.command) {
        Ok(Command::Append { messages, .. }) => messages,
        other => panic!("{other:?}"),
    }
}

fn reason(input: &[u8]) -> String {
    parse_command(input).unwrap_err().reason
}

/// Where the n-th `{` of `input` is.
fn brace(input: &[u8], n: usize) -> usize {
    input
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'{')
        .nth(n)
        .unwrap()
        .0
}

#[test]
fn multiappend_messages_each_with_flags_and_date() {
    // RFC 3502 §6.3.11 example, with a literal8 and a non-synchronising literal.
    let input = b"A003 APPEND saved-messages (\\Seen) {3}\r\nabc (\\Flagged) \"7-Feb-1994 21:52:25 -0800\" ~{4+}\r\nd\0fg {1}\r\nh\r\n";
    let m = messages(input);
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].flags, vec![Flag::Seen]);
    assert_eq!(m[0].parts, vec![text(brace(input, 0), b"abc")]);
    assert_eq!(m[1].flags, vec![Flag::Flagged]);
    assert!(m[1].date.is_some());
    assert_eq!(m[1].parts, vec![text(brace(input, 1), b"d\0fg")]);
    assert!(m[2].flags.is_empty() && m[2].date.is_none());
    assert_eq!(m[2].parts, vec![text(brace(input, 2), b"h")]);
    assert!(m.iter().all(|m| !m.catenate));
}

#[test]
fn catenate_parts() {
    let input = b"a APPEND Drafts (\\Draft) CATENATE (URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=HEADER\" TEXT {5}\r\n\r\n--a URL /INBOX/;UID=1 TEXT ~{1+}\r\n\0) {2}\r\nxy\r\n";
    let m = messages(input);
    assert_eq!(m.len(), 2);
    assert!(m[0].catenate && !m[1].catenate);
    assert_eq!(
        m[0].parts,
        vec![
            AppendPart::Url(b"/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=HEADER".to_vec()),
            text(brace(input, 0), b"\r\n--a"),
            AppendPart::Url(b"/INBOX/;UID=1".to_vec()),
            text(brace(input, 1), b"\0"),
        ]
    );
    assert_eq!(m[1].parts, vec![text(brace(input, 2), b"xy")]);
    // Keywords in any case; an empty TEXT is a part like any other.
    let m = messages(b"a APPEND INBOX catenate (text {0}\r\n url \"/INBOX/;UID=1\")\r\n");
    assert_eq!(m[0].parts.len(), 2);
}

#[test]
fn bad_appends() {
    assert_eq!(reason(b"a APPEND INBOX\r\n"), "Missing the APPEND message");
    assert_eq!(
        reason(b"a APPEND INBOX {1}\r\nx junk\r\n"),
        "Expected the message as a literal ({size}) or CATENATE, found \"junk\""
    );
    assert!(reason(b"a APPEND INBOX {1}\r\nx \r\n").contains("found end of line"));
    assert!(reason(b"a APPEND INBOX {1}\r\nx{1}\r\ny\r\n").contains("between APPEND messages"));
    assert_eq!(
        reason(b"a APPEND INBOX CATENATE ()\r\n"),
        "Empty CATENATE list"
    );
    assert!(reason(b"a APPEND INBOX CATENATE (FOO \"x\")\r\n").contains("TEXT or URL"));
    assert!(reason(b"a APPEND INBOX CATENATE (TEXT \"x\")\r\n").contains("as a literal"));
    assert!(reason(b"a APPEND INBOX CATENATE (URL)\r\n").contains("after URL"));
    assert!(reason(b"a APPEND INBOX CATENATE (URL \"x\"\r\n").contains("between CATENATE"));
    assert!(reason(b"a APPEND INBOX CATENATE URL \"x\"\r\n").contains("'('"));
    let many = "URL x ".repeat(append::MAX_CATENATE_PARTS + 1);
    let cmd = format!("a APPEND INBOX CATENATE ({})\r\n", many.trim_end());
    assert!(reason(cmd.as_bytes()).contains("Too many CATENATE parts"));
    let mut cmd = b"a APPEND INBOX".to_vec();
    for _ in 0..=append::MAX_APPEND_MESSAGES {
        cmd.extend_from_slice(b" {1}\r\nx");
    }
    cmd.extend_from_slice(b"\r\n");
    assert!(reason(&cmd).contains("Too many messages"));
}
