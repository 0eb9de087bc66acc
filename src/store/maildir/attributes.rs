//! `dovecot-attributes`: the user's METADATA entries (RFC 5464) in the file Dovecot's `file`
//! dict writes (`mail_attribute_dict = file:~/dovecot-attributes`), so a user moving either
//! way keeps them. Pure: bytes in, bytes out (the store locks and replaces the file).
//!
//! The file is alternating lines, a key then its value, each tab-escaped (`\x01` followed by
//! `1`, `t`, `r` or `n` stands for `\x01`, tab, CR and LF). Keys, as Dovecot 2.3 makes them:
//! `priv/<mailbox GUID>/<name>` for `/private/<name>`, `shared/<mailbox GUID>/<name>` for
//! `/shared/<name>`, and for the server's entries (mailbox `""`) INBOX's GUID with
//! `vendor/vendor.dovecot/pvt/server/` before the name. Names are lower case.
//!
//! Every byte of the file is untrusted: a pair that does not decode is skipped and counted, so
//! the caller can log it, and the other pairs are kept.

use std::collections::BTreeMap;

/// The file's name in the user's Maildir root.
pub const FILE: &str = "dovecot-attributes";

/// What comes between the GUID and the name of a server entry (Dovecot's
/// `MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER`).
pub const SERVER_PREFIX: &str = "vendor/vendor.dovecot/pvt/server/";

/// Dovecot's own entries: clients may neither read nor set names under it.
pub const INTERNAL_PREFIX: &str = "vendor/vendor.dovecot/pvt";

/// Key → value, in key order.
pub type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// A parsed file: the entries, and how many pairs were skipped as malformed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Entries,
    pub skipped: usize,
}

/// Parse the file's bytes (never fails: see the module doc).
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return out;
    }
    let mut lines = body.split(|&b| b == b'\n');
    while let Some(key) = lines.next() {
        let Some(value) = lines.next() else {
            out.skipped += 1; // a key without its value (a cut-off file)
            break;
        };
        match (unescape(key), unescape(value)) {
            // Dovecot's strings end at NUL: it never writes one.
            (Some(k), Some(v)) if !k.is_empty() && !k.contains(&0) && !v.contains(&0) => {
                out.entries.insert(k, v);
            }
            _ => out.skipped += 1,
        }
    }
    out
}

/// The file's bytes for `entries`.
pub fn serialize(entries: &Entries) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in entries {
        escape(&mut out, k);
        out.push(b'\n');
        escape(&mut out, v);
        out.push(b'\n');
    }
    out
}

fn escape(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            0x01 => out.extend_from_slice(b"\x011"),
            b'\t' => out.extend_from_slice(b"\x01t"),
            b'\r' => out.extend_from_slice(b"\x01r"),
            b'\n' => out.extend_from_slice(b"\x01n"),
            _ => out.push(b),
        }
    }
}

/// `None` for an escape Dovecot never writes.
fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        if b != 0x01 {
            out.push(b);
            continue;
        }
        out.push(match it.next()? {
            b'1' => 0x01,
            b't' => b'\t',
            b'r' => b'\r',
            b'n' => b'\n',
            _ => return None,
        });
    }
    Some(out)
}

/// The key prefix of a mailbox's entries: `priv/<guid>/` or `shared/<guid>/`.
pub fn mailbox_prefix(private: bool, guid: &str) -> Vec<u8> {
    let kind = if private { "priv" } else { "shared" };
    format!("{kind}/{guid}/").into_bytes()
}

/// Remove every entry of the mailbox with `guid` (it was deleted); true if any was there.
pub fn forget_mailbox(entries: &mut Entries, guid: &str) -> bool {
    let before = entries.len();
    for private in [true, false] {
        let p = mailbox_prefix(private, guid);
        entries.retain(|k, _| !k.starts_with(&p));
    }
    entries.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pairs: &[(&[u8], &[u8])]) -> Entries {
        pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn dovecot_file_round_trips() {
        // As Dovecot 2.3.19 wrote it (a tab in a value, an empty value).
        let file = b"priv/3c91/comment\na\x01tb\nshared/3c91/x\n\npriv/3c91/vendor/vendor.dovecot/pvt/server/foo\nserver\n";
        let p = parse(file);
        assert_eq!(p.skipped, 0);
        assert_eq!(p.entries.get(&b"priv/3c91/comment"[..]).unwrap(), b"a\tb");
        assert_eq!(p.entries.get(&b"shared/3c91/x"[..]).unwrap(), b"");
        assert_eq!(parse(&serialize(&p.entries)), p);
    }

    #[test]
    fn escapes_every_special_byte() {
        let entries = e(&[(b"k\n\x01", b"a\r\nb\t\x01c")]);
        let bytes = serialize(&entries);
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 2);
        assert_eq!(parse(&bytes).entries, entries);
    }

    #[test]
    fn bad_pairs_are_skipped_and_the_rest_kept() {
        let p = parse(b"good\n1\nbad\x01z\nv\n\nempty-key\nk2\n2\nn\x00ul\nv\nk\nn\x00\ncut-off");
        assert_eq!(p.entries, e(&[(b"good", b"1"), (b"k2", b"2")]));
        assert_eq!(p.skipped, 5);
        assert_eq!(parse(b"").entries.len(), 0);
        assert_eq!(parse(b"\n"), Parsed::default());
    }

    #[test]
    fn forgetting_a_mailbox_keeps_the_others() {
        let mut entries = e(&[
            (b"priv/aa/x", b"1"),
            (b"shared/aa/y", b"2"),
            (b"priv/aab/x", b"3"),
            (b"priv/bb/x", b"4"),
        ]);
        assert!(forget_mailbox(&mut entries, "aa"));
        assert_eq!(entries, e(&[(b"priv/aab/x", b"3"), (b"priv/bb/x", b"4")]));
        assert!(!forget_mailbox(&mut entries, "aa"));
    }
}
