//! The storage trait that framework adapters drive.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::header::COOKIE;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::message::Message;

/// The `HeaderName` of a lowercase name flash reads or writes, without parsing it: the names
/// flash uses are made once, here. Reason: `HeaderName::from_static` and a lookup by `&str`
/// parse the name on every call, through `http`'s large table of standard names, which a
/// request served over a socket runs cold (issue 21.5); these matches are a few compares.
pub(crate) fn header_name(name: &'static str) -> HeaderName {
    use http::header;
    static HX_REQUEST: HeaderName = HeaderName::from_static("hx-request");
    static HX_BOOSTED: HeaderName = HeaderName::from_static("hx-boosted");
    static HX_TRIGGER: HeaderName = HeaderName::from_static("hx-trigger");
    static HX_HISTORY: HeaderName = HeaderName::from_static("hx-history-restore-request");
    static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
    static SEC_PURPOSE: HeaderName = HeaderName::from_static("sec-purpose");
    static PURPOSE: HeaderName = HeaderName::from_static("purpose");
    match name {
        "cookie" => header::COOKIE,
        "set-cookie" => header::SET_COOKIE,
        "vary" => header::VARY,
        "cache-control" => header::CACHE_CONTROL,
        "location" => header::LOCATION,
        "hx-request" => HX_REQUEST.clone(),
        "hx-boosted" => HX_BOOSTED.clone(),
        "hx-trigger" => HX_TRIGGER.clone(),
        "hx-history-restore-request" => HX_HISTORY.clone(),
        "sec-fetch-mode" => SEC_FETCH_MODE.clone(),
        "sec-purpose" => SEC_PURPOSE.clone(),
        "purpose" => PURPOSE.clone(),
        _ => HeaderName::from_static(name),
    }
}

/// What storage needs from the request, captured by the adapter before the handler runs.
///
/// The `Cookie` header is read as bytes: another cookie's non-ASCII bytes (`pref=café`) never
/// hide flash's; only the value of the cookie asked for must be text.
///
/// ```
/// use flash_core::storage::Incoming;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cookie", "a=1; messages=\"abc\"".parse().unwrap());
/// headers.insert("sec-purpose", "prefetch".parse().unwrap());
/// let incoming = Incoming::from_headers(&headers);
/// assert_eq!(incoming.cookie("messages"), Some("abc"));
/// assert_eq!(incoming.cookie("missing"), None);
/// assert!(incoming.is_prefetch());
///
/// // An adapter whose framework has other header types hands over the bytes.
/// let incoming = Incoming::new(["pref=caf\u{e9}; flash_id=x1".as_bytes()], false);
/// assert_eq!(incoming.cookie("flash_id"), Some("x1"));
/// assert_eq!(incoming.cookie("pref"), Some("caf\u{e9}"));
/// ```
#[derive(Default)]
pub struct Incoming {
    // HTTP/1.1 sends one `Cookie` header, HTTP/2 may split it: the first is kept inline, so the
    // common request costs no allocation here.
    cookie: Option<HeaderValue>,
    more_cookies: Vec<HeaderValue>,
    extensions: Extensions,
    prefetch: bool,
    /// The request's path and query, when the adapter gave them: what addressed messages are
    /// matched against.
    target: Option<Target>,
    /// A top-level page load (a browser navigation, not htmx or `fetch`): only one shows a
    /// message addressed to its path.
    page_load: bool,
    /// The method is `GET`: a page that may hand messages on when it redirects.
    get: bool,
}

/// A request's path and query, inline when short (most are): capturing it costs a request no
/// allocation.
enum Target {
    Inline {
        len: u8,
        bytes: [u8; Target::INLINE],
    },
    Heap(Box<str>),
}

impl Target {
    const INLINE: usize = 62;

    fn new(target: &str) -> Self {
        match u8::try_from(target.len()) {
            Ok(len) if target.len() <= Self::INLINE => {
                let mut bytes = [0; Self::INLINE];
                bytes[..target.len()].copy_from_slice(target.as_bytes());
                Target::Inline { len, bytes }
            }
            _ => Target::Heap(target.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `str`: always UTF-8.
            Target::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Target::Heap(target) => target,
        }
    }
}

/// The request headers that mark a prefetch, lowercase: `Sec-Purpose` and the older `Purpose`.
/// An adapter passes each of their values to [`is_prefetch`].
pub const PREFETCH_HEADERS: [&str; 2] = ["sec-purpose", "purpose"];

/// Whether one value of a [`PREFETCH_HEADERS`] header marks a prefetch (`prefetch`, or
/// `prefetch;prerender`, any case).
///
/// ```
/// assert!(flash_core::adapter::is_prefetch(b"prefetch;prerender"));
/// assert!(flash_core::adapter::is_prefetch(b" Prefetch "));
/// assert!(!flash_core::adapter::is_prefetch(b"prerender"));
/// ```
pub fn is_prefetch(value: &[u8]) -> bool {
    let first = value.split(|&b| b == b';').next().unwrap_or_default();
    first.trim_ascii().eq_ignore_ascii_case(b"prefetch")
}

/// Whether a request is a top-level page load, from its headers (`header` returns the first
/// value of a lowercase name): not sent by htmx (`HX-Request: true`, unless `HX-Boosted`: a
/// boosted link loads a page), and a browser navigation when the browser says
/// (`Sec-Fetch-Mode: navigate`, or no `Sec-Fetch-Mode` at all: older clients, curl).
///
/// ```
/// let headers = |pairs: &'static [(&'static str, &'static str)]| {
///     move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes())
/// };
/// assert!(flash_core::adapter::is_page_load(headers(&[("sec-fetch-mode", "navigate")])));
/// assert!(flash_core::adapter::is_page_load(headers(&[])));
/// assert!(!flash_core::adapter::is_page_load(headers(&[("sec-fetch-mode", "cors")])));
/// assert!(!flash_core::adapter::is_page_load(headers(&[("hx-request", "true")])));
/// ```
pub fn is_page_load<'h>(header: impl Fn(&'static str) -> Option<&'h [u8]>) -> bool {
    let yes = |name| header(name).is_some_and(|v: &[u8]| v.trim_ascii() == b"true");
    if yes("hx-request") && !yes("hx-boosted") {
        return false;
    }
    header("sec-fetch-mode").is_none_or(|mode| mode.trim_ascii().eq_ignore_ascii_case(b"navigate"))
}

impl Incoming {
    /// Captures a request from the values of its `Cookie` headers, as bytes, and whether it is
    /// a prefetch (see [`is_prefetch`]): what an adapter whose framework does not use `http`
    /// 1.x hands over. A value that cannot be a header value (control bytes) is left out.
    pub fn new<I>(cookie_headers: I, prefetch: bool) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut values = cookie_headers
            .into_iter()
            .filter_map(|v| HeaderValue::from_bytes(v.as_ref()).ok());
        Incoming {
            cookie: values.next(),
            more_cookies: values.collect(),
            extensions: Extensions::new(),
            prefetch,
            target: None,
            page_load: true,
            get: false,
        }
    }

    /// Captures the `Cookie` headers and whether the request is a prefetch
    /// (`Sec-Purpose: prefetch` or `Purpose: prefetch`).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        // Names made once: looking a header up by `&str` parses the name every time.
        static PURPOSE: [HeaderName; 2] = [
            HeaderName::from_static(PREFETCH_HEADERS[0]),
            HeaderName::from_static(PREFETCH_HEADERS[1]),
        ];
        let prefetch = PURPOSE.iter().any(|name| {
            headers
                .get_all(name)
                .iter()
                .any(|v| is_prefetch(v.as_bytes()))
        });
        let page_load =
            is_page_load(|name| headers.get(header_name(name)).map(HeaderValue::as_bytes));
        Incoming::from_cookies_in(headers, prefetch, page_load)
    }

    /// [`Incoming::from_headers`] when whether the request is a prefetch and a page load is
    /// already known (an adapter's `RequestParts` looked): the `Cookie` values shared, not
    /// copied.
    pub(crate) fn from_cookies_in(headers: &HeaderMap, prefetch: bool, page_load: bool) -> Self {
        let mut cookies = headers.get_all(COOKIE).iter();
        Incoming {
            cookie: cookies.next().cloned(),
            more_cookies: cookies.cloned().collect(),
            extensions: Extensions::new(),
            prefetch,
            target: None,
            page_load,
            get: false,
        }
    }

    /// Sets the request's method, path and query (the request line's target: `/orders/7?tab=2`),
    /// which addressed messages are matched against. A `HEAD` or `OPTIONS` request is never a
    /// page load. Without it, the request shows every message, addressed or not (what a
    /// storage-only caller gets).
    #[must_use]
    pub fn with_target(mut self, method: &str, path_and_query: &str) -> Self {
        if !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("POST") {
            self.page_load = false;
        }
        self.get = method.eq_ignore_ascii_case("GET");
        self.target = Some(Target::new(path_and_query));
        self
    }

    /// Whether the adapter said the method is `GET` ([`Incoming::with_target`]).
    pub(crate) fn is_get(&self) -> bool {
        self.get
    }

    /// Sets whether the request is a page load (see [`is_page_load`]); the adapter's headers
    /// say it when it used [`Incoming::from_headers`].
    #[must_use]
    pub fn with_page_load(mut self, page_load: bool) -> Self {
        self.page_load = page_load;
        self
    }

    /// The request's path and query, when the adapter set them ([`Incoming::with_target`]).
    pub fn target(&self) -> Option<&str> {
        self.target.as_ref().map(Target::as_str)
    }

    /// The request's path, without the query, when the adapter set it.
    pub fn path(&self) -> Option<&str> {
        self.target()
            .map(|t| t.split(['?', '#']).next().unwrap_or(t))
    }

    /// Whether the request is a page load: only one shows a message addressed to its path.
    pub fn is_page_load(&self) -> bool {
        self.page_load
    }

    /// The value of the request cookie `name` (surrounding double quotes removed), if present
    /// and text (UTF-8). The headers are split as bytes, so other cookies may hold any byte.
    /// When the name appears more than once, the first is taken (the browser sends the most
    /// specific first).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        match self.find_cookie(name)? {
            // Found in a header already checked as text: no second check of the value.
            CookieValue::Text(value) => Some(value),
            CookieValue::Bytes(value) => std::str::from_utf8(value).ok(),
        }
    }

    /// The raw bytes of the request cookie `name` (surrounding double quotes removed), if
    /// present, whether or not they are text: to tell a cookie that is absent from one that is
    /// present but unreadable.
    ///
    /// ```
    /// let incoming = flash_core::storage::Incoming::new([&b"flash_id=\xff\xfe"[..]], false);
    /// assert_eq!(incoming.cookie("flash_id"), None);
    /// assert_eq!(incoming.cookie_bytes("flash_id"), Some(&b"\xff\xfe"[..]));
    /// ```
    pub fn cookie_bytes(&self, name: &str) -> Option<&[u8]> {
        match self.find_cookie(name)? {
            CookieValue::Text(value) => Some(value.as_bytes()),
            CookieValue::Bytes(value) => Some(value),
        }
    }

    fn find_cookie(&self, name: &str) -> Option<CookieValue<'_>> {
        self.cookie
            .iter()
            .chain(&self.more_cookies)
            .find_map(|header| cookie_in(header.as_bytes(), name.as_bytes()))
    }

    /// The same request without the cookies `names` (its prefetch mark and extensions kept):
    /// what one storage of a composition sees when a cookie belongs to the other.
    ///
    /// ```
    /// let incoming = flash_core::storage::Incoming::new(["a=1; messages=x; b=2", "messages=y"], true);
    /// let without = incoming.without_cookies(&["messages"]);
    /// assert_eq!(without.cookie("messages"), None);
    /// assert_eq!((without.cookie("a"), without.cookie("b")), (Some("1"), Some("2")));
    /// assert!(without.is_prefetch());
    /// ```
    pub fn without_cookies(&self, names: &[&str]) -> Incoming {
        let kept = self.cookie.iter().chain(&self.more_cookies).map(|header| {
            let pairs = header.as_bytes().split(|&b| b == b';').filter(|pair| {
                let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
                !names.iter().any(|n| n.as_bytes() == name.trim_ascii())
            });
            let mut value = Vec::with_capacity(header.len());
            for pair in pairs {
                if !value.is_empty() {
                    value.push(b';');
                }
                value.extend_from_slice(pair);
            }
            value
        });
        let mut incoming = Incoming::new(kept, self.prefetch);
        incoming.extensions = self.extensions.clone();
        incoming
    }

    /// Whether the request only looks: a browser prefetch, or (when an adapter made the handle
    /// through [`Slot::messages`](crate::adapter::Slot::messages)) a `HEAD` or `OPTIONS`
    /// request. Its reads see nothing and consume nothing, without a storage call; what it adds
    /// is saved.
    pub fn is_prefetch(&self) -> bool {
        self.prefetch
    }

    /// Marks the request as one that only looks ([`Incoming::is_prefetch`]).
    pub(crate) fn set_prefetch(&mut self) {
        self.prefetch = true;
    }

    /// Request extensions a storage needs (a session handle, for session storage). Adapters copy
    /// them when [`Storage::uses_extensions`] says so.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Mutable access to the captured extensions.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Cookie values can be credentials: show only their count.
        f.debug_struct("Incoming")
            .field(
                "cookie_headers",
                &(usize::from(self.cookie.is_some()) + self.more_cookies.len()),
            )
            .field("prefetch", &self.prefetch)
            .field("page_load", &self.page_load)
            .finish_non_exhaustive()
    }
}

/// A cookie's value as found: in a header that is text, or in one that is not.
#[derive(Clone, Copy, Debug, PartialEq)]
enum CookieValue<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// The raw bytes of the cookie `name` in one `Cookie` header value, quotes removed.
pub(crate) fn cookie_bytes_in<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    match cookie_in(header, name.as_bytes())? {
        CookieValue::Text(value) => Some(value.as_bytes()),
        CookieValue::Bytes(value) => Some(value),
    }
}

/// The raw value of the cookie `name` in one `Cookie` header value, quotes removed.
fn cookie_in<'a>(header: &'a [u8], name: &[u8]) -> Option<CookieValue<'a>> {
    // A `Cookie` header is almost always text, and `str`'s split looks for `;` and `=` a word
    // at a time, where a byte-wise split walks every byte of the (often ~300-byte) flash value.
    match std::str::from_utf8(header) {
        Ok(text) => text.split(';').find_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            let v = v.trim_ascii();
            (n.trim_ascii().as_bytes() == name).then(|| {
                CookieValue::Text(
                    v.strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v),
                )
            })
        }),
        Err(_) => header.split(|&b| b == b';').find_map(|pair| {
            let at = pair.iter().position(|&b| b == b'=')?;
            let (n, v) = (&pair[..at], pair[at + 1..].trim_ascii());
            (n.trim_ascii() == name).then(|| {
                CookieValue::Bytes(
                    v.strip_prefix(b"\"")
                        .and_then(|v| v.strip_suffix(b"\""))
                        .unwrap_or(v),
                )
            })
        }),
    }
}

/// What a storage remembers between `load` and `save` of one request (a lease, which cookie
/// was read). Opaque to the request handle.
pub struct LoadToken(Option<Box<dyn Any + Send + Sync>>);

impl LoadToken {
    /// A token carrying nothing.
    pub const fn empty() -> Self {
        LoadToken(None)
    }

    /// A token carrying `state`.
    pub fn new<T: Any + Send + Sync>(state: T) -> Self {
        LoadToken(Some(Box::new(state)))
    }

    /// The state, if the token carries a `T`.
    pub fn into_inner<T: Any>(self) -> Option<T> {
        self.0?.downcast().ok().map(|b| *b)
    }

    /// A reference to the state, if the token carries a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_ref()?.downcast_ref()
    }
}

impl fmt::Debug for LoadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "LoadToken(..)"
        } else {
            "LoadToken(empty)"
        })
    }
}

/// The result of [`Storage::load`]. Built with [`Loaded::new`] (fields may be added).
#[derive(Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The stored messages, oldest first.
    pub messages: Vec<Message>,
    /// False when the storage holds only the first part and the rest overflowed to another
    /// (Django's not-finished marker); read by [`Fallback`](https://docs.rs/flash-cookie).
    pub complete: bool,
    /// Handed back to [`Storage::save`] in [`Update::loaded`].
    pub token: LoadToken,
}

impl Loaded {
    /// `messages`, complete, with the `token` that [`Storage::save`] gets back.
    pub fn new(messages: Vec<Message>, token: LoadToken) -> Self {
        Loaded {
            messages,
            complete: true,
            token,
        }
    }

    /// Sets whether the storage held everything (false: Django's not-finished marker).
    #[must_use]
    pub fn with_complete(mut self, complete: bool) -> Self {
        self.complete = complete;
        self
    }

    /// Nothing stored.
    pub fn nothing() -> Self {
        Loaded {
            messages: Vec::new(),
            complete: true,
            token: LoadToken::empty(),
        }
    }
}

/// What to do when the messages do not fit a storage with a size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Keep the newest that fit; return the dropped ones (a storage used alone).
    #[default]
    DropOldest,
    /// Keep the oldest that fit plus a not-finished marker; return the rest for the next storage
    /// (the first storage of a fallback chain).
    Spill,
}

/// What the application asked for the client's identity in this request
/// ([`Messages::rotate_id`](crate::Messages::rotate_id), [`Messages::forget_id`](crate::Messages::forget_id)).
///
/// A storage keyed by a client id (the keyed bridge) acts on it: `Forget` deletes what is
/// pending for the id and removes the id cookie; `Rotate` gives the client a new random id,
/// moving the pending messages to it ([`Carry::Keep`]) or deleting them ([`Carry::Drop`]).
///
/// A storage without an id (cookie, session) may ignore it: the request handle has already
/// turned `Forget` and `Rotate(Carry::Drop)` into "no messages pending" (it loaded and consumed
/// everything pending and dropped what was added before the call), and `Rotate(Carry::Keep)`
/// changes nothing for it. Messages added after the call are stored as usual (under the new id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Identity {
    /// The client keeps its id (every request that does not ask).
    #[default]
    Keep,
    /// A new id (at login): the pending messages follow it or not.
    Rotate(Carry),
    /// No id any more (at logout): nothing pending, the id cookie removed.
    Forget,
}

/// Whether pending messages follow a rotated id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// They move to the new id.
    Keep,
    /// They are deleted.
    Drop,
}

impl Identity {
    /// Whether the client's pending messages are deleted.
    pub fn drops_pending(self) -> bool {
        matches!(self, Identity::Forget | Identity::Rotate(Carry::Drop))
    }
}

/// Where a storage reports a failure it recovered from, so the save still succeeds (the keyed
/// bridge's store was down and the messages rode in a cookie instead). The request handle puts
/// the first one in [`SaveReport::degraded`](crate::SaveReport::degraded); adapters hand it to
/// the application's error hook. [`Degraded::default`] reports to nobody (the storage logs it).
#[derive(Clone, Default)]
pub struct Degraded(Option<Arc<dyn ReportSink>>);

/// Receives what a storage reports through [`Degraded`] (the request handle's state).
pub(crate) trait ReportSink: Send + Sync {
    fn report(&self, error: Error);
}

impl Degraded {
    pub(crate) fn to(sink: Arc<dyn ReportSink>) -> Self {
        Degraded(Some(sink))
    }

    /// Reports `error`: the save succeeds, but the application should know.
    pub fn report(&self, error: Error) {
        let error = error.recovered();
        if let Some(sink) = &self.0 {
            sink.report(error);
        }
    }
}

impl fmt::Debug for Degraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Degraded(reported)"
        } else {
            "Degraded(logged only)"
        })
    }
}

/// What the request did, handed to [`Storage::save`] at the response. Built with
/// [`Update::new`] and the `with_` setters (fields may be added).
///
/// ```
/// use flash_core::{Level, Limits, Message, storage::{Overflow, Update}};
/// let update = Update::new(None)
///     .with_added(vec![Message::new(Level::INFO, "hi")])
///     .with_overflow(Overflow::Spill)
///     .with_limits(Limits::default());
/// assert!(!update.was_loaded() && !update.consumed);
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Update {
    /// `Some` when the request loaded: the token from [`Loaded`].
    pub loaded: Option<LoadToken>,
    /// The loaded messages were consumed (read and not kept).
    pub consumed: bool,
    /// Loaded messages still pending, oldest first (empty when consumed or not loaded).
    pub unread: Vec<Message>,
    /// Messages added by this request to store, oldest first.
    pub added: Vec<Message>,
    /// The overflow rule.
    pub overflow: Overflow,
    /// The bounds on the client's messages, which a keyed store enforces at append.
    pub limits: Limits,
    /// What the application asked for the client's id (rotate at login, forget at logout).
    pub identity: Identity,
    /// Where to report a failure the storage recovered from.
    pub degraded: Degraded,
}

impl Update {
    /// An update for a request that loaded (`Some(token)`, the token of [`Loaded`]) or not
    /// (`None`): not consumed, nothing unread or added, [`Overflow::DropOldest`], the default
    /// [`Limits`].
    pub fn new(loaded: Option<LoadToken>) -> Self {
        Update {
            loaded,
            consumed: false,
            unread: Vec::new(),
            added: Vec::new(),
            overflow: Overflow::default(),
            limits: Limits::default(),
            identity: Identity::Keep,
            degraded: Degraded::default(),
        }
    }

    /// Sets whether the loaded messages were consumed.
    #[must_use]
    pub fn with_consumed(mut self, consumed: bool) -> Self {
        self.consumed = consumed;
        self
    }

    /// Sets the loaded messages still pending, oldest first.
    #[must_use]
    pub fn with_unread(mut self, unread: Vec<Message>) -> Self {
        self.unread = unread;
        self
    }

    /// Sets the messages added by the request, oldest first.
    #[must_use]
    pub fn with_added(mut self, added: Vec<Message>) -> Self {
        self.added = added;
        self
    }

    /// Sets the overflow rule.
    #[must_use]
    pub fn with_overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Sets the client's limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets what the application asked for the client's identity.
    #[must_use]
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Sets where a recovered failure is reported.
    #[must_use]
    pub fn with_degraded(mut self, degraded: Degraded) -> Self {
        self.degraded = degraded;
        self
    }

    /// Whether the request loaded.
    pub fn was_loaded(&self) -> bool {
        self.loaded.is_some()
    }

    /// The messages to keep when the storage replaces its whole content (Django's rule):
    /// unread first, then added. Only meaningful when loaded; a storage that replaces its
    /// content must load what the request carries first when it was not.
    pub fn into_messages(self) -> Vec<Message> {
        if self.unread.is_empty() {
            return self.added;
        }
        let mut all = self.unread;
        all.extend(self.added);
        all
    }
}

/// A flash storage as an adapter drives it: load what the request carries, save what the
/// response must carry.
///
/// Object safe: an adapter holds an `Arc<dyn Storage>`.
///
/// The request handle ([`Messages`](crate::Messages)) calls `load` at most once per request and
/// only when the handler reads; it calls `save` once at the response, and only when the
/// request loaded or added messages.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a flash `Storage`",
    note = "implement `flash_core::storage::SimpleStorage` (Django's `_get`/`_store`) to get `Storage` with Django's update rules, or wrap a `KeyedStore` in `flash_core::storage::ServerStorage`"
)]
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads the messages the request carries or points to.
    async fn load(&self, request: &Incoming) -> Result<Loaded>;

    /// Persists the update, writing any `Set-Cookie` to `response`. Returns the messages that
    /// could not be stored (dropped, or spilled under [`Overflow::Spill`]).
    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>>;

    /// Whether this storage reads request extensions (a session), so the adapter must copy them
    /// into [`Incoming`]. Default: false.
    fn uses_extensions(&self) -> bool {
        false
    }

    /// Whether this storage keeps a message's data ([`Message::with_data`]). Default: true,
    /// as flash's own cookie format and every keyed store do.
    ///
    /// A storage whose format has no place for data (Django's cookie format, Django's session
    /// format) returns false: the request handle then refuses a message with data when it is
    /// added ([`Refused::DataNotSupported`](crate::Refused::DataNotSupported)), so it is never
    /// lost at the response, and the other messages are stored as usual. A storage that wraps
    /// another forwards it; a composition of storages carries data only if each of them does.
    fn carries_data(&self) -> bool {
        true
    }

    /// Whether this storage could hold `message` at all, were it the only one pending.
    /// Default: true. A storage with a hard size bound and nowhere to overflow (a cookie
    /// alone) returns false for a message larger than that bound: the request handle then
    /// refuses it at add ([`Refused::TooLargeForStorage`](crate::Refused::TooLargeForStorage)),
    /// with a reason the application can show, instead of accepting it and losing it at the
    /// response. A wrapper forwards it; a composition can hold what either part can.
    fn can_hold(&self, message: &Message) -> bool {
        let _ = message;
        true
    }

    /// The same storage as one that never waits (it keeps messages in the request and
    /// response themselves, as a cookie does), so the request handle and adapters can load and
    /// save without a boxed future. Default: `None`.
    ///
    /// Part of the contract, and optional: it exists only for speed. `async_trait` boxes one
    /// future per `load` and per `save`; for a cookie, whose work is a few microseconds, those
    /// allocations are a measurable share of a request (see BENCHMARKS.md), so
    /// [`Messages`](crate::Messages) and [`InFlight::finish`](crate::adapter::InFlight::finish)
    /// take this path when it is offered. The rules:
    /// - `None` is always correct; a storage that may wait (a network, a lock held across an
    ///   await) must return `None`.
    /// - A storage that returns `Some` returns it on every call, and the
    ///   [`ImmediateStorage`] behaves exactly as `load` and `save` do: the conformance suite
    ///   drives such a storage through this path.
    /// - A wrapper that forwards `load` and `save` to an inner storage forwards this too, or
    ///   leaves the default (slower, still correct).
    fn immediate(&self) -> Option<&dyn ImmediateStorage> {
        None
    }
}

/// A storage whose `load` and `save` never wait: what [`Storage::immediate`] hands out (see its
/// rules: optional, for speed only, and exactly as `load` and `save`).
///
/// The cookie storage is one: everything it reads and writes is in the request and the
/// response, so boxing a future per call would only cost time (~2 allocations a request).
pub trait ImmediateStorage: Send + Sync {
    /// What [`Storage::load`] returns, at once.
    ///
    /// # Errors
    /// As [`Storage::load`].
    fn load_now(&self, request: &Incoming) -> Result<Loaded>;

    /// What [`Storage::save`] does, at once.
    ///
    /// # Errors
    /// As [`Storage::save`].
    fn save_now(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>>;
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        (**self).load(request).await
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        (**self).save(request, update, response).await
    }

    fn uses_extensions(&self) -> bool {
        (**self).uses_extensions()
    }

    fn carries_data(&self) -> bool {
        (**self).carries_data()
    }

    fn can_hold(&self, message: &Message) -> bool {
        (**self).can_hold(message)
    }

    fn immediate(&self) -> Option<&dyn ImmediateStorage> {
        (**self).immediate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(pairs: &[(&'static str, &str)]) -> Incoming {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        Incoming::from_headers(&headers)
    }

    #[test]
    fn cookies_are_found_across_headers_and_unquoted() {
        let req = incoming(&[("cookie", "a=1;b=\"two\""), ("cookie", " c = 3 ; d=")]);
        assert_eq!(req.cookie("a"), Some("1"));
        assert_eq!(req.cookie("b"), Some("two"));
        assert_eq!(req.cookie("c"), Some("3"));
        assert_eq!(req.cookie("d"), Some(""));
        assert_eq!(req.cookie("e"), None);
        assert_eq!(incoming(&[("cookie", "garbage;;=;==")]).cookie("a"), None);
    }

    #[test]
    fn text_and_non_text_headers_find_the_same_cookie() {
        // The text path (split on `str`) and the byte path (a header with a non-UTF-8 byte)
        // must agree: the same header with one byte made invalid, in a cookie not asked for.
        let headers = [
            "a=1;b=\"two\"",
            " c = 3 ; d=",
            "garbage;;=;==",
            "x=\"\";y==z; messages=\"m=1;\"",
            "messages=abc;messages=second",
            "=;a",
            "",
        ];
        for header in headers {
            let mut with_invalid = header.as_bytes().to_vec();
            with_invalid.extend_from_slice(b";junk=\xff");
            for name in ["a", "b", "c", "d", "x", "y", "messages", "", "junk2"] {
                let as_bytes = |found: Option<CookieValue<'_>>| {
                    found.map(|value| match value {
                        CookieValue::Text(text) => text.as_bytes().to_vec(),
                        CookieValue::Bytes(bytes) => bytes.to_vec(),
                    })
                };
                assert!(!matches!(
                    cookie_in(&with_invalid, name.as_bytes()),
                    Some(CookieValue::Text(_))
                ));
                assert_eq!(
                    as_bytes(cookie_in(header.as_bytes(), name.as_bytes())),
                    as_bytes(cookie_in(&with_invalid, name.as_bytes())),
                    "{header:?} / {name:?}"
                );
            }
        }
        assert_eq!(cookie_in(b"y==z", b"y"), Some(CookieValue::Text("=z")));
        assert_eq!(cookie_in(b"m=\"\"", b"m"), Some(CookieValue::Text("")));
        assert_eq!(cookie_in(b"a=1;a=2", b"a"), Some(CookieValue::Text("1")));
    }

    #[test]
    fn other_cookies_bytes_never_hide_flash_cookies() {
        // Issue 12, repro 5: one non-ASCII byte anywhere in the header hid every cookie.
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_bytes("pref=café; flash_id=abc.def".as_bytes()).expect("header"),
        );
        headers.append(
            COOKIE,
            HeaderValue::from_bytes(b"latin1=caf\xe9; messages=\"m1\"").expect("header"),
        );
        let req = Incoming::from_headers(&headers);
        assert_eq!(req.cookie("flash_id"), Some("abc.def"));
        assert_eq!(req.cookie("messages"), Some("m1"));
        assert_eq!(req.cookie("pref"), Some("café"));
        // Only the cookie asked for must be text: Latin-1 bytes are not UTF-8.
        assert_eq!(req.cookie("latin1"), None);

        let req = Incoming::new([&b"a=\xff\xfe; b=2"[..], b"c=3"], true);
        assert_eq!(req.cookie("b"), Some("2"));
        assert_eq!(req.cookie("c"), Some("3"));
        assert_eq!(req.cookie("a"), None);
        assert!(req.is_prefetch());
    }

    #[test]
    fn the_first_cookie_of_a_name_wins_and_bad_header_values_are_left_out() {
        let req = Incoming::new(["id=first; id=second", "bad=\u{1}; id=third"], false);
        assert_eq!(req.cookie("id"), Some("first"));
        assert_eq!(
            format!("{req:?}"),
            "Incoming { cookie_headers: 1, prefetch: false, page_load: true, .. }"
        );
    }

    #[test]
    fn prefetch_is_recognised() {
        assert!(incoming(&[("sec-purpose", "prefetch")]).is_prefetch());
        assert!(incoming(&[("sec-purpose", "prefetch;prerender")]).is_prefetch());
        assert!(incoming(&[("purpose", "Prefetch")]).is_prefetch());
        assert!(!incoming(&[("sec-purpose", "prerender")]).is_prefetch());
        assert!(!incoming(&[]).is_prefetch());
    }

    #[test]
    fn debug_hides_cookie_values() {
        let req = incoming(&[("cookie", "session=supersecret")]);
        assert!(!format!("{req:?}").contains("supersecret"));
    }
}
