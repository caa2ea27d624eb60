//! The middleware: one request handle per request, the request ended by flash-core's contract.

use std::cell::OnceCell;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use flash_core::{
    Error, Htmx, Messages, MessagesConfig,
    adapter::{Adapter, ResponseHeaders},
    storage::Storage,
};

use crate::Bridge;

/// The request extension the middleware inserts: the handle is made on first extraction, so a
/// request whose handler never asks for its messages costs one small allocation.
#[derive(Clone)]
pub(crate) struct Slot(pub(crate) Rc<SlotInner>);

pub(crate) struct SlotInner {
    pub(crate) adapter: Adapter,
    pub(crate) messages: OnceCell<Messages>,
    /// The session bridge, when the storage keeps messages in the session.
    pub(crate) bridge: Option<Bridge>,
}

/// The actix-web middleware giving every request its flash messages and saving them on the
/// response: `App::new().wrap(FlashMiddleware::new(storage, config))`.
///
/// Handlers reach the messages with the [`Flash`](crate::Flash) extractor. The response is
/// ended by [`flash_core::adapter::Adapter::finish`]: what the request added or did not consume is
/// saved, `Vary: Cookie` is merged into the handler's `Vary` when messages were read or
/// written, and `Cache-Control: private, no-store` is set with a flash cookie. A request whose
/// handler never touches its messages makes no storage call and gets no extra header.
///
/// A failed save is logged through `tracing` (target `flash_core::adapter`, level `ERROR`)
/// and handed to the hook set with [`FlashMiddleware::on_error`]; the response is served all
/// the same. When the inner service fails with an error instead of a response (rare in
/// actix-web, whose handlers turn their errors into responses), the error goes on untouched
/// and the request's messages are not saved.
///
/// Storages that keep messages in the session (`flash-session`'s `SessionStorage`, the `flash`
/// facade's `session`) use actix-session's session with the feature `actix-session`:
/// actix-session's `SessionMiddleware` must then wrap this one (see
/// `ActixSession`, with the feature on).
#[derive(Clone, Debug)]
pub struct FlashMiddleware {
    adapter: Adapter,
}

impl FlashMiddleware {
    /// A middleware over `storage` with the application's `config` (minimum level and tags).
    pub fn new(storage: Arc<dyn Storage>, config: impl Into<Arc<MessagesConfig>>) -> Self {
        FlashMiddleware::from(Adapter::new(storage, config))
    }

    /// Calls `hook` with every error of saving messages at the response (after logging it), to
    /// count or alert. The response is served regardless.
    #[must_use]
    pub fn on_error(self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        FlashMiddleware {
            adapter: self.adapter.on_error(hook),
        }
    }

    /// Delivers messages to htmx requests in `HX-Trigger` (opt-in): a partial htmx request
    /// whose handler did not read gets the messages it added as one event, merged with the
    /// handler's own `HX-Trigger`; see [`flash_core::Htmx`] for the whole rule.
    #[must_use]
    pub fn htmx(self, htmx: Htmx) -> Self {
        FlashMiddleware {
            adapter: self.adapter.htmx(htmx),
        }
    }

    /// The application's settings.
    pub fn config(&self) -> &MessagesConfig {
        self.adapter.config()
    }

    /// The framework-neutral half of the middleware: storage, settings, hooks.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }
}

impl From<Adapter> for FlashMiddleware {
    /// A middleware over an [`Adapter`] already set up (storage, settings, error hook), as
    /// another framework's adapter of the same application uses it.
    fn from(adapter: Adapter) -> Self {
        if cfg!(not(feature = "actix-session")) && adapter.uses_extensions() {
            tracing::error!(
                "this flash storage keeps messages in the session: enable flash-actix's \
                 `actix-session` feature and wrap actix_session::SessionMiddleware outside \
                 FlashMiddleware; its messages will not load"
            );
        }
        FlashMiddleware { adapter }
    }
}

impl<S, B> Transform<S, ServiceRequest> for FlashMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = FlashService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(FlashService {
            service,
            adapter: self.adapter.clone(),
        }))
    }
}

/// The service [`FlashMiddleware`] wraps around the application.
pub struct FlashService<S> {
    service: S,
    adapter: Adapter,
}

impl<S> fmt::Debug for FlashService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashService")
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for FlashService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future, B>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let bridge = if self.adapter.uses_extensions() {
            Bridge::capture(&request)
        } else {
            None
        };
        let slot = Slot(Rc::new(SlotInner {
            adapter: self.adapter.clone(),
            messages: OnceCell::new(),
            bridge,
        }));
        request.extensions_mut().insert(slot.clone());
        ResponseFuture {
            future: self.service.call(request),
            slot: Some(slot),
            saving: None,
        }
    }
}

type SaveFuture<B> = Pin<Box<dyn Future<Output = ServiceResponse<B>>>>;

pin_project_lite::pin_project! {
    /// The response future of [`FlashService`]: the handler's, then the save. A request that
    /// did nothing with its messages, or whose storage never waits (a cookie), is ended
    /// without a boxed future.
    pub struct ResponseFuture<F, B> {
        #[pin]
        future: F,
        slot: Option<Slot>,
        saving: Option<SaveFuture<B>>,
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("saving", &self.saving.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: 'static,
{
    type Output = Result<ServiceResponse<B>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(saving) = this.saving {
            return saving.as_mut().poll(cx).map(Ok);
        }
        let mut response = ready!(this.future.poll(cx))?;
        let Some(slot) = this.slot.take() else {
            return Poll::Ready(Ok(response));
        };
        // The handler never asked for its messages: nothing to do.
        let Some(messages) = slot.0.messages.get().cloned() else {
            return Poll::Ready(Ok(response));
        };
        let adapter = slot.0.adapter.clone();
        // Kept only to write the session back after the save.
        let bridged = slot.0.bridge.is_some().then_some(slot);
        // Nothing to save, or a storage that never waits: done here.
        if adapter
            .finish_now(&messages, &mut Headers(response.headers_mut()))
            .is_some()
        {
            write_back(bridged);
            return Poll::Ready(Ok(response));
        }
        let mut saving: SaveFuture<B> = Box::pin(async move {
            adapter
                .finish(&messages, &mut Headers(response.headers_mut()))
                .await;
            write_back(bridged);
            response
        });
        let polled = saving.as_mut().poll(cx);
        *this.saving = Some(saving);
        polled.map(Ok)
    }
}

/// After flash's save: what the storage changed in the session goes back into actix-session's.
fn write_back(slot: Option<Slot>) {
    if let Some(bridge) = slot.as_ref().and_then(|slot| slot.0.bridge.as_ref()) {
        bridge.write_back();
    }
}

/// actix-web's response headers (`http` 0.2) as flash-core writes to them.
struct Headers<'a>(&'a mut HeaderMap);

impl ResponseHeaders for Headers<'_> {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        for value in self.0.get_all(name) {
            each(value.as_bytes());
        }
    }

    fn append(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            self.0.append(HeaderName::from_static(name), value);
        }
    }

    fn insert(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            self.0.insert(HeaderName::from_static(name), value);
        }
    }

    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        // Borrowed, not copied: one allocation less per line.
        self.0.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}
