//! The adapter kit: the behaviour every framework adapter must show, run through the framework
//! itself.
//!
//! An adapter's test implements [`AdapterApp`] for a small app of its framework, built over the
//! [`Adapter`] the kit hands it, and expands the kit with [`adapter_tests!`](crate::adapter_tests):
//!
//! ```no_run
//! # use axum::extract::Query;
//! # use axum::response::{IntoResponse, Redirect, Response};
//! # use http::StatusCode;
//! # use flash_axum::Flash;
//! # use flash_core::{Level, Message};
//! # #[derive(serde::Deserialize)]
//! # struct AddQuery { text: String, level: Option<i32>, fail: Option<u16>, to: Option<String> }
//! # async fn add(flash: Flash, Query(q): Query<AddQuery>) -> Result<Redirect, (StatusCode, &'static str)> {
//! #     flash.add_message(Level::new(q.level.unwrap_or(25)), q.text);
//! #     match q.fail {
//! #         Some(status) => Err((StatusCode::from_u16(status).unwrap(), "failed")),
//! #         None => Ok(Redirect::to(&format!("/{}", q.to.unwrap_or_default()))),
//! #     }
//! # }
//! # #[derive(serde::Deserialize)]
//! # struct ShowQuery { now: Option<String>, keep: Option<String>, vary: Option<String>, status: Option<u16>, fail: Option<u16> }
//! # async fn show(flash: Flash, Query(q): Query<ShowQuery>) -> Result<Response, (StatusCode, &'static str)> {
//! #     if let Some(text) = q.now { flash.add_now(Message::new(Level::INFO, text)); }
//! #     let body = match flash.read().await {
//! #         Ok(messages) => messages.iter().map(|m| format!("{} {}\n", m.level.value(), m.text)).collect(),
//! #         Err(_) => "unavailable\n".to_owned(),
//! #     };
//! #     if q.keep.as_deref() == Some("1") { flash.keep(); }
//! #     if let Some(status) = q.fail { return Err((StatusCode::from_u16(status).unwrap(), "failed")); }
//! #     let mut response = (StatusCode::from_u16(q.status.unwrap_or(200)).unwrap(), body).into_response();
//! #     if let Some(vary) = q.vary { response.headers_mut().insert(http::header::VARY, vary.parse().unwrap()); }
//! #     Ok(response)
//! # }
//! # async fn idle(_flash: Flash) -> &'static str { "idle" }
//! # async fn moved() -> Redirect { Redirect::permanent("/") }
//! // tests/kit.rs of an axum adapter; `add`, `show`, `idle` and `moved` serve the routes below.
//! use axum::{Router, body::Body, routing::{get, post}};
//! use flash_axum::FlashLayer;
//! use flash_core::adapter::Adapter;
//! use flash_testkit::adapter_kit::{AdapterApp, KitRequest, KitResponse};
//! use http::{HeaderValue, Request};
//! use tower::ServiceExt as _;
//!
//! struct App(Router);
//!
//! impl AdapterApp for App {
//!     async fn build(adapter: Adapter) -> Self {
//!         App(Router::new()
//!             .route("/", get(show).options(show))
//!             .route("/add", post(add))
//!             .route("/page", get(show))
//!             .route("/idle", get(idle))
//!             .route("/moved", get(moved))
//!             .layer(FlashLayer::from(adapter)))
//!     }
//!
//!     async fn send(&self, request: KitRequest) -> KitResponse {
//!         let mut builder = Request::builder().method(request.method).uri(&request.uri);
//!         if let Some(session) = request.session {
//!             builder = builder.extension(session); // as a session middleware would
//!         }
//!         for (name, value) in &request.headers {
//!             builder = builder.header(name, HeaderValue::from_bytes(value).unwrap());
//!         }
//!         let request = builder.body(Body::empty()).unwrap();
//!         let response = self.0.clone().oneshot(request).await.unwrap();
//!         let status = response.status().as_u16();
//!         let headers = response.headers().iter()
//!             .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
//!             .collect();
//!         let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//!         KitResponse { status, headers, body: String::from_utf8(body.to_vec()).unwrap() }
//!     }
//! }
//!
//! flash_testkit::adapter_tests!(App);
//! # // A doctest is not built with `--test`: what the `#[test]` functions call is checked here.
//! # fn main() {
//! #     let _ = || flash_testkit::adapter_kit::run(flash_testkit::adapter_kit::reload_shows_nothing::<App>());
//! # }
//! ```
//!
//! # The routes the app must serve
//!
//! Query values are percent-encoded as HTML forms do; the kit sends only `A-Z a-z 0-9 -`.
//!
//! | route | the handler |
//! |---|---|
//! | `POST /add?text=T` (optional `&level=N`, `&fail=S`) | adds a message of level `N` (default 25, success) with text `T`, and answers `303 See Other` with `Location: /` and an empty body; with `fail`, returns instead the handler's error with status `S` (the framework's error type: poem's `Err(poem::Error)`, actix-web's `Err(actix_web::Error)`, axum's `Err((StatusCode, …))`) |
//! | `GET`, `HEAD` and `OPTIONS /` (optional `?now=T`, `&keep=1`, `&vary=V`, `&status=S`, `&fail=S`) | with `now`, shows `T` at level 20 in this request only (`add_now`); reads every message (consuming them); with `keep=1`, keeps them; with `vary`, sets the response header `Vary: V`; answers `200` (with `status`, `S`) with one line per message, `{level} {text}\n` (`25 saved\n`), or, when reading fails, `200` with the body `unavailable\n`; with `fail`, after reading, returns the handler's error with status `S` instead |
//! | `GET /page` | the same as `GET /`, routed for `GET` alone: a `HEAD /page` reaches it however the framework serves `HEAD` on a `GET` route (axum and poem call the `GET` handler, poem showing it a `GET`; actix-web answers `404`) |
//! | `GET /idle` | takes the handle (extracts it) and does nothing with it; answers `200` with the body `idle` |
//! | `GET /moved` | never takes the handle; answers `308 Permanent Redirect` with `Location: /` (a framework's trailing-slash redirect) |
//!
//! `POST /add` also takes `&to=P`: it then redirects to `/P` instead of `/`.
//!
//! Every request may carry a [`KitSession`] ([`KitRequest::session`]): the app puts it in the
//! request's extensions before flash's middleware runs, as a session middleware would.
//!
//! The kit runs each behaviour on a storage that waits (a keyed [`MemoryStore`] behind
//! [`ServerStorage`], calls counted) and, where it makes sense, on one that never waits
//! ([`KitCookieStorage`], the immediate path).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;

use super::{CallCounts, CountingStore};
use flash_core::Htmx;
use flash_core::Key;
use flash_core::Limits;
use flash_core::Message;
use flash_core::adapter::{Adapter, HINT_COOKIE};
use flash_core::storage::MemoryStore;
use flash_core::storage::{ClientId, KeyedStore, LeaseId, Outcome, ServerStorage};
use flash_core::storage::{ImmediateStorage, Incoming, LoadToken, Loaded, Storage, Update};
use flash_core::{Error, ErrorKind, Result};

/// A request the kit sends to the app.
#[derive(Debug, Clone)]
pub struct KitRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path and query, as `/add?text=saved`.
    pub uri: String,
    /// Header lines: a lowercase name and the value's bytes (which may be non-ASCII).
    pub headers: Vec<(String, Vec<u8>)>,
    /// A request extension for the app to put in the request, outside flash's middleware.
    pub session: Option<KitSession>,
}

/// The app's answer.
#[derive(Debug, Clone)]
pub struct KitResponse {
    /// The status code.
    pub status: u16,
    /// Header lines, in order: a lowercase name and the value's bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body as text.
    pub body: String,
}

impl KitResponse {
    /// Every value of header `name` (lowercase), as text.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The one value of header `name`, if there is exactly one line.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.values(name);
        (values.len() == 1).then(|| values[0].clone())
    }
}

/// The framework's side of the kit: an app with the routes above, over an [`Adapter`].
///
/// Its futures need not be `Send`: the kit runs each test on a current-thread runtime inside a
/// [`tokio::task::LocalSet`] (frameworks such as actix-web are single-threaded per worker).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an adapter kit app",
    note = "implement `flash_testkit::adapter_kit::AdapterApp`: build the kit's routes over the `Adapter` and send a `KitRequest` through them"
)]
pub trait AdapterApp: Sized {
    /// Whether the adapter hands the request's extensions to storages that read them. `false`
    /// only for a framework whose extensions cannot be copied (actix-web's are neither `Clone`
    /// nor `Send`); its storages then reach their state through the adapter's own bridge, and
    /// the kit skips [`a_storage_reads_the_requests_extension`].
    const COPIES_EXTENSIONS: bool = true;

    /// The app with the kit's routes, its flash layer or middleware made from `adapter`
    /// (which carries the storage, the config and the error hook).
    fn build(adapter: Adapter) -> impl Future<Output = Self>;

    /// Sends `request` through the app (in process or over loopback).
    fn send(&self, request: KitRequest) -> impl Future<Output = KitResponse>;
}

/// Runs one kit test on a current-thread runtime with a [`tokio::task::LocalSet`] (the
/// [`adapter_tests!`](crate::adapter_tests) macro calls this).
pub fn run<F: Future<Output = ()>>(test: F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    tokio::task::LocalSet::new().block_on(&runtime, test);
}

/// A browser over one app: a cookie jar, and the checks every response must pass.
struct Browser<'a, A> {
    app: &'a A,
    jar: BTreeMap<String, String>,
}

impl<'a, A: AdapterApp> Browser<'a, A> {
    fn new(app: &'a A) -> Self {
        Browser {
            app,
            jar: BTreeMap::new(),
        }
    }

    fn request(&self, method: &'static str, uri: &str) -> KitRequest {
        let mut headers = Vec::new();
        if !self.jar.is_empty() {
            let line = self
                .jar
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            headers.push(("cookie".to_owned(), line.into_bytes()));
        }
        KitRequest {
            method,
            uri: uri.to_owned(),
            headers,
            session: None,
        }
    }

    async fn get(&mut self, uri: &str) -> KitResponse {
        let request = self.request("GET", uri);
        self.send(request).await
    }

    async fn post(&mut self, uri: &str) -> KitResponse {
        self.post_to(uri, "/").await
    }

    async fn post_to(&mut self, uri: &str, location: &str) -> KitResponse {
        let request = self.request("POST", uri);
        let response = self.send(request).await;
        assert_eq!(response.status, 303, "POST {uri}: {response:?}");
        assert_eq!(response.header("location").as_deref(), Some(location));
        response
    }

    async fn send(&mut self, request: KitRequest) -> KitResponse {
        let response = self.app.send(request).await;
        self.take(&response);
        response
    }

    /// Checks the rules every response obeys, and keeps its cookies.
    fn take(&mut self, response: &KitResponse) {
        let cookies = response.values("set-cookie");
        // A response that sets a flash cookie must not be cached; one that does not is left
        // to the handler (the kit's handlers set no Cache-Control).
        assert_eq!(
            response.header("cache-control").as_deref(),
            (!cookies.is_empty() || !response.values("hx-trigger").is_empty())
                .then_some("private, no-store"),
            "Cache-Control goes with a flash cookie or an htmx delivery, and only with them: \
             {response:?}"
        );
        let vary = response.values("vary").join(", ");
        let named = vary
            .split(',')
            .filter(|v| v.trim().eq_ignore_ascii_case("cookie"))
            .count();
        assert!(named <= 1, "Vary names Cookie twice: {vary:?}");
        if !cookies.is_empty() {
            assert_eq!(
                named, 1,
                "a response setting a cookie varies on it: {vary:?}"
            );
        }
        for line in cookies {
            let pair = line.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            let expired = line.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
            if expired {
                self.jar.remove(name.trim());
            } else {
                self.jar
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
}

fn vary(response: &KitResponse) -> String {
    response.values("vary").join(", ")
}

/// The storages a behaviour runs on.
struct Storages {
    keyed: Arc<dyn Storage>,
    calls: CallCounts,
    cookie: Arc<dyn Storage>,
}

fn storages() -> Storages {
    let counting = CountingStore::new(MemoryStore::new());
    let calls = counting.counts();
    Storages {
        keyed: Arc::new(ServerStorage::new(counting, Key::generate())),
        calls,
        cookie: Arc::new(KitCookieStorage),
    }
}

async fn app<A: AdapterApp>(storage: &Arc<dyn Storage>) -> A {
    A::build(Adapter::new(storage.clone())).await
}

/// POST → 303 → GET shows the message once, with `Vary: Cookie`; on a storage that waits and
/// on one that never waits.
pub async fn post_redirect_get_shows_once<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        let posted = browser.post("/add?text=saved").await;
        let storage_cookies = posted.values("set-cookie");
        let storage_cookies = storage_cookies
            .iter()
            .filter(|line| !line.starts_with(HINT_COOKIE));
        assert_eq!(storage_cookies.count(), 1, "{posted:?}");
        assert_eq!(vary(&posted), "Cookie");
        assert!(posted.body.is_empty());
        let shown = browser.get("/").await;
        assert_eq!(shown.status, 200);
        assert_eq!(shown.body, "25 saved\n");
        assert_eq!(vary(&shown), "Cookie");
    }
}

/// A reload after the message was shown shows nothing.
pub async fn reload_shows_nothing<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        browser.post("/add?text=once").await;
        browser.post("/add?text=twice&level=40").await;
        assert_eq!(browser.get("/").await.body, "25 once\n40 twice\n");
        assert_eq!(browser.get("/").await.body, "");
        assert_eq!(browser.get("/").await.body, "");
    }
}

/// `keep` leaves what was read for the next request; `now` messages show in this request only;
/// a message below the minimum level (INFO) is ignored and writes nothing.
pub async fn keep_now_and_level<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        let ignored = browser.post("/add?text=debug&level=10").await;
        assert!(ignored.values("set-cookie").is_empty(), "{ignored:?}");
        assert!(ignored.values("vary").is_empty(), "{ignored:?}");
        browser.post("/add?text=kept").await;
        assert_eq!(browser.get("/?keep=1").await.body, "25 kept\n");
        assert_eq!(browser.get("/?now=hello").await.body, "25 kept\n20 hello\n");
        assert_eq!(browser.get("/").await.body, "");
        assert_eq!(browser.get("/?now=again").await.body, "20 again\n");
        assert_eq!(browser.get("/").await.body, "");
    }
}

/// `Vary: Cookie` is merged into the handler's own `Vary`, on one line, never twice.
pub async fn vary_merges_with_the_handlers<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        let response = browser.get("/?vary=Accept-Encoding").await;
        assert_eq!(response.values("vary"), ["Accept-Encoding, Cookie"]);
        browser.post("/add?text=a").await;
        let response = browser.get("/?vary=cookie").await;
        assert_eq!(response.body, "25 a\n");
        assert_eq!(response.values("vary"), ["cookie"]);
        let response = browser.get("/?vary=*").await;
        assert_eq!(response.values("vary"), ["*"]);
    }
}

/// `Cache-Control: private, no-store` exactly when a flash cookie is set (checked on every
/// response of the kit), and a read that sets no cookie leaves the response cacheable.
pub async fn cache_control_goes_with_a_flash_cookie<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        let posted = browser.post("/add?text=a").await;
        assert_eq!(
            posted.header("cache-control").as_deref(),
            Some("private, no-store")
        );
        let idle = browser.get("/idle").await;
        assert_eq!(idle.body, "idle");
        assert!(idle.values("cache-control").is_empty(), "{idle:?}");
    }
    // The keyed id cookie is stable: reading sets no cookie, so no Cache-Control.
    let app = app::<A>(&s.keyed).await;
    let mut browser = Browser::new(&app);
    browser.post("/add?text=a").await;
    let shown = browser.get("/").await;
    assert_eq!(shown.body, "25 a\n");
    assert!(shown.values("set-cookie").is_empty(), "{shown:?}");
    assert!(shown.values("cache-control").is_empty(), "{shown:?}");
}

/// A prefetch (`Sec-Purpose: prefetch`, or `Purpose: prefetch`) neither sees nor consumes,
/// and makes no store call.
pub async fn prefetch_neither_sees_nor_consumes<A: AdapterApp>() {
    let s = storages();
    let app = app::<A>(&s.keyed).await;
    let mut browser = Browser::new(&app);
    browser.post("/add?text=a").await;
    let before = s.calls.total();
    for (name, value) in [
        ("sec-purpose", "prefetch;prerender"),
        ("purpose", "prefetch"),
    ] {
        let mut request = browser.request("GET", "/");
        request
            .headers
            .push((name.to_owned(), value.as_bytes().to_vec()));
        let prefetched = browser.send(request).await;
        assert_eq!(prefetched.status, 200);
        assert_eq!(prefetched.body, "");
    }
    assert_eq!(s.calls.total(), before, "a prefetch called the store");
    assert_eq!(browser.get("/").await.body, "25 a\n");
}

/// A request whose handler neither reads nor adds makes no store call and gets no header;
/// adding is one call; a reader without an id cookie makes none.
pub async fn idle_requests_make_no_store_call<A: AdapterApp>() {
    let s = storages();
    let app = app::<A>(&s.keyed).await;
    let mut browser = Browser::new(&app);
    let idle = browser.get("/idle").await;
    assert_eq!(idle.body, "idle");
    assert!(
        idle.headers
            .iter()
            .all(|(n, _)| n != "vary" && n != "set-cookie")
    );
    assert_eq!(browser.get("/").await.body, "");
    assert_eq!(s.calls.total(), 0, "no id cookie: no store call");
    browser.post("/add?text=a").await;
    assert_eq!((s.calls.appends(), s.calls.total()), (1, 1));
    for _ in 0..3 {
        let idle = browser.get("/idle").await;
        assert!(
            idle.headers
                .iter()
                .all(|(n, _)| n != "vary" && n != "set-cookie")
        );
    }
    assert_eq!(s.calls.total(), 1, "idle requests called the store");
    assert_eq!(browser.get("/").await.body, "25 a\n");
}

/// A store that fails: the handler's read gets the error (and still serves its page); a
/// failed save reaches the error hook, and the response is served with `Vary: Cookie`.
pub async fn failing_store_reaches_the_hook<A: AdapterApp>() {
    let key = Key::generate();
    let working: Arc<dyn Storage> = Arc::new(ServerStorage::new(MemoryStore::new(), key.clone()));
    let failing: Arc<dyn Storage> = Arc::new(ServerStorage::new(Down, key));
    let hooked = Arc::new(AtomicUsize::new(0));
    let kinds = hooked.clone();
    let adapter = Adapter::new(failing).on_error(move |err| {
        if err.kind() == ErrorKind::Unavailable {
            kinds.fetch_add(1, Ordering::SeqCst);
        }
    });
    let down = A::build(adapter).await;
    let up = app::<A>(&working).await;

    // A client with an id cookie, made while the store was up.
    let mut browser = Browser::new(&up);
    browser.post("/add?text=a").await;
    let jar = browser.jar.clone();
    let mut browser = Browser::new(&down);
    browser.jar = jar;

    let shown = browser.get("/").await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, "unavailable\n");
    assert_eq!(vary(&shown), "Cookie");
    let posted = browser.post("/add?text=lost").await;
    assert_eq!(vary(&posted), "Cookie");
    assert_eq!(
        hooked.load(Ordering::SeqCst),
        1,
        "the failed save reached the hook once"
    );
}

/// Two tabs of one browser reading at once on a keyed store get each message once.
pub async fn two_tabs_read_each_message_once<A: AdapterApp>() {
    let s = storages();
    let app = app::<A>(&s.keyed).await;
    let mut browser = Browser::new(&app);
    for text in ["a", "b", "c", "d"] {
        browser.post(&format!("/add?text={text}")).await;
    }
    let one = browser.request("GET", "/");
    let two = browser.request("GET", "/");
    let (one, two) = tokio::join!(app.send(one), app.send(two));
    let (three, four) = tokio::join!(app.send(browser.request("GET", "/")), async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.send(browser.request("GET", "/")).await
    });
    let mut seen: Vec<&str> = [&one, &two, &three, &four]
        .iter()
        .flat_map(|r| r.body.lines())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        ["25 a", "25 b", "25 c", "25 d"],
        "each message exactly once"
    );
}

/// Another cookie with non-ASCII bytes (`pref=café`) beside flash's never hides it.
pub async fn other_cookies_bytes_never_hide_flash<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        browser.post("/add?text=a").await;
        let mut request = browser.request("GET", "/");
        let cookie = request
            .headers
            .iter_mut()
            .find(|(n, _)| n == "cookie")
            .expect("a cookie");
        let mut line = "pref=café; ".as_bytes().to_vec();
        line.extend_from_slice(&cookie.1);
        cookie.1 = line;
        assert_eq!(browser.send(request).await.body, "25 a\n");
    }
}

/// htmx delivery: a partial htmx request gets the messages it added in `HX-Trigger`, not
/// stored; a boosted one (a full page) stores them.
pub async fn htmx_requests_get_their_messages_in_hx_trigger<A: AdapterApp>() {
    let s = storages();
    let adapter = Adapter::new(s.keyed.clone()).htmx(Htmx::new());
    let app = A::build(adapter).await;
    let mut browser = Browser::new(&app);
    let mut request = browser.request("POST", "/add?text=toast");
    request
        .headers
        .push(("hx-request".to_owned(), b"true".to_vec()));
    let delivered = browser.send(request).await;
    let trigger = delivered.header("hx-trigger").unwrap_or_default();
    assert!(trigger.contains("\"toast\""), "HX-Trigger: {delivered:?}");
    assert_eq!(vary(&delivered), "Cookie", "{delivered:?}");
    assert_eq!(browser.get("/").await.body, "", "delivered, so not stored");
    let mut request = browser.request("POST", "/add?text=page");
    request
        .headers
        .push(("hx-request".to_owned(), b"true".to_vec()));
    request
        .headers
        .push(("hx-boosted".to_owned(), b"true".to_vec()));
    let boosted = browser.send(request).await;
    assert!(boosted.values("hx-trigger").is_empty(), "{boosted:?}");
    assert_eq!(browser.get("/").await.body, "25 page\n");
}

/// A storage that keeps messages in a request extension ([`KitSession`], as a session storage
/// does) finds it: the adapter hands the request's extensions over.
pub async fn a_storage_reads_the_requests_extension<A: AdapterApp>() {
    if !A::COPIES_EXTENSIONS {
        return;
    }
    let storage: Arc<dyn Storage> = Arc::new(KitSessionStorage);
    let app = app::<A>(&storage).await;
    let browser = Browser::new(&app);
    let session = KitSession::new();
    let mut request = browser.request("POST", "/add?text=in-session");
    request.session = Some(session.clone());
    let posted = app.send(request).await;
    assert_eq!(posted.status, 303, "{posted:?}");
    assert_eq!(session.texts(), ["in-session"], "saved into the extension");
    let mut request = browser.request("GET", "/");
    request.session = Some(session.clone());
    assert_eq!(app.send(request).await.body, "25 in-session\n");
    assert!(session.texts().is_empty(), "consumed from the extension");
}

/// After each request the handle and every copy of the request's extensions are freed: no
/// cycle keeps them (a storage's handle count and a drop counter on the extension).
pub async fn the_handle_and_extensions_are_freed<A: AdapterApp>() {
    let s = storages();
    let session_storage: Arc<dyn Storage> = Arc::new(KitSessionStorage);
    for storage in [&s.keyed, &s.cookie, &session_storage] {
        let app = app::<A>(storage).await;
        let baseline = Arc::strong_count(storage);
        let browser = Browser::new(&app);
        let session = KitSession::new();
        for (method, uri) in [
            ("GET", "/idle"),
            ("POST", "/add?text=a"),
            ("GET", "/"),
            ("GET", "/?fail=500"),
        ] {
            let mut request = browser.request(method, uri);
            request.session = Some(session.clone());
            app.send(request).await;
        }
        assert_eq!(
            Arc::strong_count(storage),
            baseline,
            "a request's handle outlived it (a cycle through the request extensions?)"
        );
        assert_eq!(
            session.live_copies(),
            1,
            "a copy of the request's extensions outlived the request"
        );
    }
}

/// The handler's error: what it added is saved (`4xx` error), what it read is not consumed
/// (`5xx` error), and both responses vary on the cookie.
pub async fn a_handler_error_loses_nothing<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        let request = browser.request("POST", "/add?text=kept&fail=400");
        let failed = browser.send(request).await;
        assert_eq!(failed.status, 400, "{failed:?}");
        assert_eq!(vary(&failed), "Cookie", "{failed:?}");
        let read = browser.get("/?fail=500").await;
        assert_eq!(read.status, 500, "{read:?}");
        assert_eq!(
            vary(&read),
            "Cookie",
            "the error response read messages: {read:?}"
        );
        assert_eq!(browser.get("/").await.body, "25 kept\n", "lost or consumed");
        assert_eq!(browser.get("/").await.body, "");
    }
}

/// A `5xx` response (not an error of the handler): what the request read is not consumed.
pub async fn a_5xx_response_consumes_nothing<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        browser.post("/add?text=a").await;
        let crashed = browser.get("/?status=503").await;
        assert_eq!(crashed.status, 503);
        assert_eq!(crashed.body, "25 a\n");
        assert_eq!(vary(&crashed), "Cookie");
        assert_eq!(browser.get("/").await.body, "25 a\n");
        // A 4xx page is a page: what it showed is consumed.
        browser.post("/add?text=b").await;
        assert_eq!(browser.get("/?status=422").await.body, "25 b\n");
        assert_eq!(browser.get("/").await.body, "");
    }
}

/// `HEAD` and `OPTIONS` read without consuming, with no store call.
pub async fn head_and_options_never_consume<A: AdapterApp>() {
    let s = storages();
    let app = app::<A>(&s.keyed).await;
    let mut browser = Browser::new(&app);
    browser.post("/add?text=a").await;
    let before = s.calls.total();
    for method in ["HEAD", "OPTIONS"] {
        let request = browser.request(method, "/");
        let response = browser.send(request).await;
        assert!(response.status < 300, "{method}: {response:?}");
    }
    assert_eq!(s.calls.total(), before, "HEAD or OPTIONS called the store");
    assert_eq!(browser.get("/").await.body, "25 a\n");
}

/// A `HEAD` served through a `GET` route, as frameworks serve it (poem shows the handler a
/// `GET`), still only looks: the method the middleware saw wins. The message is addressed to
/// `/page`, so the `HEAD` is the very page load it waits for.
pub async fn head_through_a_get_route_never_consumes<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        browser.post_to("/add?text=a&to=page", "/page").await;
        let request = browser.request("HEAD", "/page");
        let response = browser.send(request).await;
        assert!(response.status != 500, "HEAD /page: {response:?}");
        assert_eq!(
            browser.get("/page").await.body,
            "25 a\n",
            "HEAD /page consumed"
        );
        assert_eq!(browser.get("/page").await.body, "");
    }
}

/// A page that redirects without ever taking its handle (`GET /moved`, as a framework's
/// trailing-slash redirect) hands on the messages addressed to it: the page it redirects to
/// shows them, once; another page's load before it does not. With no store call when nothing
/// is addressed to it.
pub async fn a_redirect_hands_on_what_was_addressed_to_it<A: AdapterApp>() {
    let s = storages();
    for storage in [&s.keyed, &s.cookie] {
        let app = app::<A>(storage).await;
        let mut browser = Browser::new(&app);
        let before = s.calls.total();
        let moved = browser.get("/moved").await;
        assert_eq!(moved.status, 308, "{moved:?}");
        browser.post_to("/add?text=moved&to=moved", "/moved").await;
        // The store's calls are counted on the keyed storage; the cookie makes none.
        let keyed = Arc::ptr_eq(storage, &s.keyed);
        assert_eq!(
            s.calls.total(),
            before + usize::from(keyed),
            "only the POST's append"
        );
        assert_eq!(
            browser.get("/").await.body,
            "",
            "a message addressed to /moved was shown by /"
        );
        let moved = browser.get("/moved").await;
        assert_eq!(moved.status, 308, "{moved:?}");
        assert_eq!(moved.header("location").as_deref(), Some("/"));
        assert_eq!(
            browser.get("/").await.body,
            "25 moved\n",
            "/moved did not hand its message on to /"
        );
        assert_eq!(browser.get("/").await.body, "");
        // Nothing is addressed anywhere now: the redirect costs no store call.
        let before = s.calls.total();
        assert_eq!(browser.get("/moved").await.status, 308);
        assert_eq!(
            s.calls.total(),
            before,
            "a redirect with nothing to hand on called the store"
        );
    }
}

/// A session-like request extension for [`KitSessionStorage`]: messages kept in memory shared
/// by its clones, and a count of the clones alive (to see a copy outlive its request).
#[derive(Debug)]
pub struct KitSession {
    messages: Arc<std::sync::Mutex<Vec<Message>>>,
    live: Arc<AtomicUsize>,
}

impl KitSession {
    /// A new, empty session.
    pub fn new() -> Self {
        KitSession {
            messages: Arc::default(),
            live: Arc::new(AtomicUsize::new(1)),
        }
    }

    /// How many clones of it are alive.
    pub fn live_copies(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    fn texts(&self) -> Vec<String> {
        let messages = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        messages.iter().map(|m| m.text.clone()).collect()
    }
}

impl Default for KitSession {
    fn default() -> Self {
        KitSession::new()
    }
}

impl Clone for KitSession {
    fn clone(&self) -> Self {
        self.live.fetch_add(1, Ordering::SeqCst);
        KitSession {
            messages: self.messages.clone(),
            live: self.live.clone(),
        }
    }
}

impl Drop for KitSession {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A storage keeping messages in the request's [`KitSession`] extension (as a session storage
/// does); a request without one loads nothing and saves nothing.
#[derive(Debug, Clone, Copy)]
pub struct KitSessionStorage;

#[async_trait]
impl Storage for KitSessionStorage {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        let messages = match request.extensions().get::<KitSession>() {
            Some(session) => session
                .messages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            None => Vec::new(),
        };
        Ok(Loaded::new(messages, LoadToken::empty()))
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        _: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let Some(session) = request.extensions().get::<KitSession>() else {
            return Err(Error::new(
                ErrorKind::Config,
                "no KitSession in the request",
            ));
        };
        let mut held = session.messages.lock().unwrap_or_else(|p| p.into_inner());
        let messages = if update.was_loaded() {
            update.into_messages()
        } else {
            let mut messages = held.clone();
            messages.extend(update.added);
            messages
        };
        *held = messages;
        Ok(Vec::new())
    }

    fn uses_extensions(&self) -> bool {
        true
    }
}

/// A keyed store whose server is down: every call fails with [`ErrorKind::Unavailable`].
#[derive(Debug, Clone, Copy)]
pub struct Down;

impl Down {
    fn error() -> Error {
        Error::new(ErrorKind::Unavailable, "the kit's store is down")
    }
}

#[async_trait]
impl KeyedStore for Down {
    async fn append(&self, _: &ClientId, _: &[Message], _: Duration, _: &Limits) -> Result<usize> {
        Err(Self::error())
    }

    async fn lease(&self, _: &ClientId, _: &LeaseId, _: Duration) -> Result<Vec<Message>> {
        Err(Self::error())
    }

    async fn settle(
        &self,
        _: &ClientId,
        _: &LeaseId,
        _: Outcome,
        _: &[Message],
        _: Duration,
        _: &Limits,
    ) -> Result<usize> {
        Err(Self::error())
    }
}

/// A storage that never waits, for the kit only: the messages in a plain (unsigned) cookie,
/// `kit_messages`, as the hex of their [`stored_form`](flash_core::storage::stored_form) list
/// (so addressed messages keep their address).
#[derive(Debug, Clone, Copy)]
pub struct KitCookieStorage;

const KIT_COOKIE: &str = "kit_messages";

impl KitCookieStorage {
    fn decode(value: &str) -> Vec<Message> {
        let bytes = (0..value.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(value.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>();
        bytes
            .and_then(|bytes| flash_core::storage::stored_form::list_from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn encode(messages: &[Message]) -> String {
        flash_core::storage::stored_form::list_to_vec(messages)
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl ImmediateStorage for KitCookieStorage {
    fn load_now(&self, request: &Incoming) -> Result<Loaded> {
        let messages = request
            .cookie(KIT_COOKIE)
            .map(Self::decode)
            .unwrap_or_default();
        Ok(Loaded::new(messages, LoadToken::empty()))
    }

    fn save_now(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let messages = if update.was_loaded() {
            update.into_messages()
        } else {
            let mut messages = self.load_now(request)?.messages;
            messages.extend(update.added);
            messages
        };
        let had = request.cookie(KIT_COOKIE).is_some();
        let line = if messages.is_empty() {
            if !had {
                return Ok(Vec::new());
            }
            format!("{KIT_COOKIE}=; Path=/; Max-Age=0")
        } else {
            format!("{KIT_COOKIE}={}; Path=/; HttpOnly", Self::encode(&messages))
        };
        if let Ok(value) = line.parse() {
            response.append(http::header::SET_COOKIE, value);
        }
        Ok(Vec::new())
    }
}

#[async_trait]
impl Storage for KitCookieStorage {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        self.load_now(request)
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        self.save_now(request, update, response)
    }

    fn immediate(&self) -> Option<&dyn ImmediateStorage> {
        Some(self)
    }
}

/// Expands the adapter kit into one `#[test]` per behaviour for `$app`, a type implementing
/// [`AdapterApp`](crate::adapter_kit::AdapterApp).
#[macro_export]
macro_rules! adapter_tests {
    ($app:ty) => {
        $crate::__adapter_tests!(
            $app;
            post_redirect_get_shows_once,
            reload_shows_nothing,
            keep_now_and_level,
            vary_merges_with_the_handlers,
            cache_control_goes_with_a_flash_cookie,
            prefetch_neither_sees_nor_consumes,
            idle_requests_make_no_store_call,
            failing_store_reaches_the_hook,
            two_tabs_read_each_message_once,
            other_cookies_bytes_never_hide_flash,
            htmx_requests_get_their_messages_in_hx_trigger,
            a_storage_reads_the_requests_extension,
            the_handle_and_extensions_are_freed,
            a_handler_error_loses_nothing,
            a_5xx_response_consumes_nothing,
            head_and_options_never_consume,
            head_through_a_get_route_never_consumes,
            a_redirect_hands_on_what_was_addressed_to_it,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __adapter_tests {
    ($app:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::adapter_kit::run(
                    $crate::adapter_kit::$name::<$app>(),
                );
            }
        )*
    };
}
