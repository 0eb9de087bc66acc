//! The PROXY protocol (HAProxy's "PROXY protocol" specification, versions 1 and 2): a load
//! balancer in front of pimap (ingress-nginx, HAProxy, Traefik, an AWS NLB) sends one header
//! before the client's bytes saying who the client really is.
//!
//! Owns: the sans-IO header parser ([`parse`], [`Header`]), the detector for a header sent by a
//! peer that is not trusted to send one ([`looks_like_header`]), the trusted-networks list
//! ([`TrustedNetworks`], Dovecot's `haproxy_trusted_networks`), and the thin I/O shell that
//! reads a header off a new connection with a timeout and a size bound ([`read_header`]) and
//! hands the bytes read past it back ([`Rewind`]).
//!
//! Never: honours a header from a peer outside the trusted networks (the spec, §2: "the
//! receiver MUST be configured to only receive the protocol described in this specification
//! and MUST not try to guess whether the protocol header is present or not"), or reads an
//! unbounded amount while looking for one.
//!
//! The parser takes the bytes received so far and answers [`Parse::Incomplete`] (read more),
//! [`Parse::Done`] with the header and its length, or a [`ProxyError`] naming what is wrong.

use super::conn::Stream;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, FutureExt};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The 12 bytes every version 2 header starts with (spec §2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest version 1 line, CRLF included (spec §2.1: 107 bytes for `TCP6` with the longest
/// addresses).
pub const V1_MAX_LEN: usize = 107;
/// Largest version 2 header pimap accepts: the 16-byte fixed part plus addresses and TLVs
/// (spec §2.2 allows 65535 bytes after the fixed part; real proxies send a few hundred).
pub const V2_MAX_LEN: usize = 16 + 2048;
/// How long a trusted peer has to send its header (Dovecot's `haproxy_timeout` is 3 s).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The starts of a version 1 line pimap recognises (spec §2.1: `TCP4`, `TCP6`, `UNKNOWN`).
const V1_MARKERS: [&[u8]; 3] = [b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN"];

/// Who the proxy says is talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    /// A TCP connection from `source` (the real client) to `destination` (the address the
    /// client connected to, on the proxy).
    Tcp {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v1 `UNKNOWN`, or v2 `PROXY` over a family pimap doesn't map to a client address
    /// (`AF_UNSPEC`, `AF_UNIX`): the spec says to use the connection's own addresses.
    Unknown,
    /// v2 `LOCAL`: the proxy's own connection (a health check); use the socket's addresses.
    Local,
}

/// A parsed PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    pub addresses: Addresses,
}

impl Header {
    /// The real client's address, if the header names one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self.addresses {
            Addresses::Tcp { source, .. } => Some(source),
            Addresses::Unknown | Addresses::Local => None,
        }
    }

    /// The header in version 1 text form (`Local` has no v1 form and becomes `UNKNOWN`).
    /// Mixed address families become `UNKNOWN` too, as v1 cannot express them.
    pub fn to_v1(&self) -> Vec<u8> {
        match self.addresses {
            Addresses::Tcp {
                source,
                destination,
            } if source.is_ipv4() == destination.is_ipv4() => format!(
                "PROXY {} {} {} {} {}\r\n",
                if source.is_ipv4() { "TCP4" } else { "TCP6" },
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes(),
            _ => b"PROXY UNKNOWN\r\n".to_vec(),
        }
    }

    /// The header in version 2 binary form (no TLVs). Mixed address families are sent as
    /// `AF_UNSPEC`.
    pub fn to_v2(&self) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        let (cmd, fam, body): (u8, u8, Vec<u8>) = match self.addresses {
            Addresses::Local => (0x0, 0x00, Vec::new()),
            Addresses::Unknown => (0x1, 0x00, Vec::new()),
            Addresses::Tcp {
                source: SocketAddr::V4(s),
                destination: SocketAddr::V4(d),
            } => {
                let mut b = Vec::with_capacity(12);
                b.extend_from_slice(&s.ip().octets());
                b.extend_from_slice(&d.ip().octets());
                b.extend_from_slice(&s.port().to_be_bytes());
                b.extend_from_slice(&d.port().to_be_bytes());
                (0x1, 0x11, b)
            }
            Addresses::Tcp {
                source: SocketAddr::V6(s),
                destination: SocketAddr::V6(d),
            } => {
                let mut b = Vec::with_capacity(36);
                b.extend_from_slice(&s.ip().octets());
                b.extend_from_slice(&d.ip().octets());
                b.extend_from_slice(&s.port().to_be_bytes());
                b.extend_from_slice(&d.port().to_be_bytes());
                (0x1, 0x21, b)
            }
            Addresses::Tcp { .. } => (0x1, 0x00, Vec::new()),
        };
        out.push(0x20 | cmd);
        out.push(fam);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// A malformed or unsupported header; the text says what is wrong, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError(pub String);

const CLOSED_EARLY: &str = "closed before sending the PROXY header";

impl ProxyError {
    /// The peer connected and closed without a byte: a load balancer's TCP health check,
    /// not worth a warning.
    pub fn is_bare_close(&self) -> bool {
        self.0 == CLOSED_EARLY
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ProxyError> {
    Err(ProxyError(msg.into()))
}

/// The parser's answer for the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A header could still follow: read more bytes.
    Incomplete,
    /// A complete header of `len` bytes; the bytes after it belong to the client.
    Done { header: Header, len: usize },
}

/// Parse a PROXY header (v1 or v2) at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parse, ProxyError> {
    match buf.first() {
        None => Ok(Parse::Incomplete),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => err("no PROXY header (neither v1 \"PROXY \" nor the v2 signature)"),
    }
}

/// The answer to a PROXY header from a peer outside `--proxy-trusted-networks` (spec §2:
/// never honoured), on the plain and the TLS listener alike.
pub const UNTRUSTED_BYE: &[u8] = b"* BYE PROXY protocol header not accepted from this address.\r\n";

/// Does `buf` (the first bytes a client sent, possibly only part of them) start like a PROXY
/// header? Used on connections from peers that are not trusted to send one: such a header is
/// refused, never honoured. A line such as `PROXY CAPABILITY` (an IMAP command with the tag
/// `PROXY`) is not a header.
pub fn looks_like_header(buf: &[u8]) -> bool {
    if buf.is_empty() {
        return false;
    }
    V1_MARKERS
        .iter()
        .copied()
        .chain([&V2_SIGNATURE[..]])
        .any(|m| {
            let n = buf.len().min(m.len());
            buf.get(..n) == m.get(..n)
        })
}

/// Version 1 (spec §2.1): `PROXY TCP4 192.0.2.1 198.51.100.7 56324 993\r\n`, at most 107 bytes.
fn parse_v1(buf: &[u8]) -> Result<Parse, ProxyError> {
    let window = buf.get(..buf.len().min(V1_MAX_LEN)).unwrap_or(buf);
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX_LEN {
            return err(format!(
                "PROXY v1 line has no CRLF within {V1_MAX_LEN} bytes"
            ));
        }
        // Every byte so far must be a possible start of a header line.
        let prefix_ok = buf
            .get(..buf.len().min(6))
            .is_some_and(|p| b"PROXY ".starts_with(p));
        if !prefix_ok || buf.contains(&b'\n') {
            return err("malformed PROXY v1 header");
        }
        return Ok(Parse::Incomplete);
    };
    let line = window.get(..end).unwrap_or_default();
    let line =
        std::str::from_utf8(line).map_err(|_| ProxyError("PROXY v1 line is not ASCII".into()))?;
    if !line.is_ascii() || line.contains('\n') || line.contains('\r') {
        return err("PROXY v1 line is not ASCII");
    }
    let mut fields = line.split(' ');
    if fields.next() != Some("PROXY") {
        return err("PROXY v1 line doesn't start with \"PROXY \"");
    }
    let proto = fields.next().unwrap_or_default();
    let addresses = match proto {
        // The rest of an UNKNOWN line is ignored (spec §2.1).
        "UNKNOWN" => Addresses::Unknown,
        "TCP4" | "TCP6" => {
            let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) else {
                return err(format!(
                    "PROXY v1 {proto} line needs exactly: source destination sport dport"
                ));
            };
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                if proto == "TCP4" {
                    s.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    s.parse::<Ipv6Addr>().map(IpAddr::V6)
                }
                .map_err(|_| ProxyError(format!("PROXY v1: {s:?} is not an {proto} address")))
            };
            Addresses::Tcp {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        other => return err(format!("PROXY v1: unknown protocol {other:?}")),
    };
    Ok(Parse::Done {
        header: Header {
            version: 1,
            addresses,
        },
        len: end + 2,
    })
}

/// A v1 port: 1 to 5 decimal digits, at most 65535 (spec §2.1).
fn port(s: &str) -> Result<u16, ProxyError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return err(format!("PROXY v1: {s:?} is not a port"));
    }
    s.parse()
        .map_err(|_| ProxyError(format!("PROXY v1: port {s} is out of range")))
}

/// Version 2 (spec §2.2): signature, version/command, family/protocol, length, addresses,
/// TLVs (ignored).
fn parse_v2(buf: &[u8]) -> Result<Parse, ProxyError> {
    let sig_len = buf.len().min(V2_SIGNATURE.len());
    if buf.get(..sig_len) != V2_SIGNATURE.get(..sig_len) {
        return err("no PROXY header (bad v2 signature)");
    }
    let (Some(&ver_cmd), Some(&fam), Some(&l0), Some(&l1)) =
        (buf.get(12), buf.get(13), buf.get(14), buf.get(15))
    else {
        return Ok(Parse::Incomplete);
    };
    if ver_cmd >> 4 != 2 {
        return err(format!("PROXY v2: unsupported version {}", ver_cmd >> 4));
    }
    let body_len = u16::from_be_bytes([l0, l1]) as usize;
    let total = 16 + body_len;
    if total > V2_MAX_LEN {
        return err(format!(
            "PROXY v2 header of {total} bytes is over the limit of {V2_MAX_LEN}"
        ));
    }
    let Some(body) = buf.get(16..total) else {
        return Ok(Parse::Incomplete);
    };
    let addresses = match ver_cmd & 0x0f {
        // LOCAL: "the receiver must accept this connection as valid and must use the real
        // connection endpoints and discard the protocol block including the family".
        0x0 => Addresses::Local,
        0x1 => match fam {
            // AF_UNSPEC, AF_UNIX (stream or not): use the real connection endpoints.
            0x00 | 0x31 | 0x32 => Addresses::Unknown,
            0x11 => {
                let b: &[u8; 12] = body
                    .get(..12)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| ProxyError("PROXY v2: TCP4 address block too short".into()))?;
                let [s0, s1, s2, s3, d0, d1, d2, d3, sp0, sp1, dp0, dp1] = *b;
                Addresses::Tcp {
                    source: SocketAddr::V4(SocketAddrV4::new(
                        Ipv4Addr::new(s0, s1, s2, s3),
                        u16::from_be_bytes([sp0, sp1]),
                    )),
                    destination: SocketAddr::V4(SocketAddrV4::new(
                        Ipv4Addr::new(d0, d1, d2, d3),
                        u16::from_be_bytes([dp0, dp1]),
                    )),
                }
            }
            0x21 => {
                let b = body
                    .get(..36)
                    .ok_or_else(|| ProxyError("PROXY v2: TCP6 address block too short".into()))?;
                let ip = |r: std::ops::Range<usize>| -> Ipv6Addr {
                    let mut o = [0u8; 16];
                    if let Some(s) = b.get(r) {
                        o.copy_from_slice(s);
                    }
                    Ipv6Addr::from(o)
                };
                let p = |i: usize| -> u16 {
                    u16::from_be_bytes([
                        b.get(i).copied().unwrap_or(0),
                        b.get(i + 1).copied().unwrap_or(0),
                    ])
                };
                Addresses::Tcp {
                    source: SocketAddr::V6(SocketAddrV6::new(ip(0..16), p(32), 0, 0)),
                    destination: SocketAddr::V6(SocketAddrV6::new(ip(16..32), p(34), 0, 0)),
                }
            }
            0x12 | 0x22 => return err("PROXY v2: a UDP connection cannot carry IMAP"),
            other => return err(format!("PROXY v2: unknown address family 0x{other:02x}")),
        },
        other => return err(format!("PROXY v2: unknown command 0x{other:x}")),
    };
    Ok(Parse::Done {
        header: Header {
            version: 2,
            addresses,
        },
        len: total,
    })
}

/// One network in CIDR form (`10.0.0.0/8`, `fd00::/8`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                mask32(u32::from(n), self.prefix) == mask32(u32::from(a), self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                mask128(u128::from(n), self.prefix) == mask128(u128::from(a), self.prefix)
            }
            _ => false,
        }
    }
}

fn mask32(v: u32, prefix: u8) -> u32 {
    v.checked_shr(32 - u32::from(prefix.min(32))).unwrap_or(0)
}

fn mask128(v: u128, prefix: u8) -> u128 {
    v.checked_shr(128 - u32::from(prefix.min(128))).unwrap_or(0)
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network (like 10.0.0.0/8)"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{s:?}: prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The peers allowed (and then required) to send a PROXY header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworks(Vec<Cidr>);

impl TrustedNetworks {
    /// Parse a list such as `10.0.0.0/8, 192.168.1.5 fd00::/8` (commas and/or spaces, as in
    /// Dovecot's `haproxy_trusted_networks`).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<TrustedNetworks, String> {
        let mut out = Vec::new();
        for item in items {
            for part in item
                .as_ref()
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
            {
                out.push(
                    part.parse()
                        .map_err(|e| format!("--proxy-trusted-networks: {e}"))?,
                );
            }
        }
        Ok(TrustedNetworks(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

impl fmt::Display for TrustedNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The I/O shell.

/// Read the PROXY header a trusted peer must send first, within `timeout`. Returns the header
/// and the bytes read past it (the start of the client's own stream, e.g. a TLS ClientHello),
/// which the caller must replay with [`Rewind`].
pub async fn read_header(
    stream: &mut Stream,
    timeout: Duration,
) -> Result<(Header, Vec<u8>), ProxyError> {
    let read = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            match parse(&buf)? {
                Parse::Done { header, len } => {
                    let rest = buf.get(len..).unwrap_or_default().to_vec();
                    return Ok((header, rest));
                }
                Parse::Incomplete => {}
            }
            // Never read more than the largest header could need (the parser has said
            // "too long" before this is reached, but keep the bound local too).
            if buf.len() >= V2_MAX_LEN {
                return err("PROXY header too long");
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| ProxyError(format!("reading the PROXY header: {e}")))?;
            if n == 0 {
                return err(if buf.is_empty() {
                    CLOSED_EARLY.to_string()
                } else {
                    "closed in the middle of the PROXY header".to_string()
                });
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    };
    read.or(async {
        async_io::Timer::after(timeout).await;
        err(format!("no PROXY header within {timeout:?}"))
    })
    .await
}

/// A stream that first returns bytes already read from `inner`, then reads `inner`.
pub struct Rewind {
    prefix: Vec<u8>,
    pos: usize,
    inner: Stream,
}

impl Rewind {
    /// `inner` with `prefix` put back in front; without a prefix, `inner` itself.
    pub fn stream(prefix: Vec<u8>, inner: Stream) -> Stream {
        if prefix.is_empty() {
            inner
        } else {
            Box::new(Rewind {
                prefix,
                pos: 0,
                inner,
            })
        }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let rest = this.prefix.get(this.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let n = rest.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        this.pos += n;
        if this.pos >= this.prefix.len() {
            this.prefix = Vec::new();
            this.pos = 0;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests;
