//! SQLite ≥ 3.35: every store call is one statement. An append is one `INSERT … SELECT` that
//! counts the client's live messages and inserts the prefix that fits; a lease is one `UPDATE …
//! RETURNING`; a settle one `DELETE` or `UPDATE`, and a consuming settle with messages to append
//! is the append's `INSERT`, whose rows carry the lease to consume to the table's triggers (a
//! released one, or a table not migrated yet, takes a `BEGIN IMMEDIATE` transaction). WAL, `synchronous = NORMAL`, a busy
//! timeout; one pooled connection by default (every call writes, and SQLite has one writer at a
//! time).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flash_core::storage::Outcome;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, Executor, Row, SqlSafeStr, SqlStr, Sqlite};

use crate::builder::PoolSettings;
use crate::store::{Adding, Driver, SweepCursor, hex, micros};
use crate::table::TableName;

/// Rows per `INSERT`: five fixed parameters plus three per row stays below 999, the parameter
/// limit of SQLite builds older than 3.32. The default limits (100 messages) always fit one.
const INSERT_CHUNK: usize = 300;
/// Rows deleted per sweep batch (one statement, one commit): SQLite's one writer, and on the
/// default pool its one connection, are the sweep's for that long.
const SWEEP_BATCH: i64 = 2_000;

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
    /// Whether the table's trigger that deletes a dead client's rows (`<table>_expire_v1`) was
    /// seen: until it is (a table of an earlier release that `migrate()` has not upgraded
    /// yet), an append deletes them itself first, in a transaction.
    trigger_seen: AtomicBool,
    /// Whether the table's triggers that let a consuming settle ride on the append's `INSERT`
    /// (`<table>_settle_v1`, `<table>_settled_v1`) were seen: until they are, such a settle
    /// takes a transaction.
    settle_triggers_seen: AtomicBool,
}

struct Statements {
    expire: SqlStr,
    lease: SqlStr,
    consume: SqlStr,
    release: SqlStr,
    sweep: SqlStr,
    /// `INSERT … SELECT` up to the `(VALUES …)` list of the messages.
    insert_head: String,
    /// After the list: the client's live count and bytes, and the limits.
    insert_tail: String,
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
            // ?1 client, ?2 ttl, ?3 most messages, ?4 most bytes, ?5 the lease a consuming
            // settle ends (NULL for an append); each message is (body, size, running total of
            // the sizes, position from 1). The client's rows count only while it is alive (its
            // newest expiry is ahead), and not the rows of the lease ?5, which the table's
            // trigger deletes before the first new row goes in, as it deletes a dead client's
            // rows. SQLite reads the whole SELECT before it inserts, as it reads the table it
            // inserts into.
            insert_head: format!(
                "INSERT INTO {t} (client, body, size, expires_at, lease) \
                 SELECT ?1, m.column1, m.column2, {NOW} + ?2, ?5 FROM (VALUES "
            ),
            insert_tail: format!(
                ") AS m, (SELECT CASE WHEN max(expires_at) > {NOW} THEN count(*) ELSE 0 END AS n, \
                   CASE WHEN max(expires_at) > {NOW} THEN coalesce(sum(size), 0) ELSE 0 END AS b \
                   FROM {t} WHERE client = ?1 \
                   AND NOT (lease IS ?5 AND leased_until IS NOT NULL)) AS c \
                 WHERE m.column4 <= ?3 - c.n AND m.column3 <= ?4 - c.b ORDER BY m.column4"
            ),
        };
        SqliteBackend {
            pool,
            table: table.as_str().to_owned(),
            sql,
            trigger_seen: AtomicBool::new(false),
            settle_triggers_seen: AtomicBool::new(false),
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
            // A client whose messages have all expired starts afresh: its rows are deleted
            // before a new one goes in (else the new row's expiry would bring them back).
            // In the table, so an append is one INSERT; a client with a live message finds it
            // at the first rows of its index range.
            format!(
                "CREATE TRIGGER IF NOT EXISTS \"{t}_expire_v1\" BEFORE INSERT ON \"{t}\" \
                 WHEN NOT EXISTS (SELECT 1 FROM \"{t}\" WHERE client = NEW.client \
                                  AND expires_at > {NOW}) \
                 BEGIN DELETE FROM \"{t}\" WHERE client = NEW.client; END"
            ),
            // A consuming settle that appends is one INSERT whose rows carry the lease it
            // ends: the first row's trigger deletes that lease's rows (leased ones only, so
            // never a row of the same INSERT), and each new row drops the lease at once.
            format!(
                "CREATE TRIGGER IF NOT EXISTS \"{t}_settle_v1\" BEFORE INSERT ON \"{t}\" \
                 WHEN NEW.lease IS NOT NULL \
                 BEGIN DELETE FROM \"{t}\" WHERE client = NEW.client AND lease = NEW.lease \
                   AND leased_until IS NOT NULL; END"
            ),
            format!(
                "CREATE TRIGGER IF NOT EXISTS \"{t}_settled_v1\" AFTER INSERT ON \"{t}\" \
                 WHEN NEW.lease IS NOT NULL \
                 BEGIN UPDATE \"{t}\" SET lease = NULL WHERE id = NEW.id; END"
            ),
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

    /// One `INSERT` of `adding[from..to]` for `client`: the prefix that fits beside the
    /// client's live messages. Returns how many it inserted.
    async fn insert<'c, E>(
        &self,
        conn: E,
        (client, ends): (&[u8; 16], Option<&[u8; 16]>),
        adding: &Adding,
        (from, to): (usize, usize),
        ttl: Duration,
    ) -> Result<usize, sqlx::Error>
    where
        E: Executor<'c, Database = Sqlite>,
    {
        // Totals and positions count from this chunk's start: the chunks before it are in.
        let before = from.checked_sub(1).map_or(0, |i| adding.totals[i]);
        let mut text = self.sql.insert_head.clone();
        for i in 0..to - from {
            if i > 0 {
                text.push_str(", ");
            }
            let p = 3 * i + 6;
            text.push_str(&format!("(?{p}, ?{}, ?{}, {})", p + 1, p + 2, i + 1));
        }
        text.push_str(&self.sql.insert_tail);
        let mut query = sqlx::query(AssertSqlSafe(text))
            .bind(client.as_slice())
            .bind(millis(ttl))
            .bind(adding.max_messages)
            .bind(adding.max_bytes)
            .bind(ends.map(<[u8; 16]>::as_slice));
        for i in from..to {
            query = query
                .bind(adding.bodies[i].as_str())
                .bind(adding.sizes[i])
                .bind(adding.totals[i] - before);
        }
        let inserted = query.execute(conn).await?.rows_affected();
        Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
    }

    /// Appends the prefix of `adding` that fits beside what the client has pending, in the
    /// open write transaction `tx` (which keeps a multi-chunk append atomic).
    async fn append_chunks(
        &self,
        tx: &mut sqlx::SqliteConnection,
        client: &[u8; 16],
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        let mut kept = 0;
        while kept < adding.len() {
            let to = (kept + INSERT_CHUNK).min(adding.len());
            let inserted = self
                .insert(&mut *tx, (client, None), adding, (kept, to), ttl)
                .await?;
            kept += inserted;
            if kept < to {
                break;
            }
        }
        Ok(kept)
    }

    /// Whether the table has the triggers `<table>_<name>` for every name (checked until they
    /// are seen once, which `seen` remembers).
    async fn has_triggers(&self, seen: &AtomicBool, names: &[&str]) -> Result<bool, sqlx::Error> {
        if seen.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let mut all = true;
        for name in names {
            all &= sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?1)",
            )
            .bind(format!("{}_{name}", self.table))
            .fetch_one(&self.pool)
            .await?;
        }
        if all {
            seen.store(true, Ordering::Relaxed);
        }
        Ok(all)
    }

    /// Whether the table has the trigger that deletes a dead client's rows.
    async fn has_trigger(&self) -> Result<bool, sqlx::Error> {
        let seen = self
            .has_triggers(&self.trigger_seen, &["expire_v1"])
            .await?;
        if !seen {
            tracing::warn!(
                table = %self.table,
                "flash-sql: the SQLite table has no expiry trigger (run SqlStore::migrate()); appends take a transaction"
            );
        }
        Ok(seen)
    }

    /// Whether the table has the triggers of a one-statement consuming settle.
    async fn has_settle_triggers(&self) -> Result<bool, sqlx::Error> {
        self.has_triggers(&self.settle_triggers_seen, &["settle_v1", "settled_v1"])
            .await
    }

    pub(crate) async fn append(
        &self,
        client: &[u8; 16],
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        let trigger = self.has_trigger().await?;
        if trigger && adding.len() <= INSERT_CHUNK {
            // One statement, atomic on its own: SQLite takes the write lock before it reads.
            return self
                .insert(&self.pool, (client, None), adding, (0, adding.len()), ttl)
                .await;
        }
        let mut conn = self.pool.acquire().await?;
        // IMMEDIATE takes the write lock first (waiting through the busy timeout), so the
        // transaction never fails half-way to upgrade a read lock.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        if !trigger {
            self.delete_dead(&mut tx, client).await?;
        }
        let kept = self.append_chunks(&mut tx, client, adding, ttl).await?;
        tx.commit().await?;
        Ok(kept)
    }

    /// Deletes a dead client's rows: what the trigger does, for a table without it.
    async fn delete_dead(
        &self,
        tx: &mut sqlx::SqliteConnection,
        client: &[u8; 16],
    ) -> Result<(), sqlx::Error> {
        sqlx::query(self.sql.expire.clone())
            .bind(client.as_slice())
            .execute(&mut *tx)
            .await?;
        Ok(())
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
        let trigger = self.has_trigger().await?;
        if trigger
            && matches!(outcome, Outcome::Consumed)
            && adding.len() <= INSERT_CHUNK
            && self.has_settle_triggers().await?
        {
            // One statement: the new rows carry the lease to the triggers, which delete its
            // rows before the first goes in (the count left them out).
            let kept = self
                .insert(
                    &self.pool,
                    (client, Some(lease)),
                    adding,
                    (0, adding.len()),
                    ttl,
                )
                .await?;
            if kept == 0 {
                // Nothing went in (all beyond the limits), so no trigger ran.
                end.execute(&self.pool).await?;
            }
            return Ok(kept);
        }
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        end.execute(&mut *tx).await?;
        if !trigger {
            self.delete_dead(&mut tx, client).await?;
        }
        let kept = self.append_chunks(&mut tx, client, adding, ttl).await?;
        tx.commit().await?;
        Ok(kept)
    }

    /// One batch of the sweep: how many rows it deleted, and whether to go on.
    pub(crate) async fn sweep_batch(
        &self,
        _: SweepCursor,
    ) -> Result<(u64, Option<SweepCursor>), sqlx::Error> {
        let deleted = sqlx::query(self.sql.sweep.clone())
            .bind(SWEEP_BATCH)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let more = deleted >= SWEEP_BATCH.unsigned_abs();
        Ok((deleted, more.then_some(SweepCursor::Start)))
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
