//! UDP publish, in two steps like a TCP request:
//!
//! 1. [`UdpKeys::open`] decodes a datagram and AES-GCM-opens a sealed body
//!    with a snapshot of the broker's key table. It needs no broker, so a
//!    driver runs it outside the broker lock.
//! 2. [`Broker::apply_datagram`] does what depends on the broker's state:
//!    the plain password (its bcrypt check deferred to the driver like a TCP
//!    login), the ACL and routing.
//!
//! The key table is reloadable ([`Broker::reload`]). Each reload makes a new
//! snapshot with the next generation number; an opened datagram carries the
//! generation it was opened with, and step 2 opens it again under the
//! current keys when they differ. So a reload is observed from the very
//! next datagram, and only that datagram pays for a second open, under the
//! lock. [`super::UdpTask`] keeps a driver's snapshot current.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{Broker, PasswordCheck};
use crate::auth::Keys;
use crate::topic;
use crate::udp::{self, Opened, UdpError};
use crate::wire::status;

/// What to do with a datagram.
#[derive(Debug)]
pub enum UdpOutcome {
    /// Send this acknowledgement to the sender.
    Reply([u8; 5]),
    /// Send nothing (no ack asked, or too broken to read its OP).
    Silent,
    /// Verify the password off the event loop, then call
    /// [`Broker::finish_datagram`].
    Verify(UdpCheck),
}

/// A datagram waiting for its password check.
#[derive(Debug)]
pub struct UdpCheck {
    /// The check to run ([`PasswordCheck::verify`]).
    pub check: PasswordCheck,
    /// The plaintext `OP PRIO topic 00 payload`.
    body: Bytes,
}

/// The broker's UDP keys (and datagram size limit) as of one generation:
/// everything step 1 needs. Shared behind an [`Arc`], so a driver holds
/// one without holding the broker; `Debug` shows logins only.
#[derive(Debug)]
pub struct UdpKeys {
    generation: u64,
    keys: Option<Keys>,
    max_size: usize,
}

impl UdpKeys {
    pub(super) fn new(generation: u64, keys: Option<Keys>, max_size: usize) -> Self {
        Self {
            generation,
            keys,
            max_size,
        }
    }

    /// Which reload of the broker's rules this snapshot belongs to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The largest datagram accepted (`udp_frame_size`), for sizing a
    /// receive buffer.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Step 1: decodes `datagram` and opens its body if sealed, without the
    /// broker. Never fails: a datagram that does not decode or open is
    /// carried along to be dropped by [`Broker::apply_datagram`] (or opened
    /// again there, if the keys changed meanwhile).
    pub fn open<'a>(&self, datagram: &'a [u8]) -> OpenedDatagram<'a> {
        OpenedDatagram {
            raw: datagram,
            generation: self.generation,
            opened: udp::open_datagram(datagram, self.max_size, self.keys.as_ref()),
        }
    }
}

/// A datagram after step 1, waiting for [`Broker::apply_datagram`].
#[derive(Debug)]
pub struct OpenedDatagram<'a> {
    /// The datagram as received, to open again after a reload.
    raw: &'a [u8],
    /// The key generation it was opened with.
    generation: u64,
    /// The result of decoding and opening.
    opened: Result<Opened<'a>, UdpError>,
}

impl OpenedDatagram<'_> {
    /// The decoded and opened datagram, or why it will be dropped.
    pub fn opened(&self) -> Result<&Opened<'_>, UdpError> {
        self.opened.as_ref().map_err(|err| *err)
    }
}

impl Broker {
    /// The current UDP key snapshot, for [`UdpKeys::open`] outside the
    /// broker lock.
    pub fn udp_keys(&self) -> &Arc<UdpKeys> {
        &self.udp_keys
    }

    /// Handles one received datagram, both steps at once: for a caller that
    /// owns the broker. A driver sharing the broker uses
    /// [`super::UdpTask`], which opens the datagram before taking the lock.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> UdpOutcome {
        let opened = self.udp_keys.open(datagram);
        self.apply_datagram(opened, now)
    }

    /// Step 2: checks the password and ACL of a datagram opened by
    /// [`UdpKeys::open`] and publishes it. A datagram opened with keys older
    /// than the current ones is opened again first, so a reload is never
    /// missed.
    pub fn apply_datagram(&mut self, opened: OpenedDatagram<'_>, now: Instant) -> UdpOutcome {
        let opened = if opened.generation == self.udp_keys.generation {
            opened.opened
        } else {
            self.udp_keys.open(opened.raw).opened
        };
        match opened {
            Err(_) => UdpOutcome::Silent,
            Ok(Opened::Plain {
                login,
                password,
                body,
            }) => self.plain_datagram(login, password, body, now),
            Ok(Opened::Sealed { login, body }) => {
                let rights = if login.is_empty() {
                    self.anonymous_rights()
                } else {
                    self.auth.acl.rights(login)
                };
                self.publish_datagram(&body, rights.is_some_and(|r| self.allowed(&r, &body)), now)
            }
        }
    }

    /// Completes a datagram after its password check.
    pub fn finish_datagram(&mut self, pending: UdpCheck, ok: bool, now: Instant) -> UdpOutcome {
        self.pending_checks = self.pending_checks.saturating_sub(1);
        if ok {
            self.creds
                .insert(&pending.check.login, &pending.check.password);
        }
        let rights = self.auth.acl.rights(&pending.check.login);
        let allowed = ok && rights.is_some_and(|r| self.allowed(&r, &pending.body));
        self.publish_datagram(&pending.body, allowed, now)
    }

    fn plain_datagram(
        &mut self,
        login: &str,
        password: &[u8],
        body: &[u8],
        now: Instant,
    ) -> UdpOutcome {
        if let Err(err) = udp::parse_publish(body) {
            return broken_body(err);
        }
        if login.is_empty() {
            let allowed = password.is_empty()
                && self
                    .anonymous_rights()
                    .is_some_and(|r| self.allowed(&r, body));
            return self.publish_datagram(body, allowed, now);
        }
        match self.check_credentials(login, password) {
            Ok(rights) => {
                let allowed = self.allowed(&rights, body);
                self.publish_datagram(body, allowed, now)
            }
            Err(Some(check)) if self.pending_checks < self.limits.max_pending_checks => {
                self.pending_checks += 1;
                UdpOutcome::Verify(UdpCheck {
                    check,
                    body: Bytes::copy_from_slice(body),
                })
            }
            Err(_) => self.publish_datagram(body, false, now),
        }
    }

    /// Whether the rights allow publishing the body's topic (a topic that
    /// does not parse is let through here and refused with ERR later).
    fn allowed(&self, rights: &crate::acl::UserRights, body: &[u8]) -> bool {
        let Ok(publish) = udp::parse_publish(body) else {
            return false;
        };
        match topic::parse_topic(publish.topic, self.limits.max_topic_depth) {
            Ok(topic) => rights.may_publish(&topic),
            Err(_) => true,
        }
    }

    fn publish_datagram(&mut self, body: &[u8], allowed: bool, now: Instant) -> UdpOutcome {
        let publish = match udp::parse_publish(body) {
            Ok(publish) => publish,
            Err(err) => return broken_body(err),
        };
        let code = if !allowed {
            status::ERR_ACCESS
        } else {
            match topic::parse_topic(publish.topic, self.limits.max_topic_depth) {
                Ok(topic) => {
                    let payload = Bytes::copy_from_slice(publish.payload);
                    self.cluster.offer(&topic, publish.prio, &payload, now);
                    self.route(&topic, publish.prio, payload, now, true);
                    status::OK
                }
                Err(_) => status::ERR,
            }
        };
        if publish.ack {
            UdpOutcome::Reply(udp::encode_ack(code))
        } else {
            UdpOutcome::Silent
        }
    }
}

/// The answer to a body that does not parse: ERR when its OP byte was read
/// and asked for an ack, nothing otherwise.
fn broken_body(err: UdpError) -> UdpOutcome {
    if err.ack_wanted() {
        UdpOutcome::Reply(udp::encode_ack(status::ERR))
    } else {
        UdpOutcome::Silent
    }
}
