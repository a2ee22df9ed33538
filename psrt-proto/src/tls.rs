//! TLS for the sans-IO core, through rustls' buffered API.
//!
//! A connection state machine owns one [`TlsSession`] per TLS socket:
//! ciphertext read from the socket goes in with
//! [`TlsSession::feed_ciphertext`], plaintext for the protocol decoder comes
//! out of [`TlsSession::take_plaintext`]; replies go in with
//! [`TlsSession::write_plaintext`] and the bytes to write to the socket come
//! out of [`TlsSession::take_ciphertext`]. Nothing here touches a socket or
//! the clock.
//!
//! Configurations always use the `ring` crypto provider explicitly, so the
//! result never depends on a process-wide default provider.
//!
//! A server's certificate is a [`ServerCert`], replaceable while it runs
//! (SIGHUP): new handshakes get the new one, established sessions keep
//! theirs. [`server_config`] optionally requires client certificates
//! signed by a given CA.

use std::sync::{Arc, RwLock};

use bytes::{Buf, BytesMut};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, Connection, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

#[cfg(test)]
mod tests;

/// What can go wrong building a TLS configuration or running a TLS session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate PEM holds no `CERTIFICATE` section.
    #[error("no certificate found in PEM")]
    NoCertificate,
    /// The key PEM holds no PKCS#1, PKCS#8 or SEC1 private key section.
    #[error("no private key found in PEM")]
    NoPrivateKey,
    /// The PEM text itself is malformed (bad markers, bad base64).
    #[error("invalid PEM: {0}")]
    Pem(#[source] pem::Error),
    /// The private key is not the one the end-entity certificate was issued for.
    #[error("private key does not match certificate")]
    KeyMismatch,
    /// rustls rejected the certificate, key or protocol settings.
    #[error("TLS configuration rejected: {0}")]
    Config(#[source] rustls::Error),
    /// A certificate of the CA PEM cannot be used as a trust anchor.
    #[error("CA certificate rejected: {0}")]
    InvalidCa(#[source] rustls::Error),
    /// The client CA cannot verify client certificates.
    #[error("client CA rejected: {0}")]
    InvalidClientCa(#[source] rustls::server::VerifierBuilderError),
    /// The name to verify the server against is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// A fatal TLS error: handshake failure, bad certificate, corrupt record.
    /// An alert for the peer may be waiting in [`TlsSession::take_ciphertext`].
    #[error("TLS error: {}", describe(.0))]
    Protocol(#[from] rustls::Error),
    /// rustls refused ciphertext while holding no plaintext for the caller,
    /// so the input can never be consumed (an oversized or malformed record).
    #[error("TLS input refused: {0}")]
    InputRefused(#[source] std::io::Error),
    /// rustls refused plaintext to send: the session's record sequence
    /// space is exhausted and it is closing.
    #[error("TLS session refused plaintext: {0}")]
    OutputRefused(#[source] std::io::Error),
}

/// The crypto provider every configuration of this module uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM text, in order.
fn parse_certs(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#1, PKCS#8 or SEC1) of a PEM text.
fn parse_key(pem_text: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem_text).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey,
        other => TlsError::Pem(other),
    })
}

/// Maps a rustls error from loading a certificate and key to a [`TlsError`].
fn config_error(e: rustls::Error) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch
        }
        other => TlsError::Config(other),
    }
}

/// Builds the configuration of a TLS server from a PEM certificate chain
/// (end-entity first) and a PEM private key.
///
/// RSA (PKCS#1 or PKCS#8), ECDSA (SEC1 or PKCS#8) and Ed25519 (PKCS#8) keys
/// are accepted; TLS 1.2 and 1.3 with rustls' safe defaults; no client
/// authentication.
pub fn server_config_from_pem(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(ServerCert::from_pem(cert_chain_pem, key_pem)?, None)
}

/// Builds the configuration of a TLS server presenting `cert` (whichever
/// certificate it holds at each handshake). With `client_ca_pem`, every
/// client must present a certificate issued by one of its certificates;
/// without, no client certificate is asked for.
pub fn server_config(
    cert: Arc<ServerCert>,
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem_text) => {
            let roots = Arc::new(root_store(Some(pem_text))?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(TlsError::InvalidClientCa)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(Arc::new(builder.with_cert_resolver(cert)))
}

/// A certificate chain and its private key, checked to match.
fn certified_key(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let certs = parse_certs(cert_chain_pem)?;
    let key = parse_key(key_pem)?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(config_error)
}

/// The certificate a TLS server presents, replaceable while it runs: each
/// handshake takes the one in force, so a replacement reaches new
/// connections and established sessions keep the one they agreed on.
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// A certificate from a PEM chain (end-entity first) and its PEM key;
    /// fails when either is unusable or they do not match.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerCert>, TlsError> {
        Ok(Arc::new(ServerCert {
            current: RwLock::new(Arc::new(certified_key(cert_chain_pem, key_pem)?)),
        }))
    }

    /// Replaces the certificate for the handshakes to come. On error the
    /// one in force stays.
    pub fn replace_from_pem(&self, cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let replacement = Arc::new(certified_key(cert_chain_pem, key_pem)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = replacement;
        Ok(())
    }

    /// The certificate in force.
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Advice for a TLS error a user can fix: a certificate with `CA:TRUE`
/// used as a server or client certificate, which rustls refuses
/// (`CaUsedAsEndEntity`; the one-line `openssl req -x509` recipe makes
/// such certificates).
pub fn hint(error: &str) -> Option<&'static str> {
    error.contains("CaUsedAsEndEntity").then_some(
        "the certificate presented is a CA certificate (basicConstraints CA:TRUE), which \
         rustls refuses as a server or client certificate: issue a certificate with \
         CA:FALSE from that CA (see the README's TLS section)",
    )
}

/// A rustls error in words. rustls names most certificate problems by
/// their enum variant (`invalid peer certificate: UnknownIssuer`); the
/// common ones get a sentence here, the rest keep rustls's text.
fn describe(error: &rustls::Error) -> String {
    use rustls::CertificateError as Cert;
    let rustls::Error::InvalidCertificate(cert) = error else {
        return error.to_string();
    };
    let words = match cert {
        Cert::UnknownIssuer => {
            "the peer's certificate is not trusted: no CA configured here issued it \
             (unknown issuer)"
        }
        Cert::BadSignature => {
            "the peer's certificate is not trusted: its signature does not verify \
             against the CA configured here"
        }
        Cert::Expired => "the peer's certificate has expired",
        Cert::NotValidYet => "the peer's certificate is not valid yet",
        Cert::Revoked => "the peer's certificate was revoked",
        Cert::NotValidForName => "the peer's certificate is not valid for the name connected to",
        Cert::BadEncoding => "the peer's certificate is malformed",
        _ => return error.to_string(),
    };
    words.to_owned()
}

/// Builds the root store a client trusts: exactly the certificates of
/// `ca_pem`, or the Mozilla roots of the `webpki-roots` crate without one.
fn root_store(ca_pem: Option<&[u8]>) -> Result<RootCertStore, TlsError> {
    let Some(pem_text) = ca_pem else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(pem_text)? {
        roots.add(cert).map_err(TlsError::InvalidCa)?;
    }
    Ok(roots)
}

/// Builds the configuration of a TLS client (used by cluster links and the
/// client library).
///
/// With `ca_pem` the client trusts exactly the certificates in it; with
/// `None` it trusts the Mozilla root set shipped by `webpki-roots`. No client
/// certificate is presented.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with_cert(ca_pem, None)
}

/// Like [`client_config`], presenting the client certificate `identity`
/// (PEM chain, PEM key) when the server asks for one.
pub fn client_config_with_cert(
    ca_pem: Option<&[u8]>,
    identity: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(root_store(ca_pem)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert_chain_pem, key_pem)) => builder
            .with_client_auth_cert(parse_certs(cert_chain_pem)?, parse_key(key_pem)?)
            .map_err(config_error)?,
    };
    Ok(Arc::new(config))
}

/// One TLS session (server or client side) driven by bytes, not sockets.
///
/// Buffering: outgoing data is never refused. [`TlsSession::write_plaintext`]
/// accepts everything and rustls keeps it (encrypted once the handshake is
/// done) until [`TlsSession::take_ciphertext`] drains it, so the owner bounds
/// memory by bounding what it writes between drains. Incoming data is
/// bounded by rustls: once about 16 KiB of decrypted plaintext (plus at most
/// one read's worth of records) waits for [`TlsSession::take_plaintext`],
/// [`TlsSession::feed_ciphertext`] leaves the rest of its input in place.
pub struct TlsSession {
    /// The rustls state machine.
    conn: Connection,
    /// Decrypted bytes waiting in rustls, as of the last processing.
    plaintext_pending: usize,
    /// The peer sent `close_notify`.
    peer_closed: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("plaintext_pending", &self.plaintext_pending)
            .field("peer_closed", &self.peer_closed)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// Wraps a fresh rustls connection with unlimited outgoing buffers.
    fn new(mut conn: Connection) -> Self {
        conn.set_buffer_limit(None);
        Self {
            conn,
            plaintext_pending: 0,
            peer_closed: false,
        }
    }

    /// Starts the server side of a session; the handshake begins with the
    /// first bytes fed in.
    pub fn server(cfg: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let conn = rustls::ServerConnection::new(cfg)?;
        Ok(Self::new(conn.into()))
    }

    /// Starts the client side of a session towards `server_name` (a DNS name
    /// or an IP address), which the server certificate must match. The
    /// `ClientHello` is ready in [`TlsSession::take_ciphertext`] at once.
    pub fn client(cfg: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()))?;
        let conn = rustls::ClientConnection::new(cfg, name)?;
        Ok(Self::new(conn.into()))
    }

    /// Feeds ciphertext received from the peer, consuming from the front of
    /// `input` as much as rustls takes and processing every complete record.
    ///
    /// Stops early, leaving bytes in `input`, when rustls holds its limit of
    /// undelivered plaintext (take it with [`TlsSession::take_plaintext`] and
    /// feed again) or after the peer's `close_notify` (later bytes are
    /// meaningless). A fatal error is returned; the session is then dead,
    /// though an alert for the peer may be waiting in
    /// [`TlsSession::take_ciphertext`].
    pub fn feed_ciphertext(&mut self, input: &mut BytesMut) -> Result<(), TlsError> {
        while !input.is_empty() && !self.peer_closed {
            let mut reader: &[u8] = &input[..];
            let read = match self.conn.read_tls(&mut reader) {
                Ok(n) => n,
                Err(_) if self.plaintext_pending > 0 => return Ok(()),
                Err(e) => return Err(TlsError::InputRefused(e)),
            };
            input.advance(read);
            let state = self.conn.process_new_packets()?;
            self.plaintext_pending = state.plaintext_bytes_to_read();
            self.peer_closed |= state.peer_has_closed();
            if read == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Appends all decrypted bytes available to `out` and returns how many
    /// were moved.
    ///
    /// Returns an error only if the peer's transport ended without
    /// `close_notify`, which cannot happen through this API (EOF is never fed).
    pub fn take_plaintext(&mut self, out: &mut BytesMut) -> Result<usize, TlsError> {
        use std::io::BufRead;
        let mut moved = 0;
        let mut reader = self.conn.reader();
        loop {
            let chunk = match reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(TlsError::InputRefused(e)),
            };
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            out.extend_from_slice(chunk);
            reader.consume(len);
            moved += len;
        }
        self.plaintext_pending = 0;
        Ok(moved)
    }

    /// Queues `data` for the peer. All of it is accepted (see the type's
    /// buffering note); before the handshake completes it waits in
    /// plaintext and is encrypted once keys exist.
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        use std::io::Write;
        self.conn
            .writer()
            .write_all(data)
            .map_err(TlsError::OutputRefused)
    }

    /// Appends to `out` every byte rustls wants to send to the peer
    /// (handshake messages, encrypted records, alerts).
    pub fn take_ciphertext(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail; stop on the impossible anyway
            // rather than spin.
            match self.conn.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// The common name (CN) of the certificate the peer presented, when
    /// it has exactly one, non-empty and in UTF-8; `None` otherwise (no
    /// certificate, one that does not parse, no CN, several). On a server
    /// that requires client certificates the certificate was verified in
    /// the handshake, so once plaintext arrives this is the client's
    /// verified name.
    pub fn peer_common_name(&self) -> Option<String> {
        let der = self.conn.peer_certificates()?.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names = cert.subject().iter_common_name();
        let name = names.next()?.as_str().ok()?;
        (names.next().is_none() && !name.is_empty()).then(|| name.to_owned())
    }

    /// True until the handshake has completed.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// True when [`TlsSession::take_ciphertext`] has bytes to give.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Queues a `close_notify` alert for the peer; nothing written after it is
    /// sent.
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }

    /// True once the peer's `close_notify` has been processed: no more
    /// plaintext will arrive beyond what [`TlsSession::take_plaintext`] still
    /// gives.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }
}
