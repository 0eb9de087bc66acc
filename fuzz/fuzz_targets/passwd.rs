//! Fuzz the Dovecot passwd-file parser (`auth::passwd`) on arbitrary text. It may reject
//! anything but must never panic; what it accepts must be a user pimap can put in a path
//! (no `/`, NUL, control characters, leading `.` or `..`: the names become directories),
//! unique, and its error messages must never quote the line (they may hold a password).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::auth::passwd::{parse_with_lines, PasswdFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PasswdFile::parse(text) {
        Ok(file) => {
            let mut names = std::collections::HashSet::new();
            for u in &file.users {
                assert!(!u.name.is_empty());
                assert!(!u.name.contains('/') && !u.name.contains('\0'));
                assert!(!u.name.starts_with('.') && !u.name.contains(".."));
                assert!(!u.name.chars().any(|c| c.is_control()));
                assert!(names.insert(u.name.clone()), "duplicate {:?}", u.name);
                assert_eq!(file.lookup(&u.name).map(|x| &x.name), Some(&u.name));
            }
            let lines = parse_with_lines(text).expect("parse and parse_with_lines agree");
            assert_eq!(lines.len(), file.users.len());
            for (n, _) in &lines {
                assert!(*n >= 1 && *n <= text.split('\n').count());
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.split('\n').count());
            // The reason never echoes a password field back.
            // (Unless the same text is also in another field the reason may name.)
            if let Some(line) = text.split('\n').nth(e.line - 1) {
                let fields: Vec<&str> = line.split(':').collect();
                if let Some(pw) = fields.get(1) {
                    // Reasons quote names escaped ({:?}): `\0` next to digits can spell a
                    // run of digits that is also the password field.
                    let elsewhere = fields
                        .iter()
                        .enumerate()
                        .any(|(i, f)| i != 1 && (f.contains(pw) || format!("{f:?}").contains(pw)));
                    // Hash-like (no space or quote, which the reason's own words contain).
                    let hashlike = pw.chars().all(|c| c.is_ascii_graphic() && c != '"');
                    if pw.len() >= 8 && hashlike && !elsewhere {
                        assert!(!e.reason.contains(pw), "reason quotes a password field");
                    }
                }
            }
        }
    }
});
