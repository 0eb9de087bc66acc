//! Connection admission and per-connection deadlines.
//!
//! Owns:
//! - [`ConnLimiter`]: the count of open IMAP connections, in total and per client address
//!   (IPv6 per /64, see [`crate::limits::ip_key`]). A connection over a limit is answered
//!   `* BYE Too many connections` (RFC 3501 §7.1.5: BYE may be sent instead of the greeting)
//!   and closed, without a session ever being created. A [`Slot`] keeps a connection counted
//!   until it is dropped.
//! - [`Deadline`]: when a connection must be closed because the client is too slow or too
//!   quiet, as a pure function of the clock and what was read (no timers here; `net::conn`
//!   awaits the instant it returns):
//!   * before login, the whole login must be done within `login_timeout` of the connect
//!     (one byte a minute does not extend it);
//!   * once a command has started (bytes read but no complete command yet), it must be
//!     complete within `command_timeout` of its first byte, plus the time its bytes take at
//!     `min_upload_rate` (so a large APPEND at a reasonable speed is fine, a trickle is not);
//!   * otherwise `idle_timeout` after the last input (RFC 3501 §5.4 autologout).
//!
//! Never: reads or writes a socket except [`refuse`], which writes one BYE line.

use super::conn::Stream;
use crate::limits::{ip_key, Limits};
use crate::metrics::{self, Refused, Timeout};
use futures_lite::{AsyncWriteExt, FutureExt};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open connections, in total and per address.
pub struct ConnLimiter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A connection's place in the counts; released on drop.
pub struct Slot {
    limiter: Arc<ConnLimiter>,
    key: IpAddr,
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            max_total,
            max_per_ip,
            state: Mutex::new(Counts::default()),
        })
    }

    pub fn from_limits(l: &Limits) -> Arc<ConnLimiter> {
        Self::new(l.max_connections, l.max_connections_per_ip)
    }

    /// Count a new connection from `ip`, or say which limit it would exceed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let key = ip_key(ip);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.total >= self.max_total {
            return Err(Refused::Total);
        }
        let n = st.per_ip.entry(key).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                st.per_ip.remove(&key);
            }
            return Err(Refused::PerIp);
        }
        *n += 1;
        st.total += 1;
        metrics::global().connection_opened();
        Ok(Slot {
            limiter: self.clone(),
            key,
        })
    }

    /// (total, from `ip`) open now.
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (st.total, st.per_ip.get(&ip_key(ip)).copied().unwrap_or(0))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.limiter.state.lock().unwrap_or_else(|p| p.into_inner());
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.per_ip.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.per_ip.remove(&self.key);
            }
        }
        metrics::global().connection_closed();
    }
}

/// How long [`refuse`] tries to deliver its BYE.
const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answer a connection refused by a limit with `* BYE Too many connections` and close it.
pub async fn refuse(mut stream: Stream, peer: SocketAddr, why: Refused) {
    metrics::global().connection_refused(why);
    let which = match why {
        Refused::Total => "in total",
        Refused::PerIp => "from this address",
    };
    log::warn!("{peer}: refused: too many connections {which}");
    let _ = async {
        stream.write_all(b"* BYE Too many connections\r\n").await?;
        stream.flush().await?;
        stream.close().await
    }
    .or(async {
        async_io::Timer::after(REFUSE_WRITE_TIMEOUT).await;
        Ok(())
    })
    .await;
}

/// The per-connection deadline (see the module doc).
#[derive(Debug, Clone)]
pub struct Deadline {
    connected: Instant,
    last_input: Instant,
    /// First byte and byte count of the command being received, if one is.
    command: Option<(Instant, u64)>,
    /// The last input did not end a line.
    line_open: bool,
    login_timeout: Duration,
    idle_timeout: Duration,
    command_timeout: Duration,
    min_rate: u64,
}

impl Deadline {
    pub fn new(l: &Limits, now: Instant) -> Deadline {
        Deadline {
            connected: now,
            last_input: now,
            command: None,
            line_open: false,
            login_timeout: l.login_timeout,
            idle_timeout: l.idle_timeout,
            command_timeout: l.command_timeout,
            min_rate: l.min_upload_rate,
        }
    }

    /// `data` was read at `now` (call before handing it to the framer).
    pub fn input(&mut self, now: Instant, data: &[u8]) {
        self.last_input = now;
        let (_, n) = self.command.get_or_insert((now, 0));
        *n = n.saturating_add(data.len() as u64);
        if let Some(&last) = data.last() {
            self.line_open = last != b'\n';
        }
    }

    /// When the connection expires and why. `buffered`: bytes the framer holds of an
    /// unfinished command (after every complete command was taken out).
    pub fn next(&mut self, authenticated: bool, buffered: usize) -> (Instant, Timeout) {
        if buffered == 0 && !self.line_open {
            self.command = None;
        }
        let command = self.command.map(|(start, bytes)| {
            let credit = match self.min_rate {
                0 => Duration::MAX,
                r => Duration::from_secs_f64(bytes as f64 / r as f64),
            };
            start
                .checked_add(self.command_timeout.saturating_add(credit))
                .unwrap_or(far_future(start))
        });
        if !authenticated {
            // RFC 3501 §5.4 leaves pre-login timeouts to the server; the whole login counts.
            let login = self
                .connected
                .checked_add(self.login_timeout)
                .unwrap_or(far_future(self.connected));
            return match command {
                Some(c) if c < login => (c, Timeout::Command),
                _ => (login, Timeout::Login),
            };
        }
        match command {
            Some(c) => (c, Timeout::Command),
            None => (
                self.last_input
                    .checked_add(self.idle_timeout)
                    .unwrap_or(far_future(self.last_input)),
                Timeout::Idle,
            ),
        }
    }
}

/// An instant far enough away to mean "never" (Instant has no MAX).
fn far_future(from: Instant) -> Instant {
    from + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// The BYE line for a deadline (RFC 3501 §7.1.5).
pub fn bye(why: Timeout) -> &'static [u8] {
    match why {
        Timeout::Login => b"* BYE Login timeout: log in sooner after connecting.\r\n",
        Timeout::Command => b"* BYE Timed out waiting for the rest of the command.\r\n",
        Timeout::Idle => b"* BYE Autologout; idle for too long.\r\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn total_and_per_ip_limits() {
        let l = ConnLimiter::new(3, 2);
        let a1 = l.admit(ip("192.0.2.1")).unwrap();
        let _a2 = l.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(l.admit(ip("192.0.2.1")).err(), Some(Refused::PerIp));
        let _b1 = l.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(l.admit(ip("192.0.2.3")).err(), Some(Refused::Total));
        assert_eq!(l.open(ip("192.0.2.1")), (3, 2));
        drop(a1);
        assert_eq!(l.open(ip("192.0.2.1")), (2, 1));
        let _a3 = l.admit(ip("192.0.2.1")).unwrap();
    }

    #[test]
    fn ipv6_counts_per_slash_64() {
        let l = ConnLimiter::new(10, 1);
        let _a = l.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(l.admit(ip("2001:db8::2")).err(), Some(Refused::PerIp));
        assert!(l.admit(ip("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn released_slots_leave_no_entries() {
        let l = ConnLimiter::new(10, 10);
        for i in 0..100u32 {
            let _s = l.admit(IpAddr::V4(i.into())).unwrap();
        }
        assert_eq!(l.state.lock().unwrap().per_ip.len(), 0);
        assert_eq!(l.open(ip("0.0.0.1")), (0, 0));
    }

    fn limits() -> Limits {
        Limits {
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(1800),
            command_timeout: Duration::from_secs(30),
            min_upload_rate: 1000,
            ..Limits::default()
        }
    }

    #[test]
    fn login_deadline_counts_from_the_connect_not_the_last_byte() {
        let t0 = Instant::now();
        let mut d = Deadline::new(&limits(), t0);
        assert_eq!(
            d.next(false, 0),
            (t0 + Duration::from_secs(60), Timeout::Login)
        );
        // A slow-loris client: one byte every 20 s never gets past the login deadline.
        for i in 1..=5 {
            d.input(t0 + Duration::from_secs(20 * i), b"a");
            let (at, _) = d.next(false, 1);
            assert!(at <= t0 + Duration::from_secs(60));
        }
    }

    #[test]
    fn a_started_command_must_finish_in_time_after_login() {
        let t0 = Instant::now();
        let mut d = Deadline::new(&limits(), t0);
        d.input(t0, b"a1 NOOP\r\n");
        assert_eq!(
            d.next(true, 0),
            (t0 + Duration::from_secs(1800), Timeout::Idle)
        );
        let t1 = t0 + Duration::from_secs(100);
        d.input(t1, b"a2 NOO");
        // 30 s, plus 6 ms for 6 bytes at 1000 bytes/s.
        assert_eq!(
            d.next(true, 6),
            (t1 + Duration::from_millis(30_006), Timeout::Command)
        );
        // More bytes trickling in do not move the start, only earn their transfer time.
        d.input(t1 + Duration::from_secs(10), b"P");
        let (at, why) = d.next(true, 7);
        assert_eq!(why, Timeout::Command);
        assert!(at < t1 + Duration::from_secs(31));
        // The line completes: back to the idle deadline from the last input.
        let t2 = t1 + Duration::from_secs(20);
        d.input(t2, b"\r\n");
        assert_eq!(
            d.next(true, 0),
            (t2 + Duration::from_secs(1800), Timeout::Idle)
        );
    }

    #[test]
    fn a_large_literal_at_the_minimum_rate_is_accepted() {
        let t0 = Instant::now();
        let mut d = Deadline::new(&limits(), t0);
        d.input(t0, b"a APPEND INBOX {100000}\r\n");
        let chunk = [b'x'; 1000];
        // 1000 bytes per second, exactly the minimum rate, for 100 s: never expires.
        for s in 1..=100u64 {
            let now = t0 + Duration::from_secs(s);
            let (at, _) = d.next(true, 1000 * s as usize);
            assert!(at > now, "expired at {s}s");
            d.input(now, &chunk);
        }
    }

    #[test]
    fn zero_rate_and_huge_timeouts_do_not_overflow() {
        let l = Limits {
            login_timeout: Duration::MAX,
            idle_timeout: Duration::MAX,
            command_timeout: Duration::MAX,
            min_upload_rate: 0,
            ..Limits::default()
        };
        let t0 = Instant::now();
        let mut d = Deadline::new(&l, t0);
        d.input(t0, b"x");
        assert!(d.next(false, 1).0 > t0);
        assert!(d.next(true, 1).0 > t0);
    }
}
