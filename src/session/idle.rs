//! IDLE (RFC 2177): the command handlers and the mailbox [`Watcher`] that wakes an idling
//! connection when the selected mailbox changes on disk.
//!
//! Owns: entering IDLE (`+ idling`), ending it on `DONE` (tagged OK) or on any other line
//! (tagged BAD, as Dovecot does), and the untagged updates pushed while idling (the same
//! EXISTS / RECENT / EXPUNGE / FETCH FLAGS that NOOP would send, RFC 2177 §3). Never: touches
//! the socket (`net::conn` awaits the client and the watcher together and writes the bytes).
//!
//! The watcher takes the selected mailbox's wake-ups from the store (one process-wide inotify
//! instance, see `store::maildir::wake`), so an idle client costs no CPU until something
//! changes. When inotify is unavailable (other OS, no watch possible) it falls back to polling
//! every [`POLL_FALLBACK`].

use super::{Action, HandlerError, Output, Pending, Session, State};
#[cfg(target_os = "linux")]
use crate::store::maildir::wake::Subscription;
use async_io::Timer;
use std::time::Duration;

/// How often an idling session re-reads its mailbox when inotify is unavailable.
pub const POLL_FALLBACK: Duration = Duration::from_secs(5);

/// After a notification, wait this long for the writer's burst (a delivery is a create in
/// `tmp/` then a rename, the uidlist is rewritten afterwards) before re-reading the mailbox.
const SETTLE: Duration = Duration::from_millis(25);

impl Session {
    /// `IDLE` (RFC 2177 §3): send what is pending, then the continuation; the next line from
    /// the client must be `DONE`. Valid in the authenticated and selected states.
    pub(super) fn idle_start(&mut self, tag: &str) -> Result<Output, HandlerError> {
        let mut out = Vec::new();
        self.sync_selected(&mut out, true)?;
        out.extend_from_slice(b"+ idling\r\n");
        self.pending = Pending::Idle {
            tag: tag.to_string(),
        };
        Ok(Output {
            bytes: out,
            action: Action::Idle,
        })
    }

    /// The line that ends IDLE. `DONE` (case-insensitive, RFC 2177 §4 ABNF) completes the
    /// command; anything else fails it with BAD and leaves IDLE too (as Dovecot does).
    pub(super) fn idle_continue(&mut self, tag: String, frame: &[u8]) -> Output {
        let line = trim_crlf(frame);
        let mut bytes = Vec::new();
        if line.eq_ignore_ascii_case(b"DONE") {
            if let Err(HandlerError::No(t) | HandlerError::Bad(t)) =
                self.sync_selected(&mut bytes, true)
            {
                log::warn!("{}: sync at the end of IDLE failed: {t}", self.peer);
            }
            bytes.extend_from_slice(format!("{tag} OK IDLE terminated.\r\n").as_bytes());
            self.bad_in_a_row = 0;
            return Output {
                bytes,
                action: Action::Continue,
            };
        }
        self.bad(&tag, "Expected DONE.")
    }

    /// True while the session waits for the `DONE` that ends an IDLE.
    pub fn is_idling(&self) -> bool {
        matches!(self.pending, Pending::Idle { .. })
    }

    /// While idling: bring the selected mailbox up to date and return the untagged responses
    /// to push (empty when nothing changed, or when no mailbox is selected).
    /// With NOTIFY, the selected mailbox only when a SELECTED filter asks for it (RFC 5465,
    /// as Dovecot does), with the MessageNew FETCH attributes, and the other mailboxes'
    /// changes.
    pub fn idle_sync(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        match (self.notify.is_some(), self.selected_events()) {
            (_, Some((events, _))) => self.push_selected(&mut out, true, &events),
            (false, None) => self.push_selected(&mut out, true, &[]),
            (true, None) => {}
        }
        self.notify_others(&mut out);
        out
    }

    /// What wakes this session while it idles, or between commands under NOTIFY: the
    /// selected mailbox's changes (nothing when none is selected), and with NOTIFY the
    /// watched mailboxes' and the mailbox list's.
    pub fn watcher(&mut self) -> Watcher {
        #[cfg(target_os = "linux")]
        if self.notify.is_some() {
            let paths = self.notify_paths();
            if paths.is_empty() {
                return Watcher {
                    kind: Kind::Nothing,
                };
            }
            let sub = match self.store() {
                Ok(store) => store.subscribe(&paths),
                Err(_) => Err(std::io::Error::other("not authenticated")),
            };
            if let Some(n) = self.notify.as_mut() {
                n.changes = sub.as_ref().ok().map(|s| s.changes());
                n.armed();
            }
            return Watcher::new(sub);
        }
        match &self.state {
            #[cfg(target_os = "linux")]
            State::Selected { view, .. } => Watcher::new(view.lock().mbox.subscribe()),
            #[cfg(not(target_os = "linux"))]
            State::Selected { .. } => Watcher { kind: Kind::Poll },
            _ => Watcher {
                kind: Kind::Nothing,
            },
        }
    }
}

fn trim_crlf(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = b {
        b = rest;
    }
    b
}

/// Wakes an idling connection when one of the watched directories changes.
pub struct Watcher {
    kind: Kind,
}

enum Kind {
    /// Nothing to watch (no mailbox selected): never fires.
    Nothing,
    /// Wake-ups from the store.
    #[cfg(target_os = "linux")]
    Inotify(Subscription),
    /// inotify unavailable: fire every [`POLL_FALLBACK`].
    Poll,
}

impl Watcher {
    /// A watcher over a mailbox's wake-ups (on an error: poll every [`POLL_FALLBACK`]).
    #[cfg(target_os = "linux")]
    fn new(sub: std::io::Result<Subscription>) -> Watcher {
        let kind = match sub {
            Ok(sub) => Kind::Inotify(sub),
            Err(e) => {
                log::warn!("cannot watch the mailbox ({e}); IDLE polls every {POLL_FALLBACK:?}");
                Kind::Poll
            }
        };
        Watcher { kind }
    }

    /// True when changes are noticed by polling rather than by notification.
    pub fn is_polling(&self) -> bool {
        matches!(self.kind, Kind::Poll)
    }

    /// Resolve when the watched mailbox may have changed (after a short settle delay, with
    /// the wake-ups that arrived meanwhile drained).
    pub async fn changed(&mut self) {
        match &mut self.kind {
            Kind::Nothing => std::future::pending::<()>().await,
            Kind::Poll => {
                Timer::after(POLL_FALLBACK).await;
            }
            #[cfg(target_os = "linux")]
            Kind::Inotify(sub) => {
                if !sub.recv().await {
                    // The hub stopped: degrade to polling rather than hang or spin.
                    self.kind = Kind::Poll;
                    return;
                }
                Timer::after(SETTLE).await;
                sub.drain();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_line_endings() {
        assert_eq!(trim_crlf(b"DONE\r\n"), b"DONE");
        assert_eq!(trim_crlf(b"DONE"), b"DONE");
        assert_eq!(trim_crlf(b"\r\n"), b"");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn watcher_wakes_on_delivery() {
        let root = crate::store::maildir::test_dir("idle-watcher");
        let store = crate::store::UserStore::open(&root.join("Maildir")).unwrap();
        let mbox = store.load_mailbox("INBOX", false).unwrap();
        let dir = store.root().to_path_buf();
        let mut w = Watcher::new(mbox.subscribe());
        let polling = w.is_polling();
        let d2 = dir.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(d2.join("tmp").join("1.x"), b"Subject: x\r\n\r\nx\r\n")
                .unwrap_or_default();
            let _ = std::fs::rename(d2.join("tmp").join("1.x"), d2.join("new").join("1.x"));
        });
        let start = std::time::Instant::now();
        futures_lite::future::block_on(w.changed());
        let took = start.elapsed();
        let _ = t.join();
        let _ = std::fs::remove_dir_all(&root);
        if !polling {
            assert!(took < Duration::from_secs(1), "woke after {took:?}");
        }
    }
}
