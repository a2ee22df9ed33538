//! What the sessions need from a runtime's client driver: how it answers
//! the callers waiting on a session, and what its socket reads bring.

use crate::wire::Token;

use super::SessionError;

/// The one-shot channels a runtime answers its callers through, named by
/// a marker type of the runtime crate (so each runtime keeps its own
/// channel types). A caller that stopped waiting is not an error: the
/// answer is dropped.
pub trait Waiters {
    /// Receives the outcome of one request, or whether the data socket was
    /// accepted.
    type Reply;
    /// Receives the session token, or why the login failed.
    type Login;

    /// Sends `result` through `reply`.
    fn answer(reply: Self::Reply, result: Result<(), SessionError>);

    /// Sends `result` through `login`.
    fn login(login: Self::Login, result: Result<Token, SessionError>);
}

/// What one read of a client socket brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes were appended to the session's read buffer.
    Data,
    /// End of stream, or a read error (both end the connection).
    Eof,
}

impl ReadOutcome {
    /// The outcome of a read syscall's result: zero bytes or an error is
    /// the end of the stream.
    pub fn of(read: &std::io::Result<usize>) -> Self {
        match read {
            Ok(0) | Err(_) => ReadOutcome::Eof,
            Ok(_) => ReadOutcome::Data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bytes_and_errors_end_the_stream() {
        assert_eq!(ReadOutcome::of(&Ok(3)), ReadOutcome::Data);
        assert_eq!(ReadOutcome::of(&Ok(0)), ReadOutcome::Eof);
        let failed = Err(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(ReadOutcome::of(&failed), ReadOutcome::Eof);
    }
}
