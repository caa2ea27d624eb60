//! Redis Cluster specifics (feature `cluster`; `scripts/redis-cluster` starts one): clients are
//! spread over the masters with all their keys in one slot, killed connections come back, and
//! unreachable seeds are `Unavailable` in bounded time.
#![cfg(feature = "cluster")]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flash_core::{
    ErrorKind, Level, Message,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_redis::RedisStore;
use flash_testkit::unavailable;
use redis::aio::MultiplexedConnection;

const LONG: Duration = Duration::from_secs(600);

fn msg(text: &str) -> Message {
    Message::new(Level::INFO, text)
}

/// One admin connection per seed node (each a master of the test cluster).
async fn nodes() -> Option<Vec<(String, MultiplexedConnection)>> {
    let mut out = Vec::new();
    for url in common::cluster_urls() {
        let connection = common::admin(&url).await?;
        out.push((url, connection));
    }
    Some(out)
}

async fn cluster_store(urls: &[String], prefix: &str) -> Option<RedisStore> {
    match RedisStore::cluster_builder(urls.to_vec())
        .prefix(prefix)
        .connect()
        .await
    {
        Ok(store) => Some(store),
        Err(err) => unavailable(&format!("redis cluster at {}", urls.join(",")), err),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_spread_over_the_masters_with_their_keys_in_one_slot() {
    let urls = common::cluster_urls();
    let prefix = format!("flash-cluster-{}", common::random_hex());
    let Some(store) = cluster_store(&urls, &prefix).await else {
        return;
    };
    assert!(store.is_cluster());
    let Some(mut nodes) = nodes().await else {
        return;
    };
    let mut used = BTreeSet::new();
    for i in 0..30 {
        let client = ClientId::random();
        let key = store.client_key(&client);
        store
            .append(
                &client,
                &[msg(&format!("m{i}"))],
                LONG,
                &flash_core::Limits::default(),
            )
            .await
            .expect("append");
        assert!(!key.contains('{'), "one key per client: no hash tag needed");
        let mut holders = Vec::new();
        for (url, node) in nodes.iter_mut() {
            // READONLY-free check: a master answers EXISTS for its own slots, MOVED otherwise.
            let exists: redis::RedisResult<bool> =
                redis::cmd("EXISTS").arg(&key).query_async(node).await;
            if exists == Ok(true) {
                holders.push(url.clone());
            }
        }
        assert_eq!(holders.len(), 1, "exactly one master holds the client");
        used.extend(holders);

        let lease = LeaseId::random();
        let got = store.lease(&client, &lease, LONG).await.expect("lease");
        assert_eq!(got, [msg(&format!("m{i}"))]);
        store
            .settle(
                &client,
                &lease,
                Outcome::Consumed,
                &[],
                LONG,
                &flash_core::Limits::default(),
            )
            .await
            .expect("settle");
    }
    assert!(used.len() >= 2, "clients spread over the masters: {used:?}");
}

#[tokio::test]
async fn unreachable_seeds_are_unavailable_not_a_hang() {
    let started = Instant::now();
    let err = RedisStore::cluster_builder(["redis://127.0.0.1:1", "redis://127.0.0.1:2"])
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .call_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_cluster_connections_come_back_and_nothing_is_lost() {
    let Some(mut nodes) = nodes().await else {
        return;
    };
    // A user of this test's own on every node, so only the store's connections are killed.
    let user = format!("flash-test-{}", common::random_hex());
    let password = common::random_hex();
    for (_, node) in nodes.iter_mut() {
        let () = redis::cmd("ACL")
            .arg(
                &[
                    "SETUSER",
                    &user,
                    "on",
                    &format!(">{password}"),
                    "~*",
                    "&*",
                    "+@all",
                ][..],
            )
            .query_async(node)
            .await
            .expect("ACL SETUSER");
    }
    let urls: Vec<String> = common::cluster_urls()
        .iter()
        .map(|u| u.replacen("://", &format!("://{user}:{password}@"), 1))
        .collect();
    let prefix = format!("flash-cluster-{}", common::random_hex());
    let store = RedisStore::cluster_builder(urls)
        .prefix(prefix)
        .connect()
        .await
        .expect("connect as the test user");
    let clients: Vec<ClientId> = (0..10).map(|_| ClientId::random()).collect();
    for client in &clients {
        store
            .append(client, &[msg("a")], LONG, &flash_core::Limits::default())
            .await
            .expect("append");
    }
    let mut kill = async || {
        let mut killed = 0i64;
        for (_, node) in nodes.iter_mut() {
            let n: i64 = redis::cmd("CLIENT")
                .arg(&["KILL", "USER", &user][..])
                .query_async(node)
                .await
                .expect("CLIENT KILL");
            killed += n;
        }
        killed
    };
    assert!(kill().await >= 1, "the store's connections were killed");
    for client in &clients {
        store
            .append(client, &[msg("b")], LONG, &flash_core::Limits::default())
            .await
            .expect("append after the kill");
    }
    assert!(kill().await >= 1);
    let mut leases = Vec::new();
    for client in &clients {
        let lease = LeaseId::random();
        let got = store
            .lease(client, &lease, LONG)
            .await
            .expect("lease after the kill");
        assert_eq!(got, [msg("a"), msg("b")], "nothing lost, nothing doubled");
        leases.push(lease);
    }
    assert!(kill().await >= 1);
    for (client, lease) in clients.iter().zip(&leases) {
        store
            .settle(
                client,
                lease,
                Outcome::Consumed,
                &[],
                LONG,
                &flash_core::Limits::default(),
            )
            .await
            .expect("settle after the kill");
        assert!(
            store
                .lease(client, &LeaseId::random(), LONG)
                .await
                .expect("lease")
                .is_empty()
        );
    }
    for (_, node) in nodes.iter_mut() {
        let _: redis::RedisResult<i64> = redis::cmd("ACL")
            .arg(&["DELUSER", &user][..])
            .query_async(node)
            .await;
    }
}
