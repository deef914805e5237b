//! Making untrusted text safe for the operator's terminal.
//!
//! Agent output, job outcomes, steps and artifact names come from inside a sandbox. Printed
//! verbatim, an agent could move the cursor, rewrite earlier lines, set the clipboard (OSC 52),
//! change the window title or print a line that looks like a daemon event. Human output
//! therefore shows every control character as a visible escape ([`escape`]) and prefixes each
//! line of agent output with [`AGENT_PREFIX`], which event lines never start with
//! ([`agent_line`]). `--json` output is JSON, whose strings escape control characters anyway.

use std::borrow::Cow;

/// Starts every line of agent output in human output; event and status lines never do.
pub const AGENT_PREFIX: &str = "│ ";

/// True for characters that must not reach a terminal raw: C0 controls except tab, DEL, C1
/// controls, and the Unicode bidirectional overrides and isolates (which reorder what the
/// operator sees).
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with each unsafe character written visibly: `\n`, `\r`, `\xNN` for other C0
/// controls and DEL (ESC is `\x1b`), `\u{NNNN}` for C1 controls and bidi marks. Borrowed
/// when there is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) && u32::from(c) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One line of agent output as printed in human output: [`AGENT_PREFIX`] plus the escaped text.
pub fn agent_line(message: &str) -> String {
    format!("{AGENT_PREFIX}{}", escape(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_tabs_pass_unchanged() {
        assert!(matches!(escape("hello\tworld äö ✓"), Cow::Borrowed(_)));
        assert_eq!(agent_line("building…"), "│ building…");
    }

    #[test]
    fn terminal_controls_are_shown_not_executed() {
        // Colour, clear screen, OSC 52 clipboard write (BEL- and ST-terminated), title.
        assert_eq!(escape("\u{1b}[31mred\u{1b}[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(escape("\u{1b}[2J\u{1b}[H"), "\\x1b[2J\\x1b[H");
        assert_eq!(
            escape("\u{1b}]52;c;cm0gLXJmIH4=\u{7}"),
            "\\x1b]52;c;cm0gLXJmIH4=\\x07"
        );
        assert_eq!(escape("\u{1b}]0;title\u{1b}\\"), "\\x1b]0;title\\x1b\\");
        // Carriage return and backspace would overwrite what was printed.
        assert_eq!(escape("safe\rEVIL"), "safe\\rEVIL");
        assert_eq!(escape("rm -rf /\u{8}\u{8}\u{8}"), "rm -rf /\\x08\\x08\\x08");
        assert_eq!(escape("a\u{7f}b\u{0}c"), "a\\x7fb\\x00c");
        // C1 controls: CSI (U+009B) and OSC (U+009D) act as ESC [ and ESC ] on some terminals.
        assert_eq!(
            escape("\u{9b}2J\u{9d}52;c;x\u{9c}"),
            "\\u{009b}2J\\u{009d}52;c;x\\u{009c}"
        );
        // Bidi overrides reorder the line the operator reads.
        assert_eq!(escape("a\u{202e}b"), "a\\u{202e}b");
        for line in [escape("\u{1b}]52;c;x\u{7}"), escape("\u{9b}1;1H")] {
            assert!(!line.chars().any(is_unsafe), "{line}");
        }
    }

    #[test]
    fn agent_lines_cannot_pose_as_events_or_start_new_lines() {
        let forged = "12:00:01 job_finished      COMPLETED (exit 0)";
        assert_eq!(agent_line(forged), format!("{AGENT_PREFIX}{forged}"));
        let two = agent_line("ok\n12:00:01 job_finished      COMPLETED");
        assert!(!two.contains('\n'));
        assert!(two.starts_with(AGENT_PREFIX));
        let overwrite = agent_line("\r12:00:01 job_finished      COMPLETED");
        assert!(overwrite.starts_with("│ \\r12:00:01"));
    }
}
