#![doc = include_str!("../README.md")]

// actix-web's module for middleware authors: its `Service`, `Transform`, `ServiceRequest`,
// `ServiceResponse`, `Payload` and `forward_ready!`.
use actix_web::{Error, FromRequest, HttpMessage as _, HttpRequest, dev::*, error};
use flash_core::adapter::{Answer, Around, ForeignResponse, HandlerResponse, RequestParts, Slot};

mod session;
pub use session::*;

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
    ///
    /// ```
    /// use actix_web::{App, web};
    /// use flash::actix::{Adapter, FlashMiddleware};
    /// use flash::{Level, MessagesConfig};
    ///
    /// # async fn start() -> flash::Result<()> {
    /// let storage = flash::open_from_env().await?;
    /// // Debug messages shown too: the handle's options are the adapter's.
    /// let config = MessagesConfig::default().with_level(Level::DEBUG);
    /// let flash = FlashMiddleware::from(Adapter::new(storage).with_config(config));
    /// let app = App::new()
    ///     .wrap(flash)
    ///     .route("/", web::get().to(|| async { "Hello" }));
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub struct FlashMiddleware(Adapter);

    /// The service [`FlashMiddleware`] wraps around the application.
    pub struct FlashService<S> { service: S, adapter: Adapter }

    /// The flash messages of the current request, as an actix-web extractor: it dereferences to
    /// [`flash_core::Messages`]. Without a [`FlashMiddleware`] the extraction fails with a `500`
    /// that names the fix.
    ///
    /// ```
    /// use actix_web::{App, HttpResponse, http::header, web};
    /// use flash::actix::{Flash, FlashMiddleware};
    ///
    /// async fn save(flash: Flash) -> HttpResponse {
    ///     flash.success("Article saved.");
    ///     HttpResponse::SeeOther()
    ///         .insert_header((header::LOCATION, "/"))
    ///         .finish()
    /// }
    ///
    /// async fn page(flash: Flash) -> String {
    ///     // Shown once, then gone. A storage that is down shows nothing and loses nothing.
    ///     let messages = flash.read().await.unwrap_or_default();
    ///     messages.iter().map(|message| format!("{message}\n")).collect()
    /// }
    ///
    /// # async fn start() -> flash::Result<()> {
    /// let storage = flash::open_from_env().await?;
    /// let app = App::new()
    ///     .wrap(FlashMiddleware::new(storage))
    ///     .route("/", web::get().to(page))
    ///     .route("/", web::post().to(save));
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub struct Flash(Messages);
}

impl<S, B> Transform<S, ServiceRequest> for FlashMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = Bridged<FlashService<S>>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(session::bridge(self.wrap(service))))
    }
}

impl<S, B> Service<ServiceRequest> for FlashService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Around<S::Future, ServiceResponse<B>, Error, Reply>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let in_flight = parts(request.request(), |parts| self.adapter.begin_with(parts));
        request.extensions_mut().insert(in_flight.slot());
        in_flight.around_with(self.service.call(request), Reply)
    }
}

impl FromRequest for Flash {
    type Error = Error;
    type Future = std::future::Ready<Result<Flash, Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parts(request, Flash::extract).map_err(error::ErrorInternalServerError))
    }
}

/// What flash reads of an actix-web request, the same in the middleware and in the extractor:
/// `then` gets it.
fn parts<T>(request: &HttpRequest, then: impl FnOnce(RequestParts<'_>) -> T) -> T {
    then(
        RequestParts::new(request.method().as_str(), &Headers(request.headers()), None)
            .with_target(request.uri().path_and_query().map_or("/", |pq| pq.as_str()))
            .with_extensions_from(&|| session::extensions(request))
            .with_slot(request.extensions().get::<Slot>()),
    )
}

/// How flash-core reads and writes actix-web's `ServiceResponse` ([`ForeignResponse`]), so
/// that [`FlashService`]'s future is flash-core's own, unboxed.
#[derive(Debug)]
pub struct Reply;

impl<B> ForeignResponse<ServiceResponse<B>> for Reply {
    fn answer(response: &mut ServiceResponse<B>) -> impl HandlerResponse + '_ {
        // The handler's error, turned into this response by actix-web.
        let (status, failed) = (response.status().as_u16(), response.response().error());
        Answer::new(status, failed.is_some(), HeadersMut(response.headers_mut()))
    }
}
