use super::*;

/// A message: number (= UID), date, Message-ID, references, subject.
fn m(number: u32, date: i64, id: &str, refs: &[&str], subject: &str) -> Message {
    let keys = Keys::new(
        date,
        (!id.is_empty()).then(|| id.as_bytes().to_vec()),
        refs.iter().map(|r| r.as_bytes().to_vec()).collect(),
        Some(subject.as_bytes().to_vec()),
    );
    Message {
        number,
        keys: Arc::new(keys),
    }
}

fn refs(msgs: &[Message]) -> String {
    thread(msgs, Algorithm::References)
}

#[test]
fn chains_siblings_and_dates() {
    let msgs = [
        m(1, 10, "a", &[], "x"),
        m(2, 30, "b", &["a"], "re: x"),
        m(3, 20, "c", &["a"], "re: x"),
        m(4, 40, "d", &["a", "b"], "re: x"),
        m(5, 5, "e", &[], "other"),
    ];
    // Children by date: 3 (20) before 2 (30); roots by date: 5 (5) before 1 (10).
    assert_eq!(refs(&msgs), "(5)(1 (3)(2 4))");
    assert_eq!(thread(&msgs, Algorithm::Refs), "(5)(1 (3)(2 4))");
}

#[test]
fn missing_parents_make_dummies() {
    // 1 and 2 reply to a message that is not there: a dummy root with two children.
    let msgs = [
        m(1, 10, "a", &["gone"], "q"),
        m(2, 20, "b", &["gone"], "w"),
        m(3, 5, "c", &["gone2"], "e"),
    ];
    // 3's dummy has one child: replaced by it.
    assert_eq!(refs(&msgs), "(3)((1)(2))");
    // REFS keeps dummies; a one-child dummy writes as its child.
    assert_eq!(thread(&msgs, Algorithm::Refs), "(3)((1)(2))");
}

#[test]
fn dummy_in_the_middle_is_skipped() {
    let msgs = [m(1, 1, "a", &[], "s"), m(2, 2, "c", &["a", "b"], "s")];
    assert_eq!(refs(&msgs), "(1 2)");
}

#[test]
fn subjects_merge() {
    let msgs = [
        m(1, 10, "a", &[], "Hello"),
        m(2, 20, "b", &[], "Re: hello"),
        m(3, 30, "c", &[], "hello"),
        m(4, 40, "d", &[], "World"),
        m(5, 50, "e", &[], "Fwd: world"),
    ];
    // 2 (a reply) joins 1; 3 (not a reply, like 1) makes a dummy holding 1 and 3.
    assert_eq!(
        refs(&msgs),
        "((1 (2))(3))(4 5)".replace("(1 (2))", "(1 2)").as_str()
    );
    // REFS never merges by subject; threads by their newest message.
    assert_eq!(thread(&msgs, Algorithm::Refs), "(1)(2)(3)(4)(5)");
}

#[test]
fn empty_subjects_do_not_merge() {
    let msgs = [m(1, 1, "a", &[], ""), m(2, 2, "b", &[], "re:")];
    assert_eq!(refs(&msgs), "(1)(2)");
}

#[test]
fn refs_orders_threads_by_newest() {
    let msgs = [
        m(1, 10, "a", &[], "x"),
        m(2, 20, "b", &[], "y"),
        m(3, 30, "c", &["a"], "re: x"),
    ];
    assert_eq!(refs(&msgs), "(1 3)(2)");
    assert_eq!(thread(&msgs, Algorithm::Refs), "(2)(1 3)");
}

#[test]
fn loops_and_duplicates() {
    let msgs = [
        m(1, 1, "a", &["b"], "x"),
        m(2, 2, "b", &["a"], "y"),
        m(3, 3, "a", &["a"], "z"),
        m(4, 4, "", &["a"], "w"),
        m(5, 5, "e", &["e", "e"], "v"),
    ];
    // 1 is b's child; 2's own reference (a) would be a loop: ignored. 3 repeats 1's ID:
    // a node of its own (and "a" is not its parent: that is itself... of 1's node).
    let out = refs(&msgs);
    for n in 1..=5 {
        assert_eq!(out.matches(&format!("{n}")).count(), 1, "{out}");
    }
    assert_eq!(out, "(2 1 (3)(4))(5)");
}

#[test]
fn ordered_subject() {
    let msgs = [
        m(1, 30, "", &[], "b"),
        m(2, 10, "", &[], "Re: b"),
        m(3, 20, "", &[], "a"),
        m(4, 20, "", &[], "b"),
        m(5, 5, "", &[], "c"),
    ];
    assert_eq!(thread(&msgs, Algorithm::OrderedSubject), "(5)(2 (4)(1))(3)");
}

#[test]
fn deep_chain_no_recursion() {
    let n = 100_000u32;
    let msgs: Vec<Message> = (1..=n)
        .map(|i| {
            let id = format!("m{i}");
            let parent = format!("m{}", i - 1);
            let refs: &[&str] = if i > 1 { &[&parent] } else { &[] };
            m(i, i as i64, &id, refs, "s")
        })
        .collect();
    let out = refs(&msgs);
    assert!(out.starts_with("(1 2 3 "));
    assert_eq!(thread(&msgs, Algorithm::Refs), out);
}

#[test]
fn long_references_are_linear() {
    // One message with 100,000 references, then 1,000 messages under its deepest one, each
    // also referring to the chain backwards (the walks Dovecot repeats).
    let chain: Vec<String> = (0..100_000).map(|i| format!("r{i}")).collect();
    let chain: Vec<&str> = chain.iter().map(|s| s.as_str()).collect();
    let mut msgs = vec![m(1, 1, "top", &chain, "s")];
    let back: Vec<&str> = chain.iter().rev().take(1000).copied().collect();
    for i in 2..1002u32 {
        let id = format!("x{i}");
        let mut r = vec!["r99999", "x2"];
        r.extend(back.iter());
        r.push("r99999");
        msgs.push(m(i, i as i64, &id, &r, "s"));
    }
    let t = std::time::Instant::now();
    for alg in [Algorithm::References, Algorithm::Refs] {
        let out = thread(&msgs, alg);
        assert_eq!(out.matches('(').count(), out.matches(')').count());
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
}

/// A small deterministic generator (no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The numbers in a response, and whether its parentheses balance with none empty.
fn numbers(out: &str) -> Option<Vec<u32>> {
    let mut depth = 0i64;
    let mut prev = ' ';
    for c in out.chars() {
        match c {
            '(' => depth += 1,
            ')' if prev == '(' => return None,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return None;
        }
        prev = c;
    }
    let mut v: Vec<u32> = out
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    v.sort_unstable();
    (depth == 0).then_some(v)
}

#[test]
fn model_every_message_once() {
    let mut g = Lcg(42);
    for round in 0..300 {
        let n = 1 + g.next(40) as u32;
        let ids = 1 + g.next(50);
        let mut msgs = Vec::new();
        for i in 1..=n {
            let id = format!("i{}", g.next(ids));
            let refs: Vec<String> = (0..g.next(5))
                .map(|_| format!("i{}", g.next(ids)))
                .collect();
            let refs: Vec<&str> = refs.iter().map(|s| s.as_str()).collect();
            let subject = ["a", "re: a", "b", "fwd: b", ""][g.next(5) as usize];
            let id = if g.next(10) == 0 { String::new() } else { id };
            msgs.push(m(i, g.next(5) as i64, &id, &refs, subject));
        }
        for alg in [
            Algorithm::OrderedSubject,
            Algorithm::References,
            Algorithm::Refs,
        ] {
            let out = thread(&msgs, alg);
            let want: Vec<u32> = (1..=n).collect();
            assert_eq!(numbers(&out), Some(want), "round {round} {alg:?}: {out}");
            assert_eq!(thread(&msgs, alg), out);
        }
    }
}

#[test]
fn refs_dummy_ties_by_rank() {
    // Two dummy roots (x, y missing) whose newest messages have the same date.
    let msgs = [
        m(1, 5, "a", &["x"], "s"),
        m(2, 5, "b", &["x"], "s"),
        m(3, 5, "c", &["y"], "s"),
        m(4, 5, "d", &["y"], "s"),
    ];
    assert_eq!(thread(&msgs, Algorithm::Refs), "((1)(2))((3)(4))");
    // In the whole mailbox, y was seen first.
    let rank: Rank = [(&b"y"[..], 0), (&b"x"[..], 1)].into_iter().collect();
    assert_eq!(
        thread_ranked(&msgs, Algorithm::Refs, Some(&rank)),
        "((3)(4))((1)(2))"
    );
}
