//! Shared by the per-server test files: URLs, per-test tables, factories, and the checks every
//! server runs beyond the conformance suite.
#![allow(
    dead_code,
    unused_variables,
    unused_imports,
    unused_macros,
    clippy::unwrap_used,
    clippy::print_stderr
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flash_core::{
    ErrorKind, Level, Limits, Message,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_sql::SqlStore;
use flash_testkit::{Harness, Options, unavailable};

/// Tables and files of earlier runs older than this are removed when a test binary starts.
const STALE: Duration = Duration::from_secs(15 * 60);

/// The tests PostgreSQL and MariaDB/MySQL run alike, expanded in each server's file: `store`
/// opens the store on a table (`None`: the server is unreachable), `url` is the server's URL,
/// `url_at` a URL for another port on loopback, `port` the server's default port, `service`
/// what an unreachable server is called.
macro_rules! server_tests {
    (
        store = $store:path,
        url = $url:path,
        url_at = $url_at:expr,
        port = $port:expr,
        driver = $driver:expr,
        service = $service:expr $(,)?
    ) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keyed_store_semantics() {
            let Some(store) = $store(&fresh_table()).await else {
                return;
            };
            assert_eq!(store.driver(), $driver);
            keyed_semantics(&store).await;
            drop_table(&store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn ttl_sweep_and_sweeper() {
            let Some(store) = $store(&fresh_table()).await else {
                return;
            };
            ttl_and_sweep(&store).await;
            sweeper_runs(&store).await;
            drop_table(&store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn missing_table_is_a_config_error() {
            if $store(&fresh_table()).await.is_none() {
                return;
            }
            missing_table_is_config(&$url()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn unreachable_server_is_unavailable_in_bounded_time() {
            unreachable($url_at).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_migrations_succeed() {
            if $store(&fresh_table()).await.is_none() {
                return;
            }
            concurrent_migrations(&$url(), &fresh_table()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn limits_keep_the_prefix_that_fits() {
            let Some(store) = $store(&fresh_table()).await else {
                return;
            };
            limits_hold(&store).await;
            drop_table(&store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_appends_never_exceed_the_limits() {
            let Some(store) = $store(&fresh_table()).await else {
                return;
            };
            concurrent_appends_hold_limits(&store).await;
            drop_table(&store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn hung_server_is_unavailable_within_the_call_timeout() {
            let table = fresh_table();
            let Some(store) = $store(&table).await else {
                return;
            };
            hung_server(&$url(), $port, &table).await;
            drop_table(&store).await;
        }

        /// A sweep of a backlog of dead rows (four of the sweep's batches; the same at 10^6
        /// rows, timed, is in the capacity bench: `cargo bench -p flash-benches --bench
        /// capacity`) runs in short batches with pauses: live requests beside it never run
        /// out of their 2 s deadline.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_large_sweep_does_not_stall_live_requests() {
            const DEAD_ROWS: i64 = 20_000;
            let table = fresh_table();
            let Some(bulk) = bulk_store($service, &$url(), &table).await else {
                return;
            };
            insert_dead_rows(&bulk, DEAD_ROWS).await;
            let store = $store(&table).await.unwrap();
            sweep_beside_live_requests(&store, DEAD_ROWS.unsigned_abs()).await;
            drop_table(&store).await;
        }
    };
}
pub(crate) use server_tests;

pub(crate) const TABLE_PREFIX: &str = "flash_t_";

pub(crate) fn postgres_url() -> String {
    flash_testkit::urls::postgres()
}

pub(crate) fn mysql_url() -> String {
    flash_testkit::urls::mysql()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A table for `namespace`: `flash_t_<unix seconds>_<namespace>`, so a later run can tell
/// how old it is.
pub(crate) fn table_for(namespace: &str) -> String {
    format!("{TABLE_PREFIX}{}_{namespace}", now_secs())
}

/// A fresh namespace's table.
pub(crate) fn fresh_table() -> String {
    table_for(&Options::new().namespace)
}

/// Whether a test table name is older than [`STALE`].
fn is_stale(table: &str) -> bool {
    table
        .strip_prefix(TABLE_PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|created| now_secs().saturating_sub(created) > STALE.as_secs())
}

static CLEANED_POSTGRES: AtomicBool = AtomicBool::new(false);
static CLEANED_MYSQL: AtomicBool = AtomicBool::new(false);
static CLEANED_SQLITE: AtomicBool = AtomicBool::new(false);

/// Drops test tables of earlier runs (once per test binary).
async fn drop_stale_tables(store: &SqlStore) {
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        if CLEANED_POSTGRES.swap(true, Ordering::SeqCst) {
            return;
        }
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables \
             WHERE schemaname = current_schema() AND tablename LIKE 'flash\\_t\\_%'",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        for name in names.into_iter().filter(|n| is_stale(n)) {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS \"{name}\""
            )))
            .execute(pool)
            .await;
        }
        // The tables' append functions (`<table>_append_v1`).
        let functions: Vec<String> = sqlx::query_scalar(
            "SELECT proname::text FROM pg_proc \
             WHERE pronamespace = current_schema()::regnamespace AND proname LIKE 'flash\\_t\\_%'",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        for name in functions.into_iter().filter(|n| is_stale(n)) {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP FUNCTION IF EXISTS \"{name}\""
            )))
            .execute(pool)
            .await;
        }
    }
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        if CLEANED_MYSQL.swap(true, Ordering::SeqCst) {
            return;
        }
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name LIKE 'flash\\_t\\_%'",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        for name in names.into_iter().filter(|n| is_stale(n)) {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS `{name}`"
            )))
            .execute(pool)
            .await;
        }
        // The tables' procedures are named after them (`<table>_lease_v1`, …).
        drop_procedures(pool, "flash\\_t\\_%", is_stale).await;
    }
}

/// Drops the procedures whose names are `LIKE pattern` and pass `drop`.
#[cfg(feature = "mysql")]
async fn drop_procedures(pool: &sqlx::MySqlPool, pattern: &str, drop: impl Fn(&str) -> bool) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(routine_name AS CHAR) FROM information_schema.routines \
         WHERE routine_schema = DATABASE() AND routine_type = 'PROCEDURE' \
         AND routine_name LIKE ?",
    )
    .bind(pattern)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for name in names.into_iter().filter(|n| drop(n)) {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP PROCEDURE IF EXISTS `{name}`"
        )))
        .execute(pool)
        .await;
    }
}

/// A migrated store on a new table of the server at `url`, or `None` (skipped) when the
/// server is unreachable.
pub(crate) async fn server_store(service: &str, url: &str, table: &str) -> Option<SqlStore> {
    server_store_with(service, url, table, flash_core::DEFAULT_CALL_TIMEOUT).await
}

/// A store whose statements may run for `call_timeout`: the builder bounds every statement on
/// the server by it, so a test that fills the table with 100 000 rows first needs longer than
/// the default.
pub(crate) async fn server_store_with(
    service: &str,
    url: &str,
    table: &str,
    call_timeout: Duration,
) -> Option<SqlStore> {
    let builder = SqlStore::builder(url)
        .table(table)
        .call_timeout(call_timeout);
    let store = match builder.connect().await {
        Ok(store) => store,
        Err(err) => return unavailable(service, format!("{err} ({err:?})")),
    };
    drop_stale_tables(&store).await;
    store.migrate().await.expect("migrate");
    Some(store)
}

pub(crate) async fn postgres_store(table: &str) -> Option<SqlStore> {
    server_store("PostgreSQL (FLASH_POSTGRES_URL)", &postgres_url(), table).await
}

pub(crate) async fn mysql_store(table: &str) -> Option<SqlStore> {
    server_store("MariaDB/MySQL (FLASH_MYSQL_URL)", &mysql_url(), table).await
}

/// A store for the tests that fill the table with 100 000 rows first.
pub(crate) async fn bulk_store(service: &str, url: &str, table: &str) -> Option<SqlStore> {
    server_store_with(service, url, table, Duration::from_secs(120)).await
}

/// The directory of the SQLite test databases; files of earlier runs are removed once.
pub(crate) fn sqlite_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("flash-sql-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    if !CLEANED_SQLITE.swap(true, Ordering::SeqCst) {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    dir
}

/// The URL of the SQLite database file for `namespace` (shared by a test's harnesses).
pub(crate) fn sqlite_url(namespace: &str) -> String {
    let path = sqlite_dir().join(format!("{namespace}.db"));
    format!("sqlite://{}", path.display())
}

pub(crate) async fn sqlite_store(namespace: &str) -> SqlStore {
    sqlite_store_with(namespace, flash_core::DEFAULT_CALL_TIMEOUT).await
}

async fn sqlite_store_with(namespace: &str, call_timeout: Duration) -> SqlStore {
    let store = SqlStore::builder(sqlite_url(namespace))
        .table("flash_messages")
        .call_timeout(call_timeout)
        .connect()
        .await
        .expect("sqlite connect");
    store.migrate().await.expect("migrate");
    store
}

/// The conformance factories: one table (or SQLite file) per test namespace. The store's own
/// deadline is the kit's (`Options::call_timeout`, generous for a loaded test machine), as the
/// bridge's is.
pub(crate) async fn postgres(options: Options) -> Option<Harness> {
    let store = postgres_kit(options.clone()).await?;
    Some(Harness::keyed(store, &options))
}

pub(crate) async fn mysql(options: Options) -> Option<Harness> {
    let store = mysql_kit(options.clone()).await?;
    Some(Harness::keyed(store, &options))
}

pub(crate) async fn sqlite(options: Options) -> Option<Harness> {
    let store = sqlite_kit(options.clone()).await?;
    Some(Harness::keyed(store, &options))
}

/// The store alone, for the keyed-store kit.
pub(crate) async fn postgres_kit(options: Options) -> Option<SqlStore> {
    let table = table_for(&options.namespace);
    let service = "PostgreSQL (FLASH_POSTGRES_URL)";
    server_store_with(service, &postgres_url(), &table, options.call_timeout).await
}

/// The store alone, for the keyed-store kit.
pub(crate) async fn mysql_kit(options: Options) -> Option<SqlStore> {
    let table = table_for(&options.namespace);
    let service = "MariaDB/MySQL (FLASH_MYSQL_URL)";
    server_store_with(service, &mysql_url(), &table, options.call_timeout).await
}

/// The store alone, for the keyed-store kit.
pub(crate) async fn sqlite_kit(options: Options) -> Option<SqlStore> {
    Some(sqlite_store_with(&options.namespace, options.call_timeout).await)
}

pub(crate) fn info(text: &str) -> Message {
    Message::new(Level::INFO, text)
}

pub(crate) fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.text.clone()).collect()
}

const HOUR: Duration = Duration::from_secs(3600);
const LEASE: Duration = Duration::from_secs(30);

async fn take(store: &SqlStore, client: &ClientId) -> Vec<String> {
    let lease = LeaseId::random();
    let got = store.lease(client, &lease, LEASE).await.expect("lease");
    if !got.is_empty() {
        store
            .settle(
                client,
                &lease,
                Outcome::Consumed,
                &[],
                HOUR,
                &flash_core::Limits::default(),
            )
            .await
            .expect("settle");
    }
    texts(&got)
}

/// The store-level contract, call by call, as `MemoryStore` keeps it.
pub(crate) async fn keyed_semantics(store: &SqlStore) {
    let (a, b) = (ClientId::random(), ClientId::random());
    store
        .append(
            &a,
            &[info("a1"), info("a2")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");
    store
        .append(&b, &[info("b1")], HOUR, &flash_core::Limits::default())
        .await
        .expect("append");

    // A lease takes everything visible, in order, and hides it.
    let first = LeaseId::random();
    let got = store.lease(&a, &first, LEASE).await.expect("lease");
    assert_eq!(texts(&got), ["a1", "a2"]);
    store
        .append(&a, &[info("a3")], HOUR, &flash_core::Limits::default())
        .await
        .expect("append");
    let second = LeaseId::random();
    let got = store.lease(&a, &second, LEASE).await.expect("lease");
    assert_eq!(texts(&got), ["a3"], "rows under a live lease are hidden");

    // Released rows come back in their original place; consumed ones are gone.
    store
        .settle(
            &a,
            &first,
            Outcome::Released,
            &[info("a4")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    store
        .settle(
            &a,
            &second,
            Outcome::Consumed,
            &[],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    assert_eq!(take(store, &a).await, ["a1", "a2", "a4"]);
    assert!(take(store, &a).await.is_empty());

    // Settling a lease that holds nothing (or another client's) changes nothing.
    store
        .settle(
            &a,
            &first,
            Outcome::Consumed,
            &[],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    let lease_b = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&b, &lease_b, LEASE).await.expect("lease")),
        ["b1"]
    );
    store
        .settle(
            &a,
            &lease_b,
            Outcome::Consumed,
            &[],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    store
        .settle(
            &b,
            &lease_b,
            Outcome::Released,
            &[],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");
    assert_eq!(take(store, &b).await, ["b1"]);

    // A zero lease hides nothing.
    store
        .append(&a, &[info("z")], HOUR, &flash_core::Limits::default())
        .await
        .expect("append");
    let zero = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&a, &zero, Duration::ZERO).await.expect("lease")),
        ["z"]
    );
    assert_eq!(take(store, &a).await, ["z"]);

    // Spans beyond any timestamp type are cut, never an overflow.
    store
        .append(
            &a,
            &[info("forever")],
            Duration::MAX,
            &flash_core::Limits::default(),
        )
        .await
        .expect("huge ttl");
    let long = LeaseId::random();
    assert_eq!(
        texts(
            &store
                .lease(&a, &long, Duration::MAX)
                .await
                .expect("huge lease")
        ),
        ["forever"]
    );
    assert!(
        store
            .lease(&a, &LeaseId::random(), Duration::ZERO)
            .await
            .expect("lease")
            .is_empty(),
        "held by the long lease"
    );
    store
        .settle(
            &a,
            &long,
            Outcome::Consumed,
            &[],
            Duration::MAX,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");

    // Empty appends are no-ops; odd texts survive.
    store
        .append(&a, &[], HOUR, &flash_core::Limits::default())
        .await
        .expect("empty append");
    let odd = "quote ' double \" back \\ nul \u{0} emoji 🎉 ".repeat(50);
    store
        .append(
            &a,
            &[info(&odd).with_extra_tags("x y").trusted_html()],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");
    let lease = LeaseId::random();
    let got = store.lease(&a, &lease, LEASE).await.expect("lease");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, odd);
    assert_eq!(got[0].extra_tags.as_deref(), Some("x y"));
    assert!(got[0].trusted_html);
    store
        .settle(
            &a,
            &lease,
            Outcome::Consumed,
            &[],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("settle");

    // Many messages in one call keep their order (more than one INSERT chunk).
    let many: Vec<Message> = (0..1203).map(|i| info(&format!("m{i}"))).collect();
    let roomy = flash_core::Limits::default()
        .with_max_messages(5000)
        .with_max_bytes(1 << 20);
    assert_eq!(
        store.append(&a, &many, HOUR, &roomy).await.expect("append"),
        1203
    );
    let got = take(store, &a).await;
    assert_eq!(got, texts(&many));
}

/// TTL: a client is alive while its newest message is; an append after it died starts afresh;
/// the sweep deletes only dead clients' rows.
pub(crate) async fn ttl_and_sweep(store: &SqlStore) {
    let short = Duration::from_millis(300);
    let (dead, alive, refreshed, reborn) = (
        ClientId::random(),
        ClientId::random(),
        ClientId::random(),
        ClientId::random(),
    );
    store
        .append(
            &dead,
            &[info("gone")],
            short,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    store
        .append(
            &alive,
            &[info("kept")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    store
        .append(
            &refreshed,
            &[info("old")],
            short,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    store
        .append(
            &refreshed,
            &[info("new")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    store
        .append(
            &reborn,
            &[info("before")],
            short,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    store
        .append(
            &reborn,
            &[info("after")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();

    // Expired messages are never delivered, swept or not.
    let lease = LeaseId::random();
    assert!(store.lease(&dead, &lease, LEASE).await.unwrap().is_empty());

    assert_eq!(
        store.sweep().await.unwrap(),
        1,
        "only the dead client's row"
    );
    assert_eq!(store.sweep().await.unwrap(), 0, "idempotent");

    assert_eq!(take(store, &alive).await, ["kept"]);
    assert_eq!(
        take(store, &refreshed).await,
        ["old", "new"],
        "an append keeps the client's earlier messages alive"
    );
    assert_eq!(
        take(store, &reborn).await,
        ["after"],
        "expired messages never come back"
    );
}

/// The sweeper task sweeps by itself.
pub(crate) async fn sweeper_runs(store: &SqlStore) {
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("x")],
            Duration::from_millis(50),
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = store.sweep().await.unwrap();
    assert_eq!(before, 1);
    store
        .append(
            &client,
            &[info("y")],
            Duration::from_millis(50),
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    let task = store.spawn_sweeper(Duration::from_millis(100)).unwrap();
    let mut swept = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if store.sweep().await.unwrap() == 0 && rows(store).await == 0 {
            swept = true;
            break;
        }
    }
    task.stop();
    assert!(swept, "the sweeper did not delete the expired row");
}

/// How many rows the store's table holds.
pub(crate) async fn rows(store: &SqlStore) -> i64 {
    let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", store.table()));
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        return sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
    }
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        return sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
    }
    #[cfg(feature = "sqlite")]
    if let Some(pool) = store.sqlite_pool() {
        return sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
    }
    unreachable!("no pool")
}

/// A store on a table that was never migrated reports `Config`, saying what to do.
pub(crate) async fn missing_table_is_config(url: &str) {
    let store = SqlStore::builder(url)
        .table(fresh_table())
        .connect()
        .await
        .expect("connect");
    let err = store
        .lease(&ClientId::random(), &LeaseId::random(), LEASE)
        .await
        .expect_err("no table");
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert!(err.to_string().contains("migrate"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrate is idempotent");
    drop_table(&store).await;
}

/// Drops the store's table (tests that made their own).
pub(crate) async fn drop_table(store: &SqlStore) {
    let table = store.table().to_owned();
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        let sql = sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS \"{table}\""));
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
        let sql = sqlx::AssertSqlSafe(format!("DROP FUNCTION IF EXISTS \"{table}_append_v1\""));
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
    }
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        let sql = sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS `{table}`"));
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
        // No other test table's name starts with this name and `_`.
        let sql = sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS `{table}_clients`"));
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
        let pattern = format!("{}\\_%", table.replace('_', "\\_"));
        drop_procedures(pool, &pattern, |_| true).await;
    }
}

/// Asserts that `err` is `Unavailable` with a cause, and came within `bound`.
pub(crate) fn assert_unavailable(
    err: &flash_core::Error,
    started: std::time::Instant,
    bound: Duration,
) {
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(std::error::Error::source(err).is_some(), "{err:?}");
    assert!(
        started.elapsed() < bound,
        "took {:?}, more than {bound:?}",
        started.elapsed()
    );
}

/// A TCP port that accepts connections and never answers (a hung server): the listener is
/// kept open by the returned value.
pub(crate) fn silent_server() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    (listener, port)
}

/// A port nothing listens on.
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// `n` clients' worth of rows for the scale check, through `insert` (one statement the
/// server generates rows in).
pub(crate) const OTHER_ROWS: i64 = 100_000;

/// Refused, hung and lazy: each a typed `Unavailable` within bounded time.
pub(crate) async fn unreachable(url_for_port: impl Fn(u16) -> String) {
    let bound = Duration::from_secs(4);

    // Refused: `connect` reports the cause.
    let started = std::time::Instant::now();
    let err = SqlStore::builder(url_for_port(closed_port()))
        .acquire_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect_err("nothing listens");
    assert_unavailable(&err, started, bound);
    assert!(
        format!("{err:?}").to_lowercase().contains("refused"),
        "{err:?}"
    );

    // Hung: a server that never answers.
    let (_listener, port) = silent_server();
    let started = std::time::Instant::now();
    let err = SqlStore::builder(url_for_port(port))
        .acquire_timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect_err("nothing answers");
    assert_unavailable(&err, started, bound);

    // Lazy: starts without a server, and every call fails in bounded time.
    for port in [closed_port(), port] {
        let lazy = SqlStore::builder(url_for_port(port))
            .acquire_timeout(Duration::from_millis(300))
            .connect_lazy()
            .expect("lazy");
        let started = std::time::Instant::now();
        let err = lazy
            .append(
                &ClientId::random(),
                &[info("x")],
                HOUR,
                &flash_core::Limits::default(),
            )
            .await
            .expect_err("no server");
        assert_unavailable(&err, started, bound);
    }
}

/// The pool of `store` (one connection, a short acquire timeout) is exhausted while `held`
/// lives: calls fail with `Unavailable` in bounded time, and work again once it is dropped.
pub(crate) async fn exhausted<T>(store: &SqlStore, held: T) {
    let started = std::time::Instant::now();
    let err = store
        .lease(&ClientId::random(), &LeaseId::random(), LEASE)
        .await
        .expect_err("pool exhausted");
    assert_unavailable(&err, started, Duration::from_secs(4));
    assert!(err.to_string().contains("no connection within"), "{err}");
    drop(held);
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("back")],
            HOUR,
            &flash_core::Limits::default(),
        )
        .await
        .expect("after release");
    assert_eq!(take(store, &client).await, ["back"]);
}

/// The deadline of the tests that make calls wait on each other (SQLite's one writer, row
/// locks): they check what contention does to the data, not how long it takes, on a loaded
/// test machine; the deadline has its own tests.
const CONTENDED: Duration = Duration::from_secs(60);

/// Several processes migrating one new table at once all succeed, and the table works.
pub(crate) async fn concurrent_migrations(url: &str, table: &str) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = SqlStore::builder(url)
            .table(table)
            .call_timeout(CONTENDED)
            .connect_lazy()
            .unwrap();
        tasks.push(tokio::spawn(async move { store.migrate().await }));
    }
    for task in tasks {
        task.await.unwrap().expect("concurrent migrate");
    }
    let store = SqlStore::builder(url).table(table).connect().await.unwrap();
    let client = ClientId::random();
    store
        .append(&client, &[info("x")], HOUR, &flash_core::Limits::default())
        .await
        .unwrap();
    assert_eq!(take(&store, &client).await, ["x"]);
    drop_table(&store).await;
}

/// `n` messages of `size` bytes each, named `prefix0`, `prefix1`, …
fn sized(prefix: &str, n: usize, size: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}");
            info(&format!(
                "{name}{}",
                "x".repeat(size.saturating_sub(name.len()))
            ))
        })
        .collect()
}

fn names(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .map(|t| t.trim_end_matches('x').to_owned())
        .collect()
}

/// The limits, call by call: the prefix that fits is kept and counted (the newest refused),
/// by count, by bytes (extra tags included) and by text length; settle's append is limited
/// the same way; consuming frees room.
pub(crate) async fn limits_hold(store: &SqlStore) {
    let limits = Limits::default()
        .with_max_messages(5)
        .with_max_bytes(50)
        .with_max_text_len(20);
    let client = ClientId::random();

    // Bytes: 3 × 10, then 3 more of which 2 fit (50 bytes), then nothing by count.
    let kept = store
        .append(&client, &sized("a", 3, 10), HOUR, &limits)
        .await
        .unwrap();
    assert_eq!(kept, 3);
    let kept = store
        .append(&client, &sized("b", 3, 10), HOUR, &limits)
        .await
        .unwrap();
    assert_eq!(kept, 2, "50 bytes at most");
    let kept = store
        .append(&client, &sized("c", 1, 1), HOUR, &limits)
        .await
        .unwrap();
    assert_eq!(kept, 0, "5 messages at most");

    // Settle: a release frees nothing, so its append is refused; a consume frees all.
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, LEASE).await.unwrap();
    assert_eq!(names(&texts(&got)), ["a0", "a1", "a2", "b0", "b1"]);
    let kept = store
        .settle(
            &client,
            &lease,
            Outcome::Released,
            &sized("d", 1, 1),
            HOUR,
            &limits,
        )
        .await
        .unwrap();
    assert_eq!(kept, 0, "still full after a release");
    let lease = LeaseId::random();
    assert_eq!(store.lease(&client, &lease, LEASE).await.unwrap().len(), 5);
    let kept = store
        .settle(
            &client,
            &lease,
            Outcome::Consumed,
            &sized("e", 7, 2),
            HOUR,
            &limits,
        )
        .await
        .unwrap();
    assert_eq!(kept, 5, "consuming freed the room of five");
    assert_eq!(
        names(&take(store, &client).await),
        ["e0", "e1", "e2", "e3", "e4"]
    );

    // Text length: a message too long stops the prefix, even with room after it.
    let long = info(&"y".repeat(21));
    let batch = [info("ok"), long.clone(), info("after")];
    let kept = store.append(&client, &batch, HOUR, &limits).await.unwrap();
    assert_eq!(kept, 1);
    // Extra tags count: 10 + 11 bytes is over the 20 of one message.
    let tagged = info("0123456789").with_extra_tags("01234567890");
    let kept = store
        .append(&client, &[tagged], HOUR, &limits)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    // Bytes beside what is pending: "ok" (2) + 48 = 50 fits, one more byte does not.
    let kept = store
        .append(
            &client,
            &[
                info(&"z".repeat(20)),
                info(&"z".repeat(20)),
                info(&"z".repeat(8)),
                info("!"),
            ],
            HOUR,
            &limits,
        )
        .await
        .unwrap();
    assert_eq!(kept, 3);
    let got = take(store, &client).await;
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], "ok");
    assert_eq!(got.iter().map(String::len).sum::<usize>(), 50);

    // A client whose messages all expired starts afresh: its old ones take no room.
    let short = Duration::from_millis(200);
    assert_eq!(
        store
            .append(&client, &sized("f", 5, 1), short, &limits)
            .await
            .unwrap(),
        5
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store
            .append(&client, &sized("g", 5, 1), HOUR, &limits)
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        names(&take(store, &client).await),
        ["g0", "g1", "g2", "g3", "g4"]
    );
}

/// 16 concurrent appends (and settles that append) of one client never exceed the limits
/// together, and what they report kept is what the store holds: several rounds, each a new
/// client, as a race shows only now and then.
pub(crate) async fn concurrent_appends_hold_limits(store: &SqlStore) {
    let store = &store.clone().with_call_timeout(CONTENDED);
    let rounds = [
        Limits::default().with_max_messages(10),
        Limits::default().with_max_bytes(45),
    ];
    for round in 0..12 {
        let limits = rounds[round % rounds.len()];
        let client = ClientId::random();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let batch = sized(&format!("t{i}_"), 3, 10);
                if i % 4 == 0 {
                    // A settle of a lease that holds nothing, appending.
                    store
                        .settle(
                            &client,
                            &LeaseId::random(),
                            Outcome::Consumed,
                            &batch,
                            HOUR,
                            &limits,
                        )
                        .await
                } else {
                    store.append(&client, &batch, HOUR, &limits).await
                }
            }));
        }
        let mut kept = 0;
        for task in tasks {
            kept += task.await.unwrap().expect("concurrent append");
        }
        let expected = if limits.max_messages() == 10 { 10 } else { 4 };
        assert_eq!(kept, expected, "{limits:?}");
        assert_eq!(take(store, &client).await.len(), expected, "{limits:?}");
    }
}

/// A TCP proxy to a real server with a switch that stops forwarding (holding what it reads)
/// without closing anything: a server that hangs, or a network that drops everything.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    forwarding: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let forwarding = Arc::new(AtomicBool::new(true));
        let switch = forwarding.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, switch.clone()));
                tokio::spawn(pipe(server_read, client_write, switch.clone()));
            }
        });
        Proxy {
            port,
            forwarding,
            task,
        }
    }

    pub(crate) fn pause(&self) {
        self.forwarding.store(false, Ordering::SeqCst);
    }

    pub(crate) fn resume(&self) {
        self.forwarding.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    forwarding: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while !forwarding.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// `url` with its `host:port` replaced by the proxy's, and that `host:port`.
pub(crate) fn through_proxy(url: &str, default_port: u16, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
        None => (String::new(), rest),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let upstream = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    (
        format!("{scheme}://{userinfo}127.0.0.1:{port}{tail}"),
        upstream,
    )
}

/// How many connections the store's pool holds, idle, in use or being checked.
fn pool_size(store: &SqlStore) -> u32 {
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        return pool.size();
    }
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        return pool.size();
    }
    0
}

/// How many idle connections the store's pool holds.
fn pool_idle(store: &SqlStore) -> usize {
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        return pool.num_idle();
    }
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        return pool.num_idle();
    }
    0
}

/// A server that stops answering mid-use: each call fails with `Unavailable` in about the
/// call timeout, and once the server answers again the store works again by itself, the
/// connections the timed-out calls left closed rather than reused.
pub(crate) async fn hung_server(url: &str, default_port: u16, table: &str) {
    let (_, upstream) = through_proxy(url, default_port, 0);
    let proxy = Proxy::start(upstream).await;
    let (proxied, _) = through_proxy(url, default_port, proxy.port);
    // Generous: a loaded test machine opens a connection slowly.
    let call_timeout = Duration::from_secs(2);
    let store = SqlStore::builder(proxied)
        .table(table)
        .call_timeout(call_timeout)
        // No ping before use: the next call takes the idle connection as it is.
        .ping_after_idle(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    let client = ClientId::random();
    assert_eq!(
        store
            .append(&client, &[info("before")], HOUR, &Limits::default())
            .await
            .unwrap(),
        1
    );

    // sqlx checks a connection handed back with a round trip: wait for it to be idle.
    for _ in 0..50 {
        if pool_idle(&store) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((pool_size(&store), pool_idle(&store)), (1, 1));

    proxy.pause();
    {
        let started = std::time::Instant::now();
        let err = store
            .append(&client, &[info("lost")], HOUR, &Limits::default())
            .await
            .expect_err("the server does not answer");
        assert_unavailable(&err, started, call_timeout * 3);
        assert!(started.elapsed() >= call_timeout, "{:?}", started.elapsed());
        assert!(err.to_string().contains("no answer within"), "{err}");
        // The connection left mid-statement is dropped at once, not kept for reuse (sqlx's
        // own check on release would wait for the server for good, holding the slot).
        assert_eq!(
            pool_size(&store),
            0,
            "the abandoned connection is still in the pool"
        );
        let started = std::time::Instant::now();
        let err = store
            .lease(&client, &LeaseId::random(), LEASE)
            .await
            .expect_err("the server does not answer");
        assert_unavailable(&err, started, call_timeout * 3);
    }

    proxy.resume();
    assert_eq!(
        store
            .append(&client, &[info("after")], HOUR, &Limits::default())
            .await
            .expect("the server answers again"),
        1
    );
    // A statement the server received late may still run, even after later ones.
    let got = take(&store, &client).await;
    assert_eq!(got.first().map(String::as_str), Some("before"), "{got:?}");
    assert!(got.iter().any(|t| t == "after"), "{got:?}");
    assert!(
        got.iter()
            .all(|t| ["before", "lost", "after"].contains(&t.as_str())),
        "{got:?}"
    );
    store.close().await;
}

/// The digits 0 to 9 as a derived table.
#[cfg(feature = "mysql")]
const DIGITS: &str = "(SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
    UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
    UNION ALL SELECT 8 UNION ALL SELECT 9)";

/// Inserts `rows` dead rows (one per client, expired an hour ago) in one statement through
/// `bulk`, a store whose statements may run long.
pub(crate) async fn insert_dead_rows(bulk: &SqlStore, rows: i64) {
    let t = bulk.table();
    let inserted = match bulk.driver() {
        #[cfg(feature = "postgres")]
        flash_sql::Driver::Postgres => sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{t}\" (client, body, size, expires_at) \
             SELECT uuid_send(gen_random_uuid()), '[20,\"gone\"]', 4, now() - interval '1 hour' \
             FROM generate_series(1, $1)"
        )))
        .bind(rows)
        .execute(bulk.postgres_pool().unwrap())
        .await
        .unwrap()
        .rows_affected(),
        #[cfg(feature = "mysql")]
        flash_sql::Driver::MySql => sqlx::query(sqlx::AssertSqlSafe(format!(
            // Ten digits crossed six times (a recursive CTE stops at the server's
            // `max_recursive_iterations`, 1 000 here).
            "INSERT INTO `{t}` (client, body, size, expires_at) \
             SELECT UNHEX(MD5(CONCAT(RAND(), a.n, b.n, c.n, d.n, e.n, f.n))), '[20,\"gone\"]', \
                    4, UTC_TIMESTAMP(6) - INTERVAL 1 HOUR \
             FROM {DIGITS} a, {DIGITS} b, {DIGITS} c, {DIGITS} d, {DIGITS} e, {DIGITS} f \
             LIMIT ?"
        )))
        .bind(rows)
        .execute(bulk.mysql_pool().unwrap())
        .await
        .unwrap()
        .rows_affected(),
        #[cfg(feature = "sqlite")]
        flash_sql::Driver::Sqlite => sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?1) \
             INSERT INTO \"{t}\" (client, body, size, expires_at) \
             SELECT randomblob(16), '[20,\"gone\"]', 4, \
                    CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) - 3600000 FROM s"
        )))
        .bind(rows)
        .execute(bulk.sqlite_pool().unwrap())
        .await
        .unwrap()
        .rows_affected(),
        #[allow(unreachable_patterns)]
        _ => unreachable!("a driver this test binary has"),
    };
    assert_eq!(inserted, rows.unsigned_abs());
}

/// A sweep of `dead` rows runs while two tasks run PRG cycles (append, lease, consuming
/// settle) through `store`, under its call timeout (the default, 2 s): no live call fails
/// (none ran out of its deadline waiting on the sweep), the sweep deletes every dead row and
/// no live one, and live cycles ran while it swept.
pub(crate) async fn sweep_beside_live_requests(store: &SqlStore, dead: u64) {
    let sweeping = Arc::new(AtomicBool::new(true));
    let mut live = Vec::new();
    for _ in 0..2 {
        let (store, sweeping) = (store.clone(), sweeping.clone());
        live.push(tokio::spawn(async move {
            let limits = Limits::default();
            let mut cycles = 0u64;
            let pending = ClientId::random();
            store
                .append(&pending, &[info("stays")], HOUR, &limits)
                .await
                .expect("a live append");
            while sweeping.load(Ordering::SeqCst) {
                let client = ClientId::random();
                store
                    .append(&client, &[info("live")], HOUR, &limits)
                    .await
                    .expect("a live append during the sweep");
                let lease = LeaseId::random();
                let got = store
                    .lease(&client, &lease, LEASE)
                    .await
                    .expect("a live lease during the sweep");
                assert_eq!(texts(&got), ["live"]);
                store
                    .settle(&client, &lease, Outcome::Consumed, &[], HOUR, &limits)
                    .await
                    .expect("a live settle during the sweep");
                cycles += 1;
            }
            (cycles, pending)
        }));
    }
    let swept = store.sweep().await;
    sweeping.store(false, Ordering::SeqCst);
    let mut cycles = 0;
    let mut pending = Vec::new();
    for task in live {
        let (n, client) = task.await.expect("a live task");
        cycles += n;
        pending.push(client);
    }
    assert_eq!(
        swept.expect("the sweep"),
        dead,
        "every dead row, no live one"
    );
    assert!(cycles > 0, "live requests ran while the sweep ran");
    for client in pending {
        assert_eq!(take(store, &client).await, ["stays"]);
    }
}

/// A store for the keyed-store kit: its sweeper runs every `Options::sweep_interval` (expired
/// rows must leave the table: the kit checks), and the kit counts a client's rows directly.
pub(crate) fn inspected(
    store: SqlStore,
    options: &Options,
) -> flash_testkit::keyed_kit::Inspected<SqlStore> {
    let sweeper = store
        .spawn_sweeper(options.sweep_interval)
        .expect("a sweeper inside the kit's runtime");
    let raw = store.clone();
    flash_testkit::keyed_kit::Inspected::new(store, move |client: ClientId| {
        let raw = raw.clone();
        async move { count_rows(&raw, &client).await }
    })
    .keeping(sweeper)
}

/// The rows `client` has in the store's table, expired or not.
pub(crate) async fn count_rows(store: &SqlStore, client: &ClientId) -> flash_core::Result<usize> {
    let table = store.table();
    let fail = |err: sqlx::Error| {
        flash_core::Error::with_source(ErrorKind::Backend, "counting a client's rows", err)
    };
    let mut count: i64 = 0;
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{table}\" WHERE client = $1"
        )))
        .bind(client.as_bytes().to_vec())
        .fetch_one(pool)
        .await
        .map_err(fail)?;
    }
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM `{table}` WHERE client = ?"
        )))
        .bind(client.as_bytes().to_vec())
        .fetch_one(pool)
        .await
        .map_err(fail)?;
    }
    #[cfg(feature = "sqlite")]
    if let Some(pool) = store.sqlite_pool() {
        count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{table}\" WHERE client = ?"
        )))
        .bind(client.as_bytes().to_vec())
        .fetch_one(pool)
        .await
        .map_err(fail)?;
    }
    Ok(usize::try_from(count).unwrap_or(0))
}

/// The keyed-store kit's factories: a table (or SQLite file) per test namespace, swept.
pub(crate) async fn postgres_inspected(
    options: Options,
) -> Option<flash_testkit::keyed_kit::Inspected<SqlStore>> {
    let store = postgres_kit(options.clone()).await?;
    Some(inspected(store, &options))
}

pub(crate) async fn mysql_inspected(
    options: Options,
) -> Option<flash_testkit::keyed_kit::Inspected<SqlStore>> {
    let store = mysql_kit(options.clone()).await?;
    Some(inspected(store, &options))
}

pub(crate) async fn sqlite_inspected(
    options: Options,
) -> Option<flash_testkit::keyed_kit::Inspected<SqlStore>> {
    let store = sqlite_kit(options.clone()).await?;
    Some(inspected(store, &options))
}

/// The URL of `url`'s server with its host and port replaced by `addr`.
fn at_addr(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
        None => (String::new(), rest),
    };
    let tail = rest.find(['/', '?']).map_or("", |end| &rest[end..]);
    format!("{scheme}://{userinfo}{addr}{tail}")
}

/// The kit's outage factories: the store built lazily against `addr`, bounded by the kit's
/// deadline.
pub(crate) async fn postgres_at(
    options: Options,
    addr: std::net::SocketAddr,
) -> flash_core::Result<SqlStore> {
    SqlStore::builder(at_addr(&postgres_url(), addr))
        .table(table_for(&options.namespace))
        .call_timeout(options.call_timeout)
        .connect_lazy()
}

pub(crate) async fn mysql_at(
    options: Options,
    addr: std::net::SocketAddr,
) -> flash_core::Result<SqlStore> {
    SqlStore::builder(at_addr(&mysql_url(), addr))
        .table(table_for(&options.namespace))
        .call_timeout(options.call_timeout)
        .connect_lazy()
}
