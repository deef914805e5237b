//! Cheap checks run before the YAML parser sees untrusted text: nesting depth and the number
//! of flow collections.
//!
//! The YAML library refuses documents nested deeper than 128 levels, but only after it has
//! parsed the whole text into events, and each flow level costs it tens of microseconds: a
//! megabyte of `[` took 24 s of CPU. [`check_limits`] scans the text once, linearly, before
//! the parser runs:
//!
//! - the number of `[` and `{` characters outside full-line comments is an upper bound on the
//!   flow collections the parser can open, whatever the quoting, so capping it bounds the
//!   parser's work ([`YamlLimits::max_flow_collections`]);
//! - the nesting depth (block indentation levels, `- ` / `? ` indicators and open flow
//!   collections, with quoted scalars and comments skipped on each line) gives a precise
//!   error for deep documents ([`YamlLimits::max_depth`]).

use super::error::{ErrorDetails, ErrorKind};

/// Bounds on untrusted YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Deepest nesting of collections (block and flow).
    pub max_depth: usize,
    /// Most `[` / `{` characters in the text (outside full-line comments).
    pub max_flow_collections: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_flow_collections: 10_000,
        }
    }
}

/// Refuses `text` (named `file` in errors) with [`ErrorKind::Limit`] when it opens more flow
/// collections or nests deeper than `limits` allow; the error names the limit and the line.
pub fn check_limits(text: &str, file: &str, limits: &YamlLimits) -> Result<(), Box<ErrorDetails>> {
    let mut scan = Scan {
        max_depth: limits.max_depth,
        ..Scan::default()
    };
    for (i, line) in text.lines().enumerate() {
        let (depth, column) = scan.line(line);
        let at = |reason: String| {
            let mut d = ErrorDetails::file(ErrorKind::Limit, file, reason);
            d.line = Some(i + 1);
            d.column = Some(column);
            Box::new(d)
        };
        if depth > limits.max_depth {
            return Err(at(format!(
                "nesting deeper than {} levels (limit max_yaml_depth)",
                limits.max_depth
            )));
        }
        if scan.flow_opened > limits.max_flow_collections {
            let mut e = at(format!(
                "more than {} flow collections ([ or {{) (limit max_yaml_flow_collections)",
                limits.max_flow_collections
            ));
            e.column = None;
            return Err(e);
        }
    }
    Ok(())
}

/// Scanner state carried from line to line.
#[derive(Debug, Default)]
struct Scan {
    /// Indentation of the enclosing block collections.
    indents: Vec<usize>,
    /// Open flow collections.
    flow: usize,
    /// `[` and `{` seen so far.
    flow_opened: usize,
    /// The depth limit (the column reported is where it is first exceeded).
    max_depth: usize,
}

impl Scan {
    /// Scans one line; returns the deepest nesting reached on it and the 1-based column
    /// where it first exceeded the limit (or was reached).
    fn line(&mut self, line: &str) -> (usize, usize) {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return (0, 1);
        }
        if trimmed.starts_with("---") || trimmed.starts_with("...") {
            self.indents.clear();
        }
        // Every bracket counts, whatever the quoting: a sound bound on the parser's work.
        self.flow_opened += line.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
        let indent = line.len() - trimmed.len();
        if self.flow == 0 {
            while self.indents.last().is_some_and(|&i| i >= indent) {
                self.indents.pop();
            }
            self.indents.push(indent);
        }
        let bytes = line.as_bytes();
        let mut block = self.indents.len();
        let (mut deepest, mut column) = (block + self.flow, indent + 1);
        let mut node_start = true;
        let mut i = indent;
        while i < bytes.len() {
            let b = bytes[i];
            let next_blank = bytes.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t');
            match b {
                b'#' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t') => break,
                b'[' | b'{' => {
                    if node_start || self.flow > 0 {
                        self.flow += 1;
                        node_start = true;
                    }
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    node_start = false;
                }
                b',' if self.flow > 0 => node_start = true,
                b'-' | b'?' if node_start && self.flow == 0 && next_blank => block += 1,
                b':' if next_blank || self.flow > 0 => node_start = true,
                b'\'' | b'"' if node_start => {
                    i = skip_quoted(bytes, i);
                    node_start = false;
                }
                b' ' | b'\t' => {}
                _ => node_start = false,
            }
            if block + self.flow > deepest {
                if deepest <= self.max_depth {
                    column = i + 1;
                }
                deepest = block + self.flow;
            }
            i += 1;
        }
        (deepest, column)
    }
}

/// The index of the closing quote of the quoted scalar opening at `start` (or the line's last
/// byte when it continues on the next line).
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 1,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
            b if b == quote => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(), Box<ErrorDetails>> {
        check_limits(text, "<t>", &YamlLimits::default())
    }

    #[test]
    fn ordinary_profiles_pass() {
        let text = "name: a\nresources:\n  cores: 1\nnetwork:\n  allowlist: [a.example, \"b]\"]\n\
                    agent:\n  command: |\n    if [ -f x ]; then echo '[[['; fi\n  env: {A: \"{\"}\n\
                    list:\n  - a\n  - - b\n    - c\n# [[[[[[ comment\n";
        check(text).unwrap();
    }

    #[test]
    fn deep_flow_nesting_is_refused_with_the_limit() {
        let e = check(&"[".repeat(65)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
        assert!(e.reason.contains("64 levels"), "{}", e.reason);
        assert_eq!((e.line, e.column), (Some(1), Some(64)));
        check(&format!("{}{}", "[".repeat(60), "]".repeat(60))).unwrap();
        let e = check(&"{a: ".repeat(100)).unwrap_err();
        assert!(e.reason.contains("max_yaml_depth"));
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        let text: String = (0..70).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let e = check(&text).unwrap_err();
        assert_eq!(e.line, Some(65));
        assert!(check(&"- ".repeat(70)).is_err());
        assert!(check(&"- ".repeat(60)).is_ok());
    }

    #[test]
    fn flow_collections_are_counted_whatever_the_quoting() {
        let siblings = "- [a]\n".repeat(10_001);
        let e = check(&siblings).unwrap_err();
        assert!(
            e.reason.contains("max_yaml_flow_collections"),
            "{}",
            e.reason
        );
        check(&"- [a]\n".repeat(10_000)).unwrap();
        // A quoted scalar spanning lines, which the per-line depth scan misreads: the
        // closers inside it and the openers after it still cannot hide from the count.
        let sneaky = "a: [[[[ \"x\n]]]]\n\" [[[[ \"x\n".repeat(1_500);
        let e = check(&sneaky).unwrap_err();
        assert!(
            e.reason.contains("max_yaml_flow_collections"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn a_megabyte_of_brackets_is_refused_by_a_linear_scan() {
        let e = check(&"[".repeat(1 << 20)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
        assert!(check(&"{".repeat(1 << 20)).is_err());
    }
}
