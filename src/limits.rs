//! Every limit pimap enforces, in one place, with its default and why.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest command line (without literals). Clients send long UID sets; Dovecot allows 64 KiB.
    pub max_line: usize,
    /// Largest message accepted by APPEND (`--max-message-size`, default 64 MiB).
    pub max_message_size: u64,
    /// Largest non-APPEND literal (a search string, a password): 1 MiB is plenty.
    pub max_small_literal: u64,
    /// Autologout after this long without a command (RFC 3501 §5.4: at least 30 minutes).
    pub idle_timeout: Duration,
    /// Time a client has to log in after connecting.
    pub login_timeout: Duration,
    /// Consecutive BAD responses after which the client is disconnected.
    pub max_bad_commands: u32,
    /// Delay before answering a failed login.
    pub failed_login_delay: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 64 * 1024,
            max_message_size: 64 * 1024 * 1024,
            max_small_literal: 1024 * 1024,
            idle_timeout: Duration::from_secs(30 * 60),
            login_timeout: Duration::from_secs(60),
            max_bad_commands: 20,
            failed_login_delay: Duration::from_secs(2),
        }
    }
}
