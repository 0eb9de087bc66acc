//! Tests for the disk side of the Maildir store.
