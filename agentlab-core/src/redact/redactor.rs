use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::escaped::{self, MAX_EXPANSION};
use super::forms::fixed_forms;
use super::stream::LineRedactor;
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
    /// The values, matched literally or escaped byte by byte ([`escaped`]), deduplicated.
    values: Vec<Zeroizing<Vec<u8>>>,
    /// Fixed-string forms (base64, hex), without line breaks, longest first, deduplicated.
    patterns: Vec<Zeroizing<String>>,
    /// For each byte value, the indexes of the patterns starting with it.
    by_first: Vec<Vec<usize>>,
    /// Longest text a match can span, in bytes.
    max_len: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.inner.values.len())
            .field("patterns", &self.inner.patterns.len())
            .field("max_len", &self.inner.max_len)
            .finish()
    }
}

impl Redactor {
    /// Builds a redactor for `values`; values shorter than [`MIN_SECRET_LEN`] are ignored.
    pub fn new(values: &[&str]) -> Self {
        let mut kept: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut patterns: Vec<Zeroizing<String>> = Vec::new();
        for value in values {
            let chars = value.chars().filter(|c| *c != '\n' && *c != '\r').count();
            if chars < MIN_SECRET_LEN {
                continue;
            }
            kept.push(Zeroizing::new(value.as_bytes().to_vec()));
            // Encodings are of the value as given (line breaks included).
            patterns.extend(fixed_forms(value.as_bytes()));
        }
        kept.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
        kept.dedup();
        patterns.retain(|p| !p.is_empty());
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        let max_len = patterns
            .iter()
            .map(|p| p.len())
            .chain(kept.iter().map(|v| v.len() * MAX_EXPANSION))
            .max()
            .unwrap_or(0);
        Self {
            inner: Arc::new(Inner {
                values: kept,
                by_first: first_bytes(&patterns),
                patterns,
                max_len,
            }),
        }
    }

    /// A redactor for every value of `bundle` ([`SecretBundle::values`]).
    pub fn from_bundle(bundle: &SecretBundle) -> Self {
        Self::new(&bundle.values())
    }

    /// True if nothing will ever be redacted.
    pub fn is_empty(&self) -> bool {
        self.inner.values.is_empty()
    }

    /// Longest text in bytes a match can span (the look-behind a stream needs).
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

    /// Whether `text` contains any secret value or encoding that [`Redactor::redact`] would
    /// replace.
    pub fn finds(&self, text: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        let segments: Vec<&str> = text.split('\n').collect();
        let mut masks: Vec<Vec<bool>> = segments.iter().map(|s| vec![false; s.len()]).collect();
        self.mark(&segments, &mut masks);
        masks.iter().flatten().any(|m| *m)
    }

    /// A streaming redactor over lines that shares this redactor's patterns.
    pub fn line_redactor(&self) -> LineRedactor {
        LineRedactor::new(self.clone())
    }

    /// Marks in `masks` (one per segment, one flag per byte) every byte covered by a match in
    /// the concatenation of `segments` with line breaks removed.
    pub(super) fn mark(&self, segments: &[&str], masks: &mut [Vec<bool>]) {
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
        self.matches_in(&joined, 0..joined.len(), |start, end| {
            for &(si, bi) in &origin[start..end] {
                masks[si][bi] = true;
            }
        });
    }

    /// Calls `hit(start, end)` for every match in `text` (line breaks already removed) that
    /// starts at a byte offset in `starts`; the match may run past `starts.end`. Only the text
    /// a match can span (`max_pattern_len` bytes from each start) is read, so checking each
    /// start once over a stream costs time linear in the stream.
    pub(super) fn matches_in(
        &self,
        text: &str,
        starts: std::ops::Range<usize>,
        mut hit: impl FnMut(usize, usize),
    ) {
        let bytes = text.as_bytes();
        let end = starts.end.min(text.len());
        // Every start is checked against the patterns beginning with its byte: the cost per
        // start does not depend on how long the patterns are.
        for at in starts.start..end {
            for &p in &self.inner.by_first[usize::from(bytes[at])] {
                let pattern = self.inner.patterns[p].as_bytes();
                if bytes[at..].starts_with(pattern) {
                    hit(at, at + pattern.len());
                }
            }
        }
        for value in &self.inner.values {
            let Some(&first) = value.iter().find(|b| **b != b'\n' && **b != b'\r') else {
                continue;
            };
            for at in starts.start..end {
                if !escaped::can_start(first, bytes[at]) {
                    continue;
                }
                if let Some(stop) = escaped::match_at(value, bytes, at)
                    && stop > at
                {
                    hit(at, stop);
                }
            }
        }
    }
}

/// For each byte value, the indexes of `patterns` that start with it.
fn first_bytes(patterns: &[Zeroizing<String>]) -> Vec<Vec<usize>> {
    let mut table = vec![Vec::new(); 256];
    for (i, p) in patterns.iter().enumerate() {
        if let Some(&b) = p.as_bytes().first() {
            table[usize::from(b)].push(i);
        }
    }
    table
}

/// `text` with every run of masked bytes replaced by one [`PLACEHOLDER`].
pub(super) fn render(text: &str, mask: &[bool]) -> String {
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
