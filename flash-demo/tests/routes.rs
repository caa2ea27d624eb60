//! The demo's routes over the in-memory keyed store: the contract's shapes and bad input.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use flash_core::{Key, KeyedStorage, Keys, Level, LevelTags, MemoryStore, Message};
use flash_demo::{MessageView, app};
use http::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE};
use http::{Request, StatusCode};
use tower::ServiceExt as _;

fn demo() -> axum::Router {
    app(Arc::new(KeyedStorage::new(
        MemoryStore::new(),
        Keys::new(Key::generate()),
    )))
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn form(body: &str) -> Request<Body> {
    Request::post("/messages")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn json(body: &str) -> Request<Body> {
    Request::post("/api/messages")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn the_page_has_the_form_and_no_list_when_empty() {
    let (status, _, body) = send(&demo(), Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"<form method="post" action="/messages">"#));
    assert!(!body.contains("id=\"messages\""), "{body}");
}

#[tokio::test]
async fn a_post_redirects_and_the_page_shows_every_copy() {
    let app = demo();
    let (status, headers, _) = send(
        &app,
        form("level=debug&text=a+%3Cb%3E&extra_tags=x&count=3"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/");
    let cookie = headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let get = Request::get("/")
        .header(COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let (_, _, body) = send(&app, get).await;
    assert_eq!(
        body.matches(r#"<li class="x debug">a &lt;b&gt;</li>"#)
            .count(),
        3,
        "{body}"
    );
}

#[tokio::test]
async fn bad_form_input_is_a_client_error() {
    let app = demo();
    for bad in [
        "level=loud&text=x",
        "level=info&text=x&count=0",
        "level=info&text=x&count=1001",
        "level=info&text=x&count=many",
        "level=info&text=x&count=-1",
        "level=99999999999&text=x",
    ] {
        let (status, headers, body) = send(&app, form(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(headers.get(SET_COOKIE).is_none(), "{bad}: nothing stored");
    }
    let (status, _, _) = send(&app, form("text=no+level")).await;
    assert!(status.is_client_error(), "a missing field: {status}");
}

#[tokio::test]
async fn bad_json_input_is_a_client_error() {
    let app = demo();
    for bad in [
        r#"{"level": "loud", "text": "x"}"#,
        r#"{"level": 1.5, "text": "x"}"#,
        r#"{"text": "x"}"#,
        r#"{"level": "info"}"#,
        "not json",
        "[]",
    ] {
        let (status, headers, _) = send(&app, json(bad)).await;
        assert!(status.is_client_error(), "{bad}: {status}");
        assert!(headers.get(SET_COOKIE).is_none(), "{bad}: nothing stored");
    }
    let (status, _, _) = send(&app, json(r#"{"level": 35, "text": "custom"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[test]
fn views_escape_plain_text_and_keep_trusted_html() {
    let tags = LevelTags::default();
    let plain = MessageView::new(&Message::new(Level::ERROR, "<i>\"x\"</i>"), &tags);
    assert_eq!(plain.escaped, "&lt;i&gt;&quot;x&quot;&lt;&#x2f;i&gt;");
    assert_eq!(plain.text, "<i>\"x\"</i>");
    assert_eq!(
        (plain.level, plain.level_tag.as_str(), plain.tags.as_str()),
        (40, "error", "error")
    );
    let trusted = MessageView::new(
        &Message::new(Level::INFO, "<i>ok</i>").trusted_html(),
        &tags,
    );
    assert_eq!(trusted.escaped, "<i>ok</i>");
}

fn same_origin_form(body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post("/messages")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(HOST, "demo.example:3000");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

fn cookie_of(headers: &http::HeaderMap) -> String {
    headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn page(app: &axum::Router, cookie: &str) -> String {
    let get = Request::get("/")
        .header(COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    send(app, get).await.2
}

/// Repro 8 of issue 12: another site's form post is refused (403) and adds nothing, while
/// same-origin posts and posts with neither header (curl) still work.
#[tokio::test]
async fn cross_site_posts_are_refused_and_add_nothing() {
    let app = demo();
    let (status, headers, _) = send(&app, same_origin_form("level=info&text=mine", &[])).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "no Origin, no Sec-Fetch-Site (curl)"
    );
    let cookie = cookie_of(&headers);

    for hostile in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "http://demo.example:3001")],
        &[("origin", "http://demo.example.evil:3000")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://demo.example:3000"),
        ],
    ] {
        let mut with_cookie = hostile.to_vec();
        with_cookie.push(("cookie", &cookie));
        let (status, headers, body) = send(
            &app,
            same_origin_form("level=error&text=theirs", &with_cookie),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{hostile:?}");
        assert_eq!(body, flash_demo::CROSS_SITE);
        assert!(headers.get(SET_COOKIE).is_none(), "{hostile:?}");
        // The JSON API is refused the same way.
        let mut request = json(r#"{"level": "error", "text": "theirs"}"#);
        for (name, value) in &with_cookie {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        request
            .headers_mut()
            .insert(HOST, "demo.example:3000".parse().unwrap());
        assert_eq!(
            send(&app, request).await.0,
            StatusCode::FORBIDDEN,
            "{hostile:?}"
        );
    }

    for friendly in [
        &[("origin", "http://demo.example:3000")][..],
        &[("origin", "HTTPS://Demo.Example:3000")],
        &[("sec-fetch-site", "same-origin")],
        &[("sec-fetch-site", "none")],
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://demo.example:3000"),
        ],
    ] {
        let mut with_cookie = friendly.to_vec();
        with_cookie.push(("cookie", &cookie));
        let (status, _, body) = send(
            &app,
            same_origin_form("level=info&text=mine+too", &with_cookie),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{friendly:?}: {body}");
    }

    let shown = page(&app, &cookie).await;
    assert_eq!(
        shown.matches("<li class=\"info\">mine</li>").count(),
        1,
        "{shown}"
    );
    assert_eq!(shown.matches("mine too").count(), 5, "{shown}");
    assert!(!shown.contains("theirs"), "a refused post added: {shown}");
    // Reading is never refused, whatever the headers.
    let get = Request::get("/")
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, get).await.0, StatusCode::OK);
}

/// Repro 2 of issue 12, bounded: a body past the demo's limit is a 413, a text past flash's
/// limit is a 400 before any copy is made, and many copies of an allowed text are cut at the
/// per-client limits. No 500, no message stored beyond the limits.
#[tokio::test]
async fn oversized_posts_are_refused_quickly() {
    let app = demo();
    let max_text = flash_core::Limits::DEFAULT_MAX_TEXT_LEN;

    // 1. A body larger than MAX_BODY (a 70 KiB text): 413, nothing read, nothing stored.
    let body = format!("level=info&count=1000&text={}", "x".repeat(70 * 1024));
    let (status, headers, _) = send(&app, form(&body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(headers.get(SET_COOKIE).is_none());

    // 2. count=1000 of a text one byte past the limit: refused whole.
    let body = format!("level=info&count=1000&text={}", "x".repeat(max_text + 1));
    assert!(body.len() < flash_demo::MAX_BODY);
    let (status, headers, said) = send(&app, form(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    assert!(said.contains(&max_text.to_string()), "{said}");
    assert!(headers.get(SET_COOKIE).is_none());
    let json_body = format!(
        r#"{{"level": "info", "text": "{}"}}"#,
        "x".repeat(max_text + 1)
    );
    assert_eq!(
        send(&app, json(&json_body)).await.0,
        StatusCode::BAD_REQUEST
    );

    // 3. count=1000 of a text at the limit: kept up to the bytes one client may have pending.
    let body = format!("level=info&count=1000&text={}", "y".repeat(max_text));
    let (status, headers, _) = send(&app, form(&body)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let shown = page(&app, &cookie_of(&headers)).await;
    let copies = shown.matches("<li class=\"info\">yyyy").count();
    assert_eq!(
        copies,
        flash_core::Limits::DEFAULT_MAX_BYTES / max_text,
        "copies kept"
    );

    // 4. count=1000 of a short text: kept up to the number one client may have pending.
    let (status, headers, _) = send(&app, form("level=info&count=1000&text=z")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let shown = page(&app, &cookie_of(&headers)).await;
    assert_eq!(
        shown.matches("<li class=\"info\">z</li>").count(),
        flash_core::Limits::DEFAULT_MAX_MESSAGES
    );
}

/// Repro 2 on cookie storage, the storage it took 5.9 GB and 93 s on: the same requests are
/// answered without a 500, and the cookie set stays within its size.
#[tokio::test]
async fn oversized_posts_on_cookie_storage() {
    let storage = flash::StorageConfig::new("cookie")
        .secret("the demo routes' test secret, 32 bytes or more")
        .open()
        .await
        .unwrap();
    let app = app(storage);
    let max_text = flash_core::Limits::DEFAULT_MAX_TEXT_LEN;
    let body = format!("level=info&count=1000&text={}", "x".repeat(max_text + 1));
    assert_eq!(send(&app, form(&body)).await.0, StatusCode::BAD_REQUEST);
    let body = format!("level=info&count=1000&text={}", "y".repeat(max_text));
    let (status, headers, _) = send(&app, form(&body)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    for line in headers.get_all(SET_COOKIE) {
        assert!(
            line.len() <= 4096,
            "a Set-Cookie line of {} bytes",
            line.len()
        );
    }
}

/// A storage that always fails, with a detailed (already redacted) error.
struct Broken;

#[flash_core::async_trait]
impl flash_core::Storage for Broken {
    async fn load(&self, _: &flash_core::Incoming) -> flash_core::Result<flash_core::Loaded> {
        Err(flash_core::Error::new(
            flash_core::ErrorKind::Unavailable,
            "connecting to redis at redis://:***@10.1.2.3:6379 (table flash_messages) failed",
        ))
    }

    async fn save(
        &self,
        _: &flash_core::Incoming,
        _: flash_core::Update,
        _: &mut http::HeaderMap,
    ) -> flash_core::Result<Vec<Message>> {
        Err(flash_core::Error::new(
            flash_core::ErrorKind::Unavailable,
            "connecting to redis at redis://:***@10.1.2.3:6379 failed",
        ))
    }
}

/// End users see one generic line in the page and in the JSON error; the details (host, port,
/// table) are in the log only.
#[test]
fn a_failing_storage_shows_a_generic_line_and_logs_the_details() {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || Sink(writer.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = app(Arc::new(Broken));
        let get = Request::get("/").body(Body::empty()).unwrap();
        let (status, _, page) = send(&app, get).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(flash_demo::UNAVAILABLE), "{page}");
        let get = Request::get("/api/messages").body(Body::empty()).unwrap();
        let (status, _, body) = send(&app, get).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "error": flash_demo::UNAVAILABLE })
        );
        for shown in [&page, &body.to_string()] {
            for detail in ["10.1.2.3", "6379", "flash_messages", "redis"] {
                assert!(!shown.contains(detail), "{detail} shown: {shown}");
            }
        }
    });
    let logged = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("10.1.2.3:6379 (table flash_messages)"),
        "the details are logged: {logged}"
    );
}

struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The page says which framework and which storage serve it, the URL redacted and escaped.
#[tokio::test]
async fn the_page_names_the_framework_and_the_storage() {
    let storage = Arc::new(KeyedStorage::new(
        MemoryStore::new(),
        Keys::new(Key::generate()),
    ));
    let serving = flash_demo::Serving::new("cookie+redis://:hunter2@cache:6379/0?pass=x<y")
        .framework("actix");
    let app = flash_demo::app_serving(storage, serving);
    let (_, _, page) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert!(page.contains(r#"<b id="framework">actix</b>"#), "{page}");
    assert!(
        page.contains(
            r#"<code id="storage">cookie+redis:&#x2f;&#x2f;:***@cache:6379&#x2f;0?pass=***</code>"#
        ),
        "{page}"
    );
    assert!(!page.contains("hunter2"));
    let (_, _, page) = send(&demo(), Request::get("/").body(Body::empty()).unwrap()).await;
    assert!(page.contains(r#"<b id="framework">axum</b>"#), "{page}");
}
