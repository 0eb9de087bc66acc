//! Framing: split the client's byte stream into complete commands (a line plus any literals
//! it announces), enforcing the line and literal size limits *before* buffering.
//!
//! RFC 3501 §4.3 (literals), §7.5 (continuation requests), RFC 7888 (LITERAL+ / LITERAL-),
//! RFC 3516 §4.3 (`~{n}` literal8).
//!
//! Owns: the per-connection input buffer and the command being assembled. It never parses the
//! command itself (that is `imap::parse`) and never touches a socket: the connection loop
//! `push`es what it read and drains `next_event` until `None`.
//!
//! Behaviour:
//! - A line ends at LF; a CR before it is optional (bare-LF clients are accepted). Emitted
//!   commands always use CRLF line ends, so `{n}\n` arrives at the parser as `{n}\r\n`.
//! - A line ending in `{n}` (synchronising), `{n+}` (RFC 7888 non-synchronising) or `~{n}` /
//!   `~{n+}` (RFC 3516 literal8) is followed by exactly `n` raw bytes and then more line.
//! - Limits are checked before bytes are copied into the command buffer:
//!   * a line longer than `max_line` (or a command whose lines outgrow `max_command`) is
//!     answered `<tag> BAD Command line too long` at once; the rest of that command is then
//!     discarded without being stored (including the bytes of any non-synchronising literal it
//!     announces);
//!   * a synchronising literal larger than `max_literal` (or one that would make the command
//!     larger than `max_command`) is answered `<tag> NO [TOOBIG] ...` instead of `+`; the
//!     client then does not send it (RFC 3501 §7.5);
//!   * a non-synchronising literal that is too large is already on its way: the framer answers
//!     `* BYE ...` and asks for the connection to be closed (RFC 7888 §4).
//! - Empty lines between commands are ignored.

use super::encode::is_astring_char;

/// Limits the framer enforces while reading.
#[derive(Debug, Clone, Copy)]
pub struct FramerLimits {
    /// Longest line (not counting literals), bytes.
    pub max_line: usize,
    /// Largest literal accepted (e.g. an APPEND'ed message), bytes.
    pub max_literal: u64,
    /// Largest whole command (all lines and literals together), bytes.
    pub max_command: u64,
}

impl FramerLimits {
    /// The framer limits that follow from the server-wide `Limits`: lines as configured,
    /// literals up to the largest message APPEND accepts, and a command of one message plus
    /// its line (with room for a few extra lines).
    pub fn from_limits(l: &crate::limits::Limits) -> Self {
        let max_literal = l.max_message_size.max(l.max_small_literal);
        FramerLimits {
            max_line: l.max_line,
            max_literal,
            max_command: max_literal.saturating_add(4 * l.max_line as u64),
        }
    }
}

/// What the framer has for the connection loop.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent {
    /// A complete command: its bytes from the tag to the final CRLF, literals inline exactly as
    /// sent (`{5}\r\nhello`), ready for `parse::parse_command`.
    Command(Vec<u8>),
    /// The client sent a synchronising literal `{n}` that fits the limits: the server must now
    /// send `+ <text>\r\n` before the client sends the literal.
    ContinuationNeeded,
    /// The command was refused while framing; write `response` (a complete tagged or untagged
    /// line, CRLF-terminated) to the client. If `close` the connection must be closed after
    /// writing (e.g. a too-large non-synchronising literal whose bytes are already on the way).
    Rejected { response: Vec<u8>, close: bool },
}

/// How many bytes of a discarded line we remember, to spot a literal announcement at its end
/// (`~{` + 20 digits + `+}` fits with room to spare).
const TAIL: usize = 32;

/// How far into a command we look for its tag when answering a rejected command.
const TAG_WINDOW: usize = 1024;

#[derive(Debug)]
enum State {
    /// Reading a line segment into `cmd` (it starts at `seg_start`).
    Line,
    /// Copying a literal's bytes into `cmd`.
    Literal { remaining: u64 },
    /// Discarding the rest of a rejected command's line; `tail` = its last bytes.
    SkipLine { tail: Vec<u8> },
    /// Discarding a non-synchronising literal of a rejected command.
    SkipLiteral { remaining: u64 },
    /// A `close: true` rejection was emitted: nothing more is framed.
    Closed,
}

/// Incremental framer. Feed it bytes with `push`, take events with `next_event` until `None`.
#[derive(Debug)]
pub struct Framer {
    limits: FramerLimits,
    /// Bytes pushed but not yet examined (`input[pos..]`).
    input: Vec<u8>,
    pos: usize,
    /// The command assembled so far (lines with CRLF ends, literals inline).
    cmd: Vec<u8>,
    /// Where the current line segment starts in `cmd`.
    seg_start: usize,
    state: State,
}

/// A literal announced at the end of a line.
#[derive(Debug, PartialEq, Eq)]
struct Announce {
    /// `None` if the number does not fit in a u64 (certainly too large).
    size: Option<u64>,
    sync: bool,
}

/// Does `line` (without its line end) end with `{n}`, `{n+}`, `~{n}` or `~{n+}`?
/// `truncated`: `line` is only the tail of a longer line (a discarded one).
fn literal_announcement(line: &[u8], truncated: bool) -> Option<Announce> {
    let rest = line.strip_suffix(b"}")?;
    let (rest, sync) = match rest.strip_suffix(b"+") {
        Some(r) => (r, false),
        None => (rest, true),
    };
    let digits_start = rest
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let digits = &rest[digits_start..];
    if digits.is_empty() {
        return None;
    }
    let size = if rest[..digits_start].ends_with(b"{") {
        digits.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add((d - b'0') as u64)
        })
    } else if truncated && digits_start == 0 {
        // Only digits left in a truncated tail: an absurdly long number.
        None
    } else {
        return None;
    };
    Some(Announce { size, sync })
}

/// The tag at the start of `cmd`, if it is a valid tag followed by SP (RFC 3501 §9:
/// `tag = 1*<any ASTRING-CHAR except "+">`).
fn tag_of(cmd: &[u8]) -> Option<&[u8]> {
    let sp = cmd.iter().position(|&b| b == b' ')?;
    let tag = &cmd[..sp];
    if !tag.is_empty() && tag.iter().all(|&b| is_astring_char(b) && b != b'+') {
        Some(tag)
    } else {
        None
    }
}

fn response(tag: Option<&[u8]>, text: &str) -> Vec<u8> {
    let mut r = Vec::with_capacity(text.len() + 16);
    r.extend_from_slice(tag.unwrap_or(b"*"));
    r.push(b' ');
    r.extend_from_slice(text.as_bytes());
    r.extend_from_slice(b"\r\n");
    r
}

fn push_tail(tail: &mut Vec<u8>, data: &[u8]) {
    if data.len() >= TAIL {
        tail.clear();
        tail.extend_from_slice(&data[data.len() - TAIL..]);
    } else {
        tail.extend_from_slice(data);
        if tail.len() > TAIL {
            let excess = tail.len() - TAIL;
            tail.drain(..excess);
        }
    }
}

impl Framer {
    pub fn new(limits: FramerLimits) -> Self {
        Framer {
            limits,
            input: Vec::new(),
            pos: 0,
            cmd: Vec::new(),
            seg_start: 0,
            state: State::Line,
        }
    }

    /// Append bytes read from the socket.
    pub fn push(&mut self, data: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if self.pos > 0 && self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        self.input.extend_from_slice(data);
    }

    /// The next event, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Option<FrameEvent> {
        loop {
            if self.pos >= self.input.len() || matches!(self.state, State::Closed) {
                // Everything examined: give the memory of consumed input back.
                self.input.clear();
                self.pos = 0;
                return None;
            }
            let step = match &mut self.state {
                State::Closed => return None,
                State::Line => self.step_line(),
                State::Literal { remaining } => {
                    let avail = &self.input[self.pos..];
                    let n = (*remaining).min(avail.len() as u64) as usize;
                    self.cmd.extend_from_slice(&avail[..n]);
                    self.pos += n;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.seg_start = self.cmd.len();
                        self.state = State::Line;
                    }
                    None
                }
                State::SkipLiteral { remaining } => {
                    let avail = self.input.len() - self.pos;
                    let n = (*remaining).min(avail as u64) as usize;
                    self.pos += n;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::SkipLine { tail: Vec::new() };
                    }
                    None
                }
                State::SkipLine { tail } => {
                    let avail = &self.input[self.pos..];
                    match avail.iter().position(|&b| b == b'\n') {
                        None => {
                            push_tail(tail, avail);
                            self.pos = self.input.len();
                            None
                        }
                        Some(i) => {
                            push_tail(tail, &avail[..i]);
                            self.pos += i + 1;
                            let mut t = std::mem::take(tail);
                            if t.last() == Some(&b'\r') {
                                t.pop();
                            }
                            self.after_skipped_line(&t)
                        }
                    }
                }
            };
            if let Some(ev) = step {
                return Some(ev);
            }
        }
    }

    /// A discarded line has ended: if it announced a non-synchronising literal, those bytes
    /// are coming and must be discarded too (RFC 7888); a synchronising one will not be sent
    /// since the client got a tagged response instead of `+`.
    fn after_skipped_line(&mut self, tail: &[u8]) -> Option<FrameEvent> {
        match literal_announcement(tail, tail.len() >= TAIL - 1) {
            Some(Announce { size, sync: false }) => match size {
                Some(n) if n <= self.limits.max_literal => {
                    self.state = if n == 0 {
                        State::SkipLine { tail: Vec::new() }
                    } else {
                        State::SkipLiteral { remaining: n }
                    };
                    None
                }
                _ => Some(self.close_for_literal(size)),
            },
            _ => {
                self.reset_command();
                None
            }
        }
    }

    fn reset_command(&mut self) {
        self.cmd.clear();
        if self.cmd.capacity() > 64 * 1024 {
            self.cmd.shrink_to(4096);
        }
        self.seg_start = 0;
        self.state = State::Line;
    }

    fn close_for_literal(&mut self, size: Option<u64>) -> FrameEvent {
        self.state = State::Closed;
        self.cmd = Vec::new();
        self.input = Vec::new();
        self.pos = 0;
        let size = size.map_or_else(|| "an enormous number of".to_string(), |n| n.to_string());
        let text = format!(
            "BYE [TOOBIG] Non-synchronizing literal of {} bytes exceeds the limit of {} bytes",
            size, self.limits.max_literal
        );
        FrameEvent::Rejected {
            response: response(None, &text),
            close: true,
        }
    }

    /// The most bytes the current line segment may hold (content without CRLF).
    fn line_limit(&self) -> (usize, bool) {
        let used_before = self.seg_start as u64;
        let by_command = self.limits.max_command.saturating_sub(used_before);
        let by_line = self.limits.max_line as u64;
        if by_command < by_line {
            (by_command as usize, true)
        } else {
            (self.limits.max_line, false)
        }
    }

    /// The tag of the command being assembled, where `more` continues `cmd`.
    fn current_tag(&self, more: &[u8]) -> Option<Vec<u8>> {
        let mut head: Vec<u8> = self.cmd[..self.cmd.len().min(TAG_WINDOW)].to_vec();
        if head.len() < TAG_WINDOW {
            let n = (TAG_WINDOW - head.len()).min(more.len());
            head.extend_from_slice(&more[..n]);
        }
        tag_of(&head).map(|t| t.to_vec())
    }

    fn step_line(&mut self) -> Option<FrameEvent> {
        let avail = &self.input[self.pos..];
        let seg_len = self.cmd.len() - self.seg_start;
        let (limit, by_command) = self.line_limit();
        let lf = avail.iter().position(|&b| b == b'\n');
        let chunk_len = lf.unwrap_or(avail.len());
        let chunk = &avail[..chunk_len];
        // Content length excluding a CR that may turn out to be the line's CR.
        let total = seg_len + chunk_len;
        let last_is_cr = if chunk_len > 0 {
            chunk[chunk_len - 1] == b'\r'
        } else {
            self.cmd.last() == Some(&b'\r') && seg_len > 0
        };
        let content = if last_is_cr { total - 1 } else { total };
        if content > limit {
            let tag = self.current_tag(avail);
            let text = if by_command {
                "BAD Command too long"
            } else {
                "BAD Command line too long"
            };
            let mut tail = Vec::new();
            push_tail(&mut tail, &self.cmd[self.seg_start..]);
            push_tail(&mut tail, chunk);
            let ev = FrameEvent::Rejected {
                response: response(tag.as_deref(), text),
                close: false,
            };
            self.cmd.clear();
            self.seg_start = 0;
            match lf {
                None => {
                    self.pos = self.input.len();
                    self.state = State::SkipLine { tail };
                }
                Some(i) => {
                    self.pos += i + 1;
                    if tail.last() == Some(&b'\r') {
                        tail.pop();
                    }
                    // A too-large literal announced at the end: the BYE wins.
                    if let Some(close) = self.after_skipped_line(&tail) {
                        return Some(close);
                    }
                }
            }
            return Some(ev);
        }
        self.cmd.extend_from_slice(chunk);
        let Some(i) = lf else {
            self.pos = self.input.len();
            return None;
        };
        self.pos += i + 1;
        if self.cmd.last() == Some(&b'\r') && self.cmd.len() > self.seg_start {
            self.cmd.pop();
        }
        let line_end = self.cmd.len();
        self.cmd.extend_from_slice(b"\r\n");
        if line_end == 0 {
            // An empty line between commands: ignore it.
            self.reset_command();
            return None;
        }
        let Some(ann) = literal_announcement(&self.cmd[self.seg_start..line_end], false) else {
            let cmd = std::mem::take(&mut self.cmd);
            self.reset_command();
            return Some(FrameEvent::Command(cmd));
        };
        let used = self.cmd.len() as u64;
        let fits = match ann.size {
            Some(n) => {
                n <= self.limits.max_literal && used.saturating_add(n) <= self.limits.max_command
            }
            None => false,
        };
        if !fits {
            if !ann.sync {
                return Some(self.close_for_literal(ann.size));
            }
            let tag = tag_of(&self.cmd[..self.cmd.len().min(TAG_WINDOW)]).map(|t| t.to_vec());
            let size = ann
                .size
                .map_or_else(|| "an enormous number of".to_string(), |n| n.to_string());
            let text = match ann.size {
                Some(n) if n <= self.limits.max_literal => format!(
                    "NO [TOOBIG] Command too large: literal of {} bytes would exceed the limit of {} bytes per command",
                    size, self.limits.max_command
                ),
                _ => format!("NO [TOOBIG] Literal of {} bytes exceeds the limit of {} bytes", size, self.limits.max_literal),
            };
            self.reset_command();
            return Some(FrameEvent::Rejected {
                response: response(tag.as_deref(), &text),
                close: false,
            });
        }
        let n = ann.size.unwrap_or(0);
        if n == 0 {
            self.seg_start = self.cmd.len();
        } else {
            self.state = State::Literal { remaining: n };
        }
        if ann.sync {
            Some(FrameEvent::ContinuationNeeded)
        } else {
            None
        }
    }

    /// Bytes buffered but not yet part of an event (for limits / diagnostics).
    pub fn buffered(&self) -> usize {
        let partial = match self.state {
            State::Line | State::Literal { .. } => self.cmd.len(),
            _ => 0,
        };
        partial + (self.input.len() - self.pos)
    }

    /// Take whatever is buffered (used after STARTTLS: must be empty, else the client pipelined).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let mut out = match self.state {
            State::Line | State::Literal { .. } => std::mem::take(&mut self.cmd),
            _ => Vec::new(),
        };
        out.extend_from_slice(&self.input[self.pos..]);
        self.input.clear();
        self.pos = 0;
        if !matches!(self.state, State::Closed) {
            self.reset_command();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FramerLimits {
        FramerLimits {
            max_line: 100,
            max_literal: 1000,
            max_command: 2000,
        }
    }

    /// Feed `input` in chunks of `chunk` bytes, collecting every event.
    fn run(l: FramerLimits, input: &[u8], chunk: usize) -> Vec<FrameEvent> {
        let mut f = Framer::new(l);
        let mut evs = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            f.push(c);
            while let Some(e) = f.next_event() {
                evs.push(e);
            }
        }
        evs
    }

    fn cmd(s: &[u8]) -> FrameEvent {
        FrameEvent::Command(s.to_vec())
    }

    fn rej(s: &str, close: bool) -> FrameEvent {
        FrameEvent::Rejected {
            response: s.as_bytes().to_vec(),
            close,
        }
    }

    #[test]
    fn simple_lines_any_chunking() {
        let input = b"a1 CAPABILITY\r\na2 NOOP\na3 LOGOUT\r\n";
        for chunk in [1, 2, 3, 7, 100] {
            assert_eq!(
                run(limits(), input, chunk),
                vec![
                    cmd(b"a1 CAPABILITY\r\n"),
                    cmd(b"a2 NOOP\r\n"),
                    cmd(b"a3 LOGOUT\r\n")
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn empty_lines_are_ignored() {
        assert_eq!(
            run(limits(), b"\r\n\na NOOP\r\n\r\n", 1),
            vec![cmd(b"a NOOP\r\n")]
        );
    }

    #[test]
    fn sync_literal_asks_for_continuation() {
        // RFC 3501 §8 transcript: C: A003 APPEND saved-messages (\Seen) {7}  S: + Ready
        let input = b"A003 APPEND saved (\\Seen) {7}\r\nhello\r\n\r\nA004 NOOP\r\n";
        for chunk in [1, 5, 64] {
            assert_eq!(
                run(limits(), input, chunk),
                vec![
                    FrameEvent::ContinuationNeeded,
                    cmd(b"A003 APPEND saved (\\Seen) {7}\r\nhello\r\n\r\n"),
                    cmd(b"A004 NOOP\r\n"),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn literal_bytes_are_not_scanned_for_line_ends() {
        let input = b"a LOGIN {3}\r\nu\nx {4+}\r\n{1}\n\r\n";
        assert_eq!(
            run(limits(), input, 1),
            vec![
                FrameEvent::ContinuationNeeded,
                cmd(b"a LOGIN {3}\r\nu\nx {4+}\r\n{1}\n\r\n")
            ]
        );
    }

    #[test]
    fn non_sync_and_literal8_and_bare_lf() {
        let input = b"a APPEND x {2+}\nhi\r\nb APPEND x ~{3}\r\n\x00\x01\x02\r\n";
        assert_eq!(
            run(limits(), input, 1),
            vec![
                cmd(b"a APPEND x {2+}\r\nhi\r\n"),
                FrameEvent::ContinuationNeeded,
                cmd(b"b APPEND x ~{3}\r\n\x00\x01\x02\r\n"),
            ]
        );
    }

    #[test]
    fn zero_length_literal() {
        assert_eq!(
            run(limits(), b"a LOGIN {0}\r\n {0+}\r\n\r\n", 1),
            vec![
                FrameEvent::ContinuationNeeded,
                cmd(b"a LOGIN {0}\r\n {0+}\r\n\r\n")
            ]
        );
    }

    #[test]
    fn line_too_long_tagged_and_skipped() {
        let mut input = b"A7 SEARCH ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200));
        input.extend_from_slice(b"\r\nA8 NOOP\r\n");
        for chunk in [1, 13, 1000] {
            let mut f = Framer::new(limits());
            let mut evs = Vec::new();
            for c in input.chunks(chunk) {
                f.push(c);
                while let Some(e) = f.next_event() {
                    evs.push(e);
                }
                // The over-long line is never stored.
                assert!(
                    f.buffered() <= 101 + chunk,
                    "buffered {} with chunk {chunk}",
                    f.buffered()
                );
            }
            assert_eq!(
                evs,
                vec![
                    rej("A7 BAD Command line too long\r\n", false),
                    cmd(b"A8 NOOP\r\n")
                ]
            );
        }
    }

    #[test]
    fn line_exactly_at_limit_is_accepted() {
        let mut line = b"a NOOP ".to_vec();
        line.resize(100, b'x');
        let mut input = line.clone();
        input.extend_from_slice(b"\r\n");
        for chunk in [1, 99, 100, 101, 102] {
            let mut want = line.clone();
            want.extend_from_slice(b"\r\n");
            assert_eq!(
                run(limits(), &input, chunk),
                vec![FrameEvent::Command(want)],
                "chunk {chunk}"
            );
        }
        input.insert(0, b'b');
        assert_eq!(
            run(limits(), &input, 1),
            vec![rej("ba BAD Command line too long\r\n", false)]
        );
    }

    #[test]
    fn line_too_long_without_readable_tag_is_untagged() {
        let input = vec![b'x'; 300];
        assert_eq!(
            run(limits(), &input, 7),
            vec![rej("* BAD Command line too long\r\n", false)]
        );
        let mut input = b"+bad ".to_vec();
        input.extend(vec![b'x'; 300]);
        assert_eq!(
            run(limits(), &input, 300),
            vec![rej("* BAD Command line too long\r\n", false)]
        );
    }

    #[test]
    fn too_long_line_announcing_non_sync_literal_discards_it() {
        let mut input = b"a1 APPEND ".to_vec();
        input.extend(vec![b'x'; 150]);
        input.extend_from_slice(b" {5+}\r\nA\nB\r\n more\r\na2 NOOP\r\n");
        for chunk in [1, 4, 1000] {
            assert_eq!(
                run(limits(), &input, chunk),
                vec![
                    rej("a1 BAD Command line too long\r\n", false),
                    cmd(b"a2 NOOP\r\n")
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn sync_literal_too_large_is_toobig() {
        let input = b"A1 APPEND INBOX {1001}\r\nA2 NOOP\r\n";
        for chunk in [1, 1000] {
            assert_eq!(
                run(limits(), input, chunk),
                vec![
                    rej(
                        "A1 NO [TOOBIG] Literal of 1001 bytes exceeds the limit of 1000 bytes\r\n",
                        false
                    ),
                    cmd(b"A2 NOOP\r\n"),
                ]
            );
        }
        // A number that does not even fit in 64 bits.
        let evs = run(
            limits(),
            b"A1 APPEND INBOX {99999999999999999999999}\r\n",
            3,
        );
        assert_eq!(
            evs,
            vec![rej("A1 NO [TOOBIG] Literal of an enormous number of bytes exceeds the limit of 1000 bytes\r\n", false)]
        );
    }

    #[test]
    fn command_total_too_large_is_toobig() {
        let l = FramerLimits {
            max_line: 100,
            max_literal: 1000,
            max_command: 1500,
        };
        let mut input = b"A1 LOGIN {900+}\r\n".to_vec();
        input.extend(vec![b'p'; 900]);
        input.extend_from_slice(b" {900}\r\n");
        let evs = run(l, &input, 50);
        assert_eq!(
            evs,
            vec![rej(
                "A1 NO [TOOBIG] Command too large: literal of 900 bytes would exceed the limit of 1500 bytes per command\r\n",
                false
            )]
        );
    }

    #[test]
    fn lines_after_literals_count_towards_the_command_limit() {
        let l = FramerLimits {
            max_line: 100,
            max_literal: 1000,
            max_command: 1050,
        };
        let mut input = b"A1 X {1000+}\r\n".to_vec();
        input.extend(vec![b'p'; 1000]);
        input.extend(vec![b' '; 60]);
        input.extend_from_slice(b"\r\nA2 NOOP\r\n");
        assert_eq!(
            run(l, &input, 64),
            vec![
                rej("A1 BAD Command too long\r\n", false),
                cmd(b"A2 NOOP\r\n")
            ]
        );
    }

    #[test]
    fn non_sync_literal_too_large_closes() {
        let mut f = Framer::new(limits());
        f.push(b"A1 APPEND INBOX {5000+}\r\nFrom: x\r\n");
        assert_eq!(
            f.next_event(),
            Some(rej("* BYE [TOOBIG] Non-synchronizing literal of 5000 bytes exceeds the limit of 1000 bytes\r\n", true))
        );
        assert_eq!(f.next_event(), None);
        f.push(b"A2 NOOP\r\n");
        assert_eq!(f.next_event(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn pipelined_commands_and_take_buffered() {
        let mut f = Framer::new(limits());
        f.push(b"a STARTTLS\r\nb NOOP\r\nc LOG");
        assert_eq!(f.next_event(), Some(cmd(b"a STARTTLS\r\n")));
        assert_eq!(f.buffered(), 13);
        assert_eq!(f.take_buffered(), b"b NOOP\r\nc LOG".to_vec());
        assert_eq!(f.buffered(), 0);
        assert_eq!(f.next_event(), None);
        // A partial command already moved into the command buffer is returned too.
        f.push(b"d LOGIN {3}\r\nab");
        assert_eq!(f.next_event(), Some(FrameEvent::ContinuationNeeded));
        assert_eq!(f.next_event(), None);
        assert_eq!(f.take_buffered(), b"d LOGIN {3}\r\nab".to_vec());
        f.push(b"e NOOP\r\n");
        assert_eq!(f.next_event(), Some(cmd(b"e NOOP\r\n")));
    }

    #[test]
    fn announcement_detection() {
        let a = |s: &[u8]| literal_announcement(s, false);
        assert_eq!(
            a(b"x {5}"),
            Some(Announce {
                size: Some(5),
                sync: true
            })
        );
        assert_eq!(
            a(b"x {5+}"),
            Some(Announce {
                size: Some(5),
                sync: false
            })
        );
        assert_eq!(
            a(b"x ~{5}"),
            Some(Announce {
                size: Some(5),
                sync: true
            })
        );
        assert_eq!(a(b"x {}"), None);
        assert_eq!(a(b"x {+}"), None);
        assert_eq!(a(b"x 5}"), None);
        assert_eq!(a(b"x {5a}"), None);
        assert_eq!(a(b"}"), None);
        assert_eq!(
            a(b"{18446744073709551616}"),
            Some(Announce {
                size: None,
                sync: true
            })
        );
        assert_eq!(a(b"000000000000000000000000000000}"), None);
        assert_eq!(
            literal_announcement(b"0000000000000000000000000000000+}", true),
            Some(Announce {
                size: None,
                sync: false
            })
        );
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut seed: u64 = 42;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let alphabet = b"a1 {}+~\r\n5x0 ";
        for _ in 0..3000 {
            let len = next() % 200;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[next() as usize % alphabet.len()])
                .collect();
            let chunk = 1 + next() as usize % 20;
            let l = FramerLimits {
                max_line: 1 + next() as usize % 40,
                max_literal: next() as u64 % 30,
                max_command: next() as u64 % 200,
            };
            let mut f = Framer::new(l);
            for c in input.chunks(chunk) {
                f.push(c);
                while let Some(e) = f.next_event() {
                    if let FrameEvent::Command(c) = e {
                        assert!(c.ends_with(b"\r\n"));
                        assert!(c.len() as u64 <= l.max_command + 2);
                    }
                }
                assert!(f.buffered() <= l.max_command as usize + 2 + l.max_line + 2 + chunk);
            }
        }
    }
}
