//! pimap: an IMAP server over Dovecot-compatible Maildir, with a built-in S3 (SES) sync,
//! in one static binary for a Raspberry Pi.
//!
//! # Data flow
//!
//! ```text
//!  client ──TCP──▶ net::conn ──bytes──▶ imap::framing ──command──▶ imap::parse
//!                     ▲                                              │ TaggedCommand
//!                     │ response bytes                               ▼
//!                     └──────────────────────────────── session ──▶ store::maildir ◀── sync (S3 → new/)
//!                                                          │   ▲
//!                                                     auth │   │ mime (ENVELOPE, BODYSTRUCTURE, SEARCH)
//! ```
//!
//! Big messages bypass memory: the framer passes an APPEND literal over 64 KiB out in pieces,
//! which `net::conn` writes to a `store::Spool` file in `tmp/`; FETCH sends big bodies from
//! the message file through a bounded `session::Sink` that `net::conn` drains while the
//! command runs.
//!
//! Dependencies flow one way: `net → session → (imap, store, auth, mime)`; `sync` uses only the
//! store's delivery API. `imap`, `mime` and the parsers in `auth` and `store` are pure (no I/O).

#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod imap;
pub mod limits;
pub mod metrics;
pub mod mime;
pub mod net;
pub mod privdrop;
pub mod session;
pub mod store;
pub mod sync;
