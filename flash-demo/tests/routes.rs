//! The demo's routes over the in-memory keyed store: the contract's shapes and bad input.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use flash_core::{Key, KeyedStorage, Keys, Level, LevelTags, MemoryStore, Message};
use flash_demo::{MessageView, app};
use http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
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
