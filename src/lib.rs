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
//! An open mailbox is one `store::maildir::shared::Shared` state for the whole process:
//! sessions of the same mailbox share its messages, flags and mod-sequences, and each keeps
//! only a small `session::view::View` (sequence numbers, `\Recent`, pending expunges) that it
//! brings up to date from the mailbox's change log. Other processes' changes reach that state
//! by file name from inotify (`store::maildir::watch`).
//!
//! Dependencies between the top-level modules flow one way (`tests/module_graph.rs` fails on a
//! cycle):
//!
//! ```text
//!  cli ──▶ config, net, sync, privdrop, auth, limits   (clap types stop here)
//!  net ──▶ session, config, auth, imap, metrics, privdrop, limits
//!  session ──▶ store, imap, mime, auth, config, metrics, limits
//!  sync ──▶ store, auth, config, metrics
//!  config ──▶ auth, limits, privdrop;   mime ──▶ imap;   imap ──▶ limits
//! ```
//!
//! `sync` writes mail only through the store's delivery functions (`store::deliver_from_reader`,
//! `store::deliver_link`: tmp/, fsync, rename into new/); it reads the users file with `auth`,
//! resolves each user's Maildir with `config::MailLocation`, and creates a missing Maildir or
//! Maildir++ folder (cur/new/tmp, `maildirfolder`) itself. `imap`, `mime` and the parsers in
//! `auth` and `store` are pure (no I/O).

#![forbid(unsafe_code)]

pub mod auth;
pub mod backup;
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
