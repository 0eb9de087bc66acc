//! IMAP semantics over the store and auth.
