//! [`SqlStore`]: the [`KeyedStore`] on sqlx.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flash_core::storage::stored_form::{self, FromStored};
use flash_core::{
    DEFAULT_CALL_TIMEOUT, Limits, Message, Result, SweepTask,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};

use crate::builder::SqlStoreBuilder;
use crate::error;
use crate::table::TableName;

/// The database behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Driver {
    /// PostgreSQL (feature `postgres`).
    Postgres,
    /// MySQL or MariaDB (feature `mysql`).
    MySql,
    /// SQLite (feature `sqlite`).
    Sqlite,
}

impl Driver {
    /// The driver's name: `postgres`, `mysql` or `sqlite`.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Postgres => "postgres",
            Driver::MySql => "mysql",
            Driver::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One driver's pool and statements.
pub(crate) enum Backend {
    #[cfg(feature = "postgres")]
    Postgres(crate::postgres::PgBackend),
    #[cfg(feature = "mysql")]
    MySql(crate::mysql::MySqlBackend),
    #[cfg(feature = "sqlite")]
    Sqlite(crate::sqlite::SqliteBackend),
}

/// Calls the same method on whichever backend is compiled in and chosen.
macro_rules! dispatch {
    ($backend:expr, $b:ident => $body:expr) => {
        match *$backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(ref $b) => $body,
            #[cfg(feature = "mysql")]
            Backend::MySql(ref $b) => $body,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(ref $b) => $body,
        }
    };
}

impl Backend {
    pub(crate) fn driver(&self) -> Driver {
        dispatch!(self, _b => _b.driver())
    }
}

/// The longest TTL or lease a row is given: longer ones are cut to flash-core's (100 years), so
/// the timestamp arithmetic never overflows on any server.
pub(crate) use flash_core::storage::MAX_SPAN;

/// A span in whole microseconds, at most [`MAX_SPAN`].
pub(crate) fn micros(span: Duration) -> i64 {
    i64::try_from(span.min(MAX_SPAN).as_micros()).unwrap_or(i64::MAX)
}

/// A client id as lowercase hex digits, for literals in `EXPLAIN`.
pub(crate) fn hex(client: &[u8; 16]) -> String {
    ClientId::from_bytes(*client).to_hex()
}

/// Messages to append, as the statements take them: bodies, sizes and running totals of the
/// sizes, with the limits as the server compares them.
///
/// Only the prefix that fits an empty client is kept from the start (`Limits::fitting` beside
/// nothing): every message of it is short enough, and the server then only compares counts and
/// running totals.
pub(crate) struct Adding {
    pub(crate) bodies: Vec<String>,
    /// `Message::size()` of each message.
    pub(crate) sizes: Vec<i64>,
    /// `sizes[0] + … + sizes[i]` at `i`: the message at `i` fits while its running total
    /// does, since every earlier one then fits too.
    pub(crate) totals: Vec<i64>,
    pub(crate) max_messages: i64,
    pub(crate) max_bytes: i64,
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Adding {
    fn new(messages: &[Message], limits: &Limits) -> Result<Adding> {
        let fitting = &messages[..limits.fitting(0, 0, messages)];
        let mut total = 0i64;
        let (mut sizes, mut totals) = (Vec::new(), Vec::new());
        for message in fitting {
            let size = to_i64(message.size());
            total = total.saturating_add(size);
            sizes.push(size);
            totals.push(total);
        }
        Ok(Adding {
            bodies: encode(fitting)?,
            sizes,
            totals,
            max_messages: to_i64(limits.max_messages()),
            max_bytes: to_i64(limits.max_bytes()),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    #[cfg_attr(not(any(feature = "mysql", feature = "sqlite")), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.bodies.len()
    }

    /// How many (a prefix) fit beside `count` pending messages of `bytes` bytes: the rule of
    /// `Limits::fitting`, as the statements apply it on the server.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) fn fitting(&self, count: i64, bytes: i64) -> usize {
        let room = usize::try_from(self.max_messages.saturating_sub(count)).unwrap_or(0);
        let bytes_left = self.max_bytes.saturating_sub(bytes);
        self.totals
            .iter()
            .take(room)
            .take_while(|total| **total <= bytes_left)
            .count()
    }
}

/// A pooled connection that is dropped, not handed back to the pool, when its holder is
/// dropped while it is busy: a call whose future is dropped mid-statement (its time ran out)
/// leaves the connection in a state nobody knows (a statement running, a result half read, a
/// procedure's transaction open), and both sqlx's check on release and its graceful close wait
/// on the server without a time limit or up to 5 s. Detached from the pool and dropped, the
/// socket is closed at once, the server rolls back whatever was open, and the pool's slot is
/// free. It costs a new connection after a timeout, and nothing on every other call.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) struct Guarded<DB: sqlx::Database> {
    /// Always there until the drop.
    conn: Option<sqlx::pool::PoolConnection<DB>>,
    busy: bool,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<DB: sqlx::Database> Guarded<DB> {
    pub(crate) async fn acquire(pool: &sqlx::Pool<DB>) -> Result<Self, sqlx::Error> {
        Ok(Guarded {
            conn: Some(pool.acquire().await?),
            busy: false,
        })
    }

    /// The connection, marked busy until [`Guarded::idle`].
    pub(crate) fn busy(&mut self) -> Result<&mut DB::Connection, sqlx::Error> {
        self.busy = true;
        match self.conn.as_mut() {
            Some(conn) => Ok(&mut **conn),
            None => Err(sqlx::Error::PoolClosed),
        }
    }

    /// The statements sent through [`Guarded::busy`] have ended (well or not).
    pub(crate) fn idle(&mut self) {
        self.busy = false;
    }

    /// Closes the connection (gracefully) when it is dropped, whatever its state.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) fn close_on_drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<DB: sqlx::Database> Drop for Guarded<DB> {
    fn drop(&mut self) {
        if self.busy
            && let Some(conn) = self.conn.take()
        {
            drop(conn.detach());
        }
    }
}

/// Where a sweep is between its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SweepCursor {
    /// The first batch, or the next one of a sweep that deletes "the next `n` dead rows".
    Start,
    /// MySQL/MariaDB: the id window from `next` on, up to `high`.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Window { next: i64, high: i64 },
    /// MySQL/MariaDB: the lock rows of clients without messages.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Locks,
}

/// The shortest pause between two sweep batches.
const MIN_SWEEP_PAUSE: Duration = Duration::from_millis(1);

/// How often an operation that lost a deadlock, a serialization check or an SQLite lock is
/// tried in all.
const ATTEMPTS: u32 = 4;

pub(crate) struct Inner {
    pub(crate) backend: Backend,
    pub(crate) table: TableName,
    /// Where the server is, without credentials, for error messages.
    pub(crate) location: String,
    pub(crate) acquire_timeout: Duration,
}

/// A [`KeyedStore`] on PostgreSQL, MySQL/MariaDB or SQLite through sqlx: one row per message.
///
/// Build it with [`SqlStore::connect`] or [`SqlStore::builder`] (the URL's scheme picks the
/// driver), or around a pool of your own with `SqlStore::from_postgres_pool` and friends; create
/// its table with [`SqlStore::migrate`]; put it behind [`flash_core::storage::ServerStorage`]. Clones
/// share the pool.
///
/// See the crate documentation for the schema, the statements each call runs and what each
/// guarantee rests on per server.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use flash_core::{Key, storage::ServerStorage};
/// use flash_sql::{Driver, SqlStore};
///
/// let store = SqlStore::connect("sqlite::memory:").await?; // the scheme picks the driver
/// assert_eq!(store.driver(), Driver::Sqlite);
/// store.migrate().await?; // the table, at start-up or from a deployment step
/// // The bridge gives each browser a random id in a signed cookie.
/// let storage = ServerStorage::new(store, Key::generate());
/// # let _ = storage;
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
    call_timeout: Duration,
}

impl SqlStore {
    /// Connects to `url` with the default settings: `postgres://…`, `postgresql://…`,
    /// `mysql://…`, `mariadb://…`, `sqlite://path`, `sqlite::memory:`.
    ///
    /// # Errors
    /// `Config` for a URL that does not parse or whose driver is not compiled in;
    /// `Unavailable` when the server cannot be reached within the acquire timeout.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        SqlStoreBuilder::new(url).connect().await
    }

    /// A builder for `url`, to set the table name, the pool size and the timeouts.
    pub fn builder(url: impl Into<String>) -> SqlStoreBuilder {
        SqlStoreBuilder::new(url)
    }

    /// A store on your own PostgreSQL pool, in table `table`.
    ///
    /// # Errors
    /// `Config` when `table` is not a plain identifier.
    #[cfg(feature = "postgres")]
    pub fn from_postgres_pool(pool: sqlx::PgPool, table: &str) -> Result<SqlStore> {
        let table = TableName::new(table)?;
        let acquire_timeout = pool.options().get_acquire_timeout();
        let backend = Backend::Postgres(crate::postgres::PgBackend::new(pool, &table));
        Ok(SqlStore::from_parts(
            backend,
            table,
            "postgres".into(),
            acquire_timeout,
        ))
    }

    /// A store on your own MySQL/MariaDB pool, in table `table`.
    ///
    /// The pool's connections should run at `READ COMMITTED` (`SET SESSION TRANSACTION
    /// ISOLATION LEVEL READ COMMITTED` in `after_connect`), as the builder's pools do: under
    /// `REPEATABLE READ` InnoDB's gap locks make concurrent requests of one client wait.
    ///
    /// # Errors
    /// `Config` when `table` is not a plain identifier.
    #[cfg(feature = "mysql")]
    pub fn from_mysql_pool(pool: sqlx::MySqlPool, table: &str) -> Result<SqlStore> {
        let table = TableName::new(table)?;
        let acquire_timeout = pool.options().get_acquire_timeout();
        let backend = Backend::MySql(crate::mysql::MySqlBackend::new(pool, &table));
        Ok(SqlStore::from_parts(
            backend,
            table,
            "mysql".into(),
            acquire_timeout,
        ))
    }

    /// A store on your own SQLite pool, in table `table`.
    ///
    /// Open the database in WAL mode with `synchronous = NORMAL` and a busy timeout, as the
    /// builder does; one connection is enough (every call writes, and SQLite has one writer).
    ///
    /// # Errors
    /// `Config` when `table` is not a plain identifier.
    #[cfg(feature = "sqlite")]
    pub fn from_sqlite_pool(pool: sqlx::SqlitePool, table: &str) -> Result<SqlStore> {
        let table = TableName::new(table)?;
        let acquire_timeout = pool.options().get_acquire_timeout();
        let backend = Backend::Sqlite(crate::sqlite::SqliteBackend::new(pool, &table));
        Ok(SqlStore::from_parts(
            backend,
            table,
            "sqlite".into(),
            acquire_timeout,
        ))
    }

    pub(crate) fn from_parts(
        backend: Backend,
        table: TableName,
        location: String,
        acquire_timeout: Duration,
    ) -> SqlStore {
        SqlStore {
            inner: Arc::new(Inner {
                backend,
                table,
                location,
                acquire_timeout,
            }),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// This store (a clone sharing the pool) with every call bounded by `timeout`, waiting for
    /// a connection, retries and the statements included (default
    /// [`DEFAULT_CALL_TIMEOUT`](flash_core::DEFAULT_CALL_TIMEOUT), 2 s, or the builder's
    /// [`call_timeout`](SqlStoreBuilder::call_timeout)). A call that runs out of time fails
    /// with `ErrorKind::Unavailable`.
    ///
    /// For a store on a pool of your own, bound the statements on the server too (see the
    /// crate documentation): the builder's pools do.
    #[must_use]
    pub fn with_call_timeout(mut self, timeout: Duration) -> SqlStore {
        self.call_timeout = timeout;
        self
    }

    /// The most a call may take (see [`SqlStore::with_call_timeout`]).
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The database behind the store.
    pub fn driver(&self) -> Driver {
        self.inner.backend.driver()
    }

    /// Where the database is: the URL with its secrets hidden by [`flash_core::storage::redact_url`].
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The table the messages live in.
    pub fn table(&self) -> &str {
        self.inner.table.as_str()
    }

    /// The PostgreSQL pool, when the store is on PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match self.inner.backend {
            Backend::Postgres(ref b) => Some(b.pool()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The MySQL/MariaDB pool, when the store is on MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    pub fn mysql_pool(&self) -> Option<&sqlx::MySqlPool> {
        match self.inner.backend {
            Backend::MySql(ref b) => Some(b.pool()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The SQLite pool, when the store is on SQLite.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match self.inner.backend {
            Backend::Sqlite(ref b) => Some(b.pool()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Creates the table and its indexes if they do not exist, and on MySQL/MariaDB the stored
    /// procedures the calls run (also for a table an earlier release created: run it after an
    /// upgrade). Idempotent, and safe to run from several processes at once; run it at
    /// start-up or from a deployment step.
    ///
    /// # Errors
    /// `Unavailable` when the server cannot be reached; `Backend` or `Config` when the server
    /// refuses (for example, the user may not create tables or routines).
    pub async fn migrate(&self) -> Result<()> {
        let backend = &self.inner.backend;
        self.run("migrate", || async move {
            dispatch!(backend, b => b.migrate().await)
        })
        .await
    }

    /// Deletes the rows of every client whose messages have all expired; returns how many rows
    /// it deleted. Run it from a job (`cron`, a Kubernetes `CronJob`) or let
    /// [`SqlStore::spawn_sweeper`] run it.
    ///
    /// It works in short batches (a few thousand rows, one statement and one commit each), each
    /// a call under the call timeout, and pauses between two batches as long as the last one
    /// took: it never holds a lock, or SQLite's one writer, for long, and leaves live requests
    /// at least half of the time, however large the backlog. A batch that fails ends the sweep
    /// with its error; what the batches before it deleted stays deleted, and the next sweep
    /// goes on from there.
    ///
    /// Expired messages are never delivered, swept or not: the sweep only reclaims space.
    ///
    /// # Errors
    /// `Unavailable` when the server cannot be reached; `Config` when the table is missing.
    pub async fn sweep(&self) -> Result<u64> {
        let backend = &self.inner.backend;
        let (mut total, mut cursor, mut batches) = (0, SweepCursor::Start, 0u64);
        loop {
            let started = std::time::Instant::now();
            let (deleted, next): (u64, Option<SweepCursor>) = self
                .run("sweep", || async move {
                    dispatch!(backend, b => b.sweep_batch(cursor).await)
                })
                .await?;
            total += deleted;
            batches += 1;
            let Some(next) = next else { break };
            cursor = next;
            tokio::time::sleep(started.elapsed().max(MIN_SWEEP_PAUSE)).await;
        }
        tracing::debug!(
            table = self.table(),
            deleted = total,
            batches,
            "flash-sql sweep"
        );
        Ok(total)
    }

    /// Runs [`SqlStore::sweep`] now and then every `every` (at least a millisecond) on the
    /// current Tokio runtime, until the returned [`SweepTask`] is dropped (or stopped).
    /// Failures are logged (`tracing`, level `warn`) and the next round runs as planned.
    ///
    /// # Errors
    /// `Config` when called outside a Tokio runtime.
    pub fn spawn_sweeper(&self, every: Duration) -> Result<SweepTask> {
        let store = self.clone();
        SweepTask::spawn("SqlStore", every, move || {
            let store = store.clone();
            async move {
                if let Err(err) = store.sweep().await {
                    tracing::warn!(table = store.table(), error = %err, "flash-sql sweep failed");
                }
                true
            }
        })
    }

    /// The database's plan for a lease of `client`, one line per step (`EXPLAIN` on
    /// PostgreSQL and MySQL, `EXPLAIN QUERY PLAN` on SQLite): to check that it finds the
    /// client's rows through the `(client, id)` index rather than a scan of the table.
    /// Nothing is leased.
    ///
    /// # Errors
    /// `Unavailable` when the server cannot be reached; `Config` when the table is missing.
    pub async fn explain_lease(&self, client: &ClientId) -> Result<Vec<String>> {
        let (backend, client) = (&self.inner.backend, client.as_bytes());
        self.run("explain", || async move {
            dispatch!(backend, b => b.explain_lease(client).await)
        })
        .await
    }

    /// Closes the pool: waits for connections in use to come back, then closes them all.
    /// Later calls fail with `Unavailable`.
    pub async fn close(&self) {
        dispatch!(&self.inner.backend, b => b.pool().close().await)
    }

    /// Runs `op` within the call timeout, again on a lost deadlock, a failed serialization
    /// check or an SQLite lock (each rolled the whole operation back), and maps the final
    /// error.
    async fn run<T, F, Fut>(&self, what: &'static str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let attempts = async {
            let mut attempt = 1;
            loop {
                match op().await {
                    Ok(value) => return Ok(value),
                    Err(err) if attempt < ATTEMPTS && error::is_retryable(&err) => {
                        tracing::debug!(
                            table = self.table(),
                            operation = what,
                            attempt,
                            error = %err,
                            "flash-sql: retrying"
                        );
                        tokio::time::sleep(error::backoff(attempt)).await;
                        attempt += 1;
                    }
                    Err(err) => return Err(error::convert(err, &self.inner, what)),
                }
            }
        };
        // Dropping the call's future drops its connection mid-statement: sqlx does not put it
        // back in the pool before the `after_release` check (a bounded round trip that waits
        // for the statement's end, or closes the connection) has passed.
        match tokio::time::timeout(self.call_timeout, attempts).await {
            Ok(outcome) => outcome,
            Err(elapsed) => {
                let err = error::timed_out(&self.inner, what, self.call_timeout, elapsed);
                tracing::warn!(table = self.table(), operation = what, error = %err, "flash-sql: call timed out");
                Err(err)
            }
        }
    }
}

fn encode(messages: &[Message]) -> Result<Vec<String>> {
    messages.iter().map(stored_form::to_string).collect()
}

#[async_trait]
impl KeyedStore for SqlStore {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let adding = Adding::new(messages, limits)?;
        if adding.is_empty() {
            return Ok(0);
        }
        let (backend, client, adding) = (&self.inner.backend, client.as_bytes(), &adding);
        self.run("append", || async move {
            dispatch!(backend, b => b.append(client, adding, ttl).await)
        })
        .await
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        let (backend, client, lease) = (&self.inner.backend, client.as_bytes(), lease.as_bytes());
        let mut rows: Vec<(i64, String)> = self
            .run("lease", || async move {
                dispatch!(backend, b => b.lease(client, lease, lease_timeout).await)
            })
            .await?;
        rows.sort_unstable_by_key(|(id, _)| *id);
        Ok(rows
            .into_iter()
            .filter_map(|(id, body)| match serde_json::from_str(&body) {
                Ok(FromStored(message)) => Some(message),
                Err(err) => {
                    // A row this crate did not write: skipped here, deleted when the lease is
                    // consumed, expired with the client otherwise.
                    tracing::warn!(
                        table = self.table(),
                        id,
                        error = %err,
                        "flash-sql: skipping a row that is not a flash message"
                    );
                    None
                }
            })
            .collect())
    }

    async fn settle(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let adding = Adding::new(append, limits)?;
        let (backend, client, lease) = (&self.inner.backend, client.as_bytes(), lease.as_bytes());
        let adding = &adding;
        self.run("settle", || async move {
            dispatch!(backend, b => b.settle(client, lease, outcome, adding, ttl).await)
        })
        .await
    }
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("driver", &self.driver())
            .field("location", &self.inner.location)
            .field("table", &self.table())
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}
