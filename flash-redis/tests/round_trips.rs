//! Round trips and scale, read from the server's own log: each test runs a private
//! `redis-server` (nobody else's commands in its statistics) that logs every command in its slow
//! log (`slowlog-log-slower-than 0`), with the client's address, or `?:0` for the commands a Lua
//! script ran.

mod common;

use std::time::Duration;

use common::{Logged, OwnServer, log_every_command, take_slowlog};
use flash_core::{
    Level, Message,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_redis::RedisStore;
use flash_testkit::{Harness, Options};

const LONG: Duration = Duration::from_secs(600);

/// The commands a client sent: its round trips.
fn sent(log: &[Logged]) -> Vec<String> {
    log.iter()
        .filter(|l| !l.by_script())
        .map(|l| l.args[0].to_uppercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_and_a_save_are_one_round_trip_each_and_idle_requests_none() {
    let Some(server) = OwnServer::start().await else {
        return;
    };
    let Some(mut admin) = common::admin(&server.url()).await else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .prefix("round-trips")
        .connect()
        .await
        .expect("connect");
    let harness = Harness::keyed(store, &Options::new());
    log_every_command(&mut admin, true).await;
    take_slowlog(&mut admin).await;

    let browser = harness.client();

    // No id cookie, neither reading nor adding: no call.
    browser.request().finish().await;
    assert_eq!(sent(&take_slowlog(&mut admin).await), Vec::<String>::new());

    // No id cookie, reading: nothing can be pending, no call.
    let request = browser.request();
    assert!(request.read().await.expect("read").is_empty());
    request.finish().await;
    assert_eq!(sent(&take_slowlog(&mut admin).await), Vec::<String>::new());

    // Adding only: nothing until the save, then one call (the append).
    let request = browser.request();
    request.success("Saved.");
    request.info("Two.");
    assert_eq!(sent(&take_slowlog(&mut admin).await), Vec::<String>::new());
    request.finish().await;
    assert_eq!(sent(&take_slowlog(&mut admin).await), ["EVALSHA"]);

    // With the id cookie, neither reading nor adding: no call.
    browser.request().finish().await;
    assert_eq!(sent(&take_slowlog(&mut admin).await), Vec::<String>::new());

    // Reading: the load is one call however often the handler looks ...
    let request = browser.request();
    assert_eq!(request.len().await.expect("len"), 2);
    assert_eq!(request.peek().await.expect("peek").len(), 2);
    let shown = request.read().await.expect("read");
    assert_eq!(shown[0].text, "Saved.");
    assert_eq!(sent(&take_slowlog(&mut admin).await), ["EVALSHA"]);
    // ... and the save one more, adding included.
    request.warning("New.");
    request.finish().await;
    assert_eq!(sent(&take_slowlog(&mut admin).await), ["EVALSHA"]);

    // Reading what is left; then a read that finds nothing needs no settle.
    let request = browser.request();
    assert_eq!(request.read().await.expect("read").len(), 1);
    request.finish().await;
    assert_eq!(
        sent(&take_slowlog(&mut admin).await),
        ["EVALSHA", "EVALSHA"]
    );
    let request = browser.request();
    assert!(request.is_empty().await.expect("is_empty"));
    assert_eq!(sent(&take_slowlog(&mut admin).await), ["EVALSHA"]);
    request.finish().await;
    assert_eq!(sent(&take_slowlog(&mut admin).await), Vec::<String>::new());

    // The harness's own count agrees.
    let calls = harness.calls.expect("a keyed harness counts calls");
    assert_eq!(
        (calls.appends(), calls.leases(), calls.settles()),
        (1, 3, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_calls_touch_only_its_own_keys_among_100_000_others() {
    let Some(server) = OwnServer::start().await else {
        return;
    };
    let Some(mut admin) = common::admin(&server.url()).await else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .prefix("scale")
        .call_timeout(Duration::from_secs(30))
        .response_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect");

    // 100 000 other clients, one message each, written through the store (pipelined: 100
    // writers share the multiplexed connection).
    let writers: Vec<_> = (0..100)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..1000 {
                    let message = Message::new(Level::INFO, format!("other {w}-{i}"));
                    store
                        .append(
                            &ClientId::random(),
                            &[message],
                            LONG,
                            &flash_core::Limits::default(),
                        )
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let keys: i64 = redis::cmd("DBSIZE")
        .query_async(&mut admin)
        .await
        .expect("DBSIZE");
    assert!(keys >= 100_000, "{keys} keys");

    let client = ClientId::random();
    let own = store.client_key(&client);
    let texts = ["a", "b", "c"].map(|t| Message::new(Level::INFO, t));
    store
        .append(&client, &texts, LONG, &flash_core::Limits::default())
        .await
        .expect("append");

    log_every_command(&mut admin, true).await;
    take_slowlog(&mut admin).await;
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, LONG).await.expect("lease");
    assert_eq!(got, texts);
    let lease_log = take_slowlog(&mut admin).await;
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
    let settle_log = take_slowlog(&mut admin).await;

    for (what, log, most) in [("lease", &lease_log, 2), ("settle", &settle_log, 2)] {
        assert_eq!(sent(log), ["EVALSHA"], "{what}: one round trip");
        let evalsha = log.iter().find(|l| !l.by_script()).expect("the EVALSHA");
        assert_eq!(
            evalsha.args[3], own,
            "{what}: its first key is the client's"
        );
        let inside: Vec<&Logged> = log.iter().filter(|l| l.by_script()).collect();
        assert!(
            !inside.is_empty() && inside.len() <= most,
            "{what}: a few commands whatever the number of clients: {inside:?}"
        );
        for command in inside {
            assert_eq!(
                command.args.get(1),
                Some(&own),
                "{what} touched another key than the client's: {command:?}"
            );
            let name = command.args[0].to_uppercase();
            assert!(
                !["KEYS", "SCAN", "HSCAN", "ZSCAN", "DBSIZE", "RANDOMKEY"].contains(&name.as_str()),
                "{what} ran {name}"
            );
        }
    }

    // The client's keys, found by their name among all the others: one, which after its last
    // message was consumed holds only the recent operation (for the dedupe window).
    log_every_command(&mut admin, false).await;
    let tag = format!("{own}*");
    let mut found: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&tag)
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut admin)
            .await
            .expect("SCAN");
        found.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(found, std::slice::from_ref(&own));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&own)
        .query_async(&mut admin)
        .await
        .expect("PTTL");
    assert!(
        (1..=60_000).contains(&ttl),
        "it expires with the dedupe window: {ttl} ms"
    );
}

/// Issue 21: a POST → GET cycle (append; lease, then settle consuming) costs Redis at most 8
/// commands, the three `EVALSHA` and those the scripts run, whether the client's key is new or
/// still holds the previous cycle's operation for the dedupe window; and a settle that finds
/// the key changed since its lease still settles it exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prg_cycle_costs_at_most_8_commands() {
    let Some(server) = OwnServer::start().await else {
        return;
    };
    let Some(mut admin) = common::admin(&server.url()).await else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .prefix("prg")
        .connect()
        .await
        .expect("connect");
    let limits = flash_core::Limits::default();
    let client = ClientId::random();
    log_every_command(&mut admin, true).await;
    for cycle in 0..3 {
        take_slowlog(&mut admin).await;
        let message = Message::new(Level::INFO, format!("cycle {cycle}"));
        store
            .append(&client, std::slice::from_ref(&message), LONG, &limits)
            .await
            .expect("append");
        let lease = LeaseId::random();
        let got = store.lease(&client, &lease, LONG).await.expect("lease");
        assert_eq!(got, [message]);
        store
            .settle(&client, &lease, Outcome::Consumed, &[], LONG, &limits)
            .await
            .expect("settle");
        let log = take_slowlog(&mut admin).await;
        let names: Vec<String> = log.iter().map(|l| l.args[0].to_uppercase()).collect();
        assert_eq!(sent(&log), ["EVALSHA"; 3], "cycle {cycle}: {names:?}");
        let most = if cycle == 0 { 7 } else { 8 };
        assert!(names.len() <= most, "cycle {cycle}: {names:?}");
    }

    // Changed between the lease and its settle: the settle's one-command path finds out and
    // settles from what the key held, keeping the message appended meanwhile.
    let lease = LeaseId::random();
    store
        .append(&client, &[Message::new(Level::INFO, "a")], LONG, &limits)
        .await
        .expect("append");
    assert_eq!(
        store
            .lease(&client, &lease, LONG)
            .await
            .expect("lease")
            .len(),
        1
    );
    store
        .append(&client, &[Message::new(Level::INFO, "b")], LONG, &limits)
        .await
        .expect("append");
    store
        .settle(&client, &lease, Outcome::Consumed, &[], LONG, &limits)
        .await
        .expect("settle");
    let got = store
        .lease(&client, &LeaseId::random(), LONG)
        .await
        .expect("lease");
    assert_eq!(got, [Message::new(Level::INFO, "b")]);
}

/// A client writing without pause keeps at most 255 operations in its key (the oldest folded
/// into one entry that keeps their newest time): its value stays bounded.
#[tokio::test]
async fn recent_operations_are_capped() {
    let Some(server) = OwnServer::start().await else {
        return;
    };
    let Some(mut admin) = common::admin(&server.url()).await else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .prefix("ops")
        .connect()
        .await
        .expect("connect");
    let limits = flash_core::Limits::default();
    let client = ClientId::random();
    let message = [Message::new(Level::INFO, "x")];
    for _ in 0..300 {
        store
            .append(&client, &message, LONG, &limits)
            .await
            .expect("append");
        let lease = LeaseId::random();
        store.lease(&client, &lease, LONG).await.expect("lease");
        store
            .settle(&client, &lease, Outcome::Consumed, &[], LONG, &limits)
            .await
            .expect("settle");
    }
    let len: usize = redis::cmd("STRLEN")
        .arg(store.client_key(&client))
        .query_async(&mut admin)
        .await
        .expect("STRLEN");
    // The header and 255 operations of 18 bytes: the key holds nothing else once read.
    assert_eq!(len, 9 + 255 * 18, "{len} bytes for 300 writes");
}
