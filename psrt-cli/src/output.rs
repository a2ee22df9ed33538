//! How `psrt-cli` prints a received message: the topic on one line, the
//! payload on the next, as text when it reads as text, else as hex.

/// Text payloads longer than this many bytes are cut, with a size note.
const MAX_TEXT: usize = 4096;
/// Binary payloads longer than this many bytes are cut, with a size note.
const MAX_HEX: usize = 1024;

/// The two lines (without the final newline) printed for one message.
pub fn format_message(topic: &str, payload: &[u8]) -> String {
    format!("{topic}\n{}", format_payload(payload))
}

/// `topic payload` on one line, like `mosquitto_sub -v` (`-v`).
pub fn format_verbose(topic: &str, payload: &[u8]) -> String {
    format!("{topic} {}", format_payload(payload))
}

/// The payload as text when it is UTF-8 without control characters (tabs
/// allowed), else as `hex: ...`; big payloads are cut and end with a note
/// of their full size.
pub fn format_payload(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if is_printable(text) => format_text(text),
        _ => format_hex(payload),
    }
}

fn is_printable(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() && c != '\t')
}

fn format_text(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({})", &text[..end], size_note(text.len()))
}

fn format_hex(payload: &[u8]) -> String {
    let shown = payload.get(..MAX_HEX).unwrap_or(payload);
    let hex = hex::encode(shown);
    if shown.len() == payload.len() {
        return format!("hex: {hex}");
    }
    format!("hex: {hex}... ({})", size_note(payload.len()))
}

fn size_note(len: usize) -> String {
    format!("{len} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_printed_as_is() {
        assert_eq!(format_message("a/b", b"hello\tworld"), "a/b\nhello\tworld");
        assert_eq!(format_verbose("a/b", b"hello world"), "a/b hello world");
        assert_eq!(format_verbose("a/b", &[1]), "a/b hex: 01");
        assert_eq!(format_payload(b""), "");
        assert_eq!(format_payload("žluť".as_bytes()), "žluť");
    }

    #[test]
    fn binary_and_control_characters_are_hex() {
        assert_eq!(format_payload(&[0, 1, 0xFF]), "hex: 0001ff");
        assert_eq!(format_payload(b"two\nlines"), "hex: 74776f0a6c696e6573");
    }

    #[test]
    fn big_payloads_are_cut_with_a_size_note() {
        let text = "é".repeat(MAX_TEXT);
        let shown = format_payload(text.as_bytes());
        assert!(
            shown.ends_with(&format!("... ({} bytes)", text.len())),
            "{shown}"
        );
        assert!(shown.len() < MAX_TEXT + 32);
        let binary = vec![0_u8; 5000];
        let shown = format_payload(&binary);
        assert_eq!(
            shown.len(),
            "hex: ".len() + 2 * MAX_HEX + "... (5000 bytes)".len()
        );
        assert!(shown.ends_with("... (5000 bytes)"));
    }
}
