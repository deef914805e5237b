//! Channel keys: the secret a sandbox's guest agent presents when it opens its channel to the
//! guest listener (see [`crate::api::channel`]).
//!
//! A key is derived, not stored: `HMAC-SHA256(daemon secret, vmid ‖ sandbox created_at)`,
//! base64url. The daemon secret is 32 random bytes kept in a 0600 file of the daemon's data
//! directory ([`ChannelSecret::load_or_create`]). Binding the key to the sandbox's creation
//! instant means a vmid handed out again gets a new key, and the daemon checks the sandbox's
//! state too: a destroyed sandbox's key is refused. Nothing key-related is written to the
//! database, events or logs.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::ids::Vmid;
use crate::secrets::SecretValue;
use crate::time::Timestamp;

/// The daemon's channel secret (32 bytes). `Debug` never shows it.
#[derive(Clone)]
pub struct ChannelSecret(Zeroizing<[u8; 32]>);

impl fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelSecret(<redacted>)")
    }
}

impl ChannelSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// Reads the secret from `path`, or creates it there (mode 0600, written to a temporary
    /// file and renamed, so a crash never leaves a short secret).
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not a 32-byte channel secret", path.display()),
                    )
                })?;
                Ok(Self(Zeroizing::new(arr)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = Self::generate();
                let tmp = path.with_extension("tmp");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(secret.0.as_ref())?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)?;
                Ok(secret)
            }
            Err(e) => Err(e),
        }
    }

    /// The channel key of the sandbox `vmid` created at `created_at`.
    pub fn key_for(&self, vmid: Vmid, created_at: &Timestamp) -> SecretValue {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.as_ref()).unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"agentlab-channel-v1\0");
        mac.update(vmid.get().to_string().as_bytes());
        mac.update(b"\0");
        mac.update(created_at.to_rfc3339().as_bytes());
        let tag = Zeroizing::new(mac.finalize().into_bytes().to_vec());
        SecretValue::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_slice()))
    }

    /// Whether `presented` is the key of sandbox `vmid` created at `created_at` (constant
    /// time).
    pub fn verify(&self, vmid: Vmid, created_at: &Timestamp, presented: &str) -> bool {
        let expected = self.key_for(vmid, created_at);
        expected
            .expose()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }
}

/// HMAC accepts keys of any length; this is never reached.
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 takes keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bound_to_vmid_creation_and_secret() {
        let s = ChannelSecret::generate();
        let t1 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00.000000001Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let t2 = t1 + chrono::Duration::nanoseconds(1);
        let v1 = Vmid::new(100).expect("vmid");
        let v2 = Vmid::new(101).expect("vmid");
        let k = s.key_for(v1, &t1);
        assert!(s.verify(v1, &t1, k.expose()));
        assert!(!s.verify(v2, &t1, k.expose()), "another sandbox");
        assert!(!s.verify(v1, &t2, k.expose()), "the vmid reused later");
        assert!(
            !ChannelSecret::generate().verify(v1, &t1, k.expose()),
            "another daemon"
        );
        assert!(!s.verify(v1, &t1, ""));
        assert!(!format!("{s:?}").contains(k.expose()));
    }

    #[test]
    fn the_secret_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("channel.secret");
        let a = ChannelSecret::load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = ChannelSecret::load_or_create(&path).expect("load");
        let t = chrono::Utc::now();
        let v = Vmid::new(100).expect("vmid");
        assert_eq!(a.key_for(v, &t).expose(), b.key_for(v, &t).expose());
        std::fs::write(&path, b"short").expect("write");
        assert!(ChannelSecret::load_or_create(&path).is_err());
    }
}
