//! Group 3, server stores: load + save cycles for 1 client and for 64 concurrent clients on
//! Redis, PostgreSQL, MariaDB/MySQL and SQLite, each beside the raw baseline in the same run.
//!
//! A cycle is one request that reads and saves: it leases the client's pending message,
//! consumes it and adds one new message (so every cycle finds one message):
//! - `flash`: `Messages::new` → `read` → `add` → `save`, through `ServerStorage` over the backend
//!   store wrapped in a `CountingStore` (signed id cookie, JSON, the storage bridge);
//! - `raw`: the same Lua scripts or SQL statements issued directly with `redis` / `sqlx`,
//!   with pre-encoded bodies and no flash code.
//!
//! One criterion iteration is one cycle per client, the clients running concurrently, so a
//! median `t` means `clients / t` cycles per second. After the timing, a counted phase checks
//! the store calls per cycle (`CountingStore`) and the SQL statements per cycle (every
//! statement sqlx runs is counted through its `sqlx::query` tracing event, BEGIN and COMMIT
//! included). A backend whose server is down prints one line and is skipped.
//!
//! Each run uses its own Redis prefix and its own tables, removed at the end.
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flash_benches::server_url;
use flash_core::http::HeaderMap;
use flash_core::http::header::{COOKIE, SET_COOKIE};
use flash_core::{
    Key, Keys, Level, Message, Messages, MessagesConfig,
    storage::{ClientId, Incoming, KeyedStore, LeaseId, Outcome, ServerStorage, Storage},
};
use flash_redis::RedisStore;
use flash_sql::SqlStore;
use flash_testkit::{CallCounts, CountingStore};
use redis::AsyncCommands as _;
use serde_json::json;
use sqlx::{AssertSqlSafe, Executor, SqlSafeStr, SqlStr};

const CLIENTS: [usize; 2] = [1, 64];
const TEXT: &str = "You have 3 new notifications waiting now";
const TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const LEASE: Duration = Duration::from_secs(30);
/// flash-redis's dedupe window for retried writes: max(60 s, 2 × operation timeout).
const DEDUPE_MS: u64 = 60_000;
const COUNTED_CYCLES: u64 = 20;

type Cycle<'a> = Pin<Box<dyn Future<Output = usize> + Send + 'a>>;

/// One side of one backend: a load + save cycle for client `i`.
trait Side: Send + Sync + 'static {
    fn cycle(&self, client: usize) -> Cycle<'_>;
}

// --- counting sqlx statements ------------------------------------------------------------

static COUNTING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// A tracing subscriber that only counts `sqlx::query` events, and only while `COUNTING` is
/// set (so the timed phases pay one relaxed load per statement).
struct StatementCounter;

impl tracing::Subscriber for StatementCounter {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if metadata.target() == "sqlx::query" {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query" && COUNTING.load(Ordering::Relaxed)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
}

// --- the flash side ----------------------------------------------------------------------

struct FlashSide {
    storage: Arc<dyn Storage>,
    config: Arc<MessagesConfig>,
    /// Each client's request headers (its signed id cookie).
    requests: Vec<HeaderMap>,
}

impl FlashSide {
    /// Gives each of `clients` an id and one pending message.
    async fn new<S: KeyedStore>(store: S, clients: usize) -> (Arc<Self>, CallCounts) {
        let store = CountingStore::new(store);
        let counts = store.counts();
        let storage: Arc<dyn Storage> = Arc::new(ServerStorage::new(
            store,
            Keys::new(Key::from_mac_key(b"0123456789abcdef0123456789abcdef")),
        ));
        let config = Arc::new(MessagesConfig::default());
        let mut requests = Vec::with_capacity(clients);
        for _ in 0..clients {
            let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
            messages.add_message(Level::INFO, TEXT);
            let mut response = HeaderMap::new();
            messages.save(&mut response).await.expect("the first save");
            let pair = response
                .get(SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .expect("an id cookie")
                .to_owned();
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, pair.parse().expect("a cookie header"));
            requests.push(headers);
        }
        let side = Arc::new(FlashSide {
            storage,
            config,
            requests,
        });
        (side, counts)
    }

    async fn run(&self, client: usize) -> usize {
        let messages = Messages::new(
            self.storage.clone(),
            Incoming::from_headers(&self.requests[client]),
            self.config.clone(),
        );
        let shown = messages.read().await.expect("flash read");
        messages.add_message(Level::INFO, TEXT);
        messages
            .save(&mut HeaderMap::new())
            .await
            .expect("flash save");
        black_box(shown.len())
    }
}

impl Side for FlashSide {
    fn cycle(&self, client: usize) -> Cycle<'_> {
        Box::pin(self.run(client))
    }
}

// --- the store alone ---------------------------------------------------------------------

/// The backend's `KeyedStore` called directly (lease, then settle consuming and appending):
/// flash's store code without the request handle and the id cookie.
struct StoreSide<S> {
    store: S,
    clients: Vec<ClientId>,
    message: Vec<Message>,
}

impl<S: KeyedStore> StoreSide<S> {
    async fn new(store: S, clients: usize) -> Arc<Self> {
        let message = vec![Message::new(Level::INFO, TEXT)];
        let mut ids = Vec::with_capacity(clients);
        for _ in 0..clients {
            let client = ClientId::random();
            store
                .append(&client, &message, TTL, &flash_core::Limits::default())
                .await
                .expect("the first append");
            ids.push(client);
        }
        Arc::new(StoreSide {
            store,
            clients: ids,
            message,
        })
    }

    async fn run(&self, client: usize) -> usize {
        let client = &self.clients[client];
        let lease = LeaseId::random();
        let leased = self
            .store
            .lease(client, &lease, LEASE)
            .await
            .expect("store lease");
        self.store
            .settle(
                client,
                &lease,
                Outcome::Consumed,
                &self.message,
                TTL,
                &flash_core::Limits::default(),
            )
            .await
            .expect("store settle");
        black_box(leased.len())
    }
}

impl<S: KeyedStore> Side for StoreSide<S> {
    fn cycle(&self, client: usize) -> Cycle<'_> {
        Box::pin(self.run(client))
    }
}

// --- raw sides -----------------------------------------------------------------------------

/// Distinct 16-byte ids without flash code: a per-run base and a counter.
struct Ids {
    base: u64,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ids {
            base: nanos ^ u64::from(std::process::id()) << 32,
            next: AtomicU64::new(1),
        }
    }
    fn next(&self) -> [u8; 16] {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.base.to_be_bytes());
        id[8..].copy_from_slice(&n.to_be_bytes());
        id
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `Message::size()` of the benchmark's message.
fn text_size() -> i64 {
    i64::try_from(TEXT.len()).unwrap_or(i64::MAX)
}

/// flash-core's default limits, as flash-sql's statements take them.
const LIMIT_MESSAGES: i64 = flash_core::Limits::DEFAULT_MAX_MESSAGES as i64;
const LIMIT_BYTES: i64 = flash_core::Limits::DEFAULT_MAX_BYTES as i64;

fn body() -> String {
    // The stored form of `Message::new(Level::INFO, TEXT)`.
    format!("[20,{}]", serde_json::to_string(TEXT).expect("a string"))
}

struct RedisRaw {
    connection: redis::aio::ConnectionManager,
    lease: redis::Script,
    settle: redis::Script,
    keys: Vec<String>,
    ids: Ids,
    /// The message's record, as flash-redis packs it into a client's value.
    record: Vec<u8>,
}

/// flash-redis' value layout (its own file, compiled here too): the raw baseline packs and
/// reads values with the same code, so it sends the scripts what flash-redis sends.
#[path = "../../flash-redis/src/value.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the baseline uses part of flash-redis' module"
)]
mod redis_value;

/// The application's clock in ms, as flash-redis sends it.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A flash-redis script as flash-redis composes it: its common path, the helpers, its other
/// paths (`flash-redis/src/store.rs`, `Scripts::new`).
macro_rules! flash_script {
    ($name:literal) => {
        redis::Script::new(concat!(
            include_str!(concat!("../../flash-redis/src/lua/", $name, ".lua")),
            include_str!("../../flash-redis/src/lua/common.lua"),
            include_str!(concat!("../../flash-redis/src/lua/", $name, "_slow.lua"))
        ))
    };
}
/// The default limits, as flash-redis passes them to append and settle (longest message, most
/// messages, most bytes); each message follows as its size, then its record.
const REDIS_LIMITS: [usize; 3] = [
    flash_core::Limits::DEFAULT_MAX_TEXT_LEN,
    flash_core::Limits::DEFAULT_MAX_MESSAGES,
    flash_core::Limits::DEFAULT_MAX_BYTES,
];

/// An operation or lease id as flash-redis sends it (8 bytes).
fn short(id: &[u8; 16]) -> [u8; 8] {
    let mut short = [0; 8];
    short.copy_from_slice(&id[8..]);
    short
}

impl RedisRaw {
    async fn new(url: &str, prefix: &str, clients: usize) -> redis::RedisResult<Arc<Self>> {
        let client = redis::Client::open(url)?;
        let mut connection = redis::aio::ConnectionManager::new(client).await?;
        let append = flash_script!("append");
        let ids = Ids::new();
        let mut record = Vec::new();
        redis_value::record(&mut record, 0, TEXT.len() as u32, body().as_bytes());
        let ttl = TTL.as_millis() as u64;
        let mut keys = Vec::with_capacity(clients);
        for _ in 0..clients {
            let key = format!("{prefix}:{}", hex(&ids.next()));
            let (now, op) = (now_ms(), short(&ids.next()));
            let fresh = redis_value::fresh(now + ttl, &op, now, std::slice::from_ref(&record));
            let _: (i64, i64) = append
                .key(&key)
                .arg(now)
                .arg(&op)
                .arg(DEDUPE_MS)
                .arg(ttl)
                .arg(fresh)
                .arg(ttl.max(DEDUPE_MS))
                .arg(&REDIS_LIMITS)
                .arg(TEXT.len())
                .arg(&record)
                .invoke_async(&mut connection)
                .await?;
            keys.push(key);
        }
        Ok(Arc::new(RedisRaw {
            connection,
            lease: flash_script!("lease"),
            settle: flash_script!("settle"),
            keys,
            ids,
            record,
        }))
    }

    /// A lease, then a settle that consumes it and appends one message, with the arguments
    /// flash-redis computes (the value once consumed, named by the SHA-1 of the one leased).
    async fn run(&self, client: usize) -> usize {
        let key = &self.keys[client];
        let lease = short(&self.ids.next());
        let mut connection = self.connection.clone();
        let now = now_ms();
        let raw: Option<Vec<u8>> = self
            .lease
            .key(key)
            .arg(now)
            .arg(&lease)
            .arg(LEASE.as_millis() as u64)
            .invoke_async(&mut connection)
            .await
            .expect("raw lease");
        let raw = raw.expect("a value to lease");
        let written = redis_value::Value::parse(&raw).expect("flash's value");
        let mine = written.lease_index(&lease).expect("the lease in the value");
        let held = written.msgs.iter().filter(|m| m.holder == mine).count();
        let left = written.consumed(mine, now, DEDUPE_MS);
        let deadline = left.deadline(DEDUPE_MS);
        let left = if left.msgs.is_empty() && left.ops.is_empty() {
            Vec::new()
        } else {
            left.to_bytes()
        };
        let sha1 = sha1_smol::Sha1::from(&raw).digest().to_string();
        let now = now_ms();
        let mut settle = self.settle.key(key);
        settle
            .arg(now)
            .arg(&short(&self.ids.next()))
            .arg(DEDUPE_MS)
            .arg(&lease)
            .arg("consumed")
            .arg(TTL.as_millis() as u64)
            .arg(&sha1);
        if left.is_empty() || deadline <= now {
            settle.arg("").arg("");
        } else {
            settle.arg(&left).arg(deadline - now);
        }
        let _: (i64, i64) = settle
            .arg(&REDIS_LIMITS)
            .arg(TEXT.len())
            .arg(&self.record)
            .invoke_async(&mut connection)
            .await
            .expect("raw settle");
        black_box(held)
    }
}

impl Side for RedisRaw {
    fn cycle(&self, client: usize) -> Cycle<'_> {
        Box::pin(self.run(client))
    }
}

fn sql(text: String) -> SqlStr {
    AssertSqlSafe(text).into_sql_str()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// PostgreSQL: flash-sql's statements (`flash-sql/src/postgres.rs`), one per call.
struct PgRaw {
    pool: sqlx::PgPool,
    lease: SqlStr,
    consume_append: SqlStr,
    clients: Vec<[u8; 16]>,
    ids: Ids,
    body: Vec<String>,
}

impl PgRaw {
    async fn new(url: &str, table: &str, clients: usize) -> sqlx::Result<Arc<Self>> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            // As flash-sql's pool: no ping round trip before each acquire.
            .test_before_acquire(false)
            .connect(url)
            .await?;
        let t = format!("\"{table}\"");
        let alive = format!("(SELECT max(expires_at) FROM {t} WHERE client = $1)");
        // flash-sql's append function (created by its `migrate`): end the lease, then append
        // what fits the limits under the client's advisory lock.
        let append = sql(format!(
            "SELECT \"{table}_append_v1\"($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ));
        let lease = sql(format!(
            "UPDATE {t} SET lease = $2, leased_until = now() + $3 * interval '1 microsecond' \
             WHERE id IN (SELECT id FROM {t} \
               WHERE client = $1 AND (leased_until IS NULL OR leased_until <= now()) \
               AND {alive} > now() \
               ORDER BY id FOR UPDATE SKIP LOCKED) \
             RETURNING id, body"
        ));
        let consume_append = append.clone();
        let ids = Ids::new();
        let body = vec![body()];
        let mut ids_of_clients = Vec::with_capacity(clients);
        for _ in 0..clients {
            let client = ids.next();
            sqlx::query(append.clone())
                .bind(client.as_slice())
                .bind(None::<&[u8]>)
                .bind(false)
                .bind(&body)
                .bind(vec![text_size()])
                .bind(vec![text_size()])
                .bind(micros(TTL))
                .bind(LIMIT_MESSAGES)
                .bind(LIMIT_BYTES)
                .execute(&pool)
                .await?;
            ids_of_clients.push(client);
        }
        Ok(Arc::new(PgRaw {
            pool,
            lease,
            consume_append,
            clients: ids_of_clients,
            ids,
            body,
        }))
    }

    async fn run(&self, client: usize) -> usize {
        let client = &self.clients[client];
        let lease = self.ids.next();
        let rows = sqlx::query(self.lease.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(micros(LEASE))
            .fetch_all(&self.pool)
            .await
            .expect("raw lease");
        sqlx::query(self.consume_append.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(true)
            .bind(&self.body)
            .bind(vec![text_size()])
            .bind(vec![text_size()])
            .bind(micros(TTL))
            .bind(LIMIT_MESSAGES)
            .bind(LIMIT_BYTES)
            .execute(&self.pool)
            .await
            .expect("raw settle");
        black_box(rows.len())
    }
}

impl Side for PgRaw {
    fn cycle(&self, client: usize) -> Cycle<'_> {
        Box::pin(self.run(client))
    }
}

/// MySQL/MariaDB: flash-sql's stored procedures (`flash-sql/src/mysql.rs`, created by its
/// `migrate` beside the raw table), one `CALL` per call: the lease `<table>_lease_v2` (the claim
/// `UPDATE`, then the `SELECT` of what it stamped), a settle that consumes and appends
/// `<table>_settle_v2` (`DELETE`, the client's lock row, the count and the `INSERT` of what
/// fits in one transaction, the one message bound as it is). The pool is set up as flash-sql's: `READ COMMITTED`, and no ping before each acquire
/// (sqlx's default, a round trip per call that flash does not pay).
struct MySqlRaw {
    pool: sqlx::MySqlPool,
    lease: SqlStr,
    settle: SqlStr,
    clients: Vec<[u8; 16]>,
    ids: Ids,
    body: String,
}

/// The names of flash-sql's procedures for `table` (all lowercase, so no hash suffix).
fn mysql_procedures(table: &str) -> [String; 3] {
    ["lease", "settle", "append"].map(|call| format!("{table}_{call}_v2"))
}

impl MySqlRaw {
    async fn new(url: &str, table: &str, clients: usize) -> sqlx::Result<Arc<Self>> {
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(10)
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let [lease, settle, append] = mysql_procedures(table);
        let raw = MySqlRaw {
            lease: sql(format!("CALL `{lease}`(?, ?, ?)")),
            settle: sql(format!("CALL `{settle}`(?, ?, ?, ?, ?, ?, ?, ?, ?)")),
            pool,
            clients: Vec::new(),
            ids: Ids::new(),
            body: body(),
        };
        let append = sql(format!("CALL `{append}`(?, ?, ?, ?, ?, ?, ?)"));
        let mut clients_ids = Vec::with_capacity(clients);
        for _ in 0..clients {
            let client = raw.ids.next();
            sqlx::query(append.clone())
                .bind(client.as_slice())
                .bind(micros(TTL))
                .bind(LIMIT_MESSAGES)
                .bind(LIMIT_BYTES)
                .bind(raw.body.as_str())
                .bind(text_size())
                .bind(None::<&str>)
                .fetch_all(&raw.pool)
                .await?;
            clients_ids.push(client);
        }
        Ok(Arc::new(MySqlRaw {
            clients: clients_ids,
            ..raw
        }))
    }

    async fn run(&self, client: usize) -> usize {
        let client = &self.clients[client];
        let lease = self.ids.next();
        let rows = sqlx::query(self.lease.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(micros(LEASE))
            .fetch_all(&self.pool)
            .await
            .expect("raw lease");
        sqlx::query(self.settle.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(true)
            .bind(micros(TTL))
            .bind(LIMIT_MESSAGES)
            .bind(LIMIT_BYTES)
            .bind(self.body.as_str())
            .bind(text_size())
            .bind(None::<&str>)
            .fetch_all(&self.pool)
            .await
            .expect("raw settle");
        black_box(rows.len())
    }
}

impl Side for MySqlRaw {
    fn cycle(&self, client: usize) -> Cycle<'_> {
        Box::pin(self.run(client))
    }
}

/// SQLite: flash-sql's statements (`flash-sql/src/sqlite.rs`): the lease is one
/// `UPDATE … RETURNING`, a consuming settle that appends one `INSERT … SELECT` (count what is
/// pending without the lease's rows, insert what fits) whose rows carry the lease to the
/// table's triggers (they delete its rows, and a dead client's).
struct SqliteRaw {
    pool: sqlx::SqlitePool,
    lease: SqlStr,
    consume: SqlStr,
    settle: SqlStr,
    insert: String,
    clients: Vec<[u8; 16]>,
    ids: Ids,
    body: String,
}

const SQLITE_NOW: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

impl SqliteRaw {
    async fn new(url: &str, table: &str, clients: usize) -> sqlx::Result<Arc<Self>> {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(
                options
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5)),
            )
            .await?;
        let t = format!("\"{table}\"");
        let now = SQLITE_NOW;
        let newest = format!("(SELECT max(expires_at) FROM {t} WHERE client = ?1)");
        let raw = SqliteRaw {
            lease: sql(format!(
                "UPDATE {t} SET lease = ?2, leased_until = {now} + ?3 \
                 WHERE client = ?1 AND (leased_until IS NULL OR leased_until <= {now}) \
                 AND {newest} > {now} \
                 RETURNING id, body"
            )),
            consume: sql(format!("DELETE FROM {t} WHERE client = ?1 AND lease = ?2")),
            settle: sql(format!(
                "INSERT INTO {t} (client, body, size, expires_at, lease) \
                 SELECT ?1, m.column1, m.column2, {now} + ?2, ?5 \
                 FROM (VALUES (?6, ?7, ?7, 1)) AS m, \
                 (SELECT CASE WHEN max(expires_at) > {now} THEN count(*) ELSE 0 END AS n, \
                   CASE WHEN max(expires_at) > {now} THEN coalesce(sum(size), 0) ELSE 0 END AS b \
                   FROM {t} WHERE client = ?1 \
                   AND NOT (lease IS ?5 AND leased_until IS NOT NULL)) AS c \
                 WHERE m.column4 <= ?3 - c.n AND m.column3 <= ?4 - c.b"
            )),
            insert: format!(
                "INSERT INTO {t} (client, body, size, expires_at) VALUES (?1, ?3, ?4, {now} + ?2)"
            ),
            pool,
            clients: Vec::new(),
            ids: Ids::new(),
            body: body(),
        };
        let mut clients_ids = Vec::with_capacity(clients);
        for _ in 0..clients {
            let client = raw.ids.next();
            sqlx::query(AssertSqlSafe(raw.insert.clone()))
                .bind(client.as_slice())
                .bind(i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX))
                .bind(raw.body.as_str())
                .bind(text_size())
                .execute(&raw.pool)
                .await?;
            clients_ids.push(client);
        }
        Ok(Arc::new(SqliteRaw {
            clients: clients_ids,
            ..raw
        }))
    }

    async fn run(&self, client: usize) -> usize {
        let client = &self.clients[client];
        let lease = self.ids.next();
        let rows = sqlx::query(self.lease.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .expect("raw lease");
        let inserted = sqlx::query(self.settle.clone())
            .bind(client.as_slice())
            .bind(i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX))
            .bind(LIMIT_MESSAGES)
            .bind(LIMIT_BYTES)
            .bind(lease.as_slice())
            .bind(self.body.as_str())
            .bind(text_size())
            .execute(&self.pool)
            .await
            .expect("raw settle")
            .rows_affected();
        if inserted == 0 {
            sqlx::query(self.consume.clone())
                .bind(client.as_slice())
                .bind(lease.as_slice())
                .execute(&self.pool)
                .await
                .expect("raw consume");
        }
        black_box(rows.len())
    }
}

impl Side for SqliteRaw {
    fn cycle(&self, client: usize) -> Cycle<'_> {
        Box::pin(self.run(client))
    }
}

// --- the bench ---------------------------------------------------------------------------

/// Runs `iters` cycles on each of `clients` concurrent clients; returns the elapsed time.
fn run(rt: &tokio::runtime::Runtime, side: &Arc<dyn Side>, clients: usize, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let side = side.clone();
                tokio::spawn(async move {
                    for _ in 0..iters {
                        side.cycle(client).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a cycle task");
        }
        start.elapsed()
    })
}

/// Statements sqlx ran for `cycles` cycles of client 0.
fn count_statements(rt: &tokio::runtime::Runtime, side: &Arc<dyn Side>, cycles: u64) -> f64 {
    STATEMENTS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    run(rt, side, 1, cycles);
    COUNTING.store(false, Ordering::SeqCst);
    STATEMENTS.load(Ordering::SeqCst) as f64 / cycles as f64
}

struct Backend {
    name: &'static str,
    flash: Arc<dyn Side>,
    store: Arc<dyn Side>,
    counts: CallCounts,
    raw: Arc<dyn Side>,
    cleanup: Cleanup,
    sql: bool,
}

enum Cleanup {
    Redis(String, String),
    Sql(SqlStore, Vec<String>),
    File(std::path::PathBuf),
}

fn table_names(tag: &str) -> (String, String) {
    let run = std::process::id();
    (
        format!("flash_bench_{tag}_{run}_f"),
        format!("flash_bench_{tag}_{run}_r"),
    )
}

async fn sql_store(url: &str, table: &str) -> flash_core::Result<SqlStore> {
    let store = SqlStore::builder(url).table(table).connect().await?;
    store.migrate().await?;
    Ok(store)
}

/// Per cycle on Redis, flash and raw: the round trips (script calls: `EVALSHA`, `EVAL`, `SCRIPT`)
/// and every command the server ran (inside the scripts too), counted exactly on a private
/// `redis-server` started for the count (its `INFO commandstats` sees no other traffic). `None`
/// when no `redis-server` can be started.
fn redis_commands_per_cycle(rt: &tokio::runtime::Runtime) -> Option<[(f64, f64); 2]> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let mut child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("redis://127.0.0.1:{port}");
    let counted = rt.block_on(async {
        let mut conn = None;
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(c) = client.get_multiplexed_async_connection().await
            {
                conn = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut conn = conn?;
        let store = RedisStore::connect(&url).await.ok()?;
        let (flash, _) = FlashSide::new(store, 1).await;
        let flash: Arc<dyn Side> = flash;
        let raw: Arc<dyn Side> = RedisRaw::new(&url, "flash-bench-count", 1).await.ok()?;
        let mut per_cycle = Vec::new();
        for side in [&flash, &raw] {
            side.cycle(0).await; // loads the scripts (a first EVALSHA answers NOSCRIPT)
            let before = calls(&mut conn).await?;
            for _ in 0..COUNTED_CYCLES {
                side.cycle(0).await;
            }
            let after = calls(&mut conn).await?;
            let cycles = COUNTED_CYCLES as f64;
            // The first INFO is counted by the second (not a script call).
            per_cycle.push((
                (after.0 - before.0) as f64 / cycles,
                (after.1 - before.1 - 1) as f64 / cycles,
            ));
        }
        Some([per_cycle[0], per_cycle[1]])
    });
    let _ = child.kill();
    let _ = child.wait();
    counted
}

/// Script calls (one per round trip for flash's store) and all commands the server has run,
/// from `INFO commandstats`.
async fn calls(conn: &mut redis::aio::MultiplexedConnection) -> Option<(u64, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .ok()?;
    let mut scripts = 0;
    let mut all = 0;
    for line in info.lines().filter(|l| l.starts_with("cmdstat_")) {
        let Some((name, stats)) = line.split_once(':') else {
            continue;
        };
        let Some(n) = stats
            .split("calls=")
            .nth(1)
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        all += n;
        let name = &name["cmdstat_".len()..];
        if name.starts_with("eval") || name.starts_with("fcall") || name.starts_with("script") {
            scripts += n;
        }
    }
    Some((scripts, all))
}

async fn open_backends(clients: usize, skipped: &mut Vec<String>) -> Vec<Backend> {
    let mut backends = Vec::new();

    // Redis
    let url = server_url("FLASH_REDIS_URL");
    let prefix = format!("flash-bench-{}", std::process::id());
    match RedisStore::builder(&url)
        .prefix(format!("{prefix}-f"))
        .connect()
        .await
    {
        Ok(store) => {
            let store = Arc::new(store);
            let (flash, counts) = FlashSide::new(store.clone(), clients).await;
            let store = StoreSide::new(store, clients).await;
            let raw = RedisRaw::new(&url, &format!("{prefix}-r"), clients)
                .await
                .expect("the raw Redis side");
            backends.push(Backend {
                name: "redis",
                flash,
                store,
                counts,
                raw,
                cleanup: Cleanup::Redis(url.clone(), prefix),
                sql: false,
            });
        }
        Err(err) => skip(skipped, "redis", &url, &err),
    }

    // PostgreSQL and MySQL/MariaDB
    for (name, var, tag) in [
        ("postgres", "FLASH_POSTGRES_URL", "pg"),
        ("mariadb", "FLASH_MYSQL_URL", "my"),
    ] {
        let url = server_url(var);
        let (flash_table, raw_table) = table_names(tag);
        // Each side its own table (and the two flash sides their own pools), so no side
        // carries another's deletes and inserts.
        let store_table = format!("{}_s", flash_table.trim_end_matches("_f"));
        let stores = async {
            let flash = sql_store(&url, &flash_table).await?;
            let store = sql_store(&url, &store_table).await?;
            let raw = sql_store(&url, &raw_table).await?;
            Ok::<_, flash_core::Error>((flash, store, raw))
        };
        match stores.await {
            Ok((flash_store, store_store, raw_store)) => {
                let (flash, counts) = FlashSide::new(flash_store, clients).await;
                let store = StoreSide::new(store_store, clients).await;
                let raw: Arc<dyn Side> = if name == "postgres" {
                    PgRaw::new(&url, &raw_table, clients).await.expect("raw pg")
                } else {
                    MySqlRaw::new(&url, &raw_table, clients)
                        .await
                        .expect("raw mysql")
                };
                backends.push(Backend {
                    name,
                    flash,
                    store,
                    counts,
                    raw,
                    cleanup: Cleanup::Sql(raw_store, vec![flash_table, store_table, raw_table]),
                    sql: true,
                });
            }
            Err(err) => skip(skipped, name, &url, &err),
        }
    }

    // SQLite, a file in the temporary directory
    let path = std::env::temp_dir().join(format!("flash-bench-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let (flash_table, raw_table) = table_names("lite");
    let flash_store = Arc::new(sql_store(&url, &flash_table).await.expect("sqlite"));
    let raw_store = sql_store(&url, &raw_table).await.expect("sqlite");
    let (flash, counts) = FlashSide::new(flash_store.clone(), clients).await;
    let store = StoreSide::new(flash_store, clients).await;
    let raw = SqliteRaw::new(&url, &raw_table, clients)
        .await
        .expect("raw sqlite");
    drop(raw_store);
    backends.push(Backend {
        name: "sqlite",
        flash,
        store,
        counts,
        raw,
        cleanup: Cleanup::File(path),
        sql: true,
    });
    backends
}

fn skip(skipped: &mut Vec<String>, name: &str, url: &str, err: &flash_core::Error) {
    let line = format!("stores/{name}: skipped, server at {url} unreachable: {err}");
    println!("{line}");
    skipped.push(line);
}

/// Drops `table` and what flash-sql's `migrate` made beside it.
async fn drop_sql_table(store: &SqlStore, table: &str) {
    let statement = format!("DROP TABLE IF EXISTS {table}");
    if let Some(pool) = store.postgres_pool() {
        let _ = sqlx::raw_sql(AssertSqlSafe(statement)).execute(pool).await;
        let statement = format!("DROP FUNCTION IF EXISTS \"{table}_append_v1\"");
        let _ = sqlx::raw_sql(AssertSqlSafe(statement)).execute(pool).await;
    } else if let Some(pool) = store.mysql_pool() {
        let _ = sqlx::raw_sql(AssertSqlSafe(statement)).execute(pool).await;
        let statement = format!("DROP TABLE IF EXISTS `{table}_clients`");
        let _ = sqlx::raw_sql(AssertSqlSafe(statement)).execute(pool).await;
        for procedure in mysql_procedures(table) {
            let statement = format!("DROP PROCEDURE IF EXISTS `{procedure}`");
            let _ = sqlx::raw_sql(AssertSqlSafe(statement)).execute(pool).await;
        }
    }
}

async fn cleanup(backend: Backend) {
    match backend.cleanup {
        Cleanup::Redis(url, prefix) => {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return;
            };
            for side in ["f", "r"] {
                let pattern = format!("{{{prefix}-{side}:*");
                let keys: Vec<String> = {
                    let mut iter: redis::AsyncIter<'_, String> =
                        match conn.scan_match(&pattern).await {
                            Ok(iter) => iter,
                            Err(_) => continue,
                        };
                    let mut keys = Vec::new();
                    while let Some(Ok(key)) = iter.next_item().await {
                        keys.push(key);
                    }
                    keys
                };
                for chunk in keys.chunks(500) {
                    let _: redis::RedisResult<()> =
                        redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
                }
            }
        }
        Cleanup::Sql(store, tables) => {
            for table in tables {
                drop_sql_table(&store, &table).await;
            }
        }
        Cleanup::File(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

fn stores(c: &mut Criterion) {
    if !flash_benches::selected("stores") {
        return;
    }
    let _ = tracing::subscriber::set_global_default(StatementCounter);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let max_clients = CLIENTS.iter().copied().max().unwrap_or(1);
    let mut skipped = Vec::new();
    rt.block_on(common::sweep_dead_runs(
        &server_url("FLASH_REDIS_URL"),
        &server_url("FLASH_POSTGRES_URL"),
        &server_url("FLASH_MYSQL_URL"),
    ));
    let backends = rt.block_on(open_backends(max_clients, &mut skipped));

    let mut round_trips = serde_json::Map::new();
    let mut paired = serde_json::Map::new();
    let mut group = c.benchmark_group("stores");
    group.sample_size(10);
    for backend in &backends {
        // Check: every cycle finds the one pending message, on both sides.
        let found = rt.block_on(async {
            let mut found = Vec::new();
            for side in [&backend.flash, &backend.store, &backend.raw] {
                for _ in 0..2 {
                    found.push(side.cycle(0).await);
                }
            }
            found
        });
        assert_eq!(found, [1; 6], "{}: a cycle finds one message", backend.name);
        for clients in CLIENTS {
            for (side, label) in [
                (&backend.raw, "raw"),
                (&backend.store, "store"),
                (&backend.flash, "flash"),
            ] {
                group.bench_function(
                    BenchmarkId::new(format!("{}/{label}", backend.name), clients),
                    |b| b.iter_custom(|iters| run(&rt, side, clients, iters)),
                );
            }
        }
        // Paired: raw, store and flash interleaved round after round (the disk's and the
        // machine's weather hits all three alike); the targets are judged on these ratios.
        if flash_benches::selected("stores/paired") && !std::env::args().any(|a| a == "--list") {
            for clients in CLIENTS {
                let batch = if clients == 1 { 40 } else { 3 };
                let mut cases: Vec<flash_benches::paired::Case<'_>> =
                    [&backend.raw, &backend.store, &backend.flash]
                        .into_iter()
                        .map(|side| -> flash_benches::paired::Case<'_> {
                            let rt = &rt;
                            Box::new(move |batch| run(rt, side, clients, batch))
                        })
                        .collect();
                let outcome = flash_benches::paired::run(
                    &mut cases,
                    flash_benches::paired::scaled_rounds(25),
                    batch,
                );
                println!(
                    "stores/paired/{}/{clients}: raw {:.0} µs, store {:.0} µs ({:.2}x), flash {:.0} µs ({:.2}x) per iteration",
                    backend.name,
                    outcome.per_call_ns[0] / 1e3,
                    outcome.per_call_ns[1] / 1e3,
                    outcome.ratio_to_first[1],
                    outcome.per_call_ns[2] / 1e3,
                    outcome.ratio_to_first[2],
                );
                paired.insert(
                    format!("{}/{clients}", backend.name),
                    json!({
                        "rounds": outcome.rounds,
                        "names": ["raw", "store", "flash"],
                        "per_iteration_ns": outcome.per_call_ns,
                        "ratio_to_first": outcome.ratio_to_first,
                    }),
                );
            }
        }
        // Counted phase: store calls and statements per cycle.
        let before = backend.counts.total();
        let (leases, settles, appends) = (
            backend.counts.leases(),
            backend.counts.settles(),
            backend.counts.appends(),
        );
        let flash_statements = backend
            .sql
            .then(|| count_statements(&rt, &backend.flash, COUNTED_CYCLES));
        if !backend.sql {
            run(&rt, &backend.flash, 1, COUNTED_CYCLES);
        }
        let calls = (backend.counts.total() - before) as f64 / COUNTED_CYCLES as f64;
        let mut raw_statements = backend
            .sql
            .then(|| count_statements(&rt, &backend.raw, COUNTED_CYCLES));
        let mut flash_statements = flash_statements;
        let mut server_commands = None;
        if backend.name == "redis" {
            match redis_commands_per_cycle(&rt) {
                Some([flash, raw]) => {
                    flash_statements = Some(flash.0);
                    raw_statements = Some(raw.0);
                    server_commands = Some(json!({ "flash": flash.1, "raw": raw.1 }));
                }
                None => println!("stores/redis: no private redis-server to count commands on"),
            }
        }
        let per = |now: usize, then: usize| (now - then) as f64 / COUNTED_CYCLES as f64;
        let entry = json!({
            "store_calls": calls,
            "leases": per(backend.counts.leases(), leases),
            "settles": per(backend.counts.settles(), settles),
            "appends": per(backend.counts.appends(), appends),
            "statements_flash": flash_statements,
            "statements_raw": raw_statements,
            "server_commands": server_commands,
        });
        println!("stores/{}: per cycle {entry}", backend.name);
        round_trips.insert(backend.name.to_owned(), entry);
    }
    group.finish();

    for backend in backends {
        rt.block_on(cleanup(backend));
    }
    let facts = json!({
        "round_trips": round_trips,
        "skipped": skipped,
        "clients": CLIENTS,
        "paired": paired,
    });
    if let Err(err) = flash_benches::write_facts("stores", &facts) {
        println!("stores: could not write the facts file: {err}");
    }
}

/// The worst client the default limits allow on each SQL server: 100 messages of 655 bytes
/// (65 500 of the 65 536 bytes). `lease`: one lease of all of them (a zero lease, so they
/// stay visible for the next); `settle`: one settle that consumes them and appends 100 as
/// large again, the most one call can append (timed alone, after an untimed lease). One client,
/// one call at a time: how long one call for one client holds the server.
fn worst_client(c: &mut Criterion) {
    if !flash_benches::selected("stores/worst_client") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let limits = flash_core::Limits::default();
    let each = limits.max_bytes() / limits.max_messages();
    let messages: Vec<Message> = (0..limits.max_messages())
        .map(|i| Message::new(Level::INFO, format!("{i:03}{}", "w".repeat(each - 3))))
        .collect();
    let path = std::env::temp_dir().join(format!("flash-bench-worst-{}.db", std::process::id()));
    let table = format!("flash_bench_worst_{}", std::process::id());
    let mut group = c.benchmark_group("stores/worst_client");
    group.sample_size(20);
    for (name, url) in [
        ("postgres", server_url("FLASH_POSTGRES_URL")),
        ("mariadb", server_url("FLASH_MYSQL_URL")),
        ("sqlite", format!("sqlite://{}", path.display())),
    ] {
        let store = match rt.block_on(sql_store(&url, &table)) {
            Ok(store) => store,
            Err(err) => {
                println!("stores/worst_client/{name}: skipped, {url} unreachable: {err}");
                continue;
            }
        };
        let client = ClientId::random();
        let kept = rt
            .block_on(store.append(&client, &messages, TTL, &limits))
            .expect("append");
        assert_eq!(
            kept,
            messages.len(),
            "the worst client is within the limits"
        );
        group.bench_function(BenchmarkId::new("lease", name), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let got = store
                        .lease(&client, &LeaseId::random(), Duration::ZERO)
                        .await
                        .expect("lease");
                    assert_eq!(got.len(), messages.len());
                })
            })
        });
        group.bench_function(BenchmarkId::new("settle", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let lease = LeaseId::random();
                        let got = store.lease(&client, &lease, LEASE).await.expect("lease");
                        assert_eq!(got.len(), messages.len());
                        let started = Instant::now();
                        let kept = store
                            .settle(&client, &lease, Outcome::Consumed, &messages, TTL, &limits)
                            .await
                            .expect("settle");
                        spent += started.elapsed();
                        assert_eq!(kept, messages.len());
                    }
                    spent
                })
            })
        });
        if name == "sqlite" {
            drop(store);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        } else {
            rt.block_on(drop_sql_table(&store, &table));
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = flash_benches::criterion_config();
    targets = stores, worst_client
}
criterion_main!(benches);
