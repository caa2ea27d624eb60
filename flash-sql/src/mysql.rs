//! MySQL ≥ 8.0 and MariaDB ≥ 10.6: one round trip per call through stored procedures.
//!
//! Neither server has `UPDATE … RETURNING`, nor data-modifying CTEs, so a lease (an atomic
//! `UPDATE` that stamps the rows with the lease id, then a `SELECT` of the rows carrying it) and
//! a settle that appends (`DELETE`/`UPDATE`, then `INSERT`, committed together) take two
//! statements. `migrate` creates one procedure per call and table, and each call is one `CALL`
//! of it through a prepared statement: the statements run on the server, one after the other,
//! with no round trip between them.
//!
//! Why procedures rather than one multi-statement text: a procedure with an exit handler rolls
//! its transaction back on any error it can catch, so no half-done settle stays open on a
//! pooled connection; its statements are parsed once, not on every call; and values are bound
//! parameters, never SQL text. Several messages reach the procedures as one JSON array,
//! expanded by `JSON_TABLE` (MariaDB ≥ 10.6, MySQL ≥ 8.0.4) into one `INSERT … SELECT`; a
//! single message, the common case, is bound as it is.
//!
//! Connections run at `READ COMMITTED` (procedures run at the caller's level); timestamps come
//! from the server's `UTC_TIMESTAMP(6)`.

use std::time::Duration;

use flash_core::storage::Outcome;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, MySql, Row, SqlSafeStr, SqlStr};

use crate::builder::PoolSettings;
use crate::store::{Adding, Driver, Guarded, SweepCursor, hex, micros};
use crate::table::TableName;

/// Messages per `CALL` (one JSON parameter) or, above that, rows per `INSERT` (three parameters
/// each, far below the 65 535 a statement may have).
const INSERT_CHUNK: usize = 1000;
/// Ids per sweep batch (one statement, one commit).
const SWEEP_WINDOW: i64 = 5_000;

const NOW: &str = "UTC_TIMESTAMP(6)";

/// The version in the procedures' names. A release that changes what a procedure does names
/// it anew, so that processes of the old and the new release can run side by side during a
/// deployment, each calling the procedures it was built for.
const PROCEDURES_VERSION: u32 = 2;

/// MySQL's "PROCEDURE … already exists".
const ER_SP_ALREADY_EXISTS: u16 = 1304;
/// MySQL's "Duplicate column name".
const ER_DUP_FIELDNAME: u16 = 1060;

pub(crate) struct MySqlBackend {
    pool: MySqlPool,
    table: String,
    sql: Statements,
    /// `CREATE PROCEDURE` statements, run by `migrate`.
    procedures: Vec<String>,
}

struct Statements {
    /// `CALL` of the lease procedure (parameters: client, lease, lease span).
    lease: SqlStr,
    /// `CALL` of the settle procedure (client, lease, consume?, TTL, most messages, most
    /// bytes, one body, its size, JSON `[body, size, running total]` triples).
    settle: SqlStr,
    /// `CALL` of the append procedure (client, TTL, most messages, most bytes, one body, its
    /// size, JSON triples).
    append: SqlStr,
    /// Takes the client's lock row (parameter: client), before a bulk append.
    lock: SqlStr,
    /// Deletes what a dead client left (parameters: client, client), before a bulk append.
    expire: SqlStr,
    /// The client's pending messages and bytes (parameter: client).
    pending: SqlStr,
    /// Deletes lock rows of clients without messages (parameter: batch size).
    sweep_locks: SqlStr,
    consume: SqlStr,
    release: SqlStr,
    sweep_range: SqlStr,
    sweep: SqlStr,
    /// `INSERT … VALUES` with one row, the prefix of every bulk insert.
    insert_head: String,
}

fn sql(text: String) -> SqlStr {
    AssertSqlSafe(text).into_sql_str()
}

/// One row of an insert: client, body, size, TTL in microseconds.
const INSERT_ROW: &str = "(?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)";

/// Lock rows deleted per sweep statement.
const SWEEP_LOCKS_BATCH: i64 = 1000;

/// The name of `table`'s procedure for `call`: `<table>_<call>_v<version>`.
///
/// Routine names are case-insensitive on MySQL and MariaDB while table names are not (on
/// Linux), so a name with capitals also carries a hash of its exact spelling: tables `Flash`
/// and `flash` never share procedures (nor find the other's already there). At most 63 bytes
/// (48 + `_settle_v1` + `_` and four hex digits), within the 64 of an identifier.
/// The table of lock rows beside `table`: one row per client, locked by every append of the
/// client (at most 48 + 8 bytes).
fn locks_table(table: &str) -> String {
    format!("{table}_clients")
}

fn procedure_name(table: &str, call: &str) -> String {
    let name = format!("{table}_{call}_v{PROCEDURES_VERSION}");
    if !table.bytes().any(|b| b.is_ascii_uppercase()) {
        return name;
    }
    // FNV-1a: the same on every build, which std's hasher does not promise.
    let hash = table.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{name}_{:04x}", hash & 0xffff)
}

/// The claim: stamps the client's rows that no live lease holds with `lease` for `span`
/// microseconds, in id order (concurrent claims lock rows in one order), and only while the
/// client's newest message lives. InnoDB re-checks each row on its newest committed version
/// after waiting for its lock, so two claims never both take a row.
fn claim(t: &str, client: &str, lease: &str, span: &str) -> String {
    format!(
        "UPDATE {t} SET lease = {lease}, leased_until = {NOW} + INTERVAL {span} MICROSECOND \
         WHERE client = {client} AND (leased_until IS NULL OR leased_until <= {NOW}) \
         AND {} > {NOW} ORDER BY id",
        newest(t, client)
    )
}

/// The expiry of the client's newest message. MySQL refuses a subquery on the table being
/// changed unless it is materialized: an aggregate in a derived table is (on MariaDB too).
fn newest(t: &str, client: &str) -> String {
    format!("(SELECT m FROM (SELECT MAX(expires_at) AS m FROM {t} WHERE client = {client}) AS c)")
}

/// Deletes the client's rows when all of them have expired, so that an append starts afresh.
fn expire(t: &str, client: &str) -> String {
    format!(
        "DELETE FROM {t} WHERE client = {client} AND {} <= {NOW}",
        newest(t, client)
    )
}

/// The type of the procedures' body parameters: the column's character set, so that nothing is
/// converted on the way in (the collation does not matter, they are never compared).
const TEXT_PARAMETER: &str = "LONGTEXT CHARACTER SET utf8mb4";

/// The limited append, inside the procedures' transaction: takes the client's lock row
/// (`INSERT … ON DUPLICATE KEY UPDATE` locks it, or the new row, until the commit: concurrent
/// appends of one client take turns), deletes what a dead client left, counts what it has
/// pending (at `READ COMMITTED` a plain `SELECT` reads a fresh snapshot, taken after the lock
/// was granted, so it sees what the lock's previous holder committed), then inserts the prefix
/// that fits into `v_kept`.
///
/// `p_body` is one message (of `p_size` bytes), inserted by a plain `INSERT … VALUES`, which
/// InnoDB's default `innodb_autoinc_lock_mode` on MariaDB serves without the table-level
/// AUTO-INC lock an `INSERT … SELECT` holds for its duration; `p_bodies`, several, as a JSON
/// array of `[body, size, running total]` (`ORDER BY` fixes the order in which the rows, and so
/// their ids, are inserted). Every message is within the text limit already, so the server
/// compares counts and running totals only.
fn append_step(t: &str, locks: &str) -> String {
    let expires = format!("{NOW} + INTERVAL p_ttl MICROSECOND");
    format!(
        "INSERT INTO {locks} (client) VALUES (p_client) ON DUPLICATE KEY UPDATE client = client; \
         {}; \
         SELECT COUNT(*), COALESCE(SUM(size), 0) INTO v_count, v_bytes FROM {t} \
           WHERE client = p_client; \
         IF p_bodies IS NULL THEN \
           IF v_count < p_max_messages AND v_bytes + p_size <= p_max_bytes THEN \
             INSERT INTO {t} (client, body, size, expires_at) \
               VALUES (p_client, p_body, p_size, {expires}); \
             SET v_kept = 1; \
           END IF; \
         ELSE \
           INSERT INTO {t} (client, body, size, expires_at) \
           SELECT p_client, j.body, j.size, {expires} FROM JSON_TABLE(p_bodies, '$[*]' COLUMNS (\
             n FOR ORDINALITY, body LONGTEXT PATH '$[0]', size BIGINT PATH '$[1]', \
             total BIGINT PATH '$[2]')) AS j \
           WHERE j.n <= p_max_messages - v_count AND j.total <= p_max_bytes - v_bytes \
           ORDER BY j.n; \
           SET v_kept = ROW_COUNT(); \
         END IF;",
        expire(t, "p_client")
    )
}

/// The procedures' parameters of a limited append.
fn append_parameters() -> String {
    format!(
        "p_ttl BIGINT, p_max_messages BIGINT, p_max_bytes BIGINT, p_body {TEXT_PARAMETER}, \
         p_size BIGINT, p_bodies {TEXT_PARAMETER}"
    )
}

/// What the procedures that append declare first: the counts and an exit handler that rolls
/// back on any error and passes it on unchanged (a lost deadlock stays 1213, and the store
/// tries again).
const APPEND_DECLARATIONS: &str = "DECLARE v_count BIGINT DEFAULT 0; \
     DECLARE v_bytes BIGINT DEFAULT 0; \
     DECLARE v_kept BIGINT DEFAULT 0; \
     DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;";

impl MySqlBackend {
    pub(crate) fn new(pool: MySqlPool, table: &TableName) -> Self {
        let name = table.as_str();
        let t = format!("`{name}`");
        let [lease, settle, append] =
            ["lease", "settle", "append"].map(|call| procedure_name(name, call));
        // SQL SECURITY INVOKER: the procedures run with the caller's rights on the table, so an
        // application user needs EXECUTE on them and the same rights on the table as before,
        // and calling them grants nothing more than the statements they run.
        let head = "MODIFIES SQL DATA SQL SECURITY INVOKER";
        let locks = format!("`{}`", locks_table(name));
        let step = append_step(&t, &locks);
        let parameters = append_parameters();
        let procedures = vec![
            // Not a transaction: the UPDATE is the atomic claim, and the SELECT reads back what
            // it stamped (only when it stamped anything).
            format!(
                "CREATE PROCEDURE `{lease}`(p_client BINARY(16), p_lease BINARY(16), \
                   p_span BIGINT) {head} \
                 BEGIN \
                   {}; \
                   IF ROW_COUNT() > 0 THEN \
                     SELECT id, body FROM {t} WHERE client = p_client AND lease = p_lease \
                     ORDER BY id; \
                   END IF; \
                 END",
                claim(&t, "p_client", "p_lease", "p_span")
            ),
            // Ending the lease and appending commit together or not at all; the result is how
            // many messages were appended.
            format!(
                "CREATE PROCEDURE `{settle}`(p_client BINARY(16), p_lease BINARY(16), \
                   p_consume BOOLEAN, {parameters}) {head} \
                 BEGIN \
                   {APPEND_DECLARATIONS} \
                   START TRANSACTION; \
                   IF p_consume THEN \
                     DELETE FROM {t} WHERE client = p_client AND lease = p_lease; \
                   ELSE \
                     UPDATE {t} SET lease = NULL, leased_until = NULL \
                     WHERE client = p_client AND lease = p_lease; \
                   END IF; \
                   {step} \
                   COMMIT; \
                   SELECT v_kept; \
                 END"
            ),
            format!(
                "CREATE PROCEDURE `{append}`(p_client BINARY(16), {parameters}) {head} \
                 BEGIN \
                   {APPEND_DECLARATIONS} \
                   START TRANSACTION; \
                   {step} \
                   COMMIT; \
                   SELECT v_kept; \
                 END"
            ),
        ];
        let sql = Statements {
            lease: sql(format!("CALL `{lease}`(?, ?, ?)")),
            settle: sql(format!("CALL `{settle}`(?, ?, ?, ?, ?, ?, ?, ?, ?)")),
            append: sql(format!("CALL `{append}`(?, ?, ?, ?, ?, ?, ?)")),
            lock: sql(format!(
                "INSERT INTO {locks} (client) VALUES (?) ON DUPLICATE KEY UPDATE client = client"
            )),
            expire: sql(expire(&t, "?")),
            pending: sql(format!(
                "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS SIGNED) FROM {t} WHERE client = ?"
            )),
            sweep_locks: sql(format!(
                "DELETE FROM {locks} WHERE NOT EXISTS \
                   (SELECT 1 FROM {t} AS m WHERE m.client = {locks}.client) LIMIT ?"
            )),
            consume: sql(format!("DELETE FROM {t} WHERE client = ? AND lease = ?")),
            release: sql(format!(
                "UPDATE {t} SET lease = NULL, leased_until = NULL WHERE client = ? AND lease = ?"
            )),
            sweep_range: sql(format!(
                "SELECT MIN(id), MAX(id) FROM {t} WHERE expires_at <= {NOW}"
            )),
            // Rows in the id window whose client has no unexpired row.
            sweep: sql(format!(
                "DELETE d FROM {t} AS d LEFT JOIN {t} AS a \
                   ON a.client = d.client AND a.expires_at > {NOW} \
                 WHERE d.id BETWEEN ? AND ? AND d.expires_at <= {NOW} AND a.id IS NULL"
            )),
            insert_head: format!("INSERT INTO {t} (client, body, size, expires_at) VALUES "),
        };
        MySqlBackend {
            pool,
            table: name.to_owned(),
            sql,
            procedures,
        }
    }

    pub(crate) fn driver(&self) -> Driver {
        Driver::MySql
    }

    pub(crate) fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    pub(crate) async fn migrate(&self) -> Result<(), sqlx::Error> {
        let t = &self.table;
        // One statement with the indexes inline: atomic, and IF NOT EXISTS is safe when
        // several processes run it at once.
        let statement = format!(
            "CREATE TABLE IF NOT EXISTS `{t}` (\
               id BIGINT NOT NULL AUTO_INCREMENT, \
               client BINARY(16) NOT NULL, \
               body MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
               size INT NOT NULL DEFAULT 0, \
               lease BINARY(16) NULL, \
               leased_until DATETIME(6) NULL, \
               expires_at DATETIME(6) NOT NULL, \
               PRIMARY KEY (id), \
               KEY `{t}_client` (client, id), \
               KEY `{t}_expires` (expires_at)\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        );
        sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&self.pool)
            .await?;
        let locks = locks_table(t);
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS `{locks}` (client BINARY(16) NOT NULL PRIMARY KEY) \
             ENGINE=InnoDB"
        )))
        .execute(&self.pool)
        .await?;
        // A table of an earlier release: its rows count as size 0. Added last, so InnoDB adds
        // it in place (instantly on MariaDB ≥ 10.3, MySQL ≥ 8.0.12). A concurrent migrate may
        // add it first.
        let sized: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() \
             AND table_name = ? AND column_name = 'size'",
        )
        .bind(t)
        .fetch_one(&self.pool)
        .await?;
        if sized == 0 {
            match sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER TABLE `{t}` ADD COLUMN size INT NOT NULL DEFAULT 0"
            )))
            .execute(&self.pool)
            .await
            {
                Ok(_) => {}
                Err(sqlx::Error::Database(db))
                    if db
                        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|my| my.number() == ER_DUP_FIELDNAME) => {}
                Err(err) => return Err(err),
            }
        }
        // A table of an earlier release gets its procedures here too. MySQL before 8.0.29 has
        // no CREATE PROCEDURE IF NOT EXISTS (and none has OR REPLACE): a plain CREATE that
        // finds the procedure there, made by this version or by a concurrent migrate (the
        // name includes the version, so it is this very definition), is success. CREATE
        // PROCEDURE is not preparable: sent as text.
        for procedure in &self.procedures {
            match sqlx::raw_sql(AssertSqlSafe(procedure.clone()))
                .execute(&self.pool)
                .await
            {
                Ok(_) => {}
                Err(sqlx::Error::Database(db))
                    if db
                        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|my| my.number() == ER_SP_ALREADY_EXISTS) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Inserts `bodies` with their `sizes` for `client` in order, on `conn`: the bulk path.
    async fn insert<'c, E>(
        &self,
        conn: E,
        client: &[u8; 16],
        bodies: &[String],
        sizes: &[i64],
        ttl: Duration,
    ) -> Result<(), sqlx::Error>
    where
        E: Executor<'c, Database = MySql>,
    {
        let ttl = micros(ttl);
        let mut text = self.sql.insert_head.clone();
        for i in 0..bodies.len() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(INSERT_ROW);
        }
        let mut query = sqlx::query(AssertSqlSafe(text));
        for (body, size) in bodies.iter().zip(sizes) {
            query = query
                .bind(client.as_slice())
                .bind(body.as_str())
                .bind(*size)
                .bind(ttl);
        }
        query.execute(conn).await?;
        Ok(())
    }

    /// Runs a `CALL` of a procedure that appends on one connection; returns how many messages
    /// it appended.
    async fn call_append<'q>(
        &self,
        call: sqlx::query::Query<'q, MySql, <MySql as sqlx::Database>::Arguments>,
    ) -> Result<usize, sqlx::Error> {
        let mut conn = Guarded::acquire(&self.pool).await?;
        let called = call.fetch_all(conn.busy()?).await;
        conn.idle();
        match called {
            Ok(rows) => {
                let kept: i64 = match rows.first() {
                    Some(row) => row.try_get(0)?,
                    None => 0,
                };
                Ok(usize::try_from(kept).unwrap_or(0))
            }
            Err(err) => {
                // The handler rolls back on every error it can catch, but a statement cut
                // short (KILL QUERY, a statement time limit) may end the procedure without
                // it. An open transaction must not go back to the pool: the next call's
                // START TRANSACTION would commit it, half done. Only failures pay this extra
                // round trip.
                let rolled_back = sqlx::raw_sql(AssertSqlSafe("ROLLBACK"))
                    .execute(conn.busy()?)
                    .await;
                conn.idle();
                if rolled_back.is_err() {
                    conn.close_on_drop();
                }
                Err(err)
            }
        }
    }

    pub(crate) async fn append(
        &self,
        client: &[u8; 16],
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        if adding.len() > INSERT_CHUNK {
            return self.append_in_chunks(client, None, adding, ttl).await;
        }
        let (one, size, many) = one_or_many(adding)?;
        let call = sqlx::query(self.sql.append.clone())
            .bind(client.as_slice())
            .bind(micros(ttl))
            .bind(adding.max_messages)
            .bind(adding.max_bytes)
            .bind(one)
            .bind(size)
            .bind(many);
        self.call_append(call).await
    }

    pub(crate) async fn lease(
        &self,
        client: &[u8; 16],
        lease: &[u8; 16],
        lease_timeout: Duration,
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let mut conn = Guarded::acquire(&self.pool).await?;
        let rows = sqlx::query(self.sql.lease.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(micros(lease_timeout))
            .fetch_all(conn.busy()?)
            .await;
        conn.idle();
        rows?
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
        if adding.is_empty() {
            // One statement: no procedure needed.
            let mut conn = Guarded::acquire(&self.pool).await?;
            let done = sqlx::query(self.end_lease(outcome).clone())
                .bind(client.as_slice())
                .bind(lease.as_slice())
                .execute(conn.busy()?)
                .await;
            conn.idle();
            done?;
            return Ok(0);
        }
        if adding.len() > INSERT_CHUNK {
            return self
                .append_in_chunks(client, Some((lease, outcome)), adding, ttl)
                .await;
        }
        let (one, size, many) = one_or_many(adding)?;
        let call = sqlx::query(self.sql.settle.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(outcome == Outcome::Consumed)
            .bind(micros(ttl))
            .bind(adding.max_messages)
            .bind(adding.max_bytes)
            .bind(one)
            .bind(size)
            .bind(many);
        self.call_append(call).await
    }

    /// The statement that ends a lease as `outcome` says (client, lease).
    fn end_lease(&self, outcome: Outcome) -> &SqlStr {
        match outcome {
            Outcome::Consumed => &self.sql.consume,
            Outcome::Released => &self.sql.release,
        }
    }

    /// An append (after ending `lease`) of more messages than one `CALL` takes: the
    /// procedures' steps as statements in one transaction, the fitting prefix counted here.
    async fn append_in_chunks(
        &self,
        client: &[u8; 16],
        lease: Option<(&[u8; 16], Outcome)>,
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        // A failure leaves the connection busy, and so closed: the transaction goes with it.
        let mut conn = Guarded::acquire(&self.pool).await?;
        let mut tx = conn.busy()?.begin().await?;
        sqlx::query(self.sql.lock.clone())
            .bind(client.as_slice())
            .execute(&mut *tx)
            .await?;
        if let Some((lease, outcome)) = lease {
            sqlx::query(self.end_lease(outcome).clone())
                .bind(client.as_slice())
                .bind(lease.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(self.sql.expire.clone())
            .bind(client.as_slice())
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
        tx.commit().await?;
        conn.idle();
        Ok(kept)
    }

    /// One batch of the sweep: the id range of the expired rows and its first window, one
    /// window, or one batch of lock rows; how many message rows it deleted, and where to go on.
    pub(crate) async fn sweep_batch(
        &self,
        cursor: SweepCursor,
    ) -> Result<(u64, Option<SweepCursor>), sqlx::Error> {
        // Statements in a row: a failure leaves the connection busy, and so closed.
        let mut guarded = Guarded::acquire(&self.pool).await?;
        let conn = guarded.busy()?;
        let (next, high) = match cursor {
            SweepCursor::Start => {
                let range = sqlx::query(self.sql.sweep_range.clone())
                    .fetch_one(&mut *conn)
                    .await?;
                match (
                    range.try_get::<Option<i64>, _>(0)?,
                    range.try_get::<Option<i64>, _>(1)?,
                ) {
                    (Some(low), Some(high)) => (low, high),
                    _ => {
                        guarded.idle();
                        return Ok((0, Some(SweepCursor::Locks)));
                    }
                }
            }
            SweepCursor::Window { next, high } => (next, high),
            SweepCursor::Locks => {
                // A lock row only matters while an append holds it, and the delete waits for
                // that append's commit.
                let deleted = sqlx::query(self.sql.sweep_locks.clone())
                    .bind(SWEEP_LOCKS_BATCH)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                guarded.idle();
                let more = deleted >= SWEEP_LOCKS_BATCH.unsigned_abs();
                return Ok((0, more.then_some(SweepCursor::Locks)));
            }
        };
        let end = next.saturating_add(SWEEP_WINDOW - 1).min(high);
        let deleted = sqlx::query(self.sql.sweep.clone())
            .bind(next)
            .bind(end)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        guarded.idle();
        let after = if end >= high {
            SweepCursor::Locks
        } else {
            SweepCursor::Window {
                next: end + 1,
                high,
            }
        };
        Ok((deleted, Some(after)))
    }

    /// The plan of the lease procedure's claim, with literals for its parameters.
    pub(crate) async fn explain_lease(
        &self,
        client: &[u8; 16],
    ) -> Result<Vec<String>, sqlx::Error> {
        let t = format!("`{}`", self.table);
        let text = claim(
            &t,
            &format!("X'{}'", hex(client)),
            &format!("X'{}'", "00".repeat(16)),
            "30000000",
        );
        let rows = sqlx::raw_sql(AssertSqlSafe(format!("EXPLAIN {text}")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let field = |name: &str| -> Result<String, sqlx::Error> {
                    let raw: Option<Vec<u8>> = row.try_get_unchecked(name)?;
                    Ok(raw
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                        .unwrap_or_else(|| "NULL".to_owned()))
                };
                Ok(format!(
                    "table={} type={} key={} rows={} extra={}",
                    field("table")?,
                    field("type")?,
                    field("key")?,
                    field("rows")?,
                    field("Extra")?,
                ))
            })
            .collect()
    }
}

/// The procedures' three message parameters: one message as it is with its size, or several
/// as a JSON array of `[body, size, running total]` (NULL the others).
#[allow(clippy::type_complexity)]
fn one_or_many(
    adding: &Adding,
) -> Result<(Option<&str>, Option<i64>, Option<String>), sqlx::Error> {
    match (&adding.bodies[..], &adding.sizes[..]) {
        ([one], [size]) => Ok((Some(one.as_str()), Some(*size), None)),
        _ => {
            let triples: Vec<(&str, i64, i64)> = adding
                .bodies
                .iter()
                .zip(&adding.sizes)
                .zip(&adding.totals)
                .map(|((body, size), total)| (body.as_str(), *size, *total))
                .collect();
            serde_json::to_string(&triples)
                .map(|json| (None, None, Some(json)))
                .map_err(|err| sqlx::Error::Encode(Box::new(err)))
        }
    }
}

/// A lazy pool for `url`, and the options to probe the server with.
///
/// Every connection runs at `READ COMMITTED` with the server's statement time limits set to
/// the call timeout.
pub(crate) fn pool(
    url: &str,
    settings: &PoolSettings,
) -> Result<(MySqlPool, MySqlConnectOptions), sqlx::Error> {
    let options: MySqlConnectOptions = url.parse()?;
    let idle_ping = settings.idle_ping;
    let limit = settings.statement_timeout();
    let pool = MySqlPoolOptions::new()
        .max_connections(settings.max_connections.unwrap_or(10))
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // Under REPEATABLE READ InnoDB takes gap locks on the (client, id) range, and
                // concurrent requests of one client queue behind each other.
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                let lock_wait = limit.as_secs().clamp(1, 1_073_741_824);
                conn.execute(AssertSqlSafe(format!(
                    "SET SESSION innodb_lock_wait_timeout = {lock_wait}"
                )))
                .await?;
                // MariaDB's limit covers every statement; MySQL's only SELECTs.
                let mariadb = format!(
                    "SET SESSION max_statement_time = {:.3}",
                    limit.as_secs_f64().max(0.001)
                );
                if conn.execute(AssertSqlSafe(mariadb)).await.is_err() {
                    let millis = limit.as_millis().max(1);
                    conn.execute(AssertSqlSafe(format!(
                        "SET SESSION max_execution_time = {millis}"
                    )))
                    .await?;
                }
                Ok(())
            })
        })
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= idle_ping {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options.clone());
    Ok((pool, options))
}
