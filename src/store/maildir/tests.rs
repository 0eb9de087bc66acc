//! Tests for the disk side of the Maildir store (each in its own temp dir).

use super::*;
use crate::store::{flag, Flags};

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn store(tag: &str) -> (Tmp, UserStore) {
    let d = test_dir(tag);
    let s = UserStore::open(&d.join("Maildir")).unwrap();
    (Tmp(d), s)
}

fn kw(system: u8, k: &[&str]) -> Flags {
    Flags {
        system,
        keywords: k.iter().map(|s| s.to_string()).collect(),
    }
}

fn uidlist_text(dir: &Path) -> String {
    fs::read_to_string(dir.join("dovecot-uidlist")).unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn open_creates_layout() {
    let (_t, s) = store("open");
    for d in ["cur", "new", "tmp"] {
        assert!(s.root().join(d).is_dir());
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(s.root().join("cur"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn append_refresh_flags_expunge() {
    let (_t, s) = store("append");
    let mut mb = s.load_mailbox("INBOX", false).unwrap();
    assert_eq!(mb.messages().len(), 0);
    let v = mb.uid_validity();
    assert!(v > 0);
    let u1 = mb
        .append(
            b"Subject: a\n\nhello\n",
            &kw(flag::SEEN, &["Work"]),
            Some(1_000_000),
        )
        .unwrap();
    let u2 = mb
        .append(b"Subject: b\r\n\r\nx\r\n", &Flags::default(), None)
        .unwrap();
    assert_eq!((u1, u2), (1, 2));
    mb.refresh().unwrap();
    let m = mb.messages();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].flags, kw(flag::SEEN, &["Work"]));
    assert_eq!(m[0].size, 21);
    assert_eq!(m[0].internal_date, 1_000_000);
    assert!(!m[0].recent);
    assert_eq!(mb.read(1).unwrap(), b"Subject: a\n\nhello\n");
    let cur = names_in(&s.root().join("cur"));
    assert!(cur[0].ends_with(",S=18,W=21:2,Sa"), "{cur:?}");
    assert_eq!(
        fs::read_to_string(s.root().join("dovecot-keywords")).unwrap(),
        "0 Work\n"
    );

    mb.set_flags(
        2,
        &kw(flag::ANSWERED | flag::DELETED, &["$Forwarded", "Later"]),
    )
    .unwrap();
    assert_eq!(
        mb.messages()[1].flags,
        kw(flag::ANSWERED | flag::DELETED, &["$Forwarded", "Later"])
    );
    assert!(names_in(&s.root().join("cur"))
        .iter()
        .any(|n| n.ends_with(":2,RTbc")));
    assert!(mb.keywords().contains(&"$Forwarded".to_string()));

    assert_eq!(mb.expunge(&[1, 7]).unwrap(), vec![1]);
    assert_eq!(mb.messages().len(), 1);
    assert!(matches!(mb.read(1), Err(StoreError::Expunged(1))));
    // UIDs are never reused after expunge + new mail.
    let u3 = mb.append(b"c\n", &Flags::default(), None).unwrap();
    assert_eq!(u3, 3);
    mb.refresh().unwrap();
    assert_eq!(
        mb.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(mb.uid_next(), 4);
    // Reopen: same UIDVALIDITY and UIDs.
    let mb2 = s.load_mailbox("inbox", true).unwrap();
    assert_eq!(mb2.uid_validity(), v);
    assert_eq!(
        mb2.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![2, 3]
    );
}

#[test]
fn two_instances_see_each_other() {
    let (_t, s) = store("two");
    let mut a = s.load_mailbox("INBOX", false).unwrap();
    let mut b = s.load_mailbox("INBOX", false).unwrap();
    let u = a.append(b"x\n", &Flags::default(), None).unwrap();
    b.refresh().unwrap();
    assert_eq!(b.messages().len(), 1);
    b.set_flags(u, &kw(flag::FLAGGED, &["$Label1"])).unwrap();
    a.refresh().unwrap();
    assert_eq!(a.messages()[0].flags, kw(flag::FLAGGED, &["$Label1"]));
    // a's location is stale but set_flags finds the renamed file.
    let mut c = s.load_mailbox("INBOX", false).unwrap();
    b.set_flags(u, &kw(flag::SEEN, &[])).unwrap();
    c.set_flags(u, &kw(flag::DRAFT, &[])).unwrap();
    assert_eq!(c.read(u).unwrap(), b"x\n");
    a.expunge(&[u]).unwrap();
    b.refresh().unwrap();
    assert!(b.messages().is_empty());
    assert!(matches!(
        c.set_flags(u, &Flags::default()),
        Err(StoreError::Expunged(_))
    ));
}

#[test]
fn new_mail_is_recent_for_the_first_session_only() {
    let (_t, s) = store("recent");
    deliver(s.root(), "abc", b"Subject: hi\n\nbody\n").unwrap();
    let st = s.status("INBOX").unwrap();
    assert_eq!(
        (st.messages, st.recent, st.unseen, st.uid_next, st.size),
        (1, 1, 1, 2, 21)
    );
    assert_eq!(
        names_in(&s.root().join("new")).len(),
        1,
        "status must not move new/ files"
    );
    let ro = s.load_mailbox("INBOX", true).unwrap();
    assert_eq!(ro.messages().len(), 1);
    assert!(!ro.messages()[0].recent);
    let mut a = s.load_mailbox("INBOX", false).unwrap();
    assert!(a.messages()[0].recent);
    assert_eq!(a.messages()[0].size, 21);
    assert!(names_in(&s.root().join("new")).is_empty());
    assert!(names_in(&s.root().join("cur"))[0].ends_with(":2,"));
    let b = s.load_mailbox("INBOX", false).unwrap();
    assert!(!b.messages()[0].recent);
    a.refresh().unwrap();
    assert!(a.messages()[0].recent);
    // The uidlist caches W (RFC822.SIZE) for the delivered file.
    assert!(
        uidlist_text(s.root()).contains(" W21 :abc,S=18"),
        "{}",
        uidlist_text(s.root())
    );
}

#[test]
fn refresh_is_cheap_but_sees_changes() {
    let (_t, s) = store("refresh");
    let mut a = s.load_mailbox("INBOX", false).unwrap();
    deliver(s.root(), "m1", b"1\n").unwrap();
    a.refresh().unwrap();
    assert_eq!(a.messages().len(), 1);
    // A flag change by another process (rename in cur/) is picked up.
    let cur = s.root().join("cur");
    let n = names_in(&cur).remove(0);
    fs::rename(cur.join(&n), cur.join(format!("{n}S"))).unwrap();
    a.refresh().unwrap();
    assert_eq!(a.messages()[0].flags.system, flag::SEEN);
    // Removal by another process = expunge.
    fs::remove_file(cur.join(format!("{n}S"))).unwrap();
    a.refresh().unwrap();
    assert!(a.messages().is_empty());
}

#[test]
fn deliver_is_idempotent_and_validated() {
    let (_t, s) = store("deliver");
    let p = deliver(s.root(), "ses-1", b"data\n").unwrap();
    assert_eq!(p.file_name().unwrap(), "ses-1,S=5");
    let p2 = deliver(s.root(), "ses-1", b"other").unwrap();
    assert_eq!(p, p2);
    assert_eq!(fs::read(&p).unwrap(), b"data\n");
    s.load_mailbox("INBOX", false).unwrap(); // moves it to cur/
    let p3 = deliver(s.root(), "ses-1", b"again").unwrap();
    assert!(p3.starts_with(s.root().join("cur")));
    assert!(names_in(&s.root().join("tmp")).is_empty());
    assert_eq!(names_in(&s.root().join("new")).len(), 0);
    deliver(s.root(), "ses-10", b"x").unwrap();
    assert_eq!(names_in(&s.root().join("new")), vec!["ses-10,S=1"]);
    for bad in ["", ".x", "a/b", "a:b", "a\0b", "a\nb"] {
        assert!(
            matches!(deliver(s.root(), bad, b"x"), Err(StoreError::BadName(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn folders_create_list_delete_rename() {
    let (_t, s) = store("folders");
    s.create("A.B").unwrap();
    assert!(s.root().join(".A.B/maildirfolder").is_file());
    assert!(s.root().join(".A.B/cur").is_dir());
    s.create("Sent.").unwrap();
    s.create("inbox.Sub").unwrap();
    assert!(s.root().join(".INBOX.Sub").is_dir());
    assert!(matches!(
        s.create("Sent"),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.create("INBOX"),
        Err(StoreError::AlreadyExists(_))
    ));
    for bad in ["../x", "a/b", "A..B", ".x", "x\u{7}"] {
        assert!(
            matches!(s.create(bad), Err(StoreError::BadName(_))),
            "{bad:?}"
        );
    }
    let l = s.list().unwrap();
    let got: Vec<(&str, bool, bool)> = l
        .iter()
        .map(|e| (e.name.as_str(), e.nonexistent, e.has_children))
        .collect();
    assert_eq!(
        got,
        vec![
            ("INBOX", false, true),
            ("A", true, true),
            ("A.B", false, false),
            ("INBOX.Sub", false, false),
            ("Sent", false, false)
        ]
    );

    // Messages survive rename, children move along.
    let mut ab = s.load_mailbox("A.B", false).unwrap();
    ab.append(b"m\n", &kw(0, &["K"]), None).unwrap();
    s.create("A").unwrap();
    s.rename("A", "Z").unwrap();
    assert!(matches!(
        s.load_mailbox("A.B", false),
        Err(StoreError::NotFound(_))
    ));
    let zb = s.load_mailbox("Z.B", false).unwrap();
    assert_eq!(zb.messages()[0].flags.keywords, vec!["K"]);
    assert!(matches!(
        s.rename("Z", "Sent"),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.rename("Nope", "X"),
        Err(StoreError::NotFound(_))
    ));

    // Delete with children: the name becomes a \Noselect parent.
    s.delete("Z").unwrap();
    let l = s.list().unwrap();
    assert!(l
        .iter()
        .any(|e| e.name == "Z" && e.nonexistent && e.has_children));
    assert!(matches!(s.delete("Z"), Err(StoreError::NotFound(_))));
    assert!(matches!(s.delete("INBOX"), Err(StoreError::Cannot(_))));
    s.delete("Z.B").unwrap();
    assert!(!s.list().unwrap().iter().any(|e| e.name.starts_with('Z')));
}

#[test]
fn rename_inbox_moves_messages() {
    let (_t, s) = store("renbox");
    let mut inbox = s.load_mailbox("INBOX", false).unwrap();
    inbox
        .append(b"1\n", &kw(flag::SEEN, &["Tag"]), None)
        .unwrap();
    deliver(s.root(), "n1", b"2\n").unwrap();
    s.create("INBOX.Child").unwrap();
    s.rename("INBOX", "Old").unwrap();
    let old = s.load_mailbox("Old", false).unwrap();
    assert_eq!(old.messages().len(), 2);
    assert_eq!(old.messages()[0].flags, kw(flag::SEEN, &["Tag"]));
    inbox.refresh().unwrap();
    assert!(inbox.messages().is_empty());
    assert!(s.root().join(".INBOX.Child").is_dir());
}

#[test]
fn copy_between_mailboxes() {
    let (_t, s) = store("copy");
    s.create("Dest").unwrap();
    let mut src = s.load_mailbox("INBOX", false).unwrap();
    src.append(b"one\n", &kw(flag::FLAGGED, &["Red"]), Some(12345))
        .unwrap();
    src.append(b"two\n", &Flags::default(), None).unwrap();
    src.refresh().unwrap();
    let mut dst = s.load_mailbox("Dest", false).unwrap();
    dst.append(b"zero\n", &kw(0, &["Blue"]), None).unwrap();
    let pairs = src.copy_to(&[1, 2, 99], &mut dst).unwrap();
    assert_eq!(pairs, vec![(1, 2), (2, 3)]);
    dst.refresh().unwrap();
    let m = &dst.messages()[1];
    assert_eq!(m.flags, kw(flag::FLAGGED, &["Red"]));
    assert_eq!(m.internal_date, 12345);
    assert_eq!(dst.read(2).unwrap(), b"one\n");
    assert_eq!(
        fs::read_to_string(dst.path().join("dovecot-keywords")).unwrap(),
        "0 Blue\n1 Red\n"
    );
}

#[test]
fn keywords_beyond_26_go_to_pimap_keywords() {
    let (_t, s) = store("kwlimit");
    let mut mb = s.load_mailbox("INBOX", false).unwrap();
    let u = mb.append(b"x\n", &Flags::default(), None).unwrap();
    mb.refresh().unwrap();
    let many: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    mb.set_flags(
        u,
        &Flags {
            system: 0,
            keywords: many.clone(),
        },
    )
    .unwrap();
    assert_eq!(mb.messages()[0].flags.keywords, many);
    // 26 letters in the file name, the rest in pimap-keywords (keyed by the base name).
    let name = super::first_cur_name(s.root());
    assert!(name.ends_with(":2,abcdefghijklmnopqrstuvwxyz"), "{name}");
    let base = name.split(':').next().unwrap();
    let extras = fs::read_to_string(s.root().join("pimap-keywords")).unwrap();
    assert_eq!(
        extras,
        format!("pimap-keywords 1\n{base} k26 k27 k28 k29\n")
    );
    // Another handle reads them; the mailbox lists all 30.
    let other = s.load_mailbox("INBOX", true).unwrap();
    assert_eq!(other.messages()[0].flags.keywords, many);
    assert_eq!(other.keywords(), many);
    // Removing the extras empties the file; an invalid keyword is still refused.
    mb.set_flags(u, &kw(0, &["k0"])).unwrap();
    assert_eq!(
        fs::read_to_string(s.root().join("pimap-keywords")).unwrap(),
        "pimap-keywords 1\n"
    );
    assert!(matches!(
        mb.set_flags(u, &kw(0, &["bad kw"])),
        Err(StoreError::Cannot(_))
    ));
    // The cap on keywords without a letter.
    let lots: Vec<String> = (0..super::extra_keywords::MAX_EXTRA + 27)
        .map(|i| format!("x{i}"))
        .collect();
    let r = mb.set_flags(
        u,
        &Flags {
            system: 0,
            keywords: lots,
        },
    );
    assert!(matches!(r, Err(StoreError::Cannot(ref m)) if m.contains("too many keywords")));
    assert_eq!(mb.messages()[0].flags.keywords, vec!["k0".to_string()]);
}

#[test]
fn unknown_letters_and_uidlist_fields_preserved() {
    let (_t, s) = store("preserve");
    let root = s.root();
    fs::write(root.join("cur/100.M1P1.h,S=2:2,SZ"), "x\n").unwrap();
    fs::write(
        root.join("dovecot-uidlist"),
        "3 V1234 N7 G00112233445566778899aabbccddeeff X9\n5 W2 Q1 :100.M1P1.h,S=2\n6 :gone\n",
    )
    .unwrap();
    let mut mb = s.load_mailbox("INBOX", false).unwrap();
    assert_eq!(mb.uid_validity(), 1234);
    assert_eq!(mb.messages()[0].uid, 5);
    mb.set_flags(5, &kw(flag::FLAGGED, &[])).unwrap();
    assert_eq!(names_in(&root.join("cur")), vec!["100.M1P1.h,S=2:2,FZ"]);
    let u = mb.append(b"y\n", &Flags::default(), None).unwrap();
    assert_eq!(u, 7);
    let t = uidlist_text(root);
    assert!(
        t.starts_with(
            "3 V1234 N7 G00112233445566778899aabbccddeeff X9\n5 W2 Q1 :100.M1P1.h,S=2\n6 :gone\n7 :"
        ),
        "{t}"
    );
}

#[test]
fn corrupt_uidlist_is_rebuilt_with_new_uidvalidity() {
    let (_t, s) = store("corrupt");
    let mut mb = s.load_mailbox("INBOX", false).unwrap();
    mb.append(b"x\n", &Flags::default(), None).unwrap();
    let v = mb.uid_validity();
    fs::write(s.root().join("dovecot-uidlist"), "garbage\n").unwrap();
    let mb2 = s.load_mailbox("INBOX", false).unwrap();
    assert!(mb2.uid_validity() > v);
    assert_eq!(mb2.messages().len(), 1);
    assert!(s.root().join("dovecot-uidlist.corrupt").exists());
}

#[test]
fn malformed_files_skipped() {
    let (_t, s) = store("malformed");
    let root = s.root();
    fs::write(root.join("cur/.hidden"), "x").unwrap();
    fs::write(root.join("cur/bad\nname:2,S"), "x").unwrap();
    fs::create_dir(root.join("cur/adir")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("cur/link:2,S")).unwrap();
    fs::write(root.join("cur/ok:2,S"), "x").unwrap();
    let mb = s.load_mailbox("INBOX", false).unwrap();
    assert_eq!(mb.messages().len(), 1);
    assert_eq!(mb.read(1).unwrap(), b"x");
    // A folder symlinked out of the root is not a mailbox.
    std::os::unix::fs::symlink("/tmp", root.join(".Evil")).unwrap();
    assert!(!s.list().unwrap().iter().any(|e| e.name == "Evil"));
    assert!(matches!(
        s.load_mailbox("Evil", false),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn subscriptions_v1_and_v2() {
    let (_t, s) = store("subs");
    assert!(s.subscriptions().unwrap().is_empty());
    s.set_subscribed("A.B", true).unwrap();
    s.set_subscribed("inbox", true).unwrap();
    s.set_subscribed("A.B", true).unwrap();
    assert_eq!(
        fs::read_to_string(s.root().join("subscriptions")).unwrap(),
        "V\t2\n\nA\tB\nINBOX\n"
    );
    s.set_subscribed("A.B", false).unwrap();
    assert_eq!(s.subscriptions().unwrap(), vec!["INBOX"]);
    fs::write(s.root().join("subscriptions"), "V\t2\n\nX\tY\n").unwrap();
    assert_eq!(s.subscriptions().unwrap(), vec!["X.Y"]);
    s.set_subscribed("Q.R", true).unwrap();
    assert_eq!(
        fs::read_to_string(s.root().join("subscriptions")).unwrap(),
        "V\t2\n\nX\tY\nQ\tR\n"
    );
    assert!(matches!(
        s.set_subscribed("a..b", true),
        Err(StoreError::BadName(_))
    ));
    fs::write(s.root().join("subscriptions"), "A\n").unwrap();
    s.set_subscribed("B.C", true).unwrap();
    assert_eq!(
        fs::read_to_string(s.root().join("subscriptions")).unwrap(),
        "A\nB.C\n"
    );
}

#[test]
fn read_only_never_changes_messages() {
    let (_t, s) = store("ro");
    deliver(s.root(), "r1", b"x\n").unwrap();
    let mut ro = s.load_mailbox("INBOX", true).unwrap();
    assert!(matches!(
        ro.set_flags(1, &Flags::default()),
        Err(StoreError::Cannot(_))
    ));
    assert!(matches!(ro.expunge(&[1]), Err(StoreError::Cannot(_))));
    assert!(matches!(
        ro.append(b"x", &Flags::default(), None),
        Err(StoreError::Cannot(_))
    ));
    assert_eq!(names_in(&s.root().join("new")).len(), 1);
}

#[test]
fn uidvalidity_increases_across_mailboxes() {
    let (_t, s) = store("uidv2");
    s.create("A").unwrap();
    s.create("B").unwrap();
    let a = s.status("A").unwrap().uid_validity;
    let b = s.status("B").unwrap().uid_validity;
    let i = s.status("INBOX").unwrap().uid_validity;
    assert!(b > a && i > b);
    assert!(matches!(s.status("Nope"), Err(StoreError::NotFound(_))));
}

#[test]
fn passed_letter_is_forwarded() {
    let (_t, s) = store("passed");
    fs::write(s.root().join("cur/p1:2,PS"), "x\n").unwrap();
    let mut mb = s.load_mailbox("INBOX", false).unwrap();
    assert_eq!(mb.messages()[0].flags, kw(flag::SEEN, &["$Forwarded"]));
    mb.set_flags(1, &kw(0, &["$forwarded"])).unwrap();
    assert_eq!(names_in(&s.root().join("cur")), vec!["p1:2,P"]);
    mb.set_flags(1, &kw(0, &[])).unwrap();
    assert_eq!(names_in(&s.root().join("cur")), vec!["p1:2,"]);
    mb.set_flags(1, &kw(0, &["$Forwarded"])).unwrap();
    assert_eq!(names_in(&s.root().join("cur")), vec!["p1:2,a"]);
    assert_eq!(mb.messages()[0].flags, kw(0, &["$Forwarded"]));
}

#[test]
fn dovecot_style_new_files_with_flags() {
    // Dovecot (doveadm save) leaves files in new/ with an info part and N below the last UID.
    let (_t, s) = store("dvnew");
    fs::write(s.root().join("new/1.M1P1.vm,S=3,W=4:2,Sa"), "a\nb").unwrap();
    fs::write(s.root().join("dovecot-keywords"), "0 $Work\n").unwrap();
    fs::write(
        s.root().join("dovecot-uidlist"),
        "3 V99 N1 G00\n1 :1.M1P1.vm,S=3,W=4\n",
    )
    .unwrap();
    let mb = s.load_mailbox("INBOX", false).unwrap();
    assert_eq!((mb.uid_validity(), mb.uid_next()), (99, 2));
    assert_eq!(mb.messages()[0].flags, kw(flag::SEEN, &["$Work"]));
    assert_eq!(mb.messages()[0].size, 4);
    assert!(mb.messages()[0].recent);
    assert_eq!(
        names_in(&s.root().join("cur")),
        vec!["1.M1P1.vm,S=3,W=4:2,Sa"]
    );
}

#[test]
fn refresh_after_delete_is_not_found() {
    let (_t, s) = store("gone");
    s.create("X").unwrap();
    let mut mb = s.load_mailbox("X", false).unwrap();
    s.delete("X").unwrap();
    assert!(matches!(mb.refresh(), Err(StoreError::NotFound(_))));
}

/// "Never panics" over pseudo-random inputs built from the characters the formats care about.
#[test]
fn parsers_never_panic_on_garbage() {
    let alphabet: Vec<char> = "0123 VNGW:,S=.2&-+AZaz\n\r\t\u{1}\u{0}/Äé€😀"
        .chars()
        .collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let len = (x % 24) as usize;
        let mut s = String::new();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let _ = uidlist::UidList::parse(&s);
        let _ = uidlist::UidList::parse(&format!("3 V1 N1\n{s}"));
        let _ = keywords::Keywords::parse(&s);
        let _ = subscriptions::parse(&s);
        let _ = subscriptions::parse(&format!("V\t2\n\n{s}"));
        let _ = name::validate(&s);
        let _ = name::from_dir_name(&s);
        let f = filename::split(&s);
        let _ = filename::sizes(f.base);
        let _ = filename::encode_letters(&filename::decode_letters(f.letters));
        let _ = filename::acceptable(&s);
        let _ = filename::valid_unique(&s);
    }
}

#[test]
fn spooled_append_lands_in_another_folder_with_sizes_flags_and_date() {
    let (_t, s) = store("spool");
    s.create("Archive").unwrap();
    let mut mb = s.load_mailbox("Archive", false).unwrap();
    let msg = b"Subject: spooled\n\nline one\r\nline two\n";
    let mut sp = Spool::create(s.root()).unwrap();
    let tmp_file = sp.path().to_path_buf();
    assert!(tmp_file.starts_with(s.root().join("tmp")));
    for piece in msg.chunks(5) {
        sp.write(piece).unwrap();
    }
    assert_eq!(sp.len(), msg.len() as u64);
    let (uid, pending) = mb
        .append_spool(sp, &kw(flag::FLAGGED, &["Work"]), Some(2_000_000))
        .unwrap();
    pending.wait().unwrap();
    assert_eq!(uid, 1);
    assert!(!tmp_file.exists());
    assert_eq!(names_in(&s.root().join("tmp")), Vec::<String>::new());
    assert_eq!(names_in(&mb.path().join("tmp")), Vec::<String>::new());
    mb.refresh().unwrap();
    let m = &mb.messages()[0];
    assert_eq!(m.size, filename::vsize(msg));
    assert_eq!(m.internal_date, 2_000_000);
    assert_eq!(m.flags, kw(flag::FLAGGED, &["Work"]));
    assert_eq!(mb.read(1).unwrap(), msg);
    let f = mb.open_message(1).unwrap();
    assert_eq!((f.len, f.vsize), (msg.len() as u64, filename::vsize(msg)));
}

#[test]
fn a_spool_dropped_before_it_is_placed_leaves_nothing() {
    let (_t, s) = store("spool-drop");
    let mut sp = Spool::create(s.root()).unwrap();
    sp.write(b"Subject: half a message").unwrap();
    assert_eq!(names_in(&s.root().join("tmp")).len(), 1);
    drop(sp);
    assert_eq!(names_in(&s.root().join("tmp")), Vec::<String>::new());
}

#[test]
fn generation_holds_while_nothing_changes_and_moves_with_every_change() {
    let (_t, s) = store("generation");
    let mut a = s.load_mailbox("INBOX", false).unwrap();
    let mut b = s.load_mailbox("INBOX", false).unwrap();
    let u = b
        .append(b"Subject: a\n\n1\n", &Flags::default(), None)
        .unwrap();
    // Settled: refreshes that find nothing new keep the generation.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    a.refresh().unwrap();
    let g = a.generation();
    a.refresh().unwrap();
    a.refresh().unwrap();
    assert_eq!(a.generation(), g);
    assert_eq!(a.messages().len(), 1);
    // Its own writes move it, even one that fails.
    a.set_flags(u, &kw(flag::SEEN, &[])).unwrap();
    let g1 = a.generation();
    assert_ne!(g1, g);
    assert!(a.set_flags(u + 7, &kw(flag::SEEN, &[])).is_err());
    assert_ne!(a.generation(), g1);
    // Another instance's flag change, seen by a's refresh, moves it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    a.refresh().unwrap();
    let g2 = a.generation();
    b.refresh().unwrap();
    b.set_flags(u, &kw(flag::FLAGGED, &["Work"])).unwrap();
    a.refresh().unwrap();
    assert_ne!(a.generation(), g2);
    assert_eq!(a.messages()[0].flags, kw(flag::FLAGGED, &["Work"]));
    // And so does an expunge, and generations of two objects never coincide.
    let g3 = a.generation();
    a.expunge(&[u]).unwrap();
    assert_ne!(a.generation(), g3);
    assert_ne!(a.generation(), b.generation());
}

/// Dovecot renames files in cur/ only while it holds the uidlist lock, and lists cur/ under
/// it: a file renamed while a directory is listed may be listed under neither name, which
/// Dovecot takes for an expunge (the message later comes back under a new UID). So pimap's
/// flag renames wait for that lock too.
#[test]
fn a_flag_rename_waits_for_the_uidlist_lock() {
    let (_t, s) = store("rename-lock");
    let mut mb = s.load_mailbox("INBOX", false).unwrap();
    let u = mb.append(b"x\r\n", &Flags::default(), None).unwrap();
    mb.refresh().unwrap();
    let cur = s.root().join("cur");
    let before = names_in(&cur);
    // Dovecot's lock: an O_EXCL file that names no process of this host (live until stale).
    let lock = s.root().join("dovecot-uidlist.lock");
    fs::write(&lock, "").unwrap();
    let (l2, c2) = (lock.clone(), cur.clone());
    let dovecot = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let while_locked = names_in(&c2);
        fs::remove_file(&l2).unwrap();
        while_locked
    });
    mb.set_flags(u, &kw(flag::SEEN, &[])).unwrap();
    let while_locked = dovecot.join().unwrap();
    assert_eq!(while_locked, before, "renamed under the lock");
    assert!(names_in(&cur)[0].ends_with(":2,S"), "{:?}", names_in(&cur));
}

/// Dovecot renames a file to carry a new keyword's letter before it writes that keyword into
/// dovecot-keywords (both under the uidlist lock): a rescan in between must not read the
/// message without the keyword (a COPY or MOVE of it then dropped the keyword).
#[test]
fn a_keyword_letter_seen_before_its_keyword_waits_for_the_writer() {
    let (_t, s) = store("late-keyword");
    let mut mb = s.load_mailbox("INBOX", false).unwrap();
    let u = mb.append(b"x\r\n", &Flags::default(), None).unwrap();
    mb.refresh().unwrap();
    let cur = s.root().join("cur");
    let name = names_in(&cur).remove(0);
    // "Dovecot", holding the lock: the new name first, the keyword 300 ms later.
    let lock = s.root().join("dovecot-uidlist.lock");
    fs::write(&lock, "").unwrap();
    fs::rename(cur.join(&name), cur.join(format!("{name}a"))).unwrap();
    let root = s.root().to_path_buf();
    let dovecot = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        fs::write(root.join("dovecot-keywords"), "0 late\n").unwrap();
        fs::remove_file(&lock).unwrap();
    });
    mb.refresh().unwrap();
    dovecot.join().unwrap();
    assert_eq!(mb.messages()[0].uid, u);
    assert_eq!(mb.messages()[0].flags, kw(0, &["late"]));
}
