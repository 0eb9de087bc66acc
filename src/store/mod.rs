//! The mail store seam: the session talks to this API only. Maildir (Dovecot's on-disk
//! format) is the implementation.
//!
//! Owns: mailbox names on disk, UIDs, flags, keywords, subscriptions, METADATA entries
//! (`maildir::attributes`), delivery.
//! Never: trusts a mailbox name or a file name from disk or the network without validating it.

pub mod cache;
pub mod maildir;

pub use maildir::{
    deliver, deliver_from_reader, deliver_link, is_delivered, Mailbox, MessageFile, Spool,
    UserStore,
};

use std::fmt;

/// System flags as a bit set, plus keywords.
pub mod flag {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
}

/// A message's flags: system flags (see [`flag`]) and keywords (case preserved; compared
/// case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub system: u8,
    pub keywords: Vec<String>,
}

/// What the session knows about one message without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    /// RFC822.SIZE: the size with CRLF line endings (Dovecot's `W=` / vsize).
    pub size: u64,
    /// INTERNALDATE: the file's mtime, Unix seconds.
    pub internal_date: i64,
    /// True if this session moved the message from `new/` to `cur/` (IMAP `\Recent`).
    pub recent: bool,
}

/// STATUS-style counts for a mailbox that need not be selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    pub recent: u32,
    pub unseen: u32,
    pub uid_next: u32,
    pub uid_validity: u32,
    /// Sum of RFC822.SIZEs.
    pub size: u64,
}

/// One mailbox in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    /// IMAP name as on the wire: modified UTF-7, `.` as separator, `INBOX` for the root.
    pub name: String,
    /// True when no such mailbox exists but children do (`\NoSelect` / `\NonExistent`).
    pub nonexistent: bool,
    pub has_children: bool,
}

#[derive(Debug)]
pub enum StoreError {
    /// No such mailbox (`NO [NONEXISTENT]`).
    NotFound(String),
    /// Mailbox already exists (`NO [ALREADYEXISTS]`).
    AlreadyExists(String),
    /// A name that is not allowed (traversal, bad characters, bad UTF-7): `NO [CANNOT]`.
    BadName(String),
    /// The operation is not allowed (e.g. deleting INBOX): `NO [CANNOT]`.
    Cannot(String),
    /// The message was expunged meanwhile (`NO [EXPUNGEISSUED]`).
    Expunged(u32),
    /// Lock held too long by another process (`NO [INUSE]`).
    Locked(String),
    /// A message larger than allowed (`NO [TOOBIG]`).
    TooBig,
    /// Disk or OS error, with what was being done (`NO [SERVERBUG]`/`[UNAVAILABLE]`).
    Io(String, std::io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound(n) => write!(f, "mailbox {n:?} does not exist"),
            StoreError::AlreadyExists(n) => write!(f, "mailbox {n:?} already exists"),
            StoreError::BadName(r) => write!(f, "invalid mailbox name: {r}"),
            StoreError::Cannot(r) => write!(f, "{r}"),
            StoreError::Expunged(u) => write!(f, "message UID {u} has been expunged"),
            StoreError::Locked(r) => write!(f, "mailbox is locked: {r}"),
            StoreError::TooBig => write!(f, "message too large"),
            StoreError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;
