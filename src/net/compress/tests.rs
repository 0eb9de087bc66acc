//! Unit tests for COMPRESS=DEFLATE's stream: split points, flush boundaries, bounded memory,
//! corrupt input. The e2e tests (tests/e2e/test_ext_compress.py) check the same against
//! Python's zlib through the real binary.

use super::*;
use futures_lite::future::block_on;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use miniz_oxide::inflate::stream::inflate;

/// An in-memory peer: reads hand out at most `chunk` bytes of `rx`; writes take at most
/// `chunk` bytes into `tx` (so partial writes are exercised).
struct Mock {
    rx: Vec<u8>,
    rx_pos: usize,
    chunk: usize,
    tx: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Mock {
    fn new(rx: &[u8], chunk: usize) -> (Mock, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let tx = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let m = Mock {
            rx: rx.to_vec(),
            rx_pos: 0,
            chunk,
            tx: tx.clone(),
        };
        (m, tx)
    }
}

impl AsyncRead for Mock {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = (self.rx.len() - self.rx_pos).min(buf.len()).min(self.chunk);
        let start = self.rx_pos;
        buf[..n].copy_from_slice(&self.rx[start..start + n]);
        self.rx_pos += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Mock {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.chunk);
        self.tx.lock().unwrap().extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Compress each burst with a sync flush after it, as a client does per command.
fn client_stream(bursts: &[&[u8]]) -> Vec<u8> {
    let mut d = Deflater::new();
    let mut out = Vec::new();
    for b in bursts {
        d.compress(b, &mut out).unwrap();
        d.sync_flush(&mut out).unwrap();
    }
    out
}

/// Inflate a whole raw-deflate byte string with a fresh decoder (not the code under test's
/// Inflater), failing if it is not complete up to a block boundary.
fn inflate_all(data: &[u8]) -> Vec<u8> {
    let mut st = InflateState::new_boxed(DataFormat::Raw);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut input = data;
    loop {
        let r = inflate(&mut st, input, &mut buf, MZFlush::None);
        out.extend_from_slice(&buf[..r.bytes_written]);
        input = &input[r.bytes_consumed..];
        match r.status {
            Ok(MZStatus::StreamEnd) => break,
            Ok(_) => {}
            Err(MZError::Buf) => break,
            Err(e) => panic!("independent inflate failed: {e:?}"),
        }
        if input.is_empty() && r.bytes_written < buf.len() {
            break;
        }
    }
    out
}

fn read_all(s: &mut DeflateStream, buf_size: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; buf_size];
    loop {
        let n = block_on(s.read(&mut buf))?;
        assert!(n <= buf_size);
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// A small deterministic PRNG (xorshift) for test data.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn bytes_buffered_before_the_switch_are_inflated_first_at_every_split_point() {
    // RFC 4978 §3: what follows the COMPRESS line's CRLF is compressed, even when it arrived
    // in the same packet and the framer already holds it.
    let plain: &[&[u8]] = &[
        b"a2 SELECT INBOX\r\n",
        b"a3 FETCH 1:* (FLAGS)\r\n",
        b"a4 IDLE\r\n",
    ];
    let wire = client_stream(plain);
    let want = plain.concat();
    for split in 0..=wire.len() {
        for chunk in [1, 7, 4096] {
            let (mock, _) = Mock::new(&wire[split..], chunk);
            let mut s = DeflateStream::new(Box::new(mock), &wire[..split]);
            assert_eq!(read_all(&mut s, 16 * 1024).unwrap(), want, "split {split}");
        }
    }
}

#[test]
fn every_flush_leaves_the_client_a_decodable_stream() {
    // RFC 4978 §4: after each burst the client must be able to decode all of it.
    let (mock, tx) = Mock::new(b"", 3000);
    let mut s = DeflateStream::new(Box::new(mock), b"");
    let big = {
        let mut v = Vec::new();
        let mut n = 0u32;
        while v.len() < 1_000_000 {
            n += 1;
            let line = format!("* {n} FETCH (UID {} FLAGS (\\Seen))\r\n", n * 3 + 7);
            v.extend_from_slice(line.as_bytes());
        }
        v
    };
    let bursts: Vec<&[u8]> = vec![
        b"a1 OK COMPRESS active\r\n",
        b"* 3 EXISTS\r\n* 0 RECENT\r\n",
        &big,
        b"* OK Still here\r\n",
    ];
    let mut sent = Vec::new();
    for b in bursts {
        block_on(s.write_all(b)).unwrap();
        block_on(s.flush()).unwrap();
        sent.extend_from_slice(b);
        let wire = tx.lock().unwrap().clone();
        assert_eq!(inflate_all(&wire), sent);
    }
    // A flush with nothing new adds no bytes (no empty sync blocks for nothing).
    let before = tx.lock().unwrap().len();
    block_on(s.flush()).unwrap();
    assert_eq!(tx.lock().unwrap().len(), before);
    // Repetitive IMAP text does compress.
    assert!(before < sent.len() / 2, "{before} of {}", sent.len());
}

#[test]
fn pending_output_stays_near_the_high_water_mark() {
    let (mock, _tx) = Mock::new(b"", 1 << 20);
    let mut s = DeflateStream::new(Box::new(mock), b"");
    let data = noise(7, 4 * 1024 * 1024);
    // Incompressible data written without a flush: the adapter must drain as it goes.
    let mut rest = &data[..];
    while !rest.is_empty() {
        let n = block_on(s.write(rest)).unwrap();
        assert!(n > 0 && n <= WRITE_CHUNK);
        rest = &rest[n..];
        assert!(s.out.len() - s.out_pos < HIGH_WATER + 2 * WRITE_CHUNK);
    }
}

#[test]
fn a_zip_bomb_is_inflated_in_bounded_pieces() {
    // 64 MiB of one byte compresses to ~64 KiB; reading it must never hold more than the
    // caller's buffer of plain text plus the fixed input chunk.
    let bomb = vec![b'a'; 64 << 20];
    let wire = client_stream(&[&bomb]);
    assert!(wire.len() < 200_000, "{}", wire.len());
    let (mock, _) = Mock::new(&wire, 1 << 20);
    let mut s = DeflateStream::new(Box::new(mock), b"");
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0usize;
    loop {
        let n = block_on(s.read(&mut buf)).unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= buf.len());
        assert!(s.inflater.input_capacity() <= IN_CHUNK);
        total += n;
    }
    assert_eq!(total, bomb.len());
}

#[test]
fn corrupt_input_is_an_invalid_data_error_not_a_panic() {
    // BTYPE = 11 (reserved, RFC 1951 §3.2.3) is never valid.
    let (mock, _) = Mock::new(&[0x07, 0xff, 0xff, 0xff], 16);
    let mut s = DeflateStream::new(Box::new(mock), b"");
    let err = read_all(&mut s, 1024).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("not valid deflate"), "{err}");
    // Once broken, it stays broken.
    assert!(read_all(&mut s, 1024).is_err());

    // Garbage of every kind, and valid data with a flipped byte: an error or some bytes,
    // never a panic or a hang.
    let good = client_stream(&[b"a1 NOOP\r\n", b"a2 CAPABILITY\r\n"]);
    for seed in 0..300u64 {
        let mut data = noise(seed, (seed as usize * 13) % 700 + 1);
        if seed % 2 == 0 {
            data = good.clone();
            let i = seed as usize % data.len();
            data[i] ^= (seed as u8) | 1;
        }
        let (mock, _) = Mock::new(&data, 1 + seed as usize % 50);
        let mut s = DeflateStream::new(Box::new(mock), b"");
        let _ = read_all(&mut s, 64);
    }
}

#[test]
fn a_final_block_ends_the_stream_with_an_error() {
    // compress_to_vec writes one final (BFINAL) block: its data is delivered, then nothing
    // more can come.
    let wire = miniz_oxide::deflate::compress_to_vec(b"a1 NOOP\r\n", 6);
    let (mock, _) = Mock::new(&wire, 1024);
    let mut s = DeflateStream::new(Box::new(mock), b"");
    let mut buf = [0u8; 64];
    let n = block_on(s.read(&mut buf)).unwrap();
    assert_eq!(&buf[..n], b"a1 NOOP\r\n");
    let err = block_on(s.read(&mut buf)).unwrap_err();
    assert!(err.to_string().contains("final deflate block"), "{err}");
}

#[test]
fn eof_mid_stream_reads_as_the_client_closing() {
    let wire = client_stream(&[b"a1 NOOP\r\n"]);
    let (mock, _) = Mock::new(&wire[..wire.len() / 2], 1024);
    let mut s = DeflateStream::new(Box::new(mock), b"");
    // Whatever could be decoded, then 0 (end of input), not an error or a hang.
    let got = read_all(&mut s, 64).unwrap();
    assert!(b"a1 NOOP\r\n".starts_with(&got));
}

#[test]
fn round_trip_random_bursts_and_chunkings() {
    for seed in 1..40u64 {
        let bursts: Vec<Vec<u8>> = (0..(seed % 7 + 1))
            .map(|i| {
                let mut b = noise(seed * 100 + i, (seed * 977 + i * 31) as usize % 5000);
                b.extend_from_slice(b"x OK done\r\n");
                b
            })
            .collect();
        let refs: Vec<&[u8]> = bursts.iter().map(|b| b.as_slice()).collect();
        let wire = client_stream(&refs);
        let split = (seed as usize * 37) % (wire.len() + 1);
        let (mock, _) = Mock::new(&wire[split..], 1 + (seed as usize * 131) % 3000);
        let mut s = DeflateStream::new(Box::new(mock), &wire[..split]);
        let got = read_all(&mut s, 1 + (seed as usize * 53) % 20000).unwrap();
        assert_eq!(got, bursts.concat(), "seed {seed}");
        // Each flushed burst on its own is decodable by an independent decoder.
        assert_eq!(inflate_all(&wire), bursts.concat());
    }
}

#[test]
fn a_released_compressor_continues_the_same_stream() {
    let a = noise(1, 5000);
    let b = b"* 3 EXISTS\r\n".repeat(50);
    let mut d = Deflater::new();
    let mut out = Vec::new();
    d.compress(&a, &mut out).unwrap();
    // Unflushed data pins the state.
    assert!(!d.release());
    d.sync_flush(&mut out).unwrap();
    assert!(d.release());
    d.compress(&b, &mut out).unwrap();
    d.sync_flush(&mut out).unwrap();
    assert!(d.release());
    d.compress(&a, &mut out).unwrap();
    d.sync_flush(&mut out).unwrap();
    let mut want = a.clone();
    want.extend_from_slice(&b);
    want.extend_from_slice(&a);
    assert_eq!(inflate_all(&out), want);
}

#[test]
fn a_released_inflater_keeps_unread_input_and_its_window() {
    // The second burst refers back into the first (a repeat): the window must survive.
    let text = noise(7, 3000);
    let mut twice = text.clone();
    twice.extend_from_slice(&text);
    let stream = client_stream(&[&text, &text]);
    let mut inf = Inflater::new();
    let cut = stream.len() / 2;
    inf.feed(&stream[..cut]);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 100_000];
    while let Ok(Inflated::Data(n)) = inf.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    assert!(inf.release());
    assert_eq!(inf.input_capacity(), 0);
    inf.feed(&stream[cut..]);
    inf.feed(b"");
    // Pending input: not released.
    assert!(inf.pending_input() == 0 || !inf.release());
    while let Ok(Inflated::Data(n)) = inf.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, twice);
}
