//! Redaction of secret values in text and in line streams.
//!
//! A [`Redactor`] is built from the secret values of a bundle
//! ([`SecretBundle::values`](crate::SecretBundle::values)) and replaces every occurrence of
//! each value — and of its common encodings — with [`PLACEHOLDER`]:
//!
//! - the raw value;
//! - standard base64 (with and without `=` padding) and base64url (with and without padding);
//! - the value's base64 *inside a longer base64 blob* (for example `base64("user:" + token)`):
//!   base64 of a substring depends on its byte offset modulo 3, so the value is encoded with
//!   0, 1 and 2 bytes of prefix and the edge characters that depend on the neighbouring bytes
//!   are stripped; the remaining core is matched, in both alphabets;
//! - hex, lower- and upper-case;
//! - the value with any of its bytes escaped, in any mix: percent-encoding in
//!   every variant (any hex case, `+` for space as in Python `quote_plus` and HTML forms,
//!   `~` kept or `%7E`, double `%25XX`, `%uXXXX`), JSON/JavaScript/Python/C string escapes
//!   (`\"`, `\\`, `\uXXXX` with surrogate pairs, `\xHH`, octal), shell quoting (backslash
//!   before punctuation, `'\''`) and HTML character references.
//!
//! Matching ignores line breaks: text is searched with `\r` and `\n` removed, so a value that
//! was wrapped over two lines (or a multi-line value such as an SSH key printed line by line) is
//! still found; the line structure of the output is kept. Overlapping and adjacent matches are
//! merged into one placeholder.
//!
//! **Minimum length.** Values shorter than [`MIN_SECRET_LEN`] (6) characters are ignored: very
//! short values (`"1"`, `"true"`, `"main"`) would redact innocent text everywhere and make logs
//! useless. Keep real secrets long.
//!
//! **Not caught:** base64/hex of an escaped form, hex with separators, UTF-16, partial values
//! (a prefix of a token), and the two or three edge characters of an embedded base64 form
//! (they carry a few bits of the value). A multi-field value (for example a whole
//! `settings.json`) is only redacted as a whole; put keys that may be printed on their own
//! into separate values. Compressed data is not text: [`archive`] scans gzip/tar content.
//!
//! [`LineRedactor`] applies the same matching to a stream of lines, holding back just enough
//! text (the longest possible match) to catch values split across line boundaries.

pub mod archive;
mod escaped;
mod forms;
mod redactor;
mod stream;

pub use redactor::{MIN_SECRET_LEN, PLACEHOLDER, Redactor};
pub use stream::LineRedactor;
