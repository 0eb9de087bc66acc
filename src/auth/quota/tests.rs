use super::*;

fn rules(fields: &[(&str, &str)]) -> Result<Option<QuotaRules>, String> {
    let extra: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    QuotaRules::from_extra(&extra)
}

fn ok(fields: &[(&str, &str)]) -> QuotaRules {
    rules(fields).unwrap().expect("rules")
}

const K: u64 = 1024;
const M: u64 = 1024 * 1024;

#[test]
fn no_rule_fields_is_no_quota() {
    assert_eq!(rules(&[]).unwrap(), None);
    assert_eq!(
        rules(&[("userdb_mail", "maildir:~/M"), ("quota", "x")]).unwrap(),
        None
    );
}

#[test]
fn default_rule_units() {
    let cases: &[(&str, u64)] = &[
        ("*:storage=1G", 1 << 30),
        ("*:storage=10", 10 * K),
        ("*:storage=512b", 512),
        ("*:storage=2k", 2 * K),
        ("*:storage=3M", 3 * M),
        ("*:storage=3MB", 3 * M),
        ("*:storage=1t", 1 << 40),
        ("*:bytes=1000", 1000),
        ("*:bytes=1k", K),
        ("?:storage=0", 0),
    ];
    for (rule, bytes) in cases {
        let r = ok(&[("userdb_quota_rule", rule)]);
        assert_eq!(r.root_limits().bytes, *bytes, "{rule}");
        assert_eq!(r.root_limits().messages, 0, "{rule}");
    }
    let r = ok(&[("quota_rule", "*:storage=1M:messages=10")]);
    assert_eq!(
        r.root_limits(),
        Limits {
            bytes: M,
            messages: 10
        }
    );
    assert!(r.is_limited());
    assert!(!ok(&[("quota_rule", "*:storage=0")]).is_limited());
}

#[test]
fn numbered_rules_combine_and_later_ones_win() {
    let r = ok(&[
        ("userdb_quota_rule", "*:storage=1G"),
        ("userdb_quota_rule2", "*:messages=10000"),
        ("userdb_quota_rule3", "Trash:storage=+100M"),
    ]);
    assert_eq!(
        r.root_limits(),
        Limits {
            bytes: 1 << 30,
            messages: 10000
        }
    );
    assert_eq!(
        r.limits_for("Trash"),
        Some(Limits {
            bytes: (1 << 30) + 100 * M,
            messages: 10000
        })
    );
    assert_eq!(r.limits_for("INBOX"), Some(r.root_limits()));
    assert_eq!(r.limits_for("Trash.sub"), Some(r.root_limits()));
}

#[test]
fn mailbox_rules_relative_percent_ignore_and_wildcards() {
    let r = ok(&[
        ("quota_rule", "*:storage=1000:messages=100"),
        ("quota_rule2", "Trash:storage=+10%%:messages=-10"),
        ("quota_rule3", "Spam*:ignore"),
        ("quota_rule4", "inbox:bytes=24"),
        ("quota_rule5", "Arch?ve:messages=5"),
    ]);
    assert_eq!(
        r.limits_for("Trash"),
        Some(Limits {
            bytes: 1100 * K,
            messages: 90
        })
    );
    assert_eq!(r.limits_for("Spam"), None);
    assert_eq!(r.limits_for("Spam.old"), None);
    assert!(r.ignored("Spam"));
    assert!(!r.ignored("spam"));
    assert_eq!(
        r.limits_for("INBOX"),
        Some(Limits {
            bytes: 1000 * K + 24,
            messages: 100
        })
    );
    assert_eq!(
        r.limits_for("Archive"),
        Some(Limits {
            bytes: 1000 * K,
            messages: 105
        })
    );
    assert_eq!(r.limits_for("Archives"), Some(r.root_limits()));
}

#[test]
fn relative_rule_over_unlimited_and_below_zero() {
    let r = ok(&[
        ("quota_rule", "Trash:storage=+1k"),
        ("quota_rule2", "Sent:storage=-5"),
    ]);
    assert_eq!(r.root_limits(), Limits::default());
    assert_eq!(r.limits_for("Trash").unwrap().bytes, K);
    // Dovecot: a limit at or below zero is none.
    assert_eq!(r.limits_for("Sent").unwrap().bytes, 0);
    assert!(r.is_limited());
}

#[test]
fn exceeded_is_strictly_over() {
    let l = Limits {
        bytes: 100,
        messages: 2,
    };
    let used = Usage {
        bytes: 60,
        messages: 1,
    };
    assert!(!l.exceeded(used, 40, 1));
    assert!(l.exceeded(used, 41, 1));
    assert!(l.exceeded(used, 1, 2));
    assert!(!Limits::default().exceeded(
        Usage {
            bytes: u64::MAX,
            messages: u64::MAX
        },
        9,
        9
    ));
}

#[test]
fn bad_rules_are_refused_with_a_reason() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("quota_rule", "storage=1G")],
            "expected <mailbox>:<limits>",
        ),
        (&[("quota_rule", ":storage=1G")], "no mailbox"),
        (&[("quota_rule", "*:storage=1X")], "unknown unit"),
        (&[("quota_rule", "*:storage=")], "not a number"),
        (&[("quota_rule", "*:storage=+1G")], "cannot have '+'"),
        (&[("quota_rule", "*:storage=-1")], "negative"),
        (&[("quota_rule", "*:storage=10%")], "percentage"),
        (&[("quota_rule", "*:size=1")], "unknown limit"),
        (&[("quota_rule", "*:storage")], "not <name>=<value>"),
        (&[("quota_rule", "*:ignore")], "cannot be ignore"),
        (&[("quota_rule", "*:backend=1G")], "not supported"),
        (
            &[("quota_rule", "*:storage=99999999999999999999")],
            "too large",
        ),
        (
            &[("quota_rule", "*:storage=9999999999999999T")],
            "too large",
        ),
        (
            &[("quota_rule2", "*:storage=1G")],
            "quota_rule2 without quota_rule",
        ),
        (
            &[
                ("quota_rule", "*:storage=1"),
                ("quota_rule3", "*:messages=1"),
            ],
            "without quota_rule2",
        ),
        (&[("quota_rulex", "*:storage=1")], "not a quota rule name"),
        (&[("quota_rule02", "*:storage=1")], "not a quota rule name"),
    ];
    for (fields, reason) in cases {
        let e = rules(fields).expect_err("refused");
        assert!(e.contains(reason), "{fields:?}: {e}");
    }
}

#[test]
fn wildcards() {
    for (name, mask, want) in [
        ("Trash", "Trash", true),
        ("Trash", "trash", false),
        ("Trash", "T*", true),
        ("Trash", "*h", true),
        ("Trash", "T?ash", true),
        ("Trash", "T???sh", false),
        ("a.b.c", "a*c", true),
        ("abcbc", "*bc", true),
        ("ab", "a*b*", true),
        ("", "*", true),
        ("", "?", false),
        ("x", "", false),
    ] {
        assert_eq!(
            wildcard_match(name.as_bytes(), mask.as_bytes()),
            want,
            "{name} {mask}"
        );
    }
}

#[test]
fn delivery_gets_the_grace_unless_already_over() {
    let l = Limits {
        bytes: 1000,
        messages: 3,
    };
    let r = ok(&[("quota_rule", "*:bytes=1000:messages=3")]);
    assert_eq!(r.grace(), 100);
    let used = Usage {
        bytes: 900,
        messages: 1,
    };
    assert!(!l.refuses_delivery(used, 200, 100));
    assert!(l.refuses_delivery(used, 201, 100));
    assert!(l.refuses_delivery(
        Usage {
            bytes: 1000,
            messages: 0
        },
        1,
        100
    ));
    assert!(l.refuses_delivery(
        Usage {
            bytes: 0,
            messages: 3
        },
        1,
        100
    ));
    assert!(!Limits::default().refuses_delivery(
        Usage {
            bytes: u64::MAX,
            messages: 9
        },
        9,
        0
    ));
}
