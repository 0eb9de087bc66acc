//! Maildir file names (pure, no I/O): `<unique>[,S=<size>][,W=<vsize>]:2,<flags>`.
//!
//! Follows the maildir spec (cr.yp.to/proto/maildir.html: "info" after `:`, version 2 = flags
//! in ASCII order) and Dovecot's extensions: `S=` physical size, `W=` RFC822.SIZE (CRLF
//! size), keyword letters `a`–`z` indexing `dovecot-keywords`, and `P` (passed) shown as the
//! keyword `$Forwarded`. Letters we do not understand are kept when a file is renamed.

use crate::store::flag;

/// The keyword that Dovecot maps the maildir `P` (passed) flag to.
pub const FORWARDED: &str = "$Forwarded";

/// A file name split into its base (stored in `dovecot-uidlist`) and flag letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName<'a> {
    pub base: &'a str,
    /// The letters after `:2,` (empty when there is no `:2,` part).
    pub letters: &'a str,
    /// True if the name has an info part (`:...`).
    pub has_info: bool,
}

/// True if `name` is something we may treat as a message file: not a dotfile, no path
/// separators, no control characters (they cannot be written to the line-based uidlist).
pub fn acceptable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(|c| c.is_control())
        && !name.starts_with(':')
}

/// Split a file name at the first `:` (the maildir info separator).
pub fn split(name: &str) -> FileName<'_> {
    match name.find(':') {
        Some(i) => {
            let info = &name[i + 1..];
            FileName {
                base: &name[..i],
                letters: info.strip_prefix("2,").unwrap_or(""),
                has_info: true,
            }
        }
        None => FileName {
            base: name,
            letters: "",
            has_info: false,
        },
    }
}

/// The `S=` and `W=` values of a base name, if present and numeric.
pub fn sizes(base: &str) -> (Option<u64>, Option<u64>) {
    let mut s = None;
    let mut w = None;
    for field in base.split(',').skip(1) {
        if let Some(v) = field.strip_prefix("S=") {
            s = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("W=") {
            w = v.parse().ok();
        }
    }
    (s, w)
}

/// Flags decoded from letters: system flags, keyword indexes (0 = `a`) and the letters we
/// keep without understanding them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Letters {
    pub system: u8,
    pub passed: bool,
    pub keyword_indexes: Vec<usize>,
    pub unknown: String,
}

/// Decode flag letters (maildir spec: `D`raft, `F`lagged, `P`assed, `R`eplied, `S`een,
/// `T`rashed; Dovecot: `a`–`z` keywords).
pub fn decode_letters(letters: &str) -> Letters {
    let mut out = Letters::default();
    for c in letters.chars() {
        match c {
            'D' => out.system |= flag::DRAFT,
            'F' => out.system |= flag::FLAGGED,
            'P' => out.passed = true,
            'R' => out.system |= flag::ANSWERED,
            'S' => out.system |= flag::SEEN,
            'T' => out.system |= flag::DELETED,
            'a'..='z' => {
                let i = (c as u8 - b'a') as usize;
                if !out.keyword_indexes.contains(&i) {
                    out.keyword_indexes.push(i);
                }
            }
            c if c.is_ascii_graphic() && c != ',' && !out.unknown.contains(c) => {
                out.unknown.push(c)
            }
            _ => {}
        }
    }
    out
}

/// Encode flag letters in ASCII order (maildir spec), deduplicated.
pub fn encode_letters(l: &Letters) -> String {
    let mut v: Vec<char> = Vec::new();
    let sys = [
        (flag::DRAFT, 'D'),
        (flag::FLAGGED, 'F'),
        (flag::ANSWERED, 'R'),
        (flag::SEEN, 'S'),
        (flag::DELETED, 'T'),
    ];
    for (bit, c) in sys {
        if l.system & bit != 0 {
            v.push(c);
        }
    }
    if l.passed {
        v.push('P');
    }
    for &i in &l.keyword_indexes {
        if i < 26 {
            v.push((b'a' + i as u8) as char);
        }
    }
    v.extend(
        l.unknown
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != ','),
    );
    v.sort_unstable();
    v.dedup();
    v.into_iter().collect()
}

/// The file name in `cur/` for a base and letters.
pub fn cur_name(base: &str, letters: &str) -> String {
    format!("{base}:2,{letters}")
}

/// Base name for a new message: `<unique>,S=<size>,W=<vsize>`.
pub fn base_with_sizes(unique: &str, size: u64, vsize: u64) -> String {
    format!("{unique},S={size},W={vsize}")
}

/// RFC822.SIZE of a message: its size with every bare LF counted as CRLF.
pub fn vsize(data: &[u8]) -> u64 {
    let mut n = data.len() as u64;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

/// Host name as used in unique names: `/` → `\057`, `:` → `\072` (maildir spec).
pub fn sanitize_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            c if c.is_control() || c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    if out.is_empty() || out.starts_with('.') {
        out.insert_str(0, "localhost");
    }
    out
}

/// `<secs>.M<usecs>P<pid>Q<counter>.<host>` (maildir spec "modern" unique names).
pub fn unique_name(secs: u64, usecs: u32, pid: u32, counter: u64, host: &str) -> String {
    format!("{secs}.M{usecs}P{pid}Q{counter}.{}", sanitize_host(host))
}

/// A delivery id acceptable as the `<unique>` part of a file name.
pub fn valid_unique(unique: &str) -> bool {
    !unique.is_empty()
        && unique.len() <= 200
        && !unique.starts_with('.')
        && !unique.contains(['/', ':', '\0'])
        && !unique.chars().any(|c| c.is_control())
}

/// True if file `name` belongs to delivery `unique`: its name is `unique` followed by `,`,
/// `:` or nothing.
pub fn matches_unique(name: &str, unique: &str) -> bool {
    match name.strip_prefix(unique) {
        Some(rest) => rest.is_empty() || rest.starts_with(',') || rest.starts_with(':'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_sizes() {
        let f = split("123.M4P5.host,S=100,W=102:2,FRSab");
        assert_eq!(f.base, "123.M4P5.host,S=100,W=102");
        assert_eq!(f.letters, "FRSab");
        assert_eq!(sizes(f.base), (Some(100), Some(102)));
        let f = split("123.host");
        assert_eq!((f.base, f.letters, f.has_info), ("123.host", "", false));
        assert_eq!(sizes("x,S=abc"), (None, None));
    }

    #[test]
    fn letters_round_trip_keeps_unknown() {
        let l = decode_letters("DFPRSTacZ9");
        assert_eq!(
            l.system,
            flag::DRAFT | flag::FLAGGED | flag::ANSWERED | flag::SEEN | flag::DELETED
        );
        assert!(l.passed);
        assert_eq!(l.keyword_indexes, vec![0, 2]);
        assert_eq!(l.unknown, "Z9");
        assert_eq!(encode_letters(&l), "9DFPRSTZac");
        let l2 = decode_letters(&encode_letters(&l));
        assert_eq!(l2.system, l.system);
        assert_eq!(l2.keyword_indexes, l.keyword_indexes);
        assert!(l2.passed);
    }

    #[test]
    fn encoded_in_ascii_order() {
        let l = Letters {
            system: flag::SEEN | flag::ANSWERED,
            passed: true,
            keyword_indexes: vec![3, 1],
            unknown: String::new(),
        };
        assert_eq!(encode_letters(&l), "PRSbd");
    }

    #[test]
    fn vsize_counts_bare_lf() {
        assert_eq!(vsize(b"a\nb\r\nc\n"), 9);
        assert_eq!(vsize(b""), 0);
        assert_eq!(vsize(b"\n\n"), 4);
    }

    #[test]
    fn host_sanitized() {
        assert_eq!(sanitize_host("a/b:c"), "a\\057b\\072c");
        assert_eq!(unique_name(1, 2, 3, 4, "h"), "1.M2P3Q4.h");
        assert_eq!(sanitize_host(""), "localhost");
    }

    #[test]
    fn unique_validation_and_matching() {
        assert!(valid_unique("abc123"));
        for u in ["", ".x", "a/b", "a:b", "a\0", "a\nb"] {
            assert!(!valid_unique(u), "{u:?}");
        }
        assert!(matches_unique("abc,S=5", "abc"));
        assert!(matches_unique("abc:2,S", "abc"));
        assert!(matches_unique("abc", "abc"));
        assert!(!matches_unique("abcd,S=5", "abc"));
    }

    #[test]
    fn acceptable_names() {
        assert!(acceptable("1.M2.h,S=3:2,S"));
        for n in ["", ".hidden", "a\nb", ":2,S"] {
            assert!(!acceptable(n), "{n:?}");
        }
    }
}
