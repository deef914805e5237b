//! Certificate pinning for TLS clients (feature `tls`): the SHA-256 fingerprint of a
//! certificate as AgentLab prints it, and a rustls verifier that leaves the trust decision to
//! a closure over the presented leaf's fingerprint while still checking the handshake
//! signatures. Used by the Proxmox client (`pve.fingerprint`) and by `agentlab-client`
//! (remote API pins).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// SHA-256 fingerprint of a DER certificate, uppercase hex pairs joined by `:`.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The decision over a presented leaf certificate's fingerprint (`AA:BB:…`).
pub type PinCheck = dyn Fn(&str) -> Result<(), rustls::Error> + Send + Sync;

/// A verifier that accepts a server exactly when `check` accepts its leaf's fingerprint
/// (names and chains are not looked at: the pin is the trust), and verifies the handshake
/// signatures with `provider`'s algorithms.
pub struct PinVerifier {
    provider: Arc<CryptoProvider>,
    check: Box<PinCheck>,
}

impl std::fmt::Debug for PinVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinVerifier")
    }
}

impl PinVerifier {
    /// A verifier deciding with `check`.
    pub fn new(
        provider: Arc<CryptoProvider>,
        check: impl Fn(&str) -> Result<(), rustls::Error> + Send + Sync + 'static,
    ) -> Self {
        Self {
            provider,
            check: Box::new(check),
        }
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        (self.check)(&fingerprint_of(end_entity.as_ref())).map(|()| ServerCertVerified::assertion())
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

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_are_colon_separated_uppercase_sha256() {
        let fp = super::fingerprint_of(b"certificate");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(
            fp.chars()
                .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }
}
