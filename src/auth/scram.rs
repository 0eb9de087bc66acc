//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677): the stored credentials Dovecot's
//! `{SCRAM-SHA-1}` / `{SCRAM-SHA-256}` schemes hold, and the server side of the SASL exchange.
//!
//! Owns: the credential string `iterations,base64(salt),base64(StoredKey),base64(ServerKey)`
//! (as `doveadm pw -s SCRAM-SHA-256` writes it), parsing the client's two messages and
//! building the server's two. Pure: the caller (`session::auth_scram`) supplies the server
//! nonce and the credentials, and does the I/O.
//!
//! Follows Dovecot 2.3's mech-scram: no channel binding (a `p=` gs2 flag fails, `y` and `n`
//! are accepted), an authzid is returned for the caller to judge, unknown extensions are
//! ignored, a mandatory one (`m=`) fails, and neither the user name nor the password goes
//! through SASLprep (Dovecot hashes the password's bytes as they are; so does this). Never:
//! compares a proof with an early-exit comparison, or panics on a malformed message.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use pbkdf2::hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The iteration count [`Credentials::generate`] uses (Dovecot's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Dovecot refuses stored credentials with fewer iterations (RFC 5802 §5.1's SHOULD).
pub const MIN_ITERATIONS: u32 = 4096;
/// Dovecot's upper bound (`INT_MAX`).
pub const MAX_ITERATIONS: u32 = i32::MAX as u32;
/// Longest client message accepted (decoded), so one exchange holds little memory.
pub const MAX_MESSAGE: usize = 4096;
/// Bytes of randomness in the server's nonce (base64: 40 characters, no padding).
const SERVER_NONCE_BYTES: usize = 30;
/// Salt bytes of new credentials (as Dovecot).
const SALT_BYTES: usize = 16;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
}

impl Algorithm {
    /// The SASL mechanism (and Dovecot scheme) name, case-insensitively; `-PLUS` is not one.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        if name.eq_ignore_ascii_case("SCRAM-SHA-1") {
            Some(Algorithm::Sha1)
        } else if name.eq_ignore_ascii_case("SCRAM-SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SCRAM-SHA-1",
            Algorithm::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sha1 => Sha1::digest(data).to_vec(),
            Algorithm::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// HMAC(key, concatenation of `parts`).
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC takes a key of any length: this never fails, and an empty result would
            // only make every comparison fail.
            let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
                return Vec::new();
            };
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::Sha1 => run::<Hmac<Sha1>>(key, parts),
            Algorithm::Sha256 => run::<Hmac<Sha256>>(key, parts),
        }
    }

    /// Hi() of RFC 5802 §2.2, which is PBKDF2 (RFC 8018) with one block of output.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest_len()];
        match self {
            Algorithm::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            Algorithm::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// What the server keeps for a user (RFC 5802 §3): enough to check a proof and to prove
/// itself, not enough to log in elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Credentials {
    /// The credentials `password` gives with `salt` and `iterations`.
    pub fn derive(algo: Algorithm, password: &[u8], salt: &[u8], iterations: u32) -> Credentials {
        let salted = algo.salted_password(password, salt, iterations);
        let client_key = algo.hmac(&salted, &[b"Client Key"]);
        Credentials {
            iterations,
            salt: salt.to_vec(),
            stored_key: algo.hash(&client_key),
            server_key: algo.hmac(&salted, &[b"Server Key"]),
        }
    }

    /// New credentials with a random salt and [`DEFAULT_ITERATIONS`].
    pub fn generate(algo: Algorithm, password: &[u8]) -> Result<Credentials, String> {
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
        Ok(Credentials::derive(
            algo,
            password,
            &salt,
            DEFAULT_ITERATIONS,
        ))
    }

    /// Parse a stored value (what follows `{SCRAM-SHA-256}`). The error never quotes it.
    pub fn parse(algo: Algorithm, value: &str) -> Result<Credentials, String> {
        let name = algo.name();
        let fields: Vec<&str> = value.trim_end().split(',').collect();
        let [iterations, salt, stored, server] = fields[..] else {
            return Err(format!(
                "malformed {name} value (expected iterations,salt,StoredKey,ServerKey)"
            ));
        };
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(n))
            .ok_or_else(|| {
                format!("{name} iteration count is not a number from {MIN_ITERATIONS} up")
            })?;
        let salt = B64
            .decode(salt)
            .map_err(|_| format!("{name} salt is not base64"))?;
        let key = |field: &str, what: &str| {
            B64.decode(field)
                .ok()
                .filter(|k| k.len() == algo.digest_len())
                .ok_or_else(|| format!("{name} {what} is not {} base64 bytes", algo.digest_len()))
        };
        Ok(Credentials {
            iterations,
            salt,
            stored_key: key(stored, "StoredKey")?,
            server_key: key(server, "ServerKey")?,
        })
    }

    /// The stored form, as `doveadm pw` writes it.
    pub fn encode(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }

    /// Does `password` give these credentials? (LOGIN / PLAIN for a user stored as SCRAM.)
    pub fn matches_password(&self, algo: Algorithm, password: &[u8]) -> bool {
        let derived = Credentials::derive(algo, password, &self.salt, self.iterations);
        ct_eq(&derived.stored_key, &self.stored_key)
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Why an exchange failed; for the log (the client is told only that authentication failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub &'static str);

impl std::fmt::Display for ScramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The client-first-message (RFC 5802 §7), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `a=` of the gs2 header, unescaped; `None` if empty.
    pub authzid: Option<String>,
    /// `n=`, unescaped (`=2C` → `,`, `=3D` → `=`).
    pub username: String,
    /// The gs2 header as sent (`n,,`, `y,a=x,`): the client-final's `c=` must encode it.
    gs2_header: String,
    /// client-first-message-bare, part of the AuthMessage.
    bare: String,
    cnonce: String,
}

impl ClientFirst {
    pub fn parse(msg: &[u8]) -> Result<ClientFirst, ScramError> {
        if msg.len() > MAX_MESSAGE {
            return Err(ScramError("client-first-message too long"));
        }
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError("message is not UTF-8"))?;
        let (flag, rest) = msg
            .split_once(',')
            .ok_or(ScramError("no gs2 header in client-first-message"))?;
        let (authzid_field, bare) = rest
            .split_once(',')
            .ok_or(ScramError("no gs2 header in client-first-message"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError("channel binding not supported")),
            _ => return Err(ScramError("invalid gs2 channel binding flag")),
        }
        let authzid = match authzid_field {
            "" => None,
            a => Some(unescape(
                a.strip_prefix("a=")
                    .ok_or(ScramError("invalid authzid field"))?,
            )?),
        };
        let mut fields = bare.split(',');
        let username = match fields.next() {
            Some(m) if m.starts_with("m=") => {
                return Err(ScramError("mandatory extension not supported"))
            }
            Some(u) => unescape(
                u.strip_prefix("n=")
                    .ok_or(ScramError("invalid username field"))?,
            )?,
            None => return Err(ScramError("invalid username field")),
        };
        let cnonce = fields
            .next()
            .and_then(|r| r.strip_prefix("r="))
            .ok_or(ScramError("invalid client nonce"))?;
        if username.is_empty() || !is_nonce(cnonce) {
            return Err(ScramError("empty username or invalid client nonce"));
        }
        Ok(ClientFirst {
            authzid,
            username,
            gs2_header: format!("{flag},{authzid_field},"),
            bare: bare.to_string(),
            cnonce: cnonce.to_string(),
        })
    }
}

/// RFC 5802 `printable`: `%x21-2B / %x2D-7E`, at least one.
fn is_nonce(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `saslname` (RFC 5802 §7): `=2C` and `=3D` stand for `,` and `=`; any other `=` fails.
fn unescape(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3);
        out.push(match esc {
            Some("=2C") => ',',
            Some("=3D") => '=',
            _ => return Err(ScramError("invalid '=' escape in a name")),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A random server nonce (printable, no `,`).
pub fn server_nonce() -> Result<String, String> {
    let mut raw = [0u8; SERVER_NONCE_BYTES];
    getrandom::fill(&mut raw).map_err(|e| format!("no randomness for a nonce: {e}"))?;
    Ok(B64.encode(raw))
}

/// The server's side of one exchange, between its server-first-message and the client's
/// final message.
#[derive(Debug, Clone)]
pub struct Exchange {
    algo: Algorithm,
    creds: Credentials,
    gs2_header: String,
    /// client-first-message-bare "," server-first-message: the start of the AuthMessage.
    messages: String,
    /// The combined nonce the client must echo.
    nonce: String,
    server_first: String,
}

impl Exchange {
    /// Answer `first` with `creds`: builds the server-first-message (`r=`, `s=`, `i=`).
    pub fn start(
        algo: Algorithm,
        first: &ClientFirst,
        creds: Credentials,
        server_nonce: &str,
    ) -> Exchange {
        let nonce = format!("{}{server_nonce}", first.cnonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&creds.salt),
            creds.iterations
        );
        Exchange {
            algo,
            messages: format!("{},{server_first}", first.bare),
            gs2_header: first.gs2_header.clone(),
            creds,
            nonce,
            server_first,
        }
    }

    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Check the client-final-message (`c=`, `r=`, extensions, `p=`); on success the
    /// server-final-message `v=ServerSignature`.
    pub fn finish(&self, msg: &[u8]) -> Result<String, ScramError> {
        if msg.len() > MAX_MESSAGE {
            return Err(ScramError("client-final-message too long"));
        }
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError("message is not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(',')
            .ok_or(ScramError("invalid client-final-message"))?;
        let mut fields = without_proof.split(',');
        let cbind = fields.next().and_then(|c| c.strip_prefix("c="));
        if cbind != Some(B64.encode(&self.gs2_header).as_str()) {
            return Err(ScramError("invalid channel binding data"));
        }
        if fields.next().and_then(|r| r.strip_prefix("r=")) != Some(self.nonce.as_str()) {
            return Err(ScramError("wrong nonce"));
        }
        let proof = proof
            .strip_prefix("p=")
            .and_then(|p| B64.decode(p).ok())
            .filter(|p| p.len() == self.algo.digest_len())
            .ok_or(ScramError("invalid ClientProof"))?;
        let auth_message = format!("{},{without_proof}", self.messages);
        let signature = self
            .algo
            .hmac(&self.creds.stored_key, &[auth_message.as_bytes()]);
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !ct_eq(&self.algo.hash(&client_key), &self.creds.stored_key) {
            return Err(ScramError("wrong password (ClientProof does not match)"));
        }
        let server_signature = self
            .algo
            .hmac(&self.creds.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests;
