#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use flash_core::adapter::{Adapter, RequestParts, Slot};
use flash_core::storage::Storage;
use flash_core::{Messages, MessagesConfig};
use poem::http::StatusCode;
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};

#[cfg(feature = "session")]
mod session;
#[cfg(feature = "session")]
pub use session::{PoemSession, PoemSessionStorage};

/// The poem middleware giving every request its flash messages and ending the request by
/// flash-core's contract: `route.with(FlashMiddleware::new(storage, config))`.
///
/// A handler's error is turned into its response here, so the request is ended on it: what the
/// handler added is saved, what it read is not consumed, the response gets `Vary: Cookie`; the
/// middleware then answers `Ok` with that response.
#[derive(Clone, Debug)]
pub struct FlashMiddleware(Adapter);

impl FlashMiddleware {
    /// A middleware over `storage` with the application's `config`.
    pub fn new(storage: Arc<dyn Storage>, config: impl Into<Arc<MessagesConfig>>) -> Self {
        FlashMiddleware(Adapter::new(storage, config))
    }
}

impl From<Adapter> for FlashMiddleware {
    /// A middleware over an [`Adapter`] already set up (error hook, htmx delivery).
    fn from(adapter: Adapter) -> Self {
        FlashMiddleware(adapter)
    }
}

impl<E: Endpoint> Middleware<E> for FlashMiddleware {
    type Output = FlashEndpoint<E>;

    fn transform(&self, inner: E) -> FlashEndpoint<E> {
        FlashEndpoint(inner, self.0.clone())
    }
}

/// The endpoint [`FlashMiddleware`] wraps around the application.
pub struct FlashEndpoint<E>(E, Adapter);

impl<E: Endpoint> Endpoint for FlashEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let in_flight = self.1.begin();
        request.extensions_mut().insert(in_flight.slot());
        #[cfg(feature = "session")]
        session::bridge(&self.1, &mut request);
        let (mut response, handler_error) = match self.0.call(request).await {
            Ok(output) => (output.into_response(), false),
            Err(error) => (error.into_response(), true),
        };
        let status = response.status().as_u16();
        in_flight
            .finish_headers(status, handler_error, response.headers_mut())
            .await;
        Ok(response)
    }
}

/// The flash messages of the current request, as a poem extractor: dereferences to
/// [`flash_core::Messages`]. Without a [`FlashMiddleware`] the extraction fails with a `500`
/// that names the fix.
#[derive(Clone)]
pub struct Flash(Messages);

impl Deref for Flash {
    type Target = Messages;

    fn deref(&self) -> &Messages {
        &self.0
    }
}

impl fmt::Debug for Flash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Why [`Flash`] failed: no [`FlashMiddleware`] around the route.
const MISSING: &str = "the Flash extractor needs flash_poem::FlashMiddleware: add \
     `.with(FlashMiddleware::new(storage, config))` to the route";

impl<'a> FromRequest<'a> for Flash {
    async fn from_request(request: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        let extensions = request.extensions();
        let uri = request.uri();
        let target = uri
            .path_and_query()
            .map_or_else(|| uri.path(), |pq| pq.as_str());
        let parts = RequestParts::new(
            request.method().as_str(),
            request.headers(),
            Some(extensions),
        )
        .with_target(target);
        match extensions
            .get::<Slot>()
            .and_then(|slot| slot.messages(parts))
        {
            Some(messages) => Ok(Flash(messages)),
            None => {
                tracing::error!("{MISSING}");
                Err(poem::Error::from_string(
                    MISSING,
                    StatusCode::INTERNAL_SERVER_ERROR,
                ))
            }
        }
    }
}
