//! The daemon started with a config file: anonymous login over TCP, the
//! stats endpoint, the build it reports, and a clean exit on SIGTERM.

mod daemon_support;

use std::net::SocketAddr;

use daemon_support::{
    Daemon, OK, TempDir, free_tcp_port, http_get, login, psrtd, publish, run_bounded,
};
use nix::sys::signal::Signal;
use psrtd::build_info;

fn tcp(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn anonymous_login_over_tcp_gets_a_token() {
    let dir = TempDir::new("login");
    let port = free_tcp_port();
    let config = dir.write("config.yml", &format!("proto:\n  bind: 127.0.0.1:{port}\n"));
    let daemon = Daemon::start(&config, port);
    let (mut stream, token) = login(tcp(port), "", "");
    assert!(token.is_some(), "no token; log:\n{}", daemon.log());
    assert_eq!(publish(&mut stream, "a/b", b"hello"), OK);
    let log = daemon.log();
    assert!(log.contains("runtime"), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(
        log.contains("tls=\"off\"") || log.contains("tls=off"),
        "{log}"
    );
    assert!(
        log.contains("anonymous=\"on\"") || log.contains("anonymous=on"),
        "{log}"
    );
}

#[test]
fn stats_status_returns_upstream_json() {
    let dir = TempDir::new("stats");
    let port = free_tcp_port();
    let stats = free_tcp_port();
    let config = dir.write(
        "config.yml",
        &format!("server:\n  bind_stats: 127.0.0.1:{stats}\nproto:\n  bind: 127.0.0.1:{port}\n"),
    );
    let daemon = Daemon::start(&config, port);
    let (mut stream, token) = login(tcp(port), "", "");
    assert!(token.is_some());
    assert_eq!(publish(&mut stream, "x", b"12345"), OK);

    let (status, body) = http_get(tcp(stats), "/status");
    assert!(status.contains(" 200"), "{status}; log:\n{}", daemon.log());
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    for key in [
        "time",
        "uptime",
        "data_queue_size",
        "host",
        "version",
        "counters",
        "clients",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {body}");
    }
    assert!(
        json.get("cluster").is_some_and(serde_json::Value::is_null),
        "{body}"
    );
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["host"].as_str().is_some_and(|h| !h.is_empty()));
    let counters = &json["counters"];
    for key in [
        "c_sub_ops",
        "c_pub_messages",
        "c_pub_bytes",
        "c_sent_messages",
        "c_sent_bytes",
        "c_sent_latency",
    ] {
        assert!(counters[key].is_u64(), "{key} missing in {body}");
    }
    assert!(counters["c_pub_messages"].as_u64() >= Some(1), "{body}");
    assert!(
        json["clients"]["client_count"].as_u64() >= Some(1),
        "{body}"
    );
    assert!(json["clients"]["subscription_count"].is_u64(), "{body}");
}

#[test]
fn version_names_the_runtime_and_the_allocator() {
    let output = run_bounded(psrtd().arg("--version"));
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, format!("psrtd {}\n", build_info::version()));
    let runtime = psrtd::runtime::NAME;
    let expected = match runtime {
        "monoio" => vec![
            format!(
                "runtime monoio, io_uring; allocator {}",
                build_info::ALLOCATOR
            ),
            format!(
                "runtime monoio, epoll fallback; allocator {}",
                build_info::ALLOCATOR
            ),
        ],
        _ => vec![format!(
            "runtime {runtime}; allocator {}",
            build_info::ALLOCATOR
        )],
    };
    assert!(
        expected
            .iter()
            .any(|build| stdout == format!("psrtd {} ({build})\n", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
}

#[test]
fn status_page_and_metrics_show_the_build() {
    let dir = TempDir::new("build");
    let port = free_tcp_port();
    let stats = free_tcp_port();
    let config = dir.write(
        "config.yml",
        &format!("server:\n  bind_stats: 127.0.0.1:{stats}\nproto:\n  bind: 127.0.0.1:{port}\n"),
    );
    let daemon = Daemon::start(&config, port);
    let build = build_info::describe();
    assert!(build.starts_with("runtime "), "{build}");

    let (status, body) = http_get(tcp(stats), "/status");
    assert!(status.contains(" 200"), "{status}; log:\n{}", daemon.log());
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(json["build"], build, "{body}");

    let (_, page) = http_get(tcp(stats), "/");
    assert!(page.contains("id=\"build\""), "the page has no build field");
    assert!(
        page.contains("st.build"),
        "the page does not show /status's build"
    );

    let (_, metrics) = http_get(tcp(stats), "/metrics");
    let sample = format!(
        "psrt_build_info{{version=\"{}\",runtime=\"{}\",build=\"{build}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        psrt_proto::http::runtime_of(build)
    );
    assert!(metrics.lines().any(|line| line == sample), "{metrics}");
    assert!(
        daemon.log().contains(build),
        "start-up log lacks the build:\n{}",
        daemon.log()
    );
}

#[test]
fn sigterm_exits_zero_and_removes_pid_file_and_socket() {
    let dir = TempDir::new("term");
    let port = free_tcp_port();
    let pid_file = dir.join("run.pid");
    let socket = dir.join("psrt.sock");
    let config = dir.write(
        "config.yml",
        &format!("server:\n  pid_file: run.pid\nproto:\n  bind: [127.0.0.1:{port}, psrt.sock]\n"),
    );
    let mut daemon = Daemon::start(&config, port);
    assert!(
        daemon_support::poll(|| pid_file.exists()),
        "no pid file; log:\n{}",
        daemon.log()
    );
    let pid = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(pid.trim(), daemon.pid().to_string());
    assert!(socket.exists(), "no socket file");

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit();
    assert!(status.success(), "{status}; log:\n{}", daemon.log());
    assert!(!pid_file.exists(), "pid file left behind");
    assert!(!socket.exists(), "socket file left behind");
}

#[test]
fn bind_failure_exits_non_zero_naming_the_address() {
    let dir = TempDir::new("busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let pid_file = dir.join("run.pid");
    let config = dir.write(
        "config.yml",
        &format!("server:\n  pid_file: run.pid\nproto:\n  bind: 127.0.0.1:{port}\n"),
    );
    let output = daemon_support::run_bounded(daemon_support::psrtd().arg("-c").arg(&config));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("psrtd: 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!pid_file.exists());
}
