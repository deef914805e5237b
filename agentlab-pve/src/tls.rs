//! TLS trust for the PVE API: cluster CA file, pinned leaf-certificate fingerprint (Proxmox's
//! own practice), or an explicit insecure switch that logs a loud warning.

use std::sync::Arc;

use agentlab_core::tls_pin::PinVerifier;

use crate::error::PveError;
use crate::options::TlsOptions;

/// Parses `AA:BB:…` (32 bytes, colons optional) into bytes.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], PveError> {
    let hex_str: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hex_str)
        .map_err(|_| PveError::Setup(format!("fingerprint is not hex: {s}")))?;
    bytes
        .try_into()
        .map_err(|_| PveError::Setup("fingerprint must be 32 bytes (SHA-256)".into()))
}

pub use agentlab_core::tls_pin::fingerprint_of;

/// Applies the trust mode to a reqwest builder.
pub fn configure(
    builder: reqwest::ClientBuilder,
    tls: &TlsOptions,
) -> Result<reqwest::ClientBuilder, PveError> {
    let modes = usize::from(tls.ca_file.is_some())
        + usize::from(tls.fingerprint.is_some())
        + usize::from(tls.insecure);
    if modes > 1 {
        return Err(PveError::Setup(
            "set only one of tls.ca_file, tls.fingerprint, tls.insecure".into(),
        ));
    }
    if tls.insecure {
        tracing::warn!(
            "PVE TLS certificate verification is DISABLED (tls.insecure = true): anyone on the path can impersonate the PVE API and steal the token"
        );
        return Ok(builder.danger_accept_invalid_certs(true));
    }
    if let Some(fp) = &tls.fingerprint {
        let fingerprint = parse_fingerprint(fp)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| PveError::Setup(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier::new(provider, move |fp| {
                if parse_fingerprint(fp).is_ok_and(|b| b == fingerprint) {
                    Ok(())
                } else {
                    Err(rustls::Error::General(
                        "server certificate does not match the pinned fingerprint".into(),
                    ))
                }
            })))
            .with_no_client_auth();
        return Ok(builder.use_preconfigured_tls(config));
    }
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| PveError::Setup(format!("cannot read CA file {}: {e}", path.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| PveError::Setup(format!("invalid CA file {}: {e}", path.display())))?;
        return Ok(builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert));
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let fp = fingerprint_of(b"certificate");
        assert_eq!(fp.len(), 32 * 3 - 1);
        let bytes = parse_fingerprint(&fp).unwrap();
        assert_eq!(parse_fingerprint(&fp.replace(':', "")).unwrap(), bytes);
        assert!(parse_fingerprint("AA:BB").is_err());
        assert!(parse_fingerprint(&"ZZ:".repeat(32)).is_err());
    }
}
