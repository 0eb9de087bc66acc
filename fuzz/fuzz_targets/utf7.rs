//! Fuzz modified UTF-7: decode never panics, anything it accepts re-encodes to the same
//! spelling, and encode∘decode is the identity on any UTF-8 string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::imap::utf7;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(decoded) = utf7::decode(s) {
            assert_eq!(utf7::encode(&decoded), s);
        }
        let encoded = utf7::encode(s);
        assert!(encoded.is_ascii());
        assert_eq!(utf7::decode(&encoded).as_deref(), Some(s));
    }
});
