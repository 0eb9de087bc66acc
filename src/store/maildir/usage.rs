//! Quota usage: how many messages, and how many bytes (their RFC822.SIZE, Dovecot's vsize),
//! a user's mailboxes hold together.
//!
//! Kept incremental without an index of its own: each mailbox's total is remembered with the
//! mtimes of its `new/` and `cur/` (every delivery, expunge, move or flag change renames or
//! creates a file there, by pimap, Dovecot or anyone else), so a question costs a listing of
//! the mail root and two `stat`s per mailbox; only a mailbox whose directories changed is
//! counted again, from its shared state ([`UserStore::status_mailbox`]: what changed since its
//! last refresh, one scan if no session has it open). A total is trusted only when it was made
//! more than [`SETTLE`] after the newest of those mtimes: a change in the same clock tick as
//! the count would otherwise leave the mtimes as they were.

use super::UserStore;
use crate::auth::quota::Usage;
use crate::store::Result;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long after its directories' last change a mailbox's total is trusted (the coarsest
/// mtime granularity pimap meets: whole seconds).
const SETTLE: Duration = Duration::from_secs(1);

/// One mailbox's remembered total.
#[derive(Clone, Copy)]
struct Counted {
    mtimes: [Option<SystemTime>; 2],
    /// When the count began.
    at: SystemTime,
    usage: Usage,
}

/// Totals by mailbox directory, for every user of the process.
static COUNTED: Mutex<Option<HashMap<PathBuf, Counted>>> = Mutex::new(None);

fn mtimes(dir: &Path) -> [Option<SystemTime>; 2] {
    ["new", "cur"].map(|sub| {
        std::fs::metadata(dir.join(sub))
            .and_then(|m| m.modified())
            .ok()
    })
}

fn remembered(dir: &Path, now_mtimes: &[Option<SystemTime>; 2]) -> Option<Usage> {
    let all = COUNTED.lock().unwrap_or_else(|e| e.into_inner());
    let c = all.as_ref()?.get(dir)?;
    let newest = now_mtimes.iter().flatten().max()?;
    let settled = c.at.duration_since(*newest).is_ok_and(|d| d > SETTLE);
    (c.mtimes == *now_mtimes && settled).then_some(c.usage)
}

fn remember(dir: &Path, counted: Counted) {
    let mut all = COUNTED.lock().unwrap_or_else(|e| e.into_inner());
    all.get_or_insert_with(HashMap::new)
        .insert(dir.to_path_buf(), counted);
}

/// Forget the totals of mailboxes under `root` that `keep` does not name (deleted or renamed
/// since), so the table does not grow with every folder ever seen.
fn forget_others(root: &Path, keep: &HashSet<PathBuf>) {
    let mut all = COUNTED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(map) = all.as_mut() {
        map.retain(|d, _| !d.starts_with(root) || keep.contains(d));
    }
}

impl UserStore {
    /// The messages and bytes in every mailbox for which `counted(name)` (IMAP name) holds.
    pub fn usage(&self, counted: impl Fn(&str) -> bool) -> Result<Usage> {
        let mut total = Usage::default();
        let mut seen = HashSet::new();
        for entry in self.list()? {
            if entry.nonexistent || !counted(&entry.name) {
                continue;
            }
            let dir = self.dir_of(&entry.name);
            let u = match self.mailbox_usage(&entry.name, &dir) {
                Ok(u) => u,
                // Deleted or renamed while we looked: it holds nothing now.
                Err(crate::store::StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            total.bytes = total.bytes.saturating_add(u.bytes);
            total.messages = total.messages.saturating_add(u.messages);
            seen.insert(dir);
        }
        forget_others(&self.root, &seen);
        Ok(total)
    }

    fn mailbox_usage(&self, name: &str, dir: &Path) -> Result<Usage> {
        let before = mtimes(dir);
        if let Some(u) = remembered(dir, &before) {
            return Ok(u);
        }
        let at = SystemTime::now();
        let shared = self.status_mailbox(name)?;
        let status = {
            let mut g = shared.lock();
            g.mbox.refresh()?;
            g.mbox.status()
        };
        let usage = Usage {
            bytes: status.size,
            messages: u64::from(status.messages),
        };
        remember(
            dir,
            Counted {
                mtimes: before,
                at,
                usage,
            },
        );
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{deliver, test_dir};
    use super::*;

    fn msg(n: usize) -> Vec<u8> {
        let mut m = b"Subject: x\r\n\r\n".to_vec();
        m.resize(n, b'x');
        m
    }

    #[test]
    fn counts_every_mailbox_and_sees_changes_made_outside() {
        let root = test_dir("usage");
        let store = UserStore::open(&root).unwrap();
        store.create("Trash").unwrap();
        store.create("Spam").unwrap();
        let all = |_: &str| true;
        assert_eq!(store.usage(all).unwrap(), Usage::default());
        deliver(&root, "a1", &msg(100)).unwrap();
        deliver(&root.join(".Trash"), "t1", &msg(50)).unwrap();
        deliver(&root.join(".Spam"), "s1", &msg(7)).unwrap();
        let u = store.usage(all).unwrap();
        assert_eq!(
            u,
            Usage {
                bytes: 157,
                messages: 3
            }
        );
        assert_eq!(
            store.usage(|n| n != "Spam").unwrap(),
            Usage {
                bytes: 150,
                messages: 2
            }
        );
        // Another program delivers and removes files: seen at once (the mtimes changed).
        deliver(&root, "a2", &msg(1000)).unwrap();
        let gone = std::fs::read_dir(root.join(".Trash/new"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::remove_file(gone).unwrap();
        assert_eq!(
            store.usage(all).unwrap(),
            Usage {
                bytes: 1107,
                messages: 3
            }
        );
        store.delete("Spam").unwrap();
        assert_eq!(
            store.usage(all).unwrap(),
            Usage {
                bytes: 1100,
                messages: 2
            }
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
