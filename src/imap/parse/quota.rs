//! QUOTA commands (RFC 9208 §4.2–4.4):
//!
//! ```text
//! getquotaroot       = "GETQUOTAROOT" SP mailbox
//! getquota           = "GETQUOTA" SP quota-root-name
//! setquota           = "SETQUOTA" SP quota-root-name SP setquota-list
//! quota-root-name    = astring
//! setquota-list      = "(" [setquota-resource *(SP setquota-resource)] ")"
//! setquota-resource  = resource-name SP resource-limit
//! resource-limit     = number64
//! ```

use super::lexer::{Cursor, PResult};
use crate::imap::types::Command;

/// The most resources one SETQUOTA may name (RFC 9208 defines four; the rest is noise).
const MAX_RESOURCES: usize = 16;

pub(super) fn getquotaroot(c: &mut Cursor) -> PResult<Command> {
    c.sp("before the mailbox name")?;
    Ok(Command::GetQuotaRoot {
        mailbox: c.mailbox()?,
    })
}

pub(super) fn getquota(c: &mut Cursor) -> PResult<Command> {
    c.sp("before the quota root name")?;
    Ok(Command::GetQuota {
        root: c.astring_utf8("quota root name")?,
    })
}

pub(super) fn setquota(c: &mut Cursor) -> PResult<Command> {
    c.sp("before the quota root name")?;
    let root = c.astring_utf8("quota root name")?;
    c.sp("before the resource limits")?;
    c.expect(b'(', "'(' starting the resource limits")?;
    let mut limits = Vec::new();
    if !c.eat(b')') {
        loop {
            let name = c.atom("resource name")?;
            c.sp("between the resource name and its limit")?;
            let limit = c.mod_seq("resource limit")?;
            if limits.len() == MAX_RESOURCES {
                return Err(format!(
                    "Too many resource limits (at most {MAX_RESOURCES})"
                ));
            }
            limits.push((String::from_utf8_lossy(name).to_ascii_uppercase(), limit));
            if c.eat(b')') {
                break;
            }
            c.sp("between resource limits")?;
        }
    }
    Ok(Command::SetQuota { root, limits })
}
