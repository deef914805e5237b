//! [`ErrorDetails`]: where a YAML file is wrong and why, shared by profile and config errors.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::locate::locate;
use super::split::Document;

/// What kind of problem an [`ErrorDetails`] describes; callers branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The file could not be read (missing, permissions, not UTF-8).
    Io,
    /// The text is not valid YAML.
    Syntax,
    /// A key that the schema does not have (typo or unsupported option).
    UnknownField,
    /// A value outside an enumeration (`mode: yolox`).
    UnknownVariant,
    /// A required key is missing.
    MissingField,
    /// A value of the wrong type or shape (`cores: many`).
    InvalidType,
    /// A value that parses but is not acceptable (`cores: 0`, relative path, …).
    Invalid,
    /// A key the schema knows but AgentLab does not support yet.
    Unsupported,
    /// The same profile name is defined twice.
    Duplicate,
    /// The text exceeds a parsing limit (nesting depth, flow collections) and was not parsed.
    Limit,
}

/// Where and why loading a YAML file failed. Serializable so the daemon can return it as the
/// `details` object of a JSON error. Never contains secret values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// What kind of problem this is.
    pub kind: ErrorKind,
    /// The file (or origin such as `<request body>`) as given by the caller.
    pub file: String,
    /// 1-based index of the YAML document within the file, when the problem is in one.
    pub document: Option<usize>,
    /// Dotted field path, e.g. `resources.memroy_mb` or `network.allowlist[2]`.
    pub field: Option<String>,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// 1-based column in the file, when known.
    pub column: Option<usize>,
    /// Short reason, e.g. `unknown field`.
    pub reason: String,
    /// The closest valid key or value, for typos.
    pub suggestion: Option<String>,
    /// The valid keys or values, when the problem is an unknown one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<String>,
}

impl ErrorDetails {
    /// A problem with the file as a whole (unreadable, wrong number of documents).
    pub fn file(kind: ErrorKind, file: &str, reason: impl Into<String>) -> Self {
        Self {
            kind,
            file: file.to_owned(),
            document: None,
            field: None,
            line: None,
            column: None,
            reason: reason.into(),
            suggestion: None,
            expected: Vec::new(),
        }
    }

    /// A problem with the value at `field` (dotted path) of `doc`; the line and column are
    /// looked up in the document's text when the field is written in block style.
    pub fn at_field(
        kind: ErrorKind,
        file: &str,
        doc: &Document<'_>,
        field: &str,
        reason: impl Into<String>,
    ) -> Self {
        let (line, column) = match locate(doc.text, field) {
            Some((l, c)) => (Some(doc.first_line + l - 1), Some(c)),
            None => (None, None),
        };
        Self {
            kind,
            file: file.to_owned(),
            document: Some(doc.index),
            field: Some(field.to_owned()),
            line,
            column,
            reason: reason.into(),
            suggestion: None,
            expected: Vec::new(),
        }
    }
}

impl fmt::Display for ErrorDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(doc) = self.document {
            write!(f, ": document {doc}")?;
        }
        let position = match (self.line, self.column) {
            (Some(l), Some(c)) => Some(format!("line {l}, column {c}")),
            (Some(l), None) => Some(format!("line {l}")),
            _ => None,
        };
        match (&self.field, position) {
            (Some(field), Some(pos)) => write!(f, ": field {field} ({pos})")?,
            (Some(field), None) => write!(f, ": field {field}")?,
            (None, Some(pos)) => write!(f, ": {pos}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.reason)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean {s}?")?;
        } else if !self.expected.is_empty() {
            write!(f, "; expected one of: {}", self.expected.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_the_documented_shape() {
        let e = ErrorDetails {
            kind: ErrorKind::UnknownField,
            file: "profiles/bad.yaml".into(),
            document: Some(2),
            field: Some("resources.memroy_mb".into()),
            line: Some(7),
            column: Some(5),
            reason: "unknown field".into(),
            suggestion: Some("memory_mb".into()),
            expected: vec!["cores".into(), "memory_mb".into()],
        };
        assert_eq!(
            e.to_string(),
            "profiles/bad.yaml: document 2: field resources.memroy_mb (line 7, column 5): \
             unknown field; did you mean memory_mb?"
        );
        let plain = ErrorDetails::file(ErrorKind::Io, "/etc/x.yaml", "cannot read: denied");
        assert_eq!(plain.to_string(), "/etc/x.yaml: cannot read: denied");
    }
}
