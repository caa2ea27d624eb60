//! Switching storage loses nothing (issue 22), as an operator does it: messages are posted to
//! the demo on one storage, the demo is restarted on another with the first as
//! `FLASH_STORAGE_PREVIOUS`, and the next page shows every pending message once, in order; a
//! reload shows nothing; nothing is written to the previous storage (its store holds what it
//! held until the read, nothing after, and no response sets one of its cookies but to delete
//! it); the previous storage down does not break the current one. Server URLs come from the
//! environment at run time; an unreachable server fails, unless the run opted in to skipping
//! (`FLASH_TESTKIT_SKIP_UNREACHABLE=1`, never under `CI=true`).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::sync::Arc;

use common::{Demo, Framework, Started, start_on, unavailable};
use flash::testkit::urls;
use reqwest::cookie::CookieStore;

const SECRET: &str = "the demo's secret for the switch tests, 32 bytes or more";

fn unique() -> String {
    flash::storage::LeaseId::random().to_hex()[..12].to_owned()
}

/// `url` with flash's option `pair` added to its query.
fn with(url: &str, pair: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{pair}")
}

fn redis() -> String {
    with(&urls::redis(), &format!("prefix=switch{}", unique()))
}

fn postgres() -> String {
    with(
        &urls::postgres(),
        &format!("table=flash_switch_{}", unique()),
    )
}

fn mysql() -> String {
    with(&urls::mysql(), &format!("table=flash_switch_{}", unique()))
}

fn cluster() -> String {
    with(
        &urls::redis_cluster_url(),
        &format!("prefix=switch{}", unique()),
    )
}

/// A browser whose cookies the test can read.
struct Browser {
    http: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    /// Every `Set-Cookie` line it received, by the demo that sent it.
    set_cookies: Vec<String>,
}

impl Browser {
    fn new() -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            http,
            jar,
            set_cookies: Vec::new(),
        }
    }

    /// Its cookies for `base`, as a `Cookie` header value.
    fn cookies(&self, base: &str) -> Option<String> {
        let url = base.parse().unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for line in response.headers().get_all("set-cookie") {
            self.set_cookies.push(line.to_str().unwrap().to_owned());
        }
    }

    async fn post(&mut self, base: &str, text: &str) {
        let response = self
            .http
            .post(format!("{base}/messages"))
            .form(&[("level", "info"), ("text", text)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
        self.keep(&response);
    }

    /// The messages the page shows, in order.
    async fn page(&mut self, base: &str) -> Vec<String> {
        let response = self.http.get(format!("{base}/")).send().await.unwrap();
        self.keep(&response);
        shown(&response.text().await.unwrap())
    }
}

/// The texts of the page's `<ul id="messages">`, in order.
fn shown(page: &str) -> Vec<String> {
    let Some(start) = page.find(r#"<ul id="messages">"#) else {
        return Vec::new();
    };
    let list = &page[start
        ..page[start..]
            .find("</ul>")
            .map_or(page.len(), |e| start + e)];
    list.split("<li class=\"")
        .skip(1)
        .filter_map(|item| {
            let text = &item[item.find('>')? + 1..];
            Some(text[..text.find("</li>")?].to_owned())
        })
        .collect()
}

/// The names of the cookies `lines` set (deletions left out).
fn written(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.contains("Max-Age=0") && !l.split(';').next().unwrap().ends_with('='))
        .map(|l| l.split('=').next().unwrap().to_owned())
        .collect()
}

/// The demo on `framework` in `dir` with `env`; `None` when a server it needs is unreachable.
fn start(
    framework: Framework,
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> Option<(Demo, String)> {
    let mut demo = start_on(framework, dir, env, &["--addr", "127.0.0.1:0"]);
    match demo.started() {
        Started::Serving(base) => Some((demo, base)),
        Started::Exited(said) if said.contains("unavailable") || said.contains("unreachable") => {
            unavailable("a storage server", &said);
            None
        }
        Started::Exited(said) => panic!("the demo did not start with {env:?}: {said}"),
    }
}

/// What the storage at `url` holds for a browser sending `cookies`, without consuming.
async fn held(url: &str, secret: &str, cookies: Option<&str>) -> Vec<String> {
    let storage = flash::StorageConfig::new(url)
        .secret(secret)
        .migrate(false)
        .open()
        .await
        .unwrap();
    let mut headers = http::HeaderMap::new();
    if let Some(cookies) = cookies {
        headers.insert(http::header::COOKIE, cookies.parse().unwrap());
    }
    let messages = flash::Messages::new(
        storage,
        flash::storage::Incoming::from_headers(&headers),
        Arc::new(flash::MessagesConfig::default()),
    );
    let pending = messages.peek().await.unwrap();
    messages.save(&mut http::HeaderMap::new()).await.unwrap();
    pending.iter().map(|m| m.text.to_string()).collect()
}

/// Three messages posted under `before`, the demo restarted under `after` with `before` as
/// the previous storage: one more posted, then the page shows the four once, in order.
async fn switch(framework: Framework, before: &str, after: &str) {
    switch_secrets(framework, (before, SECRET), (after, SECRET)).await;
}

async fn switch_secrets(
    framework: Framework,
    (before, old_secret): (&str, &str),
    (after, new_secret): (&str, &str),
) {
    let dir = tempfile::tempdir().unwrap();
    // `{dir}` in a URL is the demo's directory (an SQLite file there).
    let (before, after) = (
        before.replace("{dir}", &dir.path().display().to_string()),
        after.replace("{dir}", &dir.path().display().to_string()),
    );
    let (before, after) = (before.as_str(), after.as_str());
    let what = format!("{framework}: {before} → {after}");
    let mut browser = Browser::new();
    let three = ["first", "second & more", "third"];

    let Some((mut old, base)) = start(
        framework,
        dir.path(),
        &[("FLASH_STORAGE", before), ("FLASH_SECRET", old_secret)],
    ) else {
        return;
    };
    for text in three {
        browser.post(&base, text).await;
    }
    old.interrupt();
    let old_cookies = written(&browser.set_cookies);
    let snapshot = browser.cookies(&base);
    browser.set_cookies.clear();

    let mut env = vec![
        ("FLASH_STORAGE", after),
        ("FLASH_SECRET", new_secret),
        ("FLASH_STORAGE_PREVIOUS", before),
    ];
    if old_secret != new_secret {
        env.push(("FLASH_SECRET_PREVIOUS", old_secret));
    }
    let Some((mut new, base)) = start(framework, dir.path(), &env) else {
        return;
    };
    browser.post(&base, "fourth").await;
    // Nothing was added to the previous storage: it holds the three as it did, or nothing when
    // the add drained it first (the current storage would have overwritten its cookie).
    let kept = held(before, old_secret, snapshot.as_deref()).await;
    assert!(
        kept == three.map(str::to_owned) || kept.is_empty(),
        "{what}: the previous storage was written to: {kept:?}"
    );

    let page = browser.page(&base).await;
    assert_eq!(
        page,
        ["first", "second &amp; more", "third", "fourth"],
        "{what}"
    );
    assert!(browser.page(&base).await.is_empty(), "{what}: shown twice");
    // Drained: the browser holds nothing the previous storage would show, nor does its store.
    let now = browser.cookies(&base);
    assert!(
        held(before, old_secret, now.as_deref()).await.is_empty(),
        "{what}"
    );
    if !before.starts_with("cookie") {
        let left = held(before, old_secret, snapshot.as_deref()).await;
        assert!(
            left.is_empty(),
            "{what}: the previous store still holds {left:?}"
        );
    }
    let said = new.interrupt().join("\n");
    // Unless the current storage reads the previous one's cookie itself (same name, format and
    // secret): then it shows them as its own.
    let flash_cookie = |url: &str| url.starts_with("cookie") && !url.contains("format=django");
    let same_cookie = flash_cookie(before) && flash_cookie(after) && old_secret == new_secret;
    assert!(
        same_cookie || said.contains("drained=3"),
        "{what}: the drain is logged: {said}"
    );

    // The current storage's own cookies, for a new browser.
    let Some((mut fresh, base)) = start(framework, dir.path(), &env) else {
        return;
    };
    let mut other = Browser::new();
    other.post(&base, "x").await;
    fresh.interrupt();
    let current_cookies = written(&other.set_cookies);
    for name in written(&browser.set_cookies) {
        assert!(
            !old_cookies.contains(&name) || current_cookies.contains(&name),
            "{what}: the previous storage's cookie {name} was written: {:?}",
            browser.set_cookies
        );
    }
}

common::on_every_framework!(cookie_to_redis, redis_to_postgres);

async fn cookie_to_redis(framework: Framework) {
    switch(framework, "cookie", &redis()).await;
}

async fn redis_to_postgres(framework: Framework) {
    switch(framework, &redis(), &postgres()).await;
}

#[tokio::test]
async fn cookie_to_the_demos_default() {
    switch(
        Framework::Axum,
        "cookie",
        "cookie+sqlite://{dir}/flash-demo.db?mode=rwc",
    )
    .await;
}

#[tokio::test]
async fn the_demos_default_to_redis() {
    switch(
        Framework::Actix,
        "cookie+sqlite://{dir}/flash-demo.db?mode=rwc",
        &redis(),
    )
    .await;
}

#[tokio::test]
async fn postgres_to_mysql_to_sqlite() {
    switch(Framework::Axum, &postgres(), &mysql()).await;
    switch(
        Framework::Actix,
        &mysql(),
        "sqlite://{dir}/flash.db?mode=rwc",
    )
    .await;
}

#[tokio::test]
async fn sqlite_to_redis_cluster_to_memory() {
    switch(
        Framework::Axum,
        "sqlite://{dir}/flash.db?mode=rwc",
        &cluster(),
    )
    .await;
    switch(Framework::Actix, &cluster(), "cookie+memory").await;
}

#[tokio::test]
async fn cookie_first_redis_to_cookie_first_postgres() {
    switch(
        Framework::Axum,
        &format!("cookie+{}", redis()),
        &format!("cookie+{}", postgres()),
    )
    .await;
}

/// A Django app's cookie, then flash's: Django's `SECRET_KEY` is the previous secret.
#[tokio::test]
async fn django_cookie_to_flash_cookie_with_djangos_secret_key() {
    let django_key = "interop-test-secret-key-0123456789";
    for framework in [Framework::Axum, Framework::Actix] {
        switch_secrets(
            framework,
            ("cookie?format=django", django_key),
            ("cookie", SECRET),
        )
        .await;
    }
    switch_secrets(
        Framework::Axum,
        ("cookie", SECRET),
        ("cookie?format=django", django_key),
    )
    .await;
}

/// The previous storage down (nobody listens on its port): the demo starts, serves from the
/// current storage, and its error hook says why the previous one was not drained.
#[tokio::test]
async fn the_previous_storage_down_does_not_break_the_current() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let previous = format!("redis://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    for framework in [Framework::Axum, Framework::Actix] {
        let (mut demo, base) = start(
            framework,
            dir.path(),
            &[
                ("FLASH_STORAGE", "cookie"),
                ("FLASH_SECRET", SECRET),
                ("FLASH_STORAGE_PREVIOUS", &previous),
            ],
        )
        .expect("starts with the previous storage down");
        let mut browser = Browser::new();
        browser.post(&base, "still works").await;
        assert_eq!(browser.page(&base).await, ["still works"], "{framework}");
        assert!(browser.page(&base).await.is_empty(), "{framework}");
        let said = demo.interrupt().join("\n");
        assert!(
            said.lines()
                .any(|l| l.contains("saved despite a storage failure")
                    && l.contains("previous storage")),
            "{framework}: the error hook is told: {said}"
        );
    }
}

#[test]
fn help_names_the_previous_storage() {
    let output = std::process::Command::new(common::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("FLASH_STORAGE_PREVIOUS"), "{said}");
    assert!(said.contains("FLASH_SECRET_PREVIOUS"), "{said}");
}
