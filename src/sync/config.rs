//! Turning the sync's settings ([`SyncSettings`], plain values the command line fills in) into a
//! resolved configuration: endpoint and URL style, credentials (environment, `*_FILE`
//! variables, AWS shared-credentials file), routing. Also the parsers the command line uses for
//! the sync's values (durations, `PREFIX=ADDRESS`, the virus action).
//!
//! Owns: where credentials come from and in which order. Never: logs or prints a secret.

use super::plan::AfterDelivery;
use super::route::{Aliases, RouteConfig};
use super::s3::{Retry, S3Config};
use super::sqs::SqsConfig;
use crate::config::MailLocation;
use rusty_s3::{Credentials, UrlStyle};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Parse `30s`, `5m`, `1h`, `500ms`, `2d` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 30s, 5m or 1h"))?;
    let secs = |m: u64| {
        n.checked_mul(m)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long"))
    };
    match unit.trim() {
        "" | "s" => secs(1),
        "ms" => Ok(Duration::from_millis(n)),
        "m" | "min" => secs(60),
        "h" => secs(3600),
        "d" => secs(86400),
        u => Err(format!("{s:?}: unknown unit {u:?} (use ms, s, m, h or d)")),
    }
}

/// `PREFIX=ADDRESS` for `--route-prefix`.
pub fn parse_route_prefix(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((p, a)) if !a.trim().is_empty() => Ok((p.to_string(), a.trim().to_string())),
        _ => Err(format!(
            "{s:?}: expected PREFIX=ADDRESS, e.g. inbound/alice/=alice@example.org"
        )),
    }
}

/// `path` or `virtual`.
pub fn parse_url_style(s: &str) -> Result<UrlStyle, String> {
    match s {
        "path" => Ok(UrlStyle::Path),
        "virtual" | "virtual-host" | "virtual-hosted" => Ok(UrlStyle::VirtualHost),
        _ => Err(format!("{s:?}: expected path or virtual")),
    }
}

/// Where a virus-flagged message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirusAction {
    /// Into the quarantine Maildir (not visible to the user).
    Quarantine,
    /// Into the user's Junk folder.
    Junk,
    /// Into the inbox like any other message.
    Inbox,
}

pub fn parse_virus_action(s: &str) -> Result<VirusAction, String> {
    match s {
        "quarantine" => Ok(VirusAction::Quarantine),
        "junk" => Ok(VirusAction::Junk),
        "inbox" => Ok(VirusAction::Inbox),
        _ => Err(format!("{s:?}: expected quarantine, junk or inbox")),
    }
}

/// What the sync is asked to do, as given (`pimap sync`'s flags, or `pimap serve`'s shared
/// ones and its sync flags): nothing read or checked yet. [`SyncConfig::from_settings`] resolves
/// it at every pass, so rotated credentials and an edited aliases file are picked up.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// pimap's data directory: default users file, mail location, ledger and quarantine.
    pub data_dir: PathBuf,
    /// The passwd-file (default `DATA_DIR/users`).
    pub users: Option<PathBuf>,
    /// The mail location template (default `DATA_DIR/mail/%u`).
    pub mail_location: Option<String>,
    /// Larger objects are skipped (logged with their key).
    pub max_message_size: u64,
    pub s3_bucket: Option<String>,
    pub s3_prefix: String,
    pub s3_region: String,
    /// Default `https://s3.REGION.amazonaws.com`.
    pub s3_endpoint: Option<String>,
    /// `path` or `virtual`; default virtual-hosted for AWS, path-style for a custom endpoint.
    pub s3_url_style: Option<String>,
    pub s3_credentials_file: Option<PathBuf>,
    pub s3_profile: String,
    pub s3_timeout: Duration,
    pub s3_retries: u32,
    pub s3_concurrency: usize,
    /// The ledger (default `DATA_DIR/s3-sync-BUCKET.ledger`; the lock beside it).
    pub s3_state_file: Option<PathBuf>,
    pub deliver_to: Option<String>,
    pub route_prefix: Vec<(String, String)>,
    pub route_header: Option<String>,
    pub aliases: Option<PathBuf>,
    pub local_domain: Vec<String>,
    pub postmaster: Option<String>,
    pub junk_folder: String,
    pub virus_action: VirusAction,
    /// Default `DATA_DIR/quarantine`.
    pub quarantine_dir: Option<PathBuf>,
    pub after_delivery: AfterDelivery,
    /// The SQS queue S3 or SES notifications arrive in (`--sqs-queue`): objects are delivered
    /// as they are announced, the LIST pass becomes the safety net.
    pub sqs_queue: Option<String>,
}

/// The resolved sync configuration.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub s3: S3Config,
    pub prefix: String,
    pub users_path: PathBuf,
    pub mail_location: MailLocation,
    pub ledger_path: PathBuf,
    pub lock_path: PathBuf,
    pub route: RouteConfig,
    pub junk_folder: String,
    pub virus_action: VirusAction,
    pub quarantine_dir: PathBuf,
    pub after: AfterDelivery,
    pub max_message_size: u64,
    pub concurrency: usize,
    pub max_keys: usize,
    /// `--sqs-queue`, with the S3 credentials, timeout and retries.
    pub sqs: Option<SqsConfig>,
}

/// Something that looks environment variables up (the process environment, or a map in tests).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn read_secret_file(path: &str, var: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{var}={path}: {e}"))?;
    Ok(text.trim().to_string())
}

/// Look `name` up directly, or through `name_FILE` (a mounted Kubernetes Secret).
fn env_or_file(env: Env, name: &str) -> Result<Option<String>, String> {
    if let Some(v) = env(name).filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    let file_var = format!("{name}_FILE");
    match env(&file_var).filter(|v| !v.is_empty()) {
        Some(path) => read_secret_file(&path, &file_var).map(Some),
        None => Ok(None),
    }
}

/// Parse the AWS shared-credentials format (INI: `[profile]`, `key = value`) for `profile`.
pub fn parse_shared_credentials(
    text: &str,
    profile: &str,
) -> Option<(String, String, Option<String>)> {
    let (mut in_profile, mut key, mut secret, mut token) = (false, None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_profile =
                name == profile || name.strip_prefix("profile ").map(str::trim) == Some(profile);
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => key = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((key?, secret?, token.filter(|t| !t.is_empty())))
}

/// Credentials, first found wins: `--s3-credentials-file` (explicit), then
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` (each also as `*_FILE`),
/// then `AWS_SHARED_CREDENTIALS_FILE`, then `~/.aws/credentials`.
pub fn resolve_credentials(
    file: Option<&Path>,
    profile: &str,
    env: Env,
) -> Result<Credentials, String> {
    let from_file = |p: &Path| -> Result<Credentials, String> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("S3 credentials file {}: {e}", p.display()))?;
        let (k, s, t) = parse_shared_credentials(&text, profile).ok_or_else(|| {
            format!(
                "S3 credentials file {}: profile [{profile}] has no aws_access_key_id and aws_secret_access_key",
                p.display()
            )
        })?;
        Ok(match t {
            Some(t) => Credentials::new_with_token(k, s, t),
            None => Credentials::new(k, s),
        })
    };
    if let Some(p) = file {
        return from_file(p);
    }
    let key = env_or_file(env, "AWS_ACCESS_KEY_ID")?;
    let secret = env_or_file(env, "AWS_SECRET_ACCESS_KEY")?;
    match (key, secret) {
        (Some(k), Some(s)) => {
            return Ok(match env_or_file(env, "AWS_SESSION_TOKEN")? {
                Some(t) => Credentials::new_with_token(k, s, t),
                None => Credentials::new(k, s),
            })
        }
        (Some(_), None) => {
            return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())
        }
        (None, Some(_)) => {
            return Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into())
        }
        (None, None) => {}
    }
    if let Some(p) = env("AWS_SHARED_CREDENTIALS_FILE").filter(|p| !p.is_empty()) {
        return from_file(Path::new(&p));
    }
    if let Some(home) = env("HOME") {
        let p = Path::new(&home).join(".aws/credentials");
        if p.exists() {
            return from_file(&p);
        }
    }
    Err("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or their *_FILE variants), \
         or --s3-credentials-file"
        .into())
}

/// A file-name-safe form of a bucket name, for the files named after it in the data dir (the
/// ledger, the backup's state).
pub fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The S3 endpoint and URL style: AWS's regional endpoint, virtual-hosted, unless told.
fn endpoint_and_style(o: &SyncSettings) -> Result<(url::Url, UrlStyle), String> {
    let custom = o.s3_endpoint.is_some();
    let endpoint_s = match &o.s3_endpoint {
        Some(e) => e.clone(),
        None => format!("https://s3.{}.amazonaws.com", o.s3_region),
    };
    let endpoint: url::Url = endpoint_s
        .parse()
        .map_err(|e| format!("--s3-endpoint {endpoint_s:?}: {e}"))?;
    let style = match &o.s3_url_style {
        Some(s) => parse_url_style(s)?,
        None if custom => UrlStyle::Path,
        None => UrlStyle::VirtualHost,
    };
    Ok((endpoint, style))
}

impl SyncConfig {
    /// Resolve `o` against the environment `env`.
    pub fn from_settings(o: &SyncSettings, env: Env) -> Result<SyncConfig, String> {
        let bucket = o
            .s3_bucket
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or("no --s3-bucket (PIMAP_S3_BUCKET)")?;
        let (endpoint, style) = endpoint_and_style(o)?;
        let credentials =
            resolve_credentials(o.s3_credentials_file.as_deref(), &o.s3_profile, env)?;
        let data_dir = std::path::absolute(&o.data_dir)
            .map_err(|e| format!("data directory {}: {e}", o.data_dir.display()))?;
        let users_path = o.users.clone().unwrap_or_else(|| data_dir.join("users"));
        let mail_location = match &o.mail_location {
            Some(s) => MailLocation::parse(s)?,
            None => MailLocation::parse(&format!("{}/mail/%u", data_dir.display()))?,
        };
        let ledger_path = o
            .s3_state_file
            .clone()
            .unwrap_or_else(|| data_dir.join(format!("s3-sync-{}.ledger", safe(&bucket))));
        let lock_path = ledger_path.with_extension("lock");
        let aliases = match &o.aliases {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("aliases file {}: {e}", p.display()))?;
                Aliases::parse(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => Aliases::default(),
        };
        let junk = o.junk_folder.trim_start_matches('.');
        if junk.is_empty() || junk.contains('/') || junk.contains("..") || junk.contains('\0') {
            return Err(format!(
                "--junk-folder {:?} is not a folder name",
                o.junk_folder
            ));
        }
        if o.s3_concurrency == 0 || o.s3_concurrency > 64 {
            return Err("--s3-concurrency must be between 1 and 64".into());
        }
        let retry = Retry {
            attempts: o.s3_retries.max(1),
            ..Retry::default()
        };
        let sqs = match o.sqs_queue.as_deref().filter(|q| !q.is_empty()) {
            Some(q) => Some(SqsConfig::new(
                q,
                &o.s3_region,
                credentials.clone(),
                o.s3_timeout,
                retry,
            )?),
            None => None,
        };
        Ok(SyncConfig {
            s3: S3Config {
                endpoint,
                style,
                bucket,
                region: o.s3_region.clone(),
                credentials,
                timeout: o.s3_timeout,
                retry,
            },
            prefix: o.s3_prefix.clone(),
            users_path,
            mail_location,
            ledger_path,
            lock_path,
            route: RouteConfig {
                deliver_to: o.deliver_to.clone(),
                prefixes: o.route_prefix.clone(),
                header: o.route_header.clone(),
                postmaster: o.postmaster.clone(),
                local_domains: o.local_domain.clone(),
                aliases,
            },
            junk_folder: format!(".{junk}"),
            virus_action: o.virus_action,
            quarantine_dir: o
                .quarantine_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("quarantine")),
            after: o.after_delivery.clone(),
            max_message_size: o.max_message_size,
            concurrency: o.s3_concurrency,
            max_keys: 1000,
            sqs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn shared_credentials_profiles() {
        let t = "[default]\naws_access_key_id = AK1\naws_secret_access_key=SK1\n\n[profile ses]\naws_access_key_id=AK2\naws_secret_access_key = SK2\naws_session_token = T2\n";
        assert_eq!(
            parse_shared_credentials(t, "default"),
            Some(("AK1".into(), "SK1".into(), None))
        );
        assert_eq!(
            parse_shared_credentials(t, "ses"),
            Some(("AK2".into(), "SK2".into(), Some("T2".into())))
        );
        assert_eq!(parse_shared_credentials(t, "nope"), None);
    }

    #[test]
    fn credentials_from_env_and_file_vars() {
        let dir = std::env::temp_dir().join(format!("pimap-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret_file = dir.join("secret");
        std::fs::write(&secret_file, "SKFILE\n").unwrap();
        let mut vars = HashMap::new();
        vars.insert("AWS_ACCESS_KEY_ID".to_string(), "AK".to_string());
        vars.insert(
            "AWS_SECRET_ACCESS_KEY_FILE".to_string(),
            secret_file.display().to_string(),
        );
        let env = |k: &str| vars.get(k).cloned();
        let c = resolve_credentials(None, "default", &env).unwrap();
        assert_eq!((c.key(), c.secret(), c.token()), ("AK", "SKFILE", None));
        let only_key = |k: &str| {
            if k == "AWS_ACCESS_KEY_ID" {
                Some("AK".to_string())
            } else {
                None
            }
        };
        assert!(resolve_credentials(None, "default", &only_key)
            .unwrap_err()
            .contains("AWS_SECRET_ACCESS_KEY"));
        let none = |_: &str| None;
        assert!(resolve_credentials(None, "default", &none)
            .unwrap_err()
            .contains("no S3 credentials"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn route_prefix_and_styles() {
        assert_eq!(
            parse_route_prefix("in/a/=a@x.example"),
            Ok(("in/a/".into(), "a@x.example".into()))
        );
        assert!(parse_route_prefix("in/a/").is_err());
        assert!(matches!(parse_url_style("path"), Ok(UrlStyle::Path)));
        assert!(parse_url_style("vhost").is_err());
    }

    /// `pimap sync`'s defaults (cli.rs) for the bucket mail-in in eu-west-1.
    fn settings() -> SyncSettings {
        SyncSettings {
            data_dir: "./pimap-data".into(),
            users: None,
            mail_location: None,
            max_message_size: 64 * 1024 * 1024,
            s3_bucket: Some("mail-in".into()),
            s3_prefix: String::new(),
            s3_region: "eu-west-1".into(),
            s3_endpoint: None,
            s3_url_style: None,
            s3_credentials_file: None,
            s3_profile: "default".into(),
            s3_timeout: Duration::from_secs(60),
            s3_retries: 5,
            s3_concurrency: 8,
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
        }
    }

    fn cfg(change: impl FnOnce(&mut SyncSettings)) -> Result<SyncConfig, String> {
        let mut s = settings();
        change(&mut s);
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AK".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("SK".to_string()),
            _ => None,
        };
        SyncConfig::from_settings(&s, &env)
    }

    fn base_url(c: &SyncConfig) -> String {
        rusty_s3::Bucket::new(
            c.s3.endpoint.clone(),
            c.s3.style,
            c.s3.bucket.clone(),
            c.s3.region.clone(),
        )
        .unwrap()
        .base_url()
        .to_string()
    }

    #[test]
    fn url_style_defaults_virtual_for_aws_path_for_custom_endpoints() {
        let aws = cfg(|_| {}).unwrap();
        assert_eq!(
            base_url(&aws),
            "https://mail-in.s3.eu-west-1.amazonaws.com/"
        );
        let custom = cfg(|s| s.s3_endpoint = Some("http://127.0.0.1:9000".into())).unwrap();
        assert_eq!(base_url(&custom), "http://127.0.0.1:9000/mail-in/");
        let forced = cfg(|s| {
            s.s3_endpoint = Some("https://s3.example.net".into());
            s.s3_url_style = Some("virtual".into());
        })
        .unwrap();
        assert_eq!(base_url(&forced), "https://mail-in.s3.example.net/");
        let path_aws = cfg(|s| s.s3_url_style = Some("path".into())).unwrap();
        assert_eq!(
            base_url(&path_aws),
            "https://s3.eu-west-1.amazonaws.com/mail-in/"
        );
        assert!(cfg(|s| s.s3_url_style = Some("sideways".into())).is_err());
        assert!(cfg(|s| s.s3_concurrency = 0).is_err());
        assert!(cfg(|s| s.junk_folder = "../x".into()).is_err());
        assert_eq!(
            cfg(|s| s.junk_folder = "Spam".into()).unwrap().junk_folder,
            ".Spam"
        );
        assert_eq!(cfg(|_| {}).unwrap().after, AfterDelivery::Keep);
    }

    /// Cargo.toml pins idna_adapter 1.0 (no Unicode data, 124 KB less of the binary): a host
    /// name with non-ASCII letters is refused, and its xn-- form is how to write one. Fails if
    /// the pin is lost, so the size cost cannot come back unnoticed.
    #[test]
    fn endpoint_host_names_are_ascii_or_punycode() {
        let e = cfg(|s| s.s3_endpoint = Some("https://bücher.example".into())).unwrap_err();
        assert!(e.contains("--s3-endpoint"), "{e}");
        let c = cfg(|s| s.s3_endpoint = Some("https://xn--bcher-kva.example".into())).unwrap();
        assert_eq!(base_url(&c), "https://xn--bcher-kva.example/mail-in/");
        let e = cfg(|s| s.sqs_queue = Some("https://sqs.bücher.example/1/in".into())).unwrap_err();
        assert!(e.contains("--sqs-queue"), "{e}");
        assert!(
            cfg(|s| s.sqs_queue = Some("https://sqs.xn--bcher-kva.example/1/in".into())).is_ok()
        );
    }

    #[test]
    fn relative_data_dir_is_made_absolute() {
        let c = cfg(|s| s.data_dir = "./pd".into()).unwrap();
        let want = std::env::current_dir().unwrap().join("pd");
        assert_eq!(c.users_path, want.join("users"));
        assert_eq!(c.ledger_path, want.join("s3-sync-mail-in.ledger"));
        assert_eq!(c.quarantine_dir, want.join("quarantine"));
    }

    #[test]
    fn sqs_queue_shares_the_s3_credentials_and_checks_its_url() {
        assert!(cfg(|_| {}).unwrap().sqs.is_none());
        let c = cfg(|s| {
            s.sqs_queue = Some("https://sqs.eu-central-1.amazonaws.com/123456789012/in".into())
        })
        .unwrap();
        let q = c.sqs.unwrap();
        assert_eq!(
            (q.region.as_str(), q.credentials.key()),
            ("eu-central-1", "AK")
        );
        assert_eq!(q.retry.attempts, 5);
        let e = cfg(|s| s.sqs_queue = Some("in".into())).unwrap_err();
        assert!(e.contains("--sqs-queue"), "{e}");
    }
}
