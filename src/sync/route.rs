//! Routing: which local users get an SES-delivered message, and into which folder.
//!
//! Owns: reading the few header fields routing needs (RFC 5322 §2.2 header section with
//! folding, §3.4 address lists, RFC 5321 §4.4 `Received:` trace fields with their `for`
//! clause), the aliases file, and SES's verdict headers. Pure: no I/O, no allocation beyond
//! the header section (bounded by [`MAX_HEADER_BYTES`]).
//!
//! Never: drops a message. Whatever cannot be routed goes to the postmaster user.
//!
//! Order of decisions (first match wins):
//! 1. `--deliver-to USER`: everything to that user.
//! 2. `--route-prefix PREFIX=ADDR`: the object key starts with PREFIX.
//! 3. `--route-header NAME`: addresses in that header (stamped by a receipt rule's
//!    add-header action).
//! 4. The `for` clause of SES's own (topmost) `Received:` header — the envelope recipient.
//! 5. To/Cc matched against local users (SES leaves `for` out when there are several
//!    envelope recipients); each local recipient gets one copy.
//! 6. The postmaster.

use std::collections::BTreeSet;

/// Only the header section is parsed; SES's own headers come first, so 256 KiB is plenty and
/// a message without a blank line is not scanned to its end.
pub const MAX_HEADER_BYTES: usize = 256 * 1024;

/// The unfolded header fields of a message, in order, names as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// Parse the header section (RFC 5322 §2.2): stops at the first empty line (CRLF or LF
    /// endings), unfolds continuation lines (§2.2.3), keeps invalid bytes lossily.
    pub fn parse(data: &[u8]) -> Headers {
        let data = &data[..data.len().min(MAX_HEADER_BYTES)];
        let mut fields: Vec<(String, String)> = Vec::new();
        for raw in data.split(|&b| b == b'\n') {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.is_empty() {
                break;
            }
            let text = String::from_utf8_lossy(line);
            if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(text.trim());
                }
                continue;
            }
            if let Some((name, value)) = text.split_once(':') {
                let name = name.trim_end();
                if !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b)) {
                    fields.push((name.to_string(), value.trim().to_string()));
                }
            }
        }
        Headers { fields }
    }

    /// Values of every field named `name` (case-insensitive), topmost first.
    pub fn all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The topmost field named `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }
}

/// Extract the `for` clause of a `Received:` field (RFC 5321 §4.4: `For-clause = CFWS "FOR"
/// FWS ( Path / Mailbox )`), e.g. `... for alice@example.org; Mon, 23 Nov ...` or
/// `for <alice@example.org>;`.
pub fn received_for(value: &str) -> Option<String> {
    // The clause ends at the `;` that introduces the date.
    let clauses = value.rsplit_once(';').map(|(c, _)| c).unwrap_or(value);
    let tokens: Vec<&str> = clauses.split_whitespace().collect();
    let pos = tokens.iter().rposition(|t| t.eq_ignore_ascii_case("for"))?;
    let addr = tokens.get(pos + 1)?;
    let addr = addr.trim_matches(|c| c == '<' || c == '>' || c == ';' || c == ',');
    normalize_addr(addr)
}

/// Addresses in an address-list header value (RFC 5322 §3.4): `<addr>` where present,
/// otherwise bare `local@domain` tokens; groups and comments tolerated.
pub fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut item = String::new();
    let (mut quoted, mut angle, mut comment) = (false, false, 0u32);
    let flush = |item: &mut String, out: &mut Vec<String>| {
        let it = item.trim();
        let candidate = match (it.rfind('<'), it.rfind('>')) {
            (Some(a), Some(b)) if a < b => it.get(a + 1..b).unwrap_or(""),
            _ => it
                .rsplit(|c: char| c.is_whitespace() || c == ':')
                .next()
                .unwrap_or(""),
        };
        if let Some(a) = normalize_addr(candidate) {
            out.push(a);
        }
        item.clear();
    };
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            item.push(c);
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => {
                comment -= 1;
                continue;
            }
            '<' if !quoted && comment == 0 => angle = true,
            '>' if !quoted && comment == 0 => angle = false,
            ',' | ';' if !quoted && !angle && comment == 0 => {
                flush(&mut item, &mut out);
                continue;
            }
            _ => {}
        }
        if comment == 0 && c != '(' && c != '"' {
            item.push(c);
        }
    }
    flush(&mut item, &mut out);
    out
}

/// Lower-cased `local@domain`, or None if it does not look like one.
fn normalize_addr(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches("SMTP:").trim();
    let (local, domain) = s.rsplit_once('@')?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '<' && c != '>')
    };
    if ok(local) && ok(domain) && domain.contains(|c: char| c.is_ascii_alphanumeric()) {
        Some(format!("{local}@{}", domain.to_ascii_lowercase()).to_lowercase())
    } else {
        None
    }
}

/// One aliases-file entry: `alias@domain: user[, user...]` or `@domain: user` (catch-all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    exact: Vec<(String, Vec<String>)>,
    catch_all: Vec<(String, Vec<String>)>,
}

impl Aliases {
    /// Parse the aliases file. `#` comments and blank lines are ignored; a malformed line is an
    /// error naming its (1-based) number.
    pub fn parse(text: &str) -> Result<Aliases, String> {
        let mut a = Aliases::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (lhs, rhs) = line
                .split_once(':')
                .ok_or_else(|| format!("aliases line {}: expected `address: user`", i + 1))?;
            let lhs = lhs.trim().to_lowercase();
            let users: Vec<String> = rhs
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect();
            if users.is_empty() {
                return Err(format!("aliases line {}: no user after ':'", i + 1));
            }
            if let Some(domain) = lhs.strip_prefix('@') {
                if domain.is_empty() || domain.contains('@') {
                    return Err(format!("aliases line {}: bad catch-all {lhs:?}", i + 1));
                }
                a.catch_all.push((domain.to_string(), users));
            } else if normalize_addr(&lhs).is_some() {
                a.exact.push((lhs, users));
            } else {
                return Err(format!("aliases line {}: {lhs:?} is not an address", i + 1));
            }
        }
        Ok(a)
    }

    fn domains(&self) -> impl Iterator<Item = &str> {
        self.exact
            .iter()
            .filter_map(|(a, _)| a.rsplit_once('@').map(|(_, d)| d))
            .chain(self.catch_all.iter().map(|(d, _)| d.as_str()))
    }
}

/// Routing configuration (from the flags), independent of any message.
#[derive(Debug, Clone, Default)]
pub struct RouteConfig {
    pub deliver_to: Option<String>,
    /// `(key prefix, address or user)`, longest prefix wins.
    pub prefixes: Vec<(String, String)>,
    pub header: Option<String>,
    pub postmaster: Option<String>,
    /// Domains whose local part may match a user name without a domain.
    pub local_domains: Vec<String>,
    pub aliases: Aliases,
}

/// How a message was routed (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteReason {
    DeliverTo,
    Prefix,
    Header,
    Envelope,
    ToCc,
    Postmaster,
}

/// SES's scanning verdicts (`X-SES-Spam-Verdict`, `X-SES-Virus-Verdict`), topmost field only:
/// SES prepends its own, so a copy inside the sender's header section cannot override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdicts {
    pub spam: bool,
    pub virus: bool,
}

impl Verdicts {
    pub fn of(h: &Headers) -> Verdicts {
        let fail = |name: &str| {
            h.first(name)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("FAIL"))
        };
        Verdicts {
            spam: fail("X-SES-Spam-Verdict"),
            virus: fail("X-SES-Virus-Verdict"),
        }
    }
}

/// The decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Local user names, deduplicated, in a stable order.
    pub users: Vec<String>,
    pub reason: RouteReason,
    /// Addresses that matched no user (logged).
    pub unmatched: Vec<String>,
}

/// Route a message: `users` are the names in the users file.
pub fn route(
    cfg: &RouteConfig,
    users: &[String],
    key: &str,
    headers: &Headers,
) -> Result<Route, String> {
    let resolver = Resolver::new(cfg, users);
    if let Some(u) = &cfg.deliver_to {
        let r = resolver.resolve(u, true);
        if r.is_empty() {
            return Err(format!(
                "--deliver-to {u:?} is not a user in the users file"
            ));
        }
        return Ok(Route {
            users: r,
            reason: RouteReason::DeliverTo,
            unmatched: vec![],
        });
    }
    let mut unmatched = Vec::new();
    if let Some(r) = by_prefix(cfg, &resolver, key, &mut unmatched) {
        return Ok(Route {
            users: r,
            reason: RouteReason::Prefix,
            unmatched,
        });
    }
    if let Some((r, reason)) = by_headers(cfg, &resolver, headers, &mut unmatched) {
        return Ok(Route {
            users: r,
            reason,
            unmatched,
        });
    }
    to_postmaster(cfg, &resolver, unmatched)
}

/// The users of the longest `--route-prefix` matching the object `key`, if it resolves (else
/// its target goes in `unmatched`).
fn by_prefix(
    cfg: &RouteConfig,
    resolver: &Resolver,
    key: &str,
    unmatched: &mut Vec<String>,
) -> Option<Vec<String>> {
    let (_, target) = cfg
        .prefixes
        .iter()
        .filter(|(p, _)| key.starts_with(p.as_str()))
        .max_by_key(|(p, _)| p.len())?;
    let r = resolver.resolve(target, true);
    if r.is_empty() {
        unmatched.push(target.clone());
        return None;
    }
    Some(r)
}

/// The users the message's header names, first found wins: the configured routing header,
/// then the envelope recipient in SES's `Received:` field, then To and Cc. Addresses that
/// match no user go in `unmatched`.
fn by_headers(
    cfg: &RouteConfig,
    resolver: &Resolver,
    headers: &Headers,
    unmatched: &mut Vec<String>,
) -> Option<(Vec<String>, RouteReason)> {
    if let Some(name) = &cfg.header {
        let addrs: Vec<String> = headers.all(name).flat_map(addresses).collect();
        let r = resolve_all(resolver, addrs, true, unmatched);
        if !r.is_empty() {
            return Some((r, RouteReason::Header));
        }
    }
    if let Some(addr) = ses_received(headers).and_then(received_for) {
        let r = resolve_all(resolver, vec![addr], true, unmatched);
        if !r.is_empty() {
            return Some((r, RouteReason::Envelope));
        }
    }
    let addrs: Vec<String> = headers
        .all("To")
        .chain(headers.all("Cc"))
        .flat_map(addresses)
        .collect();
    let r = resolve_all(resolver, addrs, false, unmatched);
    (!r.is_empty()).then_some((r, RouteReason::ToCc))
}

/// The users `addrs` resolve to, deduplicated and sorted; the addresses that match no user
/// go in `unmatched`.
fn resolve_all(
    resolver: &Resolver,
    addrs: Vec<String>,
    envelope: bool,
    unmatched: &mut Vec<String>,
) -> Vec<String> {
    let mut set = BTreeSet::new();
    for a in addrs {
        let r = resolver.resolve(&a, envelope);
        if r.is_empty() {
            unmatched.push(a);
        }
        set.extend(r);
    }
    set.into_iter().collect()
}

/// A message nothing else routed: to `--postmaster`, or an error.
fn to_postmaster(
    cfg: &RouteConfig,
    resolver: &Resolver,
    unmatched: Vec<String>,
) -> Result<Route, String> {
    match &cfg.postmaster {
        Some(p) => {
            let r = resolver.resolve(p, true);
            if r.is_empty() {
                Err(format!(
                    "unroutable, and the postmaster {p:?} is not a user"
                ))
            } else {
                Ok(Route {
                    users: r,
                    reason: RouteReason::Postmaster,
                    unmatched,
                })
            }
        }
        None => Err("unroutable and no --postmaster configured".into()),
    }
}

/// SES's own `Received:` field: the topmost one whose `by` names an amazonaws.com host, else
/// simply the topmost (SES prepends it).
fn ses_received(h: &Headers) -> Option<&str> {
    h.all("Received")
        .find(|v| v.to_ascii_lowercase().contains("amazonaws.com"))
        .or_else(|| h.first("Received"))
}

struct Resolver<'a> {
    cfg: &'a RouteConfig,
    users: &'a [String],
    local_domains: Vec<String>,
}

impl<'a> Resolver<'a> {
    fn new(cfg: &'a RouteConfig, users: &'a [String]) -> Self {
        let mut local_domains: Vec<String> = cfg
            .local_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        local_domains.extend(
            users
                .iter()
                .filter_map(|u| u.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())),
        );
        local_domains.extend(cfg.aliases.domains().map(str::to_string));
        Resolver {
            cfg,
            users,
            local_domains,
        }
    }

    fn user(&self, name: &str) -> Option<String> {
        self.users
            .iter()
            .find(|u| u.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Users for an address (or a bare user name). `envelope`: the address comes from the
    /// envelope (SES only accepts mail for verified domains), so a bare user name may match
    /// the local part whatever the domain; from To/Cc only for local domains.
    fn resolve(&self, addr: &str, envelope: bool) -> Vec<String> {
        let addr = addr.trim().to_lowercase();
        if let Some(u) = self.user(&addr) {
            return vec![u];
        }
        let Some((local, domain)) = addr.rsplit_once('@') else {
            return vec![];
        };
        let expand = |targets: &[String]| -> Vec<String> {
            targets.iter().filter_map(|t| self.user(t)).collect()
        };
        if let Some((_, t)) = self.cfg.aliases.exact.iter().find(|(a, _)| *a == addr) {
            return expand(t);
        }
        // Subaddressing: alice+tag@example.org is alice@example.org.
        let base_local = local.split('+').next().unwrap_or(local);
        let base = format!("{base_local}@{domain}");
        if base != addr {
            if let Some(u) = self.user(&base) {
                return vec![u];
            }
            if let Some((_, t)) = self.cfg.aliases.exact.iter().find(|(a, _)| *a == base) {
                return expand(t);
            }
        }
        let domain_is_local = self.local_domains.iter().any(|d| d == domain);
        if envelope || domain_is_local {
            if let Some(u) = self.user(base_local).filter(|u| !u.contains('@')) {
                return vec![u];
            }
        }
        if let Some((_, t)) = self.cfg.aliases.catch_all.iter().find(|(d, _)| d == domain) {
            return expand(t);
        }
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SES: &[u8] = b"Return-Path: <bob@sender.example>\r\n\
Received: from mail.sender.example (mail.sender.example [192.0.2.1])\r\n by inbound-smtp.eu-west-1.amazonaws.com with SMTP id abc123\r\n for alice@example.org;\r\n Mon, 23 Nov 2026 09:00:00 +0000 (UTC)\r\n\
X-SES-Spam-Verdict: FAIL\r\n\
X-SES-Virus-Verdict: PASS\r\n\
Received: from internal by mail.sender.example for <carol@example.org>; Mon, 23 Nov 2026\r\n\
From: Bob <bob@sender.example>\r\n\
To: \"Alice, A.\" <alice@example.org>, dave@example.org (Dave), eve@elsewhere.example\r\n\
Cc: undisclosed-recipients:;\r\n\
X-SES-Spam-Verdict: PASS\r\n\
\r\n\
X-Not-A-Header: for mallory@example.org\r\n";

    fn users() -> Vec<String> {
        vec![
            "alice".into(),
            "dave".into(),
            "postmaster".into(),
            "frank@other.example".into(),
        ]
    }

    fn cfg() -> RouteConfig {
        RouteConfig {
            postmaster: Some("postmaster".into()),
            ..Default::default()
        }
    }

    #[test]
    fn unfolds_and_stops_at_body_crlf_and_lf() {
        for data in [
            SES.to_vec(),
            String::from_utf8_lossy(SES)
                .replace("\r\n", "\n")
                .into_bytes(),
        ] {
            let h = Headers::parse(&data);
            assert_eq!(h.all("received").count(), 2);
            assert!(h
                .first("Received")
                .unwrap()
                .contains("for alice@example.org; Mon"));
            assert!(h.first("X-Not-A-Header").is_none());
        }
    }

    #[test]
    fn envelope_for_clause_wins_over_to() {
        let h = Headers::parse(SES);
        let r = route(&cfg(), &users(), "inbound/x", &h).unwrap();
        assert_eq!(r.users, vec!["alice"]);
        assert_eq!(r.reason, RouteReason::Envelope);
    }

    #[test]
    fn received_for_forms() {
        assert_eq!(
            received_for("from a by b for <X@Example.ORG>; Mon").as_deref(),
            Some("x@example.org")
        );
        assert_eq!(received_for("from a by b with SMTP id 1; Mon"), None);
        assert_eq!(received_for("for"), None);
        assert_eq!(received_for(""), None);
    }

    #[test]
    fn to_cc_fallback_gives_one_copy_per_local_recipient() {
        let data = b"Received: from x by inbound-smtp.us-east-1.amazonaws.com with SMTP id 1; Mon\r\n\
To: alice@example.org, \"Dave\" <dave@example.org>\r\nCc: alice@example.org, x@gmail.example\r\n\r\n";
        let mut c = cfg();
        c.local_domains = vec!["example.org".into()];
        let r = route(&c, &users(), "k", &Headers::parse(data)).unwrap();
        assert_eq!(r.users, vec!["alice", "dave"]);
        assert_eq!(r.reason, RouteReason::ToCc);
        // Without the domain being local, To: alice@example.org must not match user `alice`.
        let r = route(&cfg(), &users(), "k", &Headers::parse(data)).unwrap();
        assert_eq!(r.reason, RouteReason::Postmaster);
    }

    #[test]
    fn prefix_header_deliver_to_and_aliases() {
        let h = Headers::parse(SES);
        let mut c = cfg();
        c.prefixes = vec![
            ("inbound/".into(), "dave".into()),
            ("inbound/frank/".into(), "frank@other.example".into()),
        ];
        assert_eq!(
            route(&c, &users(), "inbound/frank/1", &h).unwrap().users,
            vec!["frank@other.example"]
        );
        assert_eq!(
            route(&c, &users(), "inbound/1", &h).unwrap().reason,
            RouteReason::Prefix
        );
        let mut c = cfg();
        c.header = Some("X-Mail-To".into());
        let h2 = Headers::parse(b"X-Mail-To: sales@shop.example\r\n\r\n");
        c.aliases = Aliases::parse(
            "# comment\nsales@shop.example: alice, dave\n@catch.example: postmaster\n",
        )
        .unwrap();
        assert_eq!(
            route(&c, &users(), "k", &h2).unwrap().users,
            vec!["alice", "dave"]
        );
        let h3 = Headers::parse(b"To: anything@catch.example\r\n\r\n");
        assert_eq!(
            route(&c, &users(), "k", &h3).unwrap().users,
            vec!["postmaster"]
        );
        let mut c = cfg();
        c.deliver_to = Some("alice".into());
        assert_eq!(
            route(&c, &users(), "k", &h3).unwrap().reason,
            RouteReason::DeliverTo
        );
        c.deliver_to = Some("nobody".into());
        assert!(route(&c, &users(), "k", &h3).is_err());
    }

    #[test]
    fn subaddress_and_postmaster_and_no_postmaster() {
        let h = Headers::parse(
            b"Received: by inbound-smtp.amazonaws.com for alice+news@example.org; x\r\n\r\n",
        );
        assert_eq!(
            route(&cfg(), &users(), "k", &h).unwrap().users,
            vec!["alice"]
        );
        let h = Headers::parse(b"Subject: nothing\r\n\r\n");
        let r = route(&cfg(), &users(), "k", &h).unwrap();
        assert_eq!(
            (r.users, r.reason),
            (vec!["postmaster".to_string()], RouteReason::Postmaster)
        );
        assert!(route(&RouteConfig::default(), &users(), "k", &h).is_err());
    }

    #[test]
    fn verdicts_use_topmost_field() {
        let v = Verdicts::of(&Headers::parse(SES));
        assert!(v.spam && !v.virus);
        let v = Verdicts::of(&Headers::parse(
            b"X-SES-Spam-Verdict: PASS\r\nX-SES-Spam-Verdict: FAIL\r\n\r\n",
        ));
        assert!(!v.spam);
    }

    #[test]
    fn aliases_errors_name_the_line() {
        assert!(Aliases::parse("ok@x.example: a\nbroken line\n")
            .unwrap_err()
            .contains("line 2"));
        assert!(Aliases::parse("a@x.example:\n").is_err());
        assert!(Aliases::parse("@: a\n").is_err());
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(seed % 200) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet = b"<>@,;:\"()\\ \r\nForTo: \xff";
                buf.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let h = Headers::parse(&buf);
            let _ = route(&cfg(), &users(), "k", &h);
            let _ = addresses(&String::from_utf8_lossy(&buf));
            let _ = received_for(&String::from_utf8_lossy(&buf));
        }
    }
}
