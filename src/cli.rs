//! Command line: `pimap serve` (the IMAP server, with the built-in S3 sync when asked),
//! `pimap check` (validate the configuration and users file, print what was found), `pimap pw`
//! (hash a password for the users file) and `pimap sync` (copy SES mail from S3 into the
//! Maildirs). Every flag except `pw --password` can also come from its `PIMAP_*` environment
//! variable (named in `--help`).
//!
//! Owns: every clap type, turned into plain settings once ([`ServeArgs::settings`],
//! [`ServeArgs::sync_settings`], [`SyncArgs::settings`]), and each command's start-up order and
//! exit code. Never: lets a clap type reach the layers below (`config`, `net`, `sync`).

use crate::config::{Config, ServeSettings};
use crate::limits::Limits;
use crate::net::server::NetConfig;
use crate::sync::config::{parse_duration, parse_route_prefix, parse_virus_action, VirusAction};
use crate::sync::plan::AfterDelivery;
use crate::sync::SyncSettings;
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod backup;
pub use backup::{BackupArgs, BackupKeyArgs, BackupOptions, RestoreArgs};

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
    Sync(SyncArgs),
    /// Back every user's Maildir up to --backup-bucket (one pass: new messages, changed
    /// manifests, a snapshot; then retention).
    Backup(BackupArgs),
    /// Rebuild users' Maildirs from --backup-bucket (same UIDs, flags and keywords).
    Restore(RestoreArgs),
    /// Make a backup encryption key: an age identity file (mode 0600) for --backup-key-file;
    /// prints its public key.
    BackupKey(BackupKeyArgs),
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
          value_parser = parse_duration)]
    pub login_timeout: Duration,
    /// Autologout after this long without a command (RFC 3501 §5.4 asks for at least 30m).
    #[arg(long, env = "PIMAP_IDLE_TIMEOUT", default_value = "30m",
          value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Time to finish a command once it started, plus its literals' time at 4 KiB/s.
    #[arg(long, env = "PIMAP_COMMAND_TIMEOUT", default_value = "60s",
          value_parser = parse_duration)]
    pub command_timeout: Duration,
    /// Delay before answering a failed login; doubles per recent failure from the address.
    #[arg(long, env = "PIMAP_FAILED_LOGIN_DELAY", default_value = "2s",
          value_parser = parse_duration)]
    pub failed_login_delay: Duration,
    /// Cap of the failed-login delay.
    #[arg(long, env = "PIMAP_MAX_LOGIN_DELAY", default_value = "30s",
          value_parser = parse_duration)]
    pub max_login_delay: Duration,
    /// error, warn, info, debug or trace.
    #[arg(long, env = "PIMAP_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Create and subscribe Drafts, Sent, Trash, Junk and Archive (RFC 6154 special-use) the
    /// first time a user without a Maildir logs in (`true` or `false`).
    #[arg(long, env = "PIMAP_AUTOCREATE_FOLDERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub autocreate_folders: bool,
    /// The built-in S3 sync (runs inside the server when --sync-interval and --s3-bucket are set).
    #[command(flatten)]
    pub sync: SyncOptions,
    /// Back the Maildirs up to --backup-bucket every DURATION (`1h`, `1d`), inside the server.
    #[arg(long, env = "PIMAP_BACKUP_INTERVAL", value_parser = parse_duration)]
    pub backup_interval: Option<Duration>,
    #[command(flatten)]
    pub backup: BackupOptions,
}

impl ServeArgs {
    /// The server's settings (everything but logging and the S3 sync).
    pub fn settings(&self) -> ServeSettings {
        ServeSettings {
            data_dir: self.data_dir.clone(),
            imap_listen: self.imap_listen.clone(),
            imaps_listen: self.imaps_listen.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            proxy_trusted_networks: self.proxy_trusted_networks.clone(),
            users: self.users.clone(),
            mail_location: self.mail_location.clone(),
            allow_plaintext_auth: self.allow_plaintext_auth,
            autocreate_folders: self.autocreate_folders,
            limits: Limits {
                max_message_size: self.max_message_size,
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                login_timeout: self.login_timeout,
                idle_timeout: self.idle_timeout,
                command_timeout: self.command_timeout,
                failed_login_delay: self.failed_login_delay,
                max_login_delay: self.max_login_delay,
                ..Limits::default()
            },
            run_as: self.run_as,
            http_listen: self.http_listen,
        }
    }

    /// The built-in sync's settings: `serve`'s own `--data-dir`, `--users`, `--mail-location`
    /// and `--max-message-size`, and the sync flags.
    pub fn sync_settings(&self) -> SyncSettings {
        self.sync.settings(
            &self.data_dir,
            &self.users,
            &self.mail_location,
            self.max_message_size,
        )
    }
}

/// `pimap sync` flags. `--data-dir`, `--users` and `--mail-location` are the same as
/// `pimap serve`'s; the rest is in [`SyncOptions`], which `serve` can flatten in as well.
#[derive(clap::Args, Debug, Clone)]
pub struct SyncArgs {
    /// Directory for pimap's data (default users file, default mail location).
    #[arg(long, env = "PIMAP_DATA_DIR", default_value = "./pimap-data")]
    pub data_dir: PathBuf,
    /// Dovecot passwd-file with the users (default: DATA_DIR/users, created with a demo user).
    #[arg(long, env = "PIMAP_USERS")]
    pub users: Option<PathBuf>,
    /// Where each user's Maildir is: `%u` user, `%n` local part, `%d` domain, `~` home
    /// (a `maildir:` prefix is accepted). Default: DATA_DIR/mail/%u.
    #[arg(long, env = "PIMAP_MAIL_LOCATION")]
    pub mail_location: Option<String>,
    /// Largest message, bytes: larger objects are skipped (logged with their key).
    #[arg(long, env = "PIMAP_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024 * 1024)]
    pub max_message_size: u64,
    /// Run one pass and exit (exit code 1 if anything failed): for a CronJob.
    #[arg(long, env = "PIMAP_SYNC_ONCE")]
    pub once: bool,
    #[command(flatten)]
    pub opts: SyncOptions,
}

/// The S3 sync's own flags (shared by `pimap sync` and `pimap serve --sync-interval`).
#[derive(clap::Args, Debug, Clone)]
pub struct SyncOptions {
    /// Run a pass every DURATION (`30s`, `5m`, `1h`); with `serve`, inside the server.
    #[arg(long, env = "PIMAP_SYNC_INTERVAL", value_parser = parse_duration)]
    pub sync_interval: Option<Duration>,
    /// The bucket SES writes to.
    #[arg(long, env = "PIMAP_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Only objects under this key prefix (e.g. `inbound/`).
    #[arg(long, env = "PIMAP_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// The S3 endpoint, region, credentials and request settings.
    #[command(flatten)]
    pub s3: S3Options,
    /// The ledger of delivered keys (default DATA_DIR/s3-sync-BUCKET.ledger; lock beside it).
    #[arg(long, env = "PIMAP_S3_STATE_FILE")]
    pub s3_state_file: Option<PathBuf>,
    /// Deliver everything to this user (single-user setups).
    #[arg(long, env = "PIMAP_DELIVER_TO")]
    pub deliver_to: Option<String>,
    /// Route by key prefix: `PREFIX=ADDRESS` (repeatable; env: comma-separated).
    #[arg(long, env = "PIMAP_ROUTE_PREFIX", value_delimiter = ',', value_parser = parse_route_prefix)]
    pub route_prefix: Vec<(String, String)>,
    /// Route by a header a receipt rule's add-header action stamps in (e.g. `X-Mail-To`).
    #[arg(long, env = "PIMAP_ROUTE_HEADER")]
    pub route_header: Option<String>,
    /// Aliases file: `alias@domain: user` and `@domain: user` (catch-all) lines.
    #[arg(long, env = "PIMAP_ALIASES")]
    pub aliases: Option<PathBuf>,
    /// Domains whose local part may match a user name without a domain (repeatable).
    #[arg(long, env = "PIMAP_LOCAL_DOMAIN", value_delimiter = ',')]
    pub local_domain: Vec<String>,
    /// User that gets unroutable mail (logged with its object key).
    #[arg(long, env = "PIMAP_POSTMASTER")]
    pub postmaster: Option<String>,
    /// Maildir++ folder for `X-SES-Spam-Verdict: FAIL` mail.
    #[arg(long, env = "PIMAP_JUNK_FOLDER", default_value = ".Junk")]
    pub junk_folder: String,
    /// `X-SES-Virus-Verdict: FAIL` mail: quarantine (a Maildir users can't see), junk or inbox.
    #[arg(long, env = "PIMAP_VIRUS_ACTION", value_parser = parse_virus_action, default_value = "quarantine")]
    pub virus_action: VirusAction,
    /// The quarantine Maildir (default DATA_DIR/quarantine).
    #[arg(long, env = "PIMAP_QUARANTINE_DIR")]
    pub quarantine_dir: Option<PathBuf>,
    /// After delivery: keep, delete, or move:PREFIX (copy under PREFIX, then delete).
    #[arg(long, env = "PIMAP_AFTER_DELIVERY", default_value = "keep")]
    pub after_delivery: AfterDelivery,
    /// SQS queue URL that S3 event or SES notifications arrive in: each announced object is
    /// delivered at once (long poll), and the LIST pass runs every --sync-interval (default
    /// 1h) as the safety net.
    #[arg(long, env = "PIMAP_SQS_QUEUE")]
    pub sqs_queue: Option<String>,
}

/// How to reach S3 (shared by the sync, the backup and the restore).
#[derive(clap::Args, Debug, Clone)]
pub struct S3Options {
    /// The bucket's region (used for signing and the default endpoint).
    #[arg(long, env = "PIMAP_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// S3 endpoint URL (default `https://s3.REGION.amazonaws.com`; any S3-compatible URL; an
    /// internationalized host name in its `xn--` form).
    #[arg(long, env = "PIMAP_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// `path` or `virtual` (default: virtual-hosted for AWS, path-style for --s3-endpoint).
    #[arg(long, env = "PIMAP_S3_URL_STYLE")]
    pub s3_url_style: Option<String>,
    /// AWS shared-credentials file (`[profile]` with aws_access_key_id / aws_secret_access_key
    /// / aws_session_token). Otherwise AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    /// AWS_SESSION_TOKEN, each also as a `*_FILE` variable naming a file that holds it.
    #[arg(long, env = "PIMAP_S3_CREDENTIALS_FILE")]
    pub s3_credentials_file: Option<PathBuf>,
    /// Profile in the credentials file.
    #[arg(long, env = "PIMAP_S3_PROFILE", default_value = "default")]
    pub s3_profile: String,
    /// Per-request network timeout (connect, response, each read).
    #[arg(long, env = "PIMAP_S3_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub s3_timeout: Duration,
    /// Attempts per request for 5xx, throttling, timeouts and resets (with backoff).
    #[arg(long, env = "PIMAP_S3_RETRIES", default_value_t = 5)]
    pub s3_retries: u32,
    /// Concurrent S3 requests (the sync's GETs; a backup's uploads, a restore's downloads).
    #[arg(long, env = "PIMAP_S3_CONCURRENCY", default_value_t = 8)]
    pub s3_concurrency: usize,
}

impl SyncOptions {
    /// True when a bucket is configured (so `serve` knows whether to start the timer).
    pub fn is_configured(&self) -> bool {
        self.s3_bucket.as_deref().is_some_and(|b| !b.is_empty())
    }

    /// These flags with the ones `sync` shares with `serve`.
    fn settings(
        &self,
        data_dir: &std::path::Path,
        users: &Option<PathBuf>,
        mail_location: &Option<String>,
        max_message_size: u64,
    ) -> SyncSettings {
        SyncSettings {
            data_dir: data_dir.to_path_buf(),
            users: users.clone(),
            mail_location: mail_location.clone(),
            max_message_size,
            s3_bucket: self.s3_bucket.clone(),
            s3_prefix: self.s3_prefix.clone(),
            s3_region: self.s3.s3_region.clone(),
            s3_endpoint: self.s3.s3_endpoint.clone(),
            s3_url_style: self.s3.s3_url_style.clone(),
            s3_credentials_file: self.s3.s3_credentials_file.clone(),
            s3_profile: self.s3.s3_profile.clone(),
            s3_timeout: self.s3.s3_timeout,
            s3_retries: self.s3.s3_retries,
            s3_concurrency: self.s3.s3_concurrency,
            s3_state_file: self.s3_state_file.clone(),
            deliver_to: self.deliver_to.clone(),
            route_prefix: self.route_prefix.clone(),
            route_header: self.route_header.clone(),
            aliases: self.aliases.clone(),
            local_domain: self.local_domain.clone(),
            postmaster: self.postmaster.clone(),
            junk_folder: self.junk_folder.clone(),
            virus_action: self.virus_action,
            quarantine_dir: self.quarantine_dir.clone(),
            after_delivery: self.after_delivery.clone(),
            sqs_queue: self.sqs_queue.clone(),
        }
    }
}

impl SyncArgs {
    /// The sync's settings.
    pub fn settings(&self) -> SyncSettings {
        self.opts.settings(
            &self.data_dir,
            &self.users,
            &self.mail_location,
            self.max_message_size,
        )
    }

    /// How often `pimap sync` runs a pass in the foreground; `None`: once, then exit.
    pub fn every(&self) -> Option<Duration> {
        self.opts.sync_interval.filter(|_| !self.once)
    }
}

#[derive(Args, Debug)]
pub struct PwArgs {
    /// Scheme: SHA512-CRYPT (default), SHA256-CRYPT, BLF-CRYPT, ARGON2I, ARGON2ID, SSHA,
    /// SSHA256, SSHA512, SHA256, SHA512, SCRAM-SHA-256 (also lets AUTHENTICATE SCRAM-SHA-256
    /// in), SCRAM-SHA-1, PLAIN.
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
            match load(&args, true) {
                Ok((cfg, net)) => {
                    let (users, root) = (cfg.users_path.clone(), cfg.mail_location.fixed_root());
                    match crate::net::server::run(cfg, net, || after_bind(&args, &users, root)) {
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
                let (cfg, net) =
                    load(&args, false).map_err(|e| format!("configuration error: {e}"))?;
                let report = check_report(&cfg, &net)?;
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
            crate::sync::main(args.settings(), args.every(), args.once)
        }
        Cmd::Backup(args) => backup::backup_command(args),
        Cmd::BackupKey(args) => backup::backup_key_command(args),
        Cmd::Restore(args) => backup::restore_command(args),
    }
}

/// `serve` and `check`: the configuration, then the network layer's TLS certificate and PROXY
/// networks; either's problem is a configuration error.
fn load(args: &ServeArgs, create_default: bool) -> Result<(Config, NetConfig), String> {
    let cfg = Config::from_settings(&args.settings(), create_default)?;
    let net = NetConfig::load(&cfg)?;
    Ok((cfg, net))
}

/// What `pimap check` prints; an error if any user's mail root cannot be resolved.
fn check_report(cfg: &Config, net: &NetConfig) -> Result<String, String> {
    let names = cfg.users.user_names();
    let mut s = String::new();
    s.push_str(&format!(
        "users file: {} ({} users)\n",
        cfg.users_path.display(),
        names.len()
    ));
    for n in &names {
        let u = cfg
            .users
            .lookup(n)
            .ok_or_else(|| format!("user {n:?} vanished"))?;
        let root = cfg.mail_location.resolve(n, u.home.as_deref())?;
        s.push_str(&format!("  {n}: mail in {}\n", root.display()));
    }
    for a in &cfg.imap_listen {
        s.push_str(&format!("imap listen: {a}\n"));
    }
    for a in &cfg.imaps_listen {
        s.push_str(&format!("imaps listen: {a}\n"));
    }
    match &net.tls {
        Some(t) => s.push_str(&format!(
            "TLS: certificate {} (STARTTLS offered)\n",
            t.cert_path().display()
        )),
        None => s.push_str("TLS: off (no --tls-cert)\n"),
    }
    if !net.proxy_trusted.is_empty() {
        s.push_str(&format!(
            "PROXY protocol required from: {}\n",
            net.proxy_trusted
        ));
    }
    s.push_str(&format!(
        "plaintext auth: {}\n",
        if cfg.allow_plaintext_auth {
            "allowed everywhere"
        } else {
            "loopback and TLS connections only"
        }
    ));
    s.push_str(&format!(
        "max message size: {} bytes\n",
        cfg.limits.max_message_size
    ));
    Ok(s)
}

/// `serve` and `check`, as root before the drop: the data dir as pimap uses it from now on
/// (privdrop).
fn enter_data_dir(args: &ServeArgs) -> Result<PathBuf, String> {
    crate::privdrop::enter_data_dir(&args.data_dir, args.run_as, uses_data_dir(args))
}

/// Does pimap keep files in the data dir: the default users file or mail location, the S3
/// sync's ledger and quarantine, the backup's state and lock?
fn uses_data_dir(args: &ServeArgs) -> bool {
    args.users.is_none()
        || args.mail_location.is_none()
        || args.sync.is_configured()
        || args.backup.is_configured()
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
        backup_state_dir: args.backup.is_configured().then(|| args.data_dir.clone()),
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
    start_sync(args)?;
    backup::start_backup(args)
}

/// `serve --sync-interval`: validate the sync configuration now (a clear start-up error, not a
/// failing pass every interval), then run passes on a background thread.
fn start_sync(args: &ServeArgs) -> Result<(), String> {
    let opts = &args.sync;
    let queue = opts.sqs_queue.as_deref().filter(|q| !q.is_empty());
    match (opts.sync_interval, opts.is_configured()) {
        (None, false) if queue.is_none() => Ok(()),
        (_, false) if queue.is_some() => Err("--sqs-queue needs --s3-bucket".into()),
        (_, false) => Err("--sync-interval needs --s3-bucket".into()),
        (interval, true) if queue.is_some() => {
            let settings = args.sync_settings();
            let env = |k: &str| std::env::var(k).ok();
            crate::sync::config::SyncConfig::from_settings(&settings, &env)
                .map_err(|e| format!("S3 sync: {e}"))?;
            let every = interval.unwrap_or(crate::sync::queue::DEFAULT_LIST_EVERY);
            log::info!("S3 sync on notifications from --sqs-queue; LIST pass every {every:?}");
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            crate::sync::queue::spawn_watch(settings, every, stop);
            Ok(())
        }
        (None, true) => Err(
            "--s3-bucket is set but --sync-interval is not: say how often to sync (e.g. 1m), \
             or give --sqs-queue"
                .into(),
        ),
        (Some(interval), true) => {
            let settings = args.sync_settings();
            let env = |k: &str| std::env::var(k).ok();
            crate::sync::config::SyncConfig::from_settings(&settings, &env)
                .map_err(|e| format!("S3 sync: {e}"))?;
            log::info!("S3 sync every {interval:?}");
            crate::sync::spawn_periodic(settings, interval);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Cmd, String> {
        let argv = std::iter::once("pimap").chain(argv.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.command)
            .map_err(|e| e.to_string())
    }

    fn sync_args(argv: &[&str]) -> SyncArgs {
        match parse(&[&["sync"], argv].concat()) {
            Ok(Cmd::Sync(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sync_flags_become_plain_settings() {
        let a = sync_args(&[
            "--data-dir",
            "/srv/pd",
            "--s3-bucket",
            "mail-in",
            "--s3-url-style",
            "path",
            "--route-prefix",
            "in/a/=a@example.org,in/b/=b@example.org",
            "--virus-action",
            "junk",
            "--after-delivery",
            "move:done/",
            "--s3-timeout",
            "90s",
            "--sync-interval",
            "5m",
        ]);
        let s = a.settings();
        assert_eq!(s.data_dir, PathBuf::from("/srv/pd"));
        assert_eq!(s.s3_bucket.as_deref(), Some("mail-in"));
        assert_eq!(s.s3_url_style.as_deref(), Some("path"));
        assert_eq!(s.s3_region, "us-east-1");
        assert_eq!(s.s3_prefix, "");
        assert_eq!(s.junk_folder, ".Junk");
        assert_eq!(s.s3_timeout, Duration::from_secs(90));
        assert_eq!(s.s3_concurrency, 8);
        assert_eq!(s.max_message_size, 64 * 1024 * 1024);
        assert_eq!(
            s.route_prefix,
            [
                ("in/a/".to_string(), "a@example.org".to_string()),
                ("in/b/".to_string(), "b@example.org".to_string())
            ]
        );
        assert_eq!(s.virus_action, VirusAction::Junk);
        assert_eq!(s.after_delivery, AfterDelivery::Move("done/".into()));
        assert_eq!(a.every(), Some(Duration::from_secs(300)));
        let once = sync_args(&["--s3-bucket", "b", "--sync-interval", "5m", "--once"]);
        assert_eq!(once.every(), None);
        assert_eq!(sync_args(&["--s3-bucket", "b"]).every(), None);
        assert!(parse(&["sync", "--after-delivery", "shred"]).is_err());
        assert!(parse(&["sync", "--virus-action", "ignore"]).is_err());
        assert!(parse(&["sync", "--route-prefix", "in/a/"]).is_err());
    }

    #[test]
    fn serve_flags_become_plain_settings() {
        let Ok(Cmd::Serve(a)) = parse(&[
            "serve",
            "--max-connections",
            "7",
            "--failed-login-delay",
            "3s",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--proxy-trusted-networks",
            "10.0.0.0/8,192.168.1.5",
            "--users",
            "/etc/pimap/users",
            "--s3-bucket",
            "b",
        ]) else {
            panic!("serve did not parse")
        };
        let s = a.settings();
        assert_eq!(s.limits.max_connections, 7);
        assert_eq!(s.limits.max_connections_per_ip, 50);
        assert_eq!(s.limits.failed_login_delay, Duration::from_secs(3));
        assert_eq!(s.limits.idle_timeout, Duration::from_secs(30 * 60));
        assert_eq!(s.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(s.tls_key, Some(PathBuf::from("k.pem")));
        assert_eq!(s.proxy_trusted_networks, ["10.0.0.0/8", "192.168.1.5"]);
        assert!(s.autocreate_folders);
        // The built-in sync shares serve's users file and data directory.
        let sync = a.sync_settings();
        assert_eq!(sync.users, Some(PathBuf::from("/etc/pimap/users")));
        assert_eq!(sync.data_dir, a.data_dir);
        assert_eq!(sync.s3_bucket.as_deref(), Some("b"));
        assert!(parse(&["serve", "--tls-cert", "c.pem"]).is_err());
    }
}
