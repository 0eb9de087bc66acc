//! Planning a pass: which listed objects to fetch, skip or finish, and the Maildir unique name
//! of each. Pure: no I/O.
//!
//! Owns: the object-key → Maildir-unique-name mapping (deterministic, so a redelivery after a
//! crash finds the earlier file: see [`unique_name`]), the ETag → MD5 rule (S3 API: a
//! non-multipart, non-KMS object's ETag is the hex MD5 of its body in quotes), and the skip
//! rules (SES setup notification, oversized objects, the move destination).

use sha2::{Digest, Sha256};

/// The object SES writes when a receipt rule's S3 action is created.
pub const SES_SETUP_NOTIFICATION: &str = "AMAZON_SES_SETUP_NOTIFICATION";

/// Longest sanitized key tail kept in a unique name (file names stay well below 255 bytes).
const MAX_TAIL: usize = 100;

/// The Maildir unique name for an object: `ses-<16 hex of SHA-256(bucket/key)>-<tail>`, where
/// the tail is the end of the key with every byte outside `[A-Za-z0-9._-]` replaced by `_`.
/// The hash comes first, so no unique name is a prefix of another's (the store matches
/// existing files by prefix); the tail is there for humans. Never contains `/`, `:` or `,`
/// (Maildir's separators).
pub fn unique_name(bucket: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(bucket.as_bytes());
    h.update(b"/");
    h.update(key.as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let sanitized: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tail_start = sanitized.len().saturating_sub(MAX_TAIL);
    let tail = sanitized
        .get(tail_start..)
        .unwrap_or("")
        .trim_start_matches('.');
    if tail.is_empty() {
        format!("ses-{hex}")
    } else {
        format!("ses-{hex}-{tail}")
    }
}

/// The 16-byte MD5 an ETag stands for, if it is a plain MD5 (32 hex digits, quoted or not).
/// Multipart ETags (`"…-N"`) and anything else give None: such bodies are checked by length
/// only.
pub fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let e = etag.trim().trim_start_matches("W/").trim_matches('"');
    if e.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = e.get(2 * i..2 * i + 2)?;
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// An ETag in the form the ledger stores: without quotes, lower case; `-` when unknown.
pub fn normalize_etag(etag: Option<&str>) -> String {
    match etag.map(|e| {
        e.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_ascii_lowercase()
    }) {
        Some(e) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_graphic()) => e,
        _ => "-".to_string(),
    }
}

/// Where after-delivery leaves the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterDelivery {
    Keep,
    Delete,
    /// Copy under this prefix, then delete the original.
    Move(String),
}

impl std::str::FromStr for AfterDelivery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(AfterDelivery::Keep),
            "delete" => Ok(AfterDelivery::Delete),
            _ => match s.strip_prefix("move:") {
                Some(p) if !p.is_empty() => Ok(AfterDelivery::Move(p.to_string())),
                _ => Err(format!("{s:?}: expected keep, delete or move:PREFIX")),
            },
        }
    }
}

/// Where a moved object goes: the move prefix plus the key without the sync prefix.
pub fn moved_key(sync_prefix: &str, move_prefix: &str, key: &str) -> String {
    format!(
        "{move_prefix}{}",
        key.strip_prefix(sync_prefix).unwrap_or(key)
    )
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub etag: Option<String>,
    pub size: Option<u64>,
}

/// What a pass does with one listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Not delivered yet: GET, check, route, deliver.
    Fetch,
    /// Delivered earlier; the after-delivery step (delete/move) is still to do.
    Finish,
    /// Delivered and finished: nothing to do.
    Done,
    /// Delivered earlier with another ETag: logged once, never re-delivered silently.
    Changed { old: String, new: String },
    /// Not mail or not wanted (reason for the log).
    Skip(String),
}

/// What the ledger knows about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub etag: String,
    pub finished: bool,
    /// The ETag a change was already reported for.
    pub changed_reported: Option<String>,
}

/// Decide what to do with `obj`.
pub fn decide(obj: &Listed, known: Option<&Known>, after: &AfterDelivery, max_size: u64) -> Action {
    if obj.key.ends_with('/') {
        return Action::Skip("a folder marker".into());
    }
    if obj.key.rsplit('/').next() == Some(SES_SETUP_NOTIFICATION) {
        return Action::Skip("SES setup notification".into());
    }
    if let AfterDelivery::Move(p) = after {
        // A move destination under the synced prefix shows up in the listing again.
        if obj.key.starts_with(p.as_str()) {
            return Action::Skip("already moved".into());
        }
    }
    match known {
        Some(k) => {
            let listed = normalize_etag(obj.etag.as_deref());
            if listed != "-" && k.etag != "-" && listed != k.etag {
                if k.changed_reported.as_deref() == Some(listed.as_str()) {
                    return Action::Done;
                }
                return Action::Changed {
                    old: k.etag.clone(),
                    new: listed,
                };
            }
            if k.finished || *after == AfterDelivery::Keep {
                Action::Done
            } else {
                Action::Finish
            }
        }
        None => match obj.size {
            Some(s) if s > max_size => {
                Action::Skip(format!("{s} bytes is over --max-message-size {max_size}"))
            }
            _ => Action::Fetch,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_deterministic_safe_and_distinct() {
        let a = unique_name("b", "inbound/0abc123");
        assert_eq!(a, unique_name("b", "inbound/0abc123"));
        assert!(
            a.starts_with("ses-") && a.ends_with("-inbound_0abc123"),
            "{a}"
        );
        assert_ne!(a, unique_name("b", "inbound_0abc123"));
        assert_ne!(a, unique_name("other", "inbound/0abc123"));
        for k in ["", "/", "..", "a:b,c/d", "ü\u{0}\n", &"x".repeat(1000)] {
            let u = unique_name("b", k);
            assert!(
                u.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.'),
                "{u}"
            );
            assert!(u.len() <= 4 + 16 + 1 + MAX_TAIL);
        }
        // No name is a prefix of another's, even when one key is a prefix of the other.
        let (x, y) = (unique_name("b", "k/a"), unique_name("b", "k/ab"));
        assert!(!y.starts_with(&x) && !x.starts_with(&y));
    }

    #[test]
    fn etags() {
        let md5 = etag_md5("\"9e107d9d372bb6826bd81d3542a419d6\"").unwrap();
        assert_eq!(md5[0], 0x9e);
        assert!(etag_md5("\"9e107d9d372bb6826bd81d3542a419d6-2\"").is_none());
        assert!(etag_md5("zz107d9d372bb6826bd81d3542a419d6").is_none());
        assert!(etag_md5("é").is_none());
        assert_eq!(normalize_etag(Some("\"ABC\"")), "abc");
        assert_eq!(normalize_etag(None), "-");
        assert_eq!(normalize_etag(Some("\"a b\"")), "-");
    }

    #[test]
    fn after_delivery_parse() {
        assert_eq!("keep".parse(), Ok(AfterDelivery::Keep));
        assert_eq!(
            "move:processed/".parse(),
            Ok(AfterDelivery::Move("processed/".into()))
        );
        assert!("move:".parse::<AfterDelivery>().is_err());
        assert_eq!(
            moved_key("inbound/", "processed/", "inbound/x"),
            "processed/x"
        );
    }

    #[test]
    fn decisions() {
        let obj = |k: &str, e: Option<&str>, s| Listed {
            key: k.into(),
            etag: e.map(String::from),
            size: Some(s),
        };
        let keep = AfterDelivery::Keep;
        assert_eq!(
            decide(&obj("in/x", None, 10), None, &keep, 100),
            Action::Fetch
        );
        assert!(matches!(
            decide(&obj("in/x", None, 101), None, &keep, 100),
            Action::Skip(_)
        ));
        assert!(matches!(
            decide(
                &obj("in/AMAZON_SES_SETUP_NOTIFICATION", None, 1),
                None,
                &keep,
                100
            ),
            Action::Skip(_)
        ));
        let k = Known {
            etag: "aa".into(),
            finished: false,
            changed_reported: None,
        };
        assert_eq!(
            decide(&obj("in/x", Some("\"aa\""), 1), Some(&k), &keep, 100),
            Action::Done
        );
        assert_eq!(
            decide(&obj("in/x", None, 1), Some(&k), &AfterDelivery::Delete, 100),
            Action::Finish
        );
        assert_eq!(
            decide(&obj("in/x", Some("bb"), 1), Some(&k), &keep, 100),
            Action::Changed {
                old: "aa".into(),
                new: "bb".into()
            }
        );
        let k2 = Known {
            changed_reported: Some("bb".into()),
            ..k
        };
        assert_eq!(
            decide(&obj("in/x", Some("bb"), 1), Some(&k2), &keep, 100),
            Action::Done
        );
        let mv = AfterDelivery::Move("in/processed/".into());
        assert!(matches!(
            decide(&obj("in/processed/x", None, 1), None, &mv, 100),
            Action::Skip(_)
        ));
    }
}
