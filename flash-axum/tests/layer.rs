//! The layer and the extractor, driven through `oneshot` over the in-memory keyed store.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use flash_axum::{Adapter, Flash, FlashLayer};
use flash_core::{
    Error, ErrorKind, Key, Keys, Level, Message, MessagesConfig, async_trait,
    storage::{Incoming, Loaded, MemoryStore, ServerStorage, Storage, Update},
};
use flash_testkit::{CallCounts, CountingStore};
use http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use http::{HeaderMap, Request, Response, StatusCode};
use tower::ServiceExt as _;

fn counting_storage() -> (Arc<dyn Storage>, CallCounts) {
    let store = CountingStore::new(MemoryStore::new());
    let calls = store.counts();
    let storage = ServerStorage::new(store, Keys::new(Key::generate()));
    (Arc::new(storage), calls)
}

async fn add(flash: Flash) -> Redirect {
    flash.info("one");
    flash.warning("two");
    Redirect::to("/")
}

async fn add_debug(flash: Flash) -> Redirect {
    flash.debug("debug shows with a DEBUG minimum level");
    Redirect::to("/")
}

async fn show(flash: Flash) -> String {
    let messages = flash.read().await.unwrap();
    messages
        .iter()
        .map(|m| format!("{}:{}", m.tags_in(flash.level_tags()), m.text))
        .collect::<Vec<_>>()
        .join("|")
}

async fn count(flash: Flash) -> String {
    flash.len().await.unwrap().to_string()
}

async fn untouched() -> &'static str {
    "plain"
}

async fn extracted_only(_flash: Flash) -> &'static str {
    "plain"
}

async fn with_vary(flash: Flash) -> impl IntoResponse {
    let text = show(flash).await;
    ([(VARY, "Accept-Encoding")], text)
}

async fn twice(first: Flash, second: Flash) -> String {
    first.success("added through the first");
    let seen = second.peek().await.unwrap();
    seen.len().to_string()
}

fn app(storage: Arc<dyn Storage>, config: MessagesConfig) -> Router {
    Router::new()
        .route("/", get(show))
        .route("/add", post(add))
        .route("/add-debug", post(add_debug))
        .route("/count", get(count))
        .route("/untouched", get(untouched))
        .route("/extracted", get(extracted_only))
        .route("/vary", get(with_vary))
        .route("/twice", get(twice))
        .layer(FlashLayer::from(Adapter::new(storage).with_config(config)))
}

/// A browser: keeps the cookies the responses set.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn request(&self, method: &str, uri: &str) -> http::request::Builder {
        let mut builder = Request::builder().method(method).uri(uri);
        if !self.0.is_empty() {
            let cookie = self
                .0
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            builder = builder.header(COOKIE, cookie);
        }
        builder
    }

    fn store(&mut self, headers: &HeaderMap) {
        for set in headers.get_all(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.0.retain(|(n, _)| n != name);
            let removal = set.to_str().unwrap().contains("Max-Age=0");
            if !removal {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }
}

async fn send(app: &Router, jar: &mut Jar, request: Request<Body>) -> (Response<()>, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    jar.store(response.headers());
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        Response::from_parts(parts, ()),
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn get_page(app: &Router, jar: &mut Jar, uri: &str) -> (Response<()>, String) {
    let request = jar.request("GET", uri).body(Body::empty()).unwrap();
    send(app, jar, request).await
}

async fn post_to(app: &Router, jar: &mut Jar, uri: &str) -> Response<()> {
    let request = jar.request("POST", uri).body(Body::empty()).unwrap();
    send(app, jar, request).await.0
}

#[tokio::test]
async fn post_redirect_get_shows_once() {
    let (storage, calls) = counting_storage();
    let app = app(storage, MessagesConfig::default());
    let mut jar = Jar::default();

    let response = post_to(&app, &mut jar, "/add").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[VARY], "Cookie");
    assert_eq!(response.headers()[CACHE_CONTROL], "private, no-store");
    assert_eq!(calls.appends(), 1, "adding is one append");
    assert_eq!(calls.leases(), 0, "adding never loads");

    let (response, body) = get_page(&app, &mut jar, "/").await;
    assert_eq!(body, "info:one|warning:two");
    assert_eq!(response.headers()[VARY], "Cookie");
    assert!(
        response.headers().get(SET_COOKIE).is_none(),
        "the id cookie is stable"
    );
    assert!(response.headers().get(CACHE_CONTROL).is_none());
    assert_eq!((calls.leases(), calls.settles()), (1, 1));

    let (response, body) = get_page(&app, &mut jar, "/").await;
    assert_eq!(body, "", "shown once");
    assert_eq!(response.headers()[VARY], "Cookie");
    assert_eq!(
        (calls.leases(), calls.settles()),
        (2, 1),
        "a read that found nothing needs no settle"
    );
}

#[tokio::test]
async fn idle_requests_make_no_store_call_and_add_no_header() {
    let (storage, calls) = counting_storage();
    let app = app(storage, MessagesConfig::default());
    let mut jar = Jar::default();
    post_to(&app, &mut jar, "/add").await;
    let after_add = calls.total();

    for uri in ["/untouched", "/extracted"] {
        let (response, body) = get_page(&app, &mut jar, uri).await;
        assert_eq!(body, "plain");
        assert!(response.headers().get(VARY).is_none(), "{uri}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{uri}");
        assert!(response.headers().get(CACHE_CONTROL).is_none(), "{uri}");
    }
    assert_eq!(calls.total(), after_add, "no store call for idle requests");

    // A client without an id cookie that reads makes no call either, but the page varies.
    let mut stranger = Jar::default();
    let (response, body) = get_page(&app, &mut stranger, "/").await;
    assert_eq!(body, "");
    assert_eq!(response.headers()[VARY], "Cookie");
    assert_eq!(calls.total(), after_add);

    // The messages are still there for the first client.
    let (_, body) = get_page(&app, &mut jar, "/").await;
    assert_eq!(body, "info:one|warning:two");
}

#[tokio::test]
async fn counting_does_not_consume() {
    let (storage, _) = counting_storage();
    // `/add` redirects to `/`: unaddressed, so that `/count` sees what it added.
    let config = MessagesConfig::default().with_addressing(flash_core::Addressing::off());
    let app = app(storage, config);
    let mut jar = Jar::default();
    post_to(&app, &mut jar, "/add").await;
    let (response, body) = get_page(&app, &mut jar, "/count").await;
    assert_eq!(body, "2");
    assert_eq!(response.headers()[VARY], "Cookie");
    let (_, body) = get_page(&app, &mut jar, "/").await;
    assert_eq!(body, "info:one|warning:two");
}

#[tokio::test]
async fn prefetch_sees_and_consumes_nothing() {
    let (storage, calls) = counting_storage();
    let app = app(storage, MessagesConfig::default());
    let mut jar = Jar::default();
    post_to(&app, &mut jar, "/add").await;
    let before = calls.total();

    for (name, value) in [("sec-purpose", "prefetch"), ("purpose", "prefetch")] {
        let request = jar
            .request("GET", "/")
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        let (response, body) = send(&app, &mut jar, request).await;
        assert_eq!(body, "", "{name}: a prefetch sees nothing");
        assert_eq!(response.headers()[VARY], "Cookie");
        assert!(response.headers().get(SET_COOKIE).is_none());
    }
    assert_eq!(calls.total(), before, "a prefetch makes no store call");

    let (_, body) = get_page(&app, &mut jar, "/").await;
    assert_eq!(body, "info:one|warning:two", "nothing was consumed");
}

#[tokio::test]
async fn vary_is_appended_to_the_handlers() {
    let (storage, _) = counting_storage();
    let app = app(storage, MessagesConfig::default());
    let mut jar = Jar::default();
    let (response, _) = get_page(&app, &mut jar, "/vary").await;
    let vary: Vec<_> = response.headers().get_all(VARY).iter().collect();
    assert_eq!(vary, ["Accept-Encoding, Cookie"]);
}

#[tokio::test]
async fn level_comes_from_the_config() {
    let (storage, _) = counting_storage();
    let default = app(storage.clone(), MessagesConfig::default());
    let mut jar = Jar::default();
    let response = post_to(&default, &mut jar, "/add-debug").await;
    assert!(
        response.headers().get(SET_COOKIE).is_none(),
        "DEBUG is below the default minimum level: nothing stored"
    );
    assert!(response.headers().get(VARY).is_none());

    let debug = app(storage, MessagesConfig::default().with_level(Level::DEBUG));
    post_to(&debug, &mut jar, "/add-debug").await;
    let (_, body) = get_page(&debug, &mut jar, "/").await;
    assert_eq!(body, "debug:debug shows with a DEBUG minimum level");
}

#[tokio::test]
async fn every_extraction_shares_one_handle() {
    let (storage, _) = counting_storage();
    let app = app(storage, MessagesConfig::default());
    let mut jar = Jar::default();
    let (_, body) = get_page(&app, &mut jar, "/twice").await;
    assert_eq!(body, "1");
    let (_, body) = get_page(&app, &mut jar, "/").await;
    assert_eq!(body, "success:added through the first");
}

#[tokio::test]
async fn missing_layer_is_a_500_naming_the_fix() {
    let app = Router::new().route("/", get(show));
    let mut jar = Jar::default();
    let (response, body) = get_page(&app, &mut jar, "/").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("FlashLayer"), "{body}");
}

/// A storage whose server is down: loads find nothing, saves fail.
struct Down;

#[async_trait]
impl Storage for Down {
    async fn load(&self, _: &Incoming) -> flash_core::Result<Loaded> {
        Ok(Loaded::nothing())
    }

    async fn save(
        &self,
        _: &Incoming,
        _: Update,
        _: &mut HeaderMap,
    ) -> flash_core::Result<Vec<Message>> {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        Err(Error::with_source(
            ErrorKind::Unavailable,
            "test store",
            refused,
        ))
    }
}

#[tokio::test]
async fn failed_save_calls_the_hook_and_still_serves() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook_seen = seen.clone();
    let layer = FlashLayer::from(Adapter::new(Arc::new(Down)).on_error(move |err: &Error| {
        hook_seen.lock().unwrap().push(err.kind());
    }));
    let app = Router::new().route("/add", post(add)).layer(layer);
    let mut jar = Jar::default();
    let response = post_to(&app, &mut jar, "/add").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
    assert_eq!(response.headers()[VARY], "Cookie");
    assert_eq!(*seen.lock().unwrap(), [ErrorKind::Unavailable]);
}

#[derive(Clone)]
struct SessionMarker;

/// A storage that reads request extensions, as session storage does.
struct ReadsExtensions {
    saw_marker: AtomicBool,
    loads: AtomicUsize,
}

#[async_trait]
impl Storage for ReadsExtensions {
    async fn load(&self, request: &Incoming) -> flash_core::Result<Loaded> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.saw_marker.store(
            request.extensions().get::<SessionMarker>().is_some(),
            Ordering::SeqCst,
        );
        Ok(Loaded::nothing())
    }

    async fn save(
        &self,
        _: &Incoming,
        _: Update,
        _: &mut HeaderMap,
    ) -> flash_core::Result<Vec<Message>> {
        Ok(Vec::new())
    }

    fn uses_extensions(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn extensions_reach_a_storage_that_asks_and_nothing_leaks() {
    let storage = Arc::new(ReadsExtensions {
        saw_marker: AtomicBool::new(false),
        loads: AtomicUsize::new(0),
    });
    let dyn_storage: Arc<dyn Storage> = storage.clone();
    let baseline = Arc::strong_count(&storage);
    {
        // The session layer sits outside the flash layer and adds its handle to the request.
        let app = Router::new()
            .route("/", get(show))
            .layer(FlashLayer::new(dyn_storage))
            .layer(axum::Extension(SessionMarker));
        let mut jar = Jar::default();
        let (response, _) = get_page(&app, &mut jar, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(storage.loads.load(Ordering::SeqCst), 1);
    assert!(storage.saw_marker.load(Ordering::SeqCst));
    assert_eq!(
        Arc::strong_count(&storage),
        baseline - 1,
        "the request handle was dropped with the request: no reference cycle"
    );
}
