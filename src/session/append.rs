//! APPEND (RFC 3501 §6.3.11) of one message or several (RFC 3502 MULTIAPPEND), each sent as
//! a literal or literal8 (RFC 3516) or put together from literals and IMAP URLs (RFC 4469
//! CATENATE, with RFC 5550 URL-PARTIAL ranges).
//!
//! All or nothing: every message is checked and written to tmp/ (and synced) before any is
//! placed; then all get consecutive UIDs under one hold of the mailbox's lock
//! (`Mailbox::append_many`) and one `APPENDUID` reports them (RFC 4315 §3). A message over
//! the size limit, an empty one, a bad URL or a failed write answers NO and stores nothing.
//!
//! Memory: a big literal arrives in a file (`net::conn` spools it, the command holds `{0}`
//! where it was, found again by its position); a CATENATEd message is put together in a
//! file; only a URL's referenced message is read into memory, bounded by the size limit.

use super::mailbox::to_store_flags;
use super::message::uid_set;
use super::{normalize_mailbox, Action, HandlerError, Output, Session};
use crate::imap::types::{AppendMessage, AppendPart};
use crate::imap::url;
use crate::store::{Spool, StoreError};
use std::io::Read;

/// A message's bytes before it is written into the mailbox.
enum Content {
    Bytes(Vec<u8>),
    File(Spool),
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File(s) => s.len(),
        }
    }
}

/// The command's spooled literals by where their `{0}` is.
type Spooled = Vec<(usize, Spool)>;

fn too_big() -> HandlerError {
    HandlerError::No("[TOOBIG] Message is larger than the server accepts.".into())
}

/// A literal of the command: its bytes, or the file it was received into.
fn literal(at: usize, data: Vec<u8>, spooled: &mut Spooled) -> Content {
    if data.is_empty() {
        if let Some(i) = spooled.iter().position(|(a, _)| *a == at) {
            return Content::File(spooled.swap_remove(i).1);
        }
    }
    Content::Bytes(data)
}

/// The URL as `BADURL` may show it (RFC 4469 §6 `url-resp-text`: no CR, LF, NUL or ']').
fn shown(raw: &[u8]) -> String {
    raw.iter()
        .take(1024)
        .map(|&b| match b {
            0 | b'\r' | b'\n' | b']' | 0xff => '?',
            b if b.is_ascii() => b as char,
            _ => '?',
        })
        .collect()
}

impl Session {
    pub(super) fn append(
        &mut self,
        tag: &str,
        mailbox: &str,
        messages: Vec<AppendMessage>,
    ) -> Result<Output, HandlerError> {
        let name = normalize_mailbox(mailbox);
        self.store()?;
        let mut spooled = self.take_spooled()?;
        let flags = (messages.iter())
            .map(|m| to_store_flags(&m.flags))
            .collect::<Result<Vec<_>, _>>()?;
        // The mailbox's shared state: when it is selected here or elsewhere in the process
        // (a client saving a draft or a sent message into a folder it shows), no scan.
        let mbox = match self.store()?.open_mailbox(&name, false) {
            Ok(m) => m,
            Err(StoreError::NotFound(_)) => {
                return Err(HandlerError::No(
                    "[TRYCREATE] Mailbox doesn't exist.".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        // Written and synced without the mailbox's lock (other sessions APPENDing here do
        // the same side by side); a failure drops those written so far, and their files.
        let mut prepared = Vec::with_capacity(messages.len());
        let mut bytes = 0u64;
        for (m, f) in messages.into_iter().zip(flags) {
            let internal = m.date.map(|d| d.unix_seconds());
            let p = match self.content(m, &mut spooled)? {
                Content::Bytes(b) => {
                    bytes += b.len() as u64;
                    mbox.prepare_append(&b, internal)?
                }
                Content::File(s) => {
                    bytes += s.len();
                    mbox.prepare_spool(s, internal)?
                }
            };
            prepared.push((p, f));
        }
        // RFC 9208 §4.1: the messages' sizes as received stand for theirs (the same for CRLF
        // mail); over the quota, the prepared files go with `prepared`.
        self.check_quota(&name, bytes, prepared.len() as u64)?;
        // Placed under the lock, and made durable after it together with other sessions'
        // syncs: the OK below is sent only then.
        let (uids, validity, pending) = {
            let mut g = mbox.lock();
            let (uids, pending) = g.mbox.append_many(prepared)?;
            (uids, g.mbox.uid_validity(), pending)
        };
        pending.wait()?;
        let mut out = Vec::new();
        self.sync_selected(&mut out, true)?;
        let set = uid_set(&uids);
        out.extend_from_slice(
            format!("{tag} OK [APPENDUID {validity} {set}] APPEND completed.\r\n").as_bytes(),
        );
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }

    /// The literals the connection received into files for this command.
    fn take_spooled(&mut self) -> Result<Spooled, HandlerError> {
        let mut out = Vec::new();
        for (at, r) in std::mem::take(&mut self.spooled) {
            match r {
                Ok(s) => out.push((at, s)),
                Err(why) => {
                    log::error!("{}: spooling the APPEND message failed: {why}", self.peer);
                    return Err(HandlerError::No(format!("[SERVERBUG] {why}")));
                }
            }
        }
        Ok(out)
    }

    /// One message's bytes, within the size limit and not empty.
    fn content(&self, m: AppendMessage, spooled: &mut Spooled) -> Result<Content, HandlerError> {
        let content = if m.catenate {
            self.catenate(m.parts, spooled)?
        } else {
            match m.parts.into_iter().next() {
                Some(AppendPart::Text { at, data }) => literal(at, data, spooled),
                _ => return Err(HandlerError::Bad("Missing the APPEND message.".into())),
            }
        };
        if content.len() > self.shared.limits.max_message_size {
            return Err(too_big());
        }
        if content.len() == 0 {
            return Err(HandlerError::No("[CANNOT] Empty message.".into()));
        }
        Ok(content)
    }

    /// RFC 4469 §5: the parts in order, put together in a file.
    fn catenate(
        &self,
        parts: Vec<AppendPart>,
        spooled: &mut Spooled,
    ) -> Result<Content, HandlerError> {
        let max = self.shared.limits.max_message_size;
        let dir = self
            .spool_dir()
            .ok_or_else(|| HandlerError::Bad("Not authenticated.".into()))?;
        let mut out = Spool::create(&dir)?;
        for part in parts {
            match part {
                AppendPart::Text { at, data } => match literal(at, data, spooled) {
                    Content::Bytes(b) => out.write(&b)?,
                    Content::File(s) => copy_into(&mut out, &s, max)?,
                },
                AppendPart::Url(raw) => {
                    let bytes = self.url_bytes(&raw)?;
                    if out.len().saturating_add(bytes.len() as u64) > max {
                        return Err(too_big());
                    }
                    out.write(&bytes)?;
                }
            }
            if out.len() > max {
                return Err(too_big());
            }
        }
        Ok(Content::File(out))
    }

    /// The bytes an IMAP URL names (RFC 5092): a message of this user's, a section of it
    /// as FETCH `BODY[section]` gives it, a range of those (RFC 5550). Anything wrong with
    /// it is `NO [BADURL url]` (RFC 4469 §6).
    fn url_bytes(&self, raw: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let bad = |why: &str| HandlerError::No(format!("[BADURL {}] {why}", shown(raw)));
        let u = url::parse(raw).map_err(|e| bad(&format!("Invalid IMAP URL: {e}")))?;
        let max = self.shared.limits.max_message_size;
        let name = normalize_mailbox(&u.mailbox);
        let mbox = match self.store()?.open_mailbox(&name, true) {
            Ok(m) => m,
            Err(StoreError::NotFound(_)) => {
                return Err(bad(&format!("Mailbox doesn't exist: {}", u.mailbox)))
            }
            Err(e) => return Err(bad(&e.to_string())),
        };
        let file = {
            let mut g = mbox.lock();
            g.mbox.refresh()?;
            if u.uid_validity.is_some_and(|v| v != g.mbox.uid_validity()) {
                return Err(bad("UIDVALIDITY doesn't match"));
            }
            g.mbox
                .open_message(u.uid)
                .map_err(|_| bad("Message not found"))?
        };
        // Served with CRLF line ends, which can double a file of bare LFs.
        if file.len > max.saturating_mul(2) {
            return Err(too_big());
        }
        let mut data = Vec::with_capacity(file.len as usize);
        (&file.file)
            .take(file.len)
            .read_to_end(&mut data)
            .map_err(|e| bad(&format!("Reading the message failed: {e}")))?;
        let msg = crate::mime::to_crlf(&data);
        let part = match &u.section {
            None => &msg[..],
            Some(s) => {
                let root = crate::mime::parse::parse(&msg);
                let sec = crate::mime::section::section(&msg, &root, s)
                    .ok_or_else(|| bad("No such section in the message"))?;
                return Ok(partial(&sec, u.partial).to_vec());
            }
        };
        Ok(partial(part, u.partial).to_vec())
    }
}

/// RFC 5550: `offset[.length]` of `data` (empty past its end).
fn partial(data: &[u8], range: Option<(u32, Option<u32>)>) -> &[u8] {
    let Some((off, len)) = range else {
        return data;
    };
    let start = (off as usize).min(data.len());
    let end = match len {
        Some(l) => start.saturating_add(l as usize).min(data.len()),
        None => data.len(),
    };
    &data[start..end]
}

/// Append the file `from` was received into to `out`, in pieces.
fn copy_into(out: &mut Spool, from: &Spool, max: u64) -> Result<(), HandlerError> {
    let mut f = std::fs::File::open(from.path())
        .map_err(|e| HandlerError::No(format!("[SERVERBUG] reading the literal: {e}")))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| HandlerError::No(format!("[SERVERBUG] reading the literal: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        out.write(&buf[..n])?;
        if out.len() > max {
            return Err(too_big());
        }
    }
}
