//! Listeners and the executor: bind every `--imap-listen` address (a bind failure is a clear
//! start-up error naming the address), tell systemd we are ready, then accept until SIGTERM,
//! one task per connection. SIGHUP reloads the users file. See [`super::lifecycle`].

use super::conn::{self, Stream};
use super::lifecycle::{self, Request, Shutdown, Signals};
use crate::config::Config;
use crate::session::Shared;
use async_io::Async;
use std::net::TcpListener;
use std::sync::Arc;

/// What every connection task shares: the session's configuration plus the network layer's
/// state.
pub struct Context {
    pub shared: Arc<Shared>,
    pub shutdown: Shutdown,
}

pub fn run(cfg: Config) -> Result<(), String> {
    let shared = Arc::new(Shared {
        users: cfg.users.clone(),
        mail_location: cfg.mail_location.clone(),
        limits: cfg.limits.clone(),
        allow_plaintext_auth: cfg.allow_plaintext_auth,
        autocreate_folders: cfg.autocreate_folders,
    });
    let mut listeners = Vec::new();
    for addr in &cfg.imap_listen {
        let l = Async::<TcpListener>::bind(*addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = l
            .get_ref()
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| addr.to_string());
        log::info!("listening for IMAP on {local}");
        listeners.push(l);
    }
    log::info!(
        "users from {}, {} user(s); mail under the location template",
        cfg.users_path.display(),
        cfg.users.user_names().len()
    );
    let signals = Signals::new()?;
    let ctx = Arc::new(Context {
        shared,
        shutdown: Shutdown::new(),
    });
    let ex = Arc::new(smol::Executor::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let (_stop, stop_rx) = smol::channel::unbounded::<()>();
    for _ in 1..threads {
        let ex = ex.clone();
        let rx = stop_rx.clone();
        std::thread::Builder::new()
            .name("pimap-worker".into())
            .spawn(move || smol::block_on(ex.run(rx.recv())))
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
    }
    let ex2 = ex.clone();
    smol::block_on(ex.run(async move {
        let mut tasks = Vec::new();
        for l in listeners {
            let ctx = ctx.clone();
            let ex3 = ex2.clone();
            tasks.push(ex2.spawn(async move {
                loop {
                    match l.accept().await {
                        Ok((stream, peer)) => {
                            let ctx = ctx.clone();
                            let stream: Stream = Box::new(stream);
                            ex3.spawn(conn::serve(stream, peer, ctx)).detach();
                        }
                        Err(e) => {
                            // EMFILE and friends: log and back off instead of spinning.
                            log::warn!("accept failed: {e}");
                            async_io::Timer::after(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            }));
        }
        lifecycle::notify("READY=1");
        loop {
            match signals.next().await {
                Ok(Request::Reload) => {
                    lifecycle::notify("RELOADING=1");
                    log::info!("SIGHUP: reloading");
                    ctx.shared.users.reload();
                    lifecycle::notify("READY=1");
                }
                Ok(Request::Stop) => break,
                Err(e) => {
                    log::error!("reading signals failed: {e}; shutting down");
                    break;
                }
            }
        }
        lifecycle::notify("STOPPING=1");
        log::info!(
            "shutting down: {} connection(s) open, waiting up to {:?}",
            ctx.shutdown.active(),
            lifecycle::DRAIN_TIMEOUT
        );
        // Stop accepting, then let every connection finish its command and say BYE.
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
    }));
    Ok(())
}
