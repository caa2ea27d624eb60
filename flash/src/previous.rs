//! [`WithPrevious`]: the current storage, and the storage being left, read and drained.

use async_trait::async_trait;
use flash_core::http::header::SET_COOKIE;
use flash_core::http::{HeaderMap, HeaderValue};
use flash_core::storage::{Identity, Incoming, LoadToken, Loaded, Storage, Update};
use flash_core::{Error, Message, Result};

/// The `tracing` target of the drain's log lines: `RUST_LOG=flash::previous=info` shows each
/// drain with its count.
pub const PREVIOUS_LOG_TARGET: &str = "flash::previous";

/// The current storage, and the previous one being left: read and drained, never written.
///
/// What an operator gets from `FLASH_STORAGE_PREVIOUS` (see
/// [`StorageConfig::previous`](crate::StorageConfig::previous)); built by hand, it composes
/// any two storages:
///
/// - **A read** shows what the previous storage still holds for this browser, then what the
///   current holds: the previous' messages were all stored before the switch, so they are the
///   older ones. The previous copy is then drained, whatever the request does with them: it is
///   consumed there (its cookie deleted, its rows or keys settled) and, when the request did
///   not consume them (it only counted them, or kept them), they move into the current
///   storage, before its own. Nothing else is ever written to the previous storage.
/// - **A request that does not read** touches neither storage beyond what the current does
///   alone; a request that only adds writes to the current. Unless the current storage would
///   overwrite what the previous holds ([`drain_before_add`](WithPrevious::drain_before_add)):
///   then the previous is drained first.
/// - **The previous storage failing** (down, too slow) never fails the request: the read shows
///   the current's messages, the previous' wait for the next read, and the error reaches the
///   application's error hook ([`SaveReport::degraded`](flash_core::SaveReport::degraded)).
/// - **Cookies both use**: the current storage owns them. The previous one may be kept from
///   seeing some ([`hide_from_previous`](WithPrevious::hide_from_previous): a cookie the
///   current reads as its own, so its messages are not shown twice), and its `Set-Cookie` lines
///   for the cookies the current uses ([`current_cookies`](WithPrevious::current_cookies)) are
///   dropped, so it never deletes or rewrites one of the current's.
///
/// Each drain is logged at INFO under the target [`PREVIOUS_LOG_TARGET`] with its count
/// (`drained=3`): when no line has come for longer than the previous storage keeps messages
/// (its longest TTL; a browser session for a cookie), it holds nothing and can be removed.
///
/// ```
/// use flash::storage::{ServerStorage, MemoryStore, Storage};
/// use flash::storage::{CookieStorage, Key, Keys, WithPrevious};
/// let secret = "a long application secret, from the environment";
/// let storage = WithPrevious::new(
///     ServerStorage::new(MemoryStore::new(), Keys::new(Key::derive(secret, "flash.id"))),
///     CookieStorage::new(Keys::new(Key::derive(secret, "flash.cookie"))),
/// )
/// .current_cookies(["flash_id", "flash_id_carry"]);
/// # let _: &dyn Storage = &storage;
/// ```
#[derive(Debug, Clone)]
pub struct WithPrevious<C, P> {
    current: C,
    previous: P,
    hidden: Vec<String>,
    current_cookies: Vec<String>,
    drain_before_add: bool,
}

/// The request as the previous storage sees it: the same, or without the hidden cookies.
enum View<'a> {
    Same(&'a Incoming),
    Without(Incoming),
}

impl std::ops::Deref for View<'_> {
    type Target = Incoming;

    fn deref(&self) -> &Incoming {
        match self {
            View::Same(request) => request,
            View::Without(request) => request,
        }
    }
}

/// What one read remembers for the save.
struct Token {
    current: LoadToken,
    previous: Previous,
}

/// What the previous storage gave at the read.
enum Previous {
    /// Its token and how many messages it showed (they come first).
    Loaded(LoadToken, usize),
    /// It failed: reported at the save.
    Failed(Error),
}

impl<C: Storage, P: Storage> WithPrevious<C, P> {
    /// `current`, draining `previous`.
    pub fn new(current: C, previous: P) -> Self {
        WithPrevious {
            current,
            previous,
            hidden: Vec::new(),
            current_cookies: Vec::new(),
            drain_before_add: false,
        }
    }

    /// Cookies the previous storage never sees: those the current storage reads as its own
    /// (the same name, format and key), so their messages are shown once, by the current.
    #[must_use]
    pub fn hide_from_previous<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.hidden.extend(names.into_iter().map(Into::into));
        self
    }

    /// The cookies the current storage uses: a `Set-Cookie` of the previous storage for one of
    /// them (deleting a cookie it could not read, which is the current's) is dropped.
    #[must_use]
    pub fn current_cookies<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.current_cookies
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Whether a request that adds without reading drains the previous storage first (default
    /// false). Needed when the current storage writes where the previous keeps its messages (a
    /// cookie of the same name in another format or key, an id cookie it cannot verify), which
    /// an add would overwrite; the price is reading the previous storage at every such add.
    #[must_use]
    pub fn drain_before_add(mut self, yes: bool) -> Self {
        self.drain_before_add = yes;
        self
    }

    /// The current storage.
    pub fn current(&self) -> &C {
        &self.current
    }

    /// The previous storage.
    pub fn previous(&self) -> &P {
        &self.previous
    }

    /// The request as the previous storage sees it.
    fn previous_view<'a>(&self, request: &'a Incoming) -> View<'a> {
        if self.hidden.is_empty() {
            return View::Same(request);
        }
        let names: Vec<&str> = self.hidden.iter().map(String::as_str).collect();
        View::Without(request.without_cookies(&names))
    }

    /// Reads the previous storage; a failure is logged and handed back for the save to report.
    async fn load_previous(&self, view: &Incoming) -> Previous {
        match self.previous.load(view).await {
            Ok(loaded) => {
                let n = loaded.messages.len();
                Previous::Loaded(
                    LoadToken::new(Loaded::new(loaded.messages, loaded.token)),
                    n,
                )
            }
            Err(err) => {
                tracing::warn!(
                    target: PREVIOUS_LOG_TARGET,
                    %err,
                    "the previous flash storage failed at read: its messages wait for the next read"
                );
                Previous::Failed(err)
            }
        }
    }

    /// Consumes what the previous storage showed (or, when it showed nothing, ends its read:
    /// a lease released, a cookie it cannot read left alone). Its `Set-Cookie` lines go to
    /// `scratch`. Returns whether its messages are gone from it.
    async fn settle_previous(
        &self,
        view: &Incoming,
        (token, shown): (LoadToken, usize),
        update: &Update,
        scratch: &mut HeaderMap,
    ) -> bool {
        let forget = if update.identity == Identity::Forget {
            Identity::Forget
        } else {
            Identity::Keep
        };
        let settle = Update::new(Some(token))
            .with_consumed(shown > 0)
            .with_limits(update.limits)
            .with_identity(forget)
            .with_degraded(update.degraded.clone());
        match self.previous.save(view, settle, scratch).await {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(
                    target: PREVIOUS_LOG_TARGET,
                    %err,
                    shown,
                    "the previous flash storage failed to settle: its messages stay there"
                );
                update.degraded.report(err);
                false
            }
        }
    }

    /// Adds the previous storage's `Set-Cookie` lines to the response, except those for a
    /// cookie the current storage uses or has just set.
    fn merge(&self, scratch: HeaderMap, response: &mut HeaderMap) {
        // Lines after the first of a header come without its name.
        let mut last = None;
        for (name, value) in scratch {
            if let Some(name) = name {
                last = Some(name);
            }
            let Some(name) = last.clone() else { continue };
            if name != SET_COOKIE {
                response.append(name, value);
                continue;
            }
            let cookie = cookie_name(&value);
            let set_by_current = response
                .get_all(SET_COOKIE)
                .iter()
                .any(|line| cookie_name(line) == cookie);
            if set_by_current || self.current_cookies.iter().any(|c| c.as_bytes() == cookie) {
                tracing::debug!(
                    target: PREVIOUS_LOG_TARGET,
                    cookie = %String::from_utf8_lossy(cookie),
                    "the previous storage's Set-Cookie for a cookie of the current storage is dropped"
                );
                continue;
            }
            response.append(SET_COOKIE, value);
        }
    }

    /// A request that added without reading, when the current storage would overwrite the
    /// previous one's messages: those go first into the current storage, before its own.
    async fn drain_then_add(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let view = self.previous_view(request);
        let (token, shown) = match self.load_previous(&view).await {
            Previous::Failed(err) => {
                update.degraded.report(err);
                return self.current.save(request, update, response).await;
            }
            Previous::Loaded(token, shown) => (token, shown),
        };
        let (token, previous_messages) = into_parts(token);
        let mut scratch = HeaderMap::new();
        if shown == 0 {
            self.settle_previous(&view, (token, 0), &update, &mut scratch)
                .await;
            let dropped = self.current.save(request, update, response).await?;
            self.merge(scratch, response);
            return Ok(dropped);
        }
        let current = self.current.load(request).await?;
        if !self
            .settle_previous(&view, (token, shown), &update, &mut scratch)
            .await
        {
            // Still in the previous storage: the current gets only its own, as it had them.
            let mut update = update;
            update.loaded = Some(current.token);
            update.unread = current.messages;
            let dropped = self.current.save(request, update, response).await?;
            self.merge(scratch, response);
            return Ok(dropped);
        }
        drained(shown, "added");
        let mut update = update;
        let mut pending = previous_messages;
        pending.extend(current.messages);
        pending.append(&mut update.added);
        update.loaded = Some(current.token);
        update.consumed = true;
        update.unread = Vec::new();
        update.added = pending;
        let dropped = self.current.save(request, update, response).await?;
        self.merge(scratch, response);
        Ok(dropped)
    }
}

/// The previous storage's messages and token, kept together until the save.
fn into_parts(token: LoadToken) -> (LoadToken, Vec<Message>) {
    match token.into_inner::<Loaded>() {
        Some(loaded) => (loaded.token, loaded.messages),
        None => (LoadToken::empty(), Vec::new()),
    }
}

/// Logs (and counts) `n` messages drained from the previous storage.
fn drained(n: usize, how: &'static str) {
    tracing::info!(
        target: PREVIOUS_LOG_TARGET,
        drained = n,
        how,
        "flash messages drained from the previous storage"
    );
}

/// The cookie name a `Set-Cookie` line sets.
fn cookie_name(line: &HeaderValue) -> &[u8] {
    let bytes = line.as_bytes();
    let end = bytes
        .iter()
        .position(|&b| b == b'=' || b == b';')
        .unwrap_or(bytes.len());
    bytes[..end].trim_ascii()
}

#[async_trait]
impl<C: Storage, P: Storage> Storage for WithPrevious<C, P> {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        let view = self.previous_view(request);
        let previous = self.load_previous(&view).await;
        let current = self.current.load(request).await?;
        let (previous, mut messages) = match previous {
            Previous::Loaded(token, shown) => {
                let (token, messages) = into_parts(token);
                (Previous::Loaded(token, shown), messages)
            }
            failed => (failed, Vec::new()),
        };
        messages.extend(current.messages);
        Ok(Loaded::new(
            messages,
            LoadToken::new(Token {
                current: current.token,
                previous,
            }),
        )
        .with_complete(current.complete))
    }

    async fn save(
        &self,
        request: &Incoming,
        mut update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let Some(token) = update
            .loaded
            .take()
            .and_then(LoadToken::into_inner::<Token>)
        else {
            if self.drain_before_add && !update.added.is_empty() {
                return self.drain_then_add(request, update, response).await;
            }
            return self.current.save(request, update, response).await;
        };
        update.loaded = Some(token.current);
        let (previous, shown) = match token.previous {
            Previous::Failed(err) => {
                update.degraded.report(err);
                return self.current.save(request, update, response).await;
            }
            Previous::Loaded(previous, shown) => (previous, shown),
        };
        let view = self.previous_view(request);
        let mut scratch = HeaderMap::new();
        // Unread, the previous storage's messages come first.
        let current_unread = update.unread.split_off(shown.min(update.unread.len()));
        let previous_unread = std::mem::replace(&mut update.unread, current_unread);
        let settled = self
            .settle_previous(&view, (previous, shown), &update, &mut scratch)
            .await;
        if settled && shown > 0 {
            drained(shown, if update.consumed { "shown" } else { "moved" });
            if !update.consumed && !previous_unread.is_empty() {
                // Not consumed: they move into the current storage, before its own.
                let mut pending = previous_unread;
                pending.append(&mut update.unread);
                pending.append(&mut update.added);
                update.consumed = true;
                update.added = pending;
            }
        }
        let dropped = self.current.save(request, update, response).await?;
        self.merge(scratch, response);
        Ok(dropped)
    }

    fn uses_extensions(&self) -> bool {
        self.current.uses_extensions() || self.previous.uses_extensions()
    }

    /// New messages go to the current storage only.
    fn carries_data(&self) -> bool {
        self.current.carries_data()
    }

    /// New messages go to the current storage only.
    fn can_hold(&self, message: &Message) -> bool {
        self.current.can_hold(message)
    }
}
