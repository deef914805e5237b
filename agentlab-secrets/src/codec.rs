//! Bundle (de)serialization and age encryption with zeroized plaintext buffers.
//!
//! The plaintext YAML only ever lives in a [`SecretBuf`], whose growth copies the old
//! contents into a new allocation and zeroizes the old one, so no stale plaintext is left in
//! freed memory by our code (buffers inside `yaml_serde` and `age` are outside our control).

use std::io::{self, Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::x25519::{Identity, Recipient};
use age::{Decryptor, Encryptor};
use agentlab_core::SecretBundle;
use zeroize::{Zeroize, Zeroizing};

use crate::error::SecretsError;

/// A byte buffer that never leaves plaintext behind when it grows or is dropped.
#[derive(Default)]
pub(crate) struct SecretBuf(Zeroizing<Vec<u8>>);

impl SecretBuf {
    fn reserve(&mut self, extra: usize) {
        let needed = self.0.len() + extra;
        if needed <= self.0.capacity() {
            return;
        }
        let mut grown = Zeroizing::new(Vec::with_capacity(
            needed.max(self.0.capacity() * 2).max(4096),
        ));
        grown.extend_from_slice(&self.0);
        // The old allocation is zeroized when it is dropped here.
        self.0 = grown;
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl Write for SecretBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reserve(buf.len());
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serializes `bundle` to YAML and encrypts it (ASCII-armored) to `recipients`.
pub(crate) fn encrypt_bundle(
    name: &str,
    bundle: &SecretBundle,
    recipients: &[Recipient],
) -> Result<Vec<u8>, SecretsError> {
    if recipients.is_empty() {
        return Err(SecretsError::NoRecipients);
    }
    let fail = |reason: String| SecretsError::Encrypt {
        bundle: name.to_owned(),
        reason,
    };
    let mut plain = SecretBuf::default();
    serde_yaml::to_writer(&mut plain, bundle)
        .map_err(|_| fail("cannot serialize the bundle".to_owned()))?;
    let encryptor = Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)
        .map_err(|e| fail(e.to_string()))?;
    let mut writer = encryptor
        .wrap_output(armor)
        .map_err(|e| fail(e.to_string()))?;
    writer
        .write_all(plain.as_slice())
        .map_err(|e| fail(e.to_string()))?;
    writer
        .finish()
        .and_then(ArmoredWriter::finish)
        .map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// Decrypts an (armored or binary) age file with `identities` and parses the bundle.
pub(crate) fn decrypt_bundle(
    name: &str,
    ciphertext: &[u8],
    identities: &[Identity],
) -> Result<SecretBundle, SecretsError> {
    let decrypt_err = |reason: String| SecretsError::Decrypt {
        bundle: name.to_owned(),
        reason,
    };
    let decryptor = Decryptor::new_buffered(ArmoredReader::new(ciphertext))
        .map_err(|e| decrypt_err(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| decrypt_err(e.to_string()))?;
    let mut plain = SecretBuf::default();
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        let n = reader
            .read(chunk.as_mut_slice())
            .map_err(|e| decrypt_err(e.to_string()))?;
        if n == 0 {
            break;
        }
        plain
            .write_all(&chunk[..n])
            .map_err(|e| decrypt_err(e.to_string()))?;
    }
    chunk.zeroize();
    serde_yaml::from_slice(plain.as_slice()).map_err(|e| SecretsError::Corrupt {
        bundle: name.to_owned(),
        // Only the position: the message of a typed YAML error can quote content.
        reason: match e.location() {
            Some(l) => format!(
                "invalid bundle YAML at line {}, column {}",
                l.line(),
                l.column()
            ),
            None => "invalid bundle YAML".to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentlab_core::{GitCredentials, SecretValue};

    #[test]
    fn round_trip_to_two_recipients() {
        let a = Identity::generate();
        let b = Identity::generate();
        let mut bundle = SecretBundle::default();
        bundle
            .env
            .insert("API_KEY".into(), SecretValue::new("sk-round-trip"));
        bundle.git = Some(GitCredentials::Https {
            username: "x-access-token".into(),
            token: SecretValue::new("ghp_token"),
        });
        let ct = encrypt_bundle("t", &bundle, &[a.to_public(), b.to_public()]).unwrap();
        let text = String::from_utf8(ct.clone()).unwrap();
        assert!(text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!text.contains("sk-round-trip"));
        assert_eq!(decrypt_bundle("t", &ct, &[a]).unwrap(), bundle);
        assert_eq!(decrypt_bundle("t", &ct, &[b]).unwrap(), bundle);
        let other = Identity::generate();
        assert!(matches!(
            decrypt_bundle("t", &ct, &[other]),
            Err(SecretsError::Decrypt { .. })
        ));
    }

    #[test]
    fn corrupt_yaml_error_does_not_quote_content() {
        let id = Identity::generate();
        let mut plain = Vec::new();
        {
            let enc =
                Encryptor::with_recipients(std::iter::once(&id.to_public() as &dyn age::Recipient))
                    .unwrap();
            let mut w = enc.wrap_output(&mut plain).unwrap();
            w.write_all(b"env:\n  KEY: [leaked-secret-value, 2]\nbogus: 1\n")
                .unwrap();
            w.finish().unwrap();
        }
        let err = decrypt_bundle("c", &plain, &[id]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SecretsError::Corrupt { .. }), "{msg}");
        assert!(!msg.contains("leaked-secret-value"), "{msg}");
    }

    #[test]
    fn secret_buf_grows_and_keeps_content() {
        let mut buf = SecretBuf::default();
        for i in 0..10_000u32 {
            buf.write_all(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(buf.as_slice().len(), 40_000);
        assert_eq!(&buf.as_slice()[4..8], &1u32.to_le_bytes());
    }
}
