use super::*;
use crate::store::Flags;

/// Append `n` pseudo-random characters from `alphabet` (a linear congruential generator:
/// reproducible, no dependency).
fn push_noise(s: &mut String, seed: &mut u32, n: usize, alphabet: &[u8]) {
    for _ in 0..n {
        *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        if let Some(&b) = alphabet.get((*seed >> 16) as usize % alphabet.len()) {
            s.push(b as char);
        }
    }
}

fn meta(uid: u32, system: u8, kws: &[&str]) -> MessageMeta {
    MessageMeta {
        uid,
        flags: Flags {
            system,
            keywords: kws.iter().map(|k| k.to_string()).collect(),
        },
        size: 1,
        internal_date: 0,
        recent: false,
    }
}

#[test]
fn round_trip() {
    let mut f = ModSeqFile::new(42, 1000);
    f.apply(&[meta(1, 0, &[]), meta(3, 1, &["$Junk"])]);
    f.apply(&[meta(3, 1, &["$Junk"])]);
    let text = f.serialize();
    assert_eq!(ModSeqFile::parse(&text).unwrap(), f);
    assert!(
        text.starts_with("pimap-modseq 1 V42 H1002 E1000\n"),
        "{text}"
    );
    assert_eq!(f.expunged.get(&1), Some(&1002));
    assert_eq!(f.msgs.get(&3).map(|r| r.0), Some(1001));
}

#[test]
fn changes_get_new_values_and_noops_do_not() {
    let mut f = ModSeqFile::new(1, 10);
    assert!(f.apply(&[meta(1, 0, &[]), meta(2, 0, &[])]));
    assert_eq!(f.highest, 11);
    // Keyword order and case do not count as a change.
    assert!(!f.apply(&[meta(1, 0, &[]), meta(2, 0, &[])]));
    assert!(f.apply(&[meta(1, 1, &[]), meta(2, 0, &[])]));
    assert_eq!((f.highest, f.msgs[&1].0, f.msgs[&2].0), (12, 12, 11));
    let a = meta(5, 0, &["A", "b"]);
    let b = meta(5, 0, &["B", "a"]);
    assert_eq!(flags_hash(&a.flags), flags_hash(&b.flags));
    assert_ne!(
        flags_hash(&a.flags),
        flags_hash(&meta(5, 1, &["A", "b"]).flags)
    );
}

#[test]
fn corrupt_input_is_an_error_never_a_panic() {
    let good = "pimap-modseq 1 V1 H20 E5\nM 1 7 00000000000000ff\nX 2 9\n";
    assert!(ModSeqFile::parse(good).is_ok());
    for bad in [
        "",
        "\n",
        "pimap-modseq 2 V1 H2 E1\n",
        "pimap-modseq 1 V1 H2\n",
        "pimap-modseq 1 V1 H2 E3\n",
        "pimap-modseq 1 Vx H2 E1\n",
        "pimap-modseq 1 V1 H99999999999999999999 E1\n",
        "pimap-modseq 1 V1 H9223372036854775808 E1\n",
        "pimap-modseq 1 V1 H20 E5 Z1\n",
        "pimap-modseq 1 V1 H20 E5\nM 0 7 00000000000000ff\n",
        "pimap-modseq 1 V1 H20 E5\nM 1 21 00000000000000ff\n",
        "pimap-modseq 1 V1 H20 E5\nM 1 7 ff\n",
        "pimap-modseq 1 V1 H20 E5\nM 1 7 zzzzzzzzzzzzzzzz\n",
        "pimap-modseq 1 V1 H20 E5\nM 1 7 +00000000000000f\n",
        "pimap-modseq 1 V1 H20 E5\nM 1 7 00000000000000ff\nM 1 8 00000000000000ff\n",
        "pimap-modseq 1 V1 H20 E5\nM 1 7 00000000000000ff\nX 1 8\n",
        "pimap-modseq 1 V1 H20 E5\nX 1\n",
        "pimap-modseq 1 V1 H20 E5\nX -1 3\n",
        "pimap-modseq 1 V1 H20 E5\nM 1  7 00000000000000ff\n",
        "pimap-modseq 1 V1 H20 E5\n\u{0}\n",
        "pimap-modseq 1 V1 H20 E5\nX 4294967296 3\n",
    ] {
        assert!(ModSeqFile::parse(bad).is_err(), "accepted {bad:?}");
    }
    // Arbitrary bytes: never a panic.
    let mut seed: u32 = 7;
    for len in 0..400 {
        let mut s = String::from("pimap-modseq 1 V1 H20 E5\n");
        push_noise(&mut s, &mut seed, len % 60, b"MX 0123456789abcdefH\nVE-");
        let _ = ModSeqFile::parse(&s);
    }
    assert_eq!(salvage_highest("pimap-modseq 9 H77 junk"), 77);
}

#[test]
fn expunge_history_is_bounded_and_vanished_falls_back() {
    let mut f = ModSeqFile::new(1, 100);
    let all: Vec<MessageMeta> = (1..=10).map(|u| meta(u, 0, &[])).collect();
    f.apply(&all); // 101
    f.apply(&all[2..]); // 1, 2 expunged at 102
    f.apply(&all[3..]); // 3 expunged at 103
    assert_eq!(f.vanished_since(101, &[(1, 10)], 11), vec![(1, 3)]);
    assert_eq!(f.vanished_since(102, &[(1, 10)], 11), vec![(3, 3)]);
    assert_eq!(f.vanished_since(102, &[(1, 2)], 11), vec![]);
    f.trim_expunged(1);
    assert_eq!(f.expunge_floor, 102);
    assert_eq!(f.vanished_since(102, &[(1, 10)], 11), vec![(3, 3)]);
    // Older than the history: every missing UID of the range (known-uids) below UIDNEXT.
    assert_eq!(f.vanished_since(50, &[(1, 100)], 11), vec![(1, 3)]);
    assert_eq!(f.vanished_since(50, &[(2, 2), (5, 5)], 11), vec![(2, 2)]);
    let mut g = ModSeqFile::new(1, 5);
    g.apply(&[meta(2, 0, &[]), meta(7, 0, &[])]);
    assert_eq!(
        g.vanished_since(1, &[(1, u32::MAX)], 10),
        vec![(1, 1), (3, 6), (8, 9)]
    );
    assert_eq!(
        to_ranges(&[1, 2, 3, 7, u32::MAX]),
        vec![(1, 3), (7, 7), (u32::MAX, u32::MAX)]
    );
}

#[test]
fn observe_persists_and_rebuild_never_goes_lower() {
    let d = super::super::test_dir("modseq");
    let msgs = vec![meta(1, 0, &[]), meta(2, 0, &[])];
    let mut a = ModSeqs::new(&d);
    a.observe(9, &msgs).unwrap();
    let h1 = a.highest();
    assert!(h1 > 1_600_000_000_000_000, "{h1}");
    let mut changed = msgs.clone();
    changed[0].flags.system = 1;
    a.observe(9, &changed).unwrap();
    assert_eq!(a.highest(), h1 + 1);
    // Another session sees the persisted values.
    let mut b = ModSeqs::new(&d);
    b.observe(9, &changed).unwrap();
    assert_eq!((b.highest(), b.get(1), b.get(2)), (h1 + 1, h1 + 1, h1));
    // Corrupt file: rebuilt above the old values, kept aside.
    std::fs::write(
        d.join(FILE),
        "pimap-modseq 1 V9 H999999999999999999 junk\nM x",
    )
    .unwrap();
    let mut c = ModSeqs::new(&d);
    c.observe(9, &changed).unwrap();
    assert!(c.highest() > 999_999_999_999_999_999);
    assert!(d.join("pimap-modseq.corrupt").exists());
    // Deleted file: rebuilt from the clock, still above h1.
    std::fs::remove_file(d.join(FILE)).unwrap();
    let mut e = ModSeqs::new(&d);
    e.observe(9, &changed).unwrap();
    assert!(e.highest() > h1 + 1);
    let _ = std::fs::remove_dir_all(&d);
}

/// A deterministic sequence of mailbox states: flag flips, deliveries, expunges.
fn evolve(msgs: &mut Vec<MessageMeta>, seed: &mut u32, next_uid: &mut u32) {
    *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
    let r = (*seed >> 8) as usize;
    match r % 5 {
        0 => {
            msgs.push(meta(*next_uid, 0, &["$Forwarded"]));
            *next_uid += 1;
        }
        1 if msgs.len() > 3 => {
            msgs.remove(r / 5 % msgs.len());
        }
        _ => {
            let i = r / 5 % msgs.len().max(1);
            if let Some(m) = msgs.get_mut(i) {
                m.flags.system ^= 1 << (r / 7 % 5);
            }
        }
    }
}

#[test]
fn journal_replay_equals_compacted_snapshot_and_in_memory_apply() {
    let d = super::super::test_dir("modseq-journal");
    let mut msgs: Vec<MessageMeta> = (1..=20).map(|u| meta(u, 0, &[])).collect();
    let (mut seed, mut next_uid) = (3u32, 21u32);
    let mut writer = ModSeqs::new(&d);
    let mut follower = ModSeqs::new(&d);
    writer.observe(4, &msgs).unwrap();
    let mut model = writer.file().unwrap().clone();
    let mut inodes = std::collections::HashSet::new();
    let mut max_len = 0;
    for round in 0..600 {
        evolve(&mut msgs, &mut seed, &mut next_uid);
        // Alternate who records the change; the other one catches up from the tail.
        let (rec, other) = if round % 3 == 0 {
            (&mut follower, &mut writer)
        } else {
            (&mut writer, &mut follower)
        };
        rec.observe(4, &msgs).unwrap();
        assert!(model.apply(&msgs), "round {round}: nothing changed?");
        assert_eq!(rec.file(), Some(&model), "round {round}");
        other.observe(4, &msgs).unwrap();
        assert_eq!(other.file(), Some(&model), "round {round}");
        let text = std::fs::read_to_string(d.join(FILE)).unwrap();
        // The file (snapshot + journal) is the state; so is its compaction.
        let parsed = ModSeqFile::parse(&text).unwrap();
        assert_eq!(parsed, model, "round {round}");
        assert_eq!(ModSeqFile::parse(&parsed.serialize()).unwrap(), model);
        use std::os::unix::fs::MetadataExt;
        inodes.insert(std::fs::metadata(d.join(FILE)).unwrap().ino());
        max_len = max_len.max(text.len());
    }
    // Mostly appends: a handful of compactions, and the journal stays bounded.
    assert!(
        inodes.len() > 1 && inodes.len() < 20,
        "{} snapshots",
        inodes.len()
    );
    assert!(max_len < MIN_COMPACT as usize + 2 * 1024, "{max_len}");
    // A fresh session reads the same state.
    let mut fresh = ModSeqs::new(&d);
    fresh.observe(4, &msgs).unwrap();
    assert_eq!(fresh.file(), Some(&model));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn torn_journal_tail_is_ignored_then_cut_off() {
    let d = super::super::test_dir("modseq-torn");
    let mut msgs: Vec<MessageMeta> = (1..=5).map(|u| meta(u, 0, &[])).collect();
    let mut a = ModSeqs::new(&d);
    a.observe(2, &msgs).unwrap();
    msgs[1].flags.system = 1;
    a.observe(2, &msgs).unwrap();
    let good = a.file().unwrap().clone();
    let path = d.join(FILE);
    let clean = std::fs::read(&path).unwrap();
    let rec = Change {
        modseq: good.highest + 1,
        set: vec![(3, 77)],
        expunged: vec![4],
    }
    .encode();
    let mut bad_sum = rec.clone().into_bytes();
    if let Some(b) = bad_sum.iter_mut().rev().nth(2) {
        *b ^= 1; // a flipped bit in the body: checksum fails
    }
    for torn in [
        rec.as_bytes()[..rec.len() - 1].to_vec(), // lost its LF
        rec.as_bytes()[..9].to_vec(),
        vec![0u8; 40],
        bad_sum.clone(),
    ] {
        let mut bytes = clean.clone();
        bytes.extend_from_slice(&torn);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert_eq!(ModSeqFile::parse(&text).as_ref(), Ok(&good));
        std::fs::write(&path, &bytes).unwrap();
        // A reader ignores it and leaves the file alone.
        let mut r = ModSeqs::new(&d);
        r.observe(2, &msgs).unwrap();
        assert_eq!(r.file(), Some(&good));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // The next writer cuts it off (a snapshot), so nothing follows torn bytes.
        let mut changed = msgs.clone();
        changed[0].flags.system = 8;
        r.observe(2, &changed).unwrap();
        assert_eq!(r.highest(), good.highest + 1);
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(!after.contains("\nJ ") && !after.contains('\0'), "{after}");
        assert_eq!(Some(&ModSeqFile::parse(&after).unwrap()), r.file());
        std::fs::write(&path, &clean).unwrap();
    }
    // A damaged record that is not the last is corruption, not a torn write.
    let mut text = String::from_utf8(clean).unwrap();
    text.push_str(&String::from_utf8_lossy(&bad_sum));
    text.push_str(&rec.replace(
        &format!("H{}", good.highest + 1),
        &format!("H{}", good.highest + 2),
    ));
    assert!(ModSeqFile::parse(&text).is_err());
    // Arbitrary journal bytes: never a panic.
    let mut seed: u32 = 11;
    for len in 0..600 {
        let mut s = String::from("pimap-modseq 1 V1 H20 E5\nM 1 7 00000000000000ff\nJ ");
        push_noise(&mut s, &mut seed, len % 70, b"JMX :0123456789abcdefH\n");
        let _ = ModSeqFile::parse(&s);
        let _ = Change::decode(s.as_bytes());
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn corrupt_journal_rebuilds_above_every_value_it_shows() {
    let d = super::super::test_dir("modseq-corrupt-journal");
    let path = d.join(FILE);
    let msgs: Vec<MessageMeta> = (1..=3).map(|u| meta(u, 0, &[])).collect();
    // Values far above the clock, so only the salvaged ones can explain the result.
    let big = 5_000_000_000_000_000_000u64;
    let mut f = ModSeqFile::new(6, big);
    f.apply(&msgs);
    let mut text = f.serialize();
    let c1 = Change {
        modseq: big + 2,
        set: vec![(1, 5)],
        expunged: vec![],
    };
    let c2 = Change {
        modseq: big + 3,
        set: vec![(2, 5)],
        expunged: vec![3],
    };
    let mut c1_line = c1.encode();
    c1_line = c1_line.replacen("M1:", "M9:", 1); // checksum no longer matches
    text.push_str(&c1_line);
    text.push_str(&c2.encode());
    assert!(ModSeqFile::parse(&text).is_err());
    std::fs::write(&path, &text).unwrap();
    let mut s = ModSeqs::new(&d);
    s.observe(6, &msgs).unwrap();
    assert!(s.highest() > big + 3, "{} <= {}", s.highest(), big + 3);
    assert!(d.join(format!("{FILE}.corrupt")).exists());
    assert!(ModSeqFile::parse(&std::fs::read_to_string(&path).unwrap()).is_ok());
    // A session that already holds the state and finds a corrupt tail: re-read, and its
    // values never go down.
    let before = s.highest();
    let mut more = msgs.clone();
    more[0].flags.system = 2;
    let mut t = std::fs::read_to_string(&path).unwrap();
    t.push_str("J 3 0000000000000000 H1\nJ 3 0000000000000000 H2\n");
    std::fs::write(&path, t).unwrap();
    s.observe(6, &more).unwrap();
    assert!(s.highest() > before);
    assert_eq!(s.get(1), s.highest());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn concurrent_writers_append_every_change_once() {
    let d = super::super::test_dir("modseq-concurrent");
    let mailbox = std::sync::Arc::new(std::sync::Mutex::new(
        (1..=50)
            .map(|u| meta(u, 0, &[]))
            .collect::<Vec<MessageMeta>>(),
    ));
    let mut first = ModSeqs::new(&d);
    first.observe(3, &mailbox.lock().unwrap()).unwrap();
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let (d, mailbox) = (d.clone(), mailbox.clone());
            std::thread::spawn(move || {
                let mut s = ModSeqs::new(&d);
                let mut seen = Vec::new();
                for i in 0..40u32 {
                    let now = {
                        let mut mb = mailbox.lock().unwrap();
                        if let Some(m) = mb.get_mut(((t * 40 + i) % 50) as usize) {
                            m.flags.system ^= 4;
                        }
                        mb.clone()
                    };
                    s.observe(3, &now).unwrap();
                    seen.push(s.highest());
                }
                seen
            })
        })
        .collect();
    for t in threads {
        let seen = t.join().unwrap();
        // A session's HIGHESTMODSEQ never goes down.
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    }
    // Whatever the interleaving (a session may record a state older than another's, and
    // the next look corrects it): the file parses, holds the last state once it is
    // observed, and then a fresh session finds nothing left to record.
    let last = mailbox.lock().unwrap().clone();
    let mut s = ModSeqs::new(&d);
    s.observe(3, &last).unwrap();
    let bytes = std::fs::read(d.join(FILE)).unwrap();
    let on_disk = ModSeqFile::parse(&String::from_utf8(bytes.clone()).unwrap()).unwrap();
    assert_eq!(s.file(), Some(&on_disk));
    assert!(!on_disk.clone().apply(&last));
    let mut fresh = ModSeqs::new(&d);
    fresh.observe(3, &last).unwrap();
    assert_eq!(fresh.file(), Some(&on_disk));
    assert_eq!(std::fs::read(d.join(FILE)).unwrap(), bytes);
    assert!(!d.join(format!("{FILE}.lock")).exists());
    assert!(!d.join(format!("{FILE}.corrupt")).exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// Bytes this process has passed to write(2) so far (`wchar` in /proc/self/io).
fn bytes_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar: ").map(|v| v.trim().parse().ok()))
        })
        .flatten()
        .unwrap_or(0)
}

/// Micro benchmark (run alone: `cargo test --lib modseq::tests::bench -- --ignored
/// --nocapture --test-threads=1`): 10,000 messages, 100 single-message flag changes, each
/// recorded by one session and picked up by a second one.
#[test]
#[ignore]
fn bench_single_changes_in_a_big_mailbox() {
    let d = super::super::test_dir("modseq-bench");
    let mut msgs: Vec<MessageMeta> = (1..=10_000).map(|u| meta(u, 0, &[])).collect();
    let mut a = ModSeqs::new(&d);
    let mut b = ModSeqs::new(&d);
    a.observe(1, &msgs).unwrap();
    b.observe(1, &msgs).unwrap();
    let size = std::fs::metadata(d.join(FILE)).unwrap().len();
    let (w0, t0) = (bytes_written(), std::time::Instant::now());
    for i in 0..100usize {
        if let Some(m) = msgs.get_mut(i * 97) {
            m.flags.system ^= 1;
        }
        a.observe(1, &msgs).unwrap();
    }
    let (t_write, w_write) = (t0.elapsed(), bytes_written() - w0);
    let t1 = std::time::Instant::now();
    b.observe(1, &msgs).unwrap();
    let t_catch = t1.elapsed();
    let t2 = std::time::Instant::now();
    for _ in 0..100 {
        a.observe(1, &msgs).unwrap();
    }
    let t_noop = t2.elapsed();
    assert_eq!(a.highest(), b.highest());
    println!(
        "BENCH file after first observe {size} B; per change {:.3} ms, {} B written; \
         other session catching up on 100 changes {:.3} ms; unchanged observe {:.3} ms",
        t_write.as_secs_f64() * 10.0,
        w_write / 100,
        t_catch.as_secs_f64() * 1000.0,
        t_noop.as_secs_f64() * 10.0,
    );
    let _ = std::fs::remove_dir_all(&d);
}
