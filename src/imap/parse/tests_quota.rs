//! QUOTA commands (RFC 9208 §4.2–4.4): what parses, and why the rest does not.

use super::tests::{ok, reason};
use super::*;

#[test]
fn getquotaroot_getquota_setquota() {
    assert_eq!(
        ok("a GETQUOTAROOT INBOX"),
        Command::GetQuotaRoot {
            mailbox: "INBOX".into()
        }
    );
    assert_eq!(
        ok("a getquotaroot {5}\r\nTrash"),
        Command::GetQuotaRoot {
            mailbox: "Trash".into()
        }
    );
    assert_eq!(
        ok("a GETQUOTA \"User quota\""),
        Command::GetQuota {
            root: "User quota".into()
        }
    );
    assert_eq!(ok("a GETQUOTA \"\""), Command::GetQuota { root: "".into() });
    assert_eq!(
        ok("a SETQUOTA \"User quota\" (storage 512 MESSAGE 9223372036854775807)"),
        Command::SetQuota {
            root: "User quota".into(),
            limits: vec![("STORAGE".into(), 512), ("MESSAGE".into(), i64::MAX as u64)],
        }
    );
    assert_eq!(
        ok("a SETQUOTA x ()"),
        Command::SetQuota {
            root: "x".into(),
            limits: vec![]
        }
    );
}

#[test]
fn bad_quota_commands() {
    for (line, why) in [
        ("a GETQUOTAROOT", "before the mailbox name"),
        ("a GETQUOTA", "before the quota root name"),
        ("a GETQUOTA x y", "GETQUOTA command"),
        ("a SETQUOTA x", "before the resource limits"),
        ("a SETQUOTA x STORAGE 1", "'(' starting the resource limits"),
        (
            "a SETQUOTA x (STORAGE)",
            "between the resource name and its limit",
        ),
        ("a SETQUOTA x (STORAGE x)", "resource limit"),
        ("a SETQUOTA x (STORAGE 9223372036854775808)", "too large"),
        ("a SETQUOTA x (A 1 B 2", "between resource limits"),
    ] {
        assert!(reason(line).contains(why), "{line}: {}", reason(line));
    }
    let many = format!("a SETQUOTA x ({})", vec!["S 1"; 17].join(" "));
    assert!(reason(&many).contains("Too many"), "{}", reason(&many));
}
