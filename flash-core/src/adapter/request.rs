//! The two calls an adapter makes: the handle from the request's parts, the end of the request
//! from the handler's response. Everything between is flash-core's.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::{Extensions, HeaderMap, HeaderValue};

use super::{Adapter, Finished, ResponseHeaders};
use crate::address::{HINT_COOKIE, Hint};
use crate::messages::{Begun, Messages, WeakMessages};
use crate::storage::Incoming;
use crate::storage_trait::{PREFETCH_HEADERS, header_name, is_page_load, is_prefetch};

/// The request headers of one request as an adapter hands them to [`Slot::messages`]: an
/// `http` 1.x [`HeaderMap`] as it is, other frameworks' maps (actix-web 4 uses `http` 0.2)
/// through a small wrapper.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a request header map flash can read",
    note = "implement `flash_core::adapter::RequestHeaders` for a wrapper around your framework's request headers"
)]
pub trait RequestHeaders {
    /// Calls `each` with every value of the header `name` (lowercase), in order.
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8]));

    /// The headers as an `http` 1.x map, when they are one: the `Cookie` values are then shared,
    /// not copied. Default: `None`.
    fn as_http(&self) -> Option<&HeaderMap> {
        None
    }
}

impl RequestHeaders for HeaderMap {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        for value in self.get_all(header_name(name)) {
            each(value.as_bytes());
        }
    }

    fn as_http(&self) -> Option<&HeaderMap> {
        Some(self)
    }
}

/// What flash needs of a request, as its framework holds it: the method, the headers and the
/// request extensions. [`Slot::messages`] makes the request's handle from it.
///
/// Hand over everything the framework has: the core decides what to read (the `Cookie`
/// headers, a prefetch's `Sec-Purpose`, htmx's `HX-*` headers, `HEAD` and `OPTIONS`) and what
/// to copy (the extensions, only when the storage reads them, never flash's own [`Slot`]).
pub struct RequestParts<'a> {
    method: &'a str,
    headers: &'a dyn RequestHeaders,
    extensions: Option<&'a Extensions>,
    target: Option<&'a str>,
    slot: Option<&'a Slot>,
    /// Makes the extensions when they are needed, for a framework that must build them.
    make_extensions: Option<&'a dyn Fn() -> Option<Extensions>>,
    /// [`RequestParts::prefetch_and_page_load`], once looked: the hand-on check and the
    /// handle's `Incoming` both need it.
    looked: std::cell::Cell<Option<(bool, bool)>>,
}

impl<'a> RequestParts<'a> {
    /// A request's `method` (`"GET"`), its `headers`, and its `extensions` when the framework
    /// keeps them in an `http` 1.x [`Extensions`] (`None` for a framework that cannot copy its
    /// own, such as actix-web, whose adapter hands over what its storages need instead).
    pub fn new(
        method: &'a str,
        headers: &'a dyn RequestHeaders,
        extensions: Option<&'a Extensions>,
    ) -> Self {
        RequestParts {
            method,
            headers,
            extensions,
            target: None,
            slot: None,
            make_extensions: None,
            looked: std::cell::Cell::new(None),
        }
    }

    /// Sets a function making the extensions a storage reads, called only when the handle is
    /// made and the storage reads them: for a framework whose adapter builds them (actix-web's
    /// session bridge), so that a request that never needs them never pays for them. `None`:
    /// the adapter has none to give (actix-web without its session feature), which the core
    /// says once, as it does for a request handed over without extensions.
    #[must_use]
    pub fn with_extensions_from(mut self, make: &'a dyn Fn() -> Option<Extensions>) -> Self {
        self.make_extensions = Some(make);
        self
    }

    /// The parts of an `http` 1.x request (axum's, poem's, tower's): its method, its target
    /// (the path and query of `uri`), its headers and its extensions, where
    /// [`RequestParts::messages`] finds the request's [`Slot`].
    pub fn http(
        method: &'a http::Method,
        uri: &'a http::Uri,
        headers: &'a HeaderMap,
        extensions: &'a Extensions,
    ) -> Self {
        RequestParts::new(method.as_str(), headers, Some(extensions)).with_target(
            uri.path_and_query()
                .map_or_else(|| uri.path(), |pq| pq.as_str()),
        )
    }

    /// The request's [`Slot`], for a framework whose extensions are not an `http` 1.x
    /// [`Extensions`] (actix-web): [`RequestParts::messages`] then takes it from here.
    #[must_use]
    pub fn with_slot(mut self, slot: Option<&'a Slot>) -> Self {
        self.slot = slot;
        self
    }

    /// The request's handle, made by the rules of the contract on the first call (every later
    /// call of the request returns the same handle), from the [`Slot`] the middleware put in the
    /// request ([`Adapter::begin_in`]). Without one, no flash middleware ran for this request:
    /// the error (logged at `ERROR`) names `middleware`, the one to add, for the framework's
    /// `500` answer.
    pub fn messages(self, middleware: &'static str) -> Result<Messages, MissingMiddleware> {
        let slot = self
            .slot
            .or_else(|| self.extensions.and_then(Extensions::get::<Slot>));
        match slot.and_then(|slot| slot.messages(self)) {
            Some(messages) => Ok(messages),
            None => {
                let missing = MissingMiddleware { middleware };
                tracing::error!("{missing}");
                Err(missing)
            }
        }
    }

    /// Sets the request's target, its path and query as the request line has them
    /// (`/orders/7?tab=2`): what addressed messages are matched against
    /// ([`Addressing`](crate::Addressing)). Without it the request shows every message.
    #[must_use]
    pub fn with_target(mut self, path_and_query: &'a str) -> Self {
        self.target = Some(path_and_query);
        self
    }

    /// Whether the method only looks: `HEAD` and `OPTIONS` read without consuming, as a
    /// prefetch does (a link checker or a CORS preflight never takes a page's messages).
    fn is_safe_look(&self) -> bool {
        matches!(self.method, "HEAD" | "OPTIONS")
    }

    /// Whether the first value of `name` is `true`.
    fn says_true(&self, name: &'static str) -> bool {
        let mut first = None;
        self.headers.for_each_value(name, &mut |value| {
            first.get_or_insert(value.trim_ascii() == b"true");
        });
        first == Some(true)
    }

    /// Whether the request is a prefetch ([`is_prefetch`]) and whether it is a page load
    /// ([`is_page_load`]), read from any framework's headers: what [`Incoming::from_headers`]
    /// reads of an `http` 1.x map.
    fn prefetch_and_page_load(&self) -> (bool, bool) {
        if let Some(looked) = self.looked.get() {
            return looked;
        }
        let mut prefetch = false;
        for name in PREFETCH_HEADERS {
            self.headers.for_each_value(name, &mut |value| {
                prefetch |= is_prefetch(value);
            });
        }
        let page_load = match self.headers.as_http() {
            Some(map) => is_page_load(|name| map.get(header_name(name)).map(HeaderValue::as_bytes)),
            None => {
                // A header's values live only in the callback: keep a copy of the first.
                let first = |name| {
                    let mut first = None;
                    self.headers.for_each_value(name, &mut |value| {
                        first.get_or_insert_with(|| value.to_vec());
                    });
                    first
                };
                let (hx, boosted, mode) = (
                    first("hx-request"),
                    first("hx-boosted"),
                    first("sec-fetch-mode"),
                );
                is_page_load(|name| match name {
                    "hx-request" => hx.as_deref(),
                    "hx-boosted" => boosted.as_deref(),
                    "sec-fetch-mode" => mode.as_deref(),
                    _ => None,
                })
            }
        };
        self.looked.set(Some((prefetch, page_load)));
        (prefetch, page_load)
    }
}

impl<'a, B> From<&'a http::Request<B>> for RequestParts<'a> {
    /// An `http` 1.x request (axum's, tower's, poem's) before its handler runs: method, headers,
    /// extensions and target, for [`Adapter::begin_with`].
    fn from(request: &'a http::Request<B>) -> Self {
        RequestParts::http(
            request.method(),
            request.uri(),
            request.headers(),
            request.extensions(),
        )
    }
}

impl<'a> From<&'a http::request::Parts> for RequestParts<'a> {
    /// The parts of an `http` 1.x request (axum's, tower's): method, headers and extensions.
    fn from(parts: &'a http::request::Parts) -> Self {
        RequestParts::http(&parts.method, &parts.uri, &parts.headers, &parts.extensions)
    }
}

/// The handle was asked for in a request no flash middleware began
/// ([`RequestParts::messages`]): a configuration mistake, which adapters answer with a `500`
/// whose text names the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingMiddleware {
    middleware: &'static str,
}

impl fmt::Display for MissingMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no flash middleware ran for this request: the Flash extractor needs {} around the \
             route (outside every handler that takes Flash)",
            self.middleware
        )
    }
}

impl std::error::Error for MissingMiddleware {}

impl MissingMiddleware {
    /// The `500 Internal Server Error` that answers it in an `http` 1.x framework, its text
    /// naming the fix.
    pub fn into_response(self) -> http::Response<String> {
        let mut response = http::Response::new(self.to_string());
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

impl fmt::Debug for RequestParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values can be credentials: only the method.
        f.debug_struct("RequestParts")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// One request in flight, from [`Adapter::begin`] to [`InFlight::finish`]: the adapter's
/// middleware keeps it (it is not `Clone`), puts its [`Slot`] in the request, and ends the
/// request with it.
///
/// It owns the request's handle from the start, not made yet (one allocation for the request's
/// state and its handle): the handle is made when the handler first asks for it.
#[must_use = "a request begun is ended with `finish`"]
pub struct InFlight {
    handle: Messages,
    adapter: Adapter,
}

/// The request extension that reaches the request's handle: put in the request by the
/// adapter's middleware ([`InFlight::slot`]), read by its extractor ([`Slot::messages`]).
///
/// It holds the request's handle weakly: no copy of the request extensions can keep the handle
/// alive (no cycle, however the extensions are copied), everything is freed when the request
/// ends, and a slot makes no handle once its request has ended.
#[derive(Clone)]
pub struct Slot(WeakMessages);

impl Adapter {
    /// Begins a request: an adapter's middleware calls it when a request arrives, puts
    /// [`InFlight::slot`] in the request's extensions, runs the handler, and ends the request
    /// with [`InFlight::finish`]. Costs one allocation, the request's handle, made (its
    /// cookies looked at) only when the handler asks for it.
    pub fn begin(&self) -> InFlight {
        self.begin_looking(false)
    }

    fn begin_looking(&self, looks_only: bool) -> InFlight {
        // Kept because a framework may serve `HEAD` through a `GET` route and show its
        // extractor a `GET` (poem does): the method the middleware saw wins, so a link checker
        // never consumes.
        let begun = Begun {
            adapter: self.clone(),
            looks_only,
            ended: AtomicBool::new(false),
        };
        InFlight {
            handle: Messages::begun(
                self.shared.storage.clone(),
                self.shared.config.clone(),
                begun,
            ),
            adapter: self.clone(),
        }
    }

    /// Begins a request as [`Adapter::begin`] does, looking at the request first: an adapter's
    /// middleware calls it with everything the framework has of the request (as its extractor
    /// hands over), then puts [`InFlight::slot`] in the request.
    ///
    /// Why: a page that redirects without ever asking for its messages (a framework's
    /// trailing-slash redirect, a login redirect) must still hand on what was addressed to it
    /// ([`Addressing`](crate::Addressing)), and the request is gone by the time its response
    /// says it redirects. So when the request is a `GET` page load that messages may be
    /// addressed to (the storage never waits and the request has cookies, or the hint cookie
    /// names the page: [`HINT_COOKIE`]), the handle is made now,
    /// untouched: a response that does not redirect ends it with no storage call; one that
    /// redirects hands its messages on. Any other request costs a look at its cookies.
    pub fn begin_with(&self, request: RequestParts<'_>) -> InFlight {
        let in_flight = self.begin_looking(request.is_safe_look());
        if self.may_hand_on(&request) {
            // The extractor's later calls return this handle.
            in_flight.handle.make(|| self.incoming_for(&request));
        }
        in_flight
    }

    /// Whether a redirect answering `request` may have messages to hand on.
    fn may_hand_on(&self, request: &RequestParts<'_>) -> bool {
        let Some(target) = request.target else {
            return false;
        };
        if request.method != "GET" || !self.shared.config.addressing().on_redirect() {
            return false;
        }
        // A storage that never waits keeps what it has in the request's cookies: any cookie is
        // worth a look. Any other storage is worth one only when its hint cookie names the page.
        let immediate = self.shared.storage.immediate().is_some();
        let mut worth = false;
        request.headers.for_each_value("cookie", &mut |value| {
            if immediate {
                worth = true;
            } else if !worth
                && let Some(hint) = crate::storage_trait::cookie_bytes_in(value, HINT_COOKIE)
            {
                worth = Hint::parse(Some(hint)).names(target);
            }
        });
        if !worth {
            return false;
        }
        let (prefetch, page_load) = request.prefetch_and_page_load();
        !prefetch && page_load
    }

    /// [`Adapter::begin`] for a framework whose request extensions are an `http` 1.x
    /// [`Extensions`]: puts the request's [`Slot`] in `extensions`.
    pub fn begin_in(&self, extensions: &mut Extensions) -> InFlight {
        let in_flight = self.begin();
        extensions.insert(in_flight.slot());
        in_flight
    }

    /// What the handle for `request` is made from, by the rules of the contract.
    fn incoming_for(&self, request: &RequestParts<'_>) -> Incoming {
        let mut incoming = match request.headers.as_http() {
            Some(map) => {
                let (prefetch, page_load) = request.prefetch_and_page_load();
                Incoming::from_cookies_in(map, prefetch, page_load)
            }
            None => {
                let mut cookies: Vec<HeaderValue> = Vec::new();
                request.headers.for_each_value("cookie", &mut |value| {
                    cookies.extend(HeaderValue::from_bytes(value).ok());
                });
                let (prefetch, page_load) = request.prefetch_and_page_load();
                Incoming::new(cookies, prefetch).with_page_load(page_load)
            }
        };
        if let Some(target) = request.target {
            incoming = incoming.with_target(request.method, target);
        }
        if request.is_safe_look() {
            incoming.set_prefetch();
        }
        if self.shared.uses_extensions {
            match request.extensions {
                Some(extensions) => {
                    let mut copy = extensions.clone();
                    // Weak, so harmless; but it is not the storage's.
                    copy.remove::<Slot>();
                    *incoming.extensions_mut() = copy;
                }
                None => match request.make_extensions.and_then(|make| make()) {
                    Some(made) => *incoming.extensions_mut() = made,
                    None => self.no_extensions(),
                },
            }
        }
        if self.shared.htmx.is_some() {
            let kind = super::HtmxRequest {
                request: request.says_true("hx-request"),
                boosted: request.says_true("hx-boosted"),
                history_restore: request.says_true("hx-history-restore-request"),
            };
            super::capture_htmx_kind(&mut incoming, kind);
        }
        incoming
    }
}

impl InFlight {
    /// The request extension to put in the request before the handler runs.
    pub fn slot(&self) -> Slot {
        Slot(self.handle.downgrade())
    }

    /// The adapter the request was begun with.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    /// The request's handle, when the handler asked for it (or it was made at the start).
    fn asked(&self) -> Option<Messages> {
        self.handle.is_made().then(|| self.handle.clone())
    }

    /// Ends the request with the handler's `response` and hands the response back, ready to
    /// serve: the future is ready at its first poll, with no allocation, when the handler never
    /// asked for its messages or the storage never waits.
    ///
    /// The rules it applies (see the [adapter contract](crate::adapter)): what the handler added is
    /// saved; what it read is consumed unless the request failed ([`HandlerResponse::failed`]:
    /// a `5xx`, or the handler's error); `Vary: Cookie` when messages were read or written;
    /// `Cache-Control: private, no-store` with a flash cookie; htmx delivery. The storage is
    /// done (a keyed store's lease settled) when the future completes.
    pub fn finish<R: HandlerResponse>(self, response: R) -> Finishing<R> {
        self.finish_with(response, AsIs)
    }

    /// [`InFlight::finish`] for a response type flash-core cannot name (actix-web's), which
    /// `view` shows to it ([`ForeignResponse`]); `view.done` runs when flash is done with the
    /// response, before the future hands it back.
    pub fn finish_with<R, V>(self, mut response: R, view: V) -> Finishing<R, V>
    where
        V: ForeignResponse<R>,
    {
        let Some(messages) = self.asked() else {
            return Finishing::ready(response, view);
        };
        let adapter = self.adapter.clone();
        drop(self);
        let ended = {
            let mut answer = V::answer(&mut response);
            messages.set_response_status(answer.status());
            let failed = answer.failed();
            adapter.end_now(&messages, failed, &mut answer)
        };
        match ended {
            Ok(_) => Finishing::ready(response, view),
            Err(waiting) => Finishing {
                response: Some(response),
                waiting: Some((adapter, detach(waiting, messages))),
                view: Some(view),
            },
        }
    }

    /// Ends the request when the handler's `future` completes: the middleware of a framework
    /// whose handler answers with a future of `Result<R, E>` returns this as its own future.
    /// `Ok(response)` is ended as [`InFlight::finish`] ends it; an `Err` (the service failed
    /// with no response to carry a cookie) ends the request on a stand-in `500`, so the storage
    /// is settled all the same (nothing consumed, what was added kept by a keyed store), and
    /// the error goes on untouched. No allocation of its own.
    pub fn around<F, R, E>(self, future: F) -> Around<F, R, E>
    where
        F: Future<Output = Result<R, E>>,
        R: HandlerResponse,
    {
        self.around_with(future, AsIs)
    }

    /// [`InFlight::around`] for a handler whose response type flash-core cannot name
    /// (actix-web's `ServiceResponse`), which `view` shows to it ([`ForeignResponse`]): the
    /// middleware's future stays unboxed whatever the framework.
    pub fn around_with<F, R, E, V>(self, future: F, view: V) -> Around<F, R, E, V>
    where
        F: Future<Output = Result<R, E>>,
        V: ForeignResponse<R>,
    {
        Around {
            state: State::Handler {
                future,
                in_flight: Some((self, view)),
            },
        }
    }

    /// [`InFlight::finish`] for middleware written as an `async fn`, over the response's
    /// `status`, whether the handler failed (`handler_error`: it returned its error, which the
    /// adapter turned into this response) and its `headers`. Returns what was done.
    pub async fn finish_headers<H>(
        self,
        status: u16,
        handler_error: bool,
        headers: &mut H,
    ) -> Finished
    where
        H: ResponseHeaders + ?Sized,
    {
        let Some(messages) = self.asked() else {
            return Finished::default();
        };
        messages.set_response_status(status);
        let adapter = self.adapter.clone();
        drop(self);
        adapter
            .end(&messages, handler_error || status >= 500, headers)
            .await
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("asked", &self.handle.is_made())
            .finish_non_exhaustive()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(begun) = self.handle.begun_request() {
            begun.ended.store(true, Ordering::Release);
        }
    }
}

impl Slot {
    /// The request's handle, made from `request` the first time (every later call, by any
    /// extractor of the request, returns the same handle); `None` once the request has ended.
    pub fn messages(&self, mut request: RequestParts<'_>) -> Option<Messages> {
        let handle = self.0.upgrade()?;
        let begun = handle.begun_request()?;
        if begun.ended.load(Ordering::Acquire) {
            return None;
        }
        if begun.looks_only {
            request.method = "HEAD";
        }
        handle.make(|| begun.adapter.incoming_for(&request));
        Some(handle)
    }

    /// Whether its request has not ended.
    fn in_flight(&self) -> bool {
        self.0
            .upgrade()
            .and_then(|handle| {
                let begun = handle.begun_request()?;
                Some(!begun.ended.load(Ordering::Acquire))
            })
            .unwrap_or(false)
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// The handler's response as [`InFlight::finish`] takes it: its headers
/// ([`ResponseHeaders`]), its status, and whether it is the handler's error. Implemented for
/// `http` 1.x responses; an adapter implements it for a wrapper of its framework's response.
pub trait HandlerResponse: ResponseHeaders {
    /// The status code.
    fn status(&self) -> u16;

    /// Whether the handler returned an error that the adapter (or the framework) turned into
    /// this response. Default: `false`.
    fn is_handler_error(&self) -> bool {
        false
    }

    /// Whether the request failed: a `5xx`, or the handler's error. What a failed request read
    /// is not consumed: its page was not shown.
    fn failed(&self) -> bool {
        self.status() >= 500 || self.is_handler_error()
    }
}

impl<B> ResponseHeaders for http::Response<B> {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        ResponseHeaders::for_each_value(self.headers(), name, each);
    }

    fn append(&mut self, name: &'static str, value: &[u8]) {
        ResponseHeaders::append(self.headers_mut(), name, value);
    }

    fn insert(&mut self, name: &'static str, value: &[u8]) {
        ResponseHeaders::insert(self.headers_mut(), name, value);
    }

    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        self.headers_mut().insert_static(name, value);
    }

    fn as_http(&mut self) -> Option<&mut HeaderMap> {
        Some(self.headers_mut())
    }
}

impl<B> HandlerResponse for http::Response<B> {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

impl<H: HandlerResponse + ?Sized> HandlerResponse for &mut H {
    fn status(&self) -> u16 {
        (**self).status()
    }

    fn is_handler_error(&self) -> bool {
        (**self).is_handler_error()
    }

    fn failed(&self) -> bool {
        (**self).failed()
    }
}

/// How flash-core sees a response type it cannot name (actix-web's `ServiceResponse`), for
/// [`InFlight::around_with`] and [`InFlight::finish_with`]: an adapter implements it on a type
/// of its own for its framework's response, so its middleware's future needs no box.
///
/// ```
/// use flash_core::adapter::{Answer, ForeignResponse, HandlerResponse};
///
/// /// A framework's response, as flash-core cannot name it.
/// struct TheirResponse { code: u16, headers: http::HeaderMap }
///
/// struct Reply;
///
/// impl ForeignResponse<TheirResponse> for Reply {
///     fn answer(response: &mut TheirResponse) -> impl HandlerResponse + '_ {
///         Answer::new(response.code, false, &mut response.headers)
///     }
/// }
/// ```
pub trait ForeignResponse<R>: Sized {
    /// The response as the contract ends the request on it: its status, whether it is the
    /// handler's error, and its headers (an [`Answer`]).
    fn answer(response: &mut R) -> impl HandlerResponse + '_;

    /// Called once flash-core is done with the response, before it is handed back (a session
    /// bridge writes back here). Default: nothing.
    fn done(self, response: &mut R) {
        let _ = response;
    }
}

/// The [`ForeignResponse`] of a response flash-core can name (a [`HandlerResponse`], such as
/// an `http` 1.x response): the response itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsIs;

impl<R: HandlerResponse> ForeignResponse<R> for AsIs {
    fn answer(response: &mut R) -> impl HandlerResponse + '_ {
        response
    }
}

/// A handler's `Result` as `V` shows its response; an `Err` as a stand-in `500`.
struct OrStandIn<V>(V);

impl<R, E, V: ForeignResponse<R>> ForeignResponse<Result<R, E>> for OrStandIn<V> {
    fn answer(response: &mut Result<R, E>) -> impl HandlerResponse + '_ {
        response.as_mut().map(V::answer).map_err(|_| ())
    }

    fn done(self, response: &mut Result<R, E>) {
        if let Ok(response) = response {
            self.0.done(response);
        }
    }
}

type Detaching = Pin<Box<dyn Future<Output = super::Detached> + Send>>;

// Built once for every response type, out of line: a request that needs no waiting (a cookie
// storage, an idle request) does not run through its code (BENCHMARKS.md, issue 21.5).
#[inline(never)]
fn detach(waiting: super::Waiting, messages: Messages) -> Detaching {
    Box::pin(waiting.run(messages))
}

/// The future of [`InFlight::finish`] and [`InFlight::finish_with`]: the response, once flash
/// is done with it.
#[must_use = "futures do nothing unless polled"]
pub struct Finishing<R, V = AsIs> {
    response: Option<R>,
    waiting: Option<(Adapter, Detaching)>,
    view: Option<V>,
}

impl<R, V> Finishing<R, V> {
    fn ready(response: R, view: V) -> Self {
        Finishing {
            response: Some(response),
            waiting: None,
            view: Some(view),
        }
    }
}

impl<R, V: ForeignResponse<R>> Finishing<R, V> {
    // Out of line, as `detach` is.
    #[inline(never)]
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some((adapter, waiting)) = &mut self.waiting {
            let detached = std::task::ready!(waiting.as_mut().poll(cx));
            let adapter = adapter.clone();
            self.waiting = None;
            if let Some(response) = &mut self.response {
                adapter.apply(detached, &mut V::answer(response));
            }
        }
        Poll::Ready(())
    }
}

// The response and the view are moved, never pinned.
impl<R, V> Unpin for Finishing<R, V> {}

impl<R, V: ForeignResponse<R>> Future for Finishing<R, V> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        if this.waiting.is_some() {
            std::task::ready!(this.poll_waiting(cx));
        }
        let mut response = this
            .response
            .take()
            .expect("a Finishing future polled after it completed");
        if let Some(view) = this.view.take() {
            view.done(&mut response);
        }
        Poll::Ready(response)
    }
}

impl<R, V> fmt::Debug for Finishing<R, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finishing")
            .field("waiting", &self.waiting.is_some())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The future of [`InFlight::around`]: the handler's future, then the end of the request.
    #[must_use = "futures do nothing unless polled"]
    pub struct Around<F, R, E, V = AsIs> {
        #[pin]
        state: State<F, R, E, V>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, R, E, V> {
        Handler { #[pin] future: F, in_flight: Option<(InFlight, V)> },
        Finishing { finishing: Finishing<Result<R, E>, OrStandIn<V>> },
    }
}

impl<F, R, E, V> Future for Around<F, R, E, V>
where
    F: Future<Output = Result<R, E>>,
    V: ForeignResponse<R>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut finishing = match this.state.as_mut().project() {
            StateProj::Handler { future, in_flight } => {
                let result = std::task::ready!(future.poll(cx));
                match in_flight.take() {
                    Some((in_flight, view)) => in_flight.finish_with(result, OrStandIn(view)),
                    // Polled again after it completed: the handler's future says what that does.
                    None => return Poll::Ready(result),
                }
            }
            StateProj::Finishing { finishing } => return Pin::new(finishing).poll(cx),
        };
        // Most requests end at once (nothing asked, or a storage that never waits): then the
        // future completes here, with no move to its second state.
        let ready = Pin::new(&mut finishing).poll(cx);
        if ready.is_pending() {
            this.state.set(State::Finishing { finishing });
        }
        ready
    }
}

impl<F, R, E, V> fmt::Debug for Around<F, R, E, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let finishing = matches!(self.state, State::Finishing { .. });
        f.debug_struct("Around")
            .field("finishing", &finishing)
            .finish_non_exhaustive()
    }
}

/// A request whose handler (or service) failed with no response at all: a stand-in `500`
/// whose header lines go nowhere. [`InFlight::around`] ends its `Err` this way; an adapter
/// written as async code passes its `Result` to [`InFlight::finish`] the same way.
impl<R: ResponseHeaders, E> ResponseHeaders for Result<R, E> {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        if let Ok(response) = self {
            response.for_each_value(name, each);
        }
    }

    fn append(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(response) = self {
            response.append(name, value);
        }
    }

    fn insert(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(response) = self {
            response.insert(name, value);
        }
    }

    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        if let Ok(response) = self {
            response.insert_static(name, value);
        }
    }

    fn as_http(&mut self) -> Option<&mut HeaderMap> {
        self.as_mut().ok()?.as_http()
    }
}

impl<R: HandlerResponse, E> HandlerResponse for Result<R, E> {
    fn status(&self) -> u16 {
        self.as_ref().map_or(500, R::status)
    }

    fn is_handler_error(&self) -> bool {
        self.as_ref().map_or(true, R::is_handler_error)
    }
}

/// The response of a framework whose response type flash-core cannot name (its own type, or
/// `http` 0.2's): its status, whether it is the handler's error, and its headers.
///
/// ```
/// use flash_core::adapter::Answer;
/// let mut headers = http::HeaderMap::new();
/// let answer = Answer::new(503, false, &mut headers);
/// # use flash_core::adapter::HandlerResponse;
/// assert!(answer.failed());
/// ```
#[derive(Debug)]
pub struct Answer<H> {
    status: u16,
    handler_error: bool,
    headers: H,
}

impl<H: ResponseHeaders> Answer<H> {
    /// The response's `status`, whether it is the `handler_error` the framework turned into
    /// a response, and its `headers`.
    pub fn new(status: u16, handler_error: bool, headers: H) -> Self {
        Answer {
            status,
            handler_error,
            headers,
        }
    }
}

impl<H: ResponseHeaders> ResponseHeaders for Answer<H> {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        self.headers.for_each_value(name, each);
    }

    fn append(&mut self, name: &'static str, value: &[u8]) {
        self.headers.append(name, value);
    }

    fn insert(&mut self, name: &'static str, value: &[u8]) {
        self.headers.insert(name, value);
    }

    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        self.headers.insert_static(name, value);
    }

    fn as_http(&mut self) -> Option<&mut HeaderMap> {
        self.headers.as_http()
    }
}

impl<H: ResponseHeaders> HandlerResponse for Answer<H> {
    fn status(&self) -> u16 {
        self.status
    }

    fn is_handler_error(&self) -> bool {
        self.handler_error
    }
}

impl<H: ResponseHeaders + ?Sized> ResponseHeaders for &mut H {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        (**self).for_each_value(name, each);
    }

    fn append(&mut self, name: &'static str, value: &[u8]) {
        (**self).append(name, value);
    }

    fn insert(&mut self, name: &'static str, value: &[u8]) {
        (**self).insert(name, value);
    }

    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        (**self).insert_static(name, value);
    }

    fn as_http(&mut self) -> Option<&mut HeaderMap> {
        (**self).as_http()
    }
}

/// Implements flash-core's header traits for a framework whose header types have the `http`
/// crate's API under another version of the crate (actix-web 4 uses `http` 0.2):
/// `http_like_headers!(Headers, HeadersMut, actix_web::http::header)` defines
/// `Headers<'a>(&'a HeaderMap)`, a [`RequestHeaders`](crate::adapter::RequestHeaders), and
/// `HeadersMut<'a>(&'a mut HeaderMap)`, a
/// [`ResponseHeaders`](crate::adapter::ResponseHeaders), over that module's `HeaderMap`
/// (`get_all`, `append`, `insert`), `HeaderName::from_static` and `HeaderValue`
/// (`from_bytes`, `from_static`, `as_bytes`). Names are looked up as static names (a lookup
/// by `&str` of a non-standard name allocates) and static values are borrowed, not copied.
#[macro_export]
macro_rules! http_like_headers {
    ($request:ident, $response:ident, $($module:ident)::+) => {
        /// The framework's request headers as flash-core reads them.
        struct $request<'a>(&'a $($module)::+::HeaderMap);

        impl $crate::adapter::RequestHeaders for $request<'_> {
            fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
                let name = $($module)::+::HeaderName::from_static(name);
                self.0.get_all(name).for_each(|value| each(value.as_bytes()));
            }
        }

        /// The framework's response headers as flash-core reads and writes them.
        struct $response<'a>(&'a mut $($module)::+::HeaderMap);

        impl $crate::adapter::ResponseHeaders for $response<'_> {
            fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
                let name = $($module)::+::HeaderName::from_static(name);
                self.0.get_all(name).for_each(|value| each(value.as_bytes()));
            }

            fn append(&mut self, name: &'static str, value: &[u8]) {
                if let Ok(value) = $($module)::+::HeaderValue::from_bytes(value) {
                    let name = $($module)::+::HeaderName::from_static(name);
                    self.0.append(name, value);
                }
            }

            fn insert(&mut self, name: &'static str, value: &[u8]) {
                if let Ok(value) = $($module)::+::HeaderValue::from_bytes(value) {
                    let name = $($module)::+::HeaderName::from_static(name);
                    self.0.insert(name, value);
                }
            }

            fn insert_static(&mut self, name: &'static str, value: &'static str) {
                let value = $($module)::+::HeaderValue::from_static(value);
                self.0.insert($($module)::+::HeaderName::from_static(name), value);
            }
        }
    };
}
