//! The demo on axum: routing and extraction only; everything else is the [`Site`]'s.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flash::axum::{Flash, FlashLayer};
use flash::storage::Storage;
use tower_sessions::{MemoryStore as SessionStore, SessionManagerLayer};

use crate::{MAX_BODY, Page, Reply, Serving, Site};

/// The demo app over `storage`, saying it is served by [`FRAMEWORK`](crate::FRAMEWORK) from a
/// storage built in code; see [`app_serving`].
pub fn app(storage: Arc<dyn Storage>) -> Router {
    app_serving(storage, Serving::default())
}

/// The demo app over `storage` on axum: every route of the contract, the flash layer, an
/// in-memory tower-sessions layer (used when the storage keeps messages in the session; it
/// sets no cookie otherwise), a body limit of [`MAX_BODY`], and cross-site posts refused.
pub fn app_serving(storage: Arc<dyn Storage>, serving: Serving) -> Router {
    Site::new(storage, serving).axum()
}

impl Site {
    /// The demo as an axum [`Router`]: every route of the contract, `flash-axum`'s layer made
    /// from [`Site::adapter`], an in-memory tower-sessions layer (used when the storage keeps
    /// messages in the session; it sets no cookie otherwise), a body limit of [`MAX_BODY`], and
    /// cross-site posts refused.
    pub fn axum(&self) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/htmx", get(htmx_page))
            .route("/addressed", get(addressed_page))
            .route(crate::HTMX_SCRIPT, get(htmx_script))
            .route("/messages", post(add_form))
            .route("/metrics", get(metrics))
            .route("/sign-in", post(sign_in))
            .route("/sign-out", post(sign_out))
            .route("/api/messages", get(list).post(add_json))
            .with_state(self.clone())
            .layer(FlashLayer::from(self.adapter.clone()))
            .layer(SessionManagerLayer::new(SessionStore::default()).with_secure(false))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            // A refused post reaches neither the session nor flash.
            .layer(middleware::from_fn(refuse_cross_site))
            // Outermost: every response, refusals and 404s included.
            .layer(middleware::map_response(nosniff))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        headers.remove(header::CONTENT_TYPE);
        if let Some(content_type) = self.content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(location) = self.location {
            headers.insert(header::LOCATION, HeaderValue::from_static(location));
        }
        response
    }
}

fn content_type(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes)
}

async fn refuse_cross_site(request: Request, next: Next) -> Response {
    let refused =
        crate::refuse_cross_site(request.method().as_str(), request.uri().path(), |name| {
            request.headers().get(name).map(HeaderValue::as_bytes)
        });
    match refused {
        Some(reply) => reply.into_response(),
        None => next.run(request).await,
    }
}

async fn nosniff(mut response: Response) -> Response {
    let (name, value) = crate::NOSNIFF;
    response.headers_mut().insert(
        header::HeaderName::from_static(name),
        HeaderValue::from_static(value),
    );
    response
}

async fn metrics(State(site): State<Site>) -> Reply {
    site.metrics()
}

async fn sign_in(State(site): State<Site>, flash: Flash) -> Reply {
    site.sign_in(&flash).await
}

async fn sign_out(State(site): State<Site>, flash: Flash) -> Reply {
    site.sign_out(&flash).await
}

async fn index(State(site): State<Site>, flash: Flash) -> Reply {
    site.page(Page::Index, &flash).await
}

async fn htmx_page(State(site): State<Site>, flash: Flash) -> Reply {
    site.page(Page::Htmx, &flash).await
}

async fn addressed_page(State(site): State<Site>, flash: Flash) -> Reply {
    site.page(Page::Addressed, &flash).await
}

async fn htmx_script(State(site): State<Site>) -> Reply {
    site.htmx_script().await
}

async fn add_form(
    State(site): State<Site>,
    flash: Flash,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    site.add_form(&flash, content_type(&headers), &body)
}

async fn list(State(site): State<Site>, flash: Flash) -> Reply {
    site.list(&flash).await
}

async fn add_json(
    State(site): State<Site>,
    flash: Flash,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    site.add_json(&flash, content_type(&headers), &body)
}
