//! Process-wide counters, rendered in the Prometheus text exposition format (version 0.0.4)
//! for `GET /metrics` (`net::http`).
//!
//! Owns: the counters and their names. Every other module bumps them with a one-line call on
//! [`global`]; nothing here does I/O or blocks beyond a short mutex for the per-command
//! table. Counters only go up (Prometheus `counter`), except the open-connection gauge.
//!
//! Metric names follow the Prometheus naming guide: `pimap_` prefix, `_total` for counters,
//! base units (bytes).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// All counters; get the process's instance with [`global`].
pub struct Metrics {
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    refused_total: AtomicU64,
    refused_per_ip: AtomicU64,
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
    commands: Mutex<BTreeMap<&'static str, u64>>,
    sync_ok: AtomicU64,
    sync_partial: AtomicU64,
    sync_error: AtomicU64,
    sync_delivered: AtomicU64,
    sync_failed_objects: AtomicU64,
    sync_quota_held: AtomicU64,
    sync_delivered_notified: AtomicU64,
    queue_polls: [AtomicU64; 3],
    queue_messages: [AtomicU64; 4],
    latency: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    timeouts_login: AtomicU64,
    timeouts_command: AtomicU64,
    timeouts_idle: AtomicU64,
    /// Backup passes: ok, error; objects and bytes uploaded; bytes restored.
    backup_passes: [AtomicU64; 2],
    backup_objects: AtomicU64,
    backup_bytes: AtomicU64,
    backup_restored: AtomicU64,
    backup_last_ok: AtomicU64,
}

static METRICS: Metrics = Metrics::new();

/// The process's counters.
pub fn global() -> &'static Metrics {
    &METRICS
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

/// How one long poll of the SQS queue (`--sqs-queue`) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuePoll {
    Messages = 0,
    Empty = 1,
    Error = 2,
}

/// What became of one SQS queue message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMessage {
    /// What it named is delivered (or was already): deleted.
    Handled = 0,
    /// It named nothing to deliver (a test event, another bucket, ...): deleted.
    Ignored = 1,
    /// Not a notification pimap can read: deleted.
    Malformed = 2,
    /// A delivery failed: left in the queue, offered again after its visibility timeout.
    Retried = 3,
}

/// Upper bounds (seconds) of the notification-to-delivery latency histogram's buckets.
const LATENCY_BOUNDS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A Prometheus histogram of durations: cumulative only when rendered.
struct Histogram {
    /// Observations per bucket (not cumulative), the last one above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BOUNDS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, s: &mut String, name: &str, help: &str) {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} histogram");
        let mut total = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            match LATENCY_BOUNDS.get(i) {
                Some(le) => {
                    let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {total}");
                }
                None => {
                    let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {total}");
                }
            }
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "{name}_sum {sum}");
        let _ = writeln!(s, "{name}_count {total}");
    }
}

/// Which deadline closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    Login,
    Command,
    Idle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub const fn new() -> Metrics {
        Metrics {
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
            refused_per_ip: AtomicU64::new(0),
            logins_ok: AtomicU64::new(0),
            logins_failed: AtomicU64::new(0),
            commands: Mutex::new(BTreeMap::new()),
            sync_ok: AtomicU64::new(0),
            sync_partial: AtomicU64::new(0),
            sync_error: AtomicU64::new(0),
            sync_delivered: AtomicU64::new(0),
            sync_failed_objects: AtomicU64::new(0),
            sync_quota_held: AtomicU64::new(0),
            sync_delivered_notified: AtomicU64::new(0),
            queue_polls: [const { AtomicU64::new(0) }; 3],
            queue_messages: [const { AtomicU64::new(0) }; 4],
            latency: Histogram::new(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            timeouts_login: AtomicU64::new(0),
            timeouts_command: AtomicU64::new(0),
            timeouts_idle: AtomicU64::new(0),
            backup_passes: [const { AtomicU64::new(0) }; 2],
            backup_objects: AtomicU64::new(0),
            backup_bytes: AtomicU64::new(0),
            backup_restored: AtomicU64::new(0),
            backup_last_ok: AtomicU64::new(0),
        }
    }

    /// An IMAP connection was admitted (pair with [`Metrics::connection_closed`]).
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self, why: Refused) {
        match why {
            Refused::Total => &self.refused_total,
            Refused::PerIp => &self.refused_per_ip,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub fn login(&self, ok: bool) {
        if ok {
            &self.logins_ok
        } else {
            &self.logins_failed
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// A parsed command, by its name (`Command::name`, a fixed set: the table stays small).
    pub fn command(&self, name: &'static str) {
        let mut t = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        *t.entry(name).or_insert(0) += 1;
    }

    /// One S3 sync pass: `Ok((delivered, failed objects))`, or `Err(())` if the pass failed as
    /// a whole (configuration, listing, a panic).
    pub fn sync_pass(&self, result: Result<(usize, usize), ()>) {
        match result {
            Ok((delivered, failed)) => {
                if failed == 0 {
                    &self.sync_ok
                } else {
                    &self.sync_partial
                }
                .fetch_add(1, Ordering::Relaxed);
                self.sync_delivered
                    .fetch_add(delivered as u64, Ordering::Relaxed);
                self.sync_failed_objects
                    .fetch_add(failed as u64, Ordering::Relaxed);
            }
            Err(()) => {
                self.sync_error.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Objects delivered and failed because a queue notification named them (`--sqs-queue`).
    pub fn sync_notified(&self, delivered: usize, failed: usize) {
        self.sync_delivered_notified
            .fetch_add(delivered as u64, Ordering::Relaxed);
        self.sync_failed_objects
            .fetch_add(failed as u64, Ordering::Relaxed);
    }

    /// One long poll of the SQS queue.
    /// One message object of `bytes` uploaded by a backup pass.
    pub fn backup_uploaded(&self, bytes: u64) {
        self.backup_objects.fetch_add(1, Ordering::Relaxed);
        self.backup_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `bytes` of one message restored.
    pub fn backup_restored(&self, bytes: u64) {
        self.backup_restored.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A backup run (every user) ended; `at`: its start, seconds since the epoch.
    pub fn backup_pass(&self, ok: bool, at: u64) {
        if let Some(c) = self.backup_passes.get(usize::from(!ok)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if ok {
            self.backup_last_ok.fetch_max(at, Ordering::Relaxed);
        }
    }

    pub fn queue_poll(&self, how: QueuePoll) {
        if let Some(c) = self.queue_polls.get(how as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One SQS queue message dealt with.
    pub fn queue_message(&self, what: QueueMessage) {
        if let Some(c) = self.queue_messages.get(what as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// From a notification's sending (SQS's SentTimestamp) to its message's delivery.
    pub fn notification_latency(&self, d: std::time::Duration) {
        self.latency.observe(d);
    }

    /// The S3 sync held an object back because a recipient is over quota (once per object).
    pub fn sync_quota_held(&self) {
        self.sync_quota_held.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn timeout(&self, which: Timeout) {
        match which {
            Timeout::Login => &self.timeouts_login,
            Timeout::Command => &self.timeouts_command,
            Timeout::Idle => &self.timeouts_idle,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Open connections now.
    pub fn open_connections(&self) -> i64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// The Prometheus text format: `# HELP`, `# TYPE`, then the samples; LF line ends.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::with_capacity(2048);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            write_family(&mut s, name, kind, help, samples)
        };
        family(
            "pimap_connections",
            "gauge",
            "IMAP connections open now.",
            &[("", self.open_connections().max(0) as u64)],
        );
        family(
            "pimap_connections_total",
            "counter",
            "IMAP connections accepted.",
            &[("", g(&self.connections_total))],
        );
        family(
            "pimap_connections_refused_total",
            "counter",
            "IMAP connections refused by a connection limit.",
            &[
                ("{limit=\"total\"}", g(&self.refused_total)),
                ("{limit=\"per_ip\"}", g(&self.refused_per_ip)),
            ],
        );
        family(
            "pimap_logins_total",
            "counter",
            "LOGIN and AUTHENTICATE attempts by result.",
            &[
                ("{result=\"ok\"}", g(&self.logins_ok)),
                ("{result=\"failed\"}", g(&self.logins_failed)),
            ],
        );
        let commands: Vec<(String, u64)> = {
            let t = self.commands.lock().unwrap_or_else(|p| p.into_inner());
            t.iter()
                .map(|(k, v)| (format!("{{command=\"{}\"}}", escape_label(k)), *v))
                .collect()
        };
        let commands: Vec<(&str, u64)> = commands.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        family(
            "pimap_commands_total",
            "counter",
            "IMAP commands received, by command name.",
            &commands,
        );
        family(
            "pimap_timeouts_total",
            "counter",
            "Connections closed by a deadline.",
            &[
                ("{deadline=\"login\"}", g(&self.timeouts_login)),
                ("{deadline=\"command\"}", g(&self.timeouts_command)),
                ("{deadline=\"idle\"}", g(&self.timeouts_idle)),
            ],
        );
        family(
            "pimap_received_bytes_total",
            "counter",
            "Bytes read from IMAP clients.",
            &[("", g(&self.bytes_in))],
        );
        family(
            "pimap_sent_bytes_total",
            "counter",
            "Bytes written to IMAP clients.",
            &[("", g(&self.bytes_out))],
        );
        self.render_sync(&mut s);
        self.render_backup(&mut s);
        s
    }

    /// The backup's families (part of [`Metrics::render`]).
    fn render_backup(&self, s: &mut String) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let [ok, err] = &self.backup_passes;
        write_family(
            s,
            "pimap_backup_passes_total",
            "counter",
            "Backup runs to S3 (every user) by result.",
            &[("{result=\"ok\"}", g(ok)), ("{result=\"error\"}", g(err))],
        );
        write_family(
            s,
            "pimap_backup_uploaded_objects_total",
            "counter",
            "Message objects uploaded by backup passes.",
            &[("", g(&self.backup_objects))],
        );
        write_family(
            s,
            "pimap_backup_uploaded_bytes_total",
            "counter",
            "Message bytes uploaded by backup passes (before encryption).",
            &[("", g(&self.backup_bytes))],
        );
        write_family(
            s,
            "pimap_backup_restored_bytes_total",
            "counter",
            "Message bytes restored from backups.",
            &[("", g(&self.backup_restored))],
        );
        write_family(
            s,
            "pimap_backup_last_success_timestamp_seconds",
            "gauge",
            "When the last successful backup run started (0: none yet).",
            &[("", g(&self.backup_last_ok))],
        );
    }

    /// The S3 sync's families (part of [`Metrics::render`]).
    fn render_sync(&self, s: &mut String) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        write_family(
            s,
            "pimap_sync_passes_total",
            "counter",
            "S3 sync passes by result (partial: some objects failed and are retried).",
            &[
                ("{result=\"ok\"}", g(&self.sync_ok)),
                ("{result=\"partial\"}", g(&self.sync_partial)),
                ("{result=\"error\"}", g(&self.sync_error)),
            ],
        );
        write_family(
            s,
            "pimap_sync_delivered_total",
            "counter",
            "Messages the S3 sync delivered, by how it found them (a LIST pass, or an SQS notification).",
            &[
                ("{path=\"list\"}", g(&self.sync_delivered)),
                ("{path=\"notification\"}", g(&self.sync_delivered_notified)),
            ],
        );
        write_family(
            s,
            "pimap_sync_failed_objects_total",
            "counter",
            "Object deliveries that failed in a sync pass (counted per pass).",
            &[("", g(&self.sync_failed_objects))],
        );
        write_family(
            s,
            "pimap_sync_quota_held_total",
            "counter",
            "Objects the S3 sync left in the bucket because a recipient was over quota (counted once per object; delivered on a later pass once there is room).",
            &[("", g(&self.sync_quota_held))],
        );
        let [m, e, x] = &self.queue_polls;
        write_family(
            s,
            "pimap_sqs_polls_total",
            "counter",
            "Long polls of the SQS queue (--sqs-queue) by how they ended.",
            &[
                ("{result=\"messages\"}", g(m)),
                ("{result=\"empty\"}", g(e)),
                ("{result=\"error\"}", g(x)),
            ],
        );
        let [h, i, b, r] = &self.queue_messages;
        write_family(
            s,
            "pimap_sqs_messages_total",
            "counter",
            "SQS queue messages by what became of them (retried: left in the queue after a failed delivery).",
            &[
                ("{result=\"handled\"}", g(h)),
                ("{result=\"ignored\"}", g(i)),
                ("{result=\"malformed\"}", g(b)),
                ("{result=\"retried\"}", g(r)),
            ],
        );
        self.latency.render(
            s,
            "pimap_sync_notification_latency_seconds",
            "From an SQS notification's sending to the delivery of the object it names.",
        );
    }
}

/// Escape a label value (backslash, double quote, line feed), as the text format requires.
/// One metric family: its HELP and TYPE lines, then its samples.
fn write_family(s: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(s, "# HELP {name} {help}");
    let _ = writeln!(s, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(s, "{name}{labels} {v}");
    }
}

fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let m = Metrics::new();
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        m.connection_refused(Refused::PerIp);
        m.login(true);
        m.login(false);
        m.login(false);
        m.command("FETCH");
        m.command("FETCH");
        m.command("LOGIN");
        m.sync_pass(Ok((3, 0)));
        m.sync_pass(Ok((1, 2)));
        m.sync_pass(Err(()));
        m.sync_quota_held();
        m.bytes_in(10);
        m.bytes_out(25);
        m.timeout(Timeout::Login);
        m.sync_notified(2, 1);
        m.queue_poll(QueuePoll::Empty);
        m.queue_poll(QueuePoll::Messages);
        m.queue_poll(QueuePoll::Empty);
        m.queue_message(QueueMessage::Malformed);
        m.notification_latency(std::time::Duration::from_millis(300));
        m.notification_latency(std::time::Duration::from_secs(2));
        m.notification_latency(std::time::Duration::from_secs(1000));
        let t = m.render();
        assert_eq!(sample(&t, "pimap_connections"), Some(1));
        assert_eq!(sample(&t, "pimap_connections_total"), Some(2));
        assert_eq!(
            sample(&t, "pimap_connections_refused_total{limit=\"per_ip\"}"),
            Some(1)
        );
        assert_eq!(sample(&t, "pimap_logins_total{result=\"failed\"}"), Some(2));
        assert_eq!(
            sample(&t, "pimap_commands_total{command=\"FETCH\"}"),
            Some(2)
        );
        assert_eq!(
            sample(&t, "pimap_sync_passes_total{result=\"ok\"}"),
            Some(1)
        );
        assert_eq!(
            sample(&t, "pimap_sync_passes_total{result=\"partial\"}"),
            Some(1)
        );
        assert_eq!(
            sample(&t, "pimap_sync_passes_total{result=\"error\"}"),
            Some(1)
        );
        assert_eq!(
            sample(&t, "pimap_sync_delivered_total{path=\"list\"}"),
            Some(4)
        );
        assert_eq!(
            sample(&t, "pimap_sync_delivered_total{path=\"notification\"}"),
            Some(2)
        );
        assert_eq!(sample(&t, "pimap_sync_failed_objects_total"), Some(3));
        assert_eq!(
            sample(&t, "pimap_sqs_polls_total{result=\"empty\"}"),
            Some(2)
        );
        assert_eq!(
            sample(&t, "pimap_sqs_messages_total{result=\"malformed\"}"),
            Some(1)
        );
        // Cumulative buckets: 0.3 s is in le=0.5 and up, 2 s from le=2.5, 1000 s only in +Inf.
        let h = "pimap_sync_notification_latency_seconds";
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"0.25\"}}")), Some(0));
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"0.5\"}}")), Some(1));
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"2.5\"}}")), Some(2));
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"300\"}}")), Some(2));
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"+Inf\"}}")), Some(3));
        assert_eq!(sample(&t, &format!("{h}_count")), Some(3));
        assert!(t.contains(&format!("{h}_sum 1002.3\n")), "{t}");
        assert_eq!(sample(&t, "pimap_sync_quota_held_total"), Some(1));
        assert_eq!(sample(&t, "pimap_received_bytes_total"), Some(10));
        assert_eq!(sample(&t, "pimap_sent_bytes_total"), Some(25));
        assert_eq!(
            sample(&t, "pimap_timeouts_total{deadline=\"login\"}"),
            Some(1)
        );
        // Every sample line belongs to a family announced by # TYPE just before.
        let mut typed = std::collections::HashSet::new();
        for l in t.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{l}");
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
