//! `open` builds working storages: the conformance suite through URLs, and a POST → GET round
//! trip against the real servers of every compiled backend (URLs from the environment at run
//! time; an unreachable server fails, or is skipped with a `SKIPPED` line when the run opted in
//! with `FLASH_TESTKIT_SKIP_UNREACHABLE=1`, never under `CI=true`).

use std::sync::Arc;

use flash::{
    ErrorKind, Level, Messages, MessagesConfig, StorageConfig,
    storage::{Incoming, Storage},
};
use flash_testkit::unavailable;
use http::HeaderMap;
use http::header::{COOKIE, SET_COOKIE};

const SECRET: &str = "the facade's test secret, long enough 0123456789";

/// A storage returned by `open`, as the suite's `Harness` takes it.
struct Opened(Arc<dyn Storage>);

#[flash::storage::async_trait]
impl Storage for Opened {
    async fn load(&self, request: &Incoming) -> flash::Result<flash::storage::Loaded> {
        self.0.load(request).await
    }

    async fn save(
        &self,
        request: &Incoming,
        update: flash::storage::Update,
        response: &mut HeaderMap,
    ) -> flash::Result<Vec<flash::Message>> {
        self.0.save(request, update, response).await
    }

    fn uses_extensions(&self) -> bool {
        self.0.uses_extensions()
    }

    fn carries_data(&self) -> bool {
        self.0.carries_data()
    }
}

#[cfg(feature = "redis")]
fn random_hex() -> String {
    flash::storage::LeaseId::random().to_hex()[..12].to_owned()
}

/// Opens `url`; `None` (skipped, or failed under CI) when its server is unreachable.
async fn open(url: &str, what: &str) -> Option<Arc<dyn Storage>> {
    match StorageConfig::new(url).secret(SECRET).open().await {
        Ok(storage) => Some(storage),
        Err(err) if err.kind() == ErrorKind::Unavailable => unavailable(what, err),
        Err(err) => panic!("opening {url}: {err} ({err:?})"),
    }
}

/// A browser's cookie jar, reduced to what flash sets.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn request(&self, extend: &dyn Fn(&mut Incoming)) -> Incoming {
        let mut headers = HeaderMap::new();
        if !self.0.is_empty() {
            let line: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
            headers.insert(COOKIE, line.join("; ").parse().expect("cookie header"));
        }
        let mut incoming = Incoming::from_headers(&headers);
        extend(&mut incoming);
        incoming
    }

    fn apply(&mut self, response: &HeaderMap) {
        for line in response.get_all(SET_COOKIE) {
            let line = line.to_str().expect("ASCII");
            let pair = line.split(';').next().expect("name=value");
            let (name, value) = pair.split_once('=').expect("name=value");
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() && !line.contains("Max-Age=0") {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }
}

/// POST adds messages, GET shows them once (in order, the HTML text intact), the next GET none.
async fn round_trip(storage: Arc<dyn Storage>, extend: &dyn Fn(&mut Incoming)) {
    let config = Arc::new(MessagesConfig::default());
    let mut jar = Jar::default();
    let texts = ["Saved.", "<script>alert(1)</script>", "é 🎉"];

    let post = Messages::new(storage.clone(), jar.request(extend), config.clone());
    for text in texts {
        assert!(post.add_message(Level::SUCCESS, text));
    }
    let mut response = HeaderMap::new();
    post.save(&mut response).await.expect("save");
    jar.apply(&response);

    let get = Messages::new(storage.clone(), jar.request(extend), config.clone());
    let shown = get.read().await.expect("read");
    let shown: Vec<&str> = shown.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(shown, texts);
    let mut response = HeaderMap::new();
    get.save(&mut response).await.expect("save");
    jar.apply(&response);

    let again = Messages::new(storage, jar.request(extend), config);
    assert!(again.read().await.expect("read").is_empty(), "shown twice");
    again.save(&mut HeaderMap::new()).await.expect("save");
}

fn nothing(_: &mut Incoming) {}

#[tokio::test]
async fn memory() {
    let storage = open("memory?ttl=1h&lease_timeout=10s", "memory")
        .await
        .expect("memory");
    round_trip(storage, &nothing).await;
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Yields until the runtime has at most `count` live tasks; false if it never does.
async fn tasks_fall_to(count: usize) -> bool {
    for _ in 0..1000 {
        if alive_tasks() <= count {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

/// `open` starts the memory store's sweeper, and the storage owns it: dropping the storage stops
/// the task (nothing keeps running that the caller cannot stop). `sweep=off` starts none.
#[tokio::test]
async fn the_memory_sweeper_stops_with_the_storage() {
    let before = alive_tasks();
    let storage = open("memory?sweep=1s", "memory").await.expect("memory");
    assert_eq!(alive_tasks(), before + 1, "a sweeper runs");
    let clone = storage.clone();
    drop(storage);
    tokio::task::yield_now().await;
    assert_eq!(alive_tasks(), before + 1, "a clone still holds the storage");
    drop(clone);
    assert!(
        tasks_fall_to(before).await,
        "the sweeper outlived the storage"
    );

    let storage = open("cookie+memory?sweep=off", "memory")
        .await
        .expect("memory");
    assert_eq!(alive_tasks(), before, "sweep=off starts no task");
    round_trip(storage, &nothing).await;
}

#[cfg(feature = "cookie")]
#[tokio::test]
async fn cookie_and_its_options() {
    let storage = open("cookie?name=flash&secure=true", "cookie")
        .await
        .expect("cookie");
    round_trip(storage.clone(), &nothing).await;

    let post = Messages::new(
        storage,
        Incoming::default(),
        Arc::new(MessagesConfig::default()),
    );
    post.info("x");
    let mut response = HeaderMap::new();
    post.save(&mut response).await.expect("save");
    let line = response[SET_COOKIE].to_str().expect("ASCII");
    assert!(
        line.starts_with("flash=") && line.contains("Secure"),
        "{line}"
    );
}

#[cfg(feature = "cookie")]
#[tokio::test]
async fn cookie_first_overflows_into_the_store() {
    let storage = open("cookie+memory?max_size=300", "memory")
        .await
        .expect("cookie+memory");
    round_trip(storage.clone(), &nothing).await;

    // Twenty messages do not fit 300 bytes: the rest goes to the store and all come back.
    let config = Arc::new(MessagesConfig::default());
    let mut jar = Jar::default();
    let post = Messages::new(storage.clone(), jar.request(&nothing), config.clone());
    let texts: Vec<String> = (0..20).map(|i| format!("message number {i:02}")).collect();
    for text in &texts {
        post.info(text.clone());
    }
    let mut response = HeaderMap::new();
    post.save(&mut response).await.expect("save");
    jar.apply(&response);
    let names: Vec<&str> = jar.0.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"messages") && names.contains(&"flash_id"),
        "{names:?}"
    );
    let get = Messages::new(storage, jar.request(&nothing), config);
    let shown: Vec<String> = get
        .read()
        .await
        .expect("read")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(shown, texts);
}

/// Key rotation: a cookie signed with the old secret still reads once the old secret is a
/// fallback, and not without it.
#[cfg(feature = "cookie")]
#[tokio::test]
async fn rotation_through_fallback_secrets() {
    let old = "the old secret of the facade test, 0123456789";
    let config = Arc::new(MessagesConfig::default());
    let before = StorageConfig::new("cookie")
        .secret(old)
        .open()
        .await
        .expect("open");
    let mut jar = Jar::default();
    let post = Messages::new(before, jar.request(&nothing), config.clone());
    post.info("signed with the old secret");
    let mut response = HeaderMap::new();
    post.save(&mut response).await.expect("save");
    jar.apply(&response);

    let rotated = StorageConfig::new("cookie")
        .secret(SECRET)
        .fallback_secret(old)
        .open()
        .await
        .expect("open");
    let get = Messages::new(rotated, jar.request(&nothing), config.clone());
    assert_eq!(get.len().await.expect("len"), 1);

    let forgotten = StorageConfig::new("cookie")
        .secret(SECRET)
        .open()
        .await
        .expect("open");
    let get = Messages::new(forgotten, jar.request(&nothing), config);
    assert_eq!(get.len().await.expect("len"), 0);
}

/// Dev mode without a secret works (an ephemeral secret), and two opens do not share it.
#[tokio::test]
async fn dev_mode_uses_an_ephemeral_secret() {
    let config = Arc::new(MessagesConfig::default());
    let first = StorageConfig::new("memory")
        .dev_mode(true)
        .open()
        .await
        .expect("dev");
    let second = StorageConfig::new("memory")
        .dev_mode(true)
        .open()
        .await
        .expect("dev");
    let mut jar = Jar::default();
    let post = Messages::new(first, jar.request(&nothing), config.clone());
    post.info("x");
    let mut response = HeaderMap::new();
    post.save(&mut response).await.expect("save");
    jar.apply(&response);
    assert_eq!(jar.0.len(), 1);
    // The id cookie of one process's secret is not accepted by another's.
    let get = Messages::new(second, jar.request(&nothing), config);
    assert_eq!(get.len().await.expect("len"), 0);
}

#[cfg(feature = "django")]
#[tokio::test]
async fn django_format_reads_what_django_wrote() {
    // Written by Django 5.2 for SECRET_KEY "interop-test-secret-key-0123456789"
    // (`single_info` of the shared `cookie_vectors.json`).
    const DJANGO_COOKIE: &str = "W1siX19qc29uX21lc3NhZ2UiLDAsMjAsIkluZm8gbWVzc2FnZSIsIiJdXQ:1vb66i:\
                                 ggRJCwMxyhhX23RXwKg_F10vdv91O4tbuExA-IaNnsg";
    let storage = StorageConfig::new("cookie?format=django")
        .secret("interop-test-secret-key-0123456789")
        .open()
        .await
        .expect("open");
    let mut jar = Jar::default();
    jar.0
        .push(("messages".to_owned(), DJANGO_COOKIE.to_owned()));
    let get = Messages::new(
        storage.clone(),
        jar.request(&nothing),
        Arc::new(MessagesConfig::default()),
    );
    let shown = get.read().await.expect("read");
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (shown[0].level, shown[0].text.as_str()),
        (Level::INFO, "Info message")
    );

    // Another secret (a Django app with another SECRET_KEY) does not verify it.
    let other = StorageConfig::new("cookie?format=django")
        .secret("another django secret key, 0123456789")
        .open()
        .await
        .expect("open");
    let get = Messages::new(
        other,
        jar.request(&nothing),
        Arc::new(MessagesConfig::default()),
    );
    assert_eq!(get.len().await.expect("len"), 0);

    round_trip(storage, &nothing).await;
}

/// What `open` returns says whether it carries data beside the text, through the facade's
/// wrappers and the cookie-first composition: Django's format anywhere means no, and the
/// request handle refuses such a message at add.
#[cfg(feature = "django")]
#[tokio::test]
async fn django_format_refuses_data_at_add() {
    for (url, carries) in [
        ("cookie", true),
        ("memory", true),
        ("cookie+memory", true),
        ("cookie?format=django", false),
        ("cookie+memory?format=django", false),
    ] {
        let storage = StorageConfig::new(url)
            .secret(SECRET)
            .open()
            .await
            .expect("open");
        assert_eq!(storage.carries_data(), carries, "{url}");
        let messages = Messages::new(
            storage,
            Incoming::default(),
            Arc::new(MessagesConfig::default()),
        );
        let outcome = messages.try_add(
            flash::Message::new(Level::INFO, "undo").with_data(serde_json::json!({"id": 7})),
        );
        assert_eq!(outcome.is_ok(), carries, "{url}: {outcome:?}");
    }
}

#[cfg(feature = "session")]
#[tokio::test]
async fn session_with_tower_sessions() {
    use tower_sessions::{MemoryStore, Session};
    let session = Session::new(None, Arc::new(MemoryStore::default()), None);
    let attach = move |incoming: &mut Incoming| {
        incoming.extensions_mut().insert(session.clone());
    };
    let storage = open("session?key=_flash", "session")
        .await
        .expect("session");
    assert!(storage.uses_extensions());
    round_trip(storage, &attach).await;

    let err = StorageConfig::new("session")
        .open()
        .await
        .expect("open")
        .load(&Incoming::default())
        .await
        .expect_err("no session layer");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("SessionManagerLayer"), "{err}");

    #[cfg(feature = "cookie")]
    {
        let session = Session::new(None, Arc::new(MemoryStore::default()), None);
        let attach = move |incoming: &mut Incoming| {
            incoming.extensions_mut().insert(session.clone());
        };
        let storage = open("cookie+session", "session")
            .await
            .expect("cookie+session");
        assert!(storage.uses_extensions());
        round_trip(storage, &attach).await;
    }
}

#[cfg(feature = "redis")]
fn redis_url() -> String {
    flash_testkit::urls::redis()
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis() {
    let base = redis_url();
    let url = format!("{base}?prefix=flash-facade-{}&ttl=60", random_hex());
    let Some(storage) = open(&url, &format!("redis at {base}")).await else {
        return;
    };
    round_trip(storage, &nothing).await;
    #[cfg(feature = "cookie")]
    {
        let url = format!("cookie+{base}?prefix=flash-facade-{}&ttl=60", random_hex());
        if let Some(storage) = open(&url, &format!("redis at {base}")).await {
            round_trip(storage, &nothing).await;
        }
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_unreachable_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let Err(err) = StorageConfig::new("redis://127.0.0.1:1")
        .secret(SECRET)
        .open()
        .await
    else {
        panic!("nothing listens on port 1");
    };
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn redis_cluster() {
    let nodes = flash_testkit::urls::redis_cluster().join(",");
    let url = format!(
        "{}?prefix=flash-facade-{}&ttl=60",
        flash_testkit::urls::redis_cluster_url(),
        random_hex()
    );
    if let Some(storage) = open(&url, &format!("redis cluster at {nodes}")).await {
        round_trip(storage, &nothing).await;
    }
}

/// Opens an SQL storage in the shared test table `flash_facade` (every run uses fresh client
/// ids, so runs in parallel or one after another never see each other's messages; `migrate`
/// is idempotent and safe to run concurrently).
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
async fn sql_round_trips(base: &str, what: &str) {
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}table=flash_facade&ttl=1h&sweep=10m");
    let Some(storage) = open(&url, what).await else {
        return;
    };
    round_trip(storage, &nothing).await;
    #[cfg(feature = "cookie")]
    if let Some(storage) = open(&format!("cookie+{url}"), what).await {
        round_trip(storage, &nothing).await;
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres() {
    let base = flash_testkit::urls::postgres();
    sql_round_trips(&base, &format!("postgres at {base}")).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql() {
    let base = flash_testkit::urls::mysql();
    sql_round_trips(&base, &format!("mysql at {base}")).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("flash.db");
    let base = format!("sqlite://{}", file.display());
    sql_round_trips(&base, "sqlite").await;
    assert!(file.exists(), "open creates the database file");
}

/// `migrate` is on by default; `migrate=false` in the URL or `StorageConfig::migrate(false)`
/// opens without creating the table, and a store call then fails with a `Config` error that says
/// to migrate. The URL's option wins over the builder's.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_migrate_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let base = format!("sqlite://{}", dir.path().join("flash.db").display());
    let off = [
        StorageConfig::new(format!("{base}?migrate=false&sweep=off")),
        StorageConfig::new(format!("{base}?sweep=off")).migrate(false),
    ];
    for config in off {
        let storage = config
            .secret(SECRET)
            .open()
            .await
            .expect("opens without a table");
        let messages = Messages::new(storage, Incoming::default(), MessagesConfig::default());
        messages.success("no table yet");
        let err = messages
            .save(&mut HeaderMap::new())
            .await
            .expect_err("the table was not created");
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("migrate"), "{err}");
    }
    // The URL's `migrate=true` overrides the builder: the table is created.
    let storage = StorageConfig::new(format!("{base}?migrate=true&sweep=off"))
        .migrate(false)
        .secret(SECRET)
        .open()
        .await
        .expect("opens and migrates");
    round_trip(storage, &nothing).await;
    // Once the table exists, opening without migrating works.
    let storage = StorageConfig::new(format!("{base}?sweep=off"))
        .migrate(false)
        .secret(SECRET)
        .open()
        .await
        .expect("opens");
    round_trip(storage, &nothing).await;
}

/// An SQL URL whose table name is not a plain identifier is a configuration error, before any
/// statement runs.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_bad_table_is_a_config_error() {
    let Err(err) = StorageConfig::new("sqlite::memory:?table=bad;name")
        .secret(SECRET)
        .open()
        .await
    else {
        panic!("a bad table name was accepted");
    };
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

/// The suite through `open`, for the storages that need no server.
mod conformance {
    use super::*;
    use flash_testkit::{Capabilities, Harness, Options};

    fn keyed_url(base: &str, options: &Options) -> String {
        format!(
            "{base}?ttl={}ms&lease_timeout={}ms",
            options.ttl.as_millis(),
            options.lease_timeout.as_millis()
        )
    }

    async fn opened(url: String, options: &Options) -> Arc<dyn Storage> {
        match StorageConfig::new(&url)
            .secret(options.secret.clone())
            .open()
            .await
        {
            Ok(storage) => storage,
            Err(err) => panic!("opening {url}: {err}"),
        }
    }

    mod memory {
        use super::*;

        async fn factory(options: Options) -> Option<Harness> {
            let storage = opened(keyed_url("memory", &options), &options).await;
            Some(Harness::new(Opened(storage), Capabilities::ALL, "flash_id"))
        }

        flash_testkit::conformance_tests!(factory);
    }

    #[cfg(feature = "cookie")]
    mod cookie {
        use super::*;

        async fn factory(options: Options) -> Option<Harness> {
            let storage = opened("cookie".to_owned(), &options).await;
            Some(Harness::new(
                Opened(storage),
                Capabilities::NONE,
                "messages",
            ))
        }

        flash_testkit::conformance_tests!(factory);
    }

    #[cfg(feature = "cookie")]
    mod cookie_memory {
        use super::*;

        async fn factory(options: Options) -> Option<Harness> {
            let storage = opened(keyed_url("cookie+memory", &options), &options).await;
            let capabilities = Capabilities::NONE.with_large_messages(true);
            Some(Harness::new(Opened(storage), capabilities, "messages"))
        }

        flash_testkit::conformance_tests!(factory);
    }
}
