//! Backup of every user's Maildir to S3, and restore from it (`pimap backup`, `pimap restore`,
//! `serve --backup-interval`).
//!
//! Layout under `--backup-prefix P`, per user `U`:
//! - `P/U/m/ID`: one message file's bytes. `ID` is the SHA-256 of the bytes (keyed with the
//!   encryption key when there is one), so a renamed file (a flag change), a copy in another
//!   folder and a message seen again in the next pass are uploaded once.
//! - `P/U/b/ID`: a mailbox manifest ([`manifest::Mailbox`]); `ID` is the hash of its text, so
//!   an unchanged folder is not written again.
//! - `P/U/s/YYYYMMDDTHHMMSSZ`: a snapshot ([`manifest::Snapshot`]), written last in a pass:
//!   it names only manifests and messages already stored, so a pass cut anywhere (kill -9, a
//!   network failure) leaves the previous snapshots whole. A no-op pass writes only this.
//!
//! Retention: snapshots older than `--backup-retention` are deleted (the newest older one is
//! kept, since it describes the state up to the next one), and once a day objects no kept
//! snapshot names are deleted: expunged mail goes after the retention.
//!
//! Owns: the object layout, the local state (a hash cache and the last prune time, in the data
//! dir, with a lock so two passes never overlap), retention. Never: writes to a Maildir during
//! a backup (it reads the files as they are), or writes over a non-empty one during a restore.

pub mod crypt;
pub mod manifest;
pub mod pass;
pub mod restore;
pub mod run;
pub mod scan;

use crate::sync::s3::{S3Client, S3Config};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default `--backup-retention`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86400);

/// Objects that are not messages (manifests, snapshots) are read up to this size.
pub const MAX_SMALL_OBJECT: u64 = 1024 * 1024 * 1024;

/// Where backups go and how.
pub struct Target {
    pub client: S3Client,
    /// `--backup-prefix`, with a trailing `/` unless empty.
    pub prefix: String,
    pub seal: Seal,
    pub concurrency: usize,
    /// Largest message a restore accepts.
    pub max_message_size: u64,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("bucket", &self.client.bucket_name())
            .field("prefix", &self.prefix)
            .field("encrypted", &!matches!(self.seal, Seal::Plain))
            .finish()
    }
}

impl Target {
    pub fn new(s3: S3Config, prefix: &str, seal: Seal, concurrency: usize) -> Result<Self, String> {
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Ok(Target {
            client: S3Client::new(s3)?,
            prefix,
            seal,
            concurrency: concurrency.clamp(1, 64),
            max_message_size: 1024 * 1024 * 1024,
        })
    }

    /// `P/U/` for a user.
    pub fn user_prefix(&self, user: &str) -> String {
        format!("{}{user}/", self.prefix)
    }

    /// Where this target's objects are, for messages.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.client.bucket_name(), self.prefix)
    }
}

/// How objects are stored: as they are, or encrypted to an age identity ([`crypt`]).
pub enum Seal {
    Plain,
    /// `--backup-key-file`: every object is an age file for the identity's recipient; object
    /// IDs are keyed with the identity ([`Seal::object_id`]).
    Age(Box<crypt::Identity>),
}

impl Seal {
    /// The object ID of content with SHA-256 `hash` (hex). Encrypted: keyed with the identity,
    /// so the bucket cannot confirm that it holds a known message.
    pub fn object_id(&self, hash: &str) -> String {
        match self {
            Seal::Plain => hash.to_string(),
            Seal::Age(id) => id.object_id(hash),
        }
    }

    /// The stored length of `n` plain bytes.
    pub fn sealed_len(&self, n: u64) -> u64 {
        match self {
            Seal::Plain => n,
            Seal::Age(_) => crypt::encrypted_len(n),
        }
    }

    /// The stored form of `plain` (`n` bytes), as a stream.
    pub fn seal<'a>(&self, plain: impl Read + 'a, n: u64) -> Box<dyn Read + 'a> {
        match self {
            Seal::Plain => Box::new(plain),
            Seal::Age(id) => match crypt::encrypt_reader(id, plain, n) {
                Ok(r) => Box::new(r),
                // No randomness for the file key: the upload fails with this error.
                Err(e) => Box::new(Failing(Some(e))),
            },
        }
    }

    /// The plain bytes of a stored object, as a stream (errors: not ours, wrong key).
    pub fn open<'a>(&self, stored: impl Read + 'a) -> Result<Box<dyn Read + 'a>, String> {
        match self {
            Seal::Plain => Ok(Box::new(stored)),
            Seal::Age(id) => crypt::decrypt_reader(id, stored)
                .map(|r| Box::new(r) as Box<dyn Read + 'a>)
                .map_err(|e| e.to_string()),
        }
    }

    pub fn seal_bytes(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.sealed_len(data.len() as u64) as usize);
        // Reading from memory cannot fail.
        let _ = self.seal(data, data.len() as u64).read_to_end(&mut out);
        out
    }
}

/// A reader that fails with the error it holds (then reports end of stream).
struct Failing(Option<std::io::Error>);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// A snapshot key's name part for `secs` since the epoch: `YYYYMMDDTHHMMSSZ`.
pub fn snapshot_name(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (y, m, d) = crate::imap::types::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The time of a snapshot key's name part (`None`: not one of ours).
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    let b = name.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = name.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let days = crate::imap::types::days_from_civil(y as i64, mo as u32, d as u32);
    let secs = days.checked_mul(86400)? + (h * 3600 + mi * 60 + s) as i64;
    u64::try_from(secs).ok()
}

/// `--at`: `2026-12-05T03:15:00Z`, `2026-12-05T03:15Z`, `2026-12-05` (end of that day, UTC),
/// a snapshot name (`20261205T031500Z`) or seconds since the epoch.
pub fn parse_at(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    if let Some(t) = parse_snapshot_name(s) {
        return Ok(t);
    }
    let compact: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
    let full = match compact.len() {
        8 => format!("{compact}T235959Z"),
        14 if compact.ends_with('Z') => format!("{}00Z", &compact[..13]),
        16 => compact,
        _ => String::new(),
    };
    parse_snapshot_name(&full).ok_or_else(|| {
        format!("{s:?}: expected a time like 2026-12-05T03:15:00Z, a date, or a snapshot name")
    })
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The data-dir files of one backup target: the state (hash cache, last prune) and its lock.
pub fn state_paths(data_dir: &Path, bucket: &str) -> (PathBuf, PathBuf) {
    let safe = crate::sync::config::safe(bucket);
    (
        data_dir.join(format!("backup-{safe}.state")),
        data_dir.join(format!("backup-{safe}.lock")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_round_trip_and_sort_by_time() {
        for t in [0u64, 1, 86399, 86400, 1_733_370_000, 4_102_444_799] {
            let n = snapshot_name(t);
            assert_eq!(parse_snapshot_name(&n), Some(t), "{n}");
        }
        assert_eq!(snapshot_name(1_764_904_500), "20251205T031500Z");
        assert!(snapshot_name(1_000_000_000) < snapshot_name(1_000_000_001));
        for bad in [
            "",
            "20251305T031500Z",
            "2025120xT031500Z",
            "20251205T031500",
            "x",
        ] {
            assert_eq!(parse_snapshot_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn at_accepts_times_dates_and_names() {
        assert_eq!(parse_at("2025-12-05T03:15:00Z"), Ok(1_764_904_500));
        assert_eq!(parse_at("2025-12-05T03:15Z"), Ok(1_764_904_500));
        assert_eq!(parse_at("20251205T031500Z"), Ok(1_764_904_500));
        assert_eq!(parse_at("2025-12-05"), Ok(1_764_979_199));
        assert_eq!(parse_at("12345"), Ok(12345));
        assert!(parse_at("yesterday").is_err());
        assert!(parse_at("2025-13-05").is_err());
    }
}
