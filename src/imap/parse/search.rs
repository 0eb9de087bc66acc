//! SEARCH arguments (RFC 3501 §6.4.4 / §9 `search-key`, RFC 4731 ESEARCH `RETURN`, RFC 5182
//! `SAVE` / `$`, RFC 7162 `MODSEQ`), and SORT's (RFC 5256 §4, RFC 5957 DISPLAYFROM/DISPLAYTO,
//! RFC 5267 `RETURN`), which end in the same search criteria.
//!
//! ```text
//! search = "SEARCH" [search-return-opts] [SP "CHARSET" SP astring] 1*(SP search-key)
//! search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"
//! ```
//!
//! Nesting of parentheses and NOT is bounded by [`MAX_SEARCH_DEPTH`] so hostile input cannot
//! exhaust the stack. OR chains are not nested calls: a client searching for 150 Message-IDs
//! sends 149 nested ORs (Dovecot accepts a thousand), so a chain is parsed in a loop into one
//! flat n-ary [`SearchKey::Or`]. What bounds the work is [`MAX_SEARCH_KEYS`], the number of
//! keys in all.
//!
//! Search strings become UTF-8 here: with no CHARSET, US-ASCII or UTF-8 they must be valid
//! UTF-8 (else BAD); with ISO-8859-1 / Latin-1 the bytes are mapped to code points; with any
//! other charset invalid sequences are replaced (U+FFFD) and the session answers
//! `NO [BADCHARSET]` for charsets it does not support (RFC 3501 §6.4.4).

use super::lexer::{show, Cursor, PResult};
use crate::imap::types::*;

/// Deepest nesting of parentheses / NOT accepted in SEARCH criteria (OR chains are flat).
pub const MAX_SEARCH_DEPTH: usize = 100;

/// Most keys (OR and NOT included) in one SEARCH: a 1,000-term OR chain is 1,999 keys; a
/// 64 KiB command line holds about 16,000 (`OR ALL `...), so this bounds the work per message.
pub const MAX_SEARCH_KEYS: usize = 10_000;

#[derive(Clone, Copy)]
enum Charset {
    Utf8,
    Latin1,
    Other,
}

pub(crate) struct SearchArgs {
    pub charset: Option<String>,
    pub returns: Option<Vec<SearchReturn>>,
    pub criteria: SearchKey,
}

/// Everything after `SEARCH` (the cursor is just after the command name).
pub(crate) fn search_args(c: &mut Cursor) -> PResult<SearchArgs> {
    c.sp("after SEARCH")?;
    let returns = return_opts(c)?;
    let mut charset = None;
    let mut mode = Charset::Utf8;
    if c.eat_word("CHARSET") {
        c.sp("after CHARSET")?;
        let cs = c.astring_utf8("charset name")?;
        mode = charset_mode(&cs);
        charset = Some(cs);
        c.sp("after the charset name")?;
    }
    Ok(SearchArgs {
        charset,
        returns,
        criteria: criteria(c, mode)?,
    })
}

/// How search strings in `charset` become UTF-8.
fn charset_mode(charset: &str) -> Charset {
    match charset.to_ascii_uppercase().as_str() {
        "UTF-8" | "UTF8" | "US-ASCII" | "ASCII" => Charset::Utf8,
        "ISO-8859-1" | "ISO8859-1" | "LATIN1" => Charset::Latin1,
        _ => Charset::Other,
    }
}

/// `1*(SP search-key)` after the leading space, to the end of the command: one `And`.
fn criteria(c: &mut Cursor, mode: Charset) -> PResult<SearchKey> {
    let mut keys = Vec::new();
    let mut budget = MAX_SEARCH_KEYS;
    loop {
        keys.push(key(c, mode, 0, &mut budget)?);
        if c.at_end() {
            break;
        }
        c.sp("between search keys")?;
    }
    Ok(SearchKey::And(keys))
}

/// `[SP "RETURN" SP "(" [option *(SP option)] ")"]` then a space (RFC 4731 §3.1,
/// RFC 5267 §3 for SORT, §4 for CONTEXT, UPDATE and PARTIAL); the cursor is after the
/// command name's space.
fn return_opts(c: &mut Cursor) -> PResult<Option<Vec<SearchReturn>>> {
    let mut returns = None;
    if c.eat_word("RETURN") {
        c.sp("after RETURN")?;
        c.expect(b'(', "'(' starting the RETURN options")?;
        let mut opts = Vec::new();
        if !c.eat(b')') {
            loop {
                let o = return_opt(c)?;
                let partial = |o: &SearchReturn| matches!(o, SearchReturn::Partial(..));
                if partial(&o) && opts.iter().any(partial) {
                    return Err("PARTIAL can be used only once".into());
                }
                if o == SearchReturn::Update && opts.contains(&o) {
                    return Err("SEARCH return options have duplicate UPDATE".into());
                }
                if !opts.contains(&o) {
                    opts.push(o);
                }
                if c.eat(b')') {
                    break;
                }
                c.sp("between RETURN options")?;
            }
        }
        // RFC 5267 §4.4: PARTIAL returns part of what ALL would (Dovecot's wording).
        if opts.contains(&SearchReturn::All)
            && opts.iter().any(|o| matches!(o, SearchReturn::Partial(..)))
        {
            return Err("PARTIAL conflicts with ALL".into());
        }
        returns = Some(opts);
        c.sp("after RETURN options")?;
    }
    Ok(returns)
}

/// One `search-return-opt`.
fn return_opt(c: &mut Cursor) -> PResult<SearchReturn> {
    let a = c.atom("RETURN option")?;
    Ok(match a.to_ascii_uppercase().as_slice() {
        b"MIN" => SearchReturn::Min,
        b"MAX" => SearchReturn::Max,
        b"ALL" => SearchReturn::All,
        b"COUNT" => SearchReturn::Count,
        b"SAVE" => SearchReturn::Save,
        b"CONTEXT" => SearchReturn::Context,
        b"UPDATE" => SearchReturn::Update,
        b"PARTIAL" => partial_range(c)?,
        _ => return Err(format!("Unknown SEARCH RETURN option {}", show(a))),
    })
}

/// `SP partial-range` after PARTIAL: `nz-number ":" nz-number` (RFC 5267 §4.4), either
/// order. RFC 9394's negative ranges are refused, as Dovecot 2.3 refuses them.
fn partial_range(c: &mut Cursor) -> PResult<SearchReturn> {
    if !c.eat(b' ') || c.peek() == Some(b')') {
        return Err("PARTIAL range missing".into());
    }
    let start = c.pos();
    let range = (|| {
        let a = c.nz_number("PARTIAL range")?;
        c.expect(b':', "':' in the PARTIAL range")?;
        let b = c.nz_number("PARTIAL range")?;
        Ok::<_, String>((a.min(b), a.max(b)))
    })();
    match range {
        Ok((lo, hi)) if matches!(c.peek(), Some(b' ' | b')')) => Ok(SearchReturn::Partial(lo, hi)),
        _ => {
            c.set_pos(start);
            Err("PARTIAL range broken".into())
        }
    }
}

/// `sort = ["UID" SP] "SORT" [SP "RETURN" ...] SP sort-criteria SP search-criteria`
/// (RFC 5256 §4, RFC 5267 §3); `search-criteria = charset 1*(SP search-key)`. The cursor is
/// just after `SORT`. `REVERSE REVERSE` cancels out (Dovecot accepts it too).
pub(crate) fn sort_args(c: &mut Cursor) -> PResult<(SearchArgs, Vec<SortCriterion>)> {
    c.sp("after SORT")?;
    let returns = return_opts(c)?;
    if !c.eat(b'(') {
        return Err("Invalid sort argument: expected a parenthesised list of sort keys".into());
    }
    let mut program = Vec::new();
    let mut reverse = false;
    let mut first = true;
    loop {
        if c.eat(b')') {
            break;
        }
        if !first {
            c.sp("between sort keys")?;
        }
        first = false;
        let a = c.atom("sort key")?;
        let key = match a.to_ascii_uppercase().as_slice() {
            b"REVERSE" => {
                reverse = !reverse;
                continue;
            }
            b"ARRIVAL" => SortKey::Arrival,
            b"CC" => SortKey::Cc,
            b"DATE" => SortKey::Date,
            b"DISPLAYFROM" => SortKey::DisplayFrom,
            b"DISPLAYTO" => SortKey::DisplayTo,
            b"FROM" => SortKey::From,
            b"SIZE" => SortKey::Size,
            b"SUBJECT" => SortKey::Subject,
            b"TO" => SortKey::To,
            _ => return Err(format!("Unknown sort argument: {}", show(a))),
        };
        program.push(SortCriterion { reverse, key });
        reverse = false;
    }
    if reverse {
        return Err("Sort list ends with REVERSE".into());
    }
    if program.is_empty() {
        return Err("Empty sort program".into());
    }
    let args = charset_and_criteria(c, "SORT", "the sort keys", returns)?;
    Ok((args, program))
}

/// `SP charset SP search-criteria`, the common tail of SORT and THREAD (RFC 5256 §4); `what`
/// is the command, `after` what the cursor is just after.
fn charset_and_criteria(
    c: &mut Cursor,
    what: &str,
    after: &str,
    returns: Option<Vec<SearchReturn>>,
) -> PResult<SearchArgs> {
    if c.at_end() {
        return Err(format!("Invalid charset argument: {what} needs a charset"));
    }
    c.sp(&format!("after {after}"))?;
    let cs = c.astring_utf8("charset name")?;
    let mode = charset_mode(&cs);
    if c.at_end() {
        return Err("Missing search parameters".into());
    }
    c.sp("after the charset name")?;
    Ok(SearchArgs {
        charset: Some(cs),
        returns,
        criteria: criteria(c, mode)?,
    })
}

/// `thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria` (RFC 5256 §4); the
/// cursor is just after `THREAD`.
pub(crate) fn thread_args(c: &mut Cursor) -> PResult<(ThreadAlgorithm, SearchArgs)> {
    c.sp("after THREAD")?;
    let a = c.atom("thread algorithm")?;
    let alg = match a.to_ascii_uppercase().as_slice() {
        b"ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
        b"REFERENCES" => ThreadAlgorithm::References,
        b"REFS" => ThreadAlgorithm::Refs,
        _ => return Err(format!("Unknown thread algorithm {}", show(a))),
    };
    let args = charset_and_criteria(c, "THREAD", "the thread algorithm", None)?;
    Ok((alg, args))
}

fn text(c: &mut Cursor, mode: Charset, what: &str) -> PResult<String> {
    c.sp(&format!("after {what}"))?;
    let b = c.astring(&format!("{what} search string"))?;
    match mode {
        Charset::Utf8 => String::from_utf8(b)
            .map_err(|_| format!("Invalid {what} search string: not valid UTF-8 (use CHARSET)")),
        Charset::Latin1 => Ok(b.iter().map(|&x| x as char).collect()),
        Charset::Other => Ok(String::from_utf8_lossy(&b).into_owned()),
    }
}

fn date_arg(c: &mut Cursor, what: &str) -> PResult<Date> {
    c.sp(&format!("after {what}"))?;
    c.date()
}

fn keyword(c: &mut Cursor, what: &str) -> PResult<String> {
    c.sp(&format!("after {what}"))?;
    if c.peek() == Some(b'\\') {
        return Err(format!(
            "{what} takes a keyword, not a system flag (use SEEN, FLAGGED, ... instead)"
        ));
    }
    let a = c.atom("keyword")?;
    Ok(String::from_utf8_lossy(a).into_owned())
}

/// Count one key against the budget of [`MAX_SEARCH_KEYS`].
fn spend(budget: &mut usize) -> PResult<()> {
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| format!("Too many search keys (at most {MAX_SEARCH_KEYS})"))?;
    Ok(())
}

/// One `search-key` at nesting `depth`. `OR a b` is a loop over the ORs still waiting for
/// operands (`OR OR a b c`, `OR a OR b c` and any mix), so a chain of any length takes no
/// stack; the operands of a chain end up in one flat Or.
fn key(c: &mut Cursor, mode: Charset, depth: usize, budget: &mut usize) -> PResult<SearchKey> {
    if depth >= MAX_SEARCH_DEPTH {
        return Err(format!(
            "Search criteria nested too deeply (at most {MAX_SEARCH_DEPTH} levels)"
        ));
    }
    // The open ORs, innermost last: the operands so far, and how many of its two were read.
    let mut open: Vec<(Vec<SearchKey>, u8)> = Vec::new();
    loop {
        while c.eat_word("OR") {
            spend(budget)?;
            c.sp("after OR")?;
            open.push((Vec::new(), 0));
        }
        let mut k = single(c, mode, depth, budget)?;
        loop {
            let Some((ops, seen)) = open.last_mut() else {
                return Ok(k);
            };
            match k {
                SearchKey::Or(v) => ops.extend(v),
                other => ops.push(other),
            }
            *seen += 1;
            if *seen < 2 {
                c.sp("between the two OR keys")?;
                break;
            }
            k = SearchKey::Or(open.pop().map(|(ops, _)| ops).unwrap_or_default());
        }
    }
}

/// A `search-key` that is not an OR.
fn single(c: &mut Cursor, mode: Charset, depth: usize, budget: &mut usize) -> PResult<SearchKey> {
    spend(budget)?;
    use SearchKey as K;
    match c.peek() {
        Some(b'(') => return group(c, mode, depth, budget),
        Some(b'0'..=b'9' | b'*' | b'$') => return Ok(K::SequenceSet(c.sequence_set()?)),
        _ => {}
    }
    let name = c.atom("search key")?;
    Ok(match name.to_ascii_uppercase().as_slice() {
        b"ALL" => K::All,
        b"ANSWERED" => K::Answered,
        b"DELETED" => K::Deleted,
        b"DRAFT" => K::Draft,
        b"FLAGGED" => K::Flagged,
        b"NEW" => K::New,
        b"OLD" => K::Old,
        b"RECENT" => K::Recent,
        b"SEEN" => K::Seen,
        b"UNANSWERED" => K::Unanswered,
        b"UNDELETED" => K::Undeleted,
        b"UNDRAFT" => K::Undraft,
        b"UNFLAGGED" => K::Unflagged,
        b"UNSEEN" => K::Unseen,
        b"BCC" => K::Bcc(text(c, mode, "BCC")?),
        b"BODY" => K::Body(text(c, mode, "BODY")?),
        b"CC" => K::Cc(text(c, mode, "CC")?),
        b"FROM" => K::From(text(c, mode, "FROM")?),
        b"SUBJECT" => K::Subject(text(c, mode, "SUBJECT")?),
        b"TEXT" => K::Text(text(c, mode, "TEXT")?),
        b"TO" => K::To(text(c, mode, "TO")?),
        b"HEADER" => header(c, mode)?,
        b"BEFORE" => K::Before(date_arg(c, "BEFORE")?),
        b"ON" => K::On(date_arg(c, "ON")?),
        b"SINCE" => K::Since(date_arg(c, "SINCE")?),
        b"SENTBEFORE" => K::SentBefore(date_arg(c, "SENTBEFORE")?),
        b"SENTON" => K::SentOn(date_arg(c, "SENTON")?),
        b"SENTSINCE" => K::SentSince(date_arg(c, "SENTSINCE")?),
        b"KEYWORD" => K::Keyword(keyword(c, "KEYWORD")?),
        b"UNKEYWORD" => K::Unkeyword(keyword(c, "UNKEYWORD")?),
        // RFC 5032 §3: `"OLDER" SP nz-number` / `"YOUNGER" SP nz-number`, in seconds.
        b"OLDER" => {
            c.sp("after OLDER")?;
            K::Older(c.nz_number("OLDER interval")?)
        }
        b"YOUNGER" => {
            c.sp("after YOUNGER")?;
            K::Younger(c.nz_number("YOUNGER interval")?)
        }
        b"LARGER" => {
            c.sp("after LARGER")?;
            K::Larger(c.number("LARGER size")?)
        }
        b"SMALLER" => {
            c.sp("after SMALLER")?;
            K::Smaller(c.number("SMALLER size")?)
        }
        b"UID" => {
            c.sp("after UID")?;
            K::Uid(c.sequence_set()?)
        }
        b"NOT" => {
            c.sp("after NOT")?;
            K::Not(Box::new(key(c, mode, depth + 1, budget)?))
        }
        b"MODSEQ" => K::ModSeq(modseq(c)?),
        b"SAVEDBEFORE" => K::SavedBefore(date_arg(c, "SAVEDBEFORE")?),
        b"SAVEDON" => K::SavedOn(date_arg(c, "SAVEDON")?),
        b"SAVEDSINCE" => K::SavedSince(date_arg(c, "SAVEDSINCE")?),
        b"SAVEDATESUPPORTED" => K::SaveDateSupported,
        _ => return Err(format!("Unknown search key {}", show(name))),
    })
}

/// A parenthesised list of keys (the `(` is next): all of them must match.
fn group(c: &mut Cursor, mode: Charset, depth: usize, budget: &mut usize) -> PResult<SearchKey> {
    c.eat(b'(');
    if c.peek() == Some(b')') {
        return Err("Empty parenthesised search criteria".to_string());
    }
    let mut keys = Vec::new();
    loop {
        keys.push(key(c, mode, depth + 1, budget)?);
        if c.eat(b')') {
            return Ok(SearchKey::And(keys));
        }
        if c.at_end() {
            return Err("Missing ')' in search criteria".to_string());
        }
        c.sp("between search keys")?;
    }
}

/// The arguments of `HEADER field-name string`: the name must be a valid header field name
/// (printable ASCII, no colon), else no message could ever match and the client has a bug.
fn header(c: &mut Cursor, mode: Charset) -> PResult<SearchKey> {
    c.sp("after HEADER")?;
    let field = c.astring_utf8("header field name")?;
    if field.is_empty()
        || field
            .bytes()
            .any(|b| !(0x21..0x7f).contains(&b) || b == b':')
    {
        return Err(format!(
            "Invalid header field name \"{}\"",
            show(field.as_bytes())
        ));
    }
    Ok(SearchKey::Header(
        field,
        text(c, mode, "HEADER field name")?,
    ))
}

/// The argument of `MODSEQ`. RFC 7162 §3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP
/// mod-sequence-valzer; the per-flag entry is checked, then ignored (pimap keeps one modseq
/// per message).
fn modseq(c: &mut Cursor) -> PResult<u64> {
    c.sp("after MODSEQ")?;
    if c.peek() == Some(b'"') {
        let entry = c.string("MODSEQ entry name")?;
        if !entry.to_ascii_lowercase().starts_with(b"/flags/") {
            return Err(format!("Invalid MODSEQ entry name \"{}\"", show(&entry)));
        }
        c.sp("after the MODSEQ entry name")?;
        let t = c.atom("MODSEQ entry type")?;
        if !["priv", "shared", "all"]
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(t))
        {
            return Err(format!(
                "Invalid MODSEQ entry type {} (expected priv, shared or all)",
                show(t)
            ));
        }
        c.sp("after the MODSEQ entry type")?;
    }
    c.mod_seq("MODSEQ value")
}
