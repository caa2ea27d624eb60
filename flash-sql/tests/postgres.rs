//! `SqlStore` on PostgreSQL (FLASH_POSTGRES_URL, default
//! `postgres://postgres@127.0.0.1:5432/test`).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use flash_core::storage::{ClientId, KeyedStore, LeaseId};
use flash_sql::{Driver, SqlStore};

mod conformance {
    flash_testkit::conformance_tests!(super::common::postgres);
}

/// flash-core's keyed-store kit: the store driven directly, every rule of the contract.
mod keyed_kit {
    flash_testkit::keyed_store_tests!(
        super::common::postgres_inspected,
        at = super::common::postgres_at
    );
}

common::server_tests!(
    store = postgres_store,
    url = postgres_url,
    url_at = |port| format!("postgres://postgres@127.0.0.1:{port}/test"),
    port = 5432,
    driver = Driver::Postgres,
    service = "PostgreSQL (FLASH_POSTGRES_URL)",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_unavailable_not_a_hang() {
    let table = fresh_table();
    if postgres_store(&table).await.is_none() {
        return;
    }
    let store = SqlStore::builder(postgres_url())
        .table(&table)
        .max_connections(1)
        // Not too short: a loaded machine opens a connection slowly.
        .acquire_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let held = store.postgres_pool().unwrap().acquire().await.unwrap();
    exhausted(&store, held).await;
    drop_table(&store).await;
}

/// With 100 000 rows of other clients, a lease finds the client's rows through the
/// `(client, id)` index and takes exactly them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_touches_only_the_clients_rows() {
    let service = "PostgreSQL (FLASH_POSTGRES_URL)";
    let Some(store) = bulk_store(service, &postgres_url(), &fresh_table()).await else {
        return;
    };
    let pool = store.postgres_pool().unwrap();
    let t = store.table();
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{t}\" (client, body, expires_at) \
         SELECT decode(md5(g::text), 'hex'), '[20,\"other\"]', now() + interval '1 hour' \
         FROM generate_series(1, $1) AS g"
    )))
    .bind(OTHER_ROWS)
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
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE \"{t}\"")))
        .execute(pool)
        .await
        .unwrap();

    let plan = store.explain_lease(&client).await.unwrap();
    let text = plan.join("\n");
    assert!(text.contains(&format!("{t}_client")), "{text}");
    assert!(!text.contains("Seq Scan"), "{text}");

    let lease = LeaseId::random();
    let got = store
        .lease(&client, &lease, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(texts(&got), ["m1", "m2", "m3"]);
    let leased: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM \"{t}\" WHERE lease IS NOT NULL"
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
    let Some(store) = postgres_store(&fresh_table()).await else {
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
        "INSERT INTO \"{}\" (client, body, expires_at) VALUES ($1, 'not json', now() + interval '1 hour')",
        store.table()
    )))
    .bind(client.as_bytes().as_slice())
    .execute(store.postgres_pool().unwrap())
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

/// The server drops the store's connection (a restart, a proxy, `pg_terminate_backend`): the
/// store replaces it by itself and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_replaced() {
    let table = fresh_table();
    let Some(admin) = postgres_store(&table).await else {
        return;
    };
    let admin = admin.postgres_pool().unwrap().clone();
    for ping_after_idle in [Duration::ZERO, Duration::from_secs(3600)] {
        let store = SqlStore::builder(postgres_url())
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
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(store.postgres_pool().unwrap())
            .await
            .unwrap();
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&admin)
            .await
            .unwrap();
        assert!(killed);
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
    let store = SqlStore::from_postgres_pool(admin, &table).unwrap();
    drop_table(&store).await;
}

/// The server stops a statement on its own after the call timeout (`statement_timeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_bounded_on_the_server() {
    let table = fresh_table();
    if postgres_store(&table).await.is_none() {
        return;
    }
    let store = SqlStore::builder(postgres_url())
        .table(&table)
        .call_timeout(Duration::from_millis(1500))
        .connect()
        .await
        .unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(store.postgres_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(timeout, "1500ms");
    drop_table(&store).await;
}
