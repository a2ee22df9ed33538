//! The latency floor of the machine: what the latency workload would
//! measure against a server that did nothing but forward bytes.
//!
//! The same threads as [`crate::workloads::latency`] (a publisher that
//! writes a stamped message and waits for a 5-byte reply, a subscriber
//! blocked in `read`) talk over loopback TCP to a relay thread that reads
//! each message with a blocking read, writes the reply, then writes the
//! message to the subscriber. No framing, no routing, no runtime: every
//! microsecond of it is the kernel, the scheduler and the thread wake-ups
//! a real broker also pays. A broker's latency cannot go below it on the
//! same machine, so its p99 puts the latency target in proportion.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::workloads::{Latency, SMALL_PAYLOAD};
use crate::{BenchError, Scale};

/// Bytes of one relayed message: a payload with the 8-byte stamp first.
const MESSAGE: usize = SMALL_PAYLOAD;
/// Bytes of the publisher's reply, as a PSRT `OK` frame.
const REPLY: usize = 5;
/// Bound on every blocking read, so a broken run cannot hang.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Measures the floor at `scale.latency_rate` for `scale.latency_window`.
pub fn latency_floor(scale: &Scale) -> Result<Latency, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut publisher = connected(TcpStream::connect(addr)?)?;
    let mut inbound = connected(listener.accept()?.0)?;
    let mut subscriber = connected(TcpStream::connect(addr)?)?;
    let mut outbound = connected(listener.accept()?.0)?;
    let period = Duration::from_secs(1) / scale.latency_rate.max(1);
    let count = (scale.latency_window.as_secs_f64() / period.as_secs_f64()) as u64;
    let origin = Instant::now();
    thread::scope(|s| {
        let relay = s.spawn(move || relay(&mut inbound, &mut outbound, count));
        let reader = s.spawn(move || read_stamps(&mut subscriber, origin, count));
        let published = publish(&mut publisher, origin, period, count);
        relay.join().map_err(|_| BenchError::Thread)??;
        let histogram = reader.join().map_err(|_| BenchError::Thread)??;
        let at = |q: f64| Duration::from_nanos(histogram.value_at_quantile(q));
        Ok(Latency {
            published: published?,
            delivered: histogram.len(),
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_nanos(histogram.max()),
        })
    })
}

fn connected(stream: TcpStream) -> Result<TcpStream, BenchError> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(stream)
}

/// Forwards `count` messages: reply to the publisher, then deliver, as a
/// broker answers a publish and then writes it to the subscriber.
fn relay(inbound: &mut TcpStream, outbound: &mut TcpStream, count: u64) -> Result<(), BenchError> {
    let mut message = [0u8; MESSAGE];
    for _ in 0..count {
        inbound.read_exact(&mut message)?;
        inbound.write_all(&[0u8; REPLY])?;
        outbound.write_all(&message)?;
    }
    Ok(())
}

/// Publishes `count` stamped messages on an absolute schedule, each
/// waiting for its reply.
fn publish(
    publisher: &mut TcpStream,
    origin: Instant,
    period: Duration,
    count: u64,
) -> Result<u64, BenchError> {
    let mut message = [0u8; MESSAGE];
    let mut reply = [0u8; REPLY];
    for k in 0..count {
        let slot = origin + period * u32::try_from(k).unwrap_or(u32::MAX);
        if let Some(wait) = slot.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        message[..8].copy_from_slice(&nanos_since(origin).to_le_bytes());
        publisher.write_all(&message)?;
        publisher.read_exact(&mut reply)?;
    }
    Ok(count)
}

fn read_stamps(
    subscriber: &mut TcpStream,
    origin: Instant,
    count: u64,
) -> Result<Histogram<u64>, BenchError> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|err| BenchError::Protocol(err.to_string()))?;
    let mut message = [0u8; MESSAGE];
    for _ in 0..count {
        subscriber.read_exact(&mut message)?;
        let now = nanos_since(origin);
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&message[..8]);
        histogram.saturating_record(now.saturating_sub(u64::from_le_bytes(stamp)).max(1));
    }
    Ok(histogram)
}

fn nanos_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_counts_every_message_and_orders_its_quantiles() {
        let floor = latency_floor(&Scale::quick()).expect("floor");
        assert_eq!(floor.published, 2_000);
        assert_eq!(floor.delivered, floor.published);
        assert!(floor.p50 > Duration::ZERO);
        assert!(floor.p50 <= floor.p99 && floor.p99 <= floor.p999 && floor.p999 <= floor.max);
    }
}
