//! The command grammar (RFC 3501 §9 ABNF, plus the extensions in `imap::mod`), as a pure
//! function over one framed command.

use super::types::*;

/// Why a command could not be parsed: the tag if one could be read (for a tagged `BAD`), and a
/// human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<String>,
    pub reason: String,
}

/// Parse one complete command as produced by `framing::Framer` (ends in CRLF; literals inline).
pub fn parse_command(_input: &[u8]) -> Result<TaggedCommand, ParseError> {
    todo!("parser")
}
