//! Fuzz the framer and the command parser together, as the connection loop uses them.
//! Byte 0 picks the chunk size (so every split point is exercised), the rest is the stream.
//! Neither may panic; every framed command must end in CRLF and respect the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::imap::framing::{FrameEvent, Framer, FramerLimits};
use pimap::imap::parse::parse_command;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = 1 + (first as usize % 64);
    let limits = FramerLimits {
        max_line: 512,
        max_literal: 2048,
        max_command: 4096,
    };
    let mut framer = Framer::new(limits);
    for part in stream.chunks(chunk) {
        framer.push(part);
        while let Some(ev) = framer.next_event() {
            if let FrameEvent::Command(cmd) = ev {
                assert!(cmd.ends_with(b"\r\n"));
                assert!(cmd.len() as u64 <= limits.max_command + 2);
                if let Err(e) = parse_command(&cmd) {
                    assert!(!e.reason.contains('\r') && !e.reason.contains('\n'));
                }
            }
        }
    }
    let _ = framer.take_buffered();
    // The parser on its own, on input the framer would never produce.
    let _ = parse_command(stream);
});
