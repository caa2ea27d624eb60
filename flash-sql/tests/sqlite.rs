//! `SqlStore` on SQLite, in temporary files.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use flash_core::{
    ErrorKind,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_sql::{Driver, SqlStore};
use flash_testkit::Options;
use sqlx::{Connection, Executor, SqliteConnection};

mod conformance {
    flash_testkit::conformance_tests!(super::common::sqlite);
}

/// flash-core's keyed-store kit: the store driven directly, every rule of the contract.
mod keyed_kit {
    flash_testkit::keyed_store_tests!(super::common::sqlite_inspected, in_process);
}

const HOUR: Duration = Duration::from_secs(3600);

fn namespace() -> String {
    Options::new().namespace
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_store_semantics() {
    let store = sqlite_store(&namespace()).await;
    assert_eq!(store.driver(), Driver::Sqlite);
    keyed_semantics(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_sweep_and_sweeper() {
    let store = sqlite_store(&namespace()).await;
    ttl_and_sweep(&store).await;
    sweeper_runs(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_is_a_config_error() {
    missing_table_is_config(&sqlite_url(&namespace())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_database_keeps_its_rows() {
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("kept")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let got = store
        .lease(&client, &LeaseId::random(), HOUR)
        .await
        .unwrap();
    assert_eq!(texts(&got), ["kept"]);
}

/// WAL and `synchronous = NORMAL` are set on every connection, not left to sqlx's defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_and_synchronous_normal() {
    let store = sqlite_store(&namespace()).await;
    let pool = store.sqlite_pool().unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL");
}

/// Another connection holding the write lock: a call waits for it (the busy timeout), or,
/// held past that, fails with `Unavailable`, writes nothing, and the file stays sound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_database_waits_or_fails_typed() {
    let ns = namespace();
    let url = sqlite_url(&ns);
    sqlite_store(&ns).await;
    let store = SqlStore::builder(&url)
        .busy_timeout(Duration::from_millis(300))
        .acquire_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let client = ClientId::random();

    let mut other = SqliteConnection::connect(&url).await.unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    other
        .execute(
            "INSERT INTO flash_messages (client, body, expires_at) VALUES (x'00', '[20,\"x\"]', 0)",
        )
        .await
        .unwrap();

    // Held past the busy timeout: a typed error, in bounded time.
    let started = Instant::now();
    let err = store
        .append(
            &client,
            &[info("blocked")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect_err("locked");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let err = store
        .lease(&client, &LeaseId::random(), HOUR)
        .await
        .expect_err("locked");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");

    // Released while a call waits: the call goes through.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        other.execute("ROLLBACK").await.unwrap();
        other
    });
    store
        .append(
            &client,
            &[info("waited")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    let mut other = release.await.unwrap();

    let got = store
        .lease(&client, &LeaseId::random(), HOUR)
        .await
        .unwrap();
    assert_eq!(texts(&got), ["waited"], "the failed append wrote nothing");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_unavailable_not_a_hang() {
    let ns = namespace();
    sqlite_store(&ns).await;
    let store = SqlStore::builder(sqlite_url(&ns))
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let held = store.sqlite_pool().unwrap().acquire().await.unwrap();
    exhausted(&store, held).await;
}

/// A file that cannot be opened is `Unavailable` (the cause kept), at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unopenable_file_is_unavailable() {
    let started = Instant::now();
    let err = SqlStore::builder("sqlite:///nonexistent-flash-dir/sub/flash.db")
        .acquire_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect_err("no such directory");
    assert_unavailable(&err, started, Duration::from_secs(4));
}

/// With 100 000 rows of other clients, a lease searches the `(client, id)` index and takes
/// exactly the client's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_touches_only_the_clients_rows() {
    let store = sqlite_store(&namespace()).await;
    let pool = store.sqlite_pool().unwrap();
    let inserted = sqlx::query(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?1) \
         INSERT INTO flash_messages (client, body, expires_at) \
         SELECT randomblob(16), '[20,\"other\"]', \
                CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + 3600000 FROM g",
    )
    .bind(OTHER_ROWS)
    .execute(pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(inserted, OTHER_ROWS.unsigned_abs());
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("m1"), info("m2"), info("m3")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(pool).await.unwrap();

    let plan = store.explain_lease(&client).await.unwrap();
    let text = plan.join("\n");
    let searches: Vec<&String> = plan
        .iter()
        .filter(|line| line.contains("flash_messages"))
        .collect();
    assert!(!searches.is_empty(), "{text}");
    for line in searches {
        assert!(line.starts_with("SEARCH"), "a full scan: {text}");
        assert!(
            line.contains("INDEX flash_messages_client (client=?"),
            "{text}"
        );
    }

    let got = store
        .lease(&client, &LeaseId::random(), HOUR)
        .await
        .unwrap();
    assert_eq!(texts(&got), ["m1", "m2", "m3"]);
    let leased: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM flash_messages WHERE lease IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(leased, 3, "the lease stamped only the client's rows");
}

/// A row this crate did not write is skipped, and deleted with the consumed lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_rows_are_skipped() {
    let store = sqlite_store(&namespace()).await;
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("good")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO flash_messages (client, body, expires_at) \
         VALUES (?1, 'not json', CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + 3600000)",
    )
    .bind(client.as_bytes().as_slice())
    .execute(store.sqlite_pool().unwrap())
    .await
    .unwrap();
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, HOUR).await.unwrap();
    assert_eq!(texts(&got), ["good"]);
    store
        .settle(
            &client,
            &lease,
            Outcome::Consumed,
            &[],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(rows(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_succeed() {
    concurrent_migrations(&sqlite_url(&namespace()), "flash_messages").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_keep_the_prefix_that_fits() {
    let store = sqlite_store(&namespace()).await;
    limits_hold(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_never_exceed_the_limits() {
    let store = sqlite_store(&namespace()).await;
    concurrent_appends_hold_limits(&store).await;
    // Several connections: each append still counts and inserts under SQLite's one writer.
    let store = SqlStore::builder(sqlite_url(&namespace()))
        .max_connections(4)
        .connect()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    concurrent_appends_hold_limits(&store).await;
}

/// A call waiting on another writer ends at the call timeout, before the busy timeout, and
/// the store works once the writer is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_end_at_the_call_timeout() {
    let ns = namespace();
    let store = SqlStore::builder(sqlite_url(&ns))
        .busy_timeout(Duration::from_secs(30))
        .call_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let path = sqlite_url(&ns);
    let mut writer = SqliteConnection::connect(&path).await.unwrap();
    writer.execute("BEGIN IMMEDIATE").await.unwrap();
    let client = ClientId::random();
    let started = Instant::now();
    let err = store
        .append(&client, &[info("x")], HOUR, &flash_core::Limits::default())
        .await
        .expect_err("the other writer holds the lock");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    writer.execute("ROLLBACK").await.unwrap();
    assert_eq!(
        store
            .append(&client, &[info("y")], HOUR, &flash_core::Limits::default())
            .await
            .unwrap(),
        1
    );
}

/// Issue 20, repro 7: a database file the store creates is its owner's only (mode 0600), and
/// so are SQLite's `-wal` and `-shm` files beside it; an existing file keeps its mode.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = SqlStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
        .append(
            &ClientId::random(),
            &[info("private")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "{:o}", mode(&path));
    for side in ["new.db-wal", "new.db-shm"] {
        let side = dir.path().join(side);
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}: {:o}", side.display(), mode(&side));
        }
    }

    let existing = dir.path().join("existing.db");
    std::fs::write(&existing, b"").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = SqlStore::connect(&format!("sqlite://{}?mode=rwc", existing.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        mode(&existing),
        0o640,
        "an existing file's mode is the operator's"
    );
}

/// A table of an earlier release, without the trigger that clears a dead client's rows (as
/// before `migrate()` upgrades it): appends clear them themselves, so a client that comes back
/// after all its messages expired still starts afresh; `migrate()` adds the trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_the_trigger_still_starts_dead_clients_afresh() {
    let ns = namespace();
    let store = sqlite_store(&ns).await;
    let pool = store.sqlite_pool().unwrap();
    sqlx::raw_sql("DROP TRIGGER flash_messages_expire_v1")
        .execute(pool)
        .await
        .unwrap();
    let limits = flash_core::Limits::default();
    let (client, other) = (ClientId::random(), ClientId::random());
    store
        .append(
            &client,
            &[common::info("before")],
            Duration::from_millis(200),
            &limits,
        )
        .await
        .unwrap();
    store
        .append(
            &other,
            &[common::info("o")],
            Duration::from_millis(200),
            &limits,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    store
        .append(&client, &[common::info("after")], HOUR, &limits)
        .await
        .unwrap();
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, HOUR).await.unwrap();
    assert_eq!(
        common::texts(&got),
        ["after"],
        "the expired message stays gone"
    );

    store.migrate().await.unwrap();
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'flash_messages_expire_v1'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(triggers, 1, "migrate adds the trigger");
    // Through the trigger now (a fresh store sees it at once).
    let upgraded = sqlite_store(&ns).await;
    upgraded
        .append(&other, &[common::info("back")], HOUR, &limits)
        .await
        .unwrap();
    let lease = LeaseId::random();
    let got = upgraded.lease(&other, &lease, HOUR).await.unwrap();
    assert_eq!(
        common::texts(&got),
        ["back"],
        "the expired message stays gone"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM flash_messages")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows, 2, "the dead rows were deleted, not hidden");
}

/// A table of an earlier release, without the triggers a one-statement consuming settle rides
/// on: a settle that appends takes a transaction and still consumes exactly the lease's rows;
/// `migrate()` adds the triggers, and the same settle is then one `INSERT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_the_settle_triggers_still_settles() {
    let ns = namespace();
    let store = sqlite_store(&ns).await;
    let pool = store.sqlite_pool().unwrap();
    sqlx::raw_sql("DROP TRIGGER flash_messages_settle_v1; DROP TRIGGER flash_messages_settled_v1")
        .execute(pool)
        .await
        .unwrap();
    let limits = flash_core::Limits::default();
    let settle_and_read = |store: flash_sql::SqlStore, client: ClientId| async move {
        store
            .append(&client, &[common::info("shown")], HOUR, &limits)
            .await
            .unwrap();
        let lease = LeaseId::random();
        assert_eq!(
            common::texts(&store.lease(&client, &lease, HOUR).await.unwrap()),
            ["shown"]
        );
        // Another request's append while the lease is out: not the lease's, so kept.
        store
            .append(&client, &[common::info("meanwhile")], HOUR, &limits)
            .await
            .unwrap();
        let kept = store
            .settle(
                &client,
                &lease,
                Outcome::Consumed,
                &[common::info("added")],
                HOUR,
                &limits,
            )
            .await
            .unwrap();
        assert_eq!(kept, 1);
        let next = LeaseId::random();
        common::texts(&store.lease(&client, &next, HOUR).await.unwrap())
    };
    assert_eq!(
        settle_and_read(store.clone(), ClientId::random()).await,
        ["meanwhile", "added"]
    );

    store.migrate().await.unwrap();
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' \
         AND name IN ('flash_messages_settle_v1', 'flash_messages_settled_v1')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(triggers, 2, "migrate adds the triggers");
    let upgraded = sqlite_store(&ns).await;
    assert_eq!(
        settle_and_read(upgraded, ClientId::random()).await,
        ["meanwhile", "added"],
        "the same through the triggers"
    );
    let leased: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM flash_messages WHERE lease IS NOT NULL AND leased_until IS NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(leased, 0, "no new row keeps the lease it ended");
}

/// An append of more messages than one `INSERT` takes (300) stays atomic and keeps the limits
/// across its statements: the cut falls in a later chunk, counted with what the earlier ones
/// inserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_append_keeps_the_limits_across_chunks() {
    let store = sqlite_store(&namespace()).await;
    let client = ClientId::random();
    let limits = flash_core::Limits::default()
        .with_max_messages(400)
        .with_max_bytes(1 << 20);
    let first: Vec<_> = (0..10).map(|i| common::info(&format!("p{i}"))).collect();
    assert_eq!(
        store.append(&client, &first, HOUR, &limits).await.unwrap(),
        10
    );
    let many: Vec<_> = (0..500).map(|i| common::info(&format!("m{i}"))).collect();
    assert_eq!(
        store.append(&client, &many, HOUR, &limits).await.unwrap(),
        390,
        "the prefix that fits beside the 10 pending"
    );
    // Bytes: 4 each ("b000"); 1300 bytes hold 325, a cut in the second chunk.
    let other = ClientId::random();
    let bytes = flash_core::Limits::default()
        .with_max_messages(1000)
        .with_max_bytes(1300);
    let sized: Vec<_> = (0..400)
        .map(|i| common::info(&format!("b{i:03}")))
        .collect();
    assert_eq!(
        store.append(&other, &sized, HOUR, &bytes).await.unwrap(),
        325
    );
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, HOUR).await.unwrap();
    assert_eq!(got.len(), 400);
    assert_eq!(got[10].text, "m0");
    assert_eq!(got[399].text, "m389");
    let got = store.lease(&other, &LeaseId::random(), HOUR).await.unwrap();
    assert_eq!(common::texts(&got), common::texts(&sized[..325]));
}

/// Dead rows the sweep tests start with: ten of the sweep's batches. The same at 10^6 rows,
/// timed, is in the capacity bench (`cargo bench -p flash-benches --bench capacity`).
const DEAD_ROWS: i64 = 20_000;

/// A sweep of a backlog of dead rows runs in short batches with pauses: live requests beside
/// it, on the same one-connection pool and one writer, never run out of their 2 s deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_sweep_does_not_stall_live_requests() {
    let ns = namespace();
    let bulk = SqlStore::builder(sqlite_url(&ns))
        .call_timeout(Duration::from_secs(120))
        .connect()
        .await
        .unwrap();
    bulk.migrate().await.unwrap();
    insert_dead_rows(&bulk, DEAD_ROWS).await;
    bulk.close().await;
    let store = sqlite_store(&ns).await;
    sweep_beside_live_requests(&store, DEAD_ROWS.unsigned_abs()).await;
}
