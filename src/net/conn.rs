//! One connection: the framer and the session over a TCP stream. The only place (with
//! `server`) that awaits sockets. Enforces the idle / login timeouts and the write timeout.
//! While the session is in IDLE (RFC 2177) it also awaits the session's mailbox [`Watcher`]
//! and pushes the untagged updates as soon as the mailbox changes. On server shutdown it
//! finishes the command in hand, says `* BYE` and closes.
//!
//! The byte stream is a [`Stream`] (a boxed `AsyncRead + AsyncWrite`), so layers such as TLS
//! can replace it in the middle of a connection: after STARTTLS (RFC 3501 §6.2.1) the bytes
//! the client pipelined behind the command are discarded, never executed (the CVE-2011-0411
//! command-injection class), and the TLS handshake ([`super::tls`]) runs on the raw stream.
//!
//! Memory per connection stays bounded whatever the message sizes: an APPEND literal over
//! [`SPOOL_FROM`] bytes is written to a file as it arrives (`Spooler`; the framer passes it
//! out in pieces) and handed to the session with its command; a handler's output streams
//! through a [`Sink`] of [`crate::session::SINK_DEPTH`] pieces of at most
//! [`crate::session::SINK_CHUNK`] bytes while it runs. Add the [`READ_BIG`] read buffer, the
//! framer's line limits and [`SPOOL_BUFFER`]: a connection fetching or appending a 50 MiB
//! message holds a few hundred KiB, not the message.
//!
//! A connection waiting for its next command (logged in and sitting, or in IDLE) holds none
//! of those buffers: it reads into a small inline buffer (`ReadBuf`), and the framer gives
//! its buffers back whenever nothing is half-read. Its heap cost is then the session, the
//! stream (TLS and COMPRESS state when used) and, in IDLE, the mailbox watch.
//!
//! `peer` is the real client (from a trusted PROXY header, see [`super::proxy`]); a PROXY
//! header arriving here as the first input is refused with `* BYE`.

use super::compress;
use super::server::Context;
use crate::imap::framing::{FrameEvent, Framer, FramerLimits};
use crate::session::{Action, Session, Sink, Spool, Watcher};
use async_io::Timer;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Anything a connection can run over (TCP, TLS over TCP, ...).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection's byte stream.
pub type Stream = Box<dyn Io>;

/// A client that doesn't take our output within this time is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// APPEND literals larger than this go to a file as they arrive instead of into memory.
pub const SPOOL_FROM: u64 = 64 * 1024;

/// Spooled bytes collected before one write to the file (on the blocking pool).
pub const SPOOL_BUFFER: usize = 64 * 1024;

/// Receives a spooled APPEND literal into a file in the user's `tmp/` (see the module doc).
struct Spooler {
    /// `Err`: no file (not logged in, or creating or writing it failed: why); the rest of
    /// the literal is read and dropped.
    spool: Result<Spool, String>,
    buf: Vec<u8>,
}

impl Spooler {
    async fn start(dir: Option<std::path::PathBuf>) -> Spooler {
        let spool = match dir {
            None => Err("not logged in".to_string()),
            Some(dir) => {
                smol::unblock(move || Spool::create(&dir).map_err(|e| e.to_string())).await
            }
        };
        Spooler {
            spool,
            buf: Vec::new(),
        }
    }

    async fn push(&mut self, data: &[u8]) {
        if self.spool.is_err() {
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SPOOL_BUFFER {
            self.write_out().await;
        }
    }

    /// Write what is buffered to the file, on the blocking pool.
    async fn write_out(&mut self) {
        let spool = std::mem::replace(&mut self.spool, Err(String::new()));
        let mut buf = std::mem::take(&mut self.buf);
        let (spool, buf) = smol::unblock(move || {
            let r = spool.and_then(|mut s| match s.write(&buf) {
                Ok(()) => Ok(s),
                Err(e) => Err(e.to_string()),
            });
            buf.clear();
            (r, buf)
        })
        .await;
        self.spool = spool;
        self.buf = buf;
    }

    async fn finish(mut self) -> Result<Spool, String> {
        if !self.buf.is_empty() {
            self.write_out().await;
        }
        self.spool
    }
}

/// Serve one connection; `tls` says whether `stream` is already TLS (IMAPS).
pub async fn serve(stream: Stream, peer: SocketAddr, tls: bool, ctx: Arc<Context>) {
    let _counted = ctx.shutdown.connection();
    let _slot = match ctx.limiter.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(why) => return super::limiter::refuse(stream, peer, why).await,
    };
    log::info!("{peer}: connect{}", if tls { " (TLS)" } else { "" });
    let mut session = Session::new(ctx.shared.clone(), peer);
    if tls {
        session.set_tls();
    }
    let reason = match run(stream, &mut session, &ctx).await {
        Ok(r) => r,
        Err(e) => format!("error: {e}"),
    };
    log::info!(
        "{peer}: disconnect user={} ({reason})",
        session.user().unwrap_or("-")
    );
}

async fn write(stream: &mut Stream, bytes: &[u8]) -> io::Result<()> {
    crate::metrics::global().bytes_out(bytes.len());
    async {
        stream.write_all(bytes).await?;
        stream.flush().await
    }
    .or(async {
        Timer::after(WRITE_TIMEOUT).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
    })
    .await
}

/// Run `f` on the session on the blocking thread pool, not on the executor: commands read,
/// write and fsync files (a big SEARCH takes seconds), and on the executor's few threads that
/// would stall every other connection, IDLE pushes and logins included.
///
/// A panic (a bug) inside `f` is caught here: `None`, and the caller closes this connection
/// only; the session, possibly half-updated, is dropped. Files stay consistent (every store
/// write is a rename or an append).
async fn on_pool<T: Send + 'static>(
    session: &mut Session,
    f: impl FnOnce(&mut Session) -> T + Send + 'static,
) -> Option<T> {
    let mut owned = std::mem::replace(session, session.stand_in());
    let peer = owned.peer();
    let (owned, out) = smol::unblock(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut owned)));
        match out {
            Ok(out) => (Some(owned), Some(out)),
            Err(_) => (None, None),
        }
    })
    .await;
    match owned {
        Some(s) => *session = s,
        None => log::error!(
            "{peer}: internal error (a bug: see the panic message above); closing this connection"
        ),
    }
    out
}

/// Commands and IDLE updates running on the blocking pool at once: enough to overlap fsyncs
/// and disk reads, few enough that CPU-bound work is not split over many more threads than
/// cores. Unbounded, 100 busy clients meant 100 threads, each with its own malloc arena
/// (761 MiB RSS after the C=100 load mix, against 273 MiB with 4 executor threads) and more
/// dotlock contention. Waiting for a turn is async: the executor stays free.
fn pool_turns() -> &'static smol::lock::Semaphore {
    static TURNS: std::sync::OnceLock<smol::lock::Semaphore> = std::sync::OnceLock::new();
    TURNS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        smol::lock::Semaphore::new((cores * 4).clamp(4, 32))
    })
}

/// Bytes read from the client at a time while it is busy (a literal streaming in, commands
/// pipelined faster than they run).
pub const READ_BIG: usize = 16 * 1024;

/// Bytes read at a time while the client is quiet: a typical command line fits. Kept inline
/// in the connection's future, so a connection that waits for its next command (logged in
/// and sitting, or in IDLE) holds no read buffer on the heap.
const READ_SMALL: usize = 512;

/// The connection's read buffer: [`READ_SMALL`] bytes inline while the client is quiet,
/// [`READ_BIG`] on the heap from the first read that fills the small one until the framer
/// has nothing left to assemble (then given back). An idle connection costs no 16 KiB
/// buffer; a streaming one reads in big pieces and allocates once per burst.
struct ReadBuf {
    small: [u8; READ_SMALL],
    big: Vec<u8>,
}

impl ReadBuf {
    fn new() -> ReadBuf {
        ReadBuf {
            small: [0; READ_SMALL],
            big: Vec::new(),
        }
    }

    /// Where the next read goes.
    fn space(&mut self) -> &mut [u8] {
        if self.big.is_empty() {
            &mut self.small
        } else {
            &mut self.big
        }
    }

    /// The `n` bytes the last read brought.
    fn filled(&self, n: usize) -> &[u8] {
        let all: &[u8] = if self.big.is_empty() {
            &self.small
        } else {
            &self.big
        };
        all.get(..n).unwrap_or_default()
    }

    /// After a read of `n` bytes: a full small buffer means more is coming, so read big.
    fn grow_if_full(&mut self, n: usize) {
        if self.big.is_empty() && n == READ_SMALL {
            self.big = vec![0; READ_BIG];
        }
    }

    /// The client's input is all used up: give the big buffer back.
    fn release(&mut self) {
        self.big = Vec::new();
    }
}

/// Said to a client whose command hit a bug (RFC 3501 §7.1.5: BYE, then close).
const BYE_BUG: &[u8] = b"* BYE Internal server error; please reconnect.\r\n";

/// What woke the connection's wait.
enum Wake {
    Read(usize),
    Changed,
    KeepAlive,
    /// A compressed connection has had no input for [`QUIET_AFTER`].
    Quiet,
    Timeout(crate::metrics::Timeout),
    Shutdown,
}

/// A compressed connection without input for this long (or in IDLE at once) lets its
/// stream give the compressor's state back ([`compress::Quiet`]); the next response builds
/// a fresh one. Long enough that a client working through commands keeps it.
const QUIET_AFTER: Duration = Duration::from_secs(10);

/// While idling, send `* OK Still here` after this long without output, so NAT boxes and
/// phone carriers don't drop a silent connection (RFC 2177 §3 allows any untagged response).
const IDLE_KEEPALIVE: Duration = Duration::from_secs(120);

async fn run(mut stream: Stream, session: &mut Session, ctx: &Context) -> io::Result<String> {
    write(&mut stream, &session.greeting()).await?;
    Conn::new(stream, session, ctx).serve().await
}

/// What the connection does after a framer event.
enum Next {
    /// Carry on with the framer's next event.
    Go,
    /// The stream was replaced (STARTTLS): start the loop over, shutdown check first.
    Restart,
    /// Close the connection; the reason is logged.
    Close(String),
}

/// One connection's state between reads: the stream, the framer, and the timers and flags
/// that decide what the next wait listens for.
struct Conn<'a> {
    stream: Stream,
    session: &'a mut Session,
    ctx: &'a Context,
    framer: Framer,
    /// The APPEND literal being received into a file, for the command the framer emits next,
    /// with where its `{0}` is in that command.
    spooler: Option<(usize, Spooler)>,
    /// The command's literals already received into files (MULTIAPPEND, CATENATE).
    spooled: Vec<(usize, Result<Spool, String>)>,
    buf: ReadBuf,
    /// Set while the session is in IDLE (RFC 2177), and between commands while NOTIFY is in
    /// force (RFC 5465): changes to the watched mailboxes wake us.
    watcher: Option<Watcher>,
    /// The session's [`Session::watch_key`] the watcher was made for.
    watch_key: Option<u64>,
    /// The autologout timer runs from the client's last input; pushed updates during IDLE do
    /// not reset it (RFC 2177 §3: clients re-issue IDLE at least every 29 minutes).
    clock: super::limiter::Deadline,
    /// Last time anything was written while idling (for the IDLE keep-alive).
    last_sent: Instant,
    /// Nothing read yet: a PROXY header here came from a peer not trusted to send one.
    first_input: bool,
    /// After COMPRESS: tells the stream the client has gone quiet (see [`QUIET_AFTER`]).
    quiet: Option<compress::Quiet>,
    /// Whether `quiet` was signalled since the client's last input.
    quiet_told: bool,
    last_input: Instant,
}

impl<'a> Conn<'a> {
    /// A connection whose greeting has been sent.
    fn new(stream: Stream, session: &'a mut Session, ctx: &'a Context) -> Conn<'a> {
        let limits = &ctx.shared.limits;
        let framer = Framer::new(FramerLimits {
            max_line: limits.max_line,
            max_literal: limits.max_message_size,
            max_command: limits
                .max_message_size
                .saturating_add(limits.max_line as u64 * 4),
        })
        .spool_literals_over(SPOOL_FROM)
        .gate_append_literals();
        Conn {
            stream,
            session,
            ctx,
            framer,
            spooler: None,
            spooled: Vec::new(),
            buf: ReadBuf::new(),
            watcher: None,
            watch_key: None,
            clock: super::limiter::Deadline::new(limits, Instant::now()),
            last_sent: Instant::now(),
            first_input: true,
            quiet: None,
            quiet_told: false,
            last_input: Instant::now(),
        }
    }

    /// The connection loop: run what the framer has assembled, then wait for input, a
    /// mailbox change, a timer or shutdown. `Ok`: why it closed.
    async fn serve(&mut self) -> io::Result<String> {
        loop {
            if self.ctx.shutdown.is_triggered() {
                let _ = write(&mut self.stream, b"* BYE Server shutting down.\r\n").await;
                return Ok("server shutdown".into());
            }
            match self.framer_events().await? {
                Next::Go => {}
                Next::Restart => continue,
                Next::Close(why) => return Ok(why),
            }
            if self.framer.buffered() == 0 && self.spooler.is_none() && self.spooled.is_empty() {
                // Nothing half-read: wait for the next command without the big buffers.
                self.buf.release();
                self.framer.shrink();
            }
            let wake = self.wait().await?;
            if let Some(why) = self.woken(wake).await? {
                return Ok(why);
            }
        }
    }

    /// Acts on every event the framer has ready; stops early when one closes the connection
    /// or replaces the stream.
    async fn framer_events(&mut self) -> io::Result<Next> {
        while let Some(ev) = self.framer.next_event() {
            match ev {
                FrameEvent::SpoolStart { at, .. } => {
                    Box::pin(self.finish_spool()).await;
                    let s = Box::pin(Spooler::start(self.session.spool_dir())).await;
                    self.spooler = Some((at, s));
                }
                FrameEvent::SpoolData(data) => {
                    if let Some((_, s)) = self.spooler.as_mut() {
                        Box::pin(s.push(&data)).await;
                    }
                }
                FrameEvent::Command(bytes) => match self.command(bytes).await? {
                    Next::Go => {}
                    next => return Ok(next),
                },
                FrameEvent::ContinuationNeeded => write(&mut self.stream, b"+ OK\r\n").await?,
                FrameEvent::AppendLiteral { .. } if !self.session.quota_applies() => {
                    self.framer.accept_literal()
                }
                FrameEvent::AppendLiteral { size, command } => {
                    // Asked before the client sends the message (e.g. over quota: NO now,
                    // not after the upload); on the pool since it may look at the disk.
                    let refused =
                        on_pool(self.session, move |s| s.append_precheck(&command, size)).await;
                    match refused {
                        Some(Some(response)) => {
                            let ev = self.framer.refuse_literal_with(response);
                            if let FrameEvent::Rejected { response, .. } = ev {
                                write(&mut self.stream, &response).await?;
                            }
                        }
                        Some(None) => self.framer.accept_literal(),
                        None => {
                            let _ = write(&mut self.stream, BYE_BUG).await;
                            return Ok(Next::Close("internal error".into()));
                        }
                    }
                }
                FrameEvent::Rejected { response, close } => {
                    self.spooler = None;
                    self.spooled.clear();
                    write(&mut self.stream, &response).await?;
                    if close {
                        return Ok(Next::Close("rejected input".into()));
                    }
                }
            }
        }
        Ok(Next::Go)
    }

    /// The literal being spooled is complete: add it to the command's.
    async fn finish_spool(&mut self) {
        if let Some((at, s)) = self.spooler.take() {
            let done = Box::pin(s.finish()).await;
            self.spooled.push((at, done));
        }
    }

    /// Runs one command on the blocking pool (with its spooled literals, if any), writing its
    /// streamed output while it runs, then does what the command asks of the connection.
    async fn command(&mut self, bytes: Vec<u8>) -> io::Result<Next> {
        Box::pin(self.finish_spool()).await;
        let spooled = std::mem::take(&mut self.spooled);
        let turn = Box::pin(pool_turns().acquire()).await;
        let (sink, pieces) = Sink::new(Some(turn), Some(pool_turns()));
        let work = on_pool(self.session, move |s| {
            s.set_spooled(spooled);
            s.set_sink(Some(sink));
            let out = s.handle(&bytes);
            // Drops the sink and with it the pool turn.
            s.set_sink(None);
            s.set_spooled(Vec::new());
            out
        });
        // The handler's streamed output, written while it runs (the handler gives its turn
        // back while it waits for this).
        let stream = &mut self.stream;
        let drain = async {
            while let Ok(piece) = pieces.recv().await {
                if let Err(e) = write(stream, &piece).await {
                    pieces.close();
                    return Err(e);
                }
            }
            Ok(())
        };
        let (done, drained) = Box::pin(futures_lite::future::zip(work, drain)).await;
        drained?;
        let Some(out) = done else {
            let _ = write(&mut self.stream, BYE_BUG).await;
            return Ok(Next::Close("internal error".into()));
        };
        if let Some(d) = self.session.take_delay() {
            // A failed login's back-off: waited here, not on a pool thread.
            Timer::after(d).await;
        }
        write(&mut self.stream, &out.bytes).await?;
        self.framer.expect_response(self.session.awaits_response());
        self.act(out.action).await
    }

    /// What a command's [`Action`] does to the connection.
    async fn act(&mut self, action: Action) -> io::Result<Next> {
        match action {
            Action::Close => return Ok(Next::Close("closed by server".into())),
            Action::Idle => self.start_idle().await?,
            Action::Compress => {
                // RFC 4978 §3: everything after the COMPRESS line's CRLF is deflate,
                // including what the framer already holds.
                self.watcher = None;
                let buffered = self.framer.take_buffered();
                let (wrapped, q) = compress::wrap(self.take_stream(), buffered);
                self.stream = wrapped;
                self.quiet = Some(q);
                return self.rearm().await;
            }
            Action::Continue => return self.rearm().await,
            Action::StartTls => return self.start_tls().await,
        }
        Ok(Next::Go)
    }

    /// Outside IDLE: keep a watcher only while NOTIFY is in force, made anew when the
    /// directories it must cover changed (NOTIFY SET, a SELECT, a new mailbox). A new one
    /// looks once at once: a change before it was armed would otherwise wait for the next.
    async fn rearm(&mut self) -> io::Result<Next> {
        let key = self.session.watch_key();
        if key.is_none() {
            self.watcher = None;
            self.watch_key = None;
        } else if key != self.watch_key || self.watcher.is_none() {
            self.watcher = Some(self.session.watcher());
            self.watch_key = key;
            if let Some(why) = self.idle_update().await? {
                return Ok(Next::Close(why));
            }
        }
        Ok(Next::Go)
    }

    /// The stream, moved out to be wrapped (TLS, COMPRESS); a closed stand-in is left behind
    /// until the wrapped one is put back.
    fn take_stream(&mut self) -> Stream {
        std::mem::replace(
            &mut self.stream,
            Box::new(futures_lite::io::Cursor::new(Vec::new())),
        )
    }

    /// IDLE began: arm the mailbox watch, and push what changed before it was armed.
    async fn start_idle(&mut self) -> io::Result<()> {
        self.watcher = Some(self.session.watcher());
        self.watch_key = self.session.watch_key();
        self.last_sent = Instant::now();
        if let Some(q) = &self.quiet {
            q.signal();
            self.quiet_told = true;
        }
        // A change between the session's sync and the watch being armed would otherwise wait
        // for the next change: look once more.
        let bytes = self.session.idle_sync();
        if !bytes.is_empty() {
            write(&mut self.stream, &bytes).await?;
        }
        Ok(())
    }

    /// STARTTLS was accepted: drop what was pipelined behind it and run the handshake.
    async fn start_tls(&mut self) -> io::Result<Next> {
        // RFC 3501 §6.2.1, RFC 2595 §3.1: everything after the STARTTLS line was sent in the
        // clear and is dropped, never run after the handshake (CVE-2011-0411 style command
        // injection).
        let injected = self.framer.take_buffered();
        if !injected.is_empty() {
            log::warn!(
                "{}: discarded {} byte(s) pipelined after STARTTLS",
                self.session.peer(),
                injected.len()
            );
        }
        let Some(tls) = self.ctx.tls.as_ref() else {
            return Ok(Next::Close("STARTTLS without a certificate".into()));
        };
        self.stream = match Box::pin(tls.accept(self.take_stream())).await {
            Ok(s) => s,
            Err(e) => return Ok(Next::Close(format!("STARTTLS handshake failed: {e}"))),
        };
        self.session.set_tls();
        self.watcher = None;
        Ok(Next::Restart)
    }

    /// Waits for whichever comes first: input, a deadline (login, command, idle), shutdown,
    /// the compressor's quiet time, and in IDLE a mailbox change or the keep-alive time.
    async fn wait(&mut self) -> io::Result<Wake> {
        // Login, command and idle deadlines (net::limiter): a trickle does not extend them.
        let (deadline, why) = self
            .clock
            .next(self.session.is_authenticated(), self.framer.buffered());
        let (stream, buf) = (&mut self.stream, &mut self.buf);
        let read = async { stream.read(buf.space()).await.map(Wake::Read) };
        let expire = async {
            Timer::at(deadline).await;
            Ok(Wake::Timeout(why))
        };
        let shutdown = &self.ctx.shutdown;
        let stop = async {
            shutdown.wait().await;
            Ok(Wake::Shutdown)
        };
        let quiet_at =
            (self.quiet.is_some() && !self.quiet_told).then(|| self.last_input + QUIET_AFTER);
        let settle = async {
            match quiet_at {
                Some(t) => {
                    Timer::at(t).await;
                    Ok(Wake::Quiet)
                }
                None => std::future::pending().await,
            }
        };
        let expire = expire.or(stop).or(settle);
        match self.watcher.as_mut() {
            Some(w) => {
                let changed = async {
                    w.changed().await;
                    Ok(Wake::Changed)
                };
                let last_sent = self.last_sent;
                // Only in IDLE: between commands (NOTIFY) the client talks when it wants.
                let idling = self.session.is_idling();
                let keepalive = async {
                    match idling {
                        true => {
                            Timer::at(last_sent + IDLE_KEEPALIVE).await;
                        }
                        false => std::future::pending::<()>().await,
                    }
                    Ok(Wake::KeepAlive)
                };
                read.or(changed).or(keepalive).or(expire).await
            }
            None => read.or(expire).await,
        }
    }

    /// Acts on what woke the wait; `Some`: the connection closes, for this reason.
    async fn woken(&mut self, wake: Wake) -> io::Result<Option<String>> {
        match wake {
            // Checked at the top of the loop.
            Wake::Shutdown => {}
            Wake::Timeout(why) => {
                crate::metrics::global().timeout(why);
                let _ = write(&mut self.stream, super::limiter::bye(why)).await;
                return Ok(Some(format!("{why:?} timeout")));
            }
            Wake::Changed => return self.idle_update().await,
            Wake::Quiet => {
                if let Some(q) = &self.quiet {
                    q.signal();
                }
                self.quiet_told = true;
            }
            Wake::KeepAlive => {
                write(&mut self.stream, b"* OK Still here\r\n").await?;
                self.last_sent = Instant::now();
            }
            Wake::Read(0) => return Ok(Some("client closed".into())),
            Wake::Read(n) => return self.input(n).await,
        }
        Ok(None)
    }

    /// A watched mailbox changed (IDLE, or NOTIFY between commands): sync the session and
    /// push the untagged updates.
    async fn idle_update(&mut self) -> io::Result<Option<String>> {
        // A new watcher (NOTIFY: a mailbox came or went) looks once more, for what changed
        // before it was armed; twice at most per wake-up.
        for _ in 0..2 {
            // A delivery wakes every idler of the mailbox at once: take turns, or 100 threads
            // rescan the same directory together and the last answers long after the first
            // (IDLE push p99 0.06 s → 0.6 s in benches/push_latency.py).
            let turn = Box::pin(pool_turns().acquire()).await;
            let synced = Box::pin(on_pool(self.session, |s| match s.is_idling() {
                true => s.idle_sync(),
                false => s.notify_sync(),
            }))
            .await;
            drop(turn);
            let Some(bytes) = synced else {
                let _ = write(&mut self.stream, BYE_BUG).await;
                return Ok(Some("internal error".into()));
            };
            if !bytes.is_empty() {
                write(&mut self.stream, &bytes).await?;
                self.last_sent = Instant::now();
            }
            let key = self.session.watch_key();
            if key == self.watch_key {
                break;
            }
            self.watch_key = key;
            self.watcher = match (key, self.session.is_idling()) {
                // NOTIFY ended (overflow): between commands nothing is watched any more.
                (None, false) => None,
                _ => Some(self.session.watcher()),
            };
        }
        Ok(None)
    }

    /// `n` bytes arrived: restart the clocks and hand them to the framer (a PROXY header as
    /// the very first input closes the connection instead).
    async fn input(&mut self, n: usize) -> io::Result<Option<String>> {
        let input = self.buf.filled(n);
        self.last_input = Instant::now();
        self.quiet_told = false;
        self.clock.input(self.last_input, input);
        crate::metrics::global().bytes_in(n);
        if std::mem::take(&mut self.first_input) && super::proxy::looks_like_header(input) {
            // PROXY spec §2: never honour a header from a peer outside
            // --proxy-trusted-networks; say why and close.
            let _ = write(&mut self.stream, super::proxy::UNTRUSTED_BYE).await;
            return Ok(Some("PROXY header from an untrusted peer, refused".into()));
        }
        self.framer.push(input);
        self.buf.grow_if_full(n);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserDb;
    use crate::config::MailLocation;
    use crate::session::Shared;

    fn session() -> Session {
        let dir = std::env::temp_dir().join(format!("pimap-conn-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let users = dir.join("users");
        std::fs::write(&users, "u:{PLAIN}p::::::\n").unwrap();
        let shared = Arc::new(Shared {
            users: Arc::new(UserDb::load(&users).unwrap()),
            mail_location: MailLocation::parse(&format!("{}/%u", dir.display())).unwrap(),
            limits: Default::default(),
            allow_plaintext_auth: false,
            autocreate_folders: false,
            starttls: false,
        });
        Session::new(shared, "127.0.0.1:9".parse().unwrap())
    }

    #[test]
    fn read_buffer_is_small_until_a_read_fills_it_and_small_again_after_release() {
        let mut b = ReadBuf::new();
        assert_eq!(b.space().len(), READ_SMALL);
        b.space()[..3].copy_from_slice(b"a1 ");
        b.grow_if_full(3);
        assert_eq!(b.filled(3), b"a1 ");
        assert_eq!(b.space().len(), READ_SMALL);
        b.grow_if_full(READ_SMALL);
        assert_eq!(b.space().len(), READ_BIG);
        b.space()[..2].copy_from_slice(b"ok");
        assert_eq!(b.filled(2), b"ok");
        b.release();
        assert_eq!((b.space().len(), b.big.capacity()), (READ_SMALL, 0));
    }

    #[test]
    fn a_panicking_command_is_contained_and_a_good_one_keeps_the_session() {
        smol::block_on(async {
            let mut s = session();
            let out = on_pool(&mut s, |s| s.handle(b"a LOGIN u p\r\n")).await;
            assert!(String::from_utf8_lossy(&out.unwrap().bytes).contains("a OK"));
            // The session came back from the pool: still logged in.
            assert!(s.is_authenticated());
            let out: Option<()> = on_pool(&mut s, |_| panic!("a bug")).await;
            assert!(out.is_none());
            // Replaced by the stand-in: whatever the bug left half-done is gone.
            assert!(!s.is_authenticated());
        });
    }
}
