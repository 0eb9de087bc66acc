//! FETCH answers from the persistent metadata cache (`store::cache`): ENVELOPE, BODY,
//! BODYSTRUCTURE, RFC822.SIZE, PREVIEW and the header sections (`BODY[HEADER]`, `HEADER.FIELDS`,
//! `HEADER.FIELDS.NOT`, `RFC822.HEADER`) without opening the message file.
//!
//! Owns: deciding whether a FETCH's items can all be served from a cache entry, and filling
//! the cache when a message had to be read whole for one of them. Never: answers anything
//! differently from the uncached path (the entry holds the very bytes the `mime` functions
//! produce, computed from the same CRLF message).

use crate::imap::types::{FetchAttr, SectionText};
use crate::mime::SearchDoc;
use crate::store::cache::{self, MailboxCache, Meta};
use crate::store::Mailbox;
use std::sync::Arc;

/// What a FETCH's items ask of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Use {
    /// Some item is answered from the cache when there is an entry.
    pub any: bool,
    /// Every item needing the message's bytes can be answered from an entry.
    pub all: bool,
    /// Some item needs the header block.
    pub header: bool,
}

pub(super) fn usage(items: &[FetchAttr]) -> Use {
    let mut u = Use {
        any: false,
        all: true,
        header: false,
    };
    for a in items {
        match a {
            FetchAttr::Flags
            | FetchAttr::InternalDate
            | FetchAttr::Rfc822Size
            | FetchAttr::Uid
            | FetchAttr::ModSeq
            | FetchAttr::SaveDate => {}
            FetchAttr::Envelope
            | FetchAttr::Body
            | FetchAttr::BodyStructure
            | FetchAttr::Preview { .. } => u.any = true,
            FetchAttr::Rfc822Header => {
                u.any = true;
                u.header = true;
            }
            FetchAttr::BodySection { section, .. }
                if section.part.is_empty()
                    && matches!(
                        section.text,
                        Some(
                            SectionText::Header
                                | SectionText::HeaderFields(_)
                                | SectionText::HeaderFieldsNot(_)
                        )
                    ) =>
            {
                u.any = true;
                u.header = true;
            }
            _ => u.all = false,
        }
    }
    u
}

/// The entry for message `uid`, when some item of `u` uses one.
pub(super) fn lookup(c: &MailboxCache, mbox: &Mailbox, uid: u32, u: Use) -> Option<Arc<Meta>> {
    if !u.any {
        return None;
    }
    let (base, size) = mbox.cache_key(uid)?;
    c.get(base, size)
}

/// True if `entry` answers every item of `u`: the message file need not be opened.
pub(super) fn sufficient(entry: &Meta, u: Use) -> bool {
    u.all && (!u.header || entry.header.is_some())
}

/// The entry of message `uid`, read whole as `msg` (CRLF): computed and remembered unless
/// there is one already.
pub(super) fn fill(c: &MailboxCache, mbox: &Mailbox, uid: u32, msg: &[u8]) -> Option<Arc<Meta>> {
    let (base, size) = mbox.cache_key(uid)?;
    if let Some(have) = c.get(base, size) {
        return Some(have);
    }
    let meta = cache::compute(msg);
    c.put(base, size, &meta);
    Some(Arc::new(meta))
}

/// A SEARCH document of message `uid`'s header block from its cache entry (header keys and
/// the sent date read nothing else).
pub(super) fn header_doc(
    c: &MailboxCache,
    mbox: &Mailbox,
    uid: u32,
    window: &mut cache::Window,
) -> Option<SearchDoc> {
    let (base, size) = mbox.cache_key(uid)?;
    c.header(base, size, window).map(SearchDoc::from_vec)
}
