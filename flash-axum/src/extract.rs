//! The extractor handlers use to reach their messages.

use std::fmt;
use std::ops::Deref;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use flash_core::Messages;
use flash_core::adapter::{RequestParts, Slot};
use http::StatusCode;
use http::request::Parts;

/// The flash messages of the current request, as an axum extractor.
///
/// Reach the handle through `Deref` (the one way): it dereferences to
/// [`flash_core::Messages`]; clone it with `Messages::clone(&flash)` to keep it beyond the
/// handler. Add with `flash.success("…")` (synchronous, never
/// reads storage), read with `flash.read().await` (consumes), look with `flash.peek().await`
/// (does not). Every extraction in one request returns the same handle.
///
/// Needs a [`FlashLayer`](crate::FlashLayer) around the route; without one the extraction
/// fails with [`MissingFlashLayer`] (a `500` that names the fix).
#[derive(Clone)]
pub struct Flash(Messages);

impl Flash {
    /// The handle of the request whose parts these are, made on first use; `None` when no
    /// [`FlashLayer`](crate::FlashLayer) is installed. For middleware that holds [`Parts`].
    pub fn from_parts(parts: &Parts) -> Option<Flash> {
        let slot = parts.extensions.get::<Slot>()?;
        slot.messages(RequestParts::from(parts)).map(Flash)
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

impl<S: Send + Sync> FromRequestParts<S> for Flash {
    type Rejection = MissingFlashLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Flash::from_parts(parts).ok_or(MissingFlashLayer)
    }
}

/// The rejection of [`Flash`] when no [`FlashLayer`](crate::FlashLayer) wraps the route:
/// a configuration mistake, answered with `500 Internal Server Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingFlashLayer;

impl fmt::Display for MissingFlashLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the Flash extractor needs flash_axum::FlashLayer: add `.layer(FlashLayer::new(storage, config))` to the router",
        )
    }
}

impl std::error::Error for MissingFlashLayer {}

impl IntoResponse for MissingFlashLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
