//! SSH public keys for `agentlab sandbox ssh`: the daemon config's and the profile's
//! `ssh_public_keys`, checked once when they are loaded and merged per sandbox.
//!
//! A key travels into cloud-init user-data (YAML) on Proxmox and QEMU and into
//! `authorized_keys` on every backend, so only the plain one-line form is accepted:
//! `TYPE BASE64 [COMMENT]`, a known key type, base64 that decodes to a blob naming that same
//! type, and a comment of printable characters. No `authorized_keys` options (`command=`,
//! `from=` …), no line breaks, no control characters, nothing YAML could read as structure.

use base64::Engine as _;

/// Key types accepted (what OpenSSH 9 offers; DSA is gone from it).
pub const KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Longest key line accepted (a 16384-bit RSA key is about 2.8 KB).
pub const MAX_LEN: usize = 8192;

/// Checks one public key line; the error says what is wrong without repeating the key.
pub fn validate(key: &str) -> Result<(), String> {
    if key.len() > MAX_LEN {
        return Err(format!("longer than {MAX_LEN} bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err("contains a line break or control character; give one key per entry".into());
    }
    let mut parts = key.splitn(3, ' ');
    let kind = parts.next().unwrap_or_default();
    let Some(blob) = parts.next().filter(|b| !b.is_empty()) else {
        return Err("expected `TYPE BASE64 [COMMENT]`".into());
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(format!(
            "unknown key type {kind:?} (expected one of {}; authorized_keys options are not accepted)",
            KEY_TYPES.join(", ")
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| "the key data is not base64".to_owned())?;
    // The blob starts with the key type as an SSH string (u32 length, bytes).
    let named = bytes
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| bytes.get(4..4 + n));
    if named != Some(kind.as_bytes()) {
        return Err(format!("the key data is not a {kind} key"));
    }
    if let Some(comment) = parts.next()
        && comment.chars().any(|c| !(c == ' ' || c.is_ascii_graphic()))
    {
        return Err("the comment must be printable ASCII".into());
    }
    Ok(())
}

/// `first` then the keys of `second` not already in it (the daemon's keys, then the
/// profile's), each trimmed.
pub fn merge(first: &[String], second: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in first.iter().chain(second) {
        let k = k.trim();
        if !k.is_empty() && !out.iter().any(|o| o == k) {
            out.push(k.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ed25519 public key (generated for these tests; no private key is kept).
    pub const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF64o0VDodINATLXFtw+CbG17MoDthD4kkGmh7vKoGB+ test@host";

    #[test]
    fn a_plain_key_passes_and_bad_ones_are_named() {
        assert_eq!(validate(ED25519), Ok(()));
        let no_comment = ED25519.rsplit_once(' ').expect("comment").0;
        assert_eq!(validate(no_comment), Ok(()));
        let cases = [
            (format!("{ED25519}\nssh-ed25519 AAAA x"), "line break"),
            (format!("command=\"sh\" {ED25519}"), "unknown key type"),
            (
                "ssh-dss AAAAB3NzaC1kc3MAAACBAP x".to_owned(),
                "unknown key type",
            ),
            ("ssh-ed25519".to_owned(), "TYPE BASE64"),
            ("ssh-ed25519 !!!! x".to_owned(), "not base64"),
            (
                ED25519.replacen("ssh-ed25519", "ssh-rsa", 1),
                "not a ssh-rsa key",
            ),
            (format!("{ED25519}\u{7f}"), "control"),
            (format!("{ED25519} é"), "printable"),
            ("x".repeat(MAX_LEN + 1), "longer"),
        ];
        for (key, why) in cases {
            let err = validate(&key).expect_err(&key);
            assert!(err.contains(why), "{key:?}: {err}");
            assert!(!err.contains("AAAAC3"), "the error repeats the key: {err}");
        }
    }

    #[test]
    fn merge_keeps_order_and_drops_duplicates() {
        let a = vec![ED25519.to_owned(), " ".to_owned()];
        let b = vec![format!(" {ED25519} "), "ssh-rsa AAAA b".to_owned()];
        assert_eq!(
            merge(&a, &b),
            vec![ED25519.to_owned(), "ssh-rsa AAAA b".to_owned()]
        );
    }
}
