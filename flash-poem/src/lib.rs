#![doc = include_str!("../README.md")]

use flash_core::adapter::RequestParts;
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};

#[cfg(feature = "session")]
mod session;
#[cfg(feature = "session")]
pub use session::{PoemSession, PoemSessionStorage};

flash_core::adapter_types! {
    /// The poem middleware giving every request its flash messages and ending the request by
    /// flash-core's contract: `route.with(FlashMiddleware::from(Adapter::new(storage).with_config(config)))`. Options (an
    /// error hook, htmx delivery) are the [`Adapter`]'s: `FlashMiddleware::from(adapter)`.
    ///
    /// A handler's error is turned into its response here, so the request is ended on it: what the
    /// handler added is saved, what it read is not consumed, the response gets `Vary: Cookie`; the
    /// middleware then answers `Ok` with that response.
    ///
    /// ```
    /// use flash::poem::{Adapter, FlashMiddleware};
    /// use flash::{Level, MessagesConfig};
    /// use poem::{EndpointExt, Route, get, handler};
    ///
    /// #[handler]
    /// fn hello() -> &'static str {
    ///     "Hello"
    /// }
    ///
    /// # async fn start() -> flash::Result<()> {
    /// let storage = flash::open_from_env().await?;
    /// // Debug messages shown too: the handle's options are the adapter's.
    /// let config = MessagesConfig::default().with_level(Level::DEBUG);
    /// let flash = FlashMiddleware::from(Adapter::new(storage).with_config(config));
    /// let app = Route::new().at("/", get(hello)).with(flash);
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub struct FlashMiddleware(Adapter);

    /// The endpoint [`FlashMiddleware`] wraps around the application.
    pub struct FlashEndpoint<E> { endpoint: E, adapter: Adapter }

    /// The flash messages of the current request, as a poem extractor: dereferences to
    /// [`flash_core::Messages`]. Without a [`FlashMiddleware`] the extraction fails with a `500`
    /// that names the fix.
    ///
    /// ```
    /// use flash::poem::{Flash, FlashMiddleware};
    /// use poem::{EndpointExt, Route, get, handler, web::Redirect};
    ///
    /// #[handler]
    /// fn save(flash: Flash) -> Redirect {
    ///     flash.success("Article saved.");
    ///     Redirect::see_other("/")
    /// }
    ///
    /// #[handler]
    /// async fn page(flash: Flash) -> String {
    ///     // Shown once, then gone. A storage that is down shows nothing and loses nothing.
    ///     let messages = flash.read().await.unwrap_or_default();
    ///     messages.iter().map(|message| format!("{message}\n")).collect()
    /// }
    ///
    /// # async fn start() -> flash::Result<()> {
    /// let storage = flash::open_from_env().await?;
    /// let app = Route::new()
    ///     .at("/", get(page).post(save))
    ///     .with(FlashMiddleware::new(storage));
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub struct Flash(Messages);
}

impl<E: Endpoint> Middleware<E> for FlashMiddleware {
    type Output = FlashEndpoint<E>;

    fn transform(&self, inner: E) -> FlashEndpoint<E> {
        self.wrap(inner)
    }
}

impl<E: Endpoint> Endpoint for FlashEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        #[cfg(feature = "session")]
        session::bridge(&self.adapter, &mut request);
        let in_flight = self.adapter.begin_with(RequestParts::http(
            request.method(),
            request.uri(),
            request.headers(),
            request.extensions(),
        ));
        request.extensions_mut().insert(in_flight.slot());
        let result = self.endpoint.call(request).await;
        let failed = result.is_err();
        let mut response = result.map_or_else(poem::Error::into_response, |r| r.into_response());
        let (status, headers) = (response.status().as_u16(), response.headers_mut());
        in_flight.finish_headers(status, failed, headers).await;
        Ok(response)
    }
}

impl<'a> FromRequest<'a> for Flash {
    async fn from_request(request: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        let (method, uri, headers) = (request.method(), request.uri(), request.headers());
        let parts = RequestParts::http(method, uri, headers, request.extensions());
        Flash::extract(parts).map_err(poem::error::InternalServerError)
    }
}
