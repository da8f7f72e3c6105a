//! The rules a name taken from a response body must pass before any request
//! is built from it, and [`InvalidOperationName`], the error naming the rule
//! it broke.

use std::error::Error as StdError;
use std::fmt;

use percent_encoding::percent_decode;

/// Longest accepted name, in bytes.
pub(super) const MAX_NAME_LEN: usize = 4096;

/// How many characters of a rejected name its error shows.
const SHOWN_CHARS: usize = 32;

/// The rules of [`OperationName::parse`]. Names that are plainly valid are
/// accepted after one pass over their bytes; anything else is decided by
/// [`validate_exact`], which checks the rules in order and so names the same
/// reason it always did.
pub(super) fn validate(name: &str) -> Result<(), Reason> {
    if plainly_valid(name.as_bytes()) {
        return Ok(());
    }
    validate_exact(name)
}

/// One pass over the bytes that accepts the common name: 1 to 4096 bytes of
/// printable ASCII other than `?`, `#`, `\` and `%`, no empty, `.` or `..`
/// segment (so no leading `/`), no `:` in the first segment. `false` means
/// "not plainly valid": [`validate_exact`] decides. On the response path this
/// runs for every not-done Operation; the char-and-`split` rules cost ~47
/// instructions a byte (4,700 instructions on a 100-byte name,
/// more than parsing a 300-byte body), this loop a few.
pub(super) fn plainly_valid(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let is_dot_or_empty = |segment: &[u8]| matches!(segment, b"" | b"." | b"..");
    // In the first segment `:` stops the scan (a scheme?); later it is plain.
    let mut allowed = PLAIN;
    let mut rest = name;
    loop {
        let end = rest
            .iter()
            .position(|&b| BYTE_CLASS[usize::from(b)] > allowed)
            .unwrap_or(rest.len());
        let (segment, tail) = rest.split_at(end);
        match tail.first().map(|&b| BYTE_CLASS[usize::from(b)]) {
            None => return !is_dot_or_empty(segment),
            Some(SLASH) if !is_dot_or_empty(segment) => {
                allowed = COLON;
                rest = &tail[1..];
            }
            Some(_) => return false,
        }
    }
}

// Classes of bytes for `plainly_valid`, ordered: a scan stops at a byte
// whose class is above what it allows.
const PLAIN: u8 = 0;
const COLON: u8 = 1;
const SLASH: u8 = 2;
/// Not plainly valid: controls, space, DEL, non-ASCII, `?`, `#`, `\`, `%`.
const OTHER: u8 = 3;
static BYTE_CLASS: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        table[b] = PLAIN;
        b += 1;
    }
    table[b'/' as usize] = SLASH;
    table[b':' as usize] = COLON;
    table[b'?' as usize] = OTHER;
    table[b'#' as usize] = OTHER;
    table[b'\\' as usize] = OTHER;
    table[b'%' as usize] = OTHER;
    table
};

/// The rules of [`OperationName::parse`], in the order they are checked.
pub(super) fn validate_exact(name: &str) -> Result<(), Reason> {
    if name.is_empty() {
        return Err(Reason::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Reason::TooLong);
    }
    for c in name.chars() {
        match c {
            '?' => return Err(Reason::QuestionMark),
            '#' => return Err(Reason::Hash),
            '\\' => return Err(Reason::Backslash),
            c if c.is_control() || c.is_whitespace() => return Err(Reason::ControlOrWhitespace),
            _ => {}
        }
    }
    if name.starts_with('/') {
        return Err(Reason::LeadingSlash);
    }
    let first = name.split_once('/').map_or(name, |(first, _)| first);
    if first.contains(':') {
        return Err(Reason::Scheme);
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Err(Reason::EmptySegment);
        }
        if segment == "." || segment == ".." {
            return Err(Reason::DotSegment);
        }
    }
    for segment in name.split('/') {
        if segment.contains('%') {
            check_escapes(segment)?;
        }
    }
    Ok(())
}

/// Decodes `%` escapes in `segment` until nothing changes (so `%252F` is seen
/// as `/`), rejecting forbidden characters and `.`/`..` segments produced on
/// the way. Every round that changes something shrinks the bytes, so this
/// ends. The raw characters were checked already, so anything found here came
/// from an escape.
fn check_escapes(segment: &str) -> Result<(), Reason> {
    let mut current = segment.as_bytes().to_vec();
    loop {
        let decoded: Vec<u8> = percent_decode(&current).collect();
        if decoded == current {
            return Ok(());
        }
        let forbidden = String::from_utf8_lossy(&decoded)
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '/' | '\\'));
        if forbidden {
            return Err(Reason::EscapedForbidden);
        }
        if decoded == b"." || decoded == b".." {
            return Err(Reason::EscapedDotSegment);
        }
        current = decoded;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reason {
    Empty,
    TooLong,
    ControlOrWhitespace,
    QuestionMark,
    Hash,
    Backslash,
    LeadingSlash,
    Scheme,
    EmptySegment,
    DotSegment,
    EscapedForbidden,
    EscapedDotSegment,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::TooLong => "longer than 4096 bytes",
            Reason::ControlOrWhitespace => "contains a control character or whitespace",
            Reason::QuestionMark => "contains '?'",
            Reason::Hash => "contains '#'",
            Reason::Backslash => "contains '\\'",
            Reason::LeadingSlash => "starts with '/'",
            Reason::Scheme => "first segment contains ':' (a URI scheme)",
            Reason::EmptySegment => "has an empty segment",
            Reason::DotSegment => "has a '.' or '..' segment",
            Reason::EscapedForbidden => {
                "has a %-escape that decodes to a control character, whitespace, '?', '#', '/' or '\\'"
            }
            Reason::EscapedDotSegment => "has a %-escape that makes a '.' or '..' segment",
        }
    }
}

/// The error returned by [`OperationName::parse`]: the name is not an AIP-122
/// relative resource name that is safe to put in a URL path (the rules are
/// listed on [`OperationName::parse`]).
///
/// [`reason`](InvalidOperationName::reason) is the short text of the rule
/// that failed. `Display` names the rule and shows at most the first 32
/// characters of the name, escaped (`escape_debug`), never the whole input.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidOperationName {
    reason: Reason,
    /// At most [`SHOWN_CHARS`] characters of the input, unescaped.
    shown: Box<str>,
    truncated: bool,
}

impl InvalidOperationName {
    pub(super) fn new(reason: Reason, name: &str) -> InvalidOperationName {
        let mut chars = name.chars();
        let shown: String = chars.by_ref().take(SHOWN_CHARS).collect();
        InvalidOperationName {
            reason,
            shown: shown.into(),
            truncated: chars.next().is_some(),
        }
    }

    /// The short text of the rule the name broke, such as `"has an empty
    /// segment"` or `"contains '?'"`.
    pub fn reason(&self) -> &'static str {
        self.reason.as_str()
    }
}

impl fmt::Display for InvalidOperationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid operation name \"{}{}\": {}",
            self.shown.escape_debug(),
            if self.truncated { "…" } else { "" },
            self.reason.as_str()
        )
    }
}

impl StdError for InvalidOperationName {}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn plainly_valid_agrees_with_the_exact_rules(
            name in "[a-z0-9/.:%?#\\\\ \t\u{7f}é\u{2028}-]{0,16}",
        ) {
            proptest::prop_assert_eq!(validate(&name), validate_exact(&name));
            if plainly_valid(name.as_bytes()) {
                proptest::prop_assert_eq!(validate_exact(&name), Ok(()));
            }
        }
    }
}
