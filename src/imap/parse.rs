//! The command grammar (RFC 3501 §9 ABNF, plus the extensions in `imap::mod`), as a pure
//! function over one framed command.
//!
//! Owns: turning the bytes of one command (as `framing::Framer` emits them: line ends CRLF,
//! literals inline) into a `TaggedCommand`, or a `ParseError` whose reason a person can act on.
//! It never decides whether a command is allowed in the current state, never folds INBOX and
//! never checks that a mailbox exists: that is the session's job.
//!
//! Layout: `lexer` (tokens shared by all commands), `fetch` (FETCH items), `search` (SEARCH
//! keys), `quota` (RFC 9208); this file dispatches on the command name and holds the smaller commands.
//!
//! ```text
//! command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF
//! tag     = 1*<any ASTRING-CHAR except "+">
//! ```
//! Keywords (command names, FETCH items, search keys, flags) are case-insensitive
//! (RFC 3501 §9, "case-insensitive"); strings and keyword flags keep their case.

mod append;
mod fetch;
mod lexer;
mod metadata;
mod notify;
mod quota;
mod search;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_append;
#[cfg(test)]
mod tests_context;
#[cfg(test)]
mod tests_quota;
#[cfg(test)]
mod tests_selected;
#[cfg(test)]
mod tests_sort;

pub use search::{MAX_SEARCH_DEPTH, MAX_SEARCH_KEYS};

use super::encode::is_astring_char;
use super::types::*;
use lexer::{show, Cursor, PResult};

/// Why a command could not be parsed: the tag if one could be read (for a tagged `BAD`), and a
/// human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<String>,
    pub reason: String,
}

/// Parse one complete command as produced by `framing::Framer` (ends in CRLF; literals inline).
/// A bare LF, or no line end at all, is accepted too.
pub fn parse_command(input: &[u8]) -> Result<TaggedCommand, ParseError> {
    let mut c = Cursor::new(input);
    let tag = c.take_while(|b| is_astring_char(b) && b != b'+');
    if tag.is_empty() {
        let reason = if c.at_end() {
            "Empty command line".to_string()
        } else {
            format!(
                "Invalid tag: a command must start with a tag, found {}",
                c.found()
            )
        };
        return Err(ParseError { tag: None, reason });
    }
    if !c.at_end() && c.peek() != Some(b' ') {
        let bad = c.peek().map(|b| show(&[b])).unwrap_or_default();
        return Err(ParseError {
            tag: None,
            reason: format!("Invalid character '{bad}' in tag"),
        });
    }
    // A tag is ASTRING-CHARs: ASCII.
    let tag = String::from_utf8_lossy(tag).into_owned();
    match command(&mut c) {
        Ok(command) => Ok(TaggedCommand { tag, command }),
        Err(reason) => Err(ParseError {
            tag: Some(tag),
            reason,
        }),
    }
}

fn command(c: &mut Cursor) -> PResult<Command> {
    c.sp("after tag")?;
    let name = c.atom("command name")?;
    let upper = name.to_ascii_uppercase();
    let cmd = match upper.as_slice() {
        // RFC 3501 §6.1–6.4 commands without arguments.
        b"CAPABILITY" => Command::Capability,
        b"NOOP" => Command::Noop,
        b"LOGOUT" => Command::Logout,
        b"STARTTLS" => Command::StartTls,
        b"NAMESPACE" => Command::Namespace,
        b"IDLE" => Command::Idle,
        b"CHECK" => Command::Check,
        b"CLOSE" => Command::Close,
        b"UNSELECT" => Command::Unselect,
        b"EXPUNGE" => Command::Expunge,
        b"CANCELUPDATE" => cancel_update(c)?,
        b"LOGIN" => login(c)?,
        b"AUTHENTICATE" => authenticate(c)?,
        b"SELECT" => {
            let (mailbox, condstore, qresync) = select(c)?;
            Command::Select {
                mailbox,
                condstore,
                qresync,
            }
        }
        b"EXAMINE" => {
            let (mailbox, condstore, qresync) = select(c)?;
            Command::Examine {
                mailbox,
                condstore,
                qresync,
            }
        }
        b"CREATE" => Command::Create {
            mailbox: one_mailbox(c)?,
        },
        b"DELETE" => Command::Delete {
            mailbox: one_mailbox(c)?,
        },
        b"SUBSCRIBE" => Command::Subscribe {
            mailbox: one_mailbox(c)?,
        },
        b"UNSUBSCRIBE" => Command::Unsubscribe {
            mailbox: one_mailbox(c)?,
        },
        b"RENAME" => {
            let from = one_mailbox(c)?;
            c.sp("between the RENAME mailbox names")?;
            Command::Rename {
                from,
                to: c.mailbox()?,
            }
        }
        b"LIST" => list(c)?,
        b"LSUB" => {
            let reference = one_mailbox(c)?;
            c.sp("before the LSUB pattern")?;
            Command::Lsub {
                reference,
                pattern: c.list_mailbox()?,
            }
        }
        b"STATUS" => {
            let mailbox = one_mailbox(c)?;
            c.sp("before the STATUS items")?;
            Command::Status {
                mailbox,
                items: status_items(c)?,
            }
        }
        b"APPEND" => append::append(c)?,
        b"ID" => id(c)?,
        b"ENABLE" => enable(c)?,
        b"COMPRESS" => compress(c)?,
        b"GETMETADATA" => metadata::getmetadata(c)?,
        b"SETMETADATA" => metadata::setmetadata(c)?,
        b"SEARCH" => search(c, false)?,
        b"SORT" => sort(c, false)?,
        b"THREAD" => thread(c, false)?,
        b"FETCH" => fetch(c, false)?,
        b"STORE" => store(c, false)?,
        b"COPY" => copy_move(c, false, false)?,
        b"MOVE" => copy_move(c, false, true)?,
        b"UID" => uid(c)?,
        b"GETQUOTAROOT" => quota::getquotaroot(c)?,
        b"GETQUOTA" => quota::getquota(c)?,
        b"SETQUOTA" => quota::setquota(c)?,
        b"NOTIFY" => notify::notify(c)?,
        _ => return Err(format!("Unknown command {}", show(name))),
    };
    c.end(&format!("{} command", cmd.name()))?;
    Ok(cmd)
}

/// `SP mailbox`.
fn one_mailbox(c: &mut Cursor) -> PResult<String> {
    c.sp("before the mailbox name")?;
    c.mailbox()
}

/// `"UID" SP (copy / move / fetch / search / store / expunge)` (RFC 3501 §6.4.8, RFC 4315
/// UID EXPUNGE, RFC 6851 UID MOVE).
fn uid(c: &mut Cursor) -> PResult<Command> {
    c.sp("after UID")?;
    let name = c.atom("command after UID")?;
    match name.to_ascii_uppercase().as_slice() {
        b"FETCH" => fetch(c, true),
        b"SEARCH" => search(c, true),
        b"SORT" => sort(c, true),
        b"THREAD" => thread(c, true),
        b"STORE" => store(c, true),
        b"COPY" => copy_move(c, true, false),
        b"MOVE" => copy_move(c, true, true),
        b"EXPUNGE" => {
            c.sp("after UID EXPUNGE")?;
            Ok(Command::UidExpunge(c.sequence_set()?))
        }
        _ => Err(format!(
            "UID must be followed by FETCH, SEARCH, SORT, THREAD, STORE, COPY, MOVE or EXPUNGE, not {}",
            show(name)
        )),
    }
}

/// `compress = "COMPRESS" SP algorithm` (RFC 4978 §5). Any atom is accepted here so the
/// session can say which mechanisms exist when it refuses one (§3: BAD).
fn compress(c: &mut Cursor) -> PResult<Command> {
    c.sp("after COMPRESS")?;
    let mech = c.atom("compression mechanism")?;
    Ok(Command::Compress {
        mechanism: String::from_utf8_lossy(mech).into_owned(),
    })
}

/// `login = "LOGIN" SP userid SP password` (astrings; a literal password works).
fn login(c: &mut Cursor) -> PResult<Command> {
    c.sp("after LOGIN")?;
    let user = c.astring_utf8("user name")?;
    c.sp("between user name and password")?;
    let password = Secret(c.astring("password")?);
    Ok(Command::Login { user, password })
}

/// `authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")]` (RFC 3501 §6.2.2,
/// RFC 4959 SASL-IR).
fn authenticate(c: &mut Cursor) -> PResult<Command> {
    c.sp("after AUTHENTICATE")?;
    let mech = c.atom("SASL mechanism name")?;
    let mechanism = String::from_utf8_lossy(mech).into_owned();
    let mut initial = None;
    if !c.at_end() {
        c.sp("after the SASL mechanism")?;
        let ir = c.take_while(|b| !matches!(b, b' ' | b'\r' | b'\n'));
        if ir.is_empty() {
            return Err(format!(
                "Expected a base64 initial response, found {}",
                c.found()
            ));
        }
        if ir != b"=" && !is_base64(ir) {
            return Err("Invalid base64 in the initial response".to_string());
        }
        initial = Some(String::from_utf8_lossy(ir).into_owned());
    }
    Ok(Command::Authenticate { mechanism, initial })
}

/// RFC 3501 `base64 = *(4base64-char) [base64-terminal]`.
fn is_base64(s: &[u8]) -> bool {
    if !s.len().is_multiple_of(4) {
        return false;
    }
    let pad = s.iter().rev().take_while(|&&b| b == b'=').count();
    pad <= 2
        && s[..s.len() - pad]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// `select = "SELECT" SP mailbox [select-params]` (RFC 4466 §2.1) with the RFC 7162
/// parameters `CONDSTORE` and
/// `"QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"`,
/// `seq-match-data = "(" known-sequence-set SP known-uid-set ")"` (§3.2.5, §7).
#[allow(clippy::type_complexity)]
fn select(c: &mut Cursor) -> PResult<(String, bool, Option<QresyncParams>)> {
    let mailbox = one_mailbox(c)?;
    let mut condstore = false;
    let mut qresync = None;
    if !c.at_end() {
        c.sp("before SELECT parameters")?;
        c.expect(b'(', "'(' starting SELECT parameters")?;
        if !c.eat(b')') {
            loop {
                let p = c.atom("SELECT parameter")?;
                if p.eq_ignore_ascii_case(b"CONDSTORE") {
                    condstore = true;
                } else if p.eq_ignore_ascii_case(b"QRESYNC") && qresync.is_none() {
                    c.sp("after QRESYNC")?;
                    qresync = Some(qresync_params(c)?);
                } else {
                    return Err(format!("Unsupported SELECT parameter {}", show(p)));
                }
                if c.eat(b')') {
                    break;
                }
                c.sp("between SELECT parameters")?;
            }
        }
    }
    Ok((mailbox, condstore, qresync))
}

/// The parenthesised QRESYNC parameter list (see [`select`]).
fn qresync_params(c: &mut Cursor) -> PResult<QresyncParams> {
    c.expect(b'(', "'(' starting the QRESYNC parameters")?;
    let uid_validity = c.nz_number("QRESYNC UIDVALIDITY")?;
    c.sp("after the QRESYNC UIDVALIDITY")?;
    // mod-sequence-value is 1*DIGIT (0 allowed: "the client knows nothing").
    let mod_seq = c.mod_seq("QRESYNC mod-sequence")?;
    let mut known_uids = None;
    let mut seq_match = None;
    if c.eat(b' ') {
        if c.peek() != Some(b'(') {
            known_uids = Some(no_star(c.sequence_set()?, "known-uids")?);
            if c.eat(b' ') {
                seq_match = Some(seq_match_data(c)?);
            }
        } else {
            seq_match = Some(seq_match_data(c)?);
        }
    }
    c.expect(b')', "')' ending the QRESYNC parameters")?;
    Ok(QresyncParams {
        uid_validity,
        mod_seq,
        known_uids,
        seq_match,
    })
}

/// `seq-match-data = "(" known-sequence-set SP known-uid-set ")"`.
fn seq_match_data(c: &mut Cursor) -> PResult<(SequenceSet, SequenceSet)> {
    c.expect(b'(', "'(' starting the QRESYNC sequence match data")?;
    let seqs = no_star(c.sequence_set()?, "known-sequence-set")?;
    c.sp("inside the QRESYNC sequence match data")?;
    let uids = no_star(c.sequence_set()?, "known-uid-set")?;
    c.expect(b')', "')' ending the QRESYNC sequence match data")?;
    Ok((seqs, uids))
}

/// RFC 7162 §7: known-uids and seq-match-data sets may not contain `*` (nor `$`).
fn no_star(set: SequenceSet, what: &str) -> PResult<SequenceSet> {
    let ok = match &set {
        SequenceSet::Saved => false,
        SequenceSet::Ranges(rs) => rs
            .iter()
            .all(|r| !matches!(r.start, SeqNum::Star) && !matches!(r.end, SeqNum::Star)),
    };
    if ok {
        Ok(set)
    } else {
        Err(format!("QRESYNC {what} may not contain '*' or '$'"))
    }
}

/// `status-att` list: `"(" status-att *(SP status-att) ")"` (RFC 3501, RFC 8438 SIZE,
/// RFC 7162 HIGHESTMODSEQ).
fn status_items(c: &mut Cursor) -> PResult<Vec<StatusItem>> {
    c.expect(b'(', "'(' starting the STATUS items")?;
    let mut items = Vec::new();
    loop {
        let a = c.atom("STATUS item")?;
        let item = match a.to_ascii_uppercase().as_slice() {
            b"MESSAGES" => StatusItem::Messages,
            b"RECENT" => StatusItem::Recent,
            b"UIDNEXT" => StatusItem::UidNext,
            b"UIDVALIDITY" => StatusItem::UidValidity,
            b"UNSEEN" => StatusItem::Unseen,
            b"SIZE" => StatusItem::Size,
            b"HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            b"DELETED" => StatusItem::Deleted,
            b"DELETED-STORAGE" => StatusItem::DeletedStorage,
            _ => return Err(format!("Unknown STATUS item {}", show(a))),
        };
        if !items.contains(&item) {
            items.push(item);
        }
        if c.eat(b')') {
            return Ok(items);
        }
        c.sp("between STATUS items")?;
    }
}

/// RFC 3501 `list = "LIST" SP mailbox SP list-mailbox`, extended by RFC 5258:
/// `"LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`.
fn list(c: &mut Cursor) -> PResult<Command> {
    let mut options = ListOptions::default();
    c.sp("after LIST")?;
    if c.eat(b'(') {
        options.extended = true;
        let mut base = false;
        if !c.eat(b')') {
            loop {
                let o = c.atom("LIST selection option")?;
                match o.to_ascii_uppercase().as_slice() {
                    b"SUBSCRIBED" => {
                        options.subscribed = true;
                        base = true;
                    }
                    b"REMOTE" => options.remote = true,
                    b"RECURSIVEMATCH" => options.recursive_match = true,
                    // RFC 6154 §3
                    b"SPECIAL-USE" => {
                        options.special_use = true;
                        base = true;
                    }
                    _ => return Err(format!("Unknown LIST selection option {}", show(o))),
                }
                if c.eat(b')') {
                    break;
                }
                c.sp("between LIST selection options")?;
            }
        }
        // RFC 5258 §3: RECURSIVEMATCH alone is an error.
        if options.recursive_match && !base {
            return Err(
                "LIST selection option RECURSIVEMATCH requires SUBSCRIBED or SPECIAL-USE"
                    .to_string(),
            );
        }
        c.sp("after LIST selection options")?;
    }
    let reference = c
        .mailbox()
        .map_err(|e| e.replace("mailbox name", "LIST reference name"))?;
    c.sp("before the LIST pattern")?;
    let mut patterns = Vec::new();
    if c.eat(b'(') {
        options.extended = true;
        loop {
            patterns.push(c.list_mailbox()?);
            if c.eat(b')') {
                break;
            }
            c.sp("between LIST patterns")?;
        }
    } else {
        patterns.push(c.list_mailbox()?);
    }
    if !c.at_end() {
        c.sp("after the LIST pattern")?;
        if !c.eat_word("RETURN") {
            return Err(format!(
                "Expected RETURN after the LIST pattern, found {}",
                c.found()
            ));
        }
        c.sp("after RETURN")?;
        c.expect(b'(', "'(' starting the LIST return options")?;
        options.extended = true;
        if !c.eat(b')') {
            loop {
                let o = c.atom("LIST return option")?;
                match o.to_ascii_uppercase().as_slice() {
                    b"SUBSCRIBED" => options.return_subscribed = true,
                    b"CHILDREN" => options.return_children = true,
                    b"SPECIAL-USE" => options.return_special_use = true,
                    // RFC 5819
                    b"STATUS" => {
                        c.sp("after STATUS")?;
                        options.return_status = Some(status_items(c)?);
                    }
                    _ => return Err(format!("Unknown LIST return option {}", show(o))),
                }
                if c.eat(b')') {
                    break;
                }
                c.sp("between LIST return options")?;
            }
        }
    }
    Ok(Command::List {
        reference,
        patterns,
        options,
    })
}

/// A FETCH `section` (`[1.2.HEADER]`, brackets included) on its own, as an IMAP URL's
/// `;SECTION=` names one (RFC 5092 §5).
pub fn parse_section(input: &[u8]) -> Result<Section, String> {
    let mut c = Cursor::new(input);
    let s = fetch::section(&mut c)?;
    if !c.at_end() {
        return Err(format!(
            "Unexpected characters after the section: {}",
            c.found()
        ));
    }
    Ok(s)
}

/// `id = "ID" SP id-params-list` (RFC 2971): parsed and discarded.
/// `id-params-list = "(" *(string SP nstring) ")" / nil` (atoms accepted as names, leniently).
fn id(c: &mut Cursor) -> PResult<Command> {
    c.sp("after ID")?;
    if c.eat_word("NIL") {
        return Ok(Command::Id);
    }
    c.expect(b'(', "'(' or NIL after ID")?;
    if c.eat(b')') {
        return Ok(Command::Id);
    }
    loop {
        c.astring("ID field name")?;
        c.sp("after the ID field name")?;
        c.nstring("ID field value")?;
        if c.eat(b')') {
            return Ok(Command::Id);
        }
        c.sp("between ID fields")?;
    }
}

/// `enable = "ENABLE" 1*(SP capability)` (RFC 5161); names kept as sent.
fn enable(c: &mut Cursor) -> PResult<Command> {
    let mut caps = Vec::new();
    while !c.at_end() || caps.is_empty() {
        c.sp(if caps.is_empty() {
            "after ENABLE"
        } else {
            "between capabilities"
        })?;
        let a = c.atom("capability name")?;
        caps.push(String::from_utf8_lossy(a).into_owned());
    }
    Ok(Command::Enable(caps))
}

/// `"CANCELUPDATE" 1*(SP quoted)` (RFC 5267 §5): the tags of the searches to end.
fn cancel_update(c: &mut Cursor) -> PResult<Command> {
    let mut tags = Vec::new();
    while !c.at_end() || tags.is_empty() {
        c.sp(if tags.is_empty() {
            "after CANCELUPDATE"
        } else {
            "between tags"
        })?;
        let t = c.string("search tag")?;
        tags.push(String::from_utf8_lossy(&t).into_owned());
    }
    Ok(Command::CancelUpdate(tags))
}

fn search(c: &mut Cursor, uid: bool) -> PResult<Command> {
    let a = search::search_args(c)?;
    Ok(Command::Search {
        uid,
        charset: a.charset,
        returns: a.returns,
        criteria: a.criteria,
    })
}

fn sort(c: &mut Cursor, uid: bool) -> PResult<Command> {
    let (a, program) = search::sort_args(c)?;
    Ok(Command::Sort {
        uid,
        returns: a.returns,
        program,
        charset: a.charset.unwrap_or_default(),
        criteria: a.criteria,
    })
}

fn thread(c: &mut Cursor, uid: bool) -> PResult<Command> {
    let (algorithm, a) = search::thread_args(c)?;
    Ok(Command::Thread {
        uid,
        algorithm,
        charset: a.charset.unwrap_or_default(),
        criteria: a.criteria,
    })
}

fn fetch(c: &mut Cursor, uid: bool) -> PResult<Command> {
    c.sp("after FETCH")?;
    let set = c.sequence_set()?;
    c.sp("after the sequence set")?;
    let (items, changed_since, vanished) = fetch::fetch_items(c)?;
    // RFC 7162 §3.2.6: VANISHED only with UID FETCH and together with CHANGEDSINCE.
    if vanished && (!uid || changed_since.is_none()) {
        return Err("The VANISHED FETCH modifier needs UID FETCH and CHANGEDSINCE".into());
    }
    Ok(Command::Fetch {
        uid,
        set,
        items,
        changed_since,
        vanished,
    })
}

/// `store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags` (RFC 3501 §6.4.6,
/// RFC 7162 §3.1.3 UNCHANGEDSINCE).
fn store(c: &mut Cursor, uid: bool) -> PResult<Command> {
    c.sp("after STORE")?;
    let set = c.sequence_set()?;
    c.sp("after the sequence set")?;
    let mut unchanged_since = None;
    if c.eat(b'(') {
        loop {
            let m = c.atom("STORE modifier")?;
            if m.eq_ignore_ascii_case(b"UNCHANGEDSINCE") {
                c.sp("after UNCHANGEDSINCE")?;
                unchanged_since = Some(c.mod_seq("UNCHANGEDSINCE value")?);
            } else {
                return Err(format!("Unsupported STORE modifier {}", show(m)));
            }
            if c.eat(b')') {
                break;
            }
            c.sp("between STORE modifiers")?;
        }
        c.sp("after the STORE modifiers")?;
    }
    let item = c.atom("FLAGS, +FLAGS or -FLAGS")?;
    let upper = item.to_ascii_uppercase();
    let (mode, rest) = match upper.first() {
        Some(b'+') => (StoreMode::Add, &upper[1..]),
        Some(b'-') => (StoreMode::Remove, &upper[1..]),
        _ => (StoreMode::Replace, &upper[..]),
    };
    let silent = match rest {
        b"FLAGS" => false,
        b"FLAGS.SILENT" => true,
        _ => {
            return Err(format!(
                "Expected FLAGS, +FLAGS or -FLAGS (optionally .SILENT), found {}",
                show(item)
            ))
        }
    };
    c.sp("after FLAGS")?;
    // store-att-flags: flag-list / (flag *(SP flag))
    let flags = if c.peek() == Some(b'(') {
        c.flag_list()?
    } else {
        let mut flags = vec![c.flag()?];
        while c.peek() == Some(b' ') {
            c.sp("between flags")?;
            flags.push(c.flag()?);
        }
        flags
    };
    Ok(Command::Store {
        uid,
        set,
        mode,
        silent,
        flags,
        unchanged_since,
    })
}

/// `copy = "COPY" SP sequence-set SP mailbox`, RFC 6851 `move` likewise.
fn copy_move(c: &mut Cursor, uid: bool, is_move: bool) -> PResult<Command> {
    let name = if is_move { "MOVE" } else { "COPY" };
    c.sp(&format!("after {name}"))?;
    let set = c.sequence_set()?;
    c.sp("after the sequence set")?;
    let mailbox = c.mailbox()?;
    Ok(if is_move {
        Command::Move { uid, set, mailbox }
    } else {
        Command::Copy { uid, set, mailbox }
    })
}
