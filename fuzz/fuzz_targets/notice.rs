//! Fuzz the reading of SQS queue messages (`sync::notice`): S3 event, SES receipt and SNS
//! envelope JSON from the network. Anything may be refused, nothing may panic, and an object
//! it names always has a bucket and a non-empty key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::sync::notice::{decode_event_key, parse, Notice};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Notice::Objects(objects) = parse(&text) {
        assert!(!objects.is_empty());
        for o in objects {
            assert!(!o.key.is_empty());
            assert!(!o.bucket.is_empty());
        }
    }
    if let Some(k) = decode_event_key(&text) {
        assert!(!k.is_empty());
    }
});
