//! METADATA storage (touches disk): mailbox GUIDs from the uidlist, and the user's
//! [`attributes`] file, read whole and replaced atomically under Dovecot's dotlock.
//!
//! Entries are keyed by the mailbox GUID Dovecot keeps in the `dovecot-uidlist` header
//! (`G<hex>`), which pimap writes too: a RENAME moves the directory and its uidlist, so the
//! entries follow the mailbox without being rewritten; a DELETE removes them.

use super::attributes::{self, Entries};
use super::lock::{DotLock, DEFAULT_TIMEOUT};
use super::mailbox::{random_guid, read_uidlist, sync_locked, UIDLIST};
use super::{read_optional, UserStore};
use crate::store::{Result, StoreError};
use std::path::Path;
use std::time::Duration;

/// Dovecot's dict-file dotlock counts as stale after a minute (`file_dict_dotlock_settings`).
const STALE_AFTER: Duration = Duration::from_secs(60);

impl UserStore {
    /// The GUID of an existing mailbox (32 hex digits), as Dovecot knows it: from the
    /// uidlist, which is created (or given a GUID, if it has none) under its lock.
    pub fn mailbox_guid(&self, name: &str) -> Result<String> {
        let (_, dir) = self.mailbox_dir(name, true)?;
        if let Ok(Some(list)) = read_uidlist(&dir)? {
            if let Some(g) = list.guid {
                return Ok(g);
            }
        }
        let lock = DotLock::acquire(&dir.join(UIDLIST))?;
        let list = match read_uidlist(&dir)? {
            Ok(Some(mut list)) if list.guid.is_none() => {
                list.guid = Some(random_guid());
                lock.replace(list.serialize().as_bytes())?;
                list
            }
            Ok(Some(list)) => list,
            _ => sync_locked(&self.root, &dir, lock)?.0,
        };
        list.guid
            .ok_or_else(|| StoreError::Cannot("the mailbox has no GUID".into()))
    }

    /// The GUID a mailbox's uidlist names, without creating anything (`None`: no uidlist,
    /// so no entries can be keyed by it).
    pub(super) fn existing_guid(dir: &Path) -> Option<String> {
        read_uidlist(dir).ok()?.ok()??.guid
    }

    /// All of the user's entries (see [`attributes`]); an unreadable pair is logged and
    /// skipped.
    pub fn attributes(&self) -> Result<Entries> {
        let path = self.root.join(attributes::FILE);
        Ok(match read_optional(&path)? {
            Some(bytes) => parse_logged(&path, &bytes).0,
            None => Entries::new(),
        })
    }

    /// Change the entries under the file's lock: `change` gets them as on disk and says
    /// whether it changed them (`Ok(true)`: the file is replaced) or why it refused (`Err`,
    /// passed back and nothing written).
    pub fn update_attributes<E>(
        &self,
        change: impl FnOnce(&mut Entries) -> std::result::Result<bool, E>,
    ) -> Result<std::result::Result<(), E>> {
        let path = self.root.join(attributes::FILE);
        let lock = DotLock::acquire_with(&path, DEFAULT_TIMEOUT, STALE_AFTER)?;
        let (mut entries, skipped) = match read_optional(&path)? {
            Some(bytes) => parse_logged(&path, &bytes),
            None => (Entries::new(), 0),
        };
        match change(&mut entries) {
            Err(e) => Ok(Err(e)),
            Ok(false) => Ok(Ok(())),
            Ok(true) => {
                if skipped > 0 {
                    keep_corrupt(&path);
                }
                lock.replace(&attributes::serialize(&entries))?;
                Ok(Ok(()))
            }
        }
    }

    /// Remove a deleted mailbox's entries (best effort: logged if it fails).
    pub(super) fn forget_attributes(&self, guid: &str) {
        if let Err(e) = self.update_attributes(|e| Ok::<_, ()>(attributes::forget_mailbox(e, guid)))
        {
            log::warn!("removing the METADATA entries of mailbox {guid}: {e}");
        }
    }
}

fn parse_logged(path: &Path, bytes: &[u8]) -> (Entries, usize) {
    let parsed = attributes::parse(bytes);
    if parsed.skipped > 0 {
        log::error!(
            "{}: skipped {} malformed entries (the others are used; the file is copied to {}.corrupt \
             at the next change)",
            path.display(),
            parsed.skipped,
            attributes::FILE
        );
    }
    (parsed.entries, parsed.skipped)
}

/// Before a file with malformed pairs is rewritten without them, keep its bytes.
fn keep_corrupt(path: &Path) {
    let aside = path.with_file_name(format!("{}.corrupt", attributes::FILE));
    if let Err(e) = std::fs::copy(path, &aside) {
        log::warn!("copying {} to {}: {e}", path.display(), aside.display());
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_dir;
    use super::*;

    fn guid_in_uidlist(dir: &Path) -> Option<String> {
        UserStore::existing_guid(dir)
    }

    #[test]
    fn guids_are_created_once_and_follow_a_rename() {
        let root = test_dir("meta-guid");
        let store = UserStore::open(&root).unwrap();
        store.create("Box").unwrap();
        assert_eq!(guid_in_uidlist(&root.join(".Box")), None);
        let g = store.mailbox_guid("Box").unwrap();
        assert_eq!(g.len(), 32);
        assert_eq!(
            guid_in_uidlist(&root.join(".Box")).as_deref(),
            Some(g.as_str())
        );
        assert_eq!(store.mailbox_guid("Box").unwrap(), g);
        store.rename("Box", "Moved").unwrap();
        assert_eq!(store.mailbox_guid("Moved").unwrap(), g);
        assert!(matches!(
            store.mailbox_guid("Box"),
            Err(StoreError::NotFound(_))
        ));
        // A uidlist without a GUID (written by an old Dovecot) is given one, UIDs kept.
        std::fs::write(root.join(UIDLIST), "3 V7 N5\n4 :a.host\n").unwrap();
        let inbox = store.mailbox_guid("INBOX").unwrap();
        let text = std::fs::read_to_string(root.join(UIDLIST)).unwrap();
        assert!(
            text.starts_with("3 V7 N5") && text.contains(&format!("G{inbox}")),
            "{text}"
        );
        assert!(text.contains("4 :a.host"), "{text}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn updates_are_atomic_refusals_write_nothing_and_delete_forgets() {
        let root = test_dir("meta-update");
        let store = UserStore::open(&root).unwrap();
        store.create("Box").unwrap();
        let g = store.mailbox_guid("Box").unwrap();
        let key = attributes::mailbox_prefix(true, &g)
            .into_iter()
            .chain(*b"x")
            .collect::<Vec<u8>>();
        store
            .update_attributes(|e| {
                e.insert(key.clone(), b"1".to_vec());
                e.insert(b"priv/other/y".to_vec(), b"2".to_vec());
                Ok::<_, ()>(true)
            })
            .unwrap()
            .unwrap();
        let refused = store.update_attributes(|e| {
            e.clear();
            Err::<bool, &str>("no")
        });
        assert_eq!(refused.unwrap(), Err("no"));
        assert_eq!(store.attributes().unwrap().len(), 2);
        assert!(!root.join("dovecot-attributes.lock").exists());
        store.delete("Box").unwrap();
        let left = store.attributes().unwrap();
        assert_eq!(
            left.keys().collect::<Vec<_>>(),
            vec![&b"priv/other/y".to_vec()]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
