//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; RFC 3516 BINARY).

use super::fetch_body::{self, BodyFile, Need};
use super::fetch_cached;
use super::view::flags_list;
use super::{Action, HandlerError, Output, Session, Sink, SINK_CHUNK};
use crate::imap::encode;
use crate::imap::types::{Command, FetchAttr, Section, SectionText};
use crate::mime;
use crate::store::flag;

impl Session {
    pub(super) fn fetch(&mut self, tag: &str, cmd: Command) -> Result<Output, HandlerError> {
        let Command::Fetch {
            uid,
            set,
            mut items,
            changed_since,
            vanished,
        } = cmd
        else {
            return Err(HandlerError::Bad("not a FETCH".into()));
        };
        // RFC 7162 §3.2.6: VANISHED needs QRESYNC enabled.
        if vanished && !self.qresync_enabled() {
            return Err(HandlerError::Bad(
                "The VANISHED modifier needs ENABLE QRESYNC first.".into(),
            ));
        }
        let mut out = Vec::new();
        if changed_since.is_some() || items.contains(&FetchAttr::ModSeq) {
            // RFC 7162 §3.1: MODSEQ and CHANGEDSINCE are CONDSTORE-enabling.
            self.enable_condstore(&mut out);
        }
        // RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ.
        if changed_since.is_some() && !items.contains(&FetchAttr::ModSeq) {
            items.push(FetchAttr::ModSeq);
        }
        let condstore = self.condstore_enabled();
        // RFC 3501 §6.4.8: UID FETCH always returns UID.
        if uid && !items.contains(&FetchAttr::Uid) {
            items.insert(0, FetchAttr::Uid);
        }
        let need = fetch_body::need(&items);
        let needs_body = need != Need::Nothing;
        // Big bodies stream through the sink as they are read (see `fetch_body`).
        let sink = self.sink.take();
        let sets_seen = items.iter().any(|a| match a {
            FetchAttr::Rfc822 | FetchAttr::Rfc822Text => true,
            FetchAttr::BodySection { peek, .. } | FetchAttr::Binary { peek, .. } => !peek,
            _ => false,
        });
        let view = self.view_mut()?;
        // No EXPUNGE responses during a non-UID FETCH (RFC 3501 §7.4.1).
        view.sync(&mut out, uid)?;
        let idx = view.resolve(&set, uid).map_err(HandlerError::Bad)?;
        if let (true, Some(since)) = (vanished, changed_since) {
            // RFC 7162 §3.2.6: expunged UIDs of the set, before the FETCH responses; `*` may
            // stand for UIDs above the largest that still exists.
            let shared = view.shared.clone();
            let mut st = shared.lock();
            super::condstore::vanished_earlier(
                view,
                &mut st,
                since,
                &super::condstore::set_ranges(&set, u32::MAX),
                &mut out,
            )?;
        }
        let cached = fetch_cached::usage(&items);
        let cache = cached.any.then(|| view.shared.cache());
        let wants_modseq = condstore || changed_since.is_some();
        let shared = view.shared.clone();
        let mut missing = false;
        for i in idx {
            let msg_uid = view.msgs[i].uid;
            let recent = view.msgs[i].recent;
            // The shared mailbox is locked while this message's metadata is read and its
            // file opened (or, when small, read); the response is built without it.
            let mut st = shared.lock();
            let mut modseq = match wants_modseq {
                true => st.modseqs()?.get(msg_uid),
                false => 0,
            };
            if changed_since.is_some_and(|since| modseq <= since) {
                continue;
            }
            let Some(meta) = st.mbox.meta(msg_uid).cloned() else {
                drop(st);
                missing = true;
                let flags = view.pending_flags(msg_uid).cloned().unwrap_or_default();
                expunged_fetch(&mut out, i + 1, &items, (msg_uid, &flags, recent), modseq);
                continue;
            };
            let hit = cache
                .as_deref()
                .and_then(|c| fetch_cached::lookup(c, &st.mbox, msg_uid, cached));
            let from_cache = hit
                .as_deref()
                .is_some_and(|h| fetch_cached::sufficient(h, cached));
            let (raw, file) = if needs_body && !from_cache {
                let loaded = match need {
                    Need::Streamable => st.mbox.open_message(msg_uid).and_then(BodyFile::new),
                    _ => st.mbox.read(msg_uid).map(Err),
                };
                match loaded {
                    Ok(Ok(file)) => (None, Some(file)),
                    Ok(Err(r)) => (Some(r), None),
                    Err(crate::store::StoreError::Expunged(_))
                    | Err(crate::store::StoreError::NotFound(_)) => {
                        drop(st);
                        missing = true;
                        let flags = meta.flags.clone();
                        expunged_fetch(&mut out, i + 1, &items, (msg_uid, &flags, recent), modseq);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                (None, None)
            };
            let msg = raw.as_deref().map(mime::to_crlf);
            // A streamed message: only its header block is in memory.
            let msg: &[u8] = match (&file, &msg, &hit) {
                (Some(f), _, _) => &f.header,
                (None, Some(m), _) => m,
                // Answered from the cache: the header block is all the header items need.
                (None, None, Some(h)) => h.header.as_deref().unwrap_or_default(),
                (None, None, None) => &[],
            };
            let filled = match (&cache, &raw, &hit) {
                (Some(c), Some(_), None) => fetch_cached::fill(c, &st.mbox, msg_uid, msg),
                _ => None,
            };
            let cm = hit.as_deref().or(filled.as_deref());
            let mut flags = meta.flags.clone();
            let mut flags_changed = false;
            if sets_seen && !view.read_only && flags.system & flag::SEEN == 0 {
                flags.system |= flag::SEEN;
                match view.set_flags(&mut st, msg_uid, &flags) {
                    Ok(()) => {
                        flags_changed = true;
                        if let Some(m) = st.mbox.meta(msg_uid) {
                            flags = m.flags.clone();
                        }
                        // The implicit \Seen is a change with its own mod-sequence.
                        if wants_modseq {
                            modseq = st.modseqs()?.get(msg_uid);
                        }
                    }
                    Err(crate::store::StoreError::Expunged(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // Another session may have given the mailbox a keyword since this command's sync:
            // announced before the FETCH that could carry it (RFC 3501 §7.2.6).
            view.announce_keywords_in(&st, &mut out);
            drop(st);
            let mut line = format!("* {} FETCH (", i + 1).into_bytes();
            let mut first = true;
            let mut sep = |line: &mut Vec<u8>| {
                if !first {
                    line.push(b' ');
                }
                first = false;
            };
            for a in &items {
                sep(&mut line);
                match a {
                    FetchAttr::Flags => line.extend_from_slice(
                        format!("FLAGS {}", flags_list(&flags, recent)).as_bytes(),
                    ),
                    FetchAttr::Uid => line.extend_from_slice(format!("UID {msg_uid}").as_bytes()),
                    FetchAttr::InternalDate => line.extend_from_slice(
                        format!("INTERNALDATE \"{}\"", imap_datetime(meta.internal_date))
                            .as_bytes(),
                    ),
                    FetchAttr::Rfc822Size => line.extend_from_slice(
                        format!(
                            "RFC822.SIZE {}",
                            file.as_ref().map_or(
                                cm.map_or(msg_len_or(&meta, msg), |c| c.vsize),
                                BodyFile::size
                            )
                        )
                        .as_bytes(),
                    ),
                    FetchAttr::Envelope => {
                        line.extend_from_slice(b"ENVELOPE ");
                        match cm {
                            Some(c) => line.extend_from_slice(&c.envelope),
                            None => mime::envelope(msg, &mut line),
                        }
                    }
                    FetchAttr::Body => {
                        line.extend_from_slice(b"BODY ");
                        match cm {
                            Some(c) => line.extend_from_slice(&c.body),
                            None => mime::body_structure(msg, false, &mut line),
                        }
                    }
                    FetchAttr::BodyStructure => {
                        line.extend_from_slice(b"BODYSTRUCTURE ");
                        match cm {
                            Some(c) => line.extend_from_slice(&c.bodystructure),
                            None => mime::body_structure(msg, true, &mut line),
                        }
                    }
                    FetchAttr::Rfc822 => {
                        line.extend_from_slice(b"RFC822 ");
                        match file.as_ref() {
                            Some(f) => {
                                let size = f.size();
                                if !file_literal(&sink, &mut out, &mut line, f, (0, size), false) {
                                    return Ok(client_gone());
                                }
                            }
                            None => {
                                if !slice_literal(&sink, &mut out, &mut line, msg) {
                                    return Ok(client_gone());
                                }
                            }
                        }
                    }
                    FetchAttr::Rfc822Header => {
                        line.extend_from_slice(b"RFC822.HEADER ");
                        let s = Section {
                            part: vec![],
                            text: Some(SectionText::Header),
                        };
                        literal(&mut line, &mime::section(msg, &s).unwrap_or_default());
                    }
                    FetchAttr::Rfc822Text if file.is_some() => {
                        line.extend_from_slice(b"RFC822.TEXT ");
                        if let Some(f) = file.as_ref() {
                            let start = f.header.len() as u64;
                            let len = f.size().saturating_sub(start);
                            if !file_literal(&sink, &mut out, &mut line, f, (start, len), false) {
                                return Ok(client_gone());
                            }
                        }
                    }
                    FetchAttr::Rfc822Text => {
                        line.extend_from_slice(b"RFC822.TEXT ");
                        let s = Section {
                            part: vec![],
                            text: Some(SectionText::Text),
                        };
                        literal(&mut line, &mime::section(msg, &s).unwrap_or_default());
                    }
                    FetchAttr::BodySection {
                        section, partial, ..
                    } if file.is_some()
                        && section.part.is_empty()
                        && matches!(section.text, None | Some(SectionText::Text)) =>
                    {
                        line.extend_from_slice(
                            format!("BODY[{}]", section_spec(section)).as_bytes(),
                        );
                        if let Some(f) = file.as_ref() {
                            // The section's range in the message, then the partial within it.
                            let (mut start, end) = match section.text {
                                Some(_) => (f.header.len() as u64, f.size()),
                                None => (0, f.size()),
                            };
                            let mut len = end.saturating_sub(start);
                            if let Some((off, n)) = *partial {
                                line.extend_from_slice(format!("<{off}>").as_bytes());
                                let off = u64::from(off).min(len);
                                start += off;
                                len = (len - off).min(u64::from(n));
                            }
                            line.push(b' ');
                            if !file_literal(&sink, &mut out, &mut line, f, (start, len), false) {
                                return Ok(client_gone());
                            }
                        }
                    }
                    FetchAttr::Binary { part, partial, .. }
                        if file.is_some() && part.is_empty() =>
                    {
                        line.extend_from_slice(b"BINARY[]");
                        if let Some(f) = file.as_ref() {
                            let (mut start, mut len) = (0, f.size());
                            if let Some((off, n)) = *partial {
                                line.extend_from_slice(format!("<{off}>").as_bytes());
                                start = u64::from(off).min(len);
                                len = (len - start).min(u64::from(n));
                            }
                            line.push(b' ');
                            if !file_literal(&sink, &mut out, &mut line, f, (start, len), true) {
                                return Ok(client_gone());
                            }
                        }
                    }
                    FetchAttr::BinarySize { part } if part.is_empty() && file.is_some() => {
                        let n = file.as_ref().map_or(0, BodyFile::size);
                        line.extend_from_slice(format!("BINARY.SIZE[] {n}").as_bytes());
                    }
                    FetchAttr::BodySection {
                        section, partial, ..
                    } => {
                        line.extend_from_slice(
                            format!("BODY[{}]", section_spec(section)).as_bytes(),
                        );
                        let data = mime::section(msg, section).unwrap_or_default();
                        let data = apply_partial(&mut line, &data, *partial);
                        line.push(b' ');
                        if !slice_literal(&sink, &mut out, &mut line, data) {
                            return Ok(client_gone());
                        }
                    }
                    FetchAttr::Binary { part, partial, .. } => {
                        let data = match mime::binary(msg, part) {
                            Ok(d) => d.unwrap_or_default(),
                            Err(()) => {
                                return Err(HandlerError::No(
                                    "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding.".into(),
                                ))
                            }
                        };
                        line.extend_from_slice(format!("BINARY[{}]", part_spec(part)).as_bytes());
                        let data = apply_partial(&mut line, &data, *partial);
                        line.push(b' ');
                        if data.contains(&0) {
                            line.extend_from_slice(format!("~{{{}}}\r\n", data.len()).as_bytes());
                            line.extend_from_slice(data);
                        } else {
                            literal(&mut line, data);
                        }
                    }
                    FetchAttr::BinarySize { part } => {
                        let n = match mime::binary(msg, part) {
                            Ok(d) => d.map(|d| d.len()).unwrap_or(0),
                            Err(()) => {
                                return Err(HandlerError::No(
                                    "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding.".into(),
                                ))
                            }
                        };
                        line.extend_from_slice(
                            format!("BINARY.SIZE[{}] {n}", part_spec(part)).as_bytes(),
                        );
                    }
                    FetchAttr::ModSeq => {
                        line.extend_from_slice(format!("MODSEQ ({modseq})").as_bytes())
                    }
                }
            }
            // RFC 3501 §6.4.5: a \Seen set implicitly is reported.
            if flags_changed && !items.contains(&FetchAttr::Flags) {
                sep(&mut line);
                line.extend_from_slice(format!("FLAGS {}", flags_list(&flags, recent)).as_bytes());
                if condstore && !items.contains(&FetchAttr::ModSeq) {
                    line.extend_from_slice(format!(" MODSEQ ({modseq})").as_bytes());
                }
            }
            line.extend_from_slice(b")\r\n");
            match &sink {
                // A big response (a section of a big message) goes out as it is, not copied
                // into `out` first: one copy of it in memory besides the message.
                Some(sink) if line.len() >= SINK_CHUNK => {
                    if !sink.send(std::mem::take(&mut out)) || !sink.send(line) {
                        return Ok(client_gone());
                    }
                }
                _ => out.extend_from_slice(&line),
            }
            if out.len() >= SINK_CHUNK {
                if let Some(sink) = &sink {
                    if !sink.send(std::mem::take(&mut out)) {
                        return Ok(client_gone());
                    }
                }
            }
        }
        if let Some(c) = &cache {
            c.flush();
        }
        let name = if uid { "UID FETCH" } else { "FETCH" };
        if missing {
            // RFC 2180 §4.1.1, RFC 5530 (as Dovecot does): the command succeeds; the client
            // learns of the expunge at its next NOOP.
            out.extend_from_slice(
                format!("{tag} OK [EXPUNGEISSUED] Some messages were expunged meanwhile.\r\n")
                    .as_bytes(),
            );
        } else {
            out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
        }
        self.sink = sink;
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }
}

/// The FETCH response for a message that another session expunged before this one was told
/// (RFC 2180 §4.1.1): what the view still knows (UID, FLAGS, MODSEQ), and for the rest what
/// Dovecot sends when its cache has nothing: NIL for every nstring (BODY[], RFC822...), an
/// all-NIL ENVELOPE, the epoch for INTERNALDATE, 0 for sizes, and the structure of an empty
/// text/plain message where the grammar allows no NIL (BODY, BODYSTRUCTURE).
fn expunged_fetch(
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
        }
        parts.push(p);
    }
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    out.extend_from_slice(&parts.join(&b' '));
    out.extend_from_slice(b")\r\n");
}

/// The connection went away while a response streamed (or a message file could not be read
/// after its literal was announced): nothing more can be said on it.
fn client_gone() -> Output {
    Output {
        bytes: Vec::new(),
        action: Action::Close,
    }
}

/// Write `{len}` and the bytes `[start, start + len)` of the message `f` into the response:
/// through the sink when there is one (after `out` and `line`, which precede them), else into
/// `line`. `binary` (RFC 3516): NUL bytes are sent as they are, in a `~{len}` literal8 if
/// there are any. False when the connection is gone or the file failed (logged).
fn file_literal(
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
    line: &mut Vec<u8>,
    f: &BodyFile,
    (start, len): (u64, u64),
    binary: bool,
) -> bool {
    let literal8 = match binary.then(|| f.contains_nul(start, len)) {
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

fn msg_len_or(meta: &crate::store::MessageMeta, msg: &[u8]) -> u64 {
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
    let Some(sink) = sink.as_ref().filter(|_| data.len() > SINK_CHUNK) else {
        literal(line, data);
        return true;
    };
    line.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
    let mut first = std::mem::take(out);
    first.append(line);
    let mut chunks = data.chunks(SINK_CHUNK);
    if let Some(c) = chunks.next() {
        literal_bytes(&mut first, c);
    }
    if !sink.send(first) {
        return false;
    }
    chunks.all(|c| {
        let mut piece = Vec::with_capacity(c.len());
        literal_bytes(&mut piece, c);
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

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `date-time` in UTC: `17-Jul-1996 02:44:25 +0000`.
pub(crate) fn imap_datetime(unix: i64) -> String {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m as usize).saturating_sub(1).min(11)],
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Inverse of `days_from_civil` (Howard Hinnant): (year, month 1-12, day 1-31).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn dates() {
        assert_eq!(imap_datetime(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(imap_datetime(837571465), "17-Jul-1996 02:44:25 +0000");
        for d in [
            -800_000i64,
            -1,
            0,
            1,
            59,
            60,
            365,
            10_957,
            20_000,
            2_932_896,
        ] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(crate::imap::types::days_from_civil(y, m, dd), d);
        }
    }
}
