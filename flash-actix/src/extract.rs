//! The extractor handlers use to reach their messages.

use std::fmt;
use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use std::rc::Rc;

use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};
use flash_core::Messages;
use flash_core::adapter::{RequestParts, Slot};

use crate::Bridge;
use crate::middleware::Headers;

/// The flash messages of the current request, as an actix-web extractor.
///
/// Reach the handle through `Deref` (the one way): it dereferences to
/// [`flash_core::Messages`]; clone it with `Messages::clone(&flash)` to keep it beyond the
/// handler. Add with `flash.success("…")` (synchronous, never
/// reads storage), read with `flash.read().await` (consumes), look with `flash.peek().await`
/// (does not). Every extraction in one request returns the same handle.
///
/// Needs a [`FlashMiddleware`](crate::FlashMiddleware) around the route; without one the
/// extraction fails with [`MissingFlashMiddleware`] (a `500` that names the fix).
#[derive(Clone)]
pub struct Flash(Messages);

impl Flash {
    /// The handle of `request`, made on first use; `None` when no
    /// [`FlashMiddleware`](crate::FlashMiddleware) is installed. For other middleware.
    pub fn from_http_request(request: &HttpRequest) -> Option<Flash> {
        let extensions = request.extensions();
        let slot = extensions.get::<Slot>()?;
        // The session bridge's handle, when the storage keeps messages in the session.
        let bridged = extensions
            .get::<Rc<Bridge>>()
            .map(|bridge| bridge.extensions());
        let headers = Headers(request.headers());
        let uri = request.uri();
        let target = uri
            .path_and_query()
            .map_or_else(|| uri.path(), |pq| pq.as_str());
        let parts = RequestParts::new(request.method().as_str(), &headers, bridged.as_ref())
            .with_target(target);
        slot.messages(parts).map(Flash)
    }
}

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

impl FromRequest for Flash {
    type Error = MissingFlashMiddleware;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Flash::from_http_request(request).ok_or(MissingFlashMiddleware))
    }
}

/// The rejection of [`Flash`] when no [`FlashMiddleware`](crate::FlashMiddleware) wraps the
/// route: a configuration mistake, answered with `500 Internal Server Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingFlashMiddleware;

impl fmt::Display for MissingFlashMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the Flash extractor needs flash_actix::FlashMiddleware: add `.wrap(FlashMiddleware::new(storage, config))` to the App",
        )
    }
}

impl std::error::Error for MissingFlashMiddleware {}

impl ResponseError for MissingFlashMiddleware {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!("{self}");
        HttpResponse::InternalServerError().body(self.to_string())
    }
}
