//! The demo's routes over the in-memory keyed store, on both frameworks (served on loopback as
//! the binary serves them): the contract's shapes and bad input.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Framework, Served, send};
use flash::storage::{Key, Keys, MemoryStore, ServerStorage, Storage};
use flash::{Level, LevelTags, Message};
use flash_demo::{MessageView, Serving};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, HOST, HeaderMap, LOCATION, SET_COOKIE};

common::on_every_framework!(
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
    the_htmx_page_posts_with_htmx_and_loads_htmx_from_the_demo,
    an_htmx_post_answers_in_place_with_the_message_in_hx_trigger,
    a_boosted_post_is_a_full_page_and_redirects,
    the_form_returns_to_the_page_it_names_and_nowhere_else,
    the_htmx_script_is_the_given_file_or_a_404,
    the_json_api_gives_the_template_ready_fields,
    a_message_whose_page_is_never_visited_is_shown_after_the_bound,
    the_addressed_page_reads_as_others_do_then_links_to_the_redirects_page,
);

fn memory() -> Arc<dyn Storage> {
    Arc::new(ServerStorage::new(
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
        // Issue 20, repro 5: the scheme is part of the origin.
        &[("origin", "https://demo.example:3000")],
        &[("origin", "HTTPS://Demo.Example:3000")],
        &[("origin", "ftp://demo.example:3000")],
        &[("origin", "http://demo.example")],
        &[("origin", "http://user@demo.example:3000")],
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
        &[("origin", "HTTP://Demo.Example:3000")],
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
    let max_text = flash::Limits::DEFAULT_MAX_TEXT_LEN;

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
        flash::Limits::DEFAULT_MAX_BYTES / max_text,
        "copies kept"
    );

    // 4. count=1000 of a short text: kept up to the number one client may have pending.
    let (status, headers, _) = send(form(&app, "level=info&count=1000&text=z")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let shown = page(&app, &cookie_of(&headers)).await;
    assert_eq!(
        shown.matches("<li class=\"info\">z</li>").count(),
        flash::Limits::DEFAULT_MAX_MESSAGES
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
    let max_text = flash::Limits::DEFAULT_MAX_TEXT_LEN;
    let body = format!("level=info&count=1000&text={}", "x".repeat(max_text + 1));
    assert_eq!(send(form(&app, &body)).await.0, StatusCode::BAD_REQUEST);
    // Issue 20, repro 2: a text the form accepts but a 2 KiB cookie can never hold is refused
    // at add, with flash's reason, instead of dropped silently after a 303.
    let body = format!("level=info&count=1000&text={}", "y".repeat(max_text));
    let (status, headers, said) = send(form(&app, &body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{said}");
    assert!(
        said.contains("larger than this storage can ever hold"),
        "{said}"
    );
    assert!(headers.get(SET_COOKIE).is_none());
    let body = format!("level=info&count=1000&text={}", "y".repeat(1000));
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

#[flash::storage::async_trait]
impl flash::storage::Storage for Broken {
    async fn load(&self, _: &flash::storage::Incoming) -> flash::Result<flash::storage::Loaded> {
        Err(flash::Error::new(
            flash::ErrorKind::Unavailable,
            "connecting to redis at redis://:***@10.1.2.3:6379 (table flash_messages) failed",
        ))
    }

    async fn save(
        &self,
        _: &flash::storage::Incoming,
        _: flash::storage::Update,
        _: &mut http::HeaderMap,
    ) -> flash::Result<Vec<Message>> {
        Err(flash::Error::new(
            flash::ErrorKind::Unavailable,
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

/// A form post as htmx sends it from the demo's page: `HX-Request`, and the same-origin headers
/// a browser adds, so it passes the cross-site rule as a real one does.
fn htmx_form(browser: &reqwest::Client, app: &Served, body: &str) -> reqwest::RequestBuilder {
    plain_form(browser, app, body)
        .header("hx-request", "true")
        .header("hx-current-url", format!("{}/htmx", app.base))
        .header("origin", &app.base)
        .header("sec-fetch-site", "same-origin")
}

/// A form post from `browser` (its cookie jar), without htmx.
fn plain_form(browser: &reqwest::Client, app: &Served, body: &str) -> reqwest::RequestBuilder {
    browser
        .post(format!("{}/messages", app.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_owned())
}

/// The `HX-Trigger` value as JSON.
fn hx_trigger(headers: &HeaderMap) -> serde_json::Value {
    let value = headers
        .get("hx-trigger")
        .unwrap_or_else(|| panic!("no HX-Trigger: {headers:?}"));
    serde_json::from_slice(value.as_bytes()).unwrap()
}

/// A browser (a cookie jar) that the demo knows already (a plain post, read once), so a message
/// stored for it would show on its next page: what makes "not shown again" meaningful.
async fn known_client(app: &Served) -> reqwest::Client {
    let browser = common::browser();
    let (status, _, _) = send(plain_form(&browser, app, "level=info&text=first")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(page_texts(&browser, app).await, ["first"]);
    browser
}

/// The texts of the messages `GET /` shows `browser` (consumed).
async fn page_texts(browser: &reqwest::Client, app: &Served) -> Vec<String> {
    page_texts_at(browser, app, "/").await
}

/// The messages the page at `path` shows.
async fn page_texts_at(browser: &reqwest::Client, app: &Served, path: &str) -> Vec<String> {
    let shown = send(browser.get(format!("{}{path}", app.base))).await.2;
    let Some(list) = shown.split("<ul id=\"messages\">").nth(1) else {
        return Vec::new();
    };
    let list = list.split("</ul>").next().unwrap();
    list.split("</li>")
        .filter_map(|item| item.split_once("\">").map(|(_, text)| text.to_owned()))
        .collect()
}

async fn the_htmx_page_posts_with_htmx_and_loads_htmx_from_the_demo(framework: Framework) {
    let app = demo(framework);
    let (status, headers, body) = send(app.get("/htmx")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        body.contains(r#"<form id="htmx-form" method="post" action="/messages" hx-post="/messages" hx-swap="none">"#),
        "posted by htmx, and a plain form without it: {body}"
    );
    assert!(
        body.contains(r#"<input type="hidden" name="next" value="/htmx">"#),
        "{body}"
    );
    assert!(
        body.contains(r#"<script src="/assets/htmx.min.js"></script>"#),
        "htmx from the demo itself, no CDN: {body}"
    );
    assert!(!body.contains("https://"), "nothing from elsewhere: {body}");
    assert!(body.contains(r#"addEventListener("messages""#), "{body}");
    assert!(body.contains(r#"<ul id="toasts""#), "{body}");
    assert!(!body.contains("id=\"messages\""), "{body}");
    // A full page: messages pending (posted without htmx) show in the list, once.
    let (_, headers, _) = send(form(&app, "level=warning&text=a+%3Cb%3E&next=%2Fhtmx")).await;
    let cookie = cookie_of(&headers);
    let (_, _, body) = send(app.get("/htmx").header(COOKIE, &cookie)).await;
    assert!(
        body.contains(r#"<li class="warning">a &lt;b&gt;</li>"#),
        "{body}"
    );
    let (_, _, body) = send(app.get("/htmx").header(COOKIE, &cookie)).await;
    assert!(!body.contains("id=\"messages\""), "{body}");
    // The pages link to each other.
    for path in ["/", "/htmx", "/addressed"] {
        let (_, _, body) = send(app.get(path)).await;
        assert!(
            body.contains(r#"<a href="/">"#)
                && body.contains(r#"<a href="/htmx">"#)
                && body.contains(r#"<a href="/addressed">"#),
            "{path}: {body}"
        );
    }
}

/// `/addressed` (issue 19): a plain form to `/` that the page's script posts without following
/// the redirect, then reads as a polling widget and an htmx fragment do, and links to `/`.
/// The browser test runs it in Chromium.
async fn the_addressed_page_reads_as_others_do_then_links_to_the_redirects_page(
    framework: Framework,
) {
    let app = demo(framework);
    let (status, _, body) = send(app.get("/addressed")).await;
    assert_eq!(status, StatusCode::OK);
    for part in [
        r#"<form id="addressed-form" method="post" action="/messages">"#,
        r#"<input type="hidden" name="next" value="/">"#,
        r#"redirect: "manual""#,
        r#"fetch("/api/messages")"#,
        r#"htmx.ajax("GET", "/""#,
        r#"<a id="go" href="/" hidden>"#,
        r#"<script src="/assets/htmx.min.js"></script>"#,
    ] {
        assert!(body.contains(part), "{part}: {body}");
    }
    assert!(!body.contains("https://"), "nothing from elsewhere: {body}");
}

/// The issue's flow: a form posted by htmx is answered `204` (no redirect for htmx to follow
/// blindly) with the message in `HX-Trigger` as the template-ready view, and it is delivered
/// exactly once: the next plain page does not show it.
async fn an_htmx_post_answers_in_place_with_the_message_in_hx_trigger(framework: Framework) {
    for (name, storage) in [
        ("memory", memory()),
        (
            "cookie",
            flash::StorageConfig::new("cookie")
                .secret("the demo routes' test secret, 32 bytes or more")
                .open()
                .await
                .unwrap(),
        ),
    ] {
        let app = Served::start(framework, storage, Serving::new(name));
        let browser = known_client(&app).await;
        let (status, headers, body) = send(htmx_form(
            &browser,
            &app,
            "level=warning&text=Saved+%3Cb%3E%C3%A9%3C%2Fb%3E&extra_tags=toast&next=%2Fhtmx",
        ))
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{name}: {body}");
        assert!(headers.get(LOCATION).is_none(), "{name}: no redirect");
        assert_eq!(
            hx_trigger(&headers),
            serde_json::json!({"messages": [{
                "level": 30,
                "level_tag": "warning",
                "tags": "toast warning",
                "extra_tags": "toast",
                "message": "Saved <b>é</b>",
                "safe": false,
            }]}),
            "{name}"
        );
        assert!(
            headers[reqwest::header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("no-store"),
            "{name}: one user's messages are not cached"
        );
        assert!(headers.get(SET_COOKIE).is_none(), "{name}: nothing stored");
        assert!(
            page_texts(&browser, &app).await.is_empty(),
            "{name}: delivered once, not shown again"
        );
        let (_, _, json) = send(browser.get(format!("{}/api/messages", app.base))).await;
        assert_eq!(json, "[]", "{name}");

        // Without htmx the same post is stored and redirects (to the page it names).
        let (status, headers, _) = send(plain_form(
            &browser,
            &app,
            "level=info&text=plain&next=%2Fhtmx",
        ))
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{name}");
        assert_eq!(headers[LOCATION], "/htmx", "{name}");
        assert!(headers.get("hx-trigger").is_none(), "{name}");
        // Addressed to the page it redirects to: only that page shows it.
        assert!(page_texts(&browser, &app).await.is_empty(), "{name}");
        assert_eq!(
            page_texts_at(&browser, &app, "/htmx").await,
            ["plain"],
            "{name}"
        );
    }
}

/// Messages pending when htmx posts (added by a JSON client) ride along in the same event; and
/// refused input is answered as without htmx, nothing delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_htmx_post_brings_the_pending_messages_along() {
    for framework in Framework::ALL {
        let app = demo(framework);
        let browser = known_client(&app).await;
        let (status, _, _) = send(
            browser
                .post(format!("{}/api/messages", app.base))
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"level": "info", "text": "from the API"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, headers, _) = send(htmx_form(
            &browser,
            &app,
            "level=success&text=from+the+form",
        ))
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let texts: Vec<_> = hx_trigger(&headers)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(texts, ["from the API", "from the form"], "{framework}");
        assert!(page_texts(&browser, &app).await.is_empty(), "{framework}");

        // A refused post delivers nothing: what is pending stays for the page.
        let (status, _, _) = send(
            browser
                .post(format!("{}/api/messages", app.base))
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"level": "info", "text": "still pending"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, headers, body) = send(htmx_form(&browser, &app, "level=loud&text=x")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{framework}: {body}");
        assert!(headers.get("hx-trigger").is_none(), "{framework}");
        assert_eq!(
            page_texts(&browser, &app).await,
            ["still pending"],
            "{framework}"
        );
    }
}

/// A boosted form (`HX-Boosted`) and a history restore are full pages: redirected and stored,
/// as without htmx, for the page to show.
async fn a_boosted_post_is_a_full_page_and_redirects(framework: Framework) {
    let app = demo(framework);
    let browser = known_client(&app).await;
    for (header, text) in [
        ("hx-boosted", "boosted"),
        ("hx-history-restore-request", "restored"),
    ] {
        let (status, headers, _) = send(
            htmx_form(&browser, &app, &format!("level=info&text={text}")).header(header, "true"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{header}");
        assert_eq!(headers[LOCATION], "/", "{header}");
        assert!(headers.get("hx-trigger").is_none(), "{header}");
        assert_eq!(page_texts(&browser, &app).await, [text], "{header}");
    }
    // `HX-Request` other than `true` is not htmx.
    let (status, _, _) =
        send(plain_form(&browser, &app, "level=info&text=x").header("hx-request", "false")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

/// `next` picks the page a plain post returns to, among the demo's own; anything else is a
/// `400` that adds nothing (no open redirect).
async fn the_form_returns_to_the_page_it_names_and_nowhere_else(framework: Framework) {
    let app = demo(framework);
    for (next, location) in [("", "/"), ("%2F", "/"), ("%2Fhtmx", "/htmx")] {
        let (status, headers, _) =
            send(form(&app, &format!("level=info&text=x&next={next}"))).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(headers[LOCATION], location, "{next}");
    }
    for next in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "%2Fhtmx%2F..",
        "%2Fapi%2Fmessages",
    ] {
        let (status, headers, body) =
            send(form(&app, &format!("level=info&text=x&next={next}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{next}");
        assert!(body.contains("next must be one of"), "{next}: {body}");
        assert!(headers.get(SET_COOKIE).is_none(), "{next}: nothing stored");
    }
}

/// `/assets/htmx.min.js` is the file the demo was given, read at each request (fetched after
/// the start, it is served), and a `404` while there is none.
async fn the_htmx_script_is_the_given_file_or_a_404(framework: Framework) {
    let app = demo(framework);
    let (status, _, _) = send(app.get(flash_demo::HTMX_SCRIPT)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no file given");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htmx.min.js");
    let app = Served::start(framework, memory(), Serving::default().htmx_script(&path));
    let (status, _, _) = send(app.get(flash_demo::HTMX_SCRIPT)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "given but absent");
    let script = "var htmx = {version: \"2.0.0-test\"}; // é\n";
    std::fs::write(&path, script).unwrap();
    let (status, headers, body) = send(app.get(flash_demo::HTMX_SCRIPT)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(body, script);
    let (status, _, body) = send(app.http_head(flash_demo::HTMX_SCRIPT)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(
        send(app.post(flash_demo::HTMX_SCRIPT)).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Something that is not a script file is not served as one.
    std::fs::write(&path, vec![0xff_u8; 16]).unwrap();
    assert_eq!(
        send(app.get(flash_demo::HTMX_SCRIPT)).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

/// `GET /api/messages` answers the template-ready views: every field, `data` only when a
/// message has some (set here through flash-core, as an application's handler would).
async fn the_json_api_gives_the_template_ready_fields(framework: Framework) {
    let storage = memory();
    let app = Served::start(framework, storage.clone(), Serving::default());
    // A message with data, added by another part of the application over the same storage.
    let adapter = flash::adapter::Adapter::new(storage).with_config(flash_demo::config());
    let in_flight = adapter.begin();
    let request = http::HeaderMap::new();
    let parts = flash::adapter::RequestParts::new("POST", &request, None);
    let messages = in_flight.slot().messages(parts).unwrap();
    messages.add(
        Message::new(Level::SUCCESS, "Deleted <b>7</b>.")
            .with_extra_tags("undo")
            .with_data(serde_json::json!({"undo": "/articles/7/restore"}))
            .trusted_html(),
    );
    let mut response = http::HeaderMap::new();
    in_flight.finish_headers(303, false, &mut response).await;
    let cookie = cookie_of(&response);
    let (status, _, _) = send(
        json(
            &app,
            r#"{"level": 35, "text": "custom <i>", "extra_tags": "x"}"#,
        )
        .header(COOKIE, &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, body) = send(app.get("/api/messages").header(COOKIE, &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!([
            {
                "level": 25,
                "level_tag": "success",
                "tags": "undo success",
                "extra_tags": "undo",
                "message": "Deleted <b>7</b>.",
                "safe": true,
                "data": {"undo": "/articles/7/restore"},
            },
            {
                "level": 35,
                "level_tag": "",
                "tags": "x",
                "extra_tags": "x",
                "message": "custom <i>",
                "safe": false,
            },
        ])
    );
    let (_, _, body) = send(app.get("/api/messages").header(COOKIE, &cookie)).await;
    assert_eq!(body, "[]", "consumed");
}

/// A message addressed to a page the user never visits is not lost: after the documented bound
/// (3 loads of other pages that read messages, `flash::Addressing`'s default) the next read
/// shows it, once.
async fn a_message_whose_page_is_never_visited_is_shown_after_the_bound(framework: Framework) {
    let app = demo(framework);
    let browser = common::browser();
    let (status, headers, _) = send(plain_form(
        &browser,
        &app,
        "level=info&text=elsewhere&next=%2Fhtmx",
    ))
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/htmx");
    for load in 1..=3 {
        assert!(
            page_texts(&browser, &app).await.is_empty(),
            "load {load} of another page showed it"
        );
    }
    assert_eq!(page_texts(&browser, &app).await, ["elsewhere"]);
    assert!(page_texts(&browser, &app).await.is_empty());
    assert!(page_texts_at(&browser, &app, "/htmx").await.is_empty());
}
