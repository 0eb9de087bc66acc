//! Transcript-style tests for SORT and UID SORT (RFC 5256 §4, RFC 5267 §3) and THREAD, with
//! Dovecot's answers to the same bad input.

use super::tests::{ok, reason};
use super::*;

fn program(line: &str) -> Vec<SortCriterion> {
    match ok(line) {
        Command::Sort { program, .. } => program,
        other => panic!("{other:?}"),
    }
}

fn key(reverse: bool, key: SortKey) -> SortCriterion {
    SortCriterion { reverse, key }
}

#[test]
fn sort_with_return_and_criteria() {
    use SearchKey as K;
    assert_eq!(
        ok("a UID SORT RETURN (MIN COUNT) (REVERSE DATE subject) utf-8 UNSEEN FROM \"x\""),
        Command::Sort {
            uid: true,
            returns: Some(vec![SearchReturn::Min, SearchReturn::Count]),
            program: vec![key(true, SortKey::Date), key(false, SortKey::Subject)],
            charset: "utf-8".into(),
            criteria: K::And(vec![K::Unseen, K::From("x".into())]),
        }
    );
    let Command::Sort { uid, returns, .. } = ok("a SORT (ARRIVAL) US-ASCII ALL") else {
        panic!()
    };
    assert!(!uid);
    assert_eq!(returns, None);
}

#[test]
fn every_sort_key() {
    use SortKey::*;
    assert_eq!(
        program("a SORT (ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO) UTF-8 ALL"),
        [
            Arrival,
            Cc,
            Date,
            From,
            Size,
            Subject,
            To,
            DisplayFrom,
            DisplayTo
        ]
        .map(|k| key(false, k))
        .to_vec()
    );
    // Dovecot accepts REVERSE REVERSE (they cancel out).
    assert_eq!(
        program("a SORT (REVERSE REVERSE SIZE) UTF-8 ALL"),
        vec![key(false, Size)]
    );
}

#[test]
fn bad_sort_programs() {
    for (line, why) in [
        ("a SORT (BOGUS) UTF-8 ALL", "Unknown sort argument: BOGUS"),
        ("a SORT () UTF-8 ALL", "Empty sort program"),
        ("a SORT (REVERSE) UTF-8 ALL", "Sort list ends with REVERSE"),
        (
            "a SORT (SIZE REVERSE) UTF-8 ALL",
            "Sort list ends with REVERSE",
        ),
        ("a SORT SUBJECT UTF-8 ALL", "Invalid sort argument"),
        ("a SORT (SUBJECT) UTF-8", "Missing search parameters"),
        ("a SORT (SUBJECT)", "Invalid charset argument"),
        ("a SORT (SUBJECT) UTF-8 BOGUS", "Unknown search key BOGUS"),
        (
            "a SORT RETURN (PARTIAL 0:2) (SUBJECT) UTF-8 ALL",
            "PARTIAL range broken",
        ),
    ] {
        let r = reason(line);
        assert!(r.contains(why), "{line}: {r}");
    }
}

#[test]
fn thread_args() {
    use SearchKey as K;
    assert_eq!(
        ok("a UID THREAD refs utf-8 UNSEEN FROM \"x\""),
        Command::Thread {
            uid: true,
            algorithm: ThreadAlgorithm::Refs,
            charset: "utf-8".into(),
            criteria: K::And(vec![K::Unseen, K::From("x".into())]),
        }
    );
    for (line, alg) in [
        (
            "a THREAD ORDEREDSUBJECT US-ASCII ALL",
            ThreadAlgorithm::OrderedSubject,
        ),
        ("a THREAD References UTF-8 1:*", ThreadAlgorithm::References),
    ] {
        let Command::Thread { algorithm, uid, .. } = ok(line) else {
            panic!("{line}")
        };
        assert_eq!((algorithm, uid), (alg, false));
    }
    for (line, why) in [
        ("a THREAD XYZ UTF-8 ALL", "Unknown thread algorithm XYZ"),
        ("a THREAD REFS", "THREAD needs a charset"),
        ("a THREAD REFS UTF-8", "Missing search parameters"),
        ("a THREAD", "after THREAD"),
        ("a THREAD (REFS) UTF-8 ALL", "thread algorithm"),
    ] {
        assert!(reason(line).contains(why), "{line}: {}", reason(line));
    }
}
