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

use super::{Broker, BrokerEvent, PasswordCheck, UdpReject, UdpVerdict};
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

/// Whether a datagram's sender may publish its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Allowed,
    AclDenied,
    LoginRefused,
}

/// Who sent a datagram, for the audit event of a refusal.
struct Sender<'a> {
    login: Option<&'a str>,
    peer: &'a dyn std::fmt::Display,
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
    pub fn handle_datagram(
        &mut self,
        datagram: &[u8],
        peer: &dyn std::fmt::Display,
        now: Instant,
    ) -> UdpOutcome {
        let opened = self.udp_keys.open(datagram);
        self.apply_datagram(opened, peer, now)
    }

    /// Step 2: checks the password and ACL of a datagram opened by
    /// [`UdpKeys::open`] and publishes it. A datagram opened with keys older
    /// than the current ones is opened again first, so a reload is never
    /// missed. `peer` (the sender's address) is formatted only for the
    /// audit event of a refused datagram.
    pub fn apply_datagram(
        &mut self,
        opened: OpenedDatagram<'_>,
        peer: &dyn std::fmt::Display,
        now: Instant,
    ) -> UdpOutcome {
        let opened = if opened.generation == self.udp_keys.generation {
            opened.opened
        } else {
            self.udp_keys.open(opened.raw).opened
        };
        match opened {
            Err(err) => {
                let sender = Sender { login: None, peer };
                self.udp_rejected(&sender, UdpReject::from_error(err));
                UdpOutcome::Silent
            }
            Ok(Opened::Plain {
                login,
                password,
                body,
            }) => self.plain_datagram(login, password, body, peer, now),
            Ok(Opened::Sealed { login, body }) => {
                let rights = if login.is_empty() {
                    self.anonymous_rights()
                } else {
                    self.auth.acl.rights(login)
                };
                let access = self.access(rights.as_deref(), &body);
                let sender = Sender {
                    login: Some(login),
                    peer,
                };
                self.publish_datagram(&body, access, &sender, now)
            }
        }
    }

    /// Completes a datagram after its password check; `peer` as for
    /// [`Self::apply_datagram`].
    pub fn finish_datagram(
        &mut self,
        pending: UdpCheck,
        ok: bool,
        peer: &dyn std::fmt::Display,
        now: Instant,
    ) -> UdpOutcome {
        self.pending_checks = self.pending_checks.saturating_sub(1);
        if ok {
            self.creds
                .insert(&pending.check.login, &pending.check.password);
        }
        let rights = self.auth.acl.rights(&pending.check.login);
        let access = if ok {
            self.access(rights.as_deref(), &pending.body)
        } else {
            Access::LoginRefused
        };
        let sender = Sender {
            login: Some(&pending.check.login),
            peer,
        };
        self.publish_datagram(&pending.body, access, &sender, now)
    }

    fn plain_datagram(
        &mut self,
        login: &str,
        password: &[u8],
        body: &[u8],
        peer: &dyn std::fmt::Display,
        now: Instant,
    ) -> UdpOutcome {
        let sender = Sender {
            login: Some(login),
            peer,
        };
        if let Err(err) = udp::parse_publish(body) {
            self.udp_rejected(&sender, UdpReject::Malformed(err));
            return broken_body(err);
        }
        if login.is_empty() {
            let access = if password.is_empty() {
                self.access(self.anonymous_rights().as_deref(), body)
            } else {
                Access::LoginRefused
            };
            return self.publish_datagram(body, access, &sender, now);
        }
        match self.check_credentials(login, password) {
            Ok(rights) => {
                let access = self.access(Some(&rights), body);
                self.publish_datagram(body, access, &sender, now)
            }
            Err(Some(check)) if self.pending_checks < self.limits.max_pending_checks => {
                self.pending_checks += 1;
                UdpOutcome::Verify(UdpCheck {
                    check,
                    body: Bytes::copy_from_slice(body),
                })
            }
            Err(_) => self.publish_datagram(body, Access::LoginRefused, &sender, now),
        }
    }

    /// Whether `rights` (`None`: the login may not log in) allow the
    /// body's publish.
    fn access(&self, rights: Option<&crate::acl::UserRights>, body: &[u8]) -> Access {
        match rights {
            None => Access::LoginRefused,
            Some(rights) if self.allowed(rights, body) => Access::Allowed,
            Some(_) => Access::AclDenied,
        }
    }

    /// Counts a dropped or refused datagram and reports it.
    fn udp_rejected(&mut self, sender: &Sender<'_>, reason: UdpReject) {
        if let UdpReject::AclDenied { .. } = reason
            && let Some(count) = self
                .tallies
                .acl_denied
                .get_mut(super::AccessOp::UdpPublish.index())
        {
            *count += 1;
        }
        self.count_udp(reason.verdict());
        self.push_event(BrokerEvent::UdpRejected {
            login: sender.login.map(str::to_owned),
            peer: sender.peer.to_string(),
            reason,
        });
    }

    fn count_udp(&mut self, verdict: UdpVerdict) {
        if let Some(count) = self.tallies.udp_frames.get_mut(verdict.index()) {
            *count += 1;
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

    fn publish_datagram(
        &mut self,
        body: &[u8],
        access: Access,
        sender: &Sender<'_>,
        now: Instant,
    ) -> UdpOutcome {
        let publish = match udp::parse_publish(body) {
            Ok(publish) => publish,
            Err(err) => {
                self.udp_rejected(sender, UdpReject::Malformed(err));
                return broken_body(err);
            }
        };
        let code = match access {
            Access::LoginRefused => {
                self.udp_rejected(sender, UdpReject::LoginRefused);
                status::ERR_ACCESS
            }
            Access::AclDenied => {
                let topic = String::from_utf8_lossy(publish.topic).into_owned();
                self.udp_rejected(sender, UdpReject::AclDenied { topic });
                status::ERR_ACCESS
            }
            Access::Allowed => {
                match topic::parse_topic(publish.topic, self.limits.max_topic_depth) {
                    Ok(topic) => {
                        let payload = Bytes::copy_from_slice(publish.payload);
                        self.cluster.offer(
                            &topic,
                            publish.prio,
                            &payload,
                            crate::cluster::UDP_PUBLISHER,
                            now,
                        );
                        self.route(&topic, publish.prio, payload, now, true);
                        self.count_udp(UdpVerdict::Accepted);
                        status::OK
                    }
                    Err(_) => {
                        self.count_udp(UdpVerdict::BadTopic);
                        status::ERR
                    }
                }
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
