//! Making text a guest chose safe to print: control characters (escape sequences, carriage
//! returns, bells, newlines inside a name) are written as `\u{..}` so that nothing a guest
//! writes can move a terminal's cursor, recolour it or forge a line that looks like wasmray's.
//!
//! This is for text that reaches a terminal or a log; it does not shorten or otherwise judge
//! the text.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character but tab escaped as `\u{XX}`; borrowed when nothing
/// needed escaping (the common case costs one scan).
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`terminal_safe`], but keeps newlines: for multi-line messages printed as lines.
pub fn terminal_safe_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    let lines: Vec<Cow<'_, str>> = text.split('\n').map(terminal_safe).collect();
    Cow::Owned(lines.join("\n"))
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            terminal_safe("f task=1 ünïcode\t"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            terminal_safe("\x1b[2J\rok\u{7}\nnext\u{9b}"),
            "\\u{1b}[2J\\u{d}ok\\u{7}\\u{a}next\\u{9b}"
        );
    }

    #[test]
    fn lines_keep_their_newlines() {
        assert_eq!(terminal_safe_lines("a\nb\x1b"), "a\nb\\u{1b}");
        assert!(matches!(terminal_safe_lines("a\nb"), Cow::Borrowed(_)));
    }
}
