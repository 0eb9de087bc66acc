//! The `i;unicode-casemap` comparator (RFC 5051) that I18NLEVEL=1 (RFC 5255 §4) asks SORT and
//! SEARCH to use: every character is mapped to its titlecase form and then decomposed, so
//! `é`, `É` and `E` + U+0301 compare equal, as do `ǆ`, `ǅ` and `Ǆ`; `ß` stays `ß` (titlecase
//! is a one-character mapping).
//!
//! As Dovecot 2.3 does it (`uni_utf8_to_decomposed_titlecase`), which is the reference for
//! pimap: one character at a time, titlecase, then that character's decomposition mapping
//! (canonical or compatibility) taken *one level* deep (`casemap/table.rs`, generated from
//! UnicodeData.txt by `scripts/casemap_table.py`), Hangul syllables into their jamo; no
//! recursion and no reordering of marks, unlike RFC 5051's NFKD. So `ǖ` becomes `Ü` + U+0304
//! (as in Dovecot), not `U` + U+0308 + U+0304; and the titlecase digraphs (`ǅ`) are left
//! whole, as Dovecot leaves them. Keys made here compare byte for byte in the
//! order Dovecot's do (`strcmp` of UTF-8 = code point order); tests/e2e/test_ext_sort.py
//! checks that against Dovecot.
//!
//! Titlecase: the standard library offers only the *full* uppercase mapping
//! (`char::to_uppercase`, which turns `ß` into `SS`). The *simple* titlecase mapping of
//! UnicodeData.txt is that uppercase mapping when it is one character, except for the
//! characters listed in [`titlecase`]; when the full mapping is several characters the simple
//! one is the character itself, or for the Greek letters with ypogegrammeni their titlecase
//! letter (also in [`titlecase`]).

#[rustfmt::skip]
mod table;

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

/// `s` in the canonical form of `i;unicode-casemap`: titlecased, then decomposed.
pub fn fold(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii()) {
        return s.to_ascii_uppercase();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        decompose(titlecase(c), &mut out);
    }
    out
}

/// Append `c`'s one-level decomposition (or `c` itself) to `out`.
fn decompose(c: char, out: &mut String) {
    use table::{DATA, KEYS, OFFS};
    // Unicode 3.12: Hangul syllables decompose by arithmetic into two or three jamo.
    const S_BASE: u32 = 0xAC00;
    let s = (c as u32).wrapping_sub(S_BASE);
    if s < 11172 {
        let jamo = [0x1100 + s / 588, 0x1161 + (s % 588) / 28, 0x11A7 + s % 28];
        let n = if jamo[2] == 0x11A7 { 2 } else { 3 };
        out.extend(jamo[..n].iter().filter_map(|&j| char::from_u32(j)));
        return;
    }
    // Dovecot leaves the titlecase digraphs whole (compared with it character by character).
    if matches!(c, '\u{01C5}' | '\u{01C8}' | '\u{01CB}' | '\u{01F2}') {
        out.push(c);
        return;
    }
    let mapped = KEYS.binary_search(&(c as u32)).ok().and_then(|i| {
        let from = usize::from(*OFFS.get(i)?);
        let to = usize::from(*OFFS.get(i + 1)?);
        DATA.get(from..to)
    });
    match mapped {
        Some(d) => out.push_str(d),
        None => out.push(c),
    }
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
        // One level only, as Dovecot: Ǖ is Ü + macron, and Ü stays composed.
        assert_eq!(fold("ǖ"), "\u{DC}\u{304}");
        assert_eq!(fold("ế"), "\u{CA}\u{301}");
    }

    #[test]
    fn table_is_sorted_and_whole() {
        use table::{DATA, KEYS, OFFS};
        assert!(KEYS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(OFFS.len(), KEYS.len() + 1);
        assert_eq!(usize::from(OFFS[KEYS.len()]), DATA.len());
        assert!(OFFS.iter().all(|&o| DATA.is_char_boundary(usize::from(o))));
    }

    #[test]
    fn titlecase_not_uppercase() {
        // ß has no one-character uppercase: it stays (not "SS").
        assert_eq!(fold("ß"), "ß");
        // The digraph's titlecase is the mixed form, which has no decomposition mapping.
        assert_eq!(fold("ǆ"), "\u{01C5}");
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
