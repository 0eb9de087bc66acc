//! Fuzz the `dovecot-attributes` parser (`store::maildir::attributes`, METADATA entries) on
//! arbitrary file contents (the file is in the user's Maildir, writable by anything with
//! access to it, Dovecot included). Never panics; what it keeps survives a rewrite unchanged:
//! `parse(serialize(entries))` is `entries`, with nothing skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::store::maildir::attributes;

fuzz_target!(|data: &[u8]| {
    let parsed = attributes::parse(data);
    let bytes = attributes::serialize(&parsed.entries);
    let again = attributes::parse(&bytes);
    assert_eq!(again.skipped, 0, "a rewritten file has no bad pairs");
    assert_eq!(again.entries, parsed.entries);
});
