//! The one-shot channels the sessions answer their callers through.

use futures_channel::oneshot;
use psrt_proto::client::Waiters;
use psrt_proto::wire::Token;

use super::ClientError;

/// `futures-channel` one-shots: thread-safe, so every handle is `Send`.
pub(super) struct Channels;

impl Waiters for Channels {
    type Reply = oneshot::Sender<Result<(), ClientError>>;
    type Login = oneshot::Sender<Result<Token, ClientError>>;

    fn answer(reply: Self::Reply, result: Result<(), ClientError>) {
        let _ = reply.send(result);
    }

    fn login(login: Self::Login, result: Result<Token, ClientError>) {
        let _ = login.send(result);
    }
}
