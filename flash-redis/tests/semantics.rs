//! The KeyedStore contract on Redis, call by call: the same operations on `RedisStore` and on
//! flash-core's reference `MemoryStore` give the same answers, and the edge cases of the key
//! layout (expiry, chunking, foreign data) behave as documented.

mod common;

use std::time::Duration;

use flash_core::{
    Level, Message,
    storage::{ClientId, KeyedStore, LeaseId, MemoryStore, Outcome},
};
use redis::AsyncCommands;

const LONG: Duration = Duration::from_secs(600);

fn msg(text: &str) -> Message {
    Message::new(Level::INFO, text)
}

fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.text.clone()).collect()
}

/// Everything a stored message carries, for exact comparison (`Message`'s `==` compares level
/// and text only).
fn full(messages: &[Message]) -> Vec<(i32, String, Option<String>, bool)> {
    messages
        .iter()
        .map(|m| {
            (
                m.level.value(),
                m.text.clone(),
                m.extra_tags.clone(),
                m.trusted_html,
            )
        })
        .collect()
}

/// A small deterministic generator (xorshift), so a failing sequence can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_as_the_memory_store() {
    let Some(redis) = common::store().await else {
        return;
    };
    for seed in [1u64, 0x9e37_79b9_7f4a_7c15, 42, 7_777_777] {
        let memory = MemoryStore::new();
        let mut rng = Rng(seed);
        let clients = [ClientId::random(), ClientId::random()];
        let mut leases: Vec<(usize, LeaseId)> = Vec::new();
        let mut counter = 0u32;
        let mut fresh = |rng: &mut Rng, n: u64| -> Vec<Message> {
            (0..n)
                .map(|_| {
                    counter += 1;
                    let mut m = Message::new(
                        Level::new(10 * (1 + (counter % 5) as i32)),
                        format!("m{counter}"),
                    );
                    if rng.below(3) == 0 {
                        m = m.with_extra_tags(format!("tag{counter}"));
                    }
                    if rng.below(5) == 0 {
                        m = m.trusted_html();
                    }
                    m
                })
                .collect()
        };
        for step in 0..300 {
            let c = rng.below(2) as usize;
            let client = &clients[c];
            match rng.below(3) {
                0 => {
                    let n = 1 + rng.below(3);
                    let added = fresh(&mut rng, n);
                    memory
                        .append(client, &added, LONG, &flash_core::Limits::default())
                        .await
                        .expect("memory append");
                    redis
                        .append(client, &added, LONG, &flash_core::Limits::default())
                        .await
                        .expect("redis append");
                }
                1 => {
                    let lease = LeaseId::random();
                    leases.push((c, lease));
                    let expected = memory
                        .lease(client, &lease, LONG)
                        .await
                        .expect("memory lease");
                    let got = redis
                        .lease(client, &lease, LONG)
                        .await
                        .expect("redis lease");
                    assert_eq!(
                        full(&got),
                        full(&expected),
                        "seed {seed} step {step}: lease"
                    );
                }
                _ => {
                    if leases.is_empty() {
                        continue;
                    }
                    let (c, lease) = leases[rng.below(leases.len() as u64) as usize];
                    let client = &clients[c];
                    let outcome = if rng.below(2) == 0 {
                        Outcome::Consumed
                    } else {
                        Outcome::Released
                    };
                    let n = rng.below(3);
                    let added = fresh(&mut rng, n);
                    memory
                        .settle(
                            client,
                            &lease,
                            outcome,
                            &added,
                            LONG,
                            &flash_core::Limits::default(),
                        )
                        .await
                        .expect("memory settle");
                    redis
                        .settle(
                            client,
                            &lease,
                            outcome,
                            &added,
                            LONG,
                            &flash_core::Limits::default(),
                        )
                        .await
                        .expect("redis settle");
                }
            }
        }
        // Drain both: whatever is left is the same, in the same order.
        for client in &clients {
            let lease = LeaseId::random();
            let _ = memory.lease(client, &lease, Duration::ZERO).await;
            let _ = redis.lease(client, &lease, Duration::ZERO).await;
            let lease = LeaseId::random();
            let expected = memory
                .lease(client, &lease, LONG)
                .await
                .expect("memory lease");
            let got = redis
                .lease(client, &lease, LONG)
                .await
                .expect("redis lease");
            assert_eq!(full(&got), full(&expected), "seed {seed}: what is left");
        }
    }
}

#[tokio::test]
async fn released_messages_come_back_before_later_ones() {
    let Some(store) = common::store().await else {
        return;
    };
    let client = ClientId::random();
    store
        .append(
            &client,
            &[msg("a"), msg("b")],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");
    let first = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &first, LONG).await.expect("lease")),
        ["a", "b"]
    );
    store
        .append(&client, &[msg("c")], LONG, &flash_core::Limits::default())
        .await
        .expect("append");
    let second = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &second, LONG).await.expect("lease")),
        ["c"]
    );
    // A third lease sees nothing: everything is held.
    let third = LeaseId::random();
    assert!(
        store
            .lease(&client, &third, LONG)
            .await
            .expect("lease")
            .is_empty()
    );
    store
        .settle(
            &client,
            &first,
            Outcome::Released,
            &[msg("d")],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    store
        .settle(
            &client,
            &second,
            Outcome::Released,
            &[],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    let fourth = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &fourth, LONG).await.expect("lease")),
        ["a", "b", "c", "d"]
    );
}

#[tokio::test]
async fn a_late_settle_touches_only_what_its_lease_still_holds() {
    let Some(store) = common::store().await else {
        return;
    };
    let client = ClientId::random();
    store
        .append(&client, &[msg("a")], LONG, &flash_core::Limits::default())
        .await
        .expect("append");
    let slow = LeaseId::random();
    let short = Duration::from_millis(150);
    assert_eq!(
        texts(&store.lease(&client, &slow, short).await.expect("lease")),
        ["a"]
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The slow request's lease expired: another request takes the message.
    let other = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &other, LONG).await.expect("lease")),
        ["a"]
    );
    // The slow request settles late: it must not delete what it no longer holds.
    store
        .settle(
            &client,
            &slow,
            Outcome::Consumed,
            &[],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    store
        .settle(
            &client,
            &other,
            Outcome::Released,
            &[],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    let again = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &again, LONG).await.expect("lease")),
        ["a"]
    );
    // A lease that expired but was not taken over still owns its messages (as in MemoryStore).
    let lapsed = LeaseId::random();
    store
        .settle(
            &client,
            &again,
            Outcome::Released,
            &[],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    assert_eq!(
        texts(&store.lease(&client, &lapsed, short).await.expect("lease")),
        ["a"]
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    store
        .settle(
            &client,
            &lapsed,
            Outcome::Consumed,
            &[],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    let last = LeaseId::random();
    assert!(
        store
            .lease(&client, &last, LONG)
            .await
            .expect("lease")
            .is_empty()
    );
}

#[tokio::test]
async fn the_ttl_is_refreshed_by_appends_only_and_consuming_all_leaves_only_the_dedupe_window() {
    let Some(store) = common::store().await else {
        return;
    };
    let Some(mut admin) = common::admin(&common::redis_url()).await else {
        return;
    };
    let client = ClientId::random();
    let key = store.client_key(&client);
    store
        .append(&client, &[], LONG, &flash_core::Limits::default())
        .await
        .expect("empty append");
    assert!(
        !admin.exists::<_, bool>(&key).await.expect("EXISTS"),
        "an empty append writes nothing"
    );

    store
        .append(
            &client,
            &[msg("a")],
            Duration::from_secs(100),
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");
    let ttl: i64 = admin.pttl(&key).await.expect("PTTL");
    assert!((90_000..=100_000).contains(&ttl), "ttl {ttl}");
    store
        .append(
            &client,
            &[msg("b")],
            Duration::from_secs(1000),
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");
    let ttl: i64 = admin.pttl(&key).await.expect("PTTL");
    assert!((990_000..=1_000_000).contains(&ttl), "refreshed to {ttl}");
    let lease = LeaseId::random();
    store.lease(&client, &lease, LONG).await.expect("lease");
    store
        .settle(
            &client,
            &lease,
            Outcome::Released,
            &[],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    let after: i64 = admin.pttl(&key).await.expect("PTTL");
    assert!(
        after <= ttl && after > 900_000,
        "lease and release keep the ttl: {after}"
    );

    let lease = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &lease, LONG).await.expect("lease")),
        ["a", "b"]
    );
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
    assert!(
        common::stored(&mut admin, &key).await.is_empty(),
        "nothing left"
    );
    let left: i64 = admin.pttl(&key).await.expect("PTTL");
    assert!(
        (1..=60_000).contains(&left),
        "only the recent writes remain, for the dedupe window: {left} ms"
    );
}

#[tokio::test]
async fn messages_expire_with_their_ttl() {
    let Some(store) = common::store().await else {
        return;
    };
    let client = ClientId::random();
    store
        .append(
            &client,
            &[msg("a")],
            Duration::from_millis(200),
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");
    let lease = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &lease, LONG).await.expect("lease")),
        ["a"]
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Gone, leased or not; a settle of the vanished lease does nothing, and its append starts anew.
    let lease2 = LeaseId::random();
    assert!(
        store
            .lease(&client, &lease2, LONG)
            .await
            .expect("lease")
            .is_empty()
    );
    store
        .settle(
            &client,
            &lease,
            Outcome::Released,
            &[msg("b")],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    let lease3 = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &lease3, LONG).await.expect("lease")),
        ["b"]
    );
    // A zero TTL keeps nothing, as in MemoryStore.
    let other = ClientId::random();
    store
        .append(
            &other,
            &[msg("x")],
            Duration::ZERO,
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");
    assert!(
        store
            .lease(&other, &LeaseId::random(), LONG)
            .await
            .expect("lease")
            .is_empty()
    );
}

#[tokio::test]
async fn thousands_of_messages_in_one_call() {
    let Some(store) = common::store().await else {
        return;
    };
    let client = ClientId::random();
    // Far above the default limits, which would keep only the first 100.
    let roomy = flash_core::Limits::default()
        .with_max_messages(100_000)
        .with_max_bytes(1 << 30);
    // More than Lua's unpack() takes in one go: the scripts send them in chunks.
    let many: Vec<Message> = (0..5000).map(|i| msg(&format!("n{i}"))).collect();
    store
        .append(&client, &many, LONG, &roomy)
        .await
        .expect("append");
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, LONG).await.expect("lease");
    assert_eq!(got, many);
    let more: Vec<Message> = (5000..9000).map(|i| msg(&format!("n{i}"))).collect();
    store
        .settle(&client, &lease, Outcome::Released, &more, LONG, &roomy)
        .await
        .expect("settle");
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, LONG).await.expect("lease");
    assert_eq!(got.len(), 9000);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, m)| m.text == format!("n{i}"))
    );
    store
        .settle(&client, &lease, Outcome::Consumed, &[], LONG, &roomy)
        .await
        .expect("settle");
    assert!(
        store
            .lease(&client, &LeaseId::random(), LONG)
            .await
            .expect("lease")
            .is_empty()
    );
}

#[tokio::test]
async fn foreign_data_under_the_prefix_is_skipped_not_fatal() {
    let Some(store) = common::store().await else {
        return;
    };
    let Some(mut admin) = common::admin(&common::redis_url()).await else {
        return;
    };
    let client = ClientId::random();
    let key = store.client_key(&client);
    store
        .append(&client, &[msg("a")], LONG, &flash_core::Limits::default())
        .await
        .expect("append");
    common::inject(&mut admin, &key, 13, b"not a message").await;
    common::inject(&mut admin, &key, 9, b"\xff\xfe binary").await;
    store
        .append(&client, &[msg("b")], LONG, &flash_core::Limits::default())
        .await
        .expect("append");
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, LONG).await.expect("lease");
    assert_eq!(texts(&got), ["a", "b"]);
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
    let left = common::stored(&mut admin, &key).await;
    assert!(
        left.is_empty(),
        "consuming the lease also removed the garbage it held: {left:?}"
    );
    // A key that does not hold flash's data is a backend error, not a panic, and no write
    // overwrites it.
    let broken = ClientId::random();
    let () = admin
        .set(store.client_key(&broken), "a string")
        .await
        .expect("SET");
    let err = store
        .lease(&broken, &LeaseId::random(), LONG)
        .await
        .expect_err("WRONGTYPE");
    assert_eq!(err.kind(), flash_core::ErrorKind::Backend);
    assert!(std::error::Error::source(&err).is_some());
    let err = store
        .append(&broken, &[msg("x")], LONG, &flash_core::Limits::default())
        .await
        .expect_err("not flash data");
    assert_eq!(err.kind(), flash_core::ErrorKind::Backend);
    let kept: String = admin.get(store.client_key(&broken)).await.expect("GET");
    assert_eq!(kept, "a string");
    let hash = ClientId::random();
    let () = admin
        .hset(store.client_key(&hash), "f", "v")
        .await
        .expect("HSET");
    let err = store
        .lease(&hash, &LeaseId::random(), LONG)
        .await
        .expect_err("WRONGTYPE");
    assert_eq!(err.kind(), flash_core::ErrorKind::Backend);
}

#[tokio::test]
async fn clients_and_prefixes_are_isolated() {
    let Some(a) = common::store().await else {
        return;
    };
    let Some(b) = common::store().await else {
        return;
    };
    let client = ClientId::random();
    let other = ClientId::random();
    a.append(&client, &[msg("a")], LONG, &flash_core::Limits::default())
        .await
        .expect("append");
    assert!(
        b.lease(&client, &LeaseId::random(), LONG)
            .await
            .expect("lease")
            .is_empty()
    );
    assert!(
        a.lease(&other, &LeaseId::random(), LONG)
            .await
            .expect("lease")
            .is_empty()
    );
    assert_eq!(
        texts(
            &a.lease(&client, &LeaseId::random(), LONG)
                .await
                .expect("lease")
        ),
        ["a"]
    );
}
