//! The middleware: one request handle per request, the request ended by flash-core's contract.

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
use flash_core::adapter::{
    Adapter, Finishing, HandlerResponse, InFlight, RequestHeaders, ResponseHeaders,
};
use flash_core::http;
use flash_core::storage::Storage;
use flash_core::{Error, Htmx, MessagesConfig};

use crate::Bridge;

/// The actix-web middleware giving every request its flash messages and saving them on the
/// response: `App::new().wrap(FlashMiddleware::new(storage, config))`.
///
/// Handlers reach the messages with the [`Flash`](crate::Flash) extractor. The response is
/// ended by [`flash_core::adapter::InFlight::finish`]: what the request added or did not consume is
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
        let in_flight = self.adapter.begin();
        let bridge = Bridge::capture(&request, &self.adapter).map(Rc::new);
        request.extensions_mut().insert(in_flight.slot());
        if let Some(bridge) = &bridge {
            request.extensions_mut().insert(bridge.clone());
        }
        ResponseFuture {
            future: self.service.call(request),
            in_flight: Some(in_flight),
            bridge,
            finishing: None,
            failing: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`FlashService`]: the handler's, then flash's end of the request.
    pub struct ResponseFuture<F, B> {
        #[pin]
        future: F,
        in_flight: Option<InFlight>,
        bridge: Option<Rc<Bridge>>,
        finishing: Option<Finishing<Answer<B>>>,
        failing: Option<(Finishing<http::Response<()>>, actix_web::Error)>,
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("finishing", &self.finishing.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = Result<ServiceResponse<B>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(in_flight) = this.in_flight.take() {
            match this.future.poll(cx) {
                Poll::Pending => {
                    *this.in_flight = Some(in_flight);
                    return Poll::Pending;
                }
                Poll::Ready(Ok(response)) => {
                    *this.finishing = Some(in_flight.finish(Answer(response)));
                }
                // No response to carry a cookie: the storage is settled on a stand-in `500`.
                Poll::Ready(Err(error)) => {
                    let mut stand_in = http::Response::new(());
                    *stand_in.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                    *this.failing = Some((in_flight.finish(stand_in), error));
                }
            }
        }
        if let Some((finishing, _)) = this.failing {
            ready!(Pin::new(finishing).poll(cx));
            let (_, error) = this.failing.take().expect("set above");
            return Poll::Ready(Err(error));
        }
        let finishing = this.finishing.as_mut().expect("set above");
        let Answer(response) = ready!(Pin::new(finishing).poll(cx));
        if let Some(bridge) = this.bridge.take() {
            bridge.write_back();
        }
        Poll::Ready(Ok(response))
    }
}

/// The handler's response as flash-core ends it: actix-web's headers are `http` 0.2.
pub struct Answer<B>(ServiceResponse<B>);

impl<B> HandlerResponse for Answer<B> {
    fn status(&self) -> u16 {
        self.0.status().as_u16()
    }

    /// actix-web keeps the handler's error in the response it became.
    fn is_handler_error(&self) -> bool {
        self.0.response().error().is_some()
    }
}

impl<B> ResponseHeaders for Answer<B> {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        self.0
            .headers()
            .get_all(name)
            .for_each(|v| each(v.as_bytes()));
    }

    fn append(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            self.0
                .headers_mut()
                .append(HeaderName::from_static(name), value);
        }
    }

    fn insert(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            self.0
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }

    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        // Borrowed, not copied: one allocation less per line.
        let value = HeaderValue::from_static(value);
        self.0
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

/// actix-web's request headers as flash-core reads them.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl RequestHeaders for Headers<'_> {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        // A static name: looking a non-standard name up by `&str` would allocate.
        let name = HeaderName::from_static(name);
        self.0.get_all(name).for_each(|v| each(v.as_bytes()));
    }
}
