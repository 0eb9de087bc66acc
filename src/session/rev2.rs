//! IMAP4rev2 (RFC 9051) once a client sends `ENABLE IMAP4rev2` (§6.3.1): mailbox names are
//! UTF-8 on the wire instead of modified UTF-7 (§5.1, Appendix E item 1); the same for
//! `ENABLE UTF8=ACCEPT` (RFC 6855 §3, whose `APPEND ... UTF8 (~{n})` form the parser accepts).
//!
//! Owns: translating mailbox names between the wire and the store in rev2 mode — names from
//! the client are UTF-8 and become the store's modified UTF-7 before any handler sees them;
//! names in LIST / LSUB / STATUS / SELECT responses go back to UTF-8. The other rev2
//! differences live with their commands: no `\Recent` / `RECENT` and no `[UNSEEN]` (`view`,
//! `mailbox`), ESEARCH for every SEARCH (`search`), STATUS DELETED (`mailbox`), the LIST
//! response in SELECT (`mailbox`). Never: changes anything for a rev1 client.

use super::Session;
use crate::imap::encode;
use crate::imap::types::Command;
use crate::imap::utf7;

/// A store (modified UTF-7) name as the client should see it.
pub(super) fn wire_name(utf8: bool, name: &str) -> String {
    if utf8 {
        utf7::decode(name).unwrap_or_else(|| name.to_string())
    } else {
        name.to_string()
    }
}

/// See [`Session::put_name`].
pub(super) fn put_name(utf8: bool, out: &mut Vec<u8>, name: &str, quoted: bool) {
    let wire = wire_name(utf8, name);
    if utf8 && !wire.is_ascii() {
        encode::utf8_string(out, &wire);
    } else if quoted {
        encode::string(out, wire.as_bytes());
    } else {
        encode::astring(out, wire.as_bytes());
    }
}

impl Session {
    /// Write a store name as an IMAP `mailbox` (`astring`, or always a `string` when
    /// `quoted`): UTF-8 for a rev2 client, modified UTF-7 otherwise.
    pub(super) fn put_name(&self, out: &mut Vec<u8>, name: &str, quoted: bool) {
        put_name(self.enabled.utf8_names(), out, name, quoted)
    }

    /// In rev2 mode, turn the UTF-8 mailbox names (and LIST patterns) of a command into the
    /// store's modified UTF-7; otherwise return the command unchanged.
    pub(super) fn names_from_client(&self, cmd: Command) -> Command {
        if !self.enabled.utf8_names() {
            return cmd;
        }
        let e = |s: String| utf7::encode(&s);
        match cmd {
            Command::Select {
                mailbox,
                condstore,
                qresync,
            } => Command::Select {
                mailbox: e(mailbox),
                condstore,
                qresync,
            },
            Command::Examine {
                mailbox,
                condstore,
                qresync,
            } => Command::Examine {
                mailbox: e(mailbox),
                condstore,
                qresync,
            },
            Command::Create { mailbox } => Command::Create {
                mailbox: e(mailbox),
            },
            Command::Delete { mailbox } => Command::Delete {
                mailbox: e(mailbox),
            },
            Command::Rename { from, to } => Command::Rename {
                from: e(from),
                to: e(to),
            },
            Command::Subscribe { mailbox } => Command::Subscribe {
                mailbox: e(mailbox),
            },
            Command::Unsubscribe { mailbox } => Command::Unsubscribe {
                mailbox: e(mailbox),
            },
            Command::List {
                reference,
                patterns,
                options,
            } => Command::List {
                reference: e(reference),
                patterns: patterns.into_iter().map(e).collect(),
                options,
            },
            Command::Lsub { reference, pattern } => Command::Lsub {
                reference: e(reference),
                pattern: e(pattern),
            },
            Command::Status { mailbox, items } => Command::Status {
                mailbox: e(mailbox),
                items,
            },
            Command::Append { mailbox, messages } => Command::Append {
                mailbox: e(mailbox),
                messages,
            },
            Command::Copy { uid, set, mailbox } => Command::Copy {
                uid,
                set,
                mailbox: e(mailbox),
            },
            Command::Move { uid, set, mailbox } => Command::Move {
                uid,
                set,
                mailbox: e(mailbox),
            },
            Command::GetMetadata {
                mailbox,
                entries,
                max_size,
                depth,
            } => Command::GetMetadata {
                mailbox: e(mailbox),
                entries,
                max_size,
                depth,
            },
            Command::SetMetadata { mailbox, entries } => Command::SetMetadata {
                mailbox: e(mailbox),
                entries,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wire_name;

    #[test]
    fn names_round_trip() {
        assert_eq!(wire_name(true, "Gr&APwA3w-e"), "Grüße");
        assert_eq!(wire_name(true, "A&-B"), "A&B");
        assert_eq!(wire_name(false, "Gr&APw-"), "Gr&APw-");
        // Not valid modified UTF-7 (never written by the store): shown as is.
        assert_eq!(wire_name(true, "bad&"), "bad&");
        assert_eq!(crate::imap::utf7::encode("A&B"), "A&-B");
    }
}

#[cfg(test)]
mod put_name_tests {
    use super::put_name;

    fn put(utf8: bool, name: &str, quoted: bool) -> String {
        let mut out = Vec::new();
        put_name(utf8, &mut out, name, quoted);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn names_on_the_wire() {
        assert_eq!(put(true, "Gr&APwA3w-e", false), "\"Grüße\"");
        assert_eq!(put(true, "a\"&APw-", true), "\"a\\\"ü\"");
        assert_eq!(put(true, "INBOX", false), "INBOX");
        assert_eq!(put(true, "INBOX", true), "\"INBOX\"");
        assert_eq!(put(false, "Gr&APwA3w-e", false), "Gr&APwA3w-e");
        assert_eq!(put(false, "Sent Items", false), "\"Sent Items\"");
    }
}
