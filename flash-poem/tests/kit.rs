//! The adapter kit of flash-testkit, run through poem and the middleware.
#![allow(clippy::unwrap_used)]

use flash_core::adapter::Adapter;
use flash_core::{Level, Message};
use flash_poem::{Flash, FlashMiddleware};
use flash_testkit::adapter_kit::{AdapterApp, KitRequest, KitResponse};
use poem::http::{Method, StatusCode, header};
use poem::web::Query;
use poem::{Endpoint, EndpointExt, Request, Response, Route, get, handler, post};

#[derive(serde::Deserialize)]
struct AddQuery {
    text: String,
    level: Option<i32>,
    fail: Option<u16>,
    to: Option<String>,
}

fn handler_error(status: u16) -> poem::Error {
    poem::Error::from_status(StatusCode::from_u16(status).unwrap())
}

#[handler]
fn add(flash: Flash, Query(query): Query<AddQuery>) -> poem::Result<Response> {
    flash.add_message(Level::new(query.level.unwrap_or(25)), query.text);
    if let Some(status) = query.fail {
        return Err(handler_error(status));
    }
    Ok(Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(
            header::LOCATION,
            format!("/{}", query.to.unwrap_or_default()),
        )
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

#[handler]
async fn show(flash: Flash, Query(query): Query<ShowQuery>) -> poem::Result<Response> {
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
    let status = StatusCode::from_u16(query.status.unwrap_or(200)).unwrap();
    let mut response = Response::builder().status(status);
    if let Some(vary) = query.vary {
        response = response.header(header::VARY, vary);
    }
    Ok(response.body(body))
}

#[handler]
fn idle(_flash: Flash) -> &'static str {
    "idle"
}

#[handler]
fn moved() -> Response {
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(header::LOCATION, "/")
        .finish()
}

struct Kit(poem::endpoint::BoxEndpoint<'static, Response>);

impl AdapterApp for Kit {
    async fn build(adapter: Adapter) -> Self {
        let app = Route::new()
            .at("/", get(show).head(show).options(show))
            .at("/add", post(add))
            .at("/page", get(show))
            .at("/idle", get(idle))
            .at("/moved", get(moved))
            .with(FlashMiddleware::from(adapter));
        Kit(app.map_to_response().boxed())
    }

    async fn send(&self, request: KitRequest) -> KitResponse {
        let mut builder = Request::builder()
            .method(Method::from_bytes(request.method.as_bytes()).unwrap())
            .uri_str(&request.uri);
        for (name, value) in &request.headers {
            builder = builder.header(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let mut poem_request = builder.finish();
        if let Some(session) = request.session {
            poem_request.extensions_mut().insert(session);
        }
        let response = self.0.get_response(poem_request).await;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = response.into_body().into_string().await.unwrap();
        KitResponse {
            status,
            headers,
            body,
        }
    }
}

flash_testkit::adapter_tests!(Kit);
