//! The demo on actix-web: routing and extraction only; everything else is the [`Site`]'s.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::{Condition, DefaultHeaders, Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, Responder, web};
use flash::actix::{Flash, FlashMiddleware};

use crate::{MAX_BODY, Page, Reply, Site};

impl Site {
    /// The demo as an actix-web [`App`] (make one per worker, in `HttpServer::new`): every
    /// route of the contract, `flash-actix`'s middleware made from [`Site::adapter`],
    /// actix-session outside it when the storage keeps messages in the session (state in
    /// memory, as on axum), a body limit of [`MAX_BODY`], and cross-site posts refused.
    pub fn actix(
        &self,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody + use<>>,
            Error = actix_web::Error,
            InitError = (),
        > + use<>,
    > {
        App::new()
            .app_data(web::Data::new(self.clone()))
            .app_data(web::PayloadConfig::new(MAX_BODY))
            // One resource per path, so another method is a 405 (as on axum), and `HEAD`
            // answers as `GET` does (as axum's `get` routes do).
            .service(
                web::resource("/")
                    .route(web::get().to(index))
                    .route(web::head().to(index)),
            )
            .service(
                web::resource("/htmx")
                    .route(web::get().to(htmx_page))
                    .route(web::head().to(htmx_page)),
            )
            .service(
                web::resource("/addressed")
                    .route(web::get().to(addressed_page))
                    .route(web::head().to(addressed_page)),
            )
            .service(
                web::resource(crate::HTMX_SCRIPT)
                    .route(web::get().to(htmx_script))
                    .route(web::head().to(htmx_script)),
            )
            .service(web::resource("/messages").route(web::post().to(add_form)))
            .service(
                web::resource("/metrics")
                    .route(web::get().to(metrics))
                    .route(web::head().to(metrics)),
            )
            .service(web::resource("/sign-in").route(web::post().to(sign_in)))
            .service(web::resource("/sign-out").route(web::post().to(sign_out)))
            .service(
                web::resource("/api/messages")
                    .route(web::get().to(list))
                    .route(web::head().to(list))
                    .route(web::post().to(add_json)),
            )
            .wrap(FlashMiddleware::from(self.adapter.clone()))
            // Registered after flash's, so outside it: the session is loaded before flash reads
            // it and saved after flash writes it.
            .wrap(Condition::new(
                self.sessions.is_some(),
                crate::actix_sessions::middleware(self.sessions.as_ref()),
            ))
            // A refused post never reaches flash.
            .wrap(from_fn(refuse_cross_site))
            // Registered last, so outermost: every response, refusals and 404s included.
            .wrap(DefaultHeaders::new().add(crate::NOSNIFF))
    }
}

impl Responder for Reply {
    type Body = String;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse<String> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::with_body(status, self.body);
        let headers = response.headers_mut();
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

async fn refuse_cross_site(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, String>>, actix_web::Error> {
    let refused = crate::refuse_cross_site(request.method().as_str(), request.path(), |name| {
        request.headers().get(name).map(HeaderValue::as_bytes)
    });
    match refused {
        Some(reply) => {
            let (request, _) = request.into_parts();
            let response = reply.respond_to(&request);
            Ok(ServiceResponse::new(request, response).map_into_right_body())
        }
        None => Ok(next.call(request).await?.map_into_left_body()),
    }
}

async fn metrics(site: web::Data<Site>) -> Reply {
    site.metrics()
}

async fn sign_in(site: web::Data<Site>, flash: Flash) -> Reply {
    site.sign_in(&flash).await
}

async fn sign_out(site: web::Data<Site>, flash: Flash) -> Reply {
    site.sign_out(&flash).await
}

async fn index(site: web::Data<Site>, flash: Flash) -> Reply {
    site.page(Page::Index, &flash).await
}

async fn htmx_page(site: web::Data<Site>, flash: Flash) -> Reply {
    site.page(Page::Htmx, &flash).await
}

async fn addressed_page(site: web::Data<Site>, flash: Flash) -> Reply {
    site.page(Page::Addressed, &flash).await
}

async fn htmx_script(site: web::Data<Site>) -> Reply {
    site.htmx_script().await
}

async fn add_form(
    site: web::Data<Site>,
    flash: Flash,
    request: HttpRequest,
    body: web::Bytes,
) -> Reply {
    site.add_form(&flash, content_type(request.headers()), &body)
}

async fn list(site: web::Data<Site>, flash: Flash) -> Reply {
    site.list(&flash).await
}

async fn add_json(
    site: web::Data<Site>,
    flash: Flash,
    request: HttpRequest,
    body: web::Bytes,
) -> Reply {
    site.add_json(&flash, content_type(request.headers()), &body)
}
