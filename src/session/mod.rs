//! IMAP semantics over the store and auth: one [`Session`] per connection.
//!
//! Owns: the protocol state machine (RFC 3501 §3), the one dispatch table saying which command
//! is allowed in which state, the sequence-number view of the selected mailbox, and the mapping
//! of every error to a tagged `BAD` / `NO [CODE]` / `BYE`. Never: touches sockets (that is
//! `net::conn`), or trusts a mailbox name without the store's validation.
//!
//! Handlers live in one module per command family: `auth` (LOGIN, AUTHENTICATE), `mailbox`
//! (SELECT ... STATUS), `append` (APPEND, MULTIAPPEND, CATENATE), `list` (LIST with
//! LIST-EXTENDED / LIST-STATUS), `message` (FETCH, STORE, COPY, MOVE, EXPUNGE), `search` (with
//! ESEARCH / SEARCHRES), `sort` (SORT, SORT=DISPLAY, ESORT, over `search`'s matching),
//! `thread` (THREAD, the same way), `context` (CONTEXT=SEARCH / CONTEXT=SORT updates), `quota`
//! (GETQUOTAROOT, GETQUOTA, SETQUOTA and the APPEND/COPY check), `idle` (IDLE, RFC 2177, and
//! the [`Watcher`] over the store's wake-ups), `notify` / `notify_push` (NOTIFY, RFC 5465),
//! `special_use` (RFC 6154), `metadata` (GETMETADATA, SETMETADATA), `view`.
//!
//! The extensions advertised are in [`Session::capabilities`]; each is tested against Dovecot
//! where Dovecot has it, in `tests/e2e/test_ext_*.py`. Before login: AUTH=PLAIN (`auth`),
//! AUTH=SCRAM-SHA-1 and AUTH=SCRAM-SHA-256 (`auth_scram`, RFC 5802 / RFC 7677).

mod append;
mod auth;
mod auth_scram;
mod compress;
mod condstore;
mod context;
mod fetch;
mod fetch_body;
mod fetch_cached;
mod fetch_response;
mod idle;
mod list;
mod mailbox;
mod message;
mod metadata;
mod notify;
mod notify_push;
mod quota;
mod rev2;
mod search;
mod sort;
pub mod special_use;
mod thread;
pub mod view;

use crate::auth::UserDb;
use crate::config::MailLocation;
use crate::imap::parse::parse_command;
use crate::imap::types::{Command, TaggedCommand};
use crate::limits::Limits;
/// The file an APPEND literal is received into (the store owns it; `net::conn` fills it).
pub use crate::store::Spool;
use crate::store::{StoreError, UserStore};
pub use idle::Watcher;
use std::net::SocketAddr;
use std::sync::Arc;
use view::View;

/// What every session shares: configuration and the users database.
pub struct Shared {
    pub users: Arc<UserDb>,
    pub mail_location: MailLocation,
    pub limits: Limits,
    pub allow_plaintext_auth: bool,
    /// Create the special-use folders for a user whose Maildir doesn't exist yet.
    pub autocreate_folders: bool,
    /// A TLS certificate is configured: STARTTLS is offered on plain connections.
    pub starttls: bool,
}

/// What the connection must do after writing a handler's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Close the connection after writing.
    Close,
    /// STARTTLS was accepted (RFC 3501 §6.2.1): the connection discards anything the client
    /// sent after the command, runs the TLS handshake, then calls [`Session::set_tls`].
    StartTls,
    /// COMPRESS DEFLATE was accepted (RFC 4978): after writing the tagged OK the connection
    /// deflates both directions, from the first byte after the command's CRLF.
    Compress,
    /// The session entered IDLE (RFC 2177): until the next line from the client, the
    /// connection waits on a [`Watcher`] too and writes [`Session::idle_sync`]'s output.
    Idle,
}

/// A handler's result: bytes to write and what to do next.
#[derive(Debug)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub action: Action,
}

/// Where a handler sends output as it goes, ahead of its [`Output`] (a big FETCH streams
/// message files through it in [`SINK_CHUNK`] pieces instead of building the whole response).
/// The connection drains it to the socket; it holds at most [`SINK_DEPTH`] pieces, so a
/// handler waits for a slow client instead of buffering.
pub struct Sink {
    tx: smol::channel::Sender<Vec<u8>>,
    /// The thread-pool turn the command runs under (`net::conn`), and its semaphore: given
    /// back while the handler waits for a slow client, taken again before it goes on, so
    /// turns bound the handlers that use the CPU, not the ones waiting on the network.
    turn: std::sync::Mutex<Option<Turn>>,
    turns: Option<&'static smol::lock::Semaphore>,
}

type Turn = smol::lock::SemaphoreGuard<'static>;

/// Largest piece a handler sends through a [`Sink`], bytes.
pub const SINK_CHUNK: usize = 64 * 1024;
/// Pieces a [`Sink`] holds before the handler waits for the client.
pub const SINK_DEPTH: usize = 2;

impl Sink {
    /// A sink and the receiver the connection drains; `turn`: the pool turn the command
    /// holds, from `turns` (see the field).
    pub fn new(
        turn: Option<Turn>,
        turns: Option<&'static smol::lock::Semaphore>,
    ) -> (Sink, smol::channel::Receiver<Vec<u8>>) {
        let (tx, rx) = smol::channel::bounded(SINK_DEPTH);
        let sink = Sink {
            tx,
            turn: std::sync::Mutex::new(turn),
            turns,
        };
        (sink, rx)
    }

    /// Send `bytes` (blocking while the connection is behind); false if it is gone.
    fn send(&self, bytes: Vec<u8>) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let bytes = match self.tx.try_send(bytes) {
            Ok(()) => return true,
            Err(smol::channel::TrySendError::Closed(_)) => return false,
            Err(smol::channel::TrySendError::Full(b)) => b,
        };
        let held = self.turn.lock().ok().and_then(|mut t| t.take()).is_some();
        let sent = self.tx.send_blocking(bytes).is_ok();
        if let (true, Some(turns)) = (held, self.turns) {
            let turn = smol::block_on(turns.acquire());
            if let Ok(mut t) = self.turn.lock() {
                *t = Some(turn);
            }
        }
        sent
    }
}

/// RFC 3501 §3 states (Logout is `Action::Close`).
enum State {
    NotAuthenticated,
    Authenticated {
        user: String,
        store: UserStore,
    },
    Selected {
        user: String,
        store: UserStore,
        view: Box<View>,
    },
}

/// A continuation the session is waiting for (the next line from the client is not a command).
enum Pending {
    None,
    /// AUTHENTICATE PLAIN sent `+ `; the next line is the base64 response.
    AuthPlain {
        tag: String,
    },
    /// AUTHENTICATE SCRAM-* sent a `+ ` challenge; the next line is the client's answer.
    Scram {
        tag: String,
        step: Box<auth_scram::Step>,
    },
    /// IDLE sent `+ idling`; the next line must be `DONE` (RFC 2177 §3).
    Idle {
        tag: String,
    },
}

/// Error from a handler, mapped to a response by [`Session::handle`].
pub(crate) enum HandlerError {
    /// Tagged `BAD <reason>`.
    Bad(String),
    /// Tagged `NO <text>` where text may start with a `[CODE]`.
    No(String),
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NotFound(_) => "[NONEXISTENT] ",
            StoreError::AlreadyExists(_) => "[ALREADYEXISTS] ",
            StoreError::BadName(_) | StoreError::Cannot(_) => "[CANNOT] ",
            StoreError::Expunged(_) => "[EXPUNGEISSUED] ",
            StoreError::Locked(_) => "[INUSE] ",
            StoreError::TooBig => "[TOOBIG] ",
            StoreError::Io(..) => "[SERVERBUG] ",
        };
        if let StoreError::Io(..) = &e {
            log::error!("store error: {e}");
        }
        HandlerError::No(format!("{code}{e}"))
    }
}

pub struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    state: State,
    pending: Pending,
    bad_in_a_row: u32,
    /// COMPRESS DEFLATE is active (RFC 4978).
    compressed: bool,
    /// The connection is TLS (IMAPS, or after STARTTLS).
    tls: bool,
    /// Extensions turned on by ENABLE or a CONDSTORE-enabling command (RFC 5161, RFC 7162).
    enabled: condstore::Enabled,
    /// Set by a failed login: see [`Session::take_delay`].
    delay: Option<std::time::Duration>,
    /// The message literals of the command being handled, received into files by the
    /// connection (`Err`: why it could not be); see [`Session::set_spooled`].
    spooled: Vec<(usize, Result<Spool, String>)>,
    /// See [`Sink`]; `None`: all output goes into the [`Output`].
    sink: Option<Sink>,
    /// NOTIFY SET is in force (RFC 5465; `notify`).
    notify: Option<Box<notify::Notify>>,
}

impl Session {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Session {
        Session {
            shared,
            peer,
            state: State::NotAuthenticated,
            pending: Pending::None,
            bad_in_a_row: 0,
            compressed: false,
            tls: false,
            enabled: condstore::Enabled::default(),
            delay: None,
            spooled: Vec::new(),
            sink: None,
            notify: None,
        }
    }

    /// Where the connection spools an APPEND literal for this session (the user's INBOX,
    /// whose `tmp/` is on the same file system as the folders); `None` before login, when
    /// the literal is read and dropped (the APPEND is refused anyway).
    pub fn spool_dir(&self) -> Option<std::path::PathBuf> {
        self.store().ok().map(|s| s.root().to_path_buf())
    }

    /// The next command's spooled literals, each with where the `{0}` the command holds in
    /// its place starts (the framer passed the bytes in pieces). Dropped, and their files
    /// removed, if the command does not take them.
    pub fn set_spooled(&mut self, spooled: Vec<(usize, Result<Spool, String>)>) {
        self.spooled = spooled;
    }

    /// Let handlers stream output through `sink` (until set to `None`).
    pub fn set_sink(&mut self, sink: Option<Sink>) {
        self.sink = sink;
    }

    /// How long the connection must wait before writing the last command's answer (a failed
    /// login's back-off), once.
    pub fn take_delay(&mut self) -> Option<std::time::Duration> {
        self.delay.take()
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// A fresh, not-authenticated session for the same peer: what stands in for this one
    /// while it is moved to a blocking thread (`net::conn`).
    pub fn stand_in(&self) -> Session {
        Session::new(self.shared.clone(), self.peer)
    }

    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::NotAuthenticated => None,
            State::Authenticated { user, .. } | State::Selected { user, .. } => Some(user),
        }
    }

    pub fn is_authenticated(&self) -> bool {
        !matches!(self.state, State::NotAuthenticated)
    }

    /// The untagged greeting (RFC 3501 §7.1.1).
    pub fn greeting(&self) -> Vec<u8> {
        format!("* OK [CAPABILITY {}] pimap ready.\r\n", self.capabilities()).into_bytes()
    }

    /// The connection is now TLS (implicit TLS, or STARTTLS completed). The client asks for
    /// the capabilities again (RFC 3501 §6.2.1): nothing is sent unasked.
    pub fn set_tls(&mut self) {
        self.tls = true;
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Plaintext LOGIN / AUTHENTICATE PLAIN allowed on this connection? (TLS, a loopback peer,
    /// or opted in.) `peer` is the real client: with a trusted PROXY header, the address the
    /// proxy names, so a remote client behind a local proxy is remote.
    fn plaintext_ok(&self) -> bool {
        self.tls || self.shared.allow_plaintext_auth || self.peer.ip().to_canonical().is_loopback()
    }

    /// The CAPABILITY list for the current state.
    pub fn capabilities(&self) -> String {
        let mut caps = vec!["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID"];
        // RFC 7889 §3.1: the server-wide APPEND limit (also enforced by the framer).
        let appendlimit = format!("APPENDLIMIT={}", self.shared.limits.max_message_size);
        if !self.is_authenticated() {
            // RFC 3501 §6.2.1: STARTTLS only where it can be used, and not once TLS is on.
            if self.shared.starttls && !self.tls {
                caps.push("STARTTLS");
            }
            if self.plaintext_ok() {
                caps.push("AUTH=PLAIN");
            } else {
                caps.push("LOGINDISABLED");
            }
            // SCRAM never sends the password: offered with LOGINDISABLED too, as in Dovecot.
            caps.extend(["AUTH=SCRAM-SHA-1", "AUTH=SCRAM-SHA-256"]);
        } else {
            caps.extend([
                "IDLE",
                "UIDPLUS",
                "MULTIAPPEND",
                "CATENATE",
                "URL-PARTIAL",
                "MOVE",
                "UNSELECT",
                "NAMESPACE",
                "NOTIFY",
                "CHILDREN",
                "ENABLE",
                "ESEARCH",
                "CONTEXT=SEARCH",
                "CONTEXT=SORT",
                "SEARCHRES",
                "SORT",
                "SORT=DISPLAY",
                "ESORT",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
                "THREAD=REFS",
                "I18NLEVEL=1",
                "WITHIN",
                "STATUS=SIZE",
                "SPECIAL-USE",
                "LIST-EXTENDED",
                "LIST-STATUS",
                "METADATA",
                "CONDSTORE",
                "QRESYNC",
                // RFC 9208 §3.1: the resource types the server knows.
                "QUOTA",
                "QUOTA=RES-STORAGE",
                "QUOTA=RES-MESSAGE",
                "UTF8=ACCEPT",
                "BINARY",
                "PREVIEW",
                "SAVEDATE",
            ]);
            caps.push(&appendlimit);
            // RFC 4978 §3: not offered once compression is active.
            if !self.compressed {
                caps.push("COMPRESS=DEFLATE");
            }
        }
        caps.join(" ")
    }

    /// Handle one framed command (or the continuation line the session asked for).
    pub fn handle(&mut self, frame: &[u8]) -> Output {
        if let State::Selected { view, .. } = &mut self.state {
            view.begin_command();
        }
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::AuthPlain { tag } => return self.auth_plain_continue(tag, frame),
            Pending::Scram { tag, step } => return self.scram_continue(tag, *step, frame),
            Pending::Idle { tag } => return self.idle_continue(tag, frame),
            Pending::None => {}
        }
        let cmd = match parse_command(frame) {
            Ok(c) => c,
            Err(e) => {
                let tag = e.tag.unwrap_or_else(|| "*".to_string());
                return self.bad(&tag, &e.reason);
            }
        };
        let TaggedCommand { tag, command } = cmd;
        crate::metrics::global().command(command.name());
        log::debug!(
            "{} {}: {}",
            self.peer,
            self.user().unwrap_or("-"),
            command.name()
        );
        match self.dispatch(&tag, command) {
            Ok(out) => {
                self.bad_in_a_row = 0;
                if let State::Selected { view, .. } = &mut self.state {
                    view.begin_command();
                }
                out
            }
            Err(HandlerError::Bad(reason)) => self.bad(&tag, &reason),
            Err(HandlerError::No(text)) => {
                self.bad_in_a_row = 0;
                let mut bytes = self.pending_untagged();
                bytes.extend_from_slice(format!("{tag} NO {text}\r\n").as_bytes());
                Output {
                    bytes,
                    action: Action::Continue,
                }
            }
        }
    }

    fn bad(&mut self, tag: &str, reason: &str) -> Output {
        self.bad_in_a_row += 1;
        let mut bytes = self.pending_untagged();
        bytes.extend_from_slice(format!("{tag} BAD {reason}\r\n").as_bytes());
        if self.bad_in_a_row >= self.shared.limits.max_bad_commands {
            log::info!(
                "{}: disconnecting after {} invalid commands",
                self.peer,
                self.bad_in_a_row
            );
            bytes.extend_from_slice(b"* BYE Too many invalid IMAP commands.\r\n");
            return Output {
                bytes,
                action: Action::Close,
            };
        }
        Output {
            bytes,
            action: Action::Continue,
        }
    }

    /// Untagged updates to send before a failed command's tagged NO or BAD: what the view
    /// announced while the command ran (EXISTS, EXPUNGE, FETCH, FLAGS) went into the handler's
    /// discarded output, but the view already counts it as told, so it is sent anyway.
    /// Otherwise the client would later get sequence numbers it was never told of.
    fn pending_untagged(&mut self) -> Vec<u8> {
        match &mut self.state {
            State::Selected { view, .. } => view.take_told(),
            _ => Vec::new(),
        }
    }

    /// The one dispatch table: which command runs in which state (RFC 3501 §6).
    fn dispatch(&mut self, tag: &str, command: Command) -> Result<Output, HandlerError> {
        use Command::*;
        if let Some(out) = self.any_state_command(tag, &command)? {
            return Ok(out);
        }
        // RFC 9051 §5.1: UTF-8 mailbox names once IMAP4rev2 is enabled (`rev2`).
        let command = self.names_from_client(command);
        match (&self.state, command) {
            (State::NotAuthenticated, Login { user, password }) => {
                self.login(tag, &user, &password.0)
            }
            (State::NotAuthenticated, Authenticate { mechanism, initial }) => {
                self.authenticate(tag, &mechanism, initial)
            }
            (State::NotAuthenticated, StartTls) => self.starttls(tag),
            (State::NotAuthenticated, c) => Err(HandlerError::Bad(format!(
                "{} needs authentication first (LOGIN).",
                c.name()
            ))),
            (_, Login { .. } | Authenticate { .. }) => {
                Err(HandlerError::Bad("Already authenticated.".into()))
            }
            (_, StartTls) => Err(HandlerError::Bad(
                "STARTTLS is only allowed before authentication.".into(),
            )),
            (_, Idle) => self.idle_start(tag),
            (_, Notify(set)) => self.notify(tag, set),
            (_, Compress { mechanism }) => self.compress(tag, &mechanism),
            // RFC 5161 §3.1 (in `condstore`); accepted in the selected state too, as Dovecot does.
            (_, Enable(caps)) => self.enable(tag, &caps),
            (_, c @ (Select { .. } | Examine { .. })) => self.select(tag, c),
            (
                _,
                c @ (Create { .. }
                | Delete { .. }
                | Rename { .. }
                | Subscribe { .. }
                | Unsubscribe { .. }
                | List { .. }
                | Lsub { .. }
                | Status { .. }
                | Namespace),
            ) => self.mailbox_command(tag, c),
            (_, c @ (GetMetadata { .. } | SetMetadata { .. })) => self.metadata_command(tag, c),
            (_, Append { mailbox, messages }) => self.append(tag, &mailbox, messages),
            (_, c @ (GetQuotaRoot { .. } | GetQuota { .. } | SetQuota { .. })) => {
                self.quota_command(tag, c)
            }
            (State::Selected { .. }, c) => self.selected_command(tag, c),
            (
                State::Authenticated { .. },
                c @ (Check
                | Close
                | Unselect
                | Expunge
                | UidExpunge(_)
                | CancelUpdate(_)
                | Search { .. }
                | Sort { .. }
                | Thread { .. }
                | Fetch { .. }
                | Store { .. }
                | Copy { .. }
                | Move { .. }),
            ) => Err(HandlerError::Bad(format!(
                "{} needs a selected mailbox (SELECT first).",
                c.name()
            ))),
            (_, c) => Err(HandlerError::Bad(format!("{} is not supported.", c.name()))),
        }
    }

    /// The commands valid in every state (RFC 3501 §6.1): CAPABILITY, NOOP, LOGOUT, and ID
    /// (RFC 2971); `None` for any other command.
    fn any_state_command(
        &mut self,
        tag: &str,
        command: &Command,
    ) -> Result<Option<Output>, HandlerError> {
        let ok = |bytes: Vec<u8>| {
            Ok(Some(Output {
                bytes,
                action: Action::Continue,
            }))
        };
        match command {
            Command::Capability => ok(format!(
                "* CAPABILITY {}\r\n{tag} OK CAPABILITY completed.\r\n",
                self.capabilities()
            )
            .into_bytes()),
            Command::Noop => {
                let mut out = Vec::new();
                self.sync_selected(&mut out, true)?;
                out.extend_from_slice(format!("{tag} OK NOOP completed.\r\n").as_bytes());
                ok(out)
            }
            Command::Logout => {
                log::info!("{}: logout user={}", self.peer, self.user().unwrap_or("-"));
                Ok(Some(Output {
                    bytes: format!("* BYE Logging out.\r\n{tag} OK LOGOUT completed.\r\n")
                        .into_bytes(),
                    action: Action::Close,
                }))
            }
            Command::Id => ok(format!(
                "* ID (\"name\" \"pimap\" \"version\" \"{}\")\r\n{tag} OK ID completed.\r\n",
                env!("CARGO_PKG_VERSION")
            )
            .into_bytes()),
            _ => Ok(None),
        }
    }

    /// The user's store (authenticated or selected).
    fn store(&self) -> Result<&UserStore, HandlerError> {
        match &self.state {
            State::Authenticated { store, .. } | State::Selected { store, .. } => Ok(store),
            State::NotAuthenticated => Err(HandlerError::Bad("Not authenticated.".into())),
        }
    }

    /// Bring the selected mailbox's view up to date, appending untagged responses to `out`.
    /// `allow_expunge = false` during FETCH, STORE and SEARCH (RFC 3501 §7.4.1).
    fn sync_selected(
        &mut self,
        out: &mut Vec<u8>,
        allow_expunge: bool,
    ) -> Result<(), HandlerError> {
        if let State::Selected { view, .. } = &mut self.state {
            view.sync(out, allow_expunge)?;
        }
        Ok(())
    }
}

/// Normalise a client's mailbox name: `INBOX` is case-insensitive (RFC 3501 §5.1).
pub(crate) fn normalize_mailbox(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name.to_string()
    }
}
