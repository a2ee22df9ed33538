//! One task per PSRT socket (control or data): read → `handle_input`,
//! `poll_transmit` → vectored write, timers, password checks.

use std::io::IoSlice;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::conn::{Action, Connection, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Shared;

/// Bytes the socket reads at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks gathered into one `writev`.
const MAX_IOV: usize = 64;

/// Wakes the task when the broker queues something for this socket.
struct NotifyWaker(Notify);

impl Wake for NotifyWaker {
    fn wake(self: Arc<Self>) {
        self.0.notify_one();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify_one();
    }
}

/// Serves one accepted socket until it closes.
pub(crate) async fn serve<S>(shared: Arc<Shared>, stream: S, transport: Transport, peer: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let wake = Arc::new(NotifyWaker(Notify::new()));
    let waker = Waker::from(wake.clone());
    let mut conn = Connection::new(
        shared.conn.clone(),
        transport,
        peer,
        waker,
        shared.timeout,
        Instant::now(),
    );
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut tx = TxBuf::new();
    let mut check: Option<JoinHandle<bool>> = None;
    let mut read_open = true;
    let mut stopping = shared.stopping.clone();
    let mut drain_deadline: Option<tokio::time::Instant> = None;

    loop {
        {
            let mut broker = shared.lock();
            conn.poll_transmit(&mut broker, Instant::now(), &mut tx);
            if check.is_none()
                && let Some(Action::CheckPassword(job)) = conn.poll_action()
            {
                check = Some(tokio::task::spawn_blocking(move || job.verify()));
            }
            Shared::log_events(&mut broker);
        }
        if conn.is_done(&tx) {
            break;
        }
        if drain_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
        if drain_deadline.is_some() && tx.is_empty() && conn.backlog(&shared.lock()) == 0 {
            break;
        }
        let timeout = conn.poll_timeout().map(tokio::time::Instant::from_std);
        let can_read = read_open && drain_deadline.is_none() && conn.wants_input(&tx);
        if can_read {
            conn.read_buf().reserve(READ_CHUNK);
        }
        tokio::select! {
            read = reader.read_buf(conn.read_buf()), if can_read => {
                let mut broker = shared.lock();
                match read {
                    Ok(0) | Err(_) => {
                        read_open = false;
                        conn.handle_eof(&mut broker);
                    }
                    Ok(_) => conn.handle_input(&mut broker, Instant::now()),
                }
            }
            written = write_some(&mut writer, &tx), if !tx.is_empty() => match written {
                Ok(n) => tx.advance(n),
                Err(_) => {
                    conn.handle_eof(&mut shared.lock());
                    break;
                }
            },
            _ = wake.0.notified() => {}
            ok = join_check(&mut check), if check.is_some() => {
                check = None;
                conn.password_checked(ok, &mut shared.lock(), Instant::now());
            }
            _ = sleep_until(timeout), if timeout.is_some() => {
                conn.handle_timeout(&mut shared.lock(), Instant::now());
            }
            _ = stopping.wait_for(|stop| *stop), if drain_deadline.is_none() => {
                drain_deadline = Some(tokio::time::Instant::now() + shared.drain_timeout);
            }
        }
    }
    if !conn.is_closed() {
        conn.handle_eof(&mut shared.lock());
    }
    let _ = writer.shutdown().await;
}

async fn write_some<W: AsyncWrite + Unpin>(writer: &mut W, tx: &TxBuf) -> std::io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_IOV];
    let count = tx.io_slices(&mut slices);
    let n = writer.write_vectored(&slices[..count]).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}

/// The result of a password check; a check that panicked counts as failed.
async fn join_check(check: &mut Option<JoinHandle<bool>>) -> bool {
    match check {
        Some(handle) => handle.await.unwrap_or(false),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
