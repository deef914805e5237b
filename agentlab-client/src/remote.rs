//! The remote endpoint: HTTPS to agentlabd's remote API with an API token, the server's
//! certificate trusted by a given fingerprint, a given CA file, or pinned on first use.
//!
//! **Pinning on first use** (the default, like SSH's `known_hosts`): the first connection to
//! `host:port` records the SHA-256 of the server's certificate in the known-endpoints file
//! (`$XDG_CONFIG_HOME/agentlab/known_endpoints`, else `~/.config/agentlab/known_endpoints`,
//! one `host:port FINGERPRINT` line each); later connections must present the same
//! certificate, or fail with [`ClientError::CertificateChanged`] naming both fingerprints.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use agentlab_core::tls_pin::PinVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::error::ClientError;

/// The remote API's default port.
pub const DEFAULT_PORT: u16 = 8845;

/// How the client trusts the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The leaf certificate's SHA-256 (`AA:BB:…`, colons optional), as agentlabd logs it.
    Fingerprint(String),
    /// A PEM file of CA certificates; the server's name must match its certificate.
    CaFile(PathBuf),
    /// Pin on first use in this known-endpoints file.
    FirstUse(PathBuf),
}

impl Trust {
    /// [`Trust::FirstUse`] in the default known-endpoints file.
    pub fn first_use_default() -> Self {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        Self::FirstUse(base.join("agentlab/known_endpoints"))
    }
}

/// Where and how to reach a remote agentlabd.
#[derive(Clone)]
pub struct RemoteOptions {
    /// `https://host[:port]` (port 8845 when absent).
    pub url: String,
    /// The API token (`alab_…`).
    pub token: Option<String>,
    /// Certificate trust.
    pub trust: Trust,
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("trust", &self.trust)
            .finish()
    }
}

/// A parsed, ready remote endpoint.
pub(crate) struct Remote {
    /// `https://host:port`.
    pub url: String,
    /// `host:port` for TCP and the Host header.
    pub authority: String,
    /// TLS server name.
    pub server_name: ServerName<'static>,
    /// `Bearer …` header value.
    pub bearer: Option<String>,
    /// The TLS client configuration.
    pub tls: Arc<rustls::ClientConfig>,
    /// What the pin verifier saw.
    pub pins: Arc<Mutex<PinEvents>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What happened to pins during handshakes.
#[derive(Debug, Default, Clone)]
pub(crate) struct PinEvents {
    /// A first-use pin written: (fingerprint, file).
    pub pinned: Option<(String, PathBuf)>,
    /// A mismatch: (pinned, presented, file if first-use).
    pub mismatch: Option<(String, String, Option<PathBuf>)>,
}

fn config_err(reason: impl Into<String>) -> ClientError {
    ClientError::Config(reason.into())
}

pub use agentlab_core::tls_pin::fingerprint_of;

fn normalize_fingerprint(s: &str) -> Result<String, ClientError> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hex)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            config_err(format!(
                "fingerprint {s:?} is not a SHA-256 (32 bytes of hex)"
            ))
        })?;
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Splits `https://host[:port][/]` into (host, port).
fn parse_url(url: &str) -> Result<(String, u16), ClientError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        config_err(format!(
            "endpoint {url:?} must start with https:// (the remote API speaks only TLS)"
        ))
    })?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(config_err(format!(
            "endpoint {url:?} must be https://HOST[:PORT] without a path or user"
        )));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| config_err(format!("endpoint {url:?}: unclosed [")))?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (rest.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| config_err(format!("endpoint {url:?}: bad port {p:?}")))?,
        None => DEFAULT_PORT,
    };
    Ok((host, port))
}

impl Remote {
    /// Checks the options and builds the TLS setup.
    pub(crate) fn new(opts: &RemoteOptions) -> Result<Self, ClientError> {
        let (host, port) = parse_url(&opts.url)?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| config_err(format!("endpoint host {host:?}: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pins = Arc::new(Mutex::new(PinEvents::default()));
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(format!("TLS setup: {e}")))?;
        let mut tls = match &opts.trust {
            Trust::CaFile(path) => {
                let mut roots = rustls::RootCertStore::empty();
                use rustls::pki_types::pem::PemObject as _;
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| config_err(format!("CA file {}: {e}", path.display())))?;
                for c in certs {
                    let c =
                        c.map_err(|e| config_err(format!("CA file {}: {e}", path.display())))?;
                    roots
                        .add(c)
                        .map_err(|e| config_err(format!("CA file {}: {e}", path.display())))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Fingerprint(fp) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pin_verifier(
                    provider,
                    PinMode::Fixed(normalize_fingerprint(fp)?),
                    authority.clone(),
                    Arc::clone(&pins),
                )))
                .with_no_client_auth(),
            Trust::FirstUse(file) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pin_verifier(
                    provider,
                    PinMode::FirstUse(file.clone()),
                    authority.clone(),
                    Arc::clone(&pins),
                )))
                .with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let bearer = match &opts.token {
            Some(t) if t.trim().is_empty() || !t.is_ascii() || t.contains(char::is_whitespace) => {
                return Err(config_err("the API token is empty or not a single word"));
            }
            Some(t) => Some(format!("Bearer {t}")),
            None => None,
        };
        Ok(Self {
            url: format!("https://{authority}"),
            authority,
            server_name,
            bearer,
            tls: Arc::new(tls),
            pins,
        })
    }
}

#[derive(Debug)]
enum PinMode {
    Fixed(String),
    FirstUse(PathBuf),
}

/// The pinned fingerprint of `authority` in `file`, if any.
fn known_pin(file: &Path, authority: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == authority).then(|| parts.next().map(str::to_owned))?
    })
}

fn write_pin(file: &Path, authority: &str, fp: &str) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(file)?;
    writeln!(f, "{authority} {fp}")
}

/// The verifier for a pin mode: accepts the pinned certificate, pins on first use, and
/// records what happened in `events` for the caller's messages.
fn pin_verifier(
    provider: Arc<CryptoProvider>,
    mode: PinMode,
    authority: String,
    events: Arc<Mutex<PinEvents>>,
) -> PinVerifier {
    PinVerifier::new(provider, move |presented| {
        let mut events = events.lock().unwrap_or_else(PoisonError::into_inner);
        let (pinned, file) = match &mode {
            PinMode::Fixed(fp) => (Some(fp.clone()), None),
            PinMode::FirstUse(file) => (known_pin(file, &authority), Some(file.clone())),
        };
        match pinned {
            Some(p) if p.eq_ignore_ascii_case(presented) => Ok(()),
            Some(p) => {
                events.mismatch = Some((p, presented.to_owned(), file));
                Err(rustls::Error::General(
                    "the server certificate does not match the pinned fingerprint".into(),
                ))
            }
            None => {
                let file = file.unwrap_or_default();
                write_pin(&file, &authority, presented).map_err(|e| {
                    rustls::Error::General(format!(
                        "cannot record the pin in {}: {e}",
                        file.display()
                    ))
                })?;
                events.pinned = Some((presented.to_owned(), file));
                Ok(())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_are_named() {
        assert_eq!(parse_url("https://h:9000").unwrap(), ("h".into(), 9000));
        assert_eq!(parse_url("https://h/").unwrap(), ("h".into(), DEFAULT_PORT));
        assert_eq!(parse_url("https://[::1]:8").unwrap(), ("::1".into(), 8));
        for bad in [
            "http://h:1",
            "https://h:1/v1",
            "https://u@h",
            "https://h:x",
            "h:1",
        ] {
            assert!(
                matches!(parse_url(bad), Err(ClientError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn fingerprints_normalize() {
        let fp = fingerprint_of(b"x");
        assert_eq!(
            normalize_fingerprint(&fp.replace(':', "").to_lowercase()).unwrap(),
            fp
        );
        assert!(normalize_fingerprint("AB:CD").is_err());
    }

    #[test]
    fn pins_are_recorded_per_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/known_endpoints");
        assert_eq!(known_pin(&file, "h:1"), None);
        write_pin(&file, "h:1", "AA").unwrap();
        write_pin(&file, "h:2", "BB").unwrap();
        assert_eq!(known_pin(&file, "h:1").as_deref(), Some("AA"));
        assert_eq!(known_pin(&file, "h:2").as_deref(), Some("BB"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
