//! The runtime-independent state of an async client's handles: the request
//! channel, the message receiver the first caller takes, why the session
//! ended, and the request methods every runtime's `Client` offers.

use std::sync::{Arc, Mutex, OnceLock};

use super::SessionError;

/// Why a session ended, shared by its control task (which records it
/// once, through [`ControlSession::end`](super::ControlSession::end)) and
/// its handles (which fail later requests with it).
#[derive(Debug, Clone, Default)]
pub struct SessionEnd(Arc<OnceLock<String>>);

impl SessionEnd {
    /// A session that has not ended yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The error of a request made after the end: the recorded reason, or
    /// a generic one while the task has not recorded it yet.
    pub fn error(&self) -> SessionError {
        match self.0.get() {
            Some(reason) => SessionError::Disconnected(reason.clone()),
            None => SessionError::session_ended(),
        }
    }

    /// Records `reason`; only the first call counts.
    pub fn set(&self, reason: String) {
        let _ = self.0.set(reason);
    }
}

/// What every clone of a runtime's `Client` shares, over the runtime's
/// channel types: `C` sends requests to the control task, `M` receives the
/// pushed messages. Made by [`ConnectPlan::into_handle`](super::ConnectPlan::into_handle).
#[derive(Debug)]
pub struct ClientHandle<C, M> {
    commands: C,
    messages: TakeOnce<M>,
    ended: SessionEnd,
}

impl<C: Clone, M> Clone for ClientHandle<C, M> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            messages: self.messages.clone(),
            ended: self.ended.clone(),
        }
    }
}

impl<C, M> ClientHandle<C, M> {
    /// A handle over `commands`, holding the `messages` receiver (`None`
    /// for a publish-only client), failing with the reason in `ended`.
    pub fn new(commands: C, messages: Option<M>, ended: SessionEnd) -> Self {
        Self {
            commands,
            messages: TakeOnce::new(messages),
            ended,
        }
    }

    /// The sender of requests to the control task.
    pub fn commands(&self) -> &C {
        &self.commands
    }

    /// The message receiver, to the first caller of any clone only.
    pub fn take_messages(&self) -> Option<M> {
        self.messages.take()
    }

    /// The error of a request the control task can no longer take.
    pub fn ended_error(&self) -> SessionError {
        self.ended.error()
    }
}

/// A value the first caller takes, shared by every clone of a handle (a
/// client's message receiver: one reader gets the stream).
#[derive(Debug)]
struct TakeOnce<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for TakeOnce<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> TakeOnce<T> {
    /// Holds `value` (`None`: there is nothing to take).
    fn new(value: Option<T>) -> Self {
        Self(Arc::new(Mutex::new(value)))
    }

    /// The value, to the first caller only.
    fn take(&self) -> Option<T> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// Defines the request methods of a runtime crate's `Client` (`publish`,
/// `publish_nowait`, `subscribe`, `subscribe_bulk`, `unsubscribe`,
/// `unsubscribe_bulk`, `bye`) inside its `impl Client` block, so the
/// three runtimes offer the same methods with the same documentation.
///
/// `$ticket` is the runtime's reply future and `$error` its `ClientError`
/// (a re-export of [`SessionError`](crate::client::SessionError)). The
/// block must define `async fn send(&self, request: Request) ->
/// Result<$ticket, $error>`, which hands a request to the control task.
#[macro_export]
macro_rules! client_request_methods {
    ($ticket:ty, $error:ty) => {
        /// Publishes `payload` to `topic` and waits for the server's answer.
        pub async fn publish(
            &self,
            topic: &str,
            payload: impl Into<$crate::Bytes>,
        ) -> Result<(), $error> {
            self.publish_nowait(topic, payload).await?.await
        }

        /// Sends a publish without waiting for its answer; await the
        /// returned ticket for it. Waits only while the request queue is
        /// full, so many publishes can be in flight.
        pub async fn publish_nowait(
            &self,
            topic: &str,
            payload: impl Into<$crate::Bytes>,
        ) -> Result<$ticket, $error> {
            self.send($crate::client::Request::publish(topic, payload))
                .await
        }

        /// Subscribes to one topic filter (`+` and `#` wildcards allowed).
        pub async fn subscribe(&self, filter: &str) -> Result<(), $error> {
            self.subscribe_bulk(&[filter]).await
        }

        /// Subscribes to several filters in one request; the server stops
        /// at the first refused one (earlier ones stay applied).
        pub async fn subscribe_bulk(&self, filters: &[&str]) -> Result<(), $error> {
            self.send($crate::client::Request::subscribe(filters))
                .await?
                .await
        }

        /// Unsubscribes from one topic filter.
        pub async fn unsubscribe(&self, filter: &str) -> Result<(), $error> {
            self.unsubscribe_bulk(&[filter]).await
        }

        /// Unsubscribes from several filters in one request.
        pub async fn unsubscribe_bulk(&self, filters: &[&str]) -> Result<(), $error> {
            self.send($crate::client::Request::unsubscribe(filters))
                .await?
                .await
        }

        /// Ends the session for every clone: requests already sent are
        /// answered first, then the server confirms and closes both
        /// sockets.
        pub async fn bye(self) -> Result<(), $error> {
            self.send($crate::client::Request::Bye).await?.await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_caller_takes_the_messages() {
        let handle = ClientHandle::new((), Some(7), SessionEnd::new());
        let clone = handle.clone();
        assert_eq!(clone.take_messages(), Some(7));
        assert_eq!(handle.take_messages(), None);
        let publish_only = ClientHandle::<(), u8>::new((), None, SessionEnd::new());
        assert_eq!(publish_only.take_messages(), None);
    }

    #[test]
    fn the_end_reason_is_recorded_once() {
        let ended = SessionEnd::new();
        assert_eq!(
            ended.error().to_string(),
            "connection lost: the session ended"
        );
        ended.set("first".into());
        ended.set("second".into());
        assert_eq!(ended.clone().error().to_string(), "connection lost: first");
    }
}
