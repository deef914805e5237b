//! Deserializing one document strictly and turning serde's messages into [`ErrorDetails`].

use serde::de::DeserializeOwned;

use super::error::{ErrorDetails, ErrorKind};
use super::locate::{locate, second_key};
use super::split::Document;

/// Reason shown instead of serde's message for a bad value under a sensitive path.
const SECRET_REASON: &str = "invalid value (not shown because the field holds a secret)";

/// Deserializes `doc` into `T` (which should be `#[serde(deny_unknown_fields)]`).
///
/// `file` names the origin in errors. `sensitive` lists dotted paths (e.g.
/// `pve.token_secret`) whose values must never appear in an error: problems there get a
/// generic reason, and their values are scrubbed from every other message too.
pub fn decode<T: DeserializeOwned>(
    doc: &Document<'_>,
    file: &str,
    sensitive: &[&str],
) -> Result<T, Box<ErrorDetails>> {
    // A first pass into a generic value separates syntax errors from schema errors and yields
    // the secret values to scrub.
    let value: serde_yaml::Value = match serde_yaml::from_str(doc.text) {
        Ok(v) => v,
        Err(e) => {
            let mut details =
                ErrorDetails::file(ErrorKind::Syntax, file, clean(&e.to_string(), ""));
            details.document = Some(doc.index);
            set_location(&mut details, doc, e.location());
            locate_duplicate(&mut details, doc);
            return Err(Box::new(details));
        }
    };
    let de = serde_yaml::Deserializer::from_str(doc.text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => Err(explain(err, &value, doc, file, sensitive)),
    }
}

/// [`decode`] of a value the caller has already parsed from `doc` and rewritten (e.g. old
/// spellings translated to new ones). Errors name the same fields and, where the field exists
/// in `doc`'s text, its position there.
pub fn decode_value<T: DeserializeOwned>(
    value: &serde_yaml::Value,
    doc: &Document<'_>,
    file: &str,
    sensitive: &[&str],
) -> Result<T, Box<ErrorDetails>> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Ok(v),
        Err(err) => Err(explain(err, value, doc, file, sensitive)),
    }
}

/// Turns a schema error into [`ErrorDetails`]: field path, kind, position, secrets scrubbed.
fn explain(
    err: serde_path_to_error::Error<serde_yaml::Error>,
    value: &serde_yaml::Value,
    doc: &Document<'_>,
    file: &str,
    sensitive: &[&str],
) -> Box<ErrorDetails> {
    let secrets: Vec<String> = sensitive
        .iter()
        .filter_map(|p| scalar_at(value, p))
        .collect();
    let path = match err.path().to_string() {
        p if p == "." => String::new(),
        p => p,
    };
    let inner = err.into_inner();
    let message = clean(&inner.to_string(), &path);
    let mut details = classify(&message, &path, file, doc);
    let field = details.field.as_deref().unwrap_or_default();
    let sensitive_hit = sensitive
        .iter()
        .any(|s| field == *s || field.starts_with(&format!("{s}.")));
    // A value at an ancestor of a secret (e.g. `pve:` written as one string) may hold it.
    let holds_secret = sensitive
        .iter()
        .any(|s| field.is_empty() || s.starts_with(&format!("{field}.")));
    if matches!(details.kind, ErrorKind::InvalidType | ErrorKind::Invalid) {
        if sensitive_hit {
            details.reason = SECRET_REASON.to_owned();
        } else if holds_secret {
            details.reason = without_value(&details.reason);
        }
    }
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        details.reason = details.reason.replace(secret.as_str(), "[REDACTED]");
    }
    if details.kind == ErrorKind::MissingField {
        // serde reports a missing key at the end of its mapping; point at the mapping instead.
        let parent = path.as_str();
        if let Some((l, c)) = locate(doc.text, parent).filter(|_| !parent.is_empty()) {
            details.line = Some(doc.first_line + l - 1);
            details.column = Some(c);
        }
    } else {
        set_location(&mut details, doc, inner.location());
    }
    Box::new(details)
}

/// `[path: ]duplicate entry with key "k"`: names the field and points at the repeated key.
fn locate_duplicate(details: &mut ErrorDetails, doc: &Document<'_>) {
    const MARK: &str = "duplicate entry with key \"";
    let Some(at) = details.reason.find(MARK) else {
        return;
    };
    let parent = details.reason[..at]
        .trim_end()
        .trim_end_matches(':')
        .to_owned();
    let key = details.reason[at + MARK.len()..]
        .trim_end_matches('"')
        .to_owned();
    let from = if parent.is_empty() {
        1
    } else {
        locate(doc.text, &parent).map_or(1, |(l, _)| l)
    };
    if let Some((line, column)) = second_key(doc.text, from, &key) {
        details.line = Some(doc.first_line + line - 1);
        details.column = Some(column);
    }
    details.field = Some(if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    });
    details.reason = "duplicate key".to_owned();
}

fn set_location(
    details: &mut ErrorDetails,
    doc: &Document<'_>,
    location: Option<serde_yaml::Location>,
) {
    let located = details.field.as_deref().and_then(|f| locate(doc.text, f));
    match (location, located) {
        (Some(loc), _) => {
            details.line = Some(doc.first_line + loc.line() - 1);
            details.column = Some(loc.column());
        }
        (None, Some((l, c))) => {
            details.line = Some(doc.first_line + l - 1);
            details.column = Some(c);
        }
        (None, None) => {}
    }
}

/// serde's `invalid type: string "…", expected X` without the value: `invalid type: string,
/// expected X (value not shown: it may hold a secret)`.
fn without_value(message: &str) -> String {
    let (head, rest) = message
        .split_once(": ")
        .unwrap_or(("invalid value", message));
    let what = rest.split([' ', ',']).next().unwrap_or("value");
    match rest.rsplit_once(", expected ") {
        Some((_, expected)) => {
            format!("{head}: {what}, expected {expected} (value not shown: it may hold a secret)")
        }
        None => format!("{head}: {what} (value not shown: it may hold a secret)"),
    }
}

/// Turns serde's message into a kind, a field path, a reason and a suggestion.
fn classify(message: &str, path: &str, file: &str, doc: &Document<'_>) -> ErrorDetails {
    let (kind, field, reason, name) = if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        (
            ErrorKind::UnknownField,
            path.to_owned(),
            "unknown field".to_owned(),
            Some(name),
        )
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or_default();
        let reason = format!("unknown value `{name}`");
        (
            ErrorKind::UnknownVariant,
            path.to_owned(),
            reason,
            Some(name),
        )
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let field = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        (
            ErrorKind::MissingField,
            field,
            "missing required field".to_owned(),
            None,
        )
    } else if ["invalid type", "invalid value", "invalid length"]
        .iter()
        .any(|p| message.starts_with(p))
    {
        (
            ErrorKind::InvalidType,
            path.to_owned(),
            message.to_owned(),
            None,
        )
    } else {
        (
            ErrorKind::Invalid,
            path.to_owned(),
            message.to_owned(),
            None,
        )
    };
    let mut details = ErrorDetails::file(kind, file, reason);
    details.document = Some(doc.index);
    details.field = (!field.is_empty()).then_some(field);
    if let Some(name) = name {
        details.expected = expected_list(message);
        details.suggestion = suggest(name, &details.expected);
    }
    details
}

/// The backticked names after `expected` in serde's unknown-field/variant messages.
fn expected_list(message: &str) -> Vec<String> {
    let Some(i) = message.find("expected") else {
        return Vec::new();
    };
    message[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Removes position suffixes (`at line 3 column 5`) and the YAML library's own path prefix
/// (`resources: `) from a message; positions and paths are reported separately.
fn clean(message: &str, path: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(" at ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        let skip = position_len(after);
        if skip == 0 {
            out.push_str(" at ");
        }
        rest = &after[skip..];
    }
    out.push_str(rest);
    if let Some((prefix, msg)) = out.split_once(": ")
        && !prefix.is_empty()
        && !prefix.contains(' ')
        && path.starts_with(prefix)
    {
        return msg.to_owned();
    }
    out
}

/// Length of a leading `line N column M` or `position N`, or 0.
fn position_len(s: &str) -> usize {
    fn digits(s: &str) -> usize {
        s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len()
    }
    if let Some(r) = s.strip_prefix("line ") {
        let n = digits(r);
        if n > 0
            && let Some(r2) = r[n..].strip_prefix(" column ")
        {
            let m = digits(r2);
            if m > 0 {
                return "line ".len() + n + " column ".len() + m;
            }
        }
    } else if let Some(r) = s.strip_prefix("position ") {
        let n = digits(r);
        if n > 0 {
            return "position ".len() + n;
        }
    }
    0
}

/// The textual form of the scalar at dotted `path`, if there is one.
fn scalar_at(value: &serde_yaml::Value, path: &str) -> Option<String> {
    let mut v = value;
    for key in path.split('.') {
        v = v.as_mapping()?.get(key)?;
    }
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The candidate closest to `input` if it is close enough to be a plausible typo
/// (Damerau–Levenshtein distance at most a third of the length, or one contains the other).
pub fn suggest<S: AsRef<str>>(input: &str, candidates: &[S]) -> Option<String> {
    let limit = (input.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(AsRef::as_ref)
        .filter(|c| !c.is_empty() && !input.is_empty())
        .map(|c| (strsim::damerau_levenshtein(input, c), c))
        .filter(|(d, c)| *d <= limit || c.contains(input) || input.contains(c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["cores", "memory_mb", "cpulimit", "balloon"];
        assert_eq!(suggest("memroy_mb", &keys).as_deref(), Some("memory_mb"));
        assert_eq!(suggest("memory", &keys).as_deref(), Some("memory_mb"));
        assert_eq!(suggest("core", &keys).as_deref(), Some("cores"));
        assert_eq!(suggest("disk", &keys), None);
    }

    #[test]
    fn cleans_positions_and_library_paths() {
        assert_eq!(
            clean(
                "resources: unknown field `x`, expected `y` at line 3 column 5",
                "resources.x"
            ),
            "unknown field `x`, expected `y`"
        );
        assert_eq!(
            clean(
                "did not find expected key at line 2 column 1, while parsing a block mapping at line 1 column 1",
                ""
            ),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(clean("look at this", ""), "look at this");
    }

    #[test]
    fn expected_names_are_extracted() {
        assert_eq!(
            expected_list("unknown field `a`, expected one of `b`, `c`"),
            vec!["b".to_owned(), "c".to_owned()]
        );
        assert_eq!(
            expected_list("unknown field `a`, expected `b`"),
            vec!["b".to_owned()]
        );
        assert!(expected_list("unknown field `a`, there are no fields").is_empty());
    }
}
