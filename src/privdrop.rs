//! Privilege drop: started as root, pimap binds its ports and reads the users file, then
//! becomes `--run-as UID:GID` (default `5000:5000`, the usual `vmail` ids) for good, before it
//! serves a single connection or starts the S3 sync.
//!
//! Owns: parsing `--run-as` ([`RunAs`]), the drop itself ([`drop_privileges`]:
//! `setgroups([])`, `setgid`, `setuid`, in that order, since after `setuid` the others would
//! be refused) and its verification (real, effective and saved ids all equal the target, no
//! supplementary groups, and `setuid(0)` now fails). Also sets the umask to `077`, so every
//! file pimap or its S3 sync creates is private to the mail user even where a mode is not
//! given explicitly (the store gives 0600/0700 itself).
//!
//! Never: serves mail as root (uid or gid 0 in `--run-as` is a configuration error), or
//! continues when a step fails (the caller exits). Not started as root: nothing is dropped
//! (the process already runs as someone), which is logged.
//!
//! `setuid(2)` from libc (through nix) changes the credentials of every thread of the process
//! (glibc and musl broadcast it), so threads that already exist are covered too.

use nix::unistd::{self, Gid, Uid};
use std::str::FromStr;

/// The default `--run-as`.
pub const DEFAULT_RUN_AS: &str = "5000:5000";

/// The unprivileged user and group to serve mail as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl FromStr for RunAs {
    type Err = String;

    /// `UID:GID` (numbers or names) or `USER` (its primary group).
    fn from_str(s: &str) -> Result<RunAs, String> {
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u.trim(), Some(g.trim())),
            None => (s.trim(), None),
        };
        if u.is_empty() || g == Some("") {
            return Err(format!("--run-as {s:?}: expected UID:GID, e.g. 5000:5000"));
        }
        let (uid, primary) = match u.parse::<u32>() {
            Ok(n) => (n, None),
            Err(_) => match unistd::User::from_name(u) {
                Ok(Some(user)) => (user.uid.as_raw(), Some(user.gid.as_raw())),
                Ok(None) => return Err(format!("--run-as {s:?}: no user named {u:?}")),
                Err(e) => return Err(format!("--run-as {s:?}: looking up user {u:?}: {e}")),
            },
        };
        let gid = match g {
            None => primary.ok_or_else(|| {
                format!("--run-as {s:?}: give the group too (UID:GID), e.g. {uid}:{uid}")
            })?,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => match unistd::Group::from_name(g) {
                    Ok(Some(group)) => group.gid.as_raw(),
                    Ok(None) => return Err(format!("--run-as {s:?}: no group named {g:?}")),
                    Err(e) => return Err(format!("--run-as {s:?}: looking up group {g:?}: {e}")),
                },
            },
        };
        if uid == 0 || gid == 0 {
            return Err(format!(
                "--run-as {s:?}: refusing to serve mail as root (uid and gid must not be 0)"
            ));
        }
        // (uid_t)-1 means "unchanged" to setresuid: never a real target.
        if uid == u32::MAX || gid == u32::MAX {
            return Err(format!("--run-as {s:?}: invalid id"));
        }
        Ok(RunAs { uid, gid })
    }
}

impl std::fmt::Display for RunAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// What [`drop_privileges`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Was root, is now `RunAs`.
    Dropped,
    /// Was not root: kept the current ids.
    NotRoot { uid: u32, gid: u32 },
}

/// Become `run_as` if running as root (see the module doc). Call it once the ports are bound
/// and the users file is read, before serving anything or starting other threads' work.
pub fn drop_privileges(run_as: RunAs) -> Result<Outcome, String> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    if !unistd::geteuid().is_root() {
        let (uid, gid) = (unistd::getuid().as_raw(), unistd::getgid().as_raw());
        log::info!(
            "not started as root (running as {uid}:{gid}): no privileges to drop, --run-as {run_as} not used"
        );
        return Ok(Outcome::NotRoot { uid, gid });
    }
    let (uid, gid) = (Uid::from_raw(run_as.uid), Gid::from_raw(run_as.gid));
    unistd::setgroups(&[]).map_err(|e| format!("dropping privileges: setgroups([]): {e}"))?;
    unistd::setgid(gid).map_err(|e| format!("dropping privileges: setgid({gid}): {e}"))?;
    unistd::setuid(uid).map_err(|e| format!("dropping privileges: setuid({uid}): {e}"))?;
    verify(run_as)?;
    log::info!("dropped privileges: now running as {run_as}");
    Ok(Outcome::Dropped)
}

/// Before the drop, as root: create a directory pimap writes in after the drop (the data
/// directory, with the S3 sync's ledger; the directory the Maildirs go under) if it does not
/// exist yet, owned by `run_as` with mode 0700. An existing directory is left alone (its
/// owner is the admin's choice; `/healthz` reports a mail root that is not writable). Not
/// root: nothing to do.
pub fn prepare_dir(mail_root: &std::path::Path, run_as: RunAs) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if !unistd::geteuid().is_root() || mail_root.exists() {
        return Ok(());
    }
    let err =
        |what: &str, e: &dyn std::fmt::Display| format!("{what} {}: {e}", mail_root.display());
    std::fs::create_dir_all(mail_root).map_err(|e| err("creating", &e))?;
    std::fs::set_permissions(mail_root, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| err("setting the mode of", &e))?;
    std::os::unix::fs::chown(mail_root, Some(run_as.uid), Some(run_as.gid))
        .map_err(|e| err(&format!("giving to {run_as}"), &e))?;
    log::info!("created {} for {run_as}", mail_root.display());
    Ok(())
}

/// Can the current user create files in `dir`? Creates and removes a private file there
/// (the real test: access(2) misses read-only mounts, ACLs and full inode tables).
pub fn check_writable(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(format!(".pimap-write-check.{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)?;
    drop(f);
    std::fs::remove_file(&p)
}

/// Check that the drop took and cannot be undone.
fn verify(run_as: RunAs) -> Result<(), String> {
    let fail = |what: String| Err(format!("dropping privileges to {run_as}: {what}"));
    let u = unistd::getresuid().map_err(|e| format!("getresuid: {e}"))?;
    let g = unistd::getresgid().map_err(|e| format!("getresgid: {e}"))?;
    let uids = [u.real, u.effective, u.saved].map(|x| x.as_raw());
    let gids = [g.real, g.effective, g.saved].map(|x| x.as_raw());
    if uids != [run_as.uid; 3] {
        return fail(format!("uids are {uids:?}"));
    }
    if gids != [run_as.gid; 3] {
        return fail(format!("gids are {gids:?}"));
    }
    match unistd::getgroups() {
        Ok(groups) if groups.iter().all(|g| g.as_raw() == run_as.gid) => {}
        Ok(groups) => return fail(format!("supplementary groups remain: {groups:?}")),
        Err(e) => return fail(format!("getgroups: {e}")),
    }
    if unistd::setuid(Uid::from_raw(0)).is_ok() || unistd::seteuid(Uid::from_raw(0)).is_ok() {
        return fail("root could be regained".into());
    }
    if unistd::setgid(Gid::from_raw(0)).is_ok() {
        return fail("group root could be regained".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numeric_ids() {
        assert_eq!(
            "5000:5000".parse::<RunAs>(),
            Ok(RunAs {
                uid: 5000,
                gid: 5000
            })
        );
        assert_eq!(
            " 1001 : 100 ".parse::<RunAs>(),
            Ok(RunAs {
                uid: 1001,
                gid: 100
            })
        );
        assert_eq!(
            DEFAULT_RUN_AS.parse::<RunAs>().unwrap().to_string(),
            "5000:5000"
        );
    }

    #[test]
    fn refuses_root_and_nonsense() {
        for bad in [
            "0:0",
            "0:5000",
            "5000:0",
            "root",
            "root:5000",
            "",
            ":",
            "5000:",
            ":5000",
        ] {
            let e = bad.parse::<RunAs>();
            assert!(e.is_err(), "{bad:?} accepted");
        }
        assert!("0:0".parse::<RunAs>().unwrap_err().contains("root"));
        assert!("4294967295:1".parse::<RunAs>().is_err());
        assert!("5000".parse::<RunAs>().unwrap_err().contains("UID:GID"));
        assert!("no-such-user-pimap:1".parse::<RunAs>().is_err());
    }

    #[test]
    fn names_resolve() {
        // `nobody` exists on every Linux system (65534 on Debian).
        let r: RunAs = "nobody".parse().unwrap();
        assert_ne!(r.uid, 0);
        assert_ne!(r.gid, 0);
    }
}
