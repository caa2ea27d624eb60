//! The worst client the limits allow: `max_messages` messages totalling `max_bytes` (100
//! messages of 655 bytes under the defaults), leased and then consumed by a settle that appends
//! as many again, on a private `redis-server` started on a free loopback port.
//!
//! Two texts: plain ASCII, and control characters (each byte of text stored as a 6-byte JSON
//! escape, the largest stored form the same limits allow).
//!
//! Criterion times the cycle (lease + settle, two round trips) from the client. Then the server
//! logs every command for 200 more cycles (`slowlog-log-slower-than 0`, on the private server
//! only) and the time it spent in each script call is printed: median, 99th percentile and
//! maximum, in microseconds. That is how long one client's call holds the server.
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flash_core::{
    Level, Limits, Message,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_redis::RedisStore;

const LONG: Duration = Duration::from_secs(3600);
const LOGGED_CYCLES: usize = 200;

/// `max_messages` messages whose sizes add up to at most `max_bytes`, each of text `unit`
/// repeated.
fn worst(limits: &Limits, unit: char) -> Vec<Message> {
    let each = limits.max_bytes() / limits.max_messages();
    let text: String = std::iter::repeat_n(unit, each / unit.len_utf8()).collect();
    let messages = vec![Message::new(Level::INFO, text); limits.max_messages()];
    assert_eq!(limits.fitting(0, 0, &messages), messages.len(), "all fit");
    messages
}

async fn cycle(store: &RedisStore, client: &ClientId, messages: &[Message], limits: &Limits) {
    let lease = LeaseId::random();
    let got = store.lease(client, &lease, LONG).await.expect("lease");
    assert_eq!(got.len(), messages.len());
    let kept = store
        .settle(client, &lease, Outcome::Consumed, messages, LONG, limits)
        .await
        .expect("settle");
    assert_eq!(kept, messages.len());
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn worst_client(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let Some(server) = rt.block_on(common::OwnServer::start()) else {
        return;
    };
    let url = server.url();
    let (store, mut admin) = rt.block_on(async {
        let store = RedisStore::builder(&url)
            .prefix("worst")
            .connect()
            .await
            .expect("connect to the private redis-server");
        let admin = common::admin(&url).await.expect("an admin connection");
        (store, admin)
    });
    let limits = Limits::default();
    let mut group = c.benchmark_group("redis worst client");
    group.sample_size(20);
    let mut report = Vec::new();
    for (name, unit) in [("ascii", 'x'), ("escaped", '\u{1}')] {
        let messages = worst(&limits, unit);
        let client = ClientId::random();
        rt.block_on(async {
            let kept = store
                .append(&client, &messages, LONG, &limits)
                .await
                .expect("append");
            assert_eq!(kept, messages.len());
        });
        group.bench_function(BenchmarkId::new("lease+settle", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        cycle(&store, &client, &messages, &limits).await;
                    }
                    started.elapsed()
                })
            });
        });
        let (lease, settle) = rt.block_on(async {
            common::log_every_command(&mut admin, true).await;
            common::take_slowlog(&mut admin).await;
            for _ in 0..LOGGED_CYCLES {
                cycle(&store, &client, &messages, &limits).await;
            }
            let log = common::take_slowlog(&mut admin).await;
            common::log_every_command(&mut admin, false).await;
            // EVALSHA <sha> 1 <key> and the arguments: the lease's are three (now, lease id,
            // lease ms), the settle's at least nine. Both scripts have one key.
            let calls = |lease: bool| {
                let mut micros: Vec<u64> = log
                    .iter()
                    .filter(|l| !l.by_script() && l.args[0].eq_ignore_ascii_case("evalsha"))
                    .filter(|l| (l.args.len() == 7) == lease)
                    .map(|l| l.micros)
                    .collect();
                micros.sort_unstable();
                micros
            };
            (calls(true), calls(false))
        });
        assert_eq!(lease.len(), LOGGED_CYCLES, "one lease call per cycle");
        assert_eq!(settle.len(), LOGGED_CYCLES, "one settle call per cycle");
        let stored: usize = messages
            .iter()
            .map(|m| flash_core::storage::stored_form::to_vec(m).map_or(0, |s| s.len()))
            .sum();
        report.push((name, messages.len(), stored, lease, settle));
    }
    group.finish();
    println!(
        "redis worst client: server time per script call over {LOGGED_CYCLES} cycles \
         (SLOWLOG, microseconds)"
    );
    for (name, count, stored, lease, settle) in report {
        for (call, micros) in [("lease", lease), ("settle", settle)] {
            println!(
                "  {name:7} {count} messages, {stored} bytes stored: {call:6} median {} \
                 p99 {} max {}",
                percentile(&micros, 0.5),
                percentile(&micros, 0.99),
                micros.last().copied().unwrap_or(0),
            );
        }
    }
}

criterion_group!(benches, worst_client);
criterion_main!(benches);
