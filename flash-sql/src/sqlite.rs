//! SQLite ≥ 3.35: a lease is one `UPDATE … RETURNING`; an append or a settle that appends is
//! one `BEGIN IMMEDIATE` transaction. WAL, `synchronous = NORMAL`, a busy timeout; one pooled
//! connection by default (every call writes, and SQLite has one writer at a time).

use std::time::Duration;

use flash_core::storage::Outcome;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, Executor, Row, SqlSafeStr, SqlStr, Sqlite};

use crate::builder::PoolSettings;
use crate::store::{Adding, Driver, hex, micros};
use crate::table::TableName;

/// Rows per `INSERT`: two fixed parameters plus two per row stays below 999, the parameter
/// limit of SQLite builds older than 3.32.
const INSERT_CHUNK: usize = 400;
/// Rows deleted per sweep statement.
const SWEEP_BATCH: i64 = 10_000;

/// The database clock in milliseconds since the Unix epoch (`'now'` is fixed within one
/// statement, and needs no `unixepoch('subsec')`, which only SQLite ≥ 3.42 has).
const NOW: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// A span in whole milliseconds, rounded up.
fn millis(span: Duration) -> i64 {
    micros(span).saturating_add(999) / 1000
}

pub(crate) struct SqliteBackend {
    pool: SqlitePool,
    table: String,
    sql: Statements,
}

struct Statements {
    expire: SqlStr,
    /// The client's pending messages and their bytes.
    pending: SqlStr,
    lease: SqlStr,
    consume: SqlStr,
    release: SqlStr,
    sweep: SqlStr,
    insert_head: String,
}

/// Attempts at creating the table when SQLite answers "locked" without waiting (about 1 s of
/// pauses in all).
const MIGRATE_ATTEMPTS: u32 = 9;

fn sql(text: String) -> SqlStr {
    AssertSqlSafe(text).into_sql_str()
}

impl SqliteBackend {
    pub(crate) fn new(pool: SqlitePool, table: &TableName) -> Self {
        let t = format!("\"{}\"", table.as_str());
        let newest = format!("(SELECT max(expires_at) FROM {t} WHERE client = ?1)");
        let sql = Statements {
            expire: sql(format!(
                "DELETE FROM {t} WHERE client = ?1 AND {newest} <= {NOW}"
            )),
            pending: sql(format!(
                "SELECT count(*), coalesce(sum(size), 0) FROM {t} WHERE client = ?1"
            )),
            lease: sql(format!(
                "UPDATE {t} SET lease = ?2, leased_until = {NOW} + ?3 \
                 WHERE client = ?1 AND (leased_until IS NULL OR leased_until <= {NOW}) \
                 AND {newest} > {NOW} \
                 RETURNING id, body"
            )),
            consume: sql(format!("DELETE FROM {t} WHERE client = ?1 AND lease = ?2")),
            release: sql(format!(
                "UPDATE {t} SET lease = NULL, leased_until = NULL \
                 WHERE client = ?1 AND lease = ?2"
            )),
            sweep: sql(format!(
                "DELETE FROM {t} WHERE id IN (\
                   SELECT d.id FROM {t} AS d WHERE d.expires_at <= {NOW} \
                   AND NOT EXISTS (SELECT 1 FROM {t} AS a WHERE a.client = d.client \
                                   AND a.expires_at > {NOW}) \
                   LIMIT ?1)"
            )),
            insert_head: format!("INSERT INTO {t} (client, body, size, expires_at) VALUES "),
        };
        SqliteBackend {
            pool,
            table: table.as_str().to_owned(),
            sql,
        }
    }

    pub(crate) fn driver(&self) -> Driver {
        Driver::Sqlite
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn migrate(&self) -> Result<(), sqlx::Error> {
        // Connections opening a new database file at the same moment all switch it to WAL;
        // SQLite answers some of them "database is locked" at once, without waiting out the
        // busy timeout, because waiting could deadlock. Its documented answer is to try again.
        let mut attempt = 1;
        loop {
            match self.migrate_once().await {
                Err(err) if attempt < MIGRATE_ATTEMPTS && crate::error::is_sqlite_busy(&err) => {
                    tracing::debug!(table = %self.table, attempt, error = %err, "flash-sql: migrate again");
                    tokio::time::sleep(crate::error::backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn migrate_once(&self) -> Result<(), sqlx::Error> {
        let t = &self.table;
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for statement in [
            // INTEGER PRIMARY KEY is the rowid: a new row's id is above every id in the table.
            format!(
                "CREATE TABLE IF NOT EXISTS \"{t}\" (\
                   id INTEGER PRIMARY KEY, \
                   client BLOB NOT NULL, \
                   body TEXT NOT NULL, \
                   size INTEGER NOT NULL DEFAULT 0, \
                   lease BLOB, \
                   leased_until INTEGER, \
                   expires_at INTEGER NOT NULL)"
            ),
            format!("CREATE INDEX IF NOT EXISTS \"{t}_client\" ON \"{t}\" (client, id)"),
            format!("CREATE INDEX IF NOT EXISTS \"{t}_expires\" ON \"{t}\" (expires_at)"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        // A table of an earlier release: its rows count as size 0.
        let sized: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'size')",
        )
        .bind(t.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if !sized {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER TABLE \"{t}\" ADD COLUMN size INTEGER NOT NULL DEFAULT 0"
            )))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Inserts `bodies` with their `sizes` for `client`, in order, on `conn`.
    async fn insert<'c, E>(
        &self,
        conn: E,
        client: &[u8; 16],
        bodies: &[String],
        sizes: &[i64],
        ttl: Duration,
    ) -> Result<(), sqlx::Error>
    where
        E: Executor<'c, Database = Sqlite>,
    {
        let mut text = self.sql.insert_head.clone();
        for i in 0..bodies.len() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("(?1, ?{}, ?{}, {NOW} + ?2)", 2 * i + 3, 2 * i + 4));
        }
        let mut query = sqlx::query(AssertSqlSafe(text))
            .bind(client.as_slice())
            .bind(millis(ttl));
        for (body, size) in bodies.iter().zip(sizes) {
            query = query.bind(body.as_str()).bind(*size);
        }
        query.execute(conn).await?;
        Ok(())
    }

    /// In the open write transaction `tx`: deletes what a dead client left, then appends the
    /// prefix of `adding` that fits beside what the client has pending. The transaction holds
    /// SQLite's one write lock, so no other append of the client runs between the count and
    /// the insert.
    async fn append_fitting(
        &self,
        tx: &mut sqlx::SqliteConnection,
        client: &[u8; 16],
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        sqlx::query(self.sql.expire.clone())
            .bind(client.as_slice())
            .execute(&mut *tx)
            .await?;
        let (count, bytes): (i64, i64) = sqlx::query_as(self.sql.pending.clone())
            .bind(client.as_slice())
            .fetch_one(&mut *tx)
            .await?;
        let kept = adding.fitting(count, bytes);
        for (bodies, sizes) in adding.bodies[..kept]
            .chunks(INSERT_CHUNK)
            .zip(adding.sizes[..kept].chunks(INSERT_CHUNK))
        {
            self.insert(&mut *tx, client, bodies, sizes, ttl).await?;
        }
        Ok(kept)
    }

    pub(crate) async fn append(
        &self,
        client: &[u8; 16],
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        // IMMEDIATE takes the write lock first (waiting through the busy timeout), so the
        // transaction never fails half-way to upgrade a read lock.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let kept = self.append_fitting(&mut tx, client, adding, ttl).await?;
        tx.commit().await?;
        Ok(kept)
    }

    pub(crate) async fn lease(
        &self,
        client: &[u8; 16],
        lease: &[u8; 16],
        lease_timeout: Duration,
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        sqlx::query(self.sql.lease.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(millis(lease_timeout))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    pub(crate) async fn settle(
        &self,
        client: &[u8; 16],
        lease: &[u8; 16],
        outcome: Outcome,
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        let statement = match outcome {
            Outcome::Consumed => &self.sql.consume,
            Outcome::Released => &self.sql.release,
        };
        let end = sqlx::query(statement.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice());
        if adding.is_empty() {
            end.execute(&self.pool).await?;
            return Ok(0);
        }
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        end.execute(&mut *tx).await?;
        let kept = self.append_fitting(&mut tx, client, adding, ttl).await?;
        tx.commit().await?;
        Ok(kept)
    }

    pub(crate) async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        loop {
            let deleted = sqlx::query(self.sql.sweep.clone())
                .bind(SWEEP_BATCH)
                .execute(&self.pool)
                .await?
                .rows_affected();
            total += deleted;
            if deleted < SWEEP_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    pub(crate) async fn explain_lease(
        &self,
        client: &[u8; 16],
    ) -> Result<Vec<String>, sqlx::Error> {
        let text = self
            .sql
            .lease
            .as_str()
            .replace("?1", &format!("X'{}'", hex(client)))
            .replace("?2", &format!("X'{}'", "00".repeat(16)))
            .replace("?3", "30000");
        let rows = sqlx::raw_sql(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {text}")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("detail"))
            .collect()
    }
}

/// A lazy pool for `url`, and the options to probe the database with.
pub(crate) fn pool(
    url: &str,
    settings: &PoolSettings,
) -> Result<(SqlitePool, SqliteConnectOptions), sqlx::Error> {
    let mut options: SqliteConnectOptions = url.parse()?;
    if !url.contains("mode=") {
        options = options.create_if_missing(true);
    }
    let options = options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(settings.busy_timeout);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory && (!url.contains("mode=") || url.contains("mode=rwc")) {
        create_private(options.get_filename());
    }
    let mut pool = SqlitePoolOptions::new()
        .max_connections(settings.max_connections.unwrap_or(1))
        .acquire_timeout(settings.acquire_timeout)
        // A file on this machine: nothing to ping.
        .test_before_acquire(false);
    if in_memory {
        // The database lives as long as a connection to it: keep the connections.
        pool = pool.idle_timeout(None).max_lifetime(None);
    }
    let pool = pool.connect_lazy_with(options.clone());
    Ok((pool, options))
}

/// Creates the database file, empty (SQLite's own start), readable by its owner only, when it
/// does not exist yet: the messages it will hold are no one else's business, and SQLite gives
/// its `-wal` and `-shm` files the database file's mode. An existing file is left as it is;
/// a failure here is SQLite's to report when it opens the file.
fn create_private(path: &std::path::Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => {
            tracing::debug!(path = %path.display(), "flash-sql: created the SQLite file (mode 0600)")
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            tracing::debug!(path = %path.display(), %err, "flash-sql: cannot create the SQLite file")
        }
    }
}
