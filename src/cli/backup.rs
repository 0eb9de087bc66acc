//! The backup's command line: `pimap backup`, `pimap restore`, `pimap backup-key` and
//! `serve --backup-interval` (their flags, and turning them into a [`BackupConfig`]).

use super::{init_logging, S3Options, ServeArgs, SyncOptions};
use crate::backup::run::BackupConfig;
use crate::sync::config::{parse_duration, VirusAction};
use crate::sync::plan::AfterDelivery;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BackupKeyArgs {
    /// Where to write the key; an existing file is never overwritten.
    pub file: PathBuf,
}

/// `--backup-*` flags (shared by `pimap backup`, `pimap restore` and `serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct BackupOptions {
    /// The bucket backups go to (a different one from the SES bucket is best).
    #[arg(long, env = "PIMAP_BACKUP_BUCKET")]
    pub backup_bucket: Option<String>,
    /// Key prefix of the backups in --backup-bucket (e.g. `pi1/`).
    #[arg(long, env = "PIMAP_BACKUP_PREFIX", default_value = "")]
    pub backup_prefix: String,
    /// How long expunged mail and older snapshots are kept (`30d`, `12h`).
    #[arg(long, env = "PIMAP_BACKUP_RETENTION", value_parser = parse_duration, default_value = "30d")]
    pub backup_retention: Duration,
    /// Encrypt every object with this age identity file (`pimap backup-key FILE` or
    /// `age-keygen -o FILE` makes one): the bucket never sees plaintext mail. Keep a copy of
    /// it somewhere else: without it the backup cannot be read.
    #[arg(long, env = "PIMAP_BACKUP_KEY_FILE")]
    pub backup_key_file: Option<PathBuf>,
}

impl BackupOptions {
    /// True when a backup bucket is configured.
    pub fn is_configured(&self) -> bool {
        self.backup_bucket.as_deref().is_some_and(|b| !b.is_empty())
    }
}

/// `pimap backup` flags (`pimap restore` has them too).
#[derive(clap::Args, Debug, Clone)]
pub struct BackupArgs {
    /// Directory for pimap's data (default users file and mail location; the backup's state).
    #[arg(long, env = "PIMAP_DATA_DIR", default_value = "./pimap-data")]
    pub data_dir: PathBuf,
    /// Dovecot passwd-file with the users (default: DATA_DIR/users).
    #[arg(long, env = "PIMAP_USERS")]
    pub users: Option<PathBuf>,
    /// Where each user's Maildir is (as for `serve`). Default: DATA_DIR/mail/%u.
    #[arg(long, env = "PIMAP_MAIL_LOCATION")]
    pub mail_location: Option<String>,
    /// Only this user (default: every user in the users file).
    #[arg(long)]
    pub user: Option<String>,
    #[command(flatten)]
    pub backup: BackupOptions,
    #[command(flatten)]
    pub s3: S3Options,
}

/// `pimap restore` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: BackupArgs,
    /// Restore the state at this time (the newest snapshot at or before it):
    /// `2026-12-05T03:15:00Z`, `2026-12-05`, or a snapshot name. Default: the newest.
    #[arg(long, value_parser = crate::backup::parse_at)]
    pub at: Option<u64>,
    /// Restore even where a user's Maildir is not empty: it is first moved aside to
    /// `MAILDIR.pre-restore-TIME` (never deleted).
    #[arg(long)]
    pub force: bool,
}

impl BackupArgs {
    /// The resolved configuration (credentials read, users file and mail location found).
    pub fn config(&self) -> Result<BackupConfig, String> {
        backup_config(
            &self.backup,
            &self.s3,
            &self.data_dir,
            &self.users,
            &self.mail_location,
            self.user.clone(),
        )
    }
}

/// A backup configuration from the flags `backup`, `restore` and `serve` share.
fn backup_config(
    b: &BackupOptions,
    s3: &S3Options,
    data_dir: &std::path::Path,
    users: &Option<PathBuf>,
    mail_location: &Option<String>,
    user: Option<String>,
) -> Result<BackupConfig, String> {
    let bucket = b
        .backup_bucket
        .clone()
        .filter(|x| !x.is_empty())
        .ok_or("no --backup-bucket (PIMAP_BACKUP_BUCKET)")?;
    // The sync's resolution of endpoint, style, credentials and paths, for this bucket.
    let opts = SyncOptions {
        sync_interval: None,
        s3_bucket: Some(bucket),
        s3_prefix: String::new(),
        s3: s3.clone(),
        s3_state_file: None,
        deliver_to: None,
        route_prefix: Vec::new(),
        route_header: None,
        aliases: None,
        local_domain: Vec::new(),
        postmaster: None,
        junk_folder: ".Junk".into(),
        virus_action: VirusAction::Quarantine,
        quarantine_dir: None,
        after_delivery: AfterDelivery::Keep,
        sqs_queue: None,
    };
    let settings = opts.settings(data_dir, users, mail_location, 0);
    let env = |k: &str| std::env::var(k).ok();
    let sync = crate::sync::config::SyncConfig::from_settings(&settings, &env)?;
    let seal = match &b.backup_key_file {
        Some(path) => crate::backup::Seal::Age(Box::new(
            crate::backup::crypt::Identity::from_file(path)
                .map_err(|e| format!("--backup-key-file: {e}"))?,
        )),
        None => crate::backup::Seal::Plain,
    };
    let target = crate::backup::Target::new(sync.s3, &b.backup_prefix, seal, s3.s3_concurrency)?;
    let data_dir = std::path::absolute(data_dir)
        .map_err(|e| format!("data directory {}: {e}", data_dir.display()))?;
    Ok(BackupConfig {
        target,
        users_path: sync.users_path,
        mail_location: sync.mail_location,
        data_dir,
        retention: b.backup_retention,
        user,
    })
}

/// `pimap backup-key FILE`: a new identity, written with mode 0600 to a file that must not
/// exist yet; returns its public key.
fn write_backup_key(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let id = crate::backup::crypt::Identity::generate()?;
    let text = id.to_file_text(std::time::SystemTime::now());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(id.recipient_string())
}

/// `serve --backup-interval`: resolve the backup configuration now (a clear start-up error),
/// then run passes on a thread of their own.
pub(super) fn start_backup(args: &ServeArgs) -> Result<(), String> {
    match (args.backup_interval, args.backup.is_configured()) {
        (None, false) => Ok(()),
        (Some(_), false) => Err("--backup-interval needs --backup-bucket".into()),
        (None, true) => Err(
            "--backup-bucket is set but --backup-interval is not: say how often to back up \
             (e.g. 1h), or run `pimap backup` from a timer"
                .into(),
        ),
        (Some(every), true) => {
            let cfg = backup_config(
                &args.backup,
                &args.sync.s3,
                &args.data_dir,
                &args.users,
                &args.mail_location,
                None,
            )
            .map_err(|e| format!("backup: {e}"))?;
            log::info!("backup to {} every {every:?}", cfg.target.describe());
            crate::backup::run::spawn_periodic(cfg, every);
            Ok(())
        }
    }
}

/// `pimap backup`: one pass; the exit code.
pub(super) fn backup_command(args: BackupArgs) -> i32 {
    init_logging(&std::env::var("PIMAP_LOG_LEVEL").unwrap_or_else(|_| "info".into()));
    match args.config() {
        Ok(cfg) => crate::backup::run::backup_main(cfg),
        Err(e) => {
            eprintln!("pimap backup: configuration error: {e}");
            1
        }
    }
}

/// `pimap restore`; the exit code.
pub(super) fn restore_command(args: RestoreArgs) -> i32 {
    init_logging(&std::env::var("PIMAP_LOG_LEVEL").unwrap_or_else(|_| "info".into()));
    match args.common.config() {
        Ok(cfg) => crate::backup::run::restore_main(cfg, args.at, args.force),
        Err(e) => {
            eprintln!("pimap restore: configuration error: {e}");
            1
        }
    }
}

/// `pimap backup-key FILE`; the exit code.
pub(super) fn backup_key_command(args: BackupKeyArgs) -> i32 {
    match write_backup_key(&args.file) {
        Ok(public) => {
            println!("{public}");
            eprintln!(
                "pimap backup-key: wrote {}; keep a copy off this machine: without it the \
                 backups cannot be read",
                args.file.display()
            );
            0
        }
        Err(e) => {
            eprintln!("pimap backup-key: {e}");
            1
        }
    }
}
