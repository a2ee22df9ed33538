//! Certificates and client settings of the TLS workloads.
//!
//! Each run makes a fresh CA and a server certificate it issued for
//! `127.0.0.1` and `localhost` ([`Pki::generate`]). The server gets the
//! certificate and key as PEM files; the benchmark's clients trust exactly
//! the CA. A separate CA is needed because rustls refuses a self-signed
//! CA certificate as the server's own (`CaUsedAsEndEntity`).

use std::net::SocketAddr;
use std::sync::Arc;

use psrt_proto::tls::client_config;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::BenchError;

/// A CA and a server certificate it issued for the loopback address.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (PEM) the clients trust.
    pub ca_pem: String,
    /// The server certificate (PEM), valid for `127.0.0.1` and `localhost`.
    pub cert_pem: String,
    /// The server's private key (PEM, PKCS#8).
    pub key_pem: String,
}

impl Pki {
    /// Makes a fresh CA and server certificate with ECDSA P-256 keys,
    /// which every server's TLS stack accepts (rustls; OpenSSL for the
    /// original server).
    pub fn generate() -> Result<Self, BenchError> {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "psrt-bench CA");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_error)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_error)?;
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let cert = CertificateParams::new(names)
            .map_err(tls_error)?
            .signed_by(&key, &ca)
            .map_err(tls_error)?;
        Ok(Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Client settings that trust this CA only and verify the server as
    /// the IP address `127.0.0.1`.
    pub fn client(&self) -> Result<ClientTls, BenchError> {
        let config = client_config(Some(self.ca_pem.as_bytes()))
            .map_err(|err| BenchError::Tls(err.to_string()))?;
        Ok(ClientTls {
            config,
            name: ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        })
    }
}

fn tls_error(err: rcgen::Error) -> BenchError {
    BenchError::Tls(format!("certificate generation: {err}"))
}

/// How a client verifies the server: the rustls configuration and the
/// name the certificate must carry.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// Shared rustls client configuration (ring provider).
    pub config: Arc<ClientConfig>,
    /// The server's expected name.
    pub name: ServerName<'static>,
}

/// Where the benchmark's clients connect and whether they ask for TLS
/// (control and data sockets alike).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server's TCP address.
    pub addr: SocketAddr,
    /// TLS settings, or `None` for plain TCP.
    pub tls: Option<ClientTls>,
}

impl Endpoint {
    /// Plain TCP to `addr`.
    pub fn plain(addr: SocketAddr) -> Self {
        Self { addr, tls: None }
    }

    /// TLS to `addr`, verified with `tls`.
    pub fn tls(addr: SocketAddr, tls: ClientTls) -> Self {
        Self {
            addr,
            tls: Some(tls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_accepts_the_certificate_and_client_trusts_the_ca() {
        let pki = Pki::generate().expect("pki");
        psrt_proto::tls::server_config_from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
            .expect("server config from the generated files");
        let client = pki.client().expect("client config");
        assert_eq!(client.name.to_str(), "127.0.0.1");
        assert_ne!(pki.ca_pem, pki.cert_pem);
    }
}
