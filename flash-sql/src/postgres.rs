//! PostgreSQL: every call is one statement (data-modifying CTEs), timestamps from the server's
//! `now()`.

use std::time::Duration;

use flash_core::Outcome;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Row, SqlSafeStr, SqlStr};

use crate::builder::PoolSettings;
use crate::store::{Driver, hex, micros};
use crate::table::TableName;

/// Rows deleted per sweep statement.
const SWEEP_BATCH: i64 = 10_000;

pub(crate) struct PgBackend {
    pool: PgPool,
    table: String,
    sql: Statements,
}

struct Statements {
    append: SqlStr,
    lease: SqlStr,
    consume: SqlStr,
    release: SqlStr,
    consume_append: SqlStr,
    release_append: SqlStr,
    sweep: SqlStr,
}

fn sql(text: String) -> SqlStr {
    AssertSqlSafe(text).into_sql_str()
}

/// `INSERT` of `$n` (a `text[]` of bodies, kept in order) for client `$1`, expiring `$m`
/// microseconds from now.
fn insert(t: &str, bodies: u8, ttl: u8) -> String {
    format!(
        "INSERT INTO {t} (client, body, expires_at) \
         SELECT $1, m.body, now() + ${ttl} * interval '1 microsecond' \
         FROM unnest(${bodies}::text[]) WITH ORDINALITY AS m(body, n) ORDER BY m.n"
    )
}

impl PgBackend {
    pub(crate) fn new(pool: PgPool, table: &TableName) -> Self {
        let t = format!("\"{}\"", table.as_str());
        // A client is alive while its newest expiry is in the future; a client whose every
        // row expired is dead, and an append first deletes what it left.
        let alive = format!("(SELECT max(expires_at) FROM {t} WHERE client = $1)");
        let consume = format!("DELETE FROM {t} WHERE client = $1 AND lease = $2");
        let release = format!(
            "UPDATE {t} SET lease = NULL, leased_until = NULL WHERE client = $1 AND lease = $2"
        );
        let sql = Statements {
            append: sql(format!(
                "WITH expired AS (DELETE FROM {t} WHERE client = $1 AND {alive} <= now()) {}",
                insert(&t, 2, 3)
            )),
            lease: sql(format!(
                "UPDATE {t} SET lease = $2, leased_until = now() + $3 * interval '1 microsecond' \
                 WHERE id IN (SELECT id FROM {t} \
                   WHERE client = $1 AND (leased_until IS NULL OR leased_until <= now()) \
                   AND {alive} > now() \
                   ORDER BY id FOR UPDATE SKIP LOCKED) \
                 RETURNING id, body"
            )),
            consume_append: sql(format!("WITH settled AS ({consume}) {}", insert(&t, 3, 4))),
            release_append: sql(format!("WITH settled AS ({release}) {}", insert(&t, 3, 4))),
            consume: sql(consume),
            release: sql(release),
            sweep: sql(format!(
                "DELETE FROM {t} WHERE id IN (\
                   SELECT d.id FROM {t} d WHERE d.expires_at <= now() \
                   AND NOT EXISTS (SELECT 1 FROM {t} a WHERE a.client = d.client \
                                   AND a.expires_at > now()) \
                   LIMIT $1 FOR UPDATE SKIP LOCKED)"
            )),
        };
        PgBackend {
            pool,
            table: table.as_str().to_owned(),
            sql,
        }
    }

    pub(crate) fn driver(&self) -> Driver {
        Driver::Postgres
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn migrate(&self) -> Result<(), sqlx::Error> {
        let t = &self.table;
        // Already there: no DDL, so no lock that would make running requests wait.
        let present: bool = sqlx::query_scalar(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL \
             AND to_regclass($3) IS NOT NULL",
        )
        .bind(format!("\"{t}\""))
        .bind(format!("\"{t}_client\""))
        .bind(format!("\"{t}_expires\""))
        .fetch_one(&self.pool)
        .await?;
        if present {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // Two processes migrating at once would race in CREATE TABLE IF NOT EXISTS.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("flash-sql migrate {t}"))
            .execute(&mut *tx)
            .await?;
        for statement in [
            format!(
                "CREATE TABLE IF NOT EXISTS \"{t}\" (\
                   id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                   client BYTEA NOT NULL, \
                   body TEXT NOT NULL, \
                   lease BYTEA, \
                   leased_until TIMESTAMPTZ, \
                   expires_at TIMESTAMPTZ NOT NULL)"
            ),
            format!("CREATE INDEX IF NOT EXISTS \"{t}_client\" ON \"{t}\" (client, id)"),
            format!("CREATE INDEX IF NOT EXISTS \"{t}_expires\" ON \"{t}\" (expires_at)"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    pub(crate) async fn append(
        &self,
        client: &[u8; 16],
        bodies: &[String],
        ttl: Duration,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(self.sql.append.clone())
            .bind(client.as_slice())
            .bind(bodies)
            .bind(micros(ttl))
            .execute(&self.pool)
            .await?;
        Ok(())
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
        let statement = match (outcome, bodies.is_empty()) {
            (Outcome::Consumed, true) => &self.sql.consume,
            (Outcome::Released, true) => &self.sql.release,
            (Outcome::Consumed, false) => &self.sql.consume_append,
            (Outcome::Released, false) => &self.sql.release_append,
        };
        let query = sqlx::query(statement.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice());
        let query = if bodies.is_empty() {
            query
        } else {
            query.bind(bodies).bind(micros(ttl))
        };
        query.execute(&self.pool).await?;
        Ok(())
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
        // Literals rather than parameters, so the plan is the one for this client's value.
        let hex = hex(client);
        let text = self
            .sql
            .lease
            .as_str()
            .replace("$1", &format!("'\\x{hex}'::bytea"))
            .replace("$2", &format!("'\\x{}'::bytea", "00".repeat(16)))
            .replace("$3", "30000000");
        let rows = sqlx::raw_sql(AssertSqlSafe(format!("EXPLAIN {text}")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| row.try_get::<String, _>(0)).collect()
    }
}

/// A lazy pool for `url`, and the options to probe the server with.
pub(crate) fn pool(
    url: &str,
    settings: &PoolSettings,
) -> Result<(PgPool, PgConnectOptions), sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let idle_ping = settings.idle_ping;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections.unwrap_or(10))
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
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
