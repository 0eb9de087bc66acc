//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; RFC 3516 BINARY).
//!
//! Owns: settling what a FETCH asks for, and reading each message under the mailbox lock
//! (metadata, cache entry, body, the implicit `\Seen`). The responses are written by
//! `fetch_response`, without the lock.

use super::fetch_body::{self, BodyFile, Need};
use super::fetch_cached;
use super::fetch_response::{self, expunged_fetch, Msg};
use super::view::View;
use super::{Action, HandlerError, Output, Session, Sink};
use crate::imap::types::civil_from_days;
use crate::imap::types::{Command, FetchAttr, SequenceSet};
use crate::mime;
use crate::store::cache::MailboxCache;
use crate::store::maildir::shared::{Open, Shared};
use crate::store::{flag, Flags, StoreError};

/// What a FETCH asks of every message, settled before the first one is read.
struct Request {
    /// The items, with those the command implies (UID, MODSEQ) added.
    items: Vec<FetchAttr>,
    /// RFC 7162 `CHANGEDSINCE`: only messages changed since are fetched.
    changed_since: Option<u64>,
    /// CONDSTORE is enabled: an implicit `\Seen` is reported with its MODSEQ.
    condstore: bool,
    /// Each message's mod-sequence is needed (CONDSTORE or `CHANGEDSINCE`).
    wants_modseq: bool,
    /// What the items need of each message's bytes.
    need: Need,
    /// Some item without PEEK sets `\Seen` (RFC 3501 §6.4.5).
    sets_seen: bool,
    /// `BINARY[]` or `BINARY.SIZE[]` is asked: a big message is streamed for it only when
    /// it has no MIME parts to decode.
    binary_whole: bool,
    /// What the items ask of the metadata cache.
    cached: fetch_cached::Use,
}

/// How fetching one message went.
enum Fetched {
    /// Its response is written (or it did not change since `CHANGEDSINCE`).
    Done,
    /// Another session or process expunged it: what the view knows is written.
    Expunged,
    /// The connection went away while its response streamed.
    Gone,
}

impl Session {
    pub(super) fn fetch(&mut self, tag: &str, cmd: Command) -> Result<Output, HandlerError> {
        let Command::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        } = cmd
        else {
            return Err(HandlerError::Bad("not a FETCH".into()));
        };
        let mut out = Vec::new();
        let req = self.fetch_request(uid, items, changed_since, vanished, &mut out)?;
        // Big bodies stream through the sink as they are read (see `fetch_body`).
        let sink = self.sink.take();
        let view = self.view_mut()?;
        // No EXPUNGE responses during a non-UID FETCH (RFC 3501 §7.4.1).
        view.sync(&mut out, uid)?;
        let idx = view.resolve(&set, uid).map_err(HandlerError::Bad)?;
        if let (true, Some(since)) = (vanished, changed_since) {
            vanished_in_set(view, since, &set, &mut out)?;
        }
        let cache = req.cached.any.then(|| view.shared.cache());
        // RFC 5267 §4.3: the \Seen a body fetch sets may change an updating search's result,
        // reported with this FETCH as Dovecot does (only the fetched messages are looked at).
        let seen: Vec<u32> = match req.sets_seen && view.context.active() {
            true => idx
                .iter()
                .filter_map(|&i| view.msgs.get(i))
                .map(|m| m.uid)
                .collect(),
            false => Vec::new(),
        };
        let Some(missing) = fetch_messages(view, &req, idx, cache.as_deref(), &sink, &mut out)?
        else {
            return Ok(client_gone());
        };
        if !seen.is_empty() {
            seen.into_iter().for_each(|u| view.context.touch(u));
            view.refresh_updates(&mut out);
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

    /// Check the modifiers and add the items the command implies, enabling CONDSTORE when the
    /// command does (its `HIGHESTMODSEQ` response goes to `out`), before any message is read.
    fn fetch_request(
        &mut self,
        uid: bool,
        mut items: Vec<FetchAttr>,
        changed_since: Option<u64>,
        vanished: bool,
        out: &mut Vec<u8>,
    ) -> Result<Request, HandlerError> {
        // RFC 7162 §3.2.6: VANISHED needs QRESYNC enabled.
        if vanished && !self.qresync_enabled() {
            return Err(HandlerError::Bad(
                "The VANISHED modifier needs ENABLE QRESYNC first.".into(),
            ));
        }
        if changed_since.is_some() || items.contains(&FetchAttr::ModSeq) {
            // RFC 7162 §3.1: MODSEQ and CHANGEDSINCE are CONDSTORE-enabling.
            self.enable_condstore(out);
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
        let sets_seen = items.iter().any(|a| match a {
            FetchAttr::Rfc822 | FetchAttr::Rfc822Text => true,
            FetchAttr::BodySection { peek, .. } | FetchAttr::Binary { peek, .. } => !peek,
            _ => false,
        });
        let binary_whole = items.iter().any(|a| match a {
            FetchAttr::Binary { part, .. } | FetchAttr::BinarySize { part } => part.is_empty(),
            _ => false,
        });
        Ok(Request {
            binary_whole,
            need: fetch_body::need(&items),
            cached: fetch_cached::usage(&items),
            items,
            changed_since,
            condstore,
            wants_modseq: condstore || changed_since.is_some(),
            sets_seen,
        })
    }
}

/// RFC 7162 §3.2.6: the expunged UIDs of the set, before the FETCH responses; `*` may stand for
/// UIDs above the largest that still exists.
fn vanished_in_set(
    view: &View,
    since: u64,
    set: &SequenceSet,
    out: &mut Vec<u8>,
) -> Result<(), HandlerError> {
    let shared = view.shared.clone();
    let mut st = shared.lock();
    super::condstore::vanished_earlier(
        view,
        &mut st,
        since,
        &super::condstore::set_ranges(set, u32::MAX),
        out,
    )?;
    Ok(())
}

/// The FETCH responses of the messages at the view's indexes `idx`, in order: `None` when the
/// connection went away, else whether some message had been expunged meanwhile.
fn fetch_messages(
    view: &mut View,
    req: &Request,
    idx: Vec<usize>,
    cache: Option<&MailboxCache>,
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
) -> Result<Option<bool>, HandlerError> {
    // The lock guard must not borrow the view, which each message updates.
    let shared = view.shared.clone();
    let mut missing = false;
    for i in idx {
        match fetch_one(view, &shared, req, i, cache, sink, out)? {
            Fetched::Done => {}
            Fetched::Expunged => missing = true,
            Fetched::Gone => return Ok(None),
        }
    }
    Ok(Some(missing))
}

/// Fetch the message at the view's index `i`. The shared mailbox is locked while its metadata
/// is read and its file opened (or, when small, read); the response is built without it.
fn fetch_one(
    view: &mut View,
    shared: &Shared,
    req: &Request,
    i: usize,
    cache: Option<&MailboxCache>,
    sink: &Option<Sink>,
    out: &mut Vec<u8>,
) -> Result<Fetched, HandlerError> {
    let msg_uid = view.msgs[i].uid;
    let recent = view.msgs[i].recent;
    let mut st = shared.lock();
    let mut modseq = match req.wants_modseq {
        true => st.modseqs()?.get(msg_uid),
        false => 0,
    };
    if req.changed_since.is_some_and(|since| modseq <= since) {
        return Ok(Fetched::Done);
    }
    let Some(meta) = st.mbox.meta(msg_uid).cloned() else {
        drop(st);
        let flags = view.pending_flags(msg_uid).cloned().unwrap_or_default();
        expunged_fetch(out, i + 1, &req.items, (msg_uid, &flags, recent), modseq);
        return Ok(Fetched::Expunged);
    };
    let hit = cache.and_then(|c| fetch_cached::lookup(c, &st.mbox, msg_uid, req.cached));
    let from_cache = hit
        .as_deref()
        .is_some_and(|h| fetch_cached::sufficient(h, req.cached));
    let (raw, file) = if req.need != Need::Nothing && !from_cache {
        match load_body(&mut st, req, msg_uid)? {
            Some(Ok(file)) => (None, Some(file)),
            Some(Err(r)) => (Some(r), None),
            None => {
                drop(st);
                let flags = meta.flags.clone();
                expunged_fetch(out, i + 1, &req.items, (msg_uid, &flags, recent), modseq);
                return Ok(Fetched::Expunged);
            }
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
    let filled = match (cache, &raw, &hit) {
        (Some(c), Some(_), None) => fetch_cached::fill(c, &st.mbox, msg_uid, msg),
        _ => None,
    };
    let save_date = match req.items.contains(&FetchAttr::SaveDate) {
        true => saved_at(&st, msg_uid)?,
        false => None,
    };
    let mut flags = meta.flags.clone();
    let flags_changed = mark_seen(view, &mut st, req, msg_uid, &mut flags, &mut modseq)?;
    // Another session may have given the mailbox a keyword since this command's sync:
    // announced before the FETCH that could carry it (RFC 3501 §7.2.6).
    view.announce_keywords_in(&st, out);
    drop(st);
    let m = Msg {
        seq: i + 1,
        uid: msg_uid,
        recent,
        meta: &meta,
        flags: &flags,
        flags_changed,
        modseq,
        msg,
        file: file.as_ref(),
        cached: hit.as_deref().or(filled.as_deref()),
        save_date,
    };
    Ok(
        match fetch_response::write(&req.items, req.condstore, &m, sink, out)? {
            true => Fetched::Done,
            false => Fetched::Gone,
        },
    )
}

/// Read the message for items that need its bytes, under the mailbox lock: opened when the
/// items can be served from the file ([`Need::Streamable`]; a small message, or one whose
/// `BINARY[]` has parts to decode, is read whole all the same), else read whole. `None`: its file is gone (expunged meanwhile).
fn load_body(
    st: &mut Open,
    req: &Request,
    uid: u32,
) -> Result<Option<Result<BodyFile, Vec<u8>>>, HandlerError> {
    let loaded = match req.need {
        Need::Streamable => st
            .mbox
            .open_message(uid)
            .and_then(BodyFile::new)
            .and_then(|body| match body {
                Ok(f) if req.binary_whole && !mime::binary::verbatim(&f.header) => {
                    f.read_whole().map(Err)
                }
                other => Ok(other),
            }),
        _ => st.mbox.read(uid).map(Err),
    };
    match loaded {
        Ok(body) => Ok(Some(body)),
        Err(StoreError::Expunged(_)) | Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// RFC 8514 SAVEDATE of `uid`: `None` (NIL) when its file went away meanwhile.
pub(super) fn saved_at(st: &Open, uid: u32) -> Result<Option<i64>, HandlerError> {
    match st.mbox.save_date(uid) {
        Ok(t) => Ok(Some(t)),
        Err(StoreError::Expunged(_)) | Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// RFC 3501 §6.4.5: fetching a body without PEEK sets `\Seen` (not in a read-only mailbox).
/// `flags` and `modseq` become the message's new ones; true when the flag was set, so that the
/// response reports it. A message expunged meanwhile keeps `\Seen` in `flags` only.
fn mark_seen(
    view: &View,
    st: &mut Open,
    req: &Request,
    uid: u32,
    flags: &mut Flags,
    modseq: &mut u64,
) -> Result<bool, HandlerError> {
    if !req.sets_seen || view.read_only || flags.system & flag::SEEN != 0 {
        return Ok(false);
    }
    flags.system |= flag::SEEN;
    match view.set_flags(st, uid, flags) {
        Ok(()) => {
            if let Some(m) = st.mbox.meta(uid) {
                *flags = m.flags.clone();
            }
            // The implicit \Seen is a change with its own mod-sequence.
            if req.wants_modseq {
                *modseq = st.modseqs()?.get(uid);
            }
            Ok(true)
        }
        Err(StoreError::Expunged(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The connection went away while a response streamed (or a message file could not be read
/// after its literal was announced): nothing more can be said on it.
fn client_gone() -> Output {
    Output {
        bytes: Vec::new(),
        action: Action::Close,
    }
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
