//! Fuzz what SORT reads from header fields: the base subject (RFC 5256 §2.1), the address
//! keys, Dovecot's Date parser and i;unicode-casemap. None may panic; a base subject is never
//! longer than the folded value it came from, and folding ASCII only uppercases it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::mime::{casemap, sentdate, sortkey, subject};

fuzz_target!(|data: &[u8]| {
    let (base, _) = subject::base_subject(data);
    let text = String::from_utf8_lossy(data);
    let folded = casemap::fold(&text);
    assert!(subject::base_of_folded(&folded).0.len() <= folded.len());
    if text.is_ascii() {
        assert_eq!(folded, text.to_ascii_uppercase());
    }
    let _ = base;
    let _ = sortkey::mailbox(Some(data));
    let _ = sortkey::display(Some(data));
    let _ = sentdate::parse(data);
});
