//! The S3 client: rusty-s3 signs (AWS SigV4, query-string / presigned form), ureq carries.
//! The only place in pimap that makes HTTP requests.
//!
//! Owns: ListObjectsV2 paging, GET with integrity checks (Content-Length, MD5 against a plain
//! ETag, a size cap), DELETE, server-side copy (for `--after-delivery move:`), retries with
//! bounded exponential backoff for 5xx / 429 / SlowDown / timeouts / resets, and turning S3
//! error documents into one line a user can act on (`SignatureDoesNotMatch`, `AccessDenied`,
//! `NoSuchBucket`, ...).
//!
//! Never: logs a secret or a presigned URL (it carries the signature), or hands a body that
//! failed a check to the caller.

use super::plan::{etag_md5, Listed};
use md5::{Digest, Md5};
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::io::Read;
use std::time::Duration;

/// How long a presigned URL stays valid; each request is signed just before it is sent.
const SIGN_FOR: Duration = Duration::from_secs(15 * 60);
/// Error documents and listings are read up to this size.
const MAX_SMALL_BODY: u64 = 16 * 1024 * 1024;

/// Retry policy: `attempts` tries in all, sleeping `base`, 2·`base`, … (capped at `max`)
/// between them. Tests shrink the delays (the clock is injected, not waited on).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
        }
    }
}

impl Retry {
    /// Run `op` until it is done or fails for good, at most `attempts` times, sleeping with
    /// `sleep` between; `what` names the request in messages (never a URL), and `gave_up`
    /// makes the error when every try asked for another.
    pub(super) fn run<T, E>(
        &self,
        sleep: fn(Duration),
        what: &str,
        mut op: impl FnMut() -> Attempt<T, E>,
        gave_up: impl FnOnce(String) -> E,
    ) -> Result<T, E> {
        let attempts = self.attempts.max(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                log::debug!("retrying {what} after: {last}");
                sleep(self.delay(attempt - 1));
            }
            match op() {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(m) => last = m,
            }
        }
        Err(gave_up(format!(
            "{what}: {last} (gave up after {attempts} attempts)"
        )))
    }

    fn delay(&self, attempt: u32) -> Duration {
        let d = self.base.saturating_mul(1u32 << attempt.min(16));
        d.min(self.max)
    }
}

/// Everything the client needs.
#[derive(Clone)]
pub struct S3Config {
    pub endpoint: url::Url,
    pub style: UrlStyle,
    pub bucket: String,
    pub region: String,
    pub credentials: Credentials,
    pub timeout: Duration,
    pub retry: Retry,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("credentials", &"<redacted>")
            .finish()
    }
}

/// A failed request, after retries where they apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Error {
    /// S3 answered with an error document or status that retrying will not fix (403, 404, …):
    /// `code` is S3's error code (e.g. `SignatureDoesNotMatch`) or `HTTP <status>`.
    Fatal {
        status: u16,
        code: String,
        message: String,
    },
    /// Still failing after the retries: 5xx, throttling, timeouts, resets, bad bodies.
    Transient(String),
    /// The body is larger than the cap.
    TooLarge(u64),
    /// The consumer of a streamed body failed locally (e.g. a disk error while delivering).
    Local(String),
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3Error::Fatal {
                status,
                code,
                message,
            } => {
                write!(f, "{code} (HTTP {status})")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                match code.as_str() {
                    "SignatureDoesNotMatch" => write!(f, " — check the secret access key"),
                    "InvalidAccessKeyId" => write!(f, " — check the access key id"),
                    "ExpiredToken" | "TokenRefreshRequired" => {
                        write!(f, " — the session token has expired")
                    }
                    "AccessDenied" => {
                        write!(f, " — check the IAM policy (s3:ListBucket, s3:GetObject)")
                    }
                    "NoSuchBucket" => write!(f, " — check --s3-bucket and --s3-region"),
                    "PermanentRedirect" | "AuthorizationHeaderMalformed" => {
                        write!(f, " — check --s3-region")
                    }
                    _ => Ok(()),
                }
            }
            S3Error::Transient(m) => write!(f, "{m}"),
            S3Error::TooLarge(n) => write!(f, "larger than the limit ({n} bytes)"),
            S3Error::Local(m) => write!(f, "{m}"),
        }
    }
}

/// Why a streamed body was refused (recorded by [`Body`] for [`S3Client::get_with`]).
#[derive(Debug, Clone)]
enum BodyProblem {
    TooLarge(u64),
    Retry(String),
}

/// A GET's body as a checked stream, for [`S3Client::get_with`]: it fails a read past the size
/// cap, and at the end of the stream it fails (instead of returning `Ok(0)`) when the length
/// differs from Content-Length or the MD5 differs from a plain-MD5 ETag. A consumer that
/// writes the stream to disk therefore sees a bad body as a read error before it can publish
/// it. Only [`BODY_BUF`]-sized chunks pass through; nothing is buffered here.
pub struct Body<'a> {
    inner: Box<dyn Read + 'a>,
    hasher: Md5,
    want_md5: Option<[u8; 16]>,
    declared: Option<u64>,
    max: u64,
    read: u64,
    verified: bool,
    problem: Option<BodyProblem>,
}

/// Read-buffer size callers should use with a [`Body`].
pub const BODY_BUF: usize = 64 * 1024;

impl Body<'_> {
    /// Content-Length, if the server sent one.
    pub fn declared_len(&self) -> Option<u64> {
        self.declared
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn refuse(&mut self, p: BodyProblem) -> std::io::Error {
        let msg = match &p {
            BodyProblem::TooLarge(n) => format!("larger than the limit ({n} bytes)"),
            BodyProblem::Retry(m) => m.clone(),
        };
        self.problem = Some(p);
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(p) = self.problem.clone() {
            return Err(self.refuse(p));
        }
        if self.verified {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(self.refuse(BodyProblem::Retry(format!("reading the body: {e}")))),
        };
        if n == 0 {
            if let Some(want) = self.declared.filter(|w| *w != self.read) {
                let m = format!("truncated body: {} of {want} bytes", self.read);
                return Err(self.refuse(BodyProblem::Retry(m)));
            }
            if let Some(want) = self.want_md5 {
                let got: [u8; 16] = self.hasher.clone().finalize().into();
                if got != want {
                    let m = "body does not match its ETag (MD5)".to_string();
                    return Err(self.refuse(BodyProblem::Retry(m)));
                }
            }
            self.verified = true;
            return Ok(0);
        }
        let chunk = buf.get(..n).unwrap_or(&[]);
        self.read += n as u64;
        if self.read > self.max {
            return Err(self.refuse(BodyProblem::TooLarge(self.read)));
        }
        if self.declared.is_some_and(|d| self.read > d) {
            let m = format!("body longer than its Content-Length ({} bytes)", self.read);
            return Err(self.refuse(BodyProblem::Retry(m)));
        }
        self.hasher.update(chunk);
        Ok(n)
    }
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<Listed>,
    pub next: Option<String>,
}

pub struct S3Client {
    agent: ureq::Agent,
    bucket: Bucket,
    cfg: S3Config,
    sleep: fn(Duration),
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cfg.fmt(f)
    }
}

/// One try of a request under a [`Retry`] policy (the SQS client's too).
pub(super) enum Attempt<T, E = S3Error> {
    Done(T),
    Retry(String),
    Fail(E),
}

/// A request that failed before any answer: `Ok((code, message))` for a configuration problem
/// retrying will not fix (a bad URL, an unknown host, TLS; `flag` is the setting to check),
/// `Err(why)` for a network one worth retrying. Shared with the SQS client.
pub(super) fn transport_failure(e: ureq::Error, flag: &str) -> Result<(String, String), String> {
    match e {
        ureq::Error::BadUri(m) => Ok(("BadUri".into(), m)),
        ureq::Error::HostNotFound => Ok(("HostNotFound".into(), format!("check {flag}"))),
        ureq::Error::Tls(m) => Ok(("TLS".into(), m.into())),
        other => Err(format!("transport error: {other}")),
    }
}

/// Pull `<Code>` and `<Message>` out of an S3 error document (no full XML parse needed).
pub fn parse_error_document(body: &str) -> (Option<String>, Option<String>) {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let len = body.get(start..)?.find(&close)?;
        body.get(start..start + len)
            .map(|s| s.trim().chars().take(300).collect::<String>())
    };
    (field("Code"), field("Message"))
}

impl S3Client {
    pub fn new(cfg: S3Config) -> Result<S3Client, String> {
        let bucket = Bucket::new(
            cfg.endpoint.clone(),
            cfg.style,
            cfg.bucket.clone(),
            cfg.region.clone(),
        )
        .map_err(|e| {
            format!(
                "S3 endpoint {} with bucket {:?}: {e:?}",
                cfg.endpoint, cfg.bucket
            )
        })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(cfg.timeout))
            .timeout_recv_response(Some(cfg.timeout))
            .timeout_per_read(Some(cfg.timeout))
            .timeout_send_request(Some(cfg.timeout))
            .max_redirects(0)
            .user_agent(concat!("pimap/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(S3Client {
            agent,
            bucket,
            cfg,
            sleep: std::thread::sleep,
        })
    }

    /// Replace the sleep used between retries (tests).
    pub fn with_sleep(mut self, sleep: fn(Duration)) -> Self {
        self.sleep = sleep;
        self
    }

    pub fn bucket_name(&self) -> &str {
        &self.cfg.bucket
    }

    /// Run `op` with the configured retries; `what` names the request in messages.
    fn retrying<T>(&self, what: &str, op: impl FnMut() -> Attempt<T>) -> Result<T, S3Error> {
        self.cfg.retry.run(self.sleep, what, op, S3Error::Transient)
    }

    /// Classify a non-2xx response: retry 5xx / 429 / SlowDown, fail the rest with S3's code.
    fn classify<T>(status: u16, resp: &mut ureq::http::Response<ureq::Body>) -> Attempt<T> {
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let (code, message) = parse_error_document(&body);
        let code_s = code.clone().unwrap_or_else(|| format!("HTTP {status}"));
        if status >= 500
            || status == 429
            || matches!(
                code.as_deref(),
                Some("SlowDown" | "RequestTimeout" | "InternalError")
            )
        {
            Attempt::Retry(format!("{code_s} (HTTP {status})"))
        } else {
            Attempt::Fail(S3Error::Fatal {
                status,
                code: code_s,
                message: message.unwrap_or_default(),
            })
        }
    }

    fn transport<T>(e: ureq::Error) -> Attempt<T> {
        match transport_failure(e, "--s3-endpoint") {
            Ok((code, message)) => Attempt::Fail(S3Error::Fatal {
                status: 0,
                code,
                message,
            }),
            Err(why) => Attempt::Retry(why),
        }
    }

    /// One ListObjectsV2 page under `prefix`, after `token`.
    pub fn list_page(
        &self,
        prefix: &str,
        token: Option<&str>,
        max_keys: usize,
    ) -> Result<Page, S3Error> {
        self.retrying("ListObjectsV2", || {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.cfg.credentials));
            if !prefix.is_empty() {
                action.with_prefix(prefix);
            }
            if let Some(t) = token {
                action.with_continuation_token(t);
            }
            action.with_max_keys(max_keys);
            let url = action.sign(SIGN_FOR);
            let mut resp = match self.agent.get(url.as_str()).call() {
                Ok(r) => r,
                Err(e) => return Self::transport(e),
            };
            let status = resp.status().as_u16();
            if status != 200 {
                return Self::classify(status, &mut resp);
            }
            let body = match resp
                .body_mut()
                .with_config()
                .limit(MAX_SMALL_BODY)
                .read_to_string()
            {
                Ok(b) => b,
                Err(e) => return Attempt::Retry(format!("reading the listing: {e}")),
            };
            match ListObjectsV2::parse_response(&body) {
                Ok(parsed) => {
                    let objects = parsed
                        .contents
                        .into_iter()
                        .map(|c| Listed {
                            key: c.key,
                            etag: c.etag,
                            size: c.size,
                        })
                        .collect();
                    // A truncated listing without a token would loop forever: treat it as the end.
                    Attempt::Done(Page {
                        objects,
                        next: parsed.next_continuation_token.filter(|t| !t.is_empty()),
                    })
                }
                Err(e) => Attempt::Retry(format!("unparsable listing: {e}")),
            }
        })
    }

    /// GET `key` and hand its body, as a checked stream ([`Body`]: size cap, Content-Length,
    /// MD5 against a plain ETag), to `sink`, which typically writes it to disk; memory stays
    /// bounded whatever the object's size. Returns `sink`'s value and the ETag.
    ///
    /// When `sink` fails because the body failed a check or the connection broke, the GET is
    /// retried like a transport error (so `sink` must be idempotent, or clean up after a
    /// failure); a body over `max_size` is [`S3Error::TooLarge`] (not retried); any other
    /// `sink` error is [`S3Error::Local`] (not retried).
    pub fn get_with<T>(
        &self,
        key: &str,
        max_size: u64,
        mut sink: impl FnMut(&mut Body<'_>) -> Result<T, String>,
    ) -> Result<(T, Option<String>), S3Error> {
        self.retrying(&format!("GET {key:?}"), || {
            let action = self.bucket.get_object(Some(&self.cfg.credentials), key);
            let url = action.sign(SIGN_FOR);
            let mut resp = match self.agent.get(url.as_str()).call() {
                Ok(r) => r,
                Err(e) => return Self::transport(e),
            };
            let status = resp.status().as_u16();
            if status != 200 {
                return Self::classify(status, &mut resp);
            }
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let declared = resp.body().content_length();
            if let Some(n) = declared.filter(|n| *n > max_size) {
                return Attempt::Fail(S3Error::TooLarge(n));
            }
            let reader = resp
                .body_mut()
                .with_config()
                .limit(max_size.saturating_add(1))
                .reader();
            let mut body = Body {
                inner: Box::new(reader),
                hasher: Md5::new(),
                want_md5: etag.as_deref().and_then(etag_md5),
                declared,
                max: max_size,
                read: 0,
                verified: false,
                problem: None,
            };
            match sink(&mut body) {
                Ok(v) => Attempt::Done((v, etag.clone())),
                Err(e) => match body.problem {
                    Some(BodyProblem::TooLarge(n)) => Attempt::Fail(S3Error::TooLarge(n)),
                    Some(BodyProblem::Retry(m)) => Attempt::Retry(m),
                    None => Attempt::Fail(S3Error::Local(e)),
                },
            }
        })
    }

    /// DELETE `key` (404 counts as done: deleting is idempotent).
    pub fn delete(&self, key: &str) -> Result<(), S3Error> {
        self.retrying(&format!("DELETE {key:?}"), || {
            let url = self
                .bucket
                .delete_object(Some(&self.cfg.credentials), key)
                .sign(SIGN_FOR);
            match self.agent.delete(url.as_str()).call() {
                Ok(mut r) => match r.status().as_u16() {
                    200..=299 | 404 => Attempt::Done(()),
                    s => Self::classify(s, &mut r),
                },
                Err(e) => Self::transport(e),
            }
        })
    }

    /// Server-side copy `from` → `to` in the same bucket (PUT with `x-amz-copy-source`).
    pub fn copy(&self, from: &str, to: &str) -> Result<(), S3Error> {
        // The copy source is `bucket/key`, URL-encoded (S3 CopyObject API).
        let source = format!("{}/{}", self.cfg.bucket, encode_copy_source(from));
        self.retrying(&format!("COPY {from:?}"), || {
            let mut action = self.bucket.put_object(Some(&self.cfg.credentials), to);
            action
                .headers_mut()
                .insert("x-amz-copy-source", source.clone());
            let url = action.sign(SIGN_FOR);
            match self
                .agent
                .put(url.as_str())
                .header("x-amz-copy-source", &source)
                .send_empty()
            {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    if status != 200 {
                        return Self::classify(status, &mut r);
                    }
                    // CopyObject can answer 200 with an error document in the body.
                    let body = r
                        .body_mut()
                        .with_config()
                        .limit(64 * 1024)
                        .read_to_string()
                        .unwrap_or_default();
                    match parse_error_document(&body) {
                        (Some(code), _) if body.contains("<Error>") => {
                            Attempt::Retry(format!("copy failed: {code}"))
                        }
                        _ => Attempt::Done(()),
                    }
                }
                Err(e) => Self::transport(e),
            }
        })
    }

    /// PUT an object (tests and benchmarks seed buckets with it).
    pub fn put(&self, key: &str, data: &[u8]) -> Result<(), S3Error> {
        self.retrying(&format!("PUT {key:?}"), || {
            let url = self
                .bucket
                .put_object(Some(&self.cfg.credentials), key)
                .sign(SIGN_FOR);
            match self.agent.put(url.as_str()).send(data) {
                Ok(mut r) => match r.status().as_u16() {
                    200..=299 => Attempt::Done(()),
                    s => Self::classify(s, &mut r),
                },
                Err(e) => Self::transport(e),
            }
        })
    }

    /// PUT `key` with exactly `len` bytes read from what `open` returns; `open` is called
    /// again for each attempt, so the body is streamed from its source (a message file) and
    /// never held in memory. A source that ends early or runs long fails the attempt instead
    /// of sending a wrong object; an `open` error is [`S3Error::Local`] (not retried).
    pub fn put_stream<R: Read>(
        &self,
        key: &str,
        len: u64,
        mut open: impl FnMut() -> Result<R, String>,
    ) -> Result<(), S3Error> {
        self.retrying(&format!("PUT {key:?}"), || {
            let source = match open() {
                Ok(r) => r,
                Err(e) => return Attempt::Fail(S3Error::Local(e)),
            };
            let mut body = Exact {
                inner: source,
                left: len,
            };
            let url = self
                .bucket
                .put_object(Some(&self.cfg.credentials), key)
                .sign(SIGN_FOR);
            let sent = self
                .agent
                .put(url.as_str())
                .header("content-length", len.to_string())
                .send(ureq::SendBody::from_reader(&mut body));
            match sent {
                Ok(mut r) => match r.status().as_u16() {
                    200..=299 => Attempt::Done(()),
                    s => Self::classify(s, &mut r),
                },
                Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    Attempt::Fail(S3Error::Local(e.to_string()))
                }
                Err(e) => Self::transport(e),
            }
        })
    }

    /// Every key under `prefix` with its size (ListObjectsV2, page by page).
    pub fn list_all(&self, prefix: &str) -> Result<Vec<Listed>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(prefix, token.as_deref(), 1000)?;
            out.extend(page.objects);
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Create the bucket (tests and benchmarks); an existing bucket of ours is fine.
    pub fn create_bucket(&self) -> Result<(), S3Error> {
        self.retrying("CreateBucket", || {
            let url = self
                .bucket
                .create_bucket(&self.cfg.credentials)
                .sign(SIGN_FOR);
            match self.agent.put(url.as_str()).send_empty() {
                Ok(mut r) => match r.status().as_u16() {
                    200..=299 => Attempt::Done(()),
                    s => match Self::classify::<()>(s, &mut r) {
                        Attempt::Fail(S3Error::Fatal { code, .. })
                            if code == "BucketAlreadyOwnedByYou" =>
                        {
                            Attempt::Done(())
                        }
                        other => other,
                    },
                },
                Err(e) => Self::transport(e),
            }
        })
    }
}

/// A body source cut to exactly `left` bytes: ending early or running long is an
/// `InvalidData` error, so a PUT never stores something other than what was announced. The
/// source is read to its end within the read that delivers the last announced byte (the
/// client stops reading at Content-Length), so the source's own end-of-stream checks (a
/// content hash) fail the request before it is complete.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the source ended {} bytes early", self.left),
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the source is longer than announced",
                ));
            }
        }
        Ok(n)
    }
}

/// Percent-encode a key for `x-amz-copy-source`, keeping `/` and unreserved characters.
fn encode_copy_source(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents() {
        let doc = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>";
        let (c, m) = parse_error_document(doc);
        assert_eq!(c.as_deref(), Some("SignatureDoesNotMatch"));
        assert!(m.unwrap().starts_with("The request"));
        assert_eq!(parse_error_document("<Code>x"), (None, None));
        assert_eq!(parse_error_document(""), (None, None));
        let e = S3Error::Fatal {
            status: 403,
            code: "SignatureDoesNotMatch".into(),
            message: String::new(),
        };
        assert!(e.to_string().contains("secret access key"));
    }

    #[test]
    fn backoff_is_bounded() {
        let r = Retry {
            attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(r.delay(0), Duration::from_millis(100));
        assert_eq!(r.delay(2), Duration::from_millis(400));
        assert_eq!(r.delay(30), Duration::from_secs(1));
    }

    #[test]
    fn copy_source_encoding() {
        assert_eq!(encode_copy_source("in/a b+c"), "in/a%20b%2Bc");
    }

    #[test]
    fn credentials_are_not_in_debug() {
        let cfg = S3Config {
            endpoint: "http://127.0.0.1:9/".parse().unwrap(),
            style: UrlStyle::Path,
            bucket: "b".into(),
            region: "us-east-1".into(),
            credentials: Credentials::new("AKIDEXAMPLE", "sekrit"),
            timeout: Duration::from_secs(1),
            retry: Retry::default(),
        };
        assert!(!format!("{cfg:?}").contains("sekrit"));
        let c = S3Client::new(cfg).unwrap();
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
