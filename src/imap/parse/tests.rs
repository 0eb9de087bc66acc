//! Transcript-style tests: command lines as real clients (Thunderbird, mbsync, iOS Mail,
//! Outlook, curl, RFC examples) send them, and the errors a person should see.

use super::*;
use FetchAttr::*;

pub(super) fn ok(line: &str) -> Command {
    let mut input = line.as_bytes().to_vec();
    input.extend_from_slice(b"\r\n");
    match parse_command(&input) {
        Ok(t) => t.command,
        Err(e) => panic!("{line:?} failed: {e:?}"),
    }
}

pub(super) fn err(line: &str) -> ParseError {
    let mut input = line.as_bytes().to_vec();
    input.extend_from_slice(b"\r\n");
    match parse_command(&input) {
        Ok(t) => panic!("{line:?} should fail, parsed as {t:?}"),
        Err(e) => e,
    }
}

pub(super) fn reason(line: &str) -> String {
    err(line).reason
}

pub(super) fn set(ranges: &[(u32, u32)]) -> SequenceSet {
    SequenceSet::Ranges(
        ranges
            .iter()
            .map(|&(a, b)| SeqRange {
                start: if a == 0 {
                    SeqNum::Star
                } else {
                    SeqNum::Value(a)
                },
                end: if b == 0 {
                    SeqNum::Star
                } else {
                    SeqNum::Value(b)
                },
            })
            .collect(),
    )
}

pub(super) fn peek(text: Option<SectionText>) -> FetchAttr {
    BodySection {
        peek: true,
        section: Section { part: vec![], text },
        partial: None,
    }
}

#[test]
fn tag_and_simple_commands() {
    let t = parse_command(b"a001 capability\r\n").unwrap();
    assert_eq!(
        t,
        TaggedCommand {
            tag: "a001".into(),
            command: Command::Capability
        }
    );
    for (line, cmd) in [
        ("1 NOOP", Command::Noop),
        ("A.2 LOGOUT", Command::Logout),
        ("x]y STARTTLS", Command::StartTls),
        ("n.1 NAMESPACE", Command::Namespace),
        ("t IDLE", Command::Idle),
        ("t Check", Command::Check),
        ("t close", Command::Close),
        ("t UNSELECT", Command::Unselect),
        ("t EXPUNGE", Command::Expunge),
    ] {
        assert_eq!(ok(line), cmd, "{line}");
    }
    // Bare LF and no line end at all are accepted too.
    assert_eq!(parse_command(b"a NOOP\n").unwrap().command, Command::Noop);
    assert_eq!(parse_command(b"a NOOP").unwrap().command, Command::Noop);
}

#[test]
fn tag_errors() {
    assert_eq!(
        err(""),
        ParseError {
            tag: None,
            reason: "Empty command line".into()
        }
    );
    assert_eq!(err("+ NOOP").tag, None);
    assert_eq!(err("* NOOP").tag, None);
    assert_eq!(
        err("a+b NOOP"),
        ParseError {
            tag: None,
            reason: "Invalid character '+' in tag".into()
        }
    );
    assert_eq!(err("(a NOOP").tag, None);
    assert_eq!(
        err("A1"),
        ParseError {
            tag: Some("A1".into()),
            reason: "Expected SP after tag, found end of line".into()
        }
    );
    assert_eq!(
        err("A1  NOOP").reason,
        "Expected command name, found \" NOOP\""
    );
    assert_eq!(
        err("A1 FOO"),
        ParseError {
            tag: Some("A1".into()),
            reason: "Unknown command FOO".into()
        }
    );
    assert_eq!(
        reason("A1 NOOP extra"),
        "Unexpected characters after NOOP command: \" extra\""
    );
}

#[test]
fn error_reasons_are_single_line_text() {
    let e = err("A1 LOGIN \"a\r\nb\" c");
    assert!(
        !e.reason.contains('\r') && !e.reason.contains('\n'),
        "{e:?}"
    );
}

#[test]
fn login_and_authenticate() {
    assert_eq!(
        ok("a1 LOGIN alice s3cret"),
        Command::Login {
            user: "alice".into(),
            password: Secret(b"s3cret".to_vec())
        }
    );
    assert_eq!(
        ok(r#"a1 login "alice@example.org" "p\"a\\ss word""#),
        Command::Login {
            user: "alice@example.org".into(),
            password: Secret(b"p\"a\\ss word".to_vec())
        }
    );
    // curl / python imaplib send the password as a literal when it has special characters.
    let t = parse_command(b"A002 LOGIN {5}\r\nalice {11}\r\npass\"\r\nword\r\n").unwrap();
    assert_eq!(
        t.command,
        Command::Login {
            user: "alice".into(),
            password: Secret(b"pass\"\r\nword".to_vec())
        }
    );
    let t = parse_command(b"A002 LOGIN bob {4+}\r\n\xc3\xa9t\xc3\r\n").unwrap();
    assert_eq!(
        t.command,
        Command::Login {
            user: "bob".into(),
            password: Secret(b"\xc3\xa9t\xc3".to_vec())
        }
    );
    assert_eq!(
        reason("a LOGIN alice"),
        "Expected SP between user name and password, found end of line"
    );
    assert!(format!("{:?}", ok("a LOGIN u p")).contains("<redacted>"));

    assert_eq!(
        ok("a AUTHENTICATE PLAIN"),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial: None
        }
    );
    assert_eq!(
        ok("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA=="),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial: Some("AGFsaWNlAHNlY3JldA==".into())
        }
    );
    assert_eq!(
        ok("a authenticate XOAUTH2 ="),
        Command::Authenticate {
            mechanism: "XOAUTH2".into(),
            initial: Some("=".into())
        }
    );
    assert_eq!(
        reason("a AUTHENTICATE PLAIN AGFsaWNl="),
        "Invalid base64 in the initial response"
    );
    assert_eq!(
        reason("a AUTHENTICATE PLAIN ab*d"),
        "Invalid base64 in the initial response"
    );
}

#[test]
fn append_utf8_data() {
    // RFC 6855 §4.
    match ok("a APPEND INBOX (\\Seen) UTF8 (~{5}\r\nhé\r\n)") {
        Command::Append { messages, .. } => {
            assert_eq!(messages[0].parts, vec![text(30, "hé\r\n".as_bytes())]);
            assert_eq!(messages[0].flags, vec![Flag::Seen]);
        }
        other => panic!("{other:?}"),
    }
    assert!(reason("a APPEND INBOX UTF8 ({5}\r\nhé\r\n)").contains("literal8"));
    assert!(reason("a APPEND INBOX UTF8 (~{5}\r\nhé\r\n").contains("')' after the UTF8"));
    assert!(reason("a APPEND INBOX UTF8 ~{5}\r\nhé\r\n").contains("'(' before"));
}

#[test]
fn select_examine_and_mailbox_commands() {
    assert_eq!(
        ok("4 select \"INBOX\""),
        Command::Select {
            mailbox: "INBOX".into(),
            condstore: false,
            qresync: None
        }
    );
    assert_eq!(
        ok("4 select inbox (CONDSTORE)"),
        Command::Select {
            mailbox: "inbox".into(),
            condstore: true,
            qresync: None
        }
    );
    assert_eq!(
        ok("4 EXAMINE \"Sent Items\""),
        Command::Examine {
            mailbox: "Sent Items".into(),
            condstore: false,
            qresync: None
        }
    );
    // RFC 7162 §3.2.5 QRESYNC parameters, with and without known UIDs / sequence match data.
    let qr = |s: &str| match ok(s) {
        Command::Select { qresync, .. } | Command::Examine { qresync, .. } => qresync,
        other => panic!("{other:?}"),
    };
    let p = qr("4 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))")
        .expect("params");
    assert_eq!((p.uid_validity, p.mod_seq), (67890007, 20050715194045000));
    assert_eq!(p.known_uids, Some(set(&[(41, 41), (43, 211), (214, 541)])));
    assert_eq!(p.seq_match, None);
    let p = qr("4 EXAMINE INBOX (CONDSTORE QRESYNC (1 0 1:9 (1:3 4:6)))").expect("params");
    assert_eq!(p.mod_seq, 0);
    assert_eq!(p.seq_match, Some((set(&[(1, 3)]), set(&[(4, 6)]))));
    let p = qr("4 SELECT INBOX (QRESYNC (1 2 (1 4)))").expect("params");
    assert_eq!(p.known_uids, None);
    assert!(p.seq_match.is_some());
    assert!(qr("4 select INBOX (qresync (1 2))").is_some());
    for (bad, why) in [
        ("4 SELECT INBOX (QRESYNC (0 2))", "QRESYNC UIDVALIDITY"),
        (
            "4 SELECT INBOX (QRESYNC (1))",
            "after the QRESYNC UIDVALIDITY",
        ),
        ("4 SELECT INBOX (QRESYNC (1 2 1:*))", "may not contain '*'"),
        (
            "4 SELECT INBOX (QRESYNC (1 2 1:5 (1:* 1:5)))",
            "may not contain '*'",
        ),
        (
            "4 SELECT INBOX (QRESYNC (1 2 1:5 (1:5)))",
            "inside the QRESYNC",
        ),
        (
            "4 SELECT INBOX (QRESYNC (1 99999999999999999999))",
            "too large",
        ),
        ("4 SELECT INBOX (QRESYNC 1 2)", "'(' starting the QRESYNC"),
        (
            "4 SELECT INBOX (QRESYNC (1 2) QRESYNC (1 2))",
            "Unsupported SELECT parameter",
        ),
        ("4 SELECT INBOX (QRESYNC (1 2)", "SELECT"),
    ] {
        let got = reason(bad);
        assert!(got.contains(why), "{bad}: {got}");
    }
    assert_eq!(
        ok("5 CREATE \"Archive/2024\""),
        Command::Create {
            mailbox: "Archive/2024".into()
        }
    );
    assert_eq!(
        ok("5 CREATE Entw&APw-rfe"),
        Command::Create {
            mailbox: "Entw&APw-rfe".into()
        }
    );
    assert_eq!(
        ok("5 DELETE foo"),
        Command::Delete {
            mailbox: "foo".into()
        }
    );
    assert_eq!(
        ok("5 RENAME \"a\" b"),
        Command::Rename {
            from: "a".into(),
            to: "b".into()
        }
    );
    assert_eq!(
        ok("5 SUBSCRIBE Drafts"),
        Command::Subscribe {
            mailbox: "Drafts".into()
        }
    );
    assert_eq!(
        ok("5 UNSUBSCRIBE {4}\r\nJunk"),
        Command::Unsubscribe {
            mailbox: "Junk".into()
        }
    );
    assert_eq!(
        reason("5 CREATE"),
        "Expected SP before the mailbox name, found end of line"
    );
    assert_eq!(
        reason("5 CREATE foo*"),
        "Unexpected characters after CREATE command: \"*\""
    );
    // RFC 9051 allows UTF-8 in quoted strings: passed on as sent, the session decides.
    assert_eq!(
        ok("5 CREATE \"\u{e9}\""),
        Command::Create {
            mailbox: "\u{e9}".into()
        }
    );
}

#[test]
fn status_items() {
    assert_eq!(
        ok("a STATUS blurdybloop (UIDNEXT MESSAGES unseen UIDVALIDITY RECENT SIZE HIGHESTMODSEQ)"),
        Command::Status {
            mailbox: "blurdybloop".into(),
            items: vec![
                StatusItem::UidNext,
                StatusItem::Messages,
                StatusItem::Unseen,
                StatusItem::UidValidity,
                StatusItem::Recent,
                StatusItem::Size,
                StatusItem::HighestModSeq
            ]
        }
    );
    // RFC 9051 §6.3.11 DELETED.
    assert_eq!(
        ok("a STATUS x (DELETED)"),
        Command::Status {
            mailbox: "x".into(),
            items: vec![StatusItem::Deleted]
        }
    );
    // RFC 9208 §4.3.1 DELETED-STORAGE.
    assert_eq!(
        ok("a STATUS x (deleted-storage DELETED)"),
        Command::Status {
            mailbox: "x".into(),
            items: vec![StatusItem::DeletedStorage, StatusItem::Deleted]
        }
    );
    assert_eq!(
        reason("a STATUS x (DELETED-STORAGES)"),
        "Unknown STATUS item DELETED-STORAGES"
    );
    assert_eq!(reason("a STATUS x ()"), "Expected STATUS item, found \")\"");
}

#[test]
fn list_and_lsub() {
    assert_eq!(
        ok("a LIST \"\" \"*\""),
        Command::List {
            reference: "".into(),
            patterns: vec!["*".into()],
            options: ListOptions::default()
        }
    );
    assert_eq!(
        ok("a list \"~/Mail/\" %/foo]*"),
        Command::List {
            reference: "~/Mail/".into(),
            patterns: vec!["%/foo]*".into()],
            options: ListOptions::default()
        }
    );
    // Thunderbird
    let Command::List { options, .. } = ok("5 list (SPECIAL-USE) \"\" \"*\"") else {
        panic!()
    };
    assert!(options.special_use);
    // RFC 5258 / 5819 example style
    assert_eq!(
        ok("A02 LIST (SUBSCRIBED RECURSIVEMATCH REMOTE) \"\" (\"INBOX\" %) RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN))"),
        Command::List {
            reference: "".into(),
            patterns: vec!["INBOX".into(), "%".into()],
            options: ListOptions {
                subscribed: true,
                remote: true,
                recursive_match: true,
                special_use: false,
                return_subscribed: true,
                return_children: true,
                return_special_use: true,
                return_status: Some(vec![StatusItem::Messages, StatusItem::Unseen]),
                extended: true,
            }
        }
    );
    let Command::List { options, .. } = ok("a LIST () \"\" * RETURN ()") else {
        panic!()
    };
    assert_eq!(
        options,
        ListOptions {
            extended: true,
            ..ListOptions::default()
        }
    );
    assert_eq!(
        reason("a LIST (RECURSIVEMATCH) \"\" *"),
        "LIST selection option RECURSIVEMATCH requires SUBSCRIBED or SPECIAL-USE"
    );
    assert_eq!(
        reason("a LIST (FOO) \"\" *"),
        "Unknown LIST selection option FOO"
    );
    assert_eq!(
        reason("a LIST \"\" * RETURN (FOO)"),
        "Unknown LIST return option FOO"
    );
    assert_eq!(
        reason("a LIST \"\" * bar"),
        "Expected RETURN after the LIST pattern, found \"bar\""
    );
    assert_eq!(
        reason("a LIST \"\""),
        "Expected SP before the LIST pattern, found end of line"
    );
    assert_eq!(
        ok("a LSUB \"\" \"*\""),
        Command::Lsub {
            reference: "".into(),
            pattern: "*".into()
        }
    );
}

#[test]
fn id_enable_namespace() {
    assert_eq!(
        ok("3 ID (\"name\" \"Thunderbird\" \"version\" \"115.3.1\")"),
        Command::Id
    );
    assert_eq!(
        ok("a ID (\"name\" \"iPhone Mail\" \"version\" \"21B101\" \"os\" \"iOS\" \"os-version\" \"17.2 (21B101)\")"),
        Command::Id
    );
    assert_eq!(ok("a ID NIL"), Command::Id);
    assert_eq!(ok("a ID (\"name\" NIL)"), Command::Id);
    assert_eq!(
        reason("a ID (\"name\")"),
        "Expected SP after the ID field name, found \")\""
    );
    assert_eq!(
        ok("a ENABLE CONDSTORE utf8=accept"),
        Command::Enable(vec!["CONDSTORE".into(), "utf8=accept".into()])
    );
    assert_eq!(
        reason("a ENABLE"),
        "Expected SP after ENABLE, found end of line"
    );
}

#[test]
fn append() {
    let t = parse_command(
        b"A003 APPEND saved-messages (\\Seen) {23}\r\nFrom: a@b\r\n\r\nHi there\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        t.command,
        Command::Append {
            mailbox: "saved-messages".into(),
            messages: vec![AppendMessage {
                flags: vec![Flag::Seen],
                date: None,
                parts: vec![text(35, b"From: a@b\r\n\r\nHi there\r\n")],
                catenate: false,
            }]
        }
    );
    // mbsync: flags, date-time and a non-synchronising literal.
    let t = parse_command(
        b"7 APPEND \"Sent\" (\\Seen $Forwarded) \" 1-Feb-2024 09:05:00 +0100\" {5+}\r\nhello\r\n",
    )
    .unwrap();
    let Command::Append {
        mailbox,
        mut messages,
    } = t.command
    else {
        panic!()
    };
    let AppendMessage {
        flags, date, parts, ..
    } = messages.remove(0);
    assert_eq!(mailbox, "Sent");
    assert_eq!(flags, vec![Flag::Seen, Flag::Keyword("$Forwarded".into())]);
    let d = date.unwrap();
    assert_eq!(
        (d.date, d.hour, d.minute, d.second, d.zone_minutes),
        (
            Date {
                year: 2024,
                month: 2,
                day: 1
            },
            9,
            5,
            0,
            60
        )
    );
    assert_eq!(parts, vec![text(64, b"hello")]);
    // Date without flags; literal8 with NUL.
    let t =
        parse_command(b"a APPEND INBOX \"17-Jul-1996 02:44:25 -0700\" ~{3}\r\na\0b\r\n").unwrap();
    let Command::Append { messages, .. } = t.command else {
        panic!()
    };
    assert!(messages[0].flags.is_empty() && messages[0].date.is_some());
    assert_eq!(messages[0].parts, vec![text(45, b"a\0b")]);
    // Empty flag list.
    assert!(parse_command(b"a APPEND INBOX () {0}\r\n\r\n").is_ok());
    assert_eq!(
        parse_command(b"a APPEND INBOX (\\Seen) \"1-Feb-2024\" {1}\r\nx\r\n")
            .unwrap_err()
            .reason,
        "Invalid date-time: expected \"dd-Mon-yyyy hh:mm:ss +zzzz\", found \"\" {1}\""
    );
    assert_eq!(
        reason("a APPEND INBOX (\\Seen) hello"),
        "Expected the message as a literal ({size}) or CATENATE, found \"hello\""
    );
    assert_eq!(
        parse_command(b"a APPEND INBOX {10}\r\nshort\r\n")
            .unwrap_err()
            .reason,
        "Literal truncated: 10 bytes announced, 7 present"
    );
    assert_eq!(
        reason("a APPEND INBOX (\\Bogus) {1}"),
        "Unknown system flag \\Bogus"
    );
}

#[test]
fn framer_output_parses() {
    use crate::imap::framing::{FrameEvent, Framer, FramerLimits};
    let mut f = Framer::new(FramerLimits {
        max_line: 1000,
        max_literal: 1000,
        max_command: 5000,
    });
    f.push(b"a1 LOGIN alice {6}\n");
    assert_eq!(f.next_event(), Some(FrameEvent::ContinuationNeeded));
    f.push(b"se cr3\nA2 APPEND Drafts (\\Draft) {11+}\nSubject: x\n\n");
    let mut cmds = Vec::new();
    while let Some(FrameEvent::Command(c)) = f.next_event() {
        cmds.push(parse_command(&c).unwrap());
    }
    assert_eq!(
        cmds[0].command,
        Command::Login {
            user: "alice".into(),
            password: Secret(b"se cr3".to_vec())
        }
    );
    assert_eq!(
        cmds[1].command,
        Command::Append {
            mailbox: "Drafts".into(),
            messages: vec![AppendMessage {
                flags: vec![Flag::Draft],
                date: None,
                parts: vec![text(26, b"Subject: x\n")],
                catenate: false
            }]
        }
    );
}

#[test]
fn never_panics_on_random_input() {
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    // Fragments of real commands, shuffled, so the parser gets deep into each production.
    let words: &[&[u8]] = &[
        b"a1 ",
        b"UID ",
        b"FETCH ",
        b"SEARCH ",
        b"STORE ",
        b"APPEND ",
        b"LIST ",
        b"SELECT ",
        b"STATUS ",
        b"LOGIN ",
        b"1:*",
        b",",
        b"$",
        b"0",
        b"4294967296",
        b"(",
        b")",
        b" ",
        b"\"",
        b"\\",
        b"{3}\r\n",
        b"{99}\r\n",
        b"~{1+}\r\n",
        b"BODY.PEEK[",
        b"]",
        b"<0.1>",
        b"HEADER.FIELDS ",
        b"1.2.MIME",
        b"OR ",
        b"NOT ",
        b"SINCE ",
        b"1-Feb-1994",
        b"\" 1-Jan-2000 00:00:00 +0000\"",
        b"+FLAGS.SILENT ",
        b"\\Seen",
        b"RETURN ",
        b"CHARSET ",
        b"MODSEQ ",
        b"CHANGEDSINCE ",
        b"%",
        b"*",
        b"\r\n",
        b"\xff",
        b"\x00",
        b"INBOX",
        b"NIL",
    ];
    for _ in 0..30_000 {
        let n = next() % 14;
        let mut input = Vec::new();
        for _ in 0..n {
            input.extend_from_slice(words[next() as usize % words.len()]);
        }
        let _ = parse_command(&input);
    }
    for _ in 0..5_000 {
        let n = next() % 64;
        let input: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        let _ = parse_command(&input);
    }
}

#[test]
fn mailbox_names_without_controls_or_separators() {
    // RFC 9051 §5.1: no C0 / DEL / C1 controls, no U+2028 / U+2029, in any command that
    // takes a mailbox name (a UTF-8 client's name would otherwise reach the store encoded).
    for line in [
        "a CREATE {3}\r\na\tb",
        "a CREATE {3}\r\na\x7fb",
        "a CREATE \"a\u{85}b\"",
        "a CREATE \"a\u{2028}b\"",
        "a SELECT \"\u{2029}\"",
        "a RENAME x {1}\r\n\x01",
        "a STATUS {1}\r\n\x1b (MESSAGES)",
        "a APPEND \"a\u{9f}\" {1}\r\nx",
    ] {
        let r = reason(line);
        assert!(r.contains("not allowed in mailbox names"), "{line:?}: {r}");
    }
    for fine in [
        "a CREATE \"Entwürfe\"",
        "a CREATE \"a\u{a0}b\"",
        "a SELECT \"📬\"",
    ] {
        ok(fine);
    }
}

/// A TEXT part (or a plain message) whose literal starts at `at`.
pub(super) fn text(at: usize, data: &[u8]) -> AppendPart {
    AppendPart::Text {
        at,
        data: data.to_vec(),
    }
}
