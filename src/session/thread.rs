//! THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT, REFERENCES and Dovecot's REFS.
//!
//! The messages are those SEARCH would find ([`Session::matching`]); Message-ID,
//! In-Reply-To, References, Subject and Date come from the header block in the metadata
//! cache, so a THREAD over a mailbox whose cache is warm opens no message file. What was read
//! is kept for every session of the process that has the mailbox selected, and a while after
//! ([`Memo`]: a message's bytes never change under its UID; [`KEEP_IDLE`]), so the next
//! THREAD, in this session or the next, reads only new messages' headers, as Dovecot keeps
//! its thread index. The algorithms are pure, in
//! [`crate::mime::thread`].

use super::view::View;
use super::{Action, HandlerError, Output, Session};
use crate::imap::types::{Command, SearchKey, ThreadAlgorithm};
use crate::mime::thread::{thread_ranked, Algorithm, Keys, Message, Rank};
use crate::mime::{msgid, sortkey, SearchDoc};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most bytes of keys one [`Memo`] holds; a message whose keys are over [`MEMO_ENTRY`] bytes
/// (10,000 References) is read each time instead.
pub const MEMO_BYTES: usize = 8 * 1024 * 1024;
/// See [`MEMO_BYTES`].
pub const MEMO_ENTRY: usize = 4096;

/// The messages to thread, and when ranks are needed every message's keys (UID order).
type Threaded = (Vec<Message>, Option<Vec<Arc<Keys>>>);

/// THREAD's keys of a mailbox's messages, by UID.
#[derive(Default)]
pub(super) struct Memo {
    by_uid: HashMap<u32, Arc<Keys>>,
    bytes: usize,
}

impl Memo {
    /// Keep `keys` of `uid` (unless another session just did, or they do not fit).
    fn insert(&mut self, uid: u32, keys: &Arc<Keys>) {
        let size = cost(keys);
        if !self.by_uid.contains_key(&uid) && size <= MEMO_ENTRY && self.bytes + size <= MEMO_BYTES
        {
            self.bytes += size;
            self.by_uid.insert(uid, keys.clone());
        }
    }

    /// Forget UIDs no longer in the mailbox (`live`, ascending), once they are many.
    fn prune(&mut self, live: &[u32]) {
        if self.by_uid.len() > 2 * live.len() + 1024 {
            self.by_uid.retain(|u, _| live.binary_search(u).is_ok());
            self.bytes = self.by_uid.values().map(|k| cost(k)).sum();
        }
    }
}

/// About what `keys` take in memory, bytes.
fn cost(keys: &Keys) -> usize {
    let refs: usize = keys.references.iter().map(|r| r.len() + 24).sum();
    let id = keys.message_id.as_ref().map_or(0, |i| i.len());
    // The subject twice: the field's value and, once made, the base subject.
    let subject = keys.subject.as_ref().map_or(0, |s| 2 * s.len());
    128 + refs + id + subject
}

impl Session {
    pub(super) fn thread(&mut self, tag: &str, cmd: Command) -> Result<Output, HandlerError> {
        let Command::Thread {
            uid,
            algorithm,
            charset,
            criteria,
        } = cmd
        else {
            return Err(HandlerError::Bad("not a THREAD".into()));
        };
        self.check_charset(Some(&charset), None)?;
        let mut out = Vec::new();
        let alg = match algorithm {
            ThreadAlgorithm::OrderedSubject => Algorithm::OrderedSubject,
            ThreadAlgorithm::References => Algorithm::References,
            ThreadAlgorithm::Refs => Algorithm::Refs,
        };
        let refs = alg == Algorithm::Refs;
        let (msgs, all) = self.thread_messages(uid, &criteria, refs, &mut out)?;
        let rank = all.as_deref().map(rank);
        // Dovecot writes the space even when there are no threads: `* THREAD \r\n`.
        out.extend_from_slice(b"* THREAD ");
        out.extend_from_slice(thread_ranked(&msgs, alg, rank.as_ref()).as_bytes());
        out.extend_from_slice(b"\r\n");
        let name = if uid { "UID THREAD" } else { "THREAD" };
        out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }

    /// The matching messages with their keys, from the mailbox's [`Memo`], else read (and
    /// kept); and for REFS over part of the mailbox, the keys of every message (for
    /// [`Rank`]).
    fn thread_messages(
        &mut self,
        uid: bool,
        criteria: &SearchKey,
        refs: bool,
        out: &mut Vec<u8>,
    ) -> Result<Threaded, HandlerError> {
        let found = self.matching(uid, criteria, false, out, |_, _, _| {})?;
        let view = self.view_mut()?;
        let live: Vec<u32> = view.msgs.iter().map(|m| m.uid).collect();
        let memo = view_memo(view);
        // Dovecot numbers the IDs of every message, matching or not.
        let whole = refs && found.len() < live.len();
        let wanted: Vec<u32> = if whole {
            live.clone()
        } else {
            found.iter().map(|h| h.uid).collect()
        };
        let mut have = HashMap::with_capacity(wanted.len());
        let mut missing = Vec::new();
        {
            let m = lock(&memo);
            for u in wanted.iter().copied() {
                match m.by_uid.get(&u) {
                    Some(k) => {
                        have.insert(u, k.clone());
                    }
                    None => missing.push(u),
                }
            }
        }
        let mut new = Vec::with_capacity(missing.len());
        self.with_headers(&missing, |u, meta, doc| {
            new.push((u, Arc::new(keys(meta.internal_date, doc))));
        })?;
        {
            let mut m = lock(&memo);
            for (u, k) in new {
                m.insert(u, &k);
                have.insert(u, k);
            }
            m.prune(&live);
        }
        // A message that could not be read is left out, as SEARCH leaves it out.
        let msgs = found
            .iter()
            .filter_map(|h| {
                have.get(&h.uid).map(|keys| Message {
                    number: h.number(uid),
                    keys: keys.clone(),
                })
            })
            .collect();
        let all = whole.then(|| wanted.iter().filter_map(|u| have.get(u).cloned()).collect());
        Ok((msgs, all))
    }
}

/// [`Memo`]s no view holds that are kept anyway (the most recently used), for the next
/// session (a webmail opens one per page).
pub const KEEP_IDLE: usize = 4;

/// One mailbox's [`Memo`], by directory and UIDVALIDITY.
struct Entry {
    key: (PathBuf, u32),
    memo: Arc<Mutex<Memo>>,
    used: u64,
}

/// The [`Memo`]s: shared by the sessions that have the mailbox selected, and the
/// [`KEEP_IDLE`] last used by none (trimmed when a view first threads).
static MEMOS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static TICK: AtomicU64 = AtomicU64::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The view's mailbox's [`Memo`] (found or made on the view's first THREAD). Takes the
/// mailbox's lock, then the registry's: never the other way round.
fn view_memo(view: &mut View) -> Arc<Mutex<Memo>> {
    if let Some(m) = &view.thread_memo {
        return m.clone();
    }
    let st = view.lock();
    let key = (st.mbox.path().to_path_buf(), st.mbox.uid_validity());
    let mut all = lock(&MEMOS);
    drop(st);
    let used = TICK.fetch_add(1, Ordering::Relaxed);
    let memo = match all.iter_mut().find(|e| e.key == key) {
        Some(e) => {
            e.used = used;
            e.memo.clone()
        }
        None => {
            let memo = Arc::new(Mutex::new(Memo::default()));
            all.push(Entry {
                key,
                memo: memo.clone(),
                used,
            });
            memo
        }
    };
    // Idle: held by the registry alone. The oldest beyond KEEP_IDLE go.
    let mut idle: Vec<u64> = all
        .iter()
        .filter(|e| Arc::strong_count(&e.memo) == 1)
        .map(|e| e.used)
        .collect();
    if idle.len() > KEEP_IDLE {
        idle.sort_unstable();
        let cut = idle[idle.len() - KEEP_IDLE];
        all.retain(|e| Arc::strong_count(&e.memo) > 1 || e.used >= cut);
    }
    view.thread_memo = Some(memo.clone());
    memo
}

/// Where each ID first appears in `all` (messages in UID order).
fn rank(all: &[Arc<Keys>]) -> Rank<'_> {
    let mut rank = Rank::new();
    for k in all {
        for id in k.message_id.iter().chain(&k.references) {
            let n = rank.len() as u32;
            rank.entry(id.as_slice()).or_insert(n);
        }
    }
    rank
}

/// What THREAD reads of one message. The date: the sent date, else (missing, unparsable or
/// the epoch itself, as Dovecot has it) the INTERNALDATE, `internal`.
fn keys(internal: i64, doc: &SearchDoc) -> Keys {
    let [id, refs, reply_to, subj, date] =
        doc.first_fields(["Message-ID", "References", "In-Reply-To", "Subject", "Date"]);
    let mut references = refs.as_deref().map(msgid::all).unwrap_or_default();
    if references.is_empty() {
        references.extend(reply_to.as_deref().and_then(msgid::first));
    }
    let date = sortkey::sent_time(date.as_deref())
        .filter(|&t| t != 0)
        .unwrap_or(internal);
    Keys::new(date, id.as_deref().and_then(msgid::first), references, subj)
}
