//! `dovecot-uidlist` (pure, no I/O).
//!
//! Version 3 (Dovecot ≥ 1.0): a header `3 V<uidvalidity> N<next uid> G<guid hex>` whose fields
//! come in any order (unknown ones are kept), then one line per message
//! `<uid> [<ext>...] :<file name>` in ascending UID order, where each `<ext>` is a one-letter key
//! followed by its value (`W<vsize>`, `G<guid>`, ...). Dovecot writes the base name only; a name
//! may also carry its `:2,<flags>` part (what pimap writes for the files it adds, see
//! [`UidList::add`]), which readers match by base name like Dovecot does. Version 1 (`1 <uidvalidity> <next>`,
//! lines `<uid> <base>`) is read and rewritten as version 3. Lines for expunged files may
//! linger; the next UID is never lower than the highest UID seen plus one.

use std::fmt::Write as _;

/// One message line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    /// Extension tokens as found (`W1234`, ...), kept verbatim.
    pub ext: Vec<String>,
    /// The file name without its `:2,...` part.
    pub base: String,
    /// The rest of the name as written (`:2,FS`), or empty; kept verbatim.
    pub info: String,
}

impl Entry {
    /// The `W` (RFC822.SIZE) extension, if present.
    pub fn vsize(&self) -> Option<u64> {
        self.ext
            .iter()
            .find_map(|t| t.strip_prefix('W').and_then(|v| v.parse().ok()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidList {
    pub uid_validity: u32,
    pub next_uid: u32,
    /// Mailbox GUID (32 hex digits), if present.
    pub guid: Option<String>,
    /// Header fields we don't interpret, verbatim, in order.
    pub extra_header: Vec<String>,
    pub entries: Vec<Entry>,
}

/// What went wrong reading a uidlist: the header is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub String);

/// Result of parsing: the list and how many message lines were skipped as malformed.
#[derive(Debug)]
pub struct Parsed {
    pub list: UidList,
    pub skipped: usize,
}

impl UidList {
    pub fn new(uid_validity: u32, guid: String) -> UidList {
        UidList {
            uid_validity,
            next_uid: 1,
            guid: Some(guid),
            extra_header: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Parse a uidlist. Malformed or out-of-order message lines are skipped (counted); a
    /// missing or unusable header is `Corrupt`.
    pub fn parse(text: &str) -> Result<Parsed, Corrupt> {
        let mut lines = text.split('\n');
        let header = lines.next().unwrap_or("").trim_end_matches('\r');
        let mut toks = header.split(' ').filter(|t| !t.is_empty());
        let version = toks.next().ok_or_else(|| Corrupt("empty file".into()))?;
        let mut list = UidList {
            uid_validity: 0,
            next_uid: 0,
            guid: None,
            extra_header: Vec::new(),
            entries: Vec::new(),
        };
        let v1 = match version {
            "3" => {
                for t in toks {
                    let mut cs = t.chars();
                    let k = cs.next();
                    let v = cs.as_str();
                    match k {
                        Some('V') => {
                            list.uid_validity = v
                                .parse()
                                .map_err(|_| Corrupt(format!("bad UIDVALIDITY {t:?}")))?
                        }
                        Some('N') => {
                            list.next_uid = v
                                .parse()
                                .map_err(|_| Corrupt(format!("bad next UID {t:?}")))?
                        }
                        Some('G') if is_hex(v) => list.guid = Some(v.to_string()),
                        _ => list.extra_header.push(t.to_string()),
                    }
                }
                false
            }
            "1" => {
                let t: Vec<&str> = toks.collect();
                let (Some(v), Some(n)) = (t.first(), t.get(1)) else {
                    return Err(Corrupt("short version 1 header".into()));
                };
                list.uid_validity = v.parse().map_err(|_| Corrupt("bad UIDVALIDITY".into()))?;
                list.next_uid = n.parse().map_err(|_| Corrupt("bad next UID".into()))?;
                true
            }
            other => return Err(Corrupt(format!("unsupported version {other:?}"))),
        };
        if list.uid_validity == 0 {
            return Err(Corrupt("no UIDVALIDITY".into()));
        }
        let mut skipped = 0;
        let mut last = 0u32;
        for line in lines {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            match parse_line(line, v1) {
                Some(e) if e.uid > last => {
                    last = e.uid;
                    list.entries.push(e);
                }
                _ => skipped += 1,
            }
        }
        list.next_uid = list.next_uid.max(last.saturating_add(1)).max(1);
        Ok(Parsed { list, skipped })
    }

    /// Serialize as version 3.
    pub fn serialize(&self) -> String {
        let mut out = format!("3 V{} N{}", self.uid_validity, self.next_uid);
        if let Some(g) = &self.guid {
            out.push_str(" G");
            out.push_str(g);
        }
        for t in &self.extra_header {
            out.push(' ');
            out.push_str(t);
        }
        out.push('\n');
        out.reserve(self.entries.len() * 64);
        for e in &self.entries {
            // Writing into a String cannot fail.
            let _ = write!(out, "{}", e.uid);
            for t in &e.ext {
                out.push(' ');
                out.push_str(t);
            }
            out.push_str(" :");
            out.push_str(&e.base);
            out.push_str(&e.info);
            out.push('\n');
        }
        out
    }

    /// Append a line for the file `name` with the next UID; returns the UID (`None` if UIDs
    /// ran out). The name is written whole, flags included: a Dovecot process that reads the
    /// line before its directory scan shows the file takes the message's flags from this
    /// name when it adds the message to its index (maildir-sync-index.c), so a base name alone
    /// would show the message without its flags there until Dovecot rescans cur/ (and a STORE
    /// there meanwhile works on those wrong flags). Dovecot's own writers put the flags into
    /// its index instead, which pimap does not write.
    pub fn add(&mut self, name: &str, ext: Vec<String>) -> Option<u32> {
        let uid = self.next_uid;
        if uid == 0 || uid == u32::MAX {
            return None;
        }
        let (base, info) = split_name(name);
        self.entries.push(Entry {
            uid,
            ext,
            base: base.to_string(),
            info: info.to_string(),
        });
        self.next_uid = uid + 1;
        Some(uid)
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A file name as (base, the `:...` rest or empty), split at the first `:` like
/// `filename::split`.
fn split_name(name: &str) -> (&str, &str) {
    name.split_at(name.find(':').unwrap_or(name.len()))
}

fn entry(uid: u32, ext: Vec<String>, name: &str) -> Option<Entry> {
    let (base, info) = split_name(name);
    (!base.is_empty()).then(|| Entry {
        uid,
        ext,
        base: base.to_string(),
        info: info.to_string(),
    })
}

fn parse_line(line: &str, v1: bool) -> Option<Entry> {
    let (uid, rest) = line.split_once(' ')?;
    let uid: u32 = uid.parse().ok().filter(|&u| u > 0)?;
    if v1 {
        return entry(uid, Vec::new(), rest.trim_start_matches(' '));
    }
    let mut rest = rest;
    let mut ext = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if let Some(name) = rest.strip_prefix(':') {
            return entry(uid, ext, name);
        }
        let (tok, r) = rest.split_once(' ')?;
        ext.push(tok.to_string());
        rest = r;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "3 V1700000000 N5 G0123456789abcdef0123456789abcdef X7 Zfoo\n\
1 :1700000000.M1P1.host,S=10,W=11\n\
3 W99 G0011 :1700000001.M2P1.host\n\
4 :name with space\n";

    #[test]
    fn parse_keeps_unknown_fields() {
        let p = UidList::parse(SAMPLE).unwrap();
        assert_eq!(p.skipped, 0);
        let l = &p.list;
        assert_eq!(l.uid_validity, 1700000000);
        assert_eq!(l.next_uid, 5);
        assert_eq!(l.guid.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(l.extra_header, vec!["X7", "Zfoo"]);
        assert_eq!(l.entries.len(), 3);
        assert_eq!(l.entries[1].ext, vec!["W99", "G0011"]);
        assert_eq!(l.entries[1].vsize(), Some(99));
        assert_eq!(l.entries[2].base, "name with space");
        assert_eq!(l.serialize(), SAMPLE);
        assert_eq!(UidList::parse(&l.serialize()).unwrap().list, *l);
    }

    #[test]
    fn names_with_flags_match_by_base_and_round_trip() {
        let text = "3 V1 N4\n1 :a.host,S=3:2,FS\n2 W5 :b.host:2,\n3 :c.host\n";
        let l = UidList::parse(text).unwrap().list;
        let bases: Vec<&str> = l.entries.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(bases, ["a.host,S=3", "b.host", "c.host"]);
        assert_eq!(l.entries[0].info, ":2,FS");
        assert_eq!(l.serialize(), text);
        let mut l = UidList::new(7, "00".into());
        assert_eq!(l.add("d.host,S=9:2,Sab", vec!["W10".into()]), Some(1));
        assert_eq!(l.entries[0].base, "d.host,S=9");
        assert_eq!(l.serialize(), "3 V7 N2 G00\n1 W10 :d.host,S=9:2,Sab\n");
        // A name that is all info has no base: malformed, like an empty name.
        assert_eq!(UidList::parse("3 V1 N9\n5 ::2,S\n").unwrap().skipped, 1);
    }

    #[test]
    fn next_uid_never_below_last_line() {
        let p = UidList::parse("3 V1 N2\n7 :a\n").unwrap();
        assert_eq!(p.list.next_uid, 8);
    }

    #[test]
    fn bad_lines_skipped_bad_header_corrupt() {
        let p = UidList::parse("3 V1 N9\nxx :a\n2 :b\n2 :dup\n1 :back\n3 nocolon\n4 :\n5 :ok\n")
            .unwrap();
        assert_eq!(p.skipped, 5);
        assert_eq!(
            p.list.entries.iter().map(|e| e.uid).collect::<Vec<_>>(),
            vec![2, 5]
        );
        for bad in ["", "\n", "3 N5\n", "3 Vx N1\n", "9 V1 N1\n", "1 5\n"] {
            assert!(UidList::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version1_read() {
        let p = UidList::parse("1 1234 3\n1 a.host\n2 b.host\n").unwrap();
        assert_eq!(p.list.uid_validity, 1234);
        assert_eq!(p.list.entries[1].base, "b.host");
        assert!(p.list.serialize().starts_with("3 V1234 N3\n"));
    }

    #[test]
    fn add_assigns_ascending() {
        let mut l = UidList::new(5, "00".into());
        assert_eq!(l.add("a", vec![]), Some(1));
        assert_eq!(l.add("b", vec!["W3".into()]), Some(2));
        assert_eq!(l.serialize(), "3 V5 N3 G00\n1 :a\n2 W3 :b\n");
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "3",
            "3 V",
            "3 V1 N",
            "3 V1\n\n\n 1",
            "3 V1\n1",
            "3 V1\n1 ",
            "3 V1\n1 W",
            "\u{0}\u{1}",
            "1 1",
            "3 Ä",
            "3 V1 ÄÖ\n1 Ä :x",
        ] {
            let _ = UidList::parse(s);
        }
    }
}
