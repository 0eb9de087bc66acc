//! Fuzz the `dovecot-uidlist` parser (`store::maildir::uidlist`) on arbitrary file contents
//! (the file is on disk, writable by anything with access to the Maildir). Never panics; a
//! parsed list is consistent (UIDs ascending, below the next UID); the messages, UIDVALIDITY
//! and next UID of `parse(serialize(list))` are those of `list`. (Header tokens are not always
//! kept: this target found that an unknown token ending in CR loses the CR when it ends up
//! last and may then read as a GUID, so rewrites are not a fixed point for such files;
//! harmless, the tokens are opaque.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::store::maildir::uidlist::UidList;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = UidList::parse(text) else {
        return;
    };
    let list = parsed.list;
    let mut last = 0u32;
    for e in &list.entries {
        assert!(e.uid > last, "UIDs must ascend");
        last = e.uid;
        assert!(list.next_uid > e.uid || list.next_uid == u32::MAX);
    }
    let text2 = list.serialize();
    let again = UidList::parse(&text2).expect("serialized uidlist parses");
    assert_eq!(
        again.skipped, 0,
        "serialized uidlist has no bad lines:\n{text2}"
    );
    assert_eq!(again.list.entries, list.entries);
    assert_eq!(again.list.uid_validity, list.uid_validity);
    assert_eq!(again.list.next_uid, list.next_uid);
});
