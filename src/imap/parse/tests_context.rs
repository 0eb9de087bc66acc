//! Transcript-style tests for RFC 5267 §4 (CONTEXT=SEARCH, CONTEXT=SORT): the CONTEXT, UPDATE
//! and PARTIAL return options and CANCELUPDATE, with Dovecot 2.3's answers to bad input.

use super::tests::{ok, reason};
use super::*;

fn returns(line: &str) -> Vec<SearchReturn> {
    match ok(line) {
        Command::Search { returns, .. } | Command::Sort { returns, .. } => returns.unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn context_update_and_partial() {
    use SearchReturn::*;
    assert_eq!(
        returns("a SEARCH RETURN (context UPDATE partial 1:10 COUNT) ALL"),
        vec![Context, Update, Partial(1, 10), Count]
    );
    // Either order; Dovecot answers with the range ascending.
    assert_eq!(
        returns("a SEARCH RETURN (PARTIAL 9:3) ALL"),
        vec![Partial(3, 9)]
    );
    assert_eq!(
        returns("a UID SORT RETURN (UPDATE PARTIAL 4294967295:1) (DATE) UTF-8 ALL"),
        vec![Update, Partial(1, u32::MAX)]
    );
}

#[test]
fn broken_partial_ranges() {
    for line in [
        "a SEARCH RETURN (PARTIAL 0:1) ALL",
        "a SEARCH RETURN (PARTIAL -1:-5) ALL",
        "a SEARCH RETURN (PARTIAL 1:*) ALL",
        "a SEARCH RETURN (PARTIAL 1) ALL",
        "a SEARCH RETURN (PARTIAL 1:2:3) ALL",
        "a SEARCH RETURN (PARTIAL 1:4294967296) ALL",
        "a SEARCH RETURN (PARTIAL 1:2,5) ALL",
    ] {
        assert_eq!(reason(line), "PARTIAL range broken", "{line}");
    }
    assert_eq!(
        reason("a SEARCH RETURN (PARTIAL) ALL"),
        "PARTIAL range missing"
    );
    assert_eq!(
        reason("a SEARCH RETURN (PARTIAL ) ALL"),
        "PARTIAL range missing"
    );
    assert_eq!(
        reason("a SEARCH RETURN (PARTIAL 1:2 PARTIAL 1:2) ALL"),
        "PARTIAL can be used only once"
    );
    assert_eq!(
        reason("a SEARCH RETURN (UPDATE COUNT UPDATE) ALL"),
        "SEARCH return options have duplicate UPDATE"
    );
    assert_eq!(
        reason("a SEARCH RETURN (ALL PARTIAL 1:2) ALL"),
        "PARTIAL conflicts with ALL"
    );
}

#[test]
fn cancelupdate() {
    assert_eq!(
        ok("a CANCELUPDATE \"A1\" {2+}\r\nB2"),
        Command::CancelUpdate(vec!["A1".into(), "B2".into()])
    );
    assert!(reason("a CANCELUPDATE").contains("after CANCELUPDATE"));
    assert!(reason("a CANCELUPDATE A1").contains("search tag"));
    assert!(reason("a CANCELUPDATE \"A1\" ").contains("search tag"));
}
