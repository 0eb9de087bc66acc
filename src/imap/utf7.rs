//! IMAP modified UTF-7 (RFC 3501 §5.1.3) for mailbox names.

/// Decode a modified UTF-7 mailbox name to UTF-8; `None` if it is not valid modified UTF-7.
pub fn decode(_s: &str) -> Option<String> {
    todo!("utf7")
}

/// Encode a UTF-8 mailbox name as modified UTF-7.
pub fn encode(_s: &str) -> String {
    todo!("utf7")
}
