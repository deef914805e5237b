//! TLS trust for the PVE API: cluster CA file, pinned leaf-certificate fingerprint (Proxmox's
//! own practice), or an explicit insecure switch that logs a loud warning.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

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

/// SHA-256 fingerprint of a DER certificate, formatted `AA:BB:…`.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "server certificate does not match the pinned fingerprint".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

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
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprint,
                provider,
            }))
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
