//! The part of a [`Connection`] that runs with the broker: applying
//! decoded requests and taking a data socket's queued messages.

use std::time::{Duration, Instant};

use super::decode::Request;
use super::{CloseReason, Connection, State, TX_HIGH_WATER};
use crate::broker::{Broker, DataState, LoginDecision, Origin, SessionId};
use crate::txbuf::TxBuf;
use crate::wire::request::{DataHello, Op};
use crate::wire::status;

impl Connection {
    /// Applies the decoded requests in order, then a password check's
    /// answer; learns the broker's limits first if this is the first time
    /// (a first login frame waiting for them is decoded then).
    pub(super) fn apply_requests(&mut self, broker: &mut Broker, now: Instant) {
        if self.limits.is_none() {
            self.learn_limits(broker.limits());
            if let State::Login = self.state {
                self.decode(now);
            }
        }
        while let Some(request) = self.requests.pop_front() {
            self.apply(request, broker, now);
        }
        self.requests_bytes = 0;
        if let State::CheckingPassword {
            answer: Some(ok), ..
        } = self.state
        {
            let State::CheckingPassword { check, .. } =
                std::mem::replace(&mut self.state, State::Login)
            else {
                return;
            };
            let decision = broker.finish_login(check, ok, self.origin());
            self.deadline = now + broker.limits().timeout;
            self.apply_login(decision);
        }
    }

    /// Applies one request. Requests are decoded for the state they are
    /// applied in: decoding stops after any that changes it, and a close
    /// drops the rest.
    fn apply(&mut self, request: Request, broker: &mut Broker, now: Instant) {
        match request {
            Request::Close(reason) => self.close_now(reason),
            Request::Login(login) => {
                // A complete login is a complete operation: the first
                // request gets a full timeout.
                self.deadline = now + broker.limits().timeout;
                let decision = match self.certified_name() {
                    Some(name) => {
                        broker.login_by_certificate(name.as_deref(), &login.login, self.origin())
                    }
                    None => broker.begin_login(&login.login, &login.password, self.origin()),
                };
                self.apply_login(decision);
            }
            Request::DataHello(hello) => self.bind(hello, broker, now),
            Request::Replicate { topic, payload } => {
                let reply = broker.replicate(&topic, payload.prio, payload.payload, now);
                self.finish_op(reply, now, broker);
            }
            Request::Op(op) => {
                if let State::Control { session, .. } = self.state {
                    self.apply_op(op, session, broker, now);
                }
            }
        }
    }

    fn apply_op(&mut self, op: Op, session: SessionId, broker: &mut Broker, now: Instant) {
        let reply = match op {
            Op::Nop => status::OK,
            Op::Publish(publish) => match broker.publish(session, &publish, now) {
                Ok(reply) => reply,
                Err(err) => {
                    self.close_now(CloseReason::Protocol(err.to_string()));
                    return;
                }
            },
            Op::Subscribe(body) => broker.subscribe(session, &body),
            Op::Unsubscribe(body) => broker.unsubscribe(session, &body),
            Op::PublishRepl { topic } => {
                let reply = broker.replication_offer(session, &topic);
                if reply == status::OK_WAITING {
                    self.state = State::Control {
                        session,
                        replicating: Some(topic),
                    };
                }
                reply
            }
            Op::ReplProbe => broker.replication_probe(session),
            Op::ReplPipelined {
                prio,
                topic,
                payload,
                ..
            } => match broker.replicate_pipelined(session, prio, &topic, payload, now) {
                Ok(reply) => reply,
                Err(err) => {
                    self.close_now(CloseReason::Protocol(err.to_string()));
                    return;
                }
            },
            Op::Bye => {
                self.replies.extend_from_slice(&[status::OK]);
                self.close_now(CloseReason::Bye);
                return;
            }
        };
        self.finish_op(reply, now, broker);
    }

    fn finish_op(&mut self, reply: u8, now: Instant, broker: &Broker) {
        self.replies.extend_from_slice(&[reply]);
        self.deadline = now + broker.limits().timeout;
    }

    /// `Some` when the login comes from the client certificate (a TCP
    /// client over TLS with `tls_client_cn_login` on): the certificate's
    /// common name, `None` inside when it has no usable one.
    fn certified_name(&self) -> Option<Option<String>> {
        let tls = self.tls.as_ref()?;
        let by_cert = self.config.tls_client_cn_login && self.transport == super::Transport::Tcp;
        by_cert.then(|| tls.session.peer_common_name())
    }

    fn origin(&self) -> Origin {
        Origin {
            unix: self.transport == super::Transport::Unix,
            peer: self.peer.clone(),
        }
    }

    fn apply_login(&mut self, decision: LoginDecision) {
        match decision {
            LoginDecision::Granted(session, token) => {
                self.replies.extend_from_slice(&token);
                self.state = State::Control {
                    session,
                    replicating: None,
                };
            }
            LoginDecision::Verify(check) => {
                self.state = State::CheckingPassword {
                    check,
                    handed_out: false,
                    answer: None,
                }
            }
            LoginDecision::Denied(_) => self.close_now(CloseReason::LoginDenied),
        }
    }

    fn bind(&mut self, hello: DataHello, broker: &mut Broker, now: Instant) {
        let Some(session) = broker.bind_data(&hello.token, self.waker.clone()) else {
            self.replies.extend_from_slice(&[status::ERR]);
            self.close_now(CloseReason::DataRefused);
            return;
        };
        self.replies.extend_from_slice(&[status::OK]);
        let beacon = match hello.timeout_secs {
            0 => broker.limits().timeout / 2,
            secs => Duration::from_secs(u64::from(secs)) / 2,
        };
        self.state = State::Data {
            session,
            beacon,
            last_sent: now,
            maybe_queued: true,
        };
    }

    /// Moves queued messages into `tx` (or TLS staging) up to the high
    /// water mark. Replies must have been flushed first.
    pub(super) fn take_messages(&mut self, broker: &mut Broker, now: Instant, tx: &mut TxBuf) {
        let pending = self.pending_output(tx);
        let State::Data {
            session,
            ref mut last_sent,
            ref mut maybe_queued,
            ..
        } = self.state
        else {
            return;
        };
        if !*maybe_queued || pending >= TX_HIGH_WATER {
            return;
        }
        let target = match &mut self.tls {
            Some(tls) => &mut tls.staged,
            None => tx,
        };
        match broker.take_messages(session, now, target, TX_HIGH_WATER - pending) {
            DataState::Active(0) => *maybe_queued = false,
            DataState::Active(_) => {
                *last_sent = now;
                *maybe_queued = broker.queued(session) > 0;
            }
            DataState::Gone => self.close_now(CloseReason::SessionGone),
        }
    }
}
