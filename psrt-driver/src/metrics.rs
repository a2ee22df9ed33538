//! What `/metrics` shows that only the driver sees: connections by how
//! they came in, failed TLS handshakes and refused plain clients (counted
//! by the socket loop, lock-free), and the process's memory and open
//! files (read from `/proc/self` at each scrape).

use std::sync::atomic::{AtomicU64, Ordering};

use psrt_proto::conn::{CloseReason, Connection, ListenerKind};
use psrt_proto::http::{ConnectionCounts, ProcessInfo};

/// Connection counters of one server, shared by every socket task.
#[derive(Debug, Default)]
pub struct ConnMetrics {
    opened: [AtomicU64; ListenerKind::ALL.len()],
    closed: [AtomicU64; ListenerKind::ALL.len()],
    tls_failures: AtomicU64,
    tls_required: AtomicU64,
}

impl ConnMetrics {
    /// A connection's greeting was accepted: count it as open.
    pub fn opened(&self, kind: ListenerKind) {
        if let Some(count) = self.opened.get(kind.index()) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A socket closed: counted as closed if it was counted as open (its
    /// greeting was accepted).
    pub fn closed(&self, conn: &Connection) {
        if let Some(count) = conn
            .listener_kind()
            .and_then(|kind| self.closed.get(kind.index()))
        {
            count.fetch_add(1, Ordering::Relaxed);
        }
        match conn.close_reason() {
            Some(CloseReason::Tls(_)) => {
                self.tls_failures.fetch_add(1, Ordering::Relaxed);
            }
            Some(CloseReason::TlsRequired) => {
                self.tls_required.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// The counts as of now, for `/metrics`.
    pub fn counts(&self) -> ConnectionCounts {
        let load = |counts: &[AtomicU64; 3]| counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        ConnectionCounts {
            opened: load(&self.opened),
            closed: load(&self.closed),
            tls_handshake_failures: self.tls_failures.load(Ordering::Relaxed),
            tls_required_refusals: self.tls_required.load(Ordering::Relaxed),
        }
    }
}

/// Resident memory and open descriptors of this process, from
/// `/proc/self`; `None` where there is no procfs.
pub fn process_info() -> Option<ProcessInfo> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(ProcessInfo {
        resident_bytes: resident_pages.saturating_mul(page_size()),
        open_fds: u64::try_from(open_fds).unwrap_or(u64::MAX),
    })
}

/// The page size `statm` counts in: read from the auxiliary vector
/// (`AT_PAGESZ`), 4 KiB when it cannot be read.
fn page_size() -> u64 {
    const AT_PAGESZ: u64 = 6;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 4096;
    };
    auxv.chunks_exact(16)
        .find_map(|pair| {
            let key = u64::from_ne_bytes(pair.get(..8)?.try_into().ok()?);
            let value = u64::from_ne_bytes(pair.get(8..)?.try_into().ok()?);
            (key == AT_PAGESZ).then_some(value)
        })
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_info_reads_proc_self() {
        let info = process_info().expect("Linux has /proc/self");
        assert!(info.resident_bytes > 1024 * 1024, "{info:?}");
        // At least stdin, stdout, stderr and the directory being read.
        assert!(info.open_fds >= 3, "{info:?}");
        assert_eq!(page_size() % 4096, 0);
    }
}
