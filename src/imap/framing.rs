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
//! - Spooling (when enabled with [`Framer::spool_literals_over`]): a literal of an APPEND
//!   larger than the threshold, or one the command has no room left for (MULTIAPPEND), is not
//!   copied into the command; those of one command add up to at most
//!   [`SPOOL_TOTAL_FACTOR`] times the largest literal. The framer emits
//!   [`FrameEvent::SpoolStart`], then the literal's bytes as they arrive in
//!   [`FrameEvent::SpoolData`] pieces (each no larger than what one `push` brought), and the
//!   command it finally emits carries an empty literal (`{0}`) in its place; the connection
//!   writes the pieces to a file and hands it to the session with the command. So the memory
//!   a connection needs for an APPEND does not grow with the message.

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// An APPEND's message literal of `size` bytes will be passed out in [`FrameEvent::SpoolData`]
    /// pieces instead of inside the command (see the module doc). A `ContinuationNeeded`
    /// follows when the literal is synchronising.
    /// `at`: where the `{0}` standing in for it starts in the command (MULTIAPPEND and
    /// CATENATE can have several).
    SpoolStart { size: u64, at: usize },
    /// The next bytes of the literal announced by the last `SpoolStart`.
    SpoolData(Vec<u8>),
    /// (Only with [`Framer::gate_append_literals`].) An APPEND announced a synchronising
    /// literal of `size` bytes; `command` is the command up to the literal's `{`. Before the
    /// next event the connection calls [`Framer::accept_literal`] (the literal is then read
    /// as usual) or [`Framer::refuse_literal_with`] (the client gets that answer instead of
    /// `+` and does not send it), e.g. for a message over the user's quota.
    AppendLiteral { size: u64, command: Vec<u8> },
}

/// How many bytes of a discarded line we remember, to spot a literal announcement at its end
/// (`~{` + 20 digits + `+}` fits with room to spare).
const TAIL: usize = 32;

/// The literals one command may spool add up to at most this many of the largest (a
/// MULTIAPPEND of big messages); each is a file until the command ends.
pub const SPOOL_TOTAL_FACTOR: u64 = 16;

/// How far into a command we look for its tag when answering a rejected command.
const TAG_WINDOW: usize = 1024;

#[derive(Debug)]
enum State {
    /// Reading a line segment into `cmd` (it starts at `seg_start`).
    Line,
    /// Copying a literal's bytes into `cmd`.
    Literal { remaining: u64 },
    /// Passing a spooled literal's bytes out as `SpoolData`.
    Spool { remaining: u64 },
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
    /// APPEND literals larger than this are spooled (`None`: never).
    spool_from: Option<u64>,
    /// A `SpoolStart` for a synchronising literal was emitted: `ContinuationNeeded` is next.
    continuation_due: bool,
    /// Ask before reading an APPEND's synchronising literal ([`FrameEvent::AppendLiteral`]).
    gate_appends: bool,
    /// The literal an `AppendLiteral` asked about, until the answer.
    gated: Option<(Announce, usize, bool)>,
    /// What accepting a gated literal produced, for the next `next_event`.
    after_gate: Option<FrameEvent>,
    /// Bytes of the current command's literals spooled so far.
    spooled: u64,
    /// The next line answers a `+ ` challenge (AUTHENTICATE), where an empty line is a valid
    /// (empty) response, not an empty command.
    response_due: bool,
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

/// Is `cmd` (a command's first line so far) an APPEND?
fn is_append(cmd: &[u8]) -> bool {
    let head = &cmd[..cmd.len().min(TAG_WINDOW)];
    tag_of(head).is_some_and(|tag| {
        head.get(tag.len() + 1..)
            .and_then(|rest| rest.get(..7))
            .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND "))
    })
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
            spool_from: None,
            continuation_due: false,
            gate_appends: false,
            gated: None,
            after_gate: None,
            spooled: 0,
            response_due: false,
        }
    }

    /// Emit [`FrameEvent::AppendLiteral`] before an APPEND's synchronising literal.
    pub fn gate_append_literals(mut self) -> Self {
        self.gate_appends = true;
        self
    }

    /// Go on with the literal the last `AppendLiteral` announced.
    pub fn accept_literal(&mut self) {
        if let Some((ann, line_end, spool)) = self.gated.take() {
            self.after_gate = self.receive_literal(ann, line_end, spool);
        }
    }

    /// Refuse the literal the last `AppendLiteral` announced: the command is dropped and
    /// `response` (a complete tagged line) is what the client gets instead of `+`.
    pub fn refuse_literal_with(&mut self, response: Vec<u8>) -> FrameEvent {
        self.gated = None;
        self.reset_command();
        FrameEvent::Rejected {
            response,
            close: false,
        }
    }

    /// Whether the next line is a response to the session's `+ ` challenge (set by the
    /// connection after each command): then an empty line is framed as a command, `"\r\n"`.
    pub fn expect_response(&mut self, due: bool) {
        self.response_due = due;
    }

    /// Spool APPEND literals larger than `threshold` bytes (see the module doc).
    pub fn spool_literals_over(mut self, threshold: u64) -> Self {
        self.spool_from = Some(threshold);
        self
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
        if self.gated.is_some() {
            // Waiting for accept_literal / refuse_literal_with.
            return None;
        }
        if let Some(ev) = self.after_gate.take() {
            return Some(ev);
        }
        loop {
            if std::mem::take(&mut self.continuation_due) {
                return Some(FrameEvent::ContinuationNeeded);
            }
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
                State::Spool { remaining } => {
                    let avail = &self.input[self.pos..];
                    let n = (*remaining).min(avail.len() as u64) as usize;
                    let data = avail[..n].to_vec();
                    self.pos += n;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.seg_start = self.cmd.len();
                        self.state = State::Line;
                    }
                    Some(FrameEvent::SpoolData(data))
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
        self.spooled = 0;
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

    /// Reads the current line segment up to its LF: rejects it when over the limit, else
    /// ends the command or starts the literal the line announces.
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
            return self.reject_long_line(lf, by_command);
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
        if line_end == 0 && !self.response_due {
            // An empty line between commands: no tag, no command (RFC 3501 §9 needs both).
            self.reset_command();
            return Some(FrameEvent::Rejected {
                response: b"* BAD Empty command line: expected a tag and a command.\r\n".to_vec(),
                close: false,
            });
        }
        let Some(ann) = literal_announcement(&self.cmd[self.seg_start..line_end], false) else {
            let cmd = std::mem::take(&mut self.cmd);
            self.reset_command();
            return Some(FrameEvent::Command(cmd));
        };
        self.start_literal(ann, line_end)
    }

    /// The line segment in hand (up to the LF at `lf` in the input, if it came) is over the
    /// limit: answer BAD and skip the rest of the line, and a non-synchronising literal it
    /// announces, without keeping them.
    fn reject_long_line(&mut self, lf: Option<usize>, by_command: bool) -> Option<FrameEvent> {
        let avail = &self.input[self.pos..];
        let chunk = &avail[..lf.unwrap_or(avail.len())];
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
        Some(ev)
    }

    /// The line (ending at `line_end` in the command, before its CRLF) announced a literal:
    /// refuse it when it would break the limits, else start receiving it (into the command,
    /// or into a file for a big APPEND).
    fn start_literal(&mut self, ann: Announce, line_end: usize) -> Option<FrameEvent> {
        let used = self.cmd.len() as u64;
        // A big literal, or one that would leave the command less than a line of room (the
        // messages of a MULTIAPPEND add up), goes to a file.
        let room = (self.limits.max_command).saturating_sub(self.limits.max_line as u64);
        let spool = ann.size.is_some_and(|n| {
            self.spool_from
                .is_some_and(|t| n > t || (n > 0 && used.saturating_add(n) > room))
        }) && is_append(&self.cmd);
        let fits = match ann.size {
            // A spooled literal does not grow the command, but the command's files together
            // are bounded.
            Some(n) if spool => {
                n <= self.limits.max_literal
                    && self.spooled.saturating_add(n)
                        <= self.limits.max_literal.saturating_mul(SPOOL_TOTAL_FACTOR)
            }
            Some(n) => {
                n <= self.limits.max_literal && used.saturating_add(n) <= self.limits.max_command
            }
            None => false,
        };
        if !fits {
            if !ann.sync {
                return Some(self.close_for_literal(ann.size));
            }
            let per_command = if spool {
                self.limits.max_literal.saturating_mul(SPOOL_TOTAL_FACTOR)
            } else {
                self.limits.max_command
            };
            return Some(self.refuse_literal(ann.size, per_command));
        }
        if self.gate_appends && ann.sync && is_append(&self.cmd) {
            let brace = self.cmd[..line_end]
                .iter()
                .rposition(|&b| b == b'{')
                .unwrap_or(line_end);
            let start = if brace > 0 && self.cmd.get(brace - 1) == Some(&b'~') {
                brace - 1
            } else {
                brace
            };
            let command = self.cmd[..start].to_vec();
            self.gated = Some((ann, line_end, spool));
            return Some(FrameEvent::AppendLiteral {
                size: self.gated.as_ref().and_then(|g| g.0.size).unwrap_or(0),
                command,
            });
        }
        self.receive_literal(ann, line_end, spool)
    }

    /// Start receiving a literal that fits the limits: into the command, or into a file
    /// (`spool`) for a big APPEND.
    fn receive_literal(
        &mut self,
        ann: Announce,
        line_end: usize,
        spool: bool,
    ) -> Option<FrameEvent> {
        let n = ann.size.unwrap_or(0);
        if spool {
            // Only `{0}` stays in the command (keeping a `~` before it): the bytes go out.
            let at = self.cmd[..line_end]
                .iter()
                .rposition(|&b| b == b'{')
                .unwrap_or(line_end);
            self.cmd.truncate(at + 1);
            self.cmd.extend_from_slice(b"0}\r\n");
            self.seg_start = self.cmd.len();
            self.spooled += n;
            self.state = State::Spool { remaining: n };
            self.continuation_due = ann.sync;
            return Some(FrameEvent::SpoolStart { size: n, at });
        }
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

    /// A synchronising literal of `size` bytes that breaks the limits: the command is dropped
    /// with `NO [TOOBIG]` instead of `+`, so the client does not send the bytes.
    /// `per_command`: the limit of the command's literals together that applies to it.
    fn refuse_literal(&mut self, size: Option<u64>, per_command: u64) -> FrameEvent {
        let tag = tag_of(&self.cmd[..self.cmd.len().min(TAG_WINDOW)]).map(|t| t.to_vec());
        let shown = size.map_or_else(|| "an enormous number of".to_string(), |n| n.to_string());
        let text = match size {
            Some(n) if n <= self.limits.max_literal => format!(
                "NO [TOOBIG] Command too large: literal of {} bytes would exceed the limit of {} bytes per command",
                shown, per_command
            ),
            _ => format!("NO [TOOBIG] Literal of {} bytes exceeds the limit of {} bytes", shown, self.limits.max_literal),
        };
        self.reset_command();
        FrameEvent::Rejected {
            response: response(tag.as_deref(), &text),
            close: false,
        }
    }

    /// Bytes buffered but not yet part of an event (for limits / diagnostics).
    pub fn buffered(&self) -> usize {
        let partial = match self.state {
            State::Line | State::Literal { .. } | State::Spool { .. } => self.cmd.len(),
            _ => 0,
        };
        partial + (self.input.len() - self.pos)
    }

    /// Give back the memory of the input buffer and the command buffer when they hold
    /// nothing (a connection waiting for its next command keeps no buffers).
    pub fn shrink(&mut self) {
        if self.pos >= self.input.len() {
            self.input = Vec::new();
            self.pos = 0;
        }
        if self.cmd.is_empty() {
            self.cmd = Vec::new();
        }
    }

    /// Take whatever is buffered (used after STARTTLS: must be empty, else the client pipelined).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let mut out = match self.state {
            State::Line | State::Literal { .. } | State::Spool { .. } => {
                std::mem::take(&mut self.cmd)
            }
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
mod tests;
