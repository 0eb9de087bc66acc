//! Dovecot password schemes: verifying stored `{SCHEME}hash` fields and creating new ones the
//! way `doveadm pw -s SCHEME` does.
//!
//! Owns: the scheme names and aliases, the `.b64`/`.base64`/`.hex` encoding suffixes, the
//! crypt(3) formats (`$1$`, `$5$`, `$6$`, `$2y$`/`$2b$`/`$2a$`, `$argon2i$`/`$argon2id$`) and
//! Dovecot's own salted-digest and PBKDF2 layouts. Follows Dovecot 2.3's password-scheme
//! behaviour (checked against Debian's `doveadm pw`, see `tests/data/doveadm-hashes.txt`), the
//! SHA-crypt specification (Drepper, "Unix crypt using SHA-256 and SHA-512"), RFC 8018 §5.2
//! (PBKDF2 with HMAC-SHA1, from the `pbkdf2` crate), RFC 9106 / the PHC string format (Argon2),
//! RFC 5802 / RFC 7677 (SCRAM credentials, [`super::scram`]) and RFC 4648 (Base64, hex). Secrets are compared with `subtle`'s constant-time equality.
//!
//! Never: puts a stored hash or a password into an error message (a [`SchemeError`] names the
//! scheme and what is wrong, nothing more), panics on a malformed stored field, or compares
//! secrets with an early-exit comparison.

use super::scram::{Algorithm, Credentials};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq as _;

/// A password scheme problem: an unknown scheme, a malformed stored hash, or a password that
/// the requested scheme cannot store. The message never contains the hash or the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeError(pub String);

impl std::fmt::Display for SchemeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemeError {}

fn err<T>(msg: impl Into<String>) -> Result<T, SchemeError> {
    Err(SchemeError(msg.into()))
}

/// Schemes [`hash_password`] can create (and [`verify_password`] can check), in the spelling
/// `doveadm pw -l` uses. Aliases are accepted too (`SHA` = `SHA1`, `CLEAR`/`CLEARTEXT` = `PLAIN`,
/// `MD5` = `MD5-CRYPT`), as is an encoding suffix (`PLAIN.b64`, `SHA256.HEX`).
pub const SCHEMES: &[&str] = &[
    "ARGON2I",
    "ARGON2ID",
    "BLF-CRYPT",
    "CLEAR",
    "CLEARTEXT",
    "CRYPT",
    "LDAP-MD5",
    "MD5",
    "MD5-CRYPT",
    "PBKDF2",
    "PLAIN",
    "PLAIN-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SHA",
    "SHA1",
    "SHA256",
    "SHA256-CRYPT",
    "SHA512",
    "SHA512-CRYPT",
    "SMD5",
    "SSHA",
    "SSHA256",
    "SSHA512",
];

/// Dovecot's defaults, used by [`hash_password`] (what `doveadm pw` 2.3 produces).
pub mod defaults {
    /// SHA-crypt rounds; 5000 is the SHA-crypt default and is then left out of the string.
    pub const SHA_CRYPT_ROUNDS: u32 = 5000;
    /// bcrypt cost (`$2y$05$`), doveadm's default for BLF-CRYPT and CRYPT.
    pub const BCRYPT_COST: u32 = 5;
    /// ARGON2ID: m=65536 KiB, t=3, p=1 (libsodium's "moderate" limits, as doveadm prints).
    pub const ARGON2ID: (u32, u32, u32) = (65536, 3, 1);
    /// ARGON2I: m=32768 KiB, t=4, p=1 (as doveadm prints).
    pub const ARGON2I: (u32, u32, u32) = (32768, 4, 1);
    /// PBKDF2-HMAC-SHA1 iterations.
    pub const PBKDF2_ROUNDS: u32 = 5000;
    /// Salt bytes for the salted digests (SSHA*, SMD5). doveadm uses 4; a longer salt costs
    /// nothing, and Dovecot reads any salt length.
    pub const DIGEST_SALT_LEN: usize = 8;
}

/// The scheme families; aliases map onto one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A crypt(3) string; verified by its `$id$` prefix whatever the `{SCHEME}` says, as
    /// Dovecot does (it hands every crypt-family scheme to crypt()).
    Crypt(CryptGen),
    /// `$1$salt$rounds$hexhash`, PBKDF2-HMAC-SHA1.
    Pbkdf2,
    Plain,
    /// An unsalted digest.
    Digest(Hash),
    /// base64(hash(password ‖ salt) ‖ salt).
    Salted(Hash),
    /// `iterations,salt,StoredKey,ServerKey` (see [`super::scram`]).
    Scram(Algorithm),
}

/// Which crypt format [`hash_password`] creates for a crypt-family scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CryptGen {
    Sha512,
    Sha256,
    Bcrypt,
    Argon2i,
    Argon2id,
    Md5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Hash {
    fn len(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha512 => 64,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Md5 => run::<md5::Md5>(parts),
            Hash::Sha1 => run::<Sha1>(parts),
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Base64,
    Hex,
}

/// A parsed scheme name such as `SHA256.HEX`.
#[derive(Debug, Clone, Copy)]
struct Scheme {
    kind: Kind,
    /// Encoding forced by a suffix; `None` = the scheme's own default.
    encoding: Option<Encoding>,
}

impl Scheme {
    fn parse(name: &str) -> Result<Scheme, SchemeError> {
        let upper = name.trim().to_ascii_uppercase();
        let (base, suffix) = match upper.split_once('.') {
            Some((b, s)) => (b, Some(s)),
            None => (upper.as_str(), None),
        };
        let encoding = match suffix {
            None => None,
            Some("B64" | "BASE64") => Some(Encoding::Base64),
            Some("HEX") => Some(Encoding::Hex),
            Some(_) => {
                return err(format!(
                    "unknown encoding suffix in password scheme {upper:?} (expected .b64, .base64 or .hex)"
                ))
            }
        };
        let kind = match base {
            "SHA512-CRYPT" => Kind::Crypt(CryptGen::Sha512),
            "SHA256-CRYPT" => Kind::Crypt(CryptGen::Sha256),
            // Dovecot 2.3: CRYPT generates bcrypt `$2y$` and verifies any crypt(3) string.
            "BLF-CRYPT" | "CRYPT" => Kind::Crypt(CryptGen::Bcrypt),
            "ARGON2I" => Kind::Crypt(CryptGen::Argon2i),
            "ARGON2ID" => Kind::Crypt(CryptGen::Argon2id),
            // Dovecot's `MD5` is MD5-crypt; the raw digest is PLAIN-MD5 / LDAP-MD5.
            "MD5-CRYPT" | "MD5" => Kind::Crypt(CryptGen::Md5),
            "PBKDF2" => Kind::Pbkdf2,
            "PLAIN" | "CLEAR" | "CLEARTEXT" => Kind::Plain,
            "SHA" | "SHA1" => Kind::Digest(Hash::Sha1),
            "SHA256" => Kind::Digest(Hash::Sha256),
            "SHA512" => Kind::Digest(Hash::Sha512),
            "PLAIN-MD5" => Kind::Digest(Hash::Md5),
            "LDAP-MD5" => {
                return Ok(Scheme {
                    kind: Kind::Digest(Hash::Md5),
                    encoding: encoding.or(Some(Encoding::Base64)),
                })
            }
            "SSHA" => Kind::Salted(Hash::Sha1),
            "SSHA256" => Kind::Salted(Hash::Sha256),
            "SSHA512" => Kind::Salted(Hash::Sha512),
            "SMD5" => Kind::Salted(Hash::Md5),
            "SCRAM-SHA-1" => Kind::Scram(Algorithm::Sha1),
            "SCRAM-SHA-256" => Kind::Scram(Algorithm::Sha256),
            "" => return err("empty password scheme name in {}"),
            other => {
                return err(format!(
                    "unknown password scheme {other:?} (supported: {})",
                    SCHEMES.join(", ")
                ))
            }
        };
        Ok(Scheme { kind, encoding })
    }

    /// The default encoding of a binary scheme's stored value (Dovecot: PLAIN-MD5 is hex,
    /// everything else base64).
    fn default_encoding(self) -> Encoding {
        match self.kind {
            Kind::Digest(Hash::Md5) => Encoding::Hex,
            _ => Encoding::Base64,
        }
    }
}

/// Split a stored password field into its scheme and value. A field without `{SCHEME}` is the
/// default scheme `CRYPT` (Dovecot's passwd-file default).
fn split_stored(stored: &str) -> Result<(Scheme, &str), SchemeError> {
    if let Some(rest) = stored.strip_prefix('{') {
        match rest.split_once('}') {
            Some((name, value)) => Ok((Scheme::parse(name)?, value)),
            None => err("password field starts with '{' but has no closing '}'"),
        }
    } else {
        Ok((
            Scheme {
                kind: Kind::Crypt(CryptGen::Bcrypt),
                encoding: None,
            },
            stored,
        ))
    }
}

/// Verify `candidate` against a stored password field (`{SCHEME}...` or bare crypt form).
///
/// `Ok(false)` is a wrong password; `Err` means the stored field itself is unusable (unknown
/// scheme, malformed hash). A candidate containing NUL never matches: Dovecot handles
/// passwords as C strings, so no stored password can contain one.
pub fn verify_password(stored: &str, candidate: &[u8]) -> Result<bool, SchemeError> {
    let (scheme, value) = split_stored(stored)?;
    let ok = match scheme.kind {
        Kind::Crypt(_) => {
            let text = decode_text(value, scheme.encoding)?;
            verify_crypt(&text, candidate)?
        }
        Kind::Pbkdf2 => {
            let text = decode_text(value, scheme.encoding)?;
            verify_pbkdf2(&text, candidate)?
        }
        Kind::Plain => ct_eq(&plain_value(scheme, value)?, candidate),
        Kind::Digest(h) => {
            let raw = decode_binary(scheme, value, Some(h.len()))?;
            if raw.len() != h.len() {
                return err(format!(
                    "stored {h:?} digest has {} bytes, expected {}",
                    raw.len(),
                    h.len()
                ));
            }
            ct_eq(&raw, &h.digest(&[candidate]))
        }
        Kind::Salted(h) => {
            let raw = decode_binary(scheme, value, None)?;
            if raw.len() <= h.len() {
                return err(format!(
                    "stored salted {h:?} value has {} bytes, expected more than {}",
                    raw.len(),
                    h.len()
                ));
            }
            let (digest, salt) = raw.split_at(h.len());
            ct_eq(digest, &h.digest(&[candidate, salt]))
        }
        Kind::Scram(algo) => {
            let text = decode_text(value, scheme.encoding)?;
            Credentials::parse(algo, &text)
                .map_err(SchemeError)?
                .matches_password(algo, candidate)
        }
    };
    Ok(ok && !candidate.contains(&0))
}

/// Hash `password` with `scheme` (e.g. `SHA512-CRYPT`), returning the `{SCHEME}hash` line part.
///
/// The scheme name is echoed upper-cased, as `doveadm pw` does (`{PLAIN.B64}…`).
pub fn hash_password(scheme: &str, password: &[u8]) -> Result<String, SchemeError> {
    let parsed = Scheme::parse(scheme)?;
    let name = scheme.trim().to_ascii_uppercase();
    if password.contains(&0) {
        return err("a password cannot contain NUL");
    }
    let value: String = match parsed.kind {
        Kind::Crypt(gen) => encode_text(crypt_generate(gen, password)?, parsed.encoding),
        Kind::Pbkdf2 => {
            let salt = random_crypt_salt(16)?;
            let rounds = defaults::PBKDF2_ROUNDS;
            let dk = pbkdf2_hmac_sha1(password, salt.as_bytes(), rounds);
            encode_text(
                format!("$1${salt}${rounds}${}", hex_encode(&dk)),
                parsed.encoding,
            )
        }
        Kind::Plain => match parsed.encoding {
            Some(enc) => encode(password, enc),
            None => match std::str::from_utf8(password) {
                Ok(s) if !s.contains([':', '\n', '\r']) => s.to_string(),
                _ => {
                    return err(
                        "this password (with ':', a line break or non-UTF-8 bytes) cannot be \
                         stored as PLAIN in a passwd-file; use PLAIN.b64",
                    )
                }
            },
        },
        Kind::Digest(h) => encode(
            &h.digest(&[password]),
            parsed.encoding.unwrap_or(parsed.default_encoding()),
        ),
        Kind::Salted(h) => {
            let mut salt = [0u8; defaults::DIGEST_SALT_LEN];
            random(&mut salt)?;
            let mut raw = h.digest(&[password, &salt]);
            raw.extend_from_slice(&salt);
            encode(&raw, parsed.encoding.unwrap_or(parsed.default_encoding()))
        }
        Kind::Scram(algo) => encode_text(
            Credentials::generate(algo, password)
                .map_err(SchemeError)?
                .encode(),
            parsed.encoding,
        ),
    };
    Ok(format!("{{{name}}}{value}"))
}

/// The SCRAM credentials a stored password field gives for `algo`: its own if it is that
/// SCRAM scheme, derived with `salt` and the default iterations if it is a plaintext password
/// (Dovecot derives them the same way, with a random salt); `Ok(None)` for any other scheme, a
/// one-way hash SCRAM cannot use.
pub fn scram_credentials(
    stored: &str,
    algo: Algorithm,
    salt: &[u8],
) -> Result<Option<Credentials>, SchemeError> {
    let (scheme, value) = split_stored(stored)?;
    match scheme.kind {
        Kind::Scram(a) if a == algo => {
            let text = decode_text(value, scheme.encoding)?;
            Credentials::parse(algo, &text)
                .map(Some)
                .map_err(SchemeError)
        }
        Kind::Plain => Ok(Some(Credentials::derive(
            algo,
            &plain_value(scheme, value)?,
            salt,
            super::scram::DEFAULT_ITERATIONS,
        ))),
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Encodings (RFC 4648 §4 base64, §8 hex)

/// A plaintext scheme's password: the value itself, or decoded per its suffix (`PLAIN.b64`).
fn plain_value(scheme: Scheme, value: &str) -> Result<Vec<u8>, SchemeError> {
    match scheme.encoding {
        None => Ok(value.as_bytes().to_vec()),
        Some(enc) => decode(value, enc),
    }
}

fn encode(raw: &[u8], enc: Encoding) -> String {
    match enc {
        Encoding::Base64 => B64.encode(raw),
        Encoding::Hex => hex_encode(raw),
    }
}

fn decode(value: &str, enc: Encoding) -> Result<Vec<u8>, SchemeError> {
    match enc {
        Encoding::Base64 => B64
            .decode(value.trim_end())
            .or_else(|_| err("stored value is not valid base64")),
        Encoding::Hex => {
            hex_decode(value).ok_or_else(|| SchemeError("stored value is not valid hex".into()))
        }
    }
}

/// Decode a binary scheme's value. Without a suffix, a value of exactly `2 × digest length` hex
/// digits is taken as hex (Dovecot accepts hex for base64 schemes this way).
fn decode_binary(
    scheme: Scheme,
    value: &str,
    digest_len: Option<usize>,
) -> Result<Vec<u8>, SchemeError> {
    match scheme.encoding {
        Some(enc) => decode(value, enc),
        None => {
            if let Some(n) = digest_len {
                if value.len() == 2 * n && value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return decode(value, Encoding::Hex);
                }
            }
            decode(value, scheme.default_encoding())
        }
    }
}

/// A string-valued scheme (crypt, PBKDF2) with an encoding suffix stores the encoded string.
fn decode_text(value: &str, enc: Option<Encoding>) -> Result<String, SchemeError> {
    match enc {
        None => Ok(value.to_string()),
        Some(enc) => String::from_utf8(decode(value, enc)?)
            .or_else(|_| err("decoded crypt string is not UTF-8")),
    }
}

fn encode_text(text: String, enc: Option<Encoding>) -> String {
    match enc {
        None => text,
        Some(enc) => encode(text.as_bytes(), enc),
    }
}

/// Lower-case hex of `raw` (also the backup's object IDs).
pub fn hex_encode(raw: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(raw.len() * 2);
    for b in raw {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.trim_end().as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Constant-time equality for equal lengths (the length of a hash is not secret; slices of
/// different lengths are unequal at once).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn random(buf: &mut [u8]) -> Result<(), SchemeError> {
    getrandom::fill(buf).or_else(|e| err(format!("no randomness for a salt: {e}")))
}

/// crypt(3)'s salt and output alphabet.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random_crypt_salt(len: usize) -> Result<String, SchemeError> {
    let mut raw = vec![0u8; len];
    random(&mut raw)?;
    Ok(raw
        .iter()
        .map(|b| char::from(CRYPT_ALPHABET[usize::from(b & 0x3f)]))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// crypt(3) formats

/// Verify like Dovecot's CRYPT: `crypt(candidate, stored) == stored`, dispatching on the
/// `$id$` prefix.
fn verify_crypt(stored: &str, candidate: &[u8]) -> Result<bool, SchemeError> {
    let stored = stored.trim_end();
    if stored.starts_with("$6$") || stored.starts_with("$5$") {
        verify_sha_crypt(stored, candidate)
    } else if stored.starts_with("$2y$") || stored.starts_with("$2b$") || stored.starts_with("$2a$")
    {
        bcrypt::verify(candidate, stored).or_else(|e| {
            err(match e {
                bcrypt::BcryptError::CostNotAllowed(c) => format!("bcrypt cost {c} out of range"),
                bcrypt::BcryptError::InvalidHash(why) => format!("malformed bcrypt hash: {why}"),
                _ => "malformed bcrypt hash".into(),
            })
        })
    } else if stored.starts_with("$argon2i$") || stored.starts_with("$argon2id$") {
        verify_argon2(stored, candidate)
    } else if let Some(rest) = stored.strip_prefix("$1$") {
        verify_md5_crypt(rest, candidate)
    } else if stored.is_empty() {
        err("empty password field")
    } else if let Some(id) = stored.strip_prefix('$').and_then(|r| r.split('$').next()) {
        err(format!(
            "unsupported crypt format ${id}$ (supported: $1$, $5$, $6$, $2y$/$2b$/$2a$, $argon2i$, \
             $argon2id$; re-hash with `doveadm pw -s SHA512-CRYPT`)"
        ))
    } else {
        err(
            "unsupported crypt format (DES crypt or not a crypt string; re-hash with \
             `doveadm pw -s SHA512-CRYPT`)",
        )
    }
}

fn verify_sha_crypt(stored: &str, candidate: &[u8]) -> Result<bool, SchemeError> {
    let sha512 = stored.starts_with("$6$");
    let name = if sha512 {
        "SHA512-CRYPT"
    } else {
        "SHA256-CRYPT"
    };
    let body = stored.get(3..).unwrap_or("");
    // `[rounds=N$]salt$hash`; glibc clamps N into 1000..=999999999.
    let (rounds, rest) = match body.strip_prefix("rounds=") {
        Some(r) => {
            let (n, rest) = r
                .split_once('$')
                .ok_or_else(|| SchemeError(format!("malformed {name} hash")))?;
            let n: u64 = n
                .parse()
                .or_else(|_| err(format!("{name} hash has an invalid rounds= value")))?;
            (Some(n.clamp(1000, 999_999_999) as u32), rest)
        }
        None => (None, body),
    };
    let (salt, hash) = rest
        .split_once('$')
        .ok_or_else(|| SchemeError(format!("malformed {name} hash")))?;
    let expected_len = if sha512 { 86 } else { 43 };
    if hash.len() != expected_len {
        return err(format!("malformed {name} hash (wrong length)"));
    }
    let computed = sha_crypt_string(sha512, candidate, salt, rounds)?;
    Ok(ct_eq(computed.as_bytes(), stored.as_bytes()))
}

/// The full `$5$`/`$6$` string for `salt` (at most 16 characters are used, as in glibc).
fn sha_crypt_string(
    sha512: bool,
    password: &[u8],
    salt: &str,
    rounds: Option<u32>,
) -> Result<String, SchemeError> {
    let salt: String = salt.chars().take(16).collect();
    let r = rounds.unwrap_or(defaults::SHA_CRYPT_ROUNDS);
    let params = sha_crypt::Params::new(r).or_else(|_| err("SHA-crypt rounds out of range"))?;
    let out = if sha512 {
        crypt_b64(
            &sha_crypt::sha512_crypt(password, salt.as_bytes(), params),
            &SHA512_CRYPT_ORDER,
        )
    } else {
        crypt_b64(
            &sha_crypt::sha256_crypt(password, salt.as_bytes(), params),
            &SHA256_CRYPT_ORDER,
        )
    };
    let id = if sha512 { 6 } else { 5 };
    Ok(match rounds {
        Some(n) => format!("${id}$rounds={n}${salt}${out}"),
        None => format!("${id}${salt}${out}"),
    })
}

fn verify_argon2(stored: &str, candidate: &[u8]) -> Result<bool, SchemeError> {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier as _};
    let hash = PasswordHash::new(stored).or_else(|_| err("malformed Argon2 PHC string"))?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return err("malformed Argon2 PHC string (no salt or no hash)");
    }
    match argon2::Argon2::default().verify_password(candidate, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => err(format!("unusable Argon2 hash: {e}")),
    }
}

fn argon2_generate(id: bool, password: &[u8]) -> Result<String, SchemeError> {
    use argon2::password_hash::PasswordHasher as _;
    let (m, t, p) = if id {
        defaults::ARGON2ID
    } else {
        defaults::ARGON2I
    };
    let algorithm = if id {
        argon2::Algorithm::Argon2id
    } else {
        argon2::Algorithm::Argon2i
    };
    let params = argon2::Params::new(m, t, p, Some(32))
        .or_else(|e| err(format!("Argon2 parameters: {e}")))?;
    let hasher = argon2::Argon2::new(algorithm, argon2::Version::V0x13, params);
    let mut raw = [0u8; 16];
    random(&mut raw)?;
    hasher
        .hash_password_with_salt(password, &raw)
        .map(|h| h.to_string())
        .or_else(|e| err(format!("Argon2 hashing failed: {e}")))
}

fn crypt_generate(gen: CryptGen, password: &[u8]) -> Result<String, SchemeError> {
    match gen {
        CryptGen::Sha512 | CryptGen::Sha256 => {
            let salt = random_crypt_salt(16)?;
            sha_crypt_string(gen == CryptGen::Sha512, password, &salt, None)
        }
        CryptGen::Bcrypt => {
            if password.len() > 72 {
                // bcrypt reads only 72 bytes; say so instead of silently truncating.
                return err(
                    "bcrypt uses only the first 72 bytes of a password; this one is longer \
                            (use SHA512-CRYPT or ARGON2ID)",
                );
            }
            let mut salt = [0u8; 16];
            random(&mut salt)?;
            bcrypt::hash_with_salt(password, defaults::BCRYPT_COST, salt)
                .map(|parts| parts.format_for_version(bcrypt::Version::TwoY))
                .or_else(|_| err("bcrypt hashing failed"))
        }
        CryptGen::Argon2i => argon2_generate(false, password),
        CryptGen::Argon2id => argon2_generate(true, password),
        CryptGen::Md5 => {
            let salt = random_crypt_salt(8)?;
            Ok(md5_crypt_string(password, &salt))
        }
    }
}

/// `rest` is what follows `$1$`: `salt$hash`.
fn verify_md5_crypt(rest: &str, candidate: &[u8]) -> Result<bool, SchemeError> {
    let (salt, hash) = rest
        .split_once('$')
        .ok_or_else(|| SchemeError("malformed MD5-CRYPT hash".into()))?;
    if hash.len() != 22 || salt.len() > 8 {
        return err("malformed MD5-CRYPT hash");
    }
    let computed = md5_crypt_string(candidate, salt);
    Ok(ct_eq(computed.as_bytes(), format!("$1${rest}").as_bytes()))
}

/// Poul-Henning Kamp's MD5-crypt (FreeBSD `crypt_md5`), `$1$salt$hash`, salt ≤ 8 characters.
fn md5_crypt_string(password: &[u8], salt: &str) -> String {
    use md5::{Digest as _, Md5};
    let salt = salt.get(..salt.len().min(8)).unwrap_or(salt).as_bytes();
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(b"$1$");
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let first = password.first().copied().unwrap_or(0);
    let mut i = password.len();
    while i > 0 {
        ctx.update(if i & 1 == 1 { [0u8] } else { [first] });
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(&fin[..]);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(&fin[..]);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    let hash = crypt_b64(&fin.into(), &MD5_CRYPT_ORDER);
    format!("$1${}${hash}", String::from_utf8_lossy(salt))
}

/// The order in which MD5-crypt writes its digest's bytes (see [`crypt_b64`]).
const MD5_CRYPT_ORDER: [usize; 16] = [12, 6, 0, 13, 7, 1, 14, 8, 2, 15, 9, 3, 5, 10, 4, 11];

/// The order in which SHA256-crypt (`$5$`) writes its digest's bytes.
const SHA256_CRYPT_ORDER: [usize; 32] = [
    20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8, 28,
    18, 29, 19, 9, 30, 31,
];

/// The order in which SHA512-crypt (`$6$`) writes its digest's bytes.
const SHA512_CRYPT_ORDER: [usize; 64] = [
    42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8,
    50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58,
    37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
];

/// crypt(3)'s base64 of a digest: its bytes taken in `order`, three at a time as a
/// little-endian 24-bit number written 6 bits at a time from the low end; a last group of
/// n < 3 bytes gives n + 1 characters. (The sha-crypt crate formats only with its
/// password-hash layer, which always writes `rounds=`; Dovecot omits the default.)
fn crypt_b64<const N: usize>(digest: &[u8; N], order: &[usize; N]) -> String {
    let mut out = String::with_capacity(N.div_ceil(3) * 4);
    for group in order.chunks(3) {
        let mut v = group
            .iter()
            .rev()
            .fold(0u32, |v, &i| v << 8 | u32::from(digest[i]));
        for _ in 0..=group.len() {
            out.push(char::from(CRYPT_ALPHABET[(v & 0x3f) as usize]));
            v >>= 6;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// PBKDF2 (Dovecot: `$1$<salt>$<rounds>$<hex PBKDF2-HMAC-SHA1, 20 bytes>`)

fn verify_pbkdf2(stored: &str, candidate: &[u8]) -> Result<bool, SchemeError> {
    let malformed = || SchemeError("malformed PBKDF2 hash (expected $1$salt$rounds$hex)".into());
    let body = stored
        .trim_end()
        .strip_prefix("$1$")
        .ok_or_else(malformed)?;
    let mut parts = body.split('$');
    let (salt, rounds, hash) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(r), Some(h), None) => (s, r, h),
        _ => return Err(malformed()),
    };
    let rounds: u32 = rounds.parse().map_err(|_| malformed())?;
    if rounds == 0 {
        return Err(malformed());
    }
    let expected = hex_decode(hash).ok_or_else(malformed)?;
    if expected.len() != 20 {
        return Err(malformed());
    }
    Ok(ct_eq(
        &expected,
        &pbkdf2_hmac_sha1(candidate, salt.as_bytes(), rounds),
    ))
}

/// PBKDF2 (RFC 8018 §5.2) with HMAC-SHA1 and a 20-byte derived key (one block).
fn pbkdf2_hmac_sha1(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 20] {
    pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(password, salt, rounds)
}

#[cfg(test)]
mod tests;
