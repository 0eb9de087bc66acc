//! IMAP `\Recent` (RFC 3501 §2.3.2): a message is recent for the first session that selects its
//! mailbox read-write after it arrived. Dovecot keeps this in its index; pimap keeps the highest
//! UID already claimed in a small file `pimap-recent` beside `dovecot-uidlist` (Dovecot ignores
//! it). With no marker yet every message counts as recent once, as Dovecot does with a new index.

use super::modseq::ModSeqs;
use super::Mailbox;
use crate::store::MessageMeta;
use std::path::Path;

const FILE: &str = "pimap-recent";

/// The highest UID claimed so far (0 when there is no valid marker yet).
pub(super) fn read(dir: &Path) -> Option<u32> {
    let s = std::fs::read_to_string(dir.join(FILE)).unwrap_or_default();
    Some(s.trim().parse().unwrap_or(0))
}

pub fn is_recent(claimed: Option<u32>, m: &MessageMeta) -> bool {
    match claimed {
        Some(c) => m.uid > c,
        None => m.recent,
    }
}

/// Record that UIDs up to `uid` have been seen by a read-write session (write + rename).
fn claim(dir: &Path, uid: u32) {
    if read(dir) == Some(uid) {
        return;
    }
    // Sessions of one process claim concurrently: each writes its own temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{FILE}.{}.{n}.tmp", std::process::id()));
    let res = std::fs::write(&tmp, format!("{uid}\n"))
        .and_then(|_| std::fs::rename(&tmp, dir.join(FILE)));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        log::warn!("cannot record recent marker in {}: {e}", dir.display());
    }
}

impl Mailbox {
    /// The highest UID a read-write session has already been told of as `\Recent`.
    pub fn recent_claimed(&self) -> Option<u32> {
        read(self.path())
    }

    /// Record that UIDs up to `uid` have been seen by a read-write session.
    pub fn claim_recent(&self, uid: u32) {
        claim(self.path(), uid)
    }

    /// This mailbox's mod-sequences (RFC 7162), as kept beside `dovecot-uidlist`.
    pub fn mod_seqs(&self) -> ModSeqs {
        ModSeqs::new(self.path())
    }
}
