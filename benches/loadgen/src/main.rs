//! pimap-loadgen: the IMAP load generator behind `benches/run.sh`.
//!
//! Std only, blocking sockets, one thread per session. It speaks IMAP4rev1 (RFC 3501) plus
//! the extensions both pimap and Dovecot advertise that a real client uses: IDLE (RFC 2177),
//! UIDPLUS (RFC 4315, APPENDUID/COPYUID), MOVE (RFC 6851). It parses every response enough to
//! count protocol errors: a tagged NO/BAD the mix does not expect, an untagged BAD/NO, a line
//! that is not `* `, `+ ` or the expected tag, unbalanced parentheses in a FETCH, a FETCH
//! without the items asked for, a missing `* SEARCH`, APPENDUID, literal or IDLE wake-up.
//!
//! Subcommands (all print tab-separated results on stdout; `run.sh` turns them into Markdown):
//!
//! - `gen --dir D --count N [--seed S]`: write a Maildir of N varied messages (plain,
//!   multipart/alternative, attachments; 1 % contain the word `zeppelin` for SEARCH TEXT).
//! - `mix --port P --users U --conns C --secs S --base N --maildir TEMPLATE`: the load mix.
//!   C sessions over users bench01..benchU (password `benchpw`), each in a loop of LOGIN,
//!   SELECT, then per round: FETCH headers+ENVELOPE of 50, FETCH BODYSTRUCTURE of 20, two
//!   whole bodies, a SEARCH, two STOREs, APPEND, COPY, MOVE or STORE \Deleted + EXPUNGE, and
//!   every 5th round an IDLE woken by a delivery (a file written into TEMPLATE/new, %u = user);
//!   LOGOUT and a new session every 20 rounds. Only messages 1..N (the seeded ones, never
//!   expunged) are addressed by sequence number.
//! - `hold --port P --users U --conns C --secs S --ready FILE [--select 0] [--idle 1]`:
//!   C sessions, each LOGIN + SELECT INBOX (none with `--select 0`), in IDLE with `--idle 1`,
//!   then held for S seconds (FILE is created once all are ready).
//! - `probe --port P --user U [--reps R]`: one session timing LOGIN, SELECT,
//!   FETCH 1:* (FLAGS UID), SEARCH TEXT, then the median of R single-message commands (NOOP,
//!   FETCH FLAGS / ENVELOPE / BODYSTRUCTURE / BODY[], STORE, APPEND, UID EXPUNGE, and a NOOP
//!   after a second session changed one message), then SELECT again.
//! - `churn --port P --user U [--reps R]`: only the NOOP-after-another-session's-STORE case
//!   (a workload to profile).
//! - `expunge --port P --user U [--reps R] [--op expunge|uid-expunge|move|copy]`: only the
//!   single-message removal cases, repeated (a workload to profile): APPEND, STORE \Deleted
//!   and EXPUNGE or UID EXPUNGE of the new message, or MOVE / COPY it to `Trash` (created if
//!   missing); prints the median of the timed command.
//! - `corpus --port P --user U --dirs D1:D2 [--limit N]`: APPEND real messages (`*.eml`,
//!   `msg_*.txt`) one by one, each fetched back and compared byte for byte; total time.
//! - `wait --port P [--timeout-ms T]`: poll until the server greets; print the time (ns since
//!   the epoch) the greeting arrived.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PASSWORD: &str = "benchpw";
/// The word `gen` puts in 1 % of the messages, for SEARCH TEXT.
const NEEDLE: &str = "zeppelin";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(sub) = argv.first().cloned() else {
        eprintln!("usage: pimap-loadgen gen|mix|hold|probe|wait --key value ...");
        std::process::exit(2);
    };
    let args = Args::parse(&argv[1..]);
    let r = match sub.as_str() {
        "gen" => gen(&args),
        "mix" => mix(&args),
        "hold" => hold(&args),
        "probe" => probe(&args),
        "wait" => wait(&args),
        "churn" => churn(&args),
        "expunge" => expunge(&args),
        "corpus" => corpus(&args),
        other => Err(format!("unknown subcommand {other}")),
    };
    if let Err(e) = r {
        eprintln!("pimap-loadgen {sub}: {e}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------------------------------
// Arguments and small helpers

struct Args(HashMap<String, String>);

impl Args {
    fn parse(v: &[String]) -> Args {
        let mut m = HashMap::new();
        let mut i = 0;
        while i < v.len() {
            if let Some(k) = v[i].strip_prefix("--") {
                let val = v.get(i + 1).cloned().unwrap_or_default();
                m.insert(k.to_string(), val);
                i += 2;
            } else {
                i += 1;
            }
        }
        Args(m)
    }
    fn str(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
    fn num(&self, k: &str, default: u64) -> Result<u64, String> {
        match self.0.get(k) {
            None => Ok(default),
            Some(s) => s.parse().map_err(|_| format!("--{k}: not a number: {s}")),
        }
    }
    fn addr(&self) -> Result<SocketAddr, String> {
        let host = self.str("host", "127.0.0.1");
        let port = self.num("port", 1143)?;
        format!("{host}:{port}")
            .parse()
            .map_err(|e| format!("bad address: {e}"))
    }
}

/// xorshift64*: deterministic per thread, good enough to pick messages.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }
}

fn user_name(i: u64) -> String {
    format!("bench{:02}", i + 1)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ------------------------------------------------------------------------------------------
// The IMAP client

/// One logical response line: the text with each literal replaced by `""` (for the syntax
/// checks), and the literals' bytes.
struct Line {
    skel: String,
    lits: Vec<Vec<u8>>,
}

#[derive(PartialEq, Debug, Clone, Copy)]
enum Status {
    Ok,
    No,
    Bad,
}

struct Resp {
    status: Status,
    text: String,
    untagged: Vec<Line>,
}

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    n: u64,
    /// Protocol errors seen in lines so far (malformed lines, untagged BAD/NO).
    malformed: Vec<String>,
    /// Messages in the selected mailbox as this session knows it (EXISTS, EXPUNGE).
    count: u64,
}

impl Conn {
    fn connect(addr: SocketAddr) -> Result<Conn, String> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).ok();
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let w = s.try_clone().map_err(|e| format!("clone: {e}"))?;
        let mut c = Conn {
            r: BufReader::with_capacity(64 * 1024, s),
            w,
            n: 0,
            malformed: Vec::new(),
            count: 0,
        };
        let g = c.line()?;
        if !g.skel.starts_with("* OK") {
            return Err(format!("bad greeting: {}", g.skel));
        }
        Ok(c)
    }

    fn set_timeout(&self, d: Duration) {
        self.w.set_read_timeout(Some(d)).ok();
    }

    /// Read one logical line (following literals).
    fn line(&mut self) -> Result<Line, String> {
        let mut skel = Vec::new();
        let mut lits = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = self
                .r
                .read_until(b'\n', &mut buf)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed by server".into());
            }
            if !buf.ends_with(b"\r\n") {
                self.malformed.push("line without CRLF".into());
            }
            while matches!(buf.last(), Some(b'\r' | b'\n')) {
                buf.pop();
            }
            if let Some(len) = literal_len(&buf) {
                if len > 200 << 20 {
                    return Err(format!("literal of {len} bytes"));
                }
                let open = buf.iter().rposition(|&b| b == b'{').unwrap_or(buf.len());
                skel.extend_from_slice(&buf[..open]);
                skel.extend_from_slice(b"\"\"");
                let mut data = vec![0u8; len];
                self.r
                    .read_exact(&mut data)
                    .map_err(|e| format!("read literal: {e}"))?;
                lits.push(data);
                continue;
            }
            skel.extend_from_slice(&buf);
            let skel = String::from_utf8_lossy(&skel).into_owned();
            return Ok(Line { skel, lits });
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.w.write_all(bytes).map_err(|e| format!("write: {e}"))
    }

    fn next_tag(&mut self) -> String {
        self.n += 1;
        format!("L{}", self.n)
    }

    /// Read until the tagged response of `tag`, checking every line.
    fn until_tagged(&mut self, tag: &str, mut untagged: Vec<Line>) -> Result<Resp, String> {
        loop {
            let l = self.line()?;
            if let Some(rest) = l.skel.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                let (st, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let status = match st {
                    "OK" => Status::Ok,
                    "NO" => Status::No,
                    "BAD" => Status::Bad,
                    _ => {
                        self.malformed.push(format!("tagged status {st:?}"));
                        Status::Bad
                    }
                };
                return Ok(Resp {
                    status,
                    text: text.to_string(),
                    untagged,
                });
            }
            self.check_untagged(&l);
            untagged.push(l);
        }
    }

    fn check_untagged(&mut self, l: &Line) {
        if let Some(n) = exists_of(std::slice::from_ref(l)) {
            self.count = n;
        } else if l.skel.starts_with("* ") && l.skel.ends_with(" EXPUNGE") {
            self.count = self.count.saturating_sub(1);
        }
        if let Err(e) = check_line(&l.skel) {
            let mut s = l.skel.clone();
            s.truncate(120);
            self.malformed.push(format!("{e}: {s}"));
        }
    }

    fn cmd(&mut self, text: &str) -> Result<Resp, String> {
        let tag = self.next_tag();
        self.send(format!("{tag} {text}\r\n").as_bytes())?;
        self.until_tagged(&tag, Vec::new())
    }

    /// A command with one synchronizing literal (RFC 3501 §7.5): wait for `+`, then send.
    fn cmd_literal(&mut self, head: &str, data: &[u8]) -> Result<Resp, String> {
        let tag = self.next_tag();
        self.send(format!("{tag} {head} {{{}}}\r\n", data.len()).as_bytes())?;
        let mut untagged = Vec::new();
        loop {
            let l = self.line()?;
            if l.skel.starts_with('+') {
                break;
            }
            if l.skel.starts_with(&format!("{tag} ")) {
                // Refused before the literal: hand back the tagged line.
                let rest = &l.skel[tag.len() + 1..];
                let (st, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let status = if st == "NO" { Status::No } else { Status::Bad };
                return Ok(Resp {
                    status,
                    text: text.to_string(),
                    untagged,
                });
            }
            self.check_untagged(&l);
            untagged.push(l);
        }
        let mut buf = Vec::with_capacity(data.len() + 2);
        buf.extend_from_slice(data);
        buf.extend_from_slice(b"\r\n");
        self.send(&buf)?;
        self.until_tagged(&tag, untagged)
    }
}

/// `{123}` or `{123+}` at the end of a line.
fn literal_len(line: &[u8]) -> Option<usize> {
    let rest = line.strip_suffix(b"}")?;
    let open = rest.iter().rposition(|&b| b == b'{')?;
    let digits = &rest[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Syntax check of an untagged or continuation line.
fn check_line(s: &str) -> Result<(), String> {
    if s.starts_with("+ ") || s == "+" {
        return Ok(());
    }
    let Some(rest) = s.strip_prefix("* ") else {
        return Err("neither untagged, continuation nor our tag".into());
    };
    let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    if first.bytes().all(|b| b.is_ascii_digit()) && !first.is_empty() {
        let (kind, data) = tail.split_once(' ').unwrap_or((tail, ""));
        return match kind {
            "EXISTS" | "RECENT" | "EXPUNGE" => Ok(()),
            "FETCH" => {
                if data.starts_with('(') && data.ends_with(')') && balanced(data) {
                    Ok(())
                } else {
                    Err("FETCH not a balanced parenthesized list".into())
                }
            }
            _ => Err(format!("unknown numeric response {kind}")),
        };
    }
    match first {
        "OK" | "BYE" | "PREAUTH" | "CAPABILITY" | "FLAGS" | "LIST" | "LSUB" | "STATUS"
        | "SEARCH" | "ESEARCH" | "ENABLED" | "ID" | "NAMESPACE" | "VANISHED" => Ok(()),
        "NO" | "BAD" => Err(format!("untagged {first}")),
        _ => Err(format!("unknown untagged {first}")),
    }
}

/// Parentheses balance outside quoted strings (literals are already `""`).
fn balanced(s: &str) -> bool {
    let mut depth = 0i64;
    let mut quoted = false;
    let mut esc = false;
    for b in s.bytes() {
        if quoted {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                quoted = false;
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0 && !quoted
}

fn exists_of(untagged: &[Line]) -> Option<u64> {
    untagged.iter().rev().find_map(|l| {
        let rest = l.skel.strip_prefix("* ")?;
        let n = rest.strip_suffix(" EXISTS")?;
        n.parse().ok()
    })
}

/// `[CODE a b c]` → the words after CODE.
fn resp_code<'a>(text: &'a str, code: &str) -> Option<Vec<&'a str>> {
    let start = text.find(&format!("[{code} "))? + code.len() + 2;
    let end = text[start..].find(']')? + start;
    Some(text[start..end].split(' ').collect())
}

// ------------------------------------------------------------------------------------------
// Message synthesis (gen, APPEND, deliveries)

const WORDS: &[&str] = &[
    "meeting",
    "invoice",
    "garden",
    "raspberry",
    "kernel",
    "backup",
    "holiday",
    "report",
    "budget",
    "server",
    "mailbox",
    "weekend",
    "project",
    "camera",
    "ticket",
    "release",
    "dinner",
    "update",
    "network",
    "family",
    "photo",
    "school",
    "travel",
    "concert",
    "bike",
    "weather",
    "recipe",
    "library",
    "printer",
    "router",
    "question",
    "answer",
    "draft",
];
const NAMES: &[&str] = &[
    "Alice Martin",
    "Bob Keller",
    "Chloé Dubois",
    "Dmitri Ivanov",
    "Eve Nakamura",
    "Frank O'Neil",
    "Grace Hopper",
    "Hiro Tanaka",
    "Inès García",
    "Jonas Berg",
];

fn words(rng: &mut Rng, n: usize, needle: bool) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(if i % 12 == 0 { '\n' } else { ' ' });
        }
        if needle && i == n / 2 {
            s.push_str(NEEDLE);
        } else {
            s.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        }
    }
    s.replace('\n', "\r\n")
}

fn addr(rng: &mut Rng) -> String {
    let n = NAMES[(rng.next() % NAMES.len() as u64) as usize];
    let local: String = n
        .split(' ')
        .next()
        .unwrap_or("x")
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_lowercase();
    if n.is_ascii() {
        format!("{n} <{local}@example.org>")
    } else {
        // RFC 2047 encoded-word for non-ASCII display names.
        format!("=?utf-8?Q?{}?= <{local}@example.org>", qp_word(n))
    }
}

fn qp_word(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            o.push(b as char);
        } else if b == b' ' {
            o.push('_');
        } else {
            o.push_str(&format!("={b:02X}"));
        }
    }
    o
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 5322 date of a Unix time (UTC).
fn rfc5322_date(t: u64) -> String {
    let days = t / 86400;
    let secs = t % 86400;
    let (y, m, d) = civil(days as i64);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (H. Hinnant's civil_from_days).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One message, CRLF throughout. Kind by `i`: 70 % text/plain, 20 % multipart/alternative,
/// 10 % multipart/mixed with a base64 attachment.
fn message(rng: &mut Rng, i: u64, t: u64, extra_header: &str) -> Vec<u8> {
    let needle = i % 100 == 42;
    let subject = format!("{} {} #{i}", WORDS[(i % 33) as usize], words(rng, 3, false));
    let mut m = format!(
        "Return-Path: <bounce@example.org>\r\nReceived: from mx.example.org by pi.example.net; {date}\r\n\
         From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{i}.{t}@bench.example.org>\r\nMIME-Version: 1.0\r\n{extra_header}",
        date = rfc5322_date(t),
        from = addr(rng),
        to = addr(rng),
    );
    let body_words = rng.range(80, 1200) as usize;
    match i % 10 {
        0..=6 => {
            m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
            m.push_str(&words(rng, body_words, needle));
            m.push_str("\r\n");
        }
        7 | 8 => {
            let text = words(rng, body_words, needle);
            m.push_str(
                "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\n",
            );
            m.push_str(&text);
            m.push_str("\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>");
            m.push_str(&text);
            m.push_str("</p></body></html>\r\n--b1--\r\n");
        }
        _ => {
            m.push_str(
                "Content-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n--b2\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\n",
            );
            m.push_str(&words(rng, body_words / 2, needle));
            m.push_str(
                "\r\n--b2\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n\
                 Content-Disposition: attachment; filename=\"scan.pdf\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n",
            );
            let n = rng.range(2_000, 12_000) as usize;
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut line = 0;
            for _ in 0..n {
                m.push(alphabet[(rng.next() % 64) as usize] as char);
                line += 1;
                if line == 76 {
                    m.push_str("\r\n");
                    line = 0;
                }
            }
            m.push_str("\r\n--b2--\r\n");
        }
    }
    m.into_bytes()
}

fn gen(a: &Args) -> Result<(), String> {
    let dir = PathBuf::from(a.str("dir", ""));
    if dir.as_os_str().is_empty() {
        return Err("--dir is required".into());
    }
    let count = a.num("count", 1000)?;
    let seed = a.num("seed", 1)?;
    for sub in [
        "cur",
        "new",
        "tmp",
        ".Archive/cur",
        ".Archive/new",
        ".Archive/tmp",
    ] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| format!("mkdir {sub}: {e}"))?;
    }
    fs::write(dir.join(".Archive/maildirfolder"), b"").map_err(|e| e.to_string())?;
    fs::write(dir.join("subscriptions"), b"Archive\n").map_err(|e| e.to_string())?;
    // One writer: parallel writers into one directory were slower here (they contend on the
    // directory's lock); each message has its own generator seeded by (seed, i).
    for i in 0..count {
        gen_one(&dir, count, seed, i)?;
    }
    println!("generated\t{count}\t{}", dir.display());
    Ok(())
}

/// Message `i` of a generated Maildir of `count`: two years of mail, oldest first, ending on
/// 2026-11-01; the file's mtime is its date.
fn gen_one(dir: &std::path::Path, count: u64, seed: u64, i: u64) -> Result<(), String> {
    let end = 1_793_491_200u64;
    let span = 2 * 365 * 86400u64;
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(i));
    let t = end - span + span * i / count.max(1);
    let msg = message(&mut rng, i, t, "");
    let flags = match rng.next() % 100 {
        0..=4 => "FS",
        5..=69 => "S",
        70..=72 => "RS",
        _ => "",
    };
    let name = format!("{t}.M{i}P1.bench,S={}:2,{flags}", msg.len());
    let path = dir.join("cur").join(name);
    let f = fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(&f);
    w.write_all(&msg).map_err(|e| e.to_string())?;
    w.flush().map_err(|e| e.to_string())?;
    drop(w);
    f.set_modified(UNIX_EPOCH + Duration::from_secs(t))
        .map_err(|e| e.to_string())
}

/// A delivery by another program (an MDA, pimap's S3 sync): write tmp/, rename into new/.
fn deliver(template: &str, user: &str, tag: &str, rng: &mut Rng) -> Result<(), String> {
    let dir = PathBuf::from(template.replace("%u", user));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let msg = message(rng, 1, now.as_secs(), &format!("X-Bench-Token: {tag}\r\n"));
    let name = format!(
        "{}.M{}P{}Q{tag}.loadgen",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id()
    );
    let tmp = dir.join("tmp").join(&name);
    fs::write(&tmp, &msg).map_err(|e| format!("deliver {}: {e}", tmp.display()))?;
    fs::rename(&tmp, dir.join("new").join(&name)).map_err(|e| format!("deliver rename: {e}"))
}

// ------------------------------------------------------------------------------------------
// Statistics

#[derive(Default)]
struct Stats {
    lat: HashMap<&'static str, Vec<u32>>,
    errors: HashMap<&'static str, u64>,
    samples: Vec<String>,
}

impl Stats {
    fn record(&mut self, cmd: &'static str, d: Duration) {
        self.lat
            .entry(cmd)
            .or_default()
            .push(d.as_micros().min(u32::MAX as u128) as u32);
    }
    fn error(&mut self, cmd: &'static str, what: String) {
        *self.errors.entry(cmd).or_default() += 1;
        if self.samples.len() < 20 {
            self.samples.push(format!("{cmd}: {what}"));
        }
    }
    fn merge(&mut self, o: Stats) {
        for (k, v) in o.lat {
            self.lat.entry(k).or_default().extend(v);
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for s in o.samples {
            if self.samples.len() < 20 {
                self.samples.push(s);
            }
        }
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

// ------------------------------------------------------------------------------------------
// The mix

struct MixCfg {
    addr: SocketAddr,
    users: u64,
    base: u64,
    maildir: String,
    deadline: Instant,
}

struct Worker {
    id: u64,
    cfg: Arc<MixCfg>,
    rng: Rng,
    st: Stats,
    delivered: u64,
}

impl Worker {
    /// Run `f` as command `name`: time it, count a NO/BAD (or a failed check) as an error.
    fn run(
        &mut self,
        c: &mut Conn,
        name: &'static str,
        f: impl FnOnce(&mut Conn) -> Result<Resp, String>,
        check: impl FnOnce(&Resp) -> Result<(), String>,
    ) -> Result<Resp, String> {
        let t = Instant::now();
        let r = f(c);
        let d = t.elapsed();
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                self.st.error(name, e.clone());
                return Err(e);
            }
        };
        self.st.record(name, d);
        for m in c.malformed.drain(..) {
            self.st.error(name, format!("malformed: {m}"));
        }
        if r.status != Status::Ok {
            self.st.error(name, format!("{:?} {}", r.status, r.text));
        } else if let Err(e) = check(&r) {
            self.st.error(name, e);
        }
        Ok(r)
    }

    fn session(&mut self) -> Result<(), String> {
        let user = user_name(self.id % self.cfg.users);
        let mut c = match Conn::connect(self.cfg.addr) {
            Ok(c) => c,
            Err(e) => {
                self.st.error("CONNECT", e.clone());
                return Err(e);
            }
        };
        let login = format!("LOGIN {user} {PASSWORD}");
        self.run(&mut c, "LOGIN", |c| c.cmd(&login), |_| Ok(()))?;
        let sel = self.run(
            &mut c,
            "SELECT",
            |c| c.cmd("SELECT INBOX"),
            |r| exists_of(&r.untagged).map(|_| ()).ok_or("no EXISTS".into()),
        )?;
        let mut exists = exists_of(&sel.untagged).unwrap_or(0);
        let base = self.cfg.base.min(exists).max(1);
        for round in 0..20u64 {
            if Instant::now() >= self.cfg.deadline {
                break;
            }
            // Headers and ENVELOPE of a screenful.
            let a = self.rng.range(1, base.saturating_sub(49).max(1));
            let b = (a + 49).min(base);
            let q = format!(
                "FETCH {a}:{b} (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE \
                 BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID)])"
            );
            let want = b - a + 1;
            self.run(
                &mut c,
                "FETCH headers",
                |c| c.cmd(&q),
                |r| count_fetch(r, "ENVELOPE (", want),
            )?;
            let a = self.rng.range(1, base.saturating_sub(19).max(1));
            let b = (a + 19).min(base);
            let q = format!("FETCH {a}:{b} (UID BODYSTRUCTURE)");
            self.run(
                &mut c,
                "FETCH bodystructure",
                |c| c.cmd(&q),
                |r| count_fetch(r, "BODYSTRUCTURE (", b - a + 1),
            )?;
            for _ in 0..2 {
                let k = self.rng.range(1, base);
                let q = format!("FETCH {k} (FLAGS BODY[])");
                self.run(
                    &mut c,
                    "FETCH body",
                    |c| c.cmd(&q),
                    |r| {
                        if r.untagged
                            .iter()
                            .any(|l| l.skel.contains("BODY[] ") && !l.lits.is_empty())
                        {
                            Ok(())
                        } else {
                            Err("no BODY[] literal".into())
                        }
                    },
                )?;
            }
            let q = match round % 3 {
                0 => "SEARCH UNSEEN".to_string(),
                1 => format!(
                    "SEARCH FROM \"{}\"",
                    ["alice", "bob", "grace"][(round % 3) as usize]
                ),
                _ => format!(
                    "UID SEARCH SINCE 1-Oct-2026 SUBJECT \"{}\"",
                    WORDS[(self.rng.next() % 33) as usize]
                ),
            };
            self.run(
                &mut c,
                "SEARCH",
                |c| c.cmd(&q),
                |r| {
                    if r.untagged.iter().any(|l| l.skel.starts_with("* SEARCH")) {
                        Ok(())
                    } else {
                        Err("no * SEARCH".into())
                    }
                },
            )?;
            let k = self.rng.range(1, base);
            for sign in ['+', '-'] {
                let q = format!("STORE {k} {sign}FLAGS (\\Flagged)");
                // No FETCH check: a server may omit it when another session already made
                // the same change (Dovecot does).
                self.run(&mut c, "STORE", |c| c.cmd(&q), |_| Ok(()))?;
            }
            // APPEND a message of our own, then COPY it, then MOVE it or expunge it.
            let mut body = message(&mut self.rng, round, 1_793_000_000, "");
            body.truncate(body.len().min(6000));
            let r = self.run(
                &mut c,
                "APPEND",
                |c| c.cmd_literal("APPEND INBOX (\\Seen)", &body),
                |r| {
                    resp_code(&r.text, "APPENDUID")
                        .filter(|v| v.len() == 2)
                        .map(|_| ())
                        .ok_or("no APPENDUID".into())
                },
            )?;
            let uid: u64 = resp_code(&r.text, "APPENDUID")
                .and_then(|v| v.get(1).and_then(|u| u.parse().ok()))
                .unwrap_or(0);
            if uid == 0 {
                continue;
            }
            let q = format!("UID COPY {uid} Archive");
            self.run(
                &mut c,
                "COPY",
                |c| c.cmd(&q),
                |r| {
                    resp_code(&r.text, "COPYUID")
                        .map(|_| ())
                        .ok_or("no COPYUID".into())
                },
            )?;
            if round % 2 == 0 {
                let q = format!("UID MOVE {uid} Archive");
                self.run(&mut c, "MOVE", |c| c.cmd(&q), |_| Ok(()))?;
            } else {
                let q = format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)");
                self.run(&mut c, "STORE", |c| c.cmd(&q), |_| Ok(()))?;
                self.run(&mut c, "EXPUNGE", |c| c.cmd("EXPUNGE"), |_| Ok(()))?;
            }
            if round % 5 == 4 && !self.cfg.maildir.is_empty() {
                exists = self.idle(&mut c, &user)?;
            }
            let _ = exists;
        }
        let r = c.cmd("LOGOUT");
        match r {
            Ok(r) if r.status == Status::Ok => Ok(()),
            Ok(r) => {
                self.st
                    .error("LOGOUT", format!("{:?} {}", r.status, r.text));
                Ok(())
            }
            Err(e) => {
                self.st.error("LOGOUT", e.clone());
                Err(e)
            }
        }
    }

    /// IDLE, deliver a message into the mailbox from outside, time until `* n EXISTS` for
    /// a count above the one known before, then DONE. Returns the new count.
    fn idle(&mut self, c: &mut Conn, user: &str) -> Result<u64, String> {
        self.run(c, "NOOP", |c| c.cmd("NOOP"), |_| Ok(()))?;
        let tag = c.next_tag();
        c.send(format!("{tag} IDLE\r\n").as_bytes())?;
        loop {
            let l = c.line()?;
            if l.skel.starts_with('+') {
                break;
            }
            if l.skel.starts_with(&format!("{tag} ")) {
                self.st
                    .error("IDLE wake", format!("IDLE refused: {}", l.skel));
                return Ok(c.count);
            }
            c.check_untagged(&l);
        }
        self.delivered += 1;
        let token = format!("{}x{}", self.id, self.delivered);
        deliver(&self.cfg.maildir, user, &token, &mut self.rng)?;
        let t = Instant::now();
        c.set_timeout(Duration::from_secs(15));
        let woke = loop {
            match c.line() {
                Ok(l) => {
                    // The wake-up is the first EXISTS that raises the count (other sessions'
                    // EXPUNGEs lower it meanwhile).
                    let before = c.count;
                    c.check_untagged(&l);
                    if exists_of(std::slice::from_ref(&l)).is_some() && c.count > before {
                        break Ok(c.count);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        c.set_timeout(Duration::from_secs(60));
        let n = match woke {
            Ok(n) => {
                self.st.record("IDLE wake", t.elapsed());
                n
            }
            Err(e) => {
                self.st
                    .error("IDLE wake", format!("no EXISTS after delivery: {e}"));
                return Err(e);
            }
        };
        c.send(b"DONE\r\n")?;
        let r = c.until_tagged(&tag, Vec::new())?;
        for m in c.malformed.drain(..) {
            self.st.error("IDLE wake", format!("malformed: {m}"));
        }
        if r.status != Status::Ok {
            self.st
                .error("IDLE wake", format!("DONE: {:?} {}", r.status, r.text));
        }
        Ok(n)
    }
}

fn count_fetch(r: &Resp, item: &str, want: u64) -> Result<(), String> {
    let n = r
        .untagged
        .iter()
        .filter(|l| l.skel.contains(" FETCH (") && l.skel.contains(item))
        .count() as u64;
    if n >= want {
        Ok(())
    } else {
        Err(format!("{n} FETCH responses with {item:?}, wanted {want}"))
    }
}

fn mix(a: &Args) -> Result<(), String> {
    let conns = a.num("conns", 1)?.max(1);
    let secs = a.num("secs", 20)?;
    let start_at = Instant::now() + Duration::from_millis(200);
    let cfg = Arc::new(MixCfg {
        addr: a.addr()?,
        users: a.num("users", 1)?.max(1),
        base: a.num("base", 1000)?,
        maildir: a.str("maildir", ""),
        deadline: start_at + Duration::from_secs(secs),
    });
    let barrier = Arc::new(Barrier::new(conns as usize));
    let mut handles = Vec::new();
    for id in 0..conns {
        let cfg = cfg.clone();
        let barrier = barrier.clone();
        handles.push(
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut w = Worker {
                        id,
                        cfg,
                        rng: Rng::new(id + 7),
                        st: Stats::default(),
                        delivered: 0,
                    };
                    barrier.wait();
                    while Instant::now() < w.cfg.deadline {
                        if w.session().is_err() {
                            thread::sleep(Duration::from_millis(100));
                        }
                    }
                    w.st
                })
                .map_err(|e| e.to_string())?,
        );
    }
    let mut st = Stats::default();
    for h in handles {
        st.merge(h.join().map_err(|_| "worker panicked".to_string())?);
    }
    let wall = start_at.elapsed().as_secs_f64().max(0.001);
    let total: usize = st.lat.values().map(Vec::len).sum();
    let errors: u64 = st.errors.values().sum();
    println!(
        "total\t{total}\t{wall:.2}\t{:.1}\t{errors}",
        total as f64 / wall
    );
    let mut names: Vec<&&str> = st.lat.keys().chain(st.errors.keys()).collect();
    names.sort();
    names.dedup();
    for n in names {
        let mut v = st.lat.get(*n).cloned().unwrap_or_default();
        v.sort_unstable();
        println!(
            "cmd\t{n}\t{}\t{:.2}\t{:.2}\t{}",
            v.len(),
            pct(&v, 0.5),
            pct(&v, 0.99),
            st.errors.get(*n).copied().unwrap_or(0)
        );
    }
    for s in &st.samples {
        println!("err\t{}", s.replace(['\t', '\n', '\r'], " "));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// hold, probe, wait

fn hold(a: &Args) -> Result<(), String> {
    let addr = a.addr()?;
    let conns = a.num("conns", 100)?;
    let users = a.num("users", 1)?.max(1);
    let secs = a.num("secs", 10)?;
    let ready = a.str("ready", "");
    let select = a.num("select", 1)? == 1;
    let idle = a.num("idle", 0)? == 1;
    // Ten connecting threads; the sessions then sit selected (and in IDLE with --idle 1) in
    // this process.
    let mut handles = Vec::new();
    for t in 0..10u64 {
        handles.push(thread::spawn(move || -> Result<Vec<Conn>, String> {
            let mut v = Vec::new();
            let mut i = t;
            while i < conns {
                let mut c = Conn::connect(addr)?;
                let r = c.cmd(&format!("LOGIN {} {PASSWORD}", user_name(i % users)))?;
                if r.status != Status::Ok {
                    return Err(format!("LOGIN: {}", r.text));
                }
                if select {
                    let r = c.cmd("SELECT INBOX")?;
                    if r.status != Status::Ok {
                        return Err(format!("SELECT: {}", r.text));
                    }
                }
                if idle {
                    c.send(b"I1 IDLE\r\n")?;
                    let l = c.line()?;
                    if !l.skel.starts_with('+') {
                        return Err(format!("IDLE: {}", l.skel));
                    }
                }
                v.push(c);
                i += 10;
            }
            Ok(v)
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "panicked".to_string())??);
    }
    if !ready.is_empty() {
        fs::write(&ready, format!("{}\n", all.len())).map_err(|e| e.to_string())?;
    }
    println!("held\t{}", all.len());
    thread::sleep(Duration::from_secs(secs));
    for mut c in all {
        if idle {
            let _ = c.send(b"DONE\r\n");
            let _ = c.until_tagged("I1", Vec::new());
        }
        let _ = c.cmd("LOGOUT");
    }
    Ok(())
}

fn probe(a: &Args) -> Result<(), String> {
    let addr = a.addr()?;
    let user = a.str("user", "bench01");
    let reps = a.num("reps", 15)?.max(1);
    let mut out: Vec<(String, f64, String)> = Vec::new();
    let mut timed = |name: &str, c: &mut Conn, q: &str| -> Result<Resp, String> {
        let t = Instant::now();
        let r = c.cmd(q)?;
        let d = ms(t.elapsed());
        let mut note = String::new();
        if r.status != Status::Ok {
            note = format!("{:?} {}", r.status, r.text);
        }
        if let Some(m) = c.malformed.first() {
            note = format!("malformed: {m}");
        }
        c.malformed.clear();
        out.push((name.to_string(), d, note));
        Ok(r)
    };
    let t = Instant::now();
    let mut c = Conn::connect(addr)?;
    let connect_ms = ms(t.elapsed());
    timed("LOGIN", &mut c, &format!("LOGIN {user} {PASSWORD}"))?;
    let sel = timed("SELECT", &mut c, "SELECT INBOX")?;
    let n = exists_of(&sel.untagged).ok_or("SELECT: no EXISTS")?;
    let r = timed("FETCH 1:* (FLAGS UID)", &mut c, "FETCH 1:* (FLAGS UID)")?;
    let got = r
        .untagged
        .iter()
        .filter(|l| l.skel.contains(" FETCH ("))
        .count() as u64;
    if got != n {
        return Err(format!("FETCH 1:* returned {got} of {n}"));
    }
    let r = timed("SEARCH TEXT", &mut c, &format!("SEARCH TEXT {NEEDLE}"))?;
    let hits = r
        .untagged
        .iter()
        .find(|l| l.skel.starts_with("* SEARCH"))
        .map(|l| l.skel.split(' ').count().saturating_sub(2))
        .unwrap_or(0);
    // Single-message commands, repeated: their cost should not depend on the mailbox size.
    let mid = (n / 2).max(1);
    let mut peer = login_select(addr, &user)?;
    let mut seen_changes = 0u64;
    let mut single: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut rng = Rng::new(3);
    let mut appends = Vec::new();
    for i in 0..reps {
        let mut one = |name: &'static str, c: &mut Conn, q: &str| -> Result<Resp, String> {
            let t = Instant::now();
            let r = c.cmd(q)?;
            single.entry(name).or_default().push(ms(t.elapsed()));
            if r.status != Status::Ok || !c.malformed.is_empty() {
                return Err(format!(
                    "{name}: {:?} {} {:?}",
                    r.status, r.text, c.malformed
                ));
            }
            Ok(r)
        };
        one("NOOP", &mut c, "NOOP")?;
        one(
            "FETCH 1 (FLAGS)",
            &mut c,
            &format!("FETCH {} (FLAGS)", mid + i),
        )?;
        one(
            "FETCH 1 ENVELOPE",
            &mut c,
            &format!("FETCH {} ENVELOPE", mid + i),
        )?;
        one(
            "FETCH 1 BODYSTRUCTURE",
            &mut c,
            &format!("FETCH {} BODYSTRUCTURE", mid + i),
        )?;
        one(
            "FETCH 1 BODY[]",
            &mut c,
            &format!("FETCH {} BODY.PEEK[]", mid + i),
        )?;
        one(
            "STORE 1 +FLAGS",
            &mut c,
            &format!("STORE {} +FLAGS (\\Flagged)", mid + i),
        )?;
        let body = message(&mut rng, i, 1_793_000_000, "");
        let t = Instant::now();
        let r = c.cmd_literal("APPEND INBOX", &body)?;
        appends.push(ms(t.elapsed()));
        let uid = resp_code(&r.text, "APPENDUID")
            .and_then(|v| v.get(1).and_then(|u| u.parse::<u64>().ok()))
            .ok_or(format!("APPEND: {:?} {}", r.status, r.text))?;
        one(
            "UID STORE+EXPUNGE 1",
            &mut c,
            &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
        )?;
        one("UID EXPUNGE 1", &mut c, &format!("UID EXPUNGE {uid}"))?;
        // Another session changes one message's flags; this session's next NOOP must report
        // it (the cost of other sessions' changes: O(changes) is the goal, not a rescan).
        let k = mid / 2 + i / 2 + 1;
        peer_store(&mut peer, k, i.is_multiple_of(2))?;
        let t = Instant::now();
        let r = c.cmd("NOOP")?;
        single
            .entry("NOOP after other session's STORE")
            .or_default()
            .push(ms(t.elapsed()));
        if r.status != Status::Ok {
            return Err(format!("NOOP after change: {:?} {}", r.status, r.text));
        }
        if fetch_of(&r, k) {
            seen_changes += 1;
        }
    }
    if reps % 2 == 1 {
        // Leave no \Draft behind: the next probe on this mailbox toggles the same messages.
        peer_store(&mut peer, mid / 2 + (reps - 1) / 2 + 1, false)?;
    }
    let mut selects = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = c.cmd("SELECT INBOX")?;
        selects.push(ms(t.elapsed()));
        if r.status != Status::Ok {
            return Err(format!("SELECT again: {:?} {}", r.status, r.text));
        }
    }
    selects.sort_by(|a, b| a.total_cmp(b));
    out.push((
        "SELECT again (median of 3)".into(),
        selects[1],
        String::new(),
    ));
    let _ = c.cmd("LOGOUT");
    let _ = peer.cmd("LOGOUT");
    single.insert("APPEND", appends);
    println!("changes_seen\t{seen_changes}\t{reps}");
    println!("messages\t{n}");
    println!("search_hits\t{hits}");
    println!("op\tconnect+greeting\t{connect_ms:.2}\t");
    for (name, d, note) in &out {
        println!("op\t{name}\t{d:.2}\t{note}");
    }
    let mut names: Vec<_> = single.keys().copied().collect();
    names.sort();
    for name in names {
        let mut v = single[name].clone();
        v.sort_by(|a, b| a.total_cmp(b));
        println!("single\t{name}\t{:.3}", v[v.len() / 2]);
    }
    Ok(())
}

/// A session logged in as `user` with INBOX selected.
fn login_select(addr: SocketAddr, user: &str) -> Result<Conn, String> {
    let mut c = Conn::connect(addr)?;
    let r = c.cmd(&format!("LOGIN {user} {PASSWORD}"))?;
    if r.status != Status::Ok {
        return Err(format!("LOGIN: {}", r.text));
    }
    let r = c.cmd("SELECT INBOX")?;
    if r.status != Status::Ok {
        return Err(format!("SELECT: {}", r.text));
    }
    Ok(c)
}

/// The peer session's change: add \Draft to message `k` when `add`, else remove it (`gen`
/// never sets \Draft, so each call changes the message if the calls alternate).
fn peer_store(peer: &mut Conn, k: u64, add: bool) -> Result<(), String> {
    let sign = if add { '+' } else { '-' };
    let r = peer.cmd(&format!("STORE {k} {sign}FLAGS.SILENT (\\Draft)"))?;
    if r.status != Status::Ok {
        return Err(format!("peer STORE: {:?} {}", r.status, r.text));
    }
    Ok(())
}

/// Whether a response carries a FETCH for sequence number `k`.
fn fetch_of(r: &Resp, k: u64) -> bool {
    let want = format!("* {k} FETCH (");
    r.untagged.iter().any(|l| l.skel.starts_with(&want))
}

/// `churn --port P --user U --reps R`: only the "NOOP after another session's STORE" case,
/// repeated (a focused workload to profile): prints its median and how many NOOPs reported
/// the change.
fn churn(a: &Args) -> Result<(), String> {
    let addr = a.addr()?;
    let user = a.str("user", "bench01");
    let reps = a.num("reps", 50)?.max(1);
    let mut c = login_select(addr, &user)?;
    let n = c.count.max(1);
    let mut peer = login_select(addr, &user)?;
    let mut v = Vec::new();
    let mut seen = 0;
    for i in 0..reps {
        let k = (n / 4 + i / 2) % n + 1;
        peer_store(&mut peer, k, i.is_multiple_of(2))?;
        let t = Instant::now();
        let r = c.cmd("NOOP")?;
        v.push(ms(t.elapsed()));
        if fetch_of(&r, k) {
            seen += 1;
        }
    }
    let _ = c.cmd("LOGOUT");
    let _ = peer.cmd("LOGOUT");
    v.sort_by(|a, b| a.total_cmp(b));
    println!("churn\t{n}\t{reps}\t{:.3}\t{seen}", v[v.len() / 2]);
    Ok(())
}

/// `expunge --port P --user U --reps R --op OP`: one session's APPEND of a message, then one
/// timed command that removes or copies it (`expunge`: STORE \Deleted + EXPUNGE, timing the
/// EXPUNGE; `uid-expunge`: the same with UID EXPUNGE; `move` / `copy`: UID MOVE / UID COPY to
/// `Trash`, a COPY's original then removed untimed so the mailbox keeps its size). Prints
/// the op, the message count, reps and the median in ms.
fn expunge(a: &Args) -> Result<(), String> {
    let addr = a.addr()?;
    let user = a.str("user", "bench01");
    let reps = a.num("reps", 50)?.max(1);
    let op = a.str("op", "uid-expunge");
    let mut c = login_select(addr, &user)?;
    let n = c.count;
    let _ = c.cmd("CREATE Trash")?;
    let mut rng = Rng::new(5);
    let mut v = Vec::new();
    for i in 0..reps {
        let body = message(&mut rng, i, 1_793_000_000, "");
        let r = c.cmd_literal("APPEND INBOX", &body)?;
        let uid = resp_code(&r.text, "APPENDUID")
            .and_then(|v| v.get(1).and_then(|u| u.parse::<u64>().ok()))
            .ok_or(format!("APPEND: {:?} {}", r.status, r.text))?;
        let ok = |r: Resp, what: &str| -> Result<(), String> {
            match r.status {
                Status::Ok => Ok(()),
                _ => Err(format!("{what}: {:?} {}", r.status, r.text)),
            }
        };
        let del = format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)");
        let timed = match op.as_str() {
            "expunge" | "uid-expunge" => {
                ok(c.cmd(&del)?, "STORE")?;
                if op == "expunge" {
                    "EXPUNGE".to_string()
                } else {
                    format!("UID EXPUNGE {uid}")
                }
            }
            "move" => format!("UID MOVE {uid} Trash"),
            "copy" => format!("UID COPY {uid} Trash"),
            other => return Err(format!("unknown --op {other}")),
        };
        let t = Instant::now();
        let r = c.cmd(&timed)?;
        v.push(ms(t.elapsed()));
        ok(r, &timed)?;
        if op == "copy" {
            ok(c.cmd(&del)?, "STORE")?;
            ok(c.cmd(&format!("UID EXPUNGE {uid}"))?, "UID EXPUNGE")?;
        }
    }
    let _ = c.cmd("LOGOUT");
    v.sort_by(|a, b| a.total_cmp(b));
    println!("{op}\t{n}\t{reps}\t{:.3}", v[v.len() / 2]);
    Ok(())
}

/// The corpus's messages: every `*.eml` and `msg_*.txt` file under each of `dirs`
/// (colon-separated; CPython's email test data and mail-parser's resources/eml name their
/// messages so, next to other files), sorted by path. Bare LF becomes CRLF (as a client
/// sends); files with NUL (not allowed in an IMAP literal) or without any byte are left out
/// and counted.
/// A corpus message: its file name and the bytes to send.
type CorpusMsg = (String, Vec<u8>);

fn load_corpus(dirs: &str) -> Result<(Vec<CorpusMsg>, u64), String> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = dirs
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    while let Some(d) = stack.pop() {
        let rd = fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in rd {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() && is_message_file(&p) {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    let mut skipped = 0;
    for p in files {
        let raw = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if raw.is_empty() || raw.contains(&0) {
            skipped += 1;
            continue;
        }
        let mut m = Vec::with_capacity(raw.len() + raw.len() / 40);
        for (i, &b) in raw.iter().enumerate() {
            if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
                m.push(b'\r');
            }
            m.push(b);
        }
        out.push((p.display().to_string(), m));
    }
    Ok((out, skipped))
}

fn is_message_file(p: &std::path::Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".eml") || (name.starts_with("msg_") && name.ends_with(".txt"))
}

/// `corpus --port P --user U --dirs D1:D2 [--limit N]`: APPEND each message of the corpus
/// to INBOX one by one, each fetched back whole (`UID FETCH uid BODY[]`) and compared
/// byte for byte with what was sent.
fn corpus(a: &Args) -> Result<(), String> {
    let addr = a.addr()?;
    let user = a.str("user", "bench01");
    let (mut msgs, skipped) = load_corpus(&a.str("dirs", ""))?;
    let limit = a.num("limit", u64::MAX)?;
    msgs.truncate(limit.min(msgs.len() as u64) as usize);
    if msgs.is_empty() {
        return Err("empty corpus (--dirs)".into());
    }
    let mut st = Stats::default();
    let t0 = Instant::now();
    let mut c = login_select(addr, &user)?;
    let mut bytes = 0u64;
    for (name, m) in &msgs {
        bytes += m.len() as u64;
        let t = Instant::now();
        let r = c.cmd_literal("APPEND INBOX", m)?;
        st.record("APPEND", t.elapsed());
        let uid = resp_code(&r.text, "APPENDUID")
            .and_then(|v| v.get(1).and_then(|u| u.parse::<u64>().ok()));
        let Some(uid) = uid.filter(|_| r.status == Status::Ok) else {
            st.error("APPEND", format!("{name}: {:?} {}", r.status, r.text));
            continue;
        };
        let t = Instant::now();
        let r = c.cmd(&format!("UID FETCH {uid} BODY[]"))?;
        st.record("FETCH BODY[]", t.elapsed());
        let body = r
            .untagged
            .iter()
            .find(|l| l.skel.contains(" FETCH (") && l.skel.contains("BODY[] "))
            .and_then(|l| l.lits.first());
        match body {
            _ if r.status != Status::Ok => {
                st.error("FETCH BODY[]", format!("{name}: {:?} {}", r.status, r.text))
            }
            None => st.error("FETCH BODY[]", format!("{name}: no BODY[] literal")),
            Some(b) if b != m => st.error(
                "FETCH BODY[]",
                format!(
                    "{name}: {} bytes back for {} sent, differing",
                    b.len(),
                    m.len()
                ),
            ),
            Some(_) => {}
        }
        for e in c.malformed.drain(..) {
            st.error("FETCH BODY[]", format!("{name}: malformed: {e}"));
        }
    }
    let _ = c.cmd("LOGOUT");
    let wall = ms(t0.elapsed());
    let errors: u64 = st.errors.values().sum();
    let sum = |k: &str| {
        st.lat
            .get(k)
            .map(|v| v.iter().map(|&u| u as f64 / 1000.0).sum::<f64>())
            .unwrap_or(0.0)
    };
    println!(
        "corpus\t{}\t{bytes}\t{wall:.1}\t{:.1}\t{:.1}\t{errors}\t{skipped}",
        msgs.len(),
        sum("APPEND"),
        sum("FETCH BODY[]")
    );
    for s in &st.samples {
        println!("err\t{}", s.replace(['\t', '\n', '\r'], " "));
    }
    Ok(())
}

fn wait(a: &Args) -> Result<(), String> {
    let addr = a.addr()?;
    let limit = Instant::now() + Duration::from_millis(a.num("timeout-ms", 20_000)?);
    loop {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut r = BufReader::new(s);
            let mut l = String::new();
            if r.read_line(&mut l).is_ok() && l.starts_with("* OK") {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                println!("{}", now.as_nanos());
                let _ = r.get_mut().write_all(b"Z LOGOUT\r\n");
                return Ok(());
            }
        }
        if Instant::now() > limit {
            return Err(format!("no greeting from {addr}"));
        }
        thread::sleep(Duration::from_millis(2));
    }
}
