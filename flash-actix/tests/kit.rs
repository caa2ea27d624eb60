//! The adapter kit of flash-core, run through actix-web and the middleware.
#![allow(clippy::unwrap_used)]

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::test as actix_test;
use actix_web::{App, HttpResponse, web};
use flash_actix::{Flash, FlashMiddleware};
use flash_core::{Level, Message, adapter::Adapter};
use flash_testkit::adapter_kit::{AdapterApp, KitRequest, KitResponse};

#[derive(serde::Deserialize)]
struct AddQuery {
    text: String,
    level: Option<i32>,
    fail: Option<u16>,
    to: Option<String>,
}

fn handler_error(status: u16) -> actix_web::Error {
    actix_web::error::InternalError::new("failed", StatusCode::from_u16(status).unwrap()).into()
}

async fn add(flash: Flash, query: web::Query<AddQuery>) -> actix_web::Result<HttpResponse> {
    let query = query.into_inner();
    flash.add_message(Level::new(query.level.unwrap_or(25)), query.text);
    if let Some(status) = query.fail {
        return Err(handler_error(status));
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/{}", query.to.unwrap_or_default()),
        ))
        .finish())
}

#[derive(serde::Deserialize)]
struct ShowQuery {
    now: Option<String>,
    keep: Option<String>,
    vary: Option<String>,
    status: Option<u16>,
    fail: Option<u16>,
}

async fn show(flash: Flash, query: web::Query<ShowQuery>) -> actix_web::Result<HttpResponse> {
    let query = query.into_inner();
    if let Some(text) = query.now {
        flash.add_now(Message::new(Level::INFO, text));
    }
    let body: String = match flash.read().await {
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
        return Err(handler_error(status));
    }
    let mut response =
        HttpResponse::build(StatusCode::from_u16(query.status.unwrap_or(200)).unwrap());
    if let Some(vary) = query.vary {
        response.insert_header((header::VARY, vary));
    }
    Ok(response.body(body))
}

async fn idle(_flash: Flash) -> &'static str {
    "idle"
}

async fn moved() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

struct Kit(Adapter);

impl AdapterApp for Kit {
    // actix-web's extensions are neither `Clone` nor `Send`: storages reach the session through
    // the actix-session bridge (tests/session.rs).
    const COPIES_EXTENSIONS: bool = false;

    async fn build(adapter: Adapter) -> Self {
        Kit(adapter)
    }

    async fn send(&self, request: KitRequest) -> KitResponse {
        let app = actix_test::init_service(
            App::new()
                .wrap(FlashMiddleware::from(self.0.clone()))
                .route("/", web::get().to(show))
                .route("/", web::head().to(show))
                .route("/", web::method(Method::OPTIONS).to(show))
                .route("/add", web::post().to(add))
                .route("/page", web::get().to(show))
                .route("/idle", web::get().to(idle))
                .route("/moved", web::get().to(moved)),
        )
        .await;
        let mut builder = actix_test::TestRequest::default()
            .method(Method::from_bytes(request.method.as_bytes()).unwrap())
            .uri(&request.uri);
        for (name, value) in &request.headers {
            builder = builder.append_header((
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            ));
        }
        let request_ = builder.to_request();
        if let Some(session) = request.session {
            actix_web::HttpMessage::extensions_mut(&request_).insert(session);
        }
        let response = actix_test::call_service(&app, request_).await;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = actix_test::read_body(response).await;
        KitResponse {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }
}

flash_testkit::adapter_tests!(Kit);
