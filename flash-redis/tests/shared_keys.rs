//! Shared keys (`RedisStoreBuilder::shared_keys`), beyond the keyed-store kit (which runs on
//! them too): clients really share a key, a PRG cycle stays at 8 commands, a client past its
//! deadline goes when its key is written (no sweep), and a key that is not flash's is never
//! overwritten. Each test runs a private `redis-server` that logs every command.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{OwnServer, log_every_command, take_slowlog};
use flash_core::{
    ErrorKind, Level, Limits, Message,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_redis::RedisStore;
use redis::AsyncCommands;

const LONG: Duration = Duration::from_secs(600);

fn msg(text: &str) -> Message {
    Message::new(Level::INFO, text)
}

async fn server() -> Option<(OwnServer, redis::aio::MultiplexedConnection, RedisStore)> {
    let server = OwnServer::start().await?;
    let admin = common::admin(&server.url()).await?;
    let store = RedisStore::builder(server.url())
        .prefix("shared")
        .shared_keys(1)
        .connect()
        .await
        .expect("connect");
    Some((server, admin, store))
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

/// A shared key's entry for `id`, as the crate docs give the layout.
fn entry(id: &[u8; 16], deadline: u64, value: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend_from_slice(&deadline.to_be_bytes()[2..]);
    out.extend_from_slice(&u32::try_from(value.len()).expect("short").to_be_bytes());
    out.extend_from_slice(value);
    out
}

async fn read(store: &RedisStore, client: &ClientId) -> Vec<Message> {
    let lease = LeaseId::random();
    let got = store.lease(client, &lease, LONG).await.expect("lease");
    store
        .settle(
            client,
            &lease,
            Outcome::Consumed,
            &[],
            LONG,
            &Limits::default(),
        )
        .await
        .expect("settle");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_share_one_key_and_a_cycle_costs_at_most_8_commands() {
    let Some((_server, mut admin, store)) = server().await else {
        return;
    };
    let limits = Limits::default();
    let others: Vec<ClientId> = (0..5).map(|_| ClientId::random()).collect();
    for (i, other) in others.iter().enumerate() {
        store
            .append(other, &[msg(&format!("other {i}"))], LONG, &limits)
            .await
            .expect("append");
    }
    let client = ClientId::random();
    log_every_command(&mut admin, true).await;
    for cycle in 0..3 {
        take_slowlog(&mut admin).await;
        let message = msg(&format!("cycle {cycle}"));
        store
            .append(&client, std::slice::from_ref(&message), LONG, &limits)
            .await
            .expect("append");
        assert_eq!(read(&store, &client).await, [message]);
        let log = take_slowlog(&mut admin).await;
        let names: Vec<String> = log.iter().map(|l| l.args[0].to_uppercase()).collect();
        let sent: Vec<&String> = log
            .iter()
            .zip(&names)
            .filter(|(l, _)| !l.by_script())
            .map(|(_, n)| n)
            .collect();
        assert_eq!(sent, ["EVALSHA"; 3], "cycle {cycle}: {names:?}");
        assert!(names.len() <= 8, "cycle {cycle}: {names:?}");
    }
    log_every_command(&mut admin, false).await;
    let keys: Vec<String> = admin.keys("shared:*").await.expect("KEYS");
    assert_eq!(keys, ["shared:shared:1:0"], "one key for every client");
    assert_eq!(keys[0], store.client_key(&client));

    // Another client's write between a lease and its settle: the settle's one-command path
    // sees the key changed, and settles from what it holds, the other's message kept.
    store
        .append(&client, &[msg("a")], LONG, &limits)
        .await
        .expect("append");
    let lease = LeaseId::random();
    assert_eq!(
        store.lease(&client, &lease, LONG).await.expect("lease"),
        [msg("a")]
    );
    store
        .append(&others[0], &[msg("meanwhile")], LONG, &limits)
        .await
        .expect("append");
    store
        .settle(&client, &lease, Outcome::Consumed, &[], LONG, &limits)
        .await
        .expect("settle");
    assert!(read(&store, &client).await.is_empty(), "consumed once");
    assert_eq!(
        read(&store, &others[0]).await,
        [msg("other 0"), msg("meanwhile")]
    );
    for (i, other) in others.iter().enumerate().skip(1) {
        assert_eq!(read(&store, other).await, [msg(&format!("other {i}"))]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_deadline_goes_when_the_key_is_written() {
    let Some((_server, mut admin, store)) = server().await else {
        return;
    };
    let key = store.client_key(&ClientId::random());
    let now = now_ms();
    // Two clients written by an earlier call: one whose deadline has passed, one with a minute
    // left (their values are opaque here: nothing reads them).
    let (gone, live) = ([7u8; 16], [8u8; 16]);
    let gone_value = b"\xfa\0\0\0\0\0\0\0\0";
    let mut raw = vec![0xFB];
    raw.extend(entry(&gone, now - 1_000, gone_value));
    raw.extend(entry(&live, now + 60_000, gone_value));
    let () = admin.set(&key, &raw).await.expect("SET");

    let client = ClientId::random();
    store
        .append(
            &client,
            &[msg("new")],
            Duration::from_secs(3_600),
            &Limits::default(),
        )
        .await
        .expect("append");
    let written: Vec<u8> = admin.get(&key).await.expect("GET");
    let ids = common::shared_ids(&written).expect("a shared key");
    assert_eq!(ids, [live, *client.as_bytes()], "the expired one is gone");
    // The key lasts as long as its longest-lived client: the new one's hour.
    let ttl: i64 = admin.pttl(&key).await.expect("PTTL");
    assert!((3_500_000..=3_600_000).contains(&ttl), "{ttl} ms");
    assert_eq!(read(&store, &client).await, [msg("new")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_key_that_is_not_flash_data_is_an_error_and_kept() {
    let Some((_server, mut admin, store)) = server().await else {
        return;
    };
    let limits = Limits::default();
    let client = ClientId::random();
    let key = store.client_key(&client);
    for garbage in [
        &b"a string"[..],
        b"",
        b"\xfb\x01\x02",
        b"\xfa\0\0\0\0\0\0\0\0",
    ] {
        let () = admin.set(&key, garbage).await.expect("SET");
        let err = store
            .append(&client, &[msg("x")], LONG, &limits)
            .await
            .expect_err("not flash data");
        assert_eq!(err.kind(), ErrorKind::Backend, "{garbage:?}");
        let err = store
            .lease(&client, &LeaseId::random(), LONG)
            .await
            .expect_err("not flash data");
        assert_eq!(err.kind(), ErrorKind::Backend, "{garbage:?}");
        let kept: Vec<u8> = admin.get(&key).await.expect("GET");
        assert_eq!(kept, garbage, "never overwritten");
    }

    // Overwritten between a lease and its settle: the settle's one-command path puts it back.
    let () = admin.del(&key).await.expect("DEL");
    store
        .append(&client, &[msg("x")], LONG, &limits)
        .await
        .expect("append");
    let lease = LeaseId::random();
    assert_eq!(
        store
            .lease(&client, &lease, LONG)
            .await
            .expect("lease")
            .len(),
        1
    );
    let () = admin.set(&key, "a string").await.expect("SET");
    let err = store
        .settle(&client, &lease, Outcome::Consumed, &[], LONG, &limits)
        .await
        .expect_err("not flash data");
    assert_eq!(err.kind(), ErrorKind::Backend);
    let kept: String = admin.get(&key).await.expect("GET");
    assert_eq!(kept, "a string");
}

#[tokio::test]
async fn no_shared_keys_is_a_configuration_error() {
    let err = RedisStore::builder("redis://127.0.0.1:1")
        .shared_keys(0)
        .connect()
        .await
        .expect_err("zero keys");
    assert_eq!(err.kind(), ErrorKind::Config);
    let builder = RedisStore::builder("redis://127.0.0.1:1").shared_keys(16);
    assert!(format!("{builder:?}").contains("shared_keys: Some(16)"));
}
