//! Fuzz THREAD over hostile headers: each input line is one message, its tab-separated
//! fields a Message-ID, References, In-Reply-To and Subject value and a date. Message-ID
//! parsing and the three algorithms may not panic, and every message must be in the answer
//! exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pimap::mime::thread::{thread, Algorithm, Keys, Message};
use std::sync::Arc;
use pimap::mime::msgid;

fuzz_target!(|data: &[u8]| {
    let mut msgs = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').take(200).enumerate() {
        let mut f = line.split(|&b| b == b'\t');
        let (id, refs, irt, subj) = (f.next(), f.next(), f.next(), f.next());
        let mut references = refs.map(msgid::all).unwrap_or_default();
        if references.is_empty() {
            references.extend(irt.and_then(msgid::first));
        }
        let date = f.next().map_or(0, |d| d.len() as i64 % 3);
        let keys = Keys::new(date, id.and_then(msgid::first), references, subj.map(<[u8]>::to_vec));
        msgs.push(Message {
            number: i as u32 + 1,
            keys: Arc::new(keys),
        });
    }
    for alg in [Algorithm::OrderedSubject, Algorithm::References, Algorithm::Refs] {
        let out = thread(&msgs, alg);
        let mut seen: Vec<u32> = out
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        seen.sort_unstable();
        assert!(seen.iter().copied().eq(1..=msgs.len() as u32), "{alg:?}: {out}");
        assert_eq!(out.matches('(').count(), out.matches(')').count());
    }
});
