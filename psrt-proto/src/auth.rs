//! Credentials files, parsed from text: the htpasswd password file
//! ([`Passwords`]) and the UDP key file ([`Keys`]), plus the bcrypt check
//! ([`verify_password`]) that drivers run off their event loop.
//!
//! Errors are [`FileError`]s naming the file, the line and the login. A key
//! or password is never echoed in a message.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::config::{FileError, OptionalSeed, UniqueMapSeed, deserialize_yaml};

/// bcrypt prefixes that `htpasswd -B` and common tools write.
const BCRYPT_PREFIXES: [&str; 3] = ["$2y$", "$2b$", "$2a$"];

/// Length of a bcrypt hash after its `$2y$NN$` head: 22 characters of salt
/// and 31 of hash.
const BCRYPT_BODY_LEN: usize = 53;

/// Checks `password` against a bcrypt `hash` (`$2y$`, `$2b$` or `$2a$`).
/// False for a wrong password and for a malformed hash; never panics.
///
/// Slow on purpose (tens of milliseconds at cost 10): drivers call it off
/// their event loop, as the core's password-check action asks.
pub fn verify_password(password: &[u8], hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

/// The password file: htpasswd lines `login:hash` with bcrypt hashes, as
/// `htpasswd -B` writes them. Blank lines and `#` comments are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passwords {
    hashes: HashMap<String, String>,
}

impl Passwords {
    /// Parses the file's text; `path` names it in errors. Refuses any hash
    /// that is not bcrypt (Apache MD5, SHA-1, crypt, plain text), a
    /// malformed bcrypt hash, and a login listed twice.
    pub fn parse(text: &str, path: &Path) -> Result<Passwords, FileError> {
        let mut hashes = HashMap::new();
        let mut lines_of: HashMap<&str, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (login, hash) = split_entry(line)
                .map_err(|message| FileError::new(path, None, message).at(Some(number), None))?;
            let at =
                |message: String| FileError::new(path, Some(login), message).at(Some(number), None);
            check_bcrypt(hash).map_err(at)?;
            if let Some(first) = lines_of.insert(login, number) {
                return Err(at(format!(
                    "user is listed twice, on lines {first} and {number}; keep one"
                )));
            }
            hashes.insert(login.to_owned(), hash.to_owned());
        }
        Ok(Passwords { hashes })
    }

    /// The bcrypt hash of `login`, if the file has one.
    pub fn hash(&self, login: &str) -> Option<&str> {
        self.hashes.get(login).map(String::as_str)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the file lists no user.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

fn split_entry(line: &str) -> Result<(&str, &str), String> {
    let Some((login, hash)) = line.split_once(':') else {
        return Err("expected `login:hash` (as written by `htpasswd -B`), found no `:`".into());
    };
    if login.is_empty() {
        return Err("the login before `:` is empty".into());
    }
    Ok((login, hash))
}

/// Checks the shape of a bcrypt hash: prefix, two cost digits (4-31), `$`,
/// then 53 characters of bcrypt's base64 alphabet.
fn check_bcrypt(hash: &str) -> Result<(), String> {
    let Some(rest) = BCRYPT_PREFIXES.iter().find_map(|p| hash.strip_prefix(p)) else {
        return Err(format!(
            "the password is stored as {}, which this server does not accept; \
             recreate it as bcrypt with `htpasswd -B`",
            scheme_name(hash)
        ));
    };
    let malformed =
        |why: &str| format!("malformed bcrypt hash ({why}); recreate it with `htpasswd -B`");
    let (cost, body) = rest
        .split_once('$')
        .ok_or_else(|| malformed("no `$` after the cost"))?;
    let cost_ok = cost.len() == 2
        && cost.bytes().all(|b| b.is_ascii_digit())
        && cost.parse::<u32>().is_ok_and(|c| (4..=31).contains(&c));
    if !cost_ok {
        return Err(malformed("the cost must be two digits from 04 to 31"));
    }
    if body.len() != BCRYPT_BODY_LEN {
        return Err(malformed(&format!(
            "expected {BCRYPT_BODY_LEN} characters after the cost, found {}",
            body.len()
        )));
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    {
        return Err(malformed("characters outside ./A-Za-z0-9"));
    }
    Ok(())
}

/// Names the scheme of a non-bcrypt htpasswd hash, for the error message.
fn scheme_name(hash: &str) -> &'static str {
    if hash.starts_with("$apr1$") {
        "Apache MD5 (`$apr1$`)"
    } else if hash.starts_with("{SHA}") {
        "SHA-1 (`{SHA}`)"
    } else if hash.starts_with("$1$") || hash.starts_with("$5$") || hash.starts_with("$6$") {
        "crypt (MD5/SHA-256/SHA-512)"
    } else if hash.starts_with('$') {
        "an unknown `$...$` scheme"
    } else {
        "crypt (DES) or plain text"
    }
}

/// The UDP key file: YAML `login: 64-hex-digit key`, one AES-256 key per
/// user (AES-128 uses its first 16 bytes). A null or empty file holds no
/// keys. `Debug` shows logins only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Keys {
    keys: HashMap<String, [u8; 32]>,
}

impl Keys {
    /// Parses the file's text; `path` names it in errors. A key that is not
    /// exactly 64 hex digits, and a login listed twice, are errors naming
    /// the login and line (never the key).
    pub fn parse(text: &str, path: &Path) -> Result<Keys, FileError> {
        let seed = UniqueMapSeed {
            value: PhantomData::<KeyHex>,
            what: "user",
        };
        let entries = deserialize_yaml(text, path, OptionalSeed(seed))?;
        let keys = entries
            .unwrap_or_default()
            .into_iter()
            .map(|(login, KeyHex(key))| (login, key))
            .collect();
        Ok(Keys { keys })
    }

    /// The key of `login`; the empty login (anonymous) uses the `_` entry.
    pub fn key(&self, login: &str) -> Option<&[u8; 32]> {
        let login = if login.is_empty() { "_" } else { login };
        self.keys.get(login)
    }

    /// Number of users with a key.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the file holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("logins", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One key as written: 64 hex digits.
struct KeyHex([u8; 32]);

impl<'de> Deserialize<'de> for KeyHex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyHexVisitor)
    }
}

struct KeyHexVisitor;

impl Visitor<'_> for KeyHexVisitor {
    type Value = KeyHex;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key of 64 hex digits")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<KeyHex, E> {
        let mut key = [0u8; 32];
        match hex::decode_to_slice(value, &mut key) {
            Ok(()) => Ok(KeyHex(key)),
            Err(hex::FromHexError::InvalidHexCharacter { index, .. }) => Err(E::custom(format!(
                "the key must be 64 hex digits (0-9, a-f); character {} is not one",
                index + 1
            ))),
            Err(_) => Err(E::custom(format!(
                "the key must be 64 hex digits (32 bytes), found {} characters",
                value.chars().count()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A real bcrypt hash at cost 4 (fast), `$2b$` as the crate writes it.
    fn hash_2b(password: &str) -> String {
        bcrypt::hash(password, 4).expect("bcrypt at cost 4")
    }

    fn passwords(text: &str) -> Passwords {
        match Passwords::parse(text, Path::new("passwd")) {
            Ok(passwords) => passwords,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    fn password_error(text: &str) -> FileError {
        match Passwords::parse(text, Path::new("passwd")) {
            Ok(passwords) => panic!("expected an error, got {passwords:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn verifies_2b_and_2y_and_refuses_a_wrong_password() {
        let hash = hash_2b("secret");
        assert!(hash.starts_with("$2b$04$"));
        assert!(verify_password(b"secret", &hash));
        assert!(!verify_password(b"Secret", &hash));
        assert!(!verify_password(b"", &hash));
        let hash_2y = hash.replacen("$2b$", "$2y$", 1);
        assert!(verify_password(b"secret", &hash_2y));
        assert!(!verify_password(b"wrong", &hash_2y));
    }

    #[test]
    fn malformed_hashes_verify_false_without_panicking() {
        for hash in [
            "",
            "$2y$",
            "$2y$04$short",
            "$apr1$abc$def",
            "plain",
            "$2y$99$",
        ] {
            assert!(!verify_password(b"secret", hash), "{hash:?}");
        }
    }

    #[test]
    fn parses_htpasswd_lines_comments_and_blanks() {
        let alice = hash_2b("a");
        let bob = hash_2b("b").replacen("$2b$", "$2y$", 1);
        let carol = hash_2b("c").replacen("$2b$", "$2a$", 1);
        let text = format!("# users\n\nalice:{alice}\r\n  bob:{bob}\n\n# end\ncarol:{carol}\n");
        let passwords = passwords(&text);
        assert_eq!(passwords.len(), 3);
        assert!(!passwords.is_empty());
        assert_eq!(passwords.hash("alice"), Some(alice.as_str()));
        assert_eq!(passwords.hash("bob"), Some(bob.as_str()));
        assert_eq!(passwords.hash("carol"), Some(carol.as_str()));
        assert_eq!(passwords.hash("dave"), None);
        assert!(verify_password(b"b", passwords.hash("bob").unwrap_or("")));
        assert!(Passwords::parse("", Path::new("p")).is_ok_and(|p| p.is_empty()));
    }

    #[test]
    fn other_schemes_are_refused_with_user_line_and_advice() {
        let cases = [
            ("alice:$apr1$x5nXYyTf$8N3SYF8IDXJHcu1g9GjNc.", "Apache MD5"),
            ("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("alice:$6$salt$hash", "crypt (MD5/SHA-256/SHA-512)"),
            ("alice:rqXexS6ZhobKA", "crypt (DES) or plain text"),
            ("alice:$9$x", "unknown"),
        ];
        for (line, scheme) in cases {
            let err = password_error(&format!("# header\n{line}\n"));
            assert_eq!(err.path, std::path::PathBuf::from("passwd"));
            assert_eq!(err.line, Some(2), "{line}");
            assert_eq!(err.key.as_deref(), Some("alice"), "{line}");
            assert!(err.message.contains(scheme), "{err}");
            assert!(err.message.contains("htpasswd -B"), "{err}");
            assert!(err.to_string().starts_with("passwd:2: alice: "), "{err}");
        }
    }

    #[test]
    fn malformed_bcrypt_is_refused() {
        let good = hash_2b("x");
        let body = good.get(7..).unwrap_or("");
        let cases = [
            (format!("$2y$4${body}"), "two digits"),
            (format!("$2y$03${body}"), "two digits"),
            (format!("$2y$32${body}"), "two digits"),
            (format!("$2y$ab${body}"), "two digits"),
            ("$2y$10".to_owned(), "no `$`"),
            (
                format!("$2y$10${}", body.get(1..).unwrap_or("")),
                "found 52",
            ),
            (format!("$2y$10${body}x"), "found 54"),
            (
                format!("$2y$10$!{}", body.get(1..).unwrap_or("")),
                "outside",
            ),
        ];
        for (hash, why) in cases {
            let err = password_error(&format!("bob:{hash}\n"));
            assert_eq!(err.key.as_deref(), Some("bob"), "{hash}");
            assert_eq!(err.line, Some(1));
            assert!(err.message.contains("malformed bcrypt"), "{err}");
            assert!(err.message.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn duplicate_login_names_both_lines() {
        let hash = hash_2b("x");
        let err = password_error(&format!("alice:{hash}\n#\nbob:{hash}\nalice:{hash}\n"));
        assert_eq!(err.line, Some(4));
        assert_eq!(err.key.as_deref(), Some("alice"));
        assert_eq!(
            err.message,
            "user is listed twice, on lines 1 and 4; keep one"
        );
    }

    #[test]
    fn lines_without_login_are_refused_without_echoing_them() {
        let err = password_error("hunter2\n");
        assert_eq!((err.line, err.key.as_deref()), (Some(1), None));
        assert!(err.message.contains("login:hash"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = password_error(&format!("\n:{}\n", hash_2b("x")));
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("login before `:` is empty"), "{err}");
    }

    const KEY_A: &str = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

    fn key_error(text: &str) -> FileError {
        match Keys::parse(text, Path::new("keys.yml")) {
            Ok(keys) => panic!("expected an error, got {keys:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn parses_keys_and_maps_the_empty_login_to_underscore() {
        let digits = "1".repeat(64);
        let text = format!("alice: {KEY_A}\n_: '{digits}'\nbob: {digits}\n");
        let keys = Keys::parse(&text, Path::new("keys.yml")).expect("keys");
        assert_eq!(keys.len(), 3);
        let alice = keys.key("alice").expect("alice");
        assert_eq!(alice[0], 0x00);
        assert_eq!(alice[15], 0xff);
        assert_eq!(alice[31], 0xff);
        assert_eq!(keys.key(""), Some(&[0x11; 32]));
        assert_eq!(keys.key("_"), Some(&[0x11; 32]));
        assert_eq!(keys.key("bob"), Some(&[0x11; 32]));
        assert_eq!(keys.key("carol"), None);
    }

    #[test]
    fn empty_key_file_holds_no_keys() {
        for text in ["", "# none\n", "~"] {
            let keys = Keys::parse(text, Path::new("keys.yml")).expect("empty");
            assert!(keys.is_empty(), "{text:?}");
            assert_eq!(keys.key(""), None);
        }
    }

    #[test]
    fn bad_keys_name_user_and_line_but_not_the_key() {
        let short = KEY_A.get(..62).unwrap_or("");
        let err = key_error(&format!("alice: {KEY_A}\nbob: {short}\n"));
        assert_eq!(err.key.as_deref(), Some("bob"));
        assert_eq!(err.line, Some(2));
        assert_eq!(
            err.message,
            "the key must be 64 hex digits (32 bytes), found 62 characters"
        );
        assert!(!err.to_string().contains(short), "{err}");

        let bad = format!("{}zz", KEY_A.get(..62).unwrap_or(""));
        let err = key_error(&format!("carol: {bad}\n"));
        assert_eq!((err.key.as_deref(), err.line), (Some("carol"), Some(1)));
        assert!(err.message.contains("character 63 is not one"), "{err}");
        assert!(!err.to_string().contains(&bad), "{err}");

        let err = key_error(&format!("dave: {KEY_A}\ndave: {KEY_A}\n"));
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("\"dave\" is listed twice"), "{err}");

        let err = key_error(&format!("- {KEY_A}\n"));
        assert!(err.message.contains("a map from user"), "{err}");
    }

    #[test]
    fn keys_debug_shows_logins_only() {
        let keys = Keys::parse(&format!("alice: {KEY_A}\n"), Path::new("k")).expect("keys");
        let debug = format!("{keys:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(!debug.contains("17"), "{debug}");
        assert!(!debug.to_lowercase().contains("aabb"), "{debug}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parsers_never_panic(text in "[a-z_:#$0-9A-Za-z./ \\n{}\\[\\]'-]{0,200}") {
            let _ = Passwords::parse(&text, Path::new("p"));
            let _ = Keys::parse(&text, Path::new("k"));
            let _ = crate::config::parse_acl(&text, Path::new("a"), 4);
            let _ = crate::config::ServerConfig::parse(&text, Path::new("c"));
        }

        #[test]
        fn passwords_errors_always_name_a_line(line in "[^\\n]{0,80}") {
            if let Err(err) = Passwords::parse(&line, Path::new("p")) {
                prop_assert_eq!(err.line, Some(1));
            }
        }
    }
}
