//! `SqlStore` on MariaDB or MySQL (FLASH_MYSQL_URL, default `mysql://root@127.0.0.1:3306/test`).
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use flash_core::{ClientId, KeyedStore, LeaseId};
use flash_sql::{Driver, SqlStore};

mod conformance {
    flash_core::conformance_tests!(super::common::mysql);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_store_semantics() {
    let Some(store) = mysql_store(&fresh_table()).await else {
        return;
    };
    assert_eq!(store.driver(), Driver::MySql);
    keyed_semantics(&store).await;
    drop_table(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_sweep_and_sweeper() {
    let Some(store) = mysql_store(&fresh_table()).await else {
        return;
    };
    ttl_and_sweep(&store).await;
    sweeper_runs(&store).await;
    drop_table(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_is_a_config_error() {
    if mysql_store(&fresh_table()).await.is_none() {
        return;
    }
    missing_table_is_config(&mysql_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_unavailable_in_bounded_time() {
    unreachable(|port| format!("mysql://root@127.0.0.1:{port}/test")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_unavailable_not_a_hang() {
    let table = fresh_table();
    if mysql_store(&table).await.is_none() {
        return;
    }
    let store = SqlStore::builder(mysql_url())
        .table(&table)
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
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
    let Some(store) = mysql_store(&fresh_table()).await else {
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
        .append(&client, &mine, Duration::from_secs(3600))
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
        .append(&client, &[info("good")], Duration::from_secs(3600))
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
            flash_core::Outcome::Consumed,
            &[],
            Duration::from_secs(3600),
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
            .append(&client, &[info("before")], Duration::from_secs(3600))
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
            .append(&client, &[info("after")], Duration::from_secs(3600))
            .await;
        if ping_after_idle.is_zero() {
            // Pinged before use: the dead connection is replaced, the call goes through.
            append.unwrap();
        } else if let Err(err) = append {
            // Not pinged: the call on the dead connection fails, typed, and the next works.
            assert_eq!(err.kind(), flash_core::ErrorKind::Unavailable, "{err:?}");
            store
                .append(&client, &[info("after")], Duration::from_secs(3600))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_succeed() {
    if mysql_store(&fresh_table()).await.is_none() {
        return;
    }
    concurrent_migrations(&mysql_url(), &fresh_table()).await;
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
        .append(&client, &[info("x")], Duration::from_secs(60))
        .await
        .unwrap();
    drop_table(&store).await;
}
