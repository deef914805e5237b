//! The former [`super::LineRedactor`], which re-marked its whole held window on every line:
//! the reference the linear one must equal (tests only).

use std::fmt;

use zeroize::Zeroizing;

use crate::redact::redactor::{Redactor, render};

/// Streaming redaction of lines: values split across line boundaries are still caught.
///
/// Lines are held back until at least [`Redactor::max_pattern_len`] bytes of later text have
/// arrived (no future match can reach them any more), so output lags input by about one
/// secret's length. Call [`LineRedactor::flush`] when the stream goes idle (emits everything
/// now; only the remainder of a value split across the flush point is still redacted) and
/// [`LineRedactor::finish`] at the end.
pub struct ReferenceLineRedactor {
    redactor: Redactor,
    held: Vec<HeldLine>,
}

struct HeldLine {
    text: Zeroizing<String>,
    mask: Vec<bool>,
    /// Already emitted by `flush`; kept only as context for later matches.
    emitted: bool,
}

impl fmt::Debug for ReferenceLineRedactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReferenceLineRedactor")
            .field("redactor", &self.redactor)
            .field("held_lines", &self.held.len())
            .finish()
    }
}

impl ReferenceLineRedactor {
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
