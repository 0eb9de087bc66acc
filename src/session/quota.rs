//! QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA, and the check APPEND and COPY make
//! before saving.
//!
//! The limits are the user's Dovecot quota rules from the passwd-file (`auth::quota`), read
//! again on every command, so a reloaded users file applies at once; the usage is the store's
//! incremental count over all the user's mailboxes (`store::maildir::usage`). One quota root,
//! named like Dovecot's ([`ROOT_NAME`]), holds every mailbox. Answers are Dovecot 2.3's:
//! STORAGE in KiB rounded up (usage and limit), only limited resources listed, a user without
//! rules gets `OK No quota.`, and SETQUOTA is refused (the limits come from the passwd-file).
//! MOVE is never refused: within one root it adds nothing, as in Dovecot.

use super::{normalize_mailbox, Action, HandlerError, Output, Session, Shared};
use crate::auth::quota::{Limits, QuotaRules, Usage, ROOT_NAME};
use crate::store::UserStore;

/// The tagged NO for a save that would go over quota (Dovecot's text).
pub(super) const OVERQUOTA: &str = "[OVERQUOTA] Quota exceeded (mailbox for user is full).";

impl Session {
    /// The logged-in user's quota rules, if the user has any limit.
    fn quota_rules(&self) -> Option<QuotaRules> {
        rules_of(&self.shared, self.user()?)
    }

    /// The rules, if the quota root has limits of its own to show (Dovecot lists a root only
    /// then: a user whose only rule is for one mailbox gets "No quota" too).
    fn visible_quota(&self) -> Option<QuotaRules> {
        self.quota_rules()
            .filter(|r| r.root_limits() != Limits::default())
    }

    /// The usage the rules count: every mailbox but the ignored ones.
    fn quota_usage(&self, rules: &QuotaRules) -> Result<Usage, HandlerError> {
        Ok(self.store()?.usage(|name| !rules.ignored(name))?)
    }

    /// NO [OVERQUOTA] if saving `messages` messages of `bytes` bytes together into `mailbox`
    /// would break the user's limits.
    pub(super) fn check_quota(
        &self,
        mailbox: &str,
        bytes: u64,
        messages: u64,
    ) -> Result<(), HandlerError> {
        match (self.user(), self.store()) {
            (Some(user), Ok(store)) => {
                check_quota(&self.shared, user, store, mailbox, bytes, messages)
            }
            _ => Ok(()),
        }
    }

    /// Does the logged-in user have quota limits? (Memory only: whether an APPEND's
    /// [`Session::append_precheck`] is worth a trip to the blocking pool.)
    pub fn quota_applies(&self) -> bool {
        self.quota_rules().is_some()
    }

    /// APPEND's check before the client sends the literal: the tagged NO to answer instead
    /// of `+`, or `None` to go on. `command` is the command so far, up to the literal's
    /// announcement; anything that does not parse as an APPEND goes on (the command itself
    /// will say what is wrong).
    pub fn append_precheck(&self, command: &[u8], size: u64) -> Option<Vec<u8>> {
        let mut whole = command.to_vec();
        whole.extend_from_slice(b"{0}\r\n\r\n");
        let parsed = crate::imap::parse::parse_command(&whole).ok()?;
        let crate::imap::types::Command::Append { mailbox, .. } = parsed.command else {
            return None;
        };
        match self.check_quota(&mailbox, size, 1) {
            Err(HandlerError::No(text)) => {
                Some(format!("{} NO {text}\r\n", parsed.tag).into_bytes())
            }
            _ => None,
        }
    }

    /// GETQUOTAROOT, GETQUOTA, SETQUOTA (authenticated and selected states).
    pub(super) fn quota_command(
        &self,
        tag: &str,
        command: crate::imap::types::Command,
    ) -> Result<Output, HandlerError> {
        use crate::imap::types::Command::*;
        match command {
            GetQuotaRoot { mailbox } => self.getquotaroot(tag, &mailbox),
            GetQuota { root } => self.getquota(tag, &root),
            SetQuota { .. } => self.setquota(),
            c => Err(HandlerError::Bad(format!(
                "{} is not a QUOTA command.",
                c.name()
            ))),
        }
    }

    fn getquotaroot(&self, tag: &str, mailbox: &str) -> Result<Output, HandlerError> {
        let Some(rules) = self.visible_quota() else {
            return Ok(done(format!("{tag} OK No quota.\r\n").into_bytes()));
        };
        let mut out = b"* QUOTAROOT ".to_vec();
        if mailbox.is_ascii() {
            crate::imap::encode::astring(&mut out, mailbox.as_bytes());
        } else {
            crate::imap::encode::utf8_string(&mut out, mailbox);
        }
        out.push(b' ');
        crate::imap::encode::astring(&mut out, ROOT_NAME.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&quota_line(&rules, self.quota_usage(&rules)?));
        out.extend_from_slice(format!("{tag} OK Getquotaroot completed.\r\n").as_bytes());
        Ok(done(out))
    }

    fn getquota(&self, tag: &str, root: &str) -> Result<Output, HandlerError> {
        if root != ROOT_NAME {
            return Err(HandlerError::No("Quota root doesn't exist.".into()));
        }
        let mut out = Vec::new();
        // Dovecot: a user without limits has the root, with nothing to list.
        if let Some(rules) = self.visible_quota() {
            out = quota_line(&rules, self.quota_usage(&rules)?);
        }
        out.extend_from_slice(format!("{tag} OK Getquota completed.\r\n").as_bytes());
        Ok(done(out))
    }

    fn setquota(&self) -> Result<Output, HandlerError> {
        Err(HandlerError::No(
            "Quota can be changed only by admin.".into(),
        ))
    }
}

/// `user`'s quota rules, if the user has any limit.
fn rules_of(shared: &Shared, user: &str) -> Option<QuotaRules> {
    shared
        .users
        .lookup(user)?
        .quota
        .filter(QuotaRules::is_limited)
}

/// NO [OVERQUOTA] if saving `messages` messages of `bytes` bytes together into `mailbox` of
/// `user` (whose mail is `store`) would break the user's limits. A function of the parts, not
/// of the session, so COPY can ask while it holds the selected mailbox's view.
pub(super) fn check_quota(
    shared: &Shared,
    user: &str,
    store: &UserStore,
    mailbox: &str,
    bytes: u64,
    messages: u64,
) -> Result<(), HandlerError> {
    let Some(rules) = rules_of(shared, user) else {
        return Ok(());
    };
    let Some(limits) = rules.limits_for(&normalize_mailbox(mailbox)) else {
        return Ok(());
    };
    if limits == Limits::default() {
        return Ok(());
    }
    let used = store.usage(|name| !rules.ignored(name))?;
    if limits.exceeded(used, bytes, messages) {
        log::info!(
            "{user}: over quota saving {messages} message(s), {bytes} bytes into {mailbox:?}"
        );
        return Err(HandlerError::No(OVERQUOTA.into()));
    }
    Ok(())
}

fn done(bytes: Vec<u8>) -> Output {
    Output {
        bytes,
        action: Action::Continue,
    }
}

/// `* QUOTA "User quota" (STORAGE <KiB used> <KiB limit> MESSAGE <used> <limit>)`, listing
/// only the limited resources.
fn quota_line(rules: &QuotaRules, used: Usage) -> Vec<u8> {
    let limits = rules.root_limits();
    let kib = |n: u64| n.div_ceil(1024);
    let mut resources = Vec::new();
    if limits.bytes > 0 {
        resources.push(format!("STORAGE {} {}", kib(used.bytes), kib(limits.bytes)));
    }
    if limits.messages > 0 {
        resources.push(format!("MESSAGE {} {}", used.messages, limits.messages));
    }
    let mut out = b"* QUOTA ".to_vec();
    crate::imap::encode::astring(&mut out, ROOT_NAME.as_bytes());
    out.extend_from_slice(format!(" ({})\r\n", resources.join(" ")).as_bytes());
    out
}
