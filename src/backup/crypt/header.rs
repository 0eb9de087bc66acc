//! The age v1 header (age §Header): writing one with a single X25519 recipient stanza, and
//! reading one to unwrap its file key; plus the key schedule (HKDF-SHA-256 labels) shared
//! with the payload.

use super::{read_full, CryptError, Identity};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::{hkdf, hmac};
use std::io::{BufRead, Read};
use subtle::ConstantTimeEq;
use x25519_dalek::{x25519, X25519_BASEPOINT_BYTES};
use zeroize::Zeroizing;

/// The 128-bit file key (age §File key).
pub(super) type FileKey = Zeroizing<[u8; 16]>;

const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
/// HKDF info of the X25519 wrap key (age §X25519 recipient stanza).
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
/// A header is a few stanzas; this bounds the memory an untrusted object can make us use.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Columns of a full stanza body line (age §Recipient stanza).
const BODY_COLUMNS: usize = 64;

/// HKDF-SHA-256 (extract with `salt`, expand with `info`) to a 32-byte key of type `L`.
fn derive<L>(salt: &[u8], ikm: &[u8], info: &[u8], kind: L) -> L::Key
where
    L: Derived,
{
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    // expand() fails only for outputs over 255 × 32 bytes; ours are 32.
    let okm = prk
        .expand(&info, kind)
        .unwrap_or_else(|_| unreachable!("HKDF output of 32 bytes"));
    L::key(okm)
}

/// The two kinds of key age derives: ChaCha20-Poly1305 keys and the HMAC-SHA-256 key.
trait Derived: hkdf::KeyType + Sized {
    type Key;
    fn key(okm: hkdf::Okm<'_, Self>) -> Self::Key;
}

impl Derived for &'static aead::Algorithm {
    type Key = LessSafeKey;
    fn key(okm: hkdf::Okm<'_, Self>) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::from(okm))
    }
}

impl Derived for hmac::Algorithm {
    type Key = hmac::Key;
    fn key(okm: hkdf::Okm<'_, Self>) -> hmac::Key {
        hmac::Key::from(okm)
    }
}

/// The payload key: HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload").
pub(super) fn payload_key(file_key: &FileKey, nonce: &[u8]) -> LessSafeKey {
    derive(nonce, &file_key[..], b"payload", &CHACHA20_POLY1305)
}

/// The header MAC key: HKDF-SHA-256(ikm = file key, salt = empty, info = "header").
pub(super) fn mac_key(file_key: &FileKey) -> hmac::Key {
    derive(&[], &file_key[..], b"header", hmac::HMAC_SHA256)
}

/// The X25519 wrap key for an ephemeral share and a recipient, from their shared secret;
/// `None` when the shared secret is all zeros (a low-order point: age requires aborting).
fn wrap_key(shared: [u8; 32], share: &[u8; 32], recipient: &[u8; 32]) -> Option<LessSafeKey> {
    let shared = Zeroizing::new(shared);
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return None;
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(share);
    salt[32..].copy_from_slice(recipient);
    Some(derive(&salt, &shared[..], X25519_INFO, &CHACHA20_POLY1305))
}

/// The header wrapping `file_key` for `recipient` with the ephemeral secret `ephemeral`:
/// exactly [`super::HEADER_LEN`] bytes.
pub(super) fn seal(
    file_key: &FileKey,
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<Vec<u8>, &'static str> {
    let share = x25519(*ephemeral, X25519_BASEPOINT_BYTES);
    let key = wrap_key(x25519(*ephemeral, *recipient), &share, recipient)
        .ok_or("the recipient public key is a low-order point")?;
    let mut body = [0u8; 32];
    body[..16].copy_from_slice(&file_key[..]);
    let tag = key
        .seal_in_place_separate_tag(zero_nonce(), Aad::empty(), &mut body[..16])
        .map_err(|_| "ChaCha20-Poly1305 refused to seal the file key")?;
    body[16..].copy_from_slice(tag.as_ref());
    let mut out = Vec::with_capacity(super::HEADER_LEN as usize);
    out.extend_from_slice(VERSION_LINE);
    out.extend_from_slice(b"-> X25519 ");
    out.extend_from_slice(B64.encode(share).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(B64.encode(body).as_bytes());
    out.extend_from_slice(b"\n---");
    let mac = hmac::sign(&mac_key(file_key), &out);
    out.push(b' ');
    out.extend_from_slice(B64.encode(mac.as_ref()).as_bytes());
    out.push(b'\n');
    Ok(out)
}

/// The stanzas' ChaCha20-Poly1305 nonce: 12 zero bytes (each wrap key is used once).
fn zero_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0; 12])
}

/// A recipient stanza: its arguments and decoded body.
struct Stanza {
    args: Vec<String>,
    body: Vec<u8>,
}

/// A parsed header: the stanzas, the bytes the MAC covers (through `---`) and the MAC.
struct Header {
    stanzas: Vec<Stanza>,
    mac_input: Vec<u8>,
    mac: Vec<u8>,
}

/// Reads the header from `r` (leaving `r` at the payload nonce) and unwraps the file key
/// with `id`, then checks the header MAC.
pub(super) fn open(r: &mut dyn BufRead, id: &Identity) -> Result<FileKey, CryptError> {
    let header = read(r)?;
    let file_key = unwrap_file_key(&header, id)?.ok_or_else(|| CryptError::WrongKey {
        recipient: id.recipient_string(),
    })?;
    hmac::verify(&mac_key(&file_key), &header.mac_input, &header.mac)
        .map_err(|_| CryptError::HeaderMac)?;
    Ok(file_key)
}

/// The file key from the first X25519 stanza that `id` opens; `None` when none does. Other
/// stanza types are skipped (age: identities "MUST ignore unrecognized stanzas").
fn unwrap_file_key(header: &Header, id: &Identity) -> Result<Option<FileKey>, CryptError> {
    for stanza in header.stanzas.iter().filter(|s| s.args[0] == "X25519") {
        // age: reject X25519 stanzas with other than two arguments, a share that is not
        // canonical base64 of 32 bytes, or a body that is not exactly 32 bytes.
        let share: [u8; 32] = match &stanza.args[..] {
            [_, share] => decode_b64(share)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| malformed("X25519 stanza whose share is not 32 bytes"))?,
            _ => return Err(malformed("X25519 stanza without exactly two arguments")),
        };
        if stanza.body.len() != 32 {
            return Err(malformed("X25519 stanza whose body is not 32 bytes"));
        }
        let key = wrap_key(x25519(*id.secret_bytes(), share), &share, id.public_bytes())
            .ok_or_else(|| malformed("X25519 stanza with a low-order share"))?;
        let mut body = Zeroizing::new([0u8; 32]);
        body.copy_from_slice(&stanza.body);
        if let Ok(plain) = key.open_in_place(zero_nonce(), Aad::empty(), &mut body[..]) {
            let mut file_key = Zeroizing::new([0u8; 16]);
            file_key.copy_from_slice(plain);
            return Ok(Some(file_key));
        }
    }
    Ok(None)
}

fn malformed(what: &str) -> CryptError {
    CryptError::Malformed(what.to_string())
}

/// Canonical unpadded base64 (age §Conventions: decoders reject non-canonical encodings and
/// `=` padding); `None` otherwise.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

/// Parses the header (age §"ABNF definition of file header") from `r`, reading no further
/// than its final newline.
fn read(r: &mut dyn BufRead) -> Result<Header, CryptError> {
    let mut first = [0u8; VERSION_LINE.len()];
    let n = read_full(r, &mut first)?;
    if first[..n] != *VERSION_LINE {
        return Err(CryptError::NotAge(not_age_reason(&first[..n])));
    }
    let mut mac_input = VERSION_LINE.to_vec();
    let mut stanzas = Vec::new();
    let mut line = Vec::new();
    let mut pending: Option<Stanza> = None;
    loop {
        next_line(r, &mut line, mac_input.len())?;
        if let Some(stanza) = pending.as_mut() {
            mac_input.extend_from_slice(&line);
            let text = b64_line(&line)?;
            stanza.body.extend(
                decode_b64(text).ok_or_else(|| malformed("stanza body is not canonical base64"))?,
            );
            if text.len() < BODY_COLUMNS {
                stanzas.extend(pending.take());
            }
        } else if let Some(args) = line.strip_prefix(b"-> ") {
            mac_input.extend_from_slice(&line);
            pending = Some(Stanza {
                args: stanza_args(args)?,
                body: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix(b"---") {
            mac_input.extend_from_slice(b"---");
            let mac = rest
                .strip_prefix(b" ")
                .and_then(|m| m.strip_suffix(b"\n"))
                .and_then(|m| std::str::from_utf8(m).ok())
                .and_then(decode_b64)
                .filter(|m| m.len() == 32)
                .ok_or_else(|| malformed("the MAC line is not `--- ` and 32 bytes of base64"))?;
            if stanzas.is_empty() {
                return Err(malformed("no recipient stanza"));
            }
            return Ok(Header {
                stanzas,
                mac_input,
                mac,
            });
        } else {
            return Err(malformed(
                "a line that is neither a stanza (`-> `) nor the MAC (`---`)",
            ));
        }
    }
}

/// Why the first bytes of an object are not an age v1 header.
fn not_age_reason(first: &[u8]) -> &'static str {
    if first.starts_with(b"-----BEGIN") {
        "ASCII-armored age files are not supported"
    } else if first.starts_with(b"age-encryption.org/") {
        "an age format version other than v1"
    } else {
        "it does not start with age-encryption.org/v1"
    }
}

/// Reads the next header line, with its `\n`, into `line`; `used` header bytes so far.
fn next_line(r: &mut dyn BufRead, line: &mut Vec<u8>, used: usize) -> Result<(), CryptError> {
    line.clear();
    let budget = MAX_HEADER_BYTES.saturating_sub(used as u64);
    Read::take(&mut *r, budget).read_until(b'\n', line)?;
    if line.last() == Some(&b'\n') {
        Ok(())
    } else if line.len() as u64 == budget {
        Err(malformed("header over 64 KiB"))
    } else {
        Err(malformed("the file ends inside the header (truncated)"))
    }
}

/// A stanza body line without its `\n`: at most 64 base64 characters.
fn b64_line(line: &[u8]) -> Result<&str, CryptError> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    if text.len() > BODY_COLUMNS {
        return Err(malformed("stanza body line over 64 columns"));
    }
    std::str::from_utf8(text).map_err(|_| malformed("stanza body is not base64"))
}

/// The arguments of a stanza line (after `-> `): one or more, space-separated, each one or
/// more visible ASCII characters.
fn stanza_args(rest: &[u8]) -> Result<Vec<String>, CryptError> {
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let mut args = Vec::new();
    for arg in rest.split(|&b| b == b' ') {
        if arg.is_empty() || !arg.iter().all(|b| b.is_ascii_graphic()) {
            return Err(malformed(
                "stanza arguments are not space-separated visible ASCII",
            ));
        }
        args.push(String::from_utf8_lossy(arg).into_owned());
    }
    Ok(args)
}
