//! NOTIFY delivery (RFC 5465): after a wake-up from the watcher (`idle::Watcher`), turn
//! what changed into unsolicited responses. Owns: comparing the watched mailboxes, names
//! and subscriptions with what the client was last told (`notify::Notify`), and the
//! MessageNew FETCH for the selected mailbox. Never: touches the socket (`net::conn` writes
//! what [`Session::notify_sync`] returns, during IDLE or between commands).

use super::notify::{existing, Names, Notify, MAX_BACKLOG};
use super::{HandlerError, Session, State};
use crate::imap::types::{Command, NotifyEvent, NotifyFilter, SeqNum, SeqRange, SequenceSet};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

/// The tag of the FETCH run for MessageNew; its tagged line is dropped.
const FETCH_TAG: &str = "NOTIFY-FETCH";

impl Session {
    /// NOTIFY is active: the connection keeps a watcher armed between commands.
    pub fn notify_active(&self) -> bool {
        self.notify.is_some()
    }

    /// Identifies the directories the watcher must cover: when it changes, the connection
    /// asks for a new [`Session::watcher`]. `None` without NOTIFY.
    pub fn watch_key(&self) -> Option<u64> {
        let n = self.notify.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        n.watched.hash(&mut h);
        self.selected_name().hash(&mut h);
        Some(h.finish())
    }

    /// The directories a NOTIFY watcher covers: the watched ones and, so that IDLE keeps
    /// working as before, the selected mailbox's.
    pub(super) fn notify_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = match &self.notify {
            Some(n) => n.watched.iter().map(|(p, _)| p.clone()).collect(),
            None => Vec::new(),
        };
        if let State::Selected { view, .. } = &self.state {
            let dir = view.lock().mbox.path().to_path_buf();
            paths.extend([dir.join("new"), dir.join("cur"), dir]);
        }
        paths
    }

    /// Between commands: what changed in the watched mailboxes, names and subscriptions,
    /// and in the selected mailbox when a SELECTED filter asks for it.
    pub fn notify_sync(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some((events, delayed)) = self.selected_events() {
            self.push_selected(&mut out, !delayed, &events);
        }
        self.notify_others(&mut out);
        out
    }

    /// The selected mailbox's events under NOTIFY (`None`: no SELECTED filter, or no
    /// NOTIFY), and whether expunges wait for a command (SELECTED-DELAYED).
    pub(super) fn selected_events(&self) -> Option<(Vec<NotifyEvent>, bool)> {
        let g = self.notify.as_ref()?.selected_group()?;
        if g.events.is_empty() || !matches!(self.state, State::Selected { .. }) {
            return None;
        }
        let delayed = matches!(g.filter, NotifyFilter::SelectedDelayed);
        Some((g.events.clone(), delayed))
    }

    /// Bring the selected mailbox up to date into `out`, then send the FETCH attributes
    /// MessageNew asked for about the new messages.
    pub(super) fn push_selected(
        &mut self,
        out: &mut Vec<u8>,
        allow_expunge: bool,
        events: &[NotifyEvent],
    ) {
        let State::Selected { view, .. } = &mut self.state else {
            return;
        };
        let before = view.exists();
        if let Err(e) = view.sync(out, allow_expunge) {
            log::warn!(
                "{}: NOTIFY sync of the selected mailbox failed: {e}",
                self.peer
            );
            return;
        }
        let after = view.exists();
        view.begin_command(); // all of it is sent now
        let items = events.iter().find_map(|e| match e {
            NotifyEvent::MessageNew(items) if !items.is_empty() => Some(items.clone()),
            _ => None,
        });
        let (Some(items), true) = (items, after > before) else {
            return;
        };
        let seq = |n: usize| SeqNum::Value(u32::try_from(n).unwrap_or(u32::MAX));
        let cmd = Command::Fetch {
            uid: false,
            set: SequenceSet::Ranges(vec![SeqRange {
                start: seq(before + 1),
                end: seq(after),
            }]),
            items,
            changed_since: None,
            vanished: false,
        };
        match self.fetch(FETCH_TAG, cmd) {
            Ok(o) => out.extend_from_slice(strip_tagged(&o.bytes)),
            Err(HandlerError::Bad(t) | HandlerError::No(t)) => {
                log::warn!("{}: NOTIFY MessageNew FETCH failed: {t}", self.peer);
            }
        }
        if let State::Selected { view, .. } = &mut self.state {
            view.begin_command();
        }
    }

    /// STATUS and LIST responses for everything but the selected mailbox; past
    /// [`MAX_BACKLOG`] responses, `NOTIFICATIONOVERFLOW` and notifications stop.
    pub(super) fn notify_others(&mut self, out: &mut Vec<u8>) {
        let Some(mut n) = self.notify.take() else {
            return;
        };
        let mut mine = Vec::new();
        if let Err(HandlerError::Bad(t) | HandlerError::No(t)) = self.notify_diff(&mut n, &mut mine)
        {
            log::warn!("{}: NOTIFY update failed: {t}", self.peer);
        }
        let lines = mine.iter().filter(|&&b| b == b'\n').count();
        if lines > MAX_BACKLOG {
            // RFC 5465: the client must resynchronise; the server acts as after NONE.
            out.extend_from_slice(
                b"* OK [NOTIFICATIONOVERFLOW] Too many changes; notifications are off.\r\n",
            );
            return;
        }
        out.extend_from_slice(&mine);
        self.notify = Some(n);
    }

    fn notify_diff(&self, n: &mut Notify, out: &mut Vec<u8>) -> Result<(), HandlerError> {
        #[cfg(target_os = "linux")]
        let changed = n.changes.as_ref().map(|c| c.take());
        #[cfg(not(target_os = "linux"))]
        let changed: Option<crate::store::maildir::wake::Changed> = None;
        log::debug!(
            "{}: NOTIFY wake-up, {} director(ies) changed{}",
            self.peer,
            changed.as_ref().map_or(0, |c| c.paths.len()),
            match changed.as_ref().is_none_or(|c| c.all) {
                true => " (or all)",
                false => "",
            }
        );
        // Without a watcher (polling), look at everything.
        let all = changed.as_ref().is_none_or(|c| c.all);
        let mut touched = std::mem::take(&mut n.recheck);
        let mut root = all || std::mem::take(&mut n.recheck_root);
        for i in changed.iter().flat_map(|c| c.paths.iter()) {
            match n.watched.get(*i) {
                Some((_, Some(name))) => {
                    touched.insert(name.clone());
                }
                Some((_, None)) => root = true,
                None => {}
            }
        }
        if root && self.notify_names(n, out)? {
            n.watched = self.watch_list(n);
        }
        let names: Vec<String> = match all {
            true => n.told.keys().cloned().collect(),
            false => touched.into_iter().collect(),
        };
        let selected = self.selected_name();
        for name in names {
            if selected.as_deref() == Some(name.as_str()) {
                continue;
            }
            self.notify_status(n, &name, out);
        }
        Ok(())
    }

    /// A STATUS for `name` if its numbers changed in a way the client asked about.
    fn notify_status(&self, n: &mut Notify, name: &str, out: &mut Vec<u8>) {
        let Some(before) = n.told.get(name).copied() else {
            return;
        };
        let Ok(now) = self.snap(name) else {
            return; // gone: MailboxName tells
        };
        let messages = now.messages != before.messages
            || now.uid_next != before.uid_next
            || now.uid_validity != before.uid_validity;
        let flags = now.unseen != before.unseen || now.highest_modseq != before.highest_modseq;
        let want_messages = n.wants(name, |e| {
            matches!(e, NotifyEvent::MessageNew(_) | NotifyEvent::MessageExpunge)
        });
        let want_flags = n.wants(name, |e| matches!(e, NotifyEvent::FlagChange));
        if (messages && want_messages) || (flags && want_flags) {
            let known = n.validity_told.contains(name).then_some(&before);
            self.put_status(out, name, &now, Some(known), want_flags);
            n.validity_told.insert(name.to_string());
            n.told.insert(name.to_string(), now);
        } else if messages || flags {
            // Not asked for: remember it anyway, so that a later change is told alone.
            n.told.insert(name.to_string(), now);
        }
    }

    /// Compare names and subscriptions with what was told; LIST responses for the
    /// differences the client asked about. True when the set of names changed.
    fn notify_names(&self, n: &mut Notify, out: &mut Vec<u8>) -> Result<bool, HandlerError> {
        let store = self.store()?;
        let names = existing(store)?;
        let subscribed: BTreeSet<String> = store.subscriptions()?.into_iter().collect();
        let gone: Vec<&String> = n.names.keys().filter(|m| !names.contains_key(*m)).collect();
        let new: Vec<&String> = names.keys().filter(|m| !n.names.contains_key(*m)).collect();
        let renamed = pair_renames(&gone, &new, &n.names, &names);
        let wants_name = |m: &str| n.wants(m, |e| matches!(e, NotifyEvent::MailboxName));
        for name in &new {
            let old = renamed.get(name.as_str());
            if wants_name(name) || old.is_some_and(|o| wants_name(o)) {
                self.put_list(out, "", name, old.map(String::as_str));
            }
        }
        let olds: BTreeSet<&String> = renamed.values().collect();
        for name in gone.iter().filter(|g| !olds.contains(*g)) {
            if wants_name(name) {
                self.put_list(out, "\\NonExistent", name, None);
            }
        }
        for name in subscribed.symmetric_difference(&n.subscribed) {
            if n.wants(name, |e| matches!(e, NotifyEvent::SubscriptionChange)) {
                let attr = match subscribed.contains(name) {
                    true => "\\Subscribed",
                    false => "",
                };
                self.put_list(out, attr, name, None);
            }
        }
        let changed = names != n.names || subscribed != n.subscribed;
        for name in &gone {
            n.told.remove(*name);
            n.validity_told.remove(*name);
        }
        let new: Vec<String> = new.into_iter().cloned().collect();
        n.names = names;
        n.subscribed = subscribed;
        let watched: Vec<String> = new.into_iter().filter(|m| n.watches_messages(m)).collect();
        // What the client now knows of new mailboxes is their name: their numbers are the
        // base for later STATUS notifications.
        for name in watched {
            if let Ok(s) = self.snap(&name) {
                n.pending.insert(name.clone());
                n.told.insert(name, s);
            }
        }
        n.pending_root |= changed;
        Ok(changed)
    }

    /// `* LIST (attr) "." name [("OLDNAME" (old))]` (RFC 5465 MailboxName, RFC 5258 OLDNAME).
    fn put_list(&self, out: &mut Vec<u8>, attr: &str, name: &str, old: Option<&str>) {
        out.extend_from_slice(format!("* LIST ({attr}) \".\" ").as_bytes());
        self.put_name(out, name, false);
        if let Some(old) = old {
            out.extend_from_slice(b" (\"OLDNAME\" (");
            self.put_name(out, old, true);
            out.extend_from_slice(b"))");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// New name → old name, for a vanished and an appeared mailbox with the same directory
/// identity (a rename keeps the directory; a new mailbox gets a new one).
fn pair_renames(
    gone: &[&String],
    new: &[&String],
    before: &Names,
    now: &Names,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for g in gone {
        let Some(Some(id)) = before.get(*g) else {
            continue;
        };
        let found = new
            .iter()
            .find(|a| now.get(**a) == Some(&Some(*id)) && !out.contains_key(**a));
        if let Some(a) = found {
            out.insert(a.to_string(), g.to_string());
        }
    }
    out
}

/// A handler's output without its final tagged line (the FETCH run for MessageNew).
fn strip_tagged(bytes: &[u8]) -> &[u8] {
    let body = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
    let start = body
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .map_or(0, |i| i + 2);
    match bytes[start..].starts_with(FETCH_TAG.as_bytes()) {
        true => &bytes[..start],
        false => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_tagged_line() {
        let b = b"* 1 FETCH (UID 4)\r\nNOTIFY-FETCH OK FETCH completed.\r\n";
        assert_eq!(strip_tagged(b), b"* 1 FETCH (UID 4)\r\n");
        assert_eq!(strip_tagged(b"NOTIFY-FETCH OK x\r\n"), b"");
    }

    #[test]
    fn pairs_renames_by_directory_identity() {
        let (a, b, c) = ("A".to_string(), "B".to_string(), "C".to_string());
        let before = Names::from([(a.clone(), Some((1, 7)))]);
        let now = Names::from([(b.clone(), Some((1, 8))), (c.clone(), Some((1, 7)))]);
        let r = pair_renames(&[&a], &[&b, &c], &before, &now);
        assert_eq!(r, BTreeMap::from([(c.clone(), a.clone())]));
        assert!(pair_renames(&[&b], &[&c], &before, &now).is_empty());
        let unknown = Names::from([(a.clone(), None)]);
        assert!(pair_renames(&[&a], &[&c], &unknown, &now).is_empty());
    }
}
