//! Dovecot-compatible Maildir++ (see shared notes): `dovecot-uidlist` v3, `dovecot-keywords`,
//! `subscriptions`, `dovecot-uidvalidity`, file names `<unique>,S=<n>,W=<n>:2,<flags>`, the
//! `dovecot-uidlist.lock` dotlock. Pure parsers live in submodules; this file touches disk.

use super::{Flags, MailboxEntry, MailboxStatus, MessageMeta, Result};
use std::path::{Path, PathBuf};

/// One user's mail root (INBOX is the root itself; folders are `.Name` directories).
pub struct UserStore {
    root: PathBuf,
}

impl UserStore {
    /// Open (creating `cur/ new/ tmp/` if missing) the Maildir at `root`.
    pub fn open(root: &Path) -> Result<UserStore> {
        let _ = root;
        todo!("UserStore::open")
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// All mailboxes, INBOX first. Names as on the wire (see [`MailboxEntry`]).
    pub fn list(&self) -> Result<Vec<MailboxEntry>> {
        todo!()
    }
    pub fn create(&self, _name: &str) -> Result<()> {
        todo!()
    }
    pub fn delete(&self, _name: &str) -> Result<()> {
        todo!()
    }
    /// RENAME, including children; renaming INBOX moves its messages to the new mailbox and
    /// leaves INBOX empty (RFC 3501 §6.3.5).
    pub fn rename(&self, _from: &str, _to: &str) -> Result<()> {
        todo!()
    }
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        todo!()
    }
    pub fn set_subscribed(&self, _name: &str, _subscribed: bool) -> Result<()> {
        todo!()
    }
    pub fn status(&self, _name: &str) -> Result<MailboxStatus> {
        todo!()
    }
    /// Open a mailbox for SELECT (`read_only` = EXAMINE: never moves new/ → cur/, never writes).
    pub fn open_mailbox(&self, _name: &str, _read_only: bool) -> Result<Mailbox> {
        todo!()
    }
}

/// A selected mailbox. Holds the current list of messages in ascending UID order; `refresh`
/// brings it up to date with the disk (other sessions, Dovecot, the S3 sync).
pub struct Mailbox {
    _p: (),
}

impl Mailbox {
    pub fn name(&self) -> &str {
        todo!()
    }
    pub fn uid_validity(&self) -> u32 {
        todo!()
    }
    pub fn uid_next(&self) -> u32 {
        todo!()
    }
    pub fn read_only(&self) -> bool {
        todo!()
    }
    /// Keywords defined for this mailbox (for FLAGS / PERMANENTFLAGS).
    pub fn keywords(&self) -> Vec<String> {
        todo!()
    }
    /// Rescan the disk if anything changed (cheap when nothing did: compares mtimes).
    pub fn refresh(&mut self) -> Result<()> {
        todo!()
    }
    /// Messages in ascending UID order, as of the last `refresh`.
    pub fn messages(&self) -> &[MessageMeta] {
        todo!()
    }
    /// The message's bytes as stored.
    pub fn read(&self, _uid: u32) -> Result<Vec<u8>> {
        todo!()
    }
    /// Replace a message's flags (renames the file; records new keywords).
    pub fn set_flags(&mut self, _uid: u32, _flags: &Flags) -> Result<()> {
        todo!()
    }
    /// APPEND into this mailbox; returns the new UID.
    pub fn append(&mut self, _data: &[u8], _flags: &Flags, _internal_date: Option<i64>) -> Result<u32> {
        todo!()
    }
    /// COPY `uids` into `dest` (hard link when possible); returns (source UID, new UID) pairs.
    pub fn copy_to(&self, _uids: &[u32], _dest: &mut Mailbox) -> Result<Vec<(u32, u32)>> {
        todo!()
    }
    /// Remove messages; returns the UIDs actually removed.
    pub fn expunge(&mut self, _uids: &[u32]) -> Result<Vec<u32>> {
        todo!()
    }
}

/// Deliver a message into the Maildir at `maildir` (a mailbox directory holding cur/new/tmp):
/// written to `tmp/`, fsynced, renamed into `new/` as `<unique>,S=<size>`, directory fsynced.
/// If a file whose name starts with `<unique>` already exists in new/ or cur/, nothing is
/// written and its path is returned (idempotent redelivery for the S3 sync).
pub fn deliver(_maildir: &Path, _unique: &str, _data: &[u8]) -> Result<PathBuf> {
    todo!("deliver")
}
