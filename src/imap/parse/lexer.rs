//! The cursor and the small productions shared by every command: SP, atoms, numbers,
//! strings (quoted / literal), astring / nstring, sequence sets, dates and flags.
//!
//! Every function returns a human-readable reason on failure (`PResult`); the caller
//! (`parse_command`) attaches the tag. Nothing here can panic on any input: all access goes
//! through `peek`/`get`, and numbers use checked arithmetic.

use crate::imap::encode::{is_astring_char, is_atom_char};
use crate::imap::types::*;

pub(crate) type PResult<T> = Result<T, String>;

/// RFC 3501 §9 `list-char = ATOM-CHAR / list-wildcards / resp-specials`.
pub(crate) fn is_list_char(b: u8) -> bool {
    is_atom_char(b) || matches!(b, b'%' | b'*' | b']')
}

/// Render client bytes for an error message: printable ASCII, at most 40 characters, never a
/// CR or LF (the reason ends up inside a response line).
pub(crate) fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, &b) in bytes.iter().enumerate() {
        if i >= 40 {
            s.push_str("...");
            break;
        }
        if (0x20..0x7f).contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02X}"));
        }
    }
    s
}

pub(crate) struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Cursor { input, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    pub(crate) fn peek_at(&self, off: usize) -> Option<u8> {
        self.input.get(self.pos.checked_add(off)?).copied()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or(&[])
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.input.len());
    }

    /// At the end of the command: nothing, LF, or CRLF left.
    pub(crate) fn at_end(&self) -> bool {
        matches!(self.rest(), b"" | b"\n" | b"\r\n")
    }

    /// What is at the cursor, for error messages.
    pub(crate) fn found(&self) -> String {
        if self.at_end() {
            return "end of line".to_string();
        }
        let rest = self.rest();
        let line = &rest[..rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(rest.len())];
        if line.len() > 20 {
            format!("\"{}...\"", show(&line[..20]))
        } else if line.is_empty() {
            // A CR or LF that is not the end of the command.
            format!("\"{}\"", show(&rest[..1]))
        } else {
            format!("\"{}\"", show(line))
        }
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, b: u8, what: &str) -> PResult<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("Expected {what}, found {}", self.found()))
        }
    }

    /// `SP`; `ctx` completes "Expected SP ...", e.g. "after tag".
    pub(crate) fn sp(&mut self, ctx: &str) -> PResult<()> {
        if self.eat(b' ') {
            Ok(())
        } else if self.at_end() {
            Err(format!("Expected SP {ctx}, found end of line"))
        } else {
            Err(format!("Expected SP {ctx}, found {}", self.found()))
        }
    }

    /// The end of the command (optional CR, LF, end of input).
    pub(crate) fn end(&mut self, after: &str) -> PResult<()> {
        if self.at_end() {
            self.pos = self.input.len();
            Ok(())
        } else {
            Err(format!(
                "Unexpected characters after {after}: {}",
                self.found()
            ))
        }
    }

    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.rest();
        let n = rest.iter().position(|&b| !f(b)).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    /// A keyword-like token: 1*ATOM-CHAR, returned as sent (compare case-insensitively).
    pub(crate) fn atom(&mut self, what: &str) -> PResult<&'a [u8]> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            Err(format!("Expected {what}, found {}", self.found()))
        } else {
            Ok(a)
        }
    }

    /// Is the next token (up to a non-atom char) exactly `word`, case-insensitively? Consumes
    /// it if so.
    pub(crate) fn eat_word(&mut self, word: &str) -> bool {
        let save = self.pos;
        let a = self.take_while(is_atom_char);
        if a.eq_ignore_ascii_case(word.as_bytes()) {
            true
        } else {
            self.pos = save;
            false
        }
    }

    fn digits(&mut self, what: &str) -> PResult<&'a [u8]> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() {
            Err(format!(
                "Expected {what} (a number), found {}",
                self.found()
            ))
        } else {
            Ok(d)
        }
    }

    /// `number` (RFC 3501 §9: unsigned 32-bit).
    pub(crate) fn number(&mut self, what: &str) -> PResult<u32> {
        let d = self.digits(what)?;
        d.iter()
            .try_fold(0u32, |acc, &c| {
                acc.checked_mul(10)?.checked_add((c - b'0') as u32)
            })
            .ok_or_else(|| {
                format!(
                    "Invalid {what}: {} is too large (at most 4294967295)",
                    show(d)
                )
            })
    }

    /// `nz-number`.
    pub(crate) fn nz_number(&mut self, what: &str) -> PResult<u32> {
        let n = self.number(what)?;
        if n == 0 {
            Err(format!("Invalid {what}: must not be 0"))
        } else {
            Ok(n)
        }
    }

    /// RFC 7162 `mod-sequence-valzer`: 0 ..= 2^63-1.
    pub(crate) fn mod_seq(&mut self, what: &str) -> PResult<u64> {
        let d = self.digits(what)?;
        d.iter()
            .try_fold(0u64, |acc, &c| {
                acc.checked_mul(10)?.checked_add((c - b'0') as u64)
            })
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| format!("Invalid {what}: {} is too large (at most 2^63-1)", show(d)))
    }

    /// `quoted` (RFC 3501 §9; 8-bit allowed as RFC 9051 allows UTF-8 in quoted strings).
    fn quoted(&mut self) -> PResult<Vec<u8>> {
        // Caller checked the opening DQUOTE.
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => {
                    return Err("Unterminated quoted string".to_string())
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    match self.peek_at(1) {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        Some(c) if c != b'\r' && c != b'\n' => {
                            return Err(format!(
                            "Invalid escape \\{} in quoted string (only \\\\ and \\\" are allowed)",
                            show(&[c])
                        ))
                        }
                        _ => return Err("Unterminated quoted string".to_string()),
                    }
                    self.pos += 2;
                }
                Some(0) => return Err("NUL is not allowed in a quoted string".to_string()),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `literal` / RFC 7888 `{n+}` / (if `allow8`) RFC 3516 `literal8` `~{n}`: the raw bytes.
    /// `allow_nul`: NUL is allowed (literal8, and APPEND messages).
    pub(crate) fn literal(&mut self, allow8: bool, allow_nul: bool) -> PResult<&'a [u8]> {
        let is8 = self.peek() == Some(b'~');
        if is8 {
            if !allow8 {
                return Err("literal8 (~{n}) is only allowed for APPEND".to_string());
            }
            self.pos += 1;
        }
        self.expect(b'{', "'{' starting a literal")?;
        let n = self.number("literal size")?;
        self.eat(b'+');
        self.expect(b'}', "'}' closing the literal size")?;
        self.eat(b'\r');
        if !self.eat(b'\n') {
            return Err("Expected CRLF after literal size".to_string());
        }
        let start = self.pos;
        let end = start
            .checked_add(n as usize)
            .filter(|&e| e <= self.input.len());
        let Some(end) = end else {
            return Err(format!(
                "Literal truncated: {n} bytes announced, {} present",
                self.input.len() - start
            ));
        };
        let data = &self.input[start..end];
        if !allow_nul && !is8 && data.contains(&0) {
            return Err("NUL is not allowed in a literal".to_string());
        }
        self.pos = end;
        Ok(data)
    }

    /// `string = quoted / literal`.
    pub(crate) fn string(&mut self, what: &str) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(false, false).map(|d| d.to_vec()),
            _ => Err(format!(
                "Expected {what} (a quoted string or literal), found {}",
                self.found()
            )),
        }
    }

    /// `astring = 1*ASTRING-CHAR / string`.
    pub(crate) fn astring(&mut self, what: &str) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(what),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    Err(format!("Expected {what}, found {}", self.found()))
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    /// `astring` that must be UTF-8 text.
    pub(crate) fn astring_utf8(&mut self, what: &str) -> PResult<String> {
        let b = self.astring(what)?;
        String::from_utf8(b).map_err(|_| format!("Invalid {what}: not valid UTF-8"))
    }

    /// `mailbox = "INBOX" / astring`: passed on as sent (INBOX folding is the session's job).
    pub(crate) fn mailbox(&mut self) -> PResult<String> {
        let name = self.astring_utf8("mailbox name")?;
        // RFC 9051 §5.1 (and RFC 6855 §3): a mailbox name never holds control characters
        // (U+0000-U+001F, U+007F-U+009F) nor the line / paragraph separators U+2028 / U+2029.
        // Checked here, before a UTF-8 name is turned into modified UTF-7 for the store, where
        // `\t` would become the innocuous-looking `&AAk-`.
        if let Some(bad) = name
            .chars()
            .find(|&ch| ch.is_control() || ch == '\u{2028}' || ch == '\u{2029}')
        {
            return Err(format!(
                "Invalid mailbox name: U+{:04X} is not allowed in mailbox names (RFC 9051 section 5.1)",
                u32::from(bad)
            ));
        }
        Ok(name)
    }

    /// `list-mailbox = 1*list-char / string` (LIST / LSUB patterns: may hold `%`, `*`, `]`).
    pub(crate) fn list_mailbox(&mut self) -> PResult<String> {
        let b = match self.peek() {
            Some(b'"' | b'{') => self.string("mailbox pattern")?,
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    return Err(format!("Expected mailbox pattern, found {}", self.found()));
                }
                a.to_vec()
            }
        };
        String::from_utf8(b).map_err(|_| "Invalid mailbox pattern: not valid UTF-8".to_string())
    }

    /// `nstring = string / NIL` (NIL case-insensitive).
    pub(crate) fn nstring(&mut self, what: &str) -> PResult<Option<Vec<u8>>> {
        if self.eat_word("NIL") {
            Ok(None)
        } else {
            self.string(what).map(Some)
        }
    }

    fn seq_number(&mut self) -> PResult<SeqNum> {
        if self.eat(b'*') {
            return Ok(SeqNum::Star);
        }
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() {
            return Err(format!(
                "Invalid sequence set: expected a number or '*', found {}",
                self.found()
            ));
        }
        let n = d
            .iter()
            .try_fold(0u32, |acc, &c| {
                acc.checked_mul(10)?.checked_add((c - b'0') as u32)
            })
            .ok_or_else(|| {
                format!(
                    "Invalid sequence set: {} is too large (at most 4294967295)",
                    show(d)
                )
            })?;
        if n == 0 {
            return Err("Invalid sequence set: 0 is not a valid message number".to_string());
        }
        Ok(SeqNum::Value(n))
    }

    /// `sequence-set` (RFC 3501 §9) or RFC 5182 `$`.
    pub(crate) fn sequence_set(&mut self) -> PResult<SequenceSet> {
        if self.eat(b'$') {
            if matches!(self.peek(), Some(b',' | b':')) {
                return Err(
                    "Invalid sequence set: '$' cannot be combined with other numbers".to_string(),
                );
            }
            self.check_set_end()?;
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let start = self.seq_number()?;
            let end = if self.eat(b':') {
                self.seq_number()?
            } else {
                start
            };
            ranges.push(SeqRange { start, end });
            if !self.eat(b',') {
                break;
            }
        }
        self.check_set_end()?;
        Ok(SequenceSet::Ranges(ranges))
    }

    fn check_set_end(&self) -> PResult<()> {
        match self.peek() {
            Some(c) if is_atom_char(c) || c == b'*' || c == b'$' => Err(format!(
                "Invalid sequence set: unexpected character '{}'",
                show(&[c])
            )),
            _ => Ok(()),
        }
    }

    /// `date = date-text / DQUOTE date-text DQUOTE` (RFC 3501 §9), e.g. `1-Feb-1994`.
    pub(crate) fn date(&mut self) -> PResult<Date> {
        let quoted = self.eat(b'"');
        let d = self.date_text(false)?;
        if quoted {
            self.expect(b'"', "closing '\"' after date")?;
        }
        Ok(d)
    }

    /// `date-day "-" date-month "-" date-year`; with `fixed`, RFC 3501 `date-day-fixed`
    /// (`SP DIGIT` / `2DIGIT`; a single digit is accepted too).
    fn date_text(&mut self, fixed: bool) -> PResult<Date> {
        let bad = |c: &Self| {
            format!(
                "Invalid date: expected dd-Mon-yyyy (e.g. 1-Feb-1994), found {}",
                c.found()
            )
        };
        if fixed {
            self.eat(b' ');
        }
        let day = self.take_while(|b| b.is_ascii_digit());
        if day.is_empty() || day.len() > 2 {
            return Err(bad(self));
        }
        let day = day.iter().fold(0u8, |a, &c| a * 10 + (c - b'0'));
        if !self.eat(b'-') {
            return Err(bad(self));
        }
        let mon = self.take_while(|b| b.is_ascii_alphabetic());
        const MONTHS: [&str; 12] = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        let Some(month) = MONTHS
            .iter()
            .position(|m| m.as_bytes().eq_ignore_ascii_case(mon))
        else {
            return Err(format!("Invalid date: unknown month {}", show(mon)));
        };
        let month = month as u8 + 1;
        if !self.eat(b'-') {
            return Err(bad(self));
        }
        let year = self.take_while(|b| b.is_ascii_digit());
        if year.len() != 4 {
            return Err(format!(
                "Invalid date: the year must have 4 digits, found {}",
                show(year)
            ));
        }
        let year = year.iter().fold(0u16, |a, &c| a * 10 + (c - b'0') as u16);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let max_day = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > max_day {
            return Err(format!(
                "Invalid date: day {day} does not exist in {}",
                MONTHS[month as usize - 1]
            ));
        }
        Ok(Date { year, month, day })
    }

    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE`
    /// (RFC 3501 §9), e.g. `" 7-Jul-1996 02:44:25 -0700"`.
    pub(crate) fn date_time(&mut self) -> PResult<DateTime> {
        self.expect(b'"', "'\"' starting the date-time")?;
        let date = self.date_text(true)?;
        let bad = |c: &Self| {
            format!(
                "Invalid date-time: expected \"dd-Mon-yyyy hh:mm:ss +zzzz\", found {}",
                c.found()
            )
        };
        if !self.eat(b' ') {
            return Err(bad(self));
        }
        let two = |c: &mut Self, max: u8, what: &str| -> PResult<u8> {
            let d = c.take_while(|b| b.is_ascii_digit());
            if d.len() != 2 {
                return Err(bad(c));
            }
            let v = (d[0] - b'0') * 10 + (d[1] - b'0');
            if v > max {
                return Err(format!("Invalid date-time: {what} {v} is out of range"));
            }
            Ok(v)
        };
        let hour = two(self, 23, "hour")?;
        if !self.eat(b':') {
            return Err(bad(self));
        }
        let minute = two(self, 59, "minute")?;
        if !self.eat(b':') {
            return Err(bad(self));
        }
        let second = two(self, 60, "second")?;
        if !self.eat(b' ') {
            return Err(bad(self));
        }
        let sign: i16 = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return Err(format!(
                "Invalid date-time: zone must start with + or -, found {}",
                self.found()
            ));
        };
        let z = self.take_while(|b| b.is_ascii_digit());
        if z.len() != 4 {
            return Err(format!(
                "Invalid date-time: zone must be 4 digits, found {}",
                show(z)
            ));
        }
        let zh = ((z[0] - b'0') * 10 + (z[1] - b'0')) as i16;
        let zm = ((z[2] - b'0') * 10 + (z[3] - b'0')) as i16;
        if zm > 59 {
            return Err(format!("Invalid date-time: zone minutes {zm} out of range"));
        }
        self.expect(b'"', "closing '\"' after the date-time")?;
        Ok(DateTime {
            date,
            hour,
            minute,
            second,
            zone_minutes: sign * (zh * 60 + zm),
        })
    }

    /// `flag` (RFC 3501 §9): the five system flags (case-insensitive), `\Recent` (rejected
    /// later by the session where it may not be stored), or a keyword atom (case kept).
    pub(crate) fn flag(&mut self) -> PResult<Flag> {
        if self.eat(b'\\') {
            if self.eat(b'*') {
                return Err("\\* is not a flag (it only appears in PERMANENTFLAGS)".to_string());
            }
            let name = self.atom("flag name after '\\'")?;
            let flag = match name.to_ascii_uppercase().as_slice() {
                b"SEEN" => Flag::Seen,
                b"ANSWERED" => Flag::Answered,
                b"FLAGGED" => Flag::Flagged,
                b"DELETED" => Flag::Deleted,
                b"DRAFT" => Flag::Draft,
                b"RECENT" => Flag::Recent,
                _ => return Err(format!("Unknown system flag \\{}", show(name))),
            };
            return Ok(flag);
        }
        let a = self.atom("flag")?;
        // An atom is ASCII, so this cannot fail.
        Ok(Flag::Keyword(String::from_utf8_lossy(a).into_owned()))
    }

    /// `flag-list = "(" [flag *(SP flag)] ")"`.
    pub(crate) fn flag_list(&mut self) -> PResult<Vec<Flag>> {
        self.expect(b'(', "'(' starting a flag list")?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp("between flags")?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(Cursor::new(b"4294967295").number("n"), Ok(u32::MAX));
        assert!(Cursor::new(b"4294967296")
            .number("n")
            .unwrap_err()
            .contains("too large"));
        assert!(Cursor::new(b"99999999999999999999999").number("n").is_err());
        assert!(Cursor::new(b"0").nz_number("n").is_err());
        assert_eq!(
            Cursor::new(b"9223372036854775807").mod_seq("m"),
            Ok(i64::MAX as u64)
        );
        assert!(Cursor::new(b"9223372036854775808").mod_seq("m").is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(
            Cursor::new(br#""a\"b\\c""#).astring("x"),
            Ok(b"a\"b\\c".to_vec())
        );
        assert!(Cursor::new(br#""a\nb""#)
            .astring("x")
            .unwrap_err()
            .contains("Invalid escape"));
        assert!(Cursor::new(b"\"abc")
            .astring("x")
            .unwrap_err()
            .contains("Unterminated"));
        assert_eq!(Cursor::new(b"{3}\r\na b").astring("x"), Ok(b"a b".to_vec()));
        assert_eq!(Cursor::new(b"{3+}\na b").astring("x"), Ok(b"a b".to_vec()));
        assert!(Cursor::new(b"{5}\r\nab")
            .astring("x")
            .unwrap_err()
            .contains("truncated"));
        assert!(Cursor::new(b"{2}\r\na\0")
            .astring("x")
            .unwrap_err()
            .contains("NUL"));
        assert_eq!(
            Cursor::new(b"foo]bar baz").astring("x"),
            Ok(b"foo]bar".to_vec())
        );
        assert_eq!(Cursor::new(b"nil").nstring("x"), Ok(None));
        assert_eq!(Cursor::new(b"%a*]").list_mailbox(), Ok("%a*]".to_string()));
    }

    #[test]
    fn sequence_sets() {
        let v = SeqNum::Value;
        assert_eq!(
            Cursor::new(b"1:*,5,7:3").sequence_set(),
            Ok(SequenceSet::Ranges(vec![
                SeqRange {
                    start: v(1),
                    end: SeqNum::Star
                },
                SeqRange {
                    start: v(5),
                    end: v(5)
                },
                SeqRange {
                    start: v(7),
                    end: v(3)
                },
            ]))
        );
        assert_eq!(Cursor::new(b"$").sequence_set(), Ok(SequenceSet::Saved));
        assert_eq!(
            Cursor::new(b"0:4").sequence_set(),
            Err("Invalid sequence set: 0 is not a valid message number".to_string())
        );
        assert!(Cursor::new(b"1,").sequence_set().is_err());
        assert!(Cursor::new(b"1:").sequence_set().is_err());
        assert!(Cursor::new(b"1x").sequence_set().is_err());
        assert!(Cursor::new(b"$,1").sequence_set().is_err());
        assert!(Cursor::new(b"4294967296")
            .sequence_set()
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn dates() {
        assert_eq!(
            Cursor::new(b"1-Feb-1994").date(),
            Ok(Date {
                year: 1994,
                month: 2,
                day: 1
            })
        );
        assert_eq!(
            Cursor::new(b"\"29-feb-2024\"").date(),
            Ok(Date {
                year: 2024,
                month: 2,
                day: 29
            })
        );
        assert!(Cursor::new(b"29-Feb-2023")
            .date()
            .unwrap_err()
            .contains("does not exist"));
        assert!(Cursor::new(b"1-Foo-2023")
            .date()
            .unwrap_err()
            .contains("unknown month"));
        assert!(Cursor::new(b"1-Feb-94").date().is_err());
        assert!(Cursor::new(b"123-Feb-1994").date().is_err());
        let dt = Cursor::new(b"\" 7-Jul-1996 02:44:25 -0700\"")
            .date_time()
            .unwrap();
        assert_eq!(
            dt.date,
            Date {
                year: 1996,
                month: 7,
                day: 7
            }
        );
        assert_eq!(
            (dt.hour, dt.minute, dt.second, dt.zone_minutes),
            (2, 44, 25, -420)
        );
        assert_eq!(dt.unix_seconds(), 836732665);
        assert!(Cursor::new(b"\"17-Jul-1996 24:00:00 +0000\"")
            .date_time()
            .is_err());
        assert!(Cursor::new(b"\"17-Jul-1996 02:44:25 0700\"")
            .date_time()
            .is_err());
        assert!(Cursor::new(b"\"17-Jul-1996 02:44:25 +07\"")
            .date_time()
            .is_err());
        assert!(Cursor::new(b"17-Jul-1996 02:44:25 +0700")
            .date_time()
            .is_err());
    }

    #[test]
    fn flags() {
        assert_eq!(
            Cursor::new(b"(\\seen \\ANSWERED $Forwarded NonJunk \\Recent)").flag_list(),
            Ok(vec![
                Flag::Seen,
                Flag::Answered,
                Flag::Keyword("$Forwarded".into()),
                Flag::Keyword("NonJunk".into()),
                Flag::Recent
            ])
        );
        assert_eq!(Cursor::new(b"()").flag_list(), Ok(vec![]));
        assert_eq!(
            Cursor::new(b"(\\Junk)").flag_list(),
            Err("Unknown system flag \\Junk".to_string())
        );
        assert!(Cursor::new(b"(\\*)").flag_list().is_err());
        assert!(Cursor::new(b"(\\Seen").flag_list().is_err());
    }

    #[test]
    fn show_is_safe() {
        assert_eq!(show(b"a\r\nb"), "a\\x0D\\x0Ab");
        assert!(show(&[b'x'; 100]).ends_with("..."));
    }
}
