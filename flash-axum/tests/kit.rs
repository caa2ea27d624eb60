//! The adapter kit of flash-core, run through axum and the layer.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use flash_axum::{Flash, FlashLayer};
use flash_core::{Level, Message, adapter::Adapter};
use flash_testkit::adapter_kit::{AdapterApp, KitRequest, KitResponse};
use http::header::VARY;
use http::{HeaderValue, Request, StatusCode};
use tower::ServiceExt as _;

#[derive(serde::Deserialize)]
struct AddQuery {
    text: String,
    level: Option<i32>,
    fail: Option<u16>,
    to: Option<String>,
}

async fn add(
    flash: Flash,
    Query(query): Query<AddQuery>,
) -> Result<Redirect, (StatusCode, &'static str)> {
    flash.add_message(Level::new(query.level.unwrap_or(25)), query.text);
    match query.fail {
        Some(status) => Err((StatusCode::from_u16(status).unwrap(), "failed")),
        None => Ok(Redirect::to(&format!("/{}", query.to.unwrap_or_default()))),
    }
}

#[derive(serde::Deserialize)]
struct ShowQuery {
    now: Option<String>,
    keep: Option<String>,
    vary: Option<String>,
    status: Option<u16>,
    fail: Option<u16>,
}

async fn show(
    flash: Flash,
    Query(query): Query<ShowQuery>,
) -> Result<Response, (StatusCode, &'static str)> {
    if let Some(text) = query.now {
        flash.add_now(Message::new(Level::INFO, text));
    }
    let body = match flash.read().await {
        Ok(messages) => messages
            .iter()
            .map(|m| format!("{} {}\n", m.level.value(), m.text))
            .collect(),
        Err(_) => "unavailable\n".to_owned(),
    };
    if query.keep.as_deref() == Some("1") {
        flash.keep();
    }
    if let Some(status) = query.fail {
        return Err((StatusCode::from_u16(status).unwrap(), "failed"));
    }
    let status = StatusCode::from_u16(query.status.unwrap_or(200)).unwrap();
    let mut response = (status, body).into_response();
    if let Some(vary) = query.vary {
        response
            .headers_mut()
            .insert(VARY, HeaderValue::from_str(&vary).unwrap());
    }
    Ok(response)
}

async fn idle(_flash: Flash) -> &'static str {
    "idle"
}

async fn moved() -> Redirect {
    Redirect::permanent("/")
}

struct App(Router);

impl AdapterApp for App {
    async fn build(adapter: Adapter) -> Self {
        App(Router::new()
            .route("/", get(show).options(show))
            .route("/add", post(add))
            .route("/page", get(show))
            .route("/idle", get(idle))
            .route("/moved", get(moved))
            .layer(FlashLayer::from(adapter)))
    }

    async fn send(&self, request: KitRequest) -> KitResponse {
        let mut builder = Request::builder().method(request.method).uri(&request.uri);
        if let Some(session) = request.session {
            builder = builder.extension(session);
        }
        for (name, value) in &request.headers {
            builder = builder.header(name, HeaderValue::from_bytes(value).unwrap());
        }
        let response = self
            .0
            .clone()
            .oneshot(builder.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        KitResponse {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }
}

flash_testkit::adapter_tests!(App);
