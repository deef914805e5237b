//! Identity files (age-keygen format) and recipient lists.
//!
//! An identity file holds one or more `AGE-SECRET-KEY-1…` lines; `#` lines and blank lines are
//! ignored. A recipients file holds one `age1…` x25519 public key per line, with the same
//! comment rules.

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age::x25519::{Identity, Recipient};
use zeroize::Zeroizing;

use crate::error::SecretsError;
use crate::fsutil::{atomic_write, open_private};

/// Reads and parses the identity file, refusing group/world-readable files.
pub(crate) fn load_identities(path: &Path) -> Result<Vec<Identity>, SecretsError> {
    let mut file = open_private(path)?;
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(SecretsError::io(path))?;
    let mut out = Vec::new();
    for (i, line) in content_lines(&text) {
        let identity =
            Identity::from_str(line).map_err(|reason| SecretsError::IdentityInvalid {
                path: path.to_owned(),
                reason: format!("line {}: {reason}", i + 1),
            })?;
        out.push(identity);
    }
    if out.is_empty() {
        return Err(SecretsError::IdentityInvalid {
            path: path.to_owned(),
            reason: "no AGE-SECRET-KEY line".to_owned(),
        });
    }
    Ok(out)
}

/// Creates a new x25519 identity file at `path` (mode 0600, parent directories 0700) and
/// returns its public key (`age1…`). The file looks like `age-keygen` output.
pub fn generate_identity_file(path: &Path) -> Result<String, SecretsError> {
    let identity = Identity::generate();
    let public = identity.to_public().to_string();
    let secret = identity.to_string();
    let text = Zeroizing::new(format!(
        "# AgentLab secrets identity (age x25519). Keep this file mode 0600.\n\
         # public key: {public}\n{}\n",
        secret.expose_secret()
    ));
    atomic_write(path, text.as_bytes())?;
    Ok(public)
}

/// Parses recipient lines (comments and blank lines allowed).
pub(crate) fn parse_recipients(text: &str) -> Result<Vec<Recipient>, SecretsError> {
    content_lines(text)
        .map(|(_, line)| parse_recipient(line))
        .collect()
}

/// Parses one `age1…` recipient.
pub(crate) fn parse_recipient(text: &str) -> Result<Recipient, SecretsError> {
    Recipient::from_str(text.trim()).map_err(|reason| SecretsError::InvalidRecipient {
        recipient: text.to_owned(),
        reason: reason.to_owned(),
    })
}

/// The text of a recipients file listing `recipients`.
pub(crate) fn recipients_file_text(recipients: &[Recipient]) -> String {
    let mut text = String::from(
        "# age x25519 recipients AgentLab encrypts secret bundles to (one per line).\n",
    );
    for r in recipients {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    text
}

fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_identity_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/age.key");
        let public = generate_identity_file(&path).unwrap();
        assert!(public.starts_with("age1"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("# public key: {public}")));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let Ok(ids) = load_identities(&path) else {
            panic!("identity does not load")
        };
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].to_public().to_string(), public);
    }

    #[test]
    fn refuses_group_readable_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("age.key");
        generate_identity_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let Err(err) = load_identities(&path) else {
            panic!("0640 identity accepted")
        };
        let msg = err.to_string();
        assert!(
            matches!(err, SecretsError::IdentityPermissions { mode: 0o640, .. }),
            "{msg}"
        );
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("chmod 600"), "{msg}");
    }

    #[test]
    fn invalid_identity_and_recipients_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("age.key");
        atomic_write(&path, b"# nothing here\n").unwrap();
        assert!(matches!(
            load_identities(&path),
            Err(SecretsError::IdentityInvalid { .. })
        ));
        atomic_write(&path, b"AGE-SECRET-KEY-1NOTAKEY\n").unwrap();
        let Err(err) = load_identities(&path) else {
            panic!("bogus key accepted")
        };
        let err = err.to_string();
        assert!(!err.contains("NOTAKEY"), "{err}");
        assert!(matches!(
            load_identities(&dir.path().join("missing")),
            Err(SecretsError::IdentityMissing { .. })
        ));
        assert!(parse_recipients("# c\n\nage1nope\n").is_err());
        let r = Identity::generate().to_public();
        let parsed = parse_recipients(&recipients_file_text(std::slice::from_ref(&r))).unwrap();
        assert_eq!(parsed[0].to_string(), r.to_string());
    }
}
