//! Framing: split the client's byte stream into complete commands (a line plus any literals
//! it announces), enforcing the line and literal size limits *before* buffering.
//!
//! RFC 3501 §4.3 (literals), §7.5 (continuation requests), RFC 7888 (LITERAL+ / LITERAL-).

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

/// Incremental framer. Feed it bytes with `push`, take events with `next_event` until `None`.
#[derive(Debug)]
pub struct Framer {
    limits: FramerLimits,
}

impl Framer {
    pub fn new(limits: FramerLimits) -> Self {
        Framer { limits }
    }

    /// Append bytes read from the socket.
    pub fn push(&mut self, _data: &[u8]) {
        let _ = self.limits;
        todo!("framer")
    }

    /// The next event, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Option<FrameEvent> {
        todo!("framer")
    }

    /// Bytes buffered but not yet part of an event (for limits / diagnostics).
    pub fn buffered(&self) -> usize {
        todo!("framer")
    }

    /// Take whatever is buffered (used after STARTTLS: must be empty, else the client pipelined).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        todo!("framer")
    }
}
