//! The backup's two small object formats, both line-based text, and their strict parsers
//! (whatever comes back from S3 is untrusted: a bad line is an error naming the line, never a
//! panic, and no name can reach outside the Maildir).
//!
//! A **mailbox manifest** (`USER/b/ID`) describes one Maildir++ folder: its directory, its
//! UIDVALIDITY and UIDNEXT, its control files verbatim (`dovecot-uidlist`, `dovecot-keywords`,
//! pimap's keyword and modseq files, `dovecot-attributes`), and one line per message: the
//! message object's content hash, size, mtime, `cur`/`new`, UID (0: not in the uidlist yet) and
//! its file name, whose `:2,` letters are its flags and keyword letters. The object's ID is the
//! hash of this text, so an unchanged folder is never written twice.
//!
//! A **snapshot** (`USER/s/TIME`) is the last object a pass writes: the time, the mailbox
//! manifests in force, and the user's root files (`subscriptions`, `dovecot-uidvalidity`).
//! Restore starts from a snapshot, so whatever a snapshot names was uploaded before it.

use crate::store::maildir::{filename, name};
use base64::Engine;

const MAILBOX_HEADER: &str = "pimap-backup-mailbox 1";
const SNAPSHOT_HEADER: &str = "pimap-backup-snapshot 1";

/// Control files kept verbatim in a mailbox manifest (anything else in the folder directory,
/// e.g. pimap's rebuildable cache, is not backed up).
pub const MAILBOX_FILES: &[&str] = &[
    "dovecot-uidlist",
    "dovecot-keywords",
    "pimap-keywords",
    "pimap-modseq",
    "dovecot-attributes",
    "maildirfolder",
];

/// Files of the mail root itself kept verbatim in a snapshot.
pub const ROOT_FILES: &[&str] = &["subscriptions", "dovecot-uidvalidity"];

/// A control file is never larger than this (a uidlist of a million messages is ~60 MB; this
/// bounds what a hostile manifest can make a restore hold).
pub const MAX_CONTROL_FILE: usize = 256 * 1024 * 1024;

/// `cur` or `new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sub {
    Cur,
    New,
}

impl Sub {
    pub fn dir(self) -> &'static str {
        match self {
            Sub::Cur => "cur",
            Sub::New => "new",
        }
    }
}

/// One message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SHA-256 of the file's bytes, hex: the message object is found by it.
    pub hash: String,
    pub size: u64,
    /// Modification time, seconds (Dovecot takes INTERNALDATE from it).
    pub mtime: i64,
    pub sub: Sub,
    /// 0: the file was not in `dovecot-uidlist` yet (it gets a UID when next opened).
    pub uid: u32,
    pub file: String,
}

/// One folder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// The Maildir++ directory: `""` for INBOX (the root), else `.Name` (`.Parent.Child`).
    pub dir: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    /// The folder's RFC 6154 attribute (`\\Sent`, ...) when it had one, as a client saw it (pimap
    /// and Dovecot's stock configuration derive it from the name, so a restore that keeps the
    /// name keeps it).
    pub special_use: Option<String>,
    /// Control files, by name ([`MAILBOX_FILES`]), sorted by name.
    pub files: Vec<(String, Vec<u8>)>,
    /// Sorted by UID then file name (UID 0 last).
    pub messages: Vec<Message>,
}

/// One pass's result for one user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Seconds since the epoch when the pass started.
    pub time: u64,
    /// (manifest ID, directory), sorted by directory.
    pub mailboxes: Vec<(String, String)>,
    /// Root files ([`ROOT_FILES`]), sorted by name.
    pub files: Vec<(String, Vec<u8>)>,
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(s: &str) -> Result<Vec<u8>, String> {
    if s.len() / 4 * 3 > MAX_CONTROL_FILE + 3 {
        return Err("file too large".into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("bad base64: {e}"))
}

/// A SHA-256 in hex (what every object ID is).
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A folder directory a manifest may name: the root, or a valid Maildir++ `.Name`.
pub fn valid_dir(dir: &str) -> bool {
    dir.is_empty() || (!dir.contains('/') && name::from_dir_name(dir).is_some())
}

/// A message file name a manifest may name: no separators, no dot files, no controls.
pub fn valid_file(file: &str) -> bool {
    filename::acceptable(file) && file != "." && file != ".."
}

fn write_files(out: &mut String, files: &[(String, Vec<u8>)]) {
    for (n, data) in files {
        out.push_str(&format!("file {n} {}\n", b64(data)));
    }
}

impl Mailbox {
    pub fn render(&self) -> String {
        let mut out = format!(
            "{MAILBOX_HEADER}\ndir {}\nuidvalidity {}\nuidnext {}\n",
            if self.dir.is_empty() { "." } else { &self.dir },
            self.uid_validity,
            self.uid_next
        );
        if let Some(u) = &self.special_use {
            out.push_str(&format!("special-use {u}\n"));
        }
        write_files(&mut out, &self.files);
        for m in &self.messages {
            out.push_str(&format!(
                "msg {} {} {} {} {} {}\n",
                m.hash,
                m.size,
                m.mtime,
                m.sub.dir(),
                m.uid,
                m.file
            ));
        }
        out
    }

    pub fn parse(text: &str) -> Result<Mailbox, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, MAILBOX_HEADER)) => {}
            _ => return Err("not a pimap mailbox manifest (bad first line)".into()),
        }
        let mut mb = Mailbox::default();
        let mut seen_dir = false;
        for (i, line) in lines {
            let bad = |why: &str| format!("line {}: {why}", i + 1);
            let (kind, rest) = line.split_once(' ').ok_or_else(|| bad("no value"))?;
            match kind {
                "dir" => {
                    let d = if rest == "." { "" } else { rest };
                    if !valid_dir(d) || seen_dir {
                        return Err(bad("bad or repeated folder directory"));
                    }
                    mb.dir = d.to_string();
                    seen_dir = true;
                }
                "uidvalidity" => {
                    mb.uid_validity = rest.parse().map_err(|_| bad("bad uidvalidity"))?
                }
                "uidnext" => mb.uid_next = rest.parse().map_err(|_| bad("bad uidnext"))?,
                "special-use" => {
                    let ok = rest.starts_with('\\')
                        && rest.len() > 1
                        && rest[1..].bytes().all(|b| b.is_ascii_alphabetic());
                    if !ok || mb.special_use.is_some() {
                        return Err(bad("bad or repeated special-use attribute"));
                    }
                    mb.special_use = Some(rest.to_string());
                }
                "file" => {
                    let (n, data) = rest.split_once(' ').unwrap_or((rest, ""));
                    if !MAILBOX_FILES.contains(&n) || mb.files.iter().any(|(f, _)| f == n) {
                        return Err(bad("unknown or repeated control file"));
                    }
                    mb.files
                        .push((n.to_string(), unb64(data).map_err(|e| bad(&e))?));
                }
                "msg" => {
                    let f: Vec<&str> = rest.splitn(6, ' ').collect();
                    let [hash, size, mtime, sub, uid, file] = f.as_slice() else {
                        return Err(bad("a message line has six fields"));
                    };
                    if !is_hash(hash) || !valid_file(file) {
                        return Err(bad("bad message hash or file name"));
                    }
                    let sub = match *sub {
                        "cur" => Sub::Cur,
                        "new" => Sub::New,
                        _ => return Err(bad("bad subdirectory")),
                    };
                    mb.messages.push(Message {
                        hash: hash.to_string(),
                        size: size.parse().map_err(|_| bad("bad size"))?,
                        mtime: mtime.parse().map_err(|_| bad("bad mtime"))?,
                        sub,
                        uid: uid.parse().map_err(|_| bad("bad uid"))?,
                        file: file.to_string(),
                    });
                }
                _ => return Err(bad("unknown line")),
            }
        }
        if !seen_dir {
            return Err("no folder directory".into());
        }
        let mut names: Vec<&str> = mb.messages.iter().map(|m| m.file.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("a message file name appears twice".into());
        }
        Ok(mb)
    }
}

impl Snapshot {
    pub fn render(&self) -> String {
        let mut out = format!("{SNAPSHOT_HEADER}\ntime {}\n", self.time);
        for (id, dir) in &self.mailboxes {
            out.push_str(&format!(
                "mailbox {id} {}\n",
                if dir.is_empty() { "." } else { dir }
            ));
        }
        write_files(&mut out, &self.files);
        out
    }

    pub fn parse(text: &str) -> Result<Snapshot, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, SNAPSHOT_HEADER)) => {}
            _ => return Err("not a pimap backup snapshot (bad first line)".into()),
        }
        let mut s = Snapshot::default();
        for (i, line) in lines {
            let bad = |why: &str| format!("line {}: {why}", i + 1);
            let (kind, rest) = line.split_once(' ').ok_or_else(|| bad("no value"))?;
            match kind {
                "time" => s.time = rest.parse().map_err(|_| bad("bad time"))?,
                "mailbox" => {
                    let (id, dir) = rest.split_once(' ').ok_or_else(|| bad("no directory"))?;
                    let dir = if dir == "." { "" } else { dir };
                    if !is_hash(id) || !valid_dir(dir) {
                        return Err(bad("bad manifest ID or folder directory"));
                    }
                    if s.mailboxes.iter().any(|(_, d)| d == dir) {
                        return Err(bad("a folder appears twice"));
                    }
                    s.mailboxes.push((id.to_string(), dir.to_string()));
                }
                "file" => {
                    let (n, data) = rest.split_once(' ').unwrap_or((rest, ""));
                    if !ROOT_FILES.contains(&n) || s.files.iter().any(|(f, _)| f == n) {
                        return Err(bad("unknown or repeated root file"));
                    }
                    s.files
                        .push((n.to_string(), unb64(data).map_err(|e| bad(&e))?));
                }
                _ => return Err(bad("unknown line")),
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn mailbox_round_trip() {
        let mb = Mailbox {
            dir: ".Sent Items".into(),
            uid_validity: 1700000000,
            uid_next: 9,
            special_use: Some("\\Sent".into()),
            files: vec![
                ("dovecot-keywords".into(), b"0 $Junk\n".to_vec()),
                ("dovecot-uidlist".into(), b"3 V1 N9\n7 :a b\n".to_vec()),
            ],
            messages: vec![
                Message {
                    hash: h('a'),
                    size: 12,
                    mtime: -5,
                    sub: Sub::Cur,
                    uid: 7,
                    file: "1.M1P2.host,S=12:2,FSa".into(),
                },
                Message {
                    hash: h('b'),
                    size: 0,
                    mtime: 1,
                    sub: Sub::New,
                    uid: 0,
                    file: "2.M1P2.host name".into(),
                },
            ],
        };
        assert_eq!(Mailbox::parse(&mb.render()), Ok(mb));
        let inbox = Mailbox::default();
        assert_eq!(Mailbox::parse(&inbox.render()), Ok(inbox));
    }

    #[test]
    fn snapshot_round_trip() {
        let s = Snapshot {
            time: 42,
            mailboxes: vec![(h('c'), String::new()), (h('d'), ".Junk".into())],
            files: vec![("subscriptions".into(), b"INBOX\n\x00\xff".to_vec())],
        };
        assert_eq!(Snapshot::parse(&s.render()), Ok(s));
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let base = format!("{MAILBOX_HEADER}\ndir .\n");
        for bad in [
            "".to_string(),
            "pimap-backup-mailbox 2\ndir .\n".to_string(),
            format!("{MAILBOX_HEADER}\n"),
            format!("{MAILBOX_HEADER}\ndir ../etc\n"),
            format!("{MAILBOX_HEADER}\ndir .a/b\n"),
            format!("{MAILBOX_HEADER}\ndir .\ndir .x\n"),
            format!("{base}file ../../passwd AAAA\n"),
            format!("{base}file pimap-cache AAAA\n"),
            format!("{base}file dovecot-uidlist !!\n"),
            format!("{base}msg {} 1 1 cur 1 ../x\n", h('a')),
            format!("{base}msg {} 1 1 cur 1 .hidden\n", h('a')),
            format!("{base}msg {} 1 1 tmp 1 x\n", h('a')),
            format!(
                "{base}msg {} 1 1 cur 1 a\nmsg {} 1 1 new 2 a\n",
                h('a'),
                h('b')
            ),
            format!("{base}msg ABC 1 1 cur 1 x\n"),
            format!("{base}msg {} -1 1 cur 1 x\n", h('a')),
            format!("{base}msg {} 1 1 cur\n", h('a')),
            format!("{base}what 1\n"),
            format!("{base}special-use Sent\n"),
            format!("{base}special-use \\Se nt\n"),
            format!("{base}special-use \\Sent\nspecial-use \\Junk\n"),
        ] {
            assert!(Mailbox::parse(&bad).is_err(), "{bad:?}");
        }
        for bad in [
            format!("{SNAPSHOT_HEADER}\nmailbox {} ../x\n", h('a')),
            format!("{SNAPSHOT_HEADER}\nmailbox xyz .\n"),
            format!(
                "{SNAPSHOT_HEADER}\nmailbox {} .\nmailbox {} .\n",
                h('a'),
                h('b')
            ),
            format!("{SNAPSHOT_HEADER}\nfile dovecot-uidlist AAAA\n"),
            format!("{SNAPSHOT_HEADER}\ntime x\n"),
        ] {
            assert!(Snapshot::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
