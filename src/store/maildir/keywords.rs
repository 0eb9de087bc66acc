//! `dovecot-keywords` (pure, no I/O): lines `<index> <keyword>`; index 0 is the file-name
//! letter `a`, 25 is `z`. Keywords compare case-insensitively (RFC 3501 §2.3.2) and keep the
//! case they were first stored with.

use std::collections::BTreeMap;

/// Number of keywords that have a file-name letter.
pub const MAX_LETTERS: usize = 26;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    /// index → keyword. Indexes ≥ 26 are kept (Dovecot may list them) but get no letter.
    by_index: BTreeMap<u32, String>,
}

/// The keyword table is full (26 letters used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMany;

/// A keyword is an IMAP atom that is not a system flag (RFC 3501 §9 `flag-keyword`).
pub fn valid_keyword(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && k.bytes().all(|b| {
            (0x21..0x7f).contains(&b)
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

impl Keywords {
    /// Parse the file; malformed lines are ignored (returned count).
    pub fn parse(text: &str) -> (Keywords, usize) {
        let mut k = Keywords::default();
        let mut bad = 0;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let parsed = line
                .split_once(' ')
                .and_then(|(i, w)| Some((i.parse::<u32>().ok()?, w)))
                .filter(|(_, w)| valid_keyword(w));
            match parsed {
                Some((i, w)) if k.index_of(w).is_none() && !k.by_index.contains_key(&i) => {
                    k.by_index.insert(i, w.to_string());
                }
                _ => bad += 1,
            }
        }
        (k, bad)
    }

    pub fn serialize(&self) -> String {
        let mut s = String::new();
        for (i, w) in &self.by_index {
            s.push_str(&format!("{i} {w}\n"));
        }
        s
    }

    /// The keyword for a letter index.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.by_index
            .get(&u32::try_from(index).ok()?)
            .map(String::as_str)
    }

    /// The letter index of a keyword (case-insensitive), if it has one.
    pub fn index_of(&self, kw: &str) -> Option<usize> {
        self.by_index
            .iter()
            .find(|(_, w)| w.eq_ignore_ascii_case(kw))
            .map(|(i, _)| *i as usize)
            .filter(|&i| i < MAX_LETTERS)
    }

    /// The index for `kw`, adding it at the lowest free index if new.
    pub fn get_or_add(&mut self, kw: &str) -> Result<usize, TooMany> {
        if let Some(i) = self.index_of(kw) {
            return Ok(i);
        }
        let free = (0..MAX_LETTERS as u32)
            .find(|i| !self.by_index.contains_key(i))
            .ok_or(TooMany)?;
        self.by_index.insert(free, kw.to_string());
        Ok(free as usize)
    }

    /// Keywords with letters, in index order.
    pub fn all(&self) -> Vec<String> {
        self.by_index
            .iter()
            .filter(|(i, _)| (**i as usize) < MAX_LETTERS)
            .map(|(_, w)| w.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lookup() {
        let (k, bad) = Keywords::parse("0 $Junk\n2 Work\nbogus\n3 \n1 work\n");
        assert_eq!(bad, 3);
        assert_eq!(k.serialize(), "0 $Junk\n2 Work\n");
        assert_eq!(k.index_of("WORK"), Some(2));
        assert_eq!(k.get(0), Some("$Junk"));
        assert_eq!(Keywords::parse(&k.serialize()).0, k);
    }

    #[test]
    fn add_uses_lowest_free_and_limits_to_26() {
        let (mut k, _) = Keywords::parse("0 a\n2 c\n");
        assert_eq!(k.get_or_add("b"), Ok(1));
        assert_eq!(k.get_or_add("B"), Ok(1));
        for i in 0..23 {
            assert!(k.get_or_add(&format!("k{i}")).is_ok());
        }
        assert_eq!(k.get_or_add("overflow"), Err(TooMany));
    }

    #[test]
    fn keyword_syntax() {
        assert!(valid_keyword("$Forwarded"));
        for k in ["", "a b", "\\Seen", "a(", "a\n"] {
            assert!(!valid_keyword(k), "{k:?}");
        }
    }
}
