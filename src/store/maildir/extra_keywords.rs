//! `pimap-keywords` (pure, no I/O): the keywords of messages that have no file-name letter.
//!
//! Maildir file names carry at most 26 keyword letters (`a`-`z`, via `dovecot-keywords`);
//! Dovecot keeps any further keywords in its own index, so pimap keeps them in a file of its
//! own beside `dovecot-uidlist`, which Dovecot ignores. The first 26 keywords of a mailbox stay
//! in the file names, where Dovecot sees them.
//!
//! Format (text, replaced whole by write + fsync + rename under its dotlock, so a reader sees
//! the old or the new version, never a torn one):
//!
//! ```text
//! pimap-keywords 1
//! <base name> <keyword> [<keyword> ...]
//! ```
//!
//! Lines are keyed by the message file's base name (`<unique>[,S=..][,W=..]`), which a flag
//! change never alters, so they survive renames and a rebuilt uidlist (new UIDVALIDITY).
//! Malformed lines are skipped and counted; a file without the header is not used.

use super::keywords::valid_keyword;
use std::collections::BTreeMap;

/// First line of the file.
pub const HEADER: &str = "pimap-keywords 1";
/// Keywords without a letter that one mailbox may hold; one more is refused. (Far above what
/// mail clients use; it bounds the file and every FLAGS response.)
pub const MAX_EXTRA: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraKeywords {
    by_base: BTreeMap<String, Vec<String>>,
}

/// Why a file could not be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable(pub String);

/// A base name as it may appear in a line: a file name without the `:2,` part, no space,
/// no `/`, not starting with a dot.
fn valid_base(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 255
        && !b.starts_with('.')
        && !b
            .bytes()
            .any(|c| c <= b' ' || c == b'/' || c == b':' || c >= 0x7f)
}

impl ExtraKeywords {
    /// Parse the file: the table and the number of lines skipped as malformed.
    pub fn parse(text: &str) -> Result<(ExtraKeywords, usize), Unusable> {
        let mut lines = text.lines();
        match lines.next().map(|l| l.trim_end_matches('\r')) {
            Some(HEADER) => {}
            Some(other) => {
                return Err(Unusable(format!(
                    "first line is {:?}, not {HEADER:?}",
                    other.chars().take(40).collect::<String>()
                )))
            }
            None => return Ok((ExtraKeywords::default(), 0)),
        }
        let mut k = ExtraKeywords::default();
        let mut bad = 0;
        for line in lines {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let mut words = line.split(' ');
            let base = words.next().unwrap_or_default();
            let kws: Vec<&str> = words.collect();
            if !valid_base(base) || kws.is_empty() || !kws.iter().all(|w| valid_keyword(w)) {
                bad += 1;
                continue;
            }
            let mut set: Vec<String> = Vec::new();
            for w in kws {
                if !set.iter().any(|x| x.eq_ignore_ascii_case(w)) {
                    set.push(w.to_string());
                }
            }
            k.by_base.insert(base.to_string(), set);
        }
        Ok((k, bad))
    }

    pub fn serialize(&self) -> String {
        let mut s = String::from(HEADER);
        s.push('\n');
        for (b, kws) in &self.by_base {
            s.push_str(b);
            for k in kws {
                s.push(' ');
                s.push_str(k);
            }
            s.push('\n');
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.by_base.is_empty()
    }

    /// The extra keywords of the message with this base name.
    pub fn get(&self, base: &str) -> &[String] {
        self.by_base.get(base).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Set a message's extra keywords (none: forget it). False if the base name cannot be
    /// stored or a keyword is invalid.
    pub fn set(&mut self, base: &str, kws: &[String]) -> bool {
        if !valid_base(base) || !kws.iter().all(|k| valid_keyword(k)) {
            return false;
        }
        if kws.is_empty() {
            self.by_base.remove(base);
        } else {
            self.by_base.insert(base.to_string(), kws.to_vec());
        }
        true
    }

    /// Every distinct keyword in use, in a stable order (for FLAGS).
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for kws in self.by_base.values() {
            for k in kws {
                if !out.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    out.push(k.clone());
                }
            }
        }
        out
    }

    /// The base names listed.
    pub fn bases(&self) -> impl Iterator<Item = &str> {
        self.by_base.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut k = ExtraKeywords::default();
        assert!(k.set(
            "1700000000.M1P2.host,S=10,W=12",
            &["$k27".into(), "Work2".into()]
        ));
        assert!(k.set("other", &["x".into()]));
        let text = k.serialize();
        assert!(text.starts_with("pimap-keywords 1\n"));
        let (back, bad) = ExtraKeywords::parse(&text).unwrap();
        assert_eq!((back.clone(), bad), (k, 0));
        assert_eq!(back.get("other"), ["x".to_string()]);
        assert_eq!(back.names(), vec!["$k27", "Work2", "x"]);
        let mut back = back;
        assert!(back.set("other", &[]));
        assert!(back.get("other").is_empty());
    }

    #[test]
    fn malformed_lines_are_skipped_and_a_wrong_header_is_unusable() {
        let text = "pimap-keywords 1\r\nok a b A\nbad/base x\nnokw\n.dot x\nb \\Seen\n\nz ok2\n";
        let (k, bad) = ExtraKeywords::parse(text).unwrap();
        assert_eq!(bad, 4);
        assert_eq!(k.get("ok"), ["a".to_string(), "b".to_string()]);
        assert_eq!(k.get("z"), ["ok2".to_string()]);
        assert!(ExtraKeywords::parse("garbage\nok a\n").is_err());
        assert_eq!(
            ExtraKeywords::parse("").unwrap().0,
            ExtraKeywords::default()
        );
        assert!(!k.clone().set("a b", &["x".into()]));
        assert!(!k.clone().set("ok", &["(".into()]));
    }

    #[test]
    fn never_panics_on_noise() {
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..2000 {
            let mut s = String::from("pimap-keywords 1\n");
            for _ in 0..(seed % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                s.push(char::from_u32(seed % 0x250).unwrap_or(' '));
            }
            let _ = ExtraKeywords::parse(&s);
        }
    }
}
