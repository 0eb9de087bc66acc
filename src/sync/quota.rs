//! Quota at delivery: mail for a user over quota is held back, never lost.
//!
//! A recipient whose quota (the passwd-file rules, `auth::quota`) the object would break is
//! skipped; the object is then neither recorded as delivered nor deleted/moved, so it stays in
//! the bucket and the next pass tries again, delivering it once the user has made room (the
//! recipients that had room got it already; the unique name makes that a no-op on the retry).
//! The check is Dovecot LDA's: up to `quota_grace` past the limit for the message that brings
//! the user over, nothing once over; checks and deliveries for users with rules take turns
//! ([`lock_for`]), so concurrent workers cannot overshoot together. Each held object is logged once (per process: a
//! `--once` CronJob logs it on each run) and counted in `pimap_sync_quota_held_total`.

use crate::auth::{quota::QuotaRules, UserDb};
use crate::store::UserStore;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Keys held back for quota and already logged.
static HELD: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Held by a worker from the quota check of a recipient with rules until the object is in
/// place, so two workers cannot both see the room for one message and both use it (the
/// downloads of other users' mail go on side by side).
static DELIVERING: Mutex<()> = Mutex::new(());

/// The lock to hold while checking and delivering for `user`, if the user has quota rules.
pub(super) fn lock_for(users: &UserDb, user: &str) -> Option<MutexGuard<'static, ()>> {
    users
        .lookup(user)?
        .quota
        .filter(QuotaRules::is_limited)
        .map(|_| DELIVERING.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Does `user`'s quota hold back `size` bytes for `mailbox` (IMAP name) in the Maildir
/// `target` under the mail root `root`? Never for a user without rules, an ignored mailbox,
/// or a target that has the message already (a retry adds nothing).
pub(super) fn holds_back(
    users: &UserDb,
    user: &str,
    root: &Path,
    mailbox: &str,
    target: &Path,
    unique: &str,
    size: u64,
) -> Result<bool, String> {
    let Some(rules) = users
        .lookup(user)
        .and_then(|u| u.quota)
        .filter(QuotaRules::is_limited)
    else {
        return Ok(false);
    };
    let Some(limits) = rules.limits_for(mailbox) else {
        return Ok(false);
    };
    let quota_err = |e: crate::store::StoreError| format!("quota of {user}: {e}");
    if crate::store::is_delivered(target, unique).map_err(quota_err)? {
        return Ok(false);
    }
    let store = UserStore::open(root).map_err(quota_err)?;
    let used = store
        .usage(|name| !rules.ignored(name))
        .map_err(quota_err)?;
    Ok(limits.refuses_delivery(used, size, rules.grace()))
}

/// `key` was held back for `users`: logged and counted the first time.
pub(super) fn held(key: &str, users: &[String]) {
    let first = HELD
        .lock()
        .map(|mut h| h.insert(key.to_string()))
        .unwrap_or(true);
    if first {
        log::warn!(
            "s3 sync: {key:?} not delivered to {}: over quota; it stays in the bucket and is \
             delivered once there is room",
            users.join(", ")
        );
        crate::metrics::global().sync_quota_held();
    }
}

/// `key` was delivered to every recipient: if it had been held back, say so.
pub(super) fn released(key: &str) {
    let was = HELD.lock().map(|mut h| h.remove(key)).unwrap_or(false);
    if was {
        log::info!("s3 sync: {key:?} delivered now that there is room");
    }
}
