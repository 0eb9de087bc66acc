//! Backups of the mail store to S3 (`pimap backup` / `pimap restore`).
pub mod crypt;
