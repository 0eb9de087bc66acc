//! TLS for IMAPS (implicit TLS, RFC 8314 §3.3) and STARTTLS (RFC 3501 §6.2.1, RFC 2595 §3.1),
//! with rustls (ring provider, TLS 1.2 and 1.3 only: RFC 8996 deprecates 1.0 and 1.1).
//!
//! Owns: loading the certificate chain and private key from PEM files (a Kubernetes TLS
//! Secret mount: `tls.crt`, `tls.key`), the one `rustls::ServerConfig` every handshake uses,
//! and swapping in a new certificate when the files change (cert-manager rotation, the k8s
//! `..data` symlink swap) or on SIGHUP, without touching open connections: the certificate
//! is picked per handshake by [`CertSlot`], so established sessions keep theirs.
//!
//! A certificate or key that is missing or broken at start-up is an error naming the file
//! ([`Tls::load`]). After that, a broken new pair is logged once (with why) and the old one
//! stays in use; the next change to either file is tried again ([`Tls::check`]).
//!
//! Never: reads a socket itself (the handshake is `futures-rustls` over the connection's
//! [`Stream`]), or logs key material.

use super::conn::Stream;
use futures_lite::{AsyncWrite, FutureExt};
use futures_rustls::rustls;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the server looks at the certificate files for a rotation (besides at every new
/// TLS connection and on SIGHUP).
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The certificate handed to each new handshake; replaced on reload.
#[derive(Debug)]
pub struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// What identifies one version of a file: a rotation changes at least one of these (an
/// atomic rename or the `..data` symlink swap gives a new inode; an in-place write a new
/// mtime or size). `None`: the file could not be looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    size: u64,
}

fn file_id(path: &Path) -> Option<FileId> {
    // `metadata` follows symlinks: the k8s `tls.crt -> ..data/tls.crt` chain resolves to the
    // file currently behind it.
    let m = std::fs::metadata(path).ok()?;
    Some(FileId {
        dev: m.dev(),
        ino: m.ino(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        size: m.size(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ids {
    cert: Option<FileId>,
    key: Option<FileId>,
}

/// The server's TLS state: the files, the handshake configuration and the current certificate.
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    slot: Arc<CertSlot>,
    config: Arc<rustls::ServerConfig>,
    /// The file versions loaded last, and the versions that last failed to load (so a broken
    /// pair is logged once, not at every connection).
    ids: Mutex<(Ids, Option<Ids>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Load the chain and key; any problem is an error naming the file.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ids = Ids {
            cert: file_id(cert_path),
            key: file_id(key_path),
        };
        let key = load_pair(cert_path, key_path, &provider)?;
        log::info!("{}", describe(cert_path, &key));
        let slot = Arc::new(CertSlot(RwLock::new(Arc::new(key))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(slot.clone());
        // Clients that use ALPN must ask for "imap" (RFC 7301; the ALPACA cross-protocol attack
        // is why a mismatch is refused). Clients without ALPN are served as before.
        config.alpn_protocols = vec![b"imap".to_vec()];
        Ok(Tls {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            provider,
            slot,
            config: Arc::new(config),
            ids: Mutex::new((ids, None)),
        })
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Reload if either file changed since the last load (or the last failed attempt). Cheap:
    /// two `stat`s. Called at every new TLS connection and every [`RELOAD_CHECK_INTERVAL`].
    pub fn check(&self) {
        let now = Ids {
            cert: file_id(&self.cert_path),
            key: file_id(&self.key_path),
        };
        {
            let g = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            if g.0 == now || g.1 == Some(now) {
                return;
            }
        }
        self.reload_with(now, "the certificate files changed");
    }

    /// Reload now, whatever the files look like (SIGHUP).
    pub fn reload(&self) {
        let now = Ids {
            cert: file_id(&self.cert_path),
            key: file_id(&self.key_path),
        };
        self.reload_with(now, "SIGHUP");
    }

    fn reload_with(&self, now: Ids, why: &str) {
        let mut g = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        match load_pair(&self.cert_path, &self.key_path, &self.provider) {
            Ok(key) => {
                log::info!("TLS reload ({why}): {}", describe(&self.cert_path, &key));
                *self.slot.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                *g = (now, None);
            }
            Err(e) => {
                if g.1 != Some(now) {
                    log::warn!("TLS reload ({why}) failed, keeping the current certificate: {e}");
                }
                g.1 = Some(now);
            }
        }
    }

    /// Run the server side of a TLS handshake over `stream` (after any PROXY header; for
    /// STARTTLS, after the tagged OK). Picks up a rotated certificate first.
    pub async fn accept(&self, stream: Stream) -> io::Result<Stream> {
        self.check();
        let acceptor = futures_rustls::TlsAcceptor::from(self.config.clone());
        let tls = async { acceptor.accept(stream).await }
            .or(async {
                async_io::Timer::after(HANDSHAKE_TIMEOUT).await;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ))
            })
            .await?;
        let (_, conn) = tls.get_ref();
        log::debug!(
            "TLS established: {:?} {:?}",
            conn.protocol_version(),
            conn.negotiated_cipher_suite().map(|s| s.suite())
        );
        Ok(Box::new(TlsConn(tls)))
    }
}

/// A server TLS stream that says goodbye properly: when the connection is dropped (LOGOUT,
/// timeout, shutdown) it sends the TLS `close_notify` alert (RFC 8446 §6.1), so clients
/// such as `openssl s_client` see a clean end instead of "unexpected EOF". Best effort: one
/// non-blocking write attempt, since `Drop` cannot wait.
struct TlsConn(futures_rustls::server::TlsStream<Stream>);

impl futures_lite::AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl futures_lite::AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl Drop for TlsConn {
    fn drop(&mut self) {
        let (io, conn) = self.0.get_mut();
        conn.send_close_notify();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = NonBlocking { io, cx: &mut cx };
        while conn.wants_write() {
            match conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// `std::io::Write` over an async stream, without waiting: `Pending` is `WouldBlock`.
struct NonBlocking<'a, 'b> {
    io: &'a mut Stream,
    cx: &'a mut Context<'b>,
}

impl io::Write for NonBlocking<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Read both PEM files and check that the key belongs to the certificate.
fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let cert_pem = std::fs::read(cert_path)
        .map_err(|e| format!("TLS certificate {}: {e}", cert_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS certificate {}: bad PEM: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate {}: no PEM CERTIFICATE block found",
            cert_path.display()
        ));
    }
    let key_pem =
        std::fs::read(key_path).map_err(|e| format!("TLS key {}: {e}", key_path.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "TLS key {}: no usable PEM private key ({e}); expected PKCS#8, PKCS#1 (RSA) or SEC1 (EC)",
            key_path.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "TLS key {} does not belong to the certificate {}",
            key_path.display(),
            cert_path.display()
        ),
        e => format!(
            "TLS certificate {} / key {}: {e}",
            cert_path.display(),
            key_path.display()
        ),
    })
}

/// `certificate FILE: N in chain, SHA-256 of the leaf ab:cd:...` for the log.
fn describe(path: &Path, key: &CertifiedKey) -> String {
    let fp = key
        .cert
        .first()
        .map(|c| {
            Sha256::digest(c.as_ref())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    format!(
        "TLS certificate {}: {} in chain, SHA-256 {fp}",
        path.display(),
        key.cert.len()
    )
}
