//! LIST (RFC 3501 §6.3.8) with LIST-EXTENDED (RFC 5258: SUBSCRIBED / REMOTE / RECURSIVEMATCH
//! selection, SUBSCRIBED / CHILDREN return options, several patterns), LIST-STATUS (RFC 5819)
//! and SPECIAL-USE (RFC 6154 §5.1: attributes, selection and return option).
//!
//! Owns: which names a LIST returns and with which attributes. Never: creates or changes
//! mailboxes or subscriptions.

use super::mailbox::{join_reference, list_match, SEP};
use super::special_use;
use super::{HandlerError, Session};
use crate::imap::types::ListOptions;
use std::collections::{BTreeMap, HashSet};

/// What LIST knows about one name.
#[derive(Default)]
struct Node {
    exists: bool,
    has_children: bool,
    subscribed: bool,
    /// A strict descendant is subscribed (for RECURSIVEMATCH's CHILDINFO).
    subscribed_child: bool,
}

/// The names LIST considers, in the order they are listed: every mailbox (and hierarchy
/// level) of the store, then names only known through a subscription.
type Names = (BTreeMap<String, Node>, Vec<String>);

impl Session {
    pub(super) fn list(
        &mut self,
        out: &mut Vec<u8>,
        reference: &str,
        patterns: &[String],
        options: &ListOptions,
    ) -> Result<(), HandlerError> {
        // RFC 3501 §6.3.8: an empty pattern asks for the separator and root.
        if patterns.len() == 1 && patterns.first().is_some_and(|p| p.is_empty()) {
            out.extend_from_slice(b"* LIST (\\Noselect) \".\" \"\"\r\n");
            return Ok(());
        }
        let want_subs = options.subscribed || options.return_subscribed;
        let (nodes, order) = self.list_names(want_subs)?;
        let matches = |name: &str| {
            patterns
                .iter()
                .any(|p| list_match(&join_reference(reference, p), name))
        };
        let unreached = if options.recursive_match {
            parents_of_unmatched_subscriptions(&nodes, &matches)
        } else {
            HashSet::new()
        };
        for name in order {
            let Some(n) = nodes.get(&name) else { continue };
            if !matches(&name) {
                continue;
            }
            let special = if n.exists {
                special_use::attribute(&name)
            } else {
                None
            };
            let reach = unreached.contains(name.as_str());
            let Some(childinfo) = selected(n, options, special, reach) else {
                continue;
            };
            let mut attrs = attributes(n, options, want_subs);
            attrs.extend(special);
            out.extend_from_slice(format!("* LIST ({}) \".\" ", attrs.join(" ")).as_bytes());
            self.put_name(out, &name, true);
            if childinfo {
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            // RFC 5819 §2: a STATUS for each selectable mailbox listed; failures are skipped.
            if let (Some(items), true) = (&options.return_status, n.exists) {
                match self.status_items(&name, items) {
                    Ok(s) => {
                        out.extend_from_slice(b"* STATUS ");
                        self.put_name(out, &name, false);
                        out.extend_from_slice(format!(" ({s})\r\n").as_bytes());
                    }
                    Err(HandlerError::Bad(e)) => return Err(HandlerError::Bad(e)),
                    Err(HandlerError::No(_)) => {}
                }
            }
        }
        Ok(())
    }

    /// The store's mailboxes and, with `want_subs`, the subscriptions: each subscribed name
    /// and the parents of one (for CHILDINFO) are marked, and added when not in the store.
    fn list_names(&self, want_subs: bool) -> Result<Names, HandlerError> {
        let store = self.store()?;
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for e in store.list()? {
            order.push(e.name.clone());
            nodes.insert(
                e.name,
                Node {
                    exists: !e.nonexistent,
                    has_children: e.has_children,
                    ..Node::default()
                },
            );
        }
        if want_subs {
            for name in store.subscriptions()? {
                // Every ancestor learns it has a subscribed child (RFC 5258 §3.5 CHILDINFO).
                for (i, c) in name.char_indices() {
                    if c == SEP {
                        let parent = name.get(..i).unwrap_or_default().to_string();
                        if !nodes.contains_key(&parent) {
                            order.push(parent.clone());
                        }
                        nodes.entry(parent).or_default().subscribed_child = true;
                    }
                }
                if !nodes.contains_key(&name) {
                    order.push(name.clone());
                }
                nodes.entry(name).or_default().subscribed = true;
            }
        }
        Ok((nodes, order))
    }
}

/// The names with a subscribed descendant that no pattern matches (so it is not listed
/// itself): RECURSIVEMATCH lists them (RFC 5258 §3.5).
fn parents_of_unmatched_subscriptions<'a>(
    nodes: &'a BTreeMap<String, Node>,
    matches: &dyn Fn(&str) -> bool,
) -> HashSet<&'a str> {
    let mut out = HashSet::new();
    for (name, _) in nodes.iter().filter(|(k, n)| n.subscribed && !matches(k)) {
        for (i, c) in name.char_indices() {
            if c == SEP {
                out.extend(name.get(..i));
            }
        }
    }
    out
}

/// Whether the selection options list the matching name `n` (with its SPECIAL-USE attribute
/// `special`; `reach`: RECURSIVEMATCH was given and a subscribed descendant of it matches no
/// pattern); `Some(true)`: listed with CHILDINFO, `None`: not listed.
fn selected(n: &Node, options: &ListOptions, special: Option<&str>, reach: bool) -> Option<bool> {
    let mut childinfo = false;
    if options.subscribed {
        // RFC 5258 §3.5 and the examples of §5: SUBSCRIBED selects subscribed names,
        // existing or not; RECURSIVEMATCH adds the matching parents of subscribed names the
        // patterns do not reach (`foo2` for `*2` and `foo2.bar1`, not `baz2` whose subscribed
        // children all match), and marks every listed name with a subscribed descendant
        // with CHILDINFO (Dovecot too, also when that descendant is listed).
        childinfo = options.recursive_match && n.subscribed_child;
        if !n.subscribed && !reach {
            return None;
        }
    } else if options.special_use {
        // RFC 6154 §5.1: only names with a special-use attribute.
        special?;
    } else if !n.exists && !n.has_children {
        // Only known through a subscription: not part of a plain LIST. A parent that exists
        // only through its children is listed (`\Noselect`), as Dovecot does: clients draw
        // the folder tree from `LIST "" *`.
        return None;
    }
    Some(childinfo)
}

/// The name attributes of a listed name, SPECIAL-USE ones aside.
fn attributes(n: &Node, options: &ListOptions, want_subs: bool) -> Vec<&'static str> {
    let mut attrs: Vec<&str> = Vec::new();
    if !n.exists {
        // RFC 5258 §3.4: \NonExistent implies \Noselect; a LIST without selection or return
        // options keeps the RFC 3501 \Noselect for parents that only exist as a hierarchy
        // level (Dovecot answers the same).
        attrs.push(if options.extended || !n.has_children {
            "\\NonExistent"
        } else {
            "\\Noselect"
        });
    }
    attrs.push(if n.has_children {
        "\\HasChildren"
    } else {
        "\\HasNoChildren"
    });
    if want_subs && n.subscribed {
        attrs.push("\\Subscribed");
    }
    attrs
}
