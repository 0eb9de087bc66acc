//! STARTTLS (RFC 3501 §6.2.1), LOGIN (RFC 3501 §6.2.3) and AUTHENTICATE PLAIN (RFC 3501 §6.2.2,
//! RFC 4616, RFC 4959 SASL-IR); AUTHENTICATE SCRAM-SHA-1 / SCRAM-SHA-256 is `auth_scram`.
//!
//! Plaintext credentials are refused (`LOGINDISABLED` advertised, RFC 3501 §6.2.3) on a
//! connection that is neither TLS nor from a loopback peer, unless `--allow-plaintext-auth`.
//!
//! A failed login costs the client `Limits::failed_login_delay`, and the answer is the same
//! whether or not the user exists (no user enumeration).

use super::{Action, HandlerError, Output, Pending, Session, State};
use crate::auth::scram::Algorithm;
use crate::auth::User;
use crate::store::UserStore;
use base64::Engine;

impl Session {
    /// STARTTLS (RFC 3501 §6.2.1, RFC 2595 §3.1): the tagged OK, then the connection runs the
    /// handshake ([`Action::StartTls`]).
    pub(super) fn starttls(&mut self, tag: &str) -> Result<Output, HandlerError> {
        if self.tls {
            return Err(HandlerError::Bad("TLS is already active.".into()));
        }
        if !self.shared.starttls {
            return Err(HandlerError::Bad(
                "STARTTLS is not available (no TLS certificate configured).".into(),
            ));
        }
        Ok(Output {
            bytes: format!("{tag} OK Begin TLS negotiation now.\r\n").into_bytes(),
            action: Action::StartTls,
        })
    }

    /// True while an AUTHENTICATE waits for the client's answer to a `+ ` challenge (an
    /// empty line is then a response, RFC 3501 §6.2.2).
    pub fn awaits_response(&self) -> bool {
        matches!(
            self.pending,
            Pending::AuthPlain { .. } | Pending::Scram { .. }
        )
    }

    pub(super) fn login(
        &mut self,
        tag: &str,
        user: &str,
        password: &[u8],
    ) -> Result<Output, HandlerError> {
        if !self.plaintext_ok() {
            return Err(HandlerError::No(
                "[PRIVACYREQUIRED] Plaintext authentication is disabled on non-secure connections."
                    .into(),
            ));
        }
        self.verify_and_enter(tag, user.to_string(), password.to_vec())
    }

    pub(super) fn authenticate(
        &mut self,
        tag: &str,
        mechanism: &str,
        initial: Option<String>,
    ) -> Result<Output, HandlerError> {
        if let Some(algo) = Algorithm::from_name(mechanism) {
            // Not a plaintext mechanism: allowed where LOGINDISABLED is (as in Dovecot).
            return self.scram_start(tag, algo, initial);
        }
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return Err(HandlerError::No(format!(
                "[CANNOT] Unsupported authentication mechanism {mechanism}."
            )));
        }
        if !self.plaintext_ok() {
            return Err(HandlerError::No(
                "[PRIVACYREQUIRED] Plaintext authentication is disabled on non-secure connections."
                    .into(),
            ));
        }
        match initial {
            Some(ir) => self.auth_plain_response(tag, ir.as_bytes()),
            None => {
                self.pending = Pending::AuthPlain {
                    tag: tag.to_string(),
                };
                Ok(Output {
                    bytes: b"+ \r\n".to_vec(),
                    action: Action::Continue,
                })
            }
        }
    }

    /// The client's line after our `+ ` continuation.
    pub(super) fn auth_plain_continue(&mut self, tag: String, line: &[u8]) -> Output {
        self.sasl_answer(tag, line, |s, tag, line| s.auth_plain_response(tag, line))
    }

    /// The client's (CRLF-trimmed) `line` answering a `+ ` challenge of AUTHENTICATE `tag`:
    /// `*` cancels it (RFC 3501 §6.2.2), anything else goes to `step`; its errors become the
    /// tagged BAD or NO.
    pub(super) fn sasl_answer(
        &mut self,
        tag: String,
        line: &[u8],
        step: impl FnOnce(&mut Self, &str, &[u8]) -> Result<Output, HandlerError>,
    ) -> Output {
        let line = trim_crlf(line);
        let result = if line == b"*" {
            Err(HandlerError::Bad("Authentication cancelled.".into()))
        } else {
            step(self, &tag, line)
        };
        match result {
            Ok(o) => o,
            Err(HandlerError::Bad(r)) => self.bad(&tag, &r),
            Err(HandlerError::No(t)) => Output {
                bytes: format!("{tag} NO {t}\r\n").into_bytes(),
                action: Action::Continue,
            },
        }
    }

    fn auth_plain_response(&mut self, tag: &str, b64: &[u8]) -> Result<Output, HandlerError> {
        let decoded = decode_response(b64)?;
        // RFC 4616: [authzid] NUL authcid NUL passwd
        let mut parts = decoded.split(|&b| b == 0);
        let (authz, authc, pass) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(z), Some(c), Some(p), None) => (z, c, p),
            _ => {
                return Err(HandlerError::Bad(
                    "Invalid AUTHENTICATE PLAIN response.".into(),
                ))
            }
        };
        let authc = String::from_utf8(authc.to_vec())
            .map_err(|_| HandlerError::Bad("User name is not UTF-8.".into()))?;
        if !authz.is_empty() && authz != authc.as_bytes() {
            // Master-user / proxy authorization is not supported.
            self.fail_delay();
            return Err(HandlerError::No(
                "[AUTHORIZATIONFAILED] Authorization as another user is not allowed.".into(),
            ));
        }
        self.verify_and_enter(tag, authc, pass.to_vec())
    }

    /// Per-address back-off, growing with recent failures (limits::FailedLogins). The
    /// connection waits it out before writing the answer ([`Session::take_delay`]), off the
    /// thread that ran the command.
    pub(super) fn fail_delay(&mut self) {
        crate::metrics::global().login(false);
        self.delay = Some(self.shared.limits.failed_login(self.peer.ip()));
    }

    fn verify_and_enter(
        &mut self,
        tag: &str,
        user: String,
        password: Vec<u8>,
    ) -> Result<Output, HandlerError> {
        let users = self.shared.users.clone();
        let found = users.authenticate(&user, &password);
        let Some(entry) = found else {
            log::info!("{}: login failed user={user:?}", self.peer);
            self.fail_delay();
            return Err(HandlerError::No(
                "[AUTHENTICATIONFAILED] Authentication failed.".into(),
            ));
        };
        self.enter(tag, entry)
    }

    /// Log `entry` in (its password or proof checked): open its Maildir, then the tagged OK.
    pub(super) fn enter(&mut self, tag: &str, entry: User) -> Result<Output, HandlerError> {
        let user = entry.name.clone();
        let root = match self
            .shared
            .mail_location
            .resolve(&entry.name, entry.home.as_deref())
        {
            Ok(r) => r,
            Err(e) => {
                log::error!("{}: login user={user:?}: {e}", self.peer);
                return Err(HandlerError::No(
                    "[UNAVAILABLE] Mailbox configuration error; see the server log.".into(),
                ));
            }
        };
        let new_user = !root.join("cur").exists();
        let store = match UserStore::open(&root) {
            Ok(s) => s,
            Err(e) => {
                log::error!(
                    "{}: login user={user:?}: opening {}: {e}",
                    self.peer,
                    root.display()
                );
                return Err(HandlerError::No(
                    "[UNAVAILABLE] Mail storage is unavailable; see the server log.".into(),
                ));
            }
        };
        if new_user && self.shared.autocreate_folders {
            // RFC 6154 folders for a new user, as Dovecot's `auto = subscribe` would.
            match super::special_use::autocreate(&store) {
                Ok(()) => log::info!(
                    "{}: created the special-use folders for new user {}",
                    self.peer,
                    entry.name
                ),
                Err(e) => log::warn!(
                    "{}: user {}: creating special-use folders: {e}",
                    self.peer,
                    entry.name
                ),
            }
        }
        log::info!("{}: login ok user={}", self.peer, entry.name);
        crate::metrics::global().login(true);
        self.state = State::Authenticated {
            user: entry.name,
            store,
        };
        Ok(Output {
            bytes: format!(
                "{tag} OK [CAPABILITY {}] Logged in.\r\n",
                self.capabilities()
            )
            .into_bytes(),
            action: Action::Continue,
        })
    }
}

/// Decode a base64 SASL response (RFC 4959: a lone "=" is an empty initial response).
pub(super) fn decode_response(b64: &[u8]) -> Result<Vec<u8>, HandlerError> {
    if b64 == b"=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| HandlerError::Bad("Invalid base64 in AUTHENTICATE response.".into()))
}

pub(super) fn trim_crlf(mut s: &[u8]) -> &[u8] {
    while let Some((&last, rest)) = s.split_last() {
        if last == b'\n' || last == b'\r' {
            s = rest;
        } else {
            break;
        }
    }
    s
}
