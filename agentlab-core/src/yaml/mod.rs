//! Strict YAML loading shared by [profiles](crate::profile) and the
//! [daemon configuration](crate::config).
//!
//! Loading a file goes through three steps, after [`check_limits`] has refused text nested too
//! deeply or opening too many flow collections (the parser's cost grows with both):
//!
//! 1. [`split_documents`] cuts the text into documents at `---` / `...` marker lines, keeping
//!    each document's first line so error positions stay relative to the whole file.
//!    Documents holding only comments are reported as [blank](Document::is_blank) so callers
//!    can skip them; a comment header before the first `---` is not a document at all.
//! 2. [`decode`] deserializes one document into a `#[serde(deny_unknown_fields)]` type and
//!    turns serde's messages into an [`ErrorDetails`]: the field path
//!    (`resources.memroy_mb`), line and column in the file, a short reason and, for typos, the
//!    closest valid key or value ([`suggest`]). Values under sensitive paths are never echoed.
//! 3. The caller validates the meaning of the values and reports problems with
//!    [`ErrorDetails::at_field`], which finds the field's line in the document text.

mod decode;
mod error;
mod limits;
mod locate;
mod macros;
mod split;

pub use decode::{decode, decode_value, suggest};
pub use error::{ErrorDetails, ErrorKind};
pub use limits::{YamlLimits, check_limits};
pub use locate::locate;
pub(crate) use macros::yaml_enum;
pub use split::{Document, split_documents};
