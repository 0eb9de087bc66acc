//! Commands on the selected mailbox (RFC 3501 §6.4): CHECK, CLOSE, UNSELECT (RFC 3691),
//! EXPUNGE, UID EXPUNGE (RFC 4315), STORE, COPY (with COPYUID, RFC 4315), MOVE (RFC 6851).
//! FETCH is in `fetch`, SEARCH in `search`.

use super::mailbox::to_store_flags;
use super::view::{flags_list, View};
use super::{normalize_mailbox, Action, HandlerError, Output, Session, State};
use crate::imap::types::{Command, Flag, SequenceSet, StoreMode};
use crate::store::{flag, Flags, StoreError};

impl Session {
    pub(super) fn selected_command(
        &mut self,
        tag: &str,
        cmd: Command,
    ) -> Result<Output, HandlerError> {
        let mut out = Vec::new();
        match cmd {
            Command::Check => {
                self.sync_selected(&mut out, true)?;
                out.extend_from_slice(format!("{tag} OK CHECK completed.\r\n").as_bytes());
            }
            Command::Close | Command::Unselect => {
                let close = matches!(cmd, Command::Close);
                self.leave_mailbox(close)?;
                let name = if close { "CLOSE" } else { "UNSELECT" };
                out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
            }
            Command::Expunge => self.expunge(tag, None, &mut out)?,
            Command::CancelUpdate(tags) => return self.cancel_update(tag, &tags),
            Command::UidExpunge(set) => self.expunge(tag, Some(&set), &mut out)?,
            Command::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                unchanged_since,
            } => {
                if unchanged_since.is_some() {
                    // RFC 7162 §3.1: UNCHANGEDSINCE is CONDSTORE-enabling.
                    self.enable_condstore(&mut out);
                }
                let modified =
                    self.store_flags(&mut out, uid, &set, mode, silent, &flags, unchanged_since)?;
                let name = if uid { "UID STORE" } else { "STORE" };
                if modified.is_empty() {
                    out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
                } else {
                    // RFC 7162 §3.1.3: the messages that failed the UNCHANGEDSINCE test.
                    out.extend_from_slice(
                        format!(
                            "{tag} OK [MODIFIED {}] Conditional {name} failed.\r\n",
                            super::search::compress_set(&modified)
                        )
                        .as_bytes(),
                    );
                }
            }
            Command::Copy { uid, set, mailbox } => {
                let code = self.copy(&mut out, uid, &set, &mailbox, false)?;
                let name = if uid { "UID COPY" } else { "COPY" };
                out.extend_from_slice(format!("{tag} OK {code}{name} completed.\r\n").as_bytes());
            }
            Command::Move { uid, set, mailbox } => {
                let code = self.copy(&mut out, uid, &set, &mailbox, true)?;
                if !code.is_empty() {
                    // RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
                    let mut pre = format!("* OK {}Moved.\r\n", code).into_bytes();
                    pre.extend_from_slice(&out);
                    out = pre;
                }
                let name = if uid { "UID MOVE" } else { "MOVE" };
                out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
            }
            c @ Command::Fetch { .. } => return self.fetch(tag, c),
            c @ (Command::Search { .. } | Command::Sort { .. } | Command::Thread { .. }) => {
                return self.search(tag, c)
            }
            other => {
                return Err(HandlerError::Bad(format!(
                    "{} is not allowed here.",
                    other.name()
                )))
            }
        }
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }

    pub(super) fn view_mut(&mut self) -> Result<&mut View, HandlerError> {
        match &mut self.state {
            State::Selected { view, .. } => Ok(view),
            _ => Err(HandlerError::Bad("No mailbox selected.".into())),
        }
    }

    /// CLOSE (`expunge`) or UNSELECT (RFC 3691): back to the authenticated state. CLOSE first
    /// removes the messages flagged \Deleted, silently (RFC 3501 §6.4.2), unless read-only;
    /// the mailbox is left even when that fails.
    fn leave_mailbox(&mut self, expunge: bool) -> Result<(), HandlerError> {
        let state = std::mem::replace(&mut self.state, State::NotAuthenticated);
        if let State::Selected { user, store, view } = state {
            let mut result = Ok(());
            if expunge && !view.read_only {
                // RFC 3501 §6.4.2: CLOSE expunges silently.
                let uids: Vec<u32> = deleted_uids(&view, None);
                if !uids.is_empty() {
                    result = view.lock().mbox.expunge(&uids).map(|_| ());
                }
            }
            self.state = State::Authenticated { user, store };
            result?;
        } else {
            self.state = state;
        }
        Ok(())
    }

    /// EXPUNGE (RFC 3501 §6.4.3), or UID EXPUNGE of the UIDs in `set` (RFC 4315 §2.1): remove
    /// the messages flagged \Deleted and report them, with the tagged OK.
    fn expunge(
        &mut self,
        tag: &str,
        set: Option<&SequenceSet>,
        out: &mut Vec<u8>,
    ) -> Result<(), HandlerError> {
        let view = self.view_mut()?;
        if view.read_only {
            return Err(HandlerError::No("[READ-ONLY] Mailbox is read-only.".into()));
        }
        view.sync(out, true)?;
        let uids = match set {
            Some(s) => {
                let idx = view.resolve(s, true).map_err(HandlerError::Bad)?;
                let mut sel = Vec::new();
                for i in idx {
                    sel.push(view.msgs[i].uid);
                }
                deleted_uids(view, Some(&sel))
            }
            None => deleted_uids(view, None),
        };
        view.lock().mbox.expunge(&uids)?;
        view.sync(out, true)?;
        let name = if set.is_some() {
            "UID EXPUNGE"
        } else {
            "EXPUNGE"
        };
        // RFC 7162 §3.2.10 (as Dovecot does once CONDSTORE is on): the tagged OK tells
        // the new HIGHESTMODSEQ.
        let code = if view.condstore {
            format!("[HIGHESTMODSEQ {}] ", view.highest_modseq()?)
        } else {
            String::new()
        };
        out.extend_from_slice(format!("{tag} OK {code}{name} completed.\r\n").as_bytes());
        Ok(())
    }

    /// STORE / UID STORE (RFC 3501 §6.4.6) with RFC 7162 §3.1.3 UNCHANGEDSINCE: returns the
    /// sequence numbers (UIDs for UID STORE) of the messages that failed the test.
    #[allow(clippy::too_many_arguments)]
    fn store_flags(
        &mut self,
        out: &mut Vec<u8>,
        uid: bool,
        set: &SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: &[Flag],
        unchanged_since: Option<u64>,
    ) -> Result<Vec<u32>, HandlerError> {
        let given = to_store_flags(flags)?;
        let view = self.view_mut()?;
        if view.read_only {
            return Err(HandlerError::No("[READ-ONLY] Mailbox is read-only.".into()));
        }
        // RFC 3501 §7.4.1: no EXPUNGE responses during (non-UID) STORE.
        view.sync(out, uid)?;
        let idx = view.resolve(set, uid).map_err(HandlerError::Bad)?;
        let mut modified = Vec::new();
        // (view index, changed on disk by this command, flags now, mod-sequence)
        let mut done: Vec<(usize, bool, Flags, u64)> = Vec::new();
        // One lock for the whole command: the process's one writer of this mailbox.
        let shared = view.shared.clone();
        let mut st = shared.lock();
        for i in idx {
            let msg_uid = view.msgs[i].uid;
            // RFC 2180 §4.2.1: a message expunged meanwhile is skipped; the rest is stored
            // and the command succeeds (as in Dovecot).
            let Some(meta) = st.mbox.meta(msg_uid).cloned() else {
                continue;
            };
            // RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE is left alone.
            if let Some(u) = unchanged_since {
                if st.modseqs()?.get(msg_uid) > u {
                    modified.push(if uid { msg_uid } else { i as u32 + 1 });
                    continue;
                }
            }
            let new = stored_flags(&meta.flags, mode, &given);
            let mut changed = false;
            if new != meta.flags {
                match view.set_flags(&mut st, msg_uid, &new) {
                    Ok(()) => changed = true,
                    Err(StoreError::Expunged(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let now = st
                .mbox
                .meta(msg_uid)
                .map(|m| m.flags.clone())
                .unwrap_or(new);
            done.push((i, changed, now, 0));
        }
        // One new mod-sequence for everything this command changed (RFC 7162 §3.1.1).
        if view.condstore {
            let modseqs = st.modseqs()?;
            for d in &mut done {
                d.3 = modseqs.get(view.msgs[d.0].uid);
            }
        }
        drop(st);
        // RFC 3501 §7.2.6: a keyword this STORE added to the mailbox is announced before
        // the FETCH responses that carry it.
        view.announce_keywords(out);
        for d in done.iter().filter(|d| d.1) {
            if let Some(m) = view.msgs.get(d.0) {
                view.context.touch(m.uid);
            }
        }
        store_responses(view, out, done, uid, silent);
        // RFC 5267 §4.3: this STORE's effect on the updating searches, as Dovecot reports it.
        view.refresh_updates(out);
        Ok(modified)
    }

    /// COPY or MOVE; returns the `[COPYUID ...] ` response code (empty if nothing was copied).
    fn copy(
        &mut self,
        out: &mut Vec<u8>,
        uid: bool,
        set: &SequenceSet,
        mailbox: &str,
        is_move: bool,
    ) -> Result<String, HandlerError> {
        let dest_name = normalize_mailbox(mailbox);
        let (store, view, user) = match &mut self.state {
            State::Selected { store, view, user } => (&*store, view, &*user),
            _ => return Err(HandlerError::Bad("No mailbox selected.".into())),
        };
        if is_move && view.read_only {
            return Err(HandlerError::No("[READ-ONLY] Mailbox is read-only.".into()));
        }
        view.sync(out, uid)?;
        let idx = view.resolve(set, uid).map_err(HandlerError::Bad)?;
        let uids: Vec<u32> = {
            let st = view.lock();
            idx.iter()
                .map(|&i| view.msgs[i].uid)
                .filter(|u| st.mbox.meta(*u).is_some())
                .collect()
        };
        if uids.len() < idx.len() {
            // RFC 2180 §4.4.1 (as Dovecot does): a COPY naming a message expunged meanwhile
            // fails as a whole and copies nothing; the client learns of the expunge and
            // retries with the messages that are left.
            return Err(HandlerError::No(
                "[EXPUNGEISSUED] Some of the requested messages no longer exist.".into(),
            ));
        }
        let dest = match store.open_mailbox(&dest_name, false) {
            Ok(d) => d,
            Err(StoreError::NotFound(_)) => {
                return Err(HandlerError::No(
                    "[TRYCREATE] Mailbox doesn't exist.".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        if uids.is_empty() {
            return Ok(String::new());
        }
        if !is_move {
            // A MOVE stays inside the one quota root: Dovecot never refuses it for quota.
            let bytes = {
                let st = view.lock();
                uids.iter()
                    .filter_map(|u| st.mbox.meta(*u))
                    .map(|m| m.size)
                    .sum()
            };
            let n = uids.len() as u64;
            super::quota::check_quota(&self.shared, user, store, &dest_name, bytes, n)?;
        }
        // Never two mailboxes locked at once: the sources are read under the source's lock,
        // the copies placed under the destination's (the same lock for a COPY into itself).
        let sources = view.lock().mbox.copy_sources(&uids);
        let (pairs, dest_validity, pending) = {
            let mut d = dest.lock();
            let (pairs, pending) = d.mbox.copy_in_deferred(&sources)?;
            (pairs, d.mbox.uid_validity(), pending)
        };
        // Durable (synced with other sessions' writes, after the lock) before the OK, and
        // before a MOVE removes the originals.
        pending.wait()?;
        if is_move {
            // RFC 6851 §3.3: also into the selected mailbox itself; the sync then
            // reports the EXPUNGE and the new message's EXISTS, as Dovecot does.
            let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
            view.lock().mbox.expunge(&moved)?;
            view.sync(out, true)?;
        }
        let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let dst: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        Ok(format!(
            "[COPYUID {} {} {}] ",
            dest_validity,
            uid_set(&src),
            uid_set(&dst)
        ))
    }
}

/// The flags of a message after STORE in `mode` with the flags `given` (keywords compare
/// without case; an added keyword already there keeps its spelling).
fn stored_flags(old: &Flags, mode: StoreMode, given: &Flags) -> Flags {
    let mut new = old.clone();
    match mode {
        StoreMode::Replace => new = given.clone(),
        StoreMode::Add => {
            new.system |= given.system;
            for k in &given.keywords {
                if !new.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    new.keywords.push(k.clone());
                }
            }
        }
        StoreMode::Remove => {
            new.system &= !given.system;
            new.keywords
                .retain(|x| !given.keywords.iter().any(|k| k.eq_ignore_ascii_case(x)));
        }
    }
    new
}

/// The untagged FETCH responses of a STORE for the messages it `done` (view index, changed on
/// disk, flags now, mod-sequence): the flags unless `.SILENT`, the UID for UID STORE and under
/// QRESYNC (RFC 7162), MODSEQ under CONDSTORE.
fn store_responses(
    view: &View,
    out: &mut Vec<u8>,
    done: Vec<(usize, bool, Flags, u64)>,
    uid: bool,
    silent: bool,
) {
    for (i, changed, flags, modseq) in done {
        let m = &view.msgs[i];
        let mut items = Vec::new();
        if uid || view.qresync {
            items.push(format!("UID {}", m.uid));
        }
        if view.condstore && (changed || !silent) {
            items.push(format!("MODSEQ ({modseq})"));
        }
        if !silent {
            items.push(format!("FLAGS {}", flags_list(&flags, m.recent)));
        }
        // Silent and nothing to tell (RFC 7162 §3.1.3: with .SILENT, MODSEQ only).
        if silent && !(view.condstore && changed) {
            continue;
        }
        out.extend_from_slice(format!("* {} FETCH ({})\r\n", i + 1, items.join(" ")).as_bytes());
    }
}

/// UIDs in the view flagged \Deleted: all of them, or only those of `only` (ascending UIDs
/// the client named, so a UID EXPUNGE costs what it names, not the mailbox).
fn deleted_uids(view: &View, only: Option<&[u32]>) -> Vec<u32> {
    let st = view.lock();
    let deleted = |uid: &u32| {
        st.mbox
            .meta(*uid)
            .is_some_and(|x| x.flags.system & flag::DELETED != 0)
    };
    match only {
        Some(o) => o.iter().copied().filter(deleted).collect(),
        // The mailbox's \Deleted messages that this view has: a look-up each, not a pass
        // over the view (the binary searches of that pass cost 3 ms at 100,000 messages).
        None => (st.mbox.deleted())
            .filter(|u| view.index_of(*u).is_some())
            .filter(deleted)
            .collect(),
    }
}

/// Compact `1:3,7` form of a UID list, keeping the order (COPYUID pairs by position).
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}
