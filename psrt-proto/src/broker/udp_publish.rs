//! UDP publish: authentication (plain password or AES-GCM key), ACL check
//! and routing of one datagram, with the bcrypt check deferred to the
//! driver like a TCP login.

use std::time::Instant;

use bytes::Bytes;

use super::{Broker, PasswordCheck};
use crate::topic;
use crate::udp::{self, DatagramAuth, UdpError};
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

impl Broker {
    /// Handles one received datagram.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> UdpOutcome {
        let Ok(frame) = udp::decode_datagram(datagram, self.limits.udp_frame_size) else {
            return UdpOutcome::Silent;
        };
        let login = frame.login;
        match frame.auth {
            DatagramAuth::Plain { password, body } => {
                self.plain_datagram(login, password, body, now)
            }
            DatagramAuth::Sealed {
                cipher,
                nonce,
                sealed,
            } => {
                let Some(key) = self.auth.keys.as_ref().and_then(|keys| keys.key(login)) else {
                    return UdpOutcome::Silent;
                };
                let Ok(body) = udp::open(cipher, key, nonce, sealed) else {
                    return UdpOutcome::Silent;
                };
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
