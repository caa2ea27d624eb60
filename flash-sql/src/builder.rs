//! [`SqlStoreBuilder`]: the URL, the table and the pool settings.

use std::fmt;
use std::time::Duration;

use flash_core::{
    DEFAULT_CALL_TIMEOUT, Error, ErrorKind, Result,
    storage::{Redacted, redact_url},
};

use crate::store::{Driver, SqlStore};
use crate::table::{DEFAULT_TABLE, TableName};

/// Pool settings shared by the drivers.
pub(crate) struct PoolSettings {
    pub(crate) max_connections: Option<u32>,
    pub(crate) acquire_timeout: Duration,
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) busy_timeout: Duration,
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) idle_ping: Duration,
    pub(crate) call_timeout: Duration,
}

impl PoolSettings {
    /// The server's own time limit on one statement: the call's.
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) fn statement_timeout(&self) -> Duration {
        self.call_timeout.max(Duration::from_millis(1))
    }
}

/// Builds a [`SqlStore`]: the URL picks the driver, the rest has defaults.
///
/// ```
/// use std::time::Duration;
/// use flash_sql::SqlStore;
/// let builder = SqlStore::builder("postgres://flash@db.internal/app")
///     .table("flash_messages")
///     .max_connections(20)
///     .acquire_timeout(Duration::from_secs(2));
/// # let _ = builder;
/// ```
pub struct SqlStoreBuilder {
    url: String,
    table: String,
    settings: PoolSettings,
    /// Whether `acquire_timeout` / `busy_timeout` were set; if not, they follow the call
    /// timeout.
    acquire_set: bool,
    busy_set: bool,
}

impl SqlStoreBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        SqlStoreBuilder {
            url: url.into(),
            table: DEFAULT_TABLE.to_owned(),
            settings: PoolSettings {
                max_connections: None,
                acquire_timeout: DEFAULT_CALL_TIMEOUT,
                busy_timeout: DEFAULT_CALL_TIMEOUT,
                idle_ping: Duration::from_secs(1),
                call_timeout: DEFAULT_CALL_TIMEOUT,
            },
            acquire_set: false,
            busy_set: false,
        }
    }

    /// The table (default `flash_messages`): a plain identifier, at most
    /// [`MAX_TABLE_NAME_LEN`](crate::MAX_TABLE_NAME_LEN) bytes; anything else fails to connect
    /// with `ErrorKind::Config`. Unqualified: PostgreSQL finds it on the `search_path`,
    /// MySQL in the URL's database.
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The most connections the pool opens (default 10 on PostgreSQL and MySQL, 1 on SQLite,
    /// whose single writer makes more connections only wait on each other).
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.settings.max_connections = Some(max.max(1));
        self
    }

    /// The longest a call waits for a connection, opening one included (default: the call
    /// timeout, which bounds the whole call anyway). A call that waits longer, because the
    /// server is unreachable or every connection is busy, fails with
    /// `ErrorKind::Unavailable`. `connect()` waits this long for its first connection.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.settings.acquire_timeout = timeout;
        self.acquire_set = true;
        self
    }

    /// The most one call may take, waiting for a connection, retries and the statements
    /// included (default [`DEFAULT_CALL_TIMEOUT`], 2 s, as every flash store). A call that runs out of time fails with
    /// `ErrorKind::Unavailable` at once; the connection it leaves mid-statement goes back to
    /// the pool only once it is known to be idle again, and is closed otherwise. The same
    /// limit bounds each statement on the server (PostgreSQL `statement_timeout`, MariaDB
    /// `max_statement_time`, MySQL `max_execution_time`, InnoDB's `innodb_lock_wait_timeout`
    /// in whole seconds), so the server stops a statement the client no longer waits for.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.settings.call_timeout = timeout;
        self
    }

    /// SQLite only: how long a statement waits for another writer's lock before it fails
    /// with `ErrorKind::Unavailable` (default: the call timeout). Longer than the call
    /// timeout, a statement would go on waiting on sqlx's worker thread after its caller gave
    /// up, holding the connection from the calls after it.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.settings.busy_timeout = timeout;
        self.busy_set = true;
        self
    }

    /// PostgreSQL and MySQL: a pooled connection idle for this long is pinged before use, so a
    /// connection the server dropped (a restart, a proxy's idle timeout) is replaced rather
    /// than failing a call (default 1 s). Busy connections are not pinged: no extra round trip
    /// under load.
    #[must_use]
    pub fn ping_after_idle(mut self, idle: Duration) -> Self {
        self.settings.idle_ping = idle;
        self
    }

    /// Connects: checks the settings, opens one connection to prove the server is there, and
    /// returns a store whose pool opens connections as calls need them.
    ///
    /// # Errors
    /// `Config` for a bad table name, a URL that does not parse or a driver that is not
    /// compiled in; `Unavailable` when the server cannot be reached within the acquire
    /// timeout (the error's source says why: refused, timed out, …).
    pub async fn connect(self) -> Result<SqlStore> {
        let (store, probe) = self.build()?;
        probe.run(store.driver(), store.location()).await?;
        Ok(store)
    }

    /// Returns at once with a store that connects on first use: an application can start
    /// while its database is down, and calls fail with `Unavailable` until it is up.
    ///
    /// # Errors
    /// `Config` for a bad table name, a URL that does not parse or a driver that is not
    /// compiled in.
    pub fn connect_lazy(self) -> Result<SqlStore> {
        self.build().map(|(store, _)| store)
    }

    fn build(mut self) -> Result<(SqlStore, TimedProbe)> {
        // The call's deadline bounds every wait inside it unless one was set on its own.
        if !self.acquire_set {
            self.settings.acquire_timeout = self.settings.call_timeout;
        }
        if !self.busy_set {
            self.settings.busy_timeout = self.settings.call_timeout;
        }
        let table = TableName::new(&self.table)?;
        let driver = driver_for(&self.url)?;
        let location = redact_url(&self.url);
        let timeout = self.settings.acquire_timeout;
        let bad_url = |err: sqlx::Error| {
            Error::with_source(
                ErrorKind::Config,
                format!("cannot use the {driver} URL {location}"),
                err,
            )
        };
        let (backend, probe): (crate::store::Backend, Probe) = match driver {
            #[cfg(feature = "postgres")]
            Driver::Postgres => {
                let (pool, options) =
                    crate::postgres::pool(&self.url, &self.settings).map_err(bad_url)?;
                let backend =
                    crate::store::Backend::Postgres(crate::postgres::PgBackend::new(pool, &table));
                (backend, Probe::Postgres(options))
            }
            #[cfg(feature = "mysql")]
            Driver::MySql => {
                let (pool, options) =
                    crate::mysql::pool(&self.url, &self.settings).map_err(bad_url)?;
                let backend =
                    crate::store::Backend::MySql(crate::mysql::MySqlBackend::new(pool, &table));
                (backend, Probe::MySql(options))
            }
            #[cfg(feature = "sqlite")]
            Driver::Sqlite => {
                let (pool, options) =
                    crate::sqlite::pool(&self.url, &self.settings).map_err(bad_url)?;
                let backend =
                    crate::store::Backend::Sqlite(crate::sqlite::SqliteBackend::new(pool, &table));
                (backend, Probe::Sqlite(options))
            }
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "flash-sql was compiled without the `{}` feature needed for {location}",
                        other.name()
                    ),
                ));
            }
        };
        let store = SqlStore::from_parts(backend, table, location, timeout)
            .with_call_timeout(self.settings.call_timeout);
        Ok((store, probe.with_timeout(timeout)))
    }
}

/// The driver a URL's scheme names.
fn driver_for(url: &str) -> Result<Driver> {
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "postgres" | "postgresql" => Ok(Driver::Postgres),
        "mysql" | "mariadb" => Ok(Driver::MySql),
        "sqlite" => Ok(Driver::Sqlite),
        _ => Err(Error::new(
            ErrorKind::Config,
            format!(
                "unsupported database URL {}: use postgres://, postgresql://, mysql://, \
                 mariadb:// or sqlite:",
                Redacted(url)
            ),
        )),
    }
}

/// One connection opened and closed at once by [`SqlStoreBuilder::connect`], to report why a
/// server cannot be reached (the pool itself only says that it timed out).
enum Probe {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::postgres::PgConnectOptions),
    #[cfg(feature = "mysql")]
    MySql(sqlx::mysql::MySqlConnectOptions),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::sqlite::SqliteConnectOptions),
}

struct TimedProbe {
    probe: Probe,
    timeout: Duration,
}

impl Probe {
    fn with_timeout(self, timeout: Duration) -> TimedProbe {
        TimedProbe {
            probe: self,
            timeout,
        }
    }
}

impl TimedProbe {
    async fn run(self, driver: Driver, location: &str) -> Result<()> {
        async fn open<O>(options: O) -> Result<(), sqlx::Error>
        where
            O: sqlx::ConnectOptions,
            O::Connection: Sized,
        {
            use sqlx::Connection;
            options.connect().await?.close().await
        }
        let attempt = async {
            match self.probe {
                #[cfg(feature = "postgres")]
                Probe::Postgres(options) => open(options).await,
                #[cfg(feature = "mysql")]
                Probe::MySql(options) => open(options).await,
                #[cfg(feature = "sqlite")]
                Probe::Sqlite(options) => open(options).await,
            }
        };
        let outcome = tokio::time::timeout(self.timeout, attempt).await;
        let at = format!("connect to {driver} at {location}");
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(crate::error::connect_failure(err, driver, at)),
            Err(elapsed) => Err(Error::with_source(
                ErrorKind::Unavailable,
                format!("{at}: no answer within {:?}", self.timeout),
                elapsed,
            )),
        }
    }
}

impl fmt::Debug for SqlStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStoreBuilder")
            .field("url", &Redacted(&self.url))
            .field("table", &self.table)
            .field("max_connections", &self.settings.max_connections)
            .field("acquire_timeout", &self.settings.acquire_timeout)
            .field("busy_timeout", &self.settings.busy_timeout)
            .field("call_timeout", &self.settings.call_timeout)
            .field("ping_after_idle", &self.settings.idle_ping)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_pick_drivers() {
        assert_eq!(driver_for("postgres://h/d").ok(), Some(Driver::Postgres));
        assert_eq!(driver_for("PostgreSQL://h/d").ok(), Some(Driver::Postgres));
        assert_eq!(driver_for("mysql://h/d").ok(), Some(Driver::MySql));
        assert_eq!(driver_for("mariadb://h/d").ok(), Some(Driver::MySql));
        assert_eq!(driver_for("sqlite::memory:").ok(), Some(Driver::Sqlite));
        assert_eq!(driver_for("sqlite://f.db").ok(), Some(Driver::Sqlite));
        for bad in ["redis://h", "", "postgres", "file.db", "http://x"] {
            assert_eq!(
                driver_for(bad).map_err(|e| e.kind()).err(),
                Some(ErrorKind::Config)
            );
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let builder = SqlStoreBuilder::new("postgres://u:hunter2@h/d");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }
}
