//! The tower layer: one request handle per request, saved on the response.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use flash_core::{Config, Error, Messages, Storage};
use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;

/// What every request of one layer shares.
pub(crate) struct Shared {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: Arc<Config>,
    pub(crate) uses_extensions: bool,
    on_error: Option<ErrorHook>,
}

/// The request extension the layer inserts: the request handle is made on first extraction,
/// so a request whose handler never asks for its messages costs one small allocation.
#[derive(Clone)]
pub(crate) struct Slot(pub(crate) Arc<SlotInner>);

pub(crate) struct SlotInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) messages: OnceLock<Messages>,
}

/// A tower [`Layer`] giving every request its flash messages and saving them on the response.
///
/// Handlers reach the messages with the [`Flash`](crate::Flash) extractor. On the response the
/// layer saves what the request added or did not consume, adds `Vary: Cookie` when messages were
/// read or written, and `Cache-Control: private, no-store` when it set a flash cookie. A request
/// whose handler never touches its messages makes no storage call and gets no extra header.
///
/// A failed save is logged through `tracing` (target `flash_axum`, level `ERROR`) and handed to
/// the hook set with [`FlashLayer::on_error`]; the response is served all the same.
///
/// With a storage that keeps messages in the session, put this layer *inside* the session
/// layer (add it to the router before the session layer), so the session is saved after the
/// messages are.
///
/// ```
/// use std::sync::Arc;
/// use flash_axum::FlashLayer;
/// use flash_core::{Config, Key, KeyedStorage, Keys, Level, MemoryStore};
///
/// let storage = KeyedStorage::new(MemoryStore::new(), Keys::new(Key::generate()));
/// let layer = FlashLayer::new(Arc::new(storage), Config::default().threshold(Level::DEBUG))
///     .on_error(|err| eprintln!("flash messages lost: {err}"));
/// let app: axum::Router = axum::Router::new().layer(layer);
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct FlashLayer {
    shared: Arc<Shared>,
}

impl FlashLayer {
    /// A layer over `storage` with the application's `config` (threshold and tags).
    pub fn new(storage: Arc<dyn Storage>, config: Config) -> Self {
        FlashLayer {
            shared: Arc::new(Shared {
                uses_extensions: storage.uses_extensions(),
                storage,
                config: Arc::new(config),
                on_error: None,
            }),
        }
    }

    /// Calls `hook` with every error of saving messages at the response (after logging it), to
    /// count or alert. The response is served regardless.
    #[must_use]
    pub fn on_error(self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        let shared = &self.shared;
        FlashLayer {
            shared: Arc::new(Shared {
                storage: shared.storage.clone(),
                config: shared.config.clone(),
                uses_extensions: shared.uses_extensions,
                on_error: Some(Arc::new(hook)),
            }),
        }
    }

    /// The application's settings.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

impl fmt::Debug for FlashLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashLayer")
            .field("config", &self.shared.config)
            .field("uses_extensions", &self.shared.uses_extensions)
            .field("on_error", &self.shared.on_error.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for FlashLayer {
    type Service = FlashService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FlashService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`FlashLayer`] wraps around the application.
#[derive(Clone)]
pub struct FlashService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for FlashService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FlashService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let slot = Arc::new(SlotInner {
            shared: self.shared.clone(),
            messages: OnceLock::new(),
        });
        request.extensions_mut().insert(Slot(slot.clone()));
        ResponseFuture {
            state: State::Handler {
                future: self.inner.call(request),
                slot: Some(slot),
            },
        }
    }
}

type SaveFuture<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

pin_project_lite::pin_project! {
    /// The response future of [`FlashService`]: the handler's, then the save.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Handler {
            #[pin]
            future: F,
            slot: Option<Arc<SlotInner>>,
        },
        Saving {
            future: SaveFuture<B>,
        },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Handler { future, slot } => {
                    let response = ready!(future.poll(cx))?;
                    let Some(slot) = slot.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    // The handler never asked for its messages, or neither read nor added:
                    // nothing to save, no header, no boxed future.
                    let Some(messages) = slot.messages.get().filter(|m| m.needs_save()).cloned()
                    else {
                        return Poll::Ready(Ok(response));
                    };
                    let shared = slot.shared.clone();
                    drop(slot);
                    let mut response = response;
                    let headers = response.headers_mut();
                    let cookies_before = headers.get_all(SET_COOKIE).iter().count();
                    // A storage that never waits (cookies) is saved here, with no boxed future.
                    if let Some(result) = messages.save_now(headers) {
                        finish(&shared, result, headers, cookies_before);
                        return Poll::Ready(Ok(response));
                    }
                    this.state.set(State::Saving {
                        future: Box::pin(save(messages, shared, response)),
                    });
                }
                StateProj::Saving { future } => {
                    return Poll::Ready(Ok(ready!(future.as_mut().poll(cx))));
                }
            }
        }
    }
}

async fn save<B>(
    messages: Messages,
    shared: Arc<Shared>,
    mut response: Response<B>,
) -> Response<B> {
    let headers = response.headers_mut();
    let cookies_before = headers.get_all(SET_COOKIE).iter().count();
    let result = messages.save(headers).await;
    finish(&shared, result, headers, cookies_before);
    response
}

/// Shapes the response after a save: logs and reports a failure, adds `Vary: Cookie` and,
/// when the save set a cookie, `Cache-Control: private, no-store`.
fn finish(
    shared: &Shared,
    result: flash_core::Result<flash_core::SaveReport>,
    headers: &mut HeaderMap,
    cookies_before: usize,
) {
    let vary = match result {
        Ok(report) => {
            if !report.dropped.is_empty() {
                tracing::warn!(
                    dropped = report.dropped.len(),
                    "flash messages dropped: they do not fit the storage"
                );
            }
            report.vary
        }
        Err(err) => {
            tracing::error!(error = %err, source = ?std::error::Error::source(&err),
                "flash messages could not be saved; the response is served without them");
            if let Some(hook) = &shared.on_error {
                hook(&err);
            }
            // What the handler showed may still depend on the cookie.
            true
        }
    };
    if vary {
        vary_on_cookie(headers);
    }
    if headers.get_all(SET_COOKIE).iter().count() > cookies_before {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    }
}

/// Adds `Cookie` to the response's `Vary`, keeping what is there and never twice.
fn vary_on_cookie(headers: &mut HeaderMap) {
    if !headers.contains_key(VARY) {
        headers.insert(VARY, HeaderValue::from_static("Cookie"));
        return;
    }
    let mut existing = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(value) = value.to_str() else {
            // Not text: leave it and add ours on a line of its own.
            headers.append(VARY, HeaderValue::from_static("Cookie"));
            return;
        };
        if value
            .split(',')
            .map(str::trim)
            .any(|v| v == "*" || v.eq_ignore_ascii_case("cookie"))
        {
            return;
        }
        existing.push(value.to_owned());
    }
    if existing.is_empty() {
        headers.insert(VARY, HeaderValue::from_static("Cookie"));
        return;
    }
    existing.push("Cookie".to_owned());
    match HeaderValue::try_from(existing.join(", ")) {
        Ok(value) => {
            headers.insert(VARY, value);
        }
        Err(_) => {
            headers.append(VARY, HeaderValue::from_static("Cookie"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary_after(values: &[&'static str]) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(VARY, HeaderValue::from_static(v));
        }
        vary_on_cookie(&mut headers);
        headers
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect()
    }

    #[test]
    fn vary_is_merged_never_duplicated() {
        assert_eq!(vary_after(&[]), ["Cookie"]);
        assert_eq!(
            vary_after(&["Accept-Encoding"]),
            ["Accept-Encoding, Cookie"]
        );
        assert_eq!(
            vary_after(&["Accept-Encoding", "Origin"]),
            ["Accept-Encoding, Origin, Cookie"]
        );
        assert_eq!(vary_after(&["accept, cookie"]), ["accept, cookie"]);
        assert_eq!(vary_after(&["Origin", "COOKIE"]), ["Origin", "COOKIE"]);
        assert_eq!(vary_after(&["*"]), ["*"]);
    }
}
