//! Values derived from a message's cached header fields (SORT's folded subject, sent date,
//! sender...), kept in memory beside a folder's [`MailboxCache`](super::MailboxCache) so that a
//! second SORT of the folder, by this connection or the next (webmail opens one per page),
//! parses no header again.
//!
//! Owns: one map per loaded cache from (kind, base name, file size) to bytes, and a budget
//! shared by the whole process ([`BUDGET`]): once spent, values are computed and not kept,
//! so a Pi serving many big folders holds at most that much. Never: persistent, or a source of
//! truth. A value is used only for the base name *and* size it was derived for (like the
//! cache's records); the caller decides what a kind means.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes of derived values the process keeps, over all folders (about 64 bytes per value
/// plus its length: 10,000 messages sorted by subject take about 1 MiB).
pub const BUDGET: usize = 32 * 1024 * 1024;

/// What the process holds now, counted as [`cost`].
static HELD: AtomicUsize = AtomicUsize::new(0);

/// The memory one kept value is counted as: the map's slot and the shared allocation.
fn cost(v: &[u8]) -> usize {
    64 + v.len()
}

/// (kind, hash of the base name) → (file size, value).
type Values = HashMap<(u8, u64), (u64, Arc<[u8]>)>;

/// The derived values of one folder.
#[derive(Default)]
pub(super) struct Derived {
    /// Keyed by the hash of the base name (random keys: names cannot be made to collide).
    map: Values,
    hasher: RandomState,
    /// Kinds present (bit `k`), so that forgetting a message visits only those.
    kinds: u64,
    held: usize,
}

impl Derived {
    fn key(&self, base: &str) -> u64 {
        self.hasher.hash_one(base)
    }

    pub(super) fn get(&self, kind: u8, base: &str, size: u64) -> Option<Arc<[u8]>> {
        match self.map.get(&(kind, self.key(base))) {
            Some((z, v)) if *z == size => Some(v.clone()),
            _ => None,
        }
    }

    /// Keep `value` unless the process's budget is spent (or `kind` is out of range).
    pub(super) fn keep(&mut self, kind: u8, base: &str, size: u64, value: Arc<[u8]>) {
        if kind >= 64 {
            return;
        }
        let c = cost(&value);
        let held = HELD.fetch_add(c, Ordering::Relaxed);
        if held + c > BUDGET {
            HELD.fetch_sub(c, Ordering::Relaxed);
            return;
        }
        self.held += c;
        self.kinds |= 1 << kind;
        let key = (kind, self.key(base));
        if let Some((_, old)) = self.map.insert(key, (size, value)) {
            self.release(cost(&old));
        }
    }

    /// Drop every value of the message file `base`.
    pub(super) fn forget(&mut self, base: &str) {
        if self.map.is_empty() {
            return;
        }
        let (h, kinds) = (self.key(base), self.kinds);
        for kind in (0..64u8).filter(|k| kinds & (1 << k) != 0) {
            if let Some((_, old)) = self.map.remove(&(kind, h)) {
                self.release(cost(&old));
            }
        }
    }

    fn release(&mut self, c: usize) {
        self.held = self.held.saturating_sub(c);
        HELD.fetch_sub(c, Ordering::Relaxed);
    }
}

impl Drop for Derived {
    fn drop(&mut self) {
        HELD.fetch_sub(self.held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_for_its_size_and_forgotten() {
        let mut d = Derived::default();
        d.keep(3, "1.M1P1.host", 100, Arc::from(&b"subject"[..]));
        d.keep(4, "1.M1P1.host", 100, Arc::from(&b"date"[..]));
        assert_eq!(
            d.get(3, "1.M1P1.host", 100).as_deref(),
            Some(&b"subject"[..])
        );
        assert_eq!(
            d.get(3, "1.M1P1.host", 101),
            None,
            "another file of that name"
        );
        assert_eq!(d.get(3, "2.M1P1.host", 100), None);
        d.forget("1.M1P1.host");
        assert_eq!(d.get(3, "1.M1P1.host", 100), None);
        assert_eq!(d.get(4, "1.M1P1.host", 100), None);
        assert_eq!(d.held, 0);
    }

    #[test]
    fn bounded_by_the_budget_which_a_dropped_folder_returns() {
        let big: Arc<[u8]> = vec![0u8; BUDGET / 4].into();
        let fill = |d: &mut Derived| {
            (0..6)
                .filter(|i| {
                    let base = format!("{i}.M1P1.host");
                    d.keep(0, &base, 1, big.clone());
                    d.get(0, &base, 1).is_some()
                })
                .count()
        };
        let mut d = Derived::default();
        // Other tests hold a little of the budget meanwhile: three or four fit, never six.
        let kept = fill(&mut d);
        assert!((3..=4).contains(&kept), "{kept}");
        drop(d);
        let mut e = Derived::default();
        assert!(fill(&mut e) >= 3, "the dropped folder's share came back");
    }
}
