//! pimap's ENVELOPE / BODY / BODYSTRUCTURE / BODY[section] / RFC822.SIZE against Dovecot 2.3.
//!
//! A corpus of real messages (CPython's email test data, mail-parser's test messages, and
//! `tests/data/mime/*.eml`) goes into a private Maildir served by a real Dovecot on 127.0.0.1;
//! a tiny IMAP client fetches every item for every message (and every MIME part it has) and
//! compares it with `pimap::mime`'s output for the same file. Strings are compared by value,
//! so Dovecot's choice of quoted vs literal form does not matter. NUL bytes, which an IMAP
//! literal can't carry, are compared after Dovecot's substitution (NUL → 0x80).
//!
//! Skipped (with a note) when Dovecot is not installed. Run:
//! `cargo test --test mime_dovecot -- --nocapture`.

use pimap::imap::types::{Section, SectionText};
use pimap::mime::{self, Parsed};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Mismatching items we accept. Known differences (Dovecot 2.3.19, this corpus: 3 items):
/// `BODY[n.HEADER.FIELDS (...)]` of a message/rfc822 part whose encapsulated "header" is only
/// lines without a colon and has no empty line (malformed/022, rfc/008, rfc822-base64.eml):
/// Dovecot returns "" where we return the CRLF it adds in every other HEADER.FIELDS case we
/// probed (including the same shape at the top level). Malformed input only; left as is
/// rather than special-cased without understanding the rule.
const ALLOWED_MISMATCHES: usize = 3;

fn dovecot_bin() -> Option<PathBuf> {
    ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

// ---------------------------------------------------------------------------------------------
// Corpus

fn corpus() -> Vec<(String, Vec<u8>)> {
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
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("msg_") && n.ends_with(".txt") {
                    files.push(e.path());
                }
            }
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(reg) = cargo_home.map(|c| c.join("registry/src")) {
        for idx in std::fs::read_dir(reg).into_iter().flatten().flatten() {
            for krate in std::fs::read_dir(idx.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let n = krate.file_name().to_string_lossy().into_owned();
                if n.starts_with("mail-parser-0.11") {
                    walk(&krate.path().join("resources/eml"), &mut files);
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
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in files {
        if let Ok(data) = std::fs::read(&f) {
            // mail-parser ships each message in several versions of one crate; keep one copy.
            if seen.insert(data.clone()) {
                out.push((f.display().to_string(), data));
            }
        }
    }
    out
}

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

// ---------------------------------------------------------------------------------------------
// A private Dovecot

struct Dovecot {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let conf = self.dir.join("dovecot.conf");
        let _ = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(31143)
}

/// uid, gid, user name and group name of this process.
fn current_ids() -> (u32, u32, String, String) {
    let id = |arg: &str| {
        Command::new("id")
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    (
        id("-u").parse().unwrap_or(0),
        id("-g").parse().unwrap_or(0),
        id("-un"),
        id("-gn"),
    )
}

fn start_dovecot(bin: PathBuf, messages: &[(String, Vec<u8>)]) -> Dovecot {
    let dir = std::env::temp_dir().join(format!("pimap-mime-dovecot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let maildir = dir.join("home/Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::create_dir_all(dir.join("run")).unwrap();
    for (i, (_, data)) in messages.iter().enumerate() {
        std::fs::write(maildir.join(format!("cur/{:06}.corpus:2,", i + 1)), data).unwrap();
    }
    let (uid, gid, user, group) = current_ids();
    // Dovecot refuses to run mail processes as root: serve the mail as `nobody` then. Not
    // root, every service runs as this user, and its sockets' group (default_internal_group,
    // else the `dovecot` group, which a normal user cannot chown to) is this user's.
    let (mail_uid, mail_gid, service_user, internal_group) = if uid == 0 {
        (65534, 65534, "nobody".to_string(), String::new())
    } else {
        (
            uid,
            gid,
            user,
            format!("default_internal_group = {group}\n"),
        )
    };
    if uid == 0 {
        let _ = Command::new("chown")
            .arg("-R")
            .arg(format!("{mail_uid}:{mail_gid}"))
            .arg(dir.join("home"))
            .status();
        let _ = Command::new("chmod").arg("755").arg(&dir).status();
    }
    std::fs::write(
        dir.join("passwd"),
        format!(
            "u:{{PLAIN}}p:{mail_uid}:{mail_gid}::{}::\n",
            dir.join("home").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "base_dir = {d}/run\nlog_path = {d}/log\nprotocols = imap\nlisten = 127.0.0.1\nssl = no\n\
         disable_plaintext_auth = no\nauth_mechanisms = plain\nmail_location = maildir:{d}/home/Maildir\n\
         default_login_user = {service_user}\ndefault_internal_user = {service_user}\n{internal_group}\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {port}\n  }}\n}}\n\
         service anvil {{\n  chroot =\n}}\n"
    );
    std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
    let st = Command::new(&bin)
        .arg("-c")
        .arg(dir.join("dovecot.conf"))
        .status()
        .expect("run dovecot");
    assert!(st.success(), "dovecot failed to start; see {}/log", d);
    Dovecot { dir, bin, port }
}

// ---------------------------------------------------------------------------------------------
// A minimal IMAP client

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    tag: u32,
}

impl Client {
    fn connect(port: u16) -> Client {
        let deadline = Instant::now() + Duration::from_secs(10);
        let s = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("connect to dovecot: {e}"),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            tag: 0,
        };
        let greeting = c.read_response();
        assert!(
            greeting.starts_with(b"* OK"),
            "greeting: {}",
            String::from_utf8_lossy(&greeting)
        );
        c
    }

    /// One response line, with any literals it carries.
    fn read_response(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            self.r
                .read_until(b'\n', &mut line)
                .expect("read from dovecot");
            assert!(!line.is_empty(), "dovecot closed the connection");
            out.extend_from_slice(&line);
            let l = line.strip_suffix(b"\r\n").unwrap_or(&line);
            let lit = l.strip_suffix(b"}").and_then(|l| {
                let open = l.iter().rposition(|&b| b == b'{')?;
                std::str::from_utf8(&l[open + 1..])
                    .ok()?
                    .parse::<usize>()
                    .ok()
            });
            match lit {
                Some(n) => {
                    let mut buf = vec![0; n];
                    self.r.read_exact(&mut buf).expect("read literal");
                    out.extend_from_slice(&buf);
                }
                None => return out,
            }
        }
    }

    /// Run a command; the untagged responses, and panics unless it ends in OK.
    fn cmd(&mut self, c: &str) -> Vec<Vec<u8>> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.w
            .write_all(format!("{tag} {c}\r\n").as_bytes())
            .unwrap();
        let mut untagged = Vec::new();
        loop {
            let r = self.read_response();
            if r.starts_with(tag.as_bytes()) {
                assert!(
                    r[tag.len()..].starts_with(b" OK"),
                    "{c}: {}",
                    String::from_utf8_lossy(&r)
                );
                return untagged;
            }
            untagged.push(r);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IMAP values, compared by meaning

#[derive(Debug, Clone, PartialEq)]
enum V {
    Nil,
    Atom(Vec<u8>),
    Str(Vec<u8>),
    List(Vec<V>),
}

struct Rd<'a> {
    b: &'a [u8],
    i: usize,
}

impl Rd<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
    fn value(&mut self) -> Option<V> {
        self.sp();
        match self.peek()? {
            b'(' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.sp();
                    if self.peek()? == b')' {
                        self.i += 1;
                        return Some(V::List(items));
                    }
                    items.push(self.value()?);
                }
            }
            b'"' => {
                self.i += 1;
                let mut s = Vec::new();
                loop {
                    let c = self.peek()?;
                    self.i += 1;
                    match c {
                        b'"' => return Some(V::Str(s)),
                        b'\\' => {
                            s.push(self.peek()?);
                            self.i += 1;
                        }
                        _ => s.push(c),
                    }
                }
            }
            b'{' => {
                let close = self.i + self.b[self.i..].iter().position(|&c| c == b'}')?;
                let n: usize = std::str::from_utf8(&self.b[self.i + 1..close])
                    .ok()?
                    .parse()
                    .ok()?;
                let start = close + 3;
                self.i = start + n;
                Some(V::Str(self.b.get(start..start + n)?.to_vec()))
            }
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == b' ' || c == b')' || c == b'(' {
                        break;
                    }
                    if c == b'[' {
                        // Item names like BODY[HEADER.FIELDS (FROM)] hold spaces.
                        let close = self.b[self.i..].iter().position(|&c| c == b']')?;
                        self.i += close;
                    }
                    self.i += 1;
                }
                let a = self.b[start..self.i].to_vec();
                Some(if a.eq_ignore_ascii_case(b"NIL") {
                    V::Nil
                } else {
                    V::Atom(a)
                })
            }
        }
    }
}

fn parse_value(b: &[u8]) -> Option<V> {
    let mut r = Rd { b, i: 0 };
    let v = r.value()?;
    r.sp();
    (r.i == b.len()).then_some(v)
}

/// `* n FETCH (name value ...)` → (n, [(NAME, value)]).
fn parse_fetch(resp: &[u8]) -> Option<(u32, Vec<(String, V)>)> {
    let rest = resp.strip_prefix(b"* ")?;
    let sp = rest.iter().position(|&b| b == b' ')?;
    let n: u32 = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    let rest = rest[sp + 1..].strip_prefix(b"FETCH ")?;
    let rest = rest.strip_suffix(b"\r\n").unwrap_or(rest);
    let V::List(items) = parse_value(rest)? else {
        return None;
    };
    let mut out = Vec::new();
    let mut it = items.into_iter();
    while let (Some(V::Atom(k)), Some(v)) = (it.next(), it.next()) {
        out.push((String::from_utf8_lossy(&k).to_ascii_uppercase(), v));
    }
    Some((n, out))
}

fn show(v: &V) -> String {
    match v {
        V::Nil => "NIL".into(),
        V::Atom(a) => String::from_utf8_lossy(a).into_owned(),
        V::Str(s) => format!("{:?}", String::from_utf8_lossy(s)),
        V::List(l) => format!("({})", l.iter().map(show).collect::<Vec<_>>().join(" ")),
    }
}

// ---------------------------------------------------------------------------------------------
// Sections to fetch

fn section_spec(s: &Section) -> String {
    let mut p: Vec<String> = s.part.iter().map(|n| n.to_string()).collect();
    match &s.text {
        None => {}
        Some(SectionText::Header) => p.push("HEADER".into()),
        Some(SectionText::Text) => p.push("TEXT".into()),
        Some(SectionText::Mime) => p.push("MIME".into()),
        Some(SectionText::HeaderFields(f)) => p.push(format!("HEADER.FIELDS ({})", f.join(" "))),
        Some(SectionText::HeaderFieldsNot(f)) => {
            p.push(format!("HEADER.FIELDS.NOT ({})", f.join(" ")))
        }
    }
    p.join(".")
}

fn sec(part: &[u32], text: Option<SectionText>) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

/// Every part path of the message (up to a bound), and whether it is message/rfc822.
fn part_paths(p: &mime::parse::Part, prefix: &mut Vec<u32>, out: &mut Vec<(Vec<u32>, bool)>) {
    use mime::parse::Kind;
    if out.len() > 40 {
        return;
    }
    match &p.kind {
        Kind::Multipart(children) => {
            for (i, c) in children.iter().enumerate() {
                prefix.push(i as u32 + 1);
                out.push((prefix.clone(), matches!(c.kind, Kind::Message(_))));
                match &c.kind {
                    Kind::Message(inner) => part_paths(inner, prefix, out),
                    Kind::Multipart(_) => part_paths(c, prefix, out),
                    _ => {}
                }
                prefix.pop();
            }
        }
        Kind::Message(inner) if prefix.is_empty() => {
            prefix.push(1);
            out.push((prefix.clone(), true));
            part_paths(inner, prefix, out);
            prefix.pop();
        }
        _ => {}
    }
}

fn sections_for(p: &Parsed) -> Vec<Section> {
    let fields = || vec!["From".to_string(), "Subject".to_string()];
    let mut v = vec![
        sec(&[], Some(SectionText::Header)),
        sec(&[], Some(SectionText::Text)),
        sec(&[1], None),
        sec(&[1], Some(SectionText::Mime)),
        sec(&[], Some(SectionText::HeaderFields(fields()))),
        sec(&[], Some(SectionText::HeaderFieldsNot(fields()))),
        sec(&[2], None),
        sec(&[1, 1], None),
        sec(&[1, 1, 1], None),
        sec(&[1], Some(SectionText::Header)),
    ];
    let mut paths = Vec::new();
    part_paths(p.root(), &mut Vec::new(), &mut paths);
    for (path, is_msg) in paths {
        v.push(sec(&path, None));
        v.push(sec(&path, Some(SectionText::Mime)));
        // Dovecot: a leaf `n` has `n.1` (itself) but no `n.1.1`.
        for extra in [&[1][..], &[1, 1]] {
            v.push(sec(&[&path[..], extra].concat(), None));
        }
        if is_msg {
            v.push(sec(&path, Some(SectionText::Header)));
            v.push(sec(&path, Some(SectionText::Text)));
            v.push(sec(&path, Some(SectionText::HeaderFields(fields()))));
        }
    }
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(section_spec(s)));
    v
}

fn nul_to_80(b: &[u8]) -> Vec<u8> {
    b.iter().map(|&c| if c == 0 { 0x80 } else { c }).collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn matches_dovecot() {
    let Some(bin) = dovecot_bin() else {
        println!("NOTE: dovecot is not installed; skipping the Dovecot comparison");
        return;
    };
    let messages = corpus();
    assert!(!messages.is_empty(), "no corpus found");
    let dovecot = start_dovecot(bin, &messages);
    let mut c = Client::connect(dovecot.port);
    c.cmd("LOGIN u p");
    let sel = c.cmd("SELECT INBOX");
    let exists = sel
        .iter()
        .find_map(|r| {
            let s = String::from_utf8_lossy(r);
            s.strip_prefix("* ")?
                .strip_suffix(" EXISTS\r\n")?
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    assert_eq!(exists, messages.len(), "dovecot sees every message");

    // Dovecot picks the UID order: map sequence numbers to files by content.
    let mut by_content = std::collections::HashMap::new();
    for (i, (_, data)) in messages.iter().enumerate() {
        by_content.insert(nul_to_80(&mime::to_crlf(data)), i);
    }
    let mut seq_to_msg = vec![usize::MAX; exists + 1];
    for r in c.cmd("FETCH 1:* (BODY.PEEK[])") {
        let Some((n, items)) = parse_fetch(&r) else {
            continue;
        };
        for (k, v) in items {
            if let (true, V::Str(s)) = (k == "BODY[]", v) {
                if let Some(&i) = by_content.get(&s) {
                    seq_to_msg[n as usize] = i;
                }
            }
        }
    }

    let mut total = 0usize;
    let mut equal = 0usize;
    let mut mismatches: Vec<String> = Vec::new();
    for (seq, &idx) in seq_to_msg.iter().enumerate().skip(1) {
        if idx == usize::MAX {
            mismatches.push(format!("seq {seq}: BODY[] matches no corpus file"));
            continue;
        }
        let (name, data) = &messages[idx];
        let crlf = mime::to_crlf(data);
        let parsed = Parsed::new(&crlf);
        let sections = sections_for(&parsed);
        let mut want: Vec<(String, V)> = Vec::new();
        want.push((
            "RFC822.SIZE".into(),
            V::Atom(crlf.len().to_string().into_bytes()),
        ));
        let mut out = Vec::new();
        parsed.envelope(&mut out);
        want.push((
            "ENVELOPE".into(),
            parse_value(&out).unwrap_or(V::Atom(out.clone())),
        ));
        let mut out = Vec::new();
        parsed.body_structure(false, &mut out);
        want.push((
            "BODY".into(),
            parse_value(&out).unwrap_or(V::Atom(out.clone())),
        ));
        let mut out = Vec::new();
        parsed.body_structure(true, &mut out);
        want.push((
            "BODYSTRUCTURE".into(),
            parse_value(&out).unwrap_or(V::Atom(out.clone())),
        ));
        // The free functions must agree with the parsed form.
        let mut free = Vec::new();
        mime::body_structure(&crlf, true, &mut free);
        assert_eq!(
            free, out,
            "{name}: body_structure() != Parsed::body_structure()"
        );
        for s in &sections {
            let bytes = parsed.section(s).unwrap_or_default();
            want.push((
                format!("BODY[{}]", section_spec(s)).to_ascii_uppercase(),
                V::Str(nul_to_80(&bytes)),
            ));
        }
        let items: Vec<String> = ["RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE"]
            .iter()
            .map(|s| s.to_string())
            .chain(
                sections
                    .iter()
                    .map(|s| format!("BODY.PEEK[{}]", section_spec(s))),
            )
            .collect();
        let resp = c.cmd(&format!("FETCH {seq} ({})", items.join(" ")));
        let mut got: Vec<(String, V)> = Vec::new();
        for r in &resp {
            if let Some((n, it)) = parse_fetch(r) {
                if n as usize == seq {
                    got.extend(it);
                }
            }
        }
        for (k, w) in &want {
            total += 1;
            let g = got
                .iter()
                .find(|(gk, _)| gk.eq_ignore_ascii_case(k))
                .map(|(_, v)| v);
            match g {
                Some(g) if g == w => equal += 1,
                Some(g) => mismatches.push(format!(
                    "{name} {k}:\n   dovecot: {}\n   pimap:   {}",
                    show(g),
                    show(w)
                )),
                None => mismatches.push(format!("{name} {k}: missing in Dovecot's response")),
            }
        }
    }
    drop(c);
    println!(
        "mime vs Dovecot: {} messages, {total} items, {equal} equal, {} mismatches",
        exists,
        mismatches.len()
    );
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    assert!(
        mismatches.len() <= ALLOWED_MISMATCHES,
        "{} mismatches (allowed {ALLOWED_MISMATCHES})",
        mismatches.len()
    );
    drop(dovecot);
}

/// Every corpus file cut at many offsets (LF and CRLF): no panics, sane output.
#[test]
fn never_panics_on_truncated_corpus() {
    let messages = corpus();
    for (_, data) in &messages {
        let step = (data.len() / 40).max(1);
        let mut cut = 0;
        while cut <= data.len() {
            let crlf = mime::to_crlf(&data[..cut]);
            for m in [&crlf[..], &data[..cut]] {
                let p = Parsed::new(m);
                let mut out = Vec::new();
                p.envelope(&mut out);
                p.body_structure(true, &mut out);
                p.body_structure(false, &mut out);
                for s in sections_for(&p) {
                    let _ = p.section(&s);
                }
                let _ = p.binary(&[1]);
                let _ = p.binary(&[1, 1]);
                let d = p.search_doc();
                let _ = d.text_contains("a");
                let _ = d.sent_date();
            }
            cut += step;
        }
    }
}
