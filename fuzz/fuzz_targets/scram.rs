//! Fuzz the SCRAM server side (`auth::scram`): arbitrary client-first and client-final
//! messages, and arbitrary stored credential values. It may reject anything but must never
//! panic, must never accept a proof for keys nobody knows a password for, and what it parses
//! from a passwd-file value must survive a round trip through the stored form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::auth::scram::{Algorithm, ClientFirst, Credentials, Exchange};

fuzz_target!(|data: &[u8]| {
    // client-first NUL client-final NUL stored value
    let mut parts = data.splitn(3, |&b| b == 0);
    let first = parts.next().unwrap_or(&[]);
    let last = parts.next().unwrap_or(&[]);
    let stored = parts.next().unwrap_or(&[]);
    if let Ok(text) = std::str::from_utf8(stored) {
        for algo in [Algorithm::Sha1, Algorithm::Sha256] {
            if let Ok(c) = Credentials::parse(algo, text) {
                assert_eq!(c.stored_key.len(), algo.digest_len());
                assert_eq!(Credentials::parse(algo, &c.encode()), Ok(c));
            }
        }
    }
    let Ok(cf) = ClientFirst::parse(first) else {
        return;
    };
    assert!(!cf.username.is_empty());
    let keys = Credentials {
        iterations: 4096,
        salt: b"salt".to_vec(),
        stored_key: vec![1; 32],
        server_key: vec![2; 32],
    };
    let ex = Exchange::start(Algorithm::Sha256, &cf, keys, "snonce");
    assert!(ex.server_first().contains("snonce,s=c2FsdA==,i=4096"));
    assert!(ex.finish(last).is_err());
});
