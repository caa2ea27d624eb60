//! MySQL 8 and MariaDB ≥ 10.5: no `UPDATE … RETURNING` on either, so a lease is an atomic
//! `UPDATE` that stamps the rows with the lease id, then a `SELECT` of the rows carrying it.
//! Connections run at `READ COMMITTED`; timestamps come from the server's `UTC_TIMESTAMP(6)`.

use std::time::Duration;

use flash_core::Outcome;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, MySql, Row, SqlSafeStr, SqlStr};

use crate::builder::PoolSettings;
use crate::store::{Driver, hex, micros};
use crate::table::TableName;

/// Rows per `INSERT` (three parameters each, far below the 65 535 a statement may have).
const INSERT_CHUNK: usize = 1000;
/// Ids per sweep statement.
const SWEEP_WINDOW: i64 = 10_000;

const NOW: &str = "UTC_TIMESTAMP(6)";

pub(crate) struct MySqlBackend {
    pool: MySqlPool,
    table: String,
    sql: Statements,
}

struct Statements {
    /// Deletes what a dead client left (parameters: client, client).
    expire: SqlStr,
    lease: SqlStr,
    leased: SqlStr,
    consume: SqlStr,
    release: SqlStr,
    sweep_range: SqlStr,
    sweep: SqlStr,
    /// `INSERT … VALUES` with one row, the prefix of every insert.
    insert_head: String,
}

fn sql(text: String) -> SqlStr {
    AssertSqlSafe(text).into_sql_str()
}

/// One row of an insert: client, body, TTL in microseconds.
const INSERT_ROW: &str = "(?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)";

impl MySqlBackend {
    pub(crate) fn new(pool: MySqlPool, table: &TableName) -> Self {
        let t = format!("`{}`", table.as_str());
        // MySQL refuses a subquery on the table being changed unless it is materialized: an
        // aggregate in a derived table is (on MariaDB too).
        let newest =
            format!("(SELECT m FROM (SELECT MAX(expires_at) AS m FROM {t} WHERE client = ?) AS c)");
        let sql = Statements {
            expire: sql(format!(
                "DELETE FROM {t} WHERE client = ? AND {newest} <= {NOW}"
            )),
            lease: sql(format!(
                "UPDATE {t} SET lease = ?, leased_until = {NOW} + INTERVAL ? MICROSECOND \
                 WHERE client = ? AND (leased_until IS NULL OR leased_until <= {NOW}) \
                 AND {newest} > {NOW} ORDER BY id"
            )),
            leased: sql(format!(
                "SELECT id, body FROM {t} WHERE client = ? AND lease = ? ORDER BY id"
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
            insert_head: format!("INSERT INTO {t} (client, body, expires_at) VALUES "),
        };
        MySqlBackend {
            pool,
            table: table.as_str().to_owned(),
            sql,
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
        Ok(())
    }

    /// Inserts `bodies` for `client` in order, in chunks, on `conn`.
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
        let mut conn = self.pool.acquire().await?;
        // Two statements, each atomic: deleting a dead client's rows first is harmless on
        // its own, and the insert then starts the client afresh.
        sqlx::query(self.sql.expire.clone())
            .bind(client.as_slice())
            .bind(client.as_slice())
            .execute(&mut *conn)
            .await?;
        if bodies.len() <= INSERT_CHUNK {
            return self.insert(&mut *conn, client, bodies, ttl).await;
        }
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
        let mut conn = self.pool.acquire().await?;
        // The UPDATE is the atomic claim (row locks in id order, rechecked at READ
        // COMMITTED); the SELECT reads back what it stamped.
        let claimed = sqlx::query(self.sql.lease.clone())
            .bind(lease.as_slice())
            .bind(micros(lease_for))
            .bind(client.as_slice())
            .bind(client.as_slice())
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if claimed == 0 {
            return Ok(Vec::new());
        }
        sqlx::query(self.sql.leased.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .fetch_all(&mut *conn)
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
        let statement = match outcome {
            Outcome::Consumed => &self.sql.consume,
            Outcome::Released => &self.sql.release,
        };
        let end = sqlx::query(statement.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice());
        if bodies.is_empty() {
            end.execute(&self.pool).await?;
            return Ok(());
        }
        // Ending the lease and appending commit together or not at all.
        let mut tx = self.pool.begin().await?;
        end.execute(&mut *tx).await?;
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

    pub(crate) async fn explain_lease(
        &self,
        client: &[u8; 16],
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut text = self.sql.lease.as_str().to_owned();
        for value in [
            format!("X'{}'", "00".repeat(16)),
            "30000000".to_owned(),
            format!("X'{}'", hex(client)),
            format!("X'{}'", hex(client)),
        ] {
            text = text.replacen('?', &value, 1);
        }
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
