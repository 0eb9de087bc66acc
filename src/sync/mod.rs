//! S3 → Maildir sync (issue 4): SES-delivered objects into the users' Maildirs, exactly once.
