//! Fuzz the IMAP URL parser CATENATE uses (RFC 5092 relative URLs, RFC 5550 PARTIAL): it never
//! panics, and what it accepts names a message (UID and UIDVALIDITY non-zero, a mailbox
//! without control characters, a non-zero PARTIAL length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::imap::url;

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = url::parse(data) {
        assert!(u.uid > 0);
        assert!(u.uid_validity != Some(0));
        assert!(!u.mailbox.is_empty() && !u.mailbox.chars().any(char::is_control));
        assert!(!matches!(u.partial, Some((_, Some(0)))));
    }
});
