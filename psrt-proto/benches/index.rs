//! Subscription index: does the lookup cost stay flat as subscriptions
//! grow, what does a wide fan-out cost, and how long do 100,000
//! subscriptions take to make and to remove?
//!
//! Run with `cargo bench -p psrt-proto --bench index`.

use divan::{Bencher, black_box};
use psrt_proto::subs::SubIndex;

fn main() {
    divan::main();
}

/// The topic every "exact" bench publishes to; one client matches it.
const TOPIC: &str = "site/7/dev/42/temp";

const METRICS: [&str; 8] = ["temp", "hum", "volt", "amp", "rssi", "up", "err", "fw"];

/// Ten subscriptions: the topic's own filter plus neighbours.
fn small_index() -> SubIndex {
    let mut index = SubIndex::new();
    index.insert(TOPIC, 0);
    for (client, metric) in (1..).zip(&METRICS[1..]) {
        index.insert(&format!("site/7/dev/42/{metric}"), client);
    }
    index.insert("zone/1/+/x", 8);
    index.insert("zone/2/#", 9);
    index
}

/// 100,000 subscriptions over 20,000 clients: 80,000 exact filters
/// `site/S/dev/D/METRIC` and 20,000 wildcard ones (`+` and `#`) on other
/// prefixes and on the root, so a lookup still walks a `+` branch.
fn large_index() -> SubIndex {
    let mut index = SubIndex::new();
    let mut pairs = 0_u32;
    for site in 0..100 {
        for dev in 0..100 {
            for metric in METRICS {
                index.insert(&format!("site/{site}/dev/{dev}/{metric}"), pairs % 20_000);
                pairs += 1;
            }
        }
    }
    for n in 0..20_000_u32 {
        let filter = match n % 4 {
            0 => format!("zone/{}/+/x", n / 4),
            1 => format!("zone/{}/#", n / 4),
            2 => format!("+/{}/alarm", n / 4),
            _ => format!("fleet/{}/+/+/status", n / 4),
        };
        index.insert(&filter, n);
    }
    assert_eq!(index.len(), 100_000);
    index
}

/// 1,000 clients match `fan/out`, through exact, `+` and `#` filters; 200
/// of them through two filters, so the lookup also deduplicates.
fn fan_out_index() -> SubIndex {
    let mut index = SubIndex::new();
    for client in 0..1_000_u32 {
        let filter = match client % 3 {
            0 => "fan/out",
            1 => "fan/+",
            _ => "fan/#",
        };
        index.insert(filter, client);
        if client < 200 {
            index.insert("#", client);
        }
    }
    index
}

fn bench_lookup(bencher: Bencher, index: &SubIndex, topic: &str, expected: usize) {
    let mut out = Vec::with_capacity(expected * 2);
    index.lookup(topic, &mut out);
    assert_eq!(out.len(), expected);
    bencher.bench_local(|| {
        index.lookup(black_box(topic), &mut out);
        black_box(out.len())
    });
}

#[divan::bench]
fn exact_10_subscriptions(bencher: Bencher) {
    bench_lookup(bencher, &small_index(), TOPIC, 1);
}

#[divan::bench]
fn exact_100k_subscriptions(bencher: Bencher) {
    bench_lookup(bencher, &large_index(), TOPIC, 1);
}

#[divan::bench]
fn fan_out_1000_clients(bencher: Bencher) {
    bench_lookup(bencher, &fan_out_index(), "fan/out", 1_000);
}

/// The distinct-filter shape: 100 clients, 1,000 five-level
/// filters each (`ret/C/I/+/v`).
fn five_level_index() -> SubIndex {
    let mut index = SubIndex::new();
    for client in 0..100_u32 {
        for i in 0..1_000 {
            index.insert(&format!("ret/{client}/{i}/+/v"), client);
        }
    }
    index
}

#[divan::bench(sample_count = 10)]
fn subscribe_100k(bencher: Bencher) {
    bencher.bench_local(|| black_box(large_index()).len());
}

#[divan::bench(sample_count = 10)]
fn subscribe_100k_five_level(bencher: Bencher) {
    bencher.bench_local(|| black_box(five_level_index()).len());
}

#[divan::bench(sample_count = 10)]
fn unsubscribe_100k_five_level(bencher: Bencher) {
    bencher
        .with_inputs(five_level_index)
        .bench_local_values(|mut index| {
            for client in 0..100_u32 {
                for i in 0..1_000 {
                    if let Some(id) = index.find(&format!("ret/{client}/{i}/+/v")) {
                        index.remove(id, client);
                    }
                }
            }
            index.len()
        });
}

#[divan::bench]
fn route_five_level_100k(bencher: Bencher) {
    bench_lookup(bencher, &five_level_index(), "ret/42/512/x/v", 1);
}

#[divan::bench]
fn has_match_100k_subscriptions(bencher: Bencher) {
    let index = large_index();
    assert!(index.has_match(TOPIC));
    bencher.bench_local(|| index.has_match(black_box(TOPIC)));
}
