//! Dovecot quota rules from a user's passwd-file extra fields (`userdb_quota_rule=*:storage=1G`,
//! `userdb_quota_rule2=Trash:storage=+100M`, ...), as Dovecot 2.3's quota plugin reads them.
//!
//! Owns: turning those fields into [`QuotaRules`] and answering "what may be saved into this
//! mailbox". Pure (no I/O). What is supported is what Dovecot's `count` backend does with one
//! quota root: a default rule (`*`, or `?`, which is the same here since pimap has no backend
//! limits) with `storage=` (KiB unless a unit is given), `bytes=` and `messages=`; per-mailbox
//! rules (a mask with `*`/`?` wildcards) that add to the default (`+100M`, `-10`, `+10%`) or
//! take the mailbox out of the quota (`ignore`). Refused with a clear reason: `backend=` rules
//! (Dovecot's Maildir++/dict backends), unknown limit names and units, negative or percentage
//! default limits, numbers that overflow, and a numbered rule after a gap (`quota_rule3`
//! without `quota_rule2`), which Dovecot would silently ignore.

/// The quota root's name: what Dovecot's example configuration (and the tests' Dovecot)
/// calls it; clients show it to users.
pub const ROOT_NAME: &str = "User quota";

/// Limits in bytes and messages; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub bytes: u64,
    pub messages: u64,
}

impl Limits {
    /// Would `used` plus `add_bytes` in `add_messages` more messages break a limit? The test
    /// Dovecot makes: a message fits when the total stays at or under the limit.
    pub fn exceeded(&self, used: Usage, add_bytes: u64, add_messages: u64) -> bool {
        let over = |limit: u64, used: u64, add: u64| limit > 0 && used.saturating_add(add) > limit;
        over(self.bytes, used.bytes, add_bytes) || over(self.messages, used.messages, add_messages)
    }
}

impl Limits {
    /// Would a delivery of one message of `bytes` bytes break a limit? As Dovecot's LDA/LMTP
    /// decide: refused when already at or over the byte limit, else allowed up to `grace`
    /// bytes past it (`quota_grace`, by default 10% of the root's limit), so the last mail
    /// that brings a user over is not bounced for a few bytes; no grace for the message count.
    pub fn refuses_delivery(&self, used: Usage, bytes: u64, grace: u64) -> bool {
        let count_over = self.messages > 0 && used.messages.saturating_add(1) > self.messages;
        let bytes_over = self.bytes > 0
            && (used.bytes >= self.bytes
                || bytes > (self.bytes - used.bytes).saturating_add(grace));
        count_over || bytes_over
    }
}

/// What a user's mailboxes hold: the sum of their messages' sizes (RFC822.SIZE, the size
/// Dovecot's count backend counts with `quota_vsizes = yes`) and their number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

/// One limit of a per-mailbox rule, relative to the default's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Delta {
    #[default]
    None,
    By(i64),
    Percent(i64),
}

impl Delta {
    fn apply(self, base: u64) -> u64 {
        let base = i128::from(base);
        let total = match self {
            Delta::None => base,
            Delta::By(n) => base + i128::from(n),
            Delta::Percent(p) => base + base * i128::from(p) / 100,
        };
        // Dovecot: a sum at or below zero is no limit.
        u64::try_from(total.max(0)).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MailboxRule {
    mask: String,
    ignore: bool,
    bytes: Delta,
    messages: Delta,
}

/// A user's quota rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaRules {
    default: Limits,
    mailboxes: Vec<MailboxRule>,
}

impl QuotaRules {
    /// The user's rules from the extra fields (`quota_rule`, `quota_rule2`, ..., each with or
    /// without the `userdb_` prefix); `Ok(None)` if there are none.
    pub fn from_extra(extra: &[(String, String)]) -> Result<Option<QuotaRules>, String> {
        let mut numbered: Vec<(u32, &str)> = Vec::new();
        for (k, v) in extra {
            let key = k.strip_prefix("userdb_").unwrap_or(k);
            let Some(n) = key.strip_prefix("quota_rule") else {
                continue;
            };
            let index = match n {
                "" => 1,
                _ => match n.parse::<u32>() {
                    Ok(i) if i >= 2 && !n.starts_with('0') => i,
                    _ => {
                        return Err(format!(
                            "{k:?} is not a quota rule name (quota_rule, quota_rule2, ...)"
                        ))
                    }
                },
            };
            numbered.retain(|(i, _)| *i != index);
            numbered.push((index, v));
        }
        if numbered.is_empty() {
            return Ok(None);
        }
        numbered.sort_by_key(|(i, _)| *i);
        let mut rules = QuotaRules::default();
        for (pos, (index, value)) in numbered.iter().enumerate() {
            if *index as usize != pos + 1 {
                return Err(format!(
                    "quota_rule{index} without quota_rule{} (Dovecot ignores the rules after a gap)",
                    if pos == 0 { String::new() } else { (pos + 1).to_string() }
                ));
            }
            rules
                .add(value)
                .map_err(|e| format!("quota rule {value:?}: {e}"))?;
        }
        Ok(Some(rules))
    }

    /// One rule: `<mailbox mask>:<limit>[:<limit>...]` or `<mask>:ignore`.
    fn add(&mut self, rule: &str) -> Result<(), String> {
        let (mask, limits) = rule
            .split_once(':')
            .ok_or("expected <mailbox>:<limits>, e.g. *:storage=1G")?;
        if mask.is_empty() {
            return Err("no mailbox before ':' (use * for all mailboxes)".into());
        }
        if limits.starts_with("backend=") {
            return Err("backend= rules are not supported (count backend only)".into());
        }
        if mask == "*" || mask == "?" {
            if limits == "ignore" {
                return Err("the default rule cannot be ignore".into());
            }
            return self.add_default(limits);
        }
        let mask = if mask.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            mask
        };
        let idx = match self.mailboxes.iter().position(|r| r.mask == mask) {
            Some(i) => i,
            None => {
                self.mailboxes.push(MailboxRule {
                    mask: mask.to_string(),
                    ignore: false,
                    bytes: Delta::None,
                    messages: Delta::None,
                });
                self.mailboxes.len() - 1
            }
        };
        let Some(r) = self.mailboxes.get_mut(idx) else {
            return Ok(());
        };
        if limits == "ignore" {
            r.ignore = true;
            return Ok(());
        }
        for item in limits.split(':') {
            let (what, value) = limit_item(item)?;
            let value = value.strip_prefix('+').unwrap_or(value);
            let delta = match parse_amount(value, what)? {
                Amount::Value(n) => Delta::By(n),
                Amount::Percent(p) => Delta::Percent(p),
            };
            match what {
                What::Messages => r.messages = delta,
                What::Storage | What::Bytes => r.bytes = delta,
            }
        }
        Ok(())
    }

    fn add_default(&mut self, limits: &str) -> Result<(), String> {
        for item in limits.split(':') {
            let (what, value) = limit_item(item)?;
            if value.starts_with('+') {
                return Err("the default rule's limits cannot have '+'".into());
            }
            let n = match parse_amount(value, what)? {
                Amount::Value(n) => u64::try_from(n).map_err(|_| "a limit cannot be negative")?,
                Amount::Percent(_) => return Err("the default rule cannot be a percentage".into()),
            };
            match what {
                What::Messages => self.default.messages = n,
                What::Storage | What::Bytes => self.default.bytes = n,
            }
        }
        Ok(())
    }

    /// Dovecot's default `quota_grace` (10% of the root's byte limit): how far one delivery
    /// may take the user past it.
    pub fn grace(&self) -> u64 {
        self.default.bytes / 10
    }

    /// The quota root's limits (what GETQUOTA shows).
    pub fn root_limits(&self) -> Limits {
        self.default
    }

    /// Any limit at all? (A user with none has no quota root: Dovecot's "No quota".)
    pub fn is_limited(&self) -> bool {
        self.default != Limits::default()
            || self
                .mailboxes
                .iter()
                .any(|r| !r.ignore && (r.bytes != Delta::None || r.messages != Delta::None))
    }

    /// Is `mailbox` (its IMAP name) out of the quota (`<mask>:ignore`)? Its messages are not
    /// counted and saving into it is never refused.
    pub fn ignored(&self, mailbox: &str) -> bool {
        self.rule_for(mailbox).is_some_and(|r| r.ignore)
    }

    /// The limits that apply when saving into `mailbox`: the default plus the first matching
    /// mailbox rule's additions; `None` if the mailbox is ignored.
    pub fn limits_for(&self, mailbox: &str) -> Option<Limits> {
        match self.rule_for(mailbox) {
            None => Some(self.default),
            Some(r) if r.ignore => None,
            Some(r) => Some(Limits {
                bytes: r.bytes.apply(self.default.bytes),
                messages: r.messages.apply(self.default.messages),
            }),
        }
    }

    fn rule_for(&self, mailbox: &str) -> Option<&MailboxRule> {
        self.mailboxes
            .iter()
            .find(|r| wildcard_match(mailbox.as_bytes(), r.mask.as_bytes()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    /// KiB without a unit.
    Storage,
    Bytes,
    Messages,
}

fn limit_item(item: &str) -> Result<(What, &str), String> {
    let (key, value) = item
        .split_once('=')
        .ok_or_else(|| format!("{item:?} is not <name>=<value>"))?;
    let what = match key {
        "storage" => What::Storage,
        "bytes" => What::Bytes,
        "messages" => What::Messages,
        _ => {
            return Err(format!(
                "unknown limit {key:?} (storage, bytes or messages)"
            ))
        }
    };
    Ok((what, value))
}

enum Amount {
    Value(i64),
    Percent(i64),
}

/// `[-]digits[unit]`: units b, k, M, G, T (case-insensitive, an optional `B` after k..T),
/// `%` (or `%%`, as written where `%` must be escaped).
fn parse_amount(value: &str, what: What) -> Result<Amount, String> {
    let (neg, rest) = match value.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, value),
    };
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, unit) = rest.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("{value:?} is not a number"));
    }
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{value:?} is too large"))?;
    let n = if neg { -n } else { n };
    if unit == "%" || unit == "%%" {
        return Ok(Amount::Percent(n));
    }
    let unit = unit.to_ascii_lowercase();
    let unit = match unit.as_str() {
        "kb" | "mb" | "gb" | "tb" => &unit[..1],
        u => u,
    };
    let multiply: i64 = match unit {
        "" if what == What::Storage => 1024,
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("unknown unit in {value:?} (b, k, M, G, T or %)")),
    };
    n.checked_mul(multiply)
        .map(Amount::Value)
        .ok_or_else(|| format!("{value:?} is too large"))
}

/// Dovecot's `wildcard_match`: `*` any run of characters, `?` one character, case-sensitive.
fn wildcard_match(name: &[u8], mask: &[u8]) -> bool {
    let (mut n, mut m) = (0usize, 0usize);
    // Where the last `*` was, and the name position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match mask.get(m) {
            Some(b'*') => {
                star = Some((m, n));
                m += 1;
            }
            Some(&c) if c == b'?' || name.get(n) == Some(&c) => {
                n += 1;
                m += 1;
            }
            _ => match star {
                Some((sm, sn)) => {
                    m = sm + 1;
                    n = sn + 1;
                    star = Some((sm, sn + 1));
                }
                None => return false,
            },
        }
    }
    mask.get(m..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests;
