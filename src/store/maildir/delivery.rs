//! Delivery into a Maildir from outside a session (the S3 sync): written to `tmp/`, fsynced,
//! published into `new/` without ever replacing a file, and idempotent per delivery id, so a
//! sync pass that is interrupted and run again never delivers a message twice.

use super::{ensure_maildir, filename, io_err, mailbox, new_unique, sync_dir};
use crate::store::{Result, StoreError};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Deliver a message into the Maildir at `maildir` (a mailbox directory holding cur/new/tmp):
/// written to `tmp/`, fsynced, renamed into `new/` as `<unique>,S=<size>`, directory fsynced
/// (maildir spec delivery). If a file whose name is `<unique>` followed by `,`, `:` or nothing
/// already exists in new/ or cur/, nothing is written and its path is returned (idempotent
/// redelivery for the S3 sync).
pub fn deliver(maildir: &Path, unique: &str, data: &[u8]) -> Result<PathBuf> {
    if let Some(p) = find_delivered(maildir, unique)? {
        return Ok(p);
    }
    ensure_maildir(maildir)?;
    let tmp = maildir.join("tmp").join(new_unique());
    mailbox::write_new_file(&tmp, data, SystemTime::now())?;
    publish(maildir, unique, &tmp, data.len() as u64)
}

/// Has `unique` been delivered into `maildir` already (a file named `<unique>` followed by
/// `,`, `:` or nothing in new/ or cur/, wherever it was moved since)? Then delivering it again
/// adds nothing (the S3 sync's quota check skips such a target).
pub fn is_delivered(maildir: &Path, unique: &str) -> Result<bool> {
    Ok(find_delivered(maildir, unique)?.is_some())
}

/// The existing delivery of `unique` in new/ or cur/ (a file named `<unique>` followed by
/// `,`, `:` or nothing), after checking that `unique` can be a file name.
fn find_delivered(maildir: &Path, unique: &str) -> Result<Option<PathBuf>> {
    if !filename::valid_unique(unique) {
        return Err(StoreError::BadName(format!(
            "delivery id {unique:?} cannot be a file name"
        )));
    }
    for sub in ["new", "cur"] {
        let d = maildir.join(sub);
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("reading directory", &d, e)),
        };
        for e in rd.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| filename::matches_unique(n, unique))
            {
                return Ok(Some(e.path()));
            }
        }
    }
    Ok(None)
}

/// Move a complete, fsynced `tmp` file into new/ as `<unique>,S=<size>` and fsync new/.
fn publish(maildir: &Path, unique: &str, tmp: &Path, size: u64) -> Result<PathBuf> {
    let dest = maildir.join("new").join(format!("{unique},S={size}"));
    // link() instead of rename(): never replaces a file that appeared meanwhile.
    let r = fs::hard_link(tmp, &dest).or_else(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Ok(()),
        _ => fs::rename(tmp, &dest),
    });
    let _ = fs::remove_file(tmp);
    r.map_err(|e| io_err("delivering to", &dest, e))?;
    sync_dir(&maildir.join("new"));
    Ok(dest)
}

/// [`deliver`] from a stream, for messages that must not be held whole in memory (the S3
/// sync): the body is copied to `tmp/` through a fixed 64 KiB buffer, fsynced, then published
/// exactly like [`deliver`] (same idempotence: an existing delivery of `unique` is returned
/// without reading `reader` at all).
///
/// The stream must end after exactly `expected_len` bytes when that is given, and may not
/// exceed `max` bytes ([`StoreError::TooBig`]). A read error, a short or a long stream
/// leaves nothing in new/ and removes its tmp/ file; a reader that verifies its content
/// (e.g. an MD5 against an ETag) reports a mismatch as a read error at the end of the
/// stream, which therefore also prevents the delivery.
pub fn deliver_from_reader(
    maildir: &Path,
    unique: &str,
    reader: &mut dyn std::io::Read,
    expected_len: Option<u64>,
    max: u64,
) -> Result<PathBuf> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(p) = find_delivered(maildir, unique)? {
        return Ok(p);
    }
    if expected_len.is_some_and(|n| n > max) {
        return Err(StoreError::TooBig);
    }
    ensure_maildir(maildir)?;
    let tmp = maildir.join("tmp").join(new_unique());
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("creating", &tmp, e))?;
    let copied = (|| -> Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut size: u64 = 0;
        // Read at most one byte past the limit, so an oversized stream is recognised.
        let limit = expected_len.unwrap_or(max).min(max).saturating_add(1);
        let mut limited = reader.take(limit);
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::Io("reading the message".into(), e)),
            };
            size += n as u64;
            if size > max {
                return Err(StoreError::TooBig);
            }
            if let Some(want) = expected_len.filter(|w| size > *w) {
                return Err(StoreError::Io(
                    "reading the message".into(),
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("longer than the expected {want} bytes"),
                    ),
                ));
            }
            f.write_all(buf.get(..n).unwrap_or(&[]))
                .map_err(|e| io_err("writing", &tmp, e))?;
        }
        if let Some(want) = expected_len.filter(|w| size != *w) {
            return Err(StoreError::Io(
                "reading the message".into(),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("truncated: {size} of {want} bytes"),
                ),
            ));
        }
        f.sync_all().map_err(|e| io_err("writing", &tmp, e))?;
        Ok(size)
    })();
    drop(f);
    match copied {
        Ok(size) => {
            let path = publish(maildir, unique, &tmp, size)?;
            crate::store::cache::note_delivery(maildir, &path);
            Ok(path)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Deliver an already delivered message file `src` (e.g. another recipient's copy) into
/// `maildir` as `unique`, idempotently like [`deliver`]: a hard link into new/ when `src` is
/// on the same file system (the file is complete and fsynced already), else a streamed copy.
pub fn deliver_link(maildir: &Path, unique: &str, src: &Path) -> Result<PathBuf> {
    if let Some(p) = find_delivered(maildir, unique)? {
        return Ok(p);
    }
    ensure_maildir(maildir)?;
    let meta = fs::symlink_metadata(src).map_err(|e| io_err("reading", src, e))?;
    if !meta.is_file() {
        return Err(StoreError::Cannot(format!(
            "{} is not a regular file",
            src.display()
        )));
    }
    let size = meta.len();
    let dest = maildir.join("new").join(format!("{unique},S={size}"));
    match fs::hard_link(src, &dest) {
        Ok(()) => {
            sync_dir(&maildir.join("new"));
            crate::store::cache::note_delivery(maildir, &dest);
            Ok(dest)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dest),
        Err(_) => {
            let mut f = fs::File::open(src).map_err(|e| io_err("opening", src, e))?;
            deliver_from_reader(maildir, unique, &mut f, Some(size), size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::maildir::test_dir;
    use std::io::Read;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// A reader that yields `data` in small pieces, then fails.
    struct Failing<'a>(&'a [u8]);

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset",
                ));
            }
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn streams_into_new_with_size_and_is_idempotent() {
        let d = test_dir("stream-ok");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let p = deliver_from_reader(&d, "s3-a", &mut &data[..], Some(data.len() as u64), 1 << 20)
            .unwrap();
        assert_eq!(p, d.join("new").join(format!("s3-a,S={}", data.len())));
        assert_eq!(fs::read(&p).unwrap(), data);
        assert!(files(&d.join("tmp")).is_empty());
        // Unknown length works too; a second delivery of the same id reads nothing.
        let p2 = deliver_from_reader(&d, "s3-b", &mut &b"hi\r\n"[..], None, 10).unwrap();
        assert!(p2.ends_with("new/s3-b,S=4"));
        let mut untouched = Failing(b"");
        assert_eq!(
            deliver_from_reader(&d, "s3-a", &mut untouched, None, 10).unwrap(),
            p
        );
        assert_eq!(files(&d.join("new")).len(), 2);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn short_long_oversized_and_failing_streams_leave_nothing() {
        let d = test_dir("stream-bad");
        let data = vec![b'x'; 10_000];
        // Truncated: fewer bytes than expected.
        let r = deliver_from_reader(&d, "t1", &mut &data[..], Some(10_001), 1 << 20);
        assert!(
            matches!(r, Err(StoreError::Io(_, ref e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{r:?}"
        );
        // Longer than expected.
        let r = deliver_from_reader(&d, "t2", &mut &data[..], Some(9_999), 1 << 20);
        assert!(matches!(r, Err(StoreError::Io(..))), "{r:?}");
        // Over the cap, with and without a declared length.
        let r = deliver_from_reader(&d, "t3", &mut &data[..], None, 9_999);
        assert!(matches!(r, Err(StoreError::TooBig)), "{r:?}");
        let r = deliver_from_reader(&d, "t4", &mut &data[..], Some(10_000), 9_999);
        assert!(matches!(r, Err(StoreError::TooBig)), "{r:?}");
        // A read error mid-stream.
        let r = deliver_from_reader(&d, "t5", &mut Failing(&data), None, 1 << 20);
        assert!(matches!(r, Err(StoreError::Io(..))), "{r:?}");
        assert!(files(&d.join("new")).is_empty());
        assert!(files(&d.join("tmp")).is_empty());
        // Exactly at the cap is fine; a bad id is refused.
        deliver_from_reader(&d, "t6", &mut &data[..], Some(10_000), 10_000).unwrap();
        let r = deliver_from_reader(&d, "a/b", &mut &data[..], None, 1 << 20);
        assert!(matches!(r, Err(StoreError::BadName(_))));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn deliver_link_shares_the_file_and_is_idempotent() {
        let d = test_dir("stream-link");
        let (a, b) = (d.join("alice"), d.join("bob"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let src = deliver_from_reader(&a, "m1", &mut &b"Subject: x\r\n\r\nhi\r\n"[..], None, 100)
            .unwrap();
        let p = deliver_link(&b, "m1", &src).unwrap();
        assert!(p.ends_with("new/m1,S=18"), "{p:?}");
        assert_eq!(fs::read(&p).unwrap(), fs::read(&src).unwrap());
        assert_eq!(deliver_link(&b, "m1", &src).unwrap(), p);
        assert_eq!(files(&b.join("new")).len(), 1);
        let _ = fs::remove_dir_all(&d);
    }
}
