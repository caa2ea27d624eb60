//! The adapter kit of flash-core, run through actix-web and the middleware.
#![allow(clippy::unwrap_used)]

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{App, HttpResponse, test, web};
use flash_actix::{Flash, FlashMiddleware};
use flash_core::{Level, Message, adapter::Adapter};
use flash_testkit::adapter_kit::{AdapterApp, KitRequest, KitResponse};

#[derive(serde::Deserialize)]
struct AddQuery {
    text: String,
    level: Option<i32>,
}

async fn add(flash: Flash, query: web::Query<AddQuery>) -> HttpResponse {
    let query = query.into_inner();
    flash.add(Level::new(query.level.unwrap_or(25)), query.text);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

#[derive(serde::Deserialize)]
struct ShowQuery {
    now: Option<String>,
    keep: Option<String>,
    vary: Option<String>,
}

async fn show(flash: Flash, query: web::Query<ShowQuery>) -> HttpResponse {
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
    let mut response = HttpResponse::Ok();
    if let Some(vary) = query.vary {
        response.insert_header((header::VARY, vary));
    }
    response.body(body)
}

async fn idle(_flash: Flash) -> &'static str {
    "idle"
}

struct Kit(Adapter);

impl AdapterApp for Kit {
    async fn build(adapter: Adapter) -> Self {
        Kit(adapter)
    }

    async fn send(&self, request: KitRequest) -> KitResponse {
        let app = test::init_service(
            App::new()
                .wrap(FlashMiddleware::from(self.0.clone()))
                .route("/", web::get().to(show))
                .route("/add", web::post().to(add))
                .route("/idle", web::get().to(idle)),
        )
        .await;
        let mut builder = match request.method {
            "POST" => test::TestRequest::post(),
            _ => test::TestRequest::get(),
        }
        .uri(&request.uri);
        for (name, value) in &request.headers {
            builder = builder.append_header((
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            ));
        }
        let response = test::call_service(&app, builder.to_request()).await;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = test::read_body(response).await;
        KitResponse {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }
}

flash_testkit::adapter_tests!(Kit);
