//! Fuzz the reading of backup objects from S3 (`backup::manifest`): mailbox manifests and
//! snapshots. Anything may be refused, nothing may panic, and what is accepted names no path
//! outside the Maildir and renders back to text that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::backup::manifest::{valid_dir, valid_file, Mailbox, Snapshot};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(mb) = Mailbox::parse(&text) {
        assert!(valid_dir(&mb.dir) && !mb.dir.contains('/'));
        for m in &mb.messages {
            assert!(valid_file(&m.file) && !m.file.contains('/'));
        }
        assert_eq!(Mailbox::parse(&mb.render()).as_ref(), Ok(&mb));
    }
    if let Ok(s) = Snapshot::parse(&text) {
        for (_, dir) in &s.mailboxes {
            assert!(valid_dir(dir) && !dir.contains('/'));
        }
        assert_eq!(Snapshot::parse(&s.render()).as_ref(), Ok(&s));
    }
});
