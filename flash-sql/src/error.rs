//! From sqlx errors to flash errors, and which failures are worth another attempt.

use std::time::Duration;

use flash_core::{Error, ErrorKind};
use sqlx::error::DatabaseError;

use crate::store::{Driver, Inner};

/// Whether `err` rolled the whole operation back for a reason that another attempt can cure:
/// a lost deadlock or serialization check (PostgreSQL `40P01`/`40001`, MySQL 1213/1205), or an
/// SQLite lock that its busy handler does not wait for (`SQLITE_LOCKED`, `SQLITE_BUSY_SNAPSHOT`;
/// plain `SQLITE_BUSY` already waited the busy timeout).
pub(crate) fn is_retryable(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    let code = db.code();
    let code = code.as_deref().unwrap_or("");
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(my.number(), 1205 | 1213);
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let extended: i32 = code.parse().unwrap_or(0);
        return extended & 0xff == SQLITE_LOCKED || extended == SQLITE_BUSY_SNAPSHOT;
    }
    matches!(code, "40001" | "40P01")
}

/// Whether `err` is SQLite's plain "database is locked" (`SQLITE_BUSY`), which it also answers
/// at once, without the busy handler, where waiting could deadlock.
#[cfg(feature = "sqlite")]
pub(crate) fn is_sqlite_busy(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff)
            == Some(SQLITE_BUSY)
}

const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_READONLY: i32 = 8;
const SQLITE_CANTOPEN: i32 = 14;
#[cfg(feature = "sqlite")]
const SQLITE_BUSY_SNAPSHOT: i32 = 517;

/// The pause before attempt `attempt + 1`: 4, 8, 16 ms, with a little jitter so that two
/// losers of one deadlock do not meet again.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 2u64 << attempt.min(8);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_millis(base) + Duration::from_micros(nanos % (base * 500))
}

/// The flash error for `err`, which happened while the store ran `what`.
pub(crate) fn convert(err: sqlx::Error, inner: &Inner, what: &'static str) -> Error {
    let driver = inner.backend.driver();
    let at = format!(
        "{what} on {driver} at {}, table {}",
        inner.location,
        inner.table.as_str()
    );
    let (kind, context) = classify(&err, driver, at, inner.acquire_timeout);
    Error::with_source(kind, context, err)
}

/// The flash error for a call that ran out of its time.
pub(crate) fn timed_out(
    inner: &Inner,
    what: &'static str,
    timeout: Duration,
    elapsed: tokio::time::error::Elapsed,
) -> Error {
    Error::with_source(
        ErrorKind::Unavailable,
        format!(
            "{what} on {} at {}, table {}: no answer within {timeout:?} (the server is slow or \
             unreachable)",
            inner.backend.driver(),
            inner.location,
            inner.table.as_str()
        ),
        elapsed,
    )
}

/// The flash error for a failed first connection.
pub(crate) fn connect_failure(err: sqlx::Error, driver: Driver, at: String) -> Error {
    let (kind, context) = match &err {
        sqlx::Error::Database(db) => database(db.as_ref(), driver, at),
        sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => {
            (ErrorKind::Config, format!("{at}: bad configuration"))
        }
        // Refused, reset, unreachable, TLS handshake, protocol trouble: nothing to talk to.
        _ => (ErrorKind::Unavailable, format!("{at}: connection failed")),
    };
    Error::with_source(kind, context, err)
}

fn classify(
    err: &sqlx::Error,
    driver: Driver,
    at: String,
    acquire_timeout: Duration,
) -> (ErrorKind, String) {
    match err {
        sqlx::Error::PoolTimedOut => (
            ErrorKind::Unavailable,
            format!(
                "{at}: no connection within {:?} (the pool is exhausted or the server is \
                 unreachable)",
                acquire_timeout
            ),
        ),
        sqlx::Error::PoolClosed => (
            ErrorKind::Unavailable,
            format!("{at}: the store was closed"),
        ),
        // A protocol error too: a connection the server closed mid-handshake (a lazy pool
        // connects inside the call) is nothing to talk to, as at `connect_failure`.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => {
            (ErrorKind::Unavailable, format!("{at}: connection failed"))
        }
        sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => {
            (ErrorKind::Config, format!("{at}: bad configuration"))
        }
        sqlx::Error::Encode(_) => (ErrorKind::Encode, at),
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => (
            ErrorKind::Decode,
            format!("{at}: unexpected column types (is the table this crate's schema?)"),
        ),
        sqlx::Error::Database(db) => database(db.as_ref(), driver, at),
        _ => (ErrorKind::Backend, at),
    }
}

/// Classifies an error the server (or SQLite) answered with.
fn database(db: &dyn DatabaseError, driver: Driver, at: String) -> (ErrorKind, String) {
    let code = db.code();
    let code = code.as_deref().unwrap_or("");
    let missing = || {
        (
            ErrorKind::Config,
            format!("{at}: the table does not exist; run SqlStore::migrate() first"),
        )
    };
    match driver {
        Driver::Postgres => match code {
            "42P01" => missing(),
            "40001" | "40P01" => (
                ErrorKind::Unavailable,
                format!("{at}: lost to concurrent requests; try again"),
            ),
            // Connection exceptions, too many connections, shutting down, starting up,
            // statement timeout.
            c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => {
                (ErrorKind::Unavailable, format!("{at}: server unavailable"))
            }
            // Authentication, unknown database.
            c if c.starts_with("28") || c == "3D000" => (
                ErrorKind::Config,
                format!("{at}: connection refused by the server"),
            ),
            _ => (ErrorKind::Backend, at),
        },
        Driver::MySql => {
            #[cfg(feature = "mysql")]
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return match my.number() {
                    1146 => missing(),
                    // A table migrated by an earlier release, without the procedures each call
                    // is (or a dropped procedure).
                    1305 => (
                        ErrorKind::Config,
                        format!(
                            "{at}: the store's stored procedures do not exist; run \
                             SqlStore::migrate() first"
                        ),
                    ),
                    // EXECUTE denied on the procedures.
                    1370 => (
                        ErrorKind::Config,
                        format!(
                            "{at}: the user may not execute the store's stored procedures \
                             (GRANT EXECUTE)"
                        ),
                    ),
                    1205 | 1213 => (
                        ErrorKind::Unavailable,
                        format!("{at}: lost to concurrent requests; try again"),
                    ),
                    // Too many connections, server shutdown, gone away, lost, statement
                    // time limits (MariaDB, MySQL).
                    1040 | 1053 | 2006 | 2013 | 1969 | 3024 => {
                        (ErrorKind::Unavailable, format!("{at}: server unavailable"))
                    }
                    // Access denied, unknown database.
                    1044 | 1045 | 1049 => (
                        ErrorKind::Config,
                        format!("{at}: connection refused by the server"),
                    ),
                    _ => (ErrorKind::Backend, at),
                };
            }
            (ErrorKind::Backend, at)
        }
        Driver::Sqlite => {
            let extended: i32 = code.parse().unwrap_or(0);
            match extended & 0xff {
                SQLITE_BUSY | SQLITE_LOCKED => (
                    ErrorKind::Unavailable,
                    format!(
                        "{at}: the database stayed locked by another writer past the busy timeout"
                    ),
                ),
                SQLITE_CANTOPEN => (
                    ErrorKind::Unavailable,
                    format!("{at}: cannot open the database file"),
                ),
                SQLITE_READONLY => (
                    ErrorKind::Config,
                    format!("{at}: the database is read-only"),
                ),
                _ if db.message().starts_with("no such table") => missing(),
                _ => (ErrorKind::Backend, at),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn classify_kind(err: &sqlx::Error, driver: Driver) -> ErrorKind {
        classify(err, driver, String::new(), Duration::from_secs(1)).0
    }

    #[test]
    fn pool_and_connection_errors_are_unavailable() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            sqlx::Error::Protocol("expected a message, got end of stream".into()),
        ] {
            assert_eq!(
                classify_kind(&err, Driver::Postgres),
                ErrorKind::Unavailable
            );
            assert!(!is_retryable(&err), "{err}");
        }
        let err = sqlx::Error::Configuration("bad".into());
        assert_eq!(classify_kind(&err, Driver::MySql), ErrorKind::Config);
        let err = sqlx::Error::Decode("bad".into());
        assert_eq!(classify_kind(&err, Driver::Sqlite), ErrorKind::Decode);
    }

    #[test]
    fn backoff_grows_and_stays_small() {
        let pauses: Vec<Duration> = (1..4).map(backoff).collect();
        for (attempt, pause) in (1u32..).zip(&pauses) {
            let base = Duration::from_millis(2 << attempt);
            assert!(*pause >= base && *pause < base * 2, "{attempt}: {pause:?}");
        }
    }

    /// Errors the real servers raise with the codes that matter, classified and retried (or not).
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_codes() {
        let url = flash_testkit::urls::postgres();
        let Ok(pool) = sqlx::PgPool::connect(&url).await else {
            flash_testkit::unavailable::<()>("PostgreSQL", "connect failed");
            return;
        };
        for (code, kind, retry) in [
            ("40001", ErrorKind::Unavailable, true),
            ("40P01", ErrorKind::Unavailable, true),
            ("42P01", ErrorKind::Config, false),
            ("57014", ErrorKind::Unavailable, false),
            ("53300", ErrorKind::Unavailable, false),
            ("23505", ErrorKind::Backend, false),
        ] {
            let raise = format!("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{code}'; END $$");
            let err = sqlx::raw_sql(sqlx::AssertSqlSafe(raise))
                .execute(&pool)
                .await
                .unwrap_err();
            assert_eq!(classify_kind(&err, Driver::Postgres), kind, "{code}");
            assert_eq!(is_retryable(&err), retry, "{code}");
        }
    }

    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_numbers() {
        let url = flash_testkit::urls::mysql();
        let Ok(pool) = sqlx::MySqlPool::connect(&url).await else {
            flash_testkit::unavailable::<()>("MariaDB/MySQL", "connect failed");
            return;
        };
        for (number, kind, retry) in [
            (1213, ErrorKind::Unavailable, true),
            (1205, ErrorKind::Unavailable, true),
            (1146, ErrorKind::Config, false),
            (1305, ErrorKind::Config, false),
            (1370, ErrorKind::Config, false),
            (1040, ErrorKind::Unavailable, false),
            (1062, ErrorKind::Backend, false),
        ] {
            // MariaDB runs an anonymous block at top level (MySQL only inside stored programs).
            let signal = format!(
                "BEGIN NOT ATOMIC SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {number}, \
                 MESSAGE_TEXT = 'x'; END"
            );
            let err = sqlx::raw_sql(sqlx::AssertSqlSafe(signal))
                .execute(&pool)
                .await
                .unwrap_err();
            assert_eq!(classify_kind(&err, Driver::MySql), kind, "{number}: {err}");
            assert_eq!(is_retryable(&err), retry, "{number}");
        }
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_codes() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let err = sqlx::query("SELECT * FROM no_such_table")
            .execute(&pool)
            .await
            .unwrap_err();
        assert_eq!(classify_kind(&err, Driver::Sqlite), ErrorKind::Config);
        assert!(!is_retryable(&err));
        let err = sqlx::query("SELECT abs(-9223372036854775808)")
            .execute(&pool)
            .await
            .unwrap_err();
        assert_eq!(classify_kind(&err, Driver::Sqlite), ErrorKind::Backend);
    }
}
