//! TLS on berth's HTTP endpoints (rustls, ring): the server config of a `[tls]` section, its
//! certificate chain and key read from their PEM files. svcd (`[tls]` of node.toml, read again at
//! each SIGHUP) and berth-collector (`[tls]` of collector.toml) both serve with it, so the two
//! endpoints take the same files, the same protocol versions and say the same of a bad file.
//!
//! Its own crate because both binaries need it and neither depends on the other; it reads files,
//! so it cannot live in berth-model, and it has nothing of the host's resources (berth-drivers)
//! nor of what the binaries say about themselves (berth-manual).

use std::path::PathBuf;
use std::sync::Arc;

use berth_model::config::TlsFiles;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS {what} {path}: {why}")]
pub struct TlsError {
    /// `certificate` or `key`.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub why: String,
}

/// A server config for the files of `[tls]`: the chain of `cert`, the key of `key`, no client
/// authentication, rustls' safe default protocol versions.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_err = |why: String| TlsError {
        what: "certificate",
        path: files.cert.clone(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError {
        what: "key",
        path: files.key.clone(),
        why: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| cert_err(format!("does not go with key {}: {e}", files.key.display())))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &std::path::Path, name: &str) -> TlsFiles {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        TlsFiles { cert, key }
    }

    #[test]
    fn a_good_pair_serves_and_each_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a");
        server_config(&a).unwrap();

        // A certificate file without a certificate.
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "").unwrap();
        let e = server_config(&TlsFiles {
            cert: empty.clone(),
            key: a.key.clone(),
        })
        .unwrap_err();
        assert_eq!(e.what, "certificate");
        assert_eq!(e.path, empty);
        assert!(e.to_string().contains("no certificate in it"), "{e}");

        // A missing key file.
        let none = dir.path().join("none.key");
        let e = server_config(&TlsFiles {
            cert: a.cert.clone(),
            key: none.clone(),
        })
        .unwrap_err();
        assert_eq!((e.what, e.path), ("key", none));

        // A key of another certificate.
        let b = pair(dir.path(), "b");
        let e = server_config(&TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        })
        .unwrap_err();
        assert_eq!(e.what, "certificate");
        assert!(e.to_string().contains("does not go with key"), "{e}");
    }
}
