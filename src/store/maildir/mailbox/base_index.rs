//! The index from a message file's base name to its UID, for applying inotify events by name
//! ([`super::events`]). It holds a 64-bit hash of each base name, not the name, so it costs
//! 12 bytes a message; it is complete (every message of the state is in it, kept so by each
//! insert and removal), which lets a miss mean "no such message" without a look at the
//! other messages. That matters on every EXPUNGE this process makes: the unlink's own event
//! arrives for a base name the state has already dropped, and a fallback scan of every
//! message's name made each single-message EXPUNGE cost O(messages).
//!
//! Two base names with one hash (not expected, but names come from other writers too) mark
//! the hash [`AMBIGUOUS`]: lookups of it answer [`Lookup::Ambiguous`], and only those compare
//! names one by one.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// The value of a hash that more than one base name had since the index was built (UID 0
/// is never a message's, RFC 3501 §2.3.1.1). It stays so until the next rebuild.
const AMBIGUOUS: u32 = 0;

/// What the index says of a base name.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// No message of the state has a base name with this hash.
    Absent,
    /// The only message whose base name has this hash; the caller checks it is this name.
    Uid(u32),
    /// Several base names had this hash: compare names.
    Ambiguous,
}

/// Base name hash → UID ([`AMBIGUOUS`] when several names shared the hash).
#[derive(Debug, Default)]
pub(super) struct BaseIndex {
    by_hash: HashMap<u64, u32>,
}

impl BaseIndex {
    /// The index of these (base name, UID) pairs.
    pub(super) fn build<'a>(pairs: impl Iterator<Item = (&'a str, u32)>) -> BaseIndex {
        let mut ix = BaseIndex::default();
        for (base, uid) in pairs {
            ix.insert(base, uid);
        }
        ix
    }

    /// A message with base name `base` joined the state.
    pub(super) fn insert(&mut self, base: &str, uid: u32) {
        self.by_hash
            .entry(base_hash(base))
            .and_modify(|u| {
                if *u != uid {
                    *u = AMBIGUOUS;
                }
            })
            .or_insert(uid);
    }

    /// The message `uid` with base name `base` left the state. An ambiguous hash stays so:
    /// another name with it may still be there.
    pub(super) fn remove(&mut self, base: &str, uid: u32) {
        let h = base_hash(base);
        if self.by_hash.get(&h) == Some(&uid) {
            self.by_hash.remove(&h);
        }
    }

    pub(super) fn get(&self, base: &str) -> Lookup {
        match self.by_hash.get(&base_hash(base)) {
            None => Lookup::Absent,
            Some(&AMBIGUOUS) => Lookup::Ambiguous,
            Some(&u) => Lookup::Uid(u),
        }
    }
}

/// The key of the index.
fn base_hash(base: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    base.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_name_is_absent_and_others_stay() {
        let mut ix = BaseIndex::build([("a", 1), ("b", 2)].into_iter());
        assert_eq!(ix.get("a"), Lookup::Uid(1));
        ix.remove("a", 1);
        assert_eq!(ix.get("a"), Lookup::Absent);
        assert_eq!(ix.get("b"), Lookup::Uid(2));
        assert_eq!(ix.get("c"), Lookup::Absent);
        ix.insert("c", 3);
        assert_eq!(ix.get("c"), Lookup::Uid(3));
    }

    /// A collision is forced by inserting two UIDs under one name's hash: the hash turns
    /// ambiguous, and removing either UID leaves it ambiguous (the other may be there).
    #[test]
    fn a_shared_hash_is_ambiguous_until_rebuilt() {
        let mut ix = BaseIndex::default();
        ix.insert("x", 4);
        ix.insert("x", 4); // the same message again: not a collision
        assert_eq!(ix.get("x"), Lookup::Uid(4));
        ix.insert("x", 9);
        assert_eq!(ix.get("x"), Lookup::Ambiguous);
        ix.remove("x", 4);
        ix.remove("x", 9);
        assert_eq!(ix.get("x"), Lookup::Ambiguous);
    }
}
