//! Fuzz what FETCH builds from a message's bytes without a cache: BINARY content (RFC 3516;
//! decoding every base64 / quoted-printable part, rewriting their headers) and the PREVIEW
//! text (RFC 8970). None may panic; a preview has at most 200 characters, and BINARY of a
//! message with nothing to decode is its bytes as they are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::mime::{binary, preview, to_crlf, Parsed};

fuzz_target!(|data: &[u8]| {
    let msg = to_crlf(data);
    let p = Parsed::new(&msg);
    for part in [&[][..], &[1], &[2], &[1, 1], &[1, 2, 1]] {
        let _ = p.binary(part);
    }
    if binary::verbatim(msg.get(..p.root().header.end).unwrap_or_default()) {
        if let Ok(Some(b)) = p.binary(&[]) {
            assert_eq!(b.data, &msg[..]);
        }
    }
    assert!(preview::preview(&msg).chars().count() <= preview::MAX_CHARS);
});
