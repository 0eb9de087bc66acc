//! The base subject of RFC 5256 §2.1, which SORT (SUBJECT) compares and THREAD groups by:
//! `Re: [list] Fwd: Hello (fwd)` and `hello` have the same base subject.
//!
//! Steps as Dovecot 2.3 implements them (`imap_get_base_subject_cased`): the value is
//! RFC 2047-decoded and put through `i;unicode-casemap` ([`super::casemap`]) first, so the
//! leaders and trailers are matched in uppercase (`RE`, `FWD`, `(FWD)`, `[FWD:`), and runs
//! of whitespace become one space. Works on any text: no step can panic or loop (each
//! repetition removes at least one byte).

use super::casemap;

/// The base subject of a raw Subject field value (as [`super::parse::Field::value`] holds it),
/// in `i;unicode-casemap` form, and whether it was a reply or forward (a leader or trailer
/// was removed).
pub fn base_subject(value: &[u8]) -> (String, bool) {
    let decoded = super::search::decode_header_value(value);
    base_of_folded(&casemap::fold(&decoded))
}

/// [`base_subject`] of text already decoded and folded.
pub fn base_of_folded(folded: &str) -> (String, bool) {
    let mut s = pack_whitespace(folded);
    let mut start = 0;
    let mut reply = false;
    loop {
        // (2) Trailing "(fwd)" and whitespace.
        remove_trailers(&mut s, start, &mut reply);
        loop {
            // (3) A leader: blobs then Re/Fw/Fwd, optional blob, ':' (or one space).
            let leader = remove_leader(&s, &mut start, &mut reply);
            // (4) A blob, unless nothing would be left.
            let blob = remove_blob_nonempty(&s, &mut start);
            // (5) Until neither matches.
            if !(leader || blob) {
                break;
            }
        }
        // (6) "[fwd: ...]" around the whole: remove and repeat from (2).
        if !remove_fwd_wrapper(&mut s, &mut start, &mut reply) {
            break;
        }
    }
    (s[start..].to_string(), reply)
}

/// (1) Tabs, CR, LF and runs of them and spaces become one space.
fn pack_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

/// subj-trailer = "(fwd)" / WSP, removed from the end (never before `start`).
fn remove_trailers(s: &mut String, start: usize, reply: &mut bool) {
    loop {
        if s.len() > start && s.ends_with(' ') {
            s.pop();
        } else if s.len() >= start + 5 && s.ends_with("(FWD)") {
            s.truncate(s.len() - 5);
            *reply = true;
        } else {
            return;
        }
    }
}

/// subj-blob = "[" *BLOBCHAR "]" *WSP at `at`: where it ends, if it does and something
/// follows it.
fn blob_end(s: &str, at: usize) -> Option<usize> {
    let b = s.as_bytes();
    if b.get(at) != Some(&b'[') {
        return None;
    }
    let close = at + 1 + b[at + 1..].iter().position(|&c| c == b'[' || c == b']')?;
    if b[close] != b']' {
        return None;
    }
    let mut end = close + 1;
    if b.get(end) == Some(&b' ') {
        end += 1;
    }
    (end < b.len()).then_some(end)
}

/// subj-leader = (*subj-blob subj-refwd) / WSP; subj-refwd = ("re" / ("fw" ["d"])) *WSP
/// [subj-blob] ":".
fn remove_leader(s: &str, start: &mut usize, reply: &mut bool) -> bool {
    let b = s.as_bytes();
    let mut removed = false;
    if b.get(*start) == Some(&b' ') {
        *start += 1;
        removed = true;
    }
    let mut at = *start;
    while b.get(at) == Some(&b'[') {
        match blob_end(s, at) {
            Some(e) => at = e,
            None => return removed,
        }
    }
    let rest = &b[at..];
    at += if rest.starts_with(b"RE") {
        2
    } else if rest.starts_with(b"FWD") {
        3
    } else if rest.starts_with(b"FW") {
        2
    } else {
        return removed;
    };
    if b.get(at) == Some(&b' ') {
        at += 1;
    }
    if b.get(at) == Some(&b'[') {
        match blob_end(s, at) {
            Some(e) => at = e,
            None => return removed,
        }
    }
    if b.get(at) != Some(&b':') {
        return removed;
    }
    *start = at + 1;
    *reply = true;
    true
}

/// (4) A leading subj-blob whose removal leaves something.
fn remove_blob_nonempty(s: &str, start: &mut usize) -> bool {
    match blob_end(s, *start) {
        Some(e) => {
            *start = e;
            true
        }
        None => false,
    }
}

/// subj-fwd = "[fwd:" subject "]".
fn remove_fwd_wrapper(s: &mut String, start: &mut usize, reply: &mut bool) -> bool {
    if !s[*start..].starts_with("[FWD:") || !s.ends_with(']') || s.len() < *start + 6 {
        return false;
    }
    s.pop();
    *start += 5;
    *reply = true;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> String {
        base_subject(s.as_bytes()).0
    }

    #[test]
    fn plain_subject_is_folded() {
        assert_eq!(base("Hello  world"), "HELLO WORLD");
        assert_eq!(base("Hello\n\tworld"), "HELLO WORLD");
        assert_eq!(base(""), "");
        assert_eq!(base_subject(b"Hello"), ("HELLO".into(), false));
    }

    #[test]
    fn reply_and_forward_leaders() {
        for s in [
            "Re: hello",
            "RE:hello",
            "re : hello",
            "Fw: hello",
            "FWD: hello",
            "Re: Re: hello",
            "Re[2]: hello",
            "Re [2]: hello",
            "[list] Re: hello",
            "[a] [b] Re: Fwd: hello",
            "Re: [list] hello",
        ] {
            assert_eq!(base_subject(s.as_bytes()), ("HELLO".into(), true), "{s}");
        }
    }

    #[test]
    fn trailers() {
        assert_eq!(base_subject(b"hello (fwd)"), ("HELLO".into(), true));
        assert_eq!(base_subject(b"hello (fwd) (FWD)  "), ("HELLO".into(), true));
        assert_eq!(base("hello(fwd)"), "HELLO");
    }

    #[test]
    fn fwd_wrapper() {
        assert_eq!(base_subject(b"[fwd: hello]"), ("HELLO".into(), true));
        assert_eq!(base("[Fwd: Re: hello (fwd)]"), "HELLO");
        assert_eq!(base("[fwd: [fwd: hello]]"), "HELLO");
    }

    #[test]
    fn blobs_stay_when_nothing_would_be_left() {
        assert_eq!(base("[list]"), "[LIST]");
        assert_eq!(base("[list] "), "[LIST]");
        assert_eq!(base("[list] hello"), "HELLO");
        assert_eq!(base("Re: [list]"), "[LIST]");
    }

    #[test]
    fn not_leaders() {
        assert_eq!(base("Rebecca: hi"), "REBECCA: HI");
        assert_eq!(base("Re hello"), "RE HELLO");
        assert_eq!(base("[unclosed hello"), "[UNCLOSED HELLO");
        assert_eq!(base("[fwd: hello"), "[FWD: HELLO");
        assert_eq!(base("(fwd)"), "");
    }

    #[test]
    fn encoded_words_are_decoded_and_folded() {
        assert_eq!(base("=?utf-8?q?R=C3=A9sum=C3=A9?="), "RE\u{301}SUME\u{301}");
        assert_eq!(base("Re: =?utf-8?q?caf=C3=A9?="), "CAFE\u{301}");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "[",
            "]",
            "[]",
            "[] ",
            "[]:",
            "Re:",
            "Re: ",
            " ",
            "[fwd:]",
            "[FWD:",
            "é[é]é",
            "[é] é",
            "Re[é]:é (fwd)",
        ] {
            let _ = base(s);
        }
    }
}
