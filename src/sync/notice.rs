//! What a queue message says: the object keys in an S3 event notification or in an SES
//! receipt notification (an S3 action's), each raw or wrapped in an SNS envelope. Pure: no
//! I/O.
//!
//! Shapes understood (AWS's documented formats):
//! - S3 event notification: `{"Records": [{"eventSource": "aws:s3", "eventName":
//!   "ObjectCreated:Put", "s3": {"bucket": {"name"}, "object": {"key", "size", "eTag"}}}]}`;
//!   the key is URL-encoded (`+` for a space). `{"Event": "s3:TestEvent"}` is the test event S3
//!   sends when the configuration is set.
//! - SES receipt notification: `{"notificationType": "Received", "receipt": {"action":
//!   {"type": "S3", "bucketName", "objectKey"}}}`; the key is plain. SES's setup
//!   notification is ignored.
//! - SNS envelope (no raw message delivery): `{"Type": "Notification", "Message": "<one of the
//!   above, as a JSON string>"}`.
//!
//! Anything else is [`Notice::Ignored`] (with why, for the log) or [`Notice::Malformed`]:
//! neither names an object, so neither can lose mail; the LIST pass is the safety net.

use crate::sync::ledger::decode_key;
use serde_json::Value;

/// An object a notification names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
}

/// What one queue message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Objects that were created (one S3 event may carry several records).
    Objects(Vec<ObjectRef>),
    /// A well-formed message that names no new object (a test event, a removal, SES's setup
    /// notification, an SNS subscription confirmation): why, for the log.
    Ignored(String),
    /// Not JSON, or JSON of no known shape: why, for the log.
    Malformed(String),
}

/// Longest message body parsed (SQS's own limit is 1 MiB).
const MAX_BODY: usize = 1024 * 1024;

/// Read a queue message body.
pub fn parse(body: &str) -> Notice {
    if body.len() > MAX_BODY {
        return Notice::Malformed(format!("{} bytes is over the 1 MiB limit", body.len()));
    }
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Notice::Malformed(format!("not JSON ({e})")),
    };
    // SNS envelope: the payload is a JSON string inside (one level only).
    match v.get("Type").and_then(Value::as_str) {
        Some("Notification") => {
            return match v.get("Message").and_then(Value::as_str) {
                Some(inner) => match serde_json::from_str::<Value>(inner) {
                    Ok(inner) => payload(&inner),
                    Err(e) => Notice::Malformed(format!(
                        "an SNS notification whose Message is not JSON ({e})"
                    )),
                },
                None => Notice::Malformed("an SNS notification without a Message".into()),
            }
        }
        Some("SubscriptionConfirmation") => {
            // The message is deleted after this: the log keeps what confirming needs.
            let url = v.get("SubscribeURL").and_then(Value::as_str).unwrap_or("");
            let url: String = url.chars().take(2048).collect();
            return Notice::Ignored(format!(
                "an SNS subscription confirmation: confirm the topic's subscription to this \
                 queue by opening its SubscribeURL {url:?} (or subscribe the queue from the \
                 topic's own account, which needs no confirmation)"
            ));
        }
        Some("UnsubscribeConfirmation") => {
            return Notice::Ignored("an SNS unsubscribe confirmation".into())
        }
        _ => {}
    }
    payload(&v)
}

/// An S3 event, S3 test event or SES notification (already out of any SNS envelope).
fn payload(v: &Value) -> Notice {
    if !v.is_object() {
        return Notice::Malformed("JSON that is not an object".into());
    }
    if let Some(records) = v.get("Records") {
        return s3_records(records);
    }
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Notice::Ignored("the S3 test event".into());
    }
    if let Some(kind) = v.get("notificationType").and_then(Value::as_str) {
        return ses(v, kind);
    }
    if let Some(kind) = v.get("eventType").and_then(Value::as_str) {
        return Notice::Ignored(format!("an SES event of type {kind:?} (not a receipt)"));
    }
    Notice::Malformed("JSON of no known shape (not an S3, SES or SNS notification)".into())
}

fn s3_records(records: &Value) -> Notice {
    let Some(records) = records.as_array() else {
        return Notice::Malformed("an S3 event whose Records is not a list".into());
    };
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for r in records {
        let event = r.get("eventName").and_then(Value::as_str).unwrap_or("");
        if !event.starts_with("ObjectCreated:") {
            skipped.push(if event.is_empty() {
                "(no eventName)"
            } else {
                event
            });
            continue;
        }
        let s3 = r.get("s3");
        let bucket = s3
            .and_then(|s| s.get("bucket"))
            .and_then(|b| b.get("name"))
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty());
        let object = s3.and_then(|s| s.get("object"));
        let key = object
            .and_then(|o| o.get("key"))
            .and_then(Value::as_str)
            .and_then(decode_event_key);
        let (Some(bucket), Some(key)) = (bucket, key) else {
            return Notice::Malformed(format!(
                "an S3 {event} record without a bucket name or a valid object key"
            ));
        };
        objects.push(ObjectRef {
            bucket: bucket.to_string(),
            key,
            size: object.and_then(|o| o.get("size")).and_then(Value::as_u64),
            etag: object
                .and_then(|o| o.get("eTag"))
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    if objects.is_empty() {
        return Notice::Ignored(if skipped.is_empty() {
            "an S3 event with no records".into()
        } else {
            format!(
                "an S3 event with no ObjectCreated record ({})",
                skipped.join(", ")
            )
        });
    }
    Notice::Objects(objects)
}

fn ses(v: &Value, kind: &str) -> Notice {
    if kind != "Received" {
        return Notice::Ignored(format!("an SES {kind:?} notification"));
    }
    let action = v.get("receipt").and_then(|r| r.get("action"));
    let ty = action.and_then(|a| a.get("type")).and_then(Value::as_str);
    if ty != Some("S3") {
        return Notice::Ignored(format!(
            "an SES receipt notification of a {} action (pimap reads the S3 action's)",
            ty.unwrap_or("(no type)")
        ));
    }
    let field = |k: &str| action.and_then(|a| a.get(k)).and_then(Value::as_str);
    match (field("bucketName"), field("objectKey")) {
        (Some(b), Some(k)) if !b.is_empty() && !k.is_empty() => Notice::Objects(vec![ObjectRef {
            bucket: b.to_string(),
            key: k.to_string(),
            size: None,
            etag: None,
        }]),
        _ => Notice::Malformed(
            "an SES S3-action notification without bucketName or objectKey".into(),
        ),
    }
}

/// An S3 event's object key: URL-encoded as in a form (`+` is a space, `%XX` a byte); `None`
/// when the encoding or the UTF-8 under it is broken. A literal `+` arrives as `%2B`, so the
/// spaces can be put back before the ledger's percent-decoding.
pub fn decode_event_key(s: &str) -> Option<String> {
    decode_key(&s.replace('+', " ")).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(bucket: &str, key: &str, event: &str) -> Value {
        json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-12-04T10:00:00.000Z", "eventName": event,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "pimap",
                   "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                   "object": {"key": key, "size": 1234, "eTag": "0123abcd", "sequencer": "0A1B"}}
        }]})
    }

    fn ses_event(bucket: &str, key: &str) -> Value {
        json!({"notificationType": "Received",
               "mail": {"timestamp": "2026-12-04T10:00:00.000Z", "messageId": "abc"},
               "receipt": {"recipients": ["a@example.org"],
                           "action": {"type": "S3", "topicArn": "arn:aws:sns:us-east-1:1:t",
                                      "bucketName": bucket, "objectKeyPrefix": "inbound/",
                                      "objectKey": key}}})
    }

    fn sns(inner: &Value) -> String {
        json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
               "Message": inner.to_string(), "Timestamp": "2026-12-04T10:00:00.000Z"})
        .to_string()
    }

    fn one(n: Notice) -> ObjectRef {
        match n {
            Notice::Objects(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn s3_events_raw_and_through_sns() {
        let e = s3_event("mail", "inbound/a+b%2Bc%C3%BC", "ObjectCreated:Put");
        for body in [e.to_string(), sns(&e)] {
            let o = one(parse(&body));
            assert_eq!(o.bucket, "mail");
            assert_eq!(o.key, "inbound/a b+cü");
            assert_eq!((o.size, o.etag.as_deref()), (Some(1234), Some("0123abcd")));
        }
        let removed = s3_event("mail", "inbound/x", "ObjectRemoved:Delete");
        assert!(matches!(parse(&removed.to_string()), Notice::Ignored(_)));
        let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "mail"});
        assert!(matches!(parse(&test.to_string()), Notice::Ignored(_)));
        assert!(matches!(parse(&sns(&test)), Notice::Ignored(_)));
    }

    #[test]
    fn ses_notifications_raw_and_through_sns() {
        let e = ses_event("mail", "inbound/0abc+def");
        for body in [e.to_string(), sns(&e)] {
            let o = one(parse(&body));
            // SES's key is not URL-encoded.
            assert_eq!(
                (o.bucket.as_str(), o.key.as_str()),
                ("mail", "inbound/0abc+def")
            );
            assert_eq!(o.size, None);
        }
        let setup = json!({"notificationType": "AMAZON_SES_SETUP_NOTIFICATION"});
        assert!(matches!(parse(&setup.to_string()), Notice::Ignored(_)));
        let sns_action = json!({"notificationType": "Received",
                                "receipt": {"action": {"type": "SNS"}}, "content": "..."});
        assert!(matches!(parse(&sns_action.to_string()), Notice::Ignored(_)));
    }

    #[test]
    fn bad_bodies_are_malformed_or_ignored_never_objects() {
        for body in [
            "",
            "not json",
            "[1,2]",
            "\"str\"",
            "{}",
            r#"{"Records": 5}"#,
            r#"{"Records": [{"eventName": "ObjectCreated:Put"}]}"#,
            r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "%zz"}}}]}"#,
            r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "%ff"}}}]}"#,
            r#"{"Type": "Notification"}"#,
            r#"{"Type": "Notification", "Message": "{not json"}"#,
            r#"{"Type": "Notification", "Message": "[]"}"#,
            r#"{"notificationType": "Received", "receipt": {"action": {"type": "S3"}}}"#,
        ] {
            let n = parse(body);
            assert!(!matches!(n, Notice::Objects(_)), "{body}: {n:?}");
        }
        let confirm = r#"{"Type": "SubscriptionConfirmation", "Token": "t",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"}"#;
        match parse(confirm) {
            Notice::Ignored(why) => assert!(why.contains("Action=ConfirmSubscription"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Deeply nested JSON is refused by the parser's recursion limit, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(matches!(parse(&deep), Notice::Malformed(_)));
        assert!(matches!(
            parse(&"x".repeat(MAX_BODY + 1)),
            Notice::Malformed(_)
        ));
    }

    #[test]
    fn several_records_in_one_event() {
        let mut e = s3_event("mail", "inbound/1", "ObjectCreated:Put");
        let mut second = e["Records"][0].clone();
        second["s3"]["object"]["key"] = json!("inbound/2");
        let mut removal = second.clone();
        removal["eventName"] = json!("ObjectRemoved:Delete");
        e["Records"]
            .as_array_mut()
            .unwrap()
            .extend([second, removal]);
        match parse(&e.to_string()) {
            Notice::Objects(v) => {
                let keys: Vec<_> = v.iter().map(|o| o.key.as_str()).collect();
                assert_eq!(keys, ["inbound/1", "inbound/2"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
