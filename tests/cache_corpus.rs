//! The metadata cache answers exactly what the uncached path answers, for every message of a
//! corpus of real mail (CPython's email test data, mail-parser's test messages,
//! `tests/data/mime/*.eml`), with LF and CRLF line ends: `store::cache::compute` against the
//! one-item `mime` functions FETCH uses without a cache (ENVELOPE, BODY, BODYSTRUCTURE), the
//! header sections served from the cached header block against the same sections of the
//! whole message, and SEARCH header keys and sent dates on the header block against the whole
//! message. Then every entry goes through the file format and back unchanged.

use pimap::imap::types::{Section, SectionText};
use pimap::mime::{self, SearchDoc};
use pimap::store::cache::{self, codec};
use std::path::{Path, PathBuf};
use std::process::Command;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "eml") {
            out.push(p);
        }
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import test, os; print(os.path.dirname(test.__file__))",
        ])
        .output()
    {
        let dir =
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("test_email/data");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("msg_") && n.ends_with(".txt") {
                files.push(e.path());
            }
        }
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(reg) = home.map(|c| c.join("registry/src")) {
        for idx in std::fs::read_dir(reg).into_iter().flatten().flatten() {
            for k in std::fs::read_dir(idx.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if k.file_name()
                    .to_string_lossy()
                    .starts_with("mail-parser-0.11")
                {
                    walk(&k.path().join("resources/eml"), &mut files);
                }
            }
        }
    }
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mime"),
        &mut files,
    );
    files.sort();
    files.dedup();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

fn sections() -> Vec<Section> {
    let fields = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        Section {
            part: vec![],
            text: Some(SectionText::Header),
        },
        Section {
            part: vec![],
            text: Some(SectionText::HeaderFields(fields(&[
                "From",
                "To",
                "Cc",
                "Subject",
                "Date",
                "Message-ID",
                "In-Reply-To",
                "References",
                "Content-Type",
            ]))),
        },
        Section {
            part: vec![],
            text: Some(SectionText::HeaderFields(fields(&["x-nothing-like-this"]))),
        },
        Section {
            part: vec![],
            text: Some(SectionText::HeaderFieldsNot(fields(&[
                "Received", "subject",
            ]))),
        },
    ]
}

const KEYS: &[(&str, &str)] = &[
    ("From", "a"),
    ("From", "barry"),
    ("To", "example"),
    ("Cc", ""),
    ("Subject", "test"),
    ("Message-ID", "@"),
    ("X-Mailer", ""),
    ("Content-Type", "multipart"),
];

#[test]
fn cached_answers_equal_uncached_for_the_corpus() {
    let corpus = corpus();
    assert!(corpus.len() > 100, "corpus missing: {}", corpus.len());
    let (mut checked, mut with_header) = (0, 0);
    for raw in &corpus {
        let lf: Vec<u8> = String::from_utf8_lossy(raw)
            .replace("\r\n", "\n")
            .into_bytes();
        for variant in [raw.clone(), lf] {
            let msg = mime::to_crlf(&variant);
            let m = cache::compute(&msg);
            let mut e = Vec::new();
            mime::envelope(&msg, &mut e);
            assert_eq!(m.envelope, e);
            let mut b = Vec::new();
            mime::body_structure(&msg, false, &mut b);
            assert_eq!(m.body, b);
            let mut bs = Vec::new();
            mime::body_structure(&msg, true, &mut bs);
            assert_eq!(m.bodystructure, bs);
            assert_eq!(m.vsize, msg.len() as u64);
            assert_eq!(m.preview, mime::preview::preview(&msg).into_bytes());
            if let Some(h) = &m.header {
                with_header += 1;
                for s in sections() {
                    assert_eq!(mime::section(h, &s), mime::section(&msg, &s), "{s:?}");
                }
                let (full, head) = (SearchDoc::new(&msg), SearchDoc::new(h));
                for (name, needle) in KEYS {
                    assert_eq!(
                        head.header_contains(name, needle),
                        full.header_contains(name, needle),
                        "{name} {needle}"
                    );
                }
                assert_eq!(head.sent_date(), full.sent_date());
            }
            let rec = codec::Record::Put {
                base: "b".into(),
                size: 1,
                meta: m.clone(),
            };
            let mut buf = Vec::new();
            if codec::encode(&rec, &mut buf) {
                assert_eq!(codec::decode(&buf), Ok((rec, buf.len())));
            }
            checked += 1;
        }
    }
    println!("{checked} messages checked, {with_header} with a cached header block");
    assert!(with_header * 10 > checked * 9);
}
