//! The sync's state file (the ledger) and its lock.
//!
//! Owns: remembering which object keys were delivered (with their ETag) and which have had
//! their after-delivery step (delete/move) done; the lock that keeps one syncer per ledger.
//!
//! Format: a text file, one record a line, appended with one `write` per record (so a
//! `kill -9` leaves at most one torn last line, which is dropped on load):
//!
//! ```text
//! # pimap s3 sync ledger v1
//! D <etag> <key>     delivered (etag `-` when unknown)
//! F <key>            after-delivery step done
//! C <etag> <key>     a changed ETag for a delivered key was reported
//! ```
//!
//! Keys are percent-encoded (every byte outside `!`..`~`, and `%`). The ledger is written
//! *after* the Maildir rename, never before: a crash in between only means the next pass
//! downloads the object again and the store's idempotent delivery recognises it.
//!
//! Never: deletes mail, or trusts a line it cannot parse (skipped, logged).

use super::plan::Known;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const HEADER: &str = "# pimap s3 sync ledger v1\n";

pub struct Ledger {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Known>,
    lines: usize,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// Percent-encode a key for one ledger field.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`encode_key`]; None for malformed input.
pub fn decode_key(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = *bytes.get(i)?;
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parse ledger text into entries; returns them, the number of record lines, and whether the
/// text was clean (ended with a newline, no bad lines).
pub fn parse(text: &str) -> (HashMap<String, Known>, usize, bool) {
    let mut entries: HashMap<String, Known> = HashMap::new();
    let mut lines = 0;
    let mut clean = text.is_empty() || text.ends_with('\n');
    let complete = if text.ends_with('\n') {
        text
    } else {
        text.rsplit_once('\n').map(|(a, _)| a).unwrap_or("")
    };
    for line in complete.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split(' ');
        let rec = (parts.next(), parts.next(), parts.next(), parts.next());
        let ok = match rec {
            (Some("D"), Some(etag), Some(k), None) => decode_key(k).map(|k| {
                entries.insert(
                    k,
                    Known {
                        etag: etag.to_string(),
                        finished: false,
                        changed_reported: None,
                    },
                );
            }),
            (Some("F"), Some(k), None, None) => decode_key(k)
                .and_then(|k| entries.get_mut(&k))
                .map(|e| e.finished = true),
            (Some("C"), Some(etag), Some(k), None) => decode_key(k)
                .and_then(|k| entries.get_mut(&k))
                .map(|e| e.changed_reported = Some(etag.to_string())),
            _ => None,
        };
        if ok.is_none() {
            log::warn!("s3 sync ledger: ignoring a malformed line");
            clean = false;
        }
        lines += 1;
    }
    (entries, lines, clean)
}

fn render(entries: &HashMap<String, Known>) -> String {
    let mut keys: Vec<&String> = entries.keys().collect();
    keys.sort();
    let mut s = String::from(HEADER);
    for k in keys {
        let Some(e) = entries.get(k) else { continue };
        let enc = encode_key(k);
        s.push_str(&format!("D {} {enc}\n", e.etag));
        if e.finished {
            s.push_str(&format!("F {enc}\n"));
        }
        if let Some(c) = &e.changed_reported {
            s.push_str(&format!("C {c} {enc}\n"));
        }
    }
    s
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", p.display())
}

/// Replace `path` with `text` atomically (write tmp, fsync, rename, fsync dir).
fn replace_file(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("creating", &tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| io_err("writing", &tmp, e))?;
    f.sync_all().map_err(|e| io_err("syncing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err("renaming to", path, e))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Ledger {
    /// Open (or create) the ledger at `path`. A torn last line or malformed lines make it
    /// rewritten cleanly.
    pub fn open(path: &Path) -> Result<Ledger, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
        }
        let text = match std::fs::read(path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err("reading", path, e)),
        };
        let (entries, lines, clean) = parse(&text);
        if !clean || text.is_empty() || lines > 2 * entries.len() + 1000 {
            replace_file(path, &render(&entries))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err("opening", path, e))?;
        Ok(Ledger {
            path: path.to_path_buf(),
            file,
            entries,
            lines,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<&Known> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn append(&mut self, line: String) -> Result<(), String> {
        // One write per record: O_APPEND makes it land whole or (on a crash mid-write) torn at
        // the end, where `parse` drops it.
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| io_err("writing", &self.path, e))?;
        self.lines += 1;
        Ok(())
    }

    pub fn record_delivered(&mut self, key: &str, etag: &str) -> Result<(), String> {
        self.append(format!("D {etag} {}\n", encode_key(key)))?;
        self.entries.insert(
            key.to_string(),
            Known {
                etag: etag.to_string(),
                finished: false,
                changed_reported: None,
            },
        );
        Ok(())
    }

    pub fn record_finished(&mut self, key: &str) -> Result<(), String> {
        self.append(format!("F {}\n", encode_key(key)))?;
        if let Some(e) = self.entries.get_mut(key) {
            e.finished = true;
        }
        Ok(())
    }

    pub fn record_changed(&mut self, key: &str, etag: &str) -> Result<(), String> {
        self.append(format!("C {etag} {}\n", encode_key(key)))?;
        if let Some(e) = self.entries.get_mut(key) {
            e.changed_reported = Some(etag.to_string());
        }
        Ok(())
    }

    /// Flush to disk (end of a pass).
    pub fn sync(&self) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|e| io_err("syncing", &self.path, e))
    }

    /// Forget finished entries whose objects were gone from a complete listing (deleted or
    /// moved), and rewrite the file if it has grown well past its contents.
    pub fn prune(&mut self, still_listed: impl Fn(&str) -> bool) -> Result<(), String> {
        let before = self.entries.len();
        self.entries.retain(|k, e| !e.finished || still_listed(k));
        if self.entries.len() != before || self.lines > 2 * self.entries.len() + 1000 {
            replace_file(&self.path, &render(&self.entries))?;
            self.file = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(|e| io_err("opening", &self.path, e))?;
            self.lines = self.entries.len();
        }
        Ok(())
    }
}

/// An exclusive `flock` on a lock file beside the ledger, held while the value lives.
#[derive(Debug)]
pub struct SyncLock {
    _file: File,
}

/// Take the sync lock at `path` without waiting. Fails (naming the file) if another syncer —
/// a CronJob, the server's timer, another pod on the same volume — holds it.
pub fn lock(path: &Path) -> Result<SyncLock, String> {
    lock_as(path, "pimap sync")
}

/// [`lock`] for any one-at-a-time job (`what` names it in the error: the backup uses it too).
pub fn lock_as(path: &Path, what: &str) -> Result<SyncLock, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("opening lock file", path, e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(SyncLock { _file: file }),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(format!(
            "another {what} is running (lock {} is held)",
            path.display()
        )),
        Err(e) => Err(format!("locking {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pimap-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn key_encoding_round_trips() {
        for k in ["inbound/abc", "a b%c\nd", "ü/€", ""] {
            let e = encode_key(k);
            assert!(!e.contains(' ') && !e.contains('\n'));
            assert_eq!(decode_key(&e).as_deref(), Some(k));
        }
        assert_eq!(decode_key("%zz"), None);
        assert_eq!(decode_key("%4"), None);
    }

    #[test]
    fn records_survive_reopen_and_torn_tail_is_dropped() {
        let d = tmpdir("reopen");
        let p = d.join("state");
        let mut l = Ledger::open(&p).unwrap();
        l.record_delivered("in/a b", "aa").unwrap();
        l.record_delivered("in/c", "-").unwrap();
        l.record_finished("in/c").unwrap();
        l.record_changed("in/a b", "bb").unwrap();
        drop(l);
        // A kill -9 in the middle of a write:
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"D cc in/tor").unwrap();
        drop(f);
        let mut l = Ledger::open(&p).unwrap();
        assert_eq!(l.len(), 2);
        let a = l.get("in/a b").unwrap();
        assert_eq!(
            (a.etag.as_str(), a.finished, a.changed_reported.as_deref()),
            ("aa", false, Some("bb"))
        );
        assert!(l.get("in/c").unwrap().finished);
        assert!(l.get("in/tor").is_none());
        // The torn line was cut, so the next record starts on a line of its own.
        l.record_delivered("in/d", "dd").unwrap();
        drop(l);
        let l = Ledger::open(&p).unwrap();
        assert_eq!(l.len(), 3);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn prune_forgets_finished_objects_that_are_gone() {
        let d = tmpdir("prune");
        let p = d.join("state");
        let mut l = Ledger::open(&p).unwrap();
        for k in ["a", "b", "c"] {
            l.record_delivered(k, "-").unwrap();
        }
        l.record_finished("a").unwrap();
        l.record_finished("b").unwrap();
        l.prune(|k| k == "b").unwrap();
        drop(l);
        let l = Ledger::open(&p).unwrap();
        assert!(l.get("a").is_none() && l.get("b").is_some() && l.get("c").is_some());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn garbage_never_panics() {
        for t in [
            "D",
            "D x",
            "F",
            "C a",
            "X y z",
            "D a b c d",
            "%",
            "D - %ff%fe\n",
            "\n\n# x\nF nokey\n",
        ] {
            let _ = parse(t);
        }
    }

    #[test]
    fn second_lock_fails_while_first_is_held() {
        let d = tmpdir("lock");
        let p = d.join("lock");
        let first = lock(&p).unwrap();
        let err = lock(&p).unwrap_err();
        assert!(err.contains("another pimap sync"), "{err}");
        drop(first);
        assert!(lock(&p).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
