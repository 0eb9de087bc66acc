//! Users and authentication from a Dovecot passwd-file.
//!
//! Owns: parsing the passwd-file, verifying and creating password hashes in Dovecot's schemes,
//! re-reading the file when it changes. Never: logs a password or hash, or tells a caller
//! whether a user exists apart from a successful login.
//!
//! `passwd`, `scheme` and `scram` (SCRAM-SHA-1/256, RFC 5802) are pure; [`UserDb`] is the thin
//! I/O shell around them. Reloading: the path is `stat`ed (following symlinks, so a Kubernetes
//! Secret update, which swaps the `..data` symlink, is seen) at most once per
//! [`UserDb::check_interval`]; a change of device, inode, size, mtime or ctime re-reads the
//! file. A file that fails to parse or vanishes keeps
//! the previous users and logs the path, line and reason once per change.

pub mod passwd;
pub mod quota;
pub mod scheme;
pub mod scram;

pub use passwd::{ParseError, PasswdFile, User};
pub use scheme::{hash_password, verify_password, SchemeError};

use scram::{Algorithm, Credentials};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often [`UserDb`] looks at the file by default.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A SHA512-CRYPT hash (default 5000 rounds) of a random string nobody knows: unknown users are
/// verified against it so that a failed login costs the same whether or not the user exists.
const DUMMY_HASH: &str =
    "{SHA512-CRYPT}$6$tVXMMFKImXMiflD/$fsWBT5ASLFw6rUz/BiHA8mSySE5EUBFR2MWyfPrW8MsG6CKochUA4bKArQvFqjvwGD8nlVwE1YuhJ4woPvtI2/";

/// The users database: a passwd-file that is re-read when it changes on disk. A file that fails
/// to parse keeps the previous users (and logs the line number and reason).
pub struct UserDb {
    path: PathBuf,
    check_interval: Duration,
    state: Mutex<State>,
    /// Random per process: keys the salts and made-up keys of [`UserDb::scram_credentials`].
    scram_secret: [u8; 32],
}

struct State {
    users: Arc<Users>,
    /// What the loaded file looked like; `None` after a failed stat.
    stamp: Option<Stamp>,
    last_check: Instant,
    /// The last reload problem logged, so a broken file is reported once, not every second.
    last_problem: Option<String>,
}

/// Users by name, with the line each came from (for log messages).
#[derive(Default)]
struct Users {
    by_name: HashMap<String, (usize, Arc<User>)>,
    names: Vec<String>,
}

impl Users {
    fn from_text(text: &str) -> Result<Users, ParseError> {
        let parsed = passwd::parse_with_lines(text)?;
        let mut users = Users::default();
        for (line, user) in parsed {
            users.names.push(user.name.clone());
            users
                .by_name
                .insert(user.name.clone(), (line, Arc::new(user)));
        }
        Ok(users)
    }

    /// Exact name, else the lower-cased name (Dovecot's default `%Lu`).
    fn get(&self, name: &str) -> Option<&(usize, Arc<User>)> {
        self.by_name
            .get(name)
            .or_else(|| self.by_name.get(&name.to_lowercase()))
    }
}

/// Identity of the file's current contents as far as `stat` can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Read and parse `path`; the error names the path (and the line, for a parse error).
fn read_users(path: &Path) -> Result<(Users, Stamp), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let users = Users::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((users, Stamp::of(&meta)))
}

impl UserDb {
    /// Load `path`; an error here (missing file, parse error) is a startup error.
    pub fn load(path: &Path) -> Result<UserDb, String> {
        let (users, stamp) = read_users(path)?;
        let mut scram_secret = [0u8; 32];
        getrandom::fill(&mut scram_secret).map_err(|e| format!("no randomness: {e}"))?;
        Ok(UserDb {
            path: path.to_path_buf(),
            check_interval: DEFAULT_CHECK_INTERVAL,
            scram_secret,
            state: Mutex::new(State {
                users: Arc::new(users),
                stamp: Some(stamp),
                last_check: Instant::now(),
                last_problem: None,
            }),
        })
    }

    /// Look at the file at most once per `interval` (default [`DEFAULT_CHECK_INTERVAL`]; tests
    /// use zero).
    pub fn with_check_interval(mut self, interval: Duration) -> UserDb {
        self.check_interval = interval;
        self
    }

    /// The passwd-file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configured check interval.
    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated (every update is a
        // single assignment), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current users, re-reading the file first if it is due for a check and changed.
    /// The lock is held for the stat and, when the file changed, the read and parse of a small
    /// text file; never while hashing.
    fn current(&self) -> Arc<Users> {
        let mut st = self.lock();
        if st.last_check.elapsed() >= self.check_interval {
            st.last_check = Instant::now();
            self.refresh(&mut st);
        }
        Arc::clone(&st.users)
    }

    fn refresh(&self, st: &mut State) {
        let path = self.path.display();
        let stamp = match std::fs::metadata(&self.path) {
            Ok(meta) => Stamp::of(&meta),
            Err(e) => {
                st.stamp = None;
                Self::problem(
                    st,
                    format!("passwd-file {path}: {e}; keeping the previous users"),
                );
                return;
            }
        };
        if st.stamp == Some(stamp) {
            return;
        }
        match read_users(&self.path) {
            Ok((users, stamp)) => {
                log::info!("passwd-file {path}: reloaded ({} users)", users.names.len());
                st.users = Arc::new(users);
                st.stamp = Some(stamp);
                st.last_problem = None;
            }
            Err(e) => {
                // Remember the stamp so the same broken file is not re-read every second.
                st.stamp = Some(stamp);
                Self::problem(st, format!("passwd-file {e}; keeping the previous users"));
            }
        }
    }

    fn problem(st: &mut State, msg: String) {
        if st.last_problem.as_deref() != Some(msg.as_str()) {
            log::warn!("{msg}");
            st.last_problem = Some(msg);
        }
    }

    /// Verify `user`/`password`. Blocking (hash schemes are slow on purpose): call it from a
    /// blocking thread (`smol::unblock`). Takes about the same time whether or not the user
    /// exists. Re-reads the file first if it changed.
    pub fn authenticate(&self, user: &str, password: &[u8]) -> Option<User> {
        let users = self.current();
        let Some((line, found)) = users.get(user).map(|(l, u)| (*l, Arc::clone(u))) else {
            // Spend the time a real user's check would take; the result is irrelevant.
            let _ = verify_password(DUMMY_HASH, password);
            return None;
        };
        drop(users);
        match verify_password(&found.password, password) {
            Ok(true) => Some(User::clone(&found)),
            Ok(false) => None,
            Err(e) => {
                // The reason never quotes the hash (see `SchemeError`).
                log::warn!(
                    "passwd-file {} line {line}: user {:?} has an unusable password field: {e}",
                    self.path.display(),
                    found.name
                );
                None
            }
        }
    }

    /// What AUTHENTICATE SCRAM-* (RFC 5802) checks `user` against: the user and their
    /// credentials when the stored password can serve (a `{SCRAM-…}` hash of the same hash
    /// function, or a plaintext password), else made-up credentials and `None`. Fast: no hash
    /// is checked here (a plaintext password costs one PBKDF2).
    ///
    /// A plaintext user's salt and the made-up credentials come from the lower-cased name and
    /// a per-process secret, so asking again shows the same salt, and an unknown user (or one
    /// whose hash SCRAM cannot use) goes through the whole exchange like a real one and fails
    /// only at the proof: the exchange does not tell who exists (RFC 5802 §9).
    pub fn scram_credentials(&self, user: &str, algo: Algorithm) -> (Option<User>, Credentials) {
        let name = user.to_lowercase();
        let derive = |what: &str| {
            let mut out = algo.hmac(&self.scram_secret, &[what.as_bytes(), name.as_bytes()]);
            out.truncate(algo.digest_len());
            out
        };
        let salt = derive("salt\0")[..16].to_vec();
        let users = self.current();
        if let Some((line, found)) = users.get(user) {
            let path = self.path.display();
            match scheme::scram_credentials(&found.password, algo, &salt) {
                Ok(Some(creds)) => return (Some(User::clone(found)), creds),
                Ok(None) => log::info!(
                    "passwd-file {path} line {line}: user {:?} cannot use {}: its password \
                     scheme is one-way (store a {{{}}} hash, made by `pimap pw -s {}`)",
                    found.name,
                    algo.name(),
                    algo.name(),
                    algo.name()
                ),
                Err(e) => log::warn!(
                    "passwd-file {path} line {line}: user {:?} has an unusable password field: {e}",
                    found.name
                ),
            }
        }
        let made_up = Credentials {
            iterations: scram::DEFAULT_ITERATIONS,
            stored_key: derive("stored\0"),
            server_key: derive("server\0"),
            salt,
        };
        (None, made_up)
    }

    /// Re-read the file now (SIGHUP), whatever the check interval; a broken file keeps the
    /// previous users and logs why.
    pub fn reload(&self) {
        let mut st = self.lock();
        st.last_check = Instant::now();
        st.stamp = None;
        self.refresh(&mut st);
    }

    /// Look a user up without a password (for the S3 sync's routing). Re-reads if changed.
    pub fn lookup(&self, user: &str) -> Option<User> {
        self.current().get(user).map(|(_, u)| User::clone(u))
    }

    /// All user names (for `pimap check` and routing), in file order.
    pub fn user_names(&self) -> Vec<String> {
        self.current().names.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "pimap-auth-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Replace the file atomically, as an editor or a Secret update would.
    fn write(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn dummy_hash_is_a_real_sha512_crypt_hash() {
        // If it were malformed, unknown users would fail fast and reveal themselves.
        assert_eq!(verify_password(DUMMY_HASH, b"x"), Ok(false));
    }

    #[test]
    fn load_errors_name_path_and_line() {
        let dir = TempDir::new();
        let missing = dir.0.join("missing");
        let e = UserDb::load(&missing).err().unwrap();
        assert!(e.contains("missing"), "{e}");
        let bad = dir.0.join("users");
        std::fs::write(&bad, "a:{PLAIN}x\n\nb/c:{PLAIN}y\n").unwrap();
        let e = UserDb::load(&bad).err().unwrap();
        assert!(
            e.contains("users") && e.contains("line 3") && e.contains("'/'"),
            "{e}"
        );
        assert!(!e.contains("{PLAIN}"), "{e}");
    }

    #[test]
    fn authenticate_lookup_and_names() {
        let dir = TempDir::new();
        let path = dir.0.join("users");
        let ssha = hash_password("SSHA256", b"pw-bob").unwrap();
        std::fs::write(
            &path,
            format!("alice@example.org:{{PLAIN}}pw-alice:1000:1000::/home/alice::userdb_mail=maildir:~/M\nbob:{ssha}\nbroken:{{NOPE}}zzz\n"),
        )
        .unwrap();
        let db = UserDb::load(&path).unwrap();
        let u = db.authenticate("alice@example.org", b"pw-alice").unwrap();
        assert_eq!(u.home.as_deref(), Some("/home/alice"));
        assert_eq!(u.extra_field("userdb_mail"), Some("maildir:~/M"));
        assert!(
            db.authenticate("Alice@Example.org", b"pw-alice").is_some(),
            "%Lu lookup"
        );
        assert!(db.authenticate("alice@example.org", b"pw-bob").is_none());
        assert!(db.authenticate("bob", b"pw-bob").is_some());
        assert!(db.authenticate("bob", b"").is_none());
        assert!(db.authenticate("nobody", b"pw-bob").is_none());
        assert!(
            db.authenticate("broken", b"zzz").is_none(),
            "unusable hash fails"
        );
        assert_eq!(db.lookup("bob").unwrap().name, "bob");
        assert!(db.lookup("nobody").is_none());
        assert_eq!(db.user_names(), ["alice@example.org", "bob", "broken"]);
        assert_eq!(db.path(), path.as_path());
    }

    #[test]
    fn scram_credentials_real_plain_one_way_and_unknown() {
        let dir = TempDir::new();
        let path = dir.0.join("users");
        let scram = hash_password("SCRAM-SHA-256", b"pw-s").unwrap();
        let crypt = hash_password("SHA256-CRYPT", b"pw-c").unwrap();
        std::fs::write(
            &path,
            format!("s:{scram}\np:{{PLAIN}}pw-p\nc:{crypt}\nbad:{{SCRAM-SHA-256}}1,2\n"),
        )
        .unwrap();
        let db = UserDb::load(&path).unwrap();
        let sha256 = Algorithm::Sha256;
        let (user, creds) = db.scram_credentials("s", sha256);
        assert_eq!(user.unwrap().name, "s");
        assert_eq!(format!("{{SCRAM-SHA-256}}{}", creds.encode()), scram);
        let (user, creds) = db.scram_credentials("P", sha256);
        assert_eq!(user.unwrap().name, "p", "%Lu lookup");
        assert!(creds.matches_password(sha256, b"pw-p"));
        assert_eq!(
            db.scram_credentials("p", sha256).1,
            creds,
            "same salt again"
        );
        // The user stored as SCRAM-SHA-256 has no SCRAM-SHA-1 keys.
        assert!(db.scram_credentials("s", Algorithm::Sha1).0.is_none());
        for name in ["c", "bad", "nobody"] {
            let (user, made_up) = db.scram_credentials(name, sha256);
            assert!(user.is_none(), "{name}");
            assert_eq!((made_up.iterations, made_up.salt.len()), (4096, 16));
            assert_eq!(made_up.stored_key.len(), 32);
            // Stable per name, so a repeated exchange looks like a real user's.
            assert_eq!(db.scram_credentials(name, sha256).1, made_up, "{name}");
        }
        let one = db.scram_credentials("nobody", Algorithm::Sha1).1;
        assert_eq!(one.stored_key.len(), 20);
        assert_ne!(
            one.salt,
            db.scram_credentials("nobody2", Algorithm::Sha1).1.salt
        );
        // LOGIN still works for the SCRAM user.
        assert!(db.authenticate("s", b"pw-s").is_some());
        assert!(db.authenticate("s", b"pw-x").is_none());
    }

    #[test]
    fn reload_on_change_and_keep_users_on_broken_file() {
        let dir = TempDir::new();
        let path = dir.0.join("users");
        write(&path, "u:{PLAIN}one\n");
        let db = UserDb::load(&path)
            .unwrap()
            .with_check_interval(Duration::ZERO);
        assert!(db.authenticate("u", b"one").is_some());

        // New password, same length: the inode changes (rename), so it is seen.
        write(&path, "u:{PLAIN}two\nv:{PLAIN}vvv\n");
        assert!(db.authenticate("u", b"one").is_none());
        assert!(db.authenticate("u", b"two").is_some());
        assert_eq!(db.user_names(), ["u", "v"]);

        // In-place rewrite (same inode, other size).
        std::fs::write(&path, "u:{PLAIN}three\n").unwrap();
        assert!(db.authenticate("u", b"three").is_some());
        assert!(db.lookup("v").is_none());

        // A broken file keeps the previous users.
        write(&path, "u:{PLAIN}four\nu:{PLAIN}dup\n");
        assert!(db.authenticate("u", b"three").is_some());
        assert!(db.authenticate("u", b"four").is_none());

        // So does a vanished file; it comes back when fixed.
        std::fs::remove_file(&path).unwrap();
        assert!(db.authenticate("u", b"three").is_some());
        write(&path, "u:{PLAIN}five\n");
        assert!(db.authenticate("u", b"five").is_some());
    }

    #[test]
    fn reload_follows_a_swapped_symlink() {
        // Kubernetes updates a Secret volume by pointing `..data` at a new directory.
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.0.join("v1")).unwrap();
        std::fs::create_dir_all(dir.0.join("v2")).unwrap();
        std::fs::write(dir.0.join("v1/users"), "u:{PLAIN}one\n").unwrap();
        std::fs::write(dir.0.join("v2/users"), "u:{PLAIN}two\n").unwrap();
        std::os::unix::fs::symlink("v1", dir.0.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/users", dir.0.join("users")).unwrap();
        let db = UserDb::load(&dir.0.join("users"))
            .unwrap()
            .with_check_interval(Duration::ZERO);
        assert!(db.authenticate("u", b"one").is_some());
        std::os::unix::fs::symlink("v2", dir.0.join("..data_tmp")).unwrap();
        std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).unwrap();
        assert!(db.authenticate("u", b"two").is_some());
        assert!(db.authenticate("u", b"one").is_none());
    }

    #[test]
    fn check_interval_limits_stats() {
        let dir = TempDir::new();
        let path = dir.0.join("users");
        write(&path, "u:{PLAIN}one\n");
        let db = UserDb::load(&path)
            .unwrap()
            .with_check_interval(Duration::from_secs(3600));
        write(&path, "u:{PLAIN}two\n");
        assert!(
            db.authenticate("u", b"one").is_some(),
            "not re-read before the interval"
        );
        assert_eq!(db.check_interval(), Duration::from_secs(3600));
    }

    #[test]
    fn concurrent_authentication() {
        let dir = TempDir::new();
        let path = dir.0.join("users");
        write(
            &path,
            "a:{PLAIN}1\nb:{SHA256}a4ayc/80/OGda4BO/1o/V0etpOqiLx1JwB5S3beHW0s=\n",
        );
        let db = Arc::new(
            UserDb::load(&path)
                .unwrap()
                .with_check_interval(Duration::ZERO),
        );
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let db = Arc::clone(&db);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        assert!(db.authenticate("a", b"1").is_some());
                        assert!(db.authenticate("b", b"1").is_some(), "thread {i}");
                        assert!(db.authenticate("c", b"1").is_none());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
