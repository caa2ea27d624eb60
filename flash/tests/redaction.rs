//! No secret is ever shown: for every URL form that carries a password, the `Debug` and
//! `Display` of the configuration, the error of a bad URL, the error of a server that cannot be
//! reached (and its `Debug`), and every log line written meanwhile hide it.
#![cfg(all(feature = "redis-cluster", feature = "postgres", feature = "mysql"))]

use std::io::Write;
use std::sync::{Arc, Mutex};

use flash::{ErrorKind, StorageConfig, storage::redact_url};

const SECRET: &str = "the signing secret, never shown: 0123456789abcdef";

/// Everything the facade and the backends log, at every level.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Each URL with the fragments of its password that must never appear. Nothing listens on
/// ports 1 and 2 of loopback, nor at the socket paths, so opening fails after trying.
const TABLE: &[(&str, &[&str])] = &[
    ("redis://user:hunter2@127.0.0.1:1/0", &["hunter2"]),
    ("redis://:hunter2@127.0.0.1:1", &["hunter2"]),
    // A lone userinfo is Redis's password.
    ("redis://hunter2@127.0.0.1:1", &["hunter2"]),
    ("redis://u:hun/ter2@127.0.0.1:1/0", &["hun/ter2", "ter2"]),
    ("redis://u:hun@ter2@127.0.0.1:1", &["hun@ter2", "ter2"]),
    (
        "redis+unix:///nonexistent/flash-redaction.sock?pass=hunter2",
        &["hunter2"],
    ),
    (
        "redis+unix:///nonexistent/flash-redaction.sock?db=0&password=hunter2",
        &["hunter2"],
    ),
    (
        "redis+cluster://:hunter2@127.0.0.1:1,127.0.0.1:2",
        &["hunter2"],
    ),
    ("postgres://app:hunter2@127.0.0.1:1/db", &["hunter2"]),
    (
        "postgres://app@127.0.0.1:1/db?password=hunter2&sslmode=disable",
        &["hunter2"],
    ),
    (
        "postgres:///db?host=/nonexistent&password=hunter2",
        &["hunter2"],
    ),
    (
        "mysql://root:hun/ter2@127.0.0.1:1/test",
        &["hun/ter2", "ter2"],
    ),
    (
        "mariadb://root:hun@ter2@127.0.0.1:1/test",
        &["hun@ter2", "ter2"],
    ),
    ("cookie+redis://:hunter2@127.0.0.1:1", &["hunter2"]),
    (
        "cookie+postgres://u:hun@ter2@127.0.0.1:1/db?sslmode=disable",
        &["hun@ter2", "ter2"],
    ),
    (
        "cookie+redis+unix:///nonexistent/r.sock?pass=hunter2",
        &["hunter2"],
    ),
    (
        "cookie+redis+cluster://u:hun/ter2@127.0.0.1:1,127.0.0.1:2",
        &["hun/ter2", "ter2"],
    ),
];

/// Every place a secret was shown, to report them all at once.
#[derive(Default)]
struct Leaks(Vec<String>);

impl Leaks {
    fn check(&mut self, url: &str, secrets: &[&str], what: &str, shown: &str) {
        for secret in secrets.iter().chain(&[SECRET]) {
            if shown.contains(secret) {
                self.0
                    .push(format!("{url}: {what} shows {secret:?}: {shown}"));
            }
        }
    }
}

#[tokio::test]
async fn no_url_form_shows_its_password() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut leaks = Leaks::default();
    for &(url, secrets) in TABLE {
        // The table's own check: each row does carry its secret.
        assert!(secrets.iter().all(|s| url.contains(s)), "{url}");

        let config = StorageConfig::new(url).secret(SECRET);
        leaks.check(url, secrets, "Debug", &format!("{config:?}"));
        leaks.check(url, secrets, "Display", &config.to_string());
        // The one redactor: Display is exactly it.
        assert_eq!(config.to_string(), redact_url(url), "{url}");

        // A bad URL (an option that does not parse) is refused before connecting.
        let separator = if url.contains('?') { '&' } else { '?' };
        let bad = StorageConfig::new(format!("{url}{separator}ttl=soon")).secret(SECRET);
        let err = bad.validate().expect_err("ttl=soon is refused");
        assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
        leaks.check(url, secrets, "the bad-URL error", &err.to_string());
        leaks.check(
            url,
            secrets,
            "the bad-URL error's Debug",
            &format!("{err:?}"),
        );

        // A server that cannot be reached.
        match config.open().await {
            Ok(_) => {
                // A store that connects lazily opens anyway; its log line is checked below.
            }
            Err(err) => {
                leaks.check(url, secrets, "the open error", &err.to_string());
                leaks.check(url, secrets, "the open error's Debug", &format!("{err:?}"));
            }
        }
    }
    let logged = log.text();
    for &(url, secrets) in TABLE {
        leaks.check(url, secrets, "the log", &logged);
    }
    assert!(leaks.0.is_empty(), "secrets shown:\n{}", leaks.0.join("\n"));
}

#[test]
fn a_missing_secret_or_a_missing_feature_names_the_url_redacted() {
    let err = StorageConfig::new("cookie+redis://:hunter2@cache")
        .validate()
        .expect_err("no secret");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("redis://:***@cache"), "{err}");
}
