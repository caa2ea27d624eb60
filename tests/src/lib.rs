//! Shared support for the cross-backend integration tests: open a storage by URL (isolated per
//! test), serve the demo app on a free port with either framework (axum or actix-web,
//! [`Server::demo_on`]), and drive it like a browser.
//!
//! Servers come from the environment at run time (`FLASH_REDIS_URL`, `FLASH_POSTGRES_URL`,
//! `FLASH_MYSQL_URL`); a server that cannot be reached skips the test with one line, or fails it
//! under `CI=true`.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, clippy::print_stderr)]

pub mod flows;
pub mod page;
pub mod proxy;
pub mod soak;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flash_core::storage::Storage;
pub use flash_demo::Framework;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The secret every test storage signs with.
pub const SECRET: &str = "flash-integration-secret-0123456789abcdef";

/// Every storage URL the demo is tested with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cookie`: the signed cookie alone.
    Cookie,
    /// `session`: the tower-sessions session.
    Session,
    /// `cookie+sqlite://…`: cookie first, overflow into SQLite (the demo's default).
    CookieSqlite,
    /// `redis://…`.
    Redis,
    /// `postgres://…`.
    Postgres,
    /// `mysql://…`.
    Mysql,
    /// `sqlite://…`.
    Sqlite,
    /// `cookie+redis://…`: cookie first, overflow into Redis.
    CookieRedis,
    /// `cookie+postgres://…`: cookie first, overflow into PostgreSQL.
    CookiePostgres,
    /// `memory`: the in-process keyed store (no server).
    Memory,
}

impl Kind {
    /// A keyed server store alone: exactly once across concurrent requests of one client.
    pub fn exactly_once(self) -> bool {
        matches!(
            self,
            Kind::Redis | Kind::Postgres | Kind::Mysql | Kind::Sqlite | Kind::Memory
        )
    }

    /// The cookie alone: bounded by the cookie size, keeps the newest messages that fit.
    pub fn size_bounded(self) -> bool {
        self == Kind::Cookie
    }
}

/// A storage opened for one test, with what keeps it isolated alive.
pub struct Opened {
    /// The storage.
    pub storage: Arc<dyn Storage>,
    /// The URL it was opened from, password removed (for messages).
    pub url: String,
    /// The fault proxy between the storage and its server, when opened through one.
    pub proxy: Option<proxy::FaultProxy>,
    /// A server table of this test's own, dropped with it: (driver URL, table).
    table: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        let Some((url, table)) = self.table.take() else {
            return;
        };
        // Drop may run inside the test's runtime: clean up on a thread with its own.
        let name = table.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(drop_table(&url, &table))
        });
        if let Ok(Err(err)) = cleanup.join() {
            eprintln!("could not drop the test table {name}: {err}");
        }
    }
}

/// Drops a test's table (names are `flash_it_` and hex digits: nothing to quote).
async fn drop_table(url: &str, table: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let statement = format!("DROP TABLE IF EXISTS {table}");
    if url.starts_with("postgres") {
        let mut connection = sqlx::PgConnection::connect(url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut connection)
            .await?;
        connection.close().await
    } else {
        let mut connection = sqlx::MySqlConnection::connect(url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut connection)
            .await?;
        // flash-sql's procedures for the table (lowercase names carry no hash suffix).
        for call in ["lease", "settle", "append"] {
            let statement = format!("DROP PROCEDURE IF EXISTS `{table}_{call}_v1`");
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut connection)
                .await?;
        }
        connection.close().await
    }
}

/// A fresh namespace for one test: lowercase hex, safe in keys and table names.
pub fn namespace() -> String {
    // 6 random bytes are plenty.
    flash_core::storage::LeaseId::random().to_hex()[..12].to_owned()
}

/// Whether a TCP connection to the URL's host and port succeeds within a second.
async fn reachable(url: &str, default_port: u16) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port().unwrap_or(default_port);
    match tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(_) => return url.to_owned(),
    };
    {
        let mut query = parsed.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    parsed.to_string()
}

/// Opens the storage of `kind` for one test, isolated by a fresh namespace (a Redis key
/// prefix, an SQL table of its own, a temporary SQLite file). An unreachable server fails the
/// test (`flash_testkit::unavailable`); `None` when the run opted in to skipping
/// (`FLASH_TESTKIT_SKIP_UNREACHABLE=1`, a `SKIPPED` line printed).
pub async fn open(kind: Kind) -> Option<Opened> {
    open_with(kind, false, &[]).await
}

/// [`open`], with the storage talking to its server through a [`proxy::FaultProxy`] when
/// `proxied` (kept in [`Opened::proxy`]; storages without a server get none), and with extra
/// query options (flash's, such as `lease`).
pub async fn open_with(kind: Kind, proxied: bool, options: &[(&str, &str)]) -> Option<Opened> {
    let ns = namespace();
    let mut dir = None;
    let redis = || {
        with_query(
            &flash_testkit::urls::redis(),
            &[("prefix", &format!("flash-it:{ns}:"))],
        )
    };
    let table = format!("flash_it_{ns}");
    let mut sqlite = || {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", tmp.path().join("flash.db").display());
        dir = Some(tmp);
        with_query(&url, &[("table", &table)])
    };
    let mut own_table = None;
    let (url, probe) = match kind {
        Kind::Cookie => ("cookie".to_owned(), None),
        Kind::Session => ("session".to_owned(), None),
        Kind::Memory => ("memory".to_owned(), None),
        Kind::CookieSqlite => (format!("cookie+{}", sqlite()), None),
        Kind::Sqlite => (sqlite(), None),
        Kind::Redis => (redis(), Some(("Redis", 6379))),
        Kind::CookieRedis => (format!("cookie+{}", redis()), Some(("Redis", 6379))),
        Kind::Postgres | Kind::CookiePostgres => {
            let server = flash_testkit::urls::postgres();
            own_table = Some((server.clone(), table.clone()));
            let url = with_query(&server, &[("table", &table)]);
            let url = if kind == Kind::CookiePostgres {
                format!("cookie+{url}")
            } else {
                url
            };
            (url, Some(("PostgreSQL", 5432)))
        }
        Kind::Mysql => {
            let server = flash_testkit::urls::mysql();
            own_table = Some((server.clone(), table.clone()));
            (
                with_query(&server, &[("table", &table)]),
                Some(("MySQL", 3306)),
            )
        }
    };
    let mut url = if options.is_empty() {
        url
    } else {
        with_query(&url, options)
    };
    let shown = redacted(&url);
    let mut proxy = None;
    if let Some((service, port)) = probe {
        let server = url.trim_start_matches("cookie+");
        if let Err(err) = reachable(server, port).await {
            return flash_testkit::unavailable(&format!("{service} at {shown}"), err);
        }
        if proxied {
            let (through, started) = through_proxy(&url, port).await;
            url = through;
            proxy = Some(started);
        }
    }
    let storage = match open_url(&url).await {
        Ok(storage) => storage,
        Err(err) if err.kind() == flash_core::ErrorKind::Unavailable => {
            return flash_testkit::unavailable(&shown, err);
        }
        Err(err) => panic!(
            "opening {shown}: {err} ({:?})",
            std::error::Error::source(&err)
        ),
    };
    Some(Opened {
        storage,
        url: shown,
        proxy,
        table: own_table,
        _dir: dir,
    })
}

/// Starts a fault proxy to the server of `url` (after an optional `cookie+`) and returns the
/// URL pointing at the proxy instead, with the proxy.
async fn through_proxy(url: &str, default_port: u16) -> (String, proxy::FaultProxy) {
    let (front, server) = match url.strip_prefix("cookie+") {
        Some(server) => ("cookie+", server),
        None => ("", url),
    };
    let mut parsed = reqwest::Url::parse(server).unwrap();
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port().unwrap_or(default_port);
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .find(std::net::SocketAddr::is_ipv4)
        .unwrap_or_else(|| {
            panic!("{host}:{port} has no IPv4 address (the proxy is IPv4 loopback)")
        });
    let started = proxy::FaultProxy::start(upstream).await.unwrap();
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(started.addr().port())).unwrap();
    (format!("{front}{parsed}"), started)
}

/// Opens a storage URL with the test secret, through the facade.
async fn open_url(url: &str) -> flash_core::Result<Arc<dyn Storage>> {
    flash::StorageConfig::new(url).secret(SECRET).open().await
}

/// The demo app served on a free loopback port; stops when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `app` on `127.0.0.1:0`.
    pub async fn start(app: axum::Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Server {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Serves the demo app over `storage` on axum.
    pub async fn demo(storage: Arc<dyn Storage>) -> Server {
        Server::demo_on(Framework::Axum, storage).await
    }

    /// Serves the demo app over `storage` on `framework`, as `cargo run -p flash-demo` does
    /// ([`Framework::serve`]).
    pub async fn demo_on(framework: Framework, storage: Arc<dyn Storage>) -> Server {
        Server::demo_serving(framework, storage, flash_demo::Serving::default()).await
    }

    /// [`Server::demo_on`], with what `serving` says (the htmx file the demo serves, say).
    pub async fn demo_serving(
        framework: Framework,
        storage: Arc<dyn Storage>,
        serving: flash_demo::Serving,
    ) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.await;
            };
            if let Err(err) = framework.serve(storage, serving, listener, stopped).await {
                panic!("the demo on {framework} failed: {err}");
            }
        });
        Server {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops serving and waits for open connections to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A browser-like HTTP client: a cookie jar, redirects not followed.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Whether the test runs under CI (`CI=true` or `CI=1`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
