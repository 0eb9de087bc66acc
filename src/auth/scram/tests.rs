use super::*;

/// RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256): user "user", password
/// "pencil"; (client-first, server nonce part, salt, server-first, client-final, server-final).
const VECTORS: [(Algorithm, &str, &str, &str, &str, &str, &str); 2] = [
    (
        Algorithm::Sha1,
        "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        "QSXCR+Q6sek8bf92",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    (
        Algorithm::Sha256,
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
];

fn pencil(algo: Algorithm, salt_b64: &str) -> Credentials {
    Credentials::derive(algo, b"pencil", &B64.decode(salt_b64).unwrap(), 4096)
}

#[test]
fn rfc_test_vectors() {
    for (algo, first, snonce, salt, server_first, client_final, server_final) in VECTORS {
        let cf = ClientFirst::parse(first.as_bytes()).unwrap();
        assert_eq!(cf.username, "user");
        assert_eq!(cf.authzid, None);
        let ex = Exchange::start(algo, &cf, pencil(algo, salt), snonce);
        assert_eq!(ex.server_first(), server_first, "{algo:?}");
        assert_eq!(
            ex.finish(client_final.as_bytes()).as_deref(),
            Ok(server_final),
            "{algo:?}"
        );
    }
}

#[test]
fn wrong_password_nonce_binding_or_proof_fail() {
    let (algo, first, snonce, salt, _, client_final, _) = VECTORS[1];
    let cf = ClientFirst::parse(first.as_bytes()).unwrap();
    let wrong = Credentials::derive(algo, b"pencil2", &B64.decode(salt).unwrap(), 4096);
    let ex = Exchange::start(algo, &cf, wrong, snonce);
    assert_eq!(
        ex.finish(client_final.as_bytes()),
        Err(ScramError("wrong password (ClientProof does not match)"))
    );
    let ex = Exchange::start(algo, &cf, pencil(algo, salt), snonce);
    let cases = [
        (client_final.replace("r=rOpr", "r=xOpr"), "wrong nonce"),
        (
            client_final.replace("c=biws", "c=eSws"),
            "invalid channel binding data",
        ),
        (
            client_final.replace("c=biws,", ""),
            "invalid channel binding data",
        ),
        (
            client_final.replace("p=dHzb", "p=eHzb"),
            "wrong password (ClientProof does not match)",
        ),
        (
            client_final.replace("p=dHzb", "p=!!!!"),
            "invalid ClientProof",
        ),
        (client_final.replace("VQ=", ""), "invalid ClientProof"),
        (client_final.replace("p=", "q="), "invalid ClientProof"),
        ("garbage".to_string(), "invalid client-final-message"),
        (String::new(), "invalid client-final-message"),
        ("x".repeat(MAX_MESSAGE + 1), "client-final-message too long"),
    ];
    for (msg, why) in cases {
        assert_eq!(ex.finish(msg.as_bytes()), Err(ScramError(why)), "{msg}");
    }
    assert!(ex.finish(b"c=biws,r=\xff,p=x").is_err());
    // An extension before the proof is part of the AuthMessage; here it changes the signature.
    let with_ext = client_final.replace(",p=", ",x=1,p=");
    assert!(ex.finish(with_ext.as_bytes()).is_err());
}

#[test]
fn client_first_gs2_header_authzid_and_escapes() {
    let cf = ClientFirst::parse(b"y,a=b=2Cc=3Dd,n=us=2Cer=3D,r=abc,x=ext").unwrap();
    assert_eq!(cf.authzid.as_deref(), Some("b,c=d"));
    assert_eq!(cf.username, "us,er=");
    assert_eq!(cf.gs2_header, "y,a=b=2Cc=3Dd,");
    assert_eq!(cf.bare, "n=us=2Cer=3D,r=abc,x=ext");
    assert_eq!(cf.cnonce, "abc");
    let bad = [
        (
            "p=tls-unique,,n=user,r=abc",
            "channel binding not supported",
        ),
        ("x,,n=user,r=abc", "invalid gs2 channel binding flag"),
        ("n,z=user,n=user,r=abc", "invalid authzid field"),
        ("n,a=x=41,n=user,r=abc", "invalid '=' escape in a name"),
        ("n,,m=ext,n=user,r=abc", "mandatory extension not supported"),
        ("n,,u=user,r=abc", "invalid username field"),
        ("n,,n=us=2,r=abc", "invalid '=' escape in a name"),
        ("n,,n=user=", "invalid '=' escape in a name"),
        ("n,,n=user", "invalid client nonce"),
        ("n,,n=user,s=abc", "invalid client nonce"),
        ("n,,n=,r=abc", "empty username or invalid client nonce"),
        ("n,,n=user,r=", "empty username or invalid client nonce"),
        ("n,,n=user,r=a b", "empty username or invalid client nonce"),
        ("n,,", "invalid username field"),
        ("n,", "no gs2 header in client-first-message"),
        ("", "no gs2 header in client-first-message"),
    ];
    for (msg, why) in bad {
        assert_eq!(
            ClientFirst::parse(msg.as_bytes()),
            Err(ScramError(why)),
            "{msg}"
        );
    }
    assert!(ClientFirst::parse(b"n,,n=\xc3,r=abc").is_err());
    let long = format!("n,,n=user,r={}", "a".repeat(MAX_MESSAGE));
    assert!(ClientFirst::parse(long.as_bytes()).is_err());
    // A multi-byte name is fine (no SASLprep, as Dovecot), and so is an '=' right at the end of
    // a valid escape.
    assert_eq!(
        ClientFirst::parse("n,,n=jürgen=3D,r=a".as_bytes())
            .unwrap()
            .username,
        "jürgen="
    );
}

#[test]
fn credentials_round_trip_and_doveadm_value() {
    // `doveadm pw -s SCRAM-SHA-256 -p pencil` (Dovecot 2.3.19).
    let v = "4096,2Y8N5ILXqOxxgPxoGX3z+Q==,hGy/qQiyrKjKnTqSEiFRp8SViJPy3wElzOWLViIQqEQ=,\
             Dh4L7tFEzKz3tN8oVIbmE1dOpvsQ2+mafiOv6WS3qtc=";
    let c = Credentials::parse(Algorithm::Sha256, v).unwrap();
    assert!(c.matches_password(Algorithm::Sha256, b"pencil"));
    assert!(!c.matches_password(Algorithm::Sha256, b"pencil "));
    assert_eq!(c.encode(), v);
    let sha1 =
        "4096,nqW/mWf41/85AHhFL7D7jA==,FCmyyEhlRRsQUxRg9V6qPy890hA=,a4RxCfV1hUVDe7T9ehwMwnhuXoc=";
    let c = Credentials::parse(Algorithm::Sha1, sha1).unwrap();
    assert!(c.matches_password(Algorithm::Sha1, b"pencil"));
    // The SHA-1 value's keys are 20 bytes: not SCRAM-SHA-256 credentials.
    assert!(Credentials::parse(Algorithm::Sha256, sha1).is_err());

    let g = Credentials::generate(Algorithm::Sha256, b"p w").unwrap();
    assert_eq!((g.iterations, g.salt.len()), (4096, 16));
    assert_eq!(
        Credentials::parse(Algorithm::Sha256, &g.encode()),
        Ok(g.clone())
    );
    assert!(g.matches_password(Algorithm::Sha256, b"p w"));
    assert_ne!(
        Credentials::generate(Algorithm::Sha256, b"p w")
            .unwrap()
            .salt,
        g.salt
    );
}

#[test]
fn malformed_credentials_are_refused_without_quoting_them() {
    let key = B64.encode([7u8; 32]);
    let bad = [
        String::new(),
        "4096,c2FsdA==,xx".to_string(),
        format!("4095,c2FsdA==,{key},{key}"),
        format!("2147483648,c2FsdA==,{key},{key}"),
        format!("-1,c2FsdA==,{key},{key}"),
        format!("4096,!!,{key},{key}"),
        format!("4096,c2FsdA==,{key},c2VjcmV0"),
        format!("4096,c2FsdA==,c2VjcmV0,{key}"),
        format!("4096,c2FsdA==,{key},{key},extra"),
    ];
    for v in bad {
        let e = Credentials::parse(Algorithm::Sha256, &v).unwrap_err();
        assert!(!e.contains("c2Vjc") && !e.contains(&key), "{e}");
    }
    let max = format!("2147483647,c2FsdA==,{key},{key}");
    assert_eq!(
        Credentials::parse(Algorithm::Sha256, &max)
            .unwrap()
            .iterations,
        MAX_ITERATIONS
    );
}

#[test]
fn names_and_server_nonce() {
    assert_eq!(
        Algorithm::from_name("scram-sha-256"),
        Some(Algorithm::Sha256)
    );
    assert_eq!(Algorithm::from_name("SCRAM-SHA-1"), Some(Algorithm::Sha1));
    assert_eq!(Algorithm::from_name("SCRAM-SHA-256-PLUS"), None);
    assert_eq!(Algorithm::Sha1.name(), "SCRAM-SHA-1");
    let (a, b) = (server_nonce().unwrap(), server_nonce().unwrap());
    assert!(is_nonce(&a) && a.len() == 40 && a != b, "{a} {b}");
}
