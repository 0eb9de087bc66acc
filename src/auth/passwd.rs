//! Dovecot passwd-file format: `user:password:uid:gid:gecos:home:shell:extra_fields`.

/// One user line.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// The password field as written (`{SCHEME}hash` or a bare crypt hash).
    pub password: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<String>,
    /// `key=value` extra fields (e.g. `userdb_mail=maildir:~/Maildir`).
    pub extra: Vec<(String, String)>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("name", &self.name).field("password", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct PasswdFile {
    pub users: Vec<User>,
}

impl PasswdFile {
    pub fn parse(_text: &str) -> Result<PasswdFile, ParseError> {
        todo!("passwd parse")
    }
}
