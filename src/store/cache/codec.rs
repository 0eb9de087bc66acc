//! The `pimap-cache` file format: pure functions over bytes, no I/O.
//!
//! ```text
//! file    = MAGIC *record
//! record  = len:u32le payload:len-bytes check:u32le   ; check = Adler-32 of len ++ payload
//! payload = %x01 base size:u64le meta                 ; put
//!         / %x02 base                                 ; forget
//! base    = n:u16le n-bytes                           ; the message file's base name
//! meta    = vsize:u64le envelope body bodystructure header preview
//! field   = n:u32le n-bytes                           ; header: n = 0xffffffff means absent
//! ```
//!
//! Version 2 (`PIMAPC02`) added `preview`; a file of another version is rebuilt.
//!
//! A record is only ever appended whole by one `write`; a torn write leaves a short or
//! mis-checksummed record at the end, which [`decode`] reports instead of guessing.

/// The file's first bytes (format version in the last two).
pub const MAGIC: &[u8; 8] = b"PIMAPC02";

/// What every version's [`MAGIC`] starts with: a file with another version is not damaged,
/// only older (or newer).
pub const MAGIC_FAMILY: &[u8; 6] = b"PIMAPC";

/// Largest payload accepted or written: a message whose metadata is bigger is not cached.
pub const MAX_RECORD: usize = 256 * 1024;

const PUT: u8 = 1;
const FORGET: u8 = 2;
const ABSENT: u32 = u32::MAX;

/// What the cache keeps of one message, every answer already encoded as FETCH sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// RFC822.SIZE: the message's size with CRLF line ends.
    pub vsize: u64,
    /// The ENVELOPE value (`(date subject ...)`).
    pub envelope: Vec<u8>,
    /// The BODY value (non-extensible BODYSTRUCTURE).
    pub body: Vec<u8>,
    /// The BODYSTRUCTURE value.
    pub bodystructure: Vec<u8>,
    /// The header block with CRLF line ends, up to and including its empty line; `None` when
    /// too big to keep or when the message has no empty line ending it.
    pub header: Option<Vec<u8>>,
    /// The RFC 8970 PREVIEW text (UTF-8, see `mime::preview`).
    pub preview: Vec<u8>,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Put { base: String, size: u64, meta: Meta },
    Forget { base: String },
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bad {
    /// The bytes end inside the record (a torn write at the end of the file).
    Short,
    /// Length out of bounds, checksum mismatch, or a payload that does not parse.
    Corrupt(&'static str),
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut a = adler2::Adler32::new();
    a.write_slice(len);
    a.write_slice(payload);
    a.checksum()
}

fn put_bytes32(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Append `rec` framed and checksummed to `out`; false (nothing appended) when its payload
/// would exceed [`MAX_RECORD`] or the base name 64 KiB.
pub fn encode(rec: &Record, out: &mut Vec<u8>) -> bool {
    let mut p = Vec::new();
    let base = match rec {
        Record::Put { base, .. } => {
            p.push(PUT);
            base
        }
        Record::Forget { base } => {
            p.push(FORGET);
            base
        }
    };
    let Ok(blen) = u16::try_from(base.len()) else {
        return false;
    };
    p.extend_from_slice(&blen.to_le_bytes());
    p.extend_from_slice(base.as_bytes());
    if let Record::Put { size, meta, .. } = rec {
        let total = meta.envelope.len()
            + meta.body.len()
            + meta.bodystructure.len()
            + meta.header.as_ref().map_or(0, Vec::len)
            + meta.preview.len();
        if total > MAX_RECORD {
            return false;
        }
        p.extend_from_slice(&size.to_le_bytes());
        p.extend_from_slice(&meta.vsize.to_le_bytes());
        put_bytes32(&mut p, &meta.envelope);
        put_bytes32(&mut p, &meta.body);
        put_bytes32(&mut p, &meta.bodystructure);
        match &meta.header {
            Some(h) => put_bytes32(&mut p, h),
            None => p.extend_from_slice(&ABSENT.to_le_bytes()),
        }
        put_bytes32(&mut p, &meta.preview);
    }
    if p.len() > MAX_RECORD {
        return false;
    }
    let len = (p.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&p);
    out.extend_from_slice(&checksum(&len, &p).to_le_bytes());
    true
}

/// The record at the start of `buf` and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<(Record, usize), Bad> {
    let len_b = buf.get(..4).ok_or(Bad::Short)?;
    let len = u32::from_le_bytes([len_b[0], len_b[1], len_b[2], len_b[3]]) as usize;
    if len == 0 || len > MAX_RECORD {
        return Err(Bad::Corrupt("record length out of bounds"));
    }
    let payload = buf.get(4..4 + len).ok_or(Bad::Short)?;
    let check = buf.get(4 + len..8 + len).ok_or(Bad::Short)?;
    if u32::from_le_bytes([check[0], check[1], check[2], check[3]]) != checksum(len_b, payload) {
        return Err(Bad::Corrupt("checksum mismatch"));
    }
    let rec = parse_payload(payload).ok_or(Bad::Corrupt("malformed record"))?;
    Ok((rec, 8 + len))
}

/// The header block of the put record at the start of `buf`, if that record is for `base`
/// of `size` bytes: where it lies in `buf` (`None` when the record keeps no header block).
/// Checks what [`decode`] checks (the checksum only when `check`: a caller that checked the
/// record when it loaded the file skips it), without copying the other fields: SEARCH reads
/// only this, once per message.
pub fn decode_header(
    buf: &[u8],
    base: &str,
    size: u64,
    check: bool,
) -> Result<Option<std::ops::Range<usize>>, Bad> {
    let len_b = buf.get(..4).ok_or(Bad::Short)?;
    let len = u32::from_le_bytes([len_b[0], len_b[1], len_b[2], len_b[3]]) as usize;
    if len == 0 || len > MAX_RECORD {
        return Err(Bad::Corrupt("record length out of bounds"));
    }
    let payload = buf.get(4..4 + len).ok_or(Bad::Short)?;
    let sum = buf.get(4 + len..8 + len).ok_or(Bad::Short)?;
    if check && u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]) != checksum(len_b, payload) {
        return Err(Bad::Corrupt("checksum mismatch"));
    }
    let bad = Bad::Corrupt("malformed record");
    let mut c = Cur(payload);
    let blen = match c.u8() {
        Some(PUT) => c.u16().ok_or(bad.clone())? as usize,
        _ => return Err(bad),
    };
    if c.take(blen) != Some(base.as_bytes()) || c.u64() != Some(size) {
        return Err(Bad::Corrupt("record for another message"));
    }
    c.u64().ok_or(bad.clone())?;
    for _ in 0..3 {
        let n = c.u32().ok_or(bad.clone())?;
        c.take(n as usize).ok_or(bad.clone())?;
    }
    let header = match c.u32().ok_or(bad.clone())? {
        ABSENT => None,
        n => {
            let at = 4 + payload.len() - c.0.len();
            c.take(n as usize).ok_or(bad.clone())?;
            Some(at..at + n as usize)
        }
    };
    c.bytes32().flatten().ok_or(bad.clone())?;
    if !c.0.is_empty() {
        return Err(bad);
    }
    Ok(header)
}

/// A cursor over a payload; every read is bounds-checked.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn bytes32(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u32()? {
            ABSENT => Some(None),
            n => self.take(n as usize).map(|b| Some(b.to_vec())),
        }
    }
}

fn parse_payload(p: &[u8]) -> Option<Record> {
    let mut c = Cur(p);
    let kind = c.u8()?;
    let blen = c.u16()? as usize;
    let base = std::str::from_utf8(c.take(blen)?).ok()?.to_string();
    let rec = match kind {
        PUT => {
            let size = c.u64()?;
            let vsize = c.u64()?;
            let envelope = c.bytes32()??;
            let body = c.bytes32()??;
            let bodystructure = c.bytes32()??;
            let header = c.bytes32()?;
            let preview = c.bytes32()??;
            Record::Put {
                base,
                size,
                meta: Meta {
                    vsize,
                    envelope,
                    body,
                    bodystructure,
                    header,
                    preview,
                },
            }
        }
        FORGET => Record::Forget { base },
        _ => return None,
    };
    // Trailing bytes: not a record this version wrote.
    c.0.is_empty().then_some(rec)
}
