//! `--sqs-queue`: mail delivered as soon as S3 or SES announces it. One thread long-polls the
//! queue (ReceiveMessage, WaitTimeSeconds 20: three requests a minute when nothing arrives),
//! delivers the objects each batch of notifications names through [`super::run_objects`]
//! (the LIST pass's decisions, ledger and exactly-once delivery), and deletes a queue message
//! only once what it named is delivered and the ledger is on disk. The same thread runs the
//! LIST pass at start and then every `list_every`: the safety net for anything a notification
//! missed (mail from before the queue existed, a lost or deleted notification, an object held
//! for quota).
//!
//! ```text
//!  LIST pass ─▶ ReceiveMessage (≤ 20 s) ─▶ notice::parse ─▶ run_objects (GET, deliver,
//!      ▲            ledger, fsync) ─▶ DeleteMessageBatch ─┐
//!      └────────────── every list_every ◀─────────────────┘
//! ```
//!
//! A notification that names nothing deliverable (a test event, a removal, another bucket,
//! a key outside `--s3-prefix`, malformed JSON) is logged and deleted: it cannot lose mail.
//! One whose object failed (5xx after the retries, a disk error, another syncer holding the
//! lock) is left in the queue: SQS offers it again after the queue's visibility timeout.
//! Duplicates and reordering are harmless: the ledger and the Maildir unique name make a
//! second delivery a no-op.

use super::config::SyncConfig;
use super::notice::{self, Notice};
use super::plan::Listed;
use super::s3::S3Client;
use super::sqs::{Message, SqsClient, SqsError, MAX_WAIT_SECONDS};
use super::SyncSettings;
use crate::metrics::{global as metrics, QueueMessage, QueuePoll};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The LIST pass's interval when `--sqs-queue` is set and `--sync-interval` is not.
pub const DEFAULT_LIST_EVERY: Duration = Duration::from_secs(3600);
/// Pause after a request to the queue failed for good (bad credentials, missing queue): the
/// configuration is read again after it, so a fixed secret is picked up.
const FATAL_PAUSE: Duration = Duration::from_secs(60);
/// Pause after the queue kept failing through the retries (5xx, throttling, network).
const TRANSIENT_PAUSE: Duration = Duration::from_secs(5);

/// The configuration and both clients, resolved from the settings.
struct Clients {
    cfg: SyncConfig,
    s3: S3Client,
    sqs: SqsClient,
}

impl Clients {
    fn resolve(settings: &SyncSettings) -> Result<Clients, String> {
        let env = |k: &str| std::env::var(k).ok();
        let cfg = SyncConfig::from_settings(settings, &env)?;
        let sqs = cfg.sqs.clone().ok_or("no --sqs-queue")?;
        Ok(Clients {
            s3: S3Client::new(cfg.s3.clone())?,
            sqs: SqsClient::new(sqs),
            cfg,
        })
    }
}

/// Sleep `d` in short steps, returning early when `stop` is set.
fn pause(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Watch the queue until `stop` is set (checked between polls, so within about 20 s), with a
/// LIST pass at the start and every `list_every`. Never returns an error: every failure is
/// logged and retried, so the server keeps serving mail it already has.
pub fn watch(settings: &SyncSettings, list_every: Duration, stop: &AtomicBool) {
    let mut next_list = Instant::now();
    let mut clients: Option<Clients> = None;
    let mut announced = false;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_list {
            super::periodic_pass(settings);
            next_list = Instant::now() + list_every;
            // Read the configuration again now and then: rotated credentials, edited aliases.
            clients = None;
        }
        let c = match clients.take() {
            Some(c) => c,
            None => match Clients::resolve(settings) {
                Ok(c) => c,
                Err(e) => {
                    log::error!("sqs: {e}; trying again in {}s", FATAL_PAUSE.as_secs());
                    pause(
                        FATAL_PAUSE.min(next_list.saturating_duration_since(Instant::now())),
                        stop,
                    );
                    continue;
                }
            },
        };
        if !announced {
            match c.sqs.visibility_timeout() {
                Ok(v) => {
                    log::info!(
                        "sqs: watching {} (visibility timeout {v}s); LIST pass every {}s",
                        c.sqs.queue_url(),
                        list_every.as_secs()
                    );
                    announced = true;
                }
                Err(e) => {
                    failed_request(&e, "GetQueueAttributes", &next_list, stop);
                    continue;
                }
            }
        }
        // Never wait past the next LIST pass.
        let until_list = next_list
            .saturating_duration_since(Instant::now())
            .as_secs();
        let wait = u32::try_from(until_list)
            .unwrap_or(u32::MAX)
            .min(MAX_WAIT_SECONDS);
        match c.sqs.receive(wait) {
            Ok(msgs) if msgs.is_empty() => metrics().queue_poll(QueuePoll::Empty),
            Ok(msgs) => {
                metrics().queue_poll(QueuePoll::Messages);
                handle(&c, msgs);
            }
            Err(e) => {
                metrics().queue_poll(QueuePoll::Error);
                let fatal = matches!(e, SqsError::Fatal { .. });
                failed_request(&e, "ReceiveMessage", &next_list, stop);
                if fatal {
                    continue; // the configuration is read again
                }
            }
        }
        clients = Some(c);
    }
}

/// Log a failed queue request and pause (longer when retrying cannot help), never past the
/// next LIST pass.
fn failed_request(e: &SqsError, what: &str, next_list: &Instant, stop: &AtomicBool) {
    let d = match e {
        SqsError::Fatal { .. } => {
            log::error!(
                "sqs: {what}: {e}; trying again in {}s (the LIST pass goes on)",
                FATAL_PAUSE.as_secs()
            );
            FATAL_PAUSE
        }
        SqsError::Transient(_) => {
            log::warn!("sqs: {what}: {e}");
            TRANSIENT_PAUSE
        }
    };
    pause(
        d.min(next_list.saturating_duration_since(Instant::now())),
        stop,
    );
}

/// `pimap sync --once --sqs-queue`: after the LIST pass, read what the queue holds (no
/// waiting) and handle it, so a CronJob keeps the queue short. Returns whether every request
/// to the queue worked.
pub fn drain(settings: &SyncSettings) -> Result<(), String> {
    let c = Clients::resolve(settings)?;
    // A bounded number of rounds: a queue filling as fast as it is read must not keep a
    // CronJob running for ever.
    for _ in 0..100 {
        let msgs = c
            .sqs
            .receive(0)
            .map_err(|e| format!("sqs: ReceiveMessage: {e}"))?;
        if msgs.is_empty() {
            return Ok(());
        }
        handle(&c, msgs);
    }
    Ok(())
}

/// What one queue message asked for.
enum Asked {
    /// Nothing to deliver: delete it (already logged).
    Nothing(QueueMessage),
    /// These keys (in this bucket, under the prefix).
    Keys(Vec<String>),
}

/// Read one message: the keys to deliver, or why there are none (logged here).
fn read(cfg: &SyncConfig, m: &Message) -> (Asked, Vec<Listed>) {
    let objects = match notice::parse(&m.body) {
        Notice::Objects(o) => o,
        Notice::Ignored(why) => {
            log::info!("sqs: message {}: {why}: nothing to deliver", m.id);
            return (Asked::Nothing(QueueMessage::Ignored), Vec::new());
        }
        Notice::Malformed(why) => {
            log::warn!(
                "sqs: message {}: {why}: deleted without delivering anything (the LIST pass \
                 would find any object it was about)",
                m.id
            );
            return (Asked::Nothing(QueueMessage::Malformed), Vec::new());
        }
    };
    let mut keys = Vec::new();
    let mut listed = Vec::new();
    for o in objects {
        if o.bucket != cfg.s3.bucket {
            log::warn!(
                "sqs: message {}: an object in bucket {:?}, not --s3-bucket {:?}: ignored",
                m.id,
                o.bucket,
                cfg.s3.bucket
            );
        } else if !o.key.starts_with(&cfg.prefix) {
            log::info!(
                "sqs: message {}: {:?} is not under --s3-prefix {:?}: ignored",
                m.id,
                o.key,
                cfg.prefix
            );
        } else {
            keys.push(o.key.clone());
            listed.push(Listed {
                key: o.key,
                etag: o.etag,
                size: o.size,
            });
        }
    }
    if keys.is_empty() {
        (Asked::Nothing(QueueMessage::Ignored), listed)
    } else {
        (Asked::Keys(keys), listed)
    }
}

/// Deliver what a batch of messages names, then delete the messages that are done.
fn handle(c: &Clients, msgs: Vec<Message>) {
    let mut asked = Vec::with_capacity(msgs.len());
    let mut objects = Vec::new();
    for m in &msgs {
        let (a, listed) = read(&c.cfg, m);
        objects.extend(listed);
        asked.push(a);
    }
    let outcome = if objects.is_empty() {
        Ok(super::ObjectsReport::default())
    } else {
        super::run_objects(&c.cfg, &c.s3, objects)
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut done: Vec<(&str, &str)> = Vec::new();
    let mut counted_delivered: HashSet<&str> = HashSet::new();
    match &outcome {
        Ok(r) => {
            metrics().sync_notified(r.report.delivered, r.report.failed);
            if r.report.delivered + r.report.failed + r.report.held > 0 {
                log::info!("s3 sync (notified): {}", r.report);
            }
        }
        Err(e) => log::error!(
            "s3 sync (notified): {e}; the notifications stay in the queue and come back"
        ),
    }
    for (m, a) in msgs.iter().zip(&asked) {
        let result = match (a, &outcome) {
            (Asked::Nothing(why), _) => *why,
            (Asked::Keys(_), Err(_)) => QueueMessage::Retried,
            (Asked::Keys(keys), Ok(r)) => {
                if keys.iter().any(|k| r.failed.contains(k)) {
                    QueueMessage::Retried
                } else {
                    // Latency once per delivered key: from when the notification was sent.
                    for k in keys.iter().filter(|k| r.delivered.contains(*k)) {
                        if counted_delivered.insert(k) {
                            if let Some(sent) = m.sent_ms {
                                let ms = now_ms.saturating_sub(sent);
                                metrics().notification_latency(Duration::from_millis(ms));
                            }
                        }
                    }
                    QueueMessage::Handled
                }
            }
        };
        metrics().queue_message(result);
        if result != QueueMessage::Retried {
            done.push((m.id.as_str(), m.receipt.as_str()));
        }
    }
    if done.is_empty() {
        return;
    }
    match c.sqs.delete(&done) {
        Ok(failed) => {
            for (id, why) in failed {
                // Offered again later; its objects are in the ledger, so that is harmless.
                log::warn!("sqs: could not delete message {id}: {why}");
            }
        }
        Err(e) => log::warn!(
            "sqs: DeleteMessageBatch: {e}; the messages come back and are recognised as done"
        ),
    }
}

/// `serve --sqs-queue` / `sync --sqs-queue`: [`watch`] on a background thread.
pub fn spawn_watch(
    settings: SyncSettings,
    list_every: Duration,
    stop: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let spawned = std::thread::Builder::new()
        .name("s3-sync".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    watch(&settings, list_every, &stop)
                }));
                if r.is_err() {
                    log::error!("sqs: the queue watcher panicked (a bug); starting it again");
                    pause(TRANSIENT_PAUSE, &stop);
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
