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

/// The orders a folder's messages were last sorted in, most recently used last.
const ORDERS: usize = 4;

/// One kept order: what it sorts by (the caller's key), the members (UIDs, ascending) and
/// their order.
type Order = (Box<[u8]>, Arc<[u32]>, Arc<[u32]>);

/// The derived values of one folder.
#[derive(Default)]
pub(super) struct Derived {
    /// Keyed by the hash of the base name (random keys: names cannot be made to collide).
    map: Values,
    hasher: RandomState,
    /// Kinds present (bit `k`), so that forgetting a message visits only those.
    kinds: u64,
    orders: Vec<Order>,
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

    /// The order kept under `key` for exactly the messages `members` (UIDs, ascending).
    pub(super) fn order(&mut self, key: &[u8], members: &[u32]) -> Option<Arc<[u32]>> {
        let i = (self.orders.iter()).position(|(k, m, _)| **k == *key && **m == *members)?;
        let o = self.orders.remove(i);
        let order = o.2.clone();
        self.orders.push(o);
        Some(order)
    }

    /// Keep `order`, the sorting of `members` under `key`, in place of the least recently
    /// used one (unless the process's budget is spent).
    pub(super) fn keep_order(&mut self, key: &[u8], members: Vec<u32>, order: Vec<u32>) {
        let c = 64 + key.len() + 4 * (members.len() + order.len());
        let held = HELD.fetch_add(c, Ordering::Relaxed);
        if held + c > BUDGET {
            HELD.fetch_sub(c, Ordering::Relaxed);
            return;
        }
        self.held += c;
        if let Some(i) = self.orders.iter().position(|(k, _, _)| **k == *key) {
            let old = self.orders.remove(i);
            self.release(order_cost(&old));
        } else if self.orders.len() >= ORDERS {
            let old = self.orders.remove(0);
            self.release(order_cost(&old));
        }
        self.orders.push((key.into(), members.into(), order.into()));
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

fn order_cost((key, members, order): &Order) -> usize {
    64 + key.len() + 4 * (members.len() + order.len())
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
    fn an_order_is_kept_for_exactly_its_members_and_key() {
        let mut d = Derived::default();
        d.keep_order(b"date", vec![1, 2, 3], vec![3, 1, 2]);
        assert_eq!(
            d.order(b"date", &[1, 2, 3]).as_deref(),
            Some(&[3, 1, 2][..])
        );
        assert_eq!(d.order(b"date", &[1, 2]), None, "other members");
        assert_eq!(d.order(b"subject", &[1, 2, 3]), None, "another key");
        for k in 0..ORDERS as u8 {
            d.keep_order(&[k], vec![1], vec![1]);
        }
        assert_eq!(
            d.order(b"date", &[1, 2, 3]),
            None,
            "the least recently used went"
        );
        assert_eq!(d.orders.len(), ORDERS);
        d.keep_order(&[0], vec![1, 2], vec![2, 1]);
        assert_eq!(
            d.order(&[0], &[1, 2]).as_deref(),
            Some(&[2, 1][..]),
            "replaced"
        );
        assert_eq!(d.orders.len(), ORDERS);
        let held: usize = d.orders.iter().map(order_cost).sum();
        assert_eq!(d.held, held);
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
