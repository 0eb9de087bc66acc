//! APPEND of several messages at once (RFC 3502 MULTIAPPEND, and one CATENATEd or spooled
//! message): each is written to tmp/ and synced first ([`Mailbox::prepare_append`],
//! [`Mailbox::prepare_spool`], no lock), then all are renamed into cur/ and given
//! consecutive UIDs under one hold of the uidlist lock ([`Mailbox::append_many`]).
//!
//! All or nothing: a failure while preparing drops what was prepared (their tmp/ files go);
//! a failure while placing moves the files already renamed back (see `undo_move_in`). A
//! crash (kill -9, power loss) in the middle of the renames can leave the messages renamed
//! so far in cur/ without uidlist lines: the next scan gives them UIDs, so a prefix of an
//! APPEND that was never acknowledged may appear (the rest stay in tmp/ until its cleanup).
//! Maildir has no rename of several files at once; Dovecot's save has the same window.

use super::*;

impl Mailbox {
    /// The lock-free first half of APPENDing a message received into `spool`: its mtime set
    /// to the INTERNALDATE, synced, and moved into the mailbox directory `dir`'s tmp/
    /// (copied if that is another file system).
    pub fn prepare_spool(
        dir: &Path,
        mut spool: Spool,
        internal_date: Option<i64>,
    ) -> Result<Prepared> {
        let (len, vsize, src) = (spool.len(), spool.vsize(), spool.path().to_path_buf());
        let file = spool.take_file()?;
        let r = file
            .set_times(fs::FileTimes::new().set_modified(mtime_of(internal_date)))
            .and_then(|_| file.sync_all());
        drop(file);
        let remove_src = || {
            let _ = fs::remove_file(&src);
        };
        if let Err(e) = r {
            remove_src();
            return Err(io_err("writing", &src, e));
        }
        let unique = new_unique();
        let tmp = dir.join("tmp").join(&unique);
        if let Err(e) = fs::rename(&src, &tmp) {
            // Another file system (a folder symlinked elsewhere): copy within this one.
            let copied = copy_file(&src, &tmp, &dir.join("tmp"));
            remove_src();
            if let Err(e2) = copied {
                return Err(io_err(
                    "moving the message into place",
                    &tmp,
                    std::io::Error::other(format!("{e}; copy: {e2}")),
                ));
            }
        }
        Ok(Prepared {
            tmp: Some(tmp),
            unique,
            size: len,
            vsize,
            meta: None,
        })
    }

    /// Place the `prepared` messages (from this mailbox's [`Mailbox::prepare_append`] or
    /// [`Mailbox::prepare_spool`]) with their flags under one hold of the uidlist lock:
    /// consecutive new UIDs, in order, or none placed at all. Returns the UIDs and the syncs
    /// owed before acknowledging them (run them after letting go of this state's lock).
    pub fn append_many(&mut self, prepared: Vec<(Prepared, Flags)>) -> Result<(Vec<u32>, Pending)> {
        self.check_writable()?;
        let mut items = Vec::with_capacity(prepared.len());
        let mut extras: Vec<(String, Vec<String>)> = Vec::new();
        for (p, flags) in &prepared {
            let base = filename::base_with_sizes(&p.unique, p.size, p.vsize);
            let tmp = p
                .tmp
                .clone()
                .ok_or_else(|| StoreError::Cannot("message already placed".into()))?;
            let dst = self.destination(&base, flags, "", &mut extras)?;
            items.push((tmp, dst, base, true));
        }
        if !extras.is_empty() {
            // Before the files appear, so no reader sees the messages without them.
            self.update_extras(|k| extras.iter().all(|(b, kws)| k.set(b, kws)))?;
        }
        let (got, pending) = self.link_in_locked(&items)?;
        let c = cache::for_mailbox(&self.dir);
        let mut uids = Vec::with_capacity(got.len());
        for ((p, _), (base, uid)) in prepared.into_iter().zip(got) {
            let mut p = p;
            // Renamed into cur/: nothing left in tmp/ for the drop to remove.
            p.tmp = None;
            let uid = uid.ok_or_else(|| StoreError::Cannot("appended message vanished".into()))?;
            if let Some(meta) = &p.meta {
                c.put(&base, p.size, meta);
            }
            uids.push(uid);
        }
        c.flush();
        Ok((uids, pending))
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::{test_dir, UserStore};
    use super::*;
    use crate::store::flag;

    fn names(dir: &Path, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.join(sub))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn consecutive_uids_with_their_flags_seen_by_another_state() {
        let d = test_dir("multi-ok");
        let root = d.join("Maildir");
        let s = UserStore::open(&root).unwrap();
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        mb.append(b"first\r\n", &Flags::default(), None).unwrap();
        let seen = Flags {
            system: flag::SEEN,
            keywords: vec!["$Label".into()],
        };
        let prepared = vec![
            (
                Mailbox::prepare_append(&root, b"a\r\n", Some(1)).unwrap(),
                seen,
            ),
            (
                Mailbox::prepare_append(&root, b"b\r\n", None).unwrap(),
                Flags::default(),
            ),
        ];
        let (uids, pending) = mb.append_many(prepared).unwrap();
        pending.wait().unwrap();
        assert_eq!(uids, vec![2, 3]);
        assert!(names(&root, "tmp").is_empty());
        let other = s.load_mailbox("INBOX", false).unwrap();
        let got: Vec<(u32, u8, usize)> = (other.messages().iter())
            .map(|m| (m.uid, m.flags.system, m.flags.keywords.len()))
            .collect();
        assert_eq!(got, vec![(1, 0, 0), (2, flag::SEEN, 1), (3, 0, 0)]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failure_while_placing_leaves_none_of_them() {
        let d = test_dir("multi-fail");
        let root = d.join("Maildir");
        let s = UserStore::open(&root).unwrap();
        let mut mb = s.load_mailbox("INBOX", false).unwrap();
        mb.append(b"first\r\n", &Flags::default(), None).unwrap();
        let uidlist = fs::read(root.join(UIDLIST)).unwrap();
        let cur = names(&root, "cur");
        let a = Mailbox::prepare_append(&root, b"a\r\n", None).unwrap();
        let mut b = Mailbox::prepare_append(&root, b"b\r\n", None).unwrap();
        // The second cannot be renamed (a path under a regular file: ENOTDIR), after the
        // first was.
        let blocker = root.join("tmp").join("blocker");
        fs::write(&blocker, b"").unwrap();
        let _ = fs::remove_file(b.tmp.as_ref().unwrap());
        b.tmp = Some(blocker.join("x"));
        let prepared = vec![(a, Flags::default()), (b, Flags::default())];
        assert!(mb.append_many(prepared).is_err());
        assert_eq!(names(&root, "cur"), cur);
        assert_eq!(fs::read(root.join(UIDLIST)).unwrap(), uidlist);
        // The first file went back to tmp/ and was removed with its Prepared.
        assert_eq!(names(&root, "tmp"), vec!["blocker".to_string()]);
        assert_eq!(mb.messages().len(), 1);
        let _ = fs::remove_dir_all(&d);
    }
}
