//! Transcript-style tests for the selected-state commands: FETCH, STORE, COPY/MOVE,
//! UID EXPUNGE and SEARCH.

use super::tests::{ok, peek, reason, set};
use super::*;
use FetchAttr::*;

#[test]
fn fetch_thunderbird_headers() {
    let cmd = ok("A1 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])");
    let fields: Vec<String> = "From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To"
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(
        cmd,
        Command::Fetch {
            uid: true,
            set: set(&[(1, 0)]),
            items: vec![
                Uid,
                Rfc822Size,
                Flags,
                peek(Some(SectionText::HeaderFields(fields)))
            ],
            changed_since: None,
            vanished: false
        }
    );
}

#[test]
fn fetch_forms() {
    let items = |line: &str| match ok(line) {
        Command::Fetch { items, .. } => items,
        c => panic!("{c:?}"),
    };
    assert_eq!(
        items("a FETCH 1 ALL"),
        vec![Flags, InternalDate, Rfc822Size, Envelope]
    );
    assert_eq!(
        items("a FETCH 1 fast"),
        vec![Flags, InternalDate, Rfc822Size]
    );
    assert_eq!(
        items("a FETCH 1 FULL"),
        vec![Flags, InternalDate, Rfc822Size, Envelope, Body]
    );
    assert_eq!(items("a FETCH 1 (FLAGS)"), vec![Flags]);
    assert_eq!(
        items("a fetch 2:4 (flags body[header.fields (DATE FROM)])"),
        vec![
            Flags,
            BodySection {
                peek: false,
                section: Section {
                    part: vec![],
                    text: Some(SectionText::HeaderFields(vec![
                        "DATE".into(),
                        "FROM".into()
                    ]))
                },
                partial: None
            }
        ]
    );
    assert_eq!(
        items("a FETCH 1 BODY[]"),
        vec![BodySection {
            peek: false,
            section: Section::default(),
            partial: None
        }]
    );
    // iOS / mbsync partial fetches
    assert_eq!(
        items("a UID FETCH 4 (UID RFC822.SIZE BODY.PEEK[]<0.10240>)"),
        vec![
            Uid,
            Rfc822Size,
            BodySection {
                peek: true,
                section: Section::default(),
                partial: Some((0, 10240))
            }
        ]
    );
    assert_eq!(items("a FETCH 1 (BODYSTRUCTURE BODY ENVELOPE INTERNALDATE RFC822 RFC822.HEADER RFC822.TEXT MODSEQ)"), vec![
        BodyStructure,
        Body,
        Envelope,
        InternalDate,
        Rfc822,
        Rfc822Header,
        Rfc822Text,
        ModSeq
    ]);
    assert_eq!(items("a FETCH 1 (BODY.PEEK[1.2.3.MIME] BODY[2.HEADER] BODY[3.TEXT] BODY[4.1] BODY[TEXT]<100.200>)"), vec![
        BodySection { peek: true, section: Section { part: vec![1, 2, 3], text: Some(SectionText::Mime) }, partial: None },
        BodySection { peek: false, section: Section { part: vec![2], text: Some(SectionText::Header) }, partial: None },
        BodySection { peek: false, section: Section { part: vec![3], text: Some(SectionText::Text) }, partial: None },
        BodySection { peek: false, section: Section { part: vec![4, 1], text: None }, partial: None },
        BodySection { peek: false, section: Section { part: vec![], text: Some(SectionText::Text) }, partial: Some((100, 200)) },
    ]);
    assert_eq!(
        items("a FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (\"X-Spam\" {6}\r\nX-Junk)]"),
        vec![peek(Some(SectionText::HeaderFieldsNot(vec![
            "X-Spam".into(),
            "X-Junk".into()
        ])))]
    );
    assert_eq!(
        items("a FETCH 1 (BINARY[1] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[] binary.peek[])"),
        vec![
            Binary {
                peek: false,
                part: vec![1],
                partial: None
            },
            Binary {
                peek: true,
                part: vec![1, 2],
                partial: Some((0, 100))
            },
            BinarySize { part: vec![] },
            Binary {
                peek: true,
                part: vec![],
                partial: None
            },
        ]
    );
    // Duplicates collapse.
    assert_eq!(items("a FETCH 1 (UID FLAGS UID)"), vec![Uid, Flags]);
    // RFC 7162 CHANGEDSINCE
    assert_eq!(
        ok("s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)"),
        Command::Fetch {
            uid: true,
            set: set(&[(1, 0)]),
            items: vec![Flags],
            changed_since: Some(12345),
            vanished: false
        }
    );
    // RFC 7162 §3.2.6 VANISHED (UID FETCH with CHANGEDSINCE only).
    assert_eq!(
        ok("s101 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)"),
        Command::Fetch {
            uid: true,
            set: set(&[(300, 500)]),
            items: vec![Flags],
            changed_since: Some(12345),
            vanished: true
        }
    );
}

#[test]
fn fetch_errors() {
    assert_eq!(
        reason("a FETCH 0 FLAGS"),
        "Invalid sequence set: 0 is not a valid message number"
    );
    assert_eq!(
        reason("a FETCH 1:0 FLAGS"),
        "Invalid sequence set: 0 is not a valid message number"
    );
    assert_eq!(
        reason("a FETCH 1"),
        "Expected SP after the sequence set, found end of line"
    );
    assert_eq!(reason("a FETCH 1 (FLAGS FOO)"), "Unknown FETCH item FOO");
    assert_eq!(reason("a FETCH 1 FLAGSX"), "Unknown FETCH item FLAGSX");
    assert_eq!(reason("a FETCH 1 SNIPPET"), "Unknown FETCH item SNIPPET");
    assert_eq!(
        reason("a FETCH 1 BODY[MIME]"),
        "Section MIME requires a part number (e.g. BODY[1.MIME])"
    );
    assert_eq!(
        reason("a FETCH 1 BODY[FOO]"),
        "Invalid section FOO: expected HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME"
    );
    assert_eq!(
        reason("a FETCH 1 BODY[0]"),
        "Invalid section part number: must not be 0"
    );
    assert_eq!(
        reason("a FETCH 1 BODY[HEADER"),
        "Expected ']' closing the section, found end of line"
    );
    assert_eq!(
        reason("a FETCH 1 BODY[]<0>"),
        "Expected '.' between partial offset and length (<offset.length>), found \">\""
    );
    assert_eq!(
        reason("a FETCH 1 BODY[]<0.0>"),
        "Invalid partial length: must not be 0"
    );
    assert_eq!(
        reason("a FETCH 1 BODY[]<4294967296.1>"),
        "Invalid partial offset: 4294967296 is too large (at most 4294967295)"
    );
    assert_eq!(
        reason("a FETCH 1 BODY[HEADER.FIELDS ()]"),
        "Expected header field name, found \")]\""
    );
    assert_eq!(
        reason("a FETCH 1 BODY[HEADER.FIELDS (Subject:)]"),
        "Invalid header field name \"Subject:\""
    );
    assert_eq!(reason("a FETCH 1 BINARY[HEADER]"), "Expected ']' closing the BINARY section (only part numbers are allowed), found \"HEADER]\"");
    assert_eq!(
        reason("a FETCH 1 (FLAGS) (VANISHED)"),
        "The VANISHED FETCH modifier needs UID FETCH and CHANGEDSINCE"
    );
    assert_eq!(
        reason("a FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)"),
        "The VANISHED FETCH modifier needs UID FETCH and CHANGEDSINCE"
    );
    assert_eq!(
        reason("a UID FETCH 1 (FLAGS) (VANISHED)"),
        "The VANISHED FETCH modifier needs UID FETCH and CHANGEDSINCE"
    );
    assert_eq!(
        reason("a UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 FOO)"),
        "Unsupported FETCH modifier FOO"
    );
    assert_eq!(
        reason("a FETCH 1 (FLAGS"),
        "Expected SP between FETCH items, found end of line"
    );
    assert_eq!(
        reason("a UID FROB 1"),
        "UID must be followed by FETCH, SEARCH, SORT, THREAD, STORE, COPY, MOVE or EXPUNGE, not FROB"
    );
}

#[test]
fn store_forms() {
    assert_eq!(
        ok("7 uid store 1 +Flags (\\Seen)"),
        Command::Store {
            uid: true,
            set: set(&[(1, 1)]),
            mode: StoreMode::Add,
            silent: false,
            flags: vec![Flag::Seen],
            unchanged_since: None
        }
    );
    // mbsync
    assert_eq!(
        ok("9 UID STORE 3:5,9 +FLAGS.SILENT \\Deleted \\Flagged"),
        Command::Store {
            uid: true,
            set: set(&[(3, 5), (9, 9)]),
            mode: StoreMode::Add,
            silent: true,
            flags: vec![Flag::Deleted, Flag::Flagged],
            unchanged_since: None
        }
    );
    assert_eq!(
        ok("a STORE 2:4 -FLAGS (\\Draft $Junk)"),
        Command::Store {
            uid: false,
            set: set(&[(2, 4)]),
            mode: StoreMode::Remove,
            silent: false,
            flags: vec![Flag::Draft, Flag::Keyword("$Junk".into())],
            unchanged_since: None
        }
    );
    assert_eq!(
        ok("d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) FLAGS.silent ()"),
        Command::Store {
            uid: false,
            set: set(&[(7, 7), (5, 5), (9, 9)]),
            mode: StoreMode::Replace,
            silent: true,
            flags: vec![],
            unchanged_since: Some(320162338)
        }
    );
    assert_eq!(
        reason("a STORE 1 +FLAGS"),
        "Expected SP after FLAGS, found end of line"
    );
    assert_eq!(
        reason("a STORE 1 FLAG (\\Seen)"),
        "Expected FLAGS, +FLAGS or -FLAGS (optionally .SILENT), found FLAG"
    );
    assert_eq!(
        reason("a STORE 1 +FLAGS (\\Seen \\Bogus)"),
        "Unknown system flag \\Bogus"
    );
    assert_eq!(
        reason("a STORE 1 (UNCHANGEDSINCE x) FLAGS ()"),
        "Expected UNCHANGEDSINCE value (a number), found \"x) FLAGS ()\""
    );
    assert_eq!(
        reason("a STORE 1 (FOO 1) FLAGS ()"),
        "Unsupported STORE modifier FOO"
    );
}

#[test]
fn copy_move_expunge() {
    assert_eq!(
        ok("a COPY 2:4 MEETING"),
        Command::Copy {
            uid: false,
            set: set(&[(2, 4)]),
            mailbox: "MEETING".into()
        }
    );
    assert_eq!(
        ok("a UID COPY 1,3 \"Deleted Items\""),
        Command::Copy {
            uid: true,
            set: set(&[(1, 1), (3, 3)]),
            mailbox: "Deleted Items".into()
        }
    );
    assert_eq!(
        ok("a UID MOVE 42:* Trash"),
        Command::Move {
            uid: true,
            set: set(&[(42, 0)]),
            mailbox: "Trash".into()
        }
    );
    assert_eq!(
        ok("a MOVE $ Archive"),
        Command::Move {
            uid: false,
            set: SequenceSet::Saved,
            mailbox: "Archive".into()
        }
    );
    assert_eq!(
        ok("a UID EXPUNGE 3000:3002"),
        Command::UidExpunge(set(&[(3000, 3002)]))
    );
    assert_eq!(
        reason("a UID EXPUNGE"),
        "Expected SP after UID EXPUNGE, found end of line"
    );
    assert_eq!(
        reason("a COPY 1:5x Trash"),
        "Invalid sequence set: unexpected character 'x'"
    );
    assert_eq!(
        reason("a COPY 1 "),
        "Expected mailbox name, found end of line"
    );
}

#[test]
fn search_forms() {
    use SearchKey as K;
    let crit = |line: &str| match ok(line) {
        Command::Search {
            criteria: K::And(keys),
            ..
        } => keys,
        c => panic!("{c:?}"),
    };
    assert_eq!(crit("a SEARCH ALL"), vec![K::All]);
    // iOS
    assert_eq!(
        crit("a UID SEARCH 1:* NOT DELETED"),
        vec![K::SequenceSet(set(&[(1, 0)])), K::Not(Box::new(K::Deleted))]
    );
    // RFC 3501 §6.4.4 examples
    assert_eq!(
        crit("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
        vec![
            K::Flagged,
            K::Since(Date {
                year: 1994,
                month: 2,
                day: 1
            }),
            K::Not(Box::new(K::From("Smith".into()))),
        ]
    );
    assert_eq!(
        ok("A283 SEARCH TEXT \"string not in mailbox\""),
        Command::Search {
            uid: false,
            charset: None,
            returns: None,
            criteria: K::And(vec![K::Text("string not in mailbox".into())])
        }
    );
    assert_eq!(
        parse_command(b"A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n")
            .unwrap()
            .command,
        Command::Search {
            uid: false,
            charset: Some("UTF-8".into()),
            returns: None,
            criteria: K::And(vec![K::Text("XXXXXX".into())])
        }
    );
    // Thunderbird quick filter
    assert_eq!(
        crit("a UID SEARCH OR (FROM \"bob\") (OR SUBJECT \"bob\" TO bob) UNDELETED"),
        vec![
            K::Or(vec![
                K::And(vec![K::From("bob".into())]),
                K::And(vec![K::Or(vec![
                    K::Subject("bob".into()),
                    K::To("bob".into())
                ])])
            ]),
            K::Undeleted,
        ]
    );
    assert_eq!(
        crit("a SEARCH answered bcc x before \"2-Mar-2020\" body y cc z deleted draft header X-Mailer \"\" keyword $Junk larger 100 new old on 3-Apr-2021 recent seen sentbefore 1-Jan-2000 senton 1-Jan-2000 sentsince 1-Jan-2000 smaller 5 subject s to t uid 1:3 $ unanswered undeleted undraft unflagged unkeyword NonJunk unseen since 29-Feb-2000 modseq 620162338"),
        vec![
            K::Answered,
            K::Bcc("x".into()),
            K::Before(Date { year: 2020, month: 3, day: 2 }),
            K::Body("y".into()),
            K::Cc("z".into()),
            K::Deleted,
            K::Draft,
            K::Header("X-Mailer".into(), "".into()),
            K::Keyword("$Junk".into()),
            K::Larger(100),
            K::New,
            K::Old,
            K::On(Date { year: 2021, month: 4, day: 3 }),
            K::Recent,
            K::Seen,
            K::SentBefore(Date { year: 2000, month: 1, day: 1 }),
            K::SentOn(Date { year: 2000, month: 1, day: 1 }),
            K::SentSince(Date { year: 2000, month: 1, day: 1 }),
            K::Smaller(5),
            K::Subject("s".into()),
            K::To("t".into()),
            K::Uid(set(&[(1, 3)])),
            K::SequenceSet(SequenceSet::Saved),
            K::Unanswered,
            K::Undeleted,
            K::Undraft,
            K::Unflagged,
            K::Unkeyword("NonJunk".into()),
            K::Unseen,
            K::Since(Date { year: 2000, month: 2, day: 29 }),
            K::ModSeq(620162338),
        ]
    );
    assert_eq!(
        crit("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338"),
        vec![K::ModSeq(620162338)]
    );
    assert_eq!(
        crit("a search (seen (flagged (deleted)))"),
        vec![K::And(vec![
            K::Seen,
            K::And(vec![K::Flagged, K::And(vec![K::Deleted])])
        ])]
    );
}

#[test]
fn search_return_and_charset() {
    use SearchKey as K;
    assert_eq!(
        ok("a UID SEARCH RETURN (MIN MAX COUNT ALL SAVE) CHARSET us-ascii UNSEEN"),
        Command::Search {
            uid: true,
            charset: Some("us-ascii".into()),
            returns: Some(vec![
                SearchReturn::Min,
                SearchReturn::Max,
                SearchReturn::Count,
                SearchReturn::All,
                SearchReturn::Save
            ]),
            criteria: K::And(vec![K::Unseen])
        }
    );
    let Command::Search { returns, .. } = ok("a SEARCH RETURN () ALL") else {
        panic!()
    };
    assert_eq!(returns, Some(vec![]));
    // UTF-8 in a quoted string (RFC 9051) and a Latin-1 literal.
    let Command::Search { criteria, .. } = ok("a SEARCH SUBJECT \"caf\u{e9}\"") else {
        panic!()
    };
    assert_eq!(criteria, K::And(vec![K::Subject("café".into())]));
    let t = parse_command(b"a SEARCH CHARSET ISO-8859-1 SUBJECT {4}\r\ncaf\xe9\r\n").unwrap();
    let Command::Search { criteria, .. } = t.command else {
        panic!()
    };
    assert_eq!(criteria, K::And(vec![K::Subject("café".into())]));
    assert_eq!(
        parse_command(b"a SEARCH SUBJECT {4}\r\ncaf\xe9\r\n")
            .unwrap_err()
            .reason,
        "Invalid SUBJECT search string: not valid UTF-8 (use CHARSET)"
    );
    let t = parse_command(b"a SEARCH CHARSET KOI8-R SUBJECT {1}\r\n\xe9\r\n").unwrap();
    let Command::Search { charset, .. } = t.command else {
        panic!()
    };
    assert_eq!(charset.as_deref(), Some("KOI8-R"));
}

#[test]
fn search_errors() {
    assert_eq!(
        reason("a SEARCH"),
        "Expected SP after SEARCH, found end of line"
    );
    assert_eq!(reason("a SEARCH FOO"), "Unknown search key FOO");
    assert_eq!(
        reason("a SEARCH SAVEDAFTER 1-Jan-2020"),
        "Unknown search key SAVEDAFTER"
    );
    assert_eq!(
        reason("a SEARCH SINCE 31-Feb-2020"),
        "Invalid date: day 31 does not exist in FEB"
    );
    assert_eq!(
        reason("a SEARCH SINCE yesterday"),
        "Invalid date: expected dd-Mon-yyyy (e.g. 1-Feb-1994), found \"yesterday\""
    );
    assert_eq!(
        reason("a SEARCH LARGER 99999999999"),
        "Invalid LARGER size: 99999999999 is too large (at most 4294967295)"
    );
    assert_eq!(
        reason("a SEARCH OR SEEN"),
        "Expected SP between the two OR keys, found end of line"
    );
    assert_eq!(reason("a SEARCH (SEEN"), "Missing ')' in search criteria");
    assert_eq!(reason("a SEARCH ()"), "Empty parenthesised search criteria");
    assert_eq!(
        reason("a SEARCH SEEN)"),
        "Expected SP between search keys, found \")\""
    );
    assert_eq!(
        reason("a SEARCH KEYWORD \\Seen"),
        "KEYWORD takes a keyword, not a system flag (use SEEN, FLAGGED, ... instead)"
    );
    assert_eq!(
        reason("a SEARCH RETURN (PARTIAL 1:5 BOGUS) ALL"),
        "Unknown SEARCH RETURN option BOGUS"
    );
    assert_eq!(
        reason("a SEARCH UID 0"),
        "Invalid sequence set: 0 is not a valid message number"
    );
    assert_eq!(
        reason("a SEARCH MODSEQ \"/x\" all 1"),
        "Invalid MODSEQ entry name \"/x\""
    );
    assert_eq!(
        reason("a SEARCH uid 1:3,$"),
        "Invalid sequence set: expected a number or '*', found \"$\""
    );
}

#[test]
fn search_nesting_is_bounded() {
    let deep = format!("a SEARCH {}SEEN{}", "(".repeat(150), ")".repeat(150));
    assert_eq!(
        reason(&deep),
        format!("Search criteria nested too deeply (at most {MAX_SEARCH_DEPTH} levels)")
    );
    let nots = format!("a SEARCH {}SEEN", "NOT ".repeat(10_000));
    assert!(reason(&nots).contains("nested too deeply"));
    let ors = format!("a SEARCH {}SEEN", "OR SEEN ".repeat(10_000));
    assert_eq!(
        reason(&ors),
        format!("Too many search keys (at most {MAX_SEARCH_KEYS})")
    );
    let fine = format!("a SEARCH {}SEEN{}", "(".repeat(50), ")".repeat(50));
    assert!(parse_command(fine.as_bytes()).is_ok());
}

/// A client searching for many Message-IDs sends a long OR chain, nested either way or
/// mixed; each becomes one flat Or, whatever its length.
#[test]
fn search_or_chains_are_flat() {
    use SearchKey as K;
    let only = |line: &str| match ok(line) {
        Command::Search {
            criteria: K::And(mut keys),
            ..
        } if keys.len() == 1 => keys.remove(0),
        c => panic!("{c:?}"),
    };
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("HEADER Message-ID <{i}@x>"))
        .collect();
    let want = K::Or(
        (0..1000)
            .map(|i| K::Header("Message-ID".into(), format!("<{i}@x>")))
            .collect(),
    );
    // OR a OR b OR c d
    let right = format!(
        "a SEARCH {} {}",
        ids[..999]
            .iter()
            .map(|t| format!("OR {t}"))
            .collect::<Vec<_>>()
            .join(" "),
        ids[999]
    );
    assert_eq!(only(&right), want);
    // OR OR OR a b c d
    let left = format!("a SEARCH {}{}", "OR ".repeat(999), ids.join(" "));
    assert_eq!(only(&left), want);
    // OR (OR a b) NOT OR c d: parentheses and NOT keep their own Or.
    assert_eq!(
        only("a SEARCH OR OR SEEN (OR DRAFT NEW) NOT OR OLD FLAGGED"),
        K::Or(vec![
            K::Seen,
            K::And(vec![K::Or(vec![K::Draft, K::New])]),
            K::Not(Box::new(K::Or(vec![K::Old, K::Flagged]))),
        ])
    );
    assert_eq!(
        reason("a SEARCH OR SEEN"),
        "Expected SP between the two OR keys, found end of line"
    );
    assert_eq!(
        reason("a SEARCH OR OR SEEN DRAFT"),
        "Expected SP between the two OR keys, found end of line"
    );
}

#[test]
fn within_keys() {
    use SearchKey as K;
    let crit = |line: &str| match ok(line) {
        Command::Search {
            criteria: K::And(keys),
            ..
        } => keys,
        c => panic!("{c:?}"),
    };
    assert_eq!(
        crit("a SEARCH OLDER 3600 younger 60"),
        vec![K::Older(3600), K::Younger(60)]
    );
    for bad in [
        "a SEARCH OLDER",
        "a SEARCH OLDER 0",
        "a SEARCH YOUNGER -1",
        "a SEARCH YOUNGER x",
    ] {
        let why = reason(bad);
        assert!(
            why.contains("OLDER") || why.contains("YOUNGER"),
            "{bad}: {why}"
        );
    }
}

#[test]
fn savedate_and_preview() {
    use SearchKey as K;
    let fetch = |line: &str| match ok(line) {
        Command::Fetch {
            items,
            changed_since,
            ..
        } => (items, changed_since),
        c => panic!("{c:?}"),
    };
    assert_eq!(
        fetch("a FETCH 1 (SAVEDATE PREVIEW (LAZY) UID)"),
        (vec![SaveDate, Preview { lazy: true }, Uid], None)
    );
    // One PREVIEW response item: LAZY only when every PREVIEW asked is.
    assert_eq!(
        fetch("a FETCH 1 (PREVIEW (LAZY) preview PREVIEW (LAZY))"),
        (vec![Preview { lazy: false }], None)
    );
    assert_eq!(
        fetch("a FETCH 1 PREVIEW (lazy LAZY)"),
        (vec![Preview { lazy: true }], None)
    );
    // A list after a lone PREVIEW that is not LAZY is the FETCH modifiers.
    assert_eq!(
        fetch("a FETCH 1 PREVIEW (CHANGEDSINCE 5)"),
        (vec![Preview { lazy: false }], Some(5))
    );
    for bad in [
        "a FETCH 1 (PREVIEW (LAZY FOO))",
        "a FETCH 1 (PREVIEW (LAZY)",
        "a FETCH 1 (PREVIEW ())",
        "a FETCH 1 PREVIEWX",
        "a FETCH 1 SAVEDATE.X",
    ] {
        assert!(!reason(bad).is_empty(), "{bad}");
    }
    let crit = |line: &str| match ok(line) {
        Command::Search {
            criteria: K::And(keys),
            ..
        } => keys,
        c => panic!("{c:?}"),
    };
    let d = |day, month, year| Date { year, month, day };
    assert_eq!(
        crit("a SEARCH SAVEDBEFORE 1-Feb-2020 savedon 2-Feb-2020 SAVEDSINCE 3-Feb-2020 SAVEDATESUPPORTED"),
        vec![
            K::SavedBefore(d(1, 2, 2020)),
            K::SavedOn(d(2, 2, 2020)),
            K::SavedSince(d(3, 2, 2020)),
            K::SaveDateSupported
        ]
    );
    assert!(!reason("a SEARCH SAVEDON x").is_empty());
    assert!(!reason("a SEARCH SAVEDATESUPPORTED 1-Jan-2020 x").is_empty());
}
