//! `APPEND` (RFC 3501 §6.3.11) with MULTIAPPEND (RFC 3502: several messages in one command),
//! literal8 (RFC 3516 §4.4), UTF8 (RFC 6855 §4) and CATENATE (RFC 4469: a message made of
//! literals and IMAP URLs).
//!
//! ```text
//! append         = "APPEND" SP mailbox 1*append-message
//! append-message = [SP flag-list] [SP date-time] SP append-data
//! append-data    = literal / literal8 / "UTF8" SP "(" literal8 ")"
//!                / "CATENATE" SP "(" cat-part *(SP cat-part) ")"
//! cat-part       = "TEXT" SP (literal / literal8) / "URL" SP astring
//! ```

use super::lexer::{Cursor, PResult};
use crate::imap::types::{AppendMessage, AppendPart, Command};

/// Most messages in one APPEND: each is a file written before any is placed.
pub const MAX_APPEND_MESSAGES: usize = 1000;

/// Most parts of one CATENATE.
pub const MAX_CATENATE_PARTS: usize = 100;

pub(super) fn append(c: &mut Cursor) -> PResult<Command> {
    c.sp("before the mailbox name")?;
    let mailbox = c.mailbox()?;
    let mut messages = Vec::new();
    while !c.at_end() {
        if messages.len() >= MAX_APPEND_MESSAGES {
            return Err(format!(
                "Too many messages in one APPEND (at most {MAX_APPEND_MESSAGES})"
            ));
        }
        let what = if messages.is_empty() {
            "after the APPEND mailbox name"
        } else {
            "between APPEND messages"
        };
        c.sp(what)?;
        messages.push(message(c)?);
    }
    if messages.is_empty() {
        return Err("Missing the APPEND message".to_string());
    }
    Ok(Command::Append { mailbox, messages })
}

/// `[flag-list SP] [date-time SP] append-data` (the SP before it already taken).
fn message(c: &mut Cursor) -> PResult<AppendMessage> {
    let mut flags = Vec::new();
    if c.peek() == Some(b'(') {
        flags = c.flag_list()?;
        c.sp("after the APPEND flags")?;
    }
    let mut date = None;
    if c.peek() == Some(b'"') {
        date = Some(c.date_time()?);
        c.sp("after the APPEND date-time")?;
    }
    let (parts, catenate) = if c.eat_word("CATENATE") {
        (catenate(c)?, true)
    } else if c.eat_word("UTF8") {
        (vec![utf8(c)?], false)
    } else if matches!(c.peek(), Some(b'{' | b'~')) {
        (vec![text(c)?], false)
    } else {
        return Err(format!(
            "Expected the message as a literal ({{size}}) or CATENATE, found {}",
            c.found()
        ));
    };
    Ok(AppendMessage {
        flags,
        date,
        parts,
        catenate,
    })
}

/// A literal or literal8 with where it starts. NUL is accepted in either: real mail
/// contains it, the store keeps bytes as they are, and Dovecot takes it too.
fn text(c: &mut Cursor) -> PResult<AppendPart> {
    let at = c.pos() + usize::from(c.peek() == Some(b'~'));
    let data = c.literal(true, true)?.to_vec();
    Ok(AppendPart::Text { at, data })
}

/// RFC 6855 §4: `"UTF8" SP "(" literal8 ")"`; the message is stored as sent.
fn utf8(c: &mut Cursor) -> PResult<AppendPart> {
    c.sp("after UTF8")?;
    c.expect(b'(', "'(' before the UTF8 message")?;
    if c.peek() != Some(b'~') {
        return Err(format!(
            "Expected the UTF8 message as a literal8 (~{{size}}), found {}",
            c.found()
        ));
    }
    let part = text(c)?;
    c.expect(b')', "')' after the UTF8 message")?;
    Ok(part)
}

/// `SP "(" cat-part *(SP cat-part) ")"` after CATENATE.
fn catenate(c: &mut Cursor) -> PResult<Vec<AppendPart>> {
    c.sp("after CATENATE")?;
    c.expect(b'(', "'(' starting the CATENATE parts")?;
    let mut parts = Vec::new();
    loop {
        if parts.len() >= MAX_CATENATE_PARTS {
            return Err(format!(
                "Too many CATENATE parts (at most {MAX_CATENATE_PARTS})"
            ));
        }
        if c.eat_word("TEXT") {
            c.sp("after TEXT")?;
            if !matches!(c.peek(), Some(b'{' | b'~')) {
                return Err(format!(
                    "Expected the TEXT part as a literal, found {}",
                    c.found()
                ));
            }
            parts.push(text(c)?);
        } else if c.eat_word("URL") {
            c.sp("after URL")?;
            parts.push(AppendPart::Url(c.astring("the URL")?));
        } else if parts.is_empty() && c.peek() == Some(b')') {
            return Err("Empty CATENATE list".to_string());
        } else {
            return Err(format!(
                "Expected a CATENATE part (TEXT or URL), found {}",
                c.found()
            ));
        }
        if c.eat(b')') {
            return Ok(parts);
        }
        c.sp("between CATENATE parts")?;
    }
}
