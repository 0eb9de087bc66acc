//! AUTHENTICATE SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677, RFC 4959 SASL-IR): the IMAP
//! side of [`crate::auth::scram`].
//!
//! The client-first-message (SASL-IR or the answer to an empty `+ `) gets the server-first as
//! a `+ ` challenge; the client-final gets the server-final `v=` as another (RFC 3501 §6.2.2
//! has no success data in the tagged OK, so Dovecot does the same), and the client's response
//! (empty, RFC 4422 §3; Dovecot ignores what it holds, and so does this) then logs in. As in Dovecot: offered where plaintext authentication is disabled
//! (SCRAM never sends the password), every failure is a tagged `NO [AUTHENTICATIONFAILED]`
//! with the reason only in the log (no `e=`), and `*` cancels with `BAD` (RFC 3501 §6.2.2).
//! Unlike Dovecot, an unknown user goes through the whole exchange with made-up credentials
//! ([`crate::auth::UserDb::scram_credentials`]), so the answer does not tell who exists; every
//! failure costs the same back-off as a failed LOGIN.

use super::auth::decode_response;
use super::{Action, HandlerError, Output, Pending, Session};
use crate::auth::scram::{self, Algorithm, ClientFirst, Exchange, ScramError};
use crate::auth::User;
use base64::Engine as _;

/// Where an exchange stands, between two of the client's lines.
pub(super) enum Step {
    /// `+ ` sent (no SASL-IR): the client-first-message is next.
    First(Algorithm),
    /// server-first-message sent: the client-final-message is next.
    Final {
        algo: Algorithm,
        exchange: Box<Exchange>,
        /// The name the client gave (for the log).
        name: String,
        /// `None`: unknown, or a password SCRAM cannot use; the exchange fails at the proof.
        user: Option<User>,
    },
    /// server-final-message sent: the client's (empty) response is next.
    Done(User),
}

impl Session {
    pub(super) fn scram_start(
        &mut self,
        tag: &str,
        algo: Algorithm,
        initial: Option<String>,
    ) -> Result<Output, HandlerError> {
        match initial {
            Some(ir) => {
                let msg = decode_response(ir.as_bytes())?;
                self.scram_first(tag, algo, &msg)
            }
            None => Ok(self.scram_challenge(tag, Step::First(algo), "")),
        }
    }

    /// The client's line after one of our `+ ` challenges.
    pub(super) fn scram_continue(&mut self, tag: String, step: Step, line: &[u8]) -> Output {
        self.sasl_answer(tag, line, |s, tag, line| {
            decode_response(line).and_then(|msg| s.scram_step(tag, step, &msg))
        })
    }

    fn scram_step(&mut self, tag: &str, step: Step, msg: &[u8]) -> Result<Output, HandlerError> {
        match step {
            Step::First(algo) => self.scram_first(tag, algo, msg),
            Step::Final {
                algo,
                exchange,
                name,
                user,
            } => {
                let server_final = exchange
                    .finish(msg)
                    .map_err(|e| self.scram_failed(algo, &name, e))?;
                let Some(user) = user else {
                    let why = ScramError("unknown user, or a password SCRAM cannot use");
                    return Err(self.scram_failed(algo, &name, why));
                };
                Ok(self.scram_challenge(tag, Step::Done(user), &server_final))
            }
            // The proof is already checked; only `*` (above) or bad base64 stop it now.
            Step::Done(user) => self.enter(tag, user),
        }
    }

    /// The client-first-message: look the user up and send the server-first-message.
    fn scram_first(
        &mut self,
        tag: &str,
        algo: Algorithm,
        msg: &[u8],
    ) -> Result<Output, HandlerError> {
        let first = ClientFirst::parse(msg).map_err(|e| self.scram_failed(algo, "", e))?;
        if first.authzid.as_ref().is_some_and(|a| *a != first.username) {
            // Master-user / proxy authorization is not supported (as with PLAIN).
            log::info!(
                "{}: login failed user={:?}: {} authzid names another user",
                self.peer,
                first.username,
                algo.name()
            );
            self.fail_delay();
            return Err(HandlerError::No(
                "[AUTHORIZATIONFAILED] Authorization as another user is not allowed.".into(),
            ));
        }
        let nonce = scram::server_nonce().map_err(|e| {
            log::error!("{}: {}: {e}", self.peer, algo.name());
            HandlerError::No(
                "[UNAVAILABLE] Authentication is unavailable; see the server log.".into(),
            )
        })?;
        let (user, creds) = self.shared.users.scram_credentials(&first.username, algo);
        let exchange = Exchange::start(algo, &first, creds, &nonce);
        let challenge = exchange.server_first().to_string();
        let step = Step::Final {
            algo,
            exchange: Box::new(exchange),
            name: first.username,
            user,
        };
        Ok(self.scram_challenge(tag, step, &challenge))
    }

    /// Send `+ base64(challenge)` and wait for the client's next line.
    fn scram_challenge(&mut self, tag: &str, step: Step, challenge: &str) -> Output {
        self.pending = Pending::Scram {
            tag: tag.to_string(),
            step: Box::new(step),
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(challenge);
        Output {
            bytes: format!("+ {b64}\r\n").into_bytes(),
            action: Action::Continue,
        }
    }

    /// Log why, start the back-off, and answer like any failed login.
    fn scram_failed(&mut self, algo: Algorithm, name: &str, why: ScramError) -> HandlerError {
        log::info!(
            "{}: login failed user={name:?}: {}: {why}",
            self.peer,
            algo.name()
        );
        self.fail_delay();
        HandlerError::No("[AUTHENTICATIONFAILED] Authentication failed.".into())
    }
}
