//! What several bench targets share: the axum apps, request helpers and the peer's glue.
#![allow(dead_code, reason = "each bench target uses part of this module")]

use std::sync::{Arc, OnceLock};

use actix_web::HttpRequest;
use actix_web_flash_messages::{FlashMessage, Level as PeerLevel};
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use flash_axum::Flash;
use flash_benches::{fixtures, floor};
use flash_core::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use flash_core::http::{HeaderMap, HeaderValue, Request, Response};
use flash_core::{
    Key, Keys, Message,
    storage::{MemoryStore, ServerStorage, Storage, Update},
};
use flash_testkit::{CallCounts, CountingStore};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub(crate) mod actix;

/// The signing key every bench uses (raw HMAC key).
pub(crate) const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";
/// Django's `SECRET_KEY` of the shared vectors.
pub(crate) const DJANGO_SECRET: &[u8] = b"interop-test-secret-key-0123456789";
/// The text the adding handler adds.
pub(crate) const ADDED: &str = "Your profile was updated successfully!!";

async fn add(messages: Flash) -> &'static str {
    messages.success(ADDED);
    "saved"
}

async fn bare_add() -> &'static str {
    "saved"
}

async fn read(messages: Flash) -> String {
    let shown = messages.read().await.unwrap_or_default();
    render(shown.iter().map(|m| m.text.as_str()))
}

async fn bare_read() -> String {
    let texts = fixtures::pairs(3);
    render(texts.iter().map(|(_, text)| text.as_str()))
}

fn render<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::with_capacity(256);
    for text in texts {
        out.push_str("<li>");
        out.push_str(text);
        out.push_str("</li>");
    }
    out
}

async fn idle() -> &'static str {
    "nothing to see"
}

async fn add_three(messages: Flash) -> &'static str {
    for message in fixtures::messages(3) {
        messages.add(message);
    }
    "saved"
}

/// The floor of a request that adds: what any signed-cookie flash message costs, done by hand
/// with the bare crates (the codec floor's serde_json + base64 + HMAC): the same `Set-Cookie`,
/// `Vary` and `Cache-Control` headers flash writes, and nothing else.
async fn floor_add() -> (HeaderMap, &'static str) {
    let value = floor().encode(&[(25, ADDED.to_owned())]);
    let mut headers = HeaderMap::new();
    let mut line =
        String::with_capacity(FLOOR_NAME.len() + 1 + value.len() + FLOOR_ATTRIBUTES.len());
    line.push_str(FLOOR_NAME);
    line.push('=');
    line.push_str(&value);
    line.push_str(FLOOR_ATTRIBUTES);
    headers.insert(
        SET_COOKIE,
        HeaderValue::try_from(line).expect("a header value"),
    );
    headers.insert(VARY, HeaderValue::from_static("Cookie"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    (headers, "saved")
}

/// The floor of a request that reads: find the cookie, verify and decode it with the bare
/// crates, render the texts, delete the cookie.
async fn floor_read(request: Request<Body>) -> (HeaderMap, String) {
    let messages = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(FLOOR_NAME)?.strip_prefix('='))
        .and_then(|value| floor().decode(value))
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(SET_COOKIE, HeaderValue::from_static(FLOOR_REMOVAL));
    headers.insert(VARY, HeaderValue::from_static("Cookie"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    (
        headers,
        render(messages.iter().map(|(_, text)| text.as_str())),
    )
}

const FLOOR_NAME: &str = "messages";
const FLOOR_ATTRIBUTES: &str = "; HttpOnly; SameSite=Lax; Path=/";
const FLOOR_REMOVAL: &str =
    "messages=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";

fn floor() -> &'static floor::Floor {
    static FLOOR: OnceLock<floor::Floor> = OnceLock::new();
    FLOOR.get_or_init(|| floor::Floor::new(&KEY, FLOOR_NAME))
}

/// The floor handlers (no flash layer): `POST /add`, `GET /read`, `GET /idle`, writing and
/// reading the same cookie as flash's cookie storage with its defaults.
pub(crate) fn floor_routes() -> Router {
    Router::new()
        .route("/add", post(floor_add))
        .route("/read", get(floor_read))
        .route("/idle", get(idle))
}

/// The flash app (wrap it in a `FlashLayer`): `POST /add`, `POST /add3`, `GET /read`,
/// `GET /idle`.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/add", post(add))
        .route("/add3", post(add_three))
        .route("/read", get(read))
        .route("/idle", get(idle))
}

/// The same handlers without flash: `POST /add`, `GET /read` (renders the same 3 texts),
/// `GET /idle`.
pub(crate) fn bare_routes() -> Router {
    Router::new()
        .route("/add", post(bare_add))
        .route("/read", get(bare_read))
        .route("/idle", get(idle))
}

/// A request with an optional `Cookie` header, whose value is made as hyper makes a header it
/// parsed on a real server (hyper 1.x `proto::h1::role`, `Server::parse`): the bytes read into
/// a `BytesMut`, the head split off and frozen (`buf.split_to(len).freeze()`), each value a
/// slice of it (`slice.slice(start..end)`). A clone of such a value is a reference count, as
/// it is behind a server; a value made from a `&str` would be copied on its first clone, a
/// cost only an in-process request has.
pub(crate) fn request(method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        let mut read = bytes::BytesMut::from(cookie.as_bytes());
        let head = read.split_to(cookie.len()).freeze();
        let value = HeaderValue::from_maybe_shared(head.slice(..)).expect("a valid cookie header");
        builder = builder.header(COOKIE, value);
    }
    builder.body(Body::empty()).expect("a valid request")
}

/// Calls the app and collects the body.
pub(crate) async fn call(
    app: &Router,
    request: Request<Body>,
) -> (Response<()>, axum::body::Bytes) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a body").to_bytes();
    (Response::from_parts(parts, ()), bytes)
}

/// The `name=value` pair of the response's `Set-Cookie`, as a browser sends it back.
pub(crate) fn set_cookie_pair(headers: &HeaderMap) -> Option<String> {
    let line = headers.get(SET_COOKIE)?.to_str().ok()?;
    Some(cookie_pair(line))
}

/// The `name=value` pair a `Set-Cookie` line sets.
pub(crate) fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// A request header map carrying `cookie`.
pub(crate) fn request_headers(cookie: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, cookie.parse().expect("a valid cookie header"));
    headers
}

/// The keyed bridge over a counting in-memory store, and its counters.
pub(crate) fn server_storage() -> (Arc<dyn Storage>, CallCounts) {
    let store = CountingStore::new(MemoryStore::new());
    let counts = store.counts();
    let storage = ServerStorage::new(store, Keys::new(Key::from_mac_key(&KEY)));
    (Arc::new(storage), counts)
}

/// The update of a request that added `messages` and did not read.
pub(crate) fn update(messages: &[Message]) -> Update {
    Update::new(None).with_added(messages.to_vec())
}

/// The fixture messages as the peer takes them.
pub(crate) fn peer_messages(n: usize) -> Vec<FlashMessage> {
    fixtures::pairs(n)
        .into_iter()
        .map(|(level, text)| {
            let level = if level <= 10 {
                PeerLevel::Debug
            } else if level <= 20 {
                PeerLevel::Info
            } else if level <= 25 {
                PeerLevel::Success
            } else if level <= 30 {
                PeerLevel::Warning
            } else {
                PeerLevel::Error
            };
            FlashMessage::new(text, level)
        })
        .collect()
}

/// An actix request with an optional `Cookie` header.
pub(crate) fn test_request(cookie: Option<&str>) -> HttpRequest {
    let request = actix_web::test::TestRequest::default();
    match cookie {
        Some(cookie) => request.insert_header((actix_web::http::header::COOKIE, cookie)),
        None => request,
    }
    .to_http_request()
}

/// The `name=value` pair of the cookie the peer's store sets for `messages`, as a browser
/// sends it back.
pub(crate) fn peer_cookie(
    peer: &actix_web_flash_messages::storage::CookieMessageStore,
    messages: &[FlashMessage],
) -> String {
    use actix_web_flash_messages::storage::FlashMessageStore as _;
    let mut head = actix_web::dev::ResponseHead::new(actix_web::http::StatusCode::OK);
    peer.store(messages, test_request(None), &mut head)
        .expect("peer store");
    cookie_pair(
        head.headers()
            .get(actix_web::http::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("a Set-Cookie header"),
    )
}

/// The peer's cookie store, keyed for the benches. Its value limit is raised from 2048 to
/// 4096 bytes: its value for the 20 messages is 2195 bytes (flash's is 1320).
pub(crate) fn peer_store() -> actix_web_flash_messages::storage::CookieMessageStore {
    actix_web_flash_messages::storage::CookieMessageStore::builder(actix_web::cookie::Key::from(
        &[7u8; 64],
    ))
    .bytes_size_limit(4096)
    .build()
}

/// Whether `name` (a table, key or file of a bench run) belongs to a run whose process is gone:
/// its first number is the run's process id. Never true where `/proc` is missing.
pub(crate) fn of_dead_run(name: &str) -> bool {
    let digits: String = name
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    let proc = std::path::Path::new("/proc");
    !digits.is_empty()
        && proc.join("self").exists()
        && digits
            .parse::<u32>()
            .is_ok_and(|pid| pid != std::process::id())
        && !proc.join(&digits).exists()
}

/// Removes what earlier bench runs that died left behind (a panic skips their cleanup): tables
/// `flash_bench_*`, Redis keys `{flash-bench-*` and SQLite files `flash-bench-*.db*` of processes
/// that no longer exist. Best effort: errors are ignored.
pub(crate) async fn sweep_dead_runs(redis_url: &str, postgres_url: &str, mysql_url: &str) {
    use redis::AsyncCommands as _;
    use sqlx::AssertSqlSafe;

    if let Ok(pool) = sqlx::PgPool::connect(postgres_url).await {
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'flash\\_bench\\_%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        for (table,) in tables.into_iter().filter(|(t,)| of_dead_run(t)) {
            let statement = format!("DROP TABLE IF EXISTS \"{table}\"");
            let _ = sqlx::raw_sql(AssertSqlSafe(statement)).execute(&pool).await;
        }
        pool.close().await;
    }
    if let Ok(pool) = sqlx::MySqlPool::connect(mysql_url).await {
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name LIKE 'flash\\_bench\\_%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        for (table,) in tables.into_iter().filter(|(t,)| of_dead_run(t)) {
            let statement = format!("DROP TABLE IF EXISTS `{table}`");
            let _ = sqlx::raw_sql(AssertSqlSafe(statement)).execute(&pool).await;
        }
        // flash-sql's procedures (`<table>_<call>_v1`) of dead runs.
        let procedures: Vec<(String,)> = sqlx::query_as(
            "SELECT CAST(routine_name AS CHAR) FROM information_schema.routines \
             WHERE routine_schema = DATABASE() AND routine_name LIKE 'flash\\_bench\\_%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        for (procedure,) in procedures.into_iter().filter(|(p,)| of_dead_run(p)) {
            let statement = format!("DROP PROCEDURE IF EXISTS `{procedure}`");
            let _ = sqlx::raw_sql(AssertSqlSafe(statement)).execute(&pool).await;
        }
        pool.close().await;
    }
    if let Ok(client) = redis::Client::open(redis_url)
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let mut keys: Vec<String> = Vec::new();
        if let Ok(mut iter) = conn.scan_match::<_, String>("{flash-bench-*").await {
            while let Some(Ok(key)) = iter.next_item().await {
                if of_dead_run(&key) {
                    keys.push(key);
                }
            }
        }
        for chunk in keys.chunks(1_000) {
            let _: redis::RedisResult<()> =
                redis::cmd("UNLINK").arg(chunk).query_async(&mut conn).await;
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("flash-bench-") && name.contains(".db") && of_dead_run(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
