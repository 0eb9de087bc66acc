//! Framer tests: every limit, every literal form, arbitrary chunking.

use super::*;

fn limits() -> FramerLimits {
    FramerLimits {
        max_line: 100,
        max_literal: 1000,
        max_command: 2000,
    }
}

/// Feed `input` in chunks of `chunk` bytes, collecting every event.
fn run(l: FramerLimits, input: &[u8], chunk: usize) -> Vec<FrameEvent> {
    let mut f = Framer::new(l);
    let mut evs = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        f.push(c);
        while let Some(e) = f.next_event() {
            evs.push(e);
        }
    }
    evs
}

fn cmd(s: &[u8]) -> FrameEvent {
    FrameEvent::Command(s.to_vec())
}

fn rej(s: &str, close: bool) -> FrameEvent {
    FrameEvent::Rejected {
        response: s.as_bytes().to_vec(),
        close,
    }
}

#[test]
fn simple_lines_any_chunking() {
    let input = b"a1 CAPABILITY\r\na2 NOOP\na3 LOGOUT\r\n";
    for chunk in [1, 2, 3, 7, 100] {
        assert_eq!(
            run(limits(), input, chunk),
            vec![
                cmd(b"a1 CAPABILITY\r\n"),
                cmd(b"a2 NOOP\r\n"),
                cmd(b"a3 LOGOUT\r\n")
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn empty_lines_get_an_untagged_bad() {
    // RFC 3501 §9: a command needs a tag and a name; an empty line is answered `* BAD`.
    let bad = FrameEvent::Rejected {
        response: b"* BAD Empty command line: expected a tag and a command.\r\n".to_vec(),
        close: false,
    };
    assert_eq!(
        run(limits(), b"\r\n\na NOOP\r\n\r\n", 1),
        vec![bad.clone(), bad.clone(), cmd(b"a NOOP\r\n"), bad]
    );
}

#[test]
fn empty_line_is_a_response_while_one_is_due() {
    // AUTHENTICATE: after a `+ ` challenge an empty line is an empty response (RFC 3501
    // §6.2.2; SCRAM's answer to the server-final-message), until the connection says otherwise.
    let mut f = Framer::new(limits());
    f.expect_response(true);
    f.push(b"\r\n\r\n");
    assert_eq!(f.next_event(), Some(cmd(b"\r\n")));
    f.expect_response(false);
    assert!(matches!(
        f.next_event(),
        Some(FrameEvent::Rejected { close: false, .. })
    ));
    assert_eq!(f.next_event(), None);
}

#[test]
fn sync_literal_asks_for_continuation() {
    // RFC 3501 §8 transcript: C: A003 APPEND saved-messages (\Seen) {7}  S: + Ready
    let input = b"A003 APPEND saved (\\Seen) {7}\r\nhello\r\n\r\nA004 NOOP\r\n";
    for chunk in [1, 5, 64] {
        assert_eq!(
            run(limits(), input, chunk),
            vec![
                FrameEvent::ContinuationNeeded,
                cmd(b"A003 APPEND saved (\\Seen) {7}\r\nhello\r\n\r\n"),
                cmd(b"A004 NOOP\r\n"),
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn literal_bytes_are_not_scanned_for_line_ends() {
    let input = b"a LOGIN {3}\r\nu\nx {4+}\r\n{1}\n\r\n";
    assert_eq!(
        run(limits(), input, 1),
        vec![
            FrameEvent::ContinuationNeeded,
            cmd(b"a LOGIN {3}\r\nu\nx {4+}\r\n{1}\n\r\n")
        ]
    );
}

#[test]
fn non_sync_and_literal8_and_bare_lf() {
    let input = b"a APPEND x {2+}\nhi\r\nb APPEND x ~{3}\r\n\x00\x01\x02\r\n";
    assert_eq!(
        run(limits(), input, 1),
        vec![
            cmd(b"a APPEND x {2+}\r\nhi\r\n"),
            FrameEvent::ContinuationNeeded,
            cmd(b"b APPEND x ~{3}\r\n\x00\x01\x02\r\n"),
        ]
    );
}

#[test]
fn zero_length_literal() {
    assert_eq!(
        run(limits(), b"a LOGIN {0}\r\n {0+}\r\n\r\n", 1),
        vec![
            FrameEvent::ContinuationNeeded,
            cmd(b"a LOGIN {0}\r\n {0+}\r\n\r\n")
        ]
    );
}

#[test]
fn line_too_long_tagged_and_skipped() {
    let mut input = b"A7 SEARCH ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 200));
    input.extend_from_slice(b"\r\nA8 NOOP\r\n");
    for chunk in [1, 13, 1000] {
        let mut f = Framer::new(limits());
        let mut evs = Vec::new();
        for c in input.chunks(chunk) {
            f.push(c);
            while let Some(e) = f.next_event() {
                evs.push(e);
            }
            // The over-long line is never stored.
            assert!(
                f.buffered() <= 101 + chunk,
                "buffered {} with chunk {chunk}",
                f.buffered()
            );
        }
        assert_eq!(
            evs,
            vec![
                rej("A7 BAD Command line too long\r\n", false),
                cmd(b"A8 NOOP\r\n")
            ]
        );
    }
}

#[test]
fn line_exactly_at_limit_is_accepted() {
    let mut line = b"a NOOP ".to_vec();
    line.resize(100, b'x');
    let mut input = line.clone();
    input.extend_from_slice(b"\r\n");
    for chunk in [1, 99, 100, 101, 102] {
        let mut want = line.clone();
        want.extend_from_slice(b"\r\n");
        assert_eq!(
            run(limits(), &input, chunk),
            vec![FrameEvent::Command(want)],
            "chunk {chunk}"
        );
    }
    input.insert(0, b'b');
    assert_eq!(
        run(limits(), &input, 1),
        vec![rej("ba BAD Command line too long\r\n", false)]
    );
}

#[test]
fn line_too_long_without_readable_tag_is_untagged() {
    let input = vec![b'x'; 300];
    assert_eq!(
        run(limits(), &input, 7),
        vec![rej("* BAD Command line too long\r\n", false)]
    );
    let mut input = b"+bad ".to_vec();
    input.extend(vec![b'x'; 300]);
    assert_eq!(
        run(limits(), &input, 300),
        vec![rej("* BAD Command line too long\r\n", false)]
    );
}

#[test]
fn too_long_line_announcing_non_sync_literal_discards_it() {
    let mut input = b"a1 APPEND ".to_vec();
    input.extend(vec![b'x'; 150]);
    input.extend_from_slice(b" {5+}\r\nA\nB\r\n more\r\na2 NOOP\r\n");
    for chunk in [1, 4, 1000] {
        assert_eq!(
            run(limits(), &input, chunk),
            vec![
                rej("a1 BAD Command line too long\r\n", false),
                cmd(b"a2 NOOP\r\n")
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn sync_literal_too_large_is_toobig() {
    let input = b"A1 APPEND INBOX {1001}\r\nA2 NOOP\r\n";
    for chunk in [1, 1000] {
        assert_eq!(
            run(limits(), input, chunk),
            vec![
                rej(
                    "A1 NO [TOOBIG] Literal of 1001 bytes exceeds the limit of 1000 bytes\r\n",
                    false
                ),
                cmd(b"A2 NOOP\r\n"),
            ]
        );
    }
    // A number that does not even fit in 64 bits.
    let evs = run(
        limits(),
        b"A1 APPEND INBOX {99999999999999999999999}\r\n",
        3,
    );
    assert_eq!(
        evs,
        vec![rej("A1 NO [TOOBIG] Literal of an enormous number of bytes exceeds the limit of 1000 bytes\r\n", false)]
    );
}

#[test]
fn command_total_too_large_is_toobig() {
    let l = FramerLimits {
        max_line: 100,
        max_literal: 1000,
        max_command: 1500,
    };
    let mut input = b"A1 LOGIN {900+}\r\n".to_vec();
    input.extend(vec![b'p'; 900]);
    input.extend_from_slice(b" {900}\r\n");
    let evs = run(l, &input, 50);
    assert_eq!(
        evs,
        vec![rej(
            "A1 NO [TOOBIG] Command too large: literal of 900 bytes would exceed the limit of 1500 bytes per command\r\n",
            false
        )]
    );
}

#[test]
fn lines_after_literals_count_towards_the_command_limit() {
    let l = FramerLimits {
        max_line: 100,
        max_literal: 1000,
        max_command: 1050,
    };
    let mut input = b"A1 X {1000+}\r\n".to_vec();
    input.extend(vec![b'p'; 1000]);
    input.extend(vec![b' '; 60]);
    input.extend_from_slice(b"\r\nA2 NOOP\r\n");
    assert_eq!(
        run(l, &input, 64),
        vec![
            rej("A1 BAD Command too long\r\n", false),
            cmd(b"A2 NOOP\r\n")
        ]
    );
}

#[test]
fn non_sync_literal_too_large_closes() {
    let mut f = Framer::new(limits());
    f.push(b"A1 APPEND INBOX {5000+}\r\nFrom: x\r\n");
    assert_eq!(
        f.next_event(),
        Some(rej("* BYE [TOOBIG] Non-synchronizing literal of 5000 bytes exceeds the limit of 1000 bytes\r\n", true))
    );
    assert_eq!(f.next_event(), None);
    f.push(b"A2 NOOP\r\n");
    assert_eq!(f.next_event(), None);
    assert_eq!(f.buffered(), 0);
}

#[test]
fn pipelined_commands_and_take_buffered() {
    let mut f = Framer::new(limits());
    f.push(b"a STARTTLS\r\nb NOOP\r\nc LOG");
    assert_eq!(f.next_event(), Some(cmd(b"a STARTTLS\r\n")));
    assert_eq!(f.buffered(), 13);
    assert_eq!(f.take_buffered(), b"b NOOP\r\nc LOG".to_vec());
    assert_eq!(f.buffered(), 0);
    assert_eq!(f.next_event(), None);
    // A partial command already moved into the command buffer is returned too.
    f.push(b"d LOGIN {3}\r\nab");
    assert_eq!(f.next_event(), Some(FrameEvent::ContinuationNeeded));
    assert_eq!(f.next_event(), None);
    assert_eq!(f.take_buffered(), b"d LOGIN {3}\r\nab".to_vec());
    f.push(b"e NOOP\r\n");
    assert_eq!(f.next_event(), Some(cmd(b"e NOOP\r\n")));
}

#[test]
fn announcement_detection() {
    let a = |s: &[u8]| literal_announcement(s, false);
    assert_eq!(
        a(b"x {5}"),
        Some(Announce {
            size: Some(5),
            sync: true
        })
    );
    assert_eq!(
        a(b"x {5+}"),
        Some(Announce {
            size: Some(5),
            sync: false
        })
    );
    assert_eq!(
        a(b"x ~{5}"),
        Some(Announce {
            size: Some(5),
            sync: true
        })
    );
    assert_eq!(a(b"x {}"), None);
    assert_eq!(a(b"x {+}"), None);
    assert_eq!(a(b"x 5}"), None);
    assert_eq!(a(b"x {5a}"), None);
    assert_eq!(a(b"}"), None);
    assert_eq!(
        a(b"{18446744073709551616}"),
        Some(Announce {
            size: None,
            sync: true
        })
    );
    assert_eq!(a(b"000000000000000000000000000000}"), None);
    assert_eq!(
        literal_announcement(b"0000000000000000000000000000000+}", true),
        Some(Announce {
            size: None,
            sync: false
        })
    );
}

#[test]
fn never_panics_on_random_input() {
    let mut seed: u64 = 42;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    let alphabet = b"a1 {}+~\r\n5x0 ";
    for _ in 0..3000 {
        let len = next() % 200;
        let input: Vec<u8> = (0..len)
            .map(|_| alphabet[next() as usize % alphabet.len()])
            .collect();
        let chunk = 1 + next() as usize % 20;
        let l = FramerLimits {
            max_line: 1 + next() as usize % 40,
            max_literal: next() as u64 % 30,
            max_command: next() as u64 % 200,
        };
        let mut f = Framer::new(l);
        for c in input.chunks(chunk) {
            f.push(c);
            while let Some(e) = f.next_event() {
                if let FrameEvent::Command(c) = e {
                    assert!(c.ends_with(b"\r\n"));
                    assert!(c.len() as u64 <= l.max_command + 2);
                }
            }
            assert!(f.buffered() <= l.max_command as usize + 2 + l.max_line + 2 + chunk);
        }
    }
}

/// Feed `input` to a spooling framer in chunks; returns (events without the data pieces,
/// the data pieces joined).
fn run_spool(input: &[u8], chunk: usize, threshold: u64) -> (Vec<FrameEvent>, Vec<u8>) {
    let mut f = Framer::new(limits()).spool_literals_over(threshold);
    let mut evs = Vec::new();
    let mut data = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        f.push(c);
        while let Some(e) = f.next_event() {
            match e {
                FrameEvent::SpoolData(d) => {
                    assert!(d.len() <= chunk, "a piece is never larger than one push");
                    data.extend_from_slice(&d)
                }
                e => evs.push(e),
            }
        }
    }
    (evs, data)
}

#[test]
fn append_literals_over_the_threshold_are_spooled_not_buffered() {
    let msg: Vec<u8> = (0..500u32)
        .map(|i| b"abc\r\n\0xyz"[i as usize % 9])
        .collect();
    for (ann, sync, cmd_lit) in [
        ("{500}", true, "{0}"),
        ("{500+}", false, "{0}"),
        ("~{500}", true, "~{0}"),
    ] {
        let mut input = format!("A1 append INBOX (\\Seen) {ann}\r\n").into_bytes();
        input.extend_from_slice(&msg);
        input.extend_from_slice(b"\r\nA2 NOOP\r\n");
        for chunk in [1, 3, 64, 1000] {
            let (evs, data) = run_spool(&input, chunk, 100);
            let at = "A1 append INBOX (\\Seen) ".len() + usize::from(ann.starts_with('~'));
            let mut want = vec![FrameEvent::SpoolStart { size: 500, at }];
            if sync {
                want.push(FrameEvent::ContinuationNeeded);
            }
            want.push(cmd(
                format!("A1 append INBOX (\\Seen) {cmd_lit}\r\n\r\n").as_bytes()
            ));
            want.push(cmd(b"A2 NOOP\r\n"));
            assert_eq!(evs, want, "{ann} chunk {chunk}");
            assert_eq!(data, msg, "{ann} chunk {chunk}");
        }
    }
}

#[test]
fn small_literals_and_other_commands_are_not_spooled() {
    // At the threshold: inline as before.
    let (evs, data) = run_spool(b"a APPEND INBOX {5}\r\nhello\r\n", 4, 5);
    assert!(data.is_empty());
    assert_eq!(
        evs,
        vec![
            FrameEvent::ContinuationNeeded,
            cmd(b"a APPEND INBOX {5}\r\nhello\r\n")
        ]
    );
    // Not an APPEND (a big SEARCH literal, a mailbox named APPEND): inline.
    let mut input = b"a SEARCH TEXT {200}\r\n".to_vec();
    input.extend_from_slice(&[b'x'; 200]);
    input.extend_from_slice(b"\r\n");
    let (evs, data) = run_spool(&input, 50, 100);
    assert!(data.is_empty());
    assert_eq!(evs, vec![FrameEvent::ContinuationNeeded, cmd(&input)]);
    // Too large: refused as before, nothing spooled.
    let (evs, data) = run_spool(b"a APPEND INBOX {5000}\r\n", 7, 100);
    assert!(data.is_empty());
    assert!(matches!(
        &evs[..],
        [FrameEvent::Rejected { close: false, .. }]
    ));
}

#[test]
fn spooling_never_panics_and_a_command_gets_exactly_its_announced_bytes() {
    // Random streams of APPEND-ish tokens in random chunks (a small xorshift, fixed seed).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let tokens: [&[u8]; 12] = [
        b"a APPEND INBOX ",
        b"b append \"x\" (\\Seen) ",
        b"{150}\r\n",
        b"{150+}\r\n",
        b"~{300+}\r\n",
        b"{5000}\r\n",
        b"{99999999999999999999999+}\r\n",
        b"\r\n",
        b"\n",
        b"c NOOP\r\n",
        b"UTF8 (",
        b")",
    ];
    let mut spooled_commands = 0;
    for _ in 0..3000 {
        let mut input = Vec::new();
        for _ in 0..(5 + next(40)) {
            input.extend_from_slice(tokens[next(12) as usize]);
            for _ in 0..next(4) {
                let n = next(30) as usize;
                input.extend(std::iter::repeat_n(b'x', n));
            }
        }
        let mut f = Framer::new(limits()).spool_literals_over(100);
        // The command's spooled literals: (size, bytes seen, where its `{0}` is).
        let mut spooling: Vec<(u64, u64, usize)> = Vec::new();
        for c in input.chunks(1 + next(40) as usize) {
            f.push(c);
            while let Some(e) = f.next_event() {
                match e {
                    FrameEvent::SpoolStart { size, at } => {
                        assert!(size > 100 && size <= limits().max_literal);
                        if let Some((size, got, _)) = spooling.last() {
                            assert_eq!(size, got);
                        }
                        spooling.push((size, 0, at));
                    }
                    FrameEvent::SpoolData(d) => {
                        let (size, got, _) = spooling.last_mut().expect("data after a start");
                        *got += d.len() as u64;
                        assert!(*got <= *size);
                    }
                    FrameEvent::Command(cmd) => {
                        for (size, got, at) in spooling.drain(..) {
                            assert_eq!(size, got, "{:?}", String::from_utf8_lossy(&cmd));
                            assert_eq!(cmd.get(at..at + 5), Some(&b"{0}\r\n"[..]));
                            spooled_commands += 1;
                        }
                        assert!(cmd.ends_with(b"\r\n"));
                    }
                    FrameEvent::Rejected { .. } => spooling.clear(),
                    FrameEvent::ContinuationNeeded => {}
                    FrameEvent::AppendLiteral { .. } => f.accept_literal(),
                }
            }
        }
    }
    assert!(
        spooled_commands > 100,
        "only {spooled_commands} spooled commands"
    );
}

#[test]
fn shrink_frees_empty_buffers_and_keeps_a_half_read_command() {
    let mut f = Framer::new(limits());
    f.push(b"a1 NOOP\r\na2 LOGIN {3}\r\n");
    assert_eq!(f.next_event(), Some(cmd(b"a1 NOOP\r\n")));
    assert_eq!(f.next_event(), Some(FrameEvent::ContinuationNeeded));
    assert_eq!(f.next_event(), None);
    // Half a command: shrinking must not lose it.
    f.shrink();
    assert!(f.buffered() > 0);
    f.push(b"abc x\r\n");
    assert_eq!(f.next_event(), Some(cmd(b"a2 LOGIN {3}\r\nabc x\r\n")));
    assert_eq!(f.next_event(), None);
    assert_eq!(f.buffered(), 0);
    f.shrink();
    assert_eq!((f.input.capacity(), f.cmd.capacity()), (0, 0));
    f.push(b"a3 NOOP\r\n");
    assert_eq!(f.next_event(), Some(cmd(b"a3 NOOP\r\n")));
}

/// Feed `input` in chunks to a framer that gates APPEND literals, answering each
/// `AppendLiteral` with `refuse` (refused when it returns a response).
fn run_gated(
    input: &[u8],
    chunk: usize,
    refuse: impl Fn(&[u8], u64) -> Option<Vec<u8>>,
) -> Vec<FrameEvent> {
    let mut f = Framer::new(limits()).gate_append_literals();
    let mut evs = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        f.push(c);
        while let Some(e) = f.next_event() {
            if let FrameEvent::AppendLiteral { size, command } = &e {
                match refuse(command, *size) {
                    Some(r) => evs.push(f.refuse_literal_with(r)),
                    None => f.accept_literal(),
                }
            }
            evs.push(e);
        }
    }
    evs
}

#[test]
fn gated_append_literal_accepted_or_refused_before_the_continuation() {
    let gate = |command: &[u8], size: u64| {
        (command == b"A1 APPEND INBOX (\\Seen) " && size == 7)
            .then(|| b"A1 NO [OVERQUOTA] x\r\n".to_vec())
    };
    let ask = |c: &[u8], size| FrameEvent::AppendLiteral {
        size,
        command: c.to_vec(),
    };
    for chunk in [1, 5, 64] {
        // Refused: the client got NO instead of `+`, so its next line is a new command.
        let evs = run_gated(b"A1 APPEND INBOX (\\Seen) {7}\r\nA2 NOOP\r\n", chunk, gate);
        assert_eq!(
            evs,
            vec![
                rej("A1 NO [OVERQUOTA] x\r\n", false),
                ask(b"A1 APPEND INBOX (\\Seen) ", 7),
                cmd(b"A2 NOOP\r\n")
            ],
            "chunk {chunk}"
        );
        // Accepted, a mailbox-name literal asked about too, literal8 and non-sync not asked.
        let input = b"A3 APPEND {5}\r\nINBOX ~{3}\r\nabc\r\nA4 APPEND INBOX {2+}\r\nxy\r\n";
        assert_eq!(
            run_gated(input, chunk, gate),
            vec![
                ask(b"A3 APPEND ", 5),
                FrameEvent::ContinuationNeeded,
                ask(b"A3 APPEND {5}\r\nINBOX ", 3),
                FrameEvent::ContinuationNeeded,
                cmd(b"A3 APPEND {5}\r\nINBOX ~{3}\r\nabc\r\n"),
                cmd(b"A4 APPEND INBOX {2+}\r\nxy\r\n"),
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn several_literals_of_one_append_are_spooled_each_with_its_place() {
    let mut input = b"A1 APPEND INBOX {150+}\r\n".to_vec();
    input.extend_from_slice(&[b'a'; 150]);
    input.extend_from_slice(b" (\\Seen) {3+}\r\nabc CATENATE (TEXT ~{200+}\r\n");
    input.extend_from_slice(&[b'b'; 200]);
    input.extend_from_slice(b")\r\n");
    let (evs, data) = run_spool(&input, 7, 100);
    let want_cmd = b"A1 APPEND INBOX {0}\r\n (\\Seen) {3+}\r\nabc CATENATE (TEXT ~{0}\r\n)\r\n";
    let second = want_cmd.windows(4).position(|w| w == b"~{0}").unwrap() + 1;
    assert_eq!(
        evs,
        vec![
            FrameEvent::SpoolStart { size: 150, at: 16 },
            FrameEvent::SpoolStart {
                size: 200,
                at: second
            },
            cmd(want_cmd),
        ]
    );
    assert_eq!(data.len(), 350);
}

#[test]
fn the_spooled_literals_of_one_command_are_bounded_together() {
    // Each literal fits, but together they pass SPOOL_TOTAL_FACTOR times the largest.
    let max = limits().max_literal;
    let mut f = Framer::new(limits()).spool_literals_over(100);
    f.push(b"A1 APPEND INBOX");
    let mut starts = 0;
    let mut refused = None;
    for _ in 0..=SPOOL_TOTAL_FACTOR {
        f.push(format!(" {{{max}}}\r\n").as_bytes());
        while let Some(e) = f.next_event() {
            match e {
                FrameEvent::SpoolStart { .. } => starts += 1,
                FrameEvent::Rejected { response, .. } => refused = Some(response),
                _ => {}
            }
        }
        if refused.is_some() {
            break;
        }
        f.push(&vec![b'x'; max as usize]);
        while f.next_event().is_some() {}
    }
    assert_eq!(starts, SPOOL_TOTAL_FACTOR);
    let refused = String::from_utf8(refused.expect("refused")).unwrap();
    assert_eq!(
        refused,
        format!(
            "A1 NO [TOOBIG] Command too large: literal of {max} bytes would exceed the limit of {} bytes per command\r\n",
            max * SPOOL_TOTAL_FACTOR
        )
    );
}

#[test]
fn small_append_literals_past_the_command_limit_are_spooled() {
    // Each literal is under the threshold, but together they pass max_command: those that
    // do not fit any more go to files, and the command stays within its limit.
    let mut input = b"A1 APPEND INBOX".to_vec();
    for _ in 0..25 {
        input.extend_from_slice(b" {90+}\r\n");
        input.extend_from_slice(&[b'm'; 90]);
    }
    input.extend_from_slice(b"\r\n");
    let (evs, data) = run_spool(&input, 64, 100);
    let starts = evs
        .iter()
        .filter(|e| matches!(e, FrameEvent::SpoolStart { size: 90, .. }))
        .count();
    let Some(FrameEvent::Command(cmd)) = evs.last() else {
        panic!("{evs:?}")
    };
    assert!(starts > 5 && cmd.len() as u64 <= limits().max_command);
    assert_eq!(data.len(), starts * 90);
    assert_eq!(cmd.windows(3).filter(|w| w == b"{0}").count(), starts);
}
