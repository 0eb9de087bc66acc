//! The values SORT compares (RFC 5256 §3, RFC 5957 §3), from a message's header block, made
//! as Dovecot 2.3 makes them (`index_sort_header_get`): strings are in `i;unicode-casemap`
//! form (RFC 5255 I18NLEVEL=1), so comparing them byte for byte is the comparator's order.
//!
//! Only the first field of each name counts; a missing field gives the empty string (which
//! sorts first). Pure functions over the field value: no I/O, no panics.

use super::envelope::{parse_addresses, Address};
use super::{casemap, search::decode_header_value};

/// SUBJECT: the base subject (RFC 5256 §2.1).
pub fn subject(value: Option<&[u8]>) -> String {
    value
        .map(|v| super::subject::base_subject(v).0)
        .unwrap_or_default()
}

fn first_address(value: Option<&[u8]>) -> Option<Address> {
    parse_addresses(value?).into_iter().next()
}

/// FROM, TO, CC: the local part (`addr-mailbox`) of the first address, not decoded.
pub fn mailbox(value: Option<&[u8]>) -> String {
    first_address(value)
        .and_then(|a| a.mailbox)
        .map(|m| casemap::fold(&String::from_utf8_lossy(&m)))
        .unwrap_or_default()
}

/// DISPLAYFROM, DISPLAYTO (RFC 5957 §3): the first address's display name, RFC 2047-decoded;
/// without one, its `mailbox@domain`; for a group, the group's name (as Dovecot).
pub fn display(value: Option<&[u8]>) -> String {
    let Some(a) = first_address(value) else {
        return String::new();
    };
    if let Some(name) = a.name {
        return casemap::fold(&decode_header_value(&name));
    }
    match (a.mailbox, a.domain) {
        (Some(m), Some(d)) => {
            let addr = format!(
                "{}@{}",
                String::from_utf8_lossy(&m),
                String::from_utf8_lossy(&d)
            );
            casemap::fold(&addr)
        }
        (Some(group), None) => casemap::fold(&String::from_utf8_lossy(&group)),
        _ => String::new(),
    }
}

/// DATE: the Date field as seconds since the epoch (UTC), if it parses the way Dovecot parses
/// it (RFC 5256 §3: else the caller uses the INTERNALDATE).
pub fn sent_time(value: Option<&[u8]>) -> Option<i64> {
    super::sentdate::parse(value?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keys() {
        let v: &[u8] = b"\"Zed\" <a@x.org>, b@y";
        assert_eq!(mailbox(Some(v)), "A");
        assert_eq!(display(Some(v)), "ZED");
        assert_eq!(display(Some(b"alice@example.org")), "ALICE@EXAMPLE.ORG");
        assert_eq!(
            display(Some(b"=?utf-8?q?=C3=89mile?= <e@x>")),
            "E\u{301}MILE"
        );
        assert_eq!(mailbox(None), "");
        assert_eq!(display(None), "");
        assert_eq!(display(Some(b"")), "");
        assert_eq!(display(Some(b"undisclosed: a@b;")), "UNDISCLOSED");
    }

    #[test]
    fn dates() {
        assert_eq!(
            sent_time(Some(b"Mon, 02 Mar 2020 07:00:00 -0200")),
            Some(1_583_139_600) // 09:00 UTC
        );
        assert_eq!(sent_time(Some(b"garbage")), None);
        assert_eq!(sent_time(None), None);
    }
}
