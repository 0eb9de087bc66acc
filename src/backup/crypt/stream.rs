//! The age payload (age §Payload): a 16-byte nonce, then STREAM chunks of 64 KiB sealed with
//! ChaCha20-Poly1305 under the payload key, nonce = 11-byte big-endian counter || last flag.
//! Both directions hold one chunk in memory.

use super::{header, read_full, CryptError, Identity, CHUNK, NONCE_LEN, TAG};
use ring::aead::{Aad, LessSafeKey, Nonce};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use zeroize::Zeroizing;

/// The nonce of chunk `counter`: the counter as 11 big-endian bytes, then 0x01 for the final
/// chunk and 0x00 before it.
pub(super) fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Where a stream stands after its current buffer is handed out.
enum State {
    /// More chunks follow.
    Open,
    /// The final chunk was sealed / verified: end of file next.
    Done,
    /// A read failed; every later read fails the same way (never a silent end).
    Failed(Failure),
}

/// A remembered read error.
struct Failure {
    kind: io::ErrorKind,
    msg: String,
    /// It was a [`CryptError::Payload`] (and `msg` its message).
    payload: bool,
}

impl Failure {
    fn of(e: &io::Error) -> State {
        let failure = match e.get_ref().and_then(|i| i.downcast_ref::<CryptError>()) {
            Some(CryptError::Payload(msg)) => Failure {
                kind: e.kind(),
                msg: msg.clone(),
                payload: true,
            },
            _ => Failure {
                kind: e.kind(),
                msg: e.to_string(),
                payload: false,
            },
        };
        State::Failed(failure)
    }

    fn error(&self) -> io::Error {
        if self.payload {
            payload_error(self.msg.clone())
        } else {
            io::Error::new(self.kind, self.msg.clone())
        }
    }
}

/// A payload error: [`io::ErrorKind::InvalidData`] around a [`CryptError::Payload`].
fn payload_error(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, CryptError::Payload(msg))
}

/// Copies from `buf[*pos..]` into `out`.
fn drain(buf: &[u8], pos: &mut usize, out: &mut [u8]) -> usize {
    let n = out.len().min(buf.len() - *pos);
    out[..n].copy_from_slice(&buf[*pos..*pos + n]);
    *pos += n;
    n
}

/// Yields the age file of a plaintext stream; see [`super::encrypt_reader`].
pub struct EncryptReader<R> {
    plain: R,
    sealer: Sealer,
}

/// The encryptor's state, apart from its input: not generic, so each reader type adds no
/// code.
struct Sealer {
    key: LessSafeKey,
    /// Plaintext bytes still to come, as announced.
    remaining: u64,
    announced: u64,
    counter: u64,
    /// The header and nonce first, then one sealed chunk at a time.
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    state: State,
}

impl<R: Read> EncryptReader<R> {
    pub(super) fn new(recipient: &[u8; 32], plain: R, plain_len: u64) -> io::Result<Self> {
        let sealer = Sealer::new(recipient, plain_len)?;
        Ok(EncryptReader { plain, sealer })
    }
}

impl Sealer {
    fn new(recipient: &[u8; 32], plain_len: u64) -> io::Result<Sealer> {
        // age: a fresh 16-byte file key, ephemeral secret and payload nonce for each file.
        let mut file_key = Zeroizing::new([0u8; 16]);
        let mut ephemeral = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; NONCE_LEN];
        for buf in [&mut file_key[..], &mut ephemeral[..], &mut nonce[..]] {
            getrandom::fill(buf).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
        }
        let head = header::seal(&file_key, &ephemeral, recipient).map_err(io::Error::other)?;
        let mut buf = Zeroizing::new(Vec::with_capacity(CHUNK + TAG));
        buf.extend_from_slice(&head);
        buf.extend_from_slice(&nonce);
        Ok(Sealer {
            key: header::payload_key(&file_key, &nonce),
            remaining: plain_len,
            announced: plain_len,
            counter: 0,
            buf,
            pos: 0,
            state: State::Open,
        })
    }

    fn read(&mut self, plain: &mut dyn Read, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.buf.len() {
                return Ok(drain(&self.buf, &mut self.pos, out));
            }
            match &self.state {
                State::Open => {
                    if let Err(e) = self.seal_next(plain) {
                        // The buffer may hold plaintext read for the failed chunk.
                        self.buf.clear();
                        self.pos = 0;
                        self.state = Failure::of(&e);
                        return Err(e);
                    }
                }
                State::Done => return Ok(0),
                State::Failed(failure) => return Err(failure.error()),
            }
        }
    }

    /// Reads and seals the next chunk into `buf`.
    fn seal_next(&mut self, plain: &mut dyn Read) -> io::Result<()> {
        let n = self.remaining.min(CHUNK as u64) as usize;
        self.buf.clear();
        self.buf.resize(n, 0);
        let got = read_full(plain, &mut self.buf[..])?;
        if got < n {
            let read = self.announced - self.remaining + got as u64;
            let msg = format!(
                "the plaintext ended after {read} of its announced {} bytes",
                self.announced
            );
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
        }
        self.remaining -= n as u64;
        let last = self.remaining == 0;
        if last && read_full(plain, &mut [0u8; 1])? != 0 {
            let msg = format!(
                "the plaintext is longer than its announced {} bytes",
                self.announced
            );
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        let nonce = chunk_nonce(self.counter, last);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut self.buf[..])
            .map_err(|_| io::Error::other("ChaCha20-Poly1305 refused to seal a chunk"))?;
        self.buf.extend_from_slice(tag.as_ref());
        self.pos = 0;
        self.counter += 1;
        if last {
            self.state = State::Done;
        }
        Ok(())
    }
}

/// Shows the position only: the buffer holds plaintext and the key is secret.
impl<R> fmt::Debug for EncryptReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptReader")
            .field("chunk", &self.sealer.counter)
            .field("remaining", &self.sealer.remaining)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Read for EncryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.sealer.read(&mut self.plain, out)
    }
}

/// Yields the plaintext of an age file; see [`super::decrypt_reader`].
pub struct DecryptReader<R> {
    cipher: BufReader<R>,
    opener: Opener,
}

/// The decryptor's state, apart from its input (not generic, as [`Sealer`]).
struct Opener {
    key: LessSafeKey,
    counter: u64,
    /// One sealed chunk and one byte past it (which tells whether the chunk is the final
    /// one); after opening, its plaintext at `pos..plain_end`.
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    plain_end: usize,
    /// The look-ahead byte read past the current chunk: the next chunk's first.
    carry: Option<u8>,
    state: State,
}

impl<R: Read> DecryptReader<R> {
    pub(super) fn new(id: &Identity, cipher: R) -> Result<Self, CryptError> {
        let mut cipher = BufReader::new(cipher);
        let opener = Opener::new(id, &mut cipher)?;
        Ok(DecryptReader { cipher, opener })
    }
}

impl Opener {
    /// Reads the header and the payload nonce.
    fn new(id: &Identity, cipher: &mut dyn BufRead) -> Result<Opener, CryptError> {
        let file_key = header::open(cipher, id)?;
        let mut nonce = [0u8; NONCE_LEN];
        if read_full(cipher, &mut nonce)? < NONCE_LEN {
            return Err(CryptError::Payload(
                "the file ends before the payload nonce (truncated)".into(),
            ));
        }
        Ok(Opener {
            key: header::payload_key(&file_key, &nonce),
            counter: 0,
            buf: Zeroizing::new(vec![0; CHUNK + TAG + 1]),
            pos: 0,
            plain_end: 0,
            carry: None,
            state: State::Open,
        })
    }

    fn read(&mut self, cipher: &mut dyn Read, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.plain_end {
                return Ok(drain(&self.buf[..self.plain_end], &mut self.pos, out));
            }
            match &self.state {
                State::Open => {
                    if let Err(e) = self.open_next(cipher) {
                        // A chunk that failed to open may have been overwritten in place.
                        self.pos = 0;
                        self.plain_end = 0;
                        self.state = Failure::of(&e);
                        return Err(e);
                    }
                }
                State::Done => return Ok(0),
                State::Failed(failure) => return Err(failure.error()),
            }
        }
    }

    /// Reads and opens the next chunk: its plaintext lands at `buf[..plain_end]`.
    fn open_next(&mut self, cipher: &mut dyn Read) -> io::Result<()> {
        let mut filled = 0;
        if let Some(b) = self.carry.take() {
            self.buf[0] = b;
            filled = 1;
        }
        filled += read_full(cipher, &mut self.buf[filled..])?;
        // The chunk is the final one exactly when the file ends before a byte past it.
        let last = filled <= CHUNK + TAG;
        let sealed = filled.min(CHUNK + TAG);
        let chunk = self.counter;
        if sealed < TAG {
            let msg = format!("chunk {chunk} is cut short (the object is truncated)");
            return Err(payload_error(msg));
        }
        let nonce = chunk_nonce(chunk, last);
        if (self.key)
            .open_in_place(nonce, Aad::empty(), &mut self.buf[..sealed])
            .is_err()
        {
            let msg = format!(
                "chunk {chunk} failed authentication (the object was modified, truncated or \
                 extended)"
            );
            return Err(payload_error(msg));
        }
        let plain = sealed - TAG;
        // age: the final chunk is empty only when the whole payload is.
        if last && plain == 0 && chunk > 0 {
            return Err(payload_error(format!("final chunk {chunk} is empty")));
        }
        if !last {
            self.carry = Some(self.buf[CHUNK + TAG]);
        }
        self.pos = 0;
        self.plain_end = plain;
        self.counter += 1;
        if last {
            self.state = State::Done;
        }
        Ok(())
    }
}

/// Shows the position only: the buffer holds plaintext and the key is secret.
impl<R> fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptReader")
            .field("chunk", &self.opener.counter)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.opener.read(&mut self.cipher, out)
    }
}
