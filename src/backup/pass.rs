//! One backup pass for one user: scan, upload what the bucket lacks, write the manifests that
//! changed, then the snapshot; then retention.
//!
//! Order is what makes a pass safe to cut at any point: messages before the manifests that
//! name them, manifests before the snapshot that names them. What the bucket already holds is
//! read from a listing each pass (one request per 1,000 objects), never assumed from local
//! state, so a lost data dir, a second machine or a pruned object cannot make a manifest point
//! at nothing.

use super::manifest::{Mailbox, Snapshot};
use super::scan::{self, HashCache};
use super::{parse_snapshot_name, snapshot_name, Target};
use crate::auth::scheme::hex_encode;
use crate::sync::s3::S3Error;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What one user's pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub mailboxes: usize,
    pub messages: usize,
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub manifests_written: u64,
    /// Message files read to hash them (the rest came from the cache).
    pub hashed: u64,
    /// Snapshots and objects deleted by retention.
    pub pruned_snapshots: u64,
    pub pruned_objects: u64,
    /// The snapshot written: `P/U/s/NAME`.
    pub snapshot: String,
    /// Every snapshot of the user after this pass, by time (the pass's listing and its own):
    /// what [`prune`] works from.
    pub snapshots: BTreeMap<u64, String>,
}

/// Progress for a terminal: called with (done, total) uploads now and then.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// IDs of the objects under `prefix` (the last path segment of each key).
fn ids_under(target: &Target, prefix: &str) -> Result<HashSet<String>, String> {
    let listed = target
        .client
        .list_all(prefix)
        .map_err(|e| format!("listing {prefix}: {e}"))?;
    Ok(listed
        .into_iter()
        .filter_map(|l| l.key.strip_prefix(prefix).map(str::to_string))
        .collect())
}

/// SHA-256 of `data`, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex_encode(&Sha256::digest(data))
}

/// Upload every message in `todo` (content hash → file), `target.concurrency` at a time.
/// Returns the hashes whose file vanished before it could be read (expunged meanwhile); an S3
/// failure (after retries) fails the pass.
fn upload_messages(
    target: &Target,
    user: &str,
    todo: Vec<(String, PathBuf)>,
    progress: Progress,
    report: &mut Report,
) -> Result<HashSet<String>, String> {
    let total = todo.len() as u64;
    let queue = Mutex::new(todo);
    let gone = Mutex::new(HashSet::new());
    let failed: Mutex<Option<String>> = Mutex::new(None);
    let (done, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let mprefix = format!("{}m/", target.user_prefix(user));
    std::thread::scope(|s| {
        for _ in 0..target.concurrency.min(total.max(1) as usize) {
            s.spawn(|| loop {
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let Some((hash, path)) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    return;
                };
                match upload_one(target, &mprefix, &hash, &path) {
                    Ok(Some(n)) => {
                        bytes.fetch_add(n, Ordering::Relaxed);
                        crate::metrics::global().backup_uploaded(n);
                    }
                    Ok(None) => {
                        if let Ok(mut g) = gone.lock() {
                            g.insert(hash);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(user, d, total);
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    let gone = gone.into_inner().unwrap_or_default();
    report.uploaded = done.into_inner() - gone.len() as u64;
    report.uploaded_bytes = bytes.into_inner();
    Ok(gone)
}

/// Upload one message file (sealed); `Ok(None)` if it is gone, or changed under us.
fn upload_one(
    target: &Target,
    mprefix: &str,
    hash: &str,
    path: &Path,
) -> Result<Option<u64>, String> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let key = format!("{mprefix}{}", target.seal.object_id(hash));
    let sealed = target.seal.sealed_len(len);
    let r = target.client.put_stream(&key, sealed, || {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(target.seal.seal(Checked::new(f, hash), len))
    });
    match r {
        Ok(()) => Ok(Some(len)),
        // Expunged meanwhile: it leaves the manifest too.
        Err(S3Error::Local(e)) if !path.exists() => {
            log::info!(
                "backup: {} went away during the upload: {e}",
                path.display()
            );
            Ok(None)
        }
        Err(e) => Err(format!("uploading {}: {e}", path.display())),
    }
}

const CHANGED: &str = "not the content that was hashed";

/// A message file read for upload, checked against the hash the manifest will name: a
/// mismatch fails the read, so the object under that hash is never other bytes.
struct Checked<R> {
    inner: R,
    hasher: Sha256,
    want: String,
}

impl<R> Checked<R> {
    fn new(inner: R, want: &str) -> Self {
        Checked {
            inner,
            hasher: Sha256::new(),
            want: want.to_string(),
        }
    }
}

impl<R: std::io::Read> std::io::Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            let got = hex_encode(&self.hasher.clone().finalize());
            if got != self.want {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    CHANGED,
                ));
            }
        }
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Back one user's mail root up.
pub fn backup_user(
    target: &Target,
    user: &str,
    root: &Path,
    cache: &mut HashCache,
    now: u64,
    progress: Progress,
) -> Result<Report, String> {
    if user.is_empty() || user.contains('/') || user.starts_with('.') {
        return Err(format!("user name {user:?} cannot be part of an S3 key"));
    }
    let mut report = Report::default();
    let hashed_before = cache.hashed;
    let mut scanned = scan::scan(root, cache)?;
    report.hashed = cache.hashed - hashed_before;
    let up = target.user_prefix(user);
    // The newest snapshot must open with this pass's key (or lack of one): backups of one
    // prefix are all made the same way, or restore and retention could not read them.
    let mut snaps = snapshots(target, user)?;
    if let Some(key) = snaps.values().next_back() {
        let opened = get_small(target, key)
            .and_then(|t| Snapshot::parse(&t).map_err(|e| format!("{key}: {e}")));
        opened.map_err(|e| {
            format!(
                "{e} (the backups under {up} were made with another --backup-key-file, or without \
                 one: use that, or another --backup-prefix)"
            )
        })?;
    }
    let have_m = ids_under(target, &format!("{up}m/"))?;
    let have_b = ids_under(target, &format!("{up}b/"))?;
    let todo: Vec<(String, PathBuf)> = scanned
        .paths
        .iter()
        .filter(|(h, _)| !have_m.contains(&target.seal.object_id(h)))
        .map(|(h, p)| (h.clone(), p.clone()))
        .collect();
    let gone = match upload_messages(target, user, todo, progress, &mut report) {
        Ok(g) => g,
        Err(e) if e.contains(CHANGED) => {
            // A file is not what its cached hash says: trust no cached hash.
            cache.map.clear();
            cache.used.clear();
            return Err(format!(
                "{e}; the hash cache is dropped: the next pass reads every file again"
            ));
        }
        Err(e) => return Err(e),
    };
    let mut snapshot = Snapshot {
        time: now,
        mailboxes: Vec::new(),
        files: std::mem::take(&mut scanned.root_files),
    };
    for mut mb in std::mem::take(&mut scanned.mailboxes) {
        mb.messages.retain(|m| !gone.contains(&m.hash));
        report.mailboxes += 1;
        report.messages += mb.messages.len();
        let plain = mb.render();
        let text = target.seal.seal_bytes(plain.as_bytes());
        let id = target.seal.object_id(&sha256_hex(plain.as_bytes()));
        if !have_b.contains(&id) {
            put_small(target, &format!("{up}b/{id}"), &text)?;
            report.manifests_written += 1;
        }
        snapshot.mailboxes.push((id, mb.dir));
    }
    let name = snapshot_name(now);
    report.snapshot = format!("{up}s/{name}");
    let text = target.seal.seal_bytes(snapshot.render().as_bytes());
    put_small(target, &report.snapshot, &text)?;
    snaps.insert(now, report.snapshot.clone());
    report.snapshots = snaps;
    Ok(report)
}

fn put_small(target: &Target, key: &str, data: &[u8]) -> Result<(), String> {
    target
        .client
        .put(key, data)
        .map_err(|e| format!("writing {key}: {e}"))
}

/// The snapshots of a user, by time (keys that are not snapshot names are ignored).
pub fn snapshots(target: &Target, user: &str) -> Result<BTreeMap<u64, String>, String> {
    let sprefix = format!("{}s/", target.user_prefix(user));
    let listed = target
        .client
        .list_all(&sprefix)
        .map_err(|e| format!("listing {sprefix}: {e}"))?;
    Ok(listed
        .into_iter()
        .filter_map(|l| {
            let t = parse_snapshot_name(l.key.strip_prefix(&sprefix)?)?;
            Some((t, l.key))
        })
        .collect())
}

/// GET a small object and open its seal.
pub fn get_small(target: &Target, key: &str) -> Result<String, String> {
    let (data, _) = target
        .client
        .get_with(key, super::MAX_SMALL_OBJECT, |body| {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(body, &mut raw).map_err(|e| e.to_string())?;
            Ok(raw)
        })
        .map_err(|e| format!("reading {key}: {e}"))?;
    let mut plain = Vec::new();
    target
        .seal
        .open(data.as_slice())
        .and_then(|mut r| {
            std::io::Read::read_to_end(&mut r, &mut plain)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("{key}: {e}"))?;
    String::from_utf8(plain).map_err(|_| format!("{key}: not text"))
}

/// Retention over the pass's snapshots (`report.snapshots`): delete those older than `keep` (but
/// the newest of those, which holds the state up to the next one); when `collect` is set, also
/// delete every message and manifest object no remaining snapshot names.
pub fn prune(
    target: &Target,
    user: &str,
    now: u64,
    keep: Duration,
    collect: bool,
    report: &mut Report,
) -> Result<(), String> {
    let snaps = std::mem::take(&mut report.snapshots);
    let cutoff = now.saturating_sub(keep.as_secs());
    let old: Vec<(u64, String)> = snaps
        .range(..cutoff)
        .map(|(t, k)| (*t, k.clone()))
        .collect();
    // The newest expired one stays: it is the state at the cutoff.
    let expired = old.len().saturating_sub(1);
    for (_, key) in old.iter().take(expired) {
        target
            .client
            .delete(key)
            .map_err(|e| format!("deleting {key}: {e}"))?;
        report.pruned_snapshots += 1;
    }
    if !collect {
        return Ok(());
    }
    let kept: Vec<&String> = snaps
        .values()
        .filter(|k| !old.iter().take(expired).any(|(_, o)| o == *k))
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    let up = target.user_prefix(user);
    let mut manifests: HashSet<String> = HashSet::new();
    for key in kept {
        let snap = Snapshot::parse(&get_small(target, key)?).map_err(|e| format!("{key}: {e}"))?;
        manifests.extend(snap.mailboxes.into_iter().map(|(id, _)| id));
    }
    let mut messages: HashSet<String> = HashSet::new();
    for id in &manifests {
        let key = format!("{up}b/{id}");
        let mb = Mailbox::parse(&get_small(target, &key)?).map_err(|e| format!("{key}: {e}"))?;
        messages.extend(mb.messages.iter().map(|m| target.seal.object_id(&m.hash)));
    }
    for (sub, wanted) in [("m", &messages), ("b", &manifests)] {
        let prefix = format!("{up}{sub}/");
        for id in ids_under(target, &prefix)? {
            if !wanted.contains(&id) {
                let key = format!("{prefix}{id}");
                target
                    .client
                    .delete(&key)
                    .map_err(|e| format!("deleting {key}: {e}"))?;
                report.pruned_objects += 1;
            }
        }
    }
    Ok(())
}

/// Local state: the hash cache and when objects were last collected, in one file.
#[derive(Debug, Default)]
pub struct State {
    pub cache: HashCache,
    pub last_collect: u64,
}

const STATE_HEADER: &str = "pimap-backup-state 1";

impl State {
    /// Load `path`; a missing, foreign or damaged file is an empty state (it is a cache: the
    /// pass then hashes every file again), logged.
    pub fn load(path: &Path) -> State {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return State::default(),
            Err(e) => {
                log::warn!("backup: state {}: {e}; starting afresh", path.display());
                return State::default();
            }
        };
        // Last line: the SHA-256 of everything before it.
        let body_end = text.trim_end_matches('\n').rfind('\n').map(|i| i + 1);
        let ok = body_end.is_some_and(|end| {
            text.get(end..).map(str::trim)
                == Some(sha256_hex(text.get(..end).unwrap_or("").as_bytes()).as_str())
        });
        let body = body_end.and_then(|end| text.get(..end)).unwrap_or("");
        let mut lines = body.lines();
        if !ok || lines.next() != Some(STATE_HEADER) {
            log::warn!(
                "backup: state {} is damaged; starting afresh",
                path.display()
            );
            return State::default();
        }
        let last_collect = lines
            .next()
            .and_then(|l| l.strip_prefix("collected "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let rest: Vec<&str> = lines.collect();
        State {
            cache: HashCache::parse(&rest.join("\n")),
            last_collect,
        }
    }

    /// Write it (tmp + rename); a failure is logged, not fatal (it is a cache).
    pub fn save(&self, path: &Path) {
        let mut text = format!("{STATE_HEADER}\ncollected {}\n", self.last_collect);
        text.push_str(&self.cache.render());
        let sum = sha256_hex(text.as_bytes());
        text.push_str(&sum);
        text.push('\n');
        let tmp = path.with_extension("state.tmp");
        let r = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = r {
            log::warn!("backup: saving the state {}: {e}", path.display());
        }
    }
}

/// After a run (every user) and its save: the next run of this process starts from the
/// hashes this one used, and records afresh what it uses.
pub fn carry_over(cache: &mut HashCache) {
    cache.map = std::mem::take(&mut cache.used);
    cache.hashed = 0;
}
