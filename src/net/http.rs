//! The health and metrics endpoint (`--http-listen`, off by default): a deliberately tiny
//! HTTP/1.1 server (RFC 9110 semantics, RFC 9112 message syntax) on async-io.
//!
//! - `GET /healthz`: `200 ok` when the IMAP listeners are bound and accepting and the mail
//!   root is writable (a file is created and removed there, as the user pimap runs as);
//!   `503` with the reason otherwise. For Kubernetes liveness/readiness probes.
//! - `GET /metrics`: [`crate::metrics`] in the Prometheus text format 0.0.4.
//! - `HEAD` of both; anything else is `404`/`405`; a malformed or oversized request is `400`
//!   (or `431` for too-large headers), never a panic.
//!
//! Owns: the request parser ([`parse_request`], pure, unit-tested), the response encoder and
//! the accept loop. One request per connection (`Connection: close`): probes and scrapers
//! reconnect anyway. Strict limits: request head ≤ [`MAX_HEAD`] bytes, read within
//! [`READ_TIMEOUT`], no request bodies, at most [`MAX_CONNS`] connections at a time.
//! Never: serves files, follows the request's Host, or blocks the executor (the writability
//! check runs on the blocking pool).

use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest request head (request line + headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its whole request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP connections served at once; more are closed at accept.
pub const MAX_CONNS: usize = 32;

/// What `/healthz` checks.
pub struct Health {
    /// The IMAP listeners are bound and accepting (false again once shutdown starts).
    pub listening: AtomicBool,
    /// Directory that must be writable (the mail location's fixed part), if any.
    pub mail_root: Option<PathBuf>,
}

impl Health {
    pub fn new(mail_root: Option<PathBuf>) -> Arc<Health> {
        Arc::new(Health {
            listening: AtomicBool::new(false),
            mail_root,
        })
    }

    /// The IMAP listeners started (true) or stopped (false) accepting.
    pub fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::SeqCst);
    }

    /// `Ok` or why not healthy. Blocking (touches the file system).
    pub fn check(&self) -> Result<(), String> {
        if !self.listening.load(Ordering::SeqCst) {
            return Err("IMAP listeners are not accepting".into());
        }
        if let Some(dir) = &self.mail_root {
            crate::privdrop::check_writable(dir)
                .map_err(|e| format!("mail root {} is not writable: {e}", dir.display()))?;
        }
        Ok(())
    }
}

/// A parsed request: only what routing needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub head_only: bool,
    /// The path, without the query.
    pub path: String,
}

/// A response status with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadersTooLarge,
    Unavailable,
    VersionNotSupported,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::Unavailable => "503 Service Unavailable",
            Status::VersionNotSupported => "505 HTTP Version Not Supported",
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse a request head from the bytes received so far.
///
/// `Ok(None)`: incomplete (no empty line yet, still under [`MAX_HEAD`]). `Err(status)`: the
/// error response to send. Line ends are CRLF, or bare LF (RFC 9112 §2.2 allows accepting it).
pub fn parse_request(buf: &[u8]) -> Result<Option<Request>, Status> {
    let Some(end) = find_head_end(buf) else {
        return if buf.len() >= MAX_HEAD {
            Err(Status::HeadersTooLarge)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(Status::HeadersTooLarge);
    }
    let head = buf.get(..end).ok_or(Status::BadRequest)?;
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
    let mut request_line = lines.next().ok_or(Status::BadRequest)?;
    if request_line.is_empty() {
        request_line = lines.next().ok_or(Status::BadRequest)?;
    }
    // RFC 9112 §3: request-line = method SP request-target SP HTTP-version
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Status::BadRequest);
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        v if v.starts_with(b"HTTP/") && v.len() == 8 => return Err(Status::VersionNotSupported),
        _ => return Err(Status::BadRequest),
    };
    // origin-form only (RFC 9112 §3.2.1): "/" path [ "?" query ], visible ASCII.
    if !target.starts_with(b"/") || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(Status::BadRequest);
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let mut host = 0;
    for line in lines {
        if line.is_empty() {
            break;
        }
        // RFC 9112 §5: field-line = field-name ":" OWS field-value OWS; no obsolete folding.
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Status::BadRequest)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(Status::BadRequest);
        }
        if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return Err(Status::BadRequest);
        }
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"host") {
            host += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || (name.eq_ignore_ascii_case(b"content-length") && value != b"0")
        {
            // No request bodies: refusing them keeps framing trivial (no smuggling).
            return Err(Status::BadRequest);
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host field is a 400.
    if http11 && host != 1 || host > 1 {
        return Err(Status::BadRequest);
    }
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return Err(Status::MethodNotAllowed),
    };
    Ok(Some(Request {
        head_only,
        path: String::from_utf8_lossy(path).into_owned(),
    }))
}

/// Offset just past the empty line ending the head, if there is one.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    // Skip one leading empty line (see parse_request).
    if buf.starts_with(b"\r\n") {
        i = 2;
    } else if buf.starts_with(b"\n") {
        i = 1;
    }
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let rest = buf.get(nl + 1..)?;
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// A complete response; `body` is omitted for HEAD but its length is announced.
pub fn response(status: Status, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        status.line(),
        body.len()
    );
    if status == Status::MethodNotAllowed {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Route a request (blocking: the health check touches the file system).
pub fn route(req: &Request, health: &Health) -> Vec<u8> {
    match req.path.as_str() {
        "/healthz" => match health.check() {
            Ok(()) => response(Status::Ok, TEXT, "ok\n", req.head_only),
            Err(e) => {
                log::warn!("healthz: {e}");
                response(Status::Unavailable, TEXT, &format!("{e}\n"), req.head_only)
            }
        },
        "/metrics" => response(
            Status::Ok,
            PROMETHEUS,
            &crate::metrics::global().render(),
            req.head_only,
        ),
        _ => response(Status::NotFound, TEXT, "not found\n", req.head_only),
    }
}

/// Bind the HTTP listener (before privileges are dropped, like the IMAP ones).
pub fn bind(addr: SocketAddr) -> Result<Async<TcpListener>, String> {
    let l = Async::<TcpListener>::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} (--http-listen): {e}"))?;
    let local = l
        .get_ref()
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| addr.to_string());
    log::info!("listening for HTTP (/healthz, /metrics) on {local}");
    Ok(l)
}

/// Accept HTTP connections forever (the server cancels this task at shutdown).
pub async fn serve(
    listener: Async<TcpListener>,
    health: Arc<Health>,
    ex: Arc<smol::Executor<'static>>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if active.load(Ordering::SeqCst) >= MAX_CONNS {
                    log::warn!("http {peer}: too many connections; closed");
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let active = active.clone();
                let health = health.clone();
                ex.spawn(async move {
                    if let Err(e) = handle(stream, &health).await {
                        log::debug!("http {peer}: {e}");
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                })
                .detach();
            }
            Err(e) => {
                log::warn!("http accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: Async<TcpStream>, health: &Arc<Health>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            match parse_request(&buf) {
                Ok(Some(r)) => return Ok(Ok(r)),
                Err(s) => return Ok(Err(s)),
                Ok(None) => {}
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed before a complete request",
                ));
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
    .or(async {
        Timer::after(READ_TIMEOUT).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request not complete in time",
        ))
    })
    .await?;
    let bytes = match read {
        Ok(req) => {
            let h = health.clone();
            smol::unblock(move || route(&req, &h)).await
        }
        Err(status) => response(status, TEXT, "bad request\n", false),
    };
    async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    }
    .or(async {
        Timer::after(WRITE_TIMEOUT).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write timed out",
        ))
    })
    .await?;
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Request {
        parse_request(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn parses_get_and_head() {
        assert_eq!(
            ok("GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.30\r\n\r\n"),
            Request {
                head_only: false,
                path: "/healthz".into()
            }
        );
        assert_eq!(
            ok("HEAD /metrics?x=1 HTTP/1.0\n\n"),
            Request {
                head_only: true,
                path: "/metrics".into()
            }
        );
        // One leading empty line is ignored (RFC 9112 §2.2).
        assert_eq!(ok("\r\nGET / HTTP/1.0\r\n\r\n").path, "/");
    }

    #[test]
    fn incomplete_is_not_an_error() {
        assert_eq!(parse_request(b""), Ok(None));
        assert_eq!(
            parse_request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        );
    }

    #[test]
    fn bad_requests() {
        use Status::*;
        let cases: &[(&[u8], Status)] = &[
            (b"GET /healthz\r\n\r\n", BadRequest),
            (b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (
                b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                BadRequest,
            ),
            (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", BadRequest),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                BadRequest,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                BadRequest,
            ),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", VersionNotSupported),
            (b"GET / FTP/1.0\r\n\r\n", BadRequest),
            (
                b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                MethodNotAllowed,
            ),
            (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"\r\n\r\n\r\n", BadRequest),
        ];
        for (req, want) in cases {
            assert_eq!(
                parse_request(req),
                Err(*want),
                "{}",
                String::from_utf8_lossy(req)
            );
        }
    }

    #[test]
    fn oversized_heads_are_refused() {
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse_request(&big), Err(Status::HeadersTooLarge));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request(&big), Err(Status::HeadersTooLarge));
    }

    #[test]
    fn never_panics_on_prefixes_and_noise() {
        let req = b"GET /metrics?a=b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n\r\n";
        for i in 0..=req.len() {
            let _ = parse_request(&req[..i]);
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut v = Vec::new();
            for _ in 0..(x % 64) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                v.push(b"GET /\r\n :HTP1.0x\x00\xff"[(x >> 16) as usize % 17]);
            }
            let _ = parse_request(&v);
        }
    }

    #[test]
    fn responses_and_routes() {
        let dir = std::env::temp_dir().join(format!("pimap-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = Health::new(Some(dir.clone()));
        let get = |p: &str| Request {
            head_only: false,
            path: p.into(),
        };
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        assert!(text(route(&get("/healthz"), &h)).starts_with("HTTP/1.1 503 "));
        h.listening.store(true, Ordering::SeqCst);
        let r = text(route(&get("/healthz"), &h));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nok\n"));
        assert!(r.contains("Content-Length: 3\r\n"));
        let r = text(route(&get("/metrics"), &h));
        assert!(r.contains("text/plain; version=0.0.4"));
        assert!(r.contains("\r\n\r\n# HELP pimap_connections "));
        assert!(text(route(&get("/nope"), &h)).starts_with("HTTP/1.1 404 "));
        let head = text(route(
            &Request {
                head_only: true,
                path: "/healthz".into(),
            },
            &h,
        ));
        assert!(head.ends_with(
            "Content-Length: 3\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        // The directory is gone: not writable, so unhealthy.
        assert!(text(route(&get("/healthz"), &h)).starts_with("HTTP/1.1 503 "));
        let r = text(response(Status::MethodNotAllowed, TEXT, "", false));
        assert!(r.contains("Allow: GET, HEAD\r\n"));
    }
}
