//! IMAP modified UTF-7 (RFC 3501 §5.1.3; RFC 2152 for plain UTF-7) for mailbox names.
//!
//! Owns the conversion between the names clients send (and Dovecot stores on disk) and UTF-8.
//! Pure functions; never panics on any input.
//!
//! Rules (RFC 3501 §5.1.3):
//! - printable US-ASCII (0x20..=0x7e) other than `&` stands for itself;
//! - `&` is written `&-`;
//! - anything else is a run `&<base64>-` of UTF-16 (surrogate pairs for non-BMP), with the
//!   modified base64 alphabet (`,` instead of `/`) and no `=` padding.
//!
//! `decode` is strict: it rejects anything `encode` would never produce (bad base64,
//! non-zero padding bits, unpaired surrogates, runs that encode printable ASCII, two encoded
//! runs back to back, raw 8-bit or control characters), so every accepted name has exactly one
//! spelling.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some((b - b'A') as u32),
        b'a'..=b'z' => Some((b - b'a') as u32 + 26),
        b'0'..=b'9' => Some((b - b'0') as u32 + 52),
        b'+' => Some(62),
        b',' => Some(63),
        _ => None,
    }
}

fn is_direct(c: u32) -> bool {
    (0x20..=0x7e).contains(&c)
}

/// Decode a modified UTF-7 mailbox name to UTF-8; `None` if it is not valid modified UTF-7.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    // Did the previous token end an encoded (non-`&-`) run? Two runs back to back are not
    // canonical: the encoder would have merged them.
    let mut prev_was_run = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'&' {
            if !is_direct(b as u32) {
                return None;
            }
            out.push(b as char);
            i += 1;
            prev_was_run = false;
            continue;
        }
        // `&` starts a shift sequence.
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i] != b'-' {
            i += 1;
        }
        if i >= bytes.len() {
            return None; // unterminated
        }
        let run = &bytes[start..i];
        i += 1; // the '-'
        if run.is_empty() {
            out.push('&');
            prev_was_run = false;
            continue;
        }
        if prev_was_run {
            return None;
        }
        decode_run(run, &mut out)?;
        prev_was_run = true;
    }
    Some(out)
}

/// Decode one base64 run (between `&` and `-`) of UTF-16 code units into `out`.
fn decode_run(run: &[u8], out: &mut String) -> Option<()> {
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut units: Vec<u16> = Vec::with_capacity(run.len() * 6 / 16 + 1);
    for &c in run {
        acc = (acc << 6) | b64_value(c)?;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push(((acc >> bits) & 0xffff) as u16);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits are padding: fewer than one base64 digit's worth, and all zero.
    if bits >= 6 || acc != 0 || units.is_empty() {
        return None;
    }
    for r in char::decode_utf16(units.iter().copied()) {
        let c = r.ok()?; // unpaired surrogate
        if is_direct(c as u32) {
            return None; // printable ASCII must be written directly
        }
        out.push(c);
    }
    Some(())
}

/// Encode a UTF-8 mailbox name as modified UTF-7.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut pending: Vec<u16> = Vec::new();
    for c in s.chars() {
        if is_direct(c as u32) {
            flush_run(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_run(&mut pending, &mut out);
    out
}

fn flush_run(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &u in units.iter() {
        acc = (acc << 16) | u as u32;
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 0x3f) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize] as char);
    }
    out.push('-');
    units.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        // RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
        let name = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        let enc = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        assert_eq!(encode(name), enc);
        assert_eq!(decode(enc).as_deref(), Some(name));
    }

    #[test]
    fn ampersand_and_ascii() {
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").as_deref(), Some("Tom & Jerry"));
        assert_eq!(encode("INBOX"), "INBOX");
        assert_eq!(decode("").as_deref(), Some(""));
        assert_eq!(decode("&-&-").as_deref(), Some("&&"));
    }

    #[test]
    fn common_folder_names() {
        assert_eq!(encode("Entw\u{fc}rfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(encode("Gel\u{f6}schte Elemente"), "Gel&APY-schte Elemente");
        assert_eq!(encode("\u{e4}&"), "&AOQ-&-");
        assert_eq!(decode("&AOQ-&-").as_deref(), Some("ä&"));
        // Cyrillic "Отправленные" (Sent in Russian clients)
        let sent =
            "\u{41e}\u{442}\u{43f}\u{440}\u{430}\u{432}\u{43b}\u{435}\u{43d}\u{43d}\u{44b}\u{435}";
        assert_eq!(decode(&encode(sent)).as_deref(), Some(sent));
    }

    #[test]
    fn surrogate_pairs() {
        let s = "mail \u{1f600} box";
        let e = encode(s);
        assert_eq!(e, "mail &2D3eAA- box");
        assert_eq!(decode(&e).as_deref(), Some(s));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "&",          // unterminated
            "&AOQ",       // unterminated run
            "&A?Q-",      // bad base64 char
            "&AOQ/-",     // '/' is not modified base64
            "&AOR-",      // non-zero padding bits
            "&AOQA-",     // a whole leftover base64 digit
            "&2D0-",      // lone high surrogate
            "&3gA-",      // lone low surrogate
            "&AGE-",      // encodes printable ASCII 'a'
            "&ACY-",      // encodes '&' (must be &-)
            "&AOQ-&APw-", // two encoded runs back to back
            "caf\u{e9}",  // raw 8-bit
            "tab\there",  // control character
            "&A-",        // too short for one unit
        ] {
            assert_eq!(decode(bad), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn random_round_trip_and_never_panics() {
        let mut seed: u64 = 0x1234_5678_9abc_def0;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let pool: Vec<char> = "aZ &-,+/.~\u{e4}\u{fc}\u{4e2d}\u{1f600}\u{7f}\u{1}\u{ffff}\u{10000}"
            .chars()
            .collect();
        for _ in 0..5000 {
            let len = next() % 12;
            let s: String = (0..len)
                .map(|_| pool[next() as usize % pool.len()])
                .collect();
            let e = encode(&s);
            assert!(e.is_ascii());
            assert_eq!(
                decode(&e).as_deref(),
                Some(s.as_str()),
                "round trip of {s:?} via {e:?}"
            );
        }
        let bytes = b"&-AZaz09+,/=\x80 ";
        for _ in 0..20000 {
            let len = next() % 16;
            let s: String = (0..len)
                .map(|_| bytes[next() as usize % bytes.len()] as char)
                .collect();
            if let Some(d) = decode(&s) {
                // Anything accepted has exactly one spelling.
                assert_eq!(encode(&d), s);
            }
        }
    }
}
