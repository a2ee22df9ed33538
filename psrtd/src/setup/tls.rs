//! The TLS files of a config: the rustls server configuration built from
//! them, and the certificate re-read on SIGHUP ([`TlsFiles::reload`]).

use std::path::PathBuf;
use std::sync::Arc;

use psrt_proto::config::ServerConfig;
use psrt_proto::conn::ConnConfig;
use psrt_proto::tls::{ServerCert, server_config};

use super::{SetupError, read_named};

/// The certificate and key files, and the certificate served from them.
pub(super) struct TlsFiles {
    cert_path: PathBuf,
    key_path: PathBuf,
    cert: Arc<ServerCert>,
}

impl TlsFiles {
    /// Re-reads the certificate and key; new connections get them, live
    /// ones keep theirs. A pair that cannot be read or does not make a
    /// certificate is logged with the reason, and the one in force stays.
    pub(super) fn reload(&self) {
        let replaced = read_pair(&self.cert_path, &self.key_path)
            .map_err(|errors| super::lines(&errors))
            .and_then(|(cert_pem, key_pem)| {
                self.cert
                    .replace_from_pem(&cert_pem, &key_pem)
                    .map_err(|source| tls_error(&self.cert_path, &self.key_path, source))
            });
        match replaced {
            Ok(()) => tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded"),
            Err(message) => tracing::error!(
                %message,
                "TLS certificate not reloaded; keeping the one in force"
            ),
        }
    }
}

/// The TLS policy, and the files to re-read when TLS is on: reads
/// `tls_cert`, `tls_key` and `tls_client_ca`, each even when another
/// failed, so all their problems are reported.
pub(super) fn conn_config(
    config: &ServerConfig,
) -> Result<(ConnConfig, Option<TlsFiles>), Vec<SetupError>> {
    let allow_no_tls = config.proto.allow_no_tls;
    let (Some(cert_path), Some(key_path)) = (&config.proto.tls_cert, &config.proto.tls_key) else {
        let conn = ConnConfig {
            tls: None,
            allow_no_tls,
            tls_client_cn_login: false,
        };
        return Ok((conn, None));
    };
    let client_ca = config
        .proto
        .tls_client_ca
        .as_ref()
        .map(|path| read_named(path, "proto.tls_client_ca").map_err(SetupError::File))
        .transpose();
    let pair = read_pair(cert_path, key_path);
    let (client_ca, (cert_pem, key_pem)) = match (client_ca, pair) {
        (Ok(client_ca), Ok(pair)) => (client_ca, pair),
        (client_ca, pair) => {
            let mut problems = pair.err().unwrap_or_default();
            problems.extend(client_ca.err());
            return Err(problems);
        }
    };
    let cert = ServerCert::from_pem(&cert_pem, &key_pem).map_err(|source| {
        vec![SetupError::Tls {
            cert: cert_path.clone(),
            key: key_path.clone(),
            source,
        }]
    })?;
    let tls = server_config(cert.clone(), client_ca.as_deref()).map_err(|source| {
        let path = config.proto.tls_client_ca.as_deref().unwrap_or(cert_path);
        vec![SetupError::ClientCa {
            path: path.to_path_buf(),
            source,
        }]
    })?;
    let conn = ConnConfig {
        tls: Some(tls),
        allow_no_tls,
        tls_client_cn_login: config.proto.tls_client_cn_login,
    };
    let files = TlsFiles {
        cert_path: cert_path.clone(),
        key_path: key_path.clone(),
        cert,
    };
    Ok((conn, Some(files)))
}

/// Reads the certificate and key PEMs; both are read, so both are
/// reported when neither can be.
fn read_pair(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> Result<(Vec<u8>, Vec<u8>), Vec<SetupError>> {
    match (
        read_named(cert_path, "proto.tls_cert"),
        read_named(key_path, "proto.tls_key"),
    ) {
        (Ok(cert_pem), Ok(key_pem)) => Ok((cert_pem, key_pem)),
        (cert_pem, key_pem) => {
            let errors = [cert_pem.err(), key_pem.err()].into_iter().flatten();
            Err(errors.map(SetupError::File).collect())
        }
    }
}

/// A refused pair, in the words of [`SetupError::Tls`].
fn tls_error(
    cert: &std::path::Path,
    key: &std::path::Path,
    source: psrt_proto::tls::TlsError,
) -> String {
    SetupError::Tls {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    }
    .to_string()
}
