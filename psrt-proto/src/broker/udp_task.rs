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
    /// [`UdpOutcome::Verify`] is answered with [`UdpTask::finish`].
    pub fn receive(&mut self, lock: &impl BrokerLock, datagram: &[u8], now: Instant) -> UdpOutcome {
        let opened = self.keys.open(datagram);
        let keys = &mut self.keys;
        lock.with_broker(|broker| {
            let current = broker.udp_keys();
            if current.generation() != keys.generation() {
                *keys = current.clone();
            }
            broker.apply_datagram(opened, now)
        })
    }

    /// Completes a datagram after its password check (one lock
    /// acquisition).
    pub fn finish(
        &self,
        lock: &impl BrokerLock,
        pending: UdpCheck,
        ok: bool,
        now: Instant,
    ) -> UdpOutcome {
        lock.with_broker(|broker| broker.finish_datagram(pending, ok, now))
    }
}
