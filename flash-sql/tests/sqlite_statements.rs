//! SQLite runs a PRG cycle as three statements, one per store call: its own test binary,
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
    // A first cycle checks (once) that the table has its trigger.
    store
        .append(&client, &[info("warm")], hour, &limits)
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
}
