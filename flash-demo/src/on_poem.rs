//! The demo on poem: routing and extraction only; everything else is the [`Site`]'s.

use flash::poem::{Flash, FlashMiddleware};
use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderMap, HeaderValue, StatusCode, header};
use poem::middleware::SetHeader;
use poem::session::{CookieConfig, MemoryStorage, ServerSession};
use poem::web::Data;
use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler, post,
};

use crate::{MAX_BODY, Page, Reply, Site};

impl Site {
    /// The demo as a poem endpoint: every route of the contract, `flash-poem`'s middleware made
    /// from [`Site::adapter`], poem's in-memory server session outside it when the storage keeps
    /// messages in the session, a body limit of [`MAX_BODY`], and
    /// cross-site posts refused.
    pub fn poem(&self) -> BoxEndpoint<'static, Response> {
        let routes = Route::new()
            .at("/", get(index))
            .at("/htmx", get(htmx_page))
            .at("/addressed", get(addressed_page))
            .at(crate::HTMX_SCRIPT, get(htmx_script))
            .at("/messages", post(add_form))
            .at("/sign-in", post(sign_in))
            .at("/sign-out", post(sign_out))
            .at("/api/messages", get(list).post(add_json))
            .data(self.clone())
            .with(FlashMiddleware::from(self.adapter.clone()));
        // Outside flash's, so the session is loaded before flash reads it and saved after.
        let sessions =
            ServerSession::new(CookieConfig::default().secure(false), MemoryStorage::new());
        let (name, value) = crate::NOSNIFF;
        routes
            .with_if(self.adapter.uses_extensions(), sessions)
            // A refused post reaches neither the session nor flash.
            .around(refuse_cross_site)
            // Outermost: every response, refusals and 404s included.
            .with(SetHeader::new().overriding(name, value))
            .map_to_response()
            .boxed()
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::builder().status(status);
        if let Some(content_type) = self.content_type {
            response = response.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(location) = self.location {
            response = response.header(header::LOCATION, location);
        }
        response.body(self.body)
    }
}

fn content_type(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes)
}

async fn refuse_cross_site<E: Endpoint>(endpoint: E, request: Request) -> poem::Result<Response> {
    let refused =
        crate::refuse_cross_site(request.method().as_str(), request.uri().path(), |name| {
            request.headers().get(name).map(HeaderValue::as_bytes)
        });
    match refused {
        Some(reply) => Ok(reply.into_response()),
        None => Ok(endpoint.call(request).await?.into_response()),
    }
}

#[handler]
async fn sign_in(site: Data<&Site>, flash: Flash) -> Reply {
    site.sign_in(&flash).await
}

#[handler]
async fn sign_out(site: Data<&Site>, flash: Flash) -> Reply {
    site.sign_out(&flash).await
}

#[handler]
async fn index(site: Data<&Site>, flash: Flash) -> Reply {
    site.page(Page::Index, &flash).await
}

#[handler]
async fn htmx_page(site: Data<&Site>, flash: Flash) -> Reply {
    site.page(Page::Htmx, &flash).await
}

#[handler]
async fn addressed_page(site: Data<&Site>, flash: Flash) -> Reply {
    site.page(Page::Addressed, &flash).await
}

#[handler]
async fn htmx_script(site: Data<&Site>) -> Reply {
    site.htmx_script().await
}

#[handler]
async fn add_form(
    site: Data<&Site>,
    flash: Flash,
    headers: &HeaderMap,
    body: Body,
) -> poem::Result<Reply> {
    // Read up to the limit: a larger body is a `413`, whatever its `Content-Length` says.
    let body = body.into_bytes_limit(MAX_BODY).await?;
    Ok(site.add_form(&flash, content_type(headers), &body))
}

#[handler]
async fn list(site: Data<&Site>, flash: Flash) -> Reply {
    site.list(&flash).await
}

#[handler]
async fn add_json(
    site: Data<&Site>,
    flash: Flash,
    headers: &HeaderMap,
    body: Body,
) -> poem::Result<Reply> {
    let body = body.into_bytes_limit(MAX_BODY).await?;
    Ok(site.add_json(&flash, content_type(headers), &body))
}
