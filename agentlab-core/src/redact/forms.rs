//! Fixed-string forms of a value, found with a substring search: base64 and base64url (whole,
//! padded and unpadded, and the cores at the three byte alignments inside a longer blob) and
//! hex (lower- and upper-case). Escaped forms are matched by [`super::escaped`] instead.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// Every fixed-string form of `value` (the value as given, line breaks included).
pub(super) fn fixed_forms(value: &[u8]) -> Vec<Zeroizing<String>> {
    let mut out = base64_forms(value);
    out.push(Zeroizing::new(hex::encode(value)));
    out.push(Zeroizing::new(hex::encode_upper(value)));
    out
}

/// Base64 and base64url forms of `value`: whole (padded and unpadded) and the three
/// alignment cores used inside longer blobs.
fn base64_forms(value: &[u8]) -> Vec<Zeroizing<String>> {
    let mut out = vec![
        Zeroizing::new(STANDARD.encode(value)),
        Zeroizing::new(STANDARD_NO_PAD.encode(value)),
        Zeroizing::new(URL_SAFE.encode(value)),
        Zeroizing::new(URL_SAFE_NO_PAD.encode(value)),
    ];
    for prefix in 0..3usize {
        let mut buf = Zeroizing::new(vec![0u8; prefix]);
        buf.extend_from_slice(value);
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = Zeroizing::new(engine.encode(buf.as_slice()));
            // Characters carrying bits of the prefix: 0, 2 or 3.
            let head = [0, 2, 3][prefix];
            // The last character carries bits of the following byte unless aligned.
            let tail = usize::from(!(prefix + value.len()).is_multiple_of(3));
            if encoded.len() > head + tail {
                out.push(Zeroizing::new(
                    encoded[head..encoded.len() - tail].to_owned(),
                ));
            }
        }
    }
    out
}
