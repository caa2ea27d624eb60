//! Bad settings are typed `Config` errors, never a panic; nothing secret is printed. No server
//! needed.
#![allow(clippy::unwrap_used)]

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use std::time::Duration;

use flash_core::ErrorKind;
use flash_sql::{MAX_TABLE_NAME_LEN, SqlStore};

const BAD_TABLES: &[&str] = &[
    "",
    "1flash",
    "flash-messages",
    "flash messages",
    "public.flash",
    "flash\"; DROP TABLE users; --",
    "flash`; DROP TABLE users; --",
    "flash'",
    "flåsh",
    "flash\n",
];

fn urls() -> Vec<&'static str> {
    let mut urls = Vec::new();
    if cfg!(feature = "postgres") {
        urls.push(flash_testkit::urls::DEFAULT_POSTGRES);
    }
    if cfg!(feature = "mysql") {
        urls.push(flash_testkit::urls::DEFAULT_MYSQL);
    }
    if cfg!(feature = "sqlite") {
        urls.push("sqlite::memory:");
    }
    urls
}

#[tokio::test]
async fn invalid_table_names_are_rejected() {
    let too_long = "t".repeat(MAX_TABLE_NAME_LEN + 1);
    for url in urls() {
        for table in BAD_TABLES.iter().copied().chain([too_long.as_str()]) {
            let err = SqlStore::builder(url)
                .table(table)
                .connect_lazy()
                .expect_err(table);
            assert_eq!(err.kind(), ErrorKind::Config, "{url} {table:?}");
            assert!(err.to_string().contains("table name"), "{err}");
            // Rejected before any connection: `connect` fails the same way, at once.
            let err = SqlStore::builder(url)
                .table(table)
                .connect()
                .await
                .expect_err(table);
            assert_eq!(err.kind(), ErrorKind::Config, "{url} {table:?}");
        }
        let ok = SqlStore::builder(url)
            .table("t".repeat(MAX_TABLE_NAME_LEN))
            .connect_lazy()
            .unwrap();
        assert_eq!(ok.table(), "t".repeat(MAX_TABLE_NAME_LEN));
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn pools_of_your_own_check_the_table_name_too() {
    let pool = sqlx::SqlitePool::connect_lazy("sqlite::memory:").unwrap();
    for table in BAD_TABLES {
        let err = SqlStore::from_sqlite_pool(pool.clone(), table).expect_err(table);
        assert_eq!(err.kind(), ErrorKind::Config);
    }
    let store = SqlStore::from_sqlite_pool(pool, "flash_messages").unwrap();
    store.migrate().await.unwrap();
}

#[test]
fn unknown_schemes_and_bad_urls_are_config_errors() {
    for url in [
        "",
        "redis://127.0.0.1:6379",
        "http://example.com",
        "flash.db",
        "postgres",
    ] {
        let err = SqlStore::builder(url).connect_lazy().expect_err(url);
        assert_eq!(err.kind(), ErrorKind::Config, "{url:?}");
    }
    #[cfg(feature = "postgres")]
    for url in ["postgres://host:notaport/db", "postgres://[::1/db"] {
        let err = SqlStore::builder(url).connect_lazy().expect_err(url);
        assert_eq!(err.kind(), ErrorKind::Config, "{url:?}");
        assert!(std::error::Error::source(&err).is_some());
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn spawn_sweeper_outside_a_runtime_is_a_config_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async { SqlStore::connect("sqlite::memory:").await.unwrap() });
    let err = store
        .spawn_sweeper(Duration::from_secs(60))
        .expect_err("no runtime here");
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn passwords_are_never_printed() {
    let url = "postgres://flash:hunter2@127.0.0.1:1/app?sslmode=disable";
    let builder = SqlStore::builder(url).acquire_timeout(Duration::from_millis(200));
    assert!(!format!("{builder:?}").contains("hunter2"));
    let store = SqlStore::builder(url).connect_lazy().unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
    assert_eq!(
        store.location(),
        "postgres://flash:***@127.0.0.1:1/app?sslmode=disable"
    );
    let err = builder
        .connect()
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

/// Everything a caller can print of an error, its causes included.
#[cfg(all(feature = "postgres", feature = "mysql"))]
fn printed(err: &flash_core::Error) -> String {
    let mut all = format!("{err}\n{err:?}\n");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        all.push_str(&format!("{cause}\n{cause:?}\n"));
        source = cause.source();
    }
    all
}

/// Passwords holding `/` or `@` (which a naive redactor cuts in the wrong place) are hidden
/// by flash-core's one redactor in the store's and the builder's `Debug`, its location, and
/// every error of a server that cannot be reached, causes included; each failing call too.
#[cfg(all(feature = "postgres", feature = "mysql"))]
#[tokio::test]
async fn odd_passwords_are_never_printed() {
    use flash_core::{
        Limits, Message,
        storage::{ClientId, KeyedStore},
    };
    for (url, password) in [
        ("postgres://u:pa/ss@127.0.0.1:1/db", "pa/ss"),
        ("mysql://root:hun@ter2@127.0.0.1:1/test", "hun@ter2"),
    ] {
        let secret = |text: &str| text.contains(password) || text.contains("ter2");
        let builder = SqlStore::builder(url).acquire_timeout(Duration::from_millis(200));
        assert!(!secret(&format!("{builder:?}")), "{builder:?}");
        match SqlStore::builder(url)
            .acquire_timeout(Duration::from_millis(200))
            .connect_lazy()
        {
            Ok(store) => {
                assert!(!secret(&format!("{store:?}")), "{store:?}");
                assert!(!secret(store.location()), "{}", store.location());
                let err = store
                    .append(
                        &ClientId::random(),
                        &[Message::new(flash_core::Level::INFO, "x")],
                        Duration::from_secs(60),
                        &Limits::default(),
                    )
                    .await
                    .expect_err("nothing listens on port 1");
                let shown = printed(&err);
                assert!(!secret(&shown), "{shown}");
            }
            // A URL sqlx does not parse: the error still hides the password.
            Err(err) => {
                let shown = printed(&err);
                assert!(!secret(&shown), "{shown}");
            }
        }
        let err = builder.connect().await.expect_err("nothing listens");
        let shown = printed(&err);
        assert!(!secret(&shown), "{shown}");
    }
}

/// A URL whose driver is not compiled in (with no feature, every one) is a `Config` error naming
/// the feature to turn on, at `connect` and `connect_lazy` alike.
#[tokio::test]
async fn a_driver_not_compiled_in_names_its_feature() {
    let drivers = [
        (
            "postgres",
            "postgres://localhost/test",
            cfg!(feature = "postgres"),
        ),
        ("mysql", "mysql://localhost/test", cfg!(feature = "mysql")),
        ("sqlite", "sqlite::memory:", cfg!(feature = "sqlite")),
    ];
    for (feature, url, _) in drivers.into_iter().filter(|(_, _, on)| !on) {
        let err = SqlStore::builder(url).connect_lazy().expect_err(url);
        assert_eq!(err.kind(), ErrorKind::Config, "{url}");
        assert!(
            err.to_string().contains(&format!("`{feature}` feature")),
            "{err}"
        );
        let err = SqlStore::builder(url).connect().await.expect_err(url);
        assert_eq!(err.kind(), ErrorKind::Config, "{url}");
    }
}
