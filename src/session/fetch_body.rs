//! FETCH bodies of big messages straight from the message file, in bounded memory
//! (RFC 3501 §6.4.5 `BODY[]`, `BODY[TEXT]`, `RFC822`, `RFC822.TEXT`, with or without a partial
//! `<offset.length>`; `BODY[HEADER]`, `HEADER.FIELDS`, `ENVELOPE` from the header block only).
//!
//! Owns: deciding which FETCH items a message file can serve without being read whole, and
//! producing those literals piece by piece: the file is read from the first byte asked for (a
//! seek when the file already has CRLF line ends; otherwise bare LFs become CRLF on the fly,
//! as `mime::to_crlf` does for the whole message), NUL bytes become 0x80 as in every FETCH
//! literal, and the pieces go to the session's sink as they are read. Never: holds more than
//! [`HEADER_MAX`] bytes of header plus one [`SINK_CHUNK`] of body per message.
//!
//! Messages up to [`STREAM_FROM`] bytes, a FETCH asking for anything that needs the MIME
//! structure (`BODY`, `BODYSTRUCTURE`, `BODY[1.2]`, `BINARY`), and a header block longer
//! than [`HEADER_MAX`] (or one without the empty line ending it) are read whole as before.

use super::SINK_CHUNK;
use crate::imap::types::{FetchAttr, SectionText};
use crate::store::{MessageFile, StoreError};
use std::io::{Read, Seek, SeekFrom};

/// Messages larger than this (bytes on disk) are served from the file when the FETCH allows.
pub(super) const STREAM_FROM: u64 = 256 * 1024;

/// Most header bytes read to find the end of the header block.
pub(super) const HEADER_MAX: usize = 256 * 1024;

/// What a FETCH needs of each message's bytes; the variants are in increasing order, so the
/// needs of several items combine with `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Need {
    /// Flags, sizes, dates only: the file is not opened.
    Nothing,
    /// The header block and/or whole-message or TEXT literals: a [`BodyFile`] can serve it.
    Streamable,
    /// The MIME structure: the message is read whole.
    Whole,
}

pub(super) fn need(items: &[FetchAttr]) -> Need {
    let mut need = Need::Nothing;
    for a in items {
        let n = match a {
            FetchAttr::Flags
            | FetchAttr::InternalDate
            | FetchAttr::Rfc822Size
            | FetchAttr::Uid
            | FetchAttr::ModSeq
            | FetchAttr::SaveDate => Need::Nothing,
            FetchAttr::Envelope
            | FetchAttr::Rfc822
            | FetchAttr::Rfc822Header
            | FetchAttr::Rfc822Text => Need::Streamable,
            // RFC 3516: BINARY[] of a message without parts to decode is its bytes, as
            // BODY[] (NUL kept); `fetch` reads one with such parts whole.
            FetchAttr::Binary { part, .. } | FetchAttr::BinarySize { part } if part.is_empty() => {
                Need::Streamable
            }
            FetchAttr::BodySection { section, .. } if section.part.is_empty() => {
                match section.text {
                    Some(SectionText::Mime) => Need::Whole,
                    _ => Need::Streamable,
                }
            }
            _ => Need::Whole,
        };
        need = need.max(n);
    }
    need
}

/// A big message opened for FETCH: its header block in memory (CRLF line ends), the rest
/// read from the file on demand. Offsets and lengths are in CRLF form, as FETCH counts them.
pub(super) struct BodyFile {
    file: MessageFile,
    /// The header block up to and including its empty line, CRLF line ends.
    pub header: Vec<u8>,
    /// Where the body starts in the file.
    body_raw: u64,
    /// The file has no bare LF: CRLF offsets are file offsets.
    clean: bool,
}

impl BodyFile {
    /// Open `file` for streaming, or `Err(its bytes)` when it is read whole instead (small,
    /// or no header block within [`HEADER_MAX`]).
    pub fn new(mut file: MessageFile) -> Result<Result<BodyFile, Vec<u8>>, StoreError> {
        let io = |e| StoreError::Io("reading the message".into(), e);
        if file.len <= STREAM_FROM {
            let mut all = Vec::new();
            file.file.read_to_end(&mut all).map_err(io)?;
            return Ok(Err(all));
        }
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let found = loop {
            let n = read_some(&file.file, &mut buf)?;
            raw.extend_from_slice(buf.get(..n).unwrap_or_default());
            let conv = crate::mime::to_crlf(&raw);
            let (_, body, ended) = crate::mime::parse::parse_header_ext(&conv, 0);
            if ended {
                break Some(conv.get(..body).unwrap_or_default().to_vec());
            }
            if n == 0 || raw.len() >= HEADER_MAX {
                break None;
            }
        };
        let Some(header) = found else {
            // No end of the header in reach: the whole message, as before.
            let mut all = Vec::new();
            file.file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.file.read_to_end(&mut all).map_err(io)?;
            return Ok(Err(all));
        };
        let body_raw = header_raw_len(&raw, header.len());
        let clean = file.vsize == file.len;
        Ok(Ok(BodyFile {
            file,
            header,
            body_raw,
            clean,
        }))
    }

    /// The whole message file, read now: `BINARY[]` of a message with MIME parts to decode
    /// ([`crate::mime::binary::verbatim`] is false for its header) needs its structure.
    pub fn read_whole(mut self) -> Result<Vec<u8>, StoreError> {
        let io = |e| StoreError::Io("reading the message".into(), e);
        let mut all = Vec::new();
        self.file.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.file.read_to_end(&mut all).map_err(io)?;
        Ok(all)
    }

    /// RFC822.SIZE.
    pub fn size(&self) -> u64 {
        self.file.vsize
    }

    /// Does `[start, start + len)` hold a NUL byte (BINARY then needs a literal8)?
    pub fn contains_nul(&self, start: u64, len: u64) -> Result<bool, StoreError> {
        let mut nul = false;
        self.write_range(start, len, false, &mut |piece| {
            nul = piece.contains(&0);
            !nul
        })?;
        Ok(nul)
    }

    /// Write the bytes `[start, start + len)` of the message (CRLF form; NUL as 0x80 when
    /// `nul_80`) to `emit` in pieces of at most [`SINK_CHUNK`]; `emit` returns false to stop
    /// (the client is gone). The caller has clamped the range to [`BodyFile::size`].
    pub fn write_range(
        &self,
        start: u64,
        len: u64,
        nul_80: bool,
        emit: &mut dyn FnMut(Vec<u8>) -> bool,
    ) -> Result<bool, StoreError> {
        let mut left = len;
        let mut pos = start;
        let hdr_len = self.header.len() as u64;
        if pos < hdr_len && left > 0 {
            let n = left.min(hdr_len - pos);
            let mut piece = self.header[pos as usize..(pos + n) as usize].to_vec();
            if nul_80 {
                nul_to_0x80(&mut piece);
            }
            if !emit(piece) {
                return Ok(false);
            }
            pos += n;
            left -= n;
        }
        if left == 0 {
            return Ok(true);
        }
        // From here on, pos >= hdr_len: inside the body.
        let skip = pos - hdr_len;
        let mut f = &self.file.file;
        let mut conv = Crlf::default();
        let io = |e| StoreError::Io("reading the message".into(), e);
        if self.clean {
            f.seek(SeekFrom::Start(self.body_raw + skip)).map_err(io)?;
        } else {
            f.seek(SeekFrom::Start(self.body_raw)).map_err(io)?;
            conv.skip = skip;
        }
        let mut raw = vec![0u8; SINK_CHUNK / 2];
        let mut piece = Vec::with_capacity(SINK_CHUNK);
        while left > 0 {
            let n = read_some(&mut f, &mut raw)?;
            if n == 0 {
                return Err(StoreError::Io(
                    "reading the message".into(),
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the message file is shorter than its size",
                    ),
                ));
            }
            let data = raw.get(..n).unwrap_or_default();
            let before = piece.len();
            if self.clean {
                piece.extend_from_slice(data);
            } else {
                conv.convert(data, &mut piece);
            }
            let added = ((piece.len() - before) as u64).min(left);
            piece.truncate(before + added as usize);
            left -= added;
            if piece.len() >= SINK_CHUNK / 2 || left == 0 {
                if nul_80 {
                    nul_to_0x80(&mut piece);
                }
                let full = std::mem::replace(&mut piece, Vec::with_capacity(SINK_CHUNK));
                if !emit(full) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// How many bytes of `raw` make up the first `converted` bytes of its CRLF form.
fn header_raw_len(raw: &[u8], converted: usize) -> u64 {
    let mut out = 0usize;
    let mut prev = 0u8;
    for (i, &b) in raw.iter().enumerate() {
        out += if b == b'\n' && prev != b'\r' { 2 } else { 1 };
        prev = b;
        if out >= converted {
            return i as u64 + 1;
        }
    }
    raw.len() as u64
}

fn read_some(mut f: impl Read, buf: &mut [u8]) -> Result<usize, StoreError> {
    loop {
        match f.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::Io("reading the message".into(), e)),
        }
    }
}

/// A literal may not carry NUL (RFC 3501 §4.3): like Dovecot, 0x80 in its place.
pub(super) fn nul_to_0x80(data: &mut [u8]) {
    for b in data {
        if *b == 0 {
            *b = 0x80;
        }
    }
}

/// Bare LF → CRLF over a stream, dropping the first `skip` converted bytes.
#[derive(Default)]
struct Crlf {
    /// The last byte seen. The body starts after the header's final LF, so "not CR".
    prev_cr: bool,
    skip: u64,
}

impl Crlf {
    fn convert(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if b == b'\n' && !self.prev_cr {
                self.put(b'\r', out);
            }
            self.put(b, out);
            self.prev_cr = b == b'\r';
        }
    }

    fn put(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.skip > 0 {
            self.skip -= 1;
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_raw_len_counts_added_crs() {
        assert_eq!(header_raw_len(b"a\nb\n\nbody", 7), 5);
        assert_eq!(header_raw_len(b"a\r\nb\r\n\r\nbody", 8), 8);
        assert_eq!(header_raw_len(b"a\r\nb\n\nbody", 8), 6);
    }

    /// A message file of `raw` bytes, with the sizes a W= name would give.
    fn body_file(tag: &str, raw: &[u8]) -> BodyFile {
        let path = crate::store::maildir::test_dir(tag).join("msg");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, raw).unwrap();
        let file = MessageFile {
            file: std::fs::File::open(&path).unwrap(),
            len: raw.len() as u64,
            vsize: crate::store::maildir::filename::vsize(raw),
        };
        match BodyFile::new(file).unwrap() {
            Ok(b) => b,
            Err(_) => panic!("{tag}: read whole instead of streamed"),
        }
    }

    #[test]
    fn every_range_is_byte_exact_for_crlf_and_lf_files() {
        let line = |i: usize, eol: &str| format!("line {i} {}{eol}", "x".repeat(i % 70));
        for eol in ["\r\n", "\n"] {
            let mut raw = format!("Subject: s{eol}X: y{eol}{eol}").into_bytes();
            let mut i = 0;
            while raw.len() <= STREAM_FROM as usize * 2 {
                raw.extend_from_slice(line(i, eol).as_bytes());
                if i % 1000 == 0 {
                    raw.push(0);
                }
                i += 1;
            }
            let b = body_file(if eol == "\n" { "lf" } else { "crlf" }, &raw);
            let mut want = crate::mime::to_crlf(&raw).into_owned();
            nul_to_0x80(&mut want);
            assert_eq!(b.size(), want.len() as u64);
            assert_eq!(b.header, b"Subject: s\r\nX: y\r\n\r\n");
            let size = want.len() as u64;
            for (start, len) in [
                (0, size),
                (0, 10),
                (5, 30),
                (23, 1),
                (24, 100_000),
                (size / 2 + 1, 65_536),
                (size - 3, 3),
                (size, 0),
            ] {
                let mut got = Vec::new();
                let done = b
                    .write_range(start, len, true, &mut |p| {
                        assert!(p.len() <= STREAM_FROM as usize);
                        got.extend_from_slice(&p);
                        true
                    })
                    .unwrap();
                assert!(done);
                let (s, e) = (start as usize, (start + len) as usize);
                assert!(got == want[s..e], "{eol:?} {start}+{len}");
                let nul = crate::mime::to_crlf(&raw)[s..e].contains(&0);
                assert_eq!(b.contains_nul(start, len).unwrap(), nul);
            }
        }
    }

    #[test]
    fn crlf_conversion_with_skip_matches_to_crlf() {
        let raw = b"x\ny\r\nz\r\r\n\n\n\0end\n".repeat(7);
        let whole = crate::mime::to_crlf(&raw).into_owned();
        for skip in [0u64, 1, 2, 5, 17, whole.len() as u64 - 1] {
            for chunk in [1, 2, 3, 64] {
                let mut c = Crlf {
                    skip,
                    ..Crlf::default()
                };
                let mut out = Vec::new();
                for piece in raw.chunks(chunk) {
                    c.convert(piece, &mut out);
                }
                assert_eq!(out, whole[skip as usize..], "skip {skip} chunk {chunk}");
            }
        }
    }
}
