//! Fuzz the Maildir file-name functions (`store::maildir::filename`) on arbitrary names (any
//! file a user or another program drops into cur/ or new/). Never panics; flag letters
//! round-trip (`decode(encode(decode(x))) == decode(x)`, encoded in ASCII order without
//! duplicates); an acceptable name has no path separator; `cur_name` keeps the base.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::store::maildir::filename::{
    acceptable, cur_name, decode_letters, encode_letters, matches_unique, sizes, split,
    valid_unique,
};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if acceptable(name) {
        assert!(!name.contains('/') && !name.starts_with('.') && !name.is_empty());
    }
    let parts = split(name);
    assert!(name.starts_with(parts.base));
    let _ = sizes(parts.base);
    let letters = decode_letters(parts.letters);
    let encoded = encode_letters(&letters);
    let bytes = encoded.as_bytes();
    assert!(
        bytes.windows(2).all(|w| w[0] < w[1]),
        "not ASCII-ordered: {encoded:?}"
    );
    let again = decode_letters(&encoded);
    assert_eq!(again.system, letters.system);
    assert_eq!(again.passed, letters.passed);
    let mut a = again.keyword_indexes.clone();
    let mut b = letters.keyword_indexes.clone();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
    assert_eq!(encode_letters(&again), encoded);
    let renamed = cur_name(parts.base, &encoded);
    assert_eq!(split(&renamed).base, parts.base);
    if valid_unique(parts.base) {
        assert!(matches_unique(&renamed, parts.base));
    }
});
