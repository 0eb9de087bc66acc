//! Every limit pimap enforces, in one place, with its default and why.
//!
//! Owns: the [`Limits`] values (built from the flags in `cli.rs`) and the one piece of
//! shared state a limit needs across connections: the per-IP count of recent failed logins
//! behind the login back-off ([`FailedLogins`]). Never: touches sockets or sleeps (the caller
//! waits the delay it is given), so every limit is unit-testable with an injected clock.
//!
//! Where each limit is enforced:
//! - `max_line`, `max_message_size`, `max_small_literal`: `imap::framing` while reading,
//!   before buffering (RFC 3501 §7.5, RFC 7888 §4, RFC 7889 APPENDLIMIT);
//! - `max_connections`, `max_connections_per_ip`: `net::limiter` at accept;
//! - `login_timeout`, `idle_timeout`, `command_timeout`, `min_upload_rate`: `net::limiter`'s
//!   deadline, awaited by `net::conn`;
//! - `failed_login_delay`, `max_login_delay`: [`Limits::failed_login`] (per client address,
//!   [`FailedLogins`]), called by `session::auth` when a login fails; `net::conn` waits the
//!   delay (`Session::take_delay`) before writing the answer, off the command thread pool.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest command line (without literals). Clients send long UID sets; Dovecot allows 64 KiB.
    pub max_line: usize,
    /// Largest message accepted by APPEND (`--max-message-size`, default 64 MiB); advertised
    /// as `APPENDLIMIT=` (RFC 7889).
    pub max_message_size: u64,
    /// Largest non-APPEND literal (a search string, a password): 1 MiB is plenty.
    pub max_small_literal: u64,
    /// Autologout after this long without a command (RFC 3501 §5.4: at least 30 minutes).
    pub idle_timeout: Duration,
    /// Time a client has to log in after connecting: the whole login, counted from the
    /// connect, not from the last byte (a client dribbling one byte a minute is still cut off).
    pub login_timeout: Duration,
    /// Time allowed to finish a command once its first byte arrived (`--command-timeout`,
    /// default 60 s), on top of the time its literals take at `min_upload_rate`.
    pub command_timeout: Duration,
    /// Slowest upload still accepted for literals, bytes per second (default 4 KiB/s: a 64 MiB
    /// message may take 4.5 hours, a slow-loris client is gone after `command_timeout`).
    pub min_upload_rate: u64,
    /// Consecutive BAD responses after which the client is disconnected.
    pub max_bad_commands: u32,
    /// Delay before answering the first failed login from an address (`--failed-login-delay`,
    /// default 2 s). It doubles with every recent failure from the same address.
    pub failed_login_delay: Duration,
    /// Cap of the failed-login delay (`--max-login-delay`, default 30 s).
    pub max_login_delay: Duration,
    /// Open connections in total (`--max-connections`, default 1000).
    pub max_connections: usize,
    /// Open connections from one client address (`--max-connections-per-ip`, default 50;
    /// IPv6 counted per /64).
    pub max_connections_per_ip: usize,
    /// Recent failed logins per client address (shared by all connections).
    pub failed_logins: Arc<FailedLogins>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 64 * 1024,
            max_message_size: 64 * 1024 * 1024,
            max_small_literal: 1024 * 1024,
            idle_timeout: Duration::from_secs(30 * 60),
            login_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(60),
            min_upload_rate: 4096,
            max_bad_commands: 20,
            failed_login_delay: Duration::from_secs(2),
            max_login_delay: Duration::from_secs(30),
            max_connections: 1000,
            max_connections_per_ip: 50,
            failed_logins: Arc::new(FailedLogins::new(FAILURE_HALF_LIFE)),
        }
    }
}

impl Limits {
    /// Record a failed login from `ip` and return how long to wait before answering it.
    pub fn failed_login(&self, ip: IpAddr) -> Duration {
        self.failed_logins.record(
            ip,
            Instant::now(),
            self.failed_login_delay,
            self.max_login_delay,
        )
    }
}

/// How fast the memory of a failed login fades: after this long it counts half.
pub const FAILURE_HALF_LIFE: Duration = Duration::from_secs(5 * 60);

/// Addresses remembered at most; beyond that the most forgiven ones are forgotten first.
const MAX_TRACKED: usize = 4096;

/// Scores below this are forgotten (a failure more than ~20 half-lives ago).
const FORGET_BELOW: f64 = 1e-6;

/// The address a limit counts by: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64, since
/// one client usually owns a whole /64 and could otherwise rotate through it.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Per-address failed-login scores for the login back-off.
///
/// Each failure adds 1 to the address's score; the score halves every `half_life`. The delay
/// for a failure is `base · 2^(score − 1)`, capped: the first failure costs `base`, a burst
/// of failures quickly reaches the cap, and an address that stops failing is forgiven
/// gradually. It is keyed by client address only, never by account, so a stranger cannot
/// lock a user out: the worst they can do is slow down logins from their own address.
pub struct FailedLogins {
    half_life: Duration,
    table: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl std::fmt::Debug for FailedLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.table.lock().map(|t| t.len()).unwrap_or(0);
        write!(f, "FailedLogins({n} addresses)")
    }
}

impl FailedLogins {
    pub fn new(half_life: Duration) -> FailedLogins {
        FailedLogins {
            half_life,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn decayed(&self, score: f64, since: Instant, now: Instant) -> f64 {
        let half = self.half_life.as_secs_f64();
        if half <= 0.0 {
            return 0.0;
        }
        let dt = now.saturating_duration_since(since).as_secs_f64();
        score * (-dt / half).exp2()
    }

    /// Record a failure from `ip` at `now`; the delay to apply to it.
    pub fn record(&self, ip: IpAddr, now: Instant, base: Duration, cap: Duration) -> Duration {
        let key = ip_key(ip);
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() >= MAX_TRACKED && !t.contains_key(&key) {
            t.retain(|_, (s, at)| self.decayed(*s, *at, now) >= FORGET_BELOW);
            if t.len() >= MAX_TRACKED {
                let weakest = t
                    .iter()
                    .map(|(k, (s, at))| (*k, self.decayed(*s, *at, now)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(k, _)| k);
                if let Some(k) = weakest {
                    t.remove(&k);
                }
            }
        }
        let score = t
            .get(&key)
            .map_or(0.0, |(s, at)| self.decayed(*s, *at, now))
            + 1.0;
        t.insert(key, (score, now));
        delay_for(score, base, cap)
    }

    /// The address's current score (tests, metrics).
    pub fn score(&self, ip: IpAddr, now: Instant) -> f64 {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.get(&ip_key(ip))
            .map_or(0.0, |(s, at)| self.decayed(*s, *at, now))
    }

    /// Addresses currently remembered.
    pub fn tracked(&self) -> usize {
        self.table.lock().map(|t| t.len()).unwrap_or(0)
    }
}

/// `base · 2^(score − 1)`, at most `cap` (and never less than `base` capped).
fn delay_for(score: f64, base: Duration, cap: Duration) -> Duration {
    let factor = (score - 1.0).clamp(0.0, 40.0).exp2();
    let secs = base.as_secs_f64() * factor;
    let cap_s = cap.as_secs_f64();
    if secs.is_finite() && secs < cap_s {
        Duration::from_secs_f64(secs)
    } else {
        cap.max(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(2);
    const CAP: Duration = Duration::from_secs(30);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_documented_values() {
        let l = Limits::default();
        assert_eq!(l.max_connections, 1000);
        assert_eq!(l.max_connections_per_ip, 50);
        assert_eq!(l.login_timeout, Duration::from_secs(60));
        assert!(
            l.idle_timeout >= Duration::from_secs(30 * 60),
            "RFC 3501 §5.4"
        );
        assert_eq!(l.failed_login_delay, BASE);
        assert_eq!(l.max_login_delay, CAP);
    }

    #[test]
    fn delay_doubles_per_recent_failure_and_is_capped() {
        let f = FailedLogins::new(FAILURE_HALF_LIFE);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        let delays: Vec<u64> = (0..8)
            .map(|_| f.record(a, now, BASE, CAP).as_secs())
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[test]
    fn other_addresses_are_not_slowed_down() {
        let f = FailedLogins::new(FAILURE_HALF_LIFE);
        let now = Instant::now();
        for _ in 0..10 {
            f.record(ip("192.0.2.1"), now, BASE, CAP);
        }
        // The victim's own address starts from the base delay: no lock-out by strangers.
        assert_eq!(f.record(ip("198.51.100.7"), now, BASE, CAP), BASE);
    }

    #[test]
    fn failures_decay_with_the_half_life() {
        let f = FailedLogins::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..4 {
            f.record(a, t0, BASE, CAP);
        }
        assert!((f.score(a, t0) - 4.0).abs() < 1e-9);
        assert!((f.score(a, t0 + Duration::from_secs(60)) - 2.0).abs() < 1e-9);
        // After a long pause the next failure costs the base delay again (almost).
        let later = t0 + Duration::from_secs(3600);
        let d = f.record(a, later, BASE, CAP);
        assert!(d >= BASE && d < BASE + Duration::from_millis(1), "{d:?}");
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_v4_as_v4() {
        let f = FailedLogins::new(FAILURE_HALF_LIFE);
        let now = Instant::now();
        f.record(ip("2001:db8:1:2::1"), now, BASE, CAP);
        assert_eq!(
            f.record(ip("2001:db8:1:2:ffff::9"), now, BASE, CAP),
            BASE * 2
        );
        assert_eq!(f.record(ip("2001:db8:1:3::1"), now, BASE, CAP), BASE);
        f.record(ip("192.0.2.9"), now, BASE, CAP);
        assert_eq!(f.record(ip("::ffff:192.0.2.9"), now, BASE, CAP), BASE * 2);
    }

    #[test]
    fn table_is_bounded() {
        let f = FailedLogins::new(FAILURE_HALF_LIFE);
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            f.record(a, now, BASE, CAP);
        }
        assert!(f.tracked() <= MAX_TRACKED);
    }

    #[test]
    fn zero_base_and_cap_are_fine() {
        let f = FailedLogins::new(FAILURE_HALF_LIFE);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..100 {
            assert_eq!(
                f.record(a, now, Duration::ZERO, Duration::ZERO),
                Duration::ZERO
            );
        }
    }
}
