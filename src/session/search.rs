//! SEARCH and UID SEARCH (RFC 3501 §6.4.4), with `RETURN (MIN MAX ALL COUNT)` answered by
//! `* ESEARCH` (RFC 4731) and `RETURN (SAVE)` / `$` (RFC 5182 SEARCHRES), and the MODSEQ key
//! with its `(MODSEQ n)` / `MODSEQ n` result (RFC 7162 §3.1.5).
//!
//! Flag, size, date and set keys are answered from metadata; header and body keys parse the
//! message (once per message, only when needed).

use super::view::View;
use super::{Action, HandlerError, Output, Session};
use crate::imap::types::{Command, Date, SearchKey, SearchReturn};
use crate::mime::SearchDoc;
use crate::store::cache::{MailboxCache, Window};
use crate::store::{flag, Mailbox, MessageMeta};
use std::cell::{OnceCell, RefCell};
use std::sync::Arc;

impl Session {
    /// SEARCH, or SORT and THREAD (which [`Session::sort`] and [`Session::thread`] answer).
    pub(super) fn search(&mut self, tag: &str, cmd: Command) -> Result<Output, HandlerError> {
        match cmd {
            Command::Sort { .. } => return self.sort(tag, cmd),
            Command::Thread { .. } => return self.thread(tag, cmd),
            _ => {}
        }
        let Command::Search {
            uid,
            charset,
            returns,
            criteria,
        } = cmd
        else {
            return Err(HandlerError::Bad("not a SEARCH".into()));
        };
        self.check_charset(charset.as_deref(), returns.as_deref())?;
        self.check_update_tag(tag, returns.as_deref())?;
        // RFC 9051 §6.4.4 / §7.3.4: IMAP4rev2 answers every SEARCH with ESEARCH (ALL when no
        // RETURN options were given).
        let returns = if self.enabled.rev2 {
            returns.or(Some(Vec::new()))
        } else {
            returns
        };
        let mut out = Vec::new();
        let found = self.matching(uid, &criteria, false, &mut out, |_, _, _| {})?;
        let name = if uid { "UID SEARCH" } else { "SEARCH" };
        let answer = Answer {
            uid,
            modseq: has_modseq(&criteria),
            word: "SEARCH",
        };
        let update = returns
            .as_ref()
            .is_some_and(|r| r.contains(&SearchReturn::Update));
        let answer_at = out.len();
        self.answer(tag, &answer, returns, &found, &mut out)?;
        if update {
            let uids = found.iter().map(|h| h.uid).collect();
            let u = super::context::Update::search(tag, uid, criteria, uids);
            self.start_update(u, &mut out, answer_at)?;
        }
        out.extend_from_slice(format!("{tag} OK {name} completed.\r\n").as_bytes());
        Ok(Output {
            bytes: out,
            action: Action::Continue,
        })
    }

    /// `NO [BADCHARSET]` unless `charset` is one pimap searches in (RFC 3501 §6.4.4).
    pub(super) fn check_charset(
        &mut self,
        charset: Option<&str>,
        returns: Option<&[SearchReturn]>,
    ) -> Result<(), HandlerError> {
        let Some(cs) = charset else {
            return Ok(());
        };
        if cs.eq_ignore_ascii_case("UTF-8") || cs.eq_ignore_ascii_case("US-ASCII") {
            return Ok(());
        }
        // RFC 5182 §2.1: a failed SEARCH ... RETURN (SAVE) leaves `$` empty.
        if returns.is_some_and(|r| r.contains(&SearchReturn::Save)) {
            if let Ok(view) = self.view_mut() {
                view.saved.clear();
            }
        }
        Err(HandlerError::No(
            "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset.".into(),
        ))
    }

    /// The untagged answer to a SEARCH or SORT whose result is `found` (in the order to
    /// report): `* ESEARCH` for `RETURN (...)` (RFC 4731, RFC 5267 §3.2: MIN and MAX are
    /// then the first and last in that order), saving `$` for SAVE (RFC 5182), else
    /// `* SEARCH` / `* SORT` with the numbers.
    pub(super) fn answer(
        &mut self,
        tag: &str,
        a: &Answer,
        returns: Option<Vec<SearchReturn>>,
        found: &[Hit],
        out: &mut Vec<u8>,
    ) -> Result<(), HandlerError> {
        let hits: Vec<u32> = found.iter().map(|h| h.number(a.uid)).collect();
        let top_modseq = found.iter().map(|h| h.modseq).max().unwrap_or(0);
        let Some(returns) = returns else {
            out.extend_from_slice(format!("* {}", a.word).as_bytes());
            for h in &hits {
                out.extend_from_slice(format!(" {h}").as_bytes());
            }
            if a.modseq && !hits.is_empty() {
                // RFC 7162 §3.1.5: `* SEARCH 2 5 (MODSEQ 917162500)`.
                out.extend_from_slice(format!(" (MODSEQ {top_modseq})").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            return Ok(());
        };
        // RFC 4731 §3.1: `RETURN ()` means `RETURN (ALL)`; so does `RETURN (CONTEXT)`, a mere
        // hint (RFC 5267 §4.1). UPDATE alone returns no result now, as Dovecot answers.
        let mut returns = returns;
        returns.retain(|r| *r != SearchReturn::Context);
        if returns.is_empty() {
            returns.push(SearchReturn::All);
        }
        if returns.contains(&SearchReturn::Save) {
            let hit_uids: Vec<u32> = found.iter().map(|h| h.uid).collect();
            let mut saved = saved_result(&returns, &hit_uids);
            saved.sort_unstable();
            self.view_mut()?.saved = saved;
        }
        let mut line = esearch(tag, a.uid, &returns, &hits);
        if a.modseq && !hits.is_empty() {
            let modseqs: Vec<u64> = found.iter().map(|h| h.modseq).collect();
            append_modseq(&mut line, returned_modseq(&returns, &modseqs));
        }
        out.extend_from_slice(&line);
        Ok(())
    }
}

/// How to word an [`Session::answer`].
pub(super) struct Answer {
    /// Numbers are UIDs.
    pub uid: bool,
    /// The criteria had a MODSEQ key: the highest mod-sequence is reported.
    pub modseq: bool,
    /// `SEARCH` or `SORT`.
    pub word: &'static str,
}

/// A message that matched the criteria.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub seq: u32,
    pub uid: u32,
    pub modseq: u64,
}

impl Hit {
    /// The number a UID command (`uid`) or a plain one reports.
    pub fn number(&self, uid: bool) -> u32 {
        if uid {
            self.uid
        } else {
            self.seq
        }
    }
}

impl Session {
    /// The messages of the selected mailbox matching `criteria`, in ascending order, after
    /// syncing the view (its untagged responses go to `out`). A MODSEQ key enables CONDSTORE
    /// (RFC 7162 §3.1). `each` is called for every hit with its metadata and, when `header`
    /// is set, its header fields (from the cache when it has them) or `None` if there are no
    /// such fields to read; SORT takes its keys from there in the same pass.
    pub(super) fn matching(
        &mut self,
        uid: bool,
        criteria: &SearchKey,
        header: bool,
        out: &mut Vec<u8>,
        mut each: impl FnMut(&Hit, &MessageMeta, Option<&SearchDoc>),
    ) -> Result<Vec<Hit>, HandlerError> {
        self.matching_fields(uid, criteria, header, out, |hit, meta, f| {
            let doc = if header { f.doc() } else { None };
            // A message whose file went away while it was read is not reported.
            if f.unreadable() {
                return false;
            }
            each(hit, meta, doc);
            true
        })
    }

    /// [`matching`](Self::matching), with `each` given the hit's [`Fields`] to read as it
    /// needs (`header`: it will read header fields) and deciding whether the hit counts.
    pub(super) fn matching_fields(
        &mut self,
        uid: bool,
        criteria: &SearchKey,
        header: bool,
        out: &mut Vec<u8>,
        each: impl FnMut(&Hit, &MessageMeta, &Fields) -> bool,
    ) -> Result<Vec<Hit>, HandlerError> {
        if has_modseq(criteria) {
            // RFC 7162 §3.1: the MODSEQ search key is CONDSTORE-enabling.
            self.enable_condstore(out);
        }
        let view = self.view_mut()?;
        view.sync(out, uid)?;
        let all: Vec<usize> = (0..view.msgs.len()).collect();
        scan(view, criteria, header, &all, &mut Vec::new(), each)
    }
}

/// The messages at view indices `indices` (ascending) that match `criteria`, `each` deciding
/// as in [`Session::matching_fields`]: the whole view for SEARCH, the changed messages for
/// an updating search (`super::context`). The UIDs of messages that could not be read to
/// decide go to `unread`.
pub(super) fn scan(
    view: &View,
    criteria: &SearchKey,
    header: bool,
    indices: &[usize],
    unread: &mut Vec<u32>,
    mut each: impl FnMut(&Hit, &MessageMeta, &Fields) -> bool,
) -> Result<Vec<Hit>, HandlerError> {
    let needs_doc = header || needs_content(criteria);
    // Header keys only: the cached header block answers them (see `store::cache`).
    let cache = (needs_doc && !needs_body(criteria)).then(|| view.shared.cache());
    let shared = view.shared.clone();
    if has_modseq(criteria) || view.condstore {
        shared.lock().modseqs()?;
    }
    let mut hits = Vec::new();
    let window = RefCell::new(Window::default());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for &i in indices {
        let Some(m) = view.msgs.get(i) else {
            continue;
        };
        // Locked for one message at a time: other sessions of the mailbox go on between.
        let st = shared.lock();
        let Some(meta) = st.mbox.meta(m.uid) else {
            continue;
        };
        let load = || doc_of(&st.mbox, cache.as_deref(), m.uid, &window);
        let doc = LazyDoc::new(&load);
        // One `stat` for all the SAVED* keys of the message.
        let saved = OnceCell::new();
        let save_date = || *saved.get_or_init(|| st.mbox.save_date(m.uid).ok());
        let ctx = Ctx {
            view,
            seq: i as u32 + 1,
            meta,
            recent: m.recent,
            doc: &doc,
            modseq: st.last_modseqs().get(m.uid),
            now,
            save_date: &save_date,
        };
        let matched = eval(criteria, &ctx);
        if doc.unreadable() {
            unread.push(m.uid);
        }
        if !matched || doc.unreadable() {
            continue;
        }
        let hit = Hit {
            seq: ctx.seq,
            uid: m.uid,
            modseq: ctx.modseq,
        };
        let fields = Fields {
            doc: &doc,
            cache: cache.as_deref(),
            mbox: &st.mbox,
            uid: m.uid,
            window: &window,
            head: OnceCell::new(),
        };
        if each(&hit, meta, &fields) {
            hits.push(hit);
        }
    }
    if let Some(c) = &cache {
        c.flush();
    }
    Ok(hits)
}

impl Session {
    /// The header fields of each message of `uids` (selected mailbox), from the cache when it
    /// has them, else the header block alone (the cache is not filled), for what a
    /// [`Session::matching`] pass without header did not read:
    /// `each(uid, meta, doc)`; a message gone or that cannot be read is skipped.
    pub(super) fn with_headers(
        &mut self,
        uids: &[u32],
        mut each: impl FnMut(u32, &MessageMeta, &SearchDoc),
    ) -> Result<(), HandlerError> {
        let shared = self.view_mut()?.shared.clone();
        let cache = shared.cache();
        let window = RefCell::new(Window::default());
        for &uid in uids {
            let st = shared.lock();
            let Some(meta) = st.mbox.meta(uid) else {
                continue;
            };
            if let Some(doc) = head_doc(&st.mbox, Some(&cache), uid, &window) {
                each(uid, meta, &doc);
            }
        }
        cache.flush();
        Ok(())
    }
}

/// What `RETURN (SAVE ...)` stores as `$` (RFC 5182 §2.4): with MIN and/or MAX but neither
/// ALL nor COUNT only those messages, otherwise the whole result. UIDs, so that later
/// expunges cannot shift it.
pub(super) fn saved_result(returns: &[SearchReturn], hit_uids: &[u32]) -> Vec<u32> {
    let has = |r| returns.contains(&r);
    if (has(SearchReturn::Min) || has(SearchReturn::Max))
        && !has(SearchReturn::All)
        && !has(SearchReturn::Count)
    {
        let mut v = Vec::new();
        if has(SearchReturn::Min) {
            v.extend(hit_uids.first());
        }
        if has(SearchReturn::Max) {
            v.extend(hit_uids.last());
        }
        v.dedup();
        return v;
    }
    hit_uids.to_vec()
}

/// `MODSEQ n` after the other results of an ESEARCH line (RFC 7162 §3.1.5); nothing when
/// there is no line (SAVE alone).
fn append_modseq(line: &mut Vec<u8>, modseq: u64) {
    if line.ends_with(b"\r\n") {
        line.truncate(line.len() - 2);
        line.extend_from_slice(format!(" MODSEQ {modseq}\r\n").as_bytes());
    }
}

/// The `MODSEQ` of an ESEARCH response (RFC 7162 §3.1.5, `modseqs` in the order of the
/// matches): the highest mod-sequence of the messages it returns. With MIN and/or MAX but
/// neither ALL nor COUNT those are only the first and/or last match, as Dovecot answers.
fn returned_modseq(returns: &[SearchReturn], modseqs: &[u64]) -> u64 {
    let has = |r| returns.contains(&r);
    if (has(SearchReturn::Min) || has(SearchReturn::Max))
        && !has(SearchReturn::All)
        && !has(SearchReturn::Count)
    {
        let min = modseqs.first().filter(|_| has(SearchReturn::Min));
        let max = modseqs.last().filter(|_| has(SearchReturn::Max));
        return min.into_iter().chain(max).max().copied().unwrap_or(0);
    }
    modseqs.iter().max().copied().unwrap_or(0)
}

/// The `* ESEARCH (TAG "t") [UID] ...` response (RFC 4731 §3.1); nothing when SAVE is the
/// only option (RFC 5182 §2.4). MIN, MAX and ALL are omitted when nothing matched.
pub(super) fn esearch(tag: &str, uid: bool, returns: &[SearchReturn], hits: &[u32]) -> Vec<u8> {
    if returns.iter().all(|r| *r == SearchReturn::Save) {
        return Vec::new();
    }
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    let has = |r| returns.contains(&r);
    if let (true, Some(min)) = (has(SearchReturn::Min), hits.first()) {
        line.push_str(&format!(" MIN {min}"));
    }
    if let (true, Some(max)) = (has(SearchReturn::Max), hits.last()) {
        line.push_str(&format!(" MAX {max}"));
    }
    if has(SearchReturn::All) && !hits.is_empty() {
        line.push_str(&format!(" ALL {}", compress_set(hits)));
    }
    if let Some((lo, hi)) = partial(returns) {
        line.push_str(&format!(
            " PARTIAL ({lo}:{hi} {})",
            partial_set(hits, lo, hi)
        ));
    }
    if has(SearchReturn::Count) {
        line.push_str(&format!(" COUNT {}", hits.len()));
    }
    line.push_str("\r\n");
    line.into_bytes()
}

/// The range of a `RETURN (PARTIAL lo:hi)`.
fn partial(returns: &[SearchReturn]) -> Option<(u32, u32)> {
    returns.iter().find_map(|r| match r {
        SearchReturn::Partial(lo, hi) => Some((*lo, *hi)),
        _ => None,
    })
}

/// The results at positions `lo..=hi` (1-based) as a set, `NIL` when there are none
/// (RFC 5267 §4.4).
fn partial_set(hits: &[u32], lo: u32, hi: u32) -> String {
    let from = (lo as usize).saturating_sub(1);
    let to = (hi as usize).min(hits.len());
    match hits.get(from..to).filter(|p| !p.is_empty()) {
        Some(part) => compress_set(part),
        None => "NIL".into(),
    }
}

/// Ascending numbers as an IMAP sequence set with ranges: `1:3,7,9:10`.
pub(super) fn compress_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = nums.get(i) {
        let mut end = start;
        while nums.get(i + 1) == Some(&end.wrapping_add(1)) && end != u32::MAX {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

struct Ctx<'a> {
    view: &'a View,
    seq: u32,
    meta: &'a MessageMeta,
    recent: bool,
    doc: &'a LazyDoc<'a>,
    modseq: u64,
    /// When the command started (Unix seconds): OLDER and YOUNGER count back from it.
    now: i64,
    /// RFC 8514 save date, looked up (a `stat`) when a key asks.
    save_date: &'a dyn Fn() -> Option<i64>,
}

/// The header fields of one matching message, for SORT and THREAD to read their keys from.
pub(super) struct Fields<'a> {
    doc: &'a LazyDoc<'a>,
    /// Set when the header fields come from the metadata cache, which then also keeps
    /// [`derived`](Self::derived) values.
    cache: Option<&'a MailboxCache>,
    mbox: &'a Mailbox,
    uid: u32,
    window: &'a RefCell<Window>,
    /// The header block alone, read for [`derived`](Self::derived) values when the cache has
    /// none: a first SORT reads headers only, as Dovecot does, instead of parsing every
    /// message whole to fill the cache.
    head: OnceCell<Option<SearchDoc>>,
}

impl Fields<'_> {
    /// The message's header fields (read on first use); `None` if it cannot be read.
    pub(super) fn doc(&self) -> Option<&SearchDoc> {
        self.doc.get()
    }

    /// The message had to be read and could not be (it was expunged meanwhile).
    pub(super) fn unreadable(&self) -> bool {
        self.doc.unreadable() || self.head_unreadable()
    }

    /// The value `derive` makes of the header fields, kept in memory by the metadata cache
    /// under `kind` (one kind per meaning: SORT's folded subject is one), so that the next
    /// SORT of this folder, from any connection, reads and parses no header.
    pub(super) fn derived(
        &self,
        kind: u8,
        derive: impl FnOnce(Option<&SearchDoc>) -> Arc<[u8]>,
    ) -> Arc<[u8]> {
        let key = self
            .cache
            .and_then(|c| Some((c, self.mbox.cache_key(self.uid)?)));
        if let Some((c, (base, size))) = key {
            if let Some(v) = c.derived(kind, base, size) {
                return v;
            }
        }
        let doc = self.header_doc();
        let v = derive(doc);
        if let (Some((c, (base, size))), Some(_)) = (key, doc) {
            c.keep_derived(kind, base, size, v.clone());
        }
        v
    }

    /// The header fields: the document the criteria loaded, else the cached header block,
    /// else the header block read from the message file (the cache is not filled: that
    /// would parse the whole message).
    fn header_doc(&self) -> Option<&SearchDoc> {
        if self.doc.loaded() || self.cache.is_none() {
            return self.doc.get();
        }
        let load = || head_doc(self.mbox, self.cache, self.uid, self.window);
        self.head.get_or_init(load).as_ref()
    }

    /// The message had to be read for a derived value and could not be.
    fn head_unreadable(&self) -> bool {
        matches!(self.head.get(), Some(None))
    }
}

/// The SEARCH document of one message, made when a key first needs it: `SINCE d SUBJECT s`
/// reads no header of a message `SINCE` already ruled out.
struct LazyDoc<'a> {
    cell: OnceCell<Option<SearchDoc>>,
    load: &'a dyn Fn() -> Option<SearchDoc>,
}

impl<'a> LazyDoc<'a> {
    fn new(load: &'a dyn Fn() -> Option<SearchDoc>) -> LazyDoc<'a> {
        LazyDoc {
            cell: OnceCell::new(),
            load,
        }
    }

    fn get(&self) -> Option<&SearchDoc> {
        self.cell.get_or_init(self.load).as_ref()
    }

    /// The document was asked for (it may be `None`).
    fn loaded(&self) -> bool {
        self.cell.get().is_some()
    }

    /// A key needed the document and the message could not be read.
    fn unreadable(&self) -> bool {
        matches!(self.cell.get(), Some(None))
    }
}

/// The header fields of message `uid`: its cached header block, else its header block read
/// from the file. The cache is not filled (that would parse the whole message): SORT's and
/// THREAD's first pass reads headers only, as Dovecot does. `None`: it cannot be read.
fn head_doc(
    mbox: &Mailbox,
    cache: Option<&MailboxCache>,
    uid: u32,
    window: &RefCell<Window>,
) -> Option<SearchDoc> {
    cached_head(mbox, cache, uid, window).or_else(|| {
        let raw = mbox.read_header(uid).ok()?;
        Some(SearchDoc::from_vec(crate::mime::to_crlf(&raw).into_owned()))
    })
}

/// The cached header block of message `uid`, read through `window`, if `cache` has it.
fn cached_head(
    mbox: &Mailbox,
    cache: Option<&MailboxCache>,
    uid: u32,
    window: &RefCell<Window>,
) -> Option<SearchDoc> {
    let mut w = window.borrow_mut();
    cache.and_then(|c| super::fetch_cached::header_doc(c, mbox, uid, &mut w))
}

/// The SEARCH document of message `uid`: its cached header block when `cache` is given (the
/// keys read only header fields) and has one, else the message read whole (then filling the
/// cache). `None` when the message cannot be read.
fn doc_of(
    mbox: &Mailbox,
    cache: Option<&MailboxCache>,
    uid: u32,
    window: &RefCell<Window>,
) -> Option<SearchDoc> {
    if let Some(doc) = cached_head(mbox, cache, uid, window) {
        return Some(doc);
    }
    let raw = mbox.read(uid).ok()?;
    let msg = crate::mime::to_crlf(&raw);
    if let Some(c) = cache {
        super::fetch_cached::fill(c, mbox, uid, &msg);
    }
    Some(SearchDoc::from_vec(msg.into_owned()))
}

pub(super) fn has_modseq(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        ModSeq(_) => true,
        Not(k) => has_modseq(k),
        Or(v) => v.iter().any(has_modseq),
        And(v) => v.iter().any(has_modseq),
        _ => false,
    }
}

fn needs_content(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        Bcc(_) | Body(_) | Cc(_) | From(_) | Header(..) | Subject(_) | Text(_) | To(_)
        | SentBefore(_) | SentOn(_) | SentSince(_) => true,
        Not(k) => needs_content(k),
        Or(v) => v.iter().any(needs_content),
        And(v) => v.iter().any(needs_content),
        _ => false,
    }
}

/// Keys that read the body, not only the header fields.
fn needs_body(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        Body(_) | Text(_) => true,
        Not(k) => needs_body(k),
        Or(v) => v.iter().any(needs_body),
        And(v) => v.iter().any(needs_body),
        _ => false,
    }
}

fn internal_date(meta: &MessageMeta) -> Date {
    day_of(meta.internal_date)
}

/// The day of a time (Unix seconds): RFC 3501 §6.4.4 dates compare disregarding time and
/// timezone; we use UTC.
fn day_of(secs: i64) -> Date {
    let (y, m, d) = crate::imap::types::civil_from_days(secs.div_euclid(86400));
    Date {
        year: y.clamp(0, u16::MAX as i64) as u16,
        month: m as u8,
        day: d as u8,
    }
}

fn eval(k: &SearchKey, c: &Ctx) -> bool {
    use SearchKey::*;
    let sys = c.meta.flags.system;
    let has_kw = |kw: &str| {
        c.meta
            .flags
            .keywords
            .iter()
            .any(|x| x.eq_ignore_ascii_case(kw))
    };
    let hdr = |name: &str, needle: &str| {
        c.doc
            .get()
            .map(|d| d.header_contains(name, needle))
            .unwrap_or(false)
    };
    let addr = |name: &str, needle: &str| {
        c.doc
            .get()
            .is_some_and(|d| d.address_contains(name, needle))
    };
    let sent = || c.doc.get().and_then(|d| d.sent_date());
    match k {
        All => true,
        Answered => sys & flag::ANSWERED != 0,
        Unanswered => sys & flag::ANSWERED == 0,
        Deleted => sys & flag::DELETED != 0,
        Undeleted => sys & flag::DELETED == 0,
        Draft => sys & flag::DRAFT != 0,
        Undraft => sys & flag::DRAFT == 0,
        Flagged => sys & flag::FLAGGED != 0,
        Unflagged => sys & flag::FLAGGED == 0,
        Seen => sys & flag::SEEN != 0,
        Unseen => sys & flag::SEEN == 0,
        Recent => c.recent,
        Old => !c.recent,
        New => c.recent && sys & flag::SEEN == 0,
        Keyword(kw) => has_kw(kw),
        Unkeyword(kw) => !has_kw(kw),
        // RFC 5032 §3, as Dovecot counts: OLDER n is INTERNALDATE ≤ now − n, YOUNGER n is
        // INTERNALDATE ≥ now − n (so a message exactly n seconds old is both).
        Older(n) => c.meta.internal_date <= c.now - i64::from(*n),
        Younger(n) => c.meta.internal_date >= c.now - i64::from(*n),
        Larger(n) => c.meta.size > *n as u64,
        Smaller(n) => c.meta.size < *n as u64,
        Before(d) => internal_date(c.meta) < *d,
        On(d) => internal_date(c.meta) == *d,
        Since(d) => internal_date(c.meta) >= *d,
        SentBefore(d) => sent().map(|s| s < *d).unwrap_or(false),
        SentOn(d) => sent().map(|s| s == *d).unwrap_or(false),
        SentSince(d) => sent().map(|s| s >= *d).unwrap_or(false),
        Bcc(s) => addr("Bcc", s),
        Cc(s) => addr("Cc", s),
        From(s) => addr("From", s),
        To(s) => addr("To", s),
        Subject(s) => hdr("Subject", s),
        Header(name, s) => hdr(name, s),
        Body(s) => c.doc.get().map(|d| d.body_contains(s)).unwrap_or(false),
        Text(s) => c.doc.get().map(|d| d.text_contains(s)).unwrap_or(false),
        Uid(set) => {
            let star = c.view.msgs.last().map(|m| m.uid).unwrap_or(0);
            match set {
                crate::imap::types::SequenceSet::Saved => c.view.saved.contains(&c.meta.uid),
                _ => set.contains(c.meta.uid, star),
            }
        }
        SequenceSet(set) => match set {
            crate::imap::types::SequenceSet::Saved => c.view.saved.contains(&c.meta.uid),
            _ => set.contains(c.seq, c.view.msgs.len() as u32),
        },
        Not(k) => !eval(k, c),
        Or(v) => v.iter().any(|k| eval(k, c)),
        And(v) => v.iter().all(|k| eval(k, c)),
        // RFC 7162 §3.1.5: mod-sequence equal to or greater than the value.
        ModSeq(n) => c.modseq >= *n,
        // RFC 8514 §4.2: as BEFORE / ON / SINCE, on the save date (none matches without one).
        SavedBefore(d) => (c.save_date)().is_some_and(|t| day_of(t) < *d),
        SavedOn(d) => (c.save_date)().is_some_and(|t| day_of(t) == *d),
        SavedSince(d) => (c.save_date)().is_some_and(|t| day_of(t) >= *d),
        // Every message of a Maildir has one (its file's ctime).
        SaveDateSupported => true,
    }
}

#[cfg(test)]
mod esearch_tests {
    use super::*;

    #[test]
    fn compresses_ranges() {
        assert_eq!(compress_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(compress_set(&[5]), "5");
        assert_eq!(compress_set(&[]), "");
        assert_eq!(
            compress_set(&[u32::MAX - 1, u32::MAX]),
            "4294967294:4294967295"
        );
    }

    #[test]
    fn esearch_lines() {
        use SearchReturn::*;
        assert_eq!(
            esearch("A1", false, &[Min, Max, Count], &[2, 4]),
            b"* ESEARCH (TAG \"A1\") MIN 2 MAX 4 COUNT 2\r\n"
        );
        assert_eq!(
            esearch("A1", true, &[All], &[]),
            b"* ESEARCH (TAG \"A1\") UID\r\n"
        );
        assert_eq!(esearch("A1", false, &[Save], &[1]), b"");
        assert_eq!(saved_result(&[Save, Min], &[3, 5, 8]), vec![3]);
        assert_eq!(saved_result(&[Save, Min, Max], &[3, 5, 8]), vec![3, 8]);
        assert_eq!(saved_result(&[Save, Min, Count], &[3, 5, 8]), vec![3, 5, 8]);
    }

    #[test]
    fn modseq_of_the_returned_messages() {
        use SearchReturn::*;
        let m = [4, 9, 6];
        assert_eq!(returned_modseq(&[Min], &m), 4);
        assert_eq!(returned_modseq(&[Max], &m), 6);
        assert_eq!(returned_modseq(&[Min, Max], &m), 6);
        assert_eq!(returned_modseq(&[Save, Min], &m), 4);
        assert_eq!(returned_modseq(&[Min, Count], &m), 9);
        assert_eq!(returned_modseq(&[All], &m), 9);
    }
}
