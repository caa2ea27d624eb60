//! SQLite runs every store call as one statement (a PRG cycle as three, a lease and a settle
//! that appends as two): its own test binary,
//! because SQLite's statements run (and are logged) on sqlx's worker thread, so counting them
//! takes the process-wide subscriber, which no other test may share.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use flash_core::storage::{ClientId, KeyedStore, LeaseId, Outcome};
use flash_testkit::{Options, StatementCounter};

/// The POST's append, the GET's lease and its consuming settle: one statement each (the
/// append counts, inserts what fits and, through the table's trigger, clears a dead client's
/// rows in one `INSERT`), no transaction around any of them.
#[tokio::test(flavor = "current_thread")]
async fn a_prg_cycle_is_one_statement_per_call() {
    let count = StatementCounter::new();
    tracing::subscriber::set_global_default(count.clone()).unwrap();
    let store = sqlite_store(&Options::new().namespace).await;
    let hour = Duration::from_secs(3600);
    let limits = flash_core::Limits::default();
    let client = ClientId::random();
    // A first cycle checks (once) that the table has its triggers.
    store
        .append(&client, &[info("warm")], hour, &limits)
        .await
        .unwrap();
    let warm = ClientId::random();
    store
        .append(&warm, &[info("warm")], hour, &limits)
        .await
        .unwrap();
    let lease = LeaseId::random();
    store.lease(&warm, &lease, hour).await.unwrap();
    store
        .settle(
            &warm,
            &lease,
            Outcome::Consumed,
            &[info("warm")],
            hour,
            &limits,
        )
        .await
        .unwrap();
    count.take();
    let statements = |what: &str, expected: u64| {
        let now = count.take();
        assert_eq!(now, expected, "{what}: {now} statements");
    };

    let kept = store.append(&client, &[info("saved")], hour, &limits).await;
    assert_eq!(kept.unwrap(), 1);
    statements("append", 1);
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, hour).await.unwrap();
    assert_eq!(texts(&got), ["warm", "saved"]);
    statements("lease", 1);
    let kept = store
        .settle(&client, &lease, Outcome::Consumed, &[], hour, &limits)
        .await;
    assert_eq!(kept.unwrap(), 0);
    statements("settle, consumed", 1);
    let lease = LeaseId::random();
    assert!(store.lease(&client, &lease, hour).await.unwrap().is_empty());
    statements("lease of nothing", 1);

    // A new client, and one past its limits: still one statement.
    let fresh = ClientId::random();
    let kept = store.append(&fresh, &[info("one")], hour, &limits).await;
    assert_eq!(kept.unwrap(), 1);
    statements("append, new client", 1);
    let tight = flash_core::Limits::default().with_max_messages(1);
    let kept = store.append(&fresh, &[info("two")], hour, &tight).await;
    assert_eq!(kept.unwrap(), 0, "the limit holds in the one statement");
    statements("append refused", 1);

    // A GET that reads and adds: its consuming settle is the append's one `INSERT`, whose
    // trigger deletes the lease's rows (SQLite at 2 statements per lease + settle, as the
    // servers).
    let both = ClientId::random();
    store
        .append(&both, &[info("shown")], hour, &limits)
        .await
        .unwrap();
    let lease = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&both, &lease, hour).await.unwrap()),
        ["shown"]
    );
    count.take();
    let kept = store
        .settle(
            &both,
            &lease,
            Outcome::Consumed,
            &[info("added")],
            hour,
            &limits,
        )
        .await;
    assert_eq!(kept.unwrap(), 1);
    statements("settle, consumed, appending one", 1);
    // Sent again, it ends nothing more: the new row does not keep the lease.
    let kept = store
        .settle(&both, &lease, Outcome::Consumed, &[], hour, &limits)
        .await;
    assert_eq!(kept.unwrap(), 0);
    let next = LeaseId::random();
    let got = store.lease(&both, &next, hour).await.unwrap();
    assert_eq!(
        texts(&got),
        ["added"],
        "the consumed row is gone, the added one stays"
    );

    // The rows it consumes do not count against the limits; one that fits nothing still
    // consumes (a second statement, since no row went in to run the trigger).
    let full = ClientId::random();
    let one = flash_core::Limits::default().with_max_messages(1);
    store.append(&full, &[info("a")], hour, &one).await.unwrap();
    let lease = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&full, &lease, hour).await.unwrap()),
        ["a"]
    );
    count.take();
    let kept = store
        .settle(&full, &lease, Outcome::Consumed, &[info("b")], hour, &one)
        .await;
    assert_eq!(kept.unwrap(), 1, "the consumed message leaves room for one");
    statements("settle at the limit", 1);
    let lease = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&full, &lease, hour).await.unwrap()),
        ["b"]
    );
    store
        .append(&full, &[info("c")], Duration::from_secs(3600), &limits)
        .await
        .unwrap();
    count.take();
    let kept = store
        .settle(&full, &lease, Outcome::Consumed, &[info("d")], hour, &one)
        .await;
    assert_eq!(kept.unwrap(), 0, "c fills the one place");
    statements("settle beyond the limit", 2);
    let lease = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&full, &lease, hour).await.unwrap()),
        ["c"],
        "b was consumed all the same"
    );
}
