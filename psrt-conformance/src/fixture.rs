//! What the cases share: a server guard, spec and access-rule builders,
//! and throwaway TLS certificates.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use psrt_proto::auth::{Keys, Passwords};
use psrt_proto::broker::AuthConfig;
use psrt_proto::config::parse_acl;
use psrt_proto::spec::{Reloader, ServerSpec};

use crate::{Addrs, RunningServer, Start};

/// A started server that is stopped when dropped, so a failing case does
/// not leave it running.
pub struct Server {
    inner: Option<Box<dyn RunningServer>>,
    addrs: Addrs,
}

impl Server {
    /// Starts `spec` with the driver's `start` function.
    pub fn start(start: Start, spec: ServerSpec) -> Server {
        let inner = start(spec);
        let addrs = inner.addrs().clone();
        Server {
            inner: Some(inner),
            addrs,
        }
    }

    /// The TCP listener.
    pub fn tcp(&self) -> SocketAddr {
        self.addrs.tcp
    }

    /// Everything bound.
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// Reloads the access rules; panics if the reload fails.
    pub fn reload(&self) {
        if let Some(inner) = &self.inner {
            inner.reload().expect("reload");
        }
    }

    /// Stops the server gracefully and waits for it.
    pub fn stop(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.stop();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.stop();
        }
    }
}

/// `127.0.0.1:0`.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An open server on `127.0.0.1:0` (anonymous full access, default
/// limits) with a short drain on stop.
pub fn spec() -> ServerSpec {
    let mut spec = ServerSpec::open(loopback());
    spec.workers = 2;
    spec.drain_timeout = Duration::from_secs(3);
    spec
}

/// A bcrypt hash of `password` at cost 4 (fast, still real bcrypt).
pub fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt hash")
}

/// Access rules from an ACL in YAML and `(login, password)` pairs, hashed
/// into a password file.
pub fn auth(allow_anonymous: bool, acl_yaml: &str, users: &[(&str, &str)]) -> AuthConfig {
    let acl = parse_acl(acl_yaml, Path::new("acl.yml"), 32).expect("ACL parses");
    let lines: String = users
        .iter()
        .map(|(login, password)| format!("{login}:{}\n", hash(password)))
        .collect();
    let passwords = Passwords::parse(&lines, Path::new("psrt-passwd")).expect("passwords parse");
    AuthConfig {
        allow_anonymous,
        acl,
        passwords: Some(passwords),
        keys: None,
    }
}

/// A key file from YAML (`login: 64 hex digits`).
pub fn keys(yaml: &str) -> Keys {
    Keys::parse(yaml, Path::new("keys.yml")).expect("keys parse")
}

/// Access rules a case can swap before asking the server to reload.
#[derive(Clone)]
pub struct SwappableAuth(Arc<Mutex<AuthConfig>>);

impl SwappableAuth {
    /// Starts with `auth`.
    pub fn new(auth: AuthConfig) -> SwappableAuth {
        SwappableAuth(Arc::new(Mutex::new(auth)))
    }

    /// The rules the next reload returns.
    pub fn set(&self, auth: AuthConfig) {
        *self.0.lock().expect("auth lock") = auth;
    }

    /// A reloader returning the current rules.
    pub fn reloader(&self) -> Reloader {
        let shared = self.0.clone();
        Arc::new(move || Ok(shared.lock().map_err(|e| e.to_string())?.clone()))
    }
}

/// A fresh CA and a server certificate it issued for `localhost` and
/// `127.0.0.1` (clients that connect by address verify the IP).
pub struct Pki {
    /// The CA certificate clients trust.
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server private key.
    pub key_pem: String,
}

/// Makes a [`Pki`] with ECDSA P-256 keys.
pub fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        PKCS_ECDSA_P256_SHA256,
    };
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "psrt conformance CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("server key");
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let params = CertificateParams::new(names).expect("server params");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}
