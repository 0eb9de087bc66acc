use super::*;
use crate::imap::types::SectionText;

fn ok(url: &str) -> ImapUrl {
    parse(url.as_bytes()).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn err(url: &str) -> String {
    match parse(url.as_bytes()) {
        Ok(u) => panic!("{url} parsed: {u:?}"),
        Err(e) => e,
    }
}

#[test]
fn message_urls() {
    let u = ok("/INBOX/;UID=20");
    assert_eq!(
        u,
        ImapUrl {
            mailbox: "INBOX".into(),
            uid_validity: None,
            uid: 20,
            section: None,
            partial: None
        }
    );
    let u = ok("/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2.MIME/;PARTIAL=0.1024");
    assert_eq!(u.mailbox, "Drafts");
    assert_eq!(u.uid_validity, Some(385759045));
    assert_eq!(
        u.section,
        Some(Section {
            part: vec![1, 2],
            text: Some(SectionText::Mime)
        })
    );
    assert_eq!(u.partial, Some((0, Some(1024))));
    // Keywords in any case; a partial without a length.
    let u = ok("/a/b/;uid=1/;partial=7");
    assert_eq!(
        (u.mailbox.as_str(), u.uid, u.partial),
        ("a/b", 1, Some((7, None)))
    );
}

#[test]
fn percent_decoding_of_mailbox_and_section() {
    let u = ok("/my%20folder/;UID=3/;SECTION=HEADER.FIELDS%20(From%20To)");
    assert_eq!(u.mailbox, "my folder");
    assert_eq!(
        u.section.unwrap().text,
        Some(SectionText::HeaderFields(vec!["From".into(), "To".into()]))
    );
    // UTF-8 (RFC 5092 §3.2) becomes the modified UTF-7 of the mailbox argument.
    assert_eq!(ok("/Entw%C3%BCrfe/;UID=1").mailbox, "Entw&APw-rfe");
    assert_eq!(ok("/Entw&APw-rfe/;UID=1").mailbox, "Entw&APw-rfe");
}

#[test]
fn bad_urls() {
    assert_eq!(err("imap://u@h/INBOX/;UID=1"), "Relative URL required");
    assert_eq!(err("//h/INBOX/;UID=1"), "Relative URL required");
    assert_eq!(err("INBOX/;UID=1"), "Relative URL required");
    assert_eq!(err("/INBOX"), "Missing the message UID");
    assert_eq!(err("/INBOX;UIDVALIDITY=5"), "Missing the message UID");
    assert_eq!(err("/INBOX;UID=1"), "Expected '/' before ';UID='");
    assert!(err("/INBOX;UIDVALIDITY=1;UID=1").contains("not a valid IMAP number"));
    assert!(err("/INBOX;UIDVALIDITY=x/;UID=1").contains("'x'"));
    assert_eq!(err("/INBOX/;UID=0"), "UID must not be 0");
    assert_eq!(err("/INBOX/;UID=99999999999"), "UID is too large");
    assert_eq!(
        err("/INBOX/;UID=1/;PARTIAL=1.0"),
        "PARTIAL length must not be 0"
    );
    assert!(err("/INBOX/;UID=1/;PARTIAL=").contains("not a valid"));
    assert!(err("/INBOX/;UID=1/;SECTION=BOGUS").contains("Invalid section"));
    assert_eq!(err("/INBOX/;UID=1/;SECTION="), "Empty SECTION");
    assert_eq!(
        err("/INBOX/;UID=1/;URLAUTH=anonymous"),
        "URLAUTH is not supported"
    );
    assert_eq!(err("/INBOX/;UID=1/;FOO=1"), "Unexpected ;FOO in the URL");
    assert_eq!(
        err("/INBOX/;UID=1/;PARTIAL=1/;SECTION=1"),
        "Unexpected ;SECTION in the URL"
    );
    assert_eq!(err("/INBOX/;UID=1/;UID=2"), "Unexpected ;UID in the URL");
    assert_eq!(err("/%zz/;UID=1"), "Invalid %-escape in the URL");
    assert_eq!(err("/%ff/;UID=1"), "Mailbox name is not UTF-8");
    assert_eq!(
        err("/a%00b/;UID=1"),
        "Invalid character in the mailbox name"
    );
    assert_eq!(err("/IN BOX/;UID=1"), "Invalid character in URL");
    assert_eq!(err("/;UID=1"), "Expected '/' before ';UID='");
    assert_eq!(err("/;UIDVALIDITY=1/;UID=1"), "Missing the mailbox name");
    assert_eq!(err("/INBOX/;UID"), "Expected '=' in the URL");
    assert_eq!(err("/INBOX/;UID=1/x"), "Expected '/;' in the URL");
    assert_eq!(
        err(&format!("/{}/;UID=1", "a".repeat(9000))),
        "URL too long"
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small xorshift over URL-ish pieces, fixed seed.
    let pieces: [&[u8]; 12] = [
        b"/",
        b";",
        b"=",
        b"UID",
        b"UIDVALIDITY",
        b"SECTION",
        b"PARTIAL",
        b"1",
        b".",
        b"%",
        b"%C3",
        b"INBOX",
    ];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..20_000 {
        let mut url = Vec::new();
        for _ in 0..(x % 12) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            url.extend_from_slice(pieces[(x % 12) as usize]);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = parse(&url);
    }
}
