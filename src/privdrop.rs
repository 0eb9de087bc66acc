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
//! Before the drop, as root: the data dir and the mail root are created for the run-as user
//! ([`prepare_dir`]), and a data dir that user cannot reach through its parent directories (a
//! clone in `/root`, anything `mktemp -d` made: mode 0700, owned by root) is held open and
//! used through `/proc/self/fd/N` from then on ([`enter_data_dir`]): the kernel resolves such
//! a path from the open directory, without searching the parents again, so the parents' modes
//! stay as they are and the command line's other relative paths keep their meaning (a
//! `chdir` would change it). After the drop, [`check_after_drop`] makes sure the run-as user
//! can use what pimap needs later (data dir, mail root, a users file that is read again, the
//! S3 sync's state dir): if not, that is a start-up error naming the path and the fix, never a
//! server that accepts connections and then fails every login.
//!
//! Never: serves mail as root (uid or gid 0 in `--run-as` is a configuration error), or
//! continues when a step fails (the caller exits). Not started as root: nothing is dropped
//! (the process already runs as someone), which is logged.
//!
//! `setuid(2)` from libc (through nix) changes the credentials of every thread of the process
//! (glibc and musl broadcast it), so threads that already exist are covered too.

use nix::unistd::{self, Gid, Uid};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

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
    let err = |what: &str, e: &dyn std::fmt::Display| {
        format!("{what} {}: {e}", shown(mail_root).display())
    };
    std::fs::create_dir_all(mail_root).map_err(|e| err("creating", &e))?;
    std::fs::set_permissions(mail_root, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| err("setting the mode of", &e))?;
    std::os::unix::fs::chown(mail_root, Some(run_as.uid), Some(run_as.gid))
        .map_err(|e| err(&format!("giving to {run_as}"), &e))?;
    log::info!("created {} for {run_as}", shown(mail_root).display());
    Ok(())
}

/// The data dir held open by [`enter_data_dir`]: the directory as given (absolute), the
/// `/proc/self/fd/N` path pimap uses for it, and the open directory itself. Process-wide, as
/// the descriptor is: it stays open for as long as the process runs, so the paths stay valid.
static HELD: OnceLock<(PathBuf, PathBuf, std::fs::File)> = OnceLock::new();

/// As root, before the drop: the path to use for the data directory `dir` from now on. That is
/// `dir` itself, unless `run_as` cannot reach it through its parent directories; then the
/// directory is opened now and kept open, and the path is `/proc/self/fd/N` (see the module
/// doc). With `needed` (pimap keeps files there), a data dir `run_as` cannot enter itself is
/// an error now, before anything is created in it. Not root, or no such directory (yet):
/// `dir`. Call it before any other thread exists: it switches the effective ids to `run_as`
/// for a moment to find out.
pub fn enter_data_dir(dir: &Path, run_as: RunAs, needed: bool) -> Result<PathBuf, String> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    if !unistd::geteuid().is_root() || !dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    let given = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let open = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_DIRECTORY.bits())
        .open(dir)
        .map_err(|e| format!("opening the data dir {}: {e}", given.display()))?;
    let held = PathBuf::from(format!("/proc/self/fd/{}", open.as_raw_fd()));
    let proc_works = held.is_dir();
    // By its absolute path, as pimap uses it (config makes the default mail location absolute):
    // a relative lookup would start at the working directory and miss a 0700 directory above.
    let (reach, enter) = as_run_as(run_as, dir, || {
        let inside = if proc_works { &held } else { &given };
        (
            std::fs::metadata(&given).map(drop),
            std::fs::metadata(inside.join(".")).map(drop),
        )
    })?;
    if let (true, Err(e)) = (needed, &enter) {
        if proc_works || reach.is_ok() {
            return Err(cannot_enter_data_dir(&given, run_as, e));
        }
    }
    match reach {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
        _ => return Ok(dir.to_path_buf()),
    }
    if !proc_works {
        return Err(format!(
            "data dir {}: {run_as} cannot reach it through its parent directories, and {} does \
             not lead to it (is /proc mounted?): move it (--data-dir) or let {run_as} search its \
             parent directories",
            given.display(),
            held.display()
        ));
    }
    log::info!(
        "data dir {}: {run_as} cannot reach it through its parent directories, so pimap keeps \
         it open and uses it as {} (paths in this log that start with that are in the data dir)",
        given.display(),
        held.display()
    );
    HELD.set((given, held.clone(), open))
        .map_err(|_| "the data dir is already held open".to_string())?;
    Ok(held)
}

fn cannot_enter_data_dir(d: &Path, run_as: RunAs, e: &std::io::Error) -> String {
    format!(
        "data dir {d}: {run_as} cannot enter it after the privilege drop ({e}): give it to that \
         user (chown -R {run_as} {d}), or set --run-as to its owner",
        d = d.display()
    )
}

/// `p` as the admin knows it: a path in the data dir held by [`enter_data_dir`] is shown under
/// the data dir's own path; any other path is shown as it is.
pub fn shown(p: &Path) -> PathBuf {
    match HELD
        .get()
        .map(|(given, held, _)| (given, p.strip_prefix(held)))
    {
        Some((given, Ok(rest))) if rest.as_os_str().is_empty() => given.clone(),
        Some((given, Ok(rest))) => given.join(rest),
        _ => p.to_path_buf(),
    }
}

/// [`shown`] for paths inside a text (`pimap check`'s report).
pub fn shown_in(text: &str) -> String {
    match HELD.get() {
        Some((given, held, _)) => text.replace(
            &format!("{}/", held.display()),
            &format!("{}/", given.display()),
        ),
        None => text.to_string(),
    }
}

/// As root: run `probe` with the effective ids of `run_as` and no supplementary groups (as
/// after the drop), then become root again (the saved set-user-ID stays 0). The kernel's own
/// checks then answer for modes, ACLs and mount options alike. An error ends the start-up.
fn as_run_as<T>(run_as: RunAs, what: &Path, probe: impl FnOnce() -> T) -> Result<T, String> {
    let err =
        |step: &str, e: nix::Error| format!("checking {} as {run_as}: {step}: {e}", what.display());
    let groups = unistd::getgroups().map_err(|e| err("getgroups", e))?;
    unistd::setgroups(&[]).map_err(|e| err("setgroups([])", e))?;
    unistd::setegid(Gid::from_raw(run_as.gid)).map_err(|e| err("setegid", e))?;
    unistd::seteuid(Uid::from_raw(run_as.uid)).map_err(|e| err("seteuid", e))?;
    let out = probe();
    unistd::seteuid(Uid::from_raw(0)).map_err(|e| err("seteuid(0)", e))?;
    unistd::setegid(Gid::from_raw(0)).map_err(|e| err("setegid(0)", e))?;
    unistd::setgroups(&groups).map_err(|e| err("setgroups", e))?;
    Ok(out)
}

/// What pimap uses after the privilege drop, for [`check_after_drop`]. Paths as pimap uses
/// them (possibly under the held data dir).
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// The data dir, when pimap's own files are in it (the default users file or mail location,
    /// the S3 sync's ledger).
    pub data_dir: Option<PathBuf>,
    /// The users file.
    pub users: PathBuf,
    /// The users file is the default `DATA_DIR/users` (pimap's own, expected to be reloadable).
    pub users_is_default: bool,
    /// The directory every Maildir is created under, if the mail location has a fixed one.
    pub mail_root: Option<PathBuf>,
    /// The S3 sync runs inside the server and keeps its ledger in this directory.
    pub sync_state_dir: Option<PathBuf>,
    /// Backups run inside the server and keep their state and lock in this directory.
    pub backup_state_dir: Option<PathBuf>,
}

/// Once the privileges are dropped (or, for `pimap check`, as they would be): can `run_as`
/// use what `needs` lists? A data dir or mail root it cannot enter, a users file it cannot
/// read although pimap reads it again (the default one, or with the S3 sync), or a sync state
/// dir it cannot write is an error naming the path and the fix. A mail root it cannot write
/// and a given `--users` file it cannot read (a root-only credential: the users read at
/// start-up stay) are logged.
pub fn check_after_drop(needs: &Needs, run_as: RunAs) -> Result<(), String> {
    // Missing (only `check` gets here without them): `serve` creates both before the drop.
    let enter = |dir: &Path| match std::fs::metadata(dir.join(".")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        found => found.map(|_| true),
    };
    if let Some(dir) = &needs.data_dir {
        enter(dir).map_err(|e| cannot_enter_data_dir(&shown(dir), run_as, &e))?;
    }
    if let Some(root) = &needs.mail_root {
        let r = shown(root);
        match enter(root) {
            Err(e) => {
                return Err(format!(
                    "mail root {r}: {run_as} cannot enter it after the privilege drop ({e}), so \
                     every login would fail: give it to that user (chown -R {run_as} {r}), set \
                     --run-as to its owner, or choose a --mail-location that user can reach",
                    r = r.display()
                ))
            }
            Ok(true) => {
                if let Err(e) = check_writable(root) {
                    log::warn!(
                        "mail root {}: {run_as} cannot create files there ({e}): users without a \
                         Maildir yet cannot log in (/healthz answers 503)",
                        r.display()
                    );
                }
            }
            Ok(false) => {}
        }
    }
    if let Err(e) = std::fs::File::open(&needs.users) {
        let u = shown(&needs.users);
        let u = u.display();
        let reader = match (&needs.sync_state_dir, &needs.backup_state_dir) {
            (Some(_), _) => Some("the S3 sync"),
            (None, Some(_)) => Some("the backup"),
            (None, None) => None,
        };
        if let Some(who) = reader {
            return Err(format!(
                "{who} reads the users file {u} on every pass, but {run_as} cannot read it: \
                 {e} (make it readable by that user: chown {run_as} {u}, or group {} and mode 0640)",
                run_as.gid
            ));
        }
        if needs.users_is_default {
            return Err(format!(
                "users file {u}: {run_as} cannot read it after the privilege drop ({e}), but pimap \
                 reads it again on SIGHUP and whenever it changes: give it to that user \
                 (chown {run_as} {u}), or name another file with --users"
            ));
        }
        log::warn!(
            "users file {u} is not readable as {run_as} ({e}): the users read at start-up stay; \
             changes (SIGHUP, edits) need a restart"
        );
    }
    if let Some(dir) = &needs.sync_state_dir {
        check_writable(dir).map_err(|e| {
            format!(
                "the S3 sync keeps its state in {}, but {run_as} cannot write there: {e} \
                 (chown the directory to {run_as}, or set --s3-state-file)",
                shown(dir).display()
            )
        })?;
    }
    if let Some(dir) = &needs.backup_state_dir {
        check_writable(dir).map_err(|e| {
            format!(
                "backups keep their state and lock in the data dir {}, but {run_as} cannot write \
                 there: {e} (chown the directory to {run_as})",
                shown(dir).display()
            )
        })?;
    }
    Ok(())
}

/// Started as root: give `path` (a file pimap just created for itself, e.g. the demo users
/// file) to `run_as`, which reads it after the drop. Not root: nothing to do.
pub fn give_to(path: &Path, run_as: RunAs) -> Result<(), String> {
    if !unistd::geteuid().is_root() {
        return Ok(());
    }
    std::os::unix::fs::chown(path, Some(run_as.uid), Some(run_as.gid))
        .map_err(|e| format!("giving {} to {run_as}: {e}", shown(path).display()))
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

    fn needs(dir: &Path) -> Needs {
        Needs {
            data_dir: Some(dir.join("data")),
            users: dir.join("data/users"),
            users_is_default: true,
            mail_root: Some(dir.join("data/mail")),
            sync_state_dir: None,
            backup_state_dir: None,
        }
    }

    #[test]
    fn after_the_drop_missing_dirs_are_left_to_serve_but_a_missing_users_file_is_not() {
        let tmp = std::env::temp_dir().join(format!("pimap-privdrop-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("data/mail")).unwrap();
        let run_as = RunAs {
            uid: 5000,
            gid: 5000,
        };
        // No data dir or mail root yet (`pimap check` before the first `serve`): fine.
        let mut n = needs(&tmp.join("nothing-yet"));
        n.users = tmp.join("users");
        std::fs::write(&n.users, "demo:{PLAIN}x::::::\n").unwrap();
        assert_eq!(check_after_drop(&n, run_as), Ok(()));
        // The default users file missing: it is read again later, so that is an error with
        // the path and the fix.
        let n = needs(&tmp);
        let e = check_after_drop(&n, run_as).unwrap_err();
        let users = tmp.join("data/users");
        assert!(
            e.starts_with(&format!("users file {}:", users.display())),
            "{e}"
        );
        assert!(
            e.contains(&format!("chown 5000:5000 {}", users.display())),
            "{e}"
        );
        // A given --users file that cannot be read again keeps the users read at start-up.
        let given = Needs {
            users_is_default: false,
            ..needs(&tmp)
        };
        assert_eq!(check_after_drop(&given, run_as), Ok(()));
        // ... unless the S3 sync reads it on every pass.
        let sync = Needs {
            sync_state_dir: Some(tmp.join("data")),
            ..given
        };
        let e = check_after_drop(&sync, run_as).unwrap_err();
        assert!(e.contains("the S3 sync reads the users file"), "{e}");
        // ... or backups run in the server.
        let backup = Needs {
            backup_state_dir: Some(tmp.join("data")),
            ..needs(&tmp)
        };
        let backup = Needs {
            users_is_default: false,
            ..backup
        };
        let e = check_after_drop(&backup, run_as).unwrap_err();
        assert!(e.contains("the backup reads the users file"), "{e}");
        // The sync's state dir must be there and writable.
        std::fs::write(tmp.join("data/users"), "demo:{PLAIN}x::::::\n").unwrap();
        let state = Needs {
            sync_state_dir: Some(tmp.join("no-state-dir")),
            ..needs(&tmp)
        };
        let e = check_after_drop(&state, run_as).unwrap_err();
        assert!(e.contains("the S3 sync keeps its state in"), "{e}");
        let state = Needs {
            backup_state_dir: Some(tmp.join("no-state-dir")),
            ..needs(&tmp)
        };
        let e = check_after_drop(&state, run_as).unwrap_err();
        assert!(e.contains("backups keep their state and lock"), "{e}");
        assert_eq!(check_after_drop(&needs(&tmp), run_as), Ok(()));
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn paths_outside_a_held_data_dir_are_shown_as_they_are() {
        // Nothing is held in unit tests (that needs root and a real drop: tests/e2e).
        assert_eq!(shown(Path::new("/var/mail/x")), Path::new("/var/mail/x"));
        assert_eq!(shown_in("mail in /var/mail/x\n"), "mail in /var/mail/x\n");
    }

    #[test]
    fn names_resolve() {
        // `nobody` exists on every Linux system (65534 on Debian).
        let r: RunAs = "nobody".parse().unwrap();
        assert_ne!(r.uid, 0);
        assert_ne!(r.gid, 0);
    }
}
