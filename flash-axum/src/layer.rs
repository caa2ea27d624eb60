//! The tower layer: one request handle per request, saved on the response.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use flash_core::adapter::{Adapter, Finishing, InFlight};
use flash_core::storage::Storage;
use flash_core::{Error, Htmx, MessagesConfig};
use http::{Request, Response};
use tower::{Layer, Service};

/// A tower [`Layer`] giving every request its flash messages and saving them on the response.
///
/// A plain tower layer over `http` requests and responses: it serves any tower-based stack,
/// not only axum. Handlers reach the messages with the [`Flash`](crate::Flash) extractor (or
/// [`Flash::from_parts`](crate::Flash::from_parts) in other tower services). The response is
/// ended by [`flash_core::adapter::InFlight::finish`]: what the request added or did not consume is
/// saved, `Vary: Cookie` is merged into the handler's `Vary` when messages were read or
/// written, and `Cache-Control: private, no-store` is set with a flash cookie. A request whose
/// handler never touches its messages makes no storage call and gets no extra header.
///
/// A failed save is logged through `tracing` (target `flash_core::adapter`, level `ERROR`)
/// and handed to the hook set with [`FlashLayer::on_error`]; the response is served all the
/// same.
///
/// With a storage that keeps messages in the session, put this layer *inside* the session
/// layer (add it to the router before the session layer), so the session is saved after the
/// messages are.
///
/// ```
/// use std::sync::Arc;
/// use flash_axum::FlashLayer;
/// use flash_core::{MessagesConfig, Key, Keys, Level, storage::{ServerStorage, MemoryStore}};
///
/// let storage = ServerStorage::new(MemoryStore::new(), Keys::new(Key::generate()));
/// let layer = FlashLayer::new(Arc::new(storage), MessagesConfig::default().with_level(Level::DEBUG))
///     .on_error(|err| eprintln!("flash messages lost: {err}"));
/// let app: axum::Router = axum::Router::new().layer(layer);
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct FlashLayer {
    adapter: Adapter,
}

impl FlashLayer {
    /// A layer over `storage` with the application's `config` (minimum level and tags).
    pub fn new(storage: Arc<dyn Storage>, config: impl Into<Arc<MessagesConfig>>) -> Self {
        FlashLayer {
            adapter: Adapter::new(storage, config),
        }
    }

    /// Calls `hook` with every error of saving messages at the response (after logging it), to
    /// count or alert. The response is served regardless.
    #[must_use]
    pub fn on_error(self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        FlashLayer {
            adapter: self.adapter.on_error(hook),
        }
    }

    /// Delivers messages to htmx requests in `HX-Trigger` (opt-in): a partial htmx request
    /// whose handler did not read gets the messages it added as one event, merged with the
    /// handler's own `HX-Trigger`; see [`flash_core::Htmx`] for the whole rule.
    #[must_use]
    pub fn htmx(self, htmx: Htmx) -> Self {
        FlashLayer {
            adapter: self.adapter.htmx(htmx),
        }
    }

    /// The application's settings.
    pub fn config(&self) -> &MessagesConfig {
        self.adapter.config()
    }

    /// The framework-neutral half of the layer: storage, settings, hooks.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }
}

impl From<Adapter> for FlashLayer {
    /// A layer over an [`Adapter`] already set up (storage, settings, error hook), as another
    /// framework's adapter of the same application uses it.
    fn from(adapter: Adapter) -> Self {
        FlashLayer { adapter }
    }
}

impl<S> Layer<S> for FlashLayer {
    type Service = FlashService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FlashService {
            inner,
            adapter: self.adapter.clone(),
        }
    }
}

/// The service [`FlashLayer`] wraps around the application.
#[derive(Clone)]
pub struct FlashService<S> {
    inner: S,
    adapter: Adapter,
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
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let in_flight = self.adapter.begin();
        request.extensions_mut().insert(in_flight.slot());
        ResponseFuture {
            state: State::Handler {
                future: self.inner.call(request),
                in_flight: Some(in_flight),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`FlashService`]: the handler's, then flash's end of the request.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Handler { #[pin] future: F, in_flight: Option<InFlight> },
        Finishing { future: Finishing<Response<B>> },
        // The service failed without a response: the request is ended on a stand-in `500`.
        Failing { future: Finishing<Response<()>>, error: Option<E> },
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Handler { future, in_flight } => {
                    let result = ready!(future.poll(cx));
                    let Some(in_flight) = in_flight.take() else {
                        return Poll::Ready(result);
                    };
                    match result {
                        Ok(response) => State::Finishing {
                            future: in_flight.finish(response),
                        },
                        Err(error) => State::Failing {
                            future: in_flight.finish(stand_in_500()),
                            error: Some(error),
                        },
                    }
                }
                StateProj::Finishing { future } => {
                    return Poll::Ready(Ok(ready!(Pin::new(future).poll(cx))));
                }
                StateProj::Failing { future, error } => {
                    ready!(Pin::new(future).poll(cx));
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            };
            this.state.set(next);
        }
    }
}

fn stand_in_500() -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
}
