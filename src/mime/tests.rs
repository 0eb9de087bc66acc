//! Unit tests over hand-written messages (LF and CRLF forms, via `to_crlf`).
