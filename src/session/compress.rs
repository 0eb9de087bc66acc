//! COMPRESS (RFC 4978): the command's semantics. The session only decides and answers;
//! `net::compress` deflates the bytes and `net::conn` switches the stream after writing the
//! tagged OK (`Action::Compress`).
//!
//! - Valid once authenticated (§5: `command-auth`), in the selected state too.
//! - `DEFLATE` (case-insensitive, RFC 3501 §9 atoms) is the only mechanism (§3, §5); any other
//!   name is `BAD`, as §3 lists "invalid or unknown argument" under BAD.
//! - A second COMPRESS gets `NO [COMPRESSIONACTIVE]` (§3), and COMPRESS=DEFLATE is no longer
//!   advertised (see `Session::capabilities`).

use super::{Action, HandlerError, Output, Session};

impl Session {
    pub(super) fn compress(&mut self, tag: &str, mechanism: &str) -> Result<Output, HandlerError> {
        if self.compressed {
            return Err(HandlerError::No(
                "[COMPRESSIONACTIVE] DEFLATE compression is already active.".into(),
            ));
        }
        if !mechanism.eq_ignore_ascii_case("DEFLATE") {
            return Err(HandlerError::Bad(format!(
                "Unknown compression mechanism {mechanism:?}; only DEFLATE is supported."
            )));
        }
        self.compressed = true;
        log::debug!("{}: COMPRESS DEFLATE active", self.peer);
        Ok(Output {
            bytes: format!("{tag} OK DEFLATE active.\r\n").into_bytes(),
            action: Action::Compress,
        })
    }

    /// COMPRESS DEFLATE is active on this connection.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }
}

#[cfg(test)]
mod tests {
    use crate::imap::parse::parse_command;
    use crate::imap::types::Command;

    #[test]
    fn parses_compress_with_any_atom_and_rejects_malformed_lines() {
        // RFC 4978 §5: compress = "COMPRESS" SP algorithm; keywords are case-insensitive.
        for (line, mech) in [
            ("a COMPRESS DEFLATE\r\n", "DEFLATE"),
            ("b compress deflate\r\n", "deflate"),
            ("c COMPRESS LZW\r\n", "LZW"),
        ] {
            let cmd = parse_command(line.as_bytes()).unwrap().command;
            assert_eq!(
                cmd,
                Command::Compress {
                    mechanism: mech.into()
                }
            );
            assert_eq!(cmd.name(), "COMPRESS");
        }
        for bad in [
            "a COMPRESS\r\n",
            "a COMPRESS \r\n",
            "a COMPRESS DEFLATE X\r\n",
            "a COMPRESS \"DEFLATE\"\r\n",
        ] {
            let e = parse_command(bad.as_bytes()).unwrap_err();
            assert_eq!(e.tag.as_deref(), Some("a"), "{bad}");
        }
    }
}
