use super::*;

const DOVEADM: &str = include_str!("../../../tests/data/doveadm-hashes.txt");

/// `(scheme label, password, stored)` from the committed doveadm output.
fn doveadm_lines() -> Vec<(&'static str, &'static str, &'static str)> {
    DOVEADM
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            match (f.next(), f.next(), f.next()) {
                (Some(s), Some(p), Some(h)) => (s, p, h),
                _ => panic!("bad line in doveadm-hashes.txt: {l:?}"),
            }
        })
        .collect()
}

fn slow(stored: &str) -> bool {
    stored.contains("$argon2")
}

#[test]
fn doveadm_hashes_verify() {
    let lines = doveadm_lines();
    assert!(lines.len() > 80, "the doveadm file lost lines");
    for (scheme, pw, stored) in lines {
        assert_eq!(
            verify_password(stored, pw.as_bytes()),
            Ok(true),
            "{scheme} {stored}"
        );
        if !slow(stored) {
            assert_eq!(
                verify_password(stored, b"wrong"),
                Ok(false),
                "{scheme} {stored}"
            );
            let mut longer = pw.as_bytes().to_vec();
            longer.push(b'x');
            assert_eq!(
                verify_password(stored, &longer),
                Ok(false),
                "{scheme} {stored}"
            );
        }
    }
}

#[test]
fn doveadm_argon2_wrong_password() {
    for (_, _, stored) in doveadm_lines().into_iter().filter(|l| slow(l.2)).take(2) {
        assert_eq!(verify_password(stored, b"Secret"), Ok(false), "{stored}");
    }
}

#[test]
fn doveadm_file_covers_every_scheme() {
    let labels: Vec<String> = doveadm_lines()
        .iter()
        .map(|l| l.0.to_ascii_uppercase())
        .collect();
    for s in SCHEMES {
        assert!(labels.iter().any(|l| l == s), "no doveadm hash for {s}");
    }
    for s in ["SHA256.HEX", "SSHA512.HEX", "PLAIN.B64", "BARE"] {
        assert!(labels.iter().any(|l| l == s), "no doveadm hash for {s}");
    }
    let all: Vec<&str> = doveadm_lines().iter().map(|l| l.2).collect();
    for needle in [
        "$2y$",
        "$2b$",
        "$2a$",
        "$rounds=",
        "$argon2i$",
        "$argon2id$",
        "$1$",
    ] {
        assert!(
            all.iter().any(|h| h.contains(needle)),
            "no doveadm hash with {needle}"
        );
    }
}

/// Every scheme our `hash_password` makes verifies with our own `verify_password`.
#[test]
fn our_hashes_round_trip() {
    for scheme in
        SCHEMES
            .iter()
            .copied()
            .chain(["sha256.hex", "PLAIN.b64", "SSHA.HEX", "SHA512-CRYPT.b64"])
    {
        let pw = "pässwörd 1";
        let stored = hash_password(scheme, pw.as_bytes()).unwrap();
        let upper = scheme.to_ascii_uppercase();
        assert!(stored.starts_with(&format!("{{{upper}}}")), "{stored}");
        assert_eq!(
            verify_password(&stored, pw.as_bytes()),
            Ok(true),
            "{stored}"
        );
        if !slow(&stored) {
            assert_eq!(
                verify_password(&stored, b"password2"),
                Ok(false),
                "{stored}"
            );
        }
    }
}

/// Dovecot itself accepts what we make: `doveadm pw -t HASH -p PASSWORD` exits 0 on a match.
#[test]
fn our_hashes_verify_with_doveadm() {
    let doveadm = [
        "/usr/bin/doveadm",
        "/usr/sbin/doveadm",
        "/usr/local/bin/doveadm",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(doveadm) = doveadm else {
        eprintln!("note: doveadm not installed; skipping our_hashes_verify_with_doveadm");
        return;
    };
    let pw = "pässwörd: 1";
    for scheme in SCHEMES.iter().copied().chain([
        "SHA256.HEX",
        "PLAIN.B64",
        "SSHA512.HEX",
        "SHA512-CRYPT.B64",
    ]) {
        let stored = if matches!(scheme, "PLAIN" | "CLEAR" | "CLEARTEXT") {
            hash_password(scheme, b"pw1").unwrap()
        } else {
            hash_password(scheme, pw.as_bytes()).unwrap()
        };
        let pw = if matches!(scheme, "PLAIN" | "CLEAR" | "CLEARTEXT") {
            "pw1"
        } else {
            pw
        };
        let run = |p: &str| {
            std::process::Command::new(doveadm)
                .args(["pw", "-t", &stored, "-p", p])
                .output()
                .expect("run doveadm")
        };
        let ok = run(pw);
        assert!(
            ok.status.success(),
            "doveadm rejects {stored}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let bad = run("nope");
        assert!(
            !bad.status.success(),
            "doveadm accepts a wrong password for {stored}"
        );
    }
    // The same with rounds= in a SHA-crypt string we build.
    let stored = format!(
        "{{SHA256-CRYPT}}{}",
        sha_crypt_string(false, b"pw", "saltsalt", Some(2000)).unwrap()
    );
    let out = std::process::Command::new(doveadm)
        .args(["pw", "-t", &stored, "-p", "pw"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{stored}");
}

#[test]
fn scheme_names_case_insensitive() {
    let h = hash_password("ssha256", b"x").unwrap();
    assert!(h.starts_with("{SSHA256}"));
    let lower = format!("{{ssha256}}{}", &h["{SSHA256}".len()..]);
    assert_eq!(verify_password(&lower, b"x"), Ok(true));
    assert_eq!(verify_password("{plain.B64}eA==", b"x"), Ok(true));
    assert_eq!(verify_password("{Clear}x", b"x"), Ok(true));
}

#[test]
fn hex_accepted_for_base64_digest_schemes() {
    // SHA256("secret") in hex under a plain {SHA256} prefix.
    let hex = "{SHA256}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
    assert_eq!(verify_password(hex, b"secret"), Ok(true));
    let upper = format!("{{SHA256}}{}", hex["{SHA256}".len()..].to_uppercase());
    assert_eq!(verify_password(&upper, b"secret"), Ok(true));
    assert_eq!(verify_password(hex, b"Secret"), Ok(false));
}

#[test]
fn salted_digest_any_salt_length() {
    for salt_len in [1usize, 4, 8, 16, 40] {
        let salt: Vec<u8> = (0..salt_len as u8).collect();
        let mut raw = Hash::Sha512.digest(&[b"pw", &salt]);
        raw.extend_from_slice(&salt);
        let stored = format!("{{SSHA512}}{}", B64.encode(&raw));
        assert_eq!(verify_password(&stored, b"pw"), Ok(true), "salt {salt_len}");
        assert_eq!(
            verify_password(&stored, b"pX"),
            Ok(false),
            "salt {salt_len}"
        );
    }
}

#[test]
fn sha_crypt_rounds_and_defaults() {
    // Drepper's specification test vectors.
    assert_eq!(
        sha_crypt_string(true, b"Hello world!", "saltstring", None).unwrap(),
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    );
    assert_eq!(
        sha_crypt_string(false, b"Hello world!", "saltstringsaltstring", Some(10000)).unwrap(),
        "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"
    );
    assert_eq!(
        verify_password(
            "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
            b"Hello world!"
        ),
        Ok(true)
    );
    let h = hash_password("SHA512-CRYPT", b"x").unwrap();
    assert!(
        h.starts_with("{SHA512-CRYPT}$6$") && !h.contains("rounds="),
        "{h}"
    );
    let h = hash_password("BLF-CRYPT", b"x").unwrap();
    assert!(h.starts_with("{BLF-CRYPT}$2y$05$"), "{h}");
    let h = hash_password("CRYPT", b"x").unwrap();
    assert!(h.starts_with("{CRYPT}$2y$05$"), "{h}");
}

#[test]
fn md5_crypt_known_vector() {
    // A well-known vector: `openssl passwd -1 -salt saltsalt password`.
    assert_eq!(
        md5_crypt_string(b"password", "saltsalt"),
        "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"
    );
    assert_eq!(
        verify_password("{MD5-CRYPT}$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", b"password"),
        Ok(true)
    );
    assert_eq!(md5_crypt_string(b"", "ab").len(), "$1$ab$".len() + 22);
}

#[test]
fn pbkdf2_rfc6070_vector() {
    // RFC 6070 test vector 2: "password"/"salt", c = 2.
    assert_eq!(
        hex_encode(&pbkdf2_hmac_sha1(b"password", b"salt", 2)),
        "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"
    );
    // Keys longer than a block are hashed first (RFC 2104 §2).
    let long = [b'k'; 100];
    assert_eq!(pbkdf2_hmac_sha1(&long, b"s", 1).len(), 20);
}

#[test]
fn plain_refuses_what_a_passwd_file_cannot_hold() {
    assert!(hash_password("PLAIN", b"a:b").is_err());
    assert!(hash_password("PLAIN", b"a\nb").is_err());
    assert!(hash_password("PLAIN", &[0xff]).is_err());
    let h = hash_password("PLAIN.b64", b"a:b").unwrap();
    assert_eq!(h, "{PLAIN.B64}YTpi");
    assert_eq!(verify_password(&h, b"a:b"), Ok(true));
    assert!(hash_password("SSHA", b"a\0b").is_err());
    assert!(hash_password("BLF-CRYPT", &[b'x'; 73]).is_err());
}

#[test]
fn nul_in_candidate_never_matches() {
    assert_eq!(verify_password("{PLAIN}a", b"a\0"), Ok(false));
    assert_eq!(verify_password("{PLAIN.b64}YQA=", b"a\0"), Ok(false));
}

#[test]
fn malformed_and_unknown_are_errors_without_the_hash() {
    let cases = [
        "{NOPE}abc",
        "{SHA256.rot13}abc",
        "{}abc",
        "{SHA256abc",
        "{SHA256}!!!notbase64",
        "{SHA256}c2hvcnQ=",
        "{SSHA}c2hvcnQ=",
        "{SHA512-CRYPT}$6$saltonly",
        "{SHA512-CRYPT}$6$salt$short",
        "{SHA512-CRYPT}$6$rounds=abc$salt$x",
        "{SHA512-CRYPT}$6$rounds=5000",
        "$2y$05$tooshort",
        "$2y$99$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyzabcde",
        "$2y$xx$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyzabcde",
        "$argon2id$v=19$m=65536,t=3,p=1$$",
        "$argon2id$garbage",
        "$1$salt",
        "$1$salt$short",
        "$y$j9T$abc$def",
        "abDES0123456",
        "",
        "{CRYPT}",
        "{PBKDF2}$1$salt$notnum$00",
        "{PBKDF2}$1$salt$0$00",
        "{PBKDF2}$1$salt$10$zz",
        "{PBKDF2}salt",
        "{PLAIN.hex}abc",
        "{SHA512-CRYPT.b64}***",
        "{SHA512-CRYPT.hex}ff",
    ];
    for stored in cases {
        match verify_password(stored, b"secret") {
            Err(SchemeError(msg)) => {
                assert!(!msg.is_empty());
                let body = stored.rsplit('$').next().unwrap_or("");
                if body.len() > 6 {
                    assert!(!msg.contains(body), "{msg:?} quotes the hash {stored:?}");
                }
            }
            Ok(v) => panic!("{stored:?} gave Ok({v})"),
        }
    }
    assert!(hash_password("NOPE", b"x")
        .unwrap_err()
        .0
        .contains("unknown password scheme"));
    assert!(hash_password("SHA.zip", b"x").is_err());
}

#[test]
fn verify_never_panics_on_junk() {
    let mut seed = 0x1234_5678u32;
    let alphabet = b"${}.$$$125aiy6ABC=+/rounds=argon2idvmtp,:\0\xff";
    for len in 0..64 {
        for _ in 0..40 {
            let s: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    alphabet[(seed as usize) % alphabet.len()]
                })
                .collect();
            let s = String::from_utf8_lossy(&s);
            for prefix in [
                "",
                "{CRYPT}",
                "{SSHA}",
                "{SHA.HEX}",
                "{PBKDF2}",
                "{MD5}$1$",
                "$5$",
                "$6$rounds=1000$",
                "$2b$04$",
            ] {
                let _ = verify_password(&format!("{prefix}{s}"), b"pw");
            }
        }
    }
}

#[test]
fn ct_eq_basics() {
    assert!(ct_eq(b"", b""));
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
}

#[test]
fn scram_credentials_from_scram_plain_or_nothing() {
    let salt = [9u8; 16];
    let sha256 = hash_password("SCRAM-SHA-256", b"pw").unwrap();
    let got = scram_credentials(&sha256, Algorithm::Sha256, &salt)
        .unwrap()
        .unwrap();
    assert_eq!(format!("{{SCRAM-SHA-256}}{}", got.encode()), sha256);
    // The other SCRAM hash function cannot use these keys.
    assert_eq!(scram_credentials(&sha256, Algorithm::Sha1, &salt), Ok(None));
    // A plaintext password gives credentials with the caller's salt, as doveadm would make.
    for stored in ["{PLAIN}pw", "{PLAIN.b64}cHc=", "{CLEAR}pw"] {
        let c = scram_credentials(stored, Algorithm::Sha1, &salt)
            .unwrap()
            .unwrap();
        assert_eq!(c, Credentials::derive(Algorithm::Sha1, b"pw", &salt, 4096));
    }
    for one_way in ["{SHA512-CRYPT}$6$x$y", "{SSHA}abcd", "$2y$05$zz"] {
        assert_eq!(
            scram_credentials(one_way, Algorithm::Sha256, &salt),
            Ok(None)
        );
    }
    let e = scram_credentials("{SCRAM-SHA-256}4096,c2VjcmV0,x,y", Algorithm::Sha256, &salt);
    assert!(e.is_err_and(|e| !e.0.contains("c2VjcmV0")));
    assert!(scram_credentials("{NOPE}x", Algorithm::Sha256, &salt).is_err());
}
