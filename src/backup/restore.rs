//! Restore one user's Maildir from a snapshot: the same folders, UIDVALIDITY, UIDs, file
//! names (so flags and keyword letters), keywords files, subscriptions and mtimes (Dovecot's
//! INTERNALDATE), so clients that kept their caches reconnect without downloading everything.
//!
//! Everything is written to a staging directory beside the mail root, which is renamed into
//! place at the end (after one `syncfs`): a restore cut short never leaves a half-restored
//! Maildir where the server would serve it. Each message's bytes are checked against the hash
//! its manifest names before the file is published. A non-empty mail root is refused unless
//! `--force`, which moves it aside (`ROOT.pre-restore-TIME`), never deletes it.

use super::manifest::{Mailbox, Snapshot};
use super::pass::{get_small, sha256_hex, snapshots, Progress};
use super::{snapshot_name, Target};
use crate::auth::scheme::hex_encode as hex;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub snapshot: String,
    pub mailboxes: usize,
    pub messages: u64,
    pub bytes: u64,
    /// Where a non-empty mail root was moved (`--force`).
    pub moved_aside: Option<PathBuf>,
}

/// Which snapshot a restore uses.
pub enum Choice {
    /// The newest at or before the time asked for (default: the newest).
    Snapshot(String),
    /// None fits: why, for the message.
    Nothing(String),
}

/// The snapshot key to restore: the newest at or before `at` (default: the newest). `Err`: the
/// listing failed.
pub fn choose(target: &Target, user: &str, at: Option<u64>) -> Result<Choice, String> {
    let snaps = snapshots(target, user)?;
    let found = match at {
        Some(t) => snaps.range(..=t).next_back(),
        None => snaps.iter().next_back(),
    };
    Ok(match (found, at) {
        (Some((_, key)), _) => Choice::Snapshot(key.clone()),
        (None, None) => Choice::Nothing(format!(
            "no backup of {user} in {} (no snapshot under {}s/)",
            target.describe(),
            target.user_prefix(user)
        )),
        (None, Some(t)) => Choice::Nothing(format!(
            "no backup of {user} in {} at or before {} ({} snapshot(s), the first at {})",
            target.describe(),
            snapshot_name(t),
            snaps.len(),
            snaps
                .keys()
                .next()
                .map(|t| snapshot_name(*t))
                .unwrap_or_else(|| "-".into())
        )),
    })
}

/// True if `root` holds anything beyond empty `cur/`, `new/` and `tmp/`.
fn occupied(root: &Path) -> Result<bool, String> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("{}: {e}", root.display())),
    };
    for e in rd {
        let e = e.map_err(|e| format!("{}: {e}", root.display()))?;
        let n = e.file_name();
        let empty_sub = matches!(n.to_str(), Some("cur" | "new" | "tmp"))
            && std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_none());
        if !empty_sub {
            return Ok(true);
        }
    }
    Ok(false)
}

fn mkdir(path: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `root` with `suffix` appended to its last component.
fn beside(root: &Path, suffix: &str) -> PathBuf {
    let mut s = root.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// One message to fetch: its object, expected hash and size, and every place it goes (with
/// that file's mtime: the same bytes may have arrived twice, at different times).
struct Job {
    hash: String,
    size: u64,
    dests: Vec<(PathBuf, i64)>,
}

/// Restore `user` into `root` from snapshot `key` (see [`choose`]).
pub fn restore_user(
    target: &Target,
    user: &str,
    root: &Path,
    key: &str,
    force: bool,
    progress: Progress,
) -> Result<Report, String> {
    let mut report = Report {
        snapshot: key.to_string(),
        ..Report::default()
    };
    // Read and check everything small first: a wrong key or a damaged backup fails here,
    // before the disk is touched.
    let (snap, mailboxes) = read_snapshot(target, user, key)?;
    let up = target.user_prefix(user);
    report.moved_aside = make_room(root, force)?;
    let staging = beside(root, ".pimap-restoring");
    if staging.exists() {
        // What a restore that was cut short left.
        std::fs::remove_dir_all(&staging)
            .map_err(|e| format!("removing {}: {e}", staging.display()))?;
    }
    mkdir(&staging)?;
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    for mb in &mailboxes {
        let dir = if mb.dir.is_empty() {
            staging.clone()
        } else {
            staging.join(&mb.dir)
        };
        for sub in ["cur", "new", "tmp"] {
            mkdir(&dir.join(sub))?;
        }
        for (name, data) in &mb.files {
            write_file(&dir.join(name), data)?;
        }
        for m in &mb.messages {
            let dest = dir.join(m.sub.dir()).join(&m.file);
            let job = jobs.entry(m.hash.clone()).or_insert_with(|| Job {
                hash: m.hash.clone(),
                size: m.size,
                dests: Vec::new(),
            });
            job.dests.push((dest, m.mtime));
            report.messages += 1;
        }
        report.mailboxes += 1;
    }
    for (name, data) in &snap.files {
        write_file(&staging.join(name), data)?;
    }
    let failures = fetch_all(
        target,
        &up,
        jobs.into_values().collect(),
        &staging,
        progress,
        &mut report,
    );
    sync_and_publish(&staging, root)?;
    if let Some((n, first)) = failures {
        return Err(format!(
            "{n} message(s) could not be restored (the rest is in {}); first: {first}",
            root.display()
        ));
    }
    Ok(report)
}

/// A snapshot and its mailbox manifests, each manifest checked against its name.
fn read_snapshot(
    target: &Target,
    user: &str,
    key: &str,
) -> Result<(Snapshot, Vec<Mailbox>), String> {
    let snap = Snapshot::parse(&get_small(target, key)?).map_err(|e| format!("{key}: {e}"))?;
    let up = target.user_prefix(user);
    let mut mailboxes = Vec::new();
    for (id, dir) in &snap.mailboxes {
        let mkey = format!("{up}b/{id}");
        let text = get_small(target, &mkey)?;
        if target.seal.object_id(&sha256_hex(text.as_bytes())) != *id {
            return Err(format!("{mkey}: content does not match its name (damaged)"));
        }
        let mb = Mailbox::parse(&text).map_err(|e| format!("{mkey}: {e}"))?;
        if mb.dir != *dir {
            return Err(format!("{mkey}: names folder {:?}, not {dir:?}", mb.dir));
        }
        mailboxes.push(mb);
    }
    Ok((snap, mailboxes))
}

/// Make sure nothing is at `root`: an empty Maildir (only empty `cur/ new/ tmp/`) is removed,
/// a non-empty one is refused, or with `force` moved aside (returned).
fn make_room(root: &Path, force: bool) -> Result<Option<PathBuf>, String> {
    if !occupied(root)? {
        if root.exists() {
            std::fs::remove_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
        }
        return Ok(None);
    }
    if !force {
        return Err(format!(
            "{} is not empty: restore will not write over it (--force moves it aside first)",
            root.display()
        ));
    }
    let aside = beside(
        root,
        &format!(".pre-restore-{}", snapshot_name(super::now_secs())),
    );
    std::fs::rename(root, &aside).map_err(|e| {
        format!(
            "moving {} aside to {}: {e}",
            root.display(),
            aside.display()
        )
    })?;
    log::info!(
        "restore: moved {} aside to {}",
        root.display(),
        aside.display()
    );
    Ok(Some(aside))
}

/// Download every job, `target.concurrency` at a time. Returns (count, first error) if any
/// failed; the others are in place.
fn fetch_all(
    target: &Target,
    up: &str,
    jobs: Vec<Job>,
    staging: &Path,
    progress: Progress,
    report: &mut Report,
) -> Option<(u64, String)> {
    let total = jobs.len() as u64;
    let queue = Mutex::new(jobs);
    let failed: Mutex<(u64, Option<String>)> = Mutex::new((0, None));
    let (done, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let counter = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..target.concurrency.min(total.max(1) as usize) {
            s.spawn(|| loop {
                let Some(job) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    return;
                };
                let part = staging.join(format!(
                    "tmp/restore-{}.part",
                    counter.fetch_add(1, Ordering::Relaxed)
                ));
                match fetch_one(target, up, &job, &part) {
                    Ok(()) => {
                        bytes.fetch_add(job.size, Ordering::Relaxed);
                        crate::metrics::global().backup_restored(job.size);
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&part);
                        log::error!("restore: message {}: {e}", job.hash);
                        if let Ok(mut f) = failed.lock() {
                            f.0 += 1;
                            f.1.get_or_insert(e);
                        }
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress("restore", d, total);
            });
        }
    });
    report.bytes = bytes.into_inner();
    match failed.into_inner() {
        Ok((n, Some(e))) if n > 0 => Some((n, e)),
        _ => None,
    }
}

/// Fetch one message to `part`, check it, set its mtime, and put it at every destination.
fn fetch_one(target: &Target, up: &str, job: &Job, part: &Path) -> Result<(), String> {
    let key = format!("{up}m/{}", target.seal.object_id(&job.hash));
    let max = target
        .seal
        .sealed_len(job.size.min(target.max_message_size));
    target
        .client
        .get_with(&key, max, |body| {
            // A retried GET starts the file again.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(part)
                .map_err(|e| format!("{}: {e}", part.display()))?;
            let mut plain = target.seal.open(body)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0u64;
            loop {
                let k = plain
                    .read(&mut buf)
                    .map_err(|e| format!("reading {key}: {e}"))?;
                if k == 0 {
                    break;
                }
                let chunk = buf.get(..k).unwrap_or_default();
                h.update(chunk);
                n += k as u64;
                if n > job.size {
                    return Err(format!("{key}: longer than the manifest says"));
                }
                f.write_all(chunk)
                    .map_err(|e| format!("writing {}: {e}", part.display()))?;
            }
            if n != job.size || hex(&h.finalize()) != job.hash {
                return Err(format!(
                    "{key}: content does not match its manifest (damaged)"
                ));
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let mut dests = job.dests.iter();
    let (first, first_mtime) = dests.next().ok_or("no destination")?;
    set_mtime(part, *first_mtime)?;
    std::fs::rename(part, first).map_err(|e| format!("{}: {e}", first.display()))?;
    for (d, mtime) in dests {
        // The same bytes in several places: one file, linked (as Dovecot's COPY does), unless
        // the copies arrived at different times (the mtime is the INTERNALDATE).
        let linked = mtime == first_mtime && std::fs::hard_link(first, d).is_ok();
        if !linked {
            std::fs::copy(first, d).map_err(|e| format!("{}: {e}", d.display()))?;
            set_mtime(d, *mtime)?;
        }
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: i64) -> Result<(), String> {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_times(
                std::fs::FileTimes::new()
                    .set_modified(when)
                    .set_accessed(when),
            )
        })
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Flush the staging tree to disk once, then rename it into place.
fn sync_and_publish(staging: &Path, root: &Path) -> Result<(), String> {
    let dir = std::fs::File::open(staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    rustix::fs::syncfs(&dir).map_err(|e| format!("syncfs {}: {e}", staging.display()))?;
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        mkdir(parent)?;
    }
    std::fs::rename(staging, root)
        .map_err(|e| format!("renaming {} to {}: {e}", staging.display(), root.display()))?;
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
