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

/// The property: whatever characters a password holds, in every URL form the facade accepts,
/// no piece of it is shown by `Display`, `Debug`, the error of a refused URL or of a server
/// that cannot be reached, or a log line.
mod any_password {
    use super::*;
    use proptest::prelude::*;

    /// Stands between every few characters of a generated password (and never elsewhere in a
    /// URL): a password fragment of four characters or more that is shown carries it.
    const MARK: char = 'ǂ';

    /// A password of any characters, the mark at both ends and after every third character.
    fn password() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            any::<char>().prop_filter("not the mark", |c| *c != MARK),
            0..16,
        )
        .prop_map(|chars| {
            let mut password = String::from(MARK);
            for chunk in chars.chunks(3) {
                password.extend(chunk);
                password.push(MARK);
            }
            password
        })
    }

    /// Every byte but letters and digits percent-encoded: how a password is written as a query
    /// value (and how a careful operator writes it in the user info).
    fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// The URL forms the facade accepts that carry a password; nothing listens at these
    /// addresses (port 1 and 2 of loopback, a missing socket path).
    fn url(form: usize, password: &str) -> String {
        let raw = password;
        let enc = encode(password);
        match form {
            0 => format!("redis://:{raw}@127.0.0.1:1/0"),
            1 => format!("redis://app:{raw}@127.0.0.1:1"),
            // A lone user info is Redis's password (with no `:` it cannot be `user:password`).
            2 => format!("redis://{}@127.0.0.1:1", raw.replace(':', "")),
            3 => format!("rediss://:{raw}@127.0.0.1:1/2?protocol=resp3"),
            4 => format!("redis+cluster://:{raw}@127.0.0.1:1,127.0.0.1:2"),
            5 => format!("cookie+redis://:{raw}@127.0.0.1:1?ttl=1h"),
            6 => format!("cookie+redis+cluster://app:{raw}@127.0.0.1:1,127.0.0.1:2"),
            7 => format!("postgres://app:{raw}@127.0.0.1:1/db?sslmode=disable"),
            8 => format!("postgresql://app:{raw}@127.0.0.1:1/db"),
            9 => format!("mysql://root:{raw}@127.0.0.1:1/test"),
            10 => format!("mariadb://root:{raw}@127.0.0.1:1/test"),
            11 => format!("cookie+postgres://app:{raw}@127.0.0.1:1/db"),
            12 => format!("cookie+mysql://root:{raw}@127.0.0.1:1/test"),
            13 => format!("redis://:{enc}@127.0.0.1:1"),
            14 => format!("postgres://app:{enc}@127.0.0.1:1/db"),
            15 => format!("redis+unix:///nonexistent/flash-prop.sock?pass={enc}"),
            16 => format!("unix:///nonexistent/flash-prop.sock?db=0&password={enc}"),
            17 => format!("cookie+redis+unix:///nonexistent/flash-prop.sock?password={enc}"),
            18 => format!("postgres://app@127.0.0.1:1/db?password={enc}&sslmode=disable"),
            19 => format!("postgres:///db?host=/nonexistent&password={enc}"),
            20 => format!("mysql://root@127.0.0.1:1/test?password={enc}"),
            _ => format!("cookie+postgres://app@127.0.0.1:1/db?password={enc}"),
        }
    }

    const FORMS: usize = 22;

    /// Everything shown of `url` before connecting, and (when `open`) while failing to connect.
    async fn shown(url: &str, open: bool) -> String {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let config = StorageConfig::new(url).secret(SECRET);
        assert_eq!(
            config.to_string(),
            redact_url(url),
            "Display is the redactor"
        );
        let mut shown = format!("{config}\n{config:?}\n");
        if let Err(err) = config.validate() {
            shown.push_str(&format!("{err}\n{err:?}\n"));
        }
        let separator = if url.contains('?') { '&' } else { '?' };
        let bad = StorageConfig::new(format!("{url}{separator}ttl=soon")).secret(SECRET);
        if let Err(err) = bad.validate() {
            shown.push_str(&format!("{err}\n{err:?}\n"));
        }
        if open && let Err(err) = config.open().await {
            shown.push_str(&format!("{err}\n{err:?}\n"));
        }
        shown.push_str(&log.text());
        shown
    }

    fn leaks(password: &str, shown: &str) -> Option<String> {
        let mark_encoded = encode(&MARK.to_string());
        let shown_lower = shown.to_ascii_lowercase();
        (shown.contains(MARK)
            || shown_lower.contains(&mark_encoded.to_ascii_lowercase())
            || shown.contains(password))
        .then(|| shown.to_owned())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn is_never_shown_by_the_configuration(password in password(), form in 0..FORMS) {
            let url = url(form, &password);
            let shown = runtime().block_on(shown(&url, false));
            prop_assert!(leaks(&password, &shown).is_none(), "{url:?} shows its password: {shown}");
        }
    }

    proptest! {
        // Each case tries to connect (refused at once on loopback): fewer cases.
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn is_never_shown_by_a_failed_open(password in password(), form in 0..FORMS) {
            let url = url(form, &password);
            let shown = runtime().block_on(shown(&url, true));
            prop_assert!(leaks(&password, &shown).is_none(), "{url:?} shows its password: {shown}");
        }
    }

    /// The audit's reproduction: an unencoded `?` in the password was shown.
    #[tokio::test]
    async fn an_unencoded_question_mark_is_hidden() {
        let url = "redis://:S3cr3t?Pw@x@127.0.0.1:6390";
        let shown = shown(url, false).await;
        assert!(!shown.contains("S3cr3t"), "{shown}");
        assert!(!shown.contains("Pw@x"), "{shown}");
        assert!(shown.contains("redis://:***@127.0.0.1:6390"), "{shown}");
    }
}
