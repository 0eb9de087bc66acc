//! Command line: `pimap serve | check | pw`. Every flag can also come from `PIMAP_<FLAG>`.

use crate::config::Config;
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "pimap",
    version,
    about = "IMAP server over Maildir with built-in S3 sync"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the IMAP server.
    Serve(ServeArgs),
    /// Load and validate the configuration and users file, print what was found.
    Check(ServeArgs),
    /// Read a password (prompt or stdin) and print a `{SCHEME}hash` for the users file.
    Pw(PwArgs),
    /// Copy new SES messages from an S3 bucket into the users' Maildirs (exactly once).
    Sync(crate::sync::SyncArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Directory for pimap's data (default users file, default mail location).
    #[arg(long, env = "PIMAP_DATA_DIR", default_value = "./pimap-data")]
    pub data_dir: PathBuf,
    /// Address to accept plain IMAP connections on (repeatable; env: comma-separated).
    #[arg(
        long,
        env = "PIMAP_IMAP_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1:1143"
    )]
    pub imap_listen: Vec<SocketAddr>,
    /// Address to accept implicit-TLS IMAPS connections on (RFC 8314; repeatable; env:
    /// comma-separated). Needs --tls-cert and --tls-key.
    #[arg(long, env = "PIMAP_IMAPS_LISTEN", value_delimiter = ',')]
    pub imaps_listen: Vec<SocketAddr>,
    /// PEM certificate chain, leaf first (a k8s TLS Secret's tls.crt). Enables STARTTLS on
    /// --imap-listen; reloaded when the file changes and on SIGHUP.
    #[arg(long, env = "PIMAP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert (PKCS#8, PKCS#1 or SEC1; a k8s TLS Secret's tls.key).
    #[arg(long, env = "PIMAP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Peers (CIDR, comma-separated) that must start each connection with a PROXY protocol
    /// v1/v2 header naming the real client (a load balancer); Dovecot's
    /// haproxy_trusted_networks. A header from any other peer is refused.
    #[arg(long, env = "PIMAP_PROXY_TRUSTED_NETWORKS", value_delimiter = ',')]
    pub proxy_trusted_networks: Vec<String>,
    /// Dovecot passwd-file with the users (default: DATA_DIR/users, created with a demo user).
    #[arg(long, env = "PIMAP_USERS")]
    pub users: Option<PathBuf>,
    /// Where each user's Maildir is: `%u` user, `%n` local part, `%d` domain, `~` home
    /// (a `maildir:` prefix is accepted). Default: DATA_DIR/mail/%u.
    #[arg(long, env = "PIMAP_MAIL_LOCATION")]
    pub mail_location: Option<String>,
    /// Allow LOGIN/AUTHENTICATE PLAIN without TLS from non-loopback peers (Tailscale-only nets).
    #[arg(long, env = "PIMAP_ALLOW_PLAINTEXT_AUTH")]
    pub allow_plaintext_auth: bool,
    /// Largest message APPEND accepts, bytes.
    #[arg(long, env = "PIMAP_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024 * 1024)]
    pub max_message_size: u64,
    /// After binding the ports as root, become this user and group (`UID:GID`, numbers or
    /// names); 0 is refused. Not started as root: ignored (logged).
    #[arg(long, env = "PIMAP_RUN_AS", default_value = crate::privdrop::DEFAULT_RUN_AS,
          value_parser = |s: &str| s.parse::<crate::privdrop::RunAs>())]
    pub run_as: crate::privdrop::RunAs,
    /// Address for the HTTP health and metrics endpoint (/healthz, /metrics); off if unset.
    #[arg(long, env = "PIMAP_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Most IMAP connections open at once; more are answered `* BYE Too many connections`.
    #[arg(long, env = "PIMAP_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,
    /// Most IMAP connections open at once from one client address (IPv6: per /64).
    #[arg(long, env = "PIMAP_MAX_CONNECTIONS_PER_IP", default_value_t = 50)]
    pub max_connections_per_ip: usize,
    /// Time from connecting to a completed login (the whole login, however slow the client).
    #[arg(long, env = "PIMAP_LOGIN_TIMEOUT", default_value = "60s",
          value_parser = crate::sync::config::parse_duration)]
    pub login_timeout: std::time::Duration,
    /// Autologout after this long without a command (RFC 3501 §5.4 asks for at least 30m).
    #[arg(long, env = "PIMAP_IDLE_TIMEOUT", default_value = "30m",
          value_parser = crate::sync::config::parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Time to finish a command once it started, plus its literals' time at 4 KiB/s.
    #[arg(long, env = "PIMAP_COMMAND_TIMEOUT", default_value = "60s",
          value_parser = crate::sync::config::parse_duration)]
    pub command_timeout: std::time::Duration,
    /// Delay before answering a failed login; doubles per recent failure from the address.
    #[arg(long, env = "PIMAP_FAILED_LOGIN_DELAY", default_value = "2s",
          value_parser = crate::sync::config::parse_duration)]
    pub failed_login_delay: std::time::Duration,
    /// Cap of the failed-login delay.
    #[arg(long, env = "PIMAP_MAX_LOGIN_DELAY", default_value = "30s",
          value_parser = crate::sync::config::parse_duration)]
    pub max_login_delay: std::time::Duration,
    /// error, warn, info, debug or trace.
    #[arg(long, env = "PIMAP_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Create and subscribe Drafts, Sent, Trash, Junk and Archive (RFC 6154 special-use) the
    /// first time a user without a Maildir logs in (`true` or `false`).
    #[arg(long, env = "PIMAP_AUTOCREATE_FOLDERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub autocreate_folders: bool,
    /// The built-in S3 sync (runs inside the server when --sync-interval and --s3-bucket are set).
    #[command(flatten)]
    pub sync: crate::sync::SyncOptions,
}

#[derive(Args, Debug)]
pub struct PwArgs {
    /// Scheme: SHA512-CRYPT (default), SHA256-CRYPT, BLF-CRYPT, ARGON2I, ARGON2ID, SSHA,
    /// SSHA256, SSHA512, SHA256, SHA512, PLAIN.
    #[arg(
        short = 's',
        long = "scheme",
        env = "PIMAP_PW_SCHEME",
        default_value = "SHA512-CRYPT"
    )]
    pub scheme: String,
    /// The password (like doveadm pw -p; prefer the prompt or stdin).
    #[arg(short = 'p', long = "password")]
    pub password: Option<String>,
}

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Cmd::Serve(mut args) => {
            // Before any thread exists, so every thread inherits the mask (net::lifecycle).
            if let Err(e) = crate::net::lifecycle::block_signals() {
                eprintln!("pimap: {e}");
                return 1;
            }
            init_logging(&args.log_level);
            // Started as root: a new data directory belongs to the --run-as user (privdrop).
            if let Err(e) = crate::privdrop::prepare_dir(&args.data_dir, args.run_as) {
                eprintln!("pimap: {e}");
                return 1;
            }
            // ... and one below a directory it may not enter is entered now (privdrop).
            match enter_data_dir(&args) {
                Ok(dir) => args.data_dir = dir,
                Err(e) => {
                    eprintln!("pimap: {e}");
                    return 1;
                }
            }
            match Config::from_args(&args, true) {
                Ok(cfg) => {
                    let (users, root) = (cfg.users_path.clone(), cfg.mail_location.fixed_root());
                    match crate::net::server::run(cfg, || after_bind(&args, &users, root)) {
                        Ok(()) => 0,
                        Err(e) => {
                            log::error!("{e}");
                            eprintln!("pimap: {e}");
                            1
                        }
                    }
                }
                Err(e) => {
                    eprintln!("pimap: configuration error: {e}");
                    1
                }
            }
        }
        Cmd::Check(mut args) => {
            // As `serve` would: read everything as root, then drop and check as --run-as.
            let checked = enter_data_dir(&args).and_then(|dir| {
                args.data_dir = dir;
                let cfg = Config::from_args(&args, false)
                    .map_err(|e| format!("configuration error: {e}"))?;
                let report = cfg.check_report()?;
                if crate::privdrop::drop_privileges(args.run_as)?
                    == crate::privdrop::Outcome::Dropped
                {
                    let root = cfg.mail_location.fixed_root();
                    crate::privdrop::check_after_drop(
                        &needs(&args, &cfg.users_path, root),
                        args.run_as,
                    )?;
                }
                Ok(report)
            });
            match checked {
                Ok(report) => {
                    print!("{}", crate::privdrop::shown_in(&report));
                    0
                }
                Err(e) => {
                    eprintln!("pimap check: {e}");
                    1
                }
            }
        }
        Cmd::Pw(args) => pw(args),
        Cmd::Sync(args) => {
            init_logging(&std::env::var("PIMAP_LOG_LEVEL").unwrap_or_else(|_| "info".into()));
            crate::sync::main_once(args)
        }
    }
}

/// `serve` and `check`, as root before the drop: the data dir as pimap uses it from now on
/// (privdrop).
fn enter_data_dir(args: &ServeArgs) -> Result<PathBuf, String> {
    crate::privdrop::enter_data_dir(&args.data_dir, args.run_as, uses_data_dir(args))
}

/// Does pimap keep files in the data dir: the default users file or mail location, the S3
/// sync's ledger and quarantine?
fn uses_data_dir(args: &ServeArgs) -> bool {
    args.users.is_none() || args.mail_location.is_none() || args.sync.is_configured()
}

/// What pimap still uses after the privilege drop (privdrop::check_after_drop).
fn needs(
    args: &ServeArgs,
    users: &std::path::Path,
    mail_root: Option<PathBuf>,
) -> crate::privdrop::Needs {
    let sync_state_dir = args.sync.is_configured().then(|| {
        // The ledger and its lock live here (sync::config).
        match args.sync.s3_state_file.as_deref().and_then(|f| f.parent()) {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            Some(_) => PathBuf::from("."),
            None => args.data_dir.clone(),
        }
    });
    crate::privdrop::Needs {
        data_dir: uses_data_dir(args).then(|| args.data_dir.clone()),
        users: users.to_path_buf(),
        users_is_default: args.users.is_none(),
        mail_root,
        sync_state_dir,
    }
}

/// `serve`, once the ports are bound: become `--run-as` when started as root (privdrop), check
/// that what pimap uses later works as that user (a clear error now beats a failing login or
/// sync pass later), then start the S3 sync, so that its passes and files belong to the mail
/// user.
fn after_bind(
    args: &ServeArgs,
    users: &std::path::Path,
    mail_root: Option<PathBuf>,
) -> Result<(), String> {
    let run_as = args.run_as;
    if let Some(root) = &mail_root {
        crate::privdrop::prepare_dir(root, run_as)?;
    }
    if crate::privdrop::drop_privileges(run_as)? == crate::privdrop::Outcome::Dropped {
        crate::privdrop::check_after_drop(&needs(args, users, mail_root), run_as)?;
    }
    start_sync(args)
}

/// `serve --sync-interval`: validate the sync configuration now (a clear start-up error, not a
/// failing pass every interval), then run passes on a background thread.
fn start_sync(args: &ServeArgs) -> Result<(), String> {
    let opts = &args.sync;
    match (opts.sync_interval, opts.is_configured()) {
        (None, false) => Ok(()),
        (Some(_), false) => Err("--sync-interval needs --s3-bucket".into()),
        (None, true) => Err(
            "--s3-bucket is set but --sync-interval is not: say how often to sync (e.g. 1m)".into(),
        ),
        (Some(interval), true) => {
            let sargs = crate::sync::SyncArgs::from_serve(args, opts.clone());
            let env = |k: &str| std::env::var(k).ok();
            crate::sync::config::SyncConfig::from_args(&sargs, &env)
                .map_err(|e| format!("S3 sync: {e}"))?;
            log::info!("S3 sync every {interval:?}");
            crate::sync::spawn_periodic(sargs, interval);
            Ok(())
        }
    }
}

fn init_logging(level: &str) {
    let level = level.parse().unwrap_or(log::LevelFilter::Info);
    let _ = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_utc_timestamps()
        .init();
}

fn pw(args: PwArgs) -> i32 {
    let password = match args.password {
        Some(p) => p,
        None => {
            let stdin = std::io::stdin();
            let tty = stdin.is_terminal();
            let read = || -> Option<String> {
                if tty {
                    eprint!("Enter new password: ");
                    let _ = std::io::stderr().flush();
                }
                let mut line = String::new();
                stdin.lock().read_line(&mut line).ok()?;
                Some(line.trim_end_matches(['\r', '\n']).to_string())
            };
            let Some(first) = read() else {
                eprintln!("pimap pw: could not read a password");
                return 1;
            };
            if tty {
                let again = read().unwrap_or_default();
                if again != first {
                    eprintln!("pimap pw: passwords don't match");
                    return 1;
                }
            }
            first
        }
    };
    if password.is_empty() {
        eprintln!("pimap pw: empty password");
        return 1;
    }
    match crate::auth::hash_password(&args.scheme.to_ascii_uppercase(), password.as_bytes()) {
        Ok(h) => {
            println!("{h}");
            0
        }
        Err(e) => {
            eprintln!("pimap pw: {}", e.0);
            1
        }
    }
}
