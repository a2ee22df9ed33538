//! One HTTP connection to the stats endpoint: reads a request head, checks
//! access (open when the anonymous user is admin, else Basic auth with an
//! admin user, the password check deferred like a login; a known user who
//! is not an admin gets 403, unknown credentials 401; `/metrics` also
//! opens to users whose ACL entry has `metrics: true`), answers once and
//! closes.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::acl::UserRights;
use crate::broker::{Broker, PasswordCheck};
use crate::conn::Action;
use crate::http::{self, HttpRequest, Route, StatusInfo};
use crate::topk::SortBy;
use crate::txbuf::TxBuf;

/// Clients listed on the live page at most.
const MAX_CLIENTS_SHOWN: usize = 200;
/// Topics listed on the live page at most.
const MAX_TOPICS_SHOWN: usize = 20;

enum State {
    Reading,
    Checking {
        request: HttpRequest,
        check: PasswordCheck,
        handed_out: bool,
    },
    Done,
}

/// A stats HTTP connection. Call order as for
/// [`crate::conn::Connection`]: `handle_input` / `password_checked` /
/// `handle_timeout`, then `poll_action` and `poll_transmit`; close the
/// socket once [`StatsConnection::is_closed`] and the `TxBuf` is flushed.
pub struct StatsConnection {
    state: State,
    input: BytesMut,
    response: Option<Bytes>,
    deadline: Instant,
}

impl std::fmt::Debug for StatsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsConnection")
            .field("done", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl StatsConnection {
    /// A freshly accepted socket; the request must arrive within `timeout`.
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Self {
            state: State::Reading,
            input: BytesMut::with_capacity(1024),
            response: None,
            deadline: now + timeout,
        }
    }

    /// Where the driver puts bytes read from the socket.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Whether the answer is complete: flush, then close.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Parses what arrived and answers when the head is complete.
    pub fn handle_input(&mut self, broker: &mut Broker, info: &StatusInfo) {
        if !matches!(self.state, State::Reading) {
            return;
        }
        match http::parse_request(&self.input) {
            Ok(None) => {}
            Ok(Some((request, _))) => self.on_request(request, broker, info),
            Err(_) => self.finish(http::bad_request()),
        }
    }

    /// The answer to an [`Action::CheckPassword`].
    pub fn password_checked(&mut self, ok: bool, broker: &mut Broker, info: &StatusInfo) {
        let State::Checking { .. } = self.state else {
            return;
        };
        let State::Checking { request, check, .. } =
            std::mem::replace(&mut self.state, State::Reading)
        else {
            return;
        };
        if !ok {
            self.finish(http::unauthorized());
            return;
        }
        broker.remember_credentials(&check);
        let route = http::route(&request.path);
        match broker.check_credentials(&check.login, &check.password) {
            Ok(rights) if may_see(&rights, route) => self.serve(&request, broker, info),
            Ok(_) => self.finish(http::forbidden()),
            Err(_) => self.finish(http::unauthorized()),
        }
    }

    /// The next slow job for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        let State::Checking {
            check, handed_out, ..
        } = &mut self.state
        else {
            return None;
        };
        if std::mem::replace(handed_out, true) {
            return None;
        }
        Some(Action::CheckPassword(check.clone()))
    }

    /// When [`Self::handle_timeout`] should run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        matches!(self.state, State::Reading).then_some(self.deadline)
    }

    /// Gives up on a client that did not send its request in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline && matches!(self.state, State::Reading) {
            self.state = State::Done;
        }
    }

    /// Moves the answer into `tx`.
    pub fn poll_transmit(&mut self, tx: &mut TxBuf) {
        if let Some(response) = self.response.take() {
            tx.push(response);
        }
    }

    fn on_request(&mut self, request: HttpRequest, broker: &mut Broker, info: &StatusInfo) {
        if !request.is_allowed_method() {
            self.finish(http::method_not_allowed());
            return;
        }
        let route = http::route(&request.path);
        if broker
            .anonymous_rights()
            .is_some_and(|r| may_see(&r, route))
        {
            self.serve(&request, broker, info);
            return;
        }
        let Some((login, password)) = &request.basic_auth else {
            self.finish(http::unauthorized());
            return;
        };
        match broker.check_credentials(login, password) {
            Ok(rights) if may_see(&rights, route) => self.serve(&request, broker, info),
            Ok(_) => self.finish(http::forbidden()),
            Err(None) => self.finish(http::unauthorized()),
            Err(Some(check)) => {
                self.state = State::Checking {
                    request,
                    check,
                    handed_out: false,
                }
            }
        }
    }

    fn serve(&mut self, request: &HttpRequest, broker: &Broker, info: &StatusInfo) {
        let snapshot = || broker.snapshot(MAX_CLIENTS_SHOWN, MAX_TOPICS_SHOWN, SortBy::Messages);
        let response = match http::route(&request.path) {
            Route::Index => http::render_index(),
            Route::Status => http::render_status(&snapshot(), info),
            Route::Live => http::render_live(&snapshot(), info),
            Route::History => http::render_history(info),
            Route::Metrics => http::render_metrics(&snapshot(), info),
            Route::NotFound => http::not_found(),
        };
        if request.is_head() {
            let head = http::head_of(&response).to_vec();
            self.finish(head);
        } else {
            self.finish(response);
        }
    }

    fn finish(&mut self, response: Vec<u8>) {
        self.response = Some(Bytes::from(response));
        self.state = State::Done;
    }
}

/// Whether `rights` open `route`: `/metrics` for admins and `metrics:
/// true` users (a scraper's own credentials), every other page for
/// admins only.
fn may_see(rights: &UserRights, route: Route) -> bool {
    match route {
        Route::Metrics => rights.may_read_metrics(),
        _ => rights.is_admin(),
    }
}
