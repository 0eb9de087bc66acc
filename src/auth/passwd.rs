//! Dovecot passwd-file format: `user:password:uid:gid:gecos:home:shell:extra_fields`.
//!
//! Owns: turning the file's text into validated [`User`]s. Pure (no I/O). Follows Dovecot 2.3's
//! passwd-file passdb/userdb ("passwd-file" in Dovecot's documentation): only `user` and
//! `password` are required, trailing fields may be left out, empty lines and lines starting with
//! `#` are skipped, and everything after the seventh `:` is the extra fields (so a value such as
//! `userdb_mail=maildir:~/Maildir` may contain `:`).
//!
//! Stricter than Dovecot where a mistake would be dangerous here: user names become directory
//! names, so names with `/`, NUL or other control characters, a leading `.` or a `..` are
//! rejected, as are duplicate users and non-numeric uid/gid (Dovecot would resolve a name via
//! the system's passwd; pimap keeps the file self-contained). Never: puts a password field into
//! an error message.

use super::quota::QuotaRules;

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
    /// Dovecot quota rules from the extra fields (`userdb_quota_rule=*:storage=1G`, ...);
    /// `None`: no rule, no quota.
    pub quota: Option<QuotaRules>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl User {
    /// The value of extra field `key` (first occurrence); a bare flag such as `nodelay` has the
    /// value `""`.
    pub fn extra_field(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Default)]
pub struct PasswdFile {
    pub users: Vec<User>,
}

impl PasswdFile {
    /// Parse a whole passwd-file; the first bad line is the error.
    pub fn parse(text: &str) -> Result<PasswdFile, ParseError> {
        let users = parse_with_lines(text)?
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        Ok(PasswdFile { users })
    }

    /// The user called exactly `name`, or else the one called `name` in lower case (Dovecot's
    /// default `auth_username_format = %Lu` lower-cases login names before the lookup).
    pub fn lookup(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name).or_else(|| {
            let lower = name.to_lowercase();
            self.users.iter().find(|u| u.name == lower)
        })
    }
}

/// Parse a passwd-file, keeping each user's 1-based line number (for log messages that must
/// point at a line without quoting it).
pub fn parse_with_lines(text: &str) -> Result<Vec<(usize, User)>, ParseError> {
    let mut users: Vec<(usize, User)> = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (idx, raw) in text.split('\n').enumerate() {
        let line_no = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let user = parse_line(line).map_err(|reason| ParseError {
            line: line_no,
            reason,
        })?;
        if let Some(first) = seen.get(&user.name) {
            return Err(ParseError {
                line: line_no,
                reason: format!(
                    "duplicate user {:?} (first defined on line {first})",
                    user.name
                ),
            });
        }
        seen.insert(user.name.clone(), line_no);
        users.push((line_no, user));
    }
    Ok(users)
}

/// One non-comment line.
fn parse_line(line: &str) -> Result<User, String> {
    // user:password:uid:gid:gecos:home:shell:extra_fields — the 8th field takes the rest.
    let mut fields = line.splitn(8, ':');
    let name = fields.next().unwrap_or("");
    check_user_name(name)?;
    let password = fields.next().ok_or_else(|| {
        format!("user {name:?} has no password field (expected user:password:...)")
    })?;
    let uid = parse_id(fields.next(), "uid")?;
    let gid = parse_id(fields.next(), "gid")?;
    let _gecos = fields.next();
    let home = fields.next().filter(|h| !h.is_empty()).map(str::to_string);
    if let Some(h) = &home {
        if !h.starts_with('/') {
            return Err(format!(
                "home {h:?} of user {name:?} is not an absolute path"
            ));
        }
    }
    let _shell = fields.next();
    let extra = match fields.next() {
        Some(rest) => parse_extra(rest)?,
        None => Vec::new(),
    };
    let quota = QuotaRules::from_extra(&extra).map_err(|e| format!("user {name:?}: {e}"))?;
    Ok(User {
        name: name.to_string(),
        password: password.to_string(),
        uid,
        gid,
        home,
        extra,
        quota,
    })
}

/// A user name becomes a directory name under the mail root: refuse anything that could
/// escape it or confuse a shell or a log line.
fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty user name".into());
    }
    if name.starts_with('.') {
        return Err(format!("user name {name:?} starts with '.'"));
    }
    if name.contains("..") {
        return Err(format!("user name {name:?} contains '..'"));
    }
    if name.contains('/') {
        return Err(format!("user name {name:?} contains '/'"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "user name {name:?} contains a control character (NUL, tab, ...)"
        ));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(format!("user name {name:?} contains white space"));
    }
    Ok(())
}

fn parse_id(field: Option<&str>, what: &str) -> Result<Option<u32>, String> {
    match field {
        None | Some("") => Ok(None),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(format!("{what} {s:?} is not a number")),
        },
    }
}

/// Space-separated `key=value` (or bare `key`) pairs.
fn parse_extra(rest: &str) -> Result<Vec<(String, String)>, String> {
    rest.split_whitespace()
        .map(|item| {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            if k.is_empty() {
                Err(format!("extra field {item:?} has no name before '='"))
            } else {
                Ok((k.to_string(), v.to_string()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(text: &str) -> ParseError {
        match PasswdFile::parse(text) {
            Err(e) => e,
            Ok(f) => panic!("expected an error, got {f:?}"),
        }
    }

    #[test]
    fn full_line() {
        let f = PasswdFile::parse(
            "alice@example.org:{PLAIN}pw:1000:1001:Alice A:/var/mail/alice::userdb_mail=maildir:~/Maildir nodelay quota=1G\n",
        )
        .unwrap();
        let u = &f.users[0];
        assert_eq!(u.name, "alice@example.org");
        assert_eq!(u.password, "{PLAIN}pw");
        assert_eq!((u.uid, u.gid), (Some(1000), Some(1001)));
        assert_eq!(u.home.as_deref(), Some("/var/mail/alice"));
        assert_eq!(
            u.extra,
            vec![
                ("userdb_mail".into(), "maildir:~/Maildir".into()),
                ("nodelay".into(), String::new()),
                ("quota".into(), "1G".into())
            ]
        );
        assert_eq!(u.extra_field("userdb_mail"), Some("maildir:~/Maildir"));
        assert_eq!(u.extra_field("nodelay"), Some(""));
        assert_eq!(u.extra_field("absent"), None);
    }

    #[test]
    fn quota_rules_from_the_extra_field() {
        let f = PasswdFile::parse(
            "q:{PLAIN}x:1:1::::userdb_quota_rule=*:storage=1G userdb_quota_rule2=*:messages=9\nn:{PLAIN}y\n",
        )
        .unwrap();
        let q = f.users[0].quota.as_ref().expect("rules");
        assert_eq!(
            q.root_limits(),
            super::super::quota::Limits {
                bytes: 1 << 30,
                messages: 9
            }
        );
        assert_eq!(f.users[1].quota, None);
    }

    #[test]
    fn minimal_lines_comments_blank_and_crlf() {
        let text = "# users\n\nbob:$6$salt$hash\r\n   \ncarol:{SHA}x::\n#dave:x\ned:{PLAIN}p:5\n";
        let f = PasswdFile::parse(text).unwrap();
        let names: Vec<_> = f.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["bob", "carol", "ed"]);
        assert_eq!(f.users[0].password, "$6$salt$hash");
        assert_eq!(f.users[0].uid, None);
        assert_eq!(f.users[1].home, None);
        assert_eq!(f.users[2].uid, Some(5));
        assert!(f.users[2].extra.is_empty());
        let lines: Vec<_> = parse_with_lines(text)
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(lines, [3, 5, 7]);
    }

    #[test]
    fn empty_file() {
        assert!(PasswdFile::parse("").unwrap().users.is_empty());
        assert!(PasswdFile::parse("# nobody\n\n").unwrap().users.is_empty());
    }

    #[test]
    fn lookup_exact_then_lower_case() {
        let f = PasswdFile::parse("bob@x.org:{PLAIN}a\nBig:{PLAIN}b\n").unwrap();
        assert_eq!(f.lookup("bob@x.org").unwrap().password, "{PLAIN}a");
        assert_eq!(f.lookup("Bob@X.org").unwrap().password, "{PLAIN}a");
        assert_eq!(f.lookup("Big").unwrap().password, "{PLAIN}b");
        assert!(f.lookup("big").is_none());
        assert!(f.lookup("nobody").is_none());
    }

    #[test]
    fn bad_lines_name_line_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            ("ok:{PLAIN}x\nok:{PLAIN}y\n", 2, "duplicate user"),
            ("# c\n:{PLAIN}x\n", 2, "empty user name"),
            ("a/b:{PLAIN}x\n", 1, "'/'"),
            ("\n\n.hidden:{PLAIN}x\n", 3, "starts with '.'"),
            ("..:{PLAIN}x\n", 1, "starts with '.'"),
            ("a..b:{PLAIN}x\n", 1, "'..'"),
            ("a\0b:{PLAIN}x\n", 1, "control character"),
            ("a b:{PLAIN}x\n", 1, "white space"),
            ("nopass\n", 1, "no password field"),
            ("u:{PLAIN}x:abc\n", 1, "uid \"abc\" is not a number"),
            ("u:{PLAIN}x:1:-2\n", 1, "gid \"-2\" is not a number"),
            ("u:{PLAIN}x:+1\n", 1, "uid"),
            ("u:{PLAIN}x:99999999999\n", 1, "uid"),
            ("u:{PLAIN}x:1:1::home\n", 1, "absolute path"),
            ("u:{PLAIN}x:1:1::/h::a=1 =2\n", 1, "no name before '='"),
            (
                "# q\nu:{PLAIN}x::::::userdb_quota_rule=*:storage=1Q\n",
                2,
                "user \"u\": quota rule \"*:storage=1Q\": unknown unit",
            ),
        ];
        for (text, line, reason) in cases {
            let e = err_of(text);
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.reason.contains(reason), "{text:?}: {e}");
        }
    }

    #[test]
    fn errors_never_quote_the_password() {
        let e = err_of("u:{PLAIN}topsecret:notanumber\n");
        assert!(!e.reason.contains("topsecret"), "{e}");
        let e = err_of("u:{PLAIN}topsecret\nu:{PLAIN}topsecret\n");
        assert!(!e.to_string().contains("topsecret"), "{e}");
    }

    #[test]
    fn debug_redacts_password() {
        let f = PasswdFile::parse("u:{PLAIN}topsecret\n").unwrap();
        assert!(!format!("{f:?}").contains("topsecret"));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            ":",
            "::::::::::::",
            "\r",
            "\r\n\r\n",
            "u:",
            "u::::::::",
            "é:ü:1:2:3:/x:y:z=é",
            "#\0",
            "u:p:\u{0}",
        ] {
            let _ = PasswdFile::parse(text);
        }
    }
}
