//! Every storage URL form works in the demo as `cargo run -p flash-demo` builds it (issue 10,
//! part 4), on both frameworks: the binary is started with `FLASH_STORAGE` set to each and
//! `FLASH_FRAMEWORK` to `axum`, `actix` or `poem`, and a browser does POST → 303 → a widget's
//! `GET /api/messages` and a link checker's `HEAD /` (neither takes the message, addressed to
//! `/`: issue 19) → GET `/` (shown once) → GET (gone). Server URLs come from the environment at run
//! time (`FLASH_REDIS_URL`, `FLASH_REDIS_CLUSTER_URLS`, `FLASH_POSTGRES_URL`,
//! `FLASH_MYSQL_URL`); an unreachable server fails, unless the run opted in to skipping
//! (`FLASH_TESTKIT_SKIP_UNREACHABLE=1`, never under `CI=true`).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use common::{Framework, Served, Started, browser, post_then_get, start_on, unavailable};
use flash::testkit::urls;

/// A prefix or table name of this run, so runs in parallel and in a row do not meet.
fn unique() -> String {
    flash::storage::LeaseId::random().to_hex()[..12].to_owned()
}

fn redis() -> String {
    urls::redis()
}

/// `redis+cluster://a:1,b:2,c:3` from the tests' list of node URLs.
fn redis_cluster() -> String {
    urls::redis_cluster_url()
}

fn postgres() -> String {
    urls::postgres()
}

fn mysql() -> String {
    urls::mysql()
}

/// `url` with flash's option `pair` added to its query.
fn with(url: &str, pair: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{pair}")
}

common::on_every_framework!(
    cookie,
    cookie_in_django_format,
    session,
    memory,
    sqlite,
    redis_single,
    redis_cluster_nodes,
    postgres_table,
    mysql_table,
);

/// Starts the demo on `framework` and `storage` and runs the flow through it; `server` names
/// what a skip lacks (`None` for storages that need no server, which must always start).
async fn flow(framework: Framework, storage: &str, server: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = start_on(
        framework,
        dir.path(),
        &[("FLASH_STORAGE", storage)],
        &["--addr", "127.0.0.1:0"],
    );
    let base = match demo.started() {
        Started::Serving(base) => base,
        Started::Exited(said) => match server {
            Some(what) if said.contains("storage unavailable") => {
                return unavailable(what, &said);
            }
            _ => panic!("the demo did not start on {storage}: {said}"),
        },
    };
    let shown = flash::storage::redact_url(storage);
    assert!(
        demo.seen
            .last()
            .unwrap()
            .contains(&format!("storage: {shown}, framework: {framework}")),
        "{:?}",
        demo.seen
    );
    let page = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(
            r#"<code id="storage">{}</code>"#,
            minijinja::HtmlEscape(&shown)
        )),
        "the page names the storage: {page}"
    );
    assert!(
        page.contains(&format!(r#"<b id="framework">{framework}</b>"#)),
        "{page}"
    );
    post_then_get(&base).await;
    demo.interrupt();
}

async fn cookie(framework: Framework) {
    flow(framework, "cookie", None).await;
}

async fn cookie_in_django_format(framework: Framework) {
    flow(framework, "cookie?format=django", None).await;
}

/// The session storages: tower-sessions' session on axum, actix-session's on actix.
async fn session(framework: Framework) {
    flow(framework, "session", None).await;
    flow(framework, "cookie+session", None).await;
}

/// The session storage served in process, on each framework.
mod session_in_process {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_axum() {
        super::session_in_process(super::Framework::Axum).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_actix() {
        super::session_in_process(super::Framework::Actix).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_poem() {
        super::session_in_process(super::Framework::Poem).await;
    }
}

/// More messages than a cookie holds stay in the session (its state is in memory; only its id
/// travels), are shown once, and pages that show nothing set no cookie.
async fn session_in_process(framework: Framework) {
    let storage = flash::StorageConfig::new("session").open().await.unwrap();
    let app = Served::start(framework, storage, flash_demo::Serving::new("session"));
    let http = browser();
    let page = |http: &reqwest::Client| http.get(format!("{}/", app.base)).send();
    let response = page(&http).await.unwrap();
    assert!(
        response.headers().get("set-cookie").is_none(),
        "{response:?}"
    );

    let text = "x".repeat(200);
    let response = http
        .post(format!("{}/messages", app.base))
        .form(&[("level", "info"), ("text", text.as_str()), ("count", "40")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    // Beside the session's cookie, flash's hint that messages are addressed to `/`.
    let cookies: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter(|line| !line.as_bytes().starts_with(b"flash_to="))
        .collect();
    assert_eq!(cookies.len(), 1, "only the session's cookie: {cookies:?}");
    assert!(cookies[0].len() < 512, "{cookies:?}");

    let body = page(&http).await.unwrap().text().await.unwrap();
    let shown = format!(r#"<li class="info">{text}</li>"#);
    assert_eq!(body.matches(&shown).count(), 40, "{body}");
    let body = page(&http).await.unwrap().text().await.unwrap();
    assert!(!body.contains(&shown), "{body}");
    let response = page(&http).await.unwrap();
    assert!(
        response.headers().get("set-cookie").is_none(),
        "{response:?}"
    );
}

async fn memory(framework: Framework) {
    flow(framework, "memory://", None).await;
    flow(framework, "cookie+memory", None).await;
}

async fn sqlite(framework: Framework) {
    // A path relative to the demo's working directory (a fresh temporary one).
    flow(framework, "sqlite://flash.db?mode=rwc", None).await;
}

async fn redis_single(framework: Framework) {
    let prefix = format!("prefix=flash-demo-{}", unique());
    flow(framework, &with(&redis(), &prefix), Some("redis")).await;
    flow(
        framework,
        &format!("cookie+{}", with(&redis(), &prefix)),
        Some("redis"),
    )
    .await;
}

async fn redis_cluster_nodes(framework: Framework) {
    let prefix = format!("prefix=flash-demo-{}", unique());
    flow(
        framework,
        &with(&redis_cluster(), &prefix),
        Some("redis cluster"),
    )
    .await;
}

async fn postgres_table(framework: Framework) {
    let table = format!("table=flash_demo_{}", unique());
    flow(framework, &with(&postgres(), &table), Some("postgres")).await;
    flow(
        framework,
        &format!("cookie+{}", with(&postgres(), &table)),
        Some("postgres"),
    )
    .await;
}

async fn mysql_table(framework: Framework) {
    let table = format!("table=flash_demo_{}", unique());
    flow(framework, &with(&mysql(), &table), Some("mysql")).await;
}
