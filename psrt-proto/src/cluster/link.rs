//! [`Link`]: the client side of one replication connection to a peer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::ReplMessage;
use crate::client::{ClientError, ClientEvent, ControlClient, RequestId};
use crate::txbuf::TxBuf;
use crate::wire::status;

/// What a link did since its last report, for the driver to apply to the
/// peer's [`Outbox`](super::Outbox) under the broker lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkReport {
    /// Payloads the peer confirmed.
    pub sent: u64,
    /// Their payload bytes.
    pub sent_bytes: u64,
    /// Topics the peer answered `NOT_REQUIRED` for, one entry per answer.
    pub not_required: Vec<Arc<str>>,
    /// Batched messages skipped because their topic was just answered
    /// `NOT_REQUIRED`.
    pub suppressed: u64,
    /// Messages refused by the peer, or lost when the link failed.
    pub dropped: u64,
    /// The smoothed round trip of an offer, in µs, when it changed.
    pub rtt_us: Option<u64>,
    /// A failure worth showing, if one happened.
    pub error: Option<String>,
}

impl LinkReport {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        *self == LinkReport::default()
    }
}

/// Why a link failed; it must be dropped and a new one connected later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The connection, TLS, login or a reply failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The peer answered ERR_ACCESS to an offer.
    #[error(
        "the peer refused replication (ERR_ACCESS): its ACL must give our user `replicator: true`"
    )]
    NotReplicator,
    /// The peer ended the session.
    #[error("the peer closed the connection")]
    Closed,
    /// The peer closed the connection (or answered an error) on the
    /// pipelined op's probe: it does not know the op (the original
    /// server). Reconnect with a [`LinkMode::Plain`] link.
    #[error("the peer does not speak pipelined replication (op 0x12)")]
    PipeliningRefused,
}

/// Which replication op a new link uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkMode {
    /// Probe for the pipelined op after login and use it when the peer
    /// answers; the link fails with [`LinkError::PipeliningRefused`] when
    /// it does not.
    #[default]
    Auto,
    /// PUBLISH_REPL only, one offer in flight (peers that are the
    /// original server).
    Plain,
}

/// Pipelined messages a link keeps unanswered, at most.
pub const WINDOW: usize = 256;

/// Where a link is in choosing its op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// [`LinkMode::Auto`]: the probe is not sent yet (`None`) or is
    /// unanswered.
    Probing(Option<RequestId>),
    /// The peer speaks the pipelined op.
    Pipelined,
    /// PUBLISH_REPL.
    Plain,
}

/// A pipelined message awaiting its answer.
#[derive(Debug)]
struct Sent {
    id: RequestId,
    topic: Arc<str>,
    len: usize,
    sent_at: Instant,
}

/// The offer in flight.
#[derive(Debug)]
struct Offer {
    message: ReplMessage,
    id: RequestId,
    sent_at: Instant,
    /// Answered `OK_WAITING`: the payload goes next.
    wanted: bool,
}

/// One replication connection to a peer, over a [`ControlClient`] logged in
/// as a replicator there.
///
/// # Driving it
///
/// Like the [`ControlClient`] it wraps: feed socket bytes through
/// [`read_buf`](Self::read_buf) and [`handle_input`](Self::handle_input)
/// (end of stream: [`handle_eof`](Self::handle_eof)), call
/// [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout). When
/// [`wants_messages`](Self::wants_messages), move a batch from the outbox
/// into [`batch_mut`](Self::batch_mut). After every call, call
/// [`poll_send`](Self::poll_send) with the monotonic and the wall-clock
/// time, then [`poll_transmit`](Self::poll_transmit); apply
/// [`take_report`](Self::take_report) to the outbox whenever the broker is
/// locked anyway. After an error the link is dead: take its final report
/// with [`abort`](Self::abort).
///
/// Against our own nodes (after a successful probe) messages go out as
/// self-delimited pipelined frames, up to [`WINDOW`] unanswered; against
/// the original server, one PUBLISH_REPL offer is in flight at a time and
/// a payload's confirmation overlaps with the next offer. Either way
/// messages reach the peer in batch order.
#[derive(Debug)]
pub struct Link {
    client: ControlClient,
    op: Op,
    /// Pipelined messages sent and not yet answered, oldest first.
    window: VecDeque<Sent>,
    batch: VecDeque<ReplMessage>,
    offer: Option<Offer>,
    /// Payloads sent and not yet confirmed, with their sizes.
    payloads: VecDeque<(RequestId, usize)>,
    report: LinkReport,
    /// Smoothed round trip, µs.
    srtt: Option<u64>,
}

impl Link {
    /// A link over `client` (greeting and login already queued).
    pub fn new(client: ControlClient, mode: LinkMode) -> Self {
        let op = match mode {
            LinkMode::Auto => Op::Probing(None),
            LinkMode::Plain => Op::Plain,
        };
        Self {
            client,
            op,
            window: VecDeque::new(),
            batch: VecDeque::new(),
            offer: None,
            payloads: VecDeque::new(),
            report: LinkReport::default(),
            srtt: None,
        }
    }

    /// Whether the login completed and the op is chosen (messages may
    /// flow).
    pub fn is_up(&self) -> bool {
        self.client.is_logged_in() && !matches!(self.op, Op::Probing(_))
    }

    /// Whether the probe found the pipelined op.
    pub fn is_pipelined(&self) -> bool {
        self.op == Op::Pipelined
    }

    /// Whether the link is up and can send more: move a batch in.
    pub fn wants_messages(&self) -> bool {
        let room = match self.op {
            Op::Probing(_) => false,
            Op::Pipelined => self.window.len() < WINDOW,
            Op::Plain => self.offer.is_none(),
        };
        self.is_up() && self.batch.is_empty() && room
    }

    /// The messages waiting in the link, for the outbox to fill.
    pub fn batch_mut(&mut self) -> &mut VecDeque<ReplMessage> {
        &mut self.batch
    }

    /// The buffer the driver reads socket bytes into.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        self.client.read_buf()
    }

    /// Processes bytes read into [`read_buf`](Self::read_buf).
    pub fn handle_input(&mut self, now: Instant) -> Result<(), LinkError> {
        if let Err(err) = self.client.handle_input(now) {
            return Err(self.refusal_or(err.into()));
        }
        self.drain_events(now)
    }

    /// The peer closed the stream: always a failure for a link, and
    /// [`LinkError::PipeliningRefused`] while the probe is unanswered.
    pub fn handle_eof(&mut self) -> Result<(), LinkError> {
        let err = match self.client.handle_eof() {
            Ok(()) => LinkError::Closed,
            Err(err) => err.into(),
        };
        Err(self.refusal_or(err))
    }

    /// A failure while the probe is unanswered is the peer refusing it.
    fn refusal_or(&self, err: LinkError) -> LinkError {
        match self.op {
            Op::Probing(Some(_)) => LinkError::PipeliningRefused,
            _ => err,
        }
    }

    /// Keep-alives and reply deadlines.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), LinkError> {
        Ok(self.client.handle_timeout(now)?)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    /// Moves every byte ready for the socket into `tx`.
    pub fn poll_transmit(&mut self, tx: &mut TxBuf) {
        self.client.poll_transmit(tx);
    }

    /// Sends what is due: the payload of an offer answered `OK_WAITING`,
    /// then the next offer. `now` is monotonic; `unix_ns` is the wall
    /// clock at the same moment (ns since the Unix epoch), from which each
    /// message's original publish timestamp is derived.
    pub fn poll_send(&mut self, now: Instant, unix_ns: u64) -> Result<(), LinkError> {
        if !self.client.is_logged_in() {
            return Ok(());
        }
        match self.op {
            Op::Probing(None) => {
                self.op = Op::Probing(Some(self.client.repl_probe(now)?));
                return Ok(());
            }
            Op::Probing(Some(_)) => return Ok(()),
            Op::Pipelined => return self.send_pipelined(now, unix_ns),
            Op::Plain => {}
        }
        if let Some(offer) = self.offer.take_if(|offer| offer.wanted) {
            let message = offer.message;
            let timestamp = origin_timestamp(&message, now, unix_ns);
            let id = self
                .client
                .repl_payload(message.prio, timestamp, &message.payload, now)?;
            self.payloads.push_back((id, message.payload.len()));
        }
        if self.offer.is_none()
            && let Some(message) = self.batch.pop_front()
        {
            let id = self.client.publish_repl(&message.topic, now)?;
            self.offer = Some(Offer {
                message,
                id,
                sent_at: now,
                wanted: false,
            });
        }
        Ok(())
    }

    /// Sends batched messages as pipelined frames while the window has
    /// room.
    fn send_pipelined(&mut self, now: Instant, unix_ns: u64) -> Result<(), LinkError> {
        while self.window.len() < WINDOW
            && let Some(message) = self.batch.pop_front()
        {
            let timestamp = origin_timestamp(&message, now, unix_ns);
            let id = self.client.repl_pipelined(
                &message.topic,
                message.prio,
                timestamp,
                &message.payload,
                now,
            )?;
            self.window.push_back(Sent {
                id,
                topic: message.topic,
                len: message.payload.len(),
                sent_at: now,
            });
        }
        Ok(())
    }

    /// What happened since the last report.
    pub fn take_report(&mut self) -> LinkReport {
        std::mem::take(&mut self.report)
    }

    /// Ends a failed link: what it still held is counted as dropped, and
    /// the final report returned with `error` (the failure in words, a
    /// [`LinkError`] or the driver's own) recorded.
    pub fn abort(&mut self, error: &str) -> LinkReport {
        let lost = self.batch.len()
            + usize::from(self.offer.is_some())
            + self.payloads.len()
            + self.window.len();
        self.report.dropped += lost as u64;
        self.batch.clear();
        self.window.clear();
        self.offer = None;
        self.payloads.clear();
        self.report.error = Some(error.to_owned());
        self.take_report()
    }

    fn drain_events(&mut self, now: Instant) -> Result<(), LinkError> {
        while let Some(event) = self.client.poll_event() {
            match event {
                ClientEvent::LoggedIn { .. } => {}
                ClientEvent::Reply { id, status } => self.on_reply(id, status, now)?,
                ClientEvent::Closed => return Err(LinkError::Closed),
            }
        }
        Ok(())
    }

    fn on_reply(&mut self, id: RequestId, code: u8, now: Instant) -> Result<(), LinkError> {
        match self.op {
            Op::Probing(Some(probe)) if probe == id => {
                return match code {
                    status::OK => {
                        self.op = Op::Pipelined;
                        Ok(())
                    }
                    status::ERR_ACCESS => Err(LinkError::NotReplicator),
                    _ => Err(LinkError::PipeliningRefused),
                };
            }
            Op::Pipelined => return self.on_pipelined_reply(id, code, now),
            _ => {}
        }
        if let Some(&(payload_id, len)) = self.payloads.front()
            && payload_id == id
        {
            self.payloads.pop_front();
            if code == status::OK {
                self.report.sent += 1;
                self.report.sent_bytes += len as u64;
            } else {
                self.report.dropped += 1;
            }
            return Ok(());
        }
        let Some(offer) = self.offer.as_mut().filter(|offer| offer.id == id) else {
            return Ok(());
        };
        let sent_at = offer.sent_at;
        self.measure_rtt(sent_at, now);
        match code {
            status::OK_WAITING => {
                if let Some(offer) = self.offer.as_mut() {
                    offer.wanted = true;
                }
            }
            status::NOT_REQUIRED => {
                let topic = self.offer.take().map(|offer| offer.message.topic);
                if let Some(topic) = topic {
                    self.not_required(topic);
                }
            }
            status::ERR_ACCESS => {
                self.offer = None;
                self.report.dropped += 1;
                return Err(LinkError::NotReplicator);
            }
            _ => {
                self.offer = None;
                self.report.dropped += 1;
            }
        }
        Ok(())
    }
}

impl Link {
    /// Answers to pipelined messages come in order: `OK` delivered,
    /// `NOT_REQUIRED` nobody there subscribes (the topic is then not sent
    /// for a while, as with PUBLISH_REPL).
    fn on_pipelined_reply(
        &mut self,
        id: RequestId,
        code: u8,
        now: Instant,
    ) -> Result<(), LinkError> {
        if self.window.front().is_none_or(|sent| sent.id != id) {
            return Ok(());
        }
        let Some(sent) = self.window.pop_front() else {
            return Ok(());
        };
        self.measure_rtt(sent.sent_at, now);
        match code {
            status::OK => {
                self.report.sent += 1;
                self.report.sent_bytes += sent.len as u64;
            }
            status::NOT_REQUIRED => self.not_required(sent.topic),
            status::ERR_ACCESS => {
                self.report.dropped += 1;
                return Err(LinkError::NotReplicator);
            }
            _ => self.report.dropped += 1,
        }
        Ok(())
    }

    /// The peer wants nothing on `topic`: skip it in the batch and report
    /// it for the outbox to remember.
    fn not_required(&mut self, topic: Arc<str>) {
        let before = self.batch.len();
        self.batch.retain(|message| message.topic != topic);
        self.report.suppressed += (before - self.batch.len()) as u64;
        self.report.not_required.push(topic);
    }

    /// Folds one round trip into the smoothed one.
    fn measure_rtt(&mut self, sent_at: Instant, now: Instant) {
        let rtt =
            u64::try_from(now.saturating_duration_since(sent_at).as_micros()).unwrap_or(u64::MAX);
        let srtt = self.srtt.map_or(rtt, |old| old - old / 8 + rtt / 8);
        self.srtt = Some(srtt);
        self.report.rtt_us = Some(srtt);
    }
}

/// The original publish time of `message`, ns since the Unix epoch, from
/// the wall clock `unix_ns` read at the monotonic `now`.
fn origin_timestamp(message: &ReplMessage, now: Instant, unix_ns: u64) -> u64 {
    let age = now.saturating_duration_since(message.published).as_nanos();
    unix_ns.saturating_sub(u64::try_from(age).unwrap_or(u64::MAX))
}
