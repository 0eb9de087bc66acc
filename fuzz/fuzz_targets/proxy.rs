//! Fuzz the PROXY protocol header parser (v1 text, v2 binary; bytes from the network before
//! anything else): `parse` never panics, a header's length is within the input, every prefix
//! of a header is `Incomplete`, a parsed header re-encodes to bytes that parse back to it, and
//! the untrusted-peer detector and the trusted-networks parser never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::net::proxy::{looks_like_header, parse, Addresses, Parse, TrustedNetworks};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_header(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(t) = TrustedNetworks::parse(&[s]) {
            let _ = t.contains("192.0.2.1".parse().unwrap());
            let _ = t.contains("2001:db8::1".parse().unwrap());
        }
    }
    if let Ok(Parse::Done { header, len }) = parse(data) {
        assert!(len <= data.len());
        for cut in [0, len / 2, len.saturating_sub(1)] {
            if cut < len {
                assert_eq!(parse(&data[..cut]), Ok(Parse::Incomplete), "prefix {cut} of {len}");
            }
        }
        let again = if header.version == 1 { header.to_v1() } else { header.to_v2() };
        let Ok(Parse::Done { header: back, len: n }) = parse(&again) else {
            panic!("re-encoded header does not parse: {again:?}");
        };
        assert_eq!(n, again.len());
        // v1 has no LOCAL; everything else survives the round trip.
        if header.version == 1 || header.addresses != Addresses::Local {
            assert_eq!(back, header);
        }
    }
});
