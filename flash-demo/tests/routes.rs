//! The demo's routes over the in-memory keyed store, on both frameworks (served on loopback as
//! the binary serves them): the contract's shapes and bad input.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Framework, Served, send};
use flash_core::{Key, KeyedStorage, Keys, Level, LevelTags, MemoryStore, Message, Storage};
use flash_demo::{MessageView, Serving};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, HOST, HeaderMap, LOCATION, SET_COOKIE};

/// Each test, once per framework.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_axum {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Framework::Axum).await;
                }
            )*
        }

        mod on_actix {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Framework::Actix).await;
                }
            )*
        }
    };
}

on_both!(
    the_page_has_the_form_and_no_list_when_empty,
    a_post_redirects_and_the_page_shows_every_copy,
    bad_form_input_is_a_client_error,
    bad_json_input_is_a_client_error,
    cross_site_posts_are_refused_and_add_nothing,
    oversized_posts_are_refused_quickly,
    oversized_posts_on_cookie_storage,
    a_failing_storage_shows_a_generic_line_and_logs_the_details,
    the_page_names_the_framework_and_the_storage,
    other_methods_and_paths_answer_alike,
);

fn memory() -> Arc<dyn Storage> {
    Arc::new(KeyedStorage::new(
        MemoryStore::new(),
        Keys::new(Key::generate()),
    ))
}

fn demo(framework: Framework) -> Served {
    Served::start(framework, memory(), Serving::default())
}

fn form(app: &Served, body: &str) -> reqwest::RequestBuilder {
    app.post("/messages")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_owned())
}

fn json(app: &Served, body: &str) -> reqwest::RequestBuilder {
    app.post("/api/messages")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_owned())
}

async fn the_page_has_the_form_and_no_list_when_empty(framework: Framework) {
    let app = demo(framework);
    let (status, _, body) = send(app.get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"<form method="post" action="/messages">"#));
    assert!(!body.contains("id=\"messages\""), "{body}");
}

async fn a_post_redirects_and_the_page_shows_every_copy(framework: Framework) {
    let app = demo(framework);
    let (status, headers, _) = send(form(
        &app,
        "level=debug&text=a+%3Cb%3E&extra_tags=x&count=3",
    ))
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/");
    let (_, _, body) = send(app.get("/").header(COOKIE, cookie_of(&headers))).await;
    assert_eq!(
        body.matches(r#"<li class="x debug">a &lt;b&gt;</li>"#)
            .count(),
        3,
        "{body}"
    );
}

async fn bad_form_input_is_a_client_error(framework: Framework) {
    let app = demo(framework);
    for bad in [
        "level=loud&text=x",
        "level=info&text=x&count=0",
        "level=info&text=x&count=1001",
        "level=info&text=x&count=many",
        "level=info&text=x&count=-1",
        "level=99999999999&text=x",
        "text=no+level",
        "level=info",
    ] {
        let (status, headers, body) = send(form(&app, bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(headers.get(SET_COOKIE).is_none(), "{bad}: nothing stored");
    }
    let (status, headers, _) = send(
        app.post("/messages")
            .header(CONTENT_TYPE, "text/plain")
            .body("level=info&text=x"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not a form");
    assert!(headers.get(SET_COOKIE).is_none());
}

async fn bad_json_input_is_a_client_error(framework: Framework) {
    let app = demo(framework);
    for bad in [
        r#"{"level": "loud", "text": "x"}"#,
        r#"{"level": 1.5, "text": "x"}"#,
        r#"{"text": "x"}"#,
        r#"{"level": "info"}"#,
        "not json",
        "[]",
    ] {
        let (status, headers, _) = send(json(&app, bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(headers.get(SET_COOKIE).is_none(), "{bad}: nothing stored");
    }
    let (status, _, _) = send(
        app.post("/api/messages")
            .header(CONTENT_TYPE, "text/plain")
            .body(r#"{"level": 35, "text": "custom"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not JSON");
    let (status, _, _) = send(json(&app, r#"{"level": 35, "text": "custom"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[test]
fn views_escape_plain_text_and_keep_trusted_html() {
    let tags = LevelTags::default();
    let plain = MessageView::new(&Message::new(Level::ERROR, "<i>\"x\"</i>"), &tags);
    assert_eq!(plain.html(), "&lt;i&gt;&quot;x&quot;&lt;/i&gt;");
    assert_eq!(plain.message, "<i>\"x\"</i>");
    assert_eq!(
        (plain.level, plain.level_tag.as_str(), plain.tags.as_str()),
        (40, "error", "error")
    );
    let trusted = MessageView::new(
        &Message::new(Level::INFO, "<i>ok</i>").trusted_html(),
        &tags,
    );
    assert_eq!(trusted.html(), "<i>ok</i>");
}

fn same_origin_form(app: &Served, body: &str, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let mut request = form(app, body).header(HOST, "demo.example:3000");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

fn cookie_of(headers: &HeaderMap) -> String {
    headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn page(app: &Served, cookie: &str) -> String {
    send(app.get("/").header(COOKIE, cookie)).await.2
}

/// Repro 8 of issue 12: another site's form post is refused (403) and adds nothing, while
/// same-origin posts and posts with neither header (curl) still work.
async fn cross_site_posts_are_refused_and_add_nothing(framework: Framework) {
    let app = demo(framework);
    let (status, headers, _) = send(same_origin_form(&app, "level=info&text=mine", &[])).await;
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
        let (status, headers, body) = send(same_origin_form(
            &app,
            "level=error&text=theirs",
            &with_cookie,
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{hostile:?}");
        assert_eq!(body, flash_demo::CROSS_SITE);
        assert!(headers.get(SET_COOKIE).is_none(), "{hostile:?}");
        // The JSON API is refused the same way.
        let mut request = json(&app, r#"{"level": "error", "text": "theirs"}"#);
        for (name, value) in &with_cookie {
            request = request.header(*name, *value);
        }
        let request = request.header(HOST, "demo.example:3000");
        assert_eq!(send(request).await.0, StatusCode::FORBIDDEN, "{hostile:?}");
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
        let (status, _, body) = send(same_origin_form(
            &app,
            "level=info&text=mine+too",
            &with_cookie,
        ))
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
    let get = app
        .get("/")
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site");
    assert_eq!(send(get).await.0, StatusCode::OK);
}

/// Repro 2 of issue 12, bounded: a body past the demo's limit is a 413, a text past flash's
/// limit is a 400 before any copy is made, and many copies of an allowed text are cut at the
/// per-client limits. No 500, no message stored beyond the limits.
async fn oversized_posts_are_refused_quickly(framework: Framework) {
    let app = demo(framework);
    let max_text = flash_core::Limits::DEFAULT_MAX_TEXT_LEN;

    // 1. A body larger than MAX_BODY (a 70 KiB text): 413, nothing read, nothing stored; the
    // same on the JSON API.
    let body = format!("level=info&count=1000&text={}", "x".repeat(70 * 1024));
    let (status, headers, _) = send(form(&app, &body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(headers.get(SET_COOKIE).is_none());
    let json_body = format!(
        r#"{{"level": "info", "text": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    assert_eq!(
        send(json(&app, &json_body)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // 2. count=1000 of a text one byte past the limit: refused whole.
    let body = format!("level=info&count=1000&text={}", "x".repeat(max_text + 1));
    assert!(body.len() < flash_demo::MAX_BODY);
    let (status, headers, said) = send(form(&app, &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    assert!(said.contains(&max_text.to_string()), "{said}");
    assert!(headers.get(SET_COOKIE).is_none());
    let json_body = format!(
        r#"{{"level": "info", "text": "{}"}}"#,
        "x".repeat(max_text + 1)
    );
    assert_eq!(
        send(json(&app, &json_body)).await.0,
        StatusCode::BAD_REQUEST
    );

    // 3. count=1000 of a text at the limit: kept up to the bytes one client may have pending.
    let body = format!("level=info&count=1000&text={}", "y".repeat(max_text));
    let (status, headers, _) = send(form(&app, &body)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let shown = page(&app, &cookie_of(&headers)).await;
    let copies = shown.matches("<li class=\"info\">yyyy").count();
    assert_eq!(
        copies,
        flash_core::Limits::DEFAULT_MAX_BYTES / max_text,
        "copies kept"
    );

    // 4. count=1000 of a short text: kept up to the number one client may have pending.
    let (status, headers, _) = send(form(&app, "level=info&count=1000&text=z")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let shown = page(&app, &cookie_of(&headers)).await;
    assert_eq!(
        shown.matches("<li class=\"info\">z</li>").count(),
        flash_core::Limits::DEFAULT_MAX_MESSAGES
    );
}

/// Repro 2 on cookie storage, the storage it took 5.9 GB and 93 s on: the same requests are
/// answered without a 500, and the cookie set stays within its size.
async fn oversized_posts_on_cookie_storage(framework: Framework) {
    let storage = flash::StorageConfig::new("cookie")
        .secret("the demo routes' test secret, 32 bytes or more")
        .open()
        .await
        .unwrap();
    let app = Served::start(framework, storage, Serving::new("cookie"));
    let max_text = flash_core::Limits::DEFAULT_MAX_TEXT_LEN;
    let body = format!("level=info&count=1000&text={}", "x".repeat(max_text + 1));
    assert_eq!(send(form(&app, &body)).await.0, StatusCode::BAD_REQUEST);
    let body = format!("level=info&count=1000&text={}", "y".repeat(max_text));
    let (status, headers, _) = send(form(&app, &body)).await;
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

/// Everything this test binary logs (actix-web handles requests on threads of its own, so the
/// subscriber is the global one).
fn log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    })
}

/// End users see one generic line in the page and in the JSON error; the details (host, port,
/// table) are in the log only.
async fn a_failing_storage_shows_a_generic_line_and_logs_the_details(framework: Framework) {
    let log = log();
    let app = Served::start(framework, Arc::new(Broken), Serving::default());
    let (status, _, page) = send(app.get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(flash_demo::UNAVAILABLE), "{page}");
    let (status, _, body) = send(app.get("/api/messages")).await;
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
    let logged = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("10.1.2.3:6379 (table flash_messages)"),
        "the details are logged: {logged}"
    );
}

struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The page says which framework serves it (the one serving, whatever `Serving` said) and which
/// storage, the URL redacted and escaped.
async fn the_page_names_the_framework_and_the_storage(framework: Framework) {
    let serving = Serving::new("cookie+redis://:hunter2@cache:6379/0?pass=x<y");
    let app = Served::start(framework, memory(), serving);
    let (_, _, page) = send(app.get("/")).await;
    assert!(
        page.contains(&format!(r#"<b id="framework">{}</b>"#, framework.name())),
        "{page}"
    );
    assert!(
        page.contains(
            r#"<code id="storage">cookie+redis:&#x2f;&#x2f;:***@cache:6379&#x2f;0?pass=***</code>"#
        ),
        "{page}"
    );
    assert!(!page.contains("hunter2"));
}

/// Beyond the contract, the frameworks answer alike too: `HEAD` as `GET` without a body, another
/// method on a route `405`, an unknown path `404`.
async fn other_methods_and_paths_answer_alike(framework: Framework) {
    let app = demo(framework);
    let (status, headers, body) = send(app.http_head("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty(), "{body}");
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{headers:?}"
    );
    assert_eq!(
        send(app.get("/messages")).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(app.post("/").body("level=info&text=x")).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(send(app.get("/nowhere")).await.0, StatusCode::NOT_FOUND);
}
