//! Process lifecycle: signals, graceful shutdown and systemd readiness.
//!
//! - **Signals** (no handler code, no `unsafe`): [`block_signals`] blocks SIGTERM, SIGINT and
//!   SIGHUP in the main thread before any other thread exists, so every thread inherits the
//!   mask; [`Signals`] then reads them from a `signalfd(2)` registered with the reactor.
//! - **Shutdown** ([`Shutdown`]): SIGTERM/SIGINT closes a channel every connection awaits;
//!   each connection finishes the command it is executing (its writes complete: Maildir
//!   writes are tmp+fsync+rename anyway), says `* BYE` (RFC 3501 §7.1.5) and closes. The
//!   server stops accepting and exits 0 once the last connection is gone or
//!   [`DRAIN_TIMEOUT`] has passed.
//! - **sd_notify** ([`notify`]): the `sd_notify(3)` datagram protocol spoken directly on
//!   `$NOTIFY_SOCKET` (a path, or `@` for the abstract namespace), no libsystemd: `READY=1`
//!   once the listeners are bound, `RELOADING=1`/`READY=1` around a SIGHUP reload,
//!   `STOPPING=1` on shutdown. Without `NOTIFY_SOCKET` it does nothing.

use async_io::Async;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest time a shutdown waits for connections to finish their current command.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The signals pimap handles itself.
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set
}

/// Block the handled signals in the calling thread. Call it first thing in `main`, before any
/// thread is spawned (threads inherit the mask), so the signals queue for [`Signals`] instead of
/// killing the process.
pub fn block_signals() -> Result<(), String> {
    handled()
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM / SIGINT.
    Stop,
    /// SIGHUP: reload users and certificates.
    Reload,
}

/// The blocked signals, read asynchronously from a signalfd.
pub struct Signals {
    fd: Async<SignalFd>,
}

impl Signals {
    pub fn new() -> Result<Signals, String> {
        let fd = SignalFd::with_flags(&handled(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| format!("signalfd: {e}"))?;
        let fd = Async::new(fd).map_err(|e| format!("signalfd: {e}"))?;
        Ok(Signals { fd })
    }

    /// Wait for the next handled signal.
    pub async fn next(&self) -> io::Result<Request> {
        loop {
            let info = self
                .fd
                .read_with(|fd| match fd.read_signal() {
                    Ok(Some(info)) => Ok(info),
                    Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => Err(io::Error::from(e)),
                })
                .await?;
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGHUP) => return Ok(Request::Reload),
                Ok(Signal::SIGTERM | Signal::SIGINT) => return Ok(Request::Stop),
                _ => continue,
            }
        }
    }
}

/// The server-wide shutdown switch and the count of open connections.
pub struct Shutdown {
    trigger: Mutex<Option<smol::channel::Sender<()>>>,
    signal: smol::channel::Receiver<()>,
    active: Arc<AtomicUsize>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, rx) = smol::channel::bounded(1);
        Shutdown {
            trigger: Mutex::new(Some(tx)),
            signal: rx,
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Start the shutdown: every [`Shutdown::wait`] returns.
    pub fn trigger(&self) {
        // Dropping the only sender closes the channel, which wakes every receiver.
        let mut t = self.trigger.lock().unwrap_or_else(|p| p.into_inner());
        t.take();
    }

    pub fn is_triggered(&self) -> bool {
        self.signal.is_closed()
    }

    /// Resolves once the shutdown has started.
    pub async fn wait(&self) {
        // Nothing is ever sent: `recv` returns only when the channel closes.
        let _ = self.signal.recv().await;
    }

    /// Count a connection as open until the guard is dropped.
    pub fn connection(&self) -> ConnGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        ConnGuard(self.active.clone())
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// After [`Shutdown::trigger`]: wait until no connection is open, at most `limit`.
    /// Returns the number still open.
    pub async fn drained(&self, limit: Duration) -> usize {
        let end = std::time::Instant::now() + limit;
        while self.active() > 0 && std::time::Instant::now() < end {
            async_io::Timer::after(Duration::from_millis(20)).await;
        }
        self.active()
    }
}

/// Keeps a connection counted in [`Shutdown::active`].
pub struct ConnGuard(Arc<AtomicUsize>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Send one `sd_notify(3)` message (e.g. `"READY=1"`) if `$NOTIFY_SOCKET` is set. Failures are
/// logged, never fatal: the service manager's own timeout reports a missing READY=1.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_notify(&path, state) {
        log::warn!("sd_notify {state:?} to {path:?}: {e}");
    }
}

fn send_notify(path: &std::ffi::OsStr, state: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::other("short datagram"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("pimap-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        send_notify(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shutdown_wakes_waiters_and_counts_connections() {
        let s = Shutdown::new();
        let g = s.connection();
        assert_eq!(s.active(), 1);
        assert!(!s.is_triggered());
        s.trigger();
        assert!(s.is_triggered());
        smol::block_on(s.wait());
        drop(g);
        assert_eq!(smol::block_on(s.drained(Duration::from_millis(50))), 0);
    }
}
