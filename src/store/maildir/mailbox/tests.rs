//! Tests of the mailbox state against the disk (several states of one Maildir play
//! several processes).

mod perf_paths {
    //! The shortcuts that keep per-command cost flat (benches/run.sh): each must still see
    //! what other processes did.
    use super::super::super::{test_dir, UserStore};
    use super::super::scan::{shared_scan, PUBLISH_AFTER_STATS};
    use super::super::*;

    fn setup(tag: &str) -> (PathBuf, UserStore) {
        let d = test_dir(tag);
        let s = UserStore::open(&d.join("Maildir")).unwrap();
        (d, s)
    }

    fn settle() {
        // Past FINE_SETTLE and a one-second mtime granularity alike.
        std::thread::sleep(Duration::from_millis(1100));
    }

    #[test]
    fn reused_uidlist_still_sees_a_foreign_flag_change_and_delivery() {
        let (d, s) = setup("perf-foreign");
        let root = d.join("Maildir");
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        let u1 = mb.append(b"a\r\n", &Flags::default(), None).unwrap();
        mb.refresh().unwrap();
        settle();
        // Another process sets \Seen by renaming (uidlist untouched: the reuse path).
        let name = crate::store::maildir::first_cur_name(&root);
        let seen = filename::cur_name(filename::split(&name).base, "S");
        fs::rename(root.join("cur").join(&name), root.join("cur").join(&seen)).unwrap();
        mb.refresh().unwrap();
        assert_eq!(mb.messages()[0].uid, u1);
        assert_eq!(mb.messages()[0].flags.system, crate::store::flag::SEEN);
        // A delivery into new/: a file the reused UIDs don't know gets the next UID.
        fs::write(root.join("new/1800000000.M1P1.other"), "b\r\n").unwrap();
        mb.refresh().unwrap();
        let uids: Vec<u32> = mb.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![u1, u1 + 1]);
        let _ = fs::remove_dir_all(&d);
    }

    fn uidlist_uids(root: &Path) -> (String, Vec<u32>) {
        let text = fs::read_to_string(root.join(UIDLIST)).unwrap();
        let header = text.lines().next().unwrap_or("").to_string();
        let uids = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .collect();
        (header, uids)
    }

    #[test]
    fn a_batch_bigger_than_a_page_is_written_by_rename_never_appended() {
        let (d, s) = setup("perf-bigbatch");
        let root = d.join("Maildir");
        s.create("B").unwrap();
        let b_dir = root.join(".B");
        let mut a = s.load_mailbox("INBOX", false).unwrap();
        let mut b = s.load_mailbox("B", false).unwrap();
        let uids: Vec<u32> = (0..100)
            .map(|i| {
                a.append(format!("{i}\r\n").as_bytes(), &Flags::default(), None)
                    .unwrap()
            })
            .collect();
        b.append(b"first\r\n", &Flags::default(), None).unwrap();
        b.append(b"second\r\n", &Flags::default(), None).unwrap();
        let ino =
            |r: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(r.join(UIDLIST)).unwrap());
        let before = ino(&b_dir);
        let pairs = a.copy_to(&uids, &mut b).unwrap();
        assert_eq!(pairs.len(), 100);
        assert_ne!(ino(&b_dir), before, "6 KiB of lines: replaced by rename");
        let after = ino(&b_dir);
        b.append(b"third\r\n", &Flags::default(), None).unwrap();
        assert_eq!(ino(&b_dir), after, "one line: appended in place");
        assert_eq!(uidlist_uids(&b_dir).1.len(), 103);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn appends_add_lines_in_place_and_rewrite_only_when_dead_lines_dominate() {
        let (d, s) = setup("perf-expunge");
        let root = d.join("Maildir");
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        let a = mb.append(b"a\r\n", &Flags::default(), None).unwrap();
        let b = mb.append(b"b\r\n", &Flags::default(), None).unwrap();
        let (header, _) = uidlist_uids(&root);
        let ino =
            |r: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(r.join(UIDLIST)).unwrap());
        let before = ino(&root);
        assert_eq!(mb.expunge(&[a]).unwrap(), vec![a]);
        let c = mb.append(b"c\r\n", &Flags::default(), None).unwrap();
        // Appended to the same file, header as it was; the dead line waits for a rewrite.
        assert_eq!(uidlist_uids(&root), (header.clone(), vec![a, b, c]));
        assert_eq!(ino(&root), before, "appended in place, not replaced");
        // Another process appends; ours reads only that new tail before adding its own.
        let mut other = s.load_mailbox("INBOX", false).unwrap();
        let e = other.append(b"e\r\n", &Flags::default(), None).unwrap();
        let f = mb.append(b"f\r\n", &Flags::default(), None).unwrap();
        assert_eq!(uidlist_uids(&root).1, vec![a, b, c, e, f]);
        assert!(f > e);
        mb.refresh().unwrap();
        let uids: Vec<u32> = mb.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![b, c, e, f]);
        // Mostly dead lines: the next APPEND rewrites the file with the live ones only.
        let many: Vec<u32> = (0..80)
            .map(|i| {
                mb.append(format!("{i}\r\n").as_bytes(), &Flags::default(), None)
                    .unwrap()
            })
            .collect();
        mb.expunge(&many[..70]).unwrap();
        let g = mb.append(b"g\r\n", &Flags::default(), None).unwrap();
        mb.refresh().unwrap();
        let live: Vec<u32> = mb.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uidlist_uids(&root).1, live);
        assert_eq!(live.last(), Some(&g));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_fresh_open_reuses_the_shared_scan_but_not_across_uidvalidity() {
        let (d, s) = setup("perf-shared");
        let root = d.join("Maildir");
        for i in 0..(PUBLISH_AFTER_STATS + 10) {
            let name = format!("17000{i:05}.M{i}P1.h,S=3,W=3:2,S");
            fs::write(root.join("cur").join(name), "x\r\n").unwrap();
        }
        let first = s.load_mailbox("INBOX", false).unwrap();
        assert!(
            shared_scan(&root).is_some(),
            "the expensive first scan is published"
        );
        let second = s.load_mailbox("INBOX", false).unwrap();
        assert_eq!(first.messages(), second.messages());
        // A rebuilt uidlist (new UIDVALIDITY): the shared rows are not used.
        drop((first, second));
        fs::remove_file(root.join(UIDLIST)).unwrap();
        let third = s.load_mailbox("INBOX", false).unwrap();
        assert_eq!(third.messages().len(), PUBLISH_AFTER_STATS + 10);
        assert!(third
            .messages()
            .iter()
            .all(|m| m.size == 3 && m.flags.system == crate::store::flag::SEEN));
        let _ = fs::remove_dir_all(&d);
    }
}

mod keyword_locks {
    //! dovecot-keywords is shared with Dovecot, which adds to it under the uidlist lock and
    //! notices changes by mtime.
    use super::super::super::{test_dir, UserStore};
    use super::super::*;
    use std::os::unix::fs::MetadataExt;

    fn kw(k: &str) -> Flags {
        Flags {
            system: 0,
            keywords: vec![k.to_string()],
        }
    }

    #[test]
    fn a_new_keyword_waits_for_the_uidlist_lock_and_keeps_the_letters_given_meanwhile() {
        let d = test_dir("kw-uidlist-lock");
        let root = d.join("Maildir");
        let s = UserStore::open(&root).unwrap();
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        // "Dovecot" holds the uidlist lock while it gives letter a to "theirs" (it writes
        // dovecot-keywords from memory, as Dovecot does).
        let held = DotLock::acquire(&root.join(UIDLIST)).unwrap();
        let r2 = root.clone();
        let dovecot = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            fs::write(r2.join(KEYWORDS), "0 theirs\n").unwrap();
            drop(held);
        });
        std::thread::sleep(Duration::from_millis(50));
        mb.append(b"a\r\n", &kw("mine"), None).unwrap();
        dovecot.join().unwrap();
        let text = fs::read_to_string(root.join(KEYWORDS)).unwrap();
        assert_eq!(text, "0 theirs\n1 mine\n");
        let name = crate::store::maildir::first_cur_name(&root);
        assert!(name.ends_with(":2,b"), "{name}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn dovecot_keywords_mtime_grows_by_whole_seconds() {
        let d = test_dir("kw-mtime");
        let root = d.join("Maildir");
        let s = UserStore::open(&root).unwrap();
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        mb.append(b"a\r\n", &kw("one"), None).unwrap();
        // Dovecot may have set it ahead of the clock (it does so itself).
        let ahead = SystemTime::now() + Duration::from_secs(100);
        let f = fs::File::options()
            .write(true)
            .open(root.join(KEYWORDS))
            .unwrap();
        f.set_times(fs::FileTimes::new().set_modified(ahead))
            .unwrap();
        drop(f);
        let before = fs::metadata(root.join(KEYWORDS)).unwrap().mtime();
        mb.append(b"b\r\n", &kw("two"), None).unwrap();
        let after = fs::metadata(root.join(KEYWORDS)).unwrap().mtime();
        assert_eq!(after, before + 1);
        assert_eq!(
            fs::read_to_string(root.join(KEYWORDS)).unwrap(),
            "0 one\n1 two\n"
        );
        let _ = fs::remove_dir_all(&d);
    }
}

mod concurrent_stores {
    //! Two sessions (or processes) storing flags on one message: neither loses the other's.
    use super::super::super::{test_dir, UserStore};
    use super::super::*;
    use crate::store::flag::{FLAGGED, SEEN};

    fn flags(system: u8, kws: &[&str]) -> Flags {
        Flags {
            system,
            keywords: kws.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn sorted(f: &Flags) -> (u8, Vec<String>) {
        let mut k = f.keywords.clone();
        k.sort();
        (f.system, k)
    }

    #[test]
    fn a_store_keeps_flags_another_session_set_since_its_last_refresh() {
        let d = test_dir("conc-store-letters");
        let s = UserStore::open(&d.join("Maildir")).unwrap();
        let mut a = s.load_mailbox("INBOX", false).unwrap();
        let uid = a.append(b"a\r\n", &flags(0, &["one"]), None).unwrap();
        a.refresh().unwrap();
        let mut b = s.load_mailbox("INBOX", false).unwrap();
        // b: +FLAGS (\Seen two), a (not refreshed since): +FLAGS (\Flagged) -FLAGS (one).
        b.set_flags(uid, &flags(SEEN, &["one", "two"])).unwrap();
        a.set_flags(uid, &flags(FLAGGED, &[])).unwrap();
        let mut c = s.load_mailbox("INBOX", false).unwrap();
        c.refresh().unwrap();
        assert_eq!(
            sorted(&c.messages()[0].flags),
            (SEEN | FLAGGED, vec!["two".to_string()])
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_store_keeps_keywords_without_a_letter_another_session_set() {
        let d = test_dir("conc-store-extras");
        let root = d.join("Maildir");
        let s = UserStore::open(&root).unwrap();
        // All 26 letters taken: further keywords go to pimap-keywords.
        let all: String = (0..26).map(|i| format!("{i} l{i}\n")).collect();
        fs::write(root.join(KEYWORDS), all).unwrap();
        let mut a = s.load_mailbox("INBOX", false).unwrap();
        let uid = a.append(b"a\r\n", &flags(0, &["x0"]), None).unwrap();
        a.refresh().unwrap();
        let mut b = s.load_mailbox("INBOX", false).unwrap();
        b.refresh().unwrap();
        // b: +FLAGS (x1); a, whose view is older: +FLAGS (x2), then -FLAGS (x0).
        b.set_flags(uid, &flags(0, &["x0", "x1"])).unwrap();
        a.set_flags(uid, &flags(0, &["x0", "x2"])).unwrap();
        let mut c = s.load_mailbox("INBOX", false).unwrap();
        c.refresh().unwrap();
        assert_eq!(sorted(&c.messages()[0].flags).1, ["x0", "x1", "x2"]);
        // b: -FLAGS (x0); a, not refreshed (its view still has x0): +FLAGS (x3) must not
        // bring x0 back.
        b.refresh().unwrap();
        b.set_flags(uid, &flags(0, &["x1", "x2"])).unwrap();
        a.set_flags(uid, &flags(0, &["x0", "x1", "x2", "x3"]))
            .unwrap();
        c.refresh().unwrap();
        assert_eq!(sorted(&c.messages()[0].flags).1, ["x1", "x2", "x3"]);
        let _ = fs::remove_dir_all(&d);
    }
}

mod removal {
    use super::super::remove_sorted;

    #[test]
    fn remove_sorted_keeps_order_and_matches_a_plain_filter() {
        for len in 0..9usize {
            for mask in 0u32..(1 << len) {
                let mut v: Vec<usize> = (0..len).collect();
                let idx: Vec<usize> = (0..len).filter(|i| mask & (1 << i) != 0).collect();
                let want: Vec<usize> = (0..len).filter(|i| mask & (1 << i) == 0).collect();
                remove_sorted(&mut v, &idx);
                assert_eq!(v, want, "len {len} idx {idx:?}");
            }
        }
    }

    /// Indexes out of contract (repeated, unordered, past the end) remove what they name
    /// and never panic.
    #[test]
    fn remove_sorted_takes_any_index_list() {
        let cases: [&[usize]; 4] = [&[2, 2], &[5, 1, 3], &[1, 99], &[7, 0, 7, 100]];
        for idx in cases {
            let mut v: Vec<usize> = (0..8).collect();
            let want: Vec<usize> = (0..8).filter(|i| !idx.contains(i)).collect();
            remove_sorted(&mut v, idx);
            assert_eq!(v, want, "idx {idx:?}");
        }
    }
}
