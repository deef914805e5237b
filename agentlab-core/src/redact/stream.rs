//! [`LineRedactor`]: streaming redaction of lines.

use std::fmt;

use zeroize::Zeroizing;

use super::redactor::{Redactor, render};

/// Streaming redaction of lines: values split across line boundaries are still caught.
///
/// Lines are held back until at least [`Redactor::max_pattern_len`] bytes of later text have
/// arrived (no future match can reach them any more), so output lags input by about one
/// secret's length. Call [`LineRedactor::flush`] when the stream goes idle (emits everything
/// now; only the remainder of a value split across the flush point is still redacted) and
/// [`LineRedactor::finish`] at the end.
///
/// Each start position of the stream is checked once, when the longest possible match from
/// it has arrived, so the work is linear in the stream's length (not in the held window times
/// the number of lines).
pub struct LineRedactor {
    redactor: Redactor,
    held: Vec<HeldLine>,
    /// The held lines' text without line breaks: what matches run over. Its first `dead`
    /// bytes belong to released lines (dropped in bulk, so a release does not move the
    /// whole window).
    joined: Zeroizing<String>,
    /// For each byte of `joined`: the absolute number of its line and its byte in that line.
    origin: Vec<(u64, usize)>,
    /// Bytes at the start of `joined` and `origin` that belong to released lines.
    dead: usize,
    /// Absolute number of `held[0]`.
    first_line: u64,
    /// Start positions in `joined` below this were checked with every byte a match can span.
    checked: usize,
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
            joined: Zeroizing::new(String::new()),
            origin: Vec::new(),
            dead: 0,
            first_line: 0,
            checked: 0,
        }
    }

    /// Adds one line (without its line break) and returns the lines that are ready, redacted.
    pub fn push_line(&mut self, line: &str) -> Vec<String> {
        let number = self.first_line + self.held.len() as u64;
        for (bi, ch) in line.char_indices() {
            if ch == '\n' || ch == '\r' {
                continue;
            }
            self.joined.push(ch);
            self.origin
                .extend((0..ch.len_utf8()).map(|k| (number, bi + k)));
        }
        self.held.push(HeldLine {
            text: Zeroizing::new(line.to_owned()),
            mask: vec![false; line.len()],
            emitted: false,
        });
        self.scan(false);
        self.release(false)
    }

    /// Emits every held line now, keeping them as context so that the rest of a value split
    /// across this point is still redacted in later lines.
    pub fn flush(&mut self) -> Vec<String> {
        self.scan(true);
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
        self.scan(true);
        let out = self.release(true);
        self.joined.clear();
        self.origin.clear();
        self.dead = 0;
        self.checked = 0;
        out
    }

    /// Marks the matches starting at positions not checked yet. Without `partial`, only the
    /// positions followed by the longest match's length (their result is final); with it,
    /// every position (with the text there is; a later scan checks them again).
    fn scan(&mut self, partial: bool) {
        if self.redactor.is_empty() {
            return;
        }
        let len = self.joined.len();
        let settled = (len + 1).saturating_sub(self.redactor.max_pattern_len());
        let end = if partial { len } else { settled };
        if end <= self.checked {
            return;
        }
        let (held, origin, first) = (&mut self.held, &self.origin, self.first_line);
        self.redactor
            .matches_in(&self.joined, self.checked..end, |start, stop| {
                for &(line, bi) in &origin[start..stop] {
                    if let Some(l) = line
                        .checked_sub(first)
                        .and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| held.get_mut(i))
                    {
                        l.mask[bi] = true;
                    }
                }
            });
        self.checked = self.checked.max(settled);
    }

    /// Drops lines no future match can touch (all lines if `all`), returning the ones not yet
    /// emitted.
    fn release(&mut self, all: bool) -> Vec<String> {
        let need = self.redactor.max_pattern_len().saturating_sub(1);
        let mut after: usize = self.held.iter().map(|l| joined_len(&l.text)).sum();
        let mut count = 0;
        let mut dropped = 0;
        for line in &self.held {
            let n = joined_len(&line.text);
            after -= n;
            if !all && after < need {
                break;
            }
            count += 1;
            dropped += n;
        }
        self.first_line += count as u64;
        self.dead += dropped;
        self.checked = self.checked.max(self.dead);
        if self.dead > self.joined.len() / 2 {
            self.joined.drain(..self.dead);
            self.origin.drain(..self.dead);
            self.checked -= self.dead;
            self.dead = 0;
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

#[cfg(test)]
#[path = "stream_reference.rs"]
mod reference;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::reference::ReferenceLineRedactor;
    use crate::redact::Redactor;

    fn run(lines: &[String], flush_at: &[usize], r: &Redactor) -> (Vec<String>, Vec<String>) {
        let mut new = r.line_redactor();
        let mut old = ReferenceLineRedactor::new(r.clone());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, line) in lines.iter().enumerate() {
            a.extend(new.push_line(line));
            b.extend(old.push_line(line));
            if flush_at.contains(&i) {
                a.extend(new.flush());
                b.extend(old.flush());
            }
        }
        a.extend(new.finish());
        b.extend(old.finish());
        (a, b)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The linear stream gives exactly the output of the former one, which re-checked its
        /// whole window on every line.
        #[test]
        fn linear_stream_equals_the_window_rescan(
            secret in "[a-zA-Z0-9 %+&'\\\\é-]{6,14}",
            noise in proptest::collection::vec("[a-zA-Z0-9 %+&'\\\\é\r-]{0,12}", 0..12),
            cuts in proptest::collection::vec(0usize..40, 0..6),
            flush_at in proptest::collection::vec(0usize..14, 0..3),
        ) {
            let r = Redactor::new(&[&secret, "QWxhZGRpbjpvcGVu-value"]);
            let mut text = String::new();
            for (i, n) in noise.iter().enumerate() {
                text.push_str(n);
                match i % 3 {
                    0 => text.push_str(&secret),
                    // Percent-encoded: every byte as %XX.
                    1 => secret.bytes().for_each(|b| text.push_str(&format!("%{b:02X}"))),
                    _ => {}
                }
            }
            // Cut the text into lines at char boundaries.
            let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            let mut at: Vec<usize> = cuts
                .iter()
                .filter_map(|c| bounds.get(*c % bounds.len().max(1)).copied())
                .collect();
            at.sort_unstable();
            at.dedup();
            let mut lines = Vec::new();
            let mut prev = 0;
            for c in at {
                lines.push(text[prev..c].to_owned());
                prev = c;
            }
            lines.push(text[prev..].to_owned());
            let (new, old) = run(&lines, &flush_at, &r);
            prop_assert_eq!(new, old);
        }
    }
}
