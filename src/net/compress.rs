//! COMPRESS=DEFLATE (RFC 4978): a connection [`Stream`] whose bytes are raw deflate
//! (RFC 1951: no zlib header or checksum, RFC 4978 §3) in both directions.
//!
//! Owns: the sans-IO [`Inflater`] (client → server) and [`Deflater`] (server → client), and
//! [`DeflateStream`], the thin adapter that puts them around whatever stream the connection
//! runs over (TCP, or TLS after STARTTLS: RFC 4978 §3 orders compression inside encryption,
//! which is what wrapping the current stream gives). Never: parses IMAP, decides whether
//! COMPRESS is allowed (that is the session), or awaits anything but the inner stream.
//!
//! Decisions:
//! - **Start points** (RFC 4978 §3): the client compresses from the first byte after the
//!   CRLF of its `COMPRESS` line, the server from the first byte after the CRLF of its tagged
//!   OK. Bytes the framer had already buffered past the COMPRESS line are therefore
//!   compressed data: [`wrap`] takes them and feeds them to the inflater before any socket
//!   read.
//! - **Flushing** (RFC 4978 §4): every `flush` of the stream ends the current burst with a
//!   sync flush (an empty stored block), so the client can decode every response it has
//!   been sent without waiting for more. `net::conn` flushes after each handler's output.
//! - **Bounded memory**: a read returns at most the caller's buffer of inflated bytes (the
//!   connection reads 16 KiB at a time into the framer, whose line and literal limits then
//!   apply), and compressed input is read [`IN_CHUNK`] bytes at a time, so a "zip bomb" costs
//!   CPU proportional to what it expands to, but no memory beyond the fixed buffers. Output
//!   waiting for a slow client is capped near [`HIGH_WATER`]. The state of both directions
//!   costs ~290 KiB while the connection works, mostly the compressor's hash chains.
//! - **Quiet connections give memory back** ([`Quiet`]): when the connection loop says the
//!   client has gone quiet (IDLE, or no input for a while), the next poll drops the
//!   compressor and the inflater's input buffer once everything is flushed and consumed.
//!   Every flush ends byte-aligned after an empty stored block, so a fresh compressor's
//!   blocks continue the same raw deflate stream (it only loses the history for matches,
//!   RFC 1951 §2). The inflater's 32 KiB window stays: the client's compressor may refer to
//!   it.
//! - **Corrupt input**: invalid deflate data from the client is an `InvalidData` I/O error;
//!   the connection loop ends the connection and logs it with the peer. So is a final block
//!   (BFINAL): nothing may follow it, so the client can't send more commands.

use super::conn::Stream;
use futures_lite::{AsyncRead, AsyncWrite};
use miniz_oxide::deflate::core::CompressorOxide;
use miniz_oxide::deflate::CompressionLevel;
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Compressed bytes read from the inner stream at a time (and the most the inflater holds).
pub const IN_CHUNK: usize = 16 * 1024;
/// Most plain bytes one `poll_write` takes, so one call's compressed output stays small.
const WRITE_CHUNK: usize = 16 * 1024;
/// Compressed output waiting for the client beyond this is written out before more is taken.
pub const HIGH_WATER: usize = 64 * 1024;
/// Scratch space the compressor writes into.
const SCRATCH: usize = 8 * 1024;

/// Why the client's compressed stream can't be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// Not valid deflate data (RFC 1951): bad block type, bad Huffman code, bad distance...
    Corrupt,
    /// The client sent a final block (BFINAL, RFC 1951 §3.2.3): nothing can follow it.
    Ended,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::Corrupt => {
                f.write_str("compressed input from the client is not valid deflate data (RFC 1951)")
            }
            InflateError::Ended => f.write_str(
                "the client ended its compressed stream (final deflate block); nothing can follow",
            ),
        }
    }
}

impl std::error::Error for InflateError {}

impl From<InflateError> for io::Error {
    fn from(e: InflateError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// What [`Inflater::read`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inflated {
    /// This many plain bytes (at least one) were written to the output.
    Data(usize),
    /// Everything fed so far is decoded: feed more compressed input.
    NeedInput,
}

/// Sans-IO raw-deflate decoder for the client's side of the connection.
pub struct Inflater {
    state: Box<InflateState>,
    /// Compressed bytes not yet decoded are `input[pos..end]`; `input[end..]` is free space.
    input: Vec<u8>,
    pos: usize,
    end: usize,
    ended: bool,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Inflater {
        Inflater {
            state: InflateState::new_boxed(DataFormat::Raw),
            input: Vec::new(),
            pos: 0,
            end: 0,
            ended: false,
        }
    }

    /// Compressed bytes received but not yet decoded.
    pub fn pending_input(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Bytes of buffer the inflater holds for compressed input (for the memory bound).
    pub fn input_capacity(&self) -> usize {
        self.input.len()
    }

    /// Queue compressed bytes (the framer's leftovers after the COMPRESS line, or a test's).
    pub fn feed(&mut self, data: &[u8]) {
        self.compact();
        self.input.truncate(self.end);
        self.input.extend_from_slice(data);
        self.end = self.input.len();
    }

    /// Space to read compressed bytes into; call [`Inflater::filled`] with how many were read.
    /// Empty only when [`IN_CHUNK`] or more bytes are already waiting.
    pub fn input_space(&mut self) -> &mut [u8] {
        self.compact();
        if self.input.len() < IN_CHUNK {
            self.input.resize(IN_CHUNK, 0);
        }
        self.input.get_mut(self.end..).unwrap_or_default()
    }

    /// After [`Inflater::input_space`]: its first `n` bytes were filled.
    pub fn filled(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.input.len());
    }

    /// Move the undecoded bytes to the front, so the free space is all at the end.
    /// Give the input buffer back if it holds nothing not yet inflated; whether it did.
    pub fn release(&mut self) -> bool {
        if self.pending_input() == 0 {
            self.input = Vec::new();
            self.pos = 0;
            self.end = 0;
        }
        self.input.capacity() == 0
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            let end = self.end.min(self.input.len());
            let pos = self.pos.min(end);
            self.input.copy_within(pos..end, 0);
            self.end = end - pos;
            self.pos = 0;
        }
    }

    /// Decode into `out` (at most `out.len()` bytes: the caller bounds how much plain data
    /// exists at once).
    pub fn read(&mut self, out: &mut [u8]) -> Result<Inflated, InflateError> {
        if self.ended {
            return Err(InflateError::Ended);
        }
        if out.is_empty() {
            return Ok(Inflated::NeedInput);
        }
        loop {
            let input = self.input.get(self.pos..self.end).unwrap_or_default();
            let had_input = !input.is_empty();
            let r =
                miniz_oxide::inflate::stream::inflate(&mut self.state, input, out, MZFlush::None);
            self.pos = self.pos.saturating_add(r.bytes_consumed);
            match r.status {
                Ok(MZStatus::StreamEnd) => {
                    self.ended = true;
                    return if r.bytes_written > 0 {
                        Ok(Inflated::Data(r.bytes_written))
                    } else {
                        Err(InflateError::Ended)
                    };
                }
                Ok(_) | Err(MZError::Buf) => {
                    if r.bytes_written > 0 {
                        return Ok(Inflated::Data(r.bytes_written));
                    }
                    if self.pending_input() == 0 {
                        return Ok(Inflated::NeedInput);
                    }
                    if r.bytes_consumed == 0 && had_input {
                        // Input waiting, room for output, and still no progress: the decoder
                        // can't continue (never seen; refuse rather than spin).
                        return Err(InflateError::Corrupt);
                    }
                }
                Err(_) => return Err(InflateError::Corrupt),
            }
        }
    }
}

/// Sans-IO raw-deflate encoder for the server's side of the connection.
pub struct Deflater {
    /// `None` until the first `compress` and after [`Deflater::release`].
    state: Option<Box<CompressorOxide>>,
    /// Data went in since the last sync flush.
    dirty: bool,
}

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

fn compress_error(e: MZError) -> io::Error {
    io::Error::other(format!("deflate compressor failed: {e:?}"))
}

impl Deflater {
    pub fn new() -> Deflater {
        // Level 6 is zlib's (and Dovecot's imap_zlib) default: most of the gain for IMAP's
        // repetitive text at a modest CPU cost; RFC 4978 §3 leaves the level to the sender.
        Deflater {
            state: None,
            dirty: false,
        }
    }

    fn state(&mut self) -> &mut CompressorOxide {
        self.state.get_or_insert_with(|| {
            let mut state = Box::<CompressorOxide>::default();
            state.set_format_and_level(DataFormat::Raw, CompressionLevel::DefaultLevel as u8);
            state
        })
    }

    /// Drop the compressor's state (its history and buffers) if everything compressed so
    /// far has been flushed; the next `compress` starts a fresh one (see the module doc).
    /// Returns whether it is dropped.
    pub fn release(&mut self) -> bool {
        if !self.dirty {
            self.state = None;
        }
        self.state.is_none()
    }

    /// Compress `data`, appending whatever output the compressor releases to `out` (it may
    /// keep some back until [`Deflater::sync_flush`]).
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.dirty = true;
        let mut scratch = [0u8; SCRATCH];
        let mut rest = data;
        loop {
            let r = miniz_oxide::deflate::stream::deflate(
                self.state(),
                rest,
                &mut scratch,
                MZFlush::None,
            );
            out.extend_from_slice(scratch.get(..r.bytes_written).unwrap_or_default());
            rest = rest.get(r.bytes_consumed..).unwrap_or_default();
            match r.status {
                Ok(_) => {}
                // No progress possible without more input: everything is taken.
                Err(MZError::Buf) => return Ok(()),
                Err(e) => return Err(compress_error(e)),
            }
            if rest.is_empty() && r.bytes_written < scratch.len() {
                return Ok(());
            }
            if r.bytes_consumed == 0 && r.bytes_written == 0 {
                return Err(compress_error(MZError::Stream));
            }
        }
    }

    /// End the burst: a sync flush (RFC 1951 empty stored block, RFC 4978 §4) so the client
    /// can decode everything sent so far. Nothing is appended if nothing was compressed since
    /// the last flush.
    pub fn sync_flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut scratch = [0u8; SCRATCH];
        loop {
            let r = miniz_oxide::deflate::stream::deflate(
                self.state(),
                &[],
                &mut scratch,
                MZFlush::Sync,
            );
            out.extend_from_slice(scratch.get(..r.bytes_written).unwrap_or_default());
            if let Err(e) = r.status {
                return Err(compress_error(e));
            }
            // Output space left over: the flush is complete.
            if r.bytes_written < scratch.len() {
                self.dirty = false;
                return Ok(());
            }
        }
    }
}

/// A stream whose bytes are raw deflate both ways (see the module doc).
/// Tells a [`DeflateStream`] from outside that its client has gone quiet: its next poll
/// gives back what can be rebuilt (see the module doc). Cheap to clone and to signal.
#[derive(Clone, Default)]
pub struct Quiet(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Quiet {
    /// Ask the stream to give its buffers back when it next waits for input.
    pub fn signal(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

pub struct DeflateStream {
    inner: Stream,
    quiet: Quiet,
    inflater: Inflater,
    deflater: Deflater,
    /// Compressed output not yet written to `inner`: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
}

/// Compress `inner` from now on. `already_read`: bytes received after the client's
/// `COMPRESS` line that the framer had buffered (RFC 4978 §3: they are compressed already).
/// The [`Quiet`] returned signals the stream.
pub fn wrap(inner: Stream, already_read: Vec<u8>) -> (Stream, Quiet) {
    let s = DeflateStream::new(inner, &already_read);
    let quiet = s.quiet.clone();
    (Box::new(s), quiet)
}

impl DeflateStream {
    pub fn new(inner: Stream, already_read: &[u8]) -> DeflateStream {
        let mut inflater = Inflater::new();
        inflater.feed(already_read);
        DeflateStream {
            inner,
            quiet: Quiet::default(),
            inflater,
            deflater: Deflater::new(),
            out: Vec::new(),
            out_pos: 0,
        }
    }

    /// Write all pending compressed output to the inner stream.
    /// While [`Quiet`] is signalled (until the client sends something): drop what a quiet
    /// connection doesn't need, as far as nothing is pending in that direction.
    fn release_if_quiet(&mut self) {
        if !self.quiet.0.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if self.out.len() == self.out_pos {
            self.out = Vec::new();
            self.out_pos = 0;
        }
        self.deflater.release();
        self.inflater.release();
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(pending) = self.out.get(self.out_pos..).filter(|p| !p.is_empty()) {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > 2 * HIGH_WATER {
            self.out.shrink_to(HIGH_WATER);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for DeflateStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            match this.inflater.read(buf)? {
                Inflated::Data(n) => return Poll::Ready(Ok(n)),
                Inflated::NeedInput => {}
            }
            let space = this.inflater.input_space();
            if space.is_empty() {
                // IN_CHUNK bytes waiting yet no output: read() would have failed; be safe.
                return Poll::Ready(Err(InflateError::Corrupt.into()));
            }
            let r = Pin::new(&mut this.inner).poll_read(cx, space);
            if r.is_pending() {
                this.release_if_quiet();
            }
            let n = ready!(r)?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            // The client is talking again.
            this.quiet
                .0
                .store(false, std::sync::atomic::Ordering::Relaxed);
            this.inflater.filled(n);
        }
    }
}

impl AsyncWrite for DeflateStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len().saturating_sub(this.out_pos) >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        let n = buf.len().min(WRITE_CHUNK);
        this.deflater
            .compress(buf.get(..n).unwrap_or_default(), &mut this.out)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.deflater.sync_flush(&mut this.out)?;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.deflater.sync_flush(&mut this.out)?;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests;
