//! The part of a [`Connection`] that runs without the broker on the way
//! in: TLS decryption and decoding frames into [`Request`]s.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{CloseReason, Connection, INPUT_SLACK, MAX_REQUESTS, State, Tls, Transport};
use crate::tls::TlsSession;
use crate::wire::request::{self, DataHello, Login, Op, ReplPayload};
use crate::wire::{SocketKind, WireError, push, status};

/// A decoded frame waiting for [`Connection::handle_broker`].
pub(super) enum Request {
    /// A login frame.
    Login(Login),
    /// The data-socket hello.
    DataHello(DataHello),
    /// A control operation (a NOP only when others wait before it).
    Op(Op),
    /// The payload of an accepted PUBLISH_REPL, with its topic.
    Replicate { topic: Bytes, payload: ReplPayload },
    /// End the connection once the requests before it are applied.
    Close(CloseReason),
}

impl Request {
    /// Whether the frames after this one cannot be decoded before the
    /// broker has applied it: their meaning depends on its answer, or
    /// nothing after it counts.
    fn is_barrier(&self) -> bool {
        matches!(
            self,
            Self::Login(_)
                | Self::DataHello(_)
                | Self::Close(_)
                | Self::Op(Op::PublishRepl { .. } | Op::Bye)
        )
    }
}

impl Connection {
    /// The buffer protocol frames are decoded from.
    fn frames(&mut self) -> &mut BytesMut {
        match &mut self.tls {
            Some(tls) => &mut tls.plain,
            None => &mut self.input,
        }
    }

    /// Whether no frame bytes wait to be decoded.
    pub(super) fn frames_are_empty(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.plain.is_empty(),
            None => self.input.is_empty(),
        }
    }

    /// Whether the state takes more frames from the client.
    pub(super) fn can_decode(&self) -> bool {
        matches!(
            self.state,
            State::Login | State::Control { .. } | State::DataHello
        )
    }

    /// Moves ciphertext through TLS into the plaintext buffer.
    pub(super) fn decrypt(&mut self) -> Result<(), CloseReason> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        // rustls stops taking ciphertext while ~16 KiB of plaintext waits,
        // so feed and drain in turns until the input is used up.
        loop {
            tls.session
                .feed_ciphertext(&mut self.input)
                .map_err(|e| CloseReason::Tls(e.to_string()))?;
            let taken = tls
                .session
                .take_plaintext(&mut tls.plain)
                .map_err(|e| CloseReason::Tls(e.to_string()))?;
            if tls.session.peer_closed() {
                return Err(CloseReason::PeerClosed);
            }
            if self.input.is_empty() || taken == 0 {
                return Ok(());
            }
        }
    }

    /// Decodes complete frames into requests until the input runs out, a
    /// frame must wait for the broker's answer to an earlier one, or the
    /// request bound is reached. A malformed frame closes the connection
    /// once the requests before it are applied.
    pub(super) fn decode(&mut self, now: Instant) {
        loop {
            let blocked = self.requests.back().is_some_and(Request::is_barrier);
            if blocked || self.requests.len() >= MAX_REQUESTS {
                self.stalled |= !self.frames_are_empty();
                return;
            }
            let before = self.buffered();
            match self.decode_one(now) {
                Ok(Some(request)) => {
                    self.requests_bytes += before - self.buffered();
                    self.requests.push_back(request);
                }
                Ok(None) => {
                    if self.buffered() == before {
                        return;
                    }
                }
                Err(reason) => {
                    self.close(reason);
                    return;
                }
            }
        }
    }

    /// Decodes one frame. `Ok(None)` with input consumed: handled without
    /// the broker; without: wait for more input.
    fn decode_one(&mut self, now: Instant) -> Result<Option<Request>, CloseReason> {
        match self.state {
            State::Greeting => self.on_greeting().map(|()| None),
            State::Login => {
                // The login size bound is learned with the broker's limits.
                let Some(limits) = self.limits else {
                    return Ok(None);
                };
                let login = request::decode_login(self.frames(), limits.max_login_size);
                Ok(login.map_err(protocol)?.map(Request::Login))
            }
            State::DataHello => {
                let Some(hello) = request::decode_data_hello(self.frames()).map_err(protocol)?
                else {
                    return Ok(None);
                };
                // Data sockets carry nothing from the client after the hello.
                self.frames().clear();
                Ok(Some(Request::DataHello(hello)))
            }
            State::Data { .. } => {
                self.frames().clear();
                Ok(None)
            }
            State::Control { .. } => self.decode_control(now),
            State::CheckingPassword { .. } | State::Closed(..) => Ok(None),
        }
    }

    /// Decodes one control operation, or the payload of an accepted
    /// PUBLISH_REPL.
    fn decode_control(&mut self, now: Instant) -> Result<Option<Request>, CloseReason> {
        let Some(limits) = self.limits else {
            return Ok(None);
        };
        let State::Control { replicating, .. } = &mut self.state else {
            return Ok(None);
        };
        if let Some(topic) = replicating.take() {
            let max = limits.ops.max_pub_size;
            let repl = request::decode_repl_payload(self.frames(), max).map_err(protocol)?;
            return Ok(match repl {
                Some(payload) => Some(Request::Replicate { topic, payload }),
                None => {
                    self.set_replicating(topic);
                    None
                }
            });
        }
        match request::decode_op(self.frames(), limits.ops).map_err(protocol)? {
            // A keep-alive with nothing before it needs no broker.
            Some(Op::Nop) if self.requests.is_empty() => {
                self.replies.extend_from_slice(&[status::OK]);
                self.deadline = now + limits.timeout;
                Ok(None)
            }
            op => Ok(op.map(Request::Op)),
        }
    }

    /// Puts back the topic of an accepted offer whose payload has not
    /// fully arrived.
    fn set_replicating(&mut self, topic: Bytes) {
        if let State::Control { replicating, .. } = &mut self.state {
            *replicating = Some(topic);
        }
    }

    fn on_greeting(&mut self) -> Result<(), CloseReason> {
        let Some(greeting) = request::decode_greeting(&mut self.input).map_err(protocol)? else {
            return Ok(());
        };
        if greeting.tls {
            let Some(config) = self.config.tls.clone() else {
                return Err(CloseReason::Tls("TLS requested but not configured".into()));
            };
            let session =
                TlsSession::server(config).map_err(|e| CloseReason::Tls(e.to_string()))?;
            self.tls = Some(Box::new(Tls {
                session,
                plain: BytesMut::new(),
                staged: crate::TxBuf::new(),
                closed: false,
            }));
            self.decrypt()?;
        } else if !self.config.allow_no_tls && self.transport == Transport::Tcp {
            return Err(CloseReason::TlsRequired);
        }
        self.greeted = true;
        self.kind = greeting.kind;
        self.replies
            .extend_from_slice(&push::greeting_reply(greeting.kind));
        self.state = match greeting.kind {
            SocketKind::Control => State::Login,
            SocketKind::Data => State::DataHello,
        };
        Ok(())
    }

    /// Learns the broker's limits, which bound frame sizes and the input
    /// buffered.
    pub(super) fn learn_limits(&mut self, limits: &crate::Limits) {
        self.limits = Some(super::FrameLimits {
            ops: request::OpLimits {
                max_pub_size: limits.max_pub_size,
                max_topic_length: limits.max_topic_length,
            },
            max_login_size: limits.max_login_size,
            timeout: limits.timeout,
        });
        self.max_input = limits.max_pub_size.max(limits.max_topic_length) + INPUT_SLACK;
    }
}

pub(super) fn protocol(err: WireError) -> CloseReason {
    CloseReason::Protocol(err.to_string())
}
