//! One message's FETCH response (RFC 3501 §7.4.2; RFC 3516 BINARY; RFC 7162 MODSEQ).
//!
//! Owns: writing each item of a message that `fetch` read under the mailbox lock: from the
//! message file as it is read when streamed (`fetch_body`), from the metadata cache, or from
//! the message in memory; literals with NUL as 0x80, big ones through the session's sink.
//! Never: touches the mailbox (this runs without its lock).

use super::fetch::imap_datetime;
use super::fetch_body::BodyFile;
use super::view::flags_list;
use super::{HandlerError, Sink, SINK_CHUNK};
use crate::imap::encode;
use crate::imap::types::{FetchAttr, Section, SectionText};
use crate::mime;
use crate::store::cache::Meta;
use crate::store::{Flags, MessageMeta};

/// A message as its FETCH response needs it, read under the mailbox lock.
pub(super) struct Msg<'a> {
    /// Its sequence number.
    pub seq: usize,
    pub uid: u32,
    pub recent: bool,
    pub meta: &'a MessageMeta,
    /// Its flags, `\Seen` included when the FETCH set it.
    pub flags: &'a Flags,
    /// The FETCH set `\Seen`: the response reports the flags even if not asked.
    pub flags_changed: bool,
    pub modseq: u64,
    /// The message with CRLF line ends; only its header block when streamed or answered from
    /// the cache; empty when no item needs its bytes.
    pub msg: &'a [u8],
    /// The message file, when big enough to be streamed.
    pub file: Option<&'a BodyFile>,
    /// The cache entry answering ENVELOPE, BODY, BODYSTRUCTURE, RFC822.SIZE and PREVIEW.
    pub cached: Option<&'a Meta>,
    /// RFC 8514 SAVEDATE (Unix seconds), when asked and known.
    pub save_date: Option<i64>,
}

/// Write the `* n FETCH (...)` response of the message `m` with `items`: false when the
/// connection is gone. `condstore`: an implicit `\Seen` is reported with its MODSEQ.
pub(super) fn write(
    items: &[FetchAttr],
    condstore: bool,
    m: &Msg,
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
) -> Result<bool, HandlerError> {
    let mut line = format!("* {} FETCH (", m.seq).into_bytes();
    for (n, a) in items.iter().enumerate() {
        if n > 0 {
            line.push(b' ');
        }
        if !item(a, m, sink, out, &mut line)? {
            return Ok(false);
        }
    }
    // RFC 3501 §6.4.5: a \Seen set implicitly is reported.
    if m.flags_changed && !items.contains(&FetchAttr::Flags) {
        if !items.is_empty() {
            line.push(b' ');
        }
        line.extend_from_slice(format!("FLAGS {}", flags_list(m.flags, m.recent)).as_bytes());
        if condstore && !items.contains(&FetchAttr::ModSeq) {
            line.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
        }
    }
    line.extend_from_slice(b")\r\n");
    Ok(send(line, sink, out))
}

/// Add a message's response to `out`, which goes through the sink once it holds a
/// [`SINK_CHUNK`]. False when the connection is gone.
fn send(line: Vec<u8>, sink: &Option<Sink>, out: &mut Vec<u8>) -> bool {
    match sink {
        // A big response (a section of a big message) goes out as it is, not copied
        // into `out` first: one copy of it in memory besides the message.
        Some(sink) if line.len() >= SINK_CHUNK => {
            if !sink.send(std::mem::take(out)) || !sink.send(line) {
                return false;
            }
        }
        _ => out.extend_from_slice(&line),
    }
    if out.len() >= SINK_CHUNK {
        if let Some(sink) = sink {
            if !sink.send(std::mem::take(out)) {
                return false;
            }
        }
    }
    true
}

/// Write the item `a` of the message `m` into `line`; a big literal goes through the sink,
/// after `out` and `line`. False when the connection is gone.
fn item(
    a: &FetchAttr,
    m: &Msg,
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
    line: &mut Vec<u8>,
) -> Result<bool, HandlerError> {
    if let Some(sent) = m.file.and_then(|f| file_item(a, f, sink, out, line)) {
        return Ok(sent);
    }
    match a {
        FetchAttr::Flags => {
            line.extend_from_slice(format!("FLAGS {}", flags_list(m.flags, m.recent)).as_bytes())
        }
        FetchAttr::Uid => line.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
        FetchAttr::InternalDate => line.extend_from_slice(
            format!("INTERNALDATE \"{}\"", imap_datetime(m.meta.internal_date)).as_bytes(),
        ),
        FetchAttr::Rfc822Size => {
            line.extend_from_slice(format!("RFC822.SIZE {}", rfc822_size(m)).as_bytes())
        }
        FetchAttr::Envelope => {
            line.extend_from_slice(b"ENVELOPE ");
            match m.cached {
                Some(c) => line.extend_from_slice(&c.envelope),
                None => mime::envelope(m.msg, line),
            }
        }
        FetchAttr::Body => body_structure(m, false, line),
        FetchAttr::BodyStructure => body_structure(m, true, line),
        FetchAttr::Rfc822 => {
            line.extend_from_slice(b"RFC822 ");
            return Ok(slice_literal(sink, out, line, m.msg));
        }
        FetchAttr::Rfc822Header => {
            rfc822_section(line, "RFC822.HEADER ", m.msg, SectionText::Header)
        }
        FetchAttr::Rfc822Text => rfc822_section(line, "RFC822.TEXT ", m.msg, SectionText::Text),
        FetchAttr::BodySection {
            section, partial, ..
        } => return Ok(body_section(section, *partial, m.msg, sink, out, line)),
        FetchAttr::Binary { part, partial, .. } => {
            return binary(part, *partial, m.msg, sink, out, line)
        }
        FetchAttr::BinarySize { part } => binary_size(part, m.msg, line)?,
        FetchAttr::ModSeq => line.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes()),
        FetchAttr::SaveDate => save_date(m.save_date, line),
        FetchAttr::Preview { .. } => {
            line.extend_from_slice(b"PREVIEW ");
            match m.cached {
                Some(c) => encode::string(line, &c.preview),
                None => encode::string(line, mime::preview::preview(m.msg).as_bytes()),
            }
        }
    }
    Ok(true)
}

/// The items a streamed message answers from its file, sent as it is read: the whole message,
/// its text, and their partials (the other items need only its header block, or its size).
/// `None` for the others, else false when the connection is gone.
fn file_item(
    a: &FetchAttr,
    f: &BodyFile,
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
    line: &mut Vec<u8>,
) -> Option<bool> {
    let header = f.header.len() as u64;
    let (range, binary) = match a {
        FetchAttr::Rfc822 => {
            line.extend_from_slice(b"RFC822 ");
            ((0, f.size()), false)
        }
        FetchAttr::Rfc822Text => {
            line.extend_from_slice(b"RFC822.TEXT ");
            ((header, f.size().saturating_sub(header)), false)
        }
        FetchAttr::BodySection {
            section, partial, ..
        } if section.part.is_empty() && matches!(section.text, None | Some(SectionText::Text)) => {
            line.extend_from_slice(format!("BODY[{}]", section_spec(section)).as_bytes());
            let start = match section.text {
                Some(_) => header,
                None => 0,
            };
            (file_partial(line, start, f.size(), *partial), false)
        }
        FetchAttr::Binary { part, partial, .. } if part.is_empty() => {
            line.extend_from_slice(b"BINARY[]");
            (file_partial(line, 0, f.size(), *partial), true)
        }
        FetchAttr::BinarySize { part } if part.is_empty() => {
            line.extend_from_slice(format!("BINARY.SIZE[] {}", f.size()).as_bytes());
            return Some(true);
        }
        _ => return None,
    };
    Some(file_literal(sink, out, line, f, range, binary))
}

/// The range `(start, len)` of a message file to send for the section `[start, end)` and the
/// partial within it (RFC 3501 §7.4.2), writing the `<offset>` origin and the space before the
/// literal.
fn file_partial(
    line: &mut Vec<u8>,
    start: u64,
    end: u64,
    partial: Option<(u32, u32)>,
) -> (u64, u64) {
    let mut start = start;
    let mut len = end.saturating_sub(start);
    if let Some((off, n)) = partial {
        line.extend_from_slice(format!("<{off}>").as_bytes());
        let off = u64::from(off).min(len);
        start += off;
        len = (len - off).min(u64::from(n));
    }
    line.push(b' ');
    (start, len)
}

/// RFC 8514 §4.1: `SAVEDATE "date-time"`, or NIL when the mailbox has none for the message.
fn save_date(date: Option<i64>, line: &mut Vec<u8>) {
    match date {
        Some(d) => line.extend_from_slice(format!("SAVEDATE \"{}\"", imap_datetime(d)).as_bytes()),
        None => line.extend_from_slice(b"SAVEDATE NIL"),
    }
}

/// RFC822.SIZE: the file's when streamed, else the cache entry's, else the message's in
/// memory.
fn rfc822_size(m: &Msg) -> u64 {
    match (m.file, m.cached) {
        (Some(f), _) => f.size(),
        (None, Some(c)) => c.vsize,
        (None, None) => msg_len_or(m.meta, m.msg),
    }
}

/// BODY, or BODYSTRUCTURE when `extensible`: the cache entry's, else parsed from the message.
fn body_structure(m: &Msg, extensible: bool, line: &mut Vec<u8>) {
    let name: &[u8] = if extensible {
        b"BODYSTRUCTURE "
    } else {
        b"BODY "
    };
    line.extend_from_slice(name);
    match m.cached {
        Some(c) if extensible => line.extend_from_slice(&c.bodystructure),
        Some(c) => line.extend_from_slice(&c.body),
        None => mime::body_structure(m.msg, extensible, line),
    }
}

/// RFC822.HEADER or RFC822.TEXT (`name`): that section of the message, as a literal.
fn rfc822_section(line: &mut Vec<u8>, name: &str, msg: &[u8], text: SectionText) {
    line.extend_from_slice(name.as_bytes());
    let s = Section {
        part: vec![],
        text: Some(text),
    };
    literal(line, &mime::section(msg, &s).unwrap_or_default());
}

/// `BODY[section]<partial>` of a message in memory. False when the connection is gone.
fn body_section(
    section: &Section,
    partial: Option<(u32, u32)>,
    msg: &[u8],
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
    line: &mut Vec<u8>,
) -> bool {
    line.extend_from_slice(format!("BODY[{}]", section_spec(section)).as_bytes());
    let data = mime::section(msg, section).unwrap_or_default();
    let data = apply_partial(line, &data, partial);
    line.push(b' ');
    slice_literal(sink, out, line, data)
}

/// `BINARY[part]<partial>` of a message in memory: a `literal8` when the content was
/// decoded or holds NUL (as Dovecot decides: for the whole content, not the partial), NUL
/// bytes sent as they are (RFC 3516 §4.2); a big one through the sink. A part that does not
/// exist is empty, as in `BODY[]`. `Ok(false)` when the connection is gone.
fn binary(
    part: &[u32],
    partial: Option<(u32, u32)>,
    msg: &[u8],
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
    line: &mut Vec<u8>,
) -> Result<bool, HandlerError> {
    let content = decoded(msg, part)?.unwrap_or_default();
    line.extend_from_slice(format!("BINARY[{}]", part_spec(part)).as_bytes());
    let data = apply_partial(line, &content.data, partial);
    line.push(b' ');
    Ok(sink_literal(sink, out, line, data, content.literal8))
}

/// `BINARY.SIZE[part]` of a message in memory: the size of the decoded part.
fn binary_size(part: &[u32], msg: &[u8], line: &mut Vec<u8>) -> Result<(), HandlerError> {
    let n = decoded(msg, part)?.map(|d| d.data.len()).unwrap_or(0);
    line.extend_from_slice(format!("BINARY.SIZE[{}] {n}", part_spec(part)).as_bytes());
    Ok(())
}

/// The part's content with its Content-Transfer-Encoding undone (`None`: no such part); an
/// encoding we can't undo fails the command (RFC 3516 §4.3), as does invalid data (Dovecot's
/// answer).
fn decoded(msg: &[u8], part: &[u32]) -> Result<Option<mime::binary::Binary>, HandlerError> {
    use mime::binary::Undecodable;
    mime::binary(msg, part).map_err(|e| {
        HandlerError::No(match e {
            Undecodable::UnknownCte => "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding.".into(),
            Undecodable::Invalid => "[PARSE] Invalid data in MIME part.".into(),
        })
    })
}

/// The FETCH response for a message that another session expunged before this one was told
/// (RFC 2180 §4.1.1): what the view still knows (UID, FLAGS, MODSEQ), and for the rest what
/// Dovecot sends when its cache has nothing: NIL for every nstring (BODY[], RFC822...), an
/// all-NIL ENVELOPE, the epoch for INTERNALDATE, 0 for sizes, and the structure of an empty
/// text/plain message where the grammar allows no NIL (BODY, BODYSTRUCTURE).
pub(super) fn expunged_fetch(
    out: &mut Vec<u8>,
    seq: usize,
    items: &[FetchAttr],
    (uid, flags, recent): (u32, &crate::store::Flags, bool),
    modseq: u64,
) {
    let mut parts: Vec<Vec<u8>> = Vec::with_capacity(items.len());
    for a in items {
        let mut p = Vec::new();
        match a {
            FetchAttr::Flags => {
                p.extend_from_slice(format!("FLAGS {}", flags_list(flags, recent)).as_bytes())
            }
            FetchAttr::Uid => p.extend_from_slice(format!("UID {uid}").as_bytes()),
            FetchAttr::InternalDate => {
                p.extend_from_slice(format!("INTERNALDATE \"{}\"", imap_datetime(0)).as_bytes())
            }
            FetchAttr::Rfc822Size => p.extend_from_slice(b"RFC822.SIZE 0"),
            FetchAttr::Envelope => {
                p.extend_from_slice(b"ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)")
            }
            FetchAttr::Body => {
                p.extend_from_slice(b"BODY ");
                mime::body_structure(b"", false, &mut p);
            }
            FetchAttr::BodyStructure => {
                p.extend_from_slice(b"BODYSTRUCTURE ");
                mime::body_structure(b"", true, &mut p);
            }
            FetchAttr::Rfc822 => p.extend_from_slice(b"RFC822 NIL"),
            FetchAttr::Rfc822Header => p.extend_from_slice(b"RFC822.HEADER NIL"),
            FetchAttr::Rfc822Text => p.extend_from_slice(b"RFC822.TEXT NIL"),
            FetchAttr::BodySection {
                section, partial, ..
            } => {
                p.extend_from_slice(format!("BODY[{}]", section_spec(section)).as_bytes());
                if let Some((off, _)) = partial {
                    p.extend_from_slice(format!("<{off}>").as_bytes());
                }
                p.extend_from_slice(b" NIL");
            }
            FetchAttr::Binary { part, partial, .. } => {
                p.extend_from_slice(format!("BINARY[{}]", part_spec(part)).as_bytes());
                if let Some((off, _)) = partial {
                    p.extend_from_slice(format!("<{off}>").as_bytes());
                }
                p.extend_from_slice(b" NIL");
            }
            FetchAttr::BinarySize { part } => {
                p.extend_from_slice(format!("BINARY.SIZE[{}] 0", part_spec(part)).as_bytes())
            }
            FetchAttr::ModSeq => p.extend_from_slice(format!("MODSEQ ({modseq})").as_bytes()),
            FetchAttr::SaveDate => save_date(None, &mut p),
            FetchAttr::Preview { .. } => p.extend_from_slice(b"PREVIEW NIL"),
        }
        parts.push(p);
    }
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    out.extend_from_slice(&parts.join(&b' '));
    out.extend_from_slice(b")\r\n");
}

/// Write `{len}` and the bytes `[start, start + len)` of the message `f` into the response:
/// through the sink when there is one (after `out` and `line`, which precede them), else into
/// `line`. `binary` (RFC 3516): NUL bytes are sent as they are, in a `~{len}` literal8 if
/// the message has any (anywhere: Dovecot decides by the whole message, not the partial). False when the connection is gone or the file failed (logged).
fn file_literal(
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
    line: &mut Vec<u8>,
    f: &BodyFile,
    (start, len): (u64, u64),
    binary: bool,
) -> bool {
    let literal8 = match binary.then(|| f.contains_nul(0, f.size())) {
        Some(Ok(nul)) => nul,
        Some(Err(e)) => {
            log::error!("FETCH: {e}; closing the connection");
            return false;
        }
        None => false,
    };
    let tilde = if literal8 { "~" } else { "" };
    line.extend_from_slice(format!("{tilde}{{{len}}}\r\n").as_bytes());
    let written = match sink {
        Some(sink) => {
            // What precedes the literal goes out with its first piece: one write, not a
            // small one that waits for the client's delayed ACK.
            let mut head = std::mem::take(out);
            head.append(line);
            let r = f.write_range(start, len, !binary, &mut |piece| {
                if head.is_empty() {
                    sink.send(piece)
                } else {
                    let mut first = std::mem::take(&mut head);
                    first.extend_from_slice(&piece);
                    sink.send(first)
                }
            });
            // An empty range: nothing was sent, the head stays in the response.
            *line = head;
            r
        }
        None => f.write_range(start, len, !binary, &mut |piece| {
            line.extend_from_slice(&piece);
            true
        }),
    };
    match written {
        Ok(more) => more,
        Err(e) => {
            log::error!("FETCH: {e}; closing the connection (the literal is announced)");
            false
        }
    }
}

/// The size of the message in memory; its size on disk when it was not read.
fn msg_len_or(meta: &MessageMeta, msg: &[u8]) -> u64 {
    if msg.is_empty() {
        meta.size
    } else {
        msg.len() as u64
    }
}

/// A `literal`. NUL is not allowed in one (RFC 3501 §4.3: only BINARY's literal8 may carry
/// it), so like Dovecot we send each NUL byte as 0x80, keeping sizes and offsets unchanged.
fn literal(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
    literal_bytes(out, data);
}

/// [`literal`], but a big one (a section of a message read whole) goes through the sink in
/// pieces, after `out` and `line`, instead of being copied into the response. False when the
/// connection is gone.
fn slice_literal(sink: &Option<Sink>, out: &mut Vec<u8>, line: &mut Vec<u8>, data: &[u8]) -> bool {
    sink_literal(sink, out, line, data, false)
}

/// [`slice_literal`], or when `literal8` a `~{n}` literal8 with NUL bytes as they are
/// (RFC 3516 BINARY).
fn sink_literal(
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
    line: &mut Vec<u8>,
    data: &[u8],
    literal8: bool,
) -> bool {
    let bytes = |to: &mut Vec<u8>, c: &[u8]| match literal8 {
        true => to.extend_from_slice(c),
        false => literal_bytes(to, c),
    };
    let tilde = if literal8 { "~" } else { "" };
    line.extend_from_slice(format!("{tilde}{{{}}}\r\n", data.len()).as_bytes());
    let Some(sink) = sink.as_ref().filter(|_| data.len() > SINK_CHUNK) else {
        bytes(line, data);
        return true;
    };
    let mut first = std::mem::take(out);
    first.append(line);
    let mut chunks = data.chunks(SINK_CHUNK);
    if let Some(c) = chunks.next() {
        bytes(&mut first, c);
    }
    if !sink.send(first) {
        return false;
    }
    chunks.all(|c| {
        let mut piece = Vec::with_capacity(c.len());
        bytes(&mut piece, c);
        sink.send(piece)
    })
}

/// Append literal content: NUL as 0x80 (see [`literal`]).
fn literal_bytes(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    out.extend_from_slice(data);
    super::fetch_body::nul_to_0x80(&mut out[start..]);
}

/// Apply `<offset.length>`, writing the `<offset>` origin to the response (RFC 3501 §7.4.2).
fn apply_partial<'a>(line: &mut Vec<u8>, data: &'a [u8], partial: Option<(u32, u32)>) -> &'a [u8] {
    match partial {
        None => data,
        Some((off, len)) => {
            line.extend_from_slice(format!("<{off}>").as_bytes());
            let start = (off as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            &data[start..end]
        }
    }
}

/// A part number as echoed in the response: `1.2`.
fn part_spec(part: &[u32]) -> String {
    part.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// The section as echoed in the response: `1.2.HEADER.FIELDS (FROM TO)`.
pub(crate) fn section_spec(s: &Section) -> String {
    let mut out = part_spec(&s.part);
    if let Some(t) = &s.text {
        if !out.is_empty() {
            out.push('.');
        }
        let fields = |f: &Vec<String>| {
            let mut b = Vec::new();
            for (i, x) in f.iter().enumerate() {
                if i > 0 {
                    b.push(b' ');
                }
                encode::astring(&mut b, x.to_ascii_uppercase().as_bytes());
            }
            String::from_utf8_lossy(&b).into_owned()
        };
        match t {
            SectionText::Header => out.push_str("HEADER"),
            SectionText::Text => out.push_str("TEXT"),
            SectionText::Mime => out.push_str("MIME"),
            SectionText::HeaderFields(f) => out.push_str(&format!("HEADER.FIELDS ({})", fields(f))),
            SectionText::HeaderFieldsNot(f) => {
                out.push_str(&format!("HEADER.FIELDS.NOT ({})", fields(f)))
            }
        }
    }
    out
}
