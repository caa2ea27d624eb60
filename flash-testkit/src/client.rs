//! A simulated browser: a cookie jar and the requests it makes.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use http::header::{COOKIE, SET_COOKIE};

use super::Harness;
use flash_core::Result;
use flash_core::adapter::{Adapter, InFlight, RequestParts};
use flash_core::storage::Incoming;
use flash_core::{Messages, MessagesConfig, SaveReport};

static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

/// A browser: a cookie jar shared by its requests (clones share it, like tabs).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use flash_core::storage::MemoryStore;
/// use flash_testkit::{Harness, Options};
///
/// let harness = Harness::keyed(MemoryStore::new(), &Options::new());
/// let browser = harness.client();
/// let post = browser.request();
/// post.info("Welcome back.");
/// post.finish().await;
/// assert!(browser.cookie(&harness.state_cookie).is_some()); // the signed id
///
/// // Another browser has its own jar, and none of the first one's messages.
/// let other = harness.client().request();
/// assert!(other.read().await?.is_empty());
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Client {
    harness: Harness,
    id: u64,
    jar: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Client {
    pub(super) fn new(harness: Harness) -> Self {
        Client {
            harness,
            id: NEXT_CLIENT.fetch_add(1, Ordering::Relaxed),
            jar: Arc::default(),
        }
    }

    /// This browser's id (handed to the harness's request hook).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A cookie from the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    /// Puts a cookie in the jar (to tamper with one).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    /// The same jar under another harness (another key, another storage).
    pub fn with_harness(&self, harness: Harness) -> Client {
        Client {
            harness,
            id: self.id,
            jar: self.jar.clone(),
        }
    }

    fn headers(&self, prefetch: bool) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let jar = self.jar.lock().unwrap();
        if !jar.is_empty() {
            let line = jar
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            headers.insert(COOKIE, line.parse().expect("cookie header"));
        }
        if prefetch {
            headers.insert("sec-purpose", "prefetch".parse().expect("header"));
        }
        headers
    }

    /// A request with the default [`MessagesConfig`].
    pub fn request(&self) -> Request {
        self.request_with(MessagesConfig::default())
    }

    /// A request with `config`.
    pub fn request_with(&self, config: impl Into<Arc<MessagesConfig>>) -> Request {
        self.build(config, false)
    }

    /// A prefetch request (`Sec-Purpose: prefetch`).
    pub fn prefetch(&self) -> Request {
        self.build(MessagesConfig::default(), true)
    }

    /// A browser's page load (`GET`, `Sec-Fetch-Mode: navigate`) of `target` (path and
    /// query), with `config`: what shows a message addressed to its path.
    pub fn page(&self, target: &str, config: impl Into<Arc<MessagesConfig>>) -> Request {
        self.to(target, "GET", Some("navigate"), config)
    }

    /// A script's `fetch` of `target` (`Sec-Fetch-Mode: cors`), with `config`.
    pub fn fetch(&self, target: &str, config: impl Into<Arc<MessagesConfig>>) -> Request {
        self.to(target, "GET", Some("cors"), config)
    }

    /// A request of `method` to `target` (path and query) with `Sec-Fetch-Mode: mode` (none
    /// when `None`), with `config`.
    pub fn to(
        &self,
        target: &str,
        method: &str,
        mode: Option<&str>,
        config: impl Into<Arc<MessagesConfig>>,
    ) -> Request {
        let mut headers = self.headers(false);
        if let Some(mode) = mode {
            headers.insert("sec-fetch-mode", mode.parse().expect("header"));
        }
        // Through the adapter contract, as a framework's request arrives: the handle is made
        // from the request's parts, and `Request::redirect` ends it with its response.
        let mut incoming = Incoming::default();
        if let Some(hook) = &self.harness.request_hook {
            hook(self.id, &mut incoming);
        }
        let extensions = incoming.extensions().clone();
        let in_flight = Adapter::new(self.harness.storage.clone())
            .with_config(config)
            .begin();
        let parts = RequestParts::new(method, &headers, Some(&extensions)).with_target(target);
        Request {
            messages: in_flight.slot().messages(parts).expect("in flight"),
            client: self.clone(),
            in_flight: Some(in_flight),
        }
    }

    fn build(&self, config: impl Into<Arc<MessagesConfig>>, prefetch: bool) -> Request {
        self.build_from(Incoming::from_headers(&self.headers(prefetch)), config)
    }

    fn build_from(
        &self,
        mut incoming: Incoming,
        config: impl Into<Arc<MessagesConfig>>,
    ) -> Request {
        if let Some(hook) = &self.harness.request_hook {
            hook(self.id, &mut incoming);
        }
        Request {
            messages: Messages::new(self.harness.storage.clone(), incoming, config),
            client: self.clone(),
            in_flight: None,
        }
    }

    fn apply(&self, response: &HeaderMap) {
        let mut jar = self.jar.lock().unwrap();
        for line in response.get_all(SET_COOKIE) {
            let line = line.to_str().expect("Set-Cookie is ASCII");
            let cookie = cookie::Cookie::parse_encoded(line).expect("a valid Set-Cookie");
            let expired = cookie
                .max_age()
                .is_some_and(|a| a.is_zero() || a.is_negative())
                || cookie.value().is_empty();
            if expired {
                jar.remove(cookie.name());
            } else {
                // Keep the value as sent on the wire.
                let raw = line
                    .split(';')
                    .next()
                    .and_then(|p| p.split_once('='))
                    .map(|(_, v)| v.trim().to_owned())
                    .unwrap_or_default();
                jar.insert(cookie.name().to_owned(), raw);
            }
        }
    }
}

/// One request in flight: the handle (dereferences to [`Messages`]) and its browser.
pub struct Request {
    /// The request's handle.
    pub messages: Messages,
    client: Client,
    /// The adapter's request, when made through the contract ([`Client::to`]).
    in_flight: Option<InFlight>,
}

impl Deref for Request {
    type Target = Messages;
    fn deref(&self) -> &Messages {
        &self.messages
    }
}

impl Request {
    /// Saves, applies the response's `Set-Cookie` to the jar, and returns the response.
    ///
    /// # Panics
    /// When saving fails.
    pub async fn finish(self) -> Response {
        match self.try_finish().await {
            Ok(response) => response,
            Err(err) => panic!("saving failed: {err} ({err:?})"),
        }
    }

    /// Saves and applies the response to the jar, or returns the storage's error.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn try_finish(self) -> Result<Response> {
        let mut headers = HeaderMap::new();
        let report = self.messages.save(&mut headers).await?;
        self.client.apply(&headers);
        Ok(Response { headers, report })
    }

    /// Ends the request with a `303 See Other` to `location`, as an adapter ends it
    /// ([`InFlight::finish_headers`]), applies the response to the jar and
    /// returns it.
    ///
    /// # Panics
    /// When saving fails.
    pub async fn redirect(self, location: &str) -> Response {
        let in_flight = self
            .in_flight
            .expect("a request made by `Client::to`, `page` or `fetch`");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::LOCATION, location.parse().expect("location"));
        let finished = in_flight.finish_headers(303, false, &mut headers).await;
        assert!(
            finished.error.is_none(),
            "saving failed: {:?}",
            finished.error
        );
        self.client.apply(&headers);
        Response {
            headers,
            report: SaveReport::default(),
        }
    }

    /// Drops the request between load and save, as a crashed worker would.
    pub fn abandon(self) {}
}

/// A finished request's response.
#[derive(Debug)]
pub struct Response {
    /// The headers storage wrote.
    pub headers: HeaderMap,
    /// What the save did.
    pub report: SaveReport,
}

impl Response {
    /// The `Set-Cookie` lines.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Whether the response deletes the cookie `name`.
    pub fn deletes(&self, name: &str) -> bool {
        self.set_cookies().iter().any(|line| {
            line.starts_with(&format!("{name}="))
                && (line.contains("Max-Age=0") || line.starts_with(&format!("{name}=;")))
        })
    }
}
