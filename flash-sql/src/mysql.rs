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

use flash_core::Outcome;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, MySql, Row, SqlSafeStr, SqlStr};

use crate::builder::PoolSettings;
use crate::store::{Driver, hex, micros};
use crate::table::TableName;

/// Messages per `CALL` (one JSON parameter) or, above that, rows per `INSERT` (three parameters
/// each, far below the 65 535 a statement may have).
const INSERT_CHUNK: usize = 1000;
/// Ids per sweep statement.
const SWEEP_WINDOW: i64 = 10_000;

const NOW: &str = "UTC_TIMESTAMP(6)";

/// The version in the procedures' names. A release that changes what a procedure does names
/// it anew, so that processes of the old and the new release can run side by side during a
/// deployment, each calling the procedures it was built for.
const PROCEDURES_VERSION: u32 = 1;

/// MySQL's "PROCEDURE … already exists".
const ER_SP_ALREADY_EXISTS: u16 = 1304;

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
    /// `CALL` of the settle procedure (client, lease, consume?, TTL, one body, JSON bodies).
    settle: SqlStr,
    /// `CALL` of the append procedure (client, TTL, one body, JSON bodies).
    append: SqlStr,
    /// Deletes what a dead client left (parameters: client, client), before a bulk append.
    expire: SqlStr,
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

/// One row of an insert: client, body, TTL in microseconds.
const INSERT_ROW: &str = "(?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)";

/// The name of `table`'s procedure for `call`: `<table>_<call>_v<version>`.
///
/// Routine names are case-insensitive on MySQL and MariaDB while table names are not (on
/// Linux), so a name with capitals also carries a hash of its exact spelling: tables `Flash`
/// and `flash` never share procedures (nor find the other's already there). At most 63 bytes
/// (48 + `_settle_v1` + `_` and four hex digits), within the 64 of an identifier.
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

/// Inserts `p_body` (one message) or the JSON array of strings `p_bodies` (several, in order:
/// `ORDER BY` fixes the order in which the rows, and so their ids, are inserted) for
/// `p_client`. A single message goes in as a plain `INSERT … VALUES`, which InnoDB's default
/// `innodb_autoinc_lock_mode` on MariaDB serves without the table-level AUTO-INC lock an
/// `INSERT … SELECT` holds for its duration.
fn insert_procedure_step(t: &str) -> String {
    let expires = format!("{NOW} + INTERVAL p_ttl MICROSECOND");
    format!(
        "IF p_bodies IS NULL THEN \
           INSERT INTO {t} (client, body, expires_at) VALUES (p_client, p_body, {expires}); \
         ELSE \
           INSERT INTO {t} (client, body, expires_at) \
           SELECT p_client, j.body, {expires} FROM JSON_TABLE(p_bodies, '$[*]' COLUMNS (\
             n FOR ORDINALITY, body LONGTEXT PATH '$')) AS j ORDER BY j.n; \
         END IF;"
    )
}

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
        let insert = insert_procedure_step(&t);
        let procedures = vec![
            // Not a transaction, as before the procedure: the UPDATE is the atomic claim, and
            // the SELECT reads back what it stamped (only when it stamped anything).
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
            // Ending the lease and appending commit together or not at all. The handler rolls
            // back on any error and passes it on unchanged (a lost deadlock stays 1213, and the
            // store tries again).
            format!(
                "CREATE PROCEDURE `{settle}`(p_client BINARY(16), p_lease BINARY(16), \
                   p_consume BOOLEAN, p_ttl BIGINT, p_body {TEXT_PARAMETER}, \
                   p_bodies {TEXT_PARAMETER}) {head} \
                 BEGIN \
                   DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END; \
                   START TRANSACTION; \
                   IF p_consume THEN \
                     DELETE FROM {t} WHERE client = p_client AND lease = p_lease; \
                   ELSE \
                     UPDATE {t} SET lease = NULL, leased_until = NULL \
                     WHERE client = p_client AND lease = p_lease; \
                   END IF; \
                   {insert} \
                   COMMIT; \
                 END"
            ),
            // Two statements, each atomic, as before the procedure: deleting a dead client's
            // rows first is harmless on its own, and the insert then starts the client afresh.
            format!(
                "CREATE PROCEDURE `{append}`(p_client BINARY(16), p_ttl BIGINT, \
                   p_body {TEXT_PARAMETER}, p_bodies {TEXT_PARAMETER}) {head} \
                 BEGIN \
                   {}; \
                   {insert} \
                 END",
                expire(&t, "p_client")
            ),
        ];
        let sql = Statements {
            lease: sql(format!("CALL `{lease}`(?, ?, ?)")),
            settle: sql(format!("CALL `{settle}`(?, ?, ?, ?, ?, ?)")),
            append: sql(format!("CALL `{append}`(?, ?, ?, ?)")),
            expire: sql(expire(&t, "?")),
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
            insert_head: format!("INSERT INTO {t} (client, body, expires_at) VALUES "),
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

    /// Inserts `bodies` for `client` in order, in chunks, on `conn`: the bulk path.
    async fn insert<'c, E>(
        &self,
        conn: E,
        client: &[u8; 16],
        bodies: &[String],
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
        for body in bodies {
            query = query.bind(client.as_slice()).bind(body.as_str()).bind(ttl);
        }
        query.execute(conn).await?;
        Ok(())
    }

    pub(crate) async fn append(
        &self,
        client: &[u8; 16],
        bodies: &[String],
        ttl: Duration,
    ) -> Result<(), sqlx::Error> {
        if bodies.len() <= INSERT_CHUNK {
            let (one, many) = one_or_many(bodies)?;
            sqlx::query(self.sql.append.clone())
                .bind(client.as_slice())
                .bind(micros(ttl))
                .bind(one)
                .bind(many)
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        // Beyond a chunk, the procedure's steps as statements: the expiry on its own, the
        // chunks in one transaction.
        let mut conn = self.pool.acquire().await?;
        sqlx::query(self.sql.expire.clone())
            .bind(client.as_slice())
            .bind(client.as_slice())
            .execute(&mut *conn)
            .await?;
        let mut tx = conn.begin().await?;
        for chunk in bodies.chunks(INSERT_CHUNK) {
            self.insert(&mut *tx, client, chunk, ttl).await?;
        }
        tx.commit().await
    }

    pub(crate) async fn lease(
        &self,
        client: &[u8; 16],
        lease: &[u8; 16],
        lease_for: Duration,
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        sqlx::query(self.sql.lease.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(micros(lease_for))
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
        bodies: &[String],
        ttl: Duration,
    ) -> Result<(), sqlx::Error> {
        if bodies.is_empty() {
            // One statement: no procedure needed.
            sqlx::query(self.end_lease(outcome).clone())
                .bind(client.as_slice())
                .bind(lease.as_slice())
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        if bodies.len() > INSERT_CHUNK {
            return self
                .settle_in_chunks(client, lease, outcome, bodies, ttl)
                .await;
        }
        let (one, many) = one_or_many(bodies)?;
        let mut conn = self.pool.acquire().await?;
        let called = sqlx::query(self.sql.settle.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .bind(outcome == Outcome::Consumed)
            .bind(micros(ttl))
            .bind(one)
            .bind(many)
            .execute(&mut *conn)
            .await;
        if let Err(err) = called {
            // The handler rolls back on every error it can catch, but a statement cut short
            // (KILL QUERY, a statement time limit) may end the procedure without it. An open
            // transaction must not go back to the pool: the next settle's START TRANSACTION
            // would commit it, half done. Only failures pay this extra round trip.
            if sqlx::raw_sql(AssertSqlSafe("ROLLBACK"))
                .execute(&mut *conn)
                .await
                .is_err()
            {
                conn.close_on_drop();
            }
            return Err(err);
        }
        Ok(())
    }

    /// The statement that ends a lease as `outcome` says (client, lease).
    fn end_lease(&self, outcome: Outcome) -> &SqlStr {
        match outcome {
            Outcome::Consumed => &self.sql.consume,
            Outcome::Released => &self.sql.release,
        }
    }

    /// A settle with more messages than one `CALL` takes: the procedure's steps as statements
    /// in one transaction.
    async fn settle_in_chunks(
        &self,
        client: &[u8; 16],
        lease: &[u8; 16],
        outcome: Outcome,
        bodies: &[String],
        ttl: Duration,
    ) -> Result<(), sqlx::Error> {
        let statement = self.end_lease(outcome);
        let mut tx = self.pool.begin().await?;
        sqlx::query(statement.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .execute(&mut *tx)
            .await?;
        for chunk in bodies.chunks(INSERT_CHUNK) {
            self.insert(&mut *tx, client, chunk, ttl).await?;
        }
        tx.commit().await
    }

    pub(crate) async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let range = sqlx::query(self.sql.sweep_range.clone())
            .fetch_one(&mut *conn)
            .await?;
        let (Some(low), Some(high)) = (
            range.try_get::<Option<i64>, _>(0)?,
            range.try_get::<Option<i64>, _>(1)?,
        ) else {
            return Ok(0);
        };
        let mut total = 0;
        let mut start = low;
        while start <= high {
            let end = start.saturating_add(SWEEP_WINDOW - 1).min(high);
            total += sqlx::query(self.sql.sweep.clone())
                .bind(start)
                .bind(end)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            start = end.saturating_add(1);
            if end == i64::MAX {
                break;
            }
        }
        Ok(total)
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

/// The procedures' two body parameters: one message as it is, or several as a JSON array of
/// strings (NULL the other).
fn one_or_many(bodies: &[String]) -> Result<(Option<&str>, Option<String>), sqlx::Error> {
    match bodies {
        [one] => Ok((Some(one.as_str()), None)),
        many => serde_json::to_string(many)
            .map(|json| (None, Some(json)))
            .map_err(|err| sqlx::Error::Encode(Box::new(err))),
    }
}

/// A lazy pool for `url`, and the options to probe the server with.
pub(crate) fn pool(
    url: &str,
    settings: &PoolSettings,
) -> Result<(MySqlPool, MySqlConnectOptions), sqlx::Error> {
    let options: MySqlConnectOptions = url.parse()?;
    let idle_ping = settings.idle_ping;
    let pool = MySqlPoolOptions::new()
        .max_connections(settings.max_connections.unwrap_or(10))
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // Under REPEATABLE READ InnoDB takes gap locks on the (client, id) range, and
                // concurrent requests of one client queue behind each other.
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
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
