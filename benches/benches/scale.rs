//! Group 4, scale: the load latency (one `lease` of flash's store, for one client holding one
//! message) with 1 000 and with 1 000 000 other clients stored, on Redis and PostgreSQL. The
//! ratio must stay near 1: a load touches one client's key or index range, never a scan.
//!
//! Only the lease is timed; after each one the lease is released (untimed), so every
//! iteration finds the same message. The other clients are written in the store's own layout
//! with pipelines (Redis: one hash per client, `{<prefix>:<hex>}:m`) or one
//! `INSERT … SELECT … generate_series` (PostgreSQL), under a prefix and a table of this run
//! only, with a one-hour expiry as a safety net, and removed at the end.
//!
//! `FLASH_BENCH_SCALE_CLIENTS` changes the large population (default 1 000 000).
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flash_benches::server_url;
use flash_core::{
    Level, Message,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_redis::RedisStore;
use flash_sql::SqlStore;
use redis::AsyncCommands as _;
use serde_json::json;
use sqlx::AssertSqlSafe;

const SMALL: u64 = 1_000;
const TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const LEASE: Duration = Duration::from_secs(30);
const BODY: &str = r#"[20,"You have 3 new notifications waiting now"]"#;

fn large() -> u64 {
    std::env::var("FLASH_BENCH_SCALE_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > SMALL)
        .unwrap_or(1_000_000)
}

/// Times `iters` leases of `client`'s message, releasing each (untimed).
fn time_leases(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn KeyedStore>,
    client: &ClientId,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let lease = LeaseId::random();
            let start = Instant::now();
            let leased = store.lease(client, &lease, LEASE).await.expect("lease");
            total += start.elapsed();
            assert_eq!(leased.len(), 1, "the client's message is there");
            store
                .settle(
                    client,
                    &lease,
                    Outcome::Released,
                    &[],
                    TTL,
                    &flash_core::Limits::default(),
                )
                .await
                .expect("release");
        }
        total
    })
}

/// Other clients `from..to` in flash-redis's layout, pipelined in batches.
async fn populate_redis(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    from: u64,
    to: u64,
) -> redis::RedisResult<()> {
    const BATCH: u64 = 2_000;
    let mut start = from;
    while start < to {
        let end = (start + BATCH).min(to);
        let mut pipe = redis::pipe();
        for i in start..end {
            let key = format!("{{{prefix}:{i:032x}}}:m");
            pipe.cmd("HSET")
                .arg(&key)
                .arg("n")
                .arg(1)
                .arg("m1")
                .arg(BODY)
                .ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(3_600_000).ignore();
        }
        pipe.exec_async(conn).await?;
        start = end;
    }
    Ok(())
}

async fn cleanup_redis(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let pattern = format!("{{{prefix}:*");
    let mut keys: Vec<String> = Vec::new();
    if let Ok(mut iter) = conn.scan_match::<_, String>(&pattern).await {
        while let Some(Ok(key)) = iter.next_item().await {
            keys.push(key);
        }
    }
    for chunk in keys.chunks(1_000) {
        let _: redis::RedisResult<()> = redis::cmd("UNLINK").arg(chunk).query_async(conn).await;
    }
}

async fn populate_postgres(
    pool: &sqlx::PgPool,
    table: &str,
    from: u64,
    to: u64,
) -> sqlx::Result<()> {
    // Client ids 16 bytes from the series number; one message each, expiring in an hour.
    let statement = format!(
        "INSERT INTO \"{table}\" (client, body, expires_at) \
         SELECT decode(lpad(to_hex(g), 32, '0'), 'hex'), $1, now() + interval '1 hour' \
         FROM generate_series($2::bigint, $3::bigint - 1) AS g"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(BODY)
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
        .bind(i64::try_from(to).unwrap_or(i64::MAX))
        .execute(pool)
        .await?;
    sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE \"{table}\"")))
        .execute(pool)
        .await?;
    Ok(())
}

enum Target {
    Redis {
        store: RedisStore,
        conn: redis::aio::MultiplexedConnection,
        prefix: String,
    },
    Postgres {
        store: SqlStore,
        table: String,
    },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Redis { .. } => "redis",
            Target::Postgres { .. } => "postgres",
        }
    }

    fn store(&self) -> Arc<dyn KeyedStore> {
        match self {
            Target::Redis { store, .. } => Arc::new(store.clone()),
            Target::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    async fn populate(&mut self, from: u64, to: u64) -> Result<(), String> {
        match self {
            Target::Redis { conn, prefix, .. } => populate_redis(conn, prefix, from, to)
                .await
                .map_err(|e| e.to_string()),
            Target::Postgres { store, table } => {
                let pool = store.postgres_pool().ok_or("not a PostgreSQL store")?;
                populate_postgres(pool, table, from, to)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn cleanup(&mut self) {
        match self {
            Target::Redis { conn, prefix, .. } => cleanup_redis(conn, prefix).await,
            Target::Postgres { store, table } => {
                if let Some(pool) = store.postgres_pool() {
                    let _ =
                        sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE IF EXISTS \"{table}\"")))
                            .execute(pool)
                            .await;
                }
            }
        }
    }
}

async fn open(skipped: &mut Vec<String>) -> Vec<Target> {
    let mut targets = Vec::new();
    let run = std::process::id();
    let url = server_url("FLASH_REDIS_URL");
    let prefix = format!("flash-bench-scale-{run}");
    let redis = async {
        let store = RedisStore::builder(&url)
            .prefix(&prefix)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let conn = redis::Client::open(url.as_str())
            .map_err(|e| e.to_string())?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((store, conn))
    };
    match redis.await {
        Ok((store, conn)) => targets.push(Target::Redis {
            store,
            conn,
            prefix,
        }),
        Err(err) => skip(skipped, "redis", &url, &err),
    }
    let url = server_url("FLASH_POSTGRES_URL");
    let table = format!("flash_bench_scale_{run}");
    let postgres = async {
        let store = SqlStore::builder(&url).table(&table).connect().await?;
        store.migrate().await?;
        Ok::<_, flash_core::Error>(store)
    };
    match postgres.await {
        Ok(store) => targets.push(Target::Postgres { store, table }),
        Err(err) => skip(skipped, "postgres", &url, &err.to_string()),
    }
    targets
}

fn skip(skipped: &mut Vec<String>, name: &str, url: &str, err: &str) {
    let line = format!("scale/{name}: skipped, server at {url} unreachable: {err}");
    println!("{line}");
    skipped.push(line);
}

fn scale(c: &mut Criterion) {
    if !flash_benches::selected("scale") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut skipped = Vec::new();
    rt.block_on(common::sweep_dead_runs(
        &server_url("FLASH_REDIS_URL"),
        &server_url("FLASH_POSTGRES_URL"),
        &server_url("FLASH_MYSQL_URL"),
    ));
    let mut targets = rt.block_on(open(&mut skipped));
    let large = large();
    let mut notes = Vec::new();
    let mut group = c.benchmark_group("scale");
    group.sample_size(20);
    for target in &mut targets {
        let store = target.store();
        let client = ClientId::random();
        rt.block_on(store.append(
            &client,
            &[Message::new(Level::INFO, "the one to load")],
            TTL,
            &flash_core::Limits::default(),
        ))
        .expect("append");
        let mut stored = 0;
        for population in [SMALL, large] {
            let start = Instant::now();
            if let Err(err) = rt.block_on(target.populate(stored, population)) {
                println!("scale/{}: populating failed: {err}", target.name());
                break;
            }
            let line = format!(
                "{}: stored {} other clients in {:.1} s",
                target.name(),
                population - stored,
                start.elapsed().as_secs_f64()
            );
            println!("scale/{line}");
            notes.push(line);
            stored = population;
            group.bench_function(
                BenchmarkId::new(format!("{}/load", target.name()), population),
                |b| b.iter_custom(|iters| time_leases(&rt, &store, &client, iters)),
            );
        }
        black_box(&store);
        let start = Instant::now();
        rt.block_on(target.cleanup());
        println!(
            "scale/{}: cleaned up in {:.1} s",
            target.name(),
            start.elapsed().as_secs_f64()
        );
    }
    group.finish();
    let facts = json!({ "notes": notes, "skipped": skipped, "large": large });
    if let Err(err) = flash_benches::write_facts("scale", &facts) {
        println!("scale: could not write the facts file: {err}");
    }
}

criterion_group! {
    name = benches;
    config = flash_benches::criterion_config();
    targets = scale
}
criterion_main!(benches);
