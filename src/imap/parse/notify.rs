//! NOTIFY (RFC 5465 §8 ABNF):
//!
//! ```text
//! notify          = "NOTIFY" SP (notify-set / "NONE")
//! notify-set      = "SET" [SP "STATUS"] *(SP event-group)
//! event-group     = "(" filter-mailboxes SP events ")"
//! filter-mailboxes = "SELECTED" / "SELECTED-DELAYED" / "INBOXES" / "PERSONAL" /
//!                   "SUBSCRIBED" / ("SUBTREE" SP one-or-more-mailbox) /
//!                   ("MAILBOXES" SP one-or-more-mailbox)
//! events          = ("(" event *(SP event) ")") / "NONE"
//! event           = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) /
//!                   "MessageExpunge" / "FlagChange" / "AnnotationChange" / "MailboxName" /
//!                   "SubscriptionChange" / "MailboxMetadataChange" / "ServerMetadataChange"
//! ```
//! The RFC asks for at least one event group; an empty `NOTIFY SET` is accepted (as Dovecot
//! does) and means no notifications. Which events the server supports is the session's
//! business (`NO [BADEVENT ...]`); an unknown event name is a syntax error here.

use super::fetch::fetch_att_list;
use super::lexer::{show, Cursor, PResult};
use crate::imap::types::{Command, NotifyEvent, NotifyFilter, NotifyGroup, NotifySet};

/// Event groups in one command: far more than filters exist, few enough to bound the work.
const MAX_GROUPS: usize = 64;
/// Mailbox names in one SUBTREE / MAILBOXES filter.
const MAX_NAMES: usize = 1000;

pub(super) fn notify(c: &mut Cursor) -> PResult<Command> {
    c.sp("after NOTIFY")?;
    if c.eat_word("NONE") {
        return Ok(Command::Notify(None));
    }
    if !c.eat_word("SET") {
        return Err(format!(
            "Expected SET or NONE after NOTIFY, found {}",
            c.found()
        ));
    }
    let mut set = NotifySet {
        status: false,
        groups: Vec::new(),
    };
    let mut first = true;
    while !c.at_end() {
        c.sp("before a NOTIFY event group")?;
        if first && c.eat_word("STATUS") {
            set.status = true;
        } else {
            if set.groups.len() >= MAX_GROUPS {
                return Err(format!(
                    "Too many NOTIFY event groups (at most {MAX_GROUPS})"
                ));
            }
            set.groups.push(group(c)?);
        }
        first = false;
    }
    Ok(Command::Notify(Some(set)))
}

fn group(c: &mut Cursor) -> PResult<NotifyGroup> {
    c.expect(b'(', "'(' starting a NOTIFY event group")?;
    let filter = filter(c)?;
    c.sp("after the NOTIFY filter")?;
    let selected = matches!(
        filter,
        NotifyFilter::Selected | NotifyFilter::SelectedDelayed
    );
    let events = events(c, selected)?;
    c.expect(b')', "')' ending the NOTIFY event group")?;
    Ok(NotifyGroup { filter, events })
}

fn filter(c: &mut Cursor) -> PResult<NotifyFilter> {
    let name = c.take_while(|b| b.is_ascii_alphabetic() || b == b'-');
    Ok(match name.to_ascii_uppercase().as_slice() {
        b"SELECTED" => NotifyFilter::Selected,
        b"SELECTED-DELAYED" => NotifyFilter::SelectedDelayed,
        b"INBOXES" => NotifyFilter::Inboxes,
        b"PERSONAL" => NotifyFilter::Personal,
        b"SUBSCRIBED" => NotifyFilter::Subscribed,
        b"SUBTREE" => NotifyFilter::Subtree(mailboxes(c)?),
        b"MAILBOXES" => NotifyFilter::Mailboxes(mailboxes(c)?),
        b"" => return Err(format!("Expected a NOTIFY filter, found {}", c.found())),
        _ => return Err(format!("Unknown NOTIFY filter {}", show(name))),
    })
}

/// `SP one-or-more-mailbox`.
fn mailboxes(c: &mut Cursor) -> PResult<Vec<String>> {
    c.sp("before the NOTIFY mailbox names")?;
    if !c.eat(b'(') {
        return Ok(vec![c.mailbox()?]);
    }
    let mut names = Vec::new();
    loop {
        if names.len() >= MAX_NAMES {
            return Err(format!(
                "Too many NOTIFY mailbox names (at most {MAX_NAMES})"
            ));
        }
        names.push(c.mailbox()?);
        if c.eat(b')') {
            return Ok(names);
        }
        c.sp("between NOTIFY mailbox names")?;
    }
}

/// `events`; FETCH attributes after MessageNew only for the selected mailbox (RFC 5465:
/// other mailboxes are told with STATUS).
fn events(c: &mut Cursor, selected: bool) -> PResult<Vec<NotifyEvent>> {
    if c.eat_word("NONE") {
        return Ok(Vec::new());
    }
    c.expect(b'(', "'(' starting the NOTIFY events")?;
    let mut events = Vec::new();
    loop {
        let name = c.atom("NOTIFY event")?;
        let ev = match name.to_ascii_uppercase().as_slice() {
            b"MESSAGENEW" if selected && c.rest().starts_with(b" (") => {
                c.sp("after MessageNew")?;
                NotifyEvent::MessageNew(fetch_att_list(c)?)
            }
            b"MESSAGENEW" => NotifyEvent::MessageNew(Vec::new()),
            b"MESSAGEEXPUNGE" => NotifyEvent::MessageExpunge,
            b"FLAGCHANGE" => NotifyEvent::FlagChange,
            b"ANNOTATIONCHANGE" => NotifyEvent::AnnotationChange,
            b"MAILBOXNAME" => NotifyEvent::MailboxName,
            b"SUBSCRIPTIONCHANGE" => NotifyEvent::SubscriptionChange,
            b"MAILBOXMETADATACHANGE" => NotifyEvent::MailboxMetadataChange,
            b"SERVERMETADATACHANGE" => NotifyEvent::ServerMetadataChange,
            _ => return Err(format!("Unknown NOTIFY event {}", show(name))),
        };
        if !events.contains(&ev) {
            events.push(ev);
        }
        if c.eat(b')') {
            return Ok(events);
        }
        c.sp("between NOTIFY events")?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_command;
    use crate::imap::types::*;

    fn parse(s: &str) -> Result<Command, String> {
        parse_command(s.as_bytes())
            .map(|t| t.command)
            .map_err(|e| e.reason)
    }

    #[test]
    fn none_and_set() {
        assert_eq!(parse("a NOTIFY NONE\r\n"), Ok(Command::Notify(None)));
        assert_eq!(
            parse("a notify set status (selected (MessageNew (UID FLAGS) MessageExpunge)) (subtree (Lists \"A b\") (MailboxName)) (personal none)\r\n"),
            Ok(Command::Notify(Some(NotifySet {
                status: true,
                groups: vec![
                    NotifyGroup {
                        filter: NotifyFilter::Selected,
                        events: vec![
                            NotifyEvent::MessageNew(vec![FetchAttr::Uid, FetchAttr::Flags]),
                            NotifyEvent::MessageExpunge
                        ],
                    },
                    NotifyGroup {
                        filter: NotifyFilter::Subtree(vec!["Lists".into(), "A b".into()]),
                        events: vec![NotifyEvent::MailboxName],
                    },
                    NotifyGroup {
                        filter: NotifyFilter::Personal,
                        events: vec![],
                    },
                ],
            })))
        );
        assert_eq!(
            parse("a NOTIFY SET\r\n"),
            Ok(Command::Notify(Some(NotifySet {
                status: false,
                groups: vec![]
            })))
        );
    }

    #[test]
    fn refuses_bad_syntax() {
        for bad in [
            "a NOTIFY\r\n",
            "a NOTIFY SET ()\r\n",
            "a NOTIFY SET (PERSONAL ())\r\n",
            "a NOTIFY SET (PERSONAL (Bogus))\r\n",
            "a NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))\r\n",
            "a NOTIFY SET (SELECTED (MessageNew ()))\r\n",
            "a NOTIFY SET (SELECTED (MessageNew (ALL)))\r\n",
            "a NOTIFY SET (SUBTREE (MessageNew))\r\n",
            "a NOTIFY SET (MAILBOXES () (MessageNew))\r\n",
            "a NOTIFY SET (NOWHERE (MessageNew))\r\n",
            "a NOTIFY SET (PERSONAL (MessageNew)\r\n",
            "a NOTIFY SET STATUS STATUS (PERSONAL (MessageNew))\r\n",
            "a NOTIFY NONE x\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let many = "(PERSONAL NONE) ".repeat(65);
        assert!(parse(&format!("a NOTIFY SET {}\r\n", many.trim_end())).is_err());
    }
}
