//! PostgreSQL: every call is one statement (data-modifying CTEs), timestamps from the server's
//! `now()`.

use std::time::Duration;

use flash_core::storage::Outcome;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Row, SqlSafeStr, SqlStr};

use crate::builder::PoolSettings;
use crate::store::{Adding, Driver, Guarded, SweepCursor, hex, micros};
use crate::table::TableName;

/// Rows deleted per sweep batch (one statement, one commit).
const SWEEP_BATCH: i64 = 5_000;

pub(crate) struct PgBackend {
    pool: PgPool,
    table: String,
    sql: Statements,
}

struct Statements {
    /// `SELECT` of the append function (client, lease or NULL, consume?, bodies, sizes,
    /// running totals, TTL, most messages, most bytes).
    append: SqlStr,
    lease: SqlStr,
    consume: SqlStr,
    release: SqlStr,
    sweep: SqlStr,
}

fn sql(text: String) -> SqlStr {
    AssertSqlSafe(text).into_sql_str()
}

/// The version in the append function's name. A release that changes what the function does
/// names it anew, so processes of the old and the new release can run side by side during a
/// deployment.
const FUNCTION_VERSION: u32 = 1;

/// The append function's name: `<table>_append_v<version>` (at most 48 + 10 bytes).
fn function_name(table: &str) -> String {
    format!("{table}_append_v{FUNCTION_VERSION}")
}

/// The append function's argument types, to find it with `to_regprocedure`.
const FUNCTION_ARGS: &str = "bytea, bytea, boolean, text[], int8[], int8[], int8, int8, int8";

/// The append function: ends the lease `p_lease` (when not NULL) as `p_consume` says, then
/// appends the prefix of the messages that fits the limits beside what the client has
/// pending, and returns how many it appended.
///
/// A function because PostgreSQL takes one snapshot per statement: one statement cannot wait
/// for a lock and then count what the lock's previous holder committed. A PL/pgSQL function
/// runs each of its statements on a fresh snapshot (at `READ COMMITTED`, the default), still in
/// one round trip and one transaction. The lock is a transaction-scoped advisory lock on the
/// client (keyed by the table and a hash of the client id; two clients sharing a hash only
/// wait on each other): concurrent appends of one client take turns for the count and the
/// insert, so together they never exceed the limits. Every message of `p_bodies` is no longer
/// than the text limit already, so the server compares counts and running totals only.
fn append_function(name: &str, t: &str, table: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION \"{name}\"(p_client bytea, p_lease bytea, \
           p_consume boolean, p_bodies text[], p_sizes int8[], p_totals int8[], p_ttl int8, \
           p_max_messages int8, p_max_bytes int8) RETURNS int8 LANGUAGE plpgsql AS $fn$ \
         DECLARE v_count int8; v_bytes int8; v_kept int8; \
         BEGIN \
           IF p_lease IS NOT NULL THEN \
             IF p_consume THEN \
               DELETE FROM {t} WHERE client = p_client AND lease = p_lease; \
             ELSE \
               UPDATE {t} SET lease = NULL, leased_until = NULL \
               WHERE client = p_client AND lease = p_lease; \
             END IF; \
           END IF; \
           PERFORM pg_advisory_xact_lock(hashtext('flash-sql {table}'), \
             hashtext(encode(p_client, 'hex'))); \
           DELETE FROM {t} WHERE client = p_client \
             AND (SELECT max(expires_at) FROM {t} WHERE client = p_client) <= now(); \
           SELECT count(*), coalesce(sum(size), 0) INTO v_count, v_bytes \
             FROM {t} WHERE client = p_client; \
           INSERT INTO {t} (client, body, size, expires_at) \
             SELECT p_client, m.body, m.size, now() + p_ttl * interval '1 microsecond' \
             FROM unnest(p_bodies, p_sizes, p_totals) WITH ORDINALITY AS m(body, size, total, n) \
             WHERE m.n <= p_max_messages - v_count AND m.total <= p_max_bytes - v_bytes \
             ORDER BY m.n; \
           GET DIAGNOSTICS v_kept = ROW_COUNT; \
           RETURN v_kept; \
         END $fn$"
    )
}

impl PgBackend {
    pub(crate) fn new(pool: PgPool, table: &TableName) -> Self {
        let t = format!("\"{}\"", table.as_str());
        // A client is alive while its newest expiry is in the future.
        let alive = format!("(SELECT max(expires_at) FROM {t} WHERE client = $1)");
        let function = function_name(table.as_str());
        let sql = Statements {
            append: sql(format!(
                "SELECT \"{function}\"($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )),
            lease: sql(format!(
                "UPDATE {t} SET lease = $2, leased_until = now() + $3 * interval '1 microsecond' \
                 WHERE id IN (SELECT id FROM {t} \
                   WHERE client = $1 AND (leased_until IS NULL OR leased_until <= now()) \
                   AND {alive} > now() \
                   ORDER BY id FOR UPDATE SKIP LOCKED) \
                 RETURNING id, body"
            )),
            consume: sql(format!("DELETE FROM {t} WHERE client = $1 AND lease = $2")),
            release: sql(format!(
                "UPDATE {t} SET lease = NULL, leased_until = NULL WHERE client = $1 AND lease = $2"
            )),
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
        let function = function_name(t);
        // Already there: no DDL, so no lock that would make running requests wait.
        let present: bool = sqlx::query_scalar(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL \
             AND to_regclass($3) IS NOT NULL AND to_regprocedure($4) IS NOT NULL \
             AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
                         AND attname = 'size' AND NOT attisdropped)",
        )
        .bind(format!("\"{t}\""))
        .bind(format!("\"{t}_client\""))
        .bind(format!("\"{t}_expires\""))
        .bind(format!("\"{function}\"({FUNCTION_ARGS})"))
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
                   size INTEGER NOT NULL DEFAULT 0, \
                   lease BYTEA, \
                   leased_until TIMESTAMPTZ, \
                   expires_at TIMESTAMPTZ NOT NULL)"
            ),
            // A table of an earlier release: its rows count as size 0.
            format!("ALTER TABLE \"{t}\" ADD COLUMN IF NOT EXISTS size INTEGER NOT NULL DEFAULT 0"),
            format!("CREATE INDEX IF NOT EXISTS \"{t}_client\" ON \"{t}\" (client, id)"),
            format!("CREATE INDEX IF NOT EXISTS \"{t}_expires\" ON \"{t}\" (expires_at)"),
            append_function(&function, &format!("\"{t}\""), t),
        ] {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// One call of the append function; returns how many messages it appended.
    async fn call_append(
        &self,
        client: &[u8; 16],
        lease: Option<(&[u8; 16], Outcome)>,
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        let mut conn = Guarded::acquire(&self.pool).await?;
        let kept: Result<i64, _> = sqlx::query_scalar(self.sql.append.clone())
            .bind(client.as_slice())
            .bind(lease.map(|(lease, _)| lease.as_slice()))
            .bind(lease.is_some_and(|(_, outcome)| outcome == Outcome::Consumed))
            .bind(&adding.bodies)
            .bind(&adding.sizes)
            .bind(&adding.totals)
            .bind(micros(ttl))
            .bind(adding.max_messages)
            .bind(adding.max_bytes)
            .fetch_one(conn.busy()?)
            .await;
        conn.idle();
        Ok(usize::try_from(kept?).unwrap_or(0))
    }

    pub(crate) async fn append(
        &self,
        client: &[u8; 16],
        adding: &Adding,
        ttl: Duration,
    ) -> Result<usize, sqlx::Error> {
        self.call_append(client, None, adding, ttl).await
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
        if !adding.is_empty() {
            return self
                .call_append(client, Some((lease, outcome)), adding, ttl)
                .await;
        }
        let statement = match outcome {
            Outcome::Consumed => &self.sql.consume,
            Outcome::Released => &self.sql.release,
        };
        let mut conn = Guarded::acquire(&self.pool).await?;
        let done = sqlx::query(statement.clone())
            .bind(client.as_slice())
            .bind(lease.as_slice())
            .execute(conn.busy()?)
            .await;
        conn.idle();
        done?;
        Ok(0)
    }

    /// One batch of the sweep: how many rows it deleted, and whether to go on.
    pub(crate) async fn sweep_batch(
        &self,
        _: SweepCursor,
    ) -> Result<(u64, Option<SweepCursor>), sqlx::Error> {
        let mut conn = Guarded::acquire(&self.pool).await?;
        let deleted = sqlx::query(self.sql.sweep.clone())
            .bind(SWEEP_BATCH)
            .execute(conn.busy()?)
            .await?
            .rows_affected();
        conn.idle();
        let more = deleted >= SWEEP_BATCH.unsigned_abs();
        Ok((deleted, more.then_some(SweepCursor::Start)))
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
///
/// Every connection runs with `statement_timeout` set to the call timeout (unless the URL sets
/// it).
pub(crate) fn pool(
    url: &str,
    settings: &PoolSettings,
) -> Result<(PgPool, PgConnectOptions), sqlx::Error> {
    let mut options: PgConnectOptions = url.parse()?;
    if !url.contains("statement_timeout") {
        let millis = settings.statement_timeout().as_millis().max(1);
        options = options.options([("statement_timeout", millis.to_string())]);
    }
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
