//! NOTIFY (RFC 5465): which mailboxes the client wants to hear about, and the unsolicited
//! responses that tell it, during IDLE and between commands.
//!
//! Owns: validating `NOTIFY SET` (events the server cannot report are refused with
//! `NO [BADEVENT ...]`), the `STATUS` indicator, and [`Notify`]: what the client was last
//! told of each watched mailbox (its STATUS numbers), of the mailbox names and of the
//! subscriptions, so that a wake-up is turned into exactly the responses that differ:
//! `* STATUS` for another mailbox's new, expunged or re-flagged messages, `* LIST` for a
//! created, deleted or renamed mailbox and for a (un)subscription. The selected mailbox gets
//! its usual EXISTS / EXPUNGE / FETCH (`view`), plus the FETCH attributes MessageNew asked
//! for (`notify_push`).
//!
//! Changes are noticed through the store's process-wide inotify hub
//! (`store::maildir::wake`): the watcher covers new/ and cur/ of every watched mailbox and the
//! Maildir root (folders are created, deleted and renamed there, and the subscriptions file
//! lives there), so deliveries by Dovecot, an MDA or the S3 sync are seen like this server's
//! own. Cost: two inotify watches per watched mailbox plus the root, shared by every session
//! of the process (the kernel returns the same descriptor for the same directory), so 500
//! folders under `PERSONAL` cost about 1,000 watches however many sessions ask; each session
//! keeps a small map entry per directory and its last-told numbers per mailbox.

use super::{Action, HandlerError, Output, Session, State};
use crate::imap::types::{NotifyEvent, NotifyFilter, NotifyGroup, NotifySet};
use crate::imap::utf7;
use crate::store::maildir::name::is_descendant;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Responses one wake-up may produce before the client is told it missed some
/// (`* OK [NOTIFICATIONOVERFLOW]`, RFC 5465) and notifications stop: keeps what a
/// slow client makes the server hold bounded.
pub(super) const MAX_BACKLOG: usize = 1000;

/// What a STATUS notification reports about a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Snap {
    pub messages: u32,
    pub uid_next: u32,
    pub uid_validity: u32,
    pub unseen: u32,
    /// 0 unless CONDSTORE is enabled.
    pub highest_modseq: u64,
}

/// One session's NOTIFY state (RFC 5465 §3.1).
pub(super) struct Notify {
    pub groups: Vec<NotifyGroup>,
    /// Last numbers told (or seen at NOTIFY SET) per watched non-selected mailbox.
    pub told: BTreeMap<String, Snap>,
    /// The mailboxes whose UIDVALIDITY the client was told (by NOTIFY SET STATUS or an
    /// earlier notification): later STATUS notifications leave it out unless it changes.
    pub validity_told: BTreeSet<String>,
    /// Existing mailboxes, as last seen, with their identity (device and inode: a rename
    /// keeps it, see `UserStore::mailbox_identity`).
    pub names: BTreeMap<String, Option<(u64, u64)>>,
    /// Subscriptions, as last seen.
    pub subscribed: BTreeSet<String>,
    /// The directories the watcher covers, and the mailbox each one belongs to (`None`:
    /// the Maildir root, where names and subscriptions change).
    pub watched: Vec<(PathBuf, Option<String>)>,
    /// Mailboxes (and `pending_root`: names and subscriptions) read before a watcher covered
    /// them: a change in between fires nothing, so the first look after arming compares
    /// them anyway (moved to `recheck` when the watcher is made).
    pub pending: BTreeSet<String>,
    pub pending_root: bool,
    pub recheck: BTreeSet<String>,
    pub recheck_root: bool,
    /// Which watched directories changed (from the watcher the connection holds).
    #[cfg(target_os = "linux")]
    pub changes: Option<crate::store::maildir::wake::Changes>,
}

/// True for the events this server can report. AnnotationChange needs ANNOTATE (not
/// implemented); the two METADATA events need METADATA (RFC 5464): when METADATA is added,
/// accept them here and report changes from its store in `Session::notify_sync`.
fn supported(ev: &NotifyEvent) -> bool {
    !matches!(
        ev,
        NotifyEvent::AnnotationChange
            | NotifyEvent::MailboxMetadataChange
            | NotifyEvent::ServerMetadataChange
    )
}

fn is_selected_filter(f: &NotifyFilter) -> bool {
    matches!(f, NotifyFilter::Selected | NotifyFilter::SelectedDelayed)
}

fn message_events(events: &[NotifyEvent]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            NotifyEvent::MessageNew(_) | NotifyEvent::MessageExpunge | NotifyEvent::FlagChange
        )
    })
}

impl Notify {
    /// A watcher now covers what was read before: look at it once more at the next diff.
    pub fn armed(&mut self) {
        self.recheck.append(&mut self.pending);
        self.recheck_root |= std::mem::take(&mut self.pending_root);
    }

    /// The events of the first non-selected group whose filter covers `name`.
    pub fn events_for(&self, name: &str) -> Option<&[NotifyEvent]> {
        self.groups
            .iter()
            .find(|g| covers(&g.filter, name, &self.subscribed))
            .map(|g| g.events.as_slice())
    }

    /// True if some non-selected group covering `name` wants `want`.
    pub fn wants(&self, name: &str, want: fn(&NotifyEvent) -> bool) -> bool {
        self.events_for(name).is_some_and(|e| e.iter().any(want))
    }

    /// Watched for its messages: covered by a group with message events.
    pub fn watches_messages(&self, name: &str) -> bool {
        self.events_for(name).is_some_and(message_events)
    }

    /// The group for the selected mailbox, if any.
    pub fn selected_group(&self) -> Option<&NotifyGroup> {
        self.groups.iter().find(|g| is_selected_filter(&g.filter))
    }

    /// True if any group wants events about names or subscriptions (the root is watched).
    pub fn wants_root(&self) -> bool {
        self.groups.iter().any(|g| {
            g.events.iter().any(|e| {
                matches!(
                    e,
                    NotifyEvent::MailboxName | NotifyEvent::SubscriptionChange
                )
            }) || matches!(g.filter, NotifyFilter::Subscribed)
        })
    }
}

/// Does a non-selected filter cover `name`? INBOXES is INBOX: the only mailbox mail is
/// delivered to.
fn covers(f: &NotifyFilter, name: &str, subscribed: &BTreeSet<String>) -> bool {
    match f {
        NotifyFilter::Selected | NotifyFilter::SelectedDelayed => false,
        NotifyFilter::Inboxes => name == "INBOX",
        NotifyFilter::Personal => true,
        NotifyFilter::Subscribed => subscribed.contains(name),
        NotifyFilter::Subtree(roots) => roots.iter().any(|r| r == name || is_descendant(r, name)),
        NotifyFilter::Mailboxes(names) => names.iter().any(|n| n == name),
    }
}

impl Session {
    /// `NOTIFY NONE` / `NOTIFY SET` (RFC 5465 §3).
    pub(super) fn notify(
        &mut self,
        tag: &str,
        set: Option<NotifySet>,
    ) -> Result<Output, HandlerError> {
        let mut out = Vec::new();
        match set {
            None => self.notify = None,
            Some(set) => self.notify_set(set, &mut out)?,
        }
        out.extend_from_slice(format!("{tag} OK NOTIFY completed.\r\n").as_bytes());
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }

    fn notify_set(&mut self, set: NotifySet, out: &mut Vec<u8>) -> Result<(), HandlerError> {
        // RFC 5465 §3.1: refused as a whole, naming what cannot be reported.
        let mut bad: Vec<&'static str> = Vec::new();
        for ev in set.groups.iter().flat_map(|g| &g.events) {
            if !supported(ev) && !bad.contains(&ev.name()) {
                bad.push(ev.name());
            }
        }
        if !bad.is_empty() {
            return Err(HandlerError::No(format!(
                "[BADEVENT ({})] Unsupported NOTIFY events.",
                bad.join(" ")
            )));
        }
        let utf8 = self.enabled.utf8_names();
        let groups = set
            .groups
            .into_iter()
            .map(|g| NotifyGroup {
                filter: store_names(g.filter, utf8),
                events: g.events,
            })
            .collect();
        let mut n = Notify {
            groups,
            told: BTreeMap::new(),
            validity_told: BTreeSet::new(),
            pending: BTreeSet::new(),
            pending_root: true,
            recheck: BTreeSet::new(),
            recheck_root: false,
            names: BTreeMap::new(),
            subscribed: BTreeSet::new(),
            watched: Vec::new(),
            #[cfg(target_os = "linux")]
            changes: None,
        };
        let store = self.store()?;
        n.subscribed = store.subscriptions()?.into_iter().collect();
        n.names = existing(store)?;
        let selected = self.selected_name();
        // INBOX first, then by name (as LIST orders them).
        let mut order: Vec<String> = n.names.keys().cloned().collect();
        order.sort_by_key(|m| m != "INBOX");
        for name in order {
            if selected.as_deref() == Some(name.as_str()) || !n.watches_messages(&name) {
                continue;
            }
            // A mailbox that vanished meanwhile is told of by MailboxName, not here.
            let Ok(snap) = self.snap(&name) else { continue };
            if set.status {
                let flags = n.wants(&name, |e| matches!(e, NotifyEvent::FlagChange));
                self.put_status(out, &name, &snap, None, flags);
                n.validity_told.insert(name.clone());
            }
            n.told.insert(name, snap);
        }
        n.pending = n.told.keys().cloned().collect();
        n.watched = self.watch_list(&n);
        self.notify = Some(Box::new(n));
        Ok(())
    }

    /// The selected mailbox's name, if one is selected.
    pub(super) fn selected_name(&self) -> Option<String> {
        match &self.state {
            State::Selected { view, .. } => Some(view.name()),
            _ => None,
        }
    }

    /// The numbers a STATUS notification reports for `name` (HIGHESTMODSEQ only with
    /// CONDSTORE enabled).
    pub(super) fn snap(&self, name: &str) -> Result<Snap, HandlerError> {
        let mb = self.store()?.status_mailbox(name)?;
        let mut g = mb.lock();
        g.mbox.refresh()?;
        let st = g.mbox.status();
        let highest_modseq = match self.condstore_enabled() {
            true => g.modseqs()?.highest(),
            false => 0,
        };
        Ok(Snap {
            messages: st.messages,
            uid_next: st.uid_next,
            uid_validity: st.uid_validity,
            unseen: st.unseen,
            highest_modseq,
        })
    }

    /// `* STATUS name (...)`. `change`: `None` at NOTIFY SET STATUS (every item); for a
    /// change, what the client was told before: MESSAGES UIDNEXT UNSEEN, and UIDVALIDITY
    /// when it never heard it (`Some(None)`) or it changed. HIGHESTMODSEQ with CONDSTORE
    /// enabled, at NOTIFY SET only where flag changes are wanted (`flags`): the items
    /// Dovecot sends.
    pub(super) fn put_status(
        &self,
        out: &mut Vec<u8>,
        name: &str,
        s: &Snap,
        change: Option<Option<&Snap>>,
        flags: bool,
    ) {
        let mut items = format!("MESSAGES {} UIDNEXT {}", s.messages, s.uid_next);
        if change
            .flatten()
            .is_none_or(|b| b.uid_validity != s.uid_validity)
        {
            items.push_str(&format!(" UIDVALIDITY {}", s.uid_validity));
        }
        items.push_str(&format!(" UNSEEN {}", s.unseen));
        if self.condstore_enabled() && (change.is_some() || flags) {
            items.push_str(&format!(" HIGHESTMODSEQ {}", s.highest_modseq));
        }
        out.extend_from_slice(b"* STATUS ");
        self.put_name(out, name, false);
        out.extend_from_slice(format!(" ({items})\r\n").as_bytes());
    }

    /// The directories to watch: new/ and cur/ of each mailbox watched for its messages and
    /// of the selected one, and the root when names or subscriptions matter.
    pub(super) fn watch_list(&self, n: &Notify) -> Vec<(PathBuf, Option<String>)> {
        let Ok(store) = self.store() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if n.wants_root() {
            out.push((store.root().to_path_buf(), None));
        }
        let selected = self.selected_name();
        let names = n.names.keys().filter(|m| n.watches_messages(m));
        for name in names.chain(selected.as_ref()) {
            for dir in store.message_dirs(name).into_iter().flatten() {
                out.push((dir, Some(name.clone())));
            }
        }
        out
    }
}

/// A filter with its names turned from the client's UTF-8 into the store's modified UTF-7
/// (rev2 / UTF8=ACCEPT), INBOX case-folded.
fn store_names(f: NotifyFilter, utf8: bool) -> NotifyFilter {
    let conv = |names: Vec<String>| {
        names
            .into_iter()
            .map(|n| {
                let n = if utf8 { utf7::encode(&n) } else { n };
                super::normalize_mailbox(&n)
            })
            .collect()
    };
    match f {
        NotifyFilter::Subtree(n) => NotifyFilter::Subtree(conv(n)),
        NotifyFilter::Mailboxes(n) => NotifyFilter::Mailboxes(conv(n)),
        other => other,
    }
}

/// The mailboxes that exist (not the hierarchy levels that only have children), with
/// their identity.
pub(super) type Names = BTreeMap<String, Option<(u64, u64)>>;

/// Reading a directory while another process renames in it may miss the entry under both
/// names: the listing is read until two in a row agree (three tries), so that a rename is not
/// told as a delete and a create.
pub(super) fn existing(store: &crate::store::UserStore) -> Result<Names, HandlerError> {
    let mut last = list_once(store)?;
    for _ in 0..2 {
        let again = list_once(store)?;
        if again == last {
            break;
        }
        last = again;
    }
    Ok(last)
}

fn list_once(store: &crate::store::UserStore) -> Result<Names, HandlerError> {
    Ok(store
        .list()?
        .into_iter()
        .filter(|e| !e.nonexistent)
        .map(|e| {
            let id = store.mailbox_identity(&e.name);
            (e.name, id)
        })
        .collect())
}
