//! Dovecot-compatible Maildir++ (see `/work/shared/notes/dovecot-compat.md`): `dovecot-uidlist`
//! v3, `dovecot-keywords`, `subscriptions`, `dovecot-uidvalidity`, file names
//! `<unique>,S=<n>,W=<n>:2,<flags>`, the `dovecot-uidlist.lock` dotlock; plus pimap's own
//! `pimap-recent` (`session::view`), `pimap-modseq` ([`modseq`], RFC 7162 mod-sequences) and
//! `pimap-keywords` ([`extra_keywords`], keywords beyond the 26 file-name letters), which
//! Dovecot ignores.
//!
//! Owns: the user's mail root on disk. Pure parsers live in [`name`], [`filename`],
//! [`uidlist`], [`keywords`] and [`subscriptions`]; [`lock`], [`uidvalidity`], `mailbox`,
//! `delivery` and this file touch the disk. Never: follows a symlink out of the root, trusts a
//! name from disk or the network unvalidated, or loses `dovecot-uidlist` (UIDs must survive,
//! RFC 3501 §2.3.1.1).

pub mod attributes;
pub mod changes;
mod delivery;
mod durable;
pub mod extra_keywords;
pub mod filename;
pub mod keywords;
pub mod lock;
mod mailbox;
mod metadata;
pub mod modseq;
pub mod name;
pub mod recent;
pub mod shared;
pub mod subscriptions;
pub mod uidlist;
pub mod uidvalidity;
mod usage;
#[cfg(target_os = "linux")]
pub mod wake;
pub mod watch;

pub use delivery::{deliver, deliver_from_reader, deliver_link, is_delivered};
pub use durable::Pending;
pub(crate) use mailbox::remove_sorted;
pub use mailbox::{CopySources, Mailbox, MessageFile, Prepared, Spool};

use super::{MailboxEntry, MailboxStatus, Result, StoreError};
use lock::DotLock;
use mailbox::{Sub, EXTRAS, KEYWORDS};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SUBSCRIPTIONS: &str = "subscriptions";
/// Prefix of directories being deleted: `..` + anything is never a valid mailbox name.
const DELETED_PREFIX: &str = "..pimap-deleted-";
/// Maildir spec: files left in tmp/ for 36 hours may be removed. The age is the inode's
/// change time ([`changed_at`]), never the mtime: APPEND sets a tmp/ file's mtime to the
/// message's INTERNALDATE (years back for a migration) before renaming it into cur/.
const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

/// When the file's inode last changed (ctime): set by the kernel on every write, utime,
/// chmod or rename, so unlike the mtime no writer can put it into the past (Dovecot judges
/// tmp/ files by it too).
fn changed_at(md: &fs::Metadata) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    let secs = md.ctime();
    let nanos = u32::try_from(md.ctime_nsec()).unwrap_or(0).min(999_999_999);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH
    }
}

pub(crate) fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}", path.display()), e)
}

/// Read a file, `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading", path, e)),
    }
}

/// fsync a directory so a rename in it is durable (best effort).
pub(crate) fn sync_dir(dir: &Path) {
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!("fsync {}: {e}", dir.display());
    }
}

fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let h = fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        filename::sanitize_host(h.trim())
    })
}

/// A fresh unique file name: `<secs>.M<usecs>P<pid>Q<counter>.<host>` (maildir spec).
pub(crate) fn new_unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let q = COUNTER.fetch_add(1, Ordering::Relaxed);
    filename::unique_name(
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        q,
        hostname(),
    )
}

fn mkdir_0700(path: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("creating directory", path, e)),
    }
}

fn ensure_maildir(dir: &Path) -> Result<()> {
    for sub in ["cur", "new", "tmp"] {
        mkdir_0700(&dir.join(sub))?;
    }
    Ok(())
}

/// One user's mail root (INBOX is the root itself; folders are `.Name` directories).
pub struct UserStore {
    root: PathBuf,
    /// Canonical root, to check that symlinked folders stay inside it.
    real_root: PathBuf,
}

impl UserStore {
    /// Open (creating `cur/ new/ tmp/` with mode 0700 if missing) the Maildir at `root`.
    pub fn open(root: &Path) -> Result<UserStore> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| io_err("creating mail root", root, e))?;
        ensure_maildir(root)?;
        // A root whose absolute path the mail user may not search (a data dir pimap reaches
        // through the directory it held open before dropping privileges, privdrop) stays as
        // given: symlinked folders then cannot be shown to stay inside it and are ignored.
        let real_root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let store = UserStore {
            root: root.to_path_buf(),
            real_root,
        };
        store.clean_leftovers();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Finish interrupted deletes and drop stale tmp/ files of INBOX.
    fn clean_leftovers(&self) {
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(DELETED_PREFIX))
                {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.root.join("tmp")) {
            let now = SystemTime::now();
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .ok()
                    .and_then(|m| now.duration_since(changed_at(&m)).ok())
                    .is_some_and(|age| age > TMP_MAX_AGE);
                if old {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    fn canonical(name: &str) -> Result<String> {
        name::validate(name).map_err(StoreError::BadName)
    }

    fn dir_of(&self, canonical: &str) -> PathBuf {
        match name::dir_name(canonical) {
            Some(d) => self.root.join(d),
            None => self.root.clone(),
        }
    }

    /// True if `path` is a mailbox directory inside the root (a symlink is accepted only if
    /// it resolves inside the root).
    fn is_mailbox_dir(&self, path: &Path) -> bool {
        match fs::symlink_metadata(path) {
            Ok(md) if md.is_dir() => true,
            Ok(md) if md.file_type().is_symlink() => match fs::canonicalize(path) {
                Ok(real) if real.starts_with(&self.real_root) && real.is_dir() => true,
                _ => {
                    log::warn!("ignoring {}: symlink out of the mail root", path.display());
                    false
                }
            },
            _ => false,
        }
    }

    fn exists(&self, canonical: &str) -> bool {
        let dir = self.dir_of(canonical);
        (name::is_inbox(canonical) || self.is_mailbox_dir(&dir)) && self.subdirs_inside(&dir)
    }

    /// False if the mailbox's cur/, new/ or tmp/ is a symlink resolving outside the root (a
    /// planted `cur -> /elsewhere` would otherwise be read and written through).
    fn subdirs_inside(&self, dir: &Path) -> bool {
        ["cur", "new", "tmp"].iter().all(|sub| {
            let p = dir.join(sub);
            match fs::symlink_metadata(&p) {
                Ok(md) if md.file_type().is_symlink() => match fs::canonicalize(&p) {
                    Ok(real) if real.starts_with(&self.real_root) => true,
                    _ => {
                        log::warn!("ignoring {}: symlink out of the mail root", p.display());
                        false
                    }
                },
                _ => true,
            }
        })
    }

    /// Every folder directory's name (not INBOX).
    fn folder_names(&self) -> Result<BTreeSet<String>> {
        let rd = fs::read_dir(&self.root).map_err(|e| io_err("listing", &self.root, e))?;
        let mut out = BTreeSet::new();
        for e in rd {
            let e = e.map_err(|e| io_err("listing", &self.root, e))?;
            let Some(dn) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !dn.starts_with('.') || dn == "." || dn == ".." || dn.starts_with(DELETED_PREFIX) {
                continue;
            }
            match name::from_dir_name(&dn) {
                Some(n) if self.is_mailbox_dir(&e.path()) => {
                    out.insert(n);
                }
                Some(_) => {}
                None => log::warn!("ignoring {}: not a valid mailbox name", e.path().display()),
            }
        }
        Ok(out)
    }

    /// All mailboxes, INBOX first, then by name. Parents that exist only through their
    /// children are listed as nonexistent (RFC 3501 §6.3.8 `\Noselect`, RFC 5258
    /// `\NonExistent`).
    pub fn list(&self) -> Result<Vec<MailboxEntry>> {
        let existing = self.folder_names()?;
        let mut all: BTreeSet<String> = existing.clone();
        for n in &existing {
            for a in name::ancestors(n) {
                all.insert(a.to_string());
            }
        }
        all.remove("INBOX");
        let has_children = |n: &str| all.iter().any(|c| name::is_descendant(n, c));
        let mut out = vec![MailboxEntry {
            name: "INBOX".into(),
            nonexistent: false,
            has_children: has_children("INBOX"),
        }];
        for n in &all {
            out.push(MailboxEntry {
                name: n.clone(),
                nonexistent: !existing.contains(n),
                has_children: has_children(n),
            });
        }
        Ok(out)
    }

    /// CREATE (RFC 3501 §6.3.3): a trailing separator is dropped; parents are not required.
    pub fn create(&self, name: &str) -> Result<()> {
        let trimmed = name
            .strip_suffix(name::SEP)
            .filter(|t| !t.is_empty())
            .unwrap_or(name);
        let n = Self::canonical(trimmed)?;
        if self.exists(&n) {
            return Err(StoreError::AlreadyExists(n));
        }
        let dir = self.dir_of(&n);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists(n))
            }
            Err(e) => return Err(io_err("creating mailbox", &dir, e)),
        }
        ensure_maildir(&dir)?;
        let mf = dir.join("maildirfolder");
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&mf)
            .map_err(|e| io_err("creating", &mf, e))?;
        sync_dir(&self.root);
        Ok(())
    }

    /// DELETE (RFC 3501 §6.3.4). The directory goes away; children stay, so the name is then
    /// listed as nonexistent with children (`\Noselect`), as Dovecot does.
    pub fn delete(&self, name: &str) -> Result<()> {
        let n = Self::canonical(name)?;
        if name::is_inbox(&n) {
            return Err(StoreError::Cannot("INBOX cannot be deleted".into()));
        }
        let dir = self.dir_of(&n);
        if !self.is_mailbox_dir(&dir) {
            return Err(StoreError::NotFound(n));
        }
        let guid = Self::existing_guid(&dir);
        let trash = self.root.join(format!("{DELETED_PREFIX}{}", new_unique()));
        fs::rename(&dir, &trash).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(n.clone()),
            _ => io_err("deleting mailbox", &dir, e),
        })?;
        sync_dir(&self.root);
        shared::forget(&dir);
        if fs::symlink_metadata(&trash).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = fs::remove_file(&trash);
        } else if let Err(e) = fs::remove_dir_all(&trash) {
            log::warn!("removing {}: {e}", trash.display());
        }
        // Its METADATA entries go with it, as in Dovecot.
        if let Some(g) = guid {
            self.forget_attributes(&g);
        }
        Ok(())
    }

    /// RENAME, including children; renaming INBOX moves its messages to the new mailbox and
    /// leaves INBOX empty (RFC 3501 §6.3.5).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let f = Self::canonical(from)?;
        let t = Self::canonical(to)?;
        if self.exists(&t) {
            return Err(StoreError::AlreadyExists(t));
        }
        if name::is_inbox(&f) {
            return self.rename_inbox(&t);
        }
        if name::is_descendant(&t, &f) {
            return Err(StoreError::Cannot(
                "cannot rename a mailbox to one of its parents".into(),
            ));
        }
        let folders = self.folder_names()?;
        let children: Vec<&String> = folders
            .iter()
            .filter(|c| name::is_descendant(&f, c))
            .collect();
        let from_exists = folders.contains(&f);
        if !from_exists && children.is_empty() {
            return Err(StoreError::NotFound(f));
        }
        let moves: Vec<(String, String)> = std::iter::once(&f)
            .filter(|_| from_exists)
            .chain(children)
            .map(|c| (c.clone(), format!("{t}{}", &c[f.len()..])))
            .collect();
        for (_, new) in &moves {
            if name::validate(new).is_err() {
                return Err(StoreError::BadName(format!(
                    "{new:?} would be too long or invalid"
                )));
            }
            if self.exists(new) {
                return Err(StoreError::AlreadyExists(new.clone()));
            }
        }
        for (old, new) in &moves {
            let (a, b) = (self.dir_of(old), self.dir_of(new));
            fs::rename(&a, &b).map_err(|e| io_err("renaming mailbox", &a, e))?;
            shared::forget(&a);
        }
        sync_dir(&self.root);
        Ok(())
    }

    fn rename_inbox(&self, to: &str) -> Result<()> {
        self.create(to)?;
        let dest = self.dir_of(to);
        for file in [KEYWORDS, EXTRAS] {
            if let Some(k) = read_optional(&self.root.join(file))? {
                fs::write(dest.join(file), k)
                    .map_err(|e| io_err("writing", &dest.join(file), e))?;
            }
        }
        // Hold INBOX's uidlist lock so no UIDs are being assigned while files move.
        let lock = DotLock::acquire(&self.root.join(mailbox::UIDLIST))?;
        for f in mailbox::scan(&self.root)? {
            let sub = if f.sub == Sub::New { "new" } else { "cur" };
            let a = self.root.join(sub).join(&f.name);
            match fs::rename(&a, dest.join(sub).join(&f.name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("moving", &a, e)),
            }
        }
        drop(lock);
        sync_dir(&dest.join("cur"));
        sync_dir(&dest.join("new"));
        // Give the moved messages UIDs in the new mailbox now.
        Mailbox::load(&self.root, &dest, to, true).map(|_| ())
    }

    /// Subscribed names (LSUB / LIST (SUBSCRIBED)), as stored.
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        let path = self.root.join(SUBSCRIPTIONS);
        Ok(match read_optional(&path)? {
            Some(b) => subscriptions::parse(&String::from_utf8_lossy(&b)).1,
            None => Vec::new(),
        })
    }

    /// SUBSCRIBE / UNSUBSCRIBE (RFC 3501 §6.3.6–7): the mailbox need not exist. The file keeps
    /// the format it had (v2 when new, as Dovecot 2.3 does) and is replaced atomically under its dotlock.
    pub fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<()> {
        let n = Self::canonical(name)?;
        let path = self.root.join(SUBSCRIPTIONS);
        let lock = DotLock::acquire(&path)?;
        let (format, mut names) = match read_optional(&path)? {
            Some(b) => subscriptions::parse(&String::from_utf8_lossy(&b)),
            // Dovecot 2.3 creates new files as version 2 (checked against 2.3.19).
            None => (subscriptions::Format::V2, Vec::new()),
        };
        let before = names.len();
        if subscribed {
            if !names.contains(&n) {
                names.push(n);
            }
        } else {
            names.retain(|x| *x != n);
        }
        if names.len() != before {
            lock.replace(subscriptions::serialize(format, &names).as_bytes())?;
        }
        Ok(())
    }

    /// STATUS counts (RFC 3501 §6.3.10) without moving new/ files to cur/. Files without a
    /// UID get one (so UIDNEXT is right); RECENT counts the files in new/.
    pub fn status(&self, name: &str) -> Result<MailboxStatus> {
        let n = Self::canonical(name)?;
        let dir = self.dir_of(&n);
        if !self.exists(&n) {
            return Err(StoreError::NotFound(n));
        }
        Ok(Mailbox::load(&self.root, &dir, &n, true)?.status())
    }

    /// Open a mailbox for SELECT, APPEND or COPY (`read_only` = EXAMINE: never moves new/ →
    /// cur/, never changes messages; it may still record UIDs for files that have none): the
    /// state every session of the process shares ([`shared`]). Refresh it before use.
    pub fn open_mailbox(&self, name: &str, read_only: bool) -> Result<Arc<shared::Shared>> {
        let (n, dir) = self.mailbox_dir(name, read_only)?;
        shared::open(&self.root, &dir, &n, read_only)
    }

    /// The state to answer STATUS from: the read-write one when a session has the mailbox
    /// selected (already up to date), else a read-only one (STATUS moves nothing from new/ to
    /// cur/). Refresh it before use.
    pub fn status_mailbox(&self, name: &str) -> Result<Arc<shared::Shared>> {
        let (n, dir) = self.mailbox_dir(name, true)?;
        match shared::find(&dir, false) {
            Some(s) => Ok(s),
            None => shared::open(&self.root, &dir, &n, true),
        }
    }

    /// A private copy of a mailbox's state, shared with nobody (tests that play two
    /// processes).
    pub fn load_mailbox(&self, name: &str, read_only: bool) -> Result<Mailbox> {
        let (n, dir) = self.mailbox_dir(name, read_only)?;
        Mailbox::load(&self.root, &dir, &n, read_only)
    }

    /// The directories to watch for changes to the messages of `name`: its new/ and cur/
    /// (`None` for an invalid name). Whether it exists is not checked.
    pub fn message_dirs(&self, name: &str) -> Option<[PathBuf; 2]> {
        let dir = self.dir_of(&Self::canonical(name).ok()?);
        Some([dir.join("new"), dir.join("cur")])
    }

    /// What stays the same when a mailbox is renamed and differs for another one: its
    /// directory's device and inode (NOTIFY tells a rename from a delete and a create).
    pub fn mailbox_identity(&self, name: &str) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.dir_of(&Self::canonical(name).ok()?);
        fs::symlink_metadata(dir).ok().map(|m| (m.dev(), m.ino()))
    }

    /// Wake-ups when any of `dirs` changes (NOTIFY; IDLE uses [`Mailbox::subscribe`]).
    #[cfg(target_os = "linux")]
    pub fn subscribe(&self, dirs: &[PathBuf]) -> std::io::Result<wake::Subscription> {
        wake::subscribe(dirs)
    }

    fn mailbox_dir(&self, name: &str, read_only: bool) -> Result<(String, PathBuf)> {
        let n = Self::canonical(name)?;
        if !self.exists(&n) {
            return Err(StoreError::NotFound(n));
        }
        let dir = self.dir_of(&n);
        if !read_only {
            ensure_maildir(&dir)?;
        }
        Ok((n, dir))
    }
}

/// A fresh empty directory for a test.
#[cfg(test)]
pub(crate) fn test_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pimap-test-{tag}-{}", new_unique()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create test dir");
    d
}

/// The name of the first file in `dir/cur` (tests that hold one message).
#[cfg(test)]
pub(crate) fn first_cur_name(dir: &Path) -> String {
    let entry = fs::read_dir(dir.join("cur"))
        .expect("read cur/")
        .next()
        .expect("a file in cur/")
        .expect("a readable entry");
    entry.file_name().into_string().expect("a UTF-8 name")
}

#[cfg(test)]
mod tests;
