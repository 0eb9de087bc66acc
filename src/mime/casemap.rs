//! The `i;unicode-casemap` comparator (RFC 5051) that I18NLEVEL=1 (RFC 5255 §4) asks SORT and
//! SEARCH to use: every character is mapped to its titlecase form and the result is put in
//! compatibility decomposition (NFKD), so `é`, `É` and `E` + U+0301 compare equal, as do `ß`
//! and itself (titlecase is a one-character mapping) and `ǆ` / `ǅ` / `Ǆ`.
//!
//! Dovecot 2.3 (`uni_utf8_to_decomposed_titlecase`) does the same, one character at a time;
//! keys made here compare byte for byte like Dovecot's (`strcmp` of UTF-8 = code point order).
//!
//! Titlecase: the standard library offers only the *full* uppercase mapping
//! (`char::to_uppercase`, which turns `ß` into `SS`). The *simple* titlecase mapping of
//! UnicodeData.txt is that uppercase mapping when it is one character, except for the
//! characters listed in [`titlecase`]; when the full mapping is several characters the simple
//! one is the character itself, or for the Greek letters with ypogegrammeni their titlecase
//! letter (also in [`titlecase`]).

use unicode_normalization::UnicodeNormalization;

/// The simple titlecase mapping of `c` (UnicodeData.txt field 14, defaulting to field 12).
pub fn titlecase(c: char) -> char {
    match c as u32 {
        // The Latin digraphs: titlecase is the mixed-case letter (RFC 5051 §2 example).
        0x01C4..=0x01C6 => '\u{01C5}',
        0x01C7..=0x01C9 => '\u{01C8}',
        0x01CA..=0x01CC => '\u{01CB}',
        0x01F1..=0x01F3 => '\u{01F2}',
        // Georgian Mkhedruli: its uppercase (Mtavruli, Unicode 11) is not its titlecase.
        0x10D0..=0x10FA | 0x10FD..=0x10FF => c,
        // Greek with ypogegrammeni: the titlecase letter with prosgegrammeni.
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
            char::from_u32(c as u32 + 8).unwrap_or(c)
        }
        0x1FB3 => '\u{1FBC}',
        0x1FC3 => '\u{1FCC}',
        0x1FF3 => '\u{1FFC}',
        _ => {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        }
    }
}

/// `s` in the canonical form of `i;unicode-casemap`: titlecased, then NFKD.
pub fn fold(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii()) {
        return s.to_ascii_uppercase();
    }
    s.chars().map(titlecase).nfkd().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_uppercased() {
        assert_eq!(fold("Re: hello World"), "RE: HELLO WORLD");
    }

    #[test]
    fn accents_decompose() {
        assert_eq!(fold("é"), "E\u{0301}");
        assert_eq!(fold("É"), fold("e\u{0301}"));
        assert_eq!(fold("Émile"), "E\u{0301}MILE");
    }

    #[test]
    fn titlecase_not_uppercase() {
        // ß has no one-character uppercase: it stays (not "SS").
        assert_eq!(fold("ß"), "ß");
        // The digraph's titlecase is the mixed form, decomposed to D + ž (lowercase stays).
        assert_eq!(fold("ǆ"), "Dz\u{030C}");
        assert_eq!(fold("Ǆ"), fold("ǅ"));
        assert_eq!(titlecase('\u{1F80}'), '\u{1F88}');
        assert_eq!(titlecase('ﬁ'), 'ﬁ');
        assert_eq!(fold("ﬁ"), "fi"); // compatibility decomposition, after titlecasing
        assert_eq!(titlecase('ა'), 'ა');
    }

    #[test]
    fn compatibility_forms() {
        assert_eq!(fold("Ａ"), "A"); // fullwidth
        assert_eq!(fold("①"), "1");
        assert_eq!(fold("한"), "\u{1112}\u{1161}\u{11AB}");
    }
}
