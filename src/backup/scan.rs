//! Reading one user's Maildir for a backup pass, without writing anything to it: the folders,
//! their control files as they are on disk, and each message file with its content hash.
//!
//! Hashes come from the [`HashCache`] when the file's folder, base name and size are known (a
//! Maildir file's content never changes; a flag change only renames it), so a pass over an
//! unchanged Maildir reads directory listings and control files, not messages. A file that disappears
//! between the listing and the read was renamed (looked up again by its base name in `cur/`)
//! or expunged (left out: the next pass would not have it either).

use super::manifest::{self, Mailbox, Message, Sub, MAILBOX_FILES, ROOT_FILES};
use crate::store::maildir::{filename, uidlist::UidList};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Content hashes by (folder directory `/` base name, size), kept across passes in the state
/// file.
#[derive(Debug, Default)]
pub struct HashCache {
    pub map: HashMap<(String, u64), String>,
    /// Hashes this pass looked up or computed (the rest is dropped when saved).
    pub used: HashMap<(String, u64), String>,
    /// Files read and hashed in this pass.
    pub hashed: u64,
}

impl HashCache {
    /// Parse the state file's lines `DIR/BASE SIZE HASH`; bad lines are skipped (it is a cache).
    pub fn parse(text: &str) -> HashCache {
        let mut map = HashMap::new();
        for line in text.lines() {
            let mut f = line.rsplitn(3, ' ');
            let (Some(hash), Some(size), Some(base)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if let (true, Ok(size)) = (manifest::is_hash(hash), size.parse()) {
                map.insert((base.to_string(), size), hash.to_string());
            }
        }
        HashCache {
            map,
            ..HashCache::default()
        }
    }

    /// The entries this pass used, as the state file's text.
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = self
            .used
            .iter()
            .map(|((b, s), h)| format!("{b} {s} {h}\n"))
            .collect();
        lines.sort_unstable();
        lines.concat()
    }
}

/// A user's Maildir as one pass saw it.
#[derive(Debug, Default)]
pub struct Scanned {
    pub mailboxes: Vec<Mailbox>,
    pub root_files: Vec<(String, Vec<u8>)>,
    /// Where each message was found (for the upload), by content hash.
    pub paths: HashMap<String, PathBuf>,
}

/// SHA-256 of a file's bytes, hex, and its length.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(buf.get(..k).unwrap_or_default());
        n += k as u64;
    }
    Ok((crate::auth::scheme::hex_encode(&h.finalize()), n))
}

/// A control file's bytes, if it exists; other errors are the pass's.
fn read_control(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > manifest::MAX_CONTROL_FILE as u64 => Err(format!(
            "{}: larger than a control file can be",
            path.display()
        )),
        Ok(m) if !m.is_file() => Ok(None),
        Ok(_) => match std::fs::read(path) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// The folder directories under `root`: `""` (INBOX) first, then `.Name` ones, sorted.
fn folder_dirs(root: &Path) -> Result<Vec<String>, String> {
    let mut dirs = vec![String::new()];
    let rd = std::fs::read_dir(root).map_err(|e| format!("listing {}: {e}", root.display()))?;
    for e in rd {
        let e = e.map_err(|e| format!("listing {}: {e}", root.display()))?;
        let Some(n) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !n.starts_with('.') || n.starts_with("..") || n == "." {
            continue;
        }
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !manifest::valid_dir(&n) {
            log::warn!(
                "backup: skipping {} (not a folder directory)",
                e.path().display()
            );
            continue;
        }
        dirs.push(n);
    }
    dirs.sort_unstable();
    Ok(dirs)
}

/// Read `root` (a user's mail root), hashing files the cache does not know.
pub fn scan(root: &Path, cache: &mut HashCache) -> Result<Scanned, String> {
    let mut out = Scanned::default();
    for n in ROOT_FILES {
        if let Some(d) = read_control(&root.join(n))? {
            out.root_files.push((n.to_string(), d));
        }
    }
    for dir in folder_dirs(root)? {
        let path = if dir.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&dir)
        };
        if let Some(mb) = scan_folder(&path, &dir, cache, &mut out.paths)? {
            out.mailboxes.push(mb);
        }
    }
    Ok(out)
}

fn scan_folder(
    path: &Path,
    dir: &str,
    cache: &mut HashCache,
    paths: &mut HashMap<String, PathBuf>,
) -> Result<Option<Mailbox>, String> {
    if !path.join("cur").is_dir() && !path.join("new").is_dir() {
        // A `\Noselect` parent or a half-deleted folder: nothing to keep.
        return Ok(None);
    }
    let name = if dir.is_empty() {
        Some("INBOX".to_string())
    } else {
        crate::store::maildir::name::from_dir_name(dir)
    };
    let mut mb = Mailbox {
        dir: dir.to_string(),
        special_use: name
            .as_deref()
            .and_then(crate::session::special_use::attribute)
            .map(str::to_string),
        ..Mailbox::default()
    };
    for n in MAILBOX_FILES {
        if let Some(d) = read_control(&path.join(n))? {
            mb.files.push((n.to_string(), d));
        }
    }
    mb.files.sort();
    let mut uids: HashMap<String, u32> = HashMap::new();
    if let Some((_, data)) = mb.files.iter().find(|(n, _)| n == "dovecot-uidlist") {
        match UidList::parse(&String::from_utf8_lossy(data)) {
            Ok(p) => {
                mb.uid_validity = p.list.uid_validity;
                mb.uid_next = p.list.next_uid;
                for e in p.list.entries {
                    uids.insert(e.base, e.uid);
                }
            }
            Err(e) => log::warn!(
                "backup: {}/dovecot-uidlist is corrupt ({}): kept as it is, UIDs not recorded",
                path.display(),
                e.0
            ),
        }
    }
    for sub in [Sub::Cur, Sub::New] {
        let d = path.join(sub.dir());
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("listing {}: {e}", d.display())),
        };
        for e in rd {
            let e = e.map_err(|e| format!("listing {}: {e}", d.display()))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                log::warn!(
                    "backup: skipping {} (name is not UTF-8)",
                    e.path().display()
                );
                continue;
            };
            if !manifest::valid_file(&name) {
                continue;
            }
            if let Some(m) = message(path, dir, sub, &name, &uids, cache, paths)? {
                mb.messages.push(m);
            }
        }
    }
    mb.messages
        .sort_by(|a, b| (a.uid == 0, a.uid, &a.file).cmp(&(b.uid == 0, b.uid, &b.file)));
    Ok(Some(mb))
}

/// One message file; `None` if it was expunged while we looked.
fn message(
    folder: &Path,
    dir: &str,
    sub: Sub,
    name: &str,
    uids: &HashMap<String, u32>,
    cache: &mut HashCache,
    paths: &mut HashMap<String, PathBuf>,
) -> Result<Option<Message>, String> {
    let base = filename::split(name).base.to_string();
    let (mut sub, mut name) = (sub, name.to_string());
    // Renamed by a flag change between the listing and now: at most a few tries.
    for _ in 0..3 {
        let path = folder.join(sub.dir()).join(&name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match relocate(folder, &base) {
                Some((s, n)) => {
                    (sub, name) = (s, n);
                    continue;
                }
                None => return Ok(None),
            },
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        // Per folder: the same base name elsewhere is only trusted after its own read.
        let key = (format!("{dir}/{base}"), meta.len());
        let hash = match cache.map.get(&key) {
            Some(h) => h.clone(),
            None => match hash_file(&path) {
                Ok((h, n)) if n == meta.len() => {
                    cache.hashed += 1;
                    h
                }
                // Changed while read (not a Maildir file's way): look again.
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("reading {}: {e}", path.display())),
            },
        };
        cache.used.insert(key, hash.clone());
        paths.entry(hash.clone()).or_insert(path);
        return Ok(Some(Message {
            hash,
            size: meta.len(),
            mtime: meta.mtime(),
            sub,
            uid: uids.get(&base).copied().unwrap_or(0),
            file: name,
        }));
    }
    log::warn!(
        "backup: {}/{base}: kept changing while read; left for the next pass",
        folder.display()
    );
    Ok(None)
}

/// Where the file with `base` is now (cur/ first: a rename moves new/ → cur/).
fn relocate(folder: &Path, base: &str) -> Option<(Sub, String)> {
    for sub in [Sub::Cur, Sub::New] {
        let Ok(rd) = std::fs::read_dir(folder.join(sub.dir())) else {
            continue;
        };
        for e in rd.flatten() {
            if let Some(n) = e.file_name().to_str() {
                if filename::split(n).base == base {
                    return Some((sub, n.to_string()));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_reads_folders_uids_and_special_use_and_hashes_each_file_once() {
        let root = std::env::temp_dir().join(format!("pimap-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in [
            "cur",
            "new",
            "tmp",
            ".Sent/cur",
            ".Sent/new",
            ".Work/cur",
            "..pimap-deleted-x/cur",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("cur/1.M1P1.h:2,S"), b"one").unwrap();
        std::fs::write(root.join("new/2.M2P1.h"), b"two").unwrap();
        std::fs::write(root.join(".Sent/cur/3.M3P1.h:2,RS"), b"one").unwrap();
        std::fs::write(root.join("..pimap-deleted-x/cur/4.M4P1.h:2,"), b"gone").unwrap();
        std::fs::write(
            root.join("dovecot-uidlist"),
            "3 V77 N3 G0123456789abcdef0123456789abcdef\n2 :2.M2P1.h\n",
        )
        .unwrap();
        std::fs::write(root.join("subscriptions"), "Sent\n").unwrap();
        let mut cache = HashCache::default();
        let s = scan(&root, &mut cache).unwrap();
        let dirs: Vec<&str> = s.mailboxes.iter().map(|m| m.dir.as_str()).collect();
        assert_eq!(dirs, ["", ".Sent", ".Work"]);
        let inbox = &s.mailboxes[0];
        assert_eq!((inbox.uid_validity, inbox.uid_next), (77, 3));
        let uids: Vec<(u32, &str)> = inbox
            .messages
            .iter()
            .map(|m| (m.uid, m.file.as_str()))
            .collect();
        assert_eq!(uids, [(2, "2.M2P1.h"), (0, "1.M1P1.h:2,S")]);
        assert_eq!(s.mailboxes[1].special_use.as_deref(), Some("\\Sent"));
        assert_eq!(s.mailboxes[2].special_use, None);
        assert_eq!(
            s.root_files,
            [("subscriptions".to_string(), b"Sent\n".to_vec())]
        );
        // "one" twice (two folders), "two" once: three reads, two contents.
        assert_eq!((cache.hashed, s.paths.len()), (3, 2));
        let mut again = HashCache {
            map: std::mem::take(&mut cache.used),
            ..HashCache::default()
        };
        let s2 = scan(&root, &mut again).unwrap();
        assert_eq!(again.hashed, 0);
        assert_eq!(s2.mailboxes, s.mailboxes);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
