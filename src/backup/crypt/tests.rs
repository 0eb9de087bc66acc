//! Round trips, the exact length, and every way an encrypted object can be damaged.

use super::*;
use ring::aead::Aad;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The identity and recipient given as examples in age §"The X25519 recipient type".
const SPEC_SECRET: &str =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
const SPEC_RECIPIENT: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

fn id() -> Identity {
    Identity::generate().unwrap()
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    getrandom::fill(&mut v).unwrap();
    v
}

/// A reader that hands out at most `step` bytes per call and is interrupted before each.
struct Trickle<R> {
    inner: R,
    step: usize,
    interrupt: bool,
}

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.step);
        self.inner.read(&mut buf[..n])
    }
}

fn trickle<R>(inner: R, step: usize) -> Trickle<R> {
    Trickle {
        inner,
        step,
        interrupt: false,
    }
}

/// Decrypts through `decrypt_reader`, reading `step` bytes at a time: the plaintext read
/// before the error, and the error (a payload error's message).
fn decrypt_steps(id: &Identity, cipher: &[u8], step: usize) -> (Vec<u8>, Option<String>) {
    let mut r = decrypt_reader(id, cipher).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; step];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                // Never a silent end after an error: the next read fails the same way.
                let again = r.read(&mut buf).unwrap_err();
                assert_eq!(again.to_string(), e.to_string());
                match CryptError::from_io(e) {
                    CryptError::Payload(msg) => return (out, Some(msg)),
                    other => panic!("not a payload error: {other}"),
                }
            }
        }
    }
}

fn payload_error(id: &Identity, cipher: &[u8]) -> String {
    let (_, err) = decrypt_steps(id, cipher, 4096);
    err.expect("a damaged payload must fail")
}

const H: usize = HEADER_LEN as usize + NONCE_LEN;

#[test]
fn round_trip_at_chunk_boundaries_and_random_sizes() {
    let id = id();
    let mut sizes = vec![0, 1, 15, 16, 17, 65535, 65536, 65537, 2 * 65536, 3 * 65536];
    for _ in 0..4 {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).unwrap();
        sizes.push(u32::from_le_bytes(b) as usize % (5 * CHUNK));
    }
    for len in sizes {
        let plain = random(len);
        let mut cipher = Vec::new();
        trickle(
            encrypt_reader(&id, trickle(&plain[..], 1000), len as u64).unwrap(),
            777,
        )
        .read_to_end(&mut cipher)
        .unwrap();
        assert_eq!(
            cipher.len() as u64,
            encrypted_len(len as u64),
            "length for {len}"
        );
        assert!(cipher.starts_with(b"age-encryption.org/v1\n-> X25519 "));
        assert_eq!(&cipher[HEADER_LEN as usize - 48..][..4], b"--- ");
        let mut back = Vec::new();
        trickle(
            decrypt_reader(&id, trickle(&cipher[..], 5000)).unwrap(),
            333,
        )
        .read_to_end(&mut back)
        .unwrap();
        assert!(back == plain, "round trip of {len} bytes");
        assert_eq!(
            decrypt_bytes(&id, &encrypt_bytes(&id, &plain).unwrap()).unwrap(),
            plain
        );
    }
}

#[test]
fn encrypted_len_counts_header_nonce_and_one_tag_per_chunk() {
    assert_eq!(encrypted_len(0), 168 + 16 + 16);
    assert_eq!(encrypted_len(1), 168 + 16 + 1 + 16);
    assert_eq!(encrypted_len(65536), 168 + 16 + 65536 + 16);
    assert_eq!(encrypted_len(65537), 168 + 16 + 65537 + 32);
    assert_eq!(encrypted_len(3 * 65536), 168 + 16 + 3 * 65536 + 48);
    assert_eq!(encrypt_bytes(&id(), b"").unwrap().len(), 200);
}

#[test]
fn each_file_has_fresh_keys() {
    let id = id();
    let a = encrypt_bytes(&id, b"same").unwrap();
    let b = encrypt_bytes(&id, b"same").unwrap();
    assert_ne!(a[22..76], b[22..76], "ephemeral share");
    assert_ne!(
        a[HEADER_LEN as usize..H],
        b[HEADER_LEN as usize..H],
        "payload nonce"
    );
}

#[test]
fn wrong_key_is_its_own_error() {
    let (alice, bob) = (id(), id());
    let cipher = encrypt_bytes(&alice, b"for alice").unwrap();
    match decrypt_reader(&bob, &cipher[..]) {
        Err(CryptError::WrongKey { recipient }) => assert_eq!(recipient, bob.recipient_string()),
        other => panic!("expected WrongKey, got {other:?}"),
    }
    let msg = decrypt_bytes(&bob, &cipher).unwrap_err().to_string();
    assert!(msg.starts_with("wrong key: "), "{msg}");
}

#[test]
fn not_age_files() {
    let id = id();
    for (input, reason) in [
        (&b""[..], "it does not start with"),
        (
            b"From: a@example.org\r\n\r\nhi\r\n",
            "it does not start with",
        ),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "ASCII-armored"),
        (b"age-encryption.org/v2\n-> X25519 x\n", "other than v1"),
    ] {
        match decrypt_reader(&id, input) {
            Err(e @ CryptError::NotAge(_)) => assert!(e.to_string().contains(reason), "{e}"),
            other => panic!("expected NotAge, got {other:?}"),
        }
    }
}

fn expect_err(id: &Identity, cipher: &[u8]) -> CryptError {
    match decrypt_reader(id, cipher) {
        Err(e) => e,
        Ok(_) => panic!("header accepted"),
    }
}

#[test]
fn damaged_header() {
    let id = id();
    let good = encrypt_bytes(&id, b"mail").unwrap();
    let text = String::from_utf8(good[..HEADER_LEN as usize].to_vec()).unwrap();
    let payload = &good[HEADER_LEN as usize..];
    let with_header = |h: &str| [h.as_bytes(), payload].concat();
    let mac_at = text.find("--- ").unwrap() + 4 + 20;
    let body_at = text.find('\n').unwrap() + 1 + 54 + 10;

    // A changed MAC, or a stanza added after encryption: the key unwraps, the MAC does not
    // verify.
    let mut mac = text.clone().into_bytes();
    mac[mac_at] = if mac[mac_at] == b'A' { b'B' } else { b'A' };
    let mac = String::from_utf8(mac).unwrap();
    assert!(matches!(
        expect_err(&id, &with_header(&mac)),
        CryptError::HeaderMac
    ));
    let extra = text.replacen("\n---", "\n-> grease x\n\n---", 1);
    assert!(matches!(
        expect_err(&id, &with_header(&extra)),
        CryptError::HeaderMac
    ));

    // A changed wrapped key or share: no stanza opens with this key.
    let mut body = text.clone().into_bytes();
    body[body_at] = if body[body_at] == b'A' { b'B' } else { b'A' };
    let body = String::from_utf8(body).unwrap();
    assert!(matches!(
        expect_err(&id, &with_header(&body)),
        CryptError::WrongKey { .. }
    ));
    let share_at = 22 + 10 + 5;
    let mut share = text.clone().into_bytes();
    share[share_at] = if share[share_at] == b'A' { b'B' } else { b'A' };
    let share = String::from_utf8(share).unwrap();
    assert!(matches!(
        expect_err(&id, &with_header(&share)),
        CryptError::WrongKey { .. }
    ));

    for (bad, what) in [
        (text.replacen("-> X25519 ", "-> X25519  ", 1), "arguments"),
        (
            text.replacen("-> X25519 ", "-> X25519 AAAA ", 1),
            "two arguments",
        ),
        (text.replacen("\n---", "\n\n---", 1), "neither a stanza"),
        (text.replacen("--- ", "---", 1), "MAC line"),
        (
            text.replacen("-> X25519 ", "->X25519 ", 1),
            "neither a stanza",
        ),
        (
            text[..text.find("-> ").unwrap()].to_string() + "--- x\n",
            "MAC line",
        ),
        (
            format!("age-encryption.org/v1\n--- {}\n", "A".repeat(43)),
            "no recipient",
        ),
    ] {
        match expect_err(&id, &with_header(&bad)) {
            CryptError::Malformed(msg) => assert!(msg.contains(what), "{what}: {msg}"),
            other => panic!("{what}: expected Malformed, got {other:?}"),
        }
    }
    let e = expect_err(&id, &text.as_bytes()[..60]);
    assert!(
        e.to_string().contains("ends inside the header (truncated)"),
        "{e}"
    );
    // Non-canonical base64 (non-zero trailing bits) in the share is rejected, not read: the
    // last of 43 characters carries 4 bits, so its value is a multiple of 4 (A, E, I, …).
    let mut share = text.clone().into_bytes();
    share[22 + 10 + 42] = b'B';
    let e = expect_err(&id, &with_header(&String::from_utf8(share).unwrap()));
    assert!(e.to_string().contains("share is not 32 bytes"), "{e}");
    // A header with no end within 64 KiB.
    let endless = format!("age-encryption.org/v1\n-> x {}\n", "a".repeat(70_000));
    let e = expect_err(&id, endless.as_bytes());
    assert!(e.to_string().contains("over 64 KiB"), "{e}");
}

#[test]
fn unknown_stanzas_are_skipped() {
    let id = id();
    let file_key = Zeroizing::new([7u8; 16]);
    let mut ephemeral = [0u8; 32];
    getrandom::fill(&mut ephemeral).unwrap();
    let header = header::seal(&file_key, &ephemeral, id.public_bytes()).unwrap();
    let text = String::from_utf8(header).unwrap();
    let ours = &text[22..text.find("---").unwrap()];
    // A stanza of another type with a multi-line body (a full 64-column line, then a short
    // one), then an X25519 stanza for another key, then ours.
    let other = encrypt_bytes(&Identity::generate().unwrap(), b"").unwrap();
    let other = String::from_utf8(other[..HEADER_LEN as usize].to_vec()).unwrap();
    let theirs = &other[22..other.find("---").unwrap()];
    let grease = format!("-> some-type arg1 arg2\n{}\nAAAA\n", "A".repeat(64));
    let mut head = format!("age-encryption.org/v1\n{grease}{theirs}{ours}---").into_bytes();
    let mac = ring::hmac::sign(&header::mac_key(&file_key), &head);
    head.extend_from_slice(format!(" {}\n", base64_encode(mac.as_ref())).as_bytes());
    let nonce = [1u8; 16];
    let file = [
        head,
        nonce.to_vec(),
        seal_chunk(&file_key, &nonce, 0, true, b"hi"),
    ]
    .concat();
    assert_eq!(decrypt_bytes(&id, &file).unwrap(), b"hi");
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
}

/// One payload chunk sealed by hand (for files this module would never write).
fn seal_chunk(file_key: &header::FileKey, nonce: &[u8], n: u64, last: bool, p: &[u8]) -> Vec<u8> {
    let key = header::payload_key(file_key, nonce);
    let mut buf = p.to_vec();
    let tag = key
        .seal_in_place_separate_tag(stream::chunk_nonce(n, last), Aad::empty(), &mut buf)
        .unwrap();
    buf.extend_from_slice(tag.as_ref());
    buf
}

#[test]
fn final_chunk_may_be_empty_only_when_the_payload_is() {
    let id = id();
    let file_key = Zeroizing::new([9u8; 16]);
    let header = header::seal(&file_key, &[5u8; 32], id.public_bytes()).unwrap();
    let nonce = [2u8; 16];
    let full = vec![0x61u8; CHUNK];
    let file = [
        header.clone(),
        nonce.to_vec(),
        seal_chunk(&file_key, &nonce, 0, false, &full),
        seal_chunk(&file_key, &nonce, 1, true, b""),
    ]
    .concat();
    let (out, err) = decrypt_steps(&id, &file, 65536);
    assert_eq!(out, full, "chunk 0 verified, so it is handed out");
    assert!(err.unwrap().contains("final chunk 1 is empty"));
    // The same full chunk marked final is the valid encoding.
    let file = [
        header.clone(),
        nonce.to_vec(),
        seal_chunk(&file_key, &nonce, 0, true, &full),
    ]
    .concat();
    assert_eq!(decrypt_bytes(&id, &file).unwrap(), full);
    // A lone empty final chunk is the empty payload.
    let file = [
        header,
        nonce.to_vec(),
        seal_chunk(&file_key, &nonce, 0, true, b""),
    ]
    .concat();
    assert_eq!(decrypt_bytes(&id, &file).unwrap(), b"");
}

#[test]
fn flipped_payload_bytes_fail() {
    let id = id();
    let plain = random(3 * CHUNK + 100);
    let good = encrypt_bytes(&id, &plain).unwrap();
    let chunk = CHUNK + TAG;
    for (at, what) in [
        (HEADER_LEN as usize, "payload nonce"),
        (H + 5, "chunk 0"),
        (H + chunk - 1, "chunk 0's tag"),
        (H + 2 * chunk + 70, "chunk 2"),
        (H + 3 * chunk + 3, "the last chunk"),
        (good.len() - 1, "the last chunk's tag"),
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        let msg = payload_error(&id, &bad);
        assert!(msg.contains("failed authentication"), "{what}: {msg}");
    }
    // Chunks before the damage were verified and handed out; nothing after it.
    let mut bad = good.clone();
    bad[H + 2 * chunk + 70] ^= 0x80;
    let (out, err) = decrypt_steps(&id, &bad, 1000);
    assert!(err.unwrap().contains("chunk 2 failed"));
    assert!(out == plain[..2 * CHUNK]);
}

#[test]
fn truncated_payload_fails() {
    let id = id();
    let chunk = CHUNK + TAG;
    for len in [0usize, 100, CHUNK, CHUNK + 1, 3 * CHUNK] {
        let good = encrypt_bytes(&id, &random(len)).unwrap();
        // Cut at every chunk boundary, inside the tag, one byte short, and inside the nonce.
        let mut cuts = vec![
            good.len() - 1,
            good.len() - TAG + 3,
            HEADER_LEN as usize + 3,
        ];
        cuts.extend((0..).map(|i| H + i * chunk).take_while(|&c| c < good.len()));
        for cut in cuts {
            let bad = &good[..cut];
            if cut < H {
                let e = decrypt_reader(&id, bad).expect_err("nonce missing");
                assert!(e.to_string().contains("before the payload nonce"), "{e}");
                continue;
            }
            let msg = payload_error(&id, bad);
            assert!(
                msg.contains("failed authentication") || msg.contains("cut short"),
                "{len} cut at {cut}: {msg}"
            );
        }
    }
}

#[test]
fn appended_bytes_fail() {
    let id = id();
    for len in [0usize, 10, CHUNK, 2 * CHUNK - 5] {
        let good = encrypt_bytes(&id, &random(len)).unwrap();
        for extra in [1usize, TAG, TAG + 1, CHUNK + TAG] {
            let bad = [good.clone(), vec![0u8; extra]].concat();
            let msg = payload_error(&id, &bad);
            assert!(
                msg.contains("failed authentication"),
                "{len} + {extra}: {msg}"
            );
        }
        // Another file's chunk appended fails too.
        let other = encrypt_bytes(&id, b"x").unwrap();
        let bad = [good.clone(), other[H..].to_vec()].concat();
        payload_error(&id, &bad);
    }
}

#[test]
fn plaintext_must_match_its_announced_length() {
    let id = id();
    let plain = random(CHUNK + 10);
    for (announced, what) in [
        (CHUNK as u64 + 11, "ended after"),
        (CHUNK as u64 + 9, "longer"),
    ] {
        let mut r = encrypt_reader(&id, &plain[..], announced).unwrap();
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert!(e.to_string().contains(what), "{e}");
        let again = r.read(&mut [0u8; 100]).unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
        assert!(out.len() < encrypted_len(announced) as usize);
        // Nothing that was read for the failed chunk comes out in the clear.
        assert!(!out.windows(9).any(|w| w == &plain[CHUNK..CHUNK + 9]));
    }
}

#[test]
fn spec_example_key() {
    let id = Identity::from_text(SPEC_SECRET).unwrap();
    assert_eq!(id.recipient_string(), SPEC_RECIPIENT);
    let dbg = format!("{id:?}");
    assert!(
        dbg.contains(SPEC_RECIPIENT) && dbg.contains("<redacted>"),
        "{dbg}"
    );
    assert!(!dbg.to_uppercase().contains("GFPYYSJZ"), "{dbg}");
}

#[test]
fn identity_file_text() {
    let text = format!("# created: x\r\n\r\n# public key: {SPEC_RECIPIENT}\r\n{SPEC_SECRET}\r\n");
    let id = Identity::from_text(&text).unwrap();
    assert_eq!(id.recipient_string(), SPEC_RECIPIENT);
    let lower = Identity::from_text(&SPEC_SECRET.to_lowercase()).unwrap();
    assert_eq!(lower.recipient_string(), SPEC_RECIPIENT);

    let generated = Identity::generate().unwrap();
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
    let file = generated.to_file_text(created);
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines[0], "# created: 2000-02-29T00:00:00Z");
    assert_eq!(
        lines[1],
        format!("# public key: {}", generated.recipient_string())
    );
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1") && lines[2].len() == 74);
    assert_eq!(lines.len(), 3);
    let back = Identity::from_text(&file).unwrap();
    assert_eq!(back.recipient_string(), generated.recipient_string());
    let cipher = encrypt_bytes(&generated, b"x").unwrap();
    assert_eq!(decrypt_bytes(&back, &cipher).unwrap(), b"x");
}

#[test]
fn identity_file_errors_never_show_the_key() {
    let mut broken = SPEC_SECRET.to_string();
    broken.replace_range(30..31, "Q");
    let pq = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR";
    for (text, want) in [
        (String::new(), "no AGE-SECRET-KEY-1"),
        ("# only a comment\n\n".into(), "no AGE-SECRET-KEY-1"),
        (
            format!("{SPEC_SECRET}\n# again\n{SPEC_SECRET}\n"),
            "lines 1 and 3: two keys",
        ),
        (format!("# c\n{broken}\n"), "line 2: malformed"),
        (SPEC_RECIPIENT.into(), "a public key"),
        (pq.into(), "post-quantum"),
        ("AGE-PLUGIN-YUBIKEY-1QQQ".into(), "plugin"),
        ("hunter2".into(), "not an age secret key"),
    ] {
        let e = Identity::from_text(&text).unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
        assert!(!e.contains("GFPYYSJZ") && !e.contains("hunter2"), "{e}");
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pimap-crypt-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn identity_from_file() {
    let dir = temp_dir("from-file");
    let missing = dir.join("missing.txt");
    let e = Identity::from_file(&missing).unwrap_err();
    assert!(
        e.contains("missing.txt") && e.contains("no such key file"),
        "{e}"
    );
    let path = dir.join("key.txt");
    std::fs::write(&path, format!("# k\n{SPEC_SECRET}\n")).unwrap();
    assert_eq!(
        Identity::from_file(&path).unwrap().recipient_string(),
        SPEC_RECIPIENT
    );
    std::fs::write(&path, "# nothing\n").unwrap();
    let e = Identity::from_file(&path).unwrap_err();
    assert!(e.starts_with(&format!("{}: ", path.display())), "{e}");
    std::fs::write(&path, [0xffu8, 0xfe, 0]).unwrap();
    assert!(Identity::from_file(&path).unwrap_err().contains("not text"));
    std::fs::write(&path, vec![b'#'; 70_000]).unwrap();
    assert!(Identity::from_file(&path)
        .unwrap_err()
        .contains("over 65536 bytes"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn permission_warning_like_ssh() {
    let p = std::path::Path::new("/etc/pimap/backup.key");
    assert_eq!(key::permission_warning(p, 0o100600), None);
    assert_eq!(key::permission_warning(p, 0o100400), None);
    let w = key::permission_warning(p, 0o100644).unwrap();
    assert!(w.contains("/etc/pimap/backup.key") && w.contains("0644") && w.contains("chmod 600"));
    assert!(key::permission_warning(p, 0o100640).is_some());
    assert!(key::permission_warning(p, 0o100604).is_some());
}
