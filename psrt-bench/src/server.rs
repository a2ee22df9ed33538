//! Starting a `psrtd` binary under test and reading its memory.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::BenchError;
use crate::tls::Pki;

/// How long a server may take to accept connections after its start.
const STARTUP: Duration = Duration::from_secs(15);
/// Per-client pending messages: the default of both servers, kept for the
/// workloads that measure memory or single messages (the original
/// preallocates this many slots per client, so a larger queue would
/// inflate its idle memory).
pub const DATA_QUEUE: usize = 1024;
/// Per-client pending messages for the small-message throughput workloads
/// (fan-in, fan-out, their TLS forms, publishing to many subscriptions):
/// deep enough that publishers run far ahead of the subscriber, so the
/// server always has work queued and is the bottleneck, not the
/// round trips of the benchmark's pipeline.
pub const DEEP_QUEUE: usize = 8192;

/// A `psrtd` process on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    /// Holds the config and log; removed on drop.
    dir: tempfile::TempDir,
}

impl Server {
    /// Writes a config (anonymous access, 2 workers, a data queue of
    /// `data_queue`, a 60 s keep-alive so idle clients stay) and starts
    /// `binary -C CONFIG`, waiting until it accepts connections.
    ///
    /// With `tls` the certificate and key are written next to the config
    /// and named by `tls_cert` / `tls_key` (plain clients stay allowed);
    /// without it the config has no TLS keys at all, as before TLS
    /// workloads existed, so plain figures stay comparable.
    pub fn start(binary: &Path, tls: Option<&Pki>, data_queue: usize) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir()?;
        let addr = free_port()?;
        let udp = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
        let config = dir.path().join("config.yml");
        let mut tls_keys = String::new();
        if let Some(pki) = tls {
            let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
            fs::write(&cert, &pki.cert_pem)?;
            fs::write(&key, &pki.key_pem)?;
            tls_keys = tls_yaml(&cert, &key);
        }
        fs::write(
            &config,
            config_yaml(addr, udp, dir.path(), data_queue, &tls_keys),
        )?;
        fs::write(dir.path().join("acl.yml"), ACL_YAML)?;
        let log = fs::File::create(dir.path().join("psrtd.log"))?;
        let child = Command::new(binary)
            .arg("-C")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|err| BenchError::Server(format!("{}: {err}", binary.display())))?;
        let mut server = Self { child, addr, dir };
        server.wait_ready()?;
        Ok(server)
    }

    /// The TCP address it serves.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(BenchError::Server(format!(
                    "exited with {status}: {}",
                    self.log()
                )));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(BenchError::Server(format!(
            "not listening after {STARTUP:?}: {}",
            self.log()
        )))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("psrtd.log")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Best effort: the process may already have exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The YAML config, with every key the original server requires (it has
/// no defaults for most of them, and needs an ACL file); `tls_keys` are
/// extra lines of the `proto` section (empty for a plain server).
fn config_yaml(
    addr: SocketAddr,
    udp: SocketAddr,
    dir: &Path,
    data_queue: usize,
    tls_keys: &str,
) -> String {
    let pid_file = dir.join("psrtd.pid");
    format!(
        "server:
  workers: 2
  latency_warn: 1000000
  data_queue: {data_queue}
  max_topic_depth: 32
  max_topic_length: 1000000
  max_pub_size: 1100000
  pid_file: {pid}
proto:
  bind: {addr}
  bind_udp: {udp}
  timeout: 60
  allow_no_tls: true
{tls_keys}auth:
  allow_anonymous: true
  acl: acl.yml
",
        pid = pid_file.display()
    )
}

/// The `tls_cert` / `tls_key` lines of the `proto` section. Absolute
/// paths: servers differ in what a relative path is relative to.
fn tls_yaml(cert: &Path, key: &Path) -> String {
    format!(
        "  tls_cert: {}\n  tls_key: {}\n",
        cert.display(),
        key.display()
    )
}

/// The ACL: anonymous may publish and subscribe everything.
const ACL_YAML: &str = "_:\n  sub:\n    - \"#\"\n  pub:\n    - \"#\"\n";

/// A loopback address whose port was free a moment ago.
fn free_port() -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Resident memory of process `pid` in KiB (`VmRSS` of
/// `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| BenchError::Server(format!("no VmRSS for process {pid}")))
}

/// Clock ticks per second of the times in `/proc/PID/stat` (`USER_HZ`,
/// 100 on every Linux architecture the benchmark runs on).
const USER_HZ: u64 = 100;

/// CPU time (user and system, all threads) process `pid` used so far,
/// from `/proc/PID/stat`, to a tick of 10 ms.
pub fn cpu_time(pid: u32) -> Result<Duration, BenchError> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ))
        .ok_or_else(|| BenchError::Server(format!("no CPU times for process {pid}")))
}

/// `utime + stime` of a `/proc/PID/stat` line: fields 14 and 15, counted
/// after the command name, which may itself hold spaces and parentheses.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_parsed_in_kib() {
        let status = "Name:\tpsrtd\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "42 (psrt d) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(287));
        assert_eq!(parse_cpu_ticks("42 (psrtd) S 1"), None);
    }

    #[test]
    fn own_cpu_time_grows() {
        let pid = std::process::id();
        let before = cpu_time(pid).expect("own /proc stat");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        while cpu_time(pid).expect("own /proc stat") <= before && Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        assert!(cpu_time(pid).expect("own /proc stat") > before);
    }

    #[test]
    fn own_rss_is_readable() {
        let kib = rss_kib(std::process::id()).expect("own /proc status");
        assert!(kib > 0);
    }

    #[test]
    fn config_names_the_address() {
        let yaml = config_yaml(
            "127.0.0.1:4000".parse().expect("address"),
            "127.0.0.1:4001".parse().expect("address"),
            Path::new("/tmp/x"),
            DEEP_QUEUE,
            "",
        );
        assert!(yaml.contains("bind: 127.0.0.1:4000"));
        assert!(yaml.contains("data_queue: 8192\n"), "{yaml}");
        assert!(yaml.contains("bind_udp: 127.0.0.1:4001"));
        assert!(yaml.contains("allow_anonymous: true"));
        assert!(yaml.contains("pid_file: /tmp/x/psrtd.pid"));
        assert!(!yaml.contains("tls_cert"), "a plain server has no TLS keys");
    }

    #[test]
    fn tls_keys_go_into_the_proto_section() {
        let keys = tls_yaml(
            Path::new("/tmp/x/server.crt"),
            Path::new("/tmp/x/server.key"),
        );
        let yaml = config_yaml(
            "127.0.0.1:4000".parse().expect("address"),
            "127.0.0.1:4001".parse().expect("address"),
            Path::new("/tmp/x"),
            DATA_QUEUE,
            &keys,
        );
        let proto = yaml
            .split_once("proto:\n")
            .and_then(|(_, rest)| rest.split_once("auth:\n"))
            .map(|(proto, _)| proto)
            .expect("proto section before auth");
        assert!(proto.contains("  tls_cert: /tmp/x/server.crt\n"), "{yaml}");
        assert!(proto.contains("  tls_key: /tmp/x/server.key\n"), "{yaml}");
        assert!(proto.contains("  allow_no_tls: true\n"), "{yaml}");
    }
}
