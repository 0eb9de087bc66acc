//! The cache file format round-trips and never panics on arbitrary bytes; the file survives
//! truncation, garbage and wrong-size entries (rebuilt, never a wrong answer).

use super::codec::{self, Meta, Record};
use super::*;

fn meta(n: u8) -> Meta {
    Meta {
        vsize: 1000 + u64::from(n),
        envelope: format!("(\"env {n}\" NIL)").into_bytes(),
        body: b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 3 1)".to_vec(),
        bodystructure: vec![n; usize::from(n)],
        header: n
            .is_multiple_of(2)
            .then(|| format!("Subject: {n}\r\n\r\n").into_bytes()),
        preview: format!("preview {n}").into_bytes(),
    }
}

fn tmpdir(tag: &str) -> PathBuf {
    crate::store::maildir::test_dir(&format!("cache-{tag}"))
}

#[test]
fn records_round_trip() {
    for n in 0..20u8 {
        for rec in [
            Record::Put {
                base: format!("17.M{n}.host,S=5"),
                size: u64::from(n) * 77,
                meta: meta(n),
            },
            Record::Forget {
                base: format!("b{n}"),
            },
        ] {
            let mut buf = Vec::new();
            assert!(codec::encode(&rec, &mut buf));
            assert_eq!(codec::decode(&buf), Ok((rec.clone(), buf.len())));
            // Every proper prefix is short, never a record.
            for cut in 0..buf.len() {
                assert_eq!(
                    codec::decode(&buf[..cut]).err(),
                    Some(codec::Bad::Short),
                    "{cut}"
                );
            }
            // Every single flipped byte is detected.
            for i in 0..buf.len() {
                let mut b = buf.clone();
                b[i] ^= 0x5a;
                assert!(codec::decode(&b).is_err(), "flip at {i}");
            }
        }
    }
}

#[test]
fn oversized_metadata_is_not_encoded() {
    let mut m = meta(1);
    m.bodystructure = vec![b'x'; codec::MAX_RECORD + 1];
    let rec = Record::Put {
        base: "b".into(),
        size: 1,
        meta: m,
    };
    let mut buf = Vec::new();
    assert!(!codec::encode(&rec, &mut buf));
    assert!(buf.is_empty());
}

#[test]
fn decode_never_panics_on_random_bytes() {
    // A deterministic xorshift stream: random lengths and contents, plus valid records with
    // random damage.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000 {
        let len = (next() % 300) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 {
            b.clear();
            codec::encode(
                &Record::Put {
                    base: "x".into(),
                    size: 3,
                    meta: meta((i % 7) as u8),
                },
                &mut b,
            );
            let at = (next() as usize) % b.len();
            if i % 4 == 0 {
                b[at] = next() as u8;
            }
        }
        // The header-only decoder accepts exactly what the full one accepts, and finds the
        // same header block.
        let full = match codec::decode(&b) {
            Ok((Record::Put { base, size, meta }, _)) if base == "x" && size == 3 => {
                Some(meta.header)
            }
            _ => None,
        };
        let header = codec::decode_header(&b, "x", 3, true)
            .ok()
            .map(|r| r.map(|r| b[r].to_vec()));
        assert_eq!(full, header, "record {b:?}");
    }
}

fn fresh(dir: &Path) -> MailboxCache {
    MailboxCache {
        dir: dir.to_path_buf(),
        state: Mutex::new(State::default()),
        derived: Mutex::default(),
    }
}

#[test]
fn persists_and_checks_the_size() {
    let dir = tmpdir("persist");
    let c = fresh(&dir);
    assert!(c.get("a", 10).is_none());
    c.put("a", 10, &meta(2));
    c.put("b", 20, &meta(3));
    assert_eq!(c.get("a", 10).as_deref(), Some(&meta(2)));
    c.flush();
    drop(c);
    let c = fresh(&dir);
    assert_eq!(c.get("a", 10).as_deref(), Some(&meta(2)));
    assert_eq!(c.get("b", 20).as_deref(), Some(&meta(3)));
    assert_eq!(c.header("b", 20, &mut Window::default()), meta(3).header);
    assert_eq!(c.header("a", 10, &mut Window::default()), meta(2).header);
    // Same name, other size: not this message's metadata.
    assert!(c.get("a", 11).is_none());
    assert!(c.header("a", 11, &mut Window::default()).is_none());
    c.forget("a");
    c.flush();
    drop(c);
    let c = fresh(&dir);
    assert!(c.get("a", 10).is_none());
    assert_eq!(c.len(), 1);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn damaged_files_are_rebuilt() {
    let dir = tmpdir("damage");
    let c = fresh(&dir);
    for n in 0..10u8 {
        c.put(&format!("m{n}"), u64::from(n), &meta(n));
    }
    c.flush();
    drop(c);
    let path = dir.join(FILE);
    let good = fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 5].to_vec()),
        ("garbage", b"\x00garbage that is not a cache".to_vec()),
        ("empty", Vec::new()),
        // A file of the first version (records without the preview): rebuilt.
        ("version 1", {
            let mut g = b"PIMAPC01".to_vec();
            g.extend_from_slice(&good[8..]);
            g
        }),
        ("middle flipped", {
            let mut g = good.clone();
            let i = g.len() / 2;
            g[i] ^= 0xff;
            g
        }),
    ];
    for (what, bytes) in cases {
        fs::write(&path, &bytes).unwrap();
        let c = fresh(&dir);
        // Whatever survived is right; the rest is a miss, never a wrong answer.
        for n in 0..10u8 {
            if let Some(m) = c.get(&format!("m{n}"), u64::from(n)) {
                assert_eq!(*m, meta(n), "{what}");
            }
        }
        c.put("new", 1, &meta(4));
        c.flush();
        drop(c);
        // Rebuilt: the file now reads cleanly from start to end.
        let b = fs::read(&path).unwrap();
        assert_eq!(&b[..8], codec::MAGIC, "{what}");
        let mut at = 8;
        while at < b.len() {
            let (_, used) = codec::decode(&b[at..]).unwrap_or_else(|e| panic!("{what}: {e:?}"));
            at += used;
        }
        let c = fresh(&dir);
        assert_eq!(c.get("new", 1).as_deref(), Some(&meta(4)), "{what}");
        drop(c);
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn compacts_when_mostly_dead() {
    let dir = tmpdir("compact");
    let c = fresh(&dir);
    let mut big = meta(2);
    big.bodystructure = vec![b'y'; 100 * 1024];
    for round in 0..30u64 {
        for n in 0..2u64 {
            c.put(&format!("m{n}"), round, &big);
        }
        c.flush();
    }
    drop(c);
    let len = fs::metadata(dir.join(FILE)).unwrap().len();
    // 60 records of 100 KiB written, 2 live: the file stays near the compaction threshold.
    assert!(len < COMPACT_FROM + 4 * FLUSH_AT as u64, "{len}");
    let c = fresh(&dir);
    assert_eq!(c.get("m1", 29).as_deref(), Some(&big));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn compute_matches_the_mime_functions() {
    let msg = b"From: a@b.c\r\nSubject: hi\r\n\r\nbody\r\n";
    let m = compute(msg);
    let mut env = Vec::new();
    crate::mime::envelope(msg, &mut env);
    assert_eq!(m.envelope, env);
    assert_eq!(m.header.as_deref(), Some(&msg[..28]));
    assert_eq!(m.vsize, msg.len() as u64);
    // No empty line: no header block kept.
    assert!(compute(b"From: a@b.c\r\n").header.is_none());
}

#[test]
fn compaction_drops_messages_gone_from_the_folder() {
    let dir = tmpdir("prune");
    fs::create_dir_all(dir.join("new")).unwrap();
    fs::create_dir_all(dir.join("cur")).unwrap();
    fs::write(dir.join("cur").join("kept:2,S"), b"x").unwrap();
    let c = fresh(&dir);
    c.put("kept", 1, &meta(2));
    c.put("gone", 1, &meta(3));
    c.flush();
    c.state.lock().unwrap().rewrite = true;
    c.put("kept", 1, &meta(2));
    c.flush();
    drop(c);
    let c = fresh(&dir);
    assert!(c.get("kept", 1).is_some());
    assert!(c.get("gone", 1).is_none());
    assert_eq!(c.len(), 1);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn s3_deliveries_fill_the_cache() {
    let dir = tmpdir("deliver");
    let msg = b"From: a@example.org\nSubject: s3\n\nbody\n";
    let mut r = &msg[..];
    let path = crate::store::maildir::deliver_from_reader(&dir, "1.M1P1.s3", &mut r, None, 1 << 20)
        .unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let base = crate::store::maildir::filename::split(name).base;
    let got = for_mailbox(&dir)
        .get(base, msg.len() as u64)
        .expect("filled on delivery");
    assert_eq!(*got, compute(&crate::mime::to_crlf(msg)));
    let link = crate::store::maildir::deliver_link(&dir, "1.M2P1.s3", &path).unwrap();
    let name = link.file_name().unwrap().to_str().unwrap();
    let base = crate::store::maildir::filename::split(name).base;
    assert!(for_mailbox(&dir).get(base, msg.len() as u64).is_some());
    let _ = fs::remove_dir_all(&dir);
}

/// A SEARCH's read-ahead window survives the file being rewritten under it (another
/// session's flush compacting it): the records move, the window is read again, nothing is
/// taken for damage.
#[test]
fn header_window_follows_a_compaction() {
    let dir = tmpdir("window");
    let c = fresh(&dir);
    for n in 0..40u8 {
        c.put(&format!("m{n}"), u64::from(n), &meta(n));
    }
    c.flush();
    drop(c);
    let c = fresh(&dir);
    let mut w = Window::default();
    assert_eq!(c.header("m0", 0, &mut w), meta(0).header);
    // Drop the first half, then compact: every later record moves towards the start.
    for n in 0..20u8 {
        c.forget(&format!("m{n}"));
    }
    c.state.lock().unwrap().rewrite = true;
    c.flush();
    for n in 20..40u8 {
        assert_eq!(
            c.header(&format!("m{n}"), u64::from(n), &mut w),
            meta(n).header,
            "m{n}"
        );
    }
    assert_eq!(c.len(), 20);
    assert!(
        !c.state.lock().unwrap().rewrite,
        "a record was taken for damage"
    );
    let _ = fs::remove_dir_all(&dir);
}
