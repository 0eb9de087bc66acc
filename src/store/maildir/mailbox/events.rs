//! Refreshing a watched mailbox from the names inotify reported ([`super::super::watch`]):
//! work in proportion to what changed, never a directory read unless events were lost.
//!
//! For each base name the last event decides: a name that appeared is where the message is
//! now (a new file, a flag rename, a move from new/ to cur/); a name that went away is gone if
//! it was the message's current name, and stale otherwise (the first half of a rename whose
//! second half also arrived, or this process's own change, already applied). A rename always
//! queues both halves within its system call, so a drained batch never holds only the first.

use super::super::watch::{Event, Part, Taken};
use super::base_index::{BaseIndex, Lookup};
use super::{file_vsize, mtime_secs, read_uidlist, Loc, Mailbox, Sub, EXTRAS, KEYWORDS, UIDLIST};
use crate::store::maildir::changes::Change;
use crate::store::maildir::filename;
use crate::store::maildir::lock::DotLock;
use crate::store::maildir::uidlist::UidList;
use crate::store::{MessageMeta, Result};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::PathBuf;

/// Where a base name's file is, as the events say.
struct Last {
    sub: Sub,
    name: String,
}

impl Mailbox {
    /// Apply what the watch reported since the last refresh; a full rescan when events were
    /// lost, a keywords file or a subdirectory was replaced, or a new file has no UID yet.
    pub(super) fn apply_events(&mut self, taken: Taken) -> Result<()> {
        if taken.lost {
            return self.rescan();
        }
        // Each base name's events in order: the message's file ends up at the last name
        // that appeared, unless that name went away after.
        let mut by_base: HashMap<String, Vec<(Sub, String, Event)>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut uidlist_changed = false;
        for (part, name, event) in taken.names {
            let sub = match part {
                Part::Dir => {
                    match name.as_str() {
                        UIDLIST => uidlist_changed = true,
                        KEYWORDS | EXTRAS | "new" | "cur" => return self.rescan(),
                        _ => {} // locks, Dovecot's index files, pimap's own files
                    }
                    continue;
                }
                Part::New => Sub::New,
                Part::Cur => Sub::Cur,
            };
            if !filename::acceptable(&name) {
                continue;
            }
            if event == Event::Appeared && super::scan::has_unmapped_letter(&name, &self.keywords) {
                // A keyword letter whose keyword its writer has not recorded yet: the full
                // read waits for that writer (see `scan::settled_keywords`).
                return self.rescan();
            }
            let base = filename::split(&name).base.to_string();
            let events = by_base.entry(base).or_insert_with_key(|b| {
                order.push(b.clone());
                Vec::new()
            });
            events.push((sub, name, event));
        }
        if uidlist_changed && self.awaiting_uids {
            // A read-only scan left files without a UID: they may have one now.
            return self.rescan();
        }
        if by_base.is_empty() {
            if uidlist_changed && self.uidlist_validity_changed() {
                return self.rescan();
            }
            return Ok(());
        }
        self.touch();
        let mut fresh: Vec<(String, Last)> = Vec::new();
        let mut gone: Vec<u32> = Vec::new();
        for base in order {
            let Some(events) = by_base.remove(&base) else {
                continue;
            };
            let uid = self.uid_of_base(&base);
            let mut now: Option<Last> = uid
                .and_then(|u| self.index_of(u))
                .and_then(|i| self.locs.get(i))
                .map(|l| Last {
                    sub: l.sub,
                    name: l.name.clone(),
                });
            // Once the known message's file is unlinked, a file that appears under its base
            // name is another message (`after`), with a UID of its own from the uidlist.
            let mut unlinked = false;
            let mut after: Option<Last> = None;
            for (sub, name, event) in events {
                let slot = if unlinked { &mut after } else { &mut now };
                match event {
                    Event::Appeared => *slot = Some(Last { sub, name }),
                    Event::MovedAway | Event::Deleted => {
                        if slot
                            .as_ref()
                            .is_some_and(|n| n.sub == sub && n.name == name)
                        {
                            *slot = None;
                            unlinked |= event == Event::Deleted && uid.is_some();
                        }
                    }
                }
            }
            match (uid, now) {
                (Some(uid), Some(l)) => self.relocate(uid, l.sub, l.name),
                (Some(uid), None) => gone.push(uid),
                (None, Some(l)) => fresh.push((base.clone(), l)),
                (None, None) => {} // a file that came and went, or this process's expunge
            }
            if let Some(l) = after {
                fresh.push((base, l));
            }
        }
        gone.sort_unstable();
        self.drop_messages(&gone);
        if !fresh.is_empty() {
            return self.add_fresh(fresh);
        }
        Ok(())
    }

    /// A known message now has the file name `name` in `sub`.
    fn relocate(&mut self, uid: u32, sub: Sub, name: String) {
        let Some(i) = self.index_of(uid) else {
            return;
        };
        let path = self.dir.join(sub.dir()).join(&name);
        if let Some(l) = (self.locs.get_mut(i)).filter(|l| l.sub == sub && l.name == name) {
            // This process's own rename, already applied, or another writer's file renamed
            // over it (not what Maildir allows): the size it keys the cache with is looked
            // at again.
            if let Ok(md) = fs::symlink_metadata(&path) {
                l.raw = md.len();
            }
            return;
        }
        let flags = self.flags_of(&name);
        let system = flags.system;
        if let (Some(m), Some(l)) = (self.messages.get_mut(i), self.locs.get_mut(i)) {
            if m.flags != flags {
                self.forwarded |= super::has_forwarded(&flags);
                self.changes.push(Change::Flags { uid, origin: 0 });
                m.flags = flags;
            }
            *l = Loc {
                sub,
                name,
                raw: l.raw,
            };
            self.track_deleted(uid, system);
        }
    }

    /// New files: their UIDs from the uidlist (read once), a stat each for INTERNALDATE, and
    /// new/ → cur/ as a read-write reader does. Files the uidlist does not list yet (a
    /// delivery by a process that does not write the uidlist, such as an MDA or the S3 sync)
    /// get the next UIDs here, under the uidlist lock, as the full sync would give them, but
    /// without reading the directories; a read-only state leaves that to the full sync.
    fn add_fresh(&mut self, fresh: Vec<(String, Last)>) -> Result<()> {
        let unlisted = |l: &UidList| {
            let have: HashSet<&str> = l.entries.iter().map(|e| e.base.as_str()).collect();
            fresh.iter().any(|(b, _)| !have.contains(b.as_str()))
        };
        let mut list = match read_uidlist(&self.dir)? {
            Ok(Some(l)) => l,
            _ => return self.rescan(),
        };
        let mut lock = None;
        if unlisted(&list) {
            // Another writer renames first and then adds the line under the uidlist lock
            // (Dovecot does): once that lock is free, the line is there. Whatever is still
            // unlisted with the lock held is nobody's to list but ours.
            // (The full sync takes the lock itself: every path to it lets go first.)
            let Ok(l) = DotLock::acquire(&self.dir.join(UIDLIST)) else {
                return self.rescan();
            };
            let reread = read_uidlist(&self.dir);
            match reread {
                Ok(Ok(Some(now))) if !(self.read_only && unlisted(&now)) => {
                    list = now;
                    lock = Some(l);
                }
                _ => {
                    drop(l);
                    reread?.ok();
                    return self.rescan();
                }
            }
        }
        if list.uid_validity != self.uid_validity {
            drop(lock);
            return self.rescan();
        }
        let by_base: HashMap<&str, (u32, Option<u64>)> = list
            .entries
            .iter()
            .map(|e| (e.base.as_str(), (e.uid, e.vsize())))
            .collect();
        let mut rows: Vec<(MessageMeta, Loc)> = Vec::new();
        let mut adopt = Vec::new();
        for (base, l) in fresh {
            match by_base.get(base.as_str()) {
                Some(&(uid, vsize)) => rows.extend(self.fresh_row(&base, l, uid, vsize)),
                None => adopt.push((base, l)),
            }
        }
        self.uid_next = self.uid_next.max(list.next_uid);
        self.insert_rows(rows);
        match lock {
            Some(lock) if !adopt.is_empty() => self.adopt(lock, adopt),
            _ => Ok(()),
        }
    }

    /// The state's row for a new file the uidlist lists with `uid` (and `vsize` when it
    /// caches one), moved from new/ to cur/ unless read-only; `None` when it is gone again
    /// (its events come next time).
    fn fresh_row(
        &mut self,
        base: &str,
        l: Last,
        uid: u32,
        vsize: Option<u64>,
    ) -> Option<(MessageMeta, Loc)> {
        let (mut sub, mut name) = (l.sub, l.name);
        let path = self.dir.join(sub.dir()).join(&name);
        let md = fs::symlink_metadata(&path).ok().filter(|m| m.is_file())?;
        let size = match filename::sizes(base).1.or(vsize) {
            Some(w) => w,
            None => file_vsize(&path).ok()?,
        };
        let mut recent = false;
        if sub == Sub::New && !self.read_only {
            let to = if name.contains(':') {
                name.clone()
            } else {
                filename::cur_name(&name, "")
            };
            if fs::rename(&path, self.dir.join("cur").join(&to)).is_ok() {
                sub = Sub::Cur;
                name = to;
                recent = true;
            }
        }
        let meta = MessageMeta {
            uid,
            flags: self.flags_of(&name),
            size,
            internal_date: mtime_secs(&md),
            recent,
        };
        let raw = md.len();
        Some((meta, Loc { sub, name, raw }))
    }

    /// With the uidlist `lock` held: give files nobody listed (delivered by another process)
    /// the next UIDs, moving those in new/ to cur/, as the full sync does for them.
    fn adopt(&mut self, lock: DotLock, files: Vec<(String, Last)>) -> Result<()> {
        let cur = self.dir.join("cur");
        let items: Vec<(PathBuf, PathBuf, String, bool)> = files
            .into_iter()
            .map(|(base, l)| {
                let to = if l.sub == Sub::New && !l.name.contains(':') {
                    filename::cur_name(&l.name, "")
                } else {
                    l.name.clone()
                };
                let from = self.dir.join(l.sub.dir()).join(&l.name);
                (from, cur.join(to), base, true)
            })
            .collect();
        // Synced at once: this runs inside a refresh, with nothing to batch it with.
        let (_, pending) = self.link_in(lock, &items, true)?;
        pending.wait()
    }

    /// Add messages (any order) to the state, keeping it in ascending UID order.
    pub(super) fn insert_rows(&mut self, mut rows: Vec<(MessageMeta, Loc)>) {
        if rows.is_empty() {
            return;
        }
        self.touch();
        rows.sort_by_key(|(m, _)| m.uid);
        for (m, loc) in rows {
            if self.index_of(m.uid).is_some() {
                continue;
            }
            if m.recent {
                self.recent.insert(m.uid);
            }
            self.forwarded |= super::has_forwarded(&m.flags);
            self.track_deleted(m.uid, m.flags.system);
            if let Some(ix) = self.base_index.as_mut() {
                ix.insert(loc.base(), m.uid);
            }
            self.uid_next = self.uid_next.max(m.uid.saturating_add(1));
            let at = self.messages.partition_point(|x| x.uid < m.uid);
            self.messages.insert(at, m);
            self.locs.insert(at, loc);
        }
    }

    /// The UID of the message whose file has base name `base`, if the state has it. The
    /// index by base name is built on first use (one pass) and kept up to date after, so a
    /// name it does not have is no message's ([`BaseIndex`]).
    fn uid_of_base(&mut self, base: &str) -> Option<u32> {
        let ix = self.base_index.get_or_insert_with(|| {
            let pairs = self.messages.iter().zip(&self.locs);
            BaseIndex::build(pairs.map(|(m, l)| (l.base(), m.uid)))
        });
        match ix.get(base) {
            Lookup::Absent => None,
            Lookup::Uid(u) => self.knows(u, base).then_some(u),
            // Names sharing a hash: look it up the slow way.
            Lookup::Ambiguous => {
                self.name_scans += 1;
                self.messages
                    .iter()
                    .zip(&self.locs)
                    .find(|(_, l)| l.base() == base)
                    .map(|(m, _)| m.uid)
            }
        }
    }

    /// Whether `dovecot-uidlist` now has another UIDVALIDITY (its header, not the whole file).
    fn uidlist_validity_changed(&self) -> bool {
        let mut head = [0u8; 512];
        let n = fs::File::open(self.dir.join(UIDLIST))
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        let text = String::from_utf8_lossy(head.get(..n).unwrap_or(&[]));
        let line = text.lines().next().unwrap_or("");
        let validity = line
            .split(' ')
            .find_map(|t| t.strip_prefix('V').and_then(|v| v.parse::<u32>().ok()));
        validity != Some(self.uid_validity)
    }
}

#[cfg(test)]
mod tests {
    //! A watched mailbox against a second, private state of the same Maildir playing another
    //! process: what the other does is seen from its events alone, without reading the
    //! directories (`rescans` stays put), except where a full sync is the job.
    use super::super::super::{deliver, test_dir, UserStore};
    use super::*;
    use crate::store::{flag, Flags};

    fn pair(tag: &str) -> (UserStore, Mailbox, Mailbox) {
        let d = test_dir(tag);
        let s = UserStore::open(&d.join("Maildir")).unwrap();
        let other = s.load_mailbox("INBOX", false).unwrap();
        let root = s.root().to_path_buf();
        let watched = Mailbox::load_watched(&root, &root, "INBOX", false).unwrap();
        assert!(watched.watch.is_some(), "inotify on a local file system");
        (s, other, watched)
    }

    fn seen() -> Flags {
        Flags {
            system: flag::SEEN,
            keywords: Vec::new(),
        }
    }

    #[test]
    fn another_writers_append_flag_change_and_expunge_arrive_by_name() {
        let (_s, mut other, mut w) = pair("events-foreign");
        let base = w.rescans;
        let uid = other
            .append(b"Subject: a\r\n\r\nx\r\n", &Flags::default(), None)
            .unwrap();
        w.refresh().unwrap();
        assert_eq!(
            w.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![uid]
        );
        other.refresh().unwrap();
        other.set_flags(uid, &seen()).unwrap();
        let pos = w.changes().end();
        w.refresh().unwrap();
        assert_eq!(w.meta(uid).map(|m| m.flags.system), Some(flag::SEEN));
        let logged: Vec<&Change> = w.changes().since(pos).into_iter().flatten().collect();
        assert_eq!(logged, vec![&Change::Flags { uid, origin: 0 }]);
        other.expunge(&[uid]).unwrap();
        w.refresh().unwrap();
        assert!(w.messages().is_empty());
        assert_eq!(w.rescans, base, "no directory read for any of it");
        // Nothing changed: nothing to do.
        w.refresh().unwrap();
        assert_eq!(w.rescans, base);
    }

    #[test]
    fn own_writes_are_applied_once_and_never_make_it_read_the_directories() {
        let (_s, _other, mut w) = pair("events-own");
        let base = w.rescans;
        let uid = w
            .append(b"Subject: b\r\n\r\ny\r\n", &Flags::default(), None)
            .unwrap();
        assert!(w.meta(uid).is_some(), "an APPEND is in the state at once");
        w.set_origin(7);
        w.set_flags(uid, &seen()).unwrap();
        w.set_origin(0);
        let pos = w.changes().end();
        w.refresh().unwrap();
        assert_eq!(
            w.changes().since(pos).map(|i| i.count()),
            Some(0),
            "not logged twice"
        );
        assert_eq!(w.meta(uid).map(|m| m.flags.system), Some(flag::SEEN));
        w.expunge(&[uid]).unwrap();
        w.refresh().unwrap();
        assert!(w.messages().is_empty());
        assert_eq!(w.rescans, base);
    }

    /// The event of this process's own unlink names a message the state no longer has: the
    /// by-name index must say so without comparing every other message's name (that made
    /// each single-message EXPUNGE cost O(messages): 4 ms at 100,000 messages).
    #[test]
    fn the_event_of_an_own_expunge_compares_no_names() {
        let (_s, mut other, mut w) = pair("events-own-expunge");
        let uids: Vec<u32> = (0..5)
            .map(|i| {
                let body = format!("Subject: {i}\r\n\r\nx\r\n");
                w.append(body.as_bytes(), &Flags::default(), None).unwrap()
            })
            .collect();
        w.refresh().unwrap();
        let (rescans, scans) = (w.rescans, w.name_scans);
        w.expunge(&uids[1..2]).unwrap();
        w.refresh().unwrap();
        w.expunge(&uids[4..]).unwrap();
        w.refresh().unwrap();
        assert_eq!(w.name_scans, scans, "no message's name compared");
        // Another writer's expunge is still found by name.
        other.refresh().unwrap();
        other.expunge(&uids[2..3]).unwrap();
        w.refresh().unwrap();
        let left: Vec<u32> = w.messages().iter().map(|m| m.uid).collect();
        assert_eq!(left, vec![uids[0], uids[3]]);
        assert_eq!((w.rescans, w.name_scans), (rescans, scans));
    }

    /// `deleted()` (what EXPUNGE removes, kept without a pass over the messages) agrees with
    /// the messages' flags after every kind of change: own and foreign flag changes, APPENDs
    /// with \Deleted, expunges, a full rescan.
    #[test]
    fn the_deleted_set_follows_every_flag_change() {
        let (_s, mut other, mut w) = pair("events-deleted");
        let check = |w: &Mailbox, what: &str| {
            let by_flags: Vec<u32> = (w.messages().iter())
                .filter(|m| m.flags.system & flag::DELETED != 0)
                .map(|m| m.uid)
                .collect();
            assert_eq!(w.deleted().collect::<Vec<_>>(), by_flags, "{what}");
        };
        let del = Flags {
            system: flag::DELETED,
            keywords: Vec::new(),
        };
        let u1 = w.append(b"Subject: 1\r\n\r\n", &del, None).unwrap();
        let u2 = w.append(b"Subject: 2\r\n\r\n", &seen(), None).unwrap();
        let u3 = w.append(b"Subject: 3\r\n\r\n", &seen(), None).unwrap();
        w.refresh().unwrap();
        assert_eq!(w.deleted().collect::<Vec<_>>(), vec![u1], "own APPEND");
        w.set_flags(u2, &del).unwrap();
        check(&w, "own STORE");
        other.refresh().unwrap();
        other.set_flags(u3, &del).unwrap();
        other.set_flags(u1, &seen()).unwrap();
        w.refresh().unwrap();
        assert_eq!(w.deleted().collect::<Vec<_>>(), vec![u2, u3], "foreign");
        check(&w, "foreign STOREs");
        w.expunge(&[u2]).unwrap();
        w.refresh().unwrap();
        check(&w, "own EXPUNGE");
        other.refresh().unwrap();
        other.expunge(&[u3]).unwrap();
        let u4 = other.append(b"Subject: 4\r\n\r\n", &del, None).unwrap();
        w.refresh().unwrap();
        assert_eq!(w.deleted().collect::<Vec<_>>(), vec![u4], "foreign");
        check(&w, "foreign EXPUNGE and APPEND");
        w.rescan().unwrap();
        check(&w, "rescan");
    }

    #[test]
    fn a_delivery_without_a_uid_gets_one_by_name_and_moves_to_cur() {
        let (s, mut other, mut w) = pair("events-mda");
        let old = other
            .append(b"Subject: a\r\n\r\nx\r\n", &Flags::default(), None)
            .unwrap();
        w.refresh().unwrap();
        let base = w.rescans;
        deliver(s.root(), "1700000000.M1P1.host", b"Subject: c\r\n\r\nz\r\n").unwrap();
        deliver(
            s.root(),
            "1700000001.M2P1.host",
            b"Subject: d\r\n\r\nzz\r\n",
        )
        .unwrap();
        w.refresh().unwrap();
        assert_eq!(
            w.rescans, base,
            "UIDs for new files without reading the directories"
        );
        let uids: Vec<u32> = w.messages().iter().map(|m| m.uid).collect();
        assert_eq!(
            uids,
            vec![old, old + 1, old + 2],
            "the next UIDs, in arrival order"
        );
        assert!(
            w.messages()[1..].iter().all(|m| m.recent),
            "first seen here: \\Recent"
        );
        assert!(fs::read_dir(s.root().join("new")).unwrap().next().is_none());
        // The uidlist lists them (another reader, and Dovecot, find the same UIDs)...
        let list = read_uidlist(s.root()).unwrap().unwrap().unwrap();
        let listed: Vec<(u32, &str)> = list
            .entries
            .iter()
            .map(|e| (e.uid, e.base.split(',').next().unwrap_or("")))
            .collect();
        assert_eq!(
            listed[1..],
            [
                (old + 1, "1700000000.M1P1.host"),
                (old + 2, "1700000001.M2P1.host")
            ]
        );
        other.refresh().unwrap();
        let seen_there: Vec<u32> = other.messages().iter().map(|m| m.uid).collect();
        assert_eq!(seen_there, uids);
        // ...and the move from new/ to cur/ comes back as events and changes nothing.
        w.refresh().unwrap();
        assert_eq!(w.rescans, base);
        assert_eq!(w.messages().len(), 3);
    }

    #[test]
    fn a_read_only_state_leaves_unlisted_files_to_the_full_sync() {
        let (s, mut other, _w) = pair("events-mda-ro");
        // A uidlist to read (without one, the full sync is the only way anyway).
        other
            .append(b"Subject: a\r\n\r\nx\r\n", &Flags::default(), None)
            .unwrap();
        let root = s.root().to_path_buf();
        let mut r = Mailbox::load_watched(&root, &root, "INBOX", true).unwrap();
        let base = r.rescans;
        deliver(s.root(), "1700000000.M1P1.host", b"Subject: c\r\n\r\nz\r\n").unwrap();
        r.refresh().unwrap();
        assert_eq!(r.rescans, base + 1);
        // The full sync gives it a UID under the uidlist lock (so this path must not hold it).
        assert_eq!(r.messages().len(), 2);
        assert!(
            fs::read_dir(s.root().join("new")).unwrap().next().is_some(),
            "not moved"
        );
    }

    #[test]
    fn a_base_name_reused_after_an_unlink_is_another_message() {
        // Dovecot's COPY keeps the base name: a message copied out, expunged, and copied back
        // comes back under its old base name with a new UID.
        let (s, mut other, mut w) = pair("events-reuse");
        let a = other
            .append(b"Subject: r\r\n\r\n", &Flags::default(), None)
            .unwrap();
        w.refresh().unwrap();
        let cur = s.root().join("cur");
        let name = fs::read_dir(&cur)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name();
        let name = name.to_str().unwrap().to_string();
        let base = filename::split(&name).base.to_string();
        let elsewhere = s.root().join("copy-elsewhere");
        fs::hard_link(cur.join(&name), &elsewhere).unwrap();
        fs::remove_file(cur.join(&name)).unwrap();
        fs::hard_link(&elsewhere, cur.join(format!("{base}:2,S"))).unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(s.root().join(UIDLIST))
            .unwrap();
        std::io::Write::write_all(&mut f, format!("{} :{base}\n", a + 1).as_bytes()).unwrap();
        let pos = w.changes().end();
        w.refresh().unwrap();
        let uids: Vec<u32> = w.messages().iter().map(|m| m.uid).collect();
        assert_eq!(
            uids,
            vec![a + 1],
            "the copy is a new message, the old one is gone"
        );
        assert_eq!(w.meta(a + 1).map(|m| m.flags.system), Some(flag::SEEN));
        let expunged = (w.changes().since(pos).into_iter().flatten())
            .any(|c| matches!(c, Change::Expunged { uid, .. } if *uid == a));
        assert!(expunged);
    }

    #[test]
    fn a_new_uidvalidity_is_noticed_from_the_uidlist_alone() {
        let (s, mut other, mut w) = pair("events-validity");
        other
            .append(b"Subject: d\r\n\r\n", &Flags::default(), None)
            .unwrap();
        w.refresh().unwrap();
        let before = w.uid_validity();
        let path = s.root().join(UIDLIST);
        let text = fs::read_to_string(&path).unwrap();
        let bumped = text.replacen(&format!("V{before}"), &format!("V{}", before + 1), 1);
        fs::write(&path, bumped).unwrap();
        w.refresh().unwrap();
        assert_eq!(w.uid_validity(), before + 1);
    }
}
