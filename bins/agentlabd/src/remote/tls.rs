//! The remote API's certificate: the operator's (`remote.tls_cert`/`tls_key`), or a
//! self-signed one generated on first start under `<data_dir>/remote/` and kept across
//! restarts (so pinned clients keep trusting it).

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use agentlab_core::config::RemoteConfig;

/// The server's TLS setup.
#[derive(Debug, Clone)]
pub struct RemoteTls {
    /// The rustls server configuration (HTTP/1.1 via ALPN).
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, `AA:BB:…`: what clients pin.
    pub fingerprint: String,
    /// Where the certificate is.
    pub cert_path: PathBuf,
}

pub use agentlab_core::tls_pin::fingerprint_of;

/// Loads the configured certificate, or the generated one (generating it the first time).
pub fn load(cfg: &RemoteConfig, data_dir: &Path) -> anyhow::Result<RemoteTls> {
    let (cert_path, key_path) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = data_dir.join("remote");
            let paths = (dir.join("cert.pem"), dir.join("key.pem"));
            if !paths.0.exists() || !paths.1.exists() {
                generate(cfg, &dir, &paths.0, &paths.1)?;
            }
            paths
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading the certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificate {}", cert_path.display()))?;
    let Some(leaf) = chain.first() else {
        bail!("{} holds no certificate", cert_path.display());
    };
    let fingerprint = fingerprint_of(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading the private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "the key {} does not fit the certificate {}",
                key_path.display(),
                cert_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RemoteTls {
        config: Arc::new(config),
        fingerprint,
        cert_path,
    })
}

/// The names the generated certificate covers.
fn names(cfg: &RemoteConfig) -> Vec<String> {
    if !cfg.tls_names.is_empty() {
        return cfg.tls_names.clone();
    }
    let mut names = Vec::new();
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    names.extend(["localhost", "127.0.0.1", "::1"].map(str::to_owned));
    if let Some(addr) = cfg.listen
        && !addr.ip().is_unspecified()
        && !addr.ip().is_loopback()
    {
        names.push(addr.ip().to_string());
    }
    names
}

fn generate(cfg: &RemoteConfig, dir: &Path, cert: &Path, key: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting mode 0700 on {}", dir.display()))?;
    let pair = KeyPair::generate().context("generating the key")?;
    let mut params = CertificateParams::new(names(cfg)).context("certificate names")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "agentlabd remote API");
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let signed = params
        .self_signed(&pair)
        .context("signing the certificate")?;
    // The key first, created 0600 from the start; the certificate last, so a crash in
    // between leaves no certificate without its key (both are regenerated then).
    write_new(key, pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, signed.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert.display(), fingerprint = %fingerprint_of(signed.der()),
        "generated a self-signed certificate for the remote API");
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_keeps_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RemoteConfig::default();
        let a = load(&cfg, dir.path()).unwrap();
        let b = load(&cfg, dir.path()).unwrap();
        assert_eq!(
            a.fingerprint, b.fingerprint,
            "a restart keeps the pinned cert"
        );
        let key_mode = std::fs::metadata(dir.path().join("remote/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("remote"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn operator_files_that_do_not_fit_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        load(&RemoteConfig::default(), dir.path()).unwrap();
        load(&RemoteConfig::default(), other.path()).unwrap();
        let cfg = RemoteConfig {
            tls_cert: Some(dir.path().join("remote/cert.pem")),
            tls_key: Some(other.path().join("remote/key.pem")),
            ..RemoteConfig::default()
        };
        let err = format!("{:#}", load(&cfg, dir.path()).unwrap_err());
        assert!(err.contains("does not fit"), "{err}");
        let cfg = RemoteConfig {
            tls_cert: Some(dir.path().join("missing.pem")),
            tls_key: Some(dir.path().join("remote/key.pem")),
            ..RemoteConfig::default()
        };
        let err = format!("{:#}", load(&cfg, dir.path()).unwrap_err());
        assert!(err.contains("missing.pem"), "{err}");
    }
}
