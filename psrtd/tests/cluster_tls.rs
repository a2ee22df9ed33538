//! Cluster links over TLS with the real daemon: a peer whose certificate
//! the configured `tls_ca` did not sign is shown in `/status` as not
//! connected, with a last error that says so in words; the same peer with
//! the CA that signed it links up.

mod daemon_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use daemon_support::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};

/// A CA with a name, as PEM, and what it issues.
struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, key).expect("CA cert"))
    }

    /// A certificate for 127.0.0.1 and its key, as PEM.
    fn issue(&self) -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &self.0).expect("cert");
        (cert.pem(), key.serialize_pem())
    }
}

/// The config of a node on `port` (stats on `stats`) whose cluster file
/// lists `peers` as `(port, tls_ca)`, with TLS on the listener when `tls`
/// holds `(cert, key)` file names.
fn node_config(
    dir: &TempDir,
    name: &str,
    (port, stats): (u16, u16),
    peers: &[(u16, &Path)],
    tls: Option<(&str, &str)>,
) -> PathBuf {
    let peers: String = peers
        .iter()
        .map(|(peer, ca)| {
            peer_entry(
                *peer,
                "secret",
                &format!("  tls: true\n  tls_ca: {}\n", ca.display()),
            )
        })
        .collect();
    let tls = tls
        .map(|(cert, key)| {
            let dir = dir.join("");
            format!(
                "  tls_cert: {}\n  tls_key: {}\n",
                dir.join(cert).display(),
                dir.join(key).display()
            )
        })
        .unwrap_or_default();
    cluster_node_files(dir, name, (port, stats), &peers, &tls)
}

/// The first peer of a node's `/status`.
fn first_peer(stats: u16) -> serde_json::Value {
    let (status, body) = http_get(SocketAddr::from(([127, 0, 0, 1], stats)), "/status");
    assert!(status.contains("200"), "{status}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["cluster"]["peers"][0].clone()
}

#[test]
fn a_peer_certificate_from_another_ca_is_reported_as_not_trusted() {
    let dir = TempDir::new("cluster-tls-ca");
    let (signer, stranger) = (Ca::new("psrt test CA"), Ca::new("unrelated CA"));
    let (cert, key) = signer.issue();
    dir.write("b.crt", &cert);
    dir.write("b.key", &key);
    let right_ca = dir.write("signer.pem", &signer.0.pem());
    let wrong_ca = dir.write("stranger.pem", &stranger.0.pem());
    let ports = |_| (free_tcp_port(), free_tcp_port());
    let [a, b, c]: [(u16, u16); 3] = [0, 1, 2].map(ports);

    let b_config = node_config(&dir, "b", b, &[], Some(("b.crt", "b.key")));
    let _b = Daemon::start(&b_config, b.0);
    let a_config = node_config(&dir, "a", a, &[(b.0, &wrong_ca)], None);
    let a_node = Daemon::start(&a_config, a.0);
    let c_config = node_config(&dir, "c", c, &[(b.0, &right_ca)], None);
    let c_node = Daemon::start(&c_config, c.0);

    assert!(
        poll(|| first_peer(c.1)["state"] == "up"),
        "the right CA links up: {:?}\n{}",
        first_peer(c.1),
        c_node.log()
    );
    let untrusted = poll(|| {
        first_peer(a.1)["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("not trusted"))
    });
    let peer = first_peer(a.1);
    assert!(untrusted, "{peer:?}\n{}", a_node.log());
    assert_ne!(peer["state"], "up", "{peer:?}");
    let error = peer["last_error"].as_str().expect("text");
    assert!(!error.contains("UnknownIssuer"), "no debug dump: {error}");
}
