//! S3 sync against real S3-compatible servers on loopback:
//! - s3s-fs 0.14.1, which validates SigV4 signatures (signing bugs and wrong secrets fail),
//! - moto 5.2.1 (AWS behaviour: ETags in listings, delete, copy),
//! - a small Python fault injector in front of either (500s, truncated bodies, stalls),
//!
//! all installed by `scripts/install-s3-tools.sh`. Objects are shaped like SES's (its trace
//! headers, CRLF line endings, the setup notification). A test whose server is not installed
//! is skipped with a note on stderr saying how to install it (as the Dovecot tests are), so a
//! plain `cargo test` passes on a machine without them; with `PIMAP_TEST_REQUIRE_S3=1` (set by
//! `scripts/test.sh`, the CI command) a missing server fails the test instead.
//!
//! Run: `scripts/install-s3-tools.sh && PIMAP_TEST_REQUIRE_S3=1 cargo test --test sync_s3`.

use clap::Parser;
use pimap::cli::SyncArgs;
use pimap::sync::s3::{Retry, S3Client, S3Config};
use pimap::sync::{PassReport, SyncSettings};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AK: &str = "AKIAPIMAPTEST";
const SK: &str = "pimap-test-secret-key";
const BUCKET: &str = "ses-inbound";

// ---------------------------------------------------------------- harness

#[derive(Parser, Debug)]
struct Wrap {
    #[command(flatten)]
    args: SyncArgs,
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d =
            std::env::temp_dir().join(format!("pimap-sync-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not start listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The S3 server `name` if it is on PATH. If not: `None` after a note on the real stderr (not
/// the captured test output, so a plain `cargo test` shows it), or a failure when
/// `PIMAP_TEST_REQUIRE_S3=1` says the servers must be there (CI must never skip these silently).
fn tool(name: &str) -> Option<String> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if found {
        return Some(name.to_string());
    }
    let how = "scripts/install-s3-tools.sh installs it";
    assert!(
        std::env::var_os("PIMAP_TEST_REQUIRE_S3").is_none_or(|v| v != "1"),
        "{name} is not installed ({how}) and PIMAP_TEST_REQUIRE_S3=1 requires it"
    );
    let test = std::thread::current().name().unwrap_or("?").to_string();
    // One write, so notes from tests running in parallel do not interleave.
    let note = format!(
        "NOTE: {name} is not installed; skipping {test} ({how}; \
         PIMAP_TEST_REQUIRE_S3=1 turns this into a failure)\n"
    );
    let _ = std::io::stderr().write_all(note.as_bytes());
    None
}

/// A running S3-compatible server: its endpoint and (for s3s-fs) its data directory.
struct Server {
    endpoint: String,
    port: u16,
    _proc: Proc,
}

/// `None` (test skipped) when s3s-fs is not installed; see [`tool`].
fn start_s3s(root: &Path) -> Option<Server> {
    let bin = tool("s3s-fs")?;
    let port = free_port();
    let data = root.join("s3s-data");
    std::fs::create_dir_all(&data).unwrap();
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            AK,
            "--secret-key",
            SK,
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    wait_port(port, "s3s-fs");
    Some(Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
        _proc: proc,
    })
}

/// `None` (test skipped) when moto is not installed; see [`tool`].
fn start_moto() -> Option<Server> {
    let bin = tool("moto_server")?;
    let port = free_port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    wait_port(port, "moto_server");
    Some(Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
        _proc: proc,
    })
}

/// The fault injector: forwards to `upstream_port` keeping the Host header (so SigV4 still
/// verifies upstream), and applies the rules in `rules` (re-read on every request):
/// `{"<substring of the path>": ["500"|"truncate"|"stall"|"reset", times]}`. Every request is
/// logged to `log` as `METHOD PATH`.
const PROXY_PY: &str = r#"
import http.client, http.server, json, socketserver, sys, threading, time, urllib.parse
listen, upstream, rules_path, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
counts, lock = {}, threading.Lock()
def rule_for(path):
    try:
        rules = json.load(open(rules_path))
    except Exception:
        return None
    with lock:
        for pat, (action, times) in rules.items():
            if pat in path and counts.get(pat, 0) < times:
                counts[pat] = counts.get(pat, 0) + 1
                return action
    return None
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def handle_any(self):
        path = urllib.parse.urlsplit(self.path).path
        with lock:
            open(log_path, "a").write(f"{self.command} {urllib.parse.unquote(path)}\n")
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        action = rule_for(urllib.parse.unquote(path)) if self.command == "GET" or path.count("/") > 1 else None
        if action == "500":
            msg = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            self.send_response(500); self.send_header("Content-Length", str(len(msg)))
            self.send_header("Connection", "close"); self.end_headers(); self.wfile.write(msg)
            self.close_connection = True; return
        if action == "slowdown":
            msg = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503); self.send_header("Content-Length", str(len(msg)))
            self.send_header("Connection", "close"); self.end_headers(); self.wfile.write(msg)
            self.close_connection = True; return
        if action == "reset":
            self.close_connection = True; return
        if action == "stall":
            time.sleep(5); self.close_connection = True; return
        c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items()}
        c.request(self.command, self.path, body=body, headers=headers)
        r = c.getresponse(); data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if action == "truncate" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2]); self.wfile.flush()
        else:
            self.wfile.write(data)
        self.close_connection = True
    do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = handle_any
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("127.0.0.1", listen), H).serve_forever()
"#;

struct Proxy {
    endpoint: String,
    rules: PathBuf,
    log: PathBuf,
    _proc: Proc,
}

impl Proxy {
    fn start(dir: &Path, upstream: &Server) -> Proxy {
        let script = dir.join("fault_proxy.py");
        std::fs::write(&script, PROXY_PY).unwrap();
        let rules = dir.join("rules.json");
        std::fs::write(&rules, "{}").unwrap();
        let log = dir.join("proxy.log");
        let port = free_port();
        let child = Command::new("python3")
            .arg(&script)
            .args([port.to_string(), upstream.port.to_string()])
            .arg(&rules)
            .arg(&log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let proc = Proc(child);
        wait_port(port, "fault proxy");
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            rules,
            log,
            _proc: proc,
        }
    }

    fn set_rules(&self, json: &str) {
        std::fs::write(&self.rules, json).unwrap();
    }

    fn requests(&self) -> Vec<String> {
        std::fs::read(&self.log)
            .map(|b| {
                BufReader::new(&b[..])
                    .lines()
                    .map_while(Result::ok)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn client(endpoint: &str, secret: &str) -> S3Client {
    S3Client::new(S3Config {
        endpoint: endpoint.parse().unwrap(),
        style: rusty_s3::UrlStyle::Path,
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        credentials: rusty_s3::Credentials::new(AK, secret),
        timeout: Duration::from_secs(10),
        retry: Retry {
            attempts: 3,
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
    })
    .unwrap()
}

/// A mail setup: users file, credentials file, data dir.
struct Setup {
    dir: Dir,
}

impl Setup {
    fn new(tag: &str, users: &[&str]) -> Setup {
        let dir = Dir::new(tag);
        let mut u = String::new();
        for name in users {
            u.push_str(&format!("{name}:{{PLAIN}}pw::::::\n"));
        }
        std::fs::write(dir.0.join("users"), u).unwrap();
        std::fs::write(
            dir.0.join("credentials"),
            format!("[default]\naws_access_key_id = {AK}\naws_secret_access_key = {SK}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.0.join("bad-credentials"),
            format!("[default]\naws_access_key_id = {AK}\naws_secret_access_key = wrong\n"),
        )
        .unwrap();
        Setup { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.0.join(p)
    }

    /// Command-line arguments for `pimap sync` against `endpoint`.
    fn argv(&self, endpoint: &str, extra: &[&str]) -> Vec<String> {
        let users = self.path("users").display().to_string();
        let creds = self.path("credentials").display().to_string();
        let data = self.path("data").display().to_string();
        let mail = format!("{}/mail/%u", self.dir.0.display());
        let defaults: [(&str, &str); 11] = [
            ("--data-dir", &data),
            ("--users", &users),
            ("--mail-location", &mail),
            ("--s3-bucket", BUCKET),
            ("--s3-prefix", "inbound/"),
            ("--s3-endpoint", endpoint),
            ("--s3-credentials-file", &creds),
            ("--s3-timeout", "2s"),
            ("--s3-retries", "3"),
            ("--postmaster", "postmaster"),
            ("--local-domain", "example.org"),
        ];
        let mut v: Vec<String> = vec!["--once".into()];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                v.push(flag.into());
                v.push(value.into());
            }
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn args(&self, endpoint: &str, extra: &[&str]) -> SyncSettings {
        let argv = std::iter::once("sync".to_string()).chain(self.argv(endpoint, extra));
        Wrap::try_parse_from(argv).unwrap().args.settings()
    }

    fn run(&self, endpoint: &str, extra: &[&str]) -> Result<PassReport, String> {
        pimap::sync::run_once(&self.args(endpoint, extra))
    }

    /// Every delivered file under the mail root: relative path → contents.
    fn delivered(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let root = self.path("mail");
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if matches!(
                    p.parent()
                        .and_then(|q| q.file_name())
                        .and_then(|n| n.to_str()),
                    Some("new" | "cur")
                ) {
                    let rel = p.strip_prefix(&root).unwrap().display().to_string();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    /// Delivered messages per mailbox directory (`alice`, `alice/.Junk`, ...), contents only.
    fn by_mailbox(&self) -> BTreeMap<String, Vec<Vec<u8>>> {
        let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (rel, data) in self.delivered() {
            let mbox = Path::new(&rel)
                .parent()
                .and_then(|p| p.parent())
                .unwrap()
                .display()
                .to_string();
            out.entry(mbox).or_default().push(data);
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }
}

/// A message shaped like the objects SES writes: its trace headers first, CRLF endings.
fn ses_message(
    id: &str,
    rcpt: Option<&str>,
    to: &str,
    spam: &str,
    virus: &str,
    body: &str,
) -> Vec<u8> {
    let for_clause = rcpt.map(|r| format!("\r\n for {r}")).unwrap_or_default();
    format!(
        "Return-Path: <sender@sender.example>\r\n\
Received: from mail-ed1-f41.sender.example (mail-ed1-f41.sender.example [192.0.2.41])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id {id}{for_clause};\r\n Mon, 23 Nov 2026 09:00:00 +0000 (UTC)\r\n\
X-SES-Spam-Verdict: {spam}\r\n\
X-SES-Virus-Verdict: {virus}\r\n\
Received-SPF: pass (spfCheck: domain of sender.example designates 192.0.2.41 as permitted sender) client-ip=192.0.2.41;\r\n\
Authentication-Results: amazonses.com;\r\n spf=pass (spfCheck: domain of sender.example designates 192.0.2.41 as permitted sender) smtp.mailfrom=sender@sender.example;\r\n dkim=pass header.i=@sender.example;\r\n dmarc=pass header.from=sender.example;\r\n\
X-SES-RECEIPT: AEFBQUFBQUFBQUFHSGRvYnNQcnZ4Vk1GbnBsOWRCbzN4ZWxxT0Z1a0ZrT2Z4\r\n\
X-SES-DKIM-SIGNATURE: a=rsa-sha256; q=dns/txt; b=Zm9vYmFy; c=relaxed/simple; s=224i4yxa5dv7c2xz3womw6peuasteono; d=amazonses.com; t=1763888400; v=1; bh=YmFy; h=From:To:Cc:Subject;\r\n\
From: Sender <sender@sender.example>\r\n\
To: {to}\r\n\
Subject: test {id}\r\n\
Message-ID: <{id}@sender.example>\r\n\
Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=UTF-8\r\n\
\r\n\
{body}\r\n"
    )
    .into_bytes()
}

fn plain(id: &str, rcpt: &str) -> Vec<u8> {
    ses_message(
        id,
        Some(rcpt),
        rcpt,
        "PASS",
        "PASS",
        &format!("Hello {rcpt}, this is {id}."),
    )
}

const SETUP_NOTIFICATION: &[u8] =
    b"Amazon SES setup notification\r\n\r\nThis is a test message from Amazon SES.\r\n";

// ---------------------------------------------------------------- tests

/// Delivery byte for byte, routing by envelope / To+Cc / postmaster, Junk, quarantine, the
/// setup notification skipped, a second pass delivering nothing — against the SigV4-checking
/// s3s-fs.
#[test]
fn s3s_fs_ses_objects_are_routed_and_delivered_byte_for_byte() {
    let s = Setup::new("route", &["alice", "bob", "postmaster"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    let msgs: Vec<(&str, Vec<u8>)> = vec![
        (
            "inbound/AMAZON_SES_SETUP_NOTIFICATION",
            SETUP_NOTIFICATION.to_vec(),
        ),
        ("inbound/m1", plain("m1", "alice@example.org")),
        ("inbound/m2", plain("m2", "bob@example.org")),
        // The for clause is the envelope: To says bob, the envelope says alice.
        (
            "inbound/m3",
            ses_message(
                "m3",
                Some("alice@example.org"),
                "bob@example.org",
                "PASS",
                "PASS",
                "bcc",
            ),
        ),
        // No for clause (several recipients): one copy per local To/Cc recipient.
        (
            "inbound/m4",
            ses_message(
                "m4",
                None,
                "alice@example.org, \"Bob\" <bob@example.org>, x@else.example",
                "PASS",
                "PASS",
                "both",
            ),
        ),
        (
            "inbound/m5",
            ses_message(
                "m5",
                Some("alice@example.org"),
                "alice@example.org",
                "FAIL",
                "PASS",
                "spam",
            ),
        ),
        (
            "inbound/m6",
            ses_message(
                "m6",
                Some("nobody@example.net"),
                "nobody@example.net",
                "PASS",
                "PASS",
                "stray",
            ),
        ),
        (
            "inbound/m7",
            ses_message(
                "m7",
                Some("bob@example.org"),
                "bob@example.org",
                "PASS",
                "FAIL",
                "virus",
            ),
        ),
        ("outside-prefix", plain("m8", "alice@example.org")),
    ];
    for (k, data) in &msgs {
        c.put(k, data).unwrap();
    }
    let get = |k: &str| msgs.iter().find(|(key, _)| *key == k).unwrap().1.clone();
    let r = s.run(&server.endpoint, &[]).unwrap();
    assert_eq!(
        (r.listed, r.new, r.delivered, r.skipped, r.failed),
        (8, 7, 7, 1, 0),
        "{r}"
    );
    let mut want: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    want.insert(
        "alice".into(),
        vec![get("inbound/m1"), get("inbound/m3"), get("inbound/m4")],
    );
    want.insert("alice/.Junk".into(), vec![get("inbound/m5")]);
    want.insert("bob".into(), vec![get("inbound/m2"), get("inbound/m4")]);
    want.insert("postmaster".into(), vec![get("inbound/m6")]);
    for v in want.values_mut() {
        v.sort();
    }
    assert_eq!(s.by_mailbox(), want);
    assert!(s.path("mail/alice/.Junk/maildirfolder").exists());
    // The virus is in the quarantine, not in bob's mailbox.
    let q: Vec<_> = std::fs::read_dir(s.path("data/quarantine/new"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(q.len(), 1);
    assert_eq!(std::fs::read(q[0].path()).unwrap(), get("inbound/m7"));
    // Names derive from the key.
    assert!(s
        .delivered()
        .keys()
        .any(|k| k.starts_with("alice/new/ses-") && k.contains("-inbound_m1,S=")));
    // A second pass is a no-op.
    let r = s.run(&server.endpoint, &[]).unwrap();
    assert_eq!(
        (r.listed, r.new, r.delivered, r.failed),
        (8, 0, 0, 0),
        "{r}"
    );
    assert_eq!(s.delivered().len(), 7);
}

/// Routing by key prefix, by a stamped header, and --deliver-to.
#[test]
fn s3s_fs_prefix_header_and_single_user_routing() {
    let s = Setup::new("modes", &["alice", "bob", "postmaster"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    c.put(
        "inbound/alice/p1",
        &ses_message(
            "p1",
            Some("x@example.org"),
            "x@example.org",
            "PASS",
            "PASS",
            "a",
        ),
    )
    .unwrap();
    c.put(
        "inbound/bob/p2",
        &ses_message(
            "p2",
            Some("x@example.org"),
            "x@example.org",
            "PASS",
            "PASS",
            "b",
        ),
    )
    .unwrap();
    let mut h = b"X-Mail-To: bob@example.org\r\n".to_vec();
    h.extend(ses_message(
        "p3",
        Some("alice@example.org"),
        "x@example.org",
        "PASS",
        "PASS",
        "c",
    ));
    c.put("inbound/other/p3", &h).unwrap();
    let r = s
        .run(
            &server.endpoint,
            &[
                "--route-prefix",
                "inbound/alice/=alice@example.org,inbound/bob/=bob",
                "--route-header",
                "X-Mail-To",
            ],
        )
        .unwrap();
    assert_eq!((r.delivered, r.failed), (3, 0), "{r}");
    let m = s.by_mailbox();
    assert_eq!(m.get("alice").map(Vec::len), Some(1));
    assert_eq!(m.get("bob").map(Vec::len), Some(2));

    let s2 = Setup::new("single", &["alice", "bob"]);
    let r = s2.run(&server.endpoint, &["--deliver-to", "bob"]).unwrap();
    assert_eq!(r.delivered, 3);
    assert_eq!(s2.by_mailbox().keys().collect::<Vec<_>>(), vec!["bob"]);
    // An unknown --deliver-to is one clear error.
    let s3 = Setup::new("single-bad", &["alice"]);
    let e = s3
        .run(&server.endpoint, &["--deliver-to", "carol"])
        .unwrap_err();
    assert!(e.contains("carol"), "{e}");
}

/// A wrong secret: s3s-fs rejects the signature; one clear error naming it, nothing delivered.
#[test]
fn s3s_fs_wrong_secret_is_one_clear_error() {
    let s = Setup::new("badsecret", &["alice"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    c.put("inbound/m1", &plain("m1", "alice@example.org"))
        .unwrap();
    let bad = s.path("bad-credentials").display().to_string();
    let e = s
        .run(&server.endpoint, &["--s3-credentials-file", &bad])
        .unwrap_err();
    assert!(e.contains("SignatureDoesNotMatch"), "{e}");
    assert!(s.delivered().is_empty());
    // Through the binary: non-zero exit, one line on stderr naming the problem.
    let (code, stderr) = run_binary(&s.argv(&server.endpoint, &["--s3-credentials-file", &bad]));
    assert_ne!(code, 0);
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // A bucket that does not exist.
    let e = s
        .run(&server.endpoint, &["--s3-bucket", "no-such-bucket"])
        .unwrap_err();
    assert!(e.contains("NoSuchBucket"), "{e}");
}

/// Listings past 1000 keys are paged; every object is delivered once; a no-op pass costs only
/// the LIST requests (counted through the proxy).
#[test]
fn s3s_fs_pagination_past_1000_keys_and_noop_cost() {
    let s = Setup::new("pages", &["alice"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let proxy = Proxy::start(&s.dir.0, &server);
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    let n = 1050;
    for i in 0..n {
        c.put(
            &format!("inbound/msg{i:05}"),
            format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes(),
        )
        .unwrap();
    }
    let r = s
        .run(
            &proxy.endpoint,
            &["--deliver-to", "alice", "--s3-concurrency", "8"],
        )
        .unwrap();
    assert_eq!((r.listed, r.delivered, r.failed), (n, n, 0), "{r}");
    assert_eq!(s.delivered().len(), n);
    let before = proxy.requests().len();
    let r = s.run(&proxy.endpoint, &["--deliver-to", "alice"]).unwrap();
    assert_eq!((r.listed, r.delivered), (n, 0));
    let noop: Vec<String> = proxy.requests().split_off(before);
    assert_eq!(
        noop.len(),
        2,
        "a no-op pass over {n} objects should cost 2 LISTs: {noop:?}"
    );
    assert!(
        noop.iter()
            .all(|l| l.trim_end_matches('/') == format!("GET /{BUCKET}")),
        "{noop:?}"
    );
}

/// moto: ETags come with the listing; a changed ETag is reported, not re-delivered; delete
/// and move after delivery; the ledger forgets what is gone.
#[test]
fn moto_after_delivery_delete_move_and_changed_etag() {
    let s = Setup::new("moto", &["alice", "postmaster"]);
    let Some(server) = start_moto() else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    for i in 0..5 {
        c.put(
            &format!("inbound/k{i}"),
            &plain(&format!("k{i}"), "alice@example.org"),
        )
        .unwrap();
    }
    let r = s.run(&server.endpoint, &[]).unwrap();
    assert_eq!((r.delivered, r.failed), (5, 0), "{r}");
    // Overwrite one object: same key, new ETag.
    c.put("inbound/k0", &plain("k0-changed", "alice@example.org"))
        .unwrap();
    let r = s.run(&server.endpoint, &[]).unwrap();
    assert_eq!((r.delivered, r.changed), (0, 1), "{r}");
    let r = s.run(&server.endpoint, &[]).unwrap();
    assert_eq!(
        (r.delivered, r.changed),
        (0, 0),
        "changed ETags are reported once: {r}"
    );
    assert_eq!(s.delivered().len(), 5);

    // move: already-delivered objects are moved too (the after-delivery step is pending),
    // except the changed one: its new content was never delivered, so it stays.
    let r = s
        .run(&server.endpoint, &["--after-delivery", "move:processed/"])
        .unwrap();
    assert_eq!((r.delivered, r.finished, r.failed), (0, 4, 0), "{r}");
    let listed = |prefix: &str| {
        c.list_page(prefix, None, 1000)
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(listed("inbound/"), vec!["inbound/k0"]);
    assert_eq!(listed("processed/").len(), 4);
    assert!(listed("processed/").contains(&"processed/k3".to_string()));

    // delete: new objects are delivered, then deleted.
    for i in 5..8 {
        c.put(
            &format!("inbound/k{i}"),
            &plain(&format!("k{i}"), "alice@example.org"),
        )
        .unwrap();
    }
    let r = s
        .run(&server.endpoint, &["--after-delivery", "delete"])
        .unwrap();
    assert_eq!((r.delivered, r.finished, r.failed), (3, 3, 0), "{r}");
    assert_eq!(listed("inbound/"), vec!["inbound/k0"]);
    assert_eq!(s.delivered().len(), 8);
    // The ledger forgot the deleted and moved keys: only k0 remains.
    let ledger = std::fs::read_to_string(s.path(&format!("data/s3-sync-{BUCKET}.ledger"))).unwrap();
    let records: Vec<&str> = ledger.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        !records.is_empty() && records.iter().all(|l| l.ends_with(" inbound/k0")),
        "{ledger}"
    );

    // move with the destination under the synced prefix: moved objects are not redelivered.
    c.put("inbound/k9", &plain("k9", "alice@example.org"))
        .unwrap();
    let r = s
        .run(
            &server.endpoint,
            &["--after-delivery", "move:inbound/done/"],
        )
        .unwrap();
    assert_eq!((r.delivered, r.finished), (1, 1), "{r}");
    let r = s
        .run(
            &server.endpoint,
            &["--after-delivery", "move:inbound/done/"],
        )
        .unwrap();
    assert_eq!((r.listed, r.delivered, r.skipped), (2, 0, 1), "{r}");
    assert_eq!(s.delivered().len(), 9);
}

/// Faults between pimap and s3s-fs: 500s and truncated bodies are retried within the pass; a
/// key that keeps failing fails the pass (non-zero) without blocking the others, and is
/// delivered by the next pass; a stalled response times out and is retried.
#[test]
fn faults_500_truncation_stall_are_retried_and_never_delivered_broken() {
    let s = Setup::new("faults", &["alice"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let proxy = Proxy::start(&s.dir.0, &server);
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    let mut want = Vec::new();
    for i in 0..7 {
        let m = ses_message(
            &format!("f{i}"),
            Some("alice@example.org"),
            "alice@example.org",
            "PASS",
            "PASS",
            &"x".repeat(5000),
        );
        c.put(&format!("inbound/f{i}"), &m).unwrap();
        want.push(m);
    }
    want.sort();
    proxy.set_rules(
        r#"{"/inbound/f0": ["500", 2], "/inbound/f1": ["truncate", 2], "/inbound/f2": ["500", 1000],
            "/inbound/f3": ["truncate", 1000], "/inbound/f4": ["stall", 1], "/inbound/f5": ["reset", 1],
            "/inbound/f6": ["slowdown", 2]}"#,
    );
    let args = ["--deliver-to", "alice"];
    let r = s.run(&proxy.endpoint, &args).unwrap();
    assert_eq!((r.delivered, r.failed), (5, 2), "{r}");
    // Nothing truncated was delivered.
    for data in s.delivered().values() {
        assert!(want.contains(data));
    }
    // The exit code says so.
    proxy.set_rules(r#"{"/inbound/f2": ["500", 1000]}"#);
    let (code, _) = run_binary(&s.argv(&proxy.endpoint, &args));
    assert_ne!(code, 0);
    // The faults go away: the next pass delivers the rest, exactly once.
    proxy.set_rules("{}");
    let r = s.run(&proxy.endpoint, &args).unwrap();
    assert_eq!((r.delivered, r.failed), (1, 0), "{r}");
    let mut got: Vec<Vec<u8>> = s.delivered().into_values().collect();
    got.sort();
    assert_eq!(got, want);
    // A LIST that keeps failing fails the pass.
    proxy.set_rules(&format!(r#"{{"/{BUCKET}": ["500", 1000]}}"#));
    let e = s.run(&proxy.endpoint, &args).unwrap_err();
    assert!(e.contains("InternalError"), "{e}");
}

/// `kill -9` at random moments of passes over many objects, then a pass to completion: every
/// object is delivered exactly once.
#[test]
fn kill_9_at_random_moments_then_complete_delivers_each_object_exactly_once() {
    let s = Setup::new("kill9", &["alice", "bob"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    let n = 300;
    let mut want: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..n {
        let rcpt = if i % 3 == 0 {
            "bob@example.org"
        } else {
            "alice@example.org"
        };
        let m = ses_message(
            &format!("k{i}"),
            Some(rcpt),
            rcpt,
            "PASS",
            "PASS",
            &"y".repeat(2000 + i * 37),
        );
        let key = format!("inbound/{i:04}-{}", if i % 2 == 0 { "even" } else { "odd" });
        c.put(&key, &m).unwrap();
        want.insert(key, m);
    }
    let argv = s.argv(
        &server.endpoint,
        &["--s3-concurrency", "4", "--after-delivery", "keep"],
    );
    let mut seed = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64)
        | 1;
    let mut partial_kills = 0;
    for round in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(20 + seed % 250);
        let mut child = spawn_binary(&argv);
        std::thread::sleep(delay);
        let finished_early = child.try_wait().unwrap().is_some();
        if !finished_early {
            // SIGKILL: the process gets no chance to clean up.
            child.kill().unwrap();
        }
        let _ = child.wait();
        let so_far = s.delivered().len();
        eprintln!(
            "round {round}: after {delay:?} {}: {so_far} of {n} delivered",
            if finished_early { "finished" } else { "killed" }
        );
        assert!(so_far <= n, "duplicates after a kill");
        if !finished_early && so_far < n {
            partial_kills += 1;
        }
        if so_far == n {
            break;
        }
    }
    assert!(
        partial_kills > 0,
        "no kill landed in the middle of a pass: nothing was tested"
    );
    let (code, stderr) = run_binary(&argv);
    assert_eq!(code, 0, "{stderr}");
    let delivered = s.delivered();
    // Exactly once: one file per object (bob's and alice's), no duplicates, none missing.
    assert_eq!(
        delivered.len(),
        n,
        "{:?}",
        delivered.keys().collect::<Vec<_>>()
    );
    let mut got: Vec<&Vec<u8>> = delivered.values().collect();
    got.sort();
    let mut exp: Vec<&Vec<u8>> = want.values().collect();
    exp.sort();
    assert!(got == exp, "delivered contents differ from the objects");
    let r = s.run(&server.endpoint, &[]).unwrap();
    assert_eq!(r.delivered, 0);
}

/// A crash after the rename into new/ but before the ledger write: the next pass downloads the
/// object again and the deterministic unique name makes the delivery a no-op.
#[test]
fn crash_between_rename_and_ledger_write_is_not_a_duplicate() {
    let s = Setup::new("crashpoint", &["alice"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    let m = plain("c1", "alice@example.org");
    c.put("inbound/c1", &m).unwrap();
    // What the killed pass left behind: the file in new/, no ledger record.
    let unique = pimap::sync::plan::unique_name(BUCKET, "inbound/c1");
    std::fs::create_dir_all(s.path("mail/alice")).unwrap();
    pimap::store::deliver(&s.path("mail/alice"), &unique, &m).unwrap();
    let r = s.run(&server.endpoint, &[]).unwrap();
    assert_eq!((r.new, r.delivered, r.failed), (1, 1, 0), "{r}");
    assert_eq!(s.delivered().len(), 1);
}

/// Objects over --max-message-size are skipped (not failed) and the rest delivered.
#[test]
fn oversized_objects_are_skipped_not_failed() {
    let s = Setup::new("big", &["alice"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    c.put("inbound/small", &plain("small", "alice@example.org"))
        .unwrap();
    c.put(
        "inbound/huge",
        &ses_message(
            "huge",
            Some("alice@example.org"),
            "a@example.org",
            "PASS",
            "PASS",
            &"z".repeat(50_000),
        ),
    )
    .unwrap();
    let r = s
        .run(&server.endpoint, &["--max-message-size", "20000"])
        .unwrap();
    assert_eq!((r.delivered, r.skipped, r.failed), (1, 1, 0), "{r}");
    // Raising the limit later delivers it.
    let r = s.run(&server.endpoint, &[]).unwrap();
    assert_eq!((r.delivered, r.skipped, r.failed), (1, 0, 0), "{r}");
}

/// Bounded memory: a 100 MiB object, with two recipients (one stream to disk, then a
/// hard link), synced by the real binary: delivered byte for byte while the process's peak RSS
/// (VmHWM, polled from /proc while it runs) stays far below the object's size.
#[test]
fn huge_object_is_streamed_to_disk_with_bounded_rss() {
    const MIB: usize = 1024 * 1024;
    let s = Setup::new("rss", &["alice", "bob"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    let line = format!("{}\r\n", "0123456789abcdef".repeat(4));
    let body = line.repeat(100 * MIB / line.len());
    let huge = ses_message(
        "huge",
        None,
        "alice@example.org, bob@example.org",
        "PASS",
        "PASS",
        &body,
    );
    drop(body);
    assert!(huge.len() >= 100 * MIB, "{}", huge.len());
    c.put("inbound/huge", &huge).unwrap();
    let want_len = huge.len();
    let want_md5 = {
        use md5::{Digest, Md5};
        let d: [u8; 16] = Md5::digest(&huge).into();
        d
    };
    drop(huge);

    let argv = s.argv(
        &server.endpoint,
        &["--max-message-size", &(200 * MIB).to_string()],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_pimap"))
        .arg("sync")
        .args(&argv)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib: u64 = 0;
    let start = Instant::now();
    let exit = loop {
        // VmHWM only grows, so the last value read before the exit is the peak.
        if let Ok(st) = std::fs::read_to_string(&status) {
            if let Some(kib) = st
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the sync did not finish"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(exit.success(), "{stderr}");
    let peak_mib = peak_kib as f64 / 1024.0;
    eprintln!("peak RSS of `pimap sync` for a 100 MiB object: {peak_mib:.1} MiB");
    assert!(peak_kib > 0, "could not read VmHWM from {status}");
    assert!(
        peak_mib < 40.0,
        "peak RSS {peak_mib:.1} MiB: the object was not streamed"
    );
    let delivered = s.delivered();
    assert_eq!(
        delivered.len(),
        2,
        "{:?}",
        delivered.keys().collect::<Vec<_>>()
    );
    for (name, data) in &delivered {
        use md5::{Digest, Md5};
        assert_eq!(data.len(), want_len, "{name}");
        let got: [u8; 16] = Md5::digest(data).into();
        assert!(got == want_md5, "{name}: contents differ");
        assert!(name.contains(&format!(",S={want_len}")), "{name}");
    }
}

/// `pimap_sync_quota_held_total` from the process's metrics.
fn quota_held_metric() -> u64 {
    pimap::metrics::global()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("pimap_sync_quota_held_total ")?.parse().ok())
        .unwrap_or(0)
}

/// Mail for a user over quota (the passwd-file's rules) stays in the bucket, is counted once
/// per object in the metric, and is delivered by a later pass once an expunge made room; the
/// other recipients of the same object get it at once, and exactly once.
#[test]
fn over_quota_objects_stay_in_the_bucket_until_there_is_room() {
    let s = Setup::new("quota", &["alice", "bob", "postmaster"]);
    std::fs::write(
        s.path("users"),
        "alice:{PLAIN}pw::::::userdb_quota_rule=*:messages=1\nbob:{PLAIN}pw::::::\npostmaster:{PLAIN}pw::::::\n",
    )
    .unwrap();
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    c.put("inbound/a1", &plain("a1", "alice@example.org"))
        .unwrap();
    c.put("inbound/a2", &plain("a2", "alice@example.org"))
        .unwrap();
    c.put("inbound/b1", &plain("b1", "bob@example.org"))
        .unwrap();
    let both = ses_message(
        "ab",
        None,
        "alice@example.org, bob@example.org",
        "PASS",
        "PASS",
        "hi",
    );
    c.put("inbound/ab", &both).unwrap();
    let listed = || {
        let mut keys: Vec<String> = c
            .list_page("inbound/", None, 1000)
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        keys
    };
    let count = |user: &str| {
        s.delivered()
            .keys()
            .filter(|k| k.starts_with(&format!("{user}/")))
            .count()
    };
    let metric_before = quota_held_metric();
    let delete = ["--after-delivery", "delete"];
    let r = s.run(&server.endpoint, &delete).unwrap();
    // bob gets both of his; alice one of her three, the other two wait in the bucket.
    assert_eq!((r.delivered, r.held, r.failed), (2, 2, 0), "{r}");
    assert_eq!((count("alice"), count("bob")), (1, 2));
    assert_eq!(listed().len(), 2, "{:?}", listed());
    assert_eq!(quota_held_metric() - metric_before, 2);
    // Still no room: nothing moves, and the held objects are not counted again.
    let r = s.run(&server.endpoint, &delete).unwrap();
    assert_eq!((r.delivered, r.held, r.failed), (0, 2, 0), "{r}");
    assert_eq!(quota_held_metric() - metric_before, 2);
    // Expunge alice's message (as a client would): the next pass delivers one more.
    for round in 0..2 {
        let gone: Vec<String> = s
            .delivered()
            .into_keys()
            .filter(|k| k.starts_with("alice/"))
            .collect();
        assert_eq!(gone.len(), 1, "round {round}: {gone:?}");
        std::fs::remove_file(s.path("mail").join(&gone[0])).unwrap();
        let r = s.run(&server.endpoint, &delete).unwrap();
        assert_eq!((r.delivered, r.held, r.failed), (1, 1 - round, 0), "{r}");
        assert_eq!(listed().len(), 1 - round);
    }
    // Every object reached every recipient once: bob never got "ab" twice.
    assert_eq!((count("alice"), count("bob")), (1, 2));
    assert_eq!(quota_held_metric() - metric_before, 2);
}

/// `serve` can flatten the sync's own options next to its flags without clashes.
#[test]
fn sync_options_flatten_into_serve_args() {
    #[derive(Parser, Debug)]
    struct Serve {
        #[command(flatten)]
        serve: pimap::cli::ServeArgs,
    }
    let p = Serve::try_parse_from([
        "serve",
        "--sync-interval",
        "5m",
        "--s3-bucket",
        "b",
        "--max-message-size",
        "10",
    ])
    .unwrap();
    let settings = p.serve.sync_settings();
    assert_eq!(p.serve.sync.sync_interval, Some(Duration::from_secs(300)));
    assert_eq!(settings.max_message_size, 10);
    assert_eq!(settings.s3_bucket.as_deref(), Some("b"));
    assert!(p.serve.sync.is_configured());
}

/// `spawn_periodic` (what `serve --sync-interval` runs) picks new objects up on its own.
#[test]
fn periodic_sync_delivers_new_objects_in_the_background() {
    let s = Setup::new("periodic", &["alice"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    c.put("inbound/p1", &plain("p1", "alice@example.org"))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = pimap::sync::spawn_periodic_until(
        s.args(&server.endpoint, &[]),
        Duration::from_millis(100),
        stop.clone(),
    )
    .unwrap();
    let wait_for = |n: usize| {
        let start = Instant::now();
        while s.delivered().len() < n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "periodic sync did not deliver {n}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(1);
    c.put("inbound/p2", &plain("p2", "alice@example.org"))
        .unwrap();
    wait_for(2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.delivered().len(), 2);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
}

/// A second syncer on the same ledger gives up at once.
#[test]
fn one_syncer_at_a_time() {
    let s = Setup::new("lock", &["alice"]);
    let Some(server) = start_s3s(&s.dir.0) else {
        return;
    };
    client(&server.endpoint, SK).create_bucket().unwrap();
    std::fs::create_dir_all(s.path("data")).unwrap();
    let _held = pimap::sync::ledger::lock(&s.path(&format!("data/s3-sync-{BUCKET}.lock"))).unwrap();
    let e = s.run(&server.endpoint, &[]).unwrap_err();
    assert!(e.contains("another pimap sync"), "{e}");
}

// ---------------------------------------------------------------- the binary

/// `pimap sync` when the CLI has it; otherwise this test executable re-run as a child that
/// calls `pimap::sync::main` (see `child_sync_entry`).
fn command_for(argv: &[String]) -> Command {
    let bin = env!("CARGO_BIN_EXE_pimap");
    let has_sync = Command::new(bin)
        .args(["sync", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if has_sync {
        let mut c = Command::new(bin);
        c.arg("sync").args(argv);
        c
    } else {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "--exact",
            "child_sync_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ]);
        c.env("PIMAP_SYNC_TEST_CHILD", argv.join("\u{1f}"));
        c
    }
}

fn spawn_binary(argv: &[String]) -> Child {
    command_for(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Exit code and stderr (without the test harness's own lines).
fn run_binary(argv: &[String]) -> (i32, String) {
    let out = command_for(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn child_sync_entry() {
    if let Ok(joined) = std::env::var("PIMAP_SYNC_TEST_CHILD") {
        let argv =
            std::iter::once("sync".to_string()).chain(joined.split('\u{1f}').map(String::from));
        let args = Wrap::try_parse_from(argv).unwrap().args;
        std::process::exit(pimap::sync::main(args.settings(), args.every(), args.once));
    }
}

/// `put_stream` (the backup's uploads): the body is streamed with its announced length and
/// arrives byte for byte (s3s-fs checks the signature); a source that ends early or runs long
/// is a local error and stores nothing; an `open` failure is not retried.
#[test]
fn s3s_fs_put_stream_sends_exactly_the_announced_bytes() {
    let d = Dir::new("putstream");
    let Some(server) = start_s3s(&d.0) else {
        return;
    };
    let c = client(&server.endpoint, SK);
    c.create_bucket().unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut opened = 0;
    c.put_stream("b/whole", body.len() as u64, || {
        opened += 1;
        Ok(body.as_slice())
    })
    .unwrap();
    assert_eq!(opened, 1);
    let (got, _) = c
        .get_with("b/whole", 1 << 20, |r| {
            let mut v = Vec::new();
            std::io::Read::read_to_end(r, &mut v).map_err(|e| e.to_string())?;
            Ok(v)
        })
        .unwrap();
    assert_eq!(got, body);
    for (key, announced) in [("b/short", body.len() as u64 + 10), ("b/long", 1000)] {
        let e = c
            .put_stream(key, announced, || Ok(body.as_slice()))
            .unwrap_err();
        assert!(
            matches!(&e, pimap::sync::s3::S3Error::Local(m) if m.contains("source")),
            "{key}: {e:?}"
        );
        let listed = c.list_all("b/").unwrap();
        assert!(listed.iter().all(|l| l.key != key), "{key} was stored");
    }
    let mut tries = 0;
    let e = c
        .put_stream("b/none", 5, || -> Result<&[u8], String> {
            tries += 1;
            Err("no such file".into())
        })
        .unwrap_err();
    assert_eq!(e, pimap::sync::s3::S3Error::Local("no such file".into()));
    assert_eq!(tries, 1);
}

/// Backups through the fault injector: 500s, resets and SlowDown on uploads, truncated and
/// failed downloads on restore are retried, and what is restored is byte-identical; an upload
/// that keeps failing fails the pass before its snapshot, so the bucket's newest snapshot is
/// still the last complete one.
#[test]
fn faults_during_backup_and_restore_are_retried_and_a_failed_pass_writes_no_snapshot() {
    use pimap::backup::{pass, restore, scan::HashCache, Seal, Target};
    let d = Dir::new("backupfaults");
    let Some(server) = start_s3s(&d.0) else {
        return;
    };
    let proxy = Proxy::start(&d.0, &server);
    client(&server.endpoint, SK).create_bucket().unwrap();
    let cfg = |endpoint: &str| S3Config {
        endpoint: endpoint.parse().unwrap(),
        style: rusty_s3::UrlStyle::Path,
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        credentials: rusty_s3::Credentials::new(AK, SK),
        timeout: Duration::from_secs(2),
        retry: Retry {
            attempts: 4,
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
    };
    let target = Target::new(cfg(&proxy.endpoint), "bk", Seal::Plain, 2).unwrap();
    let root = d.0.join("mail/alice");
    for sub in ["cur", "new", "tmp", ".Work/cur", ".Work/new", ".Work/tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let mut files = BTreeMap::new();
    for i in 0..12u32 {
        let dir = if i % 3 == 0 { ".Work/cur" } else { "cur" };
        let name = format!("{dir}/17000000{i:02}.M{i}P1.host:2,S");
        let data = plain(&format!("b{i}"), "alice@example.org").repeat(i as usize + 1);
        std::fs::write(root.join(&name), &data).unwrap();
        files.insert(name, data);
    }
    std::fs::write(
        root.join("dovecot-uidlist"),
        "3 V1700000000 N3 G0123456789abcdef0123456789abcdef\n1 :1700000001.M1P1.host\n",
    )
    .unwrap();
    proxy.set_rules(
        r#"{"/bk/alice/m/": ["500", 3], "/bk/alice/b/": ["reset", 1], "/bk/alice/s/": ["slowdown", 2]}"#,
    );
    let quiet = |_: &str, _: u64, _: u64| {};
    let mut cache = HashCache::default();
    let r = pass::backup_user(&target, "alice", &root, &mut cache, 1_800_000_000, &quiet).unwrap();
    assert_eq!((r.messages, r.uploaded, r.mailboxes), (12, 12, 2), "{r:?}");
    let failed_puts = proxy
        .requests()
        .iter()
        .filter(|l| l.starts_with("PUT /ses-inbound/bk/alice/"))
        .count();
    assert!(failed_puts >= 12 + 2 + 1 + 3 + 1 + 2, "{failed_puts}");

    // A message upload that keeps failing: the pass fails, no snapshot is written.
    std::fs::write(
        root.join("new/1800000000.M99P1.host"),
        b"Subject: new\r\n\r\nx\r\n",
    )
    .unwrap();
    proxy.set_rules(r#"{"/bk/alice/m/": ["500", 1000]}"#);
    let e =
        pass::backup_user(&target, "alice", &root, &mut cache, 1_800_000_100, &quiet).unwrap_err();
    assert!(e.contains("InternalError"), "{e}");
    let snaps = pass::snapshots(&target, "alice").unwrap();
    assert_eq!(
        snaps.keys().copied().collect::<Vec<_>>(),
        vec![1_800_000_000]
    );
    std::fs::remove_file(root.join("new/1800000000.M99P1.host")).unwrap();

    // Restore through truncated bodies, 500s and a stall: retried, byte-identical.
    proxy.set_rules(
        r#"{"/bk/alice/m/": ["truncate", 3], "/bk/alice/b/": ["500", 2], "/bk/alice/s/": ["truncate", 1]}"#,
    );
    let out = d.0.join("restored/alice");
    let restore::Choice::Snapshot(key) = restore::choose(&target, "alice", None).unwrap() else {
        panic!("no snapshot");
    };
    let rep = restore::restore_user(&target, "alice", &out, &key, false, &quiet).unwrap();
    assert_eq!(rep.messages, 12);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
    }
    assert_eq!(
        std::fs::read(out.join("dovecot-uidlist")).unwrap(),
        std::fs::read(root.join("dovecot-uidlist")).unwrap()
    );
}
