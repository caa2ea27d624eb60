//! `SqlStore` on MariaDB or MySQL (FLASH_MYSQL_URL, default `mysql://root@127.0.0.1:3306/test`).
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use flash_core::{
    ErrorKind,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_sql::{Driver, SqlStore};
use flash_testkit::StatementCounter;

mod conformance {
    flash_testkit::conformance_tests!(super::common::mysql);
}

/// flash-core's keyed-store kit: the store driven directly, every rule of the contract.
mod keyed_kit {
    flash_testkit::keyed_store_tests!(super::common::mysql_inspected, at = super::common::mysql_at);
}

common::server_tests!(
    store = mysql_store,
    url = mysql_url,
    url_at = |port| format!("mysql://root@127.0.0.1:{port}/test"),
    port = 3306,
    driver = Driver::MySql,
    service = "MariaDB/MySQL (FLASH_MYSQL_URL)",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_unavailable_not_a_hang() {
    let table = fresh_table();
    if mysql_store(&table).await.is_none() {
        return;
    }
    let store = SqlStore::builder(mysql_url())
        .table(&table)
        .max_connections(1)
        // Not too short: a loaded machine opens a connection slowly.
        .acquire_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let held = store.mysql_pool().unwrap().acquire().await.unwrap();
    exhausted(&store, held).await;
    drop_table(&store).await;
}

/// With 100 000 rows of other clients, a lease finds the client's rows through the
/// `(client, id)` index and takes exactly them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_touches_only_the_clients_rows() {
    let service = "MariaDB/MySQL (FLASH_MYSQL_URL)";
    let Some(store) = bulk_store(service, &mysql_url(), &fresh_table()).await else {
        return;
    };
    let pool = store.mysql_pool().unwrap();
    let t = store.table();
    // 10^5 rows from five cross-joined digit tables (works on MySQL 8 and MariaDB alike).
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO `{t}` (client, body, expires_at) \
         SELECT UNHEX(MD5(n)), '[20,\"other\"]', UTC_TIMESTAMP(6) + INTERVAL 1 HOUR FROM (\
           SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n FROM \
           (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
            UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) a, \
           (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
            UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) b, \
           (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
            UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) c, \
           (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
            UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) e, \
           (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
            UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) f\
         ) AS g"
    )))
    .execute(pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(inserted, OTHER_ROWS.unsigned_abs());
    let client = ClientId::random();
    let mine = [info("m1"), info("m2"), info("m3")];
    store
        .append(
            &client,
            &mine,
            Duration::from_secs(3600),
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE TABLE `{t}`")))
        .execute(pool)
        .await
        .unwrap();

    let plan = store.explain_lease(&client).await.unwrap();
    let text = plan.join("\n");
    // Every access to the table itself goes through the (client, id) index, never a full
    // scan (`type=ALL`); only the one-row derived table of the newest expiry is scanned.
    let on_table: Vec<&String> = plan
        .iter()
        .filter(|line| !line.starts_with("table=<derived"))
        .collect();
    assert!(!on_table.is_empty(), "{text}");
    for line in on_table {
        assert!(line.contains(&format!("key={t}_client")), "{text}");
        assert!(!line.contains("type=ALL"), "{text}");
        let estimate: u64 = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("rows="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(
            estimate < 1000,
            "the plan expects to examine {estimate} rows: {text}"
        );
    }

    // The same through the procedure, whose statements EXPLAIN does not show: on one
    // connection, the rows the lease read without an index (`Handler_read_rnd_next`) stay
    // within what reading the counters costs, nowhere near the table's 10^5.
    let one = SqlStore::builder(mysql_url())
        .table(t)
        .max_connections(1)
        .connect()
        .await
        .unwrap();
    let scanned = || async {
        let (_, n): (String, String) =
            sqlx::query_as("SHOW SESSION STATUS LIKE 'Handler_read_rnd_next'")
                .fetch_one(one.mysql_pool().unwrap())
                .await
                .unwrap();
        n.parse::<i64>().unwrap()
    };
    let (first, second) = (scanned().await, scanned().await);
    let got = one
        .lease(&client, &LeaseId::random(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(texts(&got), ["m1", "m2", "m3"]);
    let third = scanned().await;
    assert!(
        (third - second) - (second - first) < 1000,
        "the lease procedure scanned {} rows",
        third - second
    );
    one.close().await;

    let lease = LeaseId::random();
    let got = store
        .lease(&client, &lease, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(texts(&got), ["m1", "m2", "m3"]);
    let leased: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM `{t}` WHERE lease IS NOT NULL"
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(leased, 3, "the lease stamped only the client's rows");
    drop_table(&store).await;
}

/// A row this crate did not write is skipped, and deleted with the consumed lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_rows_are_skipped() {
    let Some(store) = mysql_store(&fresh_table()).await else {
        return;
    };
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("good")],
            Duration::from_secs(3600),
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO `{}` (client, body, expires_at) VALUES (?, 'not json', UTC_TIMESTAMP(6) + INTERVAL 1 HOUR)",
        store.table()
    )))
    .bind(client.as_bytes().as_slice())
    .execute(store.mysql_pool().unwrap())
    .await
    .unwrap();
    let lease = LeaseId::random();
    let got = store
        .lease(&client, &lease, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(texts(&got), ["good"]);
    store
        .settle(
            &client,
            &lease,
            flash_core::storage::Outcome::Consumed,
            &[],
            Duration::from_secs(3600),
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(rows(&store).await, 0);
    drop_table(&store).await;
}

/// The builder's connections run at READ COMMITTED (no gap locks between one client's requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_run_at_read_committed() {
    let Some(store) = mysql_store(&fresh_table()).await else {
        return;
    };
    let pool = store.mysql_pool().unwrap();
    let mut conn = pool.acquire().await.unwrap();
    // MariaDB < 11.1 knows only tx_isolation; MySQL ≥ 8.0.3 only transaction_isolation.
    let level: String = match sqlx::query_scalar("SELECT CAST(@@SESSION.tx_isolation AS CHAR)")
        .fetch_one(&mut *conn)
        .await
    {
        Ok(level) => level,
        Err(_) => sqlx::query_scalar("SELECT CAST(@@SESSION.transaction_isolation AS CHAR)")
            .fetch_one(&mut *conn)
            .await
            .unwrap(),
    };
    assert_eq!(level, "READ-COMMITTED");
    drop(conn);
    drop_table(&store).await;
}

/// The server drops the store's connection (a restart, a proxy, `KILL`): the
/// store replaces it by itself and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_replaced() {
    let table = fresh_table();
    let Some(admin) = mysql_store(&table).await else {
        return;
    };
    let admin = admin.mysql_pool().unwrap().clone();
    for ping_after_idle in [Duration::ZERO, Duration::from_secs(3600)] {
        let store = SqlStore::builder(mysql_url())
            .table(&table)
            .max_connections(1)
            .ping_after_idle(ping_after_idle)
            .connect()
            .await
            .unwrap();
        let client = ClientId::random();
        store
            .append(
                &client,
                &[info("before")],
                Duration::from_secs(3600),
                &flash_core::Limits::default(),
            )
            .await
            .unwrap();
        let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(store.mysql_pool().unwrap())
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}")))
            .execute(&admin)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let append = store
            .append(
                &client,
                &[info("after")],
                Duration::from_secs(3600),
                &flash_core::Limits::default(),
            )
            .await;
        if ping_after_idle.is_zero() {
            // Pinged before use: the dead connection is replaced, the call goes through.
            append.unwrap();
        } else if let Err(err) = append {
            // Not pinged: the call on the dead connection fails, typed, and the next works.
            assert_eq!(err.kind(), flash_core::ErrorKind::Unavailable, "{err:?}");
            store
                .append(
                    &client,
                    &[info("after")],
                    Duration::from_secs(3600),
                    &flash_core::Limits::default(),
                )
                .await
                .unwrap();
        }
        let lease = LeaseId::random();
        let got = store
            .lease(&client, &lease, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(texts(&got), ["before", "after"]);
    }
    let store = SqlStore::from_mysql_pool(admin, &table).unwrap();
    drop_table(&store).await;
}

/// `mariadb://` names the same driver as `mysql://`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_scheme_connects() {
    let table = fresh_table();
    if mysql_store(&table).await.is_none() {
        return;
    }
    let url = mysql_url().replacen("mysql://", "mariadb://", 1);
    let store = SqlStore::builder(url)
        .table(&table)
        .connect()
        .await
        .unwrap();
    assert_eq!(store.driver(), Driver::MySql);
    assert!(store.location().starts_with("mariadb://"));
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("x")],
            Duration::from_secs(60),
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    drop_table(&store).await;
}

/// A lease, a settle that consumes and appends, a settle that releases and appends several,
/// and an append: one statement (one round trip) each.
#[tokio::test(flavor = "current_thread")]
async fn each_call_is_one_statement() {
    let table = fresh_table();
    let Some(admin) = mysql_store(&table).await else {
        return;
    };
    // One connection, opened (and set up, which runs statements too) before counting.
    let store = SqlStore::builder(mysql_url())
        .table(&table)
        .max_connections(1)
        .connect()
        .await
        .unwrap();
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("first")],
            Duration::from_secs(3600),
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    let count = StatementCounter::new();
    let _guard = tracing::subscriber::set_default(count.clone());
    // Another test's thread registering sqlx's callsites just as this subscriber arrives can
    // leave them cached as "never" (tracing rebuilds only registered callsites): once this
    // lease has registered them, the cache is rebuilt with this subscriber in it.
    store
        .lease(&ClientId::random(), &LeaseId::random(), Duration::ZERO)
        .await
        .unwrap();
    tracing::callsite::rebuild_interest_cache();
    count.take();
    let statements = |what: &str, expected: u64| {
        let now = count.take();
        assert_eq!(now, expected, "{what}: {now} statements");
    };
    let hour = Duration::from_secs(3600);

    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, hour).await.unwrap();
    assert_eq!(texts(&got), ["first"]);
    statements("lease", 1);
    store
        .settle(
            &client,
            &lease,
            Outcome::Consumed,
            &[info("second")],
            hour,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    statements("settle, consumed, appending one", 1);

    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, hour).await.unwrap();
    assert_eq!(texts(&got), ["second"]);
    statements("lease", 1);
    store
        .settle(
            &client,
            &lease,
            Outcome::Released,
            &[info("third"), info("fourth")],
            hour,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    statements("settle, released, appending two", 1);
    store
        .append(
            &client,
            &[info("fifth")],
            hour,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    statements("append", 1);
    assert!(
        store
            .lease(&ClientId::random(), &LeaseId::random(), hour)
            .await
            .unwrap()
            .is_empty()
    );
    statements("lease of nothing", 1);

    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, hour).await.unwrap();
    assert_eq!(texts(&got), ["second", "third", "fourth", "fifth"]);
    store
        .settle(
            &client,
            &lease,
            Outcome::Consumed,
            &[],
            hour,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    statements("lease, settle", 2);
    drop(_guard);
    store.close().await;
    drop_table(&admin).await;
}

/// Odd texts keep every byte on the JSON path of several messages, in the append and in the
/// settle procedure alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_messages_keep_their_bytes_and_order() {
    let Some(store) = mysql_store(&fresh_table()).await else {
        return;
    };
    let hour = Duration::from_secs(3600);
    let odd = |i: usize| {
        let text = format!(
            "{i}: quote ' double \" back \\ \\\" \\u0000 nul \u{0} tab \t line \n emoji 🎉 é ∑ \u{7f}"
        );
        info(&text).with_extra_tags("a\"b").trusted_html()
    };
    let many: Vec<_> = (0..300).map(odd).collect();
    let client = ClientId::random();
    let roomy = flash_core::Limits::default().with_max_messages(1000);
    assert_eq!(
        store.append(&client, &many, hour, &roomy).await.unwrap(),
        300
    );
    let lease = LeaseId::random();
    let got = store.lease(&client, &lease, hour).await.unwrap();
    assert_eq!(got, many);
    let again: Vec<_> = (300..310).map(odd).collect();
    store
        .settle(&client, &lease, Outcome::Released, &again, hour, &roomy)
        .await
        .unwrap();
    let got = store
        .lease(&client, &LeaseId::random(), hour)
        .await
        .unwrap();
    let all: Vec<_> = many.iter().chain(&again).cloned().collect();
    assert_eq!(got, all);
    drop_table(&store).await;
}

/// The settle procedure commits all or nothing: an insert that fails (here malformed JSON,
/// which the store never sends) undoes the consume, the error comes through unchanged, and
/// no transaction stays open on the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_settle_changes_nothing() {
    let Some(store) = mysql_store(&fresh_table()).await else {
        return;
    };
    let hour = Duration::from_secs(3600);
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("kept")],
            hour,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    let lease = LeaseId::random();
    assert_eq!(
        texts(&store.lease(&client, &lease, hour).await.unwrap()),
        ["kept"]
    );
    let pool = store.mysql_pool().unwrap();
    let name: String = sqlx::query_scalar(
        "SELECT CAST(routine_name AS CHAR) FROM information_schema.routines \
         WHERE routine_schema = DATABASE() AND routine_name LIKE ?",
    )
    .bind(format!(
        "{}\\_settle\\_%",
        store.table().replace('_', "\\_")
    ))
    .fetch_one(pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let err = sqlx::query(sqlx::AssertSqlSafe(format!(
        "CALL `{name}`(?, ?, TRUE, 3600000000, 100, 65536, NULL, NULL, '[\"unterminated')"
    )))
    .bind(client.as_bytes().as_slice())
    .bind(lease.as_bytes().as_slice())
    .execute(&mut *conn)
    .await
    .unwrap_err();
    assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
    // Inside a transaction, the isolation level of the next one cannot be set (1568).
    sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *conn)
        .await
        .expect("no transaction left open");
    drop(conn);
    // Still there, still leased.
    assert!(
        store
            .lease(&client, &LeaseId::random(), hour)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .settle(
            &client,
            &lease,
            Outcome::Released,
            &[],
            hour,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        texts(
            &store
                .lease(&client, &LeaseId::random(), hour)
                .await
                .unwrap()
        ),
        ["kept"]
    );
    drop_table(&store).await;
}

/// A table of an earlier release (no procedures): calls fail with `Config` saying to migrate,
/// and `migrate` adds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_adds_procedures_to_an_existing_table() {
    let Some(store) = mysql_store(&fresh_table()).await else {
        return;
    };
    let client = ClientId::random();
    store
        .append(
            &client,
            &[info("old")],
            Duration::from_secs(3600),
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    let pool = store.mysql_pool().unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(routine_name AS CHAR) FROM information_schema.routines \
         WHERE routine_schema = DATABASE() AND routine_name LIKE ?",
    )
    .bind(format!("{}\\_%", store.table().replace('_', "\\_")))
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in &names {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP PROCEDURE `{name}`")))
            .execute(pool)
            .await
            .unwrap();
    }
    let err = store
        .lease(&client, &LeaseId::random(), Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert!(err.to_string().contains("migrate"), "{err}");
    store.migrate().await.unwrap();
    assert_eq!(
        texts(
            &store
                .lease(&client, &LeaseId::random(), Duration::from_secs(30))
                .await
                .unwrap()
        ),
        ["old"]
    );
    drop_table(&store).await;
}

/// Routine names are case-insensitive, table names (on Linux) are not: tables whose names
/// differ only in case keep their own procedures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_differing_in_case_do_not_share_procedures() {
    let base = fresh_table();
    let Some(capital) = mysql_store(&format!("{base}_Q")).await else {
        return;
    };
    let case_sensitive: u64 = sqlx::query_scalar("SELECT @@lower_case_table_names")
        .fetch_one(capital.mysql_pool().unwrap())
        .await
        .unwrap();
    if case_sensitive != 0 {
        // One table under two spellings: nothing to keep apart.
        drop_table(&capital).await;
        return;
    }
    let small = mysql_store(&format!("{base}_q")).await.unwrap();
    let client = ClientId::random();
    let hour = Duration::from_secs(3600);
    capital
        .append(
            &client,
            &[info("upper")],
            hour,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    small
        .append(
            &client,
            &[info("lower")],
            hour,
            &flash_core::Limits::default(),
        )
        .await
        .unwrap();
    let got = small
        .lease(&client, &LeaseId::random(), hour)
        .await
        .unwrap();
    assert_eq!(texts(&got), ["lower"]);
    let got = capital
        .lease(&client, &LeaseId::random(), hour)
        .await
        .unwrap();
    assert_eq!(texts(&got), ["upper"]);
    drop_table(&capital).await;
    drop_table(&small).await;
}

/// Beyond one `CALL` (more than 1 000 messages): the same limits, counted in one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_appends_are_limited_too() {
    let Some(store) = mysql_store(&fresh_table()).await else {
        return;
    };
    let limits = flash_core::Limits::default()
        .with_max_messages(1500)
        .with_max_bytes(1 << 20);
    let client = ClientId::random();
    let many: Vec<_> = (0..1200).map(|i| info(&format!("m{i}"))).collect();
    let hour = Duration::from_secs(3600);
    assert_eq!(
        store.append(&client, &many, hour, &limits).await.unwrap(),
        1200
    );
    assert_eq!(
        store.append(&client, &many, hour, &limits).await.unwrap(),
        300
    );
    let lease = LeaseId::random();
    assert_eq!(
        store.lease(&client, &lease, hour).await.unwrap().len(),
        1500
    );
    assert_eq!(
        store
            .settle(&client, &lease, Outcome::Consumed, &many, hour, &limits)
            .await
            .unwrap(),
        1200
    );
    assert_eq!(rows(&store).await, 1200);
    drop_table(&store).await;
}

/// The server stops a statement on its own after the call timeout (MariaDB
/// `max_statement_time`, MySQL `max_execution_time`) and bounds lock waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_bounded_on_the_server() {
    let table = fresh_table();
    if mysql_store(&table).await.is_none() {
        return;
    }
    let store = SqlStore::builder(mysql_url())
        .table(&table)
        .call_timeout(Duration::from_millis(1500))
        .connect()
        .await
        .unwrap();
    let pool = store.mysql_pool().unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let lock_wait: u64 = sqlx::query_scalar("SELECT @@SESSION.innodb_lock_wait_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(lock_wait, 1);
    let limit: String =
        match sqlx::query_scalar("SELECT CAST(@@SESSION.max_statement_time AS CHAR)")
            .fetch_one(&mut *conn)
            .await
        {
            Ok(seconds) => seconds,
            Err(_) => sqlx::query_scalar("SELECT CAST(@@SESSION.max_execution_time AS CHAR)")
                .fetch_one(&mut *conn)
                .await
                .unwrap(),
        };
    assert!(limit == "1.500000" || limit == "1500", "{limit}");
    // A statement past the limit is stopped by the server.
    let started = std::time::Instant::now();
    let _ = sqlx::query("SELECT SLEEP(5)").fetch_one(&mut *conn).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    drop(conn);
    drop_table(&store).await;
}
