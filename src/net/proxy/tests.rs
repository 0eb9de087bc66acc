//! Unit tests of the PROXY header parser: the spec's examples, round trips, every way a header
//! can be malformed, and byte-at-a-time arrival.

use super::*;

fn done(buf: &[u8]) -> (Header, usize) {
    match parse(buf) {
        Ok(Parse::Done { header, len }) => (header, len),
        other => panic!("expected a header from {buf:?}, got {other:?}"),
    }
}

fn bad(buf: &[u8]) -> String {
    match parse(buf) {
        Err(e) => e.0,
        other => panic!("expected an error for {buf:?}, got {other:?}"),
    }
}

fn tcp(src: &str, dst: &str) -> Addresses {
    Addresses::Tcp {
        source: src.parse().unwrap(),
        destination: dst.parse().unwrap(),
    }
}

#[test]
fn v1_tcp4_and_tcp6() {
    let line = b"PROXY TCP4 192.0.2.10 198.51.100.7 56324 993\r\na1 CAPABILITY\r\n";
    let (h, len) = done(line);
    assert_eq!(h.version, 1);
    assert_eq!(h.addresses, tcp("192.0.2.10:56324", "198.51.100.7:993"));
    assert_eq!(&line[len..], b"a1 CAPABILITY\r\n");
    let (h, _) = done(b"PROXY TCP6 2001:db8::1 ::1 65535 143\r\n");
    assert_eq!(h.addresses, tcp("[2001:db8::1]:65535", "[::1]:143"));
    assert_eq!(h.source(), Some("[2001:db8::1]:65535".parse().unwrap()));
}

#[test]
fn v1_unknown_ignores_the_rest() {
    let (h, len) = done(b"PROXY UNKNOWN\r\n");
    assert_eq!((h.addresses, len), (Addresses::Unknown, 15));
    let (h, _) = done(b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n");
    assert_eq!(h.addresses, Addresses::Unknown);
    assert_eq!(h.source(), None);
}

#[test]
fn v1_longest_line_is_accepted_and_one_more_byte_is_not() {
    // The spec's worst case: UNKNOWN with two full IPv6 addresses.
    let a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let max = format!("PROXY UNKNOWN {a} {a} 65535 65535\r\n");
    assert_eq!(max.len(), V1_MAX_LEN);
    assert_eq!(
        done(max.as_bytes()),
        (
            Header {
                version: 1,
                addresses: Addresses::Unknown
            },
            107
        )
    );
    let tcp6 = format!("PROXY TCP6 {a} {a} 65535 65535\r\n");
    assert_eq!(done(tcp6.as_bytes()).1, tcp6.len());
    let unknown = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_LEN - 15));
    assert_eq!(unknown.len(), V1_MAX_LEN + 1);
    assert!(bad(unknown.as_bytes()).contains("no CRLF"));
    // Without a CRLF, waiting stops at the limit.
    assert!(bad(&[b'P'; 200][..]).contains("malformed") || bad(&[b'P'; 200][..]).contains("CRLF"));
}

#[test]
fn v1_malformed() {
    for (line, why) in [
        (
            &b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n"[..],
            "exactly",
        ),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n", "exactly"),
        (b"PROXY TCP4 ::1 198.51.100.7 1 2\r\n", "not an TCP4"),
        (b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n", "not an TCP6"),
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n",
            "out of range",
        ),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 -1 2\r\n", "not a port"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 +1 2\r\n", "not a port"),
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 123456 2\r\n",
            "not a port",
        ),
        (b"PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n", "exactly"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n", "exactly"),
        (b"PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n", "not an TCP4"),
        (
            b"PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n",
            "unknown protocol",
        ),
        (
            b"PROXY tcp4 192.0.2.1 198.51.100.7 1 2\r\n",
            "unknown protocol",
        ),
        (b"PROXY\r\n", "unknown protocol"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n", "malformed"),
        (b"PROXY TCP4 \xff.0.2.1 198.51.100.7 1 2\r\n", "ASCII"),
        (b"PROXX TCP4", "malformed"),
        (b"a1 LOGIN x y\r\n", "no PROXY header"),
    ] {
        let e = bad(line);
        assert!(e.contains(why), "{:?}: {e}", String::from_utf8_lossy(line));
    }
}

#[test]
fn v2_spec_layout() {
    // TCP4 192.0.2.10:56324 -> 198.51.100.7:993, plus a 7-byte TLV (ignored).
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 12 + 7]);
    h.extend_from_slice(&[192, 0, 2, 10, 198, 51, 100, 7, 0xdc, 0x04, 0x03, 0xe1]);
    h.extend_from_slice(&[0x04, 0x00, 0x04, b'a', b'b', b'c', b'd']);
    h.extend_from_slice(b"\x16\x03\x01");
    let (hdr, len) = done(&h);
    assert_eq!(hdr.version, 2);
    assert_eq!(hdr.addresses, tcp("192.0.2.10:56324", "198.51.100.7:993"));
    assert_eq!(&h[len..], b"\x16\x03\x01");
}

#[test]
fn v2_local_unspec_unix() {
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x11, 0x00, 0x0c]);
    local.extend_from_slice(&[0u8; 12]);
    assert_eq!(done(&local).0.addresses, Addresses::Local);
    let mut unspec = V2_SIGNATURE.to_vec();
    unspec.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
    assert_eq!(done(&unspec).0.addresses, Addresses::Unknown);
    let mut unix = V2_SIGNATURE.to_vec();
    unix.extend_from_slice(&[0x21, 0x31, 0x00, 216]);
    unix.extend_from_slice(&[0u8; 216]);
    assert_eq!(done(&unix).0.addresses, Addresses::Unknown);
}

#[test]
fn v2_malformed() {
    let with = |ver_cmd: u8, fam: u8, body: &[u8]| {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[ver_cmd, fam]);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    };
    assert!(bad(&with(0x11, 0x11, &[0; 12])).contains("version 1"));
    assert!(bad(&with(0x22, 0x11, &[0; 12])).contains("unknown command"));
    assert!(bad(&with(0x21, 0x11, &[0; 11])).contains("too short"));
    assert!(bad(&with(0x21, 0x21, &[0; 35])).contains("too short"));
    assert!(bad(&with(0x21, 0x12, &[0; 12])).contains("UDP"));
    assert!(bad(&with(0x21, 0x22, &[0; 36])).contains("UDP"));
    assert!(bad(&with(0x21, 0x41, &[])).contains("family"));
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert!(bad(&huge).contains("over the limit"));
    let mut sig = V2_SIGNATURE.to_vec();
    sig[8] = b'X';
    assert!(bad(&sig).contains("signature"));
}

#[test]
fn incomplete_until_the_last_byte() {
    let mut v2 = Header {
        version: 2,
        addresses: tcp("[2001:db8::7]:40000", "[2001:db8::1]:993"),
    }
    .to_v2();
    v2.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // not part of it: wrong length
    let v2_len = 16 + 36;
    let v1 = b"PROXY TCP4 10.1.2.3 10.0.0.1 1234 143\r\n".to_vec();
    for (bytes, len) in [(&v2, v2_len), (&v1, v1.len())] {
        for cut in 0..len {
            assert_eq!(
                parse(&bytes[..cut]),
                Ok(Parse::Incomplete),
                "cut at {cut} of {len}"
            );
        }
        assert_eq!(done(&bytes[..len]).1, len);
    }
}

#[test]
fn round_trips() {
    for h in [
        Header {
            version: 1,
            addresses: tcp("192.0.2.1:1", "192.0.2.2:65535"),
        },
        Header {
            version: 1,
            addresses: tcp("[::ffff:192.0.2.1]:0", "[fe80::1]:143"),
        },
        Header {
            version: 1,
            addresses: Addresses::Unknown,
        },
        Header {
            version: 2,
            addresses: tcp("203.0.113.9:5000", "10.0.0.1:993"),
        },
        Header {
            version: 2,
            addresses: tcp("[2001:db8::5]:5000", "[::]:993"),
        },
        Header {
            version: 2,
            addresses: Addresses::Local,
        },
        Header {
            version: 2,
            addresses: Addresses::Unknown,
        },
    ] {
        let bytes = if h.version == 1 { h.to_v1() } else { h.to_v2() };
        assert_eq!(done(&bytes), (h, bytes.len()), "{h:?}");
    }
}

#[test]
fn detector_refuses_headers_but_not_imap() {
    assert!(looks_like_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"));
    assert!(looks_like_header(b"PROXY UNKNOWN\r\n"));
    assert!(looks_like_header(&V2_SIGNATURE));
    assert!(looks_like_header(b"PRO")); // a partial first read
    assert!(looks_like_header(b"\r\n\r\n\0"));
    assert!(!looks_like_header(b""));
    assert!(!looks_like_header(b"PROXY CAPABILITY\r\n")); // the tag PROXY
    assert!(!looks_like_header(b"a1 LOGIN u p\r\n"));
    assert!(!looks_like_header(b"\x16\x03\x01\x02\x00"));
    assert!(!looks_like_header(b"\r\n\r\nx"));
}

#[test]
fn trusted_networks() {
    let t = TrustedNetworks::parse(&["10.0.0.0/8, 192.168.1.5", "fd00::/8 127.0.0.1/32"]).unwrap();
    assert!(t.contains("10.200.3.4".parse().unwrap()));
    assert!(t.contains("::ffff:10.1.1.1".parse().unwrap())); // dual-stack listener
    assert!(t.contains("192.168.1.5".parse().unwrap()));
    assert!(!t.contains("192.168.1.6".parse().unwrap()));
    assert!(t.contains("fd12::1".parse().unwrap()));
    assert!(!t.contains("fe80::1".parse().unwrap()));
    assert!(!t.contains("11.0.0.1".parse().unwrap()));
    assert_eq!(
        t.to_string(),
        "10.0.0.0/8, 192.168.1.5/32, fd00::/8, 127.0.0.1/32"
    );
    let all = TrustedNetworks::parse(&["0.0.0.0/0", "::/0"]).unwrap();
    assert!(all.contains("1.2.3.4".parse().unwrap()) && all.contains("2001::1".parse().unwrap()));
    // Host bits are ignored, as Dovecot does.
    assert!(TrustedNetworks::parse(&["10.1.2.3/8"])
        .unwrap()
        .contains("10.9.9.9".parse().unwrap()));
    assert!(TrustedNetworks::parse::<&str>(&[]).unwrap().is_empty());
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0/8",
        "example.org",
        "10.0.0.0/",
        "10.0.0.0/+8",
    ] {
        let e = TrustedNetworks::parse(&[bad]).unwrap_err();
        assert!(e.contains("--proxy-trusted-networks"), "{bad}: {e}");
    }
}

#[test]
fn rewind_replays_then_reads_on() {
    use futures_lite::AsyncReadExt;
    let inner: Stream = Box::new(futures_lite::io::Cursor::new(b" world".to_vec()));
    let mut s = Rewind::stream(b"hello".to_vec(), inner);
    let mut out = String::new();
    smol::block_on(s.read_to_string(&mut out)).unwrap();
    assert_eq!(out, "hello world");
}

#[test]
fn read_header_from_a_stream() {
    let mut bytes = b"PROXY TCP4 10.1.2.3 10.0.0.1 1234 143\r\n".to_vec();
    bytes.extend_from_slice(b"\x16\x03\x01rest");
    let mut s: Stream = Box::new(futures_lite::io::Cursor::new(bytes));
    let (h, rest) = smol::block_on(read_header(&mut s, Duration::from_secs(5))).unwrap();
    assert_eq!(h.source(), Some("10.1.2.3:1234".parse().unwrap()));
    assert_eq!(rest, b"\x16\x03\x01rest");
    let mut s: Stream = Box::new(futures_lite::io::Cursor::new(b"PROXY TCP4 10.1".to_vec()));
    let e = smol::block_on(read_header(&mut s, Duration::from_secs(5))).unwrap_err();
    assert!(e.0.contains("middle"), "{e}");
}

#[test]
fn v2_length_edges() {
    // The largest header accepted (addresses plus TLVs up to V2_MAX_LEN) and one byte more;
    // the client's bytes after it are never counted as header.
    let with_len = |fam: u8, n: usize| {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, fam]);
        h.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        h.resize(16 + n, 0);
        h
    };
    let mut max = with_len(0x11, V2_MAX_LEN - 16);
    max.extend_from_slice(b"a1 NOOP\r\n");
    let (h, len) = done(&max);
    assert_eq!(len, V2_MAX_LEN);
    assert_eq!(h.addresses, tcp("0.0.0.0:0", "0.0.0.0:0"));
    assert!(bad(&with_len(0x11, V2_MAX_LEN - 15)).contains("over the limit"));
    assert!(bad(&with_len(0x00, usize::from(u16::MAX))).contains("over the limit"));
    // A length of 0: LOCAL and UNSPEC need no addresses; TCP needs them.
    let (h, len) = done(&with_len(0x00, 0));
    assert_eq!((h.addresses, len), (Addresses::Unknown, 16));
    assert!(bad(&with_len(0x11, 0)).contains("too short"));
    assert!(bad(&with_len(0x21, 12)).contains("too short"));
    // Every prefix of the largest header is "read more", never an error or a panic.
    for n in 0..V2_MAX_LEN {
        assert!(
            matches!(parse(&max[..n]), Ok(Parse::Incomplete)),
            "prefix {n}"
        );
    }
}
