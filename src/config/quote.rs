//! What an error or a note repeats of the user's input (a value, a key, a section header, a
//! path, an argument) goes through `text` or `path` first: a carriage return or an escape
//! sequence from a config file or the command line must not reach the admin's terminal, where
//! it could overwrite the line or change what the screen shows. Control characters become
//! `\r`, `\n`, `\t`, `\0`, `\x1b` (`\u{85}` past ASCII), and so do the Unicode controls that
//! reorder a line's display (bidi overrides and isolates); everything else printable, any
//! script, stays as it is. Backslashes are kept too, so quoting twice changes nothing.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// `s` with its control characters escaped; borrowed when there is none (nearly always).
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_ascii() && hidden(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path as `text` shows it (bytes that are not UTF-8 as U+FFFD).
pub fn path(p: &Path) -> String {
    text(&p.to_string_lossy()).into_owned()
}

/// C0 and C1 controls and DEL, and the bidirectional formatting characters (the "Trojan
/// Source" ones: they reorder what a terminal shows).
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_printable_text_is_not() {
        assert!(matches!(text("10.0.0.1/24"), Cow::Borrowed(_)));
        assert_eq!(text("peer cr\rdrop"), "peer cr\\rdrop");
        assert_eq!(text("\x1b[2J\x07\x7f\0\t\n"), "\\x1b[2J\\x07\\x7f\\0\\t\\n");
        assert_eq!(text("a\u{85}b\u{9b}c"), "a\\u{85}b\\u{9b}c");
        assert_eq!(text("evil\u{202e}txt.conf"), "evil\\u{202e}txt.conf");
        // Printable text of any script, and backslashes, stay as they are.
        assert_eq!(text("café wg0 Ω \\r ü\u{301}"), "café wg0 Ω \\r ü\u{301}");
        // Twice is once.
        let once = text("a\rb\x1b").into_owned();
        assert_eq!(text(&once), once);
        assert_eq!(path(Path::new("/tmp/w\x1bg.conf")), "/tmp/w\\x1bg.conf");
    }
}
