//! Finding the line and column of a field path in block-style YAML text.
//!
//! serde does not hand positions to `Deserialize` impls, so errors found after parsing
//! (semantic validation) are located by walking the text: each path segment is looked up
//! among the lines indented below the previous one. This covers block mappings and block
//! sequences, which is how profiles and configs are written; for flow style (`[a, b]`) the
//! deepest segment that was found is returned.

/// One segment of a dotted path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(close) = inner.find(']') else { break };
            if let Ok(i) = inner[..close].parse() {
                out.push(Segment::Index(i));
            }
            rest = &inner[close + 1..];
        }
    }
    out
}

/// A content line: indentation and text (comments, blanks and markers are not content).
fn content(line: &str) -> Option<(usize, &str)> {
    let text = line.trim_end();
    let body = text.trim_start();
    if body.is_empty() || body.starts_with('#') || text.starts_with("---") || text == "..." {
        return None;
    }
    Some((text.len() - body.len(), body))
}

fn key_matches(body: &str, key: &str) -> bool {
    [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ]
    .iter()
    .any(|k| {
        body.strip_prefix(k.as_str())
            .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
    })
}

/// The 1-based (line, column) of the second line, from 1-based line `from` on, where `key`
/// starts a mapping entry: where a duplicated key is (the YAML library reports the
/// enclosing mapping instead).
pub(super) fn second_key(text: &str, from: usize, key: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .filter_map(|(i, line)| content(line).map(|(indent, body)| (i, indent, body)))
        .filter(|(_, _, body)| key_matches(body, key))
        .nth(1)
        .map(|(i, indent, _)| (i + 1, indent + 1))
}

/// Returns the 1-based (line, column) of `path` (e.g. `network.allowlist[1]`) in `text`, or
/// of its deepest ancestor that could be found; `None` when not even the first segment is.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    // The block being searched: lines from `start`, children indented more than `parent`
    // (sequences may sit at the parent's own indentation).
    let mut start = 0;
    let mut parent: Option<usize> = None;
    // Column offset inside a line for a mapping that starts after `- `.
    let mut inline: Option<(usize, usize)> = None;
    for seg in parse_path(path) {
        let mut hit = None;
        if let (Some((li, col)), Segment::Key(key)) = (inline, seg)
            && key_matches(&lines[li][col..], key)
        {
            hit = Some((li, col));
        }
        let mut child_indent = None;
        let mut count = 0;
        if hit.is_none() {
            for (i, line) in lines.iter().enumerate().skip(start) {
                let Some((indent, body)) = content(line) else {
                    continue;
                };
                let is_item = body.starts_with("- ") || body == "-";
                let inside = match (parent, seg) {
                    (None, _) => true,
                    (Some(p), Segment::Index(_)) => indent > p || (indent == p && is_item),
                    (Some(p), Segment::Key(_)) => indent > p,
                };
                if !inside {
                    break;
                }
                let level = *child_indent.get_or_insert(indent);
                if indent != level {
                    continue;
                }
                match seg {
                    Segment::Key(key) if key_matches(body, key) => {
                        hit = Some((i, indent));
                        break;
                    }
                    Segment::Index(n) if is_item => {
                        if count == n {
                            let after = body[1..].len() - body[1..].trim_start().len();
                            hit = Some((i, indent + 1 + after));
                            break;
                        }
                        count += 1;
                    }
                    _ => {}
                }
            }
        }
        let Some((li, col)) = hit else { break };
        found = Some((li + 1, col + 1));
        start = li + 1;
        if matches!(seg, Segment::Index(_)) {
            // A mapping item starts on the dash line; its other keys are indented past the dash.
            inline = Some((li, col));
            parent = Some(col.saturating_sub(1));
        } else {
            inline = None;
            parent = Some(col);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "---\nname: a\n# c\nresources:\n  cores: 2\n  memory_mb: 512\nnetwork:\n  allowlist:\n  - 10.0.0.0/8\n  -   example.com\nlist:\n  - name: x\n    value: 1\n  - name: y\n    value: 2\n";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(TEXT, "name"), Some((2, 1)));
        assert_eq!(locate(TEXT, "resources.memory_mb"), Some((6, 3)));
        assert_eq!(locate(TEXT, "network.allowlist[1]"), Some((10, 7)));
        assert_eq!(locate(TEXT, "list[1].name"), Some((14, 5)));
        assert_eq!(locate(TEXT, "list[1].value"), Some((15, 5)));
        assert_eq!(locate(TEXT, "missing"), None);
        // Deepest known ancestor when the leaf is absent.
        assert_eq!(locate(TEXT, "resources.balloon"), Some((4, 1)));
    }
}
