//! A bounded cache of verified (login, password) pairs, so repeated logins
//! and plain UDP datagrams do not re-run bcrypt.
//!
//! Passwords are not kept: only a salted SHA-256 of login and password,
//! with a salt drawn at start-up, so the cache is useless outside the
//! process.

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub(super) struct CredentialCache {
    capacity: usize,
    salt: [u8; 32],
    /// login -> digest of the last verified password, oldest first.
    entries: IndexMap<String, [u8; 32]>,
}

impl CredentialCache {
    pub(super) fn new(capacity: usize, salt: [u8; 32]) -> Self {
        Self {
            capacity,
            salt,
            entries: IndexMap::new(),
        }
    }

    pub(super) fn contains(&self, login: &str, password: &[u8]) -> bool {
        self.entries.get(login) == Some(&self.digest(login, password))
    }

    pub(super) fn insert(&mut self, login: &str, password: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        let digest = self.digest(login, password);
        if let Some(slot) = self.entries.get_mut(login) {
            *slot = digest;
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.shift_remove_index(0);
        }
        self.entries.insert(login.to_owned(), digest);
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    fn digest(&self, login: &str, password: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update((login.len() as u64).to_le_bytes());
        hasher.update(login.as_bytes());
        hasher.update(password);
        hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_only_the_verified_password_and_stays_bounded() {
        let mut cache = CredentialCache::new(2, [7; 32]);
        cache.insert("a", b"pw");
        assert!(cache.contains("a", b"pw"));
        assert!(!cache.contains("a", b"other"));
        assert!(!cache.contains("b", b"pw"));
        cache.insert("b", b"x");
        cache.insert("c", b"y");
        assert!(!cache.contains("a", b"pw"), "oldest entry evicted");
        assert!(cache.contains("c", b"y"));
        cache.clear();
        assert!(!cache.contains("c", b"y"));
    }
}
