//! FETCH items (RFC 3501 §6.4.5 / §9 `fetch-att`, RFC 3516 BINARY, RFC 7162 MODSEQ and
//! CHANGEDSINCE, RFC 8514 SAVEDATE, RFC 8970 PREVIEW).
//!
//! ```text
//! fetch       = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
//!               fetch-att / "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]
//! fetch-att   = "ENVELOPE" / "FLAGS" / "INTERNALDATE" / "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] /
//!               "BODY" ["STRUCTURE"] / "UID" / "BODY" section ["<" number "." nz-number ">"] /
//!               "BODY.PEEK" section ["<" number "." nz-number ">"] /
//!               "BINARY" [".PEEK"] section-binary [partial] / "BINARY.SIZE" section-binary / "MODSEQ" /
//!               "SAVEDATE" / "PREVIEW" [SP "(" "LAZY" *(SP "LAZY") ")"]
//! section     = "[" [section-spec] "]"
//! section-spec = section-msgtext / (section-part ["." section-text])
//! section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
//! section-text = section-msgtext / "MIME"
//! ```

use super::lexer::{show, Cursor, PResult};
use crate::imap::encode::is_atom_char;
use crate::imap::types::*;

/// The FETCH arguments after the sequence set: items, then optional modifiers
/// `(CHANGEDSINCE n [VANISHED])` (RFC 7162 §3.1.4.1, §3.2.6).
pub(crate) fn fetch_items(c: &mut Cursor) -> PResult<(Vec<FetchAttr>, Option<u64>, bool)> {
    let mut items = Vec::new();
    if c.eat(b'(') {
        if !c.eat(b')') {
            loop {
                fetch_att(c, &mut items, true)?;
                if c.eat(b')') {
                    break;
                }
                c.sp("between FETCH items")?;
            }
        }
    } else {
        fetch_att(c, &mut items, true)?;
    }
    let mut changed_since = None;
    let mut vanished = false;
    if !c.at_end() {
        c.sp("before FETCH modifiers")?;
        c.expect(b'(', "'(' starting FETCH modifiers")?;
        loop {
            let m = c.atom("FETCH modifier")?;
            if m.eq_ignore_ascii_case(b"CHANGEDSINCE") {
                c.sp("after CHANGEDSINCE")?;
                // RFC 7162 §3.1.4.1 (0 accepted: "everything changed since the beginning").
                changed_since = Some(c.mod_seq("CHANGEDSINCE value")?);
            } else if m.eq_ignore_ascii_case(b"VANISHED") {
                vanished = true;
            } else {
                return Err(format!("Unsupported FETCH modifier {}", show(m)));
            }
            if c.eat(b')') {
                break;
            }
            c.sp("between FETCH modifiers")?;
        }
    }
    Ok((items, changed_since, vanished))
}

fn push_unique(items: &mut Vec<FetchAttr>, a: FetchAttr) {
    // PREVIEW and PREVIEW (LAZY) have one response item: the one without LAZY stays.
    if let FetchAttr::Preview { lazy } = a {
        if let Some(FetchAttr::Preview { lazy: had }) = items
            .iter_mut()
            .find(|x| matches!(x, FetchAttr::Preview { .. }))
        {
            *had = *had && lazy;
            return;
        }
    }
    if !items.contains(&a) {
        items.push(a);
    }
}

/// `"(" fetch-att *(SP fetch-att) ")"` without macros (NOTIFY's MessageNew, RFC 5465 §8).
pub(crate) fn fetch_att_list(c: &mut Cursor) -> PResult<Vec<FetchAttr>> {
    let mut items = Vec::new();
    c.expect(b'(', "'(' starting the FETCH attributes")?;
    loop {
        fetch_att(c, &mut items, false)?;
        if c.eat(b')') {
            return Ok(items);
        }
        c.sp("between FETCH attributes")?;
    }
}

/// One `fetch-att`; macros (`ALL` / `FAST` / `FULL`, RFC 3501 §6.4.5) are expanded. They are
/// accepted inside a parenthesised list too (lenient, as other servers are).
fn fetch_att(c: &mut Cursor, items: &mut Vec<FetchAttr>, allow_macros: bool) -> PResult<()> {
    let start = c.pos();
    let name = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
    let upper = name.to_ascii_uppercase();
    let next_is_end = !matches!(c.peek(), Some(b) if is_atom_char(b));
    use FetchAttr::*;
    let simple = match upper.as_slice() {
        b"ALL" | b"FAST" | b"FULL" if allow_macros && next_is_end => {
            for a in [Flags, InternalDate, Rfc822Size] {
                push_unique(items, a);
            }
            if upper != b"FAST" {
                push_unique(items, Envelope);
            }
            if upper == b"FULL" {
                push_unique(items, Body);
            }
            return Ok(());
        }
        b"ENVELOPE" => Some(Envelope),
        b"FLAGS" => Some(Flags),
        b"INTERNALDATE" => Some(InternalDate),
        b"RFC822" => Some(Rfc822),
        b"RFC822.HEADER" => Some(Rfc822Header),
        b"RFC822.SIZE" => Some(Rfc822Size),
        b"RFC822.TEXT" => Some(Rfc822Text),
        b"BODYSTRUCTURE" => Some(BodyStructure),
        b"UID" => Some(Uid),
        b"MODSEQ" => Some(ModSeq),
        b"SAVEDATE" => Some(SaveDate),
        b"BODY" if c.peek() != Some(b'[') => Some(Body),
        _ => None,
    };
    if let Some(a) = simple {
        if !next_is_end {
            c.set_pos(start);
            return Err(format!(
                "Unknown FETCH item {}",
                show(c.take_while(is_atom_char))
            ));
        }
        push_unique(items, a);
        return Ok(());
    }
    let attr = match upper.as_slice() {
        b"BODY" | b"BODY.PEEK" => {
            let peek = upper == b"BODY.PEEK";
            let section = section(c)?;
            let partial = partial(c)?;
            BodySection {
                peek,
                section,
                partial,
            }
        }
        b"BINARY" | b"BINARY.PEEK" => {
            let peek = upper == b"BINARY.PEEK";
            let part = section_binary(c)?;
            let partial = partial(c)?;
            Binary {
                peek,
                part,
                partial,
            }
        }
        b"BINARY.SIZE" => BinarySize {
            part: section_binary(c)?,
        },
        b"PREVIEW" => preview(c)?,
        _ => {
            c.set_pos(start);
            let shown = c.take_while(|b| is_atom_char(b) && b != b'[');
            return if shown.is_empty() {
                Err(format!("Expected a FETCH item, found {}", c.found()))
            } else {
                Err(format!("Unknown FETCH item {}", show(shown)))
            };
        }
    };
    if matches!(c.peek(), Some(b) if is_atom_char(b)) {
        return Err(format!(
            "Unexpected characters after FETCH item: {}",
            c.found()
        ));
    }
    push_unique(items, attr);
    Ok(())
}

/// `section-part = nz-number *("." nz-number)`, stopping before a `.` that is not followed by
/// a digit (the start of `.HEADER` etc.).
fn section_part(c: &mut Cursor) -> PResult<Vec<u32>> {
    let mut part = Vec::new();
    if !matches!(c.peek(), Some(b'0'..=b'9')) {
        return Ok(part);
    }
    loop {
        part.push(c.nz_number("section part number")?);
        if part.len() > 100 {
            return Err("Section part number nested too deeply".to_string());
        }
        if c.peek() == Some(b'.') && matches!(c.peek_at(1), Some(b'0'..=b'9')) {
            c.eat(b'.');
        } else {
            return Ok(part);
        }
    }
}

/// `section = "[" [section-spec] "]"`.
pub(super) fn section(c: &mut Cursor) -> PResult<Section> {
    c.expect(b'[', "'[' starting the section")?;
    let part = section_part(c)?;
    let mut text = None;
    if c.peek() != Some(b']') {
        if !part.is_empty() {
            c.expect(b'.', "'.' after the part number")?;
        }
        let word = c.take_while(|b| b.is_ascii_alphabetic() || b == b'.');
        let upper = word.to_ascii_uppercase();
        text = Some(match upper.as_slice() {
            b"HEADER" => SectionText::Header,
            b"TEXT" => SectionText::Text,
            b"MIME" if part.is_empty() => return Err("Section MIME requires a part number (e.g. BODY[1.MIME])".to_string()),
            b"MIME" => SectionText::Mime,
            b"HEADER.FIELDS" => SectionText::HeaderFields(header_list(c)?),
            b"HEADER.FIELDS.NOT" => SectionText::HeaderFieldsNot(header_list(c)?),
            _ => {
                return Err(format!(
                    "Invalid section {}: expected HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME",
                    if word.is_empty() { c.found() } else { show(word) }
                ))
            }
        });
    }
    c.expect(b']', "']' closing the section")?;
    Ok(Section { part, text })
}

/// `header-list = "(" header-fld-name *(SP header-fld-name) ")"`, `header-fld-name = astring`.
fn header_list(c: &mut Cursor) -> PResult<Vec<String>> {
    c.sp("before the header field list")?;
    c.expect(b'(', "'(' starting the header field list")?;
    let mut names = Vec::new();
    loop {
        let n = c.astring_utf8("header field name")?;
        if n.is_empty() || n.bytes().any(|b| !(0x21..0x7f).contains(&b) || b == b':') {
            return Err(format!(
                "Invalid header field name \"{}\"",
                show(n.as_bytes())
            ));
        }
        names.push(n);
        if c.eat(b')') {
            return Ok(names);
        }
        c.sp("between header field names")?;
    }
}

/// RFC 8970 §6: `"PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]`, `preview-mod =
/// "LAZY"`; the cursor is after `PREVIEW`. A list whose first word is not LAZY is left alone:
/// after the last item it is the FETCH modifiers (`FETCH 1 PREVIEW (CHANGEDSINCE 5)`).
fn preview(c: &mut Cursor) -> PResult<FetchAttr> {
    let start = c.pos();
    let plain = FetchAttr::Preview { lazy: false };
    if !(c.peek() == Some(b' ') && c.peek_at(1) == Some(b'(')) {
        return Ok(plain);
    }
    c.sp("after PREVIEW")?;
    c.eat(b'(');
    let first = c.take_while(is_atom_char);
    if !first.eq_ignore_ascii_case(b"LAZY") {
        c.set_pos(start);
        return Ok(plain);
    }
    loop {
        if c.eat(b')') {
            return Ok(FetchAttr::Preview { lazy: true });
        }
        c.sp("between PREVIEW modifiers")?;
        let m = c.atom("PREVIEW modifier")?;
        if !m.eq_ignore_ascii_case(b"LAZY") {
            return Err(format!("Unknown PREVIEW modifier {}", show(m)));
        }
    }
}

/// RFC 3516 `section-binary = "[" [section-part] "]"`.
fn section_binary(c: &mut Cursor) -> PResult<Vec<u32>> {
    c.expect(b'[', "'[' starting the BINARY section")?;
    let part = section_part(c)?;
    c.expect(
        b']',
        "']' closing the BINARY section (only part numbers are allowed)",
    )?;
    Ok(part)
}

/// `"<" number "." nz-number ">"`.
fn partial(c: &mut Cursor) -> PResult<Option<(u32, u32)>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let offset = c.number("partial offset")?;
    c.expect(
        b'.',
        "'.' between partial offset and length (<offset.length>)",
    )?;
    let len = c.nz_number("partial length")?;
    c.expect(b'>', "'>' closing the partial range")?;
    Ok(Some((offset, len)))
}
