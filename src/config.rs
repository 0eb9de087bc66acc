//! Resolved configuration: the server's settings ([`ServeSettings`], plain values the command
//! line fills in) turned into paths and values, validated once at start-up so that a
//! misconfiguration is one clear error, not a crash loop.
//!
//! Owns: the users file (and the default one with a demo user), the mail location template,
//! the limits. Never: names a command-line or network type; the TLS certificate and the PROXY
//! networks are only carried here as given, `net` loads them (`net::server::NetConfig`).

use crate::auth::UserDb;
use crate::limits::Limits;
use crate::privdrop::RunAs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the server is asked to do, as given (`pimap serve`'s and `pimap check`'s flags):
/// nothing read or checked yet.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub data_dir: PathBuf,
    pub imap_listen: Vec<SocketAddr>,
    pub imaps_listen: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CIDR lists as given (commas and/or spaces inside an item are allowed).
    pub proxy_trusted_networks: Vec<String>,
    /// The passwd-file (default `DATA_DIR/users`).
    pub users: Option<PathBuf>,
    /// The mail location template (default `DATA_DIR/mail/%u`).
    pub mail_location: Option<String>,
    pub allow_plaintext_auth: bool,
    pub autocreate_folders: bool,
    /// `max_login_delay` below `failed_login_delay` is raised to it.
    pub limits: Limits,
    pub run_as: RunAs,
    pub http_listen: Option<SocketAddr>,
}

/// Where the certificate chain and its key are (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Config {
    pub data_dir: PathBuf,
    pub imap_listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (RFC 8314); non-empty only with `tls`.
    pub imaps_listen: Vec<SocketAddr>,
    /// The certificate and key (IMAPS, STARTTLS), if configured.
    pub tls: Option<TlsFiles>,
    /// Peers that must send a PROXY header (and the only ones allowed to), as given.
    pub proxy_trusted_networks: Vec<String>,
    pub users_path: PathBuf,
    pub users: Arc<UserDb>,
    pub mail_location: MailLocation,
    pub allow_plaintext_auth: bool,
    pub autocreate_folders: bool,
    pub limits: Limits,
    /// `--run-as`: who to become after binding, when started as root.
    pub run_as: RunAs,
    /// `--http-listen`: the /healthz and /metrics endpoint, if enabled.
    pub http_listen: Option<SocketAddr>,
}

/// A Dovecot-style mail location template (`%u`, `%n`, `%d`, `~`).
#[derive(Debug, Clone)]
pub struct MailLocation {
    template: String,
}

impl MailLocation {
    pub fn parse(s: &str) -> Result<MailLocation, String> {
        let t = s.strip_prefix("maildir:").unwrap_or(s);
        // Dovecot options after ':' (e.g. `:LAYOUT=fs`) are not supported: say so.
        if let Some((_, opts)) = t.split_once(':') {
            return Err(format!(
                "mail location {s:?}: options {opts:?} are not supported (only maildir:PATH)"
            ));
        }
        if t.is_empty() {
            return Err("mail location is empty".into());
        }
        let mut chars = t.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('u' | 'n' | 'd' | '%') => {}
                    other => {
                        return Err(format!(
                            "mail location {s:?}: unknown variable %{} (use %u, %n, %d)",
                            other.map(String::from).unwrap_or_default()
                        ))
                    }
                }
            }
        }
        if !(t.starts_with('/') || t.starts_with("~/") || t.starts_with('.')) {
            return Err(format!(
                "mail location {s:?} must be an absolute path, ./relative or ~/..."
            ));
        }
        Ok(MailLocation {
            template: t.to_string(),
        })
    }

    /// The fixed directory every user's Maildir is created under (the template up to the
    /// last `/` before its first variable), for the health check and the privilege drop;
    /// `None` when it depends on the user's home (`~/...`).
    pub fn fixed_root(&self) -> Option<PathBuf> {
        if self.template.starts_with("~/") {
            return None;
        }
        let t = self.template.trim_end_matches('/');
        let fixed = match t.find('%') {
            Some(i) => t.get(..i).unwrap_or(t),
            None => t,
        };
        let dir = fixed.rsplit_once('/').map_or(".", |(d, _)| d);
        Some(PathBuf::from(if dir.is_empty() { "/" } else { dir }))
    }

    /// The Maildir root for `user` (whose home is `home`, if the users file gives one).
    /// Refuses user names that could escape the template's directory.
    pub fn resolve(&self, user: &str, home: Option<&str>) -> Result<PathBuf, String> {
        if user.is_empty()
            || user.contains('/')
            || user.contains('\0')
            || user.starts_with('.')
            || user.contains("..")
        {
            return Err(format!("user name {user:?} cannot be used in a path"));
        }
        let (local, domain) = match user.rsplit_once('@') {
            Some((l, d)) => (l, d),
            None => (user, ""),
        };
        let mut out = String::new();
        let mut chars = self.template.chars().peekable();
        if self.template.starts_with("~/") {
            let home =
                home.ok_or_else(|| format!("mail location uses ~ but user {user:?} has no home"))?;
            out.push_str(home.trim_end_matches('/'));
            chars.next();
        }
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('u') => out.push_str(user),
                    Some('n') => out.push_str(local),
                    Some('d') => out.push_str(domain),
                    Some('%') => out.push('%'),
                    _ => {}
                }
            } else {
                out.push(c);
            }
        }
        Ok(PathBuf::from(out))
    }
}

impl Config {
    /// Resolve `args`. With `create_default` (`serve`), a missing default users file is created
    /// holding a `demo` user with a random password, printed once.
    pub fn from_settings(args: &ServeSettings, create_default: bool) -> Result<Config, String> {
        let data_dir = args.data_dir.clone();
        // The embedded default's users file, found (not created) this time: say how to get a
        // new demo password, once the users are read.
        let mut hint_demo = false;
        let users_path = match &args.users {
            Some(p) => p.clone(),
            None => {
                let p = data_dir.join("users");
                if !p.exists() && create_default {
                    create_demo_users(&data_dir, &p, args.run_as)?;
                } else {
                    hint_demo = create_default;
                }
                p
            }
        };
        let mail_location = match &args.mail_location {
            Some(s) => MailLocation::parse(s)?,
            None => {
                let abs = std::path::absolute(&data_dir)
                    .map_err(|e| format!("data directory {}: {e}", data_dir.display()))?;
                MailLocation::parse(&format!("{}/mail/%u", abs.display()))?
            }
        };
        if args.imap_listen.is_empty() {
            return Err("no --imap-listen address".into());
        }
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => Some(TlsFiles {
                cert: c.clone(),
                key: k.clone(),
            }),
            (None, None) => None,
            (Some(_), None) => return Err("--tls-cert needs --tls-key".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert".into()),
        };
        if !args.imaps_listen.is_empty() && tls.is_none() {
            return Err("--imaps-listen needs a certificate: set --tls-cert and --tls-key".into());
        }
        let users = UserDb::load(&users_path)?;
        if hint_demo && users.lookup("demo").is_some() {
            hint_demo_password(&users_path);
        }
        if args.limits.max_connections == 0 || args.limits.max_connections_per_ip == 0 {
            return Err("--max-connections and --max-connections-per-ip must be at least 1".into());
        }
        let mut limits = args.limits.clone();
        limits.max_login_delay = limits.max_login_delay.max(limits.failed_login_delay);
        Ok(Config {
            data_dir,
            imap_listen: args.imap_listen.clone(),
            imaps_listen: args.imaps_listen.clone(),
            tls,
            proxy_trusted_networks: args.proxy_trusted_networks.clone(),
            users_path,
            users: Arc::new(users),
            mail_location,
            allow_plaintext_auth: args.allow_plaintext_auth,
            autocreate_folders: args.autocreate_folders,
            limits,
            run_as: args.run_as,
            http_listen: args.http_listen,
        })
    }
}

/// The embedded default: `users` with a `demo` user and a random password, printed once.
/// Started as root, the file belongs to `run_as`, which reads it again after the privilege
/// drop (SIGHUP, edits, the S3 sync), like the data dir `privdrop::prepare_dir` made for it.
fn create_demo_users(
    data_dir: &Path,
    users: &Path,
    run_as: crate::privdrop::RunAs,
) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
    let password = random_password(16)?;
    let hash = crate::auth::hash_password("SHA512-CRYPT", password.as_bytes()).map_err(|e| e.0)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(users)
        .map_err(|e| format!("creating {}: {e}", users.display()))?;
    writeln!(
        f,
        "# pimap users (Dovecot passwd-file). Add users with: pimap pw\ndemo:{hash}::::::"
    )
    .map_err(|e| format!("writing {}: {e}", users.display()))?;
    crate::privdrop::give_to(users, run_as)?;
    println!("demo account: user demo, password {password}");
    Ok(())
}

/// A later start with the demo users file still there: its password was printed only when
/// the file was made, so say how to get a new one.
fn hint_demo_password(users: &Path) {
    let exe = std::env::args_os().next().unwrap_or_else(|| "pimap".into());
    log::info!(
        "users file {u} has the demo account, whose password was printed only when the file \
         was created. To set a new one, run `{exe} pw`, put the hash it prints in place of \
         the one after `demo:` in {u} and send SIGHUP; or delete {u} and restart for a new \
         demo account and password",
        exe = std::path::Path::new(&exe).display(),
        u = crate::privdrop::shown(users).display()
    );
}

/// A random password of `n` characters from an unambiguous alphabet.
pub fn random_password(n: usize) -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| format!("no randomness: {e}"))?;
        for &b in &buf {
            // rejection sampling keeps the distribution uniform
            if (b as usize) < 256 - 256 % ALPHABET.len() && out.len() < n {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_root_is_the_directory_before_the_first_variable() {
        let f = |t: &str| MailLocation::parse(t).unwrap().fixed_root();
        assert_eq!(f("maildir:/var/mail/%u"), Some("/var/mail".into()));
        assert_eq!(f("/var/mail/%d/%n"), Some("/var/mail".into()));
        assert_eq!(f("/var/mail/u-%u/"), Some("/var/mail".into()));
        assert_eq!(f("/srv/shared"), Some("/srv".into()));
        assert_eq!(f("/%u"), Some("/".into()));
        assert_eq!(f("./mail/%u"), Some("./mail".into()));
        assert_eq!(f("~/Maildir"), None);
    }
}
