//! Runs every workload at the quick scale against an in-process tokio
//! server, checking that each completes with every message delivered.

use std::time::Duration;

use psrt_bench::workloads::{self, Target};
use psrt_bench::{Scale, server::DATA_QUEUE};
use psrt_proto::spec::ServerSpec;
use psrt_runtime_tokio::server::Server;

#[test]
fn quick_workloads_deliver_everything() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut spec = ServerSpec::open("127.0.0.1:0".parse().expect("address"));
    spec.limits.data_queue = DATA_QUEUE;
    spec.limits.timeout = Duration::from_secs(60);
    let server = runtime.block_on(Server::bind(spec)).expect("bind");
    let addr = server.addrs().tcp[0];
    let handle = server.handle();
    runtime.spawn(server.run());

    let scale = Scale::quick();
    let mut start = || {
        Ok(Target {
            addr,
            pid: None,
            process: None,
        })
    };
    let results = workloads::run_all(&scale, &mut start);
    handle.stop();

    for (name, throughput) in [
        ("fan-in", &results.fan_in),
        ("fan-out", &results.fan_out),
        ("large", &results.large),
    ] {
        let t = throughput
            .as_ref()
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(t.published > 0, "{name}: nothing published");
        assert_eq!(t.delivered, t.expected, "{name}: lost messages");
        assert_eq!(t.misrouted, 0, "{name}");
    }
    let fan_out = results.fan_out.as_ref().expect("fan-out");
    assert_eq!(
        fan_out.expected,
        fan_out.published * scale.fan_out_subscribers as u64
    );

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
