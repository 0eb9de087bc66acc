//! S3 → Maildir sync: SES-delivered objects into the users' Maildirs, exactly once.
//!
//! Amazon SES's receipt-rule S3 action writes each received message as one object (raw RFC
//! 5322 with CRLF line endings, SES's `Received:` and `X-SES-*` headers prepended). A pass:
//!
//! ```text
//!  lock ─▶ ledger ─▶ ListObjectsV2 (paged) ─▶ plan::decide ─▶ pool of GETs (s3)
//!      ─▶ route (header section only) ─▶ store::deliver_from_reader (stream → tmp/ → fsync → new/)
//!      ─▶ ledger "delivered" ─▶ after-delivery (delete / copy+delete) ─▶ ledger "finished"
//! ```
//!
//! Exactly once: the Maildir unique name is derived from the object key
//! ([`plan::unique_name`]) and [`crate::store::deliver`] does nothing when a file with that
//! name already exists, so a pass killed between the rename and the ledger write delivers
//! nothing twice; the ledger is only written after the rename, so nothing is lost either.
//! One syncer at a time per ledger ([`ledger::lock`]).
//!
//! Modules: [`s3`] (the only HTTP client use), [`plan`] (pure decisions and names), [`ledger`]
//! (state file and lock), [`route`] (pure routing), [`config`] (settings → configuration).
//! The entry points ([`run_once`], [`main`], [`spawn_periodic`], [`queue::spawn_watch`]) take plain
//! [`SyncSettings`]; `cli` fills them in from the flags.
//!
//! Never: drops mail (unroutable → postmaster; a failed object is retried next pass), holds
//! more than one message per worker in memory, or logs a secret.

pub mod config;
pub mod ledger;
pub mod notice;
pub mod plan;
pub mod queue;
mod quota;
pub mod route;
pub mod s3;
pub mod sqs;

pub use config::SyncSettings;
use config::{SyncConfig, VirusAction};
use plan::{Action, AfterDelivery, Listed};
use route::{Headers, Verdicts};
use s3::{S3Client, S3Error};
use std::collections::HashSet;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Objects in the listing.
    pub listed: usize,
    /// Objects not delivered before this pass.
    pub new: usize,
    pub delivered: usize,
    /// Setup notification, folder markers, oversized, already moved.
    pub skipped: usize,
    pub failed: usize,
    /// Objects held back because a recipient is over quota (they stay in the bucket and are
    /// tried again next pass; `quota`).
    pub held: usize,
    /// Delivered keys whose ETag changed (reported once each).
    pub changed: usize,
    /// After-delivery steps (delete/move) done.
    pub finished: usize,
    /// Bytes downloaded.
    pub bytes: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "listed {}, new {}, delivered {}, skipped {}, failed {}, held for quota {}, changed {}, finished {}, {} bytes in {:.2}s",
            self.listed,
            self.new,
            self.delivered,
            self.skipped,
            self.failed,
            self.held,
            self.changed,
            self.finished,
            self.bytes,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Run one pass with `settings` (credentials from the process environment).
pub fn run_once(settings: &SyncSettings) -> Result<PassReport, String> {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = SyncConfig::from_settings(settings, &env)?;
    let client = S3Client::new(cfg.s3.clone())?;
    run_pass(&cfg, &client)
}

/// `pimap sync`: one pass (`every` is `None`: `--once`, or no `--sync-interval`), else a pass
/// `every` interval in the foreground. With `--sqs-queue`: the queue watched in the
/// foreground ([`queue::watch`]), or with `--once` one pass and then what the queue holds.
/// Returns the exit code: 0, or 1 if the pass (or, looping, the configuration) failed.
/// Logging is set up by the caller.
pub fn main(settings: SyncSettings, every: Option<Duration>, once: bool) -> i32 {
    if settings.sqs_queue.as_deref().is_some_and(|q| !q.is_empty()) && !once {
        let env = |k: &str| std::env::var(k).ok();
        if let Err(e) = SyncConfig::from_settings(&settings, &env) {
            eprintln!("pimap sync: {e}");
            return 1;
        }
        let every = every.unwrap_or(queue::DEFAULT_LIST_EVERY);
        queue::watch(&settings, every, &AtomicBool::new(false));
        return 0;
    }
    let code = main_once(&settings, every);
    if code == 0 && settings.sqs_queue.as_deref().is_some_and(|q| !q.is_empty()) {
        if let Err(e) = queue::drain(&settings) {
            eprintln!("pimap sync: {e}");
            return 1;
        }
    }
    code
}

fn main_once(settings: &SyncSettings, every: Option<Duration>) -> i32 {
    if let Some(interval) = every {
        loop {
            periodic_pass(settings);
            std::thread::sleep(interval);
        }
    }
    match run_once(settings) {
        Ok(r) if r.failed == 0 => {
            log::info!("s3 sync: {r}");
            0
        }
        Ok(r) => {
            log::error!("s3 sync: {r}");
            eprintln!(
                "pimap sync: {} object(s) failed; they are retried on the next pass",
                r.failed
            );
            1
        }
        Err(e) => {
            eprintln!("pimap sync: {e}");
            1
        }
    }
}

fn periodic_pass(settings: &SyncSettings) {
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_once(settings)));
    crate::metrics::global().sync_pass(match &res {
        Ok(Ok(r)) => Ok((r.delivered, r.failed)),
        _ => Err(()),
    });
    match res {
        Ok(Ok(r)) if r.failed == 0 => log::info!("s3 sync: {r}"),
        Ok(Ok(r)) => log::warn!("s3 sync: {r}"),
        Ok(Err(e)) => log::error!("s3 sync: {e}"),
        Err(_) => log::error!("s3 sync: the pass panicked (a bug); trying again next interval"),
    }
}

/// Run a pass every `interval` on a background thread, forever; failures are logged.
pub fn spawn_periodic(settings: SyncSettings, interval: Duration) {
    let _ = spawn_periodic_until(
        settings,
        interval,
        std::sync::Arc::new(AtomicBool::new(false)),
    );
}

/// [`spawn_periodic`] that ends after the pass during which `stop` becomes true (tests, and
/// a server that wants to shut down cleanly).
pub fn spawn_periodic_until(
    settings: SyncSettings,
    interval: Duration,
    stop: std::sync::Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let spawned = std::thread::Builder::new()
        .name("s3-sync".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                periodic_pass(&settings);
                // Sleep in small steps so a stop request is seen promptly.
                let until = Instant::now() + interval;
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    std::thread::sleep(interval.min(Duration::from_millis(100)));
                }
            }
        });
    match spawned {
        Ok(h) => Some(h),
        Err(e) => {
            log::error!("s3 sync: cannot start the sync thread: {e}");
            None
        }
    }
}

/// Create `dir` as a Maildir (cur/new/tmp); `folder` also writes the Maildir++
/// `maildirfolder` marker.
fn ensure_maildir(dir: &Path, folder: bool) -> Result<(), String> {
    for sub in ["cur", "new", "tmp"] {
        let p = dir.join(sub);
        if !p.is_dir() {
            std::fs::create_dir_all(&p).map_err(|e| format!("creating {}: {e}", p.display()))?;
        }
    }
    if folder {
        let m = dir.join("maildirfolder");
        if !m.exists() {
            std::fs::write(&m, b"").map_err(|e| format!("creating {}: {e}", m.display()))?;
        }
    }
    Ok(())
}

/// Read the start of a message up to the end of its header section (the first empty line),
/// at most [`route::MAX_HEADER_BYTES`] plus one read: what routing needs, nothing more. The
/// returned bytes may include the start of the body; the caller streams them first.
fn read_head(body: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while head.len() < route::MAX_HEADER_BYTES {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Look for the blank line only around the new bytes (a CRLF pair may straddle reads).
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        let tail = head.get(from..).unwrap_or(&[]);
        if tail.windows(4).any(|w| w == b"\r\n\r\n") || tail.windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    Ok(head)
}

/// Shared state of one pass's workers.
struct Pass<'a> {
    cfg: &'a SyncConfig,
    client: &'a S3Client,
    users: crate::auth::UserDb,
    user_names: Vec<String>,
    ledger: Mutex<ledger::Ledger>,
    report: Mutex<PassReport>,
    done: AtomicUsize,
    progress: bool,
    /// Keys deleted or moved away during this pass (the ledger can forget them).
    removed: Mutex<HashSet<String>>,
    /// How the objects were found (a notification names objects that may be gone since).
    path: DeliveryPath,
    /// Keys delivered by this pass.
    delivered: Mutex<HashSet<String>>,
}

/// How an object came to be delivered: named by a queue notification, or found by a LIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryPath {
    Notification,
    List,
}

impl Pass<'_> {
    fn count(&self, f: impl FnOnce(&mut PassReport)) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }

    fn ledger<T>(
        &self,
        f: impl FnOnce(&mut ledger::Ledger) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut l = self
            .ledger
            .lock()
            .map_err(|_| "ledger lock poisoned".to_string())?;
        f(&mut l)
    }

    /// GET, check, route and deliver one object, then record it. The body is streamed to
    /// disk ([`s3::S3Client::get_with`] → [`crate::store::deliver_from_reader`]): only its
    /// header section (at most [`route::MAX_HEADER_BYTES`]) is held in memory, for routing.
    fn fetch(&self, obj: &Listed) -> Result<(), String> {
        let key = obj.key.as_str();
        let unique = plan::unique_name(self.client.bucket_name(), key);
        let got = self
            .client
            .get_with(key, self.cfg.max_message_size, |body| {
                self.deliver_body(key, &unique, body)
                    .map(|held| (body.bytes_read(), held))
            });
        let ((bytes, held), etag) = match got {
            Ok(v) => v,
            Err(S3Error::TooLarge(n)) => {
                log::warn!("s3 sync: skipping {key:?}: {n} bytes is over --max-message-size");
                self.count(|r| r.skipped += 1);
                return Ok(());
            }
            Err(S3Error::Fatal { status: 404, .. }) if self.path == DeliveryPath::Notification => {
                // Named by a notification but gone: delivered and deleted earlier (a duplicate
                // notification after the ledger forgot the key), or removed by someone else.
                log::info!("s3 sync: {key:?} (from a notification) is no longer in the bucket");
                self.count(|r| r.skipped += 1);
                return Ok(());
            }
            Err(e) => return Err(format!("{key:?}: {e}")),
        };
        self.count(|r| r.bytes += bytes);
        if !held.is_empty() {
            // Not recorded, not finished: it stays in the bucket for a later pass.
            quota::held(key, &held);
            self.count(|r| r.held += 1);
            return Ok(());
        }
        quota::released(key);
        // The ledger is written only after every rename: a crash before this line makes the
        // next pass deliver again, which the unique name turns into a no-op.
        let etag = plan::normalize_etag(etag.as_deref().or(obj.etag.as_deref()));
        self.ledger(|l| l.record_delivered(key, &etag))?;
        self.count(|r| r.delivered += 1);
        if let Ok(mut d) = self.delivered.lock() {
            d.insert(key.to_string());
        }
        self.finish(key)
    }

    /// Route one streamed body by its header section and deliver it: written once, then
    /// hard-linked (or copied) for further recipients. Idempotent per target (the unique name),
    /// so a retried GET after a partial delivery completes it without duplicates. Returns the
    /// recipients it was held back for (over quota: `quota`).
    fn deliver_body(
        &self,
        key: &str,
        unique: &str,
        body: &mut s3::Body<'_>,
    ) -> Result<Vec<String>, String> {
        let head = read_head(body).map_err(|e| format!("reading the headers: {e}"))?;
        let headers = Headers::parse(&head);
        let verdicts = Verdicts::of(&headers);
        let mut targets: Vec<(PathBuf, String)> = Vec::new();
        let mut held = Vec::new();
        let declared = body.declared_len();
        // Taken for the first recipient with quota rules, kept until the deliveries are done.
        let mut quota_turn = None;
        if verdicts.virus && self.cfg.virus_action == VirusAction::Quarantine {
            ensure_maildir(&self.cfg.quarantine_dir, false)?;
            targets.push((self.cfg.quarantine_dir.clone(), "quarantine".to_string()));
        } else {
            let route = route::route(&self.cfg.route, &self.user_names, key, &headers)
                .map_err(|e| format!("{key:?}: {e}"))?;
            if route.reason == route::RouteReason::Postmaster {
                log::warn!(
                    "s3 sync: {key:?} is unroutable ({:?}): delivered to the postmaster",
                    route.unmatched
                );
            }
            let junk =
                verdicts.spam || (verdicts.virus && self.cfg.virus_action == VirusAction::Junk);
            for user in &route.users {
                let home = self.users.lookup(user).and_then(|u| u.home);
                let root = self.cfg.mail_location.resolve(user, home.as_deref())?;
                ensure_maildir(&root, false)?;
                let (target, mailbox) = if junk {
                    let t = root.join(&self.cfg.junk_folder);
                    ensure_maildir(&t, true)?;
                    (t, self.cfg.junk_folder.trim_start_matches('.'))
                } else {
                    (root.clone(), "INBOX")
                };
                let size = declared.unwrap_or(0);
                if quota_turn.is_none() {
                    quota_turn = quota::lock_for(&self.users, user);
                }
                if quota::holds_back(&self.users, user, &root, mailbox, &target, unique, size)? {
                    held.push(user.clone());
                    continue;
                }
                log::debug!(
                    "s3 sync: {key:?} → {user}{} ({:?})",
                    if junk { " (Junk)" } else { "" },
                    route.reason
                );
                targets.push((target, user.clone()));
            }
        }
        let max = self.cfg.max_message_size;
        let mut first: Option<PathBuf> = None;
        for (target, who) in &targets {
            let delivered = match &first {
                None => {
                    let mut stream = std::io::Cursor::new(&head).chain(&mut *body);
                    crate::store::deliver_from_reader(target, unique, &mut stream, declared, max)
                }
                Some(src) => crate::store::deliver_link(target, unique, src),
            };
            let path = delivered.map_err(|e| format!("{key:?} for {who}: {e}"))?;
            if first.is_none() {
                first = Some(path);
            }
        }
        if targets.first().is_some_and(|(_, who)| who == "quarantine") {
            log::warn!(
                "s3 sync: {key:?} has a virus verdict: quarantined in {}",
                self.cfg.quarantine_dir.display()
            );
        }
        drop(quota_turn);
        Ok(held)
    }

    /// The after-delivery step for a delivered key.
    fn finish(&self, key: &str) -> Result<(), String> {
        match &self.cfg.after {
            AfterDelivery::Keep => return Ok(()),
            AfterDelivery::Delete => self
                .client
                .delete(key)
                .map_err(|e| format!("deleting {key:?}: {e}"))?,
            AfterDelivery::Move(p) => {
                let dest = plan::moved_key(&self.cfg.prefix, p, key);
                self.client
                    .copy(key, &dest)
                    .map_err(|e| format!("moving {key:?}: {e}"))?;
                self.client
                    .delete(key)
                    .map_err(|e| format!("deleting {key:?} after the copy: {e}"))?;
            }
        }
        self.ledger(|l| l.record_finished(key))?;
        if let Ok(mut removed) = self.removed.lock() {
            removed.insert(key.to_string());
        }
        self.count(|r| r.finished += 1);
        Ok(())
    }

    /// Work through `items` on the pass's workers; returns the keys that failed (logged).
    fn run_items(&self, items: &[(Listed, Action)], total_queued: usize) -> HashSet<String> {
        let failed = Mutex::new(HashSet::new());
        let next = AtomicUsize::new(0);
        let workers = self.cfg.concurrency.min(items.len()).max(1);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((obj, action)) = items.get(i) else {
                        break;
                    };
                    let res = match action {
                        Action::Fetch => self.fetch(obj),
                        Action::Finish => self.finish(&obj.key),
                        _ => Ok(()),
                    };
                    if let Err(e) = res {
                        log::error!("s3 sync: {e}");
                        self.count(|r| r.failed += 1);
                        if let Ok(mut f) = failed.lock() {
                            f.insert(obj.key.clone());
                        }
                    }
                    let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
                    if self.progress && (n.is_multiple_of(25) || n == total_queued) {
                        // A progress line for long first syncs, only when stderr is a
                        // terminal; the total grows as later listing pages arrive.
                        let bytes = self.report.lock().map(|r| r.bytes).unwrap_or(0);
                        eprint!(
                            "\rs3 sync: {n} of {} objects, {:.1} MiB",
                            total_queued.max(n),
                            bytes as f64 / (1024.0 * 1024.0)
                        );
                    }
                });
            }
        });
        failed.into_inner().unwrap_or_default()
    }

    /// Decides what to do with each object of a listing page not listed before (`seen` holds
    /// the keys so far: a server repeating keys across pages is not obeyed twice), counts and
    /// logs the decisions, and returns the objects that need work: a GET and delivery, or the
    /// after-delivery step.
    fn plan_page(
        &self,
        objects: Vec<Listed>,
        seen: &mut HashSet<String>,
    ) -> Result<Vec<(Listed, Action)>, String> {
        let mut items = Vec::new();
        for obj in objects {
            if !seen.insert(obj.key.clone()) {
                continue; // a misbehaving server repeating keys across pages
            }
            let action = {
                let l = self
                    .ledger
                    .lock()
                    .map_err(|_| "ledger lock poisoned".to_string())?;
                plan::decide(
                    &obj,
                    l.get(&obj.key),
                    &self.cfg.after,
                    self.cfg.max_message_size,
                )
            };
            self.note(&obj, &action)?;
            if matches!(action, Action::Fetch | Action::Finish) {
                items.push((obj, action));
            }
        }
        Ok(items)
    }

    /// Counts the decision for `obj` in the report and logs the skipped and changed ones; a
    /// changed object's new ETag goes in the ledger, so it is not warned about every pass.
    fn note(&self, obj: &Listed, action: &Action) -> Result<(), String> {
        match action {
            Action::Fetch => self.count(|r| r.new += 1),
            Action::Skip(why) => {
                if obj.key.ends_with(plan::SES_SETUP_NOTIFICATION) || obj.key.ends_with('/') {
                    log::debug!("s3 sync: skipping {:?}: {why}", obj.key);
                } else {
                    log::warn!("s3 sync: skipping {:?}: {why}", obj.key);
                }
                self.count(|r| r.skipped += 1);
            }
            Action::Changed { old, new } => {
                log::warn!(
                    "s3 sync: {:?} was delivered with ETag {old} and now has ETag {new}: not delivering it again",
                    obj.key
                );
                self.ledger(|l| l.record_changed(&obj.key, new))?;
                self.count(|r| r.changed += 1);
            }
            Action::Finish | Action::Done => {}
        }
        Ok(())
    }
}

/// Take the sync lock, open the ledger and the users, and set up a pass.
fn open_pass<'a>(
    cfg: &'a SyncConfig,
    client: &'a S3Client,
    path: DeliveryPath,
) -> Result<(ledger::SyncLock, Pass<'a>), String> {
    let lock = ledger::lock(&cfg.lock_path)?;
    let ledger = ledger::Ledger::open(&cfg.ledger_path)?;
    let users = crate::auth::UserDb::load(&cfg.users_path)?;
    let user_names = users.user_names();
    if let Some(u) = &cfg.route.deliver_to {
        if !user_names.iter().any(|n| n.eq_ignore_ascii_case(u)) {
            return Err(format!(
                "--deliver-to {u:?} is not a user in {}",
                cfg.users_path.display()
            ));
        }
    }
    let pass = Pass {
        cfg,
        client,
        users,
        user_names,
        ledger: Mutex::new(ledger),
        report: Mutex::new(PassReport::default()),
        done: AtomicUsize::new(0),
        progress: path == DeliveryPath::List && std::io::stderr().is_terminal(),
        removed: Mutex::new(HashSet::new()),
        path,
        delivered: Mutex::new(HashSet::new()),
    };
    Ok((lock, pass))
}

/// What [`run_objects`] did: the pass's report, and per key whether it failed (to be tried
/// again) and whether this run delivered it.
#[derive(Debug, Default)]
pub struct ObjectsReport {
    pub report: PassReport,
    pub failed: HashSet<String>,
    pub delivered: HashSet<String>,
}

/// Deliver the objects notifications named (already known to be in this bucket, under the
/// prefix), through the same decisions, ledger and exactly-once delivery as a LIST pass. The
/// ledger is on disk (fsynced) when this returns `Ok`: what it reports delivered is durable.
/// An object named twice is handled once; one that is gone is not a failure.
pub fn run_objects(
    cfg: &SyncConfig,
    client: &S3Client,
    objects: Vec<Listed>,
) -> Result<ObjectsReport, String> {
    let start = Instant::now();
    let (_lock, pass) = open_pass(cfg, client, DeliveryPath::Notification)?;
    let mut seen = HashSet::new();
    let items = pass.plan_page(objects, &mut seen)?;
    let failed = pass.run_items(&items, items.len());
    let done = pass.end(seen.len(), start)?;
    Ok(ObjectsReport {
        report: done.report,
        failed,
        delivered: done.delivered,
    })
}

/// What a pass leaves when it ends: its ledger on disk, its report, and the keys it removed
/// from the bucket and delivered.
struct Ended {
    ledger: ledger::Ledger,
    report: PassReport,
    removed: HashSet<String>,
    delivered: HashSet<String>,
}

impl Pass<'_> {
    /// End the pass: the ledger is flushed to disk (what it records is durable from here),
    /// the report gets the number of objects seen and the time taken.
    fn end(self, listed: usize, start: Instant) -> Result<Ended, String> {
        if self.progress && self.done.load(Ordering::Relaxed) > 0 {
            eprintln!();
        }
        let ledger = self
            .ledger
            .into_inner()
            .map_err(|_| "ledger lock poisoned".to_string())?;
        ledger.sync()?;
        let mut report = self
            .report
            .into_inner()
            .map_err(|_| "report lock poisoned".to_string())?;
        report.listed = listed;
        report.elapsed = start.elapsed();
        Ok(Ended {
            ledger,
            report,
            removed: self.removed.into_inner().unwrap_or_default(),
            delivered: self.delivered.into_inner().unwrap_or_default(),
        })
    }
}

/// One pass with a resolved configuration and client.
pub fn run_pass(cfg: &SyncConfig, client: &S3Client) -> Result<PassReport, String> {
    let start = Instant::now();
    let (_lock, pass) = open_pass(cfg, client, DeliveryPath::List)?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut token: Option<String> = None;
    let mut listing_error = None;
    // Objects handed to workers so far (GETs and after-delivery steps), for the progress line.
    let mut queued = 0usize;
    loop {
        let page = match client.list_page(&cfg.prefix, token.as_deref(), cfg.max_keys) {
            Ok(p) => p,
            Err(e) => {
                listing_error = Some(format!(
                    "listing s3://{}/{}: {e}",
                    cfg.s3.bucket, cfg.prefix
                ));
                break;
            }
        };
        let items = pass.plan_page(page.objects, &mut seen)?;
        queued += items.len();
        let _ = pass.run_items(&items, queued);
        match page.next {
            Some(t) if Some(&t) != token.as_ref() => token = Some(t),
            _ => break,
        }
    }
    let Ended {
        mut ledger,
        report,
        removed,
        ..
    } = pass.end(seen.len(), start)?;
    if listing_error.is_none() && cfg.after != AfterDelivery::Keep {
        ledger.prune(|k| seen.contains(k) && !removed.contains(k))?;
    }
    match listing_error {
        Some(e) => {
            log::debug!("s3 sync (incomplete): {report}");
            Err(e)
        }
        None => Ok(report),
    }
}
