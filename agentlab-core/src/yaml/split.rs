//! Splitting a YAML stream into documents at `---` and `...` marker lines.
//!
//! Splitting by lines is exact for YAML: a marker at column 0 ends any block scalar, so a
//! `---` line can never be part of a value. Each piece keeps its first line number so that
//! positions reported by the parser (relative to the piece) map back to the file.

/// One document of a YAML stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Document<'a> {
    /// 1-based index among the stream's documents.
    pub index: usize,
    /// The document's text, including its leading `---` line if it has one.
    pub text: &'a str,
    /// 1-based line of the file on which `text` starts.
    pub first_line: usize,
}

impl Document<'_> {
    /// True when the document holds nothing but comments, blank lines and markers.
    pub fn is_blank(&self) -> bool {
        self.text.lines().all(|line| {
            let rest = marker_rest(line).unwrap_or(line).trim();
            rest.is_empty() || rest.starts_with('#') || rest.starts_with('%')
        })
    }
}

/// If `line` is a document marker (`---` or `...` followed by nothing or whitespace), the
/// text after the marker.
fn marker_rest(line: &str) -> Option<&str> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    for marker in ["---", "..."] {
        if let Some(rest) = line.strip_prefix(marker)
            && (rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            return Some(rest);
        }
    }
    None
}

/// Splits `text` into its documents, numbered from 1.
///
/// A piece before the first `---` (or after a `...`) that holds only comments is not a
/// document and is dropped; an explicit `---` document holding only comments is returned
/// (and counted) but [blank](Document::is_blank), so callers skip it.
pub fn split_documents(text: &str) -> Vec<Document<'_>> {
    // (start byte, first line, explicit) of each piece.
    let mut pieces: Vec<(usize, usize, bool)> = vec![(0, 1, false)];
    let mut offset = 0;
    let mut ends = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let trimmed = line.strip_suffix('\n').unwrap_or(line);
        if marker_rest(trimmed).is_some() {
            if trimmed.starts_with("---") {
                ends.push(offset);
                pieces.push((offset, line_no, true));
            } else {
                // `...` ends the current document; it stays part of it.
                ends.push(offset + line.len());
                pieces.push((offset + line.len(), line_no + 1, false));
            }
        }
        offset += line.len();
    }
    ends.push(text.len());

    let mut docs = Vec::new();
    for ((start, first_line, explicit), end) in pieces.into_iter().zip(ends) {
        let piece = &text[start..end];
        let doc = Document {
            index: docs.len() + 1,
            text: piece,
            first_line,
        };
        if explicit || !doc.is_blank() {
            docs.push(doc);
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_comment_is_not_a_document() {
        let text = "# header\n---\nname: a\n---\n# only a comment\n---\nname: b\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].index, 1);
        assert_eq!(docs[0].first_line, 2);
        assert!(docs[0].text.contains("name: a"));
        assert!(docs[1].is_blank());
        assert_eq!(docs[2].index, 3);
        assert_eq!(docs[2].first_line, 6);
    }

    #[test]
    fn implicit_single_document_and_end_marker() {
        let docs = split_documents("name: a\n...\n# trailing\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].text, "name: a\n...\n");
        assert!(split_documents("").is_empty());
        assert!(split_documents("# nothing\n\n").is_empty());
    }

    #[test]
    fn dashes_inside_values_do_not_split() {
        let docs = split_documents("a: ---\nb: '---'\n----\n  --- x\n");
        assert_eq!(docs.len(), 1);
    }
}
