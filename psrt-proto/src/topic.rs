//! Topics (what is published) and filters (what is subscribed, may hold `+`
//! and `#`): normalisation and validation shared by the wire, the ACL, the
//! subscription index and the config files.
//!
//! Normalisation collapses runs of `/` into one and drops a leading `/`; a
//! trailing `/` stays (it makes an empty last level, which `+` matches).
//! Unlike MQTT, `a/#` does not match `a`: `#` stands for one or more levels.

use std::borrow::Cow;

/// Why a topic or filter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Nothing left after normalisation.
    #[error("empty topic")]
    Empty,
    /// Not valid UTF-8.
    #[error("topic is not valid UTF-8")]
    InvalidUtf8,
    /// A published topic holds `+` or `#`.
    #[error("wildcards (+ or #) are not allowed in a published topic")]
    Wildcard,
    /// A published topic holds a `00` byte, which would end it early in the
    /// pushed frame (only PUBLISH_REPL can carry one).
    #[error("a published topic must not contain a 00 byte")]
    Nul,
    /// A filter holds `+` or `#` as part of a level, or `#` before the end.
    #[error("a wildcard must be a whole level, and # only the last one")]
    BadWildcard,
    /// More separators than `max_topic_depth`.
    #[error("topic has more than {max} levels separators")]
    TooDeep {
        /// The configured `max_topic_depth`.
        max: usize,
    },
}

/// One level of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level<'a> {
    /// Matches exactly this text.
    Literal(&'a str),
    /// `+`: any single level, the empty one included.
    Plus,
    /// `#`: one or more remaining levels.
    Hash,
}

impl<'a> Level<'a> {
    /// Classifies one level of an already validated filter.
    pub fn of(level: &'a str) -> Self {
        match level {
            "+" => Level::Plus,
            "#" => Level::Hash,
            other => Level::Literal(other),
        }
    }
}

/// Collapses runs of `/` and drops a leading `/`, borrowing when the input
/// is already normal (the common case, so publishing does not allocate).
pub fn normalize(raw: &str) -> Cow<'_, str> {
    if !raw.starts_with('/') && !raw.contains("//") {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    for level in raw.split('/').skip_while(|l| l.is_empty()) {
        if level.is_empty() && out.ends_with('/') {
            continue;
        }
        out.push_str(level);
        out.push('/');
    }
    // The loop adds a separator after every level; keep a trailing one only
    // when the input ended with `/`.
    if !raw.ends_with('/') {
        out.pop();
    }
    Cow::Owned(out)
}

/// Validates and normalises a topic to publish: UTF-8, not empty, no
/// wildcard, at most `max_depth` separators.
pub fn parse_topic(raw: &[u8], max_depth: usize) -> Result<Cow<'_, str>, TopicError> {
    let text = std::str::from_utf8(raw).map_err(|_| TopicError::InvalidUtf8)?;
    if text.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::Wildcard);
    }
    if raw.contains(&0) {
        return Err(TopicError::Nul);
    }
    let topic = normalize(text);
    check_shape(&topic, max_depth)?;
    Ok(topic)
}

/// Validates and normalises a subscription filter (or an ACL mask): UTF-8,
/// not empty, `+` and `#` only as whole levels, `#` only last, at most
/// `max_depth` separators.
pub fn parse_filter(raw: &[u8], max_depth: usize) -> Result<Cow<'_, str>, TopicError> {
    let text = std::str::from_utf8(raw).map_err(|_| TopicError::InvalidUtf8)?;
    let filter = normalize(text);
    check_shape(&filter, max_depth)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let wild = level.bytes().any(|b| b == b'+' || b == b'#');
        let ok = match level {
            "+" => true,
            "#" => levels.peek().is_none(),
            _ => !wild,
        };
        if !ok {
            return Err(TopicError::BadWildcard);
        }
    }
    Ok(filter)
}

/// Whether a (valid, normalised) filter matches a (valid, normalised) topic.
/// The reference matcher: the subscription index must agree with it.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match Level::of(level) {
            Level::Hash => return topic_levels.next().is_some(),
            Level::Plus => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            Level::Literal(text) => {
                if topic_levels.next() != Some(text) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// Number of `/` separators.
pub fn depth(topic: &str) -> usize {
    topic.bytes().filter(|&b| b == b'/').count()
}

fn check_shape(topic: &str, max_depth: usize) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if depth(topic) > max_depth {
        return Err(TopicError::TooDeep { max: max_depth });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_separators() {
        assert_eq!(normalize("a/b"), "a/b");
        assert!(matches!(normalize("a/b"), Cow::Borrowed(_)));
        assert_eq!(normalize("/a//b"), "a/b");
        assert_eq!(normalize("///a///b///"), "a/b/");
        assert_eq!(normalize("a/b/"), "a/b/");
        assert_eq!(normalize("/"), "");
        assert_eq!(normalize("//"), "");
    }

    #[test]
    fn topics_refuse_wildcards_depth_and_bad_utf8() {
        assert_eq!(parse_topic(b"a/+", 8), Err(TopicError::Wildcard));
        assert_eq!(parse_topic(b"a#", 8), Err(TopicError::Wildcard));
        assert_eq!(parse_topic(b"//", 8), Err(TopicError::Empty));
        assert_eq!(parse_topic(b"\xff", 8), Err(TopicError::InvalidUtf8));
        assert_eq!(parse_topic(b"a\0b", 8), Err(TopicError::Nul));
        assert_eq!(
            parse_topic(b"a/b/c", 1),
            Err(TopicError::TooDeep { max: 1 })
        );
        assert_eq!(parse_topic(b"//a//b", 1).as_deref(), Ok("a/b"));
    }

    #[test]
    fn filters_allow_whole_level_wildcards_only() {
        assert_eq!(parse_filter(b"a/+/#", 8).as_deref(), Ok("a/+/#"));
        assert_eq!(parse_filter(b"#", 8).as_deref(), Ok("#"));
        assert_eq!(parse_filter(b"a/#/b", 8), Err(TopicError::BadWildcard));
        assert_eq!(parse_filter(b"a+", 8), Err(TopicError::BadWildcard));
        assert_eq!(parse_filter(b"a/b#", 8), Err(TopicError::BadWildcard));
    }

    #[test]
    fn matching_follows_upstream_semantics() {
        assert!(filter_matches("a/+", "a/b"));
        assert!(filter_matches("b/+", "b/"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(filter_matches("a/#", "a/b/c"));
        assert!(!filter_matches("a/#", "a"));
        assert!(filter_matches("#", "a"));
        assert!(filter_matches("#", "a/b"));
        assert!(filter_matches("a/b", "a/b"));
        assert!(!filter_matches("a/b", "a/c"));
        assert!(!filter_matches("a", "a/b"));
    }
}
