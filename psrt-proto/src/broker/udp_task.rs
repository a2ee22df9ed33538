//! The broker side of one UDP socket, as [`crate::conn::SocketTask`] is
//! for a connection: it opens each datagram without the broker and then
//! takes the broker lock once, for the policy checks and routing only.

use std::sync::Arc;
use std::time::Instant;

use super::{UdpCheck, UdpKeys, UdpOutcome};
use crate::conn::BrokerLock;

/// Receives the datagrams of one UDP socket. It keeps a snapshot of the
/// broker's key table, so AES-GCM runs outside the lock, and renews it
/// whenever the broker was reloaded (checked inside the lock it takes
/// anyway, so a reload costs no extra acquisition).
#[derive(Debug)]
pub struct UdpTask {
    keys: Arc<UdpKeys>,
}

impl UdpTask {
    /// A task starting from `keys` ([`super::Broker::udp_keys`]).
    pub fn new(keys: Arc<UdpKeys>) -> Self {
        Self { keys }
    }

    /// The largest datagram the broker accepts (`udp_frame_size`).
    pub fn max_datagram(&self) -> usize {
        self.keys.max_size()
    }

    /// Handles one received datagram: decodes and opens it without the
    /// broker, then takes `lock` exactly once. A
    /// [`UdpOutcome::Verify`] is answered with [`UdpTask::finish`]. `peer`
    /// is the sender, named in the audit event of a refused datagram.
    pub fn receive(
        &mut self,
        lock: &impl BrokerLock,
        datagram: &[u8],
        peer: &dyn std::fmt::Display,
        now: Instant,
    ) -> UdpOutcome {
        let opened = self.keys.open(datagram);
        let keys = &mut self.keys;
        lock.with_broker(|broker| {
            let current = broker.udp_keys();
            if current.generation() != keys.generation() {
                *keys = current.clone();
            }
            broker.apply_datagram(opened, peer, now)
        })
    }

    /// Completes a datagram after its password check (one lock
    /// acquisition).
    pub fn finish(
        &self,
        lock: &impl BrokerLock,
        pending: UdpCheck,
        ok: bool,
        peer: &dyn std::fmt::Display,
        now: Instant,
    ) -> UdpOutcome {
        lock.with_broker(|broker| broker.finish_datagram(pending, ok, peer, now))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rand::SeedableRng;

    use super::*;
    use crate::auth::{Keys, Passwords};
    use crate::broker::{AuthConfig, Broker};
    use crate::config::parse_acl;
    use crate::conn::CountingLock;
    use crate::udp::{self, Cipher, Opened};
    use crate::wire::status;

    const ALICE_KEY: [u8; 32] = [0x11; 32];
    const BOB_KEY: [u8; 32] = [0x22; 32];
    const NONCE: [u8; udp::NONCE_LEN] = [9; udp::NONCE_LEN];
    const PEER: &str = "127.0.0.1:9";

    /// A base instant; the core itself never reads the clock.
    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    fn key_hex(key: &[u8; 32]) -> String {
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Rules where alice (password `pw`, key `ALICE_KEY`) may publish to
    /// `a/#` only, plus bob's key when `with_bob`.
    fn rules(with_bob: bool) -> AuthConfig {
        let acl = "alice: {pub: ['a/#']}\nbob: {pub: ['#']}\n";
        let hash = bcrypt::hash("pw", 4).expect("bcrypt hash");
        let mut keys = format!("alice: {}\n", key_hex(&ALICE_KEY));
        if with_bob {
            keys.push_str(&format!("bob: {}\n", key_hex(&BOB_KEY)));
        }
        AuthConfig {
            allow_anonymous: false,
            acl: parse_acl(acl, Path::new("acl"), 32).expect("acl parses"),
            passwords: Some(
                Passwords::parse(&format!("alice:{hash}\n"), Path::new("pw")).expect("parses"),
            ),
            keys: Some(Keys::parse(&keys, Path::new("keys")).expect("keys parse")),
        }
    }

    fn lock(with_bob: bool) -> CountingLock {
        let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
        let broker = Broker::new(crate::Limits::default(), rules(with_bob), rng);
        CountingLock::new(broker)
    }

    fn task(lock: &CountingLock) -> UdpTask {
        UdpTask::new(lock.broker.borrow().udp_keys().clone())
    }

    fn sealed(login: &str, key: &[u8; 32], topic: &str) -> Vec<u8> {
        let mut out = Vec::new();
        udp::encode_sealed(
            &mut out,
            login,
            key,
            Cipher::Aes256Gcm,
            NONCE,
            true,
            0,
            topic,
            b"x",
        )
        .expect("encodes");
        out
    }

    fn ack_code(outcome: UdpOutcome) -> Option<u8> {
        match outcome {
            UdpOutcome::Reply(ack) => Some(ack[4]),
            _ => None,
        }
    }

    #[test]
    fn opening_needs_no_broker() {
        let keys = lock(false).broker.borrow().udp_keys().clone();
        // The broker is gone: the snapshot alone decodes and decrypts.
        let datagram = sealed("alice", &ALICE_KEY, "a/1");
        let opened = keys.open(&datagram);
        let Ok(Opened::Sealed { login, body }) = opened.opened() else {
            panic!("expected an opened sealed datagram, got {opened:?}");
        };
        assert_eq!(*login, "alice");
        assert_eq!(body.as_slice(), b"\x01\x00a/1\0x");
        let forged = sealed("alice", &BOB_KEY, "a/1");
        assert_eq!(keys.open(&forged).opened(), Err(udp::UdpError::Auth));
    }

    #[test]
    fn every_datagram_takes_the_lock_once() {
        let lock = lock(false);
        let mut task = task(&lock);
        let now = start();
        let cases: [(Vec<u8>, Option<u8>); 5] = [
            (sealed("alice", &ALICE_KEY, "a/1"), Some(status::OK)),
            (sealed("alice", &ALICE_KEY, "b/1"), Some(status::ERR_ACCESS)),
            (sealed("alice", &BOB_KEY, "a/1"), None),
            (sealed("bob", &BOB_KEY, "a/1"), None),
            (b"\xEE\xAA\x01\x00".to_vec(), None),
        ];
        for (datagram, expected) in cases {
            assert_eq!(
                ack_code(task.receive(&lock, &datagram, &PEER, now)),
                expected
            );
            assert_eq!(lock.take_count(), 1, "datagram {datagram:?}");
        }
        let oversized = vec![0; task.max_datagram() + 1];
        assert!(matches!(
            task.receive(&lock, &oversized, &PEER, now),
            UdpOutcome::Silent
        ));
        assert_eq!(lock.take_count(), 1);
    }

    #[test]
    fn a_password_check_takes_the_lock_once_more() {
        let lock = lock(false);
        let mut task = task(&lock);
        let now = start();
        let mut datagram = Vec::new();
        udp::encode_plain(&mut datagram, "alice", b"pw", true, 0, "a/1", b"x").expect("encodes");
        let UdpOutcome::Verify(pending) = task.receive(&lock, &datagram, &PEER, now) else {
            panic!("expected a password check");
        };
        assert_eq!(lock.take_count(), 1);
        let ok = pending.check.verify();
        assert!(ok);
        let outcome = task.finish(&lock, pending, ok, &PEER, now);
        assert_eq!(ack_code(outcome), Some(status::OK));
        assert_eq!(lock.take_count(), 1);
    }

    #[test]
    fn a_reload_is_seen_by_the_next_datagram() {
        let lock = lock(false);
        let mut task = task(&lock);
        let now = start();
        let bob = sealed("bob", &BOB_KEY, "t");
        assert_eq!(ack_code(task.receive(&lock, &bob, &PEER, now)), None);
        assert_eq!(lock.take_count(), 1);
        let old = task.keys.generation();

        // bob's key arrives; the task still holds the old snapshot, under
        // which bob's datagram does not open.
        lock.broker.borrow_mut().reload(rules(true));
        assert_eq!(task.keys.open(&bob).opened(), Err(udp::UdpError::Auth));
        assert_eq!(
            ack_code(task.receive(&lock, &bob, &PEER, now)),
            Some(status::OK)
        );
        assert_eq!(lock.take_count(), 1, "no extra acquisition for the reload");
        assert_eq!(task.keys.generation(), old + 1, "snapshot renewed");
        assert!(task.keys.open(&bob).opened().is_ok());

        // And a key that goes away stops working at once.
        lock.broker.borrow_mut().reload(rules(false));
        assert_eq!(ack_code(task.receive(&lock, &bob, &PEER, now)), None);
        assert_eq!(task.keys.generation(), old + 2);
    }
}
