//! Fuzz the `pimap-cache` record decoder (`store::cache::codec`) on arbitrary bytes (the file
//! is on disk, writable by anything with access to the Maildir, and torn by crashes). Never
//! panics; a decoded record re-encodes to exactly the bytes it was decoded from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::store::cache::codec;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let Some(rest) = data.get(at..) {
        let Ok((rec, used)) = codec::decode(rest) else {
            return;
        };
        let mut again = Vec::new();
        assert!(codec::encode(&rec, &mut again), "a decoded record encodes");
        assert_eq!(Some(&again[..]), rest.get(..used), "re-encoding is byte-identical");
        at += used;
    }
});
