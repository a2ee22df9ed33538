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
