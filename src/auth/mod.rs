//! Users and authentication from a Dovecot passwd-file.
//!
//! Owns: parsing the passwd-file, verifying and creating password hashes in Dovecot's schemes,
//! re-reading the file when it changes. Never: logs a password or hash, or tells a caller
//! whether a user exists apart from a successful login.

pub mod passwd;
pub mod scheme;

pub use passwd::{PasswdFile, ParseError, User};
pub use scheme::{hash_password, verify_password, SchemeError};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The users database: a passwd-file that is re-read when it changes on disk. A file that fails
/// to parse keeps the previous users (and logs the line number and reason).
pub struct UserDb {
    path: PathBuf,
    state: Mutex<()>,
}

impl UserDb {
    /// Load `path`; an error here (missing file, parse error) is a startup error.
    pub fn load(_path: &Path) -> Result<UserDb, String> {
        todo!("UserDb::load")
    }

    /// Verify `user`/`password`. Blocking (hash schemes are slow on purpose): call it from a
    /// blocking thread (`smol::unblock`). Takes about the same time whether or not the user
    /// exists. Re-reads the file first if it changed.
    pub fn authenticate(&self, _user: &str, _password: &[u8]) -> Option<User> {
        let _ = (&self.path, &self.state);
        todo!("UserDb::authenticate")
    }

    /// Look a user up without a password (for the S3 sync's routing). Re-reads if changed.
    pub fn lookup(&self, _user: &str) -> Option<User> {
        todo!("UserDb::lookup")
    }

    /// All user names (for `pimap check` and routing).
    pub fn user_names(&self) -> Vec<String> {
        todo!("UserDb::user_names")
    }
}
