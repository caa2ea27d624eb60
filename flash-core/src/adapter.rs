//! The adapter contract: what a framework adapter does, and the rules flash-core applies for it.
//!
//! # What an adapter does
//!
//! 1. **Its middleware type** is `From<Adapter>`: the application sets every option
//!    ([`Adapter::on_error`], [`Adapter::htmx`]) on the one [`Adapter`], for every framework.
//!    [`adapter_types!`](crate::adapter_types) defines it and the extractor type (which
//!    dereferences to [`Messages`]) the same way in every adapter.
//! 2. **Its middleware, when a request arrives:** `let in_flight =
//!    adapter.begin_in(request.extensions_mut());` ([`Adapter::begin_in`]; for a framework with
//!    its own extensions, [`Adapter::begin`] and put `in_flight.slot()`, a [`Slot`], in them).
//! 3. **Its extractor:** `RequestParts::http(method, uri, &headers, &extensions)
//!    .messages("the middleware's name")` returns the request's handle ([`Messages`]), made on
//!    the first call from everything the framework has of the request, or a
//!    [`MissingMiddleware`] when no middleware ran (answer it with a `500`:
//!    [`MissingMiddleware::into_response`]).
//! 4. **Its middleware, when the handler has answered:** return
//!    `in_flight.around(handler_future)` as the middleware's future ([`InFlight::around`]: no
//!    allocation), or `in_flight.finish(response).await`, or [`InFlight::finish_headers`] from
//!    an `async fn`, with the response the handler returned, or the response the handler's
//!    error became: never skipped, never `?`-ed past.
//!
//! That is all: an adapter copies no extensions, parses no header, decides nothing. A framework
//! whose types are not `http` 1.x wraps its headers ([`RequestHeaders`], [`ResponseHeaders`];
//! [`http_like_headers!`](crate::http_like_headers) writes them for `http` 0.2-style maps) and
//! shows its response as an [`Answer`] through a [`ForeignResponse`], for
//! [`InFlight::around_with`] (its middleware's future then stays unboxed, as with `around`).
//! The adapter kit (`flash-testkit`) checks each rule below through the framework itself.
//!
//! # The rules flash-core applies
//!
//! - **Reading the request.** The `Cookie` headers (as bytes: another cookie's non-ASCII bytes
//!   never hide flash's); a prefetch (`Sec-Purpose`/`Purpose: prefetch`), a `HEAD` and an
//!   `OPTIONS` request only look: their reads see nothing and consume nothing, with no storage
//!   call (a link checker, a monitor or a CORS preflight never takes a page's messages); htmx's
//!   `HX-Request`, `HX-Boosted` and `HX-History-Restore-Request` when [`Htmx`] delivery is on.
//! - **Extensions, without a cycle.** The request's extensions are copied into the handle only
//!   when the storage reads them ([`Storage::uses_extensions`], a session), at the handler's
//!   first use. The [`Slot`] holds the request's state weakly, and only the [`InFlight`] the
//!   middleware keeps owns it: no copy of the extensions can keep the handle alive, and the
//!   handle and the copied extensions are freed when the request ends.
//! - **What was added is not lost**, whatever the response: a `4xx`, a `5xx` or the handler's
//!   error all save what the handler added.
//! - **What a failed request read is not consumed.** A request failed when its status is `5xx`
//!   or its handler returned an error ([`HandlerResponse::failed`]): its page was not shown, so
//!   what it read stays for the next page (a keyed store's lease is released, untouched,
//!   before the response is served; a cookie is rewritten unchanged). A `4xx` page is a page
//!   (a form shown again with its errors): what it read is consumed. Where a framework has no
//!   handler error distinct from a response (axum: a handler's `Err` is a response), its status
//!   alone decides. A failed request delivers nothing to htmx: its messages stay stored.
//! - **A page that redirects hands on what was addressed to it**, read or not asked for: a
//!   `GET` page load answered with a redirect re-addresses the messages addressed to its page
//!   to the redirect's target ([`Addressing`](crate::Addressing)), even when the handler never
//!   took its handle, when the middleware began with [`Adapter::begin_with`]; with no store
//!   call when nothing is addressed to it (the [`HINT_COOKIE`] says so).
//! - **`Vary: Cookie`** on every response whose messages were read or written, error responses
//!   included, merged into the handler's `Vary`; `Cache-Control: private, no-store` with a
//!   flash cookie.
//! - **The storage is done when the response is served**: the save (a keyed store's settle or
//!   release) completes inside [`InFlight::finish`], never in a task left behind, so the next
//!   request of the client sees its outcome.
//! - A failed save is logged (target `flash_core::adapter`, level `ERROR`), handed to
//!   [`Adapter::on_error`], and the response served all the same.
//!
//! A framework whose middleware can see no response at all (a tower service's `Err`) has no
//! response to carry a cookie; its adapter ends the request with a stand-in `500` response, so
//! the storage is still settled (nothing consumed, a keyed store keeps what was added) and
//! only the cookie's part is lost with the response that never was.
//!
//! ```
//! use std::sync::Arc;
//! use flash_core::adapter::{Adapter, RequestParts, Slot};
//! use flash_core::storage::{ServerStorage, MemoryStore};
//! use flash_core::Key;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let adapter = Adapter::new(Arc::new(ServerStorage::new(MemoryStore::new(), Key::generate())));
//! // The middleware: a request arrives.
//! let mut request = http::Request::post("/articles").body(()).unwrap();
//! let in_flight = adapter.begin();
//! request.extensions_mut().insert(in_flight.slot());
//!
//! // The extractor, in the handler.
//! let (parts, ()) = request.into_parts();
//! let slot = parts.extensions.get::<Slot>().unwrap();
//! let messages = slot.messages(RequestParts::from(&parts)).unwrap();
//! messages.success("Saved.");
//!
//! // The middleware: the handler answered.
//! let response = http::Response::builder().status(303).body(()).unwrap();
//! let response = in_flight.finish(response).await;
//! assert!(response.headers().contains_key("set-cookie"));
//! assert_eq!(response.headers()["vary"], "Cookie");
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};

pub use crate::address::{HINT_COOKIE, HINT_MAX_PAGES};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::message_list::MessageList;
use crate::messages::{Messages, MessagesConfig, SaveReport};
use crate::storage::{Incoming, Storage};
use crate::storage_trait::header_name;
pub use crate::storage_trait::{PREFETCH_HEADERS, is_page_load, is_prefetch};

mod request;

use crate::view::MessageView;
pub use request::{
    Answer, Around, AsIs, Finishing, ForeignResponse, HandlerResponse, InFlight, MissingMiddleware,
    RequestHeaders, RequestParts, Slot,
};

/// The response headers of one request as an adapter exposes them to [`InFlight::finish`]:
/// header lines as a lowercase name and the value's bytes, so a framework with its own header
/// types (actix-web 4 uses `http` 0.2) needs no conversion of whole maps.
///
/// flash writes only valid header values (visible ASCII), under the names `set-cookie`,
/// `vary`, `cache-control` and, with [`Htmx`] delivery, `hx-trigger`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a response header map flash can write to",
    note = "implement `flash_core::adapter::ResponseHeaders` for a wrapper around your framework's response headers"
)]
pub trait ResponseHeaders {
    /// Calls `each` with every value of the header `name`, in order.
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8]));

    /// Adds a line `name: value`, keeping the lines already there.
    fn append(&mut self, name: &'static str, value: &[u8]);

    /// Replaces every line of `name` with one line `name: value`.
    fn insert(&mut self, name: &'static str, value: &[u8]);

    /// [`ResponseHeaders::insert`] of a value known at compile time (`Vary: Cookie`,
    /// `Cache-Control: private, no-store`): a map whose values can borrow static bytes
    /// overrides it to skip copying them (one allocation per line). Default: `insert`.
    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        self.insert(name, value.as_bytes());
    }

    /// The headers as an `http` 1.x map, when they are one: storages then write into it
    /// directly instead of through a scratch map. Default: `None`.
    fn as_http(&mut self) -> Option<&mut HeaderMap> {
        None
    }
}

impl ResponseHeaders for HeaderMap {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        for value in self.get_all(header_name(name)) {
            each(value.as_bytes());
        }
    }

    fn append(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            HeaderMap::append(self, header_name(name), value);
        }
    }

    fn insert(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            HeaderMap::insert(self, header_name(name), value);
        }
    }

    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        HeaderMap::insert(self, header_name(name), HeaderValue::from_static(value));
    }

    fn as_http(&mut self) -> Option<&mut HeaderMap> {
        Some(self)
    }
}

/// Defines an adapter's public types, the same in every framework: its middleware type,
/// holding the [`Adapter`] (`new(storage)` and `From<Adapter>`: contract rule 1), optionally
/// the service it wraps around the application (the inner service and the [`Adapter`], in
/// fields named by the adapter; the middleware's private `wrap(inner)` makes it), a re-export
/// of [`Adapter`] (so an application sets options through the adapter crate alone), and its
/// extractor, holding the request's [`Messages`] (it
/// dereferences to them). The adapter then implements its framework's middleware, service and
/// extractor traits on them.
///
/// Each type keeps the attributes and docs written before it; all are `Clone` and `Debug`
/// (the service when its inner service is).
/// The extractor gets a private `extract(parts)`: the request's handle
/// ([`RequestParts::messages`]), or the [`MissingMiddleware`] naming the middleware type by its
/// path.
///
/// ```
/// mod my_framework {
///     flash_core::adapter_types! {
///         /// The middleware.
///         pub struct FlashMiddleware(Adapter);
///
///         /// What the middleware wraps around the application.
///         pub struct FlashService<S> { service: S, adapter: Adapter }
///
///         /// The extractor.
///         pub struct Flash(Messages);
///     }
/// }
/// use std::sync::Arc;
/// use flash_core::{Key, storage::{MemoryStore, ServerStorage}};
/// let storage = Arc::new(ServerStorage::new(MemoryStore::new(), Key::generate()));
/// let adapter = flash_core::adapter::Adapter::new(storage.clone());
/// let (_plain, _with_options) = (
///     my_framework::FlashMiddleware::new(storage),
///     my_framework::FlashMiddleware::from(adapter.on_error(|err| eprintln!("{err}"))),
/// );
/// ```
#[macro_export]
macro_rules! adapter_types {
    (
        $(#[$middleware_attr:meta])*
        $middleware_vis:vis struct $middleware:ident(Adapter);

        $(#[$service_attr:meta])*
        $service_vis:vis struct $service:ident<$inner_type:ident> {
            $inner:ident: $inner_type_again:ident,
            $adapter:ident: Adapter $(,)?
        }

        $(#[$extractor_attr:meta])*
        $extractor_vis:vis struct $extractor:ident(Messages);
    ) => {
        $(#[$service_attr])*
        #[derive(Clone, Debug)]
        $service_vis struct $service<$inner_type> {
            $inner: $inner_type_again,
            $adapter: $crate::adapter::Adapter,
        }

        impl $middleware {
            /// The service this middleware wraps around `inner`.
            fn wrap<$inner_type>(&self, inner: $inner_type) -> $service<$inner_type> {
                $service {
                    $inner: inner,
                    $adapter: ::std::clone::Clone::clone(&self.0),
                }
            }
        }

        $crate::adapter_types! {
            $(#[$middleware_attr])*
            $middleware_vis struct $middleware(Adapter);

            $(#[$extractor_attr])*
            $extractor_vis struct $extractor(Messages);
        }
    };
    (
        $(#[$middleware_attr:meta])*
        $middleware_vis:vis struct $middleware:ident(Adapter);

        $(#[$extractor_attr:meta])*
        $extractor_vis:vis struct $extractor:ident(Messages);
    ) => {
        /// The framework-neutral half of the middleware, with the application's options.
        pub use $crate::adapter::Adapter;

        $(#[$middleware_attr])*
        #[derive(Clone, Debug)]
        $middleware_vis struct $middleware($crate::adapter::Adapter);

        impl $middleware {
            /// A middleware over `storage`, with Django's defaults and no other option (the
            /// options are set on an `Adapter`, made into the middleware with `from`).
            pub fn new(storage: ::std::sync::Arc<dyn $crate::storage::Storage>) -> Self {
                $middleware($crate::adapter::Adapter::new(storage))
            }
        }

        impl ::std::convert::From<$crate::adapter::Adapter> for $middleware {
            fn from(adapter: $crate::adapter::Adapter) -> Self {
                $middleware(adapter)
            }
        }

        $(#[$extractor_attr])*
        #[derive(Clone, Debug)]
        $extractor_vis struct $extractor($crate::Messages);

        impl $extractor {
            /// The request's handle from its `parts`, or the error naming the middleware to add.
            #[allow(dead_code, reason = "for the adapter's extractor, which may not need it")]
            fn extract(
                parts: $crate::adapter::RequestParts<'_>,
            ) -> ::std::result::Result<Self, $crate::adapter::MissingMiddleware> {
                let middleware = ::std::concat!(::std::module_path!(), "::", ::std::stringify!($middleware));
                parts.messages(middleware).map($extractor)
            }
        }

        impl ::std::ops::Deref for $extractor {
            type Target = $crate::Messages;

            fn deref(&self) -> &$crate::Messages {
                &self.0
            }
        }
    };
}

type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;

/// The settings every request of one application shares: the storage, the messages settings, the
/// error hook and htmx delivery.
#[derive(Clone)]
struct AdapterSettings {
    storage: Arc<dyn Storage>,
    config: Arc<MessagesConfig>,
    uses_extensions: bool,
    on_error: Option<ErrorHook>,
    htmx: Option<Htmx>,
    /// The storage reads request extensions and an adapter handed none: said once.
    told_no_extensions: Arc<AtomicBool>,
}

/// What every request of one application shares, and the rules that end a request: the
/// framework-neutral half of every adapter. A cheap clone.
///
/// ```
/// use std::sync::Arc;
/// use flash_core::{Key, MessagesConfig};
/// use flash_core::adapter::{Adapter, RequestParts};
/// use flash_core::storage::{ServerStorage, MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let storage = ServerStorage::new(MemoryStore::new(), Key::generate());
/// let adapter = Adapter::new(Arc::new(storage))
///     .on_error(|err| eprintln!("flash messages lost: {err}"));
///
/// let in_flight = adapter.begin();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cookie", "theme=dark".parse().unwrap());
/// let messages = in_flight.slot().messages(RequestParts::new("POST", &headers, None)).unwrap();
/// messages.success("Saved.");
/// let mut response = http::HeaderMap::new();
/// response.insert("vary", "Accept-Encoding".parse().unwrap());
/// let report = in_flight.finish_headers(303, false, &mut response).await;
/// assert!(report.saved && report.cookie_set);
/// assert_eq!(response["vary"], "Accept-Encoding, Cookie");
/// assert_eq!(response["cache-control"], "private, no-store");
/// # });
/// ```
#[derive(Clone)]
pub struct Adapter {
    shared: Arc<AdapterSettings>,
}

impl Adapter {
    /// An adapter over `storage` with Django's defaults (minimum level `INFO`, Django's tags,
    /// flash's [`Limits`](crate::Limits)); [`with_config`](Adapter::with_config) changes them.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Adapter {
            shared: Arc::new(AdapterSettings {
                uses_extensions: storage.uses_extensions(),
                storage,
                config: Arc::new(MessagesConfig::default()),
                on_error: None,
                htmx: None,
                told_no_extensions: Arc::default(),
            }),
        }
    }

    /// Sets the application's settings: minimum level, tags, limits, addressing.
    #[must_use]
    pub fn with_config(self, config: impl Into<Arc<MessagesConfig>>) -> Self {
        let config = config.into();
        self.with(|settings| settings.config = config)
    }

    /// Calls `hook` with every error of saving messages at the response (after logging it), to
    /// count or alert, and with every failure a save recovered from
    /// ([`SaveReport::degraded`]). The response is served regardless.
    ///
    /// Every adapter is made from an `Adapter` (`FlashLayer::from(adapter)`,
    /// `FlashMiddleware::from(adapter)`): the application sets its options here, once.
    #[must_use]
    pub fn on_error(self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.with(|settings| settings.on_error = Some(Arc::new(hook)))
    }

    /// Delivers messages to htmx requests in `HX-Trigger` (opt-in; see [`Htmx`] for the
    /// rule): the handle reads the request's htmx headers when it is made.
    #[must_use]
    pub fn htmx(self, htmx: Htmx) -> Self {
        self.with(|settings| settings.htmx = Some(htmx))
    }

    fn with(self, change: impl FnOnce(&mut AdapterSettings)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        change(&mut shared);
        Adapter {
            shared: Arc::new(shared),
        }
    }

    /// Says once that the storage reads request extensions (a session) but the adapter handed
    /// none: its messages cannot load.
    pub(crate) fn no_extensions(&self) {
        if !self.shared.told_no_extensions.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "this flash storage keeps messages in a request extension (a session), but the \
                 adapter hands over no request extensions: its messages will not load (with \
                 actix-web, enable flash-actix's `actix-session` feature and wrap \
                 actix_session::SessionMiddleware outside FlashMiddleware)"
            );
        }
    }

    /// The htmx delivery settings, when [`Adapter::htmx`] turned it on.
    pub fn htmx_settings(&self) -> Option<&Htmx> {
        self.shared.htmx.as_ref()
    }

    /// Notes in `incoming` which kind of htmx request this is, from the request's headers
    /// (`header` returns the first value of a lowercase header name), when htmx delivery is on.
    #[cfg(test)]
    pub(crate) fn capture_htmx<'h>(
        &self,
        incoming: &mut Incoming,
        header: impl Fn(&'static str) -> Option<&'h [u8]>,
    ) {
        if self.shared.htmx.is_some() {
            capture_htmx_kind(incoming, HtmxRequest::from_header_fn(header));
        }
    }

    /// The application's settings.
    pub fn config(&self) -> &MessagesConfig {
        &self.shared.config
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.shared.storage
    }

    /// Whether the storage reads request extensions (a session): [`Slot::messages`] then
    /// copies the request's extensions into the handle.
    pub fn uses_extensions(&self) -> bool {
        self.shared.uses_extensions
    }

    /// A handle outside any request's adapter flow (a test, a job): `incoming` as given, no
    /// htmx, no end rules. Adapters make handles with [`Slot::messages`] instead.
    pub fn messages(&self, incoming: Incoming) -> Messages {
        Messages::new(
            self.shared.storage.clone(),
            incoming,
            self.shared.config.clone(),
        )
    }

    /// Ends the request without waiting when that is possible; `None` when the storage must be
    /// awaited (then call [`Adapter::finish`]).
    #[cfg(test)]
    pub(crate) fn finish_now<H>(&self, messages: &Messages, response: &mut H) -> Option<Finished>
    where
        H: ResponseHeaders + ?Sized,
    {
        if messages.needs_save() {
            self.shared.storage.immediate()?;
        }
        self.end_now(messages, false, response).ok()
    }

    /// Ends a request that did not fail: [`Adapter::end`].
    #[cfg(test)]
    pub(crate) async fn finish<H>(&self, messages: &Messages, response: &mut H) -> Finished
    where
        H: ResponseHeaders + ?Sized,
    {
        self.end(messages, false, response).await
    }

    /// Ends the request: applies the failure rule (a failed request consumes nothing), delivers
    /// to htmx, saves what the handle says must be saved (nothing, and no storage call, when
    /// the handler neither read nor added), writes the storage's `Set-Cookie` lines, merges
    /// `Vary: Cookie` into the handler's `Vary` when messages were read or written (and when
    /// the save failed), sets `Cache-Control: private, no-store` when a flash cookie was set,
    /// logs dropped messages, and logs a failed save through `tracing` (target
    /// `flash_core::adapter`, level `ERROR`) and hands it to the [`Adapter::on_error`] hook.
    /// The response is always to be served.
    pub(crate) async fn end<H>(
        &self,
        messages: &Messages,
        failed: bool,
        response: &mut H,
    ) -> Finished
    where
        H: ResponseHeaders + ?Sized,
    {
        match self.end_now(messages, failed, response) {
            Ok(finished) => finished,
            Err(waiting) => {
                let detached = waiting.run(messages.clone()).await;
                self.apply(detached, response)
            }
        }
    }

    /// Everything of [`Adapter::end`] that needs no waiting; what is left when the storage must
    /// be awaited (nothing of it done yet but the synchronous htmx delivery of added messages).
    fn end_now<H>(
        &self,
        messages: &Messages,
        failed: bool,
        response: &mut H,
    ) -> std::result::Result<Finished, Waiting>
    where
        H: ResponseHeaders + ?Sized,
    {
        if failed {
            // The page that read them was not shown: nothing is consumed.
            messages.keep();
        }
        // A redirect addresses what the request added to the redirect's page, and hands on
        // what was for this page and not read: loaded first.
        let load_first = !failed && redirecting(messages, response) && self.loads_first(messages);
        let (delivered, pending) = if failed || self.shared.htmx.is_none() {
            (0, false)
        } else {
            self.deliver_now(messages, response)
        };
        if !pending
            && !load_first
            && let Some(mut finished) = self.finish_now_saving(messages, response)
        {
            finished.delivered = delivered;
            return Ok(finished);
        }
        // The handler's `HX-Trigger`, which a delivery after the read merges with.
        let mut triggers = HeaderMap::new();
        if pending {
            response.for_each_value("hx-trigger", &mut |value| {
                ResponseHeaders::append(&mut triggers, "hx-trigger", value);
            });
        }
        Err(Waiting {
            adapter: self.clone(),
            delivered,
            pending,
            load_first,
            triggers,
        })
    }

    /// Whether the redirect's hand-on must wait for a load; a storage that never waits loads
    /// here, at the first poll.
    // Out of `end_now`'s way, as the htmx delivery is: most requests neither redirect nor
    // come from htmx (BENCHMARKS.md, issue 21.5).
    #[inline(never)]
    fn loads_first(&self, messages: &Messages) -> bool {
        if self.shared.storage.immediate().is_none() {
            return true;
        }
        let mut load = std::pin::pin!(messages.load_for_redirect());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        load.as_mut().poll(&mut cx).is_pending()
    }

    /// The htmx delivery that needs no waiting: how many were delivered, and whether a read
    /// is left pending.
    #[inline(never)]
    fn deliver_now<H>(&self, messages: &Messages, response: &mut H) -> (usize, bool)
    where
        H: ResponseHeaders + ?Sized,
    {
        match self.htmx_delivery(messages) {
            Delivery::None => (0, false),
            Delivery::Added => (self.deliver_added(messages, response), false),
            Delivery::Pending if self.shared.storage.immediate().is_some() => {
                // A storage that never waits loads at the first poll.
                let mut read = std::pin::pin!(messages.read());
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match read.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(result) => {
                        (self.deliver_read(messages, result, response), false)
                    }
                    std::task::Poll::Pending => (0, true),
                }
            }
            Delivery::Pending => (0, true),
        }
    }

    /// Writes what the waiting part of [`Adapter::end`] did into the response.
    fn apply<H>(&self, detached: Detached, response: &mut H) -> Finished
    where
        H: ResponseHeaders + ?Sized,
    {
        let mut delivered = detached.delivered;
        if let Some((value, count)) = &detached.delivery {
            deliver(response, value);
            delivered += count;
        }
        let cookie_set = copy_cookies(&detached.scratch, response);
        let mut finished = self.shape(detached.saved, cookie_set, response);
        finished.delivered = delivered;
        finished
    }

    fn finish_now_saving<H>(&self, messages: &Messages, response: &mut H) -> Option<Finished>
    where
        H: ResponseHeaders + ?Sized,
    {
        if !messages.needs_save() {
            return Some(Finished::default());
        }
        self.shared.storage.immediate()?;
        let (result, cookie_set) = match response.as_http() {
            Some(map) => {
                // A storage writes only `Set-Cookie` lines (`Storage::save`): a longer map is
                // a cookie set, told without looking the name up twice.
                let before = map.len();
                let result = messages.save_now(map)?;
                (result, map.len() > before)
            }
            None => {
                // A scratch map kept per thread between requests, emptied after each use: its
                // tables are allocated once, not on every request of a non-`http` framework.
                let mut scratch = SCRATCH.take().unwrap_or_default();
                let saved = messages
                    .save_now(&mut scratch)
                    .map(|result| (result, copy_cookies(&scratch, response)));
                scratch.clear();
                SCRATCH.set(Some(scratch));
                saved?
            }
        };
        Some(self.shape(result, cookie_set, response))
    }

    /// Which htmx delivery this request gets.
    fn htmx_delivery(&self, messages: &Messages) -> Delivery {
        if self.shared.htmx.is_none() || messages.is_consumed() {
            return Delivery::None;
        }
        match messages.incoming().extensions().get::<HtmxSlot>() {
            Some(slot) if slot.0.kind.is_partial() => {
                if slot.0.pending.load(Ordering::Relaxed) {
                    Delivery::Pending
                } else {
                    Delivery::Added
                }
            }
            _ => Delivery::None,
        }
    }

    /// Moves the messages the handler added into `HX-Trigger` when they fit; how many.
    fn deliver_added<H: ResponseHeaders + ?Sized>(
        &self,
        messages: &Messages,
        response: &mut H,
    ) -> usize {
        let Some(htmx) = &self.shared.htmx else {
            return 0;
        };
        let tags = self.shared.config.level_tags();
        let header = messages.take_added_with(|added| {
            let views: Vec<MessageView> = added.iter().map(|m| m.view(tags)).collect();
            htmx.trigger(response, &views)
                .map(|value| (value, views.len()))
        });
        match header {
            Some((value, count)) => {
                deliver(response, &value);
                count
            }
            None => 0,
        }
    }

    /// Delivers what a read found (pending and added) in `HX-Trigger` when it fits, else
    /// undoes the read so everything stays stored; how many were delivered.
    fn deliver_read<H: ResponseHeaders + ?Sized>(
        &self,
        messages: &Messages,
        read: Result<MessageList>,
        response: &mut H,
    ) -> usize {
        match self.trigger_for(messages, read, response) {
            Some((value, count)) => {
                deliver(response, &value);
                count
            }
            None => 0,
        }
    }

    /// The `HX-Trigger` value carrying what a read found, merged with the handler's (in
    /// `response`), and how many messages; `None`, with the read undone when there was
    /// something to deliver, when it does not fit.
    fn trigger_for<H: ResponseHeaders + ?Sized>(
        &self,
        messages: &Messages,
        read: Result<MessageList>,
        response: &H,
    ) -> Option<(String, usize)> {
        if let (Some(_), Err(err)) = (&self.shared.htmx, &read) {
            // Nothing was consumed: the messages stay pending for the next page; say so.
            tracing::warn!(
                error = %err,
                "flash: reading the pending messages for htmx delivery failed; they stay pending"
            );
        }
        let (Some(htmx), Ok(read)) = (&self.shared.htmx, read) else {
            // A failed load consumed nothing: the save reports what it must.
            return None;
        };
        if read.is_empty() {
            return None;
        }
        let views = read.views(self.shared.config.level_tags());
        match htmx.trigger(response, &views) {
            Some(value) => Some((value, views.len())),
            None => {
                messages.keep();
                None
            }
        }
    }

    /// The rules of the response after a save.
    fn shape<H>(&self, result: Result<SaveReport>, cookie_set: bool, response: &mut H) -> Finished
    where
        H: ResponseHeaders + ?Sized,
    {
        let mut finished = Finished {
            cookie_set,
            ..Finished::default()
        };
        match result {
            Ok(report) => {
                finished.vary = report.vary;
                finished.saved = report.saved;
                finished.refused = report.refused;
                if !report.dropped.is_empty() || report.degraded.is_some() {
                    self.report_loss(report.dropped, report.degraded, &mut finished);
                }
            }
            Err(err) => self.report_failure(err, &mut finished),
        }
        if finished.vary {
            vary_on_cookie(response);
        }
        if cookie_set {
            response.insert_static("cache-control", "private, no-store");
        }
        finished
    }
}

impl Adapter {
    // The rare outcomes of a save live out of `shape`'s way: a request that saved as asked
    // runs through fewer cache lines (BENCHMARKS.md, issue 21.5).
    #[cold]
    #[inline(never)]
    fn report_loss(&self, dropped: Vec<Message>, degraded: Option<Error>, finished: &mut Finished) {
        if !dropped.is_empty() {
            tracing::warn!(
                dropped = dropped.len(),
                "flash messages dropped: they do not fit the storage or the client's limits"
            );
        }
        finished.dropped = dropped;
        // Saved all the same (a keyed store down, the messages carried in a cookie),
        // and logged by the storage: the application still hears of it.
        if let Some(err) = degraded {
            if let Some(hook) = &self.shared.on_error {
                hook(&err);
            }
            finished.degraded = Some(err);
        }
    }

    #[cold]
    #[inline(never)]
    fn report_failure(&self, err: Error, finished: &mut Finished) {
        tracing::error!(error = %err, source = ?std::error::Error::source(&err),
            "flash messages could not be saved; the response is served without them");
        if let Some(hook) = &self.shared.on_error {
            hook(&err);
        }
        // What the handler showed may still depend on the cookie.
        finished.vary = true;
        finished.error = Some(err);
    }
}

impl fmt::Debug for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter")
            .field("config", &self.shared.config)
            .field("uses_extensions", &self.shared.uses_extensions)
            .field("on_error", &self.shared.on_error.is_some())
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The scratch map of [`Adapter::finish_now`] for response headers that are not an `http`
    /// map; always empty between uses.
    static SCRATCH: std::cell::Cell<Option<HeaderMap>> = const { std::cell::Cell::new(None) };
}

/// Copies the `Set-Cookie` lines a storage wrote into a scratch map; whether there were any.
fn copy_cookies<H: ResponseHeaders + ?Sized>(scratch: &HeaderMap, response: &mut H) -> bool {
    let mut any = false;
    for value in scratch.get_all(SET_COOKIE) {
        response.append("set-cookie", value.as_bytes());
        any = true;
    }
    any
}

/// What [`InFlight::finish`] did to the response, so an adapter needs to inspect no header.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Finished {
    /// The storage was called.
    pub saved: bool,
    /// A flash cookie was set (and `Cache-Control: private, no-store` with it).
    pub cookie_set: bool,
    /// `Vary: Cookie` is on the response (merged into the handler's `Vary`).
    pub vary: bool,
    /// Messages the storage could not keep (size limit, or the client's limits), oldest first;
    /// logged at `WARN`.
    pub dropped: Vec<Message>,
    /// How many messages `add` refused: beyond the application's limits, or carrying data the
    /// storage cannot keep (see [`Refused`](crate::Refused); `add` logged each).
    pub refused: usize,
    /// How many messages were delivered in `HX-Trigger` ([`Htmx`]) instead of being stored.
    pub delivered: usize,
    /// The save failed: logged, passed to the hook, and the response served without it.
    pub error: Option<Error>,
    /// The save succeeded but recovered from a failure ([`SaveReport::degraded`]): passed to
    /// the hook as a failed save is.
    pub degraded: Option<Error>,
}

impl Finished {
    /// Whether nothing was done: the handler neither read nor added.
    pub fn is_idle(&self) -> bool {
        !self.saved
            && !self.cookie_set
            && !self.vary
            && self.error.is_none()
            && self.degraded.is_none()
            && self.delivered == 0
    }
}

/// Adds `Cookie` to the response's `Vary`, merged into the one line the handler set (or its
/// lines joined into one), never twice: nothing changes when `Vary` already names `Cookie` or
/// is `*`. [`InFlight::finish`] calls it; it is public for responses made outside the handler.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.append("vary", "Accept-Encoding".parse().unwrap());
/// headers.append("vary", "Origin".parse().unwrap());
/// flash_core::adapter::vary_on_cookie(&mut headers);
/// flash_core::adapter::vary_on_cookie(&mut headers);
/// assert_eq!(headers.get_all("vary").iter().collect::<Vec<_>>(), ["Accept-Encoding, Origin, Cookie"]);
/// ```
pub fn vary_on_cookie<H: ResponseHeaders + ?Sized>(response: &mut H) {
    let mut lines = 0usize;
    let mut covered = false;
    let mut merged: Vec<u8> = Vec::new();
    response.for_each_value("vary", &mut |value| {
        covered |= value
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|token| token == b"*" || token.eq_ignore_ascii_case(b"cookie"));
        let value = value.trim_ascii();
        if value.is_empty() {
            return;
        }
        if lines > 0 {
            merged.extend_from_slice(b", ");
        }
        merged.extend_from_slice(value);
        lines += 1;
    });
    if covered {
        return;
    }
    if lines == 0 {
        response.insert_static("vary", "Cookie");
        return;
    }
    merged.extend_from_slice(b", Cookie");
    response.insert("vary", &merged);
}

/// Delivery of messages to htmx requests in the `HX-Trigger` response header: opt-in, with
/// [`Adapter::htmx`] (or the adapters' `htmx` option).
///
/// The rule, the same in every adapter:
/// - A request sent by htmx (`HX-Request: true`) whose handler did not read its messages gets
///   the ones the handler added (its [`Messages::add_now`] ones too) as one event, named
///   [`Htmx::event`] (default `messages`), whose detail is the list of [`MessageView`]s. They
///   are not stored. htmx wraps a detail that is not an object, so a listener reads
///   `event.detail.value`:
///   `document.body.addEventListener("messages", e => e.detail.value.forEach(show))`.
/// - The event is merged into an `HX-Trigger` the handler set, in its JSON object form
///   (`{"saved": {"id": 7}}`) or its comma-list form (`saved, closeModal`, whose names become
///   keys with a `null` detail). When the handler's header cannot be merged (not JSON, an
///   object already holding the event's name, or lines of both forms), or when the merged
///   value would be longer than [`Htmx::max_header_bytes`] (default 4096 bytes: proxies and
///   servers commonly cap one header line near 4–8 KiB), the messages stay stored instead,
///   for the next page, and the handler's header is left as it was.
/// - Messages pending from earlier requests are **not** taken: a polling or unrelated htmx
///   request never takes a message meant for the page a redirect leads to. A handler opts in
///   for its route with [`Messages::deliver_pending_to_htmx`]; the pending messages then ride
///   along, consumed exactly as a read consumes them (lease and settle on server stores), or,
///   when they would not fit, left stored as they were.
/// - Boosted requests (`HX-Boosted`) and history restores (`HX-History-Restore-Request`) are
///   full pages: left to the template. Requests without `HX-Request: true` are untouched.
/// - A response that delivered messages gets `Cache-Control: private, no-store` and
///   `Vary: Cookie`: it is one user's.
///
/// The value is JSON with every non-ASCII character escaped (`\u00e9`), so it is a valid
/// header value that htmx decodes exactly.
///
/// ```
/// use std::sync::Arc;
/// use flash_core::{Htmx, Key, MessagesConfig};
/// use flash_core::adapter::{Adapter, RequestParts};
/// use flash_core::storage::{ServerStorage, MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let storage = ServerStorage::new(MemoryStore::new(), Key::generate());
/// let adapter = Adapter::new(Arc::new(storage)).htmx(Htmx::new());
///
/// let in_flight = adapter.begin();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("hx-request", "true".parse().unwrap());
/// let messages = in_flight.slot().messages(RequestParts::new("POST", &headers, None)).unwrap();
/// messages.success("Saved.");
/// let mut response = http::HeaderMap::new();
/// response.insert("hx-trigger", "closeModal".parse().unwrap());
/// let finished = in_flight.finish_headers(200, false, &mut response).await;
/// assert_eq!(finished.delivered, 1);
/// assert!(!finished.saved); // nothing stored, no storage call
/// assert_eq!(
///     response["hx-trigger"],
///     r#"{"closeModal":null,"messages":[{"extra_tags":"","level":25,"level_tag":"success","message":"Saved.","safe":false,"tags":"success"}]}"#
/// );
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Htmx {
    event: String,
    max_header_bytes: usize,
}

impl Default for Htmx {
    fn default() -> Self {
        Htmx::new()
    }
}

impl Htmx {
    /// The default event name: `messages`.
    pub const DEFAULT_EVENT: &'static str = "messages";
    /// The default longest `HX-Trigger` value flash writes: 4096 bytes.
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 4096;

    /// Delivery under the event `messages`, within 4096 bytes of header.
    pub fn new() -> Self {
        Htmx {
            event: Self::DEFAULT_EVENT.to_owned(),
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
        }
    }

    /// Sets the event's name.
    #[must_use]
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = name.into();
        self
    }

    /// Sets the longest `HX-Trigger` value (the handler's events and the messages) flash
    /// writes; beyond it the messages stay stored.
    #[must_use]
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// The event's name.
    pub fn event_name(&self) -> &str {
        &self.event
    }

    /// The longest `HX-Trigger` value flash writes.
    pub fn header_limit(&self) -> usize {
        self.max_header_bytes
    }

    /// The merged `HX-Trigger` value carrying `views`, or `None` when it cannot be merged or
    /// would be too long.
    fn trigger<H: ResponseHeaders + ?Sized>(
        &self,
        response: &H,
        views: &[MessageView],
    ) -> Option<String> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        response.for_each_value("hx-trigger", &mut |value| lines.push(value.to_vec()));
        let mut object = serde_json::Map::new();
        let objects = lines
            .iter()
            .filter(|l| l.trim_ascii_start().starts_with(b"{"))
            .count();
        match (objects, lines.len()) {
            (0, _) => {
                for line in &lines {
                    for name in std::str::from_utf8(line).ok()?.split(',') {
                        let name = name.trim();
                        if !name.is_empty() {
                            object.insert(name.to_owned(), serde_json::Value::Null);
                        }
                    }
                }
            }
            (1, 1) => object = serde_json::from_slice(&lines[0]).ok()?,
            _ => return None,
        }
        if object.contains_key(&self.event) {
            return None;
        }
        object.insert(self.event.clone(), serde_json::to_value(views).ok()?);
        let value = ascii_json(&serde_json::Value::Object(object))?;
        (value.len() <= self.max_header_bytes).then_some(value)
    }
}

/// Which htmx request an adapter captured: what `HX-Request`, `HX-Boosted` and
/// `HX-History-Restore-Request` said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HtmxRequest {
    /// `HX-Request: true`: sent by htmx.
    pub request: bool,
    /// `HX-Boosted: true`: a boosted link or form, answered with a full page.
    pub boosted: bool,
    /// `HX-History-Restore-Request: true`: htmx restoring a page from history.
    pub history_restore: bool,
}

impl HtmxRequest {
    /// The request as its headers tell: `header` returns the first value of a lowercase name.
    pub fn from_header_fn<'h>(header: impl Fn(&'static str) -> Option<&'h [u8]>) -> Self {
        let yes = |name| header(name).is_some_and(|v| v.trim_ascii() == b"true");
        HtmxRequest {
            request: yes("hx-request"),
            boosted: yes("hx-boosted"),
            history_restore: yes("hx-history-restore-request"),
        }
    }

    /// Whether the response is a partial page htmx swaps in: sent by htmx, not boosted, not a
    /// history restore.
    pub fn is_partial(&self) -> bool {
        self.request && !self.boosted && !self.history_restore
    }
}

/// Notes in `incoming` that it is an htmx request of `kind` (nothing for other requests).
fn capture_htmx_kind(incoming: &mut Incoming, kind: HtmxRequest) {
    if kind.request {
        incoming
            .extensions_mut()
            .insert(HtmxSlot(Arc::new(HtmxState {
                kind,
                pending: AtomicBool::new(false),
            })));
    }
}

/// What is left of [`Adapter::end`] when the storage must be awaited: it owns what it needs
/// (the response stays with the adapter), so it runs in a `Send` future of its own.
struct Waiting {
    adapter: Adapter,
    delivered: usize,
    /// The handler asked for pending messages in `HX-Trigger`: read first.
    pending: bool,
    /// The response redirects: the stored messages are loaded first, to hand on those
    /// addressed to this page.
    load_first: bool,
    /// The handler's `HX-Trigger` lines, when `pending`.
    triggers: HeaderMap,
}

/// What the waiting part did, for [`Adapter::apply`] to write into the response.
struct Detached {
    delivered: usize,
    /// The `HX-Trigger` value carrying what the read found, and how many messages.
    delivery: Option<(String, usize)>,
    saved: Result<SaveReport>,
    /// The `Set-Cookie` lines the storage wrote.
    scratch: HeaderMap,
}

impl Waiting {
    async fn run(self, messages: Messages) -> Detached {
        if self.load_first {
            messages.load_for_redirect().await;
        }
        let delivery = if self.pending {
            let read = messages.read().await;
            self.adapter.trigger_for(&messages, read, &self.triggers)
        } else {
            None
        };
        let mut scratch = HeaderMap::new();
        let saved = messages.save(&mut scratch).await;
        Detached {
            delivered: self.delivered,
            delivery,
            saved,
            scratch,
        }
    }
}

/// What a handle carries of its htmx request (in its [`Incoming::extensions`]).
#[derive(Clone)]
struct HtmxSlot(Arc<HtmxState>);

struct HtmxState {
    kind: HtmxRequest,
    /// The handler opted in: pending messages ride along.
    pending: AtomicBool,
}

enum Delivery {
    None,
    Added,
    Pending,
}

impl Messages {
    /// For this request's route: when it is a partial htmx request and [`Htmx`] delivery is
    /// on, the messages pending from earlier requests ride along in `HX-Trigger` with the ones
    /// added here, consumed as a read consumes them. Call it in handlers whose htmx responses
    /// are where the user looks for messages (a form posted in place), never in polling ones.
    /// Does nothing for other requests.
    pub fn deliver_pending_to_htmx(&self) {
        if let Some(slot) = self.incoming().extensions().get::<HtmxSlot>() {
            slot.0.pending.store(true, Ordering::Relaxed);
        }
    }

    /// The htmx request this handle belongs to, when [`Htmx`] delivery is on and it was sent
    /// by htmx.
    pub fn htmx_request(&self) -> Option<HtmxRequest> {
        self.incoming()
            .extensions()
            .get::<HtmxSlot>()
            .map(|slot| slot.0.kind)
    }
}

/// Whether the response redirects (the status the adapter told, and a `Location`), noted in
/// the handle; true when the stored messages must be loaded to hand on those addressed to this
/// page.
fn redirecting<H: ResponseHeaders + ?Sized>(messages: &Messages, response: &H) -> bool {
    if !messages.is_redirect_status() {
        return false;
    }
    let mut location = None;
    response.for_each_value("location", &mut |value| {
        location.get_or_insert_with(|| value.to_vec());
    });
    location.is_some_and(|location| messages.redirecting(&location))
}

/// Writes the delivery: the trigger, and a response only this user may see.
fn deliver<H: ResponseHeaders + ?Sized>(response: &mut H, value: &str) {
    response.insert("hx-trigger", value.as_bytes());
    response.insert("cache-control", b"private, no-store");
    vary_on_cookie(response);
}

/// Compact JSON with every character outside visible ASCII escaped: a valid header value.
fn ascii_json(value: &serde_json::Value) -> Option<String> {
    struct Ascii;
    impl serde_json::ser::Formatter for Ascii {
        fn write_string_fragment<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            fragment: &str,
        ) -> std::io::Result<()> {
            let mut start = 0;
            for (i, c) in fragment.char_indices() {
                if c.is_ascii() && !c.is_ascii_control() {
                    continue;
                }
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
            writer.write_all(&fragment.as_bytes()[start..])
        }
    }
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, Ascii);
    serde::Serialize::serialize(value, &mut serializer).ok()?;
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::keyed::ServerStorage;
    use crate::memory::MemoryStore;
    use crate::signing::Key;
    use crate::storage::{Loaded, Update};
    use http::header::VARY;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Response headers that are not an `http` map: the path of actix-web and the like.
    #[derive(Default, Debug)]
    struct Lines(Vec<(&'static str, Vec<u8>)>);

    impl ResponseHeaders for Lines {
        fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
            self.0
                .iter()
                .filter(|(n, _)| *n == name)
                .for_each(|(_, v)| each(v));
        }
        fn append(&mut self, name: &'static str, value: &[u8]) {
            self.0.push((name, value.to_vec()));
        }
        fn insert(&mut self, name: &'static str, value: &[u8]) {
            self.0.retain(|(n, _)| *n != name);
            self.append(name, value);
        }
    }

    impl Lines {
        fn get(&self, name: &str) -> Vec<String> {
            self.0
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect()
        }
    }

    /// Loads nothing and fails every save, writing a cookie first (as a storage may).
    struct FailingSave;

    #[async_trait::async_trait]
    impl Storage for FailingSave {
        async fn load(&self, _: &Incoming) -> Result<Loaded> {
            Ok(Loaded::nothing())
        }
        async fn save(
            &self,
            _: &Incoming,
            _: Update,
            response: &mut HeaderMap,
        ) -> Result<Vec<Message>> {
            response.append(SET_COOKIE, HeaderValue::from_static("partial=1; Path=/"));
            Err(Error::new(ErrorKind::Unavailable, "down"))
        }
    }

    fn keyed() -> Adapter {
        Adapter::new(Arc::new(ServerStorage::new(
            MemoryStore::new(),
            Key::generate(),
        )))
    }

    #[tokio::test]
    async fn an_untouched_handle_is_idle_and_writes_nothing() {
        let adapter = keyed();
        let messages = adapter.messages(Incoming::default());
        let mut response = Lines::default();
        let finished = adapter
            .finish_now(&messages, &mut response)
            .expect("nothing to await");
        assert!(finished.is_idle());
        assert!(response.0.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_storage_writes_through_the_trait() {
        let adapter = keyed();
        let messages = adapter.messages(Incoming::new(["other=caf\u{e9}"], false));
        messages.info("hello");
        let mut response = Lines::default();
        response.append("vary", b"Accept-Encoding");
        response.append("vary", b"Origin");
        // The store may wait: finish_now leaves it to finish, having done nothing.
        assert!(adapter.finish_now(&messages, &mut response).is_none());
        assert_eq!(response.0.len(), 2);
        let finished = adapter.finish(&messages, &mut response).await;
        assert!(finished.saved && finished.cookie_set && finished.vary);
        assert!(finished.error.is_none() && finished.dropped.is_empty());
        assert_eq!(response.get("set-cookie").len(), 1);
        assert_eq!(response.get("vary"), ["Accept-Encoding, Origin, Cookie"]);
        assert_eq!(response.get("cache-control"), ["private, no-store"]);
        // A second finish does nothing.
        let again = adapter.finish(&messages, &mut response).await;
        assert!(again.is_idle());
        assert_eq!(response.get("set-cookie").len(), 1);
    }

    #[tokio::test]
    async fn a_failed_save_reaches_the_hook_and_is_reported() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let adapter = Adapter::new(Arc::new(FailingSave)).on_error(move |err| {
            assert_eq!(err.kind(), ErrorKind::Unavailable);
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let messages = adapter.messages(Incoming::default());
        messages.info("lost");
        let mut response = Lines::default();
        response.append("vary", b"Cookie");
        let finished = adapter.finish(&messages, &mut response).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            finished.error.map(|e| e.kind()),
            Some(ErrorKind::Unavailable)
        );
        assert!(finished.vary && finished.cookie_set);
        // Vary already names Cookie: not twice. The cookie written makes it uncacheable.
        assert_eq!(response.get("vary"), ["Cookie"]);
        assert_eq!(response.get("cache-control"), ["private, no-store"]);
    }

    #[tokio::test]
    async fn the_http_map_is_written_directly() {
        let adapter = keyed();
        let messages = adapter.messages(Incoming::default());
        messages.info("hello");
        let mut response = HeaderMap::new();
        response.insert(SET_COOKIE, HeaderValue::from_static("app=1"));
        let finished = adapter.finish(&messages, &mut response).await;
        assert!(finished.cookie_set);
        assert_eq!(response.get_all(SET_COOKIE).iter().count(), 2);
        // A handler's own cookie alone does not make the response uncacheable.
        let messages = adapter.messages(Incoming::default());
        let _ = messages.peek().await;
        let mut response = HeaderMap::new();
        response.insert(SET_COOKIE, HeaderValue::from_static("app=1"));
        let finished = adapter.finish(&messages, &mut response).await;
        assert!(!finished.cookie_set && finished.vary);
        assert!(!response.contains_key(http::header::CACHE_CONTROL));
    }

    /// The handle of a request begun in `extensions`, as an `http` 1.x extractor makes it.
    fn handle_in(extensions: &http::Extensions, cookie: Option<&str>) -> Messages {
        let mut headers = HeaderMap::new();
        if let Some(cookie) = cookie {
            headers.insert("cookie", HeaderValue::from_str(cookie).expect("a cookie"));
        }
        let uri = http::Uri::from_static("/");
        RequestParts::http(&http::Method::GET, &uri, &headers, extensions)
            .messages("the test's middleware")
            .expect("begun")
    }

    #[tokio::test]
    async fn around_ends_the_request_on_a_response_and_on_an_error() {
        let adapter = keyed();
        // Ok: ended as `finish` ends it.
        let mut extensions = http::Extensions::new();
        let in_flight = adapter.begin_in(&mut extensions);
        handle_in(&extensions, None).info("kept");
        let response = in_flight
            .around(async { Ok::<_, ()>(http::Response::new(())) })
            .await
            .expect("the handler's response");
        let cookie = response.headers()[SET_COOKIE].to_str().expect("ascii");
        let cookie = cookie.split(';').next().expect("name=value").to_owned();
        assert_eq!(response.headers()["vary"], "Cookie");
        // Err (no response): a stand-in 500, so what was read is not consumed and the error
        // goes on untouched.
        let mut extensions = http::Extensions::new();
        let in_flight = adapter.begin_in(&mut extensions);
        let messages = handle_in(&extensions, Some(&cookie));
        let read = messages.read().await.expect("read");
        assert_eq!(read.len(), 1);
        let result = in_flight
            .around(async { Err::<http::Response<()>, _>("down") })
            .await;
        assert_eq!(result.err(), Some("down"));
        let mut extensions = http::Extensions::new();
        let _in_flight = adapter.begin_in(&mut extensions);
        let again = handle_in(&extensions, Some(&cookie))
            .read()
            .await
            .expect("read");
        assert_eq!(
            again.len(),
            1,
            "a request with no response consumed its messages"
        );
    }

    #[tokio::test]
    async fn a_slot_makes_no_handle_once_its_request_ended() {
        let adapter = keyed();
        let mut extensions = http::Extensions::new();
        let in_flight = adapter.begin_in(&mut extensions);
        let first = handle_in(&extensions, None);
        // The same handle for every extraction of the request.
        first.info("added");
        assert_eq!(handle_in(&extensions, None).len().await.expect("len"), 1);
        let copy = extensions.clone();
        let _ = in_flight.finish(http::Response::new(())).await;
        // The application still holds the handle; the request's slots are spent all the same.
        let headers = HeaderMap::new();
        let uri = http::Uri::from_static("/");
        for extensions in [&extensions, &copy] {
            let again = RequestParts::http(&http::Method::GET, &uri, &headers, extensions)
                .messages("the test's middleware");
            assert!(again.is_err(), "a slot outlived its request");
        }
        assert!(format!("{:?}", copy.get::<Slot>()).contains("in_flight: false"));
        drop(first);
    }

    #[test]
    fn a_handle_asked_for_without_a_middleware_names_it() {
        let extensions = http::Extensions::new();
        let headers = HeaderMap::new();
        let uri = http::Uri::from_static("/");
        let missing = RequestParts::http(&http::Method::GET, &uri, &headers, &extensions)
            .messages("flash_test::Layer")
            .expect_err("no middleware");
        assert!(
            missing.to_string().contains("flash_test::Layer"),
            "{missing}"
        );
        let response = missing.into_response();
        assert_eq!(response.status(), 500);
        assert!(response.body().contains("flash_test::Layer"));
    }

    fn htmx_adapter(htmx: Htmx) -> Adapter {
        keyed().htmx(htmx)
    }

    fn htmx_handle(adapter: &Adapter, headers: &[(&'static str, &'static [u8])]) -> Messages {
        let mut incoming = Incoming::default();
        adapter.capture_htmx(&mut incoming, |name| {
            headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        });
        adapter.messages(incoming)
    }

    #[tokio::test]
    async fn htmx_triggers_that_cannot_be_merged_leave_the_messages_stored() {
        let adapter = htmx_adapter(Htmx::new());
        for lines in [
            &["{not json"][..],
            &[r#"{"a":1}"#, "b"][..],
            &[r#"{"a":1}"#, r#"{"b":1}"#][..],
            &[r#"{"messages":[]}"#][..],
        ] {
            let messages = htmx_handle(&adapter, &[("hx-request", b"true")]);
            messages.info("kept");
            let mut response = Lines::default();
            for line in lines {
                response.append("hx-trigger", line.as_bytes());
            }
            let finished = adapter.finish(&messages, &mut response).await;
            assert_eq!(finished.delivered, 0, "{lines:?}");
            assert!(finished.saved, "{lines:?}");
            assert_eq!(response.get("hx-trigger"), *lines);
        }
    }

    #[tokio::test]
    async fn htmx_header_is_ascii_json_and_read_messages_are_not_delivered() {
        let adapter = htmx_adapter(Htmx::new().event("toast"));
        let messages = htmx_handle(&adapter, &[("hx-request", b" true ")]);
        messages.info("caf\u{e9} \u{1f389} \"q\"\n");
        let mut response = Lines::default();
        let finished = adapter.finish(&messages, &mut response).await;
        assert_eq!(finished.delivered, 1);
        let header = response.get("hx-trigger").remove(0);
        assert!(
            header.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{header}"
        );
        assert!(header.contains(r"\ud83c\udf89"), "{header}");
        let parsed: serde_json::Value = serde_json::from_str(&header).expect("json");
        assert_eq!(parsed["toast"][0]["message"], "caf\u{e9} \u{1f389} \"q\"\n");

        // A handler that read its messages showed them: nothing rides in the header.
        let messages = htmx_handle(&adapter, &[("hx-request", b"true")]);
        messages.info("shown");
        let _ = messages.read().await.expect("read");
        let mut response = Lines::default();
        let finished = adapter.finish(&messages, &mut response).await;
        assert_eq!(finished.delivered, 0);
        assert!(response.get("hx-trigger").is_empty());
    }

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
        assert_eq!(vary_after(&["Origin", ""]), ["Origin, Cookie"]);
    }
}
