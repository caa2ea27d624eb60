//! The client limits, enforced inside the scripts (one atomic step per call) against everything
//! the client has pending, on Redis and on Redis Cluster: a prefix is kept and counted,
//! concurrent appends never exceed the limits together, settle's append is limited too, and
//! consuming frees room. Then the hostile client of issue 12 (20 requests of 1000 messages of
//! 10 KB) through the handle and through the bridge.

mod common;

use std::time::Duration;

use flash_core::{
    Key, Keys, Level, Limits, Message,
    storage::{ClientId, Incoming, KeyedStore, LeaseId, Outcome, ServerStorage, Storage, Update},
};
use flash_redis::RedisStore;
use flash_testkit::{Harness, Options};
use http::HeaderMap;
use redis::AsyncCommands as _;

const LONG: Duration = Duration::from_secs(600);

fn msg(text: &str) -> Message {
    Message::new(Level::INFO, text)
}

fn sized(tag: &str, size: usize) -> Message {
    let mut text = tag.to_owned();
    text.extend(std::iter::repeat_n('.', size.saturating_sub(tag.len())));
    msg(&text)
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

fn bytes(messages: &[Message]) -> usize {
    messages.iter().map(Message::size).sum()
}

/// Everything pending for `client` (no lease held), leased and released again.
async fn pending(store: &RedisStore, client: &ClientId) -> Vec<Message> {
    let lease = LeaseId::random();
    let got = store.lease(client, &lease, LONG).await.expect("lease");
    store
        .settle(
            client,
            &lease,
            Outcome::Released,
            &[],
            LONG,
            &Limits::default(),
        )
        .await
        .expect("release");
    got
}

async fn a_prefix_is_kept_and_counted(store: RedisStore) {
    // Count: 3 at most.
    let limits = Limits::default().with_max_messages(3);
    let client = ClientId::random();
    let kept = store
        .append(&client, &[msg("a"), msg("b")], LONG, &limits)
        .await
        .expect("append");
    assert_eq!(kept, 2);
    let kept = store
        .append(&client, &[msg("c"), msg("d"), msg("e")], LONG, &limits)
        .await
        .expect("append");
    assert_eq!(kept, 1, "one more fits: the oldest of the new ones");
    let kept = store
        .append(&client, &[msg("f")], LONG, &limits)
        .await
        .expect("append");
    assert_eq!(kept, 0, "full");
    assert_eq!(texts(&pending(&store, &client).await), ["a", "b", "c"]);

    // Bytes: 10 at most; a message's size counts its extra tags.
    let limits = Limits::default().with_max_bytes(10);
    let client = ClientId::random();
    let tagged = sized("b", 2).with_extra_tags("xx");
    let kept = store
        .append(
            &client,
            &[sized("a", 4), tagged.clone(), sized("c", 4)],
            LONG,
            &limits,
        )
        .await
        .expect("append");
    assert_eq!(kept, 2, "4 + (2 + 2) fit, 4 more do not");
    let kept = store
        .append(&client, &[sized("d", 2), sized("e", 1)], LONG, &limits)
        .await
        .expect("append");
    assert_eq!(kept, 1, "exactly 10 bytes fit, not 11");
    let got = pending(&store, &client).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], tagged);
    assert_eq!(bytes(&got), 10);

    // Length: a message too long stops the prefix, even when later ones would fit.
    let limits = Limits::default().with_max_text_len(5);
    let client = ClientId::random();
    let kept = store
        .append(
            &client,
            &[sized("a", 5), sized("b", 6), sized("c", 1)],
            LONG,
            &limits,
        )
        .await
        .expect("append");
    assert_eq!(kept, 1);
    let kept = store
        .append(
            &client,
            &[sized("d", 3).with_extra_tags("xyz")],
            LONG,
            &limits,
        )
        .await
        .expect("append");
    assert_eq!(kept, 0, "3 + 3 bytes is longer than 5");
    assert_eq!(pending(&store, &client).await, [sized("a", 5)]);

    // Nothing fits: nothing is written at all.
    let client = ClientId::random();
    let kept = store
        .append(&client, &[sized("a", 5000)], LONG, &Limits::default())
        .await
        .expect("append");
    assert_eq!(kept, 0);
    assert!(pending(&store, &client).await.is_empty());
}

async fn concurrent_appends_never_exceed_the_limits(store: RedisStore) {
    for limits in [
        Limits::default().with_max_messages(25),
        Limits::default().with_max_bytes(1000),
    ] {
        let client = ClientId::random();
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let batch: Vec<Message> =
                        (0..10).map(|i| sized(&format!("w{w}-{i} "), 30)).collect();
                    let kept = store
                        .append(&client, &batch, LONG, &limits)
                        .await
                        .expect("append");
                    (batch, kept)
                })
            })
            .collect();
        let mut written = Vec::new();
        for writer in writers {
            written.push(writer.await.expect("writer"));
        }
        let got = pending(&store, &client).await;
        let total: usize = written.iter().map(|(_, kept)| kept).sum();
        assert_eq!(got.len(), total, "every kept message, nothing else");
        assert!(got.len() <= limits.max_messages(), "{} messages", got.len());
        assert!(bytes(&got) <= limits.max_bytes(), "{} bytes", bytes(&got));
        // 160 messages of 30 bytes were offered: the limit is reached, not just respected.
        let expected = limits.max_messages().min(limits.max_bytes() / 30);
        assert_eq!(total, expected);
        for (batch, kept) in &written {
            for (i, m) in batch.iter().enumerate() {
                let stored = got.iter().filter(|g| *g == m).count();
                assert_eq!(stored, usize::from(i < *kept), "a prefix of each batch");
            }
        }
    }
}

async fn settles_append_is_limited_too(store: RedisStore) {
    let limits = Limits::default().with_max_messages(4);
    let client = ClientId::random();
    store
        .append(&client, &[msg("a"), msg("b")], LONG, &limits)
        .await
        .expect("append");
    // Released: the leased messages stay pending and count.
    let lease = LeaseId::random();
    assert_eq!(
        store
            .lease(&client, &lease, LONG)
            .await
            .expect("lease")
            .len(),
        2
    );
    let five: Vec<Message> = ["c", "d", "e", "f", "g"].map(msg).to_vec();
    let kept = store
        .settle(&client, &lease, Outcome::Released, &five, LONG, &limits)
        .await
        .expect("settle");
    assert_eq!(kept, 2);
    // A lease held by another request counts too.
    let lease = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &lease, LONG).await.expect("lease")),
        ["a", "b", "c", "d"]
    );
    let kept = store
        .append(&client, &[msg("x")], LONG, &limits)
        .await
        .expect("append");
    assert_eq!(kept, 0, "leased messages are still pending");
    let kept = store
        .settle(
            &client,
            &LeaseId::random(),
            Outcome::Consumed,
            &five,
            LONG,
            &limits,
        )
        .await
        .expect("settle");
    assert_eq!(kept, 0, "a settle of another lease frees nothing");
    // Consumed: the room is freed before the append, in the same step.
    let kept = store
        .settle(&client, &lease, Outcome::Consumed, &five, LONG, &limits)
        .await
        .expect("settle");
    assert_eq!(kept, 4);
    assert_eq!(texts(&pending(&store, &client).await), ["c", "d", "e", "f"]);
}

async fn consuming_frees_room(store: RedisStore) {
    let limits = Limits::default().with_max_messages(3).with_max_bytes(30);
    let client = ClientId::random();
    let full = [sized("a", 10), sized("b", 10), sized("c", 10)];
    assert_eq!(
        store
            .append(&client, &full, LONG, &limits)
            .await
            .expect("append"),
        3
    );
    assert_eq!(
        store
            .append(&client, &[msg("d")], LONG, &limits)
            .await
            .expect("append"),
        0
    );
    // Consuming part of it frees exactly that part: a lease sees what was appended before it,
    // so the consumed lease holds a and b only.
    let lease = LeaseId::random();
    let mut held = store.lease(&client, &lease, LONG).await.expect("lease");
    assert_eq!(held.len(), 3);
    store
        .settle(&client, &lease, Outcome::Released, &[], LONG, &limits)
        .await
        .expect("release");
    let lease = LeaseId::random();
    held = store.lease(&client, &lease, LONG).await.expect("lease");
    assert_eq!(held, full);
    store
        .settle(&client, &lease, Outcome::Consumed, &[], LONG, &limits)
        .await
        .expect("consume");
    let kept = store
        .append(
            &client,
            &[sized("d", 20), sized("e", 10), sized("f", 1)],
            LONG,
            &limits,
        )
        .await
        .expect("append");
    assert_eq!(kept, 2, "all the room is back");
    // A released lease frees nothing.
    let lease = LeaseId::random();
    store.lease(&client, &lease, LONG).await.expect("lease");
    store
        .settle(&client, &lease, Outcome::Released, &[], LONG, &limits)
        .await
        .expect("release");
    assert_eq!(
        store
            .append(&client, &[msg("g")], LONG, &limits)
            .await
            .expect("append"),
        0
    );
    // Expired with the TTL: the counters go with the messages.
    let client = ClientId::random();
    store
        .append(&client, &full, Duration::from_millis(100), &limits)
        .await
        .expect("append");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        store
            .append(&client, &full, LONG, &limits)
            .await
            .expect("append"),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_a_prefix_and_counts_it() {
    if let Some(store) = common::store().await {
        a_prefix_is_kept_and_counted(store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_concurrent_appends_never_exceed_the_limits() {
    if let Some(store) = common::store().await {
        concurrent_appends_never_exceed_the_limits(store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_settles_append_is_limited_too() {
    if let Some(store) = common::store().await {
        settles_append_is_limited_too(store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_consuming_frees_room() {
    if let Some(store) = common::store().await {
        consuming_frees_room(store).await;
    }
}

#[cfg(feature = "cluster")]
mod cluster {
    use super::*;

    async fn store() -> Option<RedisStore> {
        let urls = common::cluster_urls();
        match RedisStore::cluster_builder(urls.clone())
            .prefix(format!("flash-limits-{}", common::random_hex()))
            .connect()
            .await
        {
            Ok(store) => Some(store),
            Err(err) => {
                flash_testkit::unavailable(&format!("redis cluster at {}", urls.join(",")), err)
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_keeps_a_prefix_and_counts_it() {
        if let Some(store) = store().await {
            a_prefix_is_kept_and_counted(store).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_concurrent_appends_never_exceed_the_limits() {
        if let Some(store) = store().await {
            concurrent_appends_never_exceed_the_limits(store).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_settles_append_is_limited_too() {
        if let Some(store) = store().await {
            settles_append_is_limited_too(store).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_consuming_frees_room() {
        if let Some(store) = store().await {
            consuming_frees_room(store).await;
        }
    }
}

const TEN_KB: usize = 10_000;

/// How many messages and bytes the client's key holds, read behind the store's back.
async fn stored(admin: &mut redis::aio::MultiplexedConnection, key: &str) -> (usize, usize) {
    let messages: Vec<Message> = common::stored(admin, key)
        .await
        .iter()
        .map(|(_, value, _)| {
            flash_core::storage::stored_form::from_slice(value).expect("a message")
        })
        .collect();
    (messages.len(), bytes(&messages))
}

/// Issue 12, reproduction 1: 20 requests of one client, each adding 1000 messages of 10 KB,
/// left 20 001 hash fields (198 MB) pending. Through the handle, which refuses at `add`, and
/// through the bridge as a hostile caller would (no handle): at most the limits stay pending,
/// and what the store refused is reported as dropped. Under the default limits a 10 KB message
/// is too long to keep at all; with a longer allowed text, 6 fit the 64 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_client_is_held_to_the_limits() {
    let Some(mut admin) = common::admin(&common::redis_url()).await else {
        return;
    };
    let big = sized("big", TEN_KB);
    let burst = vec![big.clone(); 1000];
    for limits in [
        Limits::default(),
        Limits::default().with_max_text_len(16 * 1024),
    ] {
        let Some(store) = common::store().await else {
            return;
        };
        let fit = limits.fitting(0, 0, &burst);
        assert_eq!(fit, if limits == Limits::default() { 0 } else { 6 });

        // Through the handle.
        let options = Options::new();
        let harness = Harness::keyed(store.clone(), &options);
        let browser = harness.client();
        for round in 0..20 {
            let request =
                browser.request_with(flash_core::MessagesConfig::default().with_limits(limits));
            for m in &burst {
                request.add(m.clone());
            }
            let report = request.finish().await.report;
            assert_eq!(report.refused, 1000 - fit, "the handle refused at add");
            let dropped = if round == 0 { 0 } else { fit };
            assert_eq!(
                report.dropped.len(),
                dropped,
                "round {round}: the store refused"
            );
        }
        if fit == 0 {
            assert_eq!(
                browser.cookie(flash_core::storage::DEFAULT_ID_COOKIE),
                None,
                "nothing kept"
            );
        }

        // Through the bridge, without the handle: 1000 messages per save.
        let storage = ServerStorage::new(store.clone(), Keys::new(Key::generate()));
        let mut request = HeaderMap::new();
        for round in 0..20 {
            let update = Update::new(None)
                .with_added(burst.clone())
                .with_limits(limits);
            let mut response = HeaderMap::new();
            let dropped = storage
                .save(&Incoming::from_headers(&request), update, &mut response)
                .await
                .expect("save");
            let kept = if round == 0 { fit } else { 0 };
            assert_eq!(
                dropped.len(),
                1000 - kept,
                "round {round}: refused = dropped"
            );
            if let Some(set) = response.get(http::header::SET_COOKIE) {
                let pair = set
                    .to_str()
                    .expect("ascii")
                    .split(';')
                    .next()
                    .expect("pair");
                request.insert(http::header::COOKIE, pair.parse().expect("header"));
            }
        }

        // Behind the store's back: the two clients hold `fit` messages each, nothing else.
        let pattern = format!("{}:*", store.prefix());
        let mut keys: Vec<String> = Vec::new();
        let mut iter = admin.scan_match::<_, String>(&pattern).await.expect("SCAN");
        while let Some(key) = iter.next_item().await {
            keys.push(key.expect("a key"));
        }
        drop(iter);
        assert_eq!(keys.len(), if fit == 0 { 0 } else { 2 }, "{keys:?}");
        for key in &keys {
            assert_eq!(stored(&mut admin, key).await, (fit, fit * TEN_KB));
            let len: usize = admin.strlen(key).await.expect("STRLEN");
            // Besides the messages, this test's few recent writes (fewer than 32) of about 20
            // bytes each.
            assert!(
                len < 100 + 32 * 24 + fit * (TEN_KB + 10),
                "{len} bytes stored"
            );
        }
    }
}
