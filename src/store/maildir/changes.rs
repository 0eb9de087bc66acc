//! The change log of an open mailbox: what happened to its messages, in order, so that every
//! session sharing the mailbox ([`super::shared`]) catches up in time proportional to what
//! changed since it last looked, instead of comparing every message.
//!
//! Only two kinds of change need an entry: an expunge (the session must send `EXPUNGE` for a
//! sequence number it knows) and a flag change (it must send `FETCH FLAGS`). New messages need
//! none: UIDs only grow, so a session finds them as the messages above the last UID it knows.
//! The log is bounded: a session that fell further behind than [`MAX_ENTRIES`] changes (or
//! across a UIDVALIDITY change) is told so and compares in full instead.

use crate::store::Flags;
use std::collections::VecDeque;

/// Entries kept; older ones are dropped (as mox overflows a session's queue at 10,000).
pub const MAX_ENTRIES: usize = 10_000;

/// Who made a change: 0 for anything found on disk (another process, or a rescan), otherwise
/// the [`Origin`] of the session that made it, which already told its client.
pub type Origin = u64;

/// One change to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The message's flags changed (read its current flags from the mailbox).
    Flags { uid: u32, origin: Origin },
    /// The message is gone; `flags` are its last flags (RFC 2180 §4.1.2: a session not yet
    /// told may still FETCH it, and Dovecot answers with the UID and FLAGS it had).
    Expunged { uid: u32, flags: Flags },
}

/// A bounded, ordered log of [`Change`]s, addressed by a position that only grows.
#[derive(Debug, Default)]
pub struct ChangeLog {
    /// Position of the first entry kept.
    start: u64,
    entries: VecDeque<Change>,
}

impl ChangeLog {
    /// The position after the newest entry: where a session that has seen everything stands.
    pub fn end(&self) -> u64 {
        self.start + self.entries.len() as u64
    }

    /// The entries from `pos` on, or `None` when some of them were dropped (the reader must
    /// compare in full).
    pub fn since(&self, pos: u64) -> Option<impl Iterator<Item = &Change>> {
        if pos < self.start || pos > self.end() {
            return None;
        }
        Some(self.entries.iter().skip((pos - self.start) as usize))
    }

    pub fn push(&mut self, c: Change) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
            self.start += 1;
        }
        self.entries.push_back(c);
    }

    /// Forget every entry, so that every reader compares in full (a new UIDVALIDITY).
    pub fn reset(&mut self) {
        self.start = self.end() + 1;
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(uid: u32) -> Change {
        Change::Flags { uid, origin: 0 }
    }

    #[test]
    fn readers_get_what_came_after_their_position() {
        let mut l = ChangeLog::default();
        assert_eq!(l.end(), 0);
        l.push(flags(1));
        let mid = l.end();
        l.push(flags(2));
        let got: Vec<&Change> = l.since(mid).into_iter().flatten().collect();
        assert_eq!(got, vec![&flags(2)]);
        assert_eq!(l.since(l.end()).map(|i| i.count()), Some(0));
        assert!(
            l.since(l.end() + 1).is_none(),
            "a position from the future is not trusted"
        );
    }

    #[test]
    fn a_reader_behind_the_dropped_entries_or_a_reset_must_compare_in_full() {
        let mut l = ChangeLog::default();
        for u in 0..(MAX_ENTRIES as u32 + 5) {
            l.push(flags(u));
        }
        assert!(l.since(0).is_none());
        assert!(l.since(4).is_none());
        assert_eq!(l.since(5).map(|i| i.count()), Some(MAX_ENTRIES));
        let end = l.end();
        l.reset();
        assert!(l.since(end).is_none());
        assert_eq!(l.since(l.end()).map(|i| i.count()), Some(0));
    }
}
