//! Matching a value whose bytes may each appear literally or escaped, in any mix:
//!
//! - percent-encoding: `%XX` with either hex case, `+` for a space (HTML forms, Python
//!   `quote_plus`), double-encoded `%25XX`, and JavaScript `escape()`'s `%uXXXX`;
//! - backslash escapes: a backslash before any ASCII punctuation or space (JSON `\"` `\\` `\/`,
//!   shell `printf %q`, regex quoting), `\n` `\r` `\t` `\b` `\f`, `\xHH` (C, Python `repr`,
//!   shell `$'…'`), three-digit octal `\NNN`, and `\uXXXX` (JSON, JavaScript, Python), with
//!   UTF-16 surrogate pairs for characters outside the BMP;
//! - shell single-quote splicing of a `'`: `'\''` and `'"'"'`;
//! - HTML character references: `&amp;` `&lt;` `&gt;` `&quot;` `&apos;`, `&#NN;` and `&#xHH;`.
//!
//! The matcher is a small NFA over (value position, text position): an escape that happens to
//! be spelled like literal text (a value containing `%41` or `\\`) is tried both ways.

/// Longest text one value byte can take: `\u00XX` or `&#x27;`, 6 bytes per byte.
pub(super) const MAX_EXPANSION: usize = 6;

/// Whether text byte `t` can begin a match of a value whose first byte is `first`.
pub(super) fn can_start(first: u8, t: u8) -> bool {
    t == first || matches!(t, b'%' | b'+' | b'\\' | b'\'' | b'&')
}

/// Text positions reached after matching a prefix of the value; a handful at most (each
/// alternative spelling of a byte adds one), extra ones are dropped.
#[derive(Clone, Copy, Default)]
struct Slot {
    n: usize,
    pos: [usize; 8],
}

impl Slot {
    fn add(&mut self, p: usize) {
        if !self.pos[..self.n].contains(&p) && self.n < self.pos.len() {
            self.pos[self.n] = p;
            self.n += 1;
        }
    }
}

/// A step advances the value by at most 4 bytes (one UTF-8 character): a ring of 5 slots.
const RING: usize = 5;

/// End (exclusive) of the longest match of `value` in `text` starting at `at`, if any.
pub(super) fn match_at(value: &[u8], text: &[u8], at: usize) -> Option<usize> {
    // ring[j % RING]: text positions reached after matching value[..j].
    let mut ring = [Slot::default(); RING];
    ring[0].add(at);
    for j in 0..value.len() {
        let here = std::mem::take(&mut ring[j % RING]);
        for &i in &here.pos[..here.n] {
            steps(value, j, text, i, &mut |dj, di| {
                ring[(j + dj) % RING].add(i + di);
            });
        }
        if ring.iter().all(|s| s.n == 0) {
            return None;
        }
    }
    let last = ring[value.len() % RING];
    last.pos[..last.n].iter().max().copied()
}

/// Calls `push(value_bytes, text_bytes)` for every way `text[i..]` can spell `value[j..]`'s next
/// byte (or character).
fn steps(value: &[u8], j: usize, text: &[u8], i: usize, push: &mut dyn FnMut(usize, usize)) {
    let b = value[j];
    let t = |k: usize| text.get(i + k).copied();
    if b == b'\n' || b == b'\r' {
        // Line breaks are removed from the text before matching.
        push(1, 0);
    }
    if t(0) == Some(b) {
        push(1, 1);
    }
    match t(0) {
        Some(b'+') if b == b' ' => push(1, 1),
        Some(b'%') => {
            if hex2(t(1), t(2)) == Some(b) {
                push(1, 3);
            }
            if (t(1), t(2)) == (Some(b'2'), Some(b'5')) && hex2(t(3), t(4)) == Some(b) {
                push(1, 5);
            }
            if matches!(t(1), Some(b'u' | b'U')) {
                unicode(value, j, text, i + 2, 2, push);
            }
        }
        Some(b'\\') => backslash(value, j, text, i, push),
        Some(b'\'') if b == b'\'' => {
            if text[i..].starts_with(b"'\\''") {
                push(1, 4);
            }
            if text[i..].starts_with(b"'\"'\"'") {
                push(1, 5);
            }
        }
        Some(b'&') => html(value, j, text, i, push),
        _ => {}
    }
}

fn backslash(value: &[u8], j: usize, text: &[u8], i: usize, push: &mut dyn FnMut(usize, usize)) {
    let b = value[j];
    let t = |k: usize| text.get(i + k).copied();
    let Some(c) = t(1) else { return };
    if c == b && (b.is_ascii_punctuation() || b == b' ') {
        push(1, 2);
    }
    let short = match b {
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0x08 => Some(b'b'),
        0x0c => Some(b'f'),
        _ => None,
    };
    if short == Some(c) {
        push(1, 2);
    }
    match c {
        b'x' | b'X' if hex2(t(2), t(3)) == Some(b) => push(1, 4),
        b'u' | b'U' => unicode(value, j, text, i + 2, 2, push),
        b'0'..=b'3' => {
            let oct = [t(1), t(2), t(3)];
            if oct.iter().all(|d| matches!(d, Some(b'0'..=b'7'))) {
                let n = oct
                    .iter()
                    .fold(0u32, |n, d| n * 8 + u32::from(d.unwrap_or(b'0') - b'0'));
                if n == u32::from(b) {
                    push(1, 4);
                }
            }
        }
        _ => {}
    }
}

/// `XXXX` (4 hex digits) at `text[at..]`, a UTF-16 unit; `prefix` is the length of the escape's
/// introducer (`\u`, `%u`) so surrogate pairs can be followed.
fn unicode(
    value: &[u8],
    j: usize,
    text: &[u8],
    at: usize,
    prefix: usize,
    push: &mut dyn FnMut(usize, usize),
) {
    let Some(unit) = hex4(text, at) else { return };
    let len = prefix + 4;
    let Some(ch) = char_at(value, j) else { return };
    if u32::from(ch) == unit {
        push(ch.len_utf8(), len);
        return;
    }
    // A surrogate pair: the low half follows with the same introducer.
    if (0xD800..0xDC00).contains(&unit)
        && text.get(at + 4..at + 4 + prefix) == text.get(at - prefix..at)
        && let Some(low) = hex4(text, at + 4 + prefix)
        && (0xDC00..0xE000).contains(&low)
    {
        let cp = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
        if u32::from(ch) == cp {
            push(ch.len_utf8(), 2 * len);
        }
    }
}

fn html(value: &[u8], j: usize, text: &[u8], i: usize, push: &mut dyn FnMut(usize, usize)) {
    let b = value[j];
    let rest = &text[i..];
    const NAMED: [(&[u8], u8); 6] = [
        (b"&amp;", b'&'),
        (b"&lt;", b'<'),
        (b"&gt;", b'>'),
        (b"&quot;", b'"'),
        (b"&apos;", b'\''),
        (b"&nbsp;", b' '),
    ];
    for (name, ch) in NAMED {
        if ch == b && rest.starts_with(name) {
            push(1, name.len());
        }
    }
    let Some(body) = rest.strip_prefix(b"&#") else {
        return;
    };
    let (radix, digits) = match body.first() {
        Some(b'x' | b'X') => (16, &body[1..]),
        _ => (10, body),
    };
    let n_digits = digits
        .iter()
        .take(8)
        .take_while(|d| char::from(**d).is_digit(radix))
        .count();
    if n_digits == 0 || digits.get(n_digits) != Some(&b';') {
        return;
    }
    let Ok(s) = std::str::from_utf8(&digits[..n_digits]) else {
        return;
    };
    let Ok(cp) = u32::from_str_radix(s, radix) else {
        return;
    };
    let len = rest.len() - digits.len() + n_digits + 1;
    if let Some(ch) = char_at(value, j)
        && u32::from(ch) == cp
    {
        push(ch.len_utf8(), len);
    }
}

/// The character starting at `value[j]`, if `j` is a character boundary.
fn char_at(value: &[u8], j: usize) -> Option<char> {
    let tail = value.get(j..j + 4.min(value.len() - j))?;
    let valid = match std::str::from_utf8(tail) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&tail[..e.valid_up_to()]).ok()?,
    };
    valid.chars().next()
}

fn hex_digit(d: u8) -> Option<u8> {
    char::from(d)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

fn hex2(hi: Option<u8>, lo: Option<u8>) -> Option<u8> {
    Some(hex_digit(hi?)? << 4 | hex_digit(lo?)?)
}

fn hex4(text: &[u8], at: usize) -> Option<u32> {
    let digits = text.get(at..at + 4)?;
    digits
        .iter()
        .try_fold(0u32, |n, d| hex_digit(*d).map(|v| n << 4 | u32::from(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(value: &str, text: &str) -> bool {
        match_at(value.as_bytes(), text.as_bytes(), 0) == Some(text.len())
    }

    #[test]
    fn each_escape_family() {
        let v = "a b~'\"\\/é🔑\n";
        for text in [
            "a+b%7E'%22%5C%2F%C3%A9%F0%9F%94%91%0A",
            "a%20b~%27%22%5c/%c3%a9%f0%9f%94%91%0a",
            "a%2520b~'\"\\/é🔑",
            "a b~'\\\"\\\\\\/\\u00e9\\ud83d\\udd11\\n",
            "a\\x20b\\x7e\\x27\"\\\\/é🔑\\012",
            "a\\ b\\~\\'\\\"\\\\\\/é🔑",
            "a b~'\\''\"\\/é🔑",
            "a b~'\"'\"'\"\\/é🔑",
            "a&#32;b&#x7E;&apos;&quot;\\/&#233;&#x1F511;",
            "a%u0020b~'\"\\/%u00E9%uD83D%uDD11",
        ] {
            assert!(matches(v, text), "{text}");
        }
    }

    #[test]
    fn different_decodings_do_not_match() {
        assert!(!matches("abcdef", "abc%65ef"));
        assert!(!matches("abcdef", "abc\\x65ef"));
        assert!(!matches("a+bcdef", "a bcdef"));
        assert!(!matches("abcdef", "abcde"));
        assert_eq!(match_at(b"abc", b"%4", 0), None);
        assert_eq!(match_at(b"abc", b"\\u12", 0), None);
        assert_eq!(match_at("é".as_bytes(), b"&#xFFFFFFFFF;", 0), None);
    }

    #[test]
    fn literal_escape_chars_in_the_value_are_tried_both_ways() {
        assert!(matches("x%41yz", "x%41yz"));
        assert!(matches("x%41yz", "x%2541yz"));
        assert!(matches("x\\nyz", "x\\\\nyz"));
    }
}
