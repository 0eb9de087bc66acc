//! Interop: pimap's Maildir store against Debian's Dovecot 2.3 on the same directory.
//!
//! Phase A: Dovecot (driven with `doveadm`) creates messages, flags, keywords, folders and
//! subscriptions; pimap's `UserStore` must report the same UIDVALIDITY, UIDs, flags and
//! keywords. Phase B: pimap appends, copies, changes flags, expunges, delivers and creates
//! and subscribes folders; `doveadm` must see the same.
//!
//! Dovecot runs from a private config (own base_dir, no network listeners, a passwd-file
//! user). It refuses to access mail as uid 0, and this test usually runs as root, so the mail
//! user gets a dedicated non-root uid: the system user `pimaptest` (created if absent), else
//! `nobody` (65534). The test itself keeps running as root, so after pimap writes it hands
//! the files back to that uid (chown -R) before Dovecot reads them. As a non-root user the
//! test runs Dovecot and the mail as that user. Skipped, with a note, without doveadm.

use pimap::store::{flag, Flags, StoreError, UserStore};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const USER: &str = "tuser";

struct Dovecot {
    dir: PathBuf,
    conf: PathBuf,
    home: PathBuf,
    uid: u32,
    gid: u32,
}

impl Dovecot {
    fn start() -> Option<Dovecot> {
        if Command::new("doveadm").arg("-h").output().is_err()
            || Command::new("dovecot").arg("--version").output().is_err()
        {
            eprintln!("NOTE: doveadm/dovecot not installed; skipping the Dovecot interop test");
            return None;
        }
        let (uid, gid, user_name) = mail_user();
        let dir = std::env::temp_dir().join(format!(
            "pimap-dovecot-{}-{}",
            std::process::id(),
            now_nanos()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("run")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.join("home");
        fs::create_dir_all(&home).unwrap();
        chown_r(&home, uid, gid);
        fs::write(
            dir.join("passwd"),
            format!("{USER}:{{PLAIN}}pw:{uid}:{gid}::{}::\n", home.display()),
        )
        .unwrap();
        let d = dir.display();
        // Not root, every service runs as this user, and its sockets' group
        // (default_internal_group, else the `dovecot` group, which a normal user cannot chown
        // to) is this user's.
        let internal = if nix::unistd::getuid().is_root() {
            String::new()
        } else {
            let group = nix::unistd::Group::from_gid(nix::unistd::getgid())
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_default();
            format!(
                "default_internal_user = {user_name}\ndefault_login_user = {user_name}\n\
                 default_internal_group = {group}\n"
            )
        };
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/run\nlog_path = {d}/dovecot.log\n{internal}\
             ssl = no\nprotocols = imap\nmail_location = maildir:~/Maildir\nfirst_valid_uid = 1\n\
             namespace inbox {{\n  inbox = yes\n  separator = .\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
        );
        let conf_path = dir.join("dovecot.conf");
        fs::write(&conf_path, conf).unwrap();
        let st = Command::new("dovecot")
            .arg("-c")
            .arg(&conf_path)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "dovecot failed to start: {}",
            fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
        );
        let dv = Dovecot {
            dir: dir.clone(),
            conf: conf_path,
            home,
            uid,
            gid,
        };
        let t = Instant::now();
        while !dir.join("run/auth-userdb").exists() {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "dovecot auth socket never appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(dv)
    }

    fn maildir(&self) -> PathBuf {
        self.home.join("Maildir")
    }

    fn doveadm(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut si) = child.stdin.take() {
            si.write_all(stdin.unwrap_or(b"")).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "doveadm {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (mailbox, uid) → (flags without \Recent, RFC822.SIZE), as Dovecot sees it.
    fn fetch_all(&self) -> BTreeMap<(String, u32), (BTreeSet<String>, u64)> {
        let out = self.doveadm(
            &[
                "-f",
                "tab",
                "fetch",
                "-u",
                USER,
                "mailbox uid flags size.virtual",
                "all",
            ],
            None,
        );
        let mut map = BTreeMap::new();
        for line in out.lines().skip(1).filter(|l| !l.is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "unexpected doveadm line {line:?}");
            let flags = cols[2]
                .split(' ')
                .filter(|f| !f.is_empty() && *f != "\\Recent")
                .map(str::to_string)
                .collect();
            map.insert(
                (to_mutf7(cols[0]), cols[1].parse().unwrap()),
                (flags, cols[3].parse().unwrap()),
            );
        }
        map
    }

    /// mailbox → (uidvalidity, uidnext, messages).
    fn status_all(&self) -> BTreeMap<String, (u32, u32, u32)> {
        let out = self.doveadm(
            &[
                "-f",
                "tab",
                "mailbox",
                "status",
                "-u",
                USER,
                "uidvalidity uidnext messages",
                "*",
            ],
            None,
        );
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let (m, v, n, c) = (
            col("mailbox"),
            col("uidvalidity"),
            col("uidnext"),
            col("messages"),
        );
        lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                (
                    to_mutf7(cols[m]),
                    (
                        cols[v].parse().unwrap(),
                        cols[n].parse().unwrap(),
                        cols[c].parse().unwrap(),
                    ),
                )
            })
            .collect()
    }

    fn list(&self, subscribed: bool) -> BTreeSet<String> {
        let mut args = vec!["mailbox", "list", "-u", USER];
        if subscribed {
            args.push("-s");
        }
        self.doveadm(&args, None)
            .lines()
            .filter(|l| !l.is_empty())
            .map(to_mutf7)
            .collect()
    }

    /// Give the files back to the mail uid after pimap (running as root) wrote some.
    fn hand_back(&self) {
        chown_r(&self.home, self.uid, self.gid);
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // Stops only the instance this test started (its master.pid in our base_dir).
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// The uid/gid (and user name) that owns the mail; see the module comment.
fn mail_user() -> (u32, u32, String) {
    use nix::unistd::{getgid, getuid, User};
    if !getuid().is_root() {
        let name = User::from_uid(getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        return (getuid().as_raw(), getgid().as_raw(), name);
    }
    let find = || User::from_name("pimaptest").ok().flatten();
    if find().is_none() {
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "pimaptest",
            ])
            .status();
    }
    match find() {
        Some(u) => (u.uid.as_raw(), u.gid.as_raw(), u.name),
        None => (65534, 65534, "nobody".into()),
    }
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    if nix::unistd::getuid().as_raw() == uid {
        return;
    }
    let _ = std::os::unix::fs::lchown(p, Some(uid), Some(gid));
    if fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false) {
        for e in fs::read_dir(p).unwrap().flatten() {
            chown_r(&e.path(), uid, gid);
        }
    }
}

/// doveadm prints names in UTF-8; the store speaks modified UTF-7. Only the one non-ASCII
/// name this test uses needs converting.
fn to_mutf7(s: &str) -> String {
    s.replace("Entwürfe", "Entw&APw-rfe")
}

fn flag_names(f: &Flags) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for (bit, n) in [
        (flag::SEEN, "\\Seen"),
        (flag::ANSWERED, "\\Answered"),
        (flag::FLAGGED, "\\Flagged"),
        (flag::DELETED, "\\Deleted"),
        (flag::DRAFT, "\\Draft"),
    ] {
        if f.system & bit != 0 {
            s.insert(n.to_string());
        }
    }
    s.extend(f.keywords.iter().cloned());
    s
}

/// pimap's view in the same shape as `fetch_all` / `status_all`.
#[allow(clippy::type_complexity)]
fn pimap_view(
    store: &UserStore,
) -> (
    BTreeMap<(String, u32), (BTreeSet<String>, u64)>,
    BTreeMap<String, (u32, u32, u32)>,
) {
    let mut msgs = BTreeMap::new();
    let mut status = BTreeMap::new();
    for e in store.list().unwrap().into_iter().filter(|e| !e.nonexistent) {
        let mb = store.load_mailbox(&e.name, true).unwrap();
        for m in mb.messages() {
            msgs.insert((e.name.clone(), m.uid), (flag_names(&m.flags), m.size));
        }
        status.insert(
            e.name.clone(),
            (mb.uid_validity(), mb.uid_next(), mb.messages().len() as u32),
        );
    }
    (msgs, status)
}

fn fl(system: u8, k: &[&str]) -> Flags {
    Flags {
        system,
        keywords: k.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn dovecot_and_pimap_agree_both_ways() {
    let Some(dv) = Dovecot::start() else { return };

    // ---- Phase A: Dovecot writes, pimap reads. ----
    for (mb, body) in [
        ("INBOX", "Subject: one\n\nbody one\n"),
        ("INBOX", "Subject: two\r\n\r\nbody two\r\n"),
        ("INBOX", "Subject: three\n\nthree\n"),
        ("INBOX", "Subject: four\n\nfour\n"),
    ] {
        dv.doveadm(&["save", "-u", USER, "-m", mb], Some(body.as_bytes()));
    }
    dv.doveadm(
        &[
            "mailbox",
            "create",
            "-u",
            USER,
            "-s",
            "A.B",
            "Sent",
            "Entwürfe",
        ],
        None,
    );
    dv.doveadm(
        &["save", "-u", USER, "-m", "A.B"],
        Some(b"Subject: ab\n\nin a.b\n"),
    );
    dv.doveadm(
        &[
            "flags",
            "add",
            "-u",
            USER,
            "\\Seen $Work Later",
            "mailbox",
            "INBOX",
            "uid",
            "1",
        ],
        None,
    );
    dv.doveadm(
        &[
            "flags",
            "add",
            "-u",
            USER,
            "\\Deleted \\Flagged Later",
            "mailbox",
            "INBOX",
            "uid",
            "2",
        ],
        None,
    );
    dv.doveadm(
        &[
            "flags",
            "add",
            "-u",
            USER,
            "\\Answered $Forwarded",
            "mailbox",
            "A.B",
            "uid",
            "1",
        ],
        None,
    );
    dv.doveadm(
        &["expunge", "-u", USER, "mailbox", "INBOX", "uid", "3"],
        None,
    );

    let d_msgs = dv.fetch_all();
    let d_status = dv.status_all();
    let d_subs = dv.list(true);
    let store = UserStore::open(&dv.maildir()).unwrap();
    let (p_msgs, p_status) = pimap_view(&store);
    assert_eq!(
        p_msgs, d_msgs,
        "messages/flags/sizes differ after Dovecot wrote"
    );
    assert_eq!(
        p_status, d_status,
        "UIDVALIDITY/UIDNEXT/counts differ after Dovecot wrote"
    );
    let p_list: BTreeSet<String> = store.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(p_list, dv.list(false));
    assert_eq!(
        store
            .subscriptions()
            .unwrap()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        d_subs
    );
    assert!(
        d_msgs.contains_key(&("INBOX".to_string(), 4))
            && !d_msgs.contains_key(&("INBOX".to_string(), 3))
    );

    // ---- Phase B: pimap writes, Dovecot reads. ----
    let mut inbox = store.load_mailbox("INBOX", false).unwrap();
    let u_new = inbox
        .append(
            b"Subject: from pimap\n\nhi\n",
            &fl(flag::FLAGGED, &["Ourkw", "$Forwarded"]),
            Some(1_600_000_000),
        )
        .unwrap();
    assert_eq!(
        u_new, 5,
        "UID 3 was expunged by Dovecot and must not be reused"
    );
    inbox
        .set_flags(1, &fl(flag::SEEN | flag::ANSWERED, &["$Work", "NewKw"]))
        .unwrap();
    store.create("Ours.Sub").unwrap();
    store.set_subscribed("Ours.Sub", true).unwrap();
    store.set_subscribed("Sent", false).unwrap();
    let mut ours = store.load_mailbox("Ours.Sub", false).unwrap();
    inbox.refresh().unwrap();
    let pairs = inbox.copy_to(&[1, 5], &mut ours).unwrap();
    assert_eq!(pairs, vec![(1, 1), (5, 2)]);
    let mut ab = store.load_mailbox("A.B", false).unwrap();
    assert_eq!(ab.expunge(&[1]).unwrap(), vec![1]);
    pimap::store::deliver(
        &dv.maildir(),
        "ses-interop-1",
        b"Subject: s3\r\n\r\ndelivered\r\n",
    )
    .unwrap();
    inbox.refresh().unwrap();
    ab.append(b"Subject: ab2\n\nsecond\n", &Flags::default(), None)
        .unwrap();
    // EXAMINE-style open must not have changed anything Dovecot cares about.
    assert!(matches!(
        store.load_mailbox("Nope", false),
        Err(StoreError::NotFound(_))
    ));

    dv.hand_back();
    let d_msgs = dv.fetch_all();
    let d_status = dv.status_all();
    let (p_msgs, p_status) = pimap_view(&store);
    assert_eq!(
        p_msgs, d_msgs,
        "messages/flags/sizes differ after pimap wrote"
    );
    assert_eq!(
        p_status, d_status,
        "UIDVALIDITY/UIDNEXT/counts differ after pimap wrote"
    );
    let key = |m: &str, u: u32| (m.to_string(), u);
    assert_eq!(
        d_msgs[&key("INBOX", 5)].0,
        ["\\Flagged", "Ourkw", "$Forwarded"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    assert!(d_msgs[&key("INBOX", 1)].0.contains("NewKw"));
    assert_eq!(d_msgs[&key("Ours.Sub", 1)].0, d_msgs[&key("INBOX", 1)].0);
    assert!(
        d_msgs.contains_key(&key("INBOX", 6)),
        "delivered message has UID 6 for Dovecot too"
    );
    assert!(!d_msgs.contains_key(&key("A.B", 1)));
    assert!(d_msgs.contains_key(&key("A.B", 2)));
    let subs = dv.list(true);
    assert!(
        subs.contains("Ours.Sub") && !subs.contains("Sent"),
        "{subs:?}"
    );
    assert!(dv.list(false).contains("Ours.Sub"));

    // Dovecot reads the message pimap appended byte for byte.
    let body = dv.doveadm(
        &["fetch", "-u", USER, "text", "mailbox", "INBOX", "uid", "5"],
        None,
    );
    assert!(body.contains("hi"), "{body}");
    let date = dv.doveadm(
        &[
            "-f",
            "tab",
            "fetch",
            "-u",
            USER,
            "date.received",
            "mailbox",
            "INBOX",
            "uid",
            "5",
        ],
        None,
    );
    assert!(date.contains("2020-09-13"), "INTERNALDATE not kept: {date}");

    // ---- And back: Dovecot changes flags on pimap's messages; pimap sees them. ----
    dv.doveadm(
        &[
            "flags",
            "replace",
            "-u",
            USER,
            "\\Draft Ourkw",
            "mailbox",
            "Ours.Sub",
            "uid",
            "2",
        ],
        None,
    );
    ours.refresh().unwrap();
    let m = ours.messages().iter().find(|m| m.uid == 2).unwrap();
    assert_eq!(
        flag_names(&m.flags),
        ["\\Draft", "Ourkw"].iter().map(|s| s.to_string()).collect()
    );
}
