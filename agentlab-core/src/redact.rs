//! Redaction of secret values in text and in line streams.
//!
//! A [`Redactor`] is built from the secret values of a bundle
//! ([`SecretBundle::values`]) and replaces every occurrence of
//! each value — and of its common encodings — with [`PLACEHOLDER`]:
//!
//! - the raw value;
//! - standard base64 (with and without `=` padding) and base64url (with and without padding);
//! - the value's base64 *inside a longer base64 blob* (for example `base64("user:" + token)`):
//!   base64 of a substring depends on its byte offset modulo 3, so the value is encoded with
//!   0, 1 and 2 bytes of prefix and the edge characters that depend on the neighbouring bytes
//!   are stripped; the remaining core is matched, in both alphabets;
//! - percent-encoding: RFC 3986 (`%XX` for everything but `A-Z a-z 0-9 - . _ ~`), JavaScript
//!   `encodeURIComponent` (also keeps `! ' ( ) *`), HTML form encoding (space as `+`), and
//!   every-byte-encoded, each with upper- and lower-case hex digits.
//!
//! Matching ignores line breaks: text is searched with `\r` and `\n` removed, so a value that
//! was wrapped over two lines (or a multi-line value such as an SSH key printed line by line) is
//! still found; the line structure of the output is kept. Overlapping and adjacent matches are
//! merged into one placeholder.
//!
//! **Minimum length.** Values shorter than [`MIN_SECRET_LEN`] (6) characters are ignored: very
//! short values (`"1"`, `"true"`, `"main"`) would redact innocent text everywhere and make logs
//! useless. Keep real secrets long.
//!
//! **Not caught:** other encodings (hex, JSON/shell escaping, gzip, mixed-case
//! percent-encoding within one value, base64 wrapped *inside* the encoded form with
//! characters other than line breaks), partial values (a prefix of a token), and the two or
//! three edge characters of an embedded base64 form (they carry a few bits of the value).
//! A multi-field value (for example a whole `settings.json`) is only redacted as a whole;
//! put keys that may be printed on their own into separate values.
//!
//! [`LineRedactor`] applies the same matching to a stream of lines, holding back just enough
//! text (the longest pattern) to catch values split across line boundaries.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::secrets::SecretBundle;

/// What a redacted value is replaced with.
pub const PLACEHOLDER: &str = "[REDACTED]";

/// Values with fewer characters than this are not redacted (too many false positives).
pub const MIN_SECRET_LEN: usize = 6;

/// Replaces secret values and their encodings in text. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Every pattern to search for, without line breaks, longest first, deduplicated.
    patterns: Vec<Zeroizing<String>>,
    /// Length in bytes of the longest pattern.
    max_len: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.inner.patterns.len())
            .field("max_len", &self.inner.max_len)
            .finish()
    }
}

impl Redactor {
    /// Builds a redactor for `values`; values shorter than [`MIN_SECRET_LEN`] are ignored.
    pub fn new(values: &[&str]) -> Self {
        let mut patterns: Vec<Zeroizing<String>> = Vec::new();
        for value in values {
            let raw = Zeroizing::new(strip_line_breaks(value));
            if raw.chars().count() < MIN_SECRET_LEN {
                continue;
            }
            patterns.push(raw);
            // Encodings are of the value as given (line breaks included).
            patterns.extend(base64_forms(value.as_bytes()));
            patterns.extend(percent_forms(value.as_bytes()));
        }
        patterns.retain(|p| !p.is_empty());
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        let max_len = patterns.first().map_or(0, |p| p.len());
        Self {
            inner: Arc::new(Inner { patterns, max_len }),
        }
    }

    /// A redactor for every value of `bundle` ([`SecretBundle::values`]).
    pub fn from_bundle(bundle: &SecretBundle) -> Self {
        Self::new(&bundle.values())
    }

    /// True if nothing will ever be redacted.
    pub fn is_empty(&self) -> bool {
        self.inner.patterns.is_empty()
    }

    /// Length in bytes of the longest pattern (the look-behind a stream needs).
    pub fn max_pattern_len(&self) -> usize {
        self.inner.max_len
    }

    /// Returns `text` with every secret value and encoding replaced by [`PLACEHOLDER`].
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        let segments: Vec<&str> = text.split('\n').collect();
        let mut masks: Vec<Vec<bool>> = segments.iter().map(|s| vec![false; s.len()]).collect();
        self.mark(&segments, &mut masks);
        let rendered: Vec<String> = segments
            .iter()
            .zip(&masks)
            .map(|(s, m)| render(s, m))
            .collect();
        rendered.join("\n")
    }

    /// A streaming redactor over lines that shares this redactor's patterns.
    pub fn line_redactor(&self) -> LineRedactor {
        LineRedactor::new(self.clone())
    }

    /// Marks in `masks` (one per segment, one flag per byte) every byte covered by a match in
    /// the concatenation of `segments` with line breaks removed.
    fn mark(&self, segments: &[&str], masks: &mut [Vec<bool>]) {
        let mut joined = Zeroizing::new(String::new());
        let mut origin: Vec<(usize, usize)> = Vec::new();
        for (si, seg) in segments.iter().enumerate() {
            for (bi, ch) in seg.char_indices() {
                if ch == '\n' || ch == '\r' {
                    continue;
                }
                joined.push(ch);
                for k in 0..ch.len_utf8() {
                    origin.push((si, bi + k));
                }
            }
        }
        for pattern in &self.inner.patterns {
            let mut from = 0;
            while let Some(found) = joined
                .get(from..)
                .and_then(|rest| rest.find(pattern.as_str()))
            {
                let start = from + found;
                for &(si, bi) in &origin[start..start + pattern.len()] {
                    masks[si][bi] = true;
                }
                // Step one character so overlapping occurrences are found too.
                from = start + joined[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
}

/// `text` with every run of masked bytes replaced by one [`PLACEHOLDER`].
fn render(text: &str, mask: &[bool]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for (bi, ch) in text.char_indices() {
        if mask[bi] {
            if !in_run {
                out.push_str(PLACEHOLDER);
                in_run = true;
            }
        } else {
            in_run = false;
            out.push(ch);
        }
    }
    out
}

fn strip_line_breaks(s: &str) -> String {
    s.chars().filter(|c| *c != '\n' && *c != '\r').collect()
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

/// Percent-encoded forms of `value` (see the module docs), excluding the raw value itself.
fn percent_forms(value: &[u8]) -> Vec<Zeroizing<String>> {
    const RFC3986: &[u8] = b"-._~";
    const URI_COMPONENT: &[u8] = b"-._~!'()*";
    const FORM: &[u8] = b"-._*";
    let mut out = Vec::new();
    for upper in [true, false] {
        out.push(percent_encode(value, RFC3986, false, upper));
        out.push(percent_encode(value, URI_COMPONENT, false, upper));
        out.push(percent_encode(value, FORM, true, upper));
        out.push(Some(encode_all(value, upper)));
    }
    out.into_iter().flatten().collect()
}

/// Percent-encodes everything but ASCII alphanumerics and `keep`; `None` if nothing changed.
fn percent_encode(value: &[u8], keep: &[u8], plus: bool, upper: bool) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(value.len() * 3));
    let mut changed = false;
    for &b in value {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else if plus && b == b' ' {
            out.push('+');
            changed = true;
        } else {
            push_hex(&mut out, b, upper);
            changed = true;
        }
    }
    changed.then_some(out)
}

fn encode_all(value: &[u8], upper: bool) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(value.len() * 3));
    for &b in value {
        push_hex(&mut out, b, upper);
    }
    out
}

fn push_hex(out: &mut String, b: u8, upper: bool) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.push('%');
    out.push(char::from(digits[usize::from(b >> 4)]));
    out.push(char::from(digits[usize::from(b & 0x0f)]));
}

/// Streaming redaction of lines: values split across line boundaries are still caught.
///
/// Lines are held back until at least [`Redactor::max_pattern_len`] bytes of later text have
/// arrived (no future match can reach them any more), so output lags input by about one
/// secret's length. Call [`LineRedactor::flush`] when the stream goes idle (emits everything
/// now; only the remainder of a value split across the flush point is still redacted) and
/// [`LineRedactor::finish`] at the end.
pub struct LineRedactor {
    redactor: Redactor,
    held: Vec<HeldLine>,
}

struct HeldLine {
    text: Zeroizing<String>,
    mask: Vec<bool>,
    /// Already emitted by `flush`; kept only as context for later matches.
    emitted: bool,
}

impl fmt::Debug for LineRedactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineRedactor")
            .field("redactor", &self.redactor)
            .field("held_lines", &self.held.len())
            .finish()
    }
}

impl LineRedactor {
    /// A stream redactor using `redactor`'s patterns.
    pub fn new(redactor: Redactor) -> Self {
        Self {
            redactor,
            held: Vec::new(),
        }
    }

    /// Adds one line (without its line break) and returns the lines that are ready, redacted.
    pub fn push_line(&mut self, line: &str) -> Vec<String> {
        self.held.push(HeldLine {
            text: Zeroizing::new(line.to_owned()),
            mask: vec![false; line.len()],
            emitted: false,
        });
        self.mark_window();
        self.release(false)
    }

    /// Emits every held line now, keeping them as context so that the rest of a value split
    /// across this point is still redacted in later lines.
    pub fn flush(&mut self) -> Vec<String> {
        let out = self
            .held
            .iter_mut()
            .filter(|l| !l.emitted)
            .map(|l| {
                l.emitted = true;
                render(&l.text, &l.mask)
            })
            .collect();
        self.release(false);
        out
    }

    /// Emits every held line and resets the stream.
    pub fn finish(&mut self) -> Vec<String> {
        self.release(true)
    }

    fn mark_window(&mut self) {
        if self.redactor.is_empty() {
            return;
        }
        let segments: Vec<&str> = self.held.iter().map(|l| l.text.as_str()).collect();
        let mut masks: Vec<Vec<bool>> = self.held.iter().map(|l| l.mask.clone()).collect();
        self.redactor.mark(&segments, &mut masks);
        for (line, mask) in self.held.iter_mut().zip(masks) {
            line.mask = mask;
        }
    }

    /// Drops lines no future match can touch (all lines if `all`), returning the ones not yet
    /// emitted.
    fn release(&mut self, all: bool) -> Vec<String> {
        let need = self.redactor.max_pattern_len().saturating_sub(1);
        let mut after: usize = self.held.iter().map(|l| joined_len(&l.text)).sum();
        let mut count = 0;
        for line in &self.held {
            after -= joined_len(&line.text);
            if !all && after < need {
                break;
            }
            count += 1;
        }
        self.held
            .drain(..count)
            .filter(|l| !l.emitted)
            .map(|l| render(&l.text, &l.mask))
            .collect()
    }
}

/// Bytes of `s` that take part in matching (everything but line breaks).
fn joined_len(s: &str) -> usize {
    s.bytes().filter(|b| *b != b'\n' && *b != b'\r').count()
}
