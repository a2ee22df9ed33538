//! Runs every workload at the quick scale against an in-process tokio
//! server, checking that each completes with every message delivered, and
//! that a server without TLS makes the TLS workloads `NoTls`, not errors.

use std::net::SocketAddr;
use std::time::Duration;

use psrt_bench::tls::{Endpoint, Pki};
use psrt_bench::workloads::{self, Failure, Security, Setup, Target, Workload};
use psrt_bench::{Scale, server::DEEP_QUEUE};
use psrt_proto::spec::ServerSpec;
use psrt_proto::tls::server_config_from_pem;
use psrt_runtime_tokio::server::{Server, ServerHandle};

/// A tokio server on a free loopback port, with the bench's certificate
/// when `pki` is given (plain clients stay allowed).
fn serve(runtime: &tokio::runtime::Runtime, pki: Option<&Pki>) -> (SocketAddr, ServerHandle) {
    let mut spec = ServerSpec::open("127.0.0.1:0".parse().expect("address"));
    spec.limits.data_queue = DEEP_QUEUE;
    spec.limits.timeout = Duration::from_secs(60);
    spec.conn.tls = pki.map(|pki| {
        server_config_from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
            .expect("server TLS config from the bench's certificate")
    });
    let server = runtime.block_on(Server::bind(spec)).expect("bind");
    let addr = server.addrs().tcp[0];
    let handle = server.handle();
    runtime.spawn(server.run());
    (addr, handle)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A target on `addr`: plain, or TLS trusting `pki`'s CA.
fn target(addr: SocketAddr, pki: &Pki, security: Security) -> Target {
    let endpoint = match security {
        Security::Plain => Endpoint::plain(addr),
        Security::Tls => Endpoint::tls(addr, pki.client().expect("client TLS settings")),
    };
    Target {
        endpoint,
        pid: None,
        process: None,
    }
}

#[test]
fn quick_workloads_deliver_everything() {
    let runtime = runtime();
    let pki = Pki::generate().expect("certificates");
    let (addr, handle) = serve(&runtime, Some(&pki));

    let scale = Scale::quick();
    let mut starts = Vec::new();
    let mut start = |setup: Setup| {
        starts.push(setup);
        Ok(target(addr, &pki, setup.security))
    };
    let results = workloads::run_all(&scale, &mut start);
    handle.stop();

    assert_eq!(
        starts
            .iter()
            .filter(|s| s.security == Security::Tls)
            .count(),
        2,
        "fan-in and fan-out over TLS: {starts:?}"
    );
    assert_eq!(
        starts.iter().filter(|s| s.data_queue == DEEP_QUEUE).count(),
        5,
        "fan-in, fan-out (plain and TLS) and subscriptions run deep: {starts:?}"
    );
    for (name, throughput) in [
        ("fan-in", &results.fan_in),
        ("fan-in-tls", &results.fan_in_tls),
        ("fan-out", &results.fan_out),
        ("fan-out-tls", &results.fan_out_tls),
        ("large", &results.large),
        ("medium", &results.medium),
        ("large-duo", &results.large_duo),
    ] {
        let t = throughput
            .as_ref()
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(t.published > 0, "{name}: nothing published");
        assert_eq!(t.delivered, t.expected, "{name}: lost messages");
        assert_eq!(t.misrouted, 0, "{name}");
    }
    for fan_out in [&results.fan_out, &results.fan_out_tls] {
        let fan_out = fan_out.as_ref().expect("fan-out");
        assert_eq!(
            fan_out.expected,
            fan_out.published * scale.fan_out_subscribers as u64
        );
    }

    let latency = results.latency.as_ref().expect("latency");
    assert!(
        latency.published >= 1000,
        "paced publishes: {}",
        latency.published
    );
    assert_eq!(latency.delivered, latency.published);
    assert!(
        latency.p50 <= latency.p99 && latency.p99 <= latency.p999 && latency.p999 <= latency.max
    );

    let subs = results.subscriptions.as_ref().expect("subscriptions");
    assert_eq!(
        subs.count,
        scale.subscription_clients * scale.subscriptions_per_client
    );
    assert!(subs.publish.published > 0);
    assert_eq!(
        subs.publish.delivered, subs.publish.expected,
        "subscription publish lost messages"
    );
    assert_eq!(subs.publish.misrouted, 0);

    let idle = results.idle.as_ref().expect("idle");
    assert_eq!(idle.clients, scale.idle_clients);
    assert_eq!(idle.bytes_per_client, None);
}

#[test]
fn tls_workloads_are_not_available_on_a_plain_server() {
    let runtime = runtime();
    let pki = Pki::generate().expect("certificates");
    let (addr, handle) = serve(&runtime, None);
    let mut start = |setup: Setup| Ok(target(addr, &pki, setup.security));
    let only = [Workload::FanInTls, Workload::FanOutTls];
    let results = workloads::run_selected(&Scale::quick(), &only, &mut start);
    handle.stop();

    for (name, outcome) in [
        ("fan-in-tls", &results.fan_in_tls),
        ("fan-out-tls", &results.fan_out_tls),
    ] {
        assert!(
            matches!(outcome, Err(Failure::NoTls(_))),
            "{name}: {outcome:?}"
        );
    }
    assert_eq!(results.fan_in, Err(Failure::NotRun));
}
