//! Fuzz COMPRESS=DEFLATE's decoder (RFC 4978, RFC 1951 raw deflate) the way the connection
//! uses it: arbitrary client bytes → `Inflater` → `Framer`. Byte 0 picks the chunk size and
//! byte 1 the read buffer size. Nothing may panic; every read is bounded by the caller's
//! buffer and the inflater never holds more compressed input than one chunk plus
//! `IN_CHUNK`, however much the input expands (zip bombs). The second half checks the
//! round trip: what `Deflater` sends (with a sync flush at every chunk) inflates back
//! exactly, at every split point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::imap::framing::{FrameEvent, Framer, FramerLimits};
use pimap::net::compress::{Deflater, Inflated, Inflater, IN_CHUNK};

fuzz_target!(|data: &[u8]| {
    let [a, b, stream @ ..] = data else {
        return;
    };
    let chunk = 1 + (*a as usize % 64);
    let read_size = 1 + (*b as usize) * 8;
    let mut framer = Framer::new(FramerLimits {
        max_line: 512,
        max_literal: 2048,
        max_command: 4096,
    });
    let mut inflater = Inflater::new();
    let mut out = vec![0u8; read_size];
    let mut plain_total = 0usize;
    'feed: for part in stream.chunks(chunk) {
        inflater.feed(part);
        assert!(inflater.pending_input() <= IN_CHUNK + chunk);
        loop {
            match inflater.read(&mut out) {
                Ok(Inflated::Data(n)) => {
                    assert!(n > 0 && n <= out.len());
                    plain_total += n;
                    framer.push(&out[..n]);
                    while let Some(ev) = framer.next_event() {
                        if let FrameEvent::Command(cmd) = ev {
                            assert!(cmd.len() <= 4096 + 2);
                        }
                    }
                    // A bomb is cut short: the point is bounded memory, not finishing it.
                    if plain_total > 8 << 20 {
                        break 'feed;
                    }
                }
                Ok(Inflated::NeedInput) => break,
                Err(_) => break 'feed,
            }
        }
    }

    // Round trip: the server's compressor, flushed per chunk, decoded by the inflater.
    let mut deflater = Deflater::new();
    let mut wire = Vec::new();
    for part in stream.chunks(chunk) {
        deflater.compress(part, &mut wire).unwrap();
        deflater.sync_flush(&mut wire).unwrap();
    }
    let mut inflater = Inflater::new();
    let mut got = Vec::new();
    for part in wire.chunks(chunk) {
        inflater.feed(part);
        while let Ok(Inflated::Data(n)) = inflater.read(&mut out) {
            got.extend_from_slice(&out[..n]);
        }
    }
    assert_eq!(got, stream);
});
