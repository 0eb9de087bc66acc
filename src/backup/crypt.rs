//! Client-side encryption of backup objects in the age v1 format
//! (<https://c2sp.org/age>), so that the bucket never holds plaintext mail.
//!
//! What it owns:
//! - the identity file ([`Identity`]: one `AGE-SECRET-KEY-1…` line, as `age-keygen` writes
//!   it) and the text of a new one ([`Identity::to_file_text`]);
//! - encryption of one object to the identity's own X25519 recipient, as a [`Read`] that an
//!   S3 PUT streams with a Content-Length known in advance ([`encrypt_reader`],
//!   [`encrypted_len`]);
//! - decryption as a [`Read`] that yields only authenticated plaintext and ends with an
//!   error, never early, when the object was modified, truncated or extended
//!   ([`decrypt_reader`]).
//!
//! The files are standard age: `age -d -i key.txt` decrypts what this module writes, and
//! what `age -r age1…` writes decrypts here (`tests/backup_crypt_age.rs` runs the real CLI
//! both ways). Only the X25519 recipient type is read and written: no passphrases (scrypt),
//! plugins, post-quantum keys or ASCII armor.
//!
//! No primitive is written here; this module assembles age's documented format from crates:
//! X25519 from `x25519-dalek`; ChaCha20-Poly1305, HKDF-SHA-256 and HMAC-SHA-256 from `ring`
//! (linked anyway for TLS); Bech32 from `bech32`; base64 from `base64`; randomness from
//! `getrandom`. On the stripped aarch64 release binary, with the whole API reachable, this
//! costs 35 KB; the `age` crate (no default features) 318 KB, and age-core with
//! chacha20poly1305, x25519-dalek and bech32 (a second SHA-2/HMAC/ChaCha stack next to
//! ring's) 62 KB.
//!
//! It must never: put key material (the secret key, a file key, a shared secret) into an
//! error, a log line or `Debug` output; hand out plaintext of a chunk whose tag did not
//! verify; end a stream without an error before the final chunk verified; hold more than one
//! 64 KiB chunk of an object in memory.
//!
//! A file written here always has this shape, which is what makes [`encrypted_len`] exact:
//!
//! ```text
//! age-encryption.org/v1\n                          22 bytes
//! -> X25519 <ephemeral share: 43 base64>\n         54
//! <wrapped file key: 43 base64>\n                  44   (32 bytes: one short body line)
//! --- <header MAC: 43 base64>\n                    48
//! payload nonce                                    16
//! chunk 0, 1, …: 64 KiB of plaintext + 16-byte tag each; the last one shorter, and empty
//! only when the whole plaintext is
//! ```

use std::fmt;
use std::io::{self, Read};

mod header;
mod key;
mod stream;
#[cfg(test)]
mod tests;

pub use key::Identity;
pub use stream::{DecryptReader, EncryptReader};

/// Plaintext bytes per payload chunk (age §Payload: "chunks of 64 KiB").
const CHUNK: usize = 64 * 1024;
/// ChaCha20-Poly1305 tag after each chunk.
const TAG: usize = 16;
/// The payload nonce between the header and the first chunk.
const NONCE_LEN: usize = 16;
/// Length of the header [`encrypt_reader`] writes: version line, one X25519 stanza (two
/// 43-character base64 values), MAC line.
const HEADER_LEN: u64 = 22 + 54 + 44 + 48;

/// The exact length of the age file that [`encrypt_reader`] makes of `plain_len` bytes.
pub fn encrypted_len(plain_len: u64) -> u64 {
    let chunks = plain_len.div_ceil(CHUNK as u64).max(1);
    (HEADER_LEN + NONCE_LEN as u64 + chunks * TAG as u64).saturating_add(plain_len)
}

/// Encrypts `plain`, which must yield exactly `plain_len` bytes, to `id`'s recipient. The
/// reader yields the age file, [`encrypted_len`]`(plain_len)` bytes; if `plain` yields fewer
/// or more bytes than announced, it fails with an error instead (a Content-Length would
/// otherwise be wrong). Errs only when the system has no randomness.
pub fn encrypt_reader<R: Read>(
    id: &Identity,
    plain: R,
    plain_len: u64,
) -> io::Result<EncryptReader<R>> {
    EncryptReader::new(id.public_bytes(), plain, plain_len)
}

/// Reads the header of the age file in `cipher` and unwraps its file key with `id`. The
/// returned reader yields the plaintext; a payload that was modified, truncated or extended
/// makes a read fail with [`io::ErrorKind::InvalidData`] (its inner error a
/// [`CryptError::Payload`]).
pub fn decrypt_reader<R: Read>(id: &Identity, cipher: R) -> Result<DecryptReader<R>, CryptError> {
    DecryptReader::new(id, cipher)
}

/// [`encrypt_reader`] for a small object held in memory.
pub fn encrypt_bytes(id: &Identity, plain: &[u8]) -> io::Result<Vec<u8>> {
    let len = plain.len() as u64;
    let mut out = Vec::with_capacity(usize::try_from(encrypted_len(len)).unwrap_or(0));
    encrypt_reader(id, plain, len)?.read_to_end(&mut out)?;
    Ok(out)
}

/// [`decrypt_reader`] for a small object held in memory.
pub fn decrypt_bytes(id: &Identity, cipher: &[u8]) -> Result<Vec<u8>, CryptError> {
    let mut out = Vec::with_capacity(cipher.len());
    decrypt_reader(id, cipher)?
        .read_to_end(&mut out)
        .map_err(CryptError::from_io)?;
    Ok(out)
}

/// Why an object could not be decrypted. The messages say what to do and never contain key
/// material.
#[derive(Debug)]
pub enum CryptError {
    /// The object is not a binary age v1 file (what it is instead, if known).
    NotAge(&'static str),
    /// An age header that does not follow the format.
    Malformed(String),
    /// No recipient stanza in the header opens with this identity: the object was encrypted
    /// to another key (or that stanza is damaged, which looks the same).
    WrongKey {
        /// The identity's public key, `age1…`, to compare with the key the backup used.
        recipient: String,
    },
    /// The file key was unwrapped but the header MAC does not match: the header was changed.
    HeaderMac,
    /// A payload chunk failed authentication, or the payload ended at the wrong place.
    Payload(String),
    /// Reading the object failed.
    Io(io::Error),
}

impl CryptError {
    /// The error inside an `io::Error` from a [`DecryptReader`]: its [`CryptError::Payload`],
    /// or the I/O error itself.
    pub fn from_io(e: io::Error) -> CryptError {
        match e.downcast::<CryptError>() {
            Ok(inner) => inner,
            Err(e) => CryptError::Io(e),
        }
    }
}

impl fmt::Display for CryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptError::NotAge(what) => write!(f, "not an age-encrypted file: {what}"),
            CryptError::Malformed(what) => write!(f, "damaged age header: {what}"),
            CryptError::WrongKey { recipient } => write!(
                f,
                "wrong key: this object is not encrypted to {recipient} (it was written with \
                 another backup key, or its header is damaged)"
            ),
            CryptError::HeaderMac => f.write_str(
                "age header authentication failed: the header was modified after encryption",
            ),
            CryptError::Payload(what) => write!(f, "damaged age payload: {what}"),
            CryptError::Io(e) => write!(f, "reading the encrypted object: {e}"),
        }
    }
}

impl std::error::Error for CryptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CryptError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for CryptError {
    fn from(e: io::Error) -> Self {
        CryptError::Io(e)
    }
}

impl From<CryptError> for io::Error {
    fn from(e: CryptError) -> Self {
        match e {
            CryptError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Reads until `buf` is full or `r` ends; the number of bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
