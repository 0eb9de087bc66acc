//! Unit tests over hand-written messages, each in LF form through `to_crlf` and in CRLF form.
//! Expected strings were checked against Dovecot 2.3.19 (tests/mime_dovecot.rs does that for
//! a whole corpus).

use super::*;
use crate::imap::types::SectionText;

fn both(lf: &str) -> [Vec<u8>; 2] {
    let crlf = to_crlf(lf.as_bytes()).into_owned();
    [crlf.clone(), to_crlf(&crlf).into_owned()]
}

fn bs(m: &[u8], ext: bool) -> String {
    let mut out = Vec::new();
    body_structure(m, ext, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn sec(m: &[u8], part: &[u32], text: Option<SectionText>) -> Option<String> {
    section(
        m,
        &Section {
            part: part.to_vec(),
            text,
        },
    )
    .map(|v| String::from_utf8_lossy(&v).into_owned())
}

const MULTI: &str = "Subject: hi\nContent-Type: multipart/mixed; boundary=b\n\npre\n--b\n\none\n--b\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--b--\nepi\n";

#[test]
fn to_crlf_converts_bare_lf_only() {
    assert_eq!(&*to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    assert!(matches!(to_crlf(b"a\r\n"), Cow::Borrowed(_)));
}

#[test]
fn envelope_raw_and_defaults() {
    for m in both("From: \"A\" <a@b>\nSubject: =?utf-8?q?x?=\n  folded\nTo: undisclosed-recipients:;\n\nbody\n") {
        let mut out = Vec::new();
        envelope(&m, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "(NIL \"=?utf-8?q?x?= folded\" ((\"A\" NIL \"a\" \"b\")) ((\"A\" NIL \"a\" \"b\")) ((\"A\" NIL \"a\" \"b\")) \
             ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
        );
    }
}

#[test]
fn bodystructure_single_part_defaults() {
    for m in both("Subject: x\n\nline1\nline2\n") {
        assert_eq!(
            bs(&m, true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2 NIL NIL NIL NIL)"
        );
        assert_eq!(
            bs(&m, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)"
        );
    }
}

#[test]
fn bodystructure_extension_fields() {
    let m = both("Content-Type: TEXT/Plain; Charset=UTF-8; name*0=\"x\"; name*1=\"y\"\nContent-ID: <id>\nContent-Transfer-Encoding: Quoted-Printable\nContent-Disposition: Attachment; filename=x.txt\nContent-Language: en, de\nContent-Location: http://x/\nContent-MD5: abc\n\nl1\n");
    assert_eq!(
        bs(&m[0], true),
        "(\"TEXT\" \"Plain\" (\"Charset\" \"UTF-8\" \"name\" \"xy\") \"<id>\" NIL \"Quoted-Printable\" 4 1 \"abc\" (\"Attachment\" (\"filename\" \"x.txt\")) (\"en\" \"de\") \"http://x/\")"
    );
}

#[test]
fn bodystructure_multipart_and_rfc822() {
    for m in both(MULTI) {
        assert_eq!(
            bs(&m, true),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 28 (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) \
             (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) \
             \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)"
        );
    }
}

#[test]
fn multipart_without_parts_gets_empty_part() {
    let m = both("Content-Type: multipart/mixed\n\nno boundary\n");
    assert_eq!(
        bs(&m[0], false),
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")"
    );
}

#[test]
fn sections() {
    for m in both(MULTI) {
        assert_eq!(
            sec(&m, &[], Some(SectionText::Header)).unwrap(),
            "Subject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        );
        assert!(sec(&m, &[], Some(SectionText::Text))
            .unwrap()
            .starts_with("pre\r\n--b"));
        assert_eq!(sec(&m, &[1], None).unwrap(), "one");
        assert_eq!(sec(&m, &[1], Some(SectionText::Mime)).unwrap(), "\r\n");
        assert_eq!(
            sec(&m, &[2], None).unwrap(),
            "Subject: inner\r\n\r\ninner body"
        );
        assert_eq!(
            sec(&m, &[2], Some(SectionText::Header)).unwrap(),
            "Subject: inner\r\n\r\n"
        );
        assert_eq!(
            sec(&m, &[2], Some(SectionText::Text)).unwrap(),
            "inner body"
        );
        assert_eq!(sec(&m, &[2, 1], None).unwrap(), "inner body");
        assert_eq!(
            sec(&m, &[2, 1], Some(SectionText::Mime)).unwrap(),
            "Subject: inner\r\n\r\n"
        );
        assert_eq!(sec(&m, &[3], None), None);
        assert_eq!(sec(&m, &[1], Some(SectionText::Header)), None);
        assert_eq!(
            sec(
                &m,
                &[],
                Some(SectionText::HeaderFields(vec!["subject".into()]))
            )
            .unwrap(),
            "Subject: hi\r\n\r\n"
        );
        assert_eq!(sec(&m, &[], None).unwrap().as_bytes(), &m[..]);
    }
}

#[test]
fn single_part_numbers() {
    for m in both("X-A: 1\nSubject: s\n  folded\n\nbody\n") {
        assert_eq!(sec(&m, &[1], None).unwrap(), "body\r\n");
        assert_eq!(
            sec(&m, &[1], Some(SectionText::Mime)).unwrap(),
            "X-A: 1\r\nSubject: s\r\n  folded\r\n\r\n"
        );
        assert_eq!(sec(&m, &[1, 1], None), None);
        assert_eq!(sec(&m, &[2], None), None);
        assert_eq!(
            sec(
                &m,
                &[],
                Some(SectionText::HeaderFieldsNot(vec!["X-A".into()]))
            )
            .unwrap(),
            "Subject: s\r\n  folded\r\n\r\n"
        );
    }
}

#[test]
fn binary_decodes_transfer_encodings() {
    let m = to_crlf(b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\n\naGVs\nbG8=\n--b\nContent-Transfer-Encoding: quoted-printable\n\na=3Db =\nc  \nd\n--b\nContent-Transfer-Encoding: x-uue\n\nx\n--b--\n").into_owned();
    let data = |part: &[u32]| binary(&m, part).map(|b| b.map(|b| b.data));
    assert_eq!(data(&[1]), Ok(Some(b"hello".to_vec())));
    assert_eq!(data(&[2]), Ok(Some(b"a=b c\r\nd".to_vec())));
    assert_eq!(data(&[3]), Err(super::binary::Undecodable::UnknownCte));
    assert_eq!(data(&[4]), Ok(None));
}

#[test]
fn search_doc_decodes() {
    let m = to_crlf("Subject: =?utf-8?q?Caf=C3=A9?= time\nFrom: Joe <joe@x>\nDate: Tue, 4 Jun 2002 21:46:59 -0400\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nSo=C3=9Fe und Br=C3=B6tchen\n".as_bytes()).into_owned();
    let d = SearchDoc::new(&m);
    assert!(d.header_contains("SUBJECT", "café"));
    assert!(d.header_contains("from", "JOE@X"));
    assert!(d.header_contains("from", ""));
    assert!(!d.header_contains("cc", ""));
    assert!(d.body_contains("BRÖTCHEN"));
    assert!(!d.body_contains("café"));
    assert!(d.text_contains("café"));
    assert_eq!(
        d.sent_date(),
        Some(Date {
            year: 2002,
            month: 6,
            day: 4
        })
    );
    let p = Parsed::new(&m);
    assert!(p.search_doc().body_contains("soße"));
}

#[test]
fn deep_nesting_is_bounded() {
    let mut m = String::new();
    for i in 0..500 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
        ));
    }
    m.push_str("\nleaf\n");
    let m = to_crlf(m.as_bytes()).into_owned();
    let mut out = Vec::new();
    body_structure(&m, true, &mut out);
    assert!(out.len() < 100_000);
    let mut m2 = String::new();
    for _ in 0..500 {
        m2.push_str("Content-Type: message/rfc822\n\n");
    }
    let mut out = Vec::new();
    body_structure(m2.as_bytes(), true, &mut out);
    envelope(m2.as_bytes(), &mut out);
}

#[test]
fn never_panics_on_garbage() {
    let samples: [&[u8]; 8] = [
        b"",
        b"\r\n",
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
        b"From: (((\r\nTo: \"\\\r\nCc: <@\r\n\r\n",
        b"Content-Type: text/plain; a*=\"; b*0*=x; b*9=y\r\n\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",
        b":\r\n \r\n\t\r\n\r\n",
        b"Content-Type: multipart/digest; boundary=a\r\n\r\n--a\r\n--a--",
    ];
    for m in samples {
        let p = Parsed::new(m);
        let mut out = Vec::new();
        p.envelope(&mut out);
        p.body_structure(true, &mut out);
        for part in [&[][..], &[1], &[1, 1], &[0], &[u32::MAX]] {
            for text in [
                None,
                Some(SectionText::Header),
                Some(SectionText::Text),
                Some(SectionText::Mime),
            ] {
                let _ = p.section(&Section {
                    part: part.to_vec(),
                    text,
                });
            }
            let _ = p.binary(part);
        }
        let _ = p.search_doc().text_contains("x");
    }
}

#[test]
fn search_doc_survives_deep_nesting() {
    let mut m = String::new();
    for i in 0..300 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
        ));
    }
    m.push_str("\r\nleaf\r\n");
    let _ = SearchDoc::new(m.as_bytes()).body_contains("leaf");
    let deep = "Content-Type: message/rfc822\r\n\r\n".repeat(300);
    let _ = SearchDoc::new(deep.as_bytes()).text_contains("x");
}

/// Many boundary-like lines under the deepest allowed nesting: one pass, bounded work per line.
#[test]
fn boundary_scan_is_linear() {
    let prefix = "x".repeat(60);
    let mut m = String::new();
    for i in 0..99 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary={prefix}{i:02}\r\n\r\n--{prefix}{i:02}\r\n"
        ));
    }
    m.push_str("\r\n");
    let line = format!("--{prefix}\r\n");
    m.push_str(&line.repeat(20_000));
    let start = std::time::Instant::now();
    let p = Parsed::new(m.as_bytes());
    let mut out = Vec::new();
    p.body_structure(true, &mut out);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

/// The header match without the decoder gives the decoder's answer on every value it takes:
/// random values and needles over an alphabet of letters of both cases, spaces, tabs, the
/// unfolding `\n`, `=?` encoded-word starts, control bytes and non-ASCII.
#[test]
fn header_match_fast_path_agrees_with_decoder() {
    let atoms: &[&str] = &[
        "a",
        "b",
        "A",
        "B",
        "x",
        " ",
        "  ",
        "\t",
        "\n ",
        "\n\t",
        "=?",
        "?=",
        "=?utf-8?q?a=41?=",
        "\u{1}",
        "\r",
        "é",
        "K",
        "\u{212a}",
        "(",
        ")",
        "\"",
        "<",
        ">",
        "@",
        ".",
        "-",
        "_",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut fast_taken = 0;
    for _ in 0..20_000 {
        let mut value = String::new();
        for _ in 0..next(12) {
            value.push_str(atoms[next(atoms.len())]);
        }
        let mut needle = String::new();
        for _ in 0..1 + next(3) {
            needle.push_str(atoms[next(atoms.len())]);
        }
        let needle = super::casemap::fold(&needle);
        let fast = super::search::value_contains(value.as_bytes(), &needle);
        let slow = super::search::value_contains_slow(value.as_bytes(), &needle);
        assert_eq!(fast, slow, "value {value:?} needle {needle:?}");
        if !value.contains("=?") && value.is_ascii() && needle.is_ascii() {
            fast_taken += 1;
        }
    }
    assert!(
        fast_taken > 1000,
        "the fast path was hardly exercised: {fast_taken}"
    );
}

/// The line-by-line header parser the field scanner replaced, kept as the reference it must
/// agree with.
fn reference_parse_header(msg: &[u8], start: usize) -> (Vec<super::parse::Field>, usize, bool) {
    let mut fields: Vec<super::parse::Field> = Vec::new();
    let mut pos = start;
    while pos < msg.len() {
        let line_end = match msg[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => pos + i + 1,
            None => msg.len(),
        };
        let line = &msg[pos..line_end];
        let content = ref_strip_eol(line);
        if content.is_empty() && line_end > pos && line.last() == Some(&b'\n') {
            // RFC 5322 §2.1: the empty line ends the header.
            return (fields, line_end, true);
        }
        let folded = matches!(content.first(), Some(b' ' | b'\t'));
        if folded {
            if let Some(f) = fields.last_mut() {
                f.value.push(b'\n');
                ref_push_value(&mut f.value, content);
                f.raw.end = line_end;
                pos = line_end;
                continue;
            }
        }
        let colon = content.contains(&b':');
        let (name, value) = match content.iter().position(|&b| b == b':') {
            Some(colon) => {
                let mut n = colon;
                while n > 0 && matches!(content[n - 1], b' ' | b'\t') {
                    n -= 1;
                }
                let mut v = colon + 1;
                while v < content.len() && matches!(content[v], b' ' | b'\t') {
                    v += 1;
                }
                (pos..pos + n, &content[v..])
            }
            None => (pos..pos + content.len(), &b""[..]),
        };
        let mut f = super::parse::Field {
            name,
            value: Vec::new(),
            raw: pos..line_end,
            has_colon: colon,
        };
        ref_push_value(&mut f.value, value);
        fields.push(f);
        pos = line_end;
    }
    (fields, msg.len(), false)
}

fn ref_strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn ref_push_value(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if b == 0 {
            out.extend_from_slice("\u{fffd}".as_bytes());
        } else {
            out.push(b);
        }
    }
}

/// Scanning fields in place (and `parse_header_ext`, built on it) finds what the reference
/// parser finds: names, values, raw ranges, the body start and whether the empty line ended
/// the header, on odd headers and on random ones.
#[test]
fn raw_fields_match_parsed_fields() {
    let cases: &[&[u8]] = &[
        b"From: a\r\nSubject: b\r\n\tc\r\n\r\nbody",
        b" folded-first: x\r\nTo:y\r\n  \r\nNoColon\r\nX:\r\n\r\n",
        b"A: 1\nB : 2\n \n\nrest",
        b"Trailing: no end",
        b"Nul: a\0b\r\n\r\n",
        b"\r\n",
        b"",
        b"X: y\r",
    ];
    for m in cases {
        check_against_reference(m);
    }
    let atoms: &[&[u8]] = &[
        b"A",
        b":",
        b" ",
        b"\t",
        b"\r\n",
        b"\n",
        b"\r",
        b"\0",
        b"x",
        b"\r\n\r\n",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let mut m = Vec::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut s = state;
        for _ in 0..(s % 16) {
            s /= 16;
            if s == 0 {
                s = state.rotate_left(17);
            }
            m.extend_from_slice(atoms[(s % atoms.len() as u64) as usize]);
        }
        check_against_reference(&m);
    }
}

fn check_against_reference(m: &[u8]) {
    let (fields, body, complete) = reference_parse_header(m, 0);
    let (f2, b2, c2) = super::parse::parse_header_ext(m, 0);
    assert_eq!((b2, c2, f2.len()), (body, complete, fields.len()), "{m:?}");
    let mut it = super::parse::RawFields::new(m, 0);
    let raws: Vec<_> = it.by_ref().collect();
    assert_eq!((it.body, it.complete), (body, complete), "{m:?}");
    assert_eq!(raws.len(), fields.len(), "{m:?}");
    for (r, f) in raws.iter().zip(&fields) {
        let mut v = Vec::new();
        r.value_into(m, &mut v);
        assert_eq!(
            (&r.name, &r.raw, r.has_colon, &v),
            (&f.name, &f.raw, f.has_colon, &f.value)
        );
    }
}

#[test]
fn address_search_text_like_dovecot() {
    let t = |v: &str| String::from_utf8(search::address_search_text(v.as_bytes())).unwrap();
    assert_eq!(
        t("<user-from (comment)@ (comment) domain.org>"),
        "<user-from@domain.org>"
    );
    assert_eq!(
        t("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>, x@y.test"),
        "Pete <pete@silly.test>, <x@y.test>"
    );
    assert_eq!(
        t("G:Ed Jones <c@a.test>,j@w.test;, U R:;, \"a\\\"b\" <@r:q@x>"),
        "G: \"Ed Jones\" <c@a.test>, <j@w.test>;, \"U R\":;, \"a\\\"b\" <@r:q@x>"
    );
    assert_eq!(
        t("=?utf-8?q?J=C3=B6rg?= <j@x>"),
        "=?utf-8?q?J=C3=B6rg?= <j@x>"
    );
    assert_eq!(t(""), "");
    for m in both("From: <a (zz)@ b.example>\nTo: Bob <bob(y)@ex>\n\nbody\n") {
        let d = SearchDoc::new(&m);
        assert!(d.address_contains("From", "a@b.example"));
        assert!(!d.address_contains("From", "zz"));
        assert!(d.header_contains("From", "zz"));
        assert!(d.address_contains("To", "BOB <bob@ex>"));
        assert!(d.address_contains("To", ""));
        assert!(!d.address_contains("Cc", ""));
    }
}
