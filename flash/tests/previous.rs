//! Switching storage loses nothing (issue 22): messages added under one storage are shown once,
//! in order, after the switch to another with the first as `previous`; nothing new is written
//! to the previous storage; a reload shows nothing; the previous storage down does not break
//! the current one. Server URLs come from the environment at run time; an unreachable server
//! fails, unless the run opted in to skipping (`FLASH_TESTKIT_SKIP_UNREACHABLE=1`).

use std::sync::Arc;

use flash::storage::{Incoming, Storage};
use flash::{ErrorKind, Messages, MessagesConfig, StorageConfig};
use flash_testkit::{unavailable, urls};
use http::HeaderMap;
use http::header::{COOKIE, SET_COOKIE};

const SECRET: &str = "the facade's test secret, long enough 0123456789";
const NEW_SECRET: &str = "the secret after the switch, also long enough 987";

/// A browser's cookie jar, reduced to what flash sets, and its session (as a session layer
/// would attach it to each request).
#[derive(Clone)]
struct Jar(Vec<(String, String)>, tower_sessions::Session);

impl Default for Jar {
    fn default() -> Self {
        Jar::with(Vec::new())
    }
}

impl Jar {
    fn with(cookies: Vec<(String, String)>) -> Self {
        let store = Arc::new(tower_sessions::MemoryStore::default());
        Jar(cookies, tower_sessions::Session::new(None, store, None))
    }

    fn request(&self) -> Incoming {
        let mut headers = HeaderMap::new();
        if !self.0.is_empty() {
            let line: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
            headers.insert(COOKIE, line.join("; ").parse().expect("cookie header"));
        }
        let mut incoming = Incoming::from_headers(&headers);
        incoming.extensions_mut().insert(self.1.clone());
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

    fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }
}

fn unique() -> String {
    flash::storage::LeaseId::random().to_hex()[..12].to_owned()
}

/// Opens `config`; `None` (skipped, or failed under CI) when a server is unreachable.
async fn open(config: &StorageConfig, what: &str) -> Option<Arc<dyn Storage>> {
    match config.open().await {
        Ok(storage) => Some(storage),
        Err(err) if err.kind() == ErrorKind::Unavailable => unavailable(what, err),
        Err(err) => panic!("opening {config}: {err} ({err:?})"),
    }
}

/// One request: adds `add`, reads when `read`; returns what it read and the response headers.
async fn request(
    storage: &Arc<dyn Storage>,
    jar: &mut Jar,
    add: &[&str],
    read: bool,
) -> (Vec<String>, HeaderMap, Option<flash::Error>) {
    let messages = Messages::new(
        storage.clone(),
        jar.request(),
        Arc::new(MessagesConfig::default()),
    );
    for text in add {
        messages.info(*text);
    }
    let shown = if read {
        let list = messages.read().await.expect("read");
        list.iter().map(|m| m.text.to_string()).collect()
    } else {
        Vec::new()
    };
    let mut response = HeaderMap::new();
    let report = messages.save(&mut response).await.expect("save");
    jar.apply(&response);
    (shown, response, report.degraded)
}

/// What the storage holds for the jar, without consuming (and without touching the jar).
async fn peek(storage: &Arc<dyn Storage>, jar: &Jar) -> Vec<String> {
    let messages = Messages::new(
        storage.clone(),
        jar.request(),
        Arc::new(MessagesConfig::default()),
    );
    let pending = messages.peek().await.expect("peek");
    messages.save(&mut HeaderMap::new()).await.expect("save");
    pending.iter().map(|m| m.text.to_string()).collect()
}

/// The cookies a response sets (not deletes).
fn written(response: &HeaderMap) -> Vec<String> {
    response
        .get_all(SET_COOKIE)
        .iter()
        .map(|l| l.to_str().expect("ASCII").to_owned())
        .filter(|l| !l.contains("Max-Age=0") && !l.split(';').next().unwrap_or("").ends_with('='))
        .map(|l| l.split('=').next().unwrap_or("").to_owned())
        .collect()
}

/// The whole switch: three messages under `before`, then under `after` with `before` as the
/// previous storage (its secret `previous_secret` when given): one message added without
/// reading, a read showing all four once in order, a reload showing nothing; the previous
/// storage, opened alone, holds the three until the read and nothing after; no response after
/// the switch writes a cookie only the previous storage uses.
async fn switch(before: StorageConfig, after: StorageConfig, what: &str) {
    switch_on(before, after, what, false).await;
}

/// As [`switch`]; `shared_store`: the previous storage's store is the current's.
async fn switch_on(before: StorageConfig, after: StorageConfig, what: &str, shared_store: bool) {
    let Some(old) = open(&before, what).await else {
        return;
    };
    let Some(new) = open(&after, what).await else {
        return;
    };
    let mut jar = Jar::default();
    request(&old, &mut jar, &["one", "two <b>2</b>", "é 🎉"], false).await;
    let old_cookies = jar.names();

    // The browser's cookies as the previous storage left them.
    let snapshot = jar.clone();
    let three = ["one", "two <b>2</b>", "é 🎉"];

    let mut responses = Vec::new();
    let (_, response, degraded) = request(&new, &mut jar, &["four"], false).await;
    assert!(degraded.is_none(), "{what}: {degraded:?}");
    responses.push(response);
    // Nothing was added to the previous storage: it holds the three, as it did, or nothing
    // when the add drained it first (the current storage would have overwritten its cookie).
    // Unless it is the current's own store, behind a cookie now.
    let held = peek(&old, &snapshot).await;
    assert!(
        shared_store || held == three || held.is_empty(),
        "{what}: previous written to: {held:?}"
    );

    let (shown, response, degraded) = request(&new, &mut jar, &[], true).await;
    assert!(degraded.is_none(), "{what}: {degraded:?}");
    responses.push(response);
    assert_eq!(shown, ["one", "two <b>2</b>", "é 🎉", "four"], "{what}");

    let (shown, response, _) = request(&new, &mut jar, &[], true).await;
    responses.push(response);
    assert!(shown.is_empty(), "{what}: shown twice: {shown:?}");
    // Drained: the browser holds nothing the previous storage would show, and a server-side
    // previous store holds nothing for the client any more.
    let mut left = jar.clone();
    left.0.retain(|(n, _)| old_cookies.contains(n));
    assert!(peek(&old, &left).await.is_empty(), "{what}: not drained");
    if !before.to_string().starts_with("cookie") {
        assert!(
            peek(&old, &snapshot).await.is_empty(),
            "{what}: store not drained"
        );
    }

    // No cookie that only the previous storage uses is written after the switch.
    let current_cookies = {
        let mut jar = Jar::default();
        let (_, response, _) = request(&new, &mut jar, &["x"], false).await;
        written(&response)
    };
    for response in &responses {
        for name in written(response) {
            assert!(
                !old_cookies.contains(&name) || current_cookies.contains(&name),
                "{what}: the previous storage's cookie {name} was written: {response:?}"
            );
        }
    }
}

fn config(url: &str) -> StorageConfig {
    StorageConfig::new(url).secret(SECRET)
}

/// `before`, then `after` with `before` as the previous storage, one secret.
async fn pair(before: &str, after: &str) {
    switch(
        config(before),
        config(after).previous(before),
        &format!("{before} → {after}"),
    )
    .await;
}

fn redis() -> String {
    format!("{}?prefix=prev{}", urls::redis(), unique())
}

fn postgres() -> String {
    format!("{}?table=flash_prev_{}", urls::postgres(), unique())
}

fn mysql() -> String {
    format!("{}?table=flash_prev_{}", urls::mysql(), unique())
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/flash.db", dir.path().display())
}

#[tokio::test]
async fn cookie_to_cookie_first_reads_the_same_cookie() {
    pair("cookie", "cookie+memory").await;
}

#[tokio::test]
async fn session_to_cookie() {
    pair("session", "cookie").await;
}

#[tokio::test]
async fn cookie_to_session() {
    pair("cookie", "session").await;
}

#[tokio::test]
async fn session_to_redis_and_cookie_first_session_to_postgres() {
    pair("session", &redis()).await;
    pair("cookie+session", &postgres()).await;
}

#[tokio::test]
async fn cookie_to_memory() {
    pair("cookie", "memory").await;
}

#[tokio::test]
async fn cookie_to_redis() {
    pair("cookie", &redis()).await;
}

#[tokio::test]
async fn redis_to_postgres() {
    pair(&redis(), &postgres()).await;
}

#[tokio::test]
async fn postgres_to_mysql() {
    pair(&postgres(), &mysql()).await;
}

#[tokio::test]
async fn mysql_to_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    pair(&mysql(), &sqlite(&dir)).await;
}

#[tokio::test]
async fn sqlite_to_cookie() {
    let dir = tempfile::tempdir().expect("dir");
    pair(&sqlite(&dir), "cookie").await;
}

#[tokio::test]
async fn cookie_first_sqlite_to_redis() {
    let dir = tempfile::tempdir().expect("dir");
    pair(&format!("cookie+{}", sqlite(&dir)), &redis()).await;
}

#[tokio::test]
async fn redis_to_cookie_first_redis_on_another_prefix() {
    pair(&redis(), &format!("cookie+{}", redis())).await;
}

/// Turning shared keys on (or changing their number) moves clients to other keys: with the old
/// URL as the previous storage, nothing pending is lost.
#[tokio::test]
async fn redis_to_the_same_redis_with_shared_keys() {
    let redis = redis();
    pair(&redis, &format!("{redis}&shared_keys=3")).await;
    let shared = format!("{}&shared_keys=2", self::redis());
    pair(&shared, &format!("{shared}0")).await;
}

#[tokio::test]
async fn redis_to_the_same_redis_behind_a_cookie() {
    let redis = redis();
    let after = format!("cookie+{redis}");
    switch_on(
        config(&redis),
        config(&after).previous(&redis),
        "redis → cookie+the same redis",
        true,
    )
    .await;
}

#[tokio::test]
async fn cookie_first_redis_to_cookie_first_postgres() {
    pair(
        &format!("cookie+{}", redis()),
        &format!("cookie+{}", postgres()),
    )
    .await;
}

#[tokio::test]
async fn redis_to_redis_cluster() {
    let cluster = format!("{}?prefix=prev{}", urls::redis_cluster_url(), unique());
    pair(&redis(), &cluster).await;
}

#[tokio::test]
async fn flash_cookie_to_django_cookie() {
    pair("cookie", "cookie?format=django").await;
}

#[tokio::test]
async fn django_cookie_to_flash_cookie() {
    pair("cookie?format=django", "cookie").await;
}

/// The switch also changes the secret: the old one is given as the previous secret.
#[tokio::test]
async fn a_new_secret_with_the_previous_one_given() {
    for (before, after) in [
        ("cookie", "cookie".to_owned()),
        ("cookie", redis()),
        ("cookie?format=django", "cookie".to_owned()),
    ] {
        switch(
            config(before),
            StorageConfig::new(&after)
                .secret(NEW_SECRET)
                .previous(before)
                .previous_secret(SECRET),
            &format!("{before} → {after}, new secret"),
        )
        .await;
    }
    let (before, after) = (redis(), postgres());
    switch(
        config(&before),
        StorageConfig::new(&after)
            .secret(NEW_SECRET)
            .previous(&before)
            .previous_secret(SECRET),
        "redis → postgres, new secret",
    )
    .await;
}

/// The old secret kept as a fallback of the new one verifies the previous storage too.
#[tokio::test]
async fn a_new_secret_with_the_old_one_as_fallback() {
    switch(
        config("cookie"),
        StorageConfig::new(redis())
            .secret(NEW_SECRET)
            .fallback_secret(SECRET)
            .previous("cookie"),
        "cookie → redis, old secret as fallback",
    )
    .await;
}

/// Django's own cookie (the interop vectors, written by Django 5.2 with its `SECRET_KEY`) is
/// read by flash's cookie storage with that key as the previous secret, once.
#[tokio::test]
async fn djangos_own_cookie_to_flash_cookie() {
    // The copy in flash-cookie (CI has no other), or `FLASH_DJANGO_VECTORS`.
    let dir = std::env::var_os("FLASH_DJANGO_VECTORS").map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../flash-cookie/tests/vectors")
        },
        std::path::PathBuf::from,
    );
    let text =
        std::fs::read_to_string(dir.join("cookie_vectors.json")).expect("the Django vectors");
    let vectors: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let secret = vectors["meta"]["SECRET_KEY"].as_str().expect("SECRET_KEY");
    let storage = StorageConfig::new("cookie")
        .secret(NEW_SECRET)
        .previous("cookie?format=django")
        .previous_secret(secret)
        .open()
        .await
        .expect("open");
    let mut tested = 0;
    for case in vectors["cases"].as_array().expect("cases") {
        let Some(value) = case["cookie"]["value"].as_str().filter(|v| !v.is_empty()) else {
            continue;
        };
        let expected: Vec<String> = case["decoded_by_django"]["iterated"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["message"].as_str().map(str::to_owned))
            .collect();
        let mut jar = Jar::with(vec![("messages".to_owned(), value.to_owned())]);
        let (shown, response, degraded) = request(&storage, &mut jar, &[], true).await;
        assert!(degraded.is_none(), "{}: {degraded:?}", case["name"]);
        assert_eq!(shown, expected, "{}", case["name"]);
        if !expected.is_empty() {
            let line = response[SET_COOKIE].to_str().expect("ASCII");
            assert!(
                line.starts_with("messages=;") && line.contains("Max-Age=0"),
                "{line}"
            );
            tested += 1;
        }
        let (shown, _, _) = request(&storage, &mut jar, &[], true).await;
        assert!(shown.is_empty(), "{}: shown twice", case["name"]);
    }
    assert!(tested > 0, "no Django case was tried");
}

/// The previous storage down (a Redis nobody listens on): the current storage serves alone,
/// and each read that could not drain reports it to the error hook.
#[tokio::test]
async fn the_previous_storage_down_does_not_break_the_current() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let storage = StorageConfig::new("cookie")
        .secret(SECRET)
        .previous(format!("redis://127.0.0.1:{port}"))
        .open()
        .await
        .expect("opens with the previous storage down");
    let mut jar = Jar::with(vec![("flash_id".to_owned(), "anything".to_owned())]);
    let (_, _, degraded) = request(&storage, &mut jar, &["a", "b"], false).await;
    assert!(
        degraded.is_none(),
        "an add does not read the previous storage"
    );
    let (shown, _, degraded) = request(&storage, &mut jar, &[], true).await;
    assert_eq!(shown, ["a", "b"]);
    let degraded = degraded.expect("the error hook hears of it");
    assert_eq!(degraded.kind(), ErrorKind::Unavailable, "{degraded}");
    let (shown, _, _) = request(&storage, &mut jar, &[], true).await;
    assert!(shown.is_empty());
}

#[tokio::test]
async fn bad_previous_storages_are_refused_at_start() {
    let error = |config: StorageConfig| config.validate().expect_err("refused").to_string();
    assert!(error(config("cookie").previous("cookie")).contains("is the current storage"));
    assert!(error(config("cookie").previous("nosuch://x")).contains("FLASH_STORAGE_PREVIOUS"));
    assert!(
        error(config("cookie").previous("cookie").previous_secret("short"))
            .contains("previous secret")
    );
    let missing = StorageConfig::new("session").previous("cookie").validate();
    let missing = missing
        .expect_err("the previous cookie needs a secret")
        .to_string();
    assert!(
        missing.contains("FLASH_STORAGE_PREVIOUS `cookie`"),
        "{missing}"
    );
    config("cookie")
        .previous("cookie")
        .previous_secret("another secret, at least 32 bytes long")
        .validate()
        .expect("a secret change alone is a switch");
    let vars = [
        ("FLASH_STORAGE", "cookie+memory"),
        ("FLASH_SECRET", SECRET),
        ("FLASH_STORAGE_PREVIOUS", "cookie?format=django"),
        (
            "FLASH_SECRET_PREVIOUS",
            "the Django SECRET_KEY, 32 bytes or more",
        ),
    ];
    let config = StorageConfig::from_vars(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .expect("vars");
    config.validate().expect("valid");
    let shown = format!("{config:?}");
    assert!(
        shown.contains("cookie?format=django") && !shown.contains("SECRET_KEY"),
        "{shown}"
    );
}

// The composition itself, over in-process storages.

/// Counts the calls a storage gets.
struct Counting<S> {
    inner: S,
    loads: std::sync::atomic::AtomicUsize,
    saves: std::sync::atomic::AtomicUsize,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Arc<Self> {
        Arc::new(Counting {
            inner,
            loads: 0.into(),
            saves: 0.into(),
        })
    }

    fn calls(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.loads.load(SeqCst), self.saves.load(SeqCst))
    }
}

#[flash::storage::async_trait]
impl<S: Storage> Storage for Counting<S> {
    async fn load(&self, request: &Incoming) -> flash::Result<flash::storage::Loaded> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load(request).await
    }

    async fn save(
        &self,
        request: &Incoming,
        update: flash::storage::Update,
        response: &mut HeaderMap,
    ) -> flash::Result<Vec<flash::Message>> {
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.save(request, update, response).await
    }
}

/// Fails every call as unavailable, or only its saves.
struct Failing {
    inner: Arc<dyn Storage>,
    loads_fail: bool,
}

#[flash::storage::async_trait]
impl Storage for Failing {
    async fn load(&self, request: &Incoming) -> flash::Result<flash::storage::Loaded> {
        if self.loads_fail {
            return Err(flash::Error::new(
                ErrorKind::Unavailable,
                "down for the test",
            ));
        }
        self.inner.load(request).await
    }

    async fn save(
        &self,
        _: &Incoming,
        _: flash::storage::Update,
        _: &mut HeaderMap,
    ) -> flash::Result<Vec<flash::Message>> {
        Err(flash::Error::new(
            ErrorKind::Unavailable,
            "down for the test",
        ))
    }
}

fn memory(
    store: &flash::storage::MemoryStore,
) -> flash::storage::ServerStorage<flash::storage::MemoryStore> {
    flash::storage::ServerStorage::new(
        store.clone(),
        flash::storage::Keys::new(flash::storage::Key::derive(SECRET, "flash.id")),
    )
}

/// memory → memory: the previous store is read and drained; a request that does not read
/// calls neither storage's `load`, and an add never reaches the previous one.
#[tokio::test]
async fn memory_to_memory_and_who_is_called() {
    let (a, b) = (
        flash::storage::MemoryStore::new(),
        flash::storage::MemoryStore::new(),
    );
    let old: Arc<dyn Storage> = Arc::new(memory(&a));
    let mut jar = Jar::default();
    request(&old, &mut jar, &["one", "two"], false).await;

    let previous = Counting::new(memory(&a));
    let new: Arc<dyn Storage> = Arc::new(
        flash::storage::WithPrevious::new(memory(&b), previous.clone())
            .current_cookies(["flash_id", "flash_id_carry"]),
    );
    let idle = Messages::new(
        new.clone(),
        jar.request(),
        Arc::new(MessagesConfig::default()),
    );
    idle.save(&mut HeaderMap::new()).await.expect("save");
    request(&new, &mut jar, &["three"], false).await;
    assert_eq!(
        previous.calls(),
        (0, 0),
        "only reads touch the previous storage"
    );
    assert_eq!(
        peek(&old, &jar).await,
        ["one", "two"],
        "the previous store as it was"
    );

    let (shown, _, _) = request(&new, &mut jar, &[], true).await;
    assert_eq!(shown, ["one", "two", "three"]);
    assert_eq!(previous.calls(), (1, 1));
    assert_eq!(peek(&old, &jar).await, Vec::<String>::new(), "drained");
    let (shown, _, _) = request(&new, &mut jar, &[], true).await;
    assert!(shown.is_empty());
}

/// A read that does not consume (it counts, or keeps): the previous storage's messages move
/// into the current one, before its own, and the previous is drained all the same.
#[tokio::test]
async fn messages_not_consumed_move_into_the_current_storage() {
    let (a, b) = (
        flash::storage::MemoryStore::new(),
        flash::storage::MemoryStore::new(),
    );
    let old: Arc<dyn Storage> = Arc::new(memory(&a));
    let mut jar = Jar::default();
    request(&old, &mut jar, &["one", "two"], false).await;
    let new: Arc<dyn Storage> = Arc::new(flash::storage::WithPrevious::new(memory(&b), memory(&a)));
    request(&new, &mut jar, &["three"], false).await;

    let counted = Messages::new(
        new.clone(),
        jar.request(),
        Arc::new(MessagesConfig::default()),
    );
    assert_eq!(counted.len().await.expect("len"), 3);
    counted.info("four");
    let mut response = HeaderMap::new();
    counted.save(&mut response).await.expect("save");
    jar.apply(&response);
    assert!(
        peek(&old, &jar).await.is_empty(),
        "moved out of the previous"
    );

    let kept = Messages::new(
        new.clone(),
        jar.request(),
        Arc::new(MessagesConfig::default()),
    );
    assert_eq!(kept.read().await.expect("read").len(), 4);
    kept.keep();
    kept.save(&mut HeaderMap::new()).await.expect("save");

    let (shown, _, _) = request(&new, &mut jar, &[], true).await;
    assert_eq!(shown, ["one", "two", "three", "four"]);
    let (shown, _, _) = request(&new, &mut jar, &[], true).await;
    assert!(shown.is_empty());
}

/// The previous storage failing: at read, the current's messages are shown and the error
/// reaches the hook; at settle, its messages stay there (shown again later, never lost).
#[tokio::test]
async fn a_failing_previous_storage_is_reported_and_read_past() {
    let (a, b) = (
        flash::storage::MemoryStore::new(),
        flash::storage::MemoryStore::new(),
    );
    let old: Arc<dyn Storage> = Arc::new(memory(&a));
    let mut jar = Jar::default();
    request(&old, &mut jar, &["old"], false).await;

    let down: Arc<dyn Storage> = Arc::new(flash::storage::WithPrevious::new(
        memory(&b),
        Failing {
            inner: old.clone(),
            loads_fail: true,
        },
    ));
    request(&down, &mut jar, &["new"], false).await;
    let (shown, _, degraded) = request(&down, &mut jar, &[], true).await;
    assert_eq!(shown, ["new"]);
    assert_eq!(degraded.expect("reported").kind(), ErrorKind::Unavailable);

    let settle_fails: Arc<dyn Storage> = Arc::new(flash::storage::WithPrevious::new(
        memory(&b),
        Failing {
            inner: old.clone(),
            loads_fail: false,
        },
    ));
    request(&settle_fails, &mut jar, &["newer"], false).await;
    let counted = Messages::new(
        settle_fails.clone(),
        jar.request(),
        Arc::new(MessagesConfig::default()),
    );
    assert_eq!(counted.len().await.expect("len"), 2);
    let report = counted.save(&mut HeaderMap::new()).await.expect("save");
    assert!(report.degraded.is_some(), "the failed settle is reported");

    let healthy: Arc<dyn Storage> =
        Arc::new(flash::storage::WithPrevious::new(memory(&b), memory(&a)));
    // The lease the failed settle held is released by a spawned task.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let messages = Messages::new(
        healthy.clone(),
        jar.request(),
        Arc::new(MessagesConfig::default()),
    );
    let shown: Vec<String> = messages
        .peek()
        .await
        .expect("peek")
        .iter()
        .map(|m| m.text.to_string())
        .collect();
    messages.save(&mut HeaderMap::new()).await.expect("save");
    assert_eq!(shown, ["old", "newer"], "nothing lost");
}

/// More than the cookie holds: the previous `cookie+<store>` gives the cookie's head and the
/// store's tail, in order, before the current storage's messages.
#[tokio::test]
async fn an_overflowing_cookie_first_previous_keeps_its_order() {
    let dir = tempfile::tempdir().expect("dir");
    let before = format!("cookie+{}?max_size=300", sqlite(&dir));
    let Some(old) = open(&config(&before), "sqlite").await else {
        return;
    };
    let after = redis();
    let Some(new) = open(&config(&after).previous(&before), "redis").await else {
        return;
    };
    let texts: Vec<String> = (0..12).map(|i| format!("message number {i:02}")).collect();
    let added: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut jar = Jar::default();
    request(&old, &mut jar, &added, false).await;
    assert!(
        jar.names().contains(&"flash_id".to_owned()),
        "it overflowed"
    );
    request(&new, &mut jar, &["after the switch"], false).await;
    let (shown, _, degraded) = request(&new, &mut jar, &[], true).await;
    assert!(degraded.is_none(), "{degraded:?}");
    let mut expected = texts.clone();
    expected.push("after the switch".to_owned());
    assert_eq!(shown, expected);
    let (shown, _, _) = request(&new, &mut jar, &[], true).await;
    assert!(shown.is_empty(), "{shown:?}");
}
