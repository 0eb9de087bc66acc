//! The sent date that SORT (DATE) compares (RFC 5256 §3), read from a Date field the way
//! Dovecot 2.3 reads it (`message_date_parse`), so both servers fall back to INTERNALDATE for
//! the same broken dates: `[weekday ","] day month [yy]yy hh:mm[:ss] [zone]`, tokens being
//! RFC 5322 atoms between whitespace and comments. A two-digit year is 1970–2069; a missing
//! or unknown zone is UTC; anything after the zone is ignored. `01 Jan 2001 00:01+0000`
//! (the zone glued to the minutes) or `10:00:t` do not parse.
//!
//! Pure: no I/O, no panics, linear in the value.

use super::rfc822::is_atext;

struct Tokens<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    /// Skip whitespace and (nested) comments.
    fn skip_lwsp(&mut self) {
        let mut depth = 0usize;
        while let Some(&b) = self.s.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'(' => depth += 1,
                b')' if depth > 0 => depth -= 1,
                b'\\' if depth > 0 => self.pos += 1,
                _ if depth > 0 => {}
                _ => return,
            }
            self.pos += 1;
        }
    }

    /// The next atom (then whitespace skipped): `Ok(None)` at the end, `Err` before a
    /// character that cannot start one.
    fn atom(&mut self) -> Result<Option<&'a [u8]>, ()> {
        if self.pos >= self.s.len() {
            return Ok(None);
        }
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|&b| is_atext(b)) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(());
        }
        let a = &self.s[start..self.pos];
        self.skip_lwsp();
        Ok(Some(a))
    }

    /// A required, non-empty atom.
    fn need(&mut self) -> Option<&'a [u8]> {
        self.atom().ok().flatten()
    }

    /// A time separator (`:` or `.`) next: skip it and the whitespace after it.
    fn time_sep(&mut self) -> bool {
        if matches!(self.s.get(self.pos), Some(b':' | b'.')) {
            self.pos += 1;
            self.skip_lwsp();
            return true;
        }
        false
    }
}

/// A number of at most four digits (no field of a date has more).
fn digits(a: &[u8]) -> Option<i64> {
    if a.is_empty() || a.len() > 4 || !a.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(a.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Seconds since the epoch (UTC) of a Date field value, if it parses as Dovecot's does.
pub fn parse(value: &[u8]) -> Option<i64> {
    let mut t = Tokens { s: value, pos: 0 };
    t.skip_lwsp();
    let mut tok = t.need()?;
    if tok.len() == 3 {
        // The weekday, which must be followed by a comma.
        if t.s.get(t.pos) != Some(&b',') {
            return None;
        }
        t.pos += 1;
        t.skip_lwsp();
        tok = t.need()?;
    }
    let day = digits(tok).filter(|_| tok.len() <= 2)?;
    let month = t.need().filter(|m| m.len() >= 3).and_then(|m| {
        MONTHS
            .iter()
            .position(|n| m[..3].eq_ignore_ascii_case(&n[..]))
    })?;
    let y = t.need().filter(|y| y.len() == 2 || y.len() == 4)?;
    let mut year = digits(y)?;
    if y.len() == 2 {
        year += if year < 70 { 2000 } else { 1900 };
    } else if year < 1900 {
        return None;
    }
    let hour = t.need().filter(|h| h.len() <= 2).and_then(digits)?;
    if !t.time_sep() {
        return None;
    }
    let two = |a: &[u8]| digits(a).filter(|_| a.len() == 2);
    let minute = t.atom().ok().flatten().and_then(two)?;
    let mut second = 0;
    if t.time_sep() {
        second = t.need().and_then(two)?;
    }
    let zone = match t.atom() {
        Err(()) => return None,
        Ok(None) => 0,
        Ok(Some(z)) => zone_minutes(z),
    };
    // Out-of-range fields roll over, as mktime() does.
    let days = crate::imap::types::days_from_civil(year, month as u32 + 1, 1) + day - 1;
    Some(days * 86400 + hour * 3600 + minute * 60 + second - zone * 60)
}

/// A zone's offset from UTC in minutes: `+hhmm` / `-hhmm`, RFC 822's names, military letters
/// (the correct way round, as Dovecot); anything else is UTC.
fn zone_minutes(z: &[u8]) -> i64 {
    if z.len() == 5 && matches!(z[0], b'+' | b'-') {
        let Some(n) = digits(&z[1..]) else {
            return 0;
        };
        let m = n / 100 * 60 + n % 100;
        return if z[0] == b'+' { m } else { -m };
    }
    if let [c] = z {
        return match c.to_ascii_uppercase() {
            c @ b'A'..=b'I' => i64::from(c - b'A' + 1) * 60,
            c @ b'K'..=b'M' => i64::from(c - b'A') * 60,
            c @ b'N'..=b'Y' => -i64::from(c - b'N' + 1) * 60,
            _ => 0,
        };
    }
    let named: [(&[u8], i64); 8] = [
        (b"EST", -5),
        (b"EDT", -4),
        (b"CST", -6),
        (b"CDT", -5),
        (b"MST", -7),
        (b"MDT", -6),
        (b"PST", -8),
        (b"PDT", -7),
    ];
    named
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(z))
        .map_or(0, |(_, h)| h * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5322_dates() {
        // 2020-03-02 09:00 UTC.
        assert_eq!(
            parse(b"Mon, 02 Mar 2020 07:00:00 -0200"),
            Some(1_583_139_600)
        );
        assert_eq!(parse(b"2 Mar 2020 09:00 +0000"), Some(1_583_139_600));
        assert_eq!(
            parse(b" Mon (x), 2 mar 2020 09:00:00 GMT (y)"),
            Some(1_583_139_600)
        );
        assert_eq!(parse(b"Mon, 02 Mar 2020 04:00:00 EST"), Some(1_583_139_600));
        assert_eq!(parse(b"Mon, 02 Mar 20 09:00:00"), Some(1_583_139_600));
        assert_eq!(
            parse(b"Mon, 02 Mar 2020 09.00.00 +0000 trailing"),
            Some(1_583_139_600)
        );
        assert_eq!(parse(b"1 Jan 70 00:00:00 +0000"), Some(0));
    }

    #[test]
    fn what_dovecot_does_not_parse() {
        for v in [
            &b"01 Jan 2001 00:01+0000"[..],
            b"Tue, 7 Apr 2026 10:00:t <x@y>",
            b"garbage",
            b"",
            b"Mon 02 Mar 2020 09:00:00",
            b"02 Foo 2020 09:00",
            b"02 Mar 202 09:00",
            b"02 Mar 1800 09:00",
            b"02 Mar 2020 09",
            b"02 Mar 2020 9:0",
            b"123 Mar 2020 09:00",
            // Found by fuzzing: a long run of digits overflowed.
            b"9999999999999999999999999999999\"g<",
        ] {
            assert_eq!(parse(v), None, "{}", String::from_utf8_lossy(v));
        }
    }
}
