//! THREAD (RFC 5256 §2): ORDEREDSUBJECT, REFERENCES, and Dovecot's REFS, computed the way
//! Dovecot 2.3 computes them (`index-thread-links.c`, `index-thread-finish.c`,
//! `imap-thread.c`), so pimap answers as the server it replaces:
//!
//! - Linking (§2.1 step 1): messages in UID order; each one's References IDs (or, when it
//!   has no valid one, the first In-Reply-To ID) are linked parent → child pairwise, a link
//!   never replacing an existing parent nor making a loop; then the message is made the child
//!   of its last reference, dropping a conflicting parent it had from other messages. A
//!   duplicate or missing Message-ID gets a node of its own.
//! - Dummies (§2.1 steps 2, 3): a message hangs under its nearest real ancestor, or the
//!   topmost dummy when it has none; a root dummy with one child is replaced by it.
//! - Subjects (§2.1 steps 4, 5): roots sorted by date, gathered by base subject
//!   ([`super::subject`]) and merged as the RFC says, by Dovecot's table walk.
//! - Sorting: siblings and roots by sent date then UID (Dovecot sorts by UID, the RFC by
//!   sequence number: the same order).
//! - REFS: REFERENCES without the subject steps, a root dummy kept whatever its children, and
//!   threads ordered by their newest message; dummy roots of equal date by where their IDs
//!   first appear in the mailbox ([`Rank`]; Dovecot's string index, which keeps the order of
//!   messages expunged since, so after expunges the two can differ on such ties).
//! - Output: Dovecot writes `* THREAD ` (with the space) when there is nothing to thread, and
//!   an ORDEREDSUBJECT thread of two as `(1 2)` and a longer one as `(1 (2)(3))`: the
//!   first message the parent of the others either way (RFC 5256 §4 `thread-list`).
//!
//! No recursion (a 100,000-deep reference chain is fine) and bounded work: ancestor walks,
//! the only part that is not linear, share [`WALK_BUDGET`]; once it is spent a link whose
//! check would need a walk is not made (Dovecot has no such bound; only input built to be
//! quadratic gets there).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Ancestor-walk steps one THREAD may take in all, beyond one per reference.
pub const WALK_BUDGET: usize = 20_000_000;

/// One message, as THREAD needs it.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// What is reported: a sequence number or a UID (ascending with the UID).
    pub number: u32,
    /// What it is threaded by (fixed for a UID, so callers may keep it).
    pub keys: Arc<Keys>,
}

/// What THREAD reads of a message.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// The sent date (else INTERNALDATE), seconds since the epoch.
    pub date: i64,
    /// The first valid Message-ID ([`super::msgid::first`]).
    pub message_id: Option<Vec<u8>>,
    /// The References IDs, or the first In-Reply-To ID when there is none.
    pub references: Vec<Vec<u8>>,
    /// The Subject field's value, if there is one.
    pub subject: Option<Vec<u8>>,
    /// Its base subject and whether it was a reply or forward, made on first use (REFS never
    /// uses it, REFERENCES only for thread roots).
    base: OnceLock<Option<(String, bool)>>,
}

impl Keys {
    pub fn new(
        date: i64,
        message_id: Option<Vec<u8>>,
        references: Vec<Vec<u8>>,
        subject: Option<Vec<u8>>,
    ) -> Keys {
        Keys {
            date,
            message_id,
            references,
            subject,
            base: OnceLock::new(),
        }
    }

    /// The base subject ([`super::subject::base_subject`]) and whether the subject was a
    /// reply or forward; `None` without a Subject field.
    pub fn base_subject(&self) -> Option<&(String, bool)> {
        self.base
            .get_or_init(|| self.subject.as_deref().map(super::subject::base_subject))
            .as_ref()
    }
}

/// The algorithms (RFC 5256 §3 `thread-alg`, and Dovecot's REFS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    OrderedSubject,
    References,
    Refs,
}

/// Where each Message-ID first appears in the whole mailbox: messages in UID order, each
/// one's own ID, then its references (Dovecot's string index numbers). REFS orders dummy
/// roots of equal date by it; see [`thread_ranked`].
pub type Rank<'a> = HashMap<&'a [u8], u32>;

/// The `* THREAD` response's data (without `* THREAD `) for `msgs`, in ascending UID order.
pub fn thread(msgs: &[Message], alg: Algorithm) -> String {
    thread_ranked(msgs, alg, None)
}

/// [`thread`], REFS ordering dummy roots of equal date by `rank` (which only matters when
/// `msgs` are not the whole mailbox: else the first appearance among them is the same).
pub fn thread_ranked(msgs: &[Message], alg: Algorithm, rank: Option<&Rank>) -> String {
    match alg {
        Algorithm::OrderedSubject => ordered_subject(msgs),
        Algorithm::References | Algorithm::Refs => {
            let mut t = Tree::link(msgs);
            t.shadows();
            let roots = if alg == Algorithm::Refs {
                t.refs_roots(rank)
            } else {
                t.references_roots()
            };
            t.write(&roots)
        }
    }
}

/// ORDEREDSUBJECT (RFC 5256 §3): messages sorted by base subject, then date, then number;
/// a run of one base subject is a thread (the first message the parent, the others its
/// children); threads ordered by their first message's date, then number.
fn ordered_subject(msgs: &[Message]) -> String {
    fn base(m: &Message) -> &str {
        m.keys.base_subject().map_or("", |s| s.0.as_str())
    }
    let mut order: Vec<&Message> = msgs.iter().collect();
    order.sort_by(|a, b| (base(a), a.keys.date, a.number).cmp(&(base(b), b.keys.date, b.number)));
    let mut threads: Vec<&[&Message]> = order
        .chunk_by(|a, b| base(a) == base(b))
        .collect::<Vec<_>>();
    threads.sort_by_key(|t| (t[0].keys.date, t[0].number));
    let mut out = String::new();
    for t in threads {
        match t {
            [a] => out.push_str(&format!("({})", a.number)),
            [a, b] => out.push_str(&format!("({} {})", a.number, b.number)),
            [a, rest @ ..] => {
                out.push_str(&format!("({} ", a.number));
                for m in rest {
                    out.push_str(&format!("({})", m.number));
                }
                out.push(')');
            }
            [] => {}
        }
    }
    out
}

const NONE: u32 = u32::MAX;

/// A Message-ID's node: a message (`msg`), or a dummy that only messages refer to.
#[derive(Debug, Clone, Copy)]
struct Node {
    msg: u32,
    parent: u32,
    /// Nodes whose parent this is (so a node with none can be no one's ancestor).
    children: u32,
}

impl Node {
    fn new() -> Node {
        Node {
            msg: NONE,
            parent: NONE,
            children: 0,
        }
    }

    fn exists(&self) -> bool {
        self.msg != NONE
    }
}

/// One thread root while they are sorted and merged (Dovecot's `mail_thread_root_node`).
#[derive(Debug, Clone, Copy)]
struct Root {
    /// The node (an index into `Tree::kids`: a new dummy's is past the nodes).
    idx: u32,
    /// Sort key: date and number (of the first child for a dummy; 0 for a REFS dummy).
    date: i64,
    number: u32,
    dummy: bool,
    ignore: bool,
    /// Its subject is a reply or forward.
    reply: bool,
    /// The root whose thread this one joins (same base subject), by position.
    joins: u32,
}

struct Tree<'a> {
    msgs: &'a [Message],
    nodes: Vec<Node>,
    /// Each node's Message-ID (empty for one of its own: no ID, or a duplicate).
    ids: Vec<&'a [u8]>,
    /// The children each node is shown with (real messages only), after [`Tree::shadows`].
    kids: Vec<Vec<u32>>,
    walk: usize,
}

impl<'a> Tree<'a> {
    /// §2.1 step 1, message by message in UID order.
    fn link(msgs: &'a [Message]) -> Tree<'a> {
        let refs: usize = msgs.iter().map(|m| m.keys.references.len()).sum();
        let mut t = Tree {
            msgs,
            nodes: Vec::with_capacity(msgs.len() + refs),
            ids: Vec::with_capacity(msgs.len() + refs),
            kids: Vec::new(),
            walk: WALK_BUDGET.saturating_add(refs),
        };
        let mut ids: HashMap<&'a [u8], u32> = HashMap::with_capacity(msgs.len() + refs);
        for (i, m) in msgs.iter().enumerate() {
            let own = match &m.keys.message_id {
                Some(id) => t.node_of(&mut ids, id),
                None => t.new_node(),
            };
            let own = if t.nodes[own as usize].exists() {
                // A duplicate Message-ID: the first message keeps it.
                t.new_node()
            } else {
                own
            };
            t.nodes[own as usize].msg = i as u32;
            let mut last = NONE;
            for r in &m.keys.references {
                let n = t.node_of(&mut ids, r);
                if last != NONE {
                    t.link_pair(last, n);
                }
                last = n;
            }
            let p = t.nodes[own as usize].parent;
            if p != NONE && p != last {
                // The message's own references win over what others said of it.
                t.nodes[own as usize].parent = NONE;
                t.nodes[p as usize].children -= 1;
            }
            if last != NONE {
                t.link_pair(last, own);
            }
        }
        t
    }

    fn new_node(&mut self) -> u32 {
        self.nodes.push(Node::new());
        self.ids.push(&[]);
        (self.nodes.len() - 1) as u32
    }

    fn node_of(&mut self, ids: &mut HashMap<&'a [u8], u32>, id: &'a [u8]) -> u32 {
        if let Some(&n) = ids.get(id) {
            return n;
        }
        let n = self.new_node();
        self.ids[n as usize] = id;
        ids.insert(id, n);
        n
    }

    /// Make `child` a child of `parent`, unless it has a parent already or is an ancestor of
    /// `parent` (a loop).
    fn link_pair(&mut self, parent: u32, child: u32) {
        if self.is_ancestor(child, parent) || self.nodes[child as usize].parent != NONE {
            return;
        }
        self.nodes[child as usize].parent = parent;
        self.nodes[parent as usize].children += 1;
    }

    /// `a` is `n` or one of its ancestors (true, too, when the walk budget is spent).
    fn is_ancestor(&mut self, a: u32, mut n: u32) -> bool {
        if a == n {
            return true;
        }
        if self.nodes[a as usize].children == 0 {
            return false;
        }
        while n != NONE {
            if n == a {
                return true;
            }
            if self.walk == 0 {
                return true;
            }
            self.walk -= 1;
            n = self.nodes[n as usize].parent;
        }
        false
    }

    /// §2.1 steps 2 and 3: every message under its nearest real ancestor, or under the
    /// topmost dummy when it has none (`kids`). Each dummy's answer is found once.
    fn shadows(&mut self) {
        let n = self.nodes.len();
        self.kids = vec![Vec::new(); n];
        let mut above = vec![NONE; n];
        let mut path = Vec::new();
        for i in 0..n {
            let node = self.nodes[i];
            if !node.exists() || node.parent == NONE {
                continue;
            }
            let mut p = node.parent;
            while !self.nodes[p as usize].exists()
                && self.nodes[p as usize].parent != NONE
                && above[p as usize] == NONE
            {
                path.push(p);
                p = self.nodes[p as usize].parent;
            }
            if !self.nodes[p as usize].exists() && above[p as usize] != NONE {
                p = above[p as usize];
            }
            for d in path.drain(..) {
                above[d as usize] = p;
            }
            self.kids[p as usize].push(i as u32);
        }
    }

    /// The roots in `idx` order: nodes without a parent.
    fn roots(&self) -> Vec<Root> {
        let mut roots = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.parent == NONE {
                roots.push(Root {
                    idx: i as u32,
                    date: 0,
                    number: if n.exists() {
                        self.msg(i as u32).number
                    } else {
                        0
                    },
                    dummy: !n.exists(),
                    ignore: false,
                    reply: false,
                    joins: NONE,
                });
            }
        }
        roots
    }

    fn msg(&self, node: u32) -> &Message {
        &self.msgs[self.nodes[node as usize].msg as usize]
    }

    fn key(&self, node: u32) -> (i64, u32) {
        let m = self.msg(node);
        (m.keys.date, m.number)
    }

    /// `idx`'s children, oldest first.
    fn sorted_kids(&self, idx: u32) -> Vec<u32> {
        let mut v = self.kids[idx as usize].clone();
        if v.len() > 1 {
            v.sort_by_key(|&k| self.key(k));
        }
        v
    }

    /// REFS: threads ordered by their newest message, then the root's number (0 for a
    /// dummy), then (dummies) `rank`, else the order their IDs were first seen.
    fn refs_roots(&self, rank: Option<&Rank>) -> Vec<Root> {
        let mut roots = self.roots();
        let mut stack = Vec::new();
        for r in &mut roots {
            let mut newest = i64::MIN;
            stack.push(r.idx);
            while let Some(n) = stack.pop() {
                if self.nodes[n as usize].exists() {
                    newest = newest.max(self.msg(n).keys.date);
                }
                stack.extend_from_slice(&self.kids[n as usize]);
            }
            r.ignore = newest == i64::MIN;
            r.date = newest;
        }
        let ranked = |r: &Root| match rank {
            Some(rank) if r.dummy => rank.get(self.ids[r.idx as usize]).copied(),
            _ => None,
        };
        roots.sort_by_key(|r| (r.date, r.number, ranked(r)));
        roots
    }

    /// REFERENCES: §2.1 steps 3 (deferred), 4 and 5.
    fn references_roots(&mut self) -> Vec<Root> {
        let mut roots = self.roots();
        self.sort_roots(&mut roots);
        self.gather_subjects(&mut roots);
        if self.merge_subjects(&mut roots) {
            self.sort_roots(&mut roots);
        }
        roots
    }

    /// Date and number for each root (a dummy's from its oldest child; a dummy with one
    /// child is replaced by it, one without is dropped), then sorted.
    fn sort_roots(&self, roots: &mut [Root]) {
        for r in roots.iter_mut().filter(|r| !r.ignore) {
            if !r.dummy {
                (r.date, r.number) = self.key(r.idx);
                continue;
            }
            let kids = self.sorted_kids(r.idx);
            match kids.as_slice() {
                [] => r.ignore = true,
                [only] => {
                    r.idx = *only;
                    r.dummy = false;
                    (r.date, r.number) = self.key(*only);
                }
                [first, ..] => (r.date, r.number) = self.key(*first),
            }
        }
        roots.sort_by_key(|r| (r.date, r.number));
    }

    /// §2.1 step 5 (A, B): the subject table, as Dovecot fills it (`joins` points each root
    /// to the one it merges with).
    fn gather_subjects(&self, roots: &mut [Root]) {
        let mut table: HashMap<&str, u32> = HashMap::new();
        for i in 0..roots.len() {
            let r = roots[i];
            let idx = if !r.dummy {
                r.idx
            } else if let (false, Some(&oldest)) = (r.ignore, self.sorted_kids(r.idx).first()) {
                oldest
            } else {
                continue;
            };
            let Some((base, reply)) = self.msg(idx).keys.base_subject() else {
                continue;
            };
            if base.is_empty() {
                continue;
            }
            match table.get(base.as_str()) {
                None => {
                    table.insert(base, i as u32);
                }
                Some(&h) => {
                    let held = roots[h as usize];
                    if !held.dummy && (r.dummy || (held.reply && !reply)) {
                        roots[h as usize].joins = i as u32;
                        table.insert(base, i as u32);
                    } else {
                        roots[i].joins = h;
                    }
                }
            }
            roots[i].reply = *reply;
        }
    }

    /// §2.1 step 5 (C): merge each root into the thread of its subject; true if any was.
    fn merge_subjects(&mut self, roots: &mut Vec<Root>) -> bool {
        let count = roots.len();
        let mut changed = false;
        for i in 0..count {
            if roots[i].joins != NONE && !roots[i].ignore {
                self.merge(roots, i);
                changed = true;
            }
        }
        changed
    }

    fn merge(&mut self, roots: &mut Vec<Root>, i: usize) {
        let mut top = roots[i].joins as usize;
        let mut steps = 0;
        while roots[top].joins != NONE && steps < roots.len() {
            top = roots[top].joins as usize;
            steps += 1;
        }
        let (cur, held) = (roots[i], roots[top]);
        if top == i || held.ignore {
            return;
        }
        if cur.dummy {
            // Both dummies: the children of both become siblings.
            if held.dummy {
                let moved = std::mem::take(&mut self.kids[cur.idx as usize]);
                self.kids[held.idx as usize].extend(moved);
                roots[i].ignore = true;
            }
        } else if held.dummy || (cur.reply && !held.reply) {
            self.kids[held.idx as usize].push(cur.idx);
            roots[i].ignore = true;
        } else {
            // A new dummy with both as children, in the table's place.
            let idx = self.kids.len() as u32;
            self.kids.push(vec![held.idx, cur.idx]);
            roots[top].joins = roots.len() as u32;
            roots[top].ignore = true;
            roots[i].ignore = true;
            roots.push(Root {
                idx,
                date: 0,
                number: 0,
                dummy: true,
                ignore: false,
                reply: false,
                joins: NONE,
            });
        }
    }

    /// The response data: `(1 2 (3)(4 5))` trees, one per root; a node with one child is
    /// followed by it, with several each child is parenthesised (as Dovecot writes them).
    fn write(&self, roots: &[Root]) -> String {
        let mut out = String::new();
        let mut stack = Vec::new();
        for r in roots.iter().filter(|r| !r.ignore) {
            let has_kids = !self.kids[r.idx as usize].is_empty();
            if r.dummy && !has_kids {
                continue;
            }
            let mut tasks = vec![Task::Text("(")];
            if !r.dummy {
                tasks.push(Task::Num(r.idx));
            }
            if has_kids {
                if !r.dummy {
                    tasks.push(Task::Text(" "));
                }
                tasks.push(Task::Kids(r.idx));
            }
            tasks.push(Task::Text(")"));
            stack.extend(tasks.into_iter().rev());
            while let Some(task) = stack.pop() {
                match task {
                    Task::Text(s) => out.push_str(s),
                    Task::Num(n) => out.push_str(&self.msg(n).number.to_string()),
                    Task::Kids(n) => self.push_kids(n, &mut stack),
                }
            }
        }
        out
    }

    /// Queue the writing of `n`'s children (the stack pops the last pushed first).
    fn push_kids(&self, n: u32, stack: &mut Vec<Task>) {
        let kids = self.sorted_kids(n);
        let mut tasks = Vec::new();
        let single = kids.len() == 1;
        for k in kids {
            if !single {
                tasks.push(Task::Text("("));
            }
            tasks.push(Task::Num(k));
            if !self.kids[k as usize].is_empty() {
                tasks.push(Task::Text(" "));
                tasks.push(Task::Kids(k));
            }
            if !single {
                tasks.push(Task::Text(")"));
            }
        }
        stack.extend(tasks.into_iter().rev());
    }
}

/// A step of [`Tree::write`].
enum Task {
    Text(&'static str),
    Num(u32),
    Kids(u32),
}

#[cfg(test)]
mod tests;
