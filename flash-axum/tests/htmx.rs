//! htmx delivery through axum, and the assertions for application tests, on the keyed memory
//! store and the signed cookie.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use flash_axum::{Adapter, Flash, FlashLayer};
use flash_core::{
    Htmx, Key, Keys, Level, Message, MessageView, MessagesConfig,
    storage::{MemoryStore, ServerStorage, Storage},
};
use flash_testkit::assert_messages;
use http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use http::{Request, Response};
use tower::ServiceExt as _;

/// What `response` left for the next request (`flash_testkit::messages_left`).
async fn left<B>(
    layer: &Adapter,
    response: &Response<B>,
    request_cookies: Option<&str>,
) -> flash_core::Result<Vec<MessageView>> {
    let set_cookies = response.headers().get_all(SET_COOKIE);
    flash_testkit::messages_left(layer, request_cookies, set_cookies).await
}

fn storages() -> Vec<(&'static str, Arc<dyn Storage>)> {
    vec![
        (
            "memory",
            Arc::new(ServerStorage::new(
                MemoryStore::new(),
                Keys::new(Key::generate()),
            )),
        ),
        (
            "cookie",
            Arc::new(flash_cookie::CookieStorage::new(Keys::new(Key::generate()))),
        ),
    ]
}

async fn save(flash: Flash) -> Redirect {
    // Left for any read: this test is about htmx delivery (addressed messages, which only
    // their page shows, are the conformance suite's).
    flash.leave_unaddressed();
    flash.success("Saved.");
    Redirect::to("/")
}

async fn save_in_place(flash: Flash) -> &'static str {
    flash.add(
        Message::new(Level::SUCCESS, "Deleted <b>7</b>.")
            .with_data(serde_json::json!({"undo": "/articles/7/restore"})),
    );
    "<tr></tr>"
}

async fn with_trigger(flash: Flash) -> impl IntoResponse {
    flash.info("é");
    ([("hx-trigger", r#"{"rowDeleted":{"id":7}}"#)], "ok")
}

async fn with_list(flash: Flash) -> impl IntoResponse {
    flash.info("listed");
    ([("hx-trigger", "closeModal, refresh")], "ok")
}

async fn clashing(flash: Flash) -> impl IntoResponse {
    flash.info("kept");
    ([("hx-trigger", r#"{"messages":1}"#)], "ok")
}

async fn large(flash: Flash) -> &'static str {
    flash.info("x".repeat(3000));
    flash.info("y".repeat(3000));
    "ok"
}

async fn poll(flash: Flash) -> &'static str {
    flash.peek().await.unwrap();
    "poll"
}

async fn form(flash: Flash) -> &'static str {
    flash.deliver_pending_to_htmx();
    flash.info("from the form");
    "form"
}

async fn page(flash: Flash) -> String {
    let views = flash.read_views().await.unwrap();
    views
        .iter()
        .map(|v| v.message.clone())
        .collect::<Vec<_>>()
        .join("|")
}

async fn api(flash: Flash) -> axum::Json<serde_json::Value> {
    axum::Json(flash.read_json().await.unwrap())
}

fn app(layer: Adapter) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/save", post(save))
        .route("/in-place", post(save_in_place))
        .route("/trigger", post(with_trigger))
        .route("/list", post(with_list))
        .route("/clash", post(clashing))
        .route("/large", post(large))
        .route("/poll", get(poll))
        .route("/form", post(form))
        .route("/api/messages", get(api))
        .layer(FlashLayer::from(layer))
}

fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    cookie: Option<&str>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if let Some(cookie) = cookie {
        builder = builder.header(COOKIE, cookie);
    }
    builder.body(Body::empty()).unwrap()
}

const HTMX: &[(&str, &str)] = &[("hx-request", "true")];

fn trigger(response: &Response<Body>) -> Option<serde_json::Value> {
    let value = response.headers().get("hx-trigger")?;
    Some(serde_json::from_slice(value.as_bytes()).unwrap())
}

/// The cookie header after `response`, as a browser would send it next.
fn next_cookie(before: Option<&str>, response: &Response<Body>) -> String {
    flash_testkit::next_cookie_header(
        before,
        response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.as_bytes()),
    )
}

#[tokio::test]
async fn added_messages_ride_in_hx_trigger_and_are_not_stored() {
    for (name, storage) in storages() {
        let layer = Adapter::new(storage).htmx(Htmx::new());
        let app = app(layer.clone());
        let response = app
            .clone()
            .oneshot(request("POST", "/in-place", HTMX, None))
            .await
            .unwrap();
        assert!(response.status().is_success(), "{name}");
        let detail = trigger(&response).unwrap();
        assert_eq!(
            detail,
            serde_json::json!({"messages": [{
                "level": 25, "level_tag": "success", "tags": "success", "extra_tags": "",
                "message": "Deleted <b>7</b>.", "safe": false,
                "data": {"undo": "/articles/7/restore"},
            }]}),
            "{name}"
        );
        assert_eq!(
            response.headers()[CACHE_CONTROL],
            "private, no-store",
            "{name}"
        );
        assert!(response.headers().get(SET_COOKIE).is_none(), "{name}");
        assert_messages(&left(&layer, &response, None).await.unwrap(), &[]);
    }
}

#[tokio::test]
async fn non_htmx_boosted_and_history_restores_are_left_alone() {
    for (name, storage) in storages() {
        let layer = Adapter::new(storage).htmx(Htmx::new());
        let app = app(layer.clone());
        for headers in [
            &[][..],
            &[("hx-request", "true"), ("hx-boosted", "true")][..],
            &[
                ("hx-request", "true"),
                ("hx-history-restore-request", "true"),
            ][..],
            &[("hx-request", "false")][..],
        ] {
            let response = app
                .clone()
                .oneshot(request("POST", "/save", headers, None))
                .await
                .unwrap();
            assert!(trigger(&response).is_none(), "{name} {headers:?}");
            assert_messages(
                &left(&layer, &response, None).await.unwrap(),
                &[(Level::SUCCESS, "Saved.")],
            );
        }
    }
}

#[tokio::test]
async fn without_the_option_htmx_requests_are_untouched() {
    for (_, storage) in storages() {
        let layer = Adapter::new(storage);
        let response = app(layer.clone())
            .oneshot(request("POST", "/in-place", HTMX, None))
            .await
            .unwrap();
        assert!(trigger(&response).is_none());
        assert_messages(
            &left(&layer, &response, None).await.unwrap(),
            &[(Level::SUCCESS, "Deleted <b>7</b>.")],
        );
    }
}

#[tokio::test]
async fn the_handlers_trigger_is_merged_in_both_forms() {
    let (_, storage) = storages().remove(0);
    let layer = Adapter::new(storage).htmx(Htmx::new().event("flash"));
    let app = app(layer.clone());

    let response = app
        .clone()
        .oneshot(request("POST", "/trigger", HTMX, None))
        .await
        .unwrap();
    let raw = response.headers()["hx-trigger"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(raw.is_ascii() && raw.contains(r"\u00e9"), "{raw}");
    let detail = trigger(&response).unwrap();
    assert_eq!(detail["rowDeleted"], serde_json::json!({"id": 7}));
    assert_eq!(detail["flash"][0]["message"], "é");

    let response = app
        .clone()
        .oneshot(request("POST", "/list", HTMX, None))
        .await
        .unwrap();
    let detail = trigger(&response).unwrap();
    assert_eq!(detail["closeModal"], serde_json::Value::Null);
    assert_eq!(detail["refresh"], serde_json::Value::Null);
    assert_eq!(detail["flash"][0]["message"], "listed");
}

#[tokio::test]
async fn what_cannot_be_delivered_stays_stored() {
    for (name, storage) in storages() {
        let layer = Adapter::new(storage)
            .with_config(MessagesConfig::default().with_limits(flash_core::Limits::default()))
            .htmx(Htmx::new().max_header_bytes(1024));
        let app = app(layer.clone());
        // The handler's trigger already holds the event's name: left as it was.
        let response = app
            .clone()
            .oneshot(request("POST", "/clash", HTMX, None))
            .await
            .unwrap();
        assert_eq!(
            response.headers()["hx-trigger"],
            r#"{"messages":1}"#,
            "{name}"
        );
        assert_messages(
            &left(&layer, &response, None).await.unwrap(),
            &[(Level::INFO, "kept")],
        );
        // Beyond the header limit.
        let response = app
            .clone()
            .oneshot(request("POST", "/in-place", HTMX, None))
            .await
            .unwrap();
        assert!(trigger(&response).is_some(), "{name}: small enough");
        let layer = Adapter::new(layer.storage().clone()).htmx(Htmx::new().max_header_bytes(100));
        let response = app_with(layer.clone(), "/in-place").await;
        assert!(trigger(&response).is_none(), "{name}");
        assert_eq!(
            left(&layer, &response, None).await.unwrap().len(),
            1,
            "{name}"
        );
    }
}

async fn app_with(layer: Adapter, uri: &str) -> Response<Body> {
    app(layer)
        .oneshot(request("POST", uri, HTMX, None))
        .await
        .unwrap()
}

#[tokio::test]
async fn pending_messages_ride_along_only_where_the_route_opts_in() {
    for (name, storage) in storages() {
        let layer = Adapter::new(storage).htmx(Htmx::new());
        let app = app(layer.clone());
        // A full-page POST leaves a message for the page the redirect leads to.
        let response = app
            .clone()
            .oneshot(request("POST", "/save", &[], None))
            .await
            .unwrap();
        let cookie = next_cookie(None, &response);

        // A polling htmx request does not take it.
        let response = app
            .clone()
            .oneshot(request("GET", "/poll", HTMX, Some(&cookie)))
            .await
            .unwrap();
        assert!(trigger(&response).is_none(), "{name}");
        let cookie = next_cookie(Some(&cookie), &response);
        assert_messages(
            &left(&layer, &response, Some(&cookie)).await.unwrap(),
            &[(Level::SUCCESS, "Saved.")],
        );

        // A route that opts in delivers it with its own, consumed.
        let response = app
            .clone()
            .oneshot(request("POST", "/form", HTMX, Some(&cookie)))
            .await
            .unwrap();
        let detail = trigger(&response).unwrap();
        let texts: Vec<_> = detail["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["message"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(texts, ["Saved.", "from the form"], "{name}");
        let cookie = next_cookie(Some(&cookie), &response);
        assert_messages(&left(&layer, &response, Some(&cookie)).await.unwrap(), &[]);
        let response = app
            .clone()
            .oneshot(request("GET", "/", &[], Some(&cookie)))
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(body.is_empty(), "{name}: {body:?}");
    }
}

#[tokio::test]
async fn the_json_helper_gives_the_template_fields() {
    for (name, storage) in storages() {
        let layer = Adapter::new(storage);
        let app = app(layer.clone());
        let response = app
            .clone()
            .oneshot(request("POST", "/save", &[], None))
            .await
            .unwrap();
        let cookie = next_cookie(None, &response);
        let response = app
            .clone()
            .oneshot(request("GET", "/api/messages", &[], Some(&cookie)))
            .await
            .unwrap();
        let cookie = next_cookie(Some(&cookie), &response);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"messages": [{"level": 25, "level_tag": "success",
                "tags": "success", "extra_tags": "", "message": "Saved.", "safe": false}]}),
            "{name}"
        );
        // Consumed.
        let response = app
            .clone()
            .oneshot(request("GET", "/api/messages", &[], Some(&cookie)))
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"messages":[]}"#, "{name}");
    }
}

#[tokio::test]
async fn assert_messages_prints_both_lists() {
    let (_, storage) = storages().remove(0);
    let layer = Adapter::new(storage);
    let response = app(layer.clone())
        .oneshot(request("POST", "/save", &[], None))
        .await
        .unwrap();
    let left = left(&layer, &response, None).await.unwrap();
    let panic = std::panic::catch_unwind(|| assert_messages(&left, &[(Level::INFO, "Other.")]))
        .unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    assert!(text.contains("Level::SUCCESS \"Saved.\""), "{text}");
    assert!(text.contains("Level::INFO \"Other.\""), "{text}");
}

#[tokio::test]
async fn pending_messages_that_do_not_fit_stay_stored_as_they_were() {
    for (name, storage) in storages() {
        let layer = Adapter::new(storage).htmx(Htmx::new().max_header_bytes(150));
        let app = app(layer.clone());
        let response = app
            .clone()
            .oneshot(request("POST", "/save", &[], None))
            .await
            .unwrap();
        let cookie = next_cookie(None, &response);
        let response = app
            .clone()
            .oneshot(request("POST", "/form", HTMX, Some(&cookie)))
            .await
            .unwrap();
        assert!(trigger(&response).is_none(), "{name}");
        let cookie = next_cookie(Some(&cookie), &response);
        assert_messages(
            &left(&layer, &response, Some(&cookie)).await.unwrap(),
            &[(Level::SUCCESS, "Saved."), (Level::INFO, "from the form")],
        );
    }
}
