//! The X25519 identity: the age identity file (age §"The X25519 recipient type": the secret
//! key as Bech32 with HRP `AGE-SECRET-KEY-`, the recipient as Bech32 with HRP `age`), in the
//! layout `age-keygen` writes.

use bech32::{Bech32, Hrp};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use x25519_dalek::{x25519, X25519_BASEPOINT_BYTES};
use zeroize::Zeroizing;

/// Identity files are a few lines; anything bigger is not one.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A backup key: an X25519 secret key and its public key (the recipient). `Debug` shows the
/// recipient only; the secret is wiped from memory on drop.
pub struct Identity {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("recipient", &self.recipient_string())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Identity {
    /// A new random identity (what `age-keygen` does). Errs only when the system has no
    /// randomness.
    pub fn generate() -> Result<Identity, String> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut secret[..]).map_err(|e| format!("no randomness for a key: {e}"))?;
        Ok(Identity::from_secret(secret))
    }

    fn from_secret(secret: Zeroizing<[u8; 32]>) -> Identity {
        // age: recipient = X25519(identity, basepoint).
        let public = x25519(*secret, X25519_BASEPOINT_BYTES);
        Identity { secret, public }
    }

    /// Loads the identity file at `path`: `#` comment lines, blank lines, and exactly one
    /// `AGE-SECRET-KEY-1…` line. Errors name the file (and the line), never its contents. A
    /// file that group or others may read is accepted with a warning in the log, as ssh
    /// does for keys.
    pub fn from_file(path: &Path) -> Result<Identity, String> {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{shown}: no such key file"),
            _ => format!("{shown}: cannot open the key file: {e}"),
        })?;
        #[cfg(unix)]
        if let Ok(meta) = file.metadata() {
            if let Some(warning) = permission_warning(path, meta_mode(&meta)) {
                log::warn!("{warning}");
            }
        }
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{shown}: cannot read the key file: {e}"))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "{shown}: over {MAX_FILE_BYTES} bytes, not an age identity file"
            ));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format!("{shown}: not text, not an age identity file"))?;
        Identity::from_text(text).map_err(|e| format!("{shown}: {e}"))
    }

    /// Parses the text of an identity file (see [`Identity::from_file`]); the error names the
    /// line but not the file.
    pub fn from_text(text: &str) -> Result<Identity, String> {
        let mut found: Option<(usize, Identity)> = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = parse_secret_key(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            if let Some((first, _)) = found {
                return Err(format!(
                    "lines {first} and {}: two keys; a backup key file holds exactly one",
                    i + 1
                ));
            }
            found = Some((i + 1, id));
        }
        found
            .map(|(_, id)| id)
            .ok_or_else(|| "no AGE-SECRET-KEY-1… line (an empty or comment-only file)".to_string())
    }

    /// The public key, `age1…`: what `age -r` takes to encrypt to this identity.
    pub fn recipient_string(&self) -> String {
        encode("age", &self.public)
    }

    /// The text of an identity file, in `age-keygen`'s layout: a `# created:` comment (RFC
    /// 3339, UTC), a `# public key:` comment, the secret key. Write it with mode 0600.
    pub fn to_file_text(&self, created: SystemTime) -> Zeroizing<String> {
        let secs = created
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        // Uppercase, as age-keygen writes it (Bech32 allows either case, not a mix).
        let mut secret = Zeroizing::new(encode("age-secret-key-", &self.secret[..]));
        secret.make_ascii_uppercase();
        Zeroizing::new(format!(
            "# created: {}\n# public key: {}\n{}\n",
            rfc3339_utc(secs),
            self.recipient_string(),
            secret.as_str()
        ))
    }

    /// The object ID of content whose SHA-256 is `hash` (hex): an HMAC-SHA-256 keyed with a
    /// key derived from the secret, so the bucket's keys reveal nothing about the messages (a
    /// plain hash would let anyone holding a message confirm it is there).
    pub fn object_id(&self, hash: &str) -> String {
        use ring::hmac;
        let master = hmac::Key::new(hmac::HMAC_SHA256, &self.secret[..]);
        let derived = hmac::sign(&master, b"pimap backup object IDs v1");
        let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        crate::auth::scheme::hex_encode(hmac::sign(&key, hash.as_bytes()).as_ref())
    }

    pub(super) fn public_bytes(&self) -> &[u8; 32] {
        &self.public
    }

    pub(super) fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// Bech32 (BIP 173) of `data` under `hrp`, in lowercase.
fn encode(hrp: &str, data: &[u8]) -> String {
    // A 32-byte key with a short HRP is far below Bech32's 1023-character code length.
    bech32::encode_lower::<Bech32>(Hrp::parse_unchecked(hrp), data)
        .unwrap_or_else(|e| unreachable!("bech32 of a 32-byte key: {e}"))
}

/// One non-comment line of an identity file. The errors describe the line but never repeat
/// it: it may be a mistyped secret key.
fn parse_secret_key(line: &str) -> Result<Identity, String> {
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("AGE1") {
        return Err("a public key (age1…), not a secret key: use the file age-keygen wrote".into());
    }
    if upper.starts_with("AGE-PLUGIN-") {
        return Err("a plugin identity: only X25519 keys (AGE-SECRET-KEY-1…) are supported".into());
    }
    if upper.starts_with("AGE-SECRET-KEY-PQ-") {
        return Err(
            "a post-quantum key: only X25519 keys (AGE-SECRET-KEY-1…) are supported".into(),
        );
    }
    if !upper.starts_with("AGE-SECRET-KEY-1") {
        return Err("not an age secret key (expected AGE-SECRET-KEY-1…)".into());
    }
    let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32>(line)
        .map_err(|_| "malformed AGE-SECRET-KEY-1… key (bad Bech32 characters or checksum)")?;
    let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(checked.byte_iter().collect());
    let secret: [u8; 32] = bytes[..]
        .try_into()
        .map_err(|_| format!("AGE-SECRET-KEY-1… key of {} bytes, not 32", bytes.len()))?;
    Ok(Identity::from_secret(Zeroizing::new(secret)))
}

#[cfg(unix)]
fn meta_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

/// The warning for a key file whose `mode` lets group or others read it (as ssh warns for
/// private keys); `None` when only the owner can.
pub(super) fn permission_warning(path: &Path, mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| {
        format!(
            "{}: the backup key file is accessible by group or others (mode {:04o}); \
             `chmod 600` it",
            path.display(),
            mode & 0o7777
        )
    })
}

/// `YYYY-MM-DDThh:mm:ssZ` for seconds since the epoch.
fn rfc3339_utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = crate::imap::types::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
