//! SPECIAL-USE (RFC 6154): which mailboxes carry `\Sent`, `\Drafts`, `\Trash`, `\Junk` or
//! `\Archive`, and the helper that creates those folders for a new user.
//!
//! The names follow Dovecot's stock `15-mailboxes.conf` (Drafts, Junk, Trash, Sent and
//! "Sent Messages" as a second `\Sent`), plus `Archive`, so a Maildir shared with Dovecot shows
//! the same attributes in both servers. Only top-level folders are special. Never: renames or
//! deletes anything; the attributes are derived from names, not stored.

use crate::store::{Result, StoreError, UserStore};

/// The folders created by [`autocreate`], with their attribute (RFC 6154 §2).
pub const FOLDERS: [(&str, &str); 5] = [
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// The special-use attribute of a mailbox name, if any.
pub fn attribute(name: &str) -> Option<&'static str> {
    if name == "Sent Messages" {
        return Some("\\Sent");
    }
    FOLDERS.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// Create and subscribe whichever of [`FOLDERS`] is missing (as Dovecot's `auto = subscribe`).
/// Idempotent: existing folders and subscriptions are left alone.
pub fn autocreate(store: &UserStore) -> Result<()> {
    let subs = store.subscriptions()?;
    for (name, _) in FOLDERS {
        match store.create(name) {
            Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        if !subs.iter().any(|s| s == name) {
            store.set_subscribed(name, true)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes() {
        assert_eq!(attribute("Sent"), Some("\\Sent"));
        assert_eq!(attribute("Sent Messages"), Some("\\Sent"));
        assert_eq!(attribute("Archive"), Some("\\Archive"));
        assert_eq!(attribute("sent"), None);
        assert_eq!(attribute("Work.Sent"), None);
        assert_eq!(attribute("INBOX"), None);
    }

    #[test]
    fn autocreate_is_idempotent() {
        let dir = std::env::temp_dir().join(format!("pimap-special-use-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let Ok(store) = UserStore::open(&dir) else {
            panic!("cannot open a temp store")
        };
        assert!(autocreate(&store).is_ok());
        assert!(autocreate(&store).is_ok());
        let names: Vec<String> = store
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name)
            .collect();
        let subs = store.subscriptions().unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        for (n, _) in FOLDERS {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
            assert_eq!(
                subs.iter().filter(|s| *s == n).count(),
                1,
                "{n} in {subs:?}"
            );
        }
    }
}
