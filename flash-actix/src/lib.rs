#![doc = include_str!("../README.md")]

use std::task::{Context, Poll};
use std::{future::Future, future::Ready, pin::Pin};

use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{Error, FromRequest, HttpMessage as _, HttpRequest, error};
pub use flash_core::adapter::Adapter;
use flash_core::adapter::{Answer, RequestParts, Slot};

mod session;
#[cfg(feature = "actix-session")]
pub use session::{ActixSession, ActixSessionStorage};

flash_core::http_like_headers!(Headers, HeadersMut, actix_web::http::header);

flash_core::adapter_types! {
    /// The actix-web middleware giving every request its flash messages and ending each request
    /// by flash-core's contract: `App::new().wrap(FlashMiddleware::from(Adapter::new(storage).with_config(config)))`.
    /// Options (an error hook, htmx delivery) are the [`Adapter`]'s:
    /// `FlashMiddleware::from(adapter)`.
    ///
    /// Storages that keep messages in the session (`flash-session`'s `SessionStorage`, the `flash`
    /// facade's `session`) use actix-session's session with the feature `actix-session`:
    /// actix-session's `SessionMiddleware` must then wrap this one (see `ActixSession`, with the
    /// feature on).
    pub struct FlashMiddleware(Adapter);

    /// The flash messages of the current request, as an actix-web extractor: it dereferences to
    /// [`flash_core::Messages`]. Without a [`FlashMiddleware`] the extraction fails with a `500`
    /// that names the fix.
    pub struct Flash(Messages);
}

impl<S, B> Transform<S, ServiceRequest> for FlashMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = FlashService<S>;
    type InitError = ();
    type Future = Ready<Result<FlashService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(FlashService(service, self.0.clone())))
    }
}

/// The service [`FlashMiddleware`] wraps around the application.
#[derive(Debug)]
pub struct FlashService<S>(S, Adapter);

impl<S, B> Service<ServiceRequest> for FlashService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, Error>>>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let bridge = session::capture(&request, &self.1);
        let in_flight = {
            let (uri, headers) = (request.uri(), Headers(request.headers()));
            let http_request = request.request();
            let bridged = || session::extensions(http_request).unwrap_or_default();
            self.1.begin_with(
                RequestParts::new(request.method().as_str(), &headers, None)
                    .with_target(uri.path_and_query().map_or("/", |pq| pq.as_str()))
                    .with_extensions_from(&bridged),
            )
        };
        request.extensions_mut().insert(in_flight.slot());
        let response = self.0.call(request);
        Box::pin(async move {
            let mut result = response.await;
            let answer = result.as_mut().map(|r| {
                let failed = r.response().error().is_some();
                Answer::new(r.status().as_u16(), failed, HeadersMut(r.headers_mut()))
            });
            let _ = in_flight.finish(answer).await;
            session::write_back(bridge);
            result
        })
    }
}

impl FromRequest for Flash {
    type Error = Error;
    type Future = Ready<Result<Flash, Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (extensions, bridged) = (request.extensions(), session::extensions(request));
        let (uri, headers) = (request.uri(), Headers(request.headers()));
        let parts = RequestParts::new(request.method().as_str(), &headers, bridged.as_ref())
            .with_target(uri.path_and_query().map_or("/", |pq| pq.as_str()))
            .with_slot(extensions.get::<Slot>());
        let messages = parts.messages("flash_actix::FlashMiddleware");
        std::future::ready(messages.map(Flash).map_err(error::ErrorInternalServerError))
    }
}
