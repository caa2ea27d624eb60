//! The adapter contract: everything a response needs that does not depend on the framework.
//!
//! An adapter captures the request ([`Incoming`]), gets the handle from [`Adapter::messages`],
//! gives it to the handler, and ends the request with [`Adapter::finish_now`] or
//! [`Adapter::finish`] over its response headers ([`ResponseHeaders`]).

use std::fmt;
use std::sync::Arc;

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::messages::{Config, Messages, SaveReport};
use crate::storage::{Incoming, Storage};

/// The response headers of one request as an adapter exposes them to [`Adapter::finish`]:
/// header lines as a lowercase name and the value's bytes, so a framework with its own header
/// types (actix-web 4 uses `http` 0.2) needs no conversion of whole maps.
///
/// flash writes only valid header values (visible ASCII), under the names `set-cookie`,
/// `vary` and `cache-control`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a response header map flash can write to",
    note = "implement `flash_core::ResponseHeaders` for a wrapper around your framework's response headers"
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
        for value in self.get_all(name) {
            each(value.as_bytes());
        }
    }

    fn append(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            HeaderMap::append(self, HeaderName::from_static(name), value);
        }
    }

    fn insert(&mut self, name: &'static str, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            HeaderMap::insert(self, HeaderName::from_static(name), value);
        }
    }

    fn insert_static(&mut self, name: &'static str, value: &'static str) {
        HeaderMap::insert(
            self,
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }

    fn as_http(&mut self) -> Option<&mut HeaderMap> {
        Some(self)
    }
}

type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;

struct Shared {
    storage: Arc<dyn Storage>,
    config: Arc<Config>,
    uses_extensions: bool,
    on_error: Option<ErrorHook>,
}

/// What every request of one application shares, and the rules that end a request: the
/// framework-neutral half of every adapter. A cheap clone.
///
/// ```
/// use std::sync::Arc;
/// use flash_core::{Adapter, Config, Incoming, Key, KeyedStorage, MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let storage = KeyedStorage::new(MemoryStore::new(), Key::generate());
/// let adapter = Adapter::new(Arc::new(storage), Config::default())
///     .on_error(|err| eprintln!("flash messages lost: {err}"));
///
/// let messages = adapter.messages(Incoming::new(["theme=dark"], false));
/// messages.success("Saved.");
/// let mut response = http::HeaderMap::new();
/// response.insert("vary", "Accept-Encoding".parse().unwrap());
/// let report = adapter.finish(&messages, &mut response).await;
/// assert!(report.saved && report.cookie_set);
/// assert_eq!(response["vary"], "Accept-Encoding, Cookie");
/// assert_eq!(response["cache-control"], "private, no-store");
/// # });
/// ```
#[derive(Clone)]
pub struct Adapter {
    shared: Arc<Shared>,
}

impl Adapter {
    /// An adapter over `storage` with the application's `config` (threshold, tags, limits).
    pub fn new(storage: Arc<dyn Storage>, config: Config) -> Self {
        Adapter {
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
        Adapter {
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

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.shared.storage
    }

    /// Whether the storage reads request extensions (a session): the adapter then copies them
    /// into [`Incoming::extensions_mut`] before calling [`Adapter::messages`].
    pub fn uses_extensions(&self) -> bool {
        self.shared.uses_extensions
    }

    /// The handle for one request, to give the handler. Make it lazily, on the handler's first
    /// use, so a request that never asks costs nothing.
    pub fn messages(&self, incoming: Incoming) -> Messages {
        Messages::new(
            self.shared.storage.clone(),
            incoming,
            self.shared.config.clone(),
        )
    }

    /// Ends the request without waiting when that is possible: returns `None`, having done
    /// nothing, only when the storage must be awaited (then call [`Adapter::finish`]). With a
    /// storage that never waits (a cookie), or a handle with nothing to save, the adapter needs
    /// no boxed future.
    pub fn finish_now<H>(&self, messages: &Messages, response: &mut H) -> Option<Finished>
    where
        H: ResponseHeaders + ?Sized,
    {
        if !messages.needs_save() {
            return Some(Finished::default());
        }
        self.shared.storage.immediate()?;
        let (result, cookie_set) = match response.as_http() {
            Some(map) => {
                let before = map.get_all(SET_COOKIE).iter().count();
                let result = messages.save_now(map)?;
                (result, map.get_all(SET_COOKIE).iter().count() > before)
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

    /// Ends the request: saves what the handle says must be saved (nothing, and no storage
    /// call, when the handler neither read nor added), writes the storage's `Set-Cookie` lines,
    /// merges `Vary: Cookie` into the handler's `Vary` when messages were read or written (and
    /// when the save failed), sets `Cache-Control: private, no-store` when a flash cookie was
    /// set, logs dropped messages, and logs a failed save through `tracing` (target
    /// `flash_core::adapter`, level `ERROR`) and hands it to the [`Adapter::on_error`] hook. The
    /// response is always to be served.
    pub async fn finish<H>(&self, messages: &Messages, response: &mut H) -> Finished
    where
        H: ResponseHeaders + ?Sized,
    {
        if let Some(finished) = self.finish_now(messages, response) {
            return finished;
        }
        let (result, cookie_set) = match response.as_http() {
            Some(map) => {
                let before = map.get_all(SET_COOKIE).iter().count();
                let result = messages.save(map).await;
                (result, map.get_all(SET_COOKIE).iter().count() > before)
            }
            None => {
                let mut scratch = HeaderMap::new();
                let result = messages.save(&mut scratch).await;
                (result, copy_cookies(&scratch, response))
            }
        };
        self.shape(result, cookie_set, response)
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
                if !report.dropped.is_empty() {
                    tracing::warn!(
                        dropped = report.dropped.len(),
                        "flash messages dropped: they do not fit the storage or the client's limits"
                    );
                }
                finished.vary = report.vary;
                finished.saved = report.saved;
                finished.dropped = report.dropped;
                finished.refused = report.refused;
            }
            Err(err) => {
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
        if finished.vary {
            vary_on_cookie(response);
        }
        if cookie_set {
            response.insert_static("cache-control", "private, no-store");
        }
        finished
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

/// What [`Adapter::finish`] did to the response, so an adapter needs to inspect no header.
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
    /// How many messages `add` refused at the application's limits (each logged when refused).
    pub refused: usize,
    /// The save failed: logged, passed to the hook, and the response served without it.
    pub error: Option<Error>,
}

impl Finished {
    /// Whether nothing was done: the handler neither read nor added.
    pub fn is_idle(&self) -> bool {
        !self.saved && !self.cookie_set && !self.vary && self.error.is_none()
    }
}

/// Adds `Cookie` to the response's `Vary`, merged into the one line the handler set (or its
/// lines joined into one), never twice: nothing changes when `Vary` already names `Cookie` or
/// is `*`. [`Adapter::finish`] calls it; it is public for responses made outside the handler.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.append("vary", "Accept-Encoding".parse().unwrap());
/// headers.append("vary", "Origin".parse().unwrap());
/// flash_core::vary_on_cookie(&mut headers);
/// flash_core::vary_on_cookie(&mut headers);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::keyed::KeyedStorage;
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
        Adapter::new(
            Arc::new(KeyedStorage::new(MemoryStore::new(), Key::generate())),
            Config::default(),
        )
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
        let adapter = Adapter::new(Arc::new(FailingSave), Config::default()).on_error(move |err| {
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

    /// The per-thread scratch map of a non-`http` framework is empty again after each request:
    /// one request's `Set-Cookie` never reaches the next response.
    #[cfg(feature = "testkit")]
    #[tokio::test]
    async fn the_scratch_map_carries_nothing_to_the_next_request() {
        let adapter = Adapter::new(
            Arc::new(crate::testkit::adapter_kit::KitCookieStorage),
            Config::default(),
        );
        let first = adapter.messages(Incoming::default());
        first.success("one");
        let mut lines = Lines::default();
        let finished = adapter.finish_now(&first, &mut lines).expect("never waits");
        assert!(finished.cookie_set);
        assert_eq!(lines.get("set-cookie").len(), 1);

        // A second request that reads (nothing: it brings no cookie) and adds nothing: saved
        // through the scratch map, nothing to write.
        let second = adapter.messages(Incoming::default());
        assert!(second.read().await.expect("a read").is_empty());
        let mut lines = Lines::default();
        adapter
            .finish_now(&second, &mut lines)
            .expect("never waits");
        assert!(lines.get("set-cookie").is_empty(), "{lines:?}");

        // A third that adds: exactly its own line.
        let third = adapter.messages(Incoming::default());
        third.success("three");
        let mut lines = Lines::default();
        adapter.finish_now(&third, &mut lines).expect("never waits");
        let cookies = lines.get("set-cookie");
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        assert!(
            cookies[0].starts_with("kit_messages=25.7468726565;"),
            "{cookies:?}"
        );
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
