#![doc = include_str!("../README.md")]

use std::task::{Context, Poll};

use axum_core::extract::FromRequestParts;
use flash_core::adapter::{Around, MissingMiddleware, RequestParts};
use http::{Request, Response, request::Parts};
use tower::{Layer, Service};

flash_core::adapter_types! {
    /// A tower [`Layer`] giving every request its flash messages and ending each request by
    /// flash-core's contract ([`InFlight::around`](flash_core::adapter::InFlight::around)).
    ///
    /// A plain tower layer over `http` 1.x requests and responses: it serves any tower-based
    /// stack, not only axum. Handlers reach the messages with the [`Flash`] extractor (a
    /// middleware with axum's `parts.extract::<Flash>()`; a bare tower service with flash-core's
    /// `RequestParts::from(&parts).messages(…)`). Options (an error hook, htmx delivery) are
    /// the [`Adapter`]'s: `FlashLayer::from(Adapter::new(storage).with_config(config).on_error(hook))`.
    ///
    /// With a storage that keeps messages in the session, put this layer *inside* the session
    /// layer (add it to the router before the session layer), so the session is saved after the
    /// messages are.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flash_axum::{Adapter, FlashLayer};
    /// use flash_core::{MessagesConfig, Key, Level, storage::{ServerStorage, MemoryStore}};
    ///
    /// let storage = Arc::new(ServerStorage::new(MemoryStore::new(), Key::generate()));
    /// let config = MessagesConfig::default().with_level(Level::DEBUG);
    /// let adapter = Adapter::new(storage).with_config(config).on_error(|err| eprintln!("flash: {err}"));
    /// let app: axum::Router = axum::Router::new().layer(FlashLayer::from(adapter));
    /// # let _ = app;
    /// ```
    pub struct FlashLayer(Adapter);

    /// The service [`FlashLayer`] wraps around the application.
    pub struct FlashService<S> { service: S, adapter: Adapter }

    /// The flash messages of the current request, as an axum extractor: it dereferences to
    /// [`flash_core::Messages`] (clone it with `Messages::clone(&flash)` to keep it beyond the
    /// handler). Every extraction in one request returns the same handle. Without a
    /// [`FlashLayer`] around the route the extraction fails with a `500` that names the fix.
    ///
    /// ```
    /// use axum::{Router, response::Redirect, routing::get};
    /// use flash::axum::{Flash, FlashLayer};
    ///
    /// async fn save(flash: Flash) -> Redirect {
    ///     flash.success("Article saved.");
    ///     Redirect::to("/")
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
    /// let app: Router = Router::new()
    ///     .route("/", get(page).post(save))
    ///     .layer(FlashLayer::new(storage));
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub struct Flash(Messages);
}

impl<S> Layer<S> for FlashLayer {
    type Service = FlashService<S>;

    fn layer(&self, inner: S) -> FlashService<S> {
        self.wrap(inner)
    }
}

impl<In, Out, S: Service<Request<In>, Response = Response<Out>>> Service<Request<In>>
    for FlashService<S>
{
    type Response = Response<Out>;
    type Error = S::Error;
    type Future = Around<S::Future, Response<Out>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<In>) -> Self::Future {
        let in_flight = self.adapter.begin_with(RequestParts::from(&request));
        request.extensions_mut().insert(in_flight.slot());
        in_flight.around(self.service.call(request))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Flash {
    type Rejection = Response<String>;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Flash::extract(RequestParts::from(&*parts)).map_err(MissingMiddleware::into_response)
    }
}
