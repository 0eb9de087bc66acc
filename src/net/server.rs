//! Listeners and the executor: bind every `--imap-listen` address (a bind failure is a clear
//! start-up error naming the address), tell systemd we are ready, then accept until SIGTERM,
//! one task per connection. SIGHUP reloads the users file and the TLS certificate. See
//! [`super::lifecycle`].
//!
//! Each accepted connection first goes through `start`: from a peer in
//! `--proxy-trusted-networks` the PROXY header ([`super::proxy`]) is required and names the
//! real client; on an `--imaps-listen` socket the TLS handshake ([`super::tls`]) follows.

use super::conn::{self, Stream};
use super::lifecycle::{self, Request, Shutdown, Signals};
use super::proxy::{self, TrustedNetworks};
use super::tls::Tls;
use crate::config::Config;
use crate::session::Shared;
use async_io::Async;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// The network layer's own settings, loaded from the configuration's plain values: the TLS
/// certificate and key (read and checked now, so a bad file is a start-up error naming it) and
/// the networks that must send a PROXY header.
pub struct NetConfig {
    /// The certificate for IMAPS and STARTTLS, if configured.
    pub tls: Option<Arc<Tls>>,
    /// Peers that must (and alone may) send a PROXY header.
    pub proxy_trusted: TrustedNetworks,
}

impl NetConfig {
    /// Load `cfg`'s certificate and key and parse its PROXY trusted networks.
    pub fn load(cfg: &Config) -> Result<NetConfig, String> {
        let tls = match &cfg.tls {
            Some(f) => Some(Arc::new(Tls::load(&f.cert, &f.key)?)),
            None => None,
        };
        let proxy_trusted = TrustedNetworks::parse(&cfg.proxy_trusted_networks)?;
        Ok(NetConfig { tls, proxy_trusted })
    }
}

/// What every connection task shares: the session's configuration plus the network layer's
/// state.
pub struct Context {
    pub shared: Arc<Shared>,
    pub shutdown: Shutdown,
    /// The certificate for IMAPS and STARTTLS, if configured.
    pub tls: Option<Arc<Tls>>,
    /// Peers that must (and alone may) send a PROXY header.
    pub proxy_trusted: TrustedNetworks,
    /// Open connections, in total and per client (`--max-connections[-per-ip]`).
    pub limiter: Arc<super::limiter::ConnLimiter>,
}

/// Run the server. `after_bind` runs once every port is bound, before anything is served
/// (the CLI drops privileges there, then starts the S3 sync); its error aborts the start.
pub fn run(
    cfg: Config,
    net: NetConfig,
    after_bind: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let shared = Arc::new(Shared {
        users: cfg.users.clone(),
        mail_location: cfg.mail_location.clone(),
        limits: cfg.limits.clone(),
        allow_plaintext_auth: cfg.allow_plaintext_auth,
        autocreate_folders: cfg.autocreate_folders,
        starttls: net.tls.is_some(),
    });
    // The HTTP listener first: once the IMAP port accepts, /healthz and /metrics do too (a
    // client or a test that waits for the IMAP port must not find the HTTP port closed).
    let http = cfg.http_listen.map(super::http::bind).transpose()?;
    let listeners = bind(&cfg)?;
    if !net.proxy_trusted.is_empty() {
        log::info!("PROXY protocol header required from {}", net.proxy_trusted);
    }
    after_bind()?;
    let health = super::http::Health::new(cfg.mail_location.fixed_root());
    log::info!(
        "users from {}, {} user(s); mail under the location template",
        cfg.users_path.display(),
        cfg.users.user_names().len()
    );
    let signals = Signals::new()?;
    let ctx = Arc::new(Context {
        shared,
        shutdown: Shutdown::new(),
        tls: net.tls,
        proxy_trusted: net.proxy_trusted,
        limiter: super::limiter::ConnLimiter::from_limits(&cfg.limits),
    });
    let ex = Arc::new(smol::Executor::new());
    // Dropped when `run` returns: the worker threads stop.
    let _stop = start_workers(&ex)?;
    let ex2 = ex.clone();
    smol::block_on(ex.run(async move {
        let mut tasks = Vec::new();
        for (l, implicit_tls) in listeners {
            tasks.push(ex2.spawn(accept(l, implicit_tls, ctx.clone(), ex2.clone())));
        }
        if let Some(tls) = ctx.tls.clone() {
            // cert-manager rotation / the k8s `..data` swap: look at the files now and then
            // (new TLS connections look too).
            tasks.push(ex2.spawn(async move {
                loop {
                    async_io::Timer::after(super::tls::RELOAD_CHECK_INTERVAL).await;
                    tls.check();
                }
            }));
        }
        if let Some(l) = http {
            tasks.push(ex2.spawn(super::http::serve(l, health.clone(), ex2.clone())));
        }
        health.set_listening(true);
        lifecycle::notify("READY=1");
        until_stop(&signals, &ctx).await;
        health.set_listening(false);
        lifecycle::notify("STOPPING=1");
        drain(tasks, &ctx).await;
    }));
    Ok(())
}

/// A listener and whether it is IMAPS (TLS from the first byte).
type Listener = (Async<TcpListener>, bool);

/// Binds every `--imaps-listen` and `--imap-listen` address; a failure names the address.
/// The plain IMAP ports come last, so that when they accept, every other port does too.
fn bind(cfg: &Config) -> Result<Vec<Listener>, String> {
    let mut listeners = Vec::new();
    let tls = cfg.imaps_listen.iter().map(|a| (a, true));
    for (addr, implicit_tls) in tls.chain(cfg.imap_listen.iter().map(|a| (a, false))) {
        let l = Async::<TcpListener>::bind(*addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = l
            .get_ref()
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| addr.to_string());
        log::info!(
            "listening for {} on {local}",
            if implicit_tls { "IMAPS" } else { "IMAP" }
        );
        listeners.push((l, implicit_tls));
    }
    Ok(listeners)
}

/// Runs `ex` on up to 3 more threads (4 in all with the caller's), so connections are served
/// on several cores. The threads stop when the returned sender is dropped.
fn start_workers(ex: &Arc<smol::Executor<'static>>) -> Result<smol::channel::Sender<()>, String> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let (stop, stop_rx) = smol::channel::unbounded::<()>();
    for _ in 1..threads {
        let ex = ex.clone();
        let rx = stop_rx.clone();
        std::thread::Builder::new()
            .name("pimap-worker".into())
            .spawn(move || smol::block_on(ex.run(rx.recv())))
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
    }
    Ok(stop)
}

/// Accepts connections on `l` for ever, one task on `ex` each.
async fn accept(
    l: Async<TcpListener>,
    implicit_tls: bool,
    ctx: Arc<Context>,
    ex: Arc<smol::Executor<'static>>,
) {
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                // Each response is written in one piece (a big FETCH in 64 KiB ones): Nagle
                // would only hold back a response's small end until the client's delayed
                // ACK (+40 ms on a big FETCH).
                let _ = stream.get_ref().set_nodelay(true);
                let ctx = ctx.clone();
                let stream: Stream = Box::new(stream);
                // Boxed: an async fn keeps its argument and the future it awaits both, and
                // this one is the connection's whole state.
                let conn = Box::pin(start(stream, peer, implicit_tls, ctx));
                ex.spawn(guarded(conn, peer)).detach();
            }
            Err(e) => {
                // EMFILE and friends: log and back off instead of spinning.
                log::warn!("accept failed: {e}");
                async_io::Timer::after(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves signals until a stop is asked for (SIGTERM, SIGINT) or they cannot be read: SIGHUP
/// reloads the users file and the TLS certificate.
async fn until_stop(signals: &Signals, ctx: &Context) {
    loop {
        match signals.next().await {
            Ok(Request::Reload) => {
                lifecycle::notify("RELOADING=1");
                log::info!("SIGHUP: reloading");
                ctx.shared.users.reload();
                if let Some(tls) = &ctx.tls {
                    tls.reload();
                }
                lifecycle::notify("READY=1");
            }
            Ok(Request::Stop) => break,
            Err(e) => {
                log::error!("reading signals failed: {e}; shutting down");
                break;
            }
        }
    }
}

/// Stops accepting (cancels `tasks`), then lets every connection finish its command and say
/// BYE, waiting at most [`lifecycle::DRAIN_TIMEOUT`].
async fn drain(tasks: Vec<smol::Task<()>>, ctx: &Context) {
    log::info!(
        "shutting down: {} connection(s) open, waiting up to {:?}",
        ctx.shutdown.active(),
        lifecycle::DRAIN_TIMEOUT
    );
    for t in tasks {
        t.cancel().await;
    }
    ctx.shutdown.trigger();
    let left = ctx.shutdown.drained(lifecycle::DRAIN_TIMEOUT).await;
    if left > 0 {
        log::warn!("{left} connection(s) did not finish in time; exiting anyway");
    } else {
        log::info!("all connections closed; bye");
    }
}

/// Before the session: the PROXY header from a trusted peer (spec §2: required from it,
/// refused from anyone else), then the TLS handshake on an IMAPS listener (RFC 8314 §3.3;
/// the PROXY header comes before the ClientHello). Failures are logged with the socket's
/// peer and the connection closed.
async fn start(stream: Stream, socket_peer: SocketAddr, implicit_tls: bool, ctx: Arc<Context>) {
    let mut stream = stream;
    let mut peer = socket_peer;
    let bye = |why: String| {
        log::warn!("{socket_peer}: {why}; closing");
    };
    if ctx.proxy_trusted.contains(socket_peer.ip()) {
        match Box::pin(proxy::read_header(&mut stream, proxy::HEADER_TIMEOUT)).await {
            Ok((header, rest)) => {
                if let Some(src) = header.source() {
                    peer = src;
                }
                log::info!(
                    "{socket_peer}: PROXY v{} header: client {peer}",
                    header.version
                );
                stream = proxy::Rewind::stream(rest, stream);
            }
            Err(e) if e.is_bare_close() => {
                log::debug!("{socket_peer}: {e}");
                return;
            }
            Err(e) => {
                bye(format!("bad PROXY header from a trusted peer: {e}"));
                // Plaintext even on the IMAPS port: no TLS was started.
                let _ = write_all(&mut stream, b"* BYE Bad PROXY protocol header.\r\n").await;
                return;
            }
        }
    }
    if implicit_tls {
        let Some(tls) = ctx.tls.clone() else {
            return;
        };
        if !ctx.proxy_trusted.contains(socket_peer.ip()) {
            // A PROXY header where a ClientHello should be: refuse it (spec §2), and say so
            // in the clear, where the sender (a misconfigured proxy) can read it.
            // Whatever has arrived (a whole PROXY header fits), so that closing does not
            // reset the connection over unread bytes and lose the BYE.
            let mut first = vec![0u8; 1024];
            let n = match peek_read(&mut stream, &mut first).await {
                Ok(n) => n,
                Err(e) => {
                    bye(format!("before the TLS handshake: {e}"));
                    return;
                }
            };
            if n == 0 {
                // A TCP health check (connect, close): not worth a warning.
                log::debug!("{socket_peer}: closed before the TLS handshake");
                return;
            }
            first.truncate(n);
            if proxy::looks_like_header(&first) {
                bye("PROXY header from an untrusted peer, refused".into());
                let _ = write_all(&mut stream, proxy::UNTRUSTED_BYE).await;
                return;
            }
            stream = proxy::Rewind::stream(first, stream);
        }
        stream = match Box::pin(tls.accept(stream)).await {
            Ok(s) => s,
            Err(e) => {
                bye(format!("TLS handshake failed (client {peer}): {e}"));
                return;
            }
        };
    }
    conn::serve(stream, peer, implicit_tls, ctx).await;
}

/// A connection task whose panic (a bug) ends only that connection: with `panic = "unwind"`
/// (Cargo.toml) it is caught here and logged instead of unwinding through the executor.
async fn guarded(task: impl std::future::Future<Output = ()>, peer: std::net::SocketAddr) {
    use futures_lite::FutureExt as _;
    if std::panic::AssertUnwindSafe(task)
        .catch_unwind()
        .await
        .is_err()
    {
        log::error!(
            "{peer}: internal error (a bug: see the panic message above); connection closed"
        );
    }
}

/// The first bytes of a connection (the caller replays them), within the handshake timeout.
async fn peek_read(stream: &mut Stream, buf: &mut [u8]) -> std::io::Result<usize> {
    use futures_lite::{AsyncReadExt, FutureExt};
    async { stream.read(buf).await }
        .or(async {
            async_io::Timer::after(super::tls::HANDSHAKE_TIMEOUT).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no TLS ClientHello in time",
            ))
        })
        .await
}

async fn write_all(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    use futures_lite::AsyncWriteExt;
    stream.write_all(bytes).await?;
    stream.flush().await
}
