//! Running backups and restores over every user of the users file: `pimap backup` (one run),
//! `serve --backup-interval` (a run every interval, on its own thread) and `pimap restore`.
//!
//! A run takes the target's lock in the data dir (a second run, from a CronJob or by hand,
//! waits for nothing: it says the lock is held and exits), backs each user up in turn (one
//! user's failure is logged and the others still run), applies retention, and saves the hash
//! cache. It fails (exit code 1) if any user failed.

use super::pass::{self, State};
use super::{now_secs, restore, state_paths, Target};
use crate::auth::UserDb;
use crate::config::MailLocation;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A resolved backup configuration.
#[derive(Debug)]
pub struct BackupConfig {
    pub target: Target,
    pub users_path: PathBuf,
    pub mail_location: MailLocation,
    pub data_dir: PathBuf,
    pub retention: Duration,
    /// `--user`: only this one.
    pub user: Option<String>,
}

/// What a run did, over every user.
#[derive(Debug, Default)]
pub struct Summary {
    pub users: usize,
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub messages: usize,
    pub manifests_written: u64,
    pub pruned_objects: u64,
    pub failed: Vec<String>,
}

/// Progress lines on a terminal (stderr), at most every half second; nothing otherwise.
pub fn terminal_progress() -> impl Fn(&str, u64, u64) + Sync {
    let tty = std::io::stderr().is_terminal();
    let last = Mutex::new(Instant::now());
    move |what: &str, done: u64, total: u64| {
        if !tty {
            return;
        }
        let Ok(mut l) = last.lock() else { return };
        if done == total || l.elapsed() >= Duration::from_millis(500) {
            *l = Instant::now();
            let end = if done == total { "\n" } else { "" };
            let _ = write!(std::io::stderr(), "\r{what}: {done}/{total} messages{end}");
        }
    }
}

/// The users to work on, with their mail roots.
fn users(cfg: &BackupConfig) -> Result<Vec<(String, PathBuf)>, String> {
    let db = UserDb::load(&cfg.users_path)?;
    let names = match &cfg.user {
        Some(u) if db.lookup(u).is_none() => {
            return Err(format!("--user {u}: not in {}", cfg.users_path.display()))
        }
        Some(u) => vec![u.clone()],
        None => db.user_names(),
    };
    names
        .into_iter()
        .map(|n| {
            let home = db.lookup(&n).and_then(|u| u.home);
            let root = cfg.mail_location.resolve(&n, home.as_deref())?;
            Ok((n, root))
        })
        .collect()
}

/// The target's lock, held for a run (the sync's flock, [`crate::sync::ledger::lock_as`]).
fn lock(data_dir: &Path, bucket: &str) -> Result<crate::sync::ledger::SyncLock, String> {
    let (_, lock_path) = state_paths(data_dir, bucket);
    crate::sync::ledger::lock_as(&lock_path, "backup of this bucket")
}

/// One backup run over every user.
pub fn backup_run(
    cfg: &BackupConfig,
    state: &mut State,
    progress: pass::Progress,
) -> Result<Summary, String> {
    let _lock = lock(&cfg.data_dir, cfg.target.client.bucket_name())?;
    let now = now_secs();
    // Unreferenced objects are collected once a day (or once per retention, if shorter).
    let every = cfg.retention.as_secs().clamp(1, 86400);
    let collect = now.saturating_sub(state.last_collect) >= every;
    let mut all_collected = collect;
    let mut sum = Summary::default();
    for (user, root) in users(cfg)? {
        if !root.is_dir() {
            log::info!(
                "backup: {user}: no mail yet ({} does not exist)",
                root.display()
            );
            continue;
        }
        let started = Instant::now();
        let r = pass::backup_user(&cfg.target, &user, &root, &mut state.cache, now, progress)
            .and_then(|mut r| {
                pass::prune(&cfg.target, &user, now, cfg.retention, collect, &mut r)?;
                Ok(r)
            });
        match r {
            Ok(r) => {
                log::info!(
                    "backup: {user}: {} message(s) in {} folder(s); uploaded {} ({} bytes), {} manifest(s) written, {} read to hash, pruned {} snapshot(s) and {} object(s); {} in {:.1?}",
                    r.messages,
                    r.mailboxes,
                    r.uploaded,
                    r.uploaded_bytes,
                    r.manifests_written,
                    r.hashed,
                    r.pruned_snapshots,
                    r.pruned_objects,
                    r.snapshot,
                    started.elapsed()
                );
                sum.users += 1;
                sum.uploaded += r.uploaded;
                sum.uploaded_bytes += r.uploaded_bytes;
                sum.messages += r.messages;
                sum.manifests_written += r.manifests_written;
                sum.pruned_objects += r.pruned_objects;
            }
            Err(e) => {
                log::error!("backup: {user}: {e}");
                sum.failed.push(format!("{user}: {e}"));
                all_collected = false;
            }
        }
    }
    if all_collected {
        state.last_collect = now;
    }
    let (state_path, _) = state_paths(&cfg.data_dir, cfg.target.client.bucket_name());
    state.save(&state_path);
    pass::carry_over(&mut state.cache);
    crate::metrics::global().backup_pass(sum.failed.is_empty(), now);
    match sum.failed.first() {
        None => Ok(sum),
        Some(first) => Err(format!(
            "{} of {} user(s) failed; first: {first}",
            sum.failed.len(),
            sum.failed.len() + sum.users
        )),
    }
}

/// `pimap backup`: one run; the exit code.
pub fn backup_main(cfg: BackupConfig) -> i32 {
    let (state_path, _) = state_paths(&cfg.data_dir, cfg.target.client.bucket_name());
    let mut state = State::load(&state_path);
    let progress = terminal_progress();
    match backup_run(&cfg, &mut state, &progress) {
        Ok(s) => {
            log::info!(
                "backup of {} user(s) to {} done: {} message(s), {} uploaded ({} bytes)",
                s.users,
                cfg.target.describe(),
                s.messages,
                s.uploaded,
                s.uploaded_bytes
            );
            0
        }
        Err(e) => {
            log::error!("backup: {e}");
            eprintln!("pimap backup: {e}");
            1
        }
    }
}

/// `serve --backup-interval`: a run now and then every `every`, on a thread of its own.
pub fn spawn_periodic(cfg: BackupConfig, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("pimap-backup".into())
        .spawn(move || {
            let (state_path, _) = state_paths(&cfg.data_dir, cfg.target.client.bucket_name());
            let mut state = State::load(&state_path);
            let quiet = |_: &str, _: u64, _: u64| {};
            loop {
                if let Err(e) = backup_run(&cfg, &mut state, &quiet) {
                    log::error!("backup: {e}");
                }
                std::thread::sleep(every);
            }
        });
    if let Err(e) = spawned {
        log::error!("backup: cannot start its thread: {e}");
    }
}

/// `pimap restore`: every user with a backup (or `--user`); the exit code.
pub fn restore_main(cfg: BackupConfig, at: Option<u64>, force: bool) -> i32 {
    let list = match users(&cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pimap restore: {e}");
            return 1;
        }
    };
    let progress = terminal_progress();
    let mut failed = 0;
    let mut restored = 0;
    for (user, root) in list {
        let key = match restore::choose(&cfg.target, &user, at) {
            Ok(restore::Choice::Snapshot(k)) => k,
            // Every user: one without a backup is not an error (a new user).
            Ok(restore::Choice::Nothing(why)) if cfg.user.is_none() => {
                log::warn!("restore: {why}");
                continue;
            }
            Ok(restore::Choice::Nothing(e)) | Err(e) => {
                log::error!("restore: {user}: {e}");
                eprintln!("pimap restore: {user}: {e}");
                failed += 1;
                continue;
            }
        };
        match restore::restore_user(&cfg.target, &user, &root, &key, force, &progress) {
            Ok(r) => {
                restored += 1;
                log::info!(
                    "restore: {user}: {} message(s) ({} bytes) in {} folder(s) from {} into {}{}",
                    r.messages,
                    r.bytes,
                    r.mailboxes,
                    r.snapshot,
                    root.display(),
                    r.moved_aside
                        .map(|a| format!(" (what was there is now in {})", a.display()))
                        .unwrap_or_default()
                );
            }
            Err(e) => {
                log::error!("restore: {user}: {e}");
                eprintln!("pimap restore: {user}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return 1;
    }
    if restored == 0 {
        eprintln!(
            "pimap restore: nothing to restore: no user has a backup in {}",
            cfg.target.describe()
        );
        return 1;
    }
    0
}
