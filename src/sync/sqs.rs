//! The SQS client for `--sqs-queue`: ReceiveMessage (long poll), DeleteMessageBatch and
//! GetQueueAttributes over SQS's JSON protocol (`application/x-amz-json-1.0`, the one the AWS
//! SDKs use), signed with AWS Signature Version 4 by the `aws-sigv4` crate (the AWS SDK's
//! own signer; S3's presigned URLs, which rusty-s3 makes, are for S3 only). ureq carries.
//!
//! Owns: the queue URL → endpoint and region rule, retries with bounded backoff for 5xx,
//! throttling and transport errors, and turning SQS's error answers into one line a user can
//! act on. Never: logs a secret or a signature, or trusts an answer's shape (every field is
//! checked; a malformed answer is an error, not a panic).

use super::s3::Retry;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// The longest long poll SQS allows (and the one pimap uses).
pub const MAX_WAIT_SECONDS: u32 = 20;
/// Answers are read up to this size (10 messages of at most 1 MiB each, and their envelope).
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// Everything the client needs; see [`SqsConfig::new`].
#[derive(Clone)]
pub struct SqsConfig {
    /// The queue URL as given (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`).
    pub queue_url: String,
    /// Where requests go: the queue URL's scheme, host and port, path `/`.
    pub endpoint: String,
    pub region: String,
    pub credentials: rusty_s3::Credentials,
    /// Per-request network timeout; a long poll gets its wait on top.
    pub timeout: Duration,
    pub retry: Retry,
}

impl std::fmt::Debug for SqsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsConfig")
            .field("queue_url", &self.queue_url)
            .field("region", &self.region)
            .field("credentials", &"<redacted>")
            .finish()
    }
}

impl SqsConfig {
    /// Check `queue_url` and derive the endpoint and region from it: an AWS queue URL
    /// (`https://sqs.REGION.amazonaws.com/…`, or the legacy `REGION.queue.amazonaws.com`)
    /// names its region; any other host (an SQS-compatible server) is signed for
    /// `fallback_region` (the S3 region).
    pub fn new(
        queue_url: &str,
        fallback_region: &str,
        credentials: rusty_s3::Credentials,
        timeout: Duration,
        retry: Retry,
    ) -> Result<SqsConfig, String> {
        let bad = |why: &str| {
            format!(
                "--sqs-queue {queue_url:?}: {why} (expected a queue URL such as \
                 https://sqs.us-east-1.amazonaws.com/123456789012/pimap-inbound)"
            )
        };
        let url: url::Url = queue_url.parse().map_err(|e| bad(&format!("{e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("not an http(s) URL"));
        }
        let host = url.host_str().ok_or_else(|| bad("no host"))?;
        let path = url.path().trim_matches('/');
        if path.split('/').count() != 2 || path.split('/').any(str::is_empty) {
            return Err(bad("the path is not /ACCOUNT/QUEUE-NAME"));
        }
        if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(bad("it has a query or credentials"));
        }
        let region = aws_region(host).unwrap_or_else(|| fallback_region.to_string());
        let endpoint = match url.port() {
            Some(p) => format!("{}://{host}:{p}/", url.scheme()),
            None => format!("{}://{host}/", url.scheme()),
        };
        Ok(SqsConfig {
            queue_url: queue_url.to_string(),
            endpoint,
            region,
            credentials,
            timeout,
            retry,
        })
    }
}

/// The region in an AWS SQS host name, if it is one.
fn aws_region(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let region = if let Some(rest) = host.strip_prefix("sqs.") {
        rest.split_once('.')
            .filter(|(_, tail)| tail.starts_with("amazonaws."))?
            .0
    } else {
        host.split_once(".queue.amazonaws.")?.0
    };
    let ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then(|| region.to_string())
}

/// A failed SQS request, after retries where they apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqsError {
    /// An answer retrying will not change (bad credentials, no such queue, access denied):
    /// `code` is SQS's error code or `HTTP <status>`.
    Fatal {
        status: u16,
        code: String,
        message: String,
    },
    /// Still failing after the retries: 5xx, throttling, timeouts, resets, malformed answers.
    Transient(String),
}

impl std::fmt::Display for SqsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqsError::Fatal {
                status,
                code,
                message,
            } => {
                write!(f, "{code} (HTTP {status})")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                let hint = match code.as_str() {
                    "InvalidClientTokenId" | "UnrecognizedClientException" => {
                        " — check the access key id"
                    }
                    "SignatureDoesNotMatch" | "IncompleteSignature" => {
                        " — check the secret access key"
                    }
                    "ExpiredToken" => " — the session token has expired",
                    "AccessDenied" | "AccessDeniedException" => {
                        " — check the IAM policy (sqs:ReceiveMessage, sqs:DeleteMessage, \
                         sqs:GetQueueAttributes on the queue)"
                    }
                    "QueueDoesNotExist" | "NonExistentQueue" | "InvalidAddress" => {
                        " — check --sqs-queue"
                    }
                    _ => "",
                };
                f.write_str(hint)
            }
            SqsError::Transient(m) => f.write_str(m),
        }
    }
}

/// One received queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// What DeleteMessage needs (changes with every receive).
    pub receipt: String,
    pub body: String,
    /// When the message was sent to the queue (ms since the epoch; SQS's `SentTimestamp`).
    pub sent_ms: Option<u64>,
}

type Attempt<T> = super::s3::Attempt<T, SqsError>;

/// The SQS error code in an error answer: the JSON protocol's `__type` (`…#Code`), or the
/// query protocol's `x-amzn-query-error` header (`AWS.SimpleQueueService.NonExistentQueue;
/// Sender`), shortened to the code.
fn error_code(body: &Value, query_error: Option<&str>) -> Option<String> {
    let from_type = body
        .get("__type")
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string());
    let from_header = query_error
        .and_then(|h| h.split(';').next())
        .map(|c| c.rsplit('.').next().unwrap_or(c).to_string());
    from_type.or(from_header).filter(|c| !c.is_empty())
}

/// Whether an error code is worth retrying (throttling and server-side trouble).
fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "RequestThrottled"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalError"
            | "KmsThrottled"
    )
}

pub struct SqsClient {
    agent: ureq::Agent,
    cfg: SqsConfig,
    sleep: fn(Duration),
}

impl std::fmt::Debug for SqsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cfg.fmt(f)
    }
}

impl SqsClient {
    pub fn new(cfg: SqsConfig) -> SqsClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(cfg.timeout))
            .max_redirects(0)
            .user_agent(concat!("pimap/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        SqsClient {
            agent,
            cfg,
            sleep: std::thread::sleep,
        }
    }

    /// Replace the sleep used between retries (tests).
    pub fn with_sleep(mut self, sleep: fn(Duration)) -> Self {
        self.sleep = sleep;
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.cfg.queue_url
    }

    /// One signed request: `AmazonSQS.<action>` with `body`, answered within `timeout`.
    fn attempt(&self, action: &str, body: &[u8], timeout: Duration) -> Attempt<Value> {
        let target = format!("AmazonSQS.{action}");
        let content_type = "application/x-amz-json-1.0";
        let headers = [("content-type", content_type), ("x-amz-target", &target)];
        let signed = match self.sign(&headers, body) {
            Ok(s) => s,
            Err(e) => {
                return Attempt::Fail(SqsError::Fatal {
                    status: 0,
                    code: "Signing".into(),
                    message: e,
                })
            }
        };
        let mut req = self
            .agent
            .post(&self.cfg.endpoint)
            .config()
            .timeout_global(Some(timeout))
            .build();
        let signed = signed.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in headers.iter().copied().chain(signed) {
            req = req.header(k, v);
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => return transport(e),
        };
        let status = resp.status().as_u16();
        let query_error = resp
            .headers()
            .get("x-amzn-query-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = match resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
        {
            Ok(t) => t,
            Err(e) => return Attempt::Retry(format!("reading the answer: {e}")),
        };
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status == 200 {
            return match parsed {
                Some(v @ Value::Object(_)) => Attempt::Done(v),
                _ => Attempt::Retry("an answer that is not a JSON object".into()),
            };
        }
        let v = parsed.unwrap_or(Value::Null);
        // Some servers (moto, older endpoints) answer errors in the query protocol's XML.
        let (xml_code, xml_message) = super::s3::parse_error_document(&text);
        let code = error_code(&v, query_error.as_deref()).or(xml_code);
        let message = ["message", "Message"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str))
            .map(|m| m.chars().take(300).collect::<String>())
            .or(xml_message)
            .unwrap_or_default();
        let code_s = code.clone().unwrap_or_else(|| format!("HTTP {status}"));
        if status >= 500 || status == 429 || code.as_deref().is_some_and(retryable_code) {
            Attempt::Retry(format!("{code_s} (HTTP {status})"))
        } else {
            Attempt::Fail(SqsError::Fatal {
                status,
                code: code_s,
                message,
            })
        }
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for a POST
    /// to the endpoint with `headers` and `body`.
    fn sign(&self, headers: &[(&str, &str)], body: &[u8]) -> Result<Vec<(String, String)>, String> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let c = &self.cfg.credentials;
        let identity = aws_credential_types::Credentials::new(
            c.key(),
            c.secret(),
            c.token().map(str::to_string),
            None,
            "pimap",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.cfg.region)
            .name("sqs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let request = SignableRequest::new(
            "POST",
            self.cfg.endpoint.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// `action` with retries; `extra` is added to the per-request timeout (a long poll's wait).
    fn call(&self, action: &str, body: &Value, extra: Duration) -> Result<Value, SqsError> {
        let body = body.to_string().into_bytes();
        let timeout = self.cfg.timeout + extra;
        self.cfg.retry.run(
            self.sleep,
            action,
            || self.attempt(action, &body, timeout),
            SqsError::Transient,
        )
    }

    /// The queue's visibility timeout, in seconds (GetQueueAttributes): a check at start that
    /// the queue exists and the credentials may read it.
    pub fn visibility_timeout(&self) -> Result<u64, SqsError> {
        let v = self.call(
            "GetQueueAttributes",
            &json!({"QueueUrl": self.cfg.queue_url, "AttributeNames": ["VisibilityTimeout"]}),
            Duration::ZERO,
        )?;
        v.get("Attributes")
            .and_then(|a| a.get("VisibilityTimeout"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                SqsError::Transient("GetQueueAttributes: no VisibilityTimeout in the answer".into())
            })
    }

    /// Up to 10 messages, waiting up to `wait_seconds` (at most 20) for the first.
    pub fn receive(&self, wait_seconds: u32) -> Result<Vec<Message>, SqsError> {
        let wait = wait_seconds.min(MAX_WAIT_SECONDS);
        let v = self.call(
            "ReceiveMessage",
            &json!({
                "QueueUrl": self.cfg.queue_url,
                "MaxNumberOfMessages": 10,
                "WaitTimeSeconds": wait,
                "MessageSystemAttributeNames": ["SentTimestamp"],
                "AttributeNames": ["SentTimestamp"],
            }),
            Duration::from_secs(u64::from(wait)),
        )?;
        Ok(parse_messages(&v))
    }

    /// Delete received messages by (id, receipt handle), at most 10 per request; returns the
    /// ids SQS did not delete, with its reason.
    pub fn delete(&self, batch: &[(&str, &str)]) -> Result<Vec<(String, String)>, SqsError> {
        let mut failed = Vec::new();
        for chunk in batch.chunks(10) {
            let entries: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, receipt))| json!({"Id": i.to_string(), "ReceiptHandle": receipt}))
                .collect();
            let v = self.call(
                "DeleteMessageBatch",
                &json!({"QueueUrl": self.cfg.queue_url, "Entries": entries}),
                Duration::ZERO,
            )?;
            for f in v
                .get("Failed")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = f
                    .get("Id")
                    .and_then(Value::as_str)
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| chunk.get(i))
                    .map(|(id, _)| id.to_string())
                    .unwrap_or_default();
                let why = ["Code", "Message"]
                    .iter()
                    .filter_map(|k| f.get(k).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(": ");
                failed.push((id, why));
            }
        }
        Ok(failed)
    }
}

fn transport<T>(e: ureq::Error) -> Attempt<T> {
    match super::s3::transport_failure(e, "--sqs-queue") {
        Ok((code, message)) => Attempt::Fail(SqsError::Fatal {
            status: 0,
            code,
            message,
        }),
        Err(why) => Attempt::Retry(why),
    }
}

/// The messages of a ReceiveMessage answer; entries without an id, a receipt handle or a
/// body are dropped (logged): they cannot be handled or deleted.
fn parse_messages(v: &Value) -> Vec<Message> {
    let mut out = Vec::new();
    for m in v
        .get("Messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        match (s("MessageId"), s("ReceiptHandle"), s("Body")) {
            (Some(id), Some(receipt), Some(body)) => out.push(Message {
                id,
                receipt,
                body,
                sent_ms: m
                    .get("Attributes")
                    .and_then(|a| a.get("SentTimestamp"))
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse().ok()),
            }),
            _ => log::warn!("sqs: a received message without an id, receipt handle or body"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> Result<SqsConfig, String> {
        SqsConfig::new(
            url,
            "eu-west-1",
            rusty_s3::Credentials::new("AK", "SK"),
            Duration::from_secs(5),
            Retry::default(),
        )
    }

    #[test]
    fn queue_urls_give_endpoint_and_region() {
        let c = cfg("https://sqs.us-east-2.amazonaws.com/123456789012/inbound").unwrap();
        assert_eq!(c.endpoint, "https://sqs.us-east-2.amazonaws.com/");
        assert_eq!(c.region, "us-east-2");
        let c = cfg("https://ap-south-1.queue.amazonaws.com/1/q").unwrap();
        assert_eq!(c.region, "ap-south-1");
        let c = cfg("https://sqs.cn-north-1.amazonaws.com.cn/1/q").unwrap();
        assert_eq!(c.region, "cn-north-1");
        let c = cfg("http://127.0.0.1:4566/000000000000/q").unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:4566/");
        assert_eq!(c.region, "eu-west-1");
        for bad in [
            "sqs.us-east-1.amazonaws.com/1/q",
            "ftp://h/1/q",
            "https://h/q",
            "https://h/1/q/x",
            "https://h//q",
            "https://h/1/q?x=1",
            "https://u:p@h/1/q",
        ] {
            let e = cfg(bad).unwrap_err();
            assert!(e.contains("--sqs-queue"), "{bad}: {e}");
        }
    }

    #[test]
    fn error_codes_from_either_protocol() {
        let v: Value =
            serde_json::from_str(r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist"}"#).unwrap();
        assert_eq!(error_code(&v, None).as_deref(), Some("QueueDoesNotExist"));
        assert_eq!(
            error_code(
                &Value::Null,
                Some("AWS.SimpleQueueService.NonExistentQueue;Sender")
            )
            .as_deref(),
            Some("NonExistentQueue")
        );
        assert_eq!(error_code(&Value::Null, None), None);
        assert!(retryable_code("ThrottlingException"));
        assert!(!retryable_code("AccessDenied"));
        let e = SqsError::Fatal {
            status: 400,
            code: "AccessDenied".into(),
            message: String::new(),
        };
        assert!(e.to_string().contains("sqs:ReceiveMessage"));
    }

    #[test]
    fn received_messages_are_checked() {
        let v: Value = serde_json::from_str(
            r#"{"Messages":[
                {"MessageId":"a","ReceiptHandle":"r","Body":"{}","Attributes":{"SentTimestamp":"1700000000123"}},
                {"MessageId":"b","Body":"x"},
                {"MessageId":"c","ReceiptHandle":"r2","Body":"y","Attributes":{"SentTimestamp":"soon"}},
                7
            ]}"#,
        )
        .unwrap();
        let m = parse_messages(&v);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].sent_ms, Some(1_700_000_000_123));
        assert_eq!((m[1].id.as_str(), m[1].sent_ms), ("c", None));
        assert!(parse_messages(&json!({"Messages": "no"})).is_empty());
        assert!(parse_messages(&json!({})).is_empty());
    }
}
