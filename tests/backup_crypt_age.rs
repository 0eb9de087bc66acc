//! Backup encryption (`pimap::backup::crypt`) against the real age CLI, both ways: what pimap
//! encrypts, `age -d -i key` decrypts byte for byte, and what `age -r age1…` encrypts, pimap
//! decrypts; keys from `age-keygen` load in pimap and keys pimap writes load in age.
//!
//! Needs `age` and `age-keygen` on PATH (Debian's `age` package, installed by
//! `scripts/install-test-deps.sh`); without them the tests fail and say so.
//!
//! Run: `cargo test --test backup_crypt_age`.

use pimap::backup::crypt::{self, CryptError, Identity};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d =
            std::env::temp_dir().join(format!("pimap-age-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the age tool `name` with `args`, feeding `stdin`; fails the test with a clear message
/// when the tool is not installed.
fn run(name: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{name}` ({e}): install the age CLI (Debian package `age`, \
                 `bash scripts/install-test-deps.sh` installs it)"
            )
        });
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // A writer thread: age may write output before it has read all of its input.
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    // age exits without reading stdin when it fails early; that error is in `out`.
    let _ = writer.join().unwrap();
    out
}

/// Like [`run`], and the command must succeed: its stdout.
fn run_ok(name: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = run(name, args, stdin);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A key from `age-keygen -o`, and its recipient as `age-keygen -y` prints it.
fn keygen(dir: &Dir, name: &str) -> (PathBuf, String) {
    let path = dir.path(name);
    run_ok("age-keygen", &["-o", path.to_str().unwrap()], b"");
    let recipient = run_ok("age-keygen", &["-y", path.to_str().unwrap()], b"");
    (
        path,
        String::from_utf8(recipient).unwrap().trim().to_string(),
    )
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    getrandom::fill(&mut v).unwrap();
    v
}

const SIZES: &[usize] = &[0, 1, 1000, 65535, 65536, 65537, 3 * 65536, 200_001];

fn pimap_encrypt(id: &Identity, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crypt::encrypt_reader(id, plain, plain.len() as u64)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len() as u64, crypt::encrypted_len(plain.len() as u64));
    out
}

fn pimap_decrypt(id: &Identity, cipher: &[u8]) -> Result<Vec<u8>, CryptError> {
    let mut out = Vec::new();
    crypt::decrypt_reader(id, cipher)?
        .read_to_end(&mut out)
        .map_err(CryptError::from_io)?;
    Ok(out)
}

#[test]
fn age_decrypts_what_pimap_encrypts() {
    let dir = Dir::new("to-age");
    let (key, recipient) = keygen(&dir, "key.txt");
    let id = Identity::from_file(&key).unwrap();
    assert_eq!(id.recipient_string(), recipient);
    for &len in SIZES {
        let plain = random(len);
        let file = dir.path("msg.age");
        std::fs::write(&file, pimap_encrypt(&id, &plain)).unwrap();
        let out = run_ok(
            "age",
            &["-d", "-i", key.to_str().unwrap(), file.to_str().unwrap()],
            b"",
        );
        assert!(out == plain, "age -d of pimap's {len}-byte file differs");
    }
}

#[test]
fn pimap_decrypts_what_age_encrypts() {
    let dir = Dir::new("from-age");
    let (key, recipient) = keygen(&dir, "key.txt");
    let id = Identity::from_file(&key).unwrap();
    for &len in SIZES {
        let plain = random(len);
        let cipher = run_ok("age", &["-r", &recipient], &plain);
        let back = pimap_decrypt(&id, &cipher).unwrap_or_else(|e| panic!("{len} bytes: {e}"));
        assert!(
            back == plain,
            "pimap's decryption of age's {len}-byte file differs"
        );
    }
}

#[test]
fn several_recipients_and_wrong_key() {
    let dir = Dir::new("recipients");
    let (key, ours) = keygen(&dir, "ours.txt");
    let (_, theirs) = keygen(&dir, "theirs.txt");
    let id = Identity::from_file(&key).unwrap();
    let plain = random(70_000);
    // Our stanza after another X25519 stanza that does not open with our key.
    let both = run_ok("age", &["-r", &theirs, "-r", &ours], &plain);
    assert!(pimap_decrypt(&id, &both).unwrap() == plain);
    let only_theirs = run_ok("age", &["-r", &theirs], &plain);
    match pimap_decrypt(&id, &only_theirs) {
        Err(CryptError::WrongKey { recipient }) => assert_eq!(recipient, ours),
        other => panic!("expected WrongKey, got {:?}", other.map(|v| v.len())),
    }
    let armored = run_ok("age", &["-a", "-r", &ours], &plain);
    match pimap_decrypt(&id, &armored) {
        Err(e @ CryptError::NotAge(_)) => assert!(e.to_string().contains("armored"), "{e}"),
        other => panic!("expected NotAge, got {:?}", other.map(|v| v.len())),
    }
}

#[test]
fn damaged_files_fail_on_both_sides() {
    let dir = Dir::new("damaged");
    let (key, recipient) = keygen(&dir, "key.txt");
    let id = Identity::from_file(&key).unwrap();
    let plain = random(100_000);
    let key_arg = key.to_str().unwrap();

    // pimap's file with one payload bit flipped, or cut at the chunk boundary: age refuses it.
    let good = pimap_encrypt(&id, &plain);
    let mut flipped = good.clone();
    let at = good.len() - 100;
    flipped[at] ^= 1;
    let boundary = 168 + 16 + 65536 + 16;
    for bad in [&flipped[..], &good[..boundary]] {
        let out = run("age", &["-d", "-i", key_arg], bad);
        assert!(!out.status.success(), "age accepted a damaged file");
    }
    // age's file, damaged the same ways: pimap refuses it with a payload error.
    let cipher = run_ok("age", &["-r", &recipient], &plain);
    let mut flipped = cipher.clone();
    let at = cipher.len() - 100;
    flipped[at] ^= 1;
    let boundary = cipher.len() - (100_000 - 65536) - 16;
    // Cut after chunk 0, that chunk reads as the final one and fails.
    for (bad, chunk) in [
        (&flipped[..], "chunk 1 "),
        (&cipher[..boundary], "chunk 0 "),
    ] {
        match pimap_decrypt(&id, bad) {
            Err(CryptError::Payload(msg)) => assert!(msg.contains(chunk), "{msg}"),
            other => panic!("expected a payload error, got {:?}", other.map(|v| v.len())),
        }
    }
}

#[test]
fn key_files_are_interchangeable() {
    let dir = Dir::new("keys");
    let id = Identity::generate().unwrap();
    let path = dir.path("pimap-key.txt");
    write_private(
        &path,
        id.to_file_text(std::time::SystemTime::now()).as_bytes(),
    );
    let path_arg = path.to_str().unwrap();
    // age-keygen reads pimap's key file and derives the same recipient.
    let recipient = run_ok("age-keygen", &["-y", path_arg], b"");
    assert_eq!(
        String::from_utf8(recipient).unwrap().trim(),
        id.recipient_string()
    );
    let plain = random(5000);
    let out = run_ok("age", &["-d", "-i", path_arg], &pimap_encrypt(&id, &plain));
    assert!(out == plain);
    // And the file reads back in pimap.
    let back = Identity::from_file(&path).unwrap();
    assert_eq!(back.recipient_string(), id.recipient_string());
}

/// Writes `data` to a new file that only its owner can read.
fn write_private(path: &Path, data: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}
