//! The storage trait that framework adapters drive.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::header::{COOKIE, SET_COOKIE};
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::message::Message;

/// What storage needs from the request, captured by the adapter before the handler runs.
///
/// ```
/// use flash_core::Incoming;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cookie", "a=1; messages=\"abc\"".parse().unwrap());
/// headers.insert("sec-purpose", "prefetch".parse().unwrap());
/// let incoming = Incoming::from_headers(&headers);
/// assert_eq!(incoming.cookie("messages"), Some("abc"));
/// assert_eq!(incoming.cookie("missing"), None);
/// assert!(incoming.is_prefetch());
/// ```
#[derive(Default)]
pub struct Incoming {
    // HTTP/1.1 sends one `Cookie` header, HTTP/2 may split it: the first is kept inline, so the
    // common request costs no allocation here.
    cookie: Option<HeaderValue>,
    more_cookies: Vec<HeaderValue>,
    extensions: Extensions,
    prefetch: bool,
}

impl Incoming {
    /// Captures the `Cookie` headers and whether the request is a prefetch
    /// (`Sec-Purpose: prefetch` or `Purpose: prefetch`).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        // Names made once: looking a header up by `&str` parses the name every time.
        static PURPOSE: [HeaderName; 2] = [
            HeaderName::from_static("sec-purpose"),
            HeaderName::from_static("purpose"),
        ];
        let prefetch = PURPOSE.iter().any(|name| {
            headers.get_all(name).iter().any(|v| {
                v.to_str().is_ok_and(|v| {
                    v.split(';')
                        .next()
                        .is_some_and(|p| p.trim().eq_ignore_ascii_case("prefetch"))
                })
            })
        });
        let mut cookies = headers.get_all(COOKIE).iter();
        Incoming {
            cookie: cookies.next().cloned(),
            more_cookies: cookies.cloned().collect(),
            extensions: Extensions::new(),
            prefetch,
        }
    }

    /// The value of the request cookie `name` (surrounding double quotes removed), if present.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookie
            .iter()
            .chain(&self.more_cookies)
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .find_map(|pair| {
                let (n, v) = pair.split_once('=')?;
                (n.trim() == name).then(|| {
                    let v = v.trim();
                    v.strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v)
                })
            })
    }

    /// Whether the request is a browser prefetch, which must neither see nor consume messages.
    pub fn is_prefetch(&self) -> bool {
        self.prefetch
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
            .finish_non_exhaustive()
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

/// The result of [`Storage::load`].
#[derive(Debug)]
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

/// What the request did, handed to [`Storage::save`] at the response.
#[derive(Debug, Default)]
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

    /// The same storage as one that never waits (it keeps messages in the request and
    /// response themselves, as a cookie does), so the request handle and adapters can load and
    /// save without a boxed future. Default: `None`; a storage that returns `Some` must behave
    /// exactly as its `load` and `save` do.
    fn immediate(&self) -> Option<&dyn ImmediateStorage> {
        None
    }
}

/// A storage whose `load` and `save` never wait: what [`Storage::immediate`] hands out.
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

    fn immediate(&self) -> Option<&dyn ImmediateStorage> {
        (**self).immediate()
    }
}

/// Appends a `Set-Cookie` header for `cookie` to `response`, the value written as is (not
/// percent-encoded): storages put only cookie-safe characters in values (base64url, and
/// Django's `:`), and a foreign reader must see exactly those bytes.
pub fn append_set_cookie(response: &mut HeaderMap, cookie: &cookie::Cookie<'_>) {
    match HeaderValue::try_from(cookie.to_string()) {
        Ok(value) => {
            response.append(SET_COOKIE, value);
        }
        Err(err) => {
            tracing::error!(%err, name = cookie.name(), "cookie is not a valid header value")
        }
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
