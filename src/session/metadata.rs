//! GETMETADATA and SETMETADATA (RFC 5464): per-user entries of a mailbox or of the server
//! (mailbox `""`), kept in Dovecot's file ([`attributes`]), answered as Dovecot 2.3 does.
//!
//! `/private` and `/shared` are two separate sets of entries, as in Dovecot: a single-user
//! server has nobody to share with, but a client that writes `/shared/x` reads it back there
//! (and from Dovecot, on the same Maildir). Dovecot's own entries
//! (`vendor/vendor.dovecot/pvt...`) can be neither read nor set. `[METADATA NOPRIVATE]` is
//! never sent: private entries are always kept. Only `METADATA` is advertised, as Dovecot
//! does: it includes `METADATA-SERVER`'s server entries (RFC 5464 §1).
//!
//! Limits (Dovecot 2.3 has none; these keep one command from growing the file, which every
//! change rewrites, without bound): a value of at most [`MAX_VALUE`] bytes
//! (`[METADATA MAXSIZE n]`), at most [`MAX_ENTRIES`] entries per mailbox and the server, and a
//! file of at most [`MAX_FILE`] bytes (`[METADATA TOOMANY]`). A change that removes entries is
//! always accepted, also in a file that is over the limits already (written by Dovecot).

use super::{normalize_mailbox, Action, HandlerError, Output, Session};
use crate::imap::encode;
use crate::imap::types::{Command, MetadataDepth};
use crate::store::maildir::attributes::{self, Entries, INTERNAL_PREFIX, SERVER_PREFIX};
use crate::store::UserStore;

/// Largest value SETMETADATA stores, bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Most entries (`/private` and `/shared` together) of one mailbox, or of the server.
pub const MAX_ENTRIES: usize = 256;
/// Largest entries file SETMETADATA makes, bytes (names and values).
pub const MAX_FILE: usize = 1024 * 1024;

/// Where one mailbox's (or the server's) entries are among the file's keys.
struct Scope {
    private: Vec<u8>,
    shared: Vec<u8>,
}

impl Scope {
    fn of(store: &UserStore, mailbox: &str) -> Result<Scope, HandlerError> {
        let server = mailbox.is_empty();
        let guid = store.mailbox_guid(if server { "INBOX" } else { mailbox })?;
        let prefix = |private| {
            let mut p = attributes::mailbox_prefix(private, &guid);
            if server {
                p.extend_from_slice(SERVER_PREFIX.as_bytes());
            }
            p
        };
        Ok(Scope {
            private: prefix(true),
            shared: prefix(false),
        })
    }

    /// The key prefix of an entry name (checked by the parser) and the part of the name
    /// below `/private` or `/shared` (`""` for the prefix itself); `None`: one of Dovecot's
    /// internal entries.
    fn split<'a>(&self, entry: &'a str) -> Option<(&[u8], &'a str)> {
        let (base, rest) = match entry.strip_prefix("/private") {
            Some(rest) => (&self.private, rest),
            None => (&self.shared, entry.strip_prefix("/shared").unwrap_or(entry)),
        };
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        (!rest.starts_with(INTERNAL_PREFIX)).then_some((base.as_slice(), rest))
    }

    fn key(&self, entry: &str) -> Option<Vec<u8>> {
        let (base, rest) = self.split(entry)?;
        Some([base, rest.as_bytes()].concat())
    }

    fn count(&self, entries: &Entries) -> usize {
        [&self.private, &self.shared]
            .iter()
            .map(|p| {
                entries
                    .range(p.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(p))
                    .filter(|(k, _)| !k[p.len()..].starts_with(INTERNAL_PREFIX.as_bytes()))
                    .count()
            })
            .sum()
    }
}

/// What GETMETADATA found: `(entry name, value)` in order, and the longest value left out.
#[derive(Default)]
struct Found {
    items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    longest_skipped: Option<usize>,
}

impl Found {
    fn add(&mut self, name: Vec<u8>, value: Option<&Vec<u8>>, max_size: Option<u32>) {
        if let (Some(v), Some(max)) = (value, max_size) {
            if v.len() > max as usize {
                self.longest_skipped = self.longest_skipped.max(Some(v.len()));
                return;
            }
        }
        self.items.push((name, value.cloned()));
    }
}

/// Look up one requested entry (and, with a DEPTH, the entries below it) in `all`.
fn lookup(
    found: &mut Found,
    all: &Entries,
    scope: &Scope,
    entry: &str,
    depth: MetadataDepth,
    max_size: Option<u32>,
) {
    let Some((base, rest)) = scope.split(entry) else {
        if depth == MetadataDepth::Zero {
            found.add(entry.as_bytes().to_vec(), None, None);
        }
        return;
    };
    let value = (!rest.is_empty())
        .then(|| all.get(&[base, rest.as_bytes()].concat()))
        .flatten();
    if value.is_some() || depth == MetadataDepth::Zero {
        found.add(entry.as_bytes().to_vec(), value, max_size);
    }
    if depth == MetadataDepth::Zero {
        return;
    }
    let below = if rest.is_empty() {
        base.to_vec()
    } else {
        [base, rest.as_bytes(), b"/"].concat()
    };
    let top = if base == scope.private.as_slice() {
        "/private/"
    } else {
        "/shared/"
    };
    for (k, v) in all.range(below.clone()..) {
        let Some(tail) = k.strip_prefix(below.as_slice()) else {
            break;
        };
        let rel = &k[base.len()..];
        if rel.starts_with(INTERNAL_PREFIX.as_bytes())
            || (depth == MetadataDepth::One && tail.contains(&b'/'))
        {
            continue;
        }
        found.add([top.as_bytes(), rel].concat(), Some(v), max_size);
    }
}

impl Session {
    /// GETMETADATA / SETMETADATA, in the authenticated and selected states.
    pub(super) fn metadata_command(
        &mut self,
        tag: &str,
        command: Command,
    ) -> Result<Output, HandlerError> {
        let bytes = match command {
            Command::GetMetadata {
                mailbox,
                entries,
                max_size,
                depth,
            } => self.getmetadata(tag, &mailbox, &entries, max_size, depth)?,
            Command::SetMetadata { mailbox, entries } => {
                self.setmetadata(tag, &mailbox, &entries)?
            }
            other => {
                return Err(HandlerError::Bad(format!(
                    "{} is not a METADATA command",
                    other.name()
                )))
            }
        };
        Ok(Output {
            bytes,
            action: Action::Continue,
        })
    }

    fn getmetadata(
        &self,
        tag: &str,
        mailbox: &str,
        entries: &[String],
        max_size: Option<u32>,
        depth: MetadataDepth,
    ) -> Result<Vec<u8>, HandlerError> {
        let name = normalize_mailbox(mailbox);
        let store = self.store()?;
        let scope = Scope::of(store, &name)?;
        let all = store.attributes()?;
        let mut found = Found::default();
        for entry in entries {
            lookup(&mut found, &all, &scope, entry, depth, max_size);
        }
        let mut out = Vec::new();
        if !found.items.is_empty() {
            out.extend_from_slice(b"* METADATA ");
            self.put_name(&mut out, &name, false);
            out.extend_from_slice(b" (");
            for (i, (entry, value)) in found.items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                encode::astring(&mut out, entry);
                out.push(b' ');
                match value {
                    // Always a literal, as Dovecot sends them.
                    Some(v) => {
                        out.extend_from_slice(format!("{{{}}}\r\n", v.len()).as_bytes());
                        out.extend_from_slice(v);
                    }
                    None => out.extend_from_slice(b"NIL"),
                }
            }
            out.extend_from_slice(b")\r\n");
        }
        let code = found
            .longest_skipped
            .map(|n| format!("[METADATA LONGENTRIES {n}] "))
            .unwrap_or_default();
        out.extend_from_slice(format!("{tag} OK {code}Getmetadata completed.\r\n").as_bytes());
        Ok(out)
    }

    fn setmetadata(
        &self,
        tag: &str,
        mailbox: &str,
        entries: &[(String, Option<Vec<u8>>)],
    ) -> Result<Vec<u8>, HandlerError> {
        let name = normalize_mailbox(mailbox);
        let store = self.store()?;
        let scope = Scope::of(store, &name)?;
        let mut changes = Vec::with_capacity(entries.len());
        for (entry, value) in entries {
            if let Some(v) = value {
                if v.contains(&0) {
                    return Err(HandlerError::No(
                        "[CANNOT] Attribute string value has NULs.".into(),
                    ));
                }
                if v.len() > MAX_VALUE {
                    return Err(HandlerError::No(format!(
                        "[METADATA MAXSIZE {MAX_VALUE}] Entry value is too large."
                    )));
                }
            }
            let Some(key) = scope.key(entry) else {
                return Err(HandlerError::No(
                    "[CANNOT] Internal mailbox attributes cannot be accessed.".into(),
                ));
            };
            changes.push((key, value.as_ref()));
        }
        let applied = store.update_attributes(|all| apply(all, &scope, &changes))?;
        if applied.is_err() {
            return Err(HandlerError::No(
                "[METADATA TOOMANY] Too many entries, or too much data in them.".into(),
            ));
        }
        Ok(format!("{tag} OK Setmetadata completed.\r\n").into_bytes())
    }
}

/// Apply SETMETADATA's changes; `Err` (nothing changed) if that would cross a limit that
/// the entries were within, or grow them further past it.
fn apply(
    all: &mut Entries,
    scope: &Scope,
    changes: &[(Vec<u8>, Option<&Vec<u8>>)],
) -> Result<bool, ()> {
    let size = |e: &Entries| e.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>();
    let (count_before, size_before) = (scope.count(all), size(all));
    let mut next = all.clone();
    for (key, value) in changes {
        match value {
            Some(v) => next.insert(key.clone(), v.to_vec()),
            None => next.remove(key),
        };
    }
    let (count, size_after) = (scope.count(&next), size(&next));
    if (count > MAX_ENTRIES && count > count_before)
        || (size_after > MAX_FILE && size_after > size_before)
    {
        return Err(());
    }
    let changed = next != *all;
    *all = next;
    Ok(changed)
}
