//! Dovecot's `subscriptions` file (pure, no I/O).
//!
//! Version 1: one mailbox name per line, native separator (`.`). Version 2: the header
//! `V\t2\n\n`, then one name per line with hierarchy levels separated by TAB; control
//! characters are escaped as `\001` followed by a letter (`\001t` = TAB, `\001n` = LF,
//! `\001r` = CR, `\0011` = `\001`). We write whichever version the file already had.

use super::name::SEP;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    V1,
    V2,
}

const V2_HEADER: &str = "V\t2\n\n";

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\u{1}' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('1') => out.push('\u{1}'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

/// Parse the file into its format and the names (in file order, duplicates removed).
pub fn parse(text: &str) -> (Format, Vec<String>) {
    let (format, body) = match text.strip_prefix("V\t2\n") {
        Some(rest) => (Format::V2, rest),
        None => (Format::V1, text),
    };
    let mut names: Vec<String> = Vec::new();
    for line in body.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let name = match format {
            Format::V1 => line.to_string(),
            Format::V2 => line
                .split('\t')
                .map(unescape)
                .collect::<Vec<_>>()
                .join(&SEP.to_string()),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    (format, names)
}

/// Serialize names in `format`.
pub fn serialize(format: Format, names: &[String]) -> String {
    let mut s = String::new();
    if format == Format::V2 {
        s.push_str(V2_HEADER);
    }
    for n in names {
        match format {
            Format::V1 => s.push_str(n),
            Format::V2 => s.push_str(&n.split(SEP).collect::<Vec<_>>().join("\t")),
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_round_trip() {
        let (f, n) = parse("INBOX\nA.B\n\nA.B\nSent\n");
        assert_eq!(f, Format::V1);
        assert_eq!(n, vec!["INBOX", "A.B", "Sent"]);
        assert_eq!(serialize(f, &n), "INBOX\nA.B\nSent\n");
    }

    #[test]
    fn v2_round_trip() {
        let (f, n) = parse("V\t2\n\nINBOX\nA\tB\nx\u{1}ty\n");
        assert_eq!(f, Format::V2);
        assert_eq!(n, vec!["INBOX", "A.B", "x\ty"]);
        let (f2, n2) = parse(&serialize(f, &n[..2]));
        assert_eq!(
            (f2, n2),
            (Format::V2, vec!["INBOX".to_string(), "A.B".to_string()])
        );
        assert_eq!(parse("").1, Vec::<String>::new());
    }
}
