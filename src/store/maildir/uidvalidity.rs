//! Per-user UIDVALIDITY allocation, Dovecot's scheme (touches disk): the user's root holds
//! `dovecot-uidvalidity` (the last value, 8 hex digits) and an empty marker file
//! `dovecot-uidvalidity.<8 hex>`. A value is claimed by renaming the marker from the current
//! value to the next; rename is atomic, so two processes never claim the same value. Values
//! are at least the current Unix time and strictly increase (RFC 3501 §2.3.1.1 asks that a
//! mailbox re-created under the same name gets a larger UIDVALIDITY).

use std::fs;
use std::path::Path;

const FILE: &str = "dovecot-uidvalidity";

fn now_secs() -> u32 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    u32::try_from(s).unwrap_or(u32::MAX - 1)
}

fn next_after(cur: u32) -> u32 {
    let n = cur.saturating_add(1).max(now_secs());
    if n == 0 || n == u32::MAX {
        1
    } else {
        n
    }
}

fn marker(root: &Path, v: u32) -> std::path::PathBuf {
    root.join(format!("{FILE}.{v:08x}"))
}

fn parse_hex(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok().filter(|&v| v != 0)
}

/// The highest value among the markers in `root`.
fn highest_marker(root: &Path) -> Option<u32> {
    let prefix = format!("{FILE}.");
    fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix).and_then(parse_hex))
        })
        .max()
}

fn write_value(root: &Path, v: u32) {
    let tmp = root.join(format!("{FILE}.tmp{}", std::process::id()));
    let ok = fs::write(&tmp, format!("{v:08x}\n")).and_then(|_| fs::rename(&tmp, root.join(FILE)));
    if let Err(e) = ok {
        let _ = fs::remove_file(&tmp);
        log::warn!("writing {}: {e}", root.join(FILE).display());
    }
}

/// Claim the next UIDVALIDITY for a new mailbox of the user whose root is `root`.
pub fn claim(root: &Path) -> u32 {
    let floor = fs::read_to_string(root.join(FILE))
        .ok()
        .and_then(|s| parse_hex(&s))
        .unwrap_or(0);
    let mut cur = Some(floor)
        .filter(|&f| f != 0)
        .or_else(|| highest_marker(root));
    for _ in 0..20 {
        let next = next_after(cur.unwrap_or(0).max(floor));
        let claimed = match cur {
            // Fast path: move the marker from the current value to the next one.
            Some(c) => fs::rename(marker(root, c), marker(root, next)).is_ok(),
            // No marker at all: create one.
            None => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(marker(root, next))
                .is_ok(),
        };
        if claimed {
            write_value(root, next);
            return next;
        }
        // Another process claimed meanwhile, or the file and markers disagree: rescan.
        cur = highest_marker(root);
    }
    let v = next_after(floor);
    log::warn!(
        "could not claim a UIDVALIDITY marker in {}; using {v}",
        root.display()
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_increase_and_marker_moves() {
        let dir = crate::store::maildir::test_dir("uidv");
        let a = claim(&dir);
        let b = claim(&dir);
        let c = claim(&dir);
        assert!(a >= now_secs() - 5 && b > a && c > b);
        assert!(marker(&dir, c).exists());
        assert!(!marker(&dir, b).exists());
        assert_eq!(
            parse_hex(&fs::read_to_string(dir.join(FILE)).unwrap()),
            Some(c)
        );
        // A value far in the future is respected.
        fs::rename(marker(&dir, c), marker(&dir, 0xfff0_0000)).unwrap();
        fs::write(dir.join(FILE), "fff00000\n").unwrap();
        assert_eq!(claim(&dir), 0xfff0_0001);
        // Lost main file: the marker still guides.
        fs::remove_file(dir.join(FILE)).unwrap();
        assert_eq!(claim(&dir), 0xfff0_0002);
        let _ = fs::remove_dir_all(dir);
    }
}
