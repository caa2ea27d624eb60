//! The request-scoped handle: add, read, keep, and the end-of-request decision.

use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, Weak};

use http::HeaderMap;

use crate::address::{
    Addressing, HINT_COOKIE, Hint, Standing, hint_after, is_redirect, now_ms, standing,
};
use crate::error::{Error, ErrorKind, Result};
use crate::level::{Level, LevelTags};
use crate::limits::Limits;
use crate::message::Message;
use crate::message_list::MessageList;
use crate::storage::{
    Carry, Degraded, Identity, Incoming, LoadToken, Overflow, ReportSink, Storage, Update,
};

/// Per-application settings: the minimum level (messages below it are ignored), the tag map and
/// the limits.
///
/// The minimum level is called `level` everywhere, as Django's `MESSAGE_LEVEL` and
/// `set_level`: [`MessagesConfig::with_level`] here, [`Messages::set_level`] for one request.
///
/// ```
/// use flash_core::{MessagesConfig, Level, LevelTags};
/// let config = MessagesConfig::default()
///     .with_level(Level::DEBUG)
///     .with_level_tags(LevelTags::default().set(Level::ERROR, "danger"));
/// assert_eq!(config.level(), Level::DEBUG);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesConfig {
    level: Level,
    tags: LevelTags,
    limits: Limits,
    addressing: Addressing,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig {
            level: Level::INFO,
            tags: LevelTags::default(),
            limits: Limits::default(),
            addressing: Addressing::default(),
        }
    }
}

impl MessagesConfig {
    /// Sets the minimum level: messages below it are ignored (default [`Level::INFO`], Django's
    /// `MESSAGE_LEVEL`).
    #[must_use]
    pub fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Sets the level → tag map.
    #[must_use]
    pub fn with_level_tags(mut self, tags: LevelTags) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the bounds on one client's messages (default [`Limits::default`]).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The bounds on one client's messages.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sets the rule for addressed messages (default [`Addressing::default`]: what a redirect
    /// adds is for the redirect's page; [`Addressing::off`] turns it off).
    #[must_use]
    pub fn with_addressing(mut self, addressing: Addressing) -> Self {
        self.addressing = addressing;
        self
    }

    /// The rule for addressed messages.
    pub fn addressing(&self) -> &Addressing {
        &self.addressing
    }

    /// The minimum level: messages below it are ignored.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The tag map.
    pub fn level_tags(&self) -> &LevelTags {
        &self.tags
    }
}

/// What [`Messages::save`] did, for the adapter to shape the response.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # use std::sync::Arc;
/// # use flash_core::{Key, storage::{Incoming, MemoryStore, ServerStorage}};
/// # let storage = Arc::new(ServerStorage::new(MemoryStore::new(), Key::generate()));
/// use flash_core::{Messages, MessagesConfig};
///
/// let messages = Messages::new(storage, Incoming::default(), Arc::new(MessagesConfig::default()));
/// messages.success("Article saved.");
/// let mut response = http::HeaderMap::new();
/// let report = messages.save(&mut response).await?;
/// assert!(report.saved && report.vary); // the response gets `Vary: Cookie`
/// assert!(report.dropped.is_empty() && report.degraded.is_none());
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SaveReport {
    /// The request read or wrote messages: the response must carry `Vary: Cookie`.
    pub vary: bool,
    /// The storage was called.
    pub saved: bool,
    /// Messages the storage could not keep (size limit, or the client's [`Limits`] in a keyed
    /// store), oldest first.
    pub dropped: Vec<Message>,
    /// How many messages [`Messages::add`] refused (see [`Refused`]): beyond the [`Limits`]
    /// (too large, or too many or too many bytes for one request), or carrying data the storage
    /// cannot keep. Their text is not kept.
    pub refused: usize,
    /// A failure the storage recovered from, so the save still succeeded: the keyed store was
    /// unreachable or too slow, and the messages were carried in a signed cookie until it is
    /// back. The storage logged it at WARN; an adapter hands it to the application's error hook
    /// as it does a failed save, and serves the response normally.
    pub degraded: Option<Error>,
}

/// What [`Messages::try_add`] did with a message it did not refuse.
///
/// ```
/// # use std::sync::Arc;
/// # use flash_core::{Key, storage::{Incoming, MemoryStore, ServerStorage}};
/// # let storage = Arc::new(ServerStorage::new(MemoryStore::new(), Key::generate()));
/// use flash_core::{Added, Level, Message, Messages, MessagesConfig};
///
/// let config = Arc::new(MessagesConfig::default()); // minimum level INFO, as Django's
/// let messages = Messages::new(storage, Incoming::default(), config);
/// let saved = Message::new(Level::SUCCESS, "Article saved.");
/// assert_eq!(messages.try_add(saved), Ok(Added::Queued));
/// let hit = Message::new(Level::DEBUG, "Cache hit.");
/// assert_eq!(messages.try_add(hit), Ok(Added::BelowLevel));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Added {
    /// Queued: stored at the response ([`Messages::try_add`]) or shown in this request
    /// ([`Messages::try_add_now`]).
    Queued,
    /// Ignored, as Django ignores it: the text is empty.
    EmptyText,
    /// Ignored, as Django ignores it: the level is below the minimum level ([`Messages::level`]).
    BelowLevel,
}

impl Added {
    /// Whether the message was queued (what [`Messages::add`] returns).
    pub fn is_queued(self) -> bool {
        self == Added::Queued
    }
}

/// Why [`Messages::try_add`] refused a message: it is not kept, and counted in
/// [`SaveReport::refused`]. The text (`Display`) says what to change.
///
/// Converts into an [`Error`] (kind [`ErrorKind::SizeLimit`] at the limits,
/// [`ErrorKind::Encode`] for data), so a handler can `?` it.
///
/// ```
/// # use std::sync::Arc;
/// # use flash_core::{Key, storage::{Incoming, MemoryStore, ServerStorage}};
/// # let storage = Arc::new(ServerStorage::new(MemoryStore::new(), Key::generate()));
/// use flash_core::{ErrorKind, Level, Limits, Message, Messages, MessagesConfig, Refused};
///
/// let limits = Limits::default().with_max_text_len(20);
/// let config = Arc::new(MessagesConfig::default().with_limits(limits));
/// let messages = Messages::new(storage, Incoming::default(), config);
/// let long = Message::new(Level::INFO, "A text longer than twenty bytes.");
/// assert_eq!(messages.try_add(long.clone()), Err(Refused::TooLarge));
/// // In a handler returning `flash_core::Result`, `messages.try_add(long)?` fails with:
/// let err = flash_core::Error::from(messages.try_add(long).unwrap_err());
/// assert_eq!(err.kind(), ErrorKind::SizeLimit);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refused {
    /// The message alone ([`Message::size`]: its text, extra tags and data) is larger than
    /// [`Limits::max_text_len`].
    TooLarge,
    /// With it, the client would have more messages or bytes pending than
    /// [`Limits::max_messages`] or [`Limits::max_bytes`] allow.
    TooMuchPending,
    /// It carries data ([`Message::with_data`]) and the storage cannot keep data
    /// ([`Storage::carries_data`] is false: Django's cookie format, `format=django`, and
    /// Django's session format have no place for it).
    DataNotSupported,
    /// The storage can never hold it, even alone ([`Storage::can_hold`] is false): it is
    /// larger than a cookie's value limit and there is no store to overflow into.
    TooLargeForStorage,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::TooLarge => {
                "the flash message is larger than one message may be (`Limits::max_text_len`): \
                 shorten its text or data, or raise the limit"
            }
            Refused::TooMuchPending => {
                "the client would have more flash messages or bytes pending than the limits \
                 allow (`Limits::max_messages`, `Limits::max_bytes`): add fewer, or raise them"
            }
            Refused::DataNotSupported => {
                "the flash message carries data, which this storage cannot keep (Django's \
                 cookie or session format): use flash's own cookie format (no \
                 `format=django`) or add the message without data"
            }
            Refused::TooLargeForStorage => {
                "the flash message is larger than this storage can ever hold (a cookie's value \
                 limit, with no store to overflow into): shorten it, or let large messages \
                 overflow to a server store (`cookie+<store>`)"
            }
        })
    }
}

impl std::error::Error for Refused {}

impl From<Refused> for Error {
    fn from(refused: Refused) -> Self {
        let kind = match refused {
            Refused::DataNotSupported => ErrorKind::Encode,
            Refused::TooLarge | Refused::TooMuchPending | Refused::TooLargeForStorage => {
                ErrorKind::SizeLimit
            }
        };
        Error::with_source(kind, "the flash message was refused at add", refused)
    }
}

/// [`Messages::add`]'s answer: whether it was queued, a refusal logged.
fn warn_refused(result: Result<Added, Refused>) -> bool {
    match result {
        Ok(added) => added.is_queued(),
        Err(refused) => {
            log_refused(refused);
            false
        }
    }
}

// Rare, and out of the way of an add that is kept.
#[cold]
#[inline(never)]
fn log_refused(refused: Refused) {
    tracing::warn!(reason = ?refused, "flash message refused: {refused}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Added,
    Now,
}

// Messages are kept as plain `Vec<Message>`s, the storage's own lists, so loading and saving
// move them without copying; where each came from is counted on the side.
#[derive(Default)]
struct State {
    /// `Some` once loaded: the `stored` messages of storage, followed by added ones moved here
    /// by a read (Django's `_loaded_messages`).
    loaded: Option<Load>,
    /// How many of `loaded` came from storage (a prefix).
    stored: usize,
    token: Option<LoadToken>,
    /// Added and not yet read (Django's `_queued_messages`).
    queued: Vec<Message>,
    /// The added messages that are for this request only ([`Messages::add_now`]), as positions
    /// in the order of adding (the tail of `loaded`, then `queued`). Usually empty.
    now: Vec<usize>,
    used: bool,
    added_new: bool,
    read_attempted: bool,
    level: Option<Level>,
    saved: bool,
    /// Messages refused at the limits (counted, not kept).
    refused: usize,
    /// Size of the messages added so far, against the per-client byte limit.
    added_bytes: usize,
    /// What the application asked for the client's id.
    identity: Identity,
    /// The first failure the storage recovered from while saving.
    degraded: Option<Error>,
    /// Stored messages addressed to another page (or to this one, for a request that is not a
    /// page load), with their place among the stored ones: neither shown nor consumed.
    held: Vec<(usize, Message)>,
    /// Positions in `loaded` of the stored messages addressed to this page: handed on when
    /// the request redirects without consuming them.
    for_page: Vec<usize>,
    /// What is stored changed without being consumed (a page load counted against a held
    /// message's bound): the storage rewrites it.
    rewrite: bool,
    /// The application asked that this request address nothing.
    unaddressed: bool,
    /// The response's status, as the adapter told it.
    status: Option<u16>,
    /// The page the response redirects to, as an address path.
    redirect: Option<String>,
}

/// Where a request's loaded messages are ([`State::loaded`]).
enum Load {
    /// Not read: the handle's own, moved into the update at save.
    Own(Vec<Message>),
    /// Read: in the handle's write-once cell ([`Inner::shown`]), `len` of them, which the lists
    /// a read hands out borrow through the handle, so a read allocates no list of its own.
    Shown(usize),
    /// Read again after adds that followed an earlier read (the cell is written once): a list
    /// of its own, shared with the lists handed out.
    Shared(Arc<Vec<Message>>),
}

impl Load {
    fn len(&self) -> usize {
        match self {
            Load::Own(messages) => messages.len(),
            Load::Shown(len) => *len,
            Load::Shared(messages) => messages.len(),
        }
    }

    /// The messages, `shown` being the handle's cell.
    fn messages<'a>(&'a self, shown: &'a [Message]) -> &'a [Message] {
        match self {
            Load::Own(messages) => messages,
            Load::Shown(_) => shown,
            Load::Shared(messages) => messages,
        }
    }
}

struct Inner {
    storage: Arc<dyn Storage>,
    config: Arc<MessagesConfig>,
    /// What the request carried: set when the handle is made, at once by [`Messages::new`],
    /// at the handler's first use for a request an adapter began ([`Messages::begun`]).
    incoming: OnceLock<Incoming>,
    state: Mutex<State>,
    /// What the request's first read handed out ([`Load::Shown`]): in the handle's own
    /// allocation, so that a read, the usual use of a loaded request, allocates no list.
    shown: OnceLock<Vec<Message>>,
    // Serialises the one load of the request without holding `state` across an await.
    load_gate: async_lock::Mutex<()>,
    /// The request an adapter began, for a handle made by [`Messages::begun`]: the request's
    /// state and its handle are one allocation.
    begun: Option<Begun>,
}

/// What an adapter's request keeps beside its handle ([`crate::adapter::InFlight`]).
pub(crate) struct Begun {
    /// The adapter that began the request: it makes the handle's [`Incoming`].
    pub(crate) adapter: crate::adapter::Adapter,
    /// The request began as a `HEAD` or `OPTIONS`.
    pub(crate) looks_only: bool,
    /// The request has ended: its slots make no handle any more.
    pub(crate) ended: std::sync::atomic::AtomicBool,
}

/// A handle held weakly: what a request's [`Slot`](crate::adapter::Slot) keeps.
#[derive(Clone)]
pub(crate) struct WeakMessages(Weak<Inner>);

impl WeakMessages {
    pub(crate) fn upgrade(&self) -> Option<Messages> {
        self.0.upgrade().map(|inner| Messages { inner })
    }
}

/// The flash messages of one request: a cheap clone shared by the adapter and the handler.
///
/// Adding is synchronous and never reads storage. Which way to add, in Django's words:
///
/// | you have | for a later request | for this request only |
/// |---|---|---|
/// | a text | [`success`](Messages::success), [`info`](Messages::info), [`warning`](Messages::warning), [`error`](Messages::error), [`debug`](Messages::debug) | |
/// | a level and a text | [`add_message(level, text)`](Messages::add_message) (Django's `add_message`) | |
/// | a whole [`Message`] (extra tags, trusted HTML, data) | [`add`](Messages::add) | [`add_now`](Messages::add_now) |
/// | and you must know why it was not kept | [`try_add`](Messages::try_add) | [`try_add_now`](Messages::try_add_now) |
///
/// All but the `try_` forms return whether the message was kept and log a refusal; the
/// `try_` forms say why not (ignored as Django ignores it, or [`Refused`]: beyond the
/// [`Limits`], or data the storage cannot keep). Reading is explicit and async: it loads once.
/// [`Messages::len`], [`Messages::contains`] and [`Messages::peek`] do not consume;
/// [`Messages::read`] does, and [`Messages::keep`] undoes it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use flash_core::{MessagesConfig, Keys, Key, Level, Messages, storage::{Incoming, ServerStorage, MemoryStore}};
///
/// let storage = Arc::new(ServerStorage::new(MemoryStore::new(), Keys::new(Key::generate())));
/// let config = Arc::new(MessagesConfig::default());
///
/// // POST: add, then save into the response headers.
/// let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
/// messages.success("Article saved.");
/// messages.debug("below the minimum level: ignored");
/// let mut response = http::HeaderMap::new();
/// messages.save(&mut response).await?;
/// let cookie = response["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
///
/// // GET after the redirect: the browser sends the cookie back.
/// let mut request = http::HeaderMap::new();
/// request.insert("cookie", cookie.parse().unwrap());
/// let messages = Messages::new(storage.clone(), Incoming::from_headers(&request), config);
/// assert_eq!(messages.len().await?, 1);
/// let shown = messages.read().await?;
/// assert_eq!(shown[0].text, "Article saved.");
/// assert_eq!(messages.read_views().await?[0].tags, "success");
/// messages.save(&mut http::HeaderMap::new()).await?;
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Messages {
    inner: Arc<Inner>,
}

impl ReportSink for Inner {
    fn report(&self, error: Error) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.degraded.is_none() {
            state.degraded = Some(error);
        }
    }
}

impl Messages {
    /// The handle for one request. `config` is a [`MessagesConfig`] or an `Arc` of one shared by
    /// every request, as every constructor that takes the settings accepts.
    pub fn new(
        storage: Arc<dyn Storage>,
        incoming: Incoming,
        config: impl Into<Arc<MessagesConfig>>,
    ) -> Self {
        Messages {
            inner: Arc::new(Inner {
                storage,
                config: config.into(),
                incoming: OnceLock::from(incoming),
                state: Mutex::new(State::default()),
                shown: OnceLock::new(),
                load_gate: async_lock::Mutex::new(()),
                begun: None,
            }),
        }
    }

    /// The handle of a request an adapter began, not made yet: [`Messages::make`] makes it
    /// when the handler first asks for it. Until then it is only the request's state.
    pub(crate) fn begun(
        storage: Arc<dyn Storage>,
        config: Arc<MessagesConfig>,
        begun: Begun,
    ) -> Self {
        Messages {
            inner: Arc::new(Inner {
                storage,
                config,
                incoming: OnceLock::new(),
                state: Mutex::new(State::default()),
                shown: OnceLock::new(),
                load_gate: async_lock::Mutex::new(()),
                begun: Some(begun),
            }),
        }
    }

    /// Makes the handle with what `incoming` returns, the first time (later calls do nothing).
    pub(crate) fn make(&self, incoming: impl FnOnce() -> Incoming) {
        self.inner.incoming.get_or_init(incoming);
    }

    /// Whether the handle is made: a handle from [`Messages::new`] always is.
    pub(crate) fn is_made(&self) -> bool {
        self.inner.incoming.get().is_some()
    }

    /// The request an adapter began, for a handle made by [`Messages::begun`].
    pub(crate) fn begun_request(&self) -> Option<&Begun> {
        self.inner.begun.as_ref()
    }

    pub(crate) fn downgrade(&self) -> WeakMessages {
        WeakMessages(Arc::downgrade(&self.inner))
    }

    /// The messages of the request's first read (empty before it): what its list borrows.
    pub(crate) fn shown(&self) -> &[Message] {
        self.inner.shown.get().map_or(&[], Vec::as_slice)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The application settings.
    pub fn config(&self) -> &MessagesConfig {
        &self.inner.config
    }

    /// The tag map, for rendering: `message.tags_in(messages.level_tags())`.
    pub fn level_tags(&self) -> &LevelTags {
        self.inner.config.level_tags()
    }

    /// What the request carried.
    pub fn incoming(&self) -> &Incoming {
        // An adapter hands out only made handles; before that, nothing was carried.
        static NOTHING: LazyLock<Incoming> = LazyLock::new(Incoming::default);
        self.inner.incoming.get().unwrap_or(&NOTHING)
    }

    /// The minimum level for this request: the application's unless
    /// [`set_level`](Messages::set_level) changed it (Django's `get_level`).
    pub fn level(&self) -> Level {
        self.state().level.unwrap_or(self.inner.config.level())
    }

    /// Sets the minimum level for this request only; `None` returns to the application's
    /// (Django's `set_level`).
    pub fn set_level(&self, level: impl Into<Option<Level>>) {
        self.state().level = level.into();
    }

    /// Queues a whole `message` (extra tags, trusted HTML, data) for a later request. Returns whether it was kept: empty text and levels
    /// below the minimum level are ignored; a message the storage could not keep is refused (see
    /// [`Messages::try_add`], which says why), logged at WARN and counted in
    /// [`SaveReport::refused`].
    pub fn add(&self, message: Message) -> bool {
        warn_refused(self.try_add(message))
    }

    /// Queues `message` for a later request, saying what became of it: [`Added::Queued`], or
    /// ignored as Django ignores it ([`Added::EmptyText`], [`Added::BelowLevel`]); or why
    /// it was refused:
    ///
    /// - [`Refused::TooLarge`]: the message alone is larger than the application's
    ///   [`Limits::max_text_len`];
    /// - [`Refused::TooMuchPending`]: this request already added as many messages or bytes as
    ///   one client may have pending ([`Limits::max_messages`], [`Limits::max_bytes`]);
    /// - [`Refused::TooLargeForStorage`]: the storage could never hold it, even alone
    ///   ([`Storage::can_hold`]: a cookie with no store to overflow into, and a message larger
    ///   than its value limit). Refused here, with a reason to show, rather than dropped at
    ///   the response;
    /// - [`Refused::DataNotSupported`]: it carries data ([`Message::with_data`]) and the
    ///   storage cannot keep data ([`Storage::carries_data`]: Django's cookie and session
    ///   formats). Refused here rather than lost at the response: the other messages are stored
    ///   as usual.
    ///
    /// A refused message is counted in [`SaveReport::refused`] (and so reported by the adapter);
    /// unlike [`Messages::add`], `try_add` logs nothing: the caller has the reason.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use flash_core::{Added, MessagesConfig, Key, Level, Limits, storage::{Incoming, ServerStorage, MemoryStore}};
    /// use flash_core::{Message, Messages, Refused};
    ///
    /// let storage = Arc::new(ServerStorage::new(MemoryStore::new(), Key::generate()));
    /// let config = MessagesConfig::default().with_limits(Limits::default().with_max_text_len(10));
    /// let messages = Messages::new(storage, Incoming::default(), Arc::new(config));
    ///
    /// assert_eq!(messages.try_add(Message::new(Level::INFO, "Saved.")), Ok(Added::Queued));
    /// assert_eq!(messages.try_add(Message::new(Level::DEBUG, "x")), Ok(Added::BelowLevel));
    /// let long = Message::new(Level::INFO, "far too long for ten bytes");
    /// let refused = messages.try_add(long).unwrap_err();
    /// assert_eq!(refused, Refused::TooLarge);
    /// assert!(refused.to_string().contains("max_text_len"));
    /// ```
    ///
    /// # Errors
    /// The [`Refused`] reason; the message is not kept.
    pub fn try_add(&self, message: Message) -> Result<Added, Refused> {
        self.push(message, Origin::Added)
    }

    /// Shows `message` in this request only: it is read with the others and never stored
    /// (Rails' `flash.now`). Returns whether it was kept, as [`Messages::add`] does.
    pub fn add_now(&self, message: Message) -> bool {
        warn_refused(self.try_add_now(message))
    }

    /// [`Messages::add_now`], saying what became of the message as [`Messages::try_add`] does.
    /// It is never stored, so its data is kept whatever the storage: only the [`Limits`]
    /// refuse it.
    ///
    /// # Errors
    /// The [`Refused`] reason; the message is not kept.
    pub fn try_add_now(&self, message: Message) -> Result<Added, Refused> {
        self.push(message, Origin::Now)
    }

    fn push(&self, mut message: Message, origin: Origin) -> Result<Added, Refused> {
        self.inner.config.addressing.bound(&mut message);
        if message.text.is_empty() {
            return Ok(Added::EmptyText);
        }
        // Asked before taking the lock: a wrapper may forward the call.
        let data_refused =
            origin == Origin::Added && message.data.is_some() && !self.inner.storage.carries_data();
        let never_held = origin == Origin::Added && !self.inner.storage.can_hold(&message);
        let mut state = self.state();
        if message.level < state.level.unwrap_or(self.inner.config.level()) {
            return Ok(Added::BelowLevel);
        }
        let limits = self.inner.config.limits();
        let size = message.size();
        let refused = if data_refused {
            Some(Refused::DataNotSupported)
        } else if size > limits.max_text_len() {
            Some(Refused::TooLarge)
        } else if never_held {
            Some(Refused::TooLargeForStorage)
        } else if limits.fitting(
            state.added_count(),
            state.added_bytes,
            std::slice::from_ref(&message),
        ) == 0
        {
            Some(Refused::TooMuchPending)
        } else {
            None
        };
        if let Some(refused) = refused {
            state.refused += 1;
            crate::observe::refused(refused);
            return Err(refused);
        }
        crate::observe::added();
        state.added_bytes += size;
        match origin {
            Origin::Added => state.added_new = true,
            Origin::Now => {
                let position = state.added_count();
                state.now.push(position);
            }
        }
        state.queued.push(message);
        Ok(Added::Queued)
    }

    /// Adds a message of `level` with `text` for a later request (Django's `add_message`);
    /// returns whether it was kept, as [`Messages::add`] does. For a custom level:
    /// `messages.add_message(Level::new(35), "Disk almost full.")`.
    pub fn add_message(&self, level: Level, text: impl Into<String>) -> bool {
        self.add(Message::new(level, text))
    }

    /// Adds a [`Level::DEBUG`] message.
    pub fn debug(&self, text: impl Into<String>) -> bool {
        self.add_message(Level::DEBUG, text)
    }

    /// Adds a [`Level::INFO`] message.
    pub fn info(&self, text: impl Into<String>) -> bool {
        self.add_message(Level::INFO, text)
    }

    /// Adds a [`Level::SUCCESS`] message.
    pub fn success(&self, text: impl Into<String>) -> bool {
        self.add_message(Level::SUCCESS, text)
    }

    /// Adds a [`Level::WARNING`] message.
    pub fn warning(&self, text: impl Into<String>) -> bool {
        self.add_message(Level::WARNING, text)
    }

    /// Adds a [`Level::ERROR`] message.
    pub fn error(&self, text: impl Into<String>) -> bool {
        self.add_message(Level::ERROR, text)
    }

    /// Gives the client a new id, as at login, so that whoever knew the old one (a shared
    /// computer, a fixed cookie) cannot read what is sent to the client from now on. With
    /// [`Carry::Keep`] the pending messages follow the client; with [`Carry::Drop`] they are
    /// deleted, as are the messages this request added so far. Messages added afterwards are
    /// stored under the new id.
    ///
    /// With a storage that keeps no id (cookie, session), `Carry::Keep` changes nothing and
    /// `Carry::Drop` means "no messages pending", as [`Messages::forget_id`] does.
    ///
    /// # Errors
    /// With [`Carry::Drop`], when loading the pending messages fails (backend unavailable).
    /// The id is rotated all the same; a keyed store keeps what was pending under the old id,
    /// out of the client's reach, until its TTL.
    pub async fn rotate_id(&self, carry: Carry) -> Result<()> {
        self.change_identity(Identity::Rotate(carry)).await
    }

    /// Forgets the client's id, as at logout: the messages pending for it and those this
    /// request added so far are deleted, and its id cookie is removed. Messages added
    /// afterwards ("You are logged out.") are stored as usual, under a new id.
    ///
    /// With a storage that keeps no id (cookie, session) it means "no messages pending".
    ///
    /// # Errors
    /// When loading the pending messages fails (backend unavailable). The id is forgotten all
    /// the same; a keyed store keeps what was pending under it, out of the client's reach,
    /// until its TTL.
    pub async fn forget_id(&self) -> Result<()> {
        self.change_identity(Identity::Forget).await
    }

    async fn change_identity(&self, identity: Identity) -> Result<()> {
        // Asked first: should loading fail, the id still changes, and what was pending for the
        // old one is out of the client's reach.
        self.state().identity = identity;
        if identity.drops_pending() {
            // Loaded, then consumed and emptied, so every storage deletes what is pending (a
            // keyed store settles its lease) and a later read shows none of it.
            let loaded = self.ensure_loaded().await;
            let mut state = self.state();
            state.used = true;
            if loaded.is_ok() {
                state.loaded = Some(Load::Own(Vec::new()));
                state.stored = 0;
            }
            state.queued.clear();
            state.now.clear();
            state.held.clear();
            state.for_page.clear();
            state.added_bytes = 0;
            return loaded;
        }
        Ok(())
    }

    /// Leaves what this request adds unaddressed even if the response redirects: any read
    /// shows it (see [`Addressing`]). Messages addressed with [`Message::addressed_to`] keep
    /// their address.
    pub fn leave_unaddressed(&self) {
        self.state().unaddressed = true;
    }

    /// Tells the handle the response's status, before the request ends: a redirect (with a
    /// `Location`, which [`InFlight::finish`](crate::adapter::InFlight::finish) reads from the response
    /// headers) addresses what the request added to the redirect's page. For adapters.
    pub fn set_response_status(&self, status: u16) {
        self.state().status = Some(status);
    }

    /// Whether the adapter said the response is a redirect.
    pub(crate) fn is_redirect_status(&self) -> bool {
        self.state().status.is_some_and(is_redirect)
    }

    /// Records that the response redirects to `location` when its status is a redirect:
    /// returns whether the stored messages must be loaded first (to hand on the ones addressed
    /// to this page, which the handler did not read).
    pub(crate) fn redirecting(&self, location: &[u8]) -> bool {
        let incoming = self.incoming();
        let (Some(from), Ok(location)) = (incoming.target(), std::str::from_utf8(location)) else {
            return false;
        };
        let addressing = &self.inner.config.addressing;
        let mut state = self.state();
        if !state.status.is_some_and(is_redirect) || state.saved {
            return false;
        }
        state.redirect = addressing.target_of(location, from);
        state.redirect.is_some()
            && addressing.on_redirect()
            && incoming.is_page_load()
            && incoming.is_get()
            && !incoming.is_prefetch()
            && state.loaded.is_none()
            // Something may be addressed to this page: a storage that never waits loads for
            // free, any other only when the hint cookie names the page.
            && (self.inner.storage.immediate().is_some()
                || Hint::parse(incoming.cookie_bytes(HINT_COOKIE)).names(from))
    }

    /// Loads for [`Messages::redirecting`]; a failure leaves the stored messages where they
    /// are (addressed to this page until their bound).
    pub(crate) async fn load_for_redirect(&self) {
        // The redirect's body shows no message: no `Vary: Cookie` for this load.
        let attempted = self.state().read_attempted;
        let loaded = self.ensure_loaded().await;
        self.state().read_attempted = attempted;
        if let Err(err) = loaded {
            tracing::warn!(%err, "cannot hand on messages addressed to a page that redirects");
        }
    }

    /// Whether this request added a message to store (Django's `added_new`).
    pub fn added_new(&self) -> bool {
        self.state().added_new
    }

    async fn ensure_loaded(&self) -> Result<()> {
        {
            let mut state = self.state();
            state.read_attempted = true;
            if state.loaded.is_some() {
                return Ok(());
            }
            if self.incoming().is_prefetch() {
                // A prefetch neither sees nor consumes: behave as if nothing was stored,
                // without touching storage.
                state.loaded = Some(Load::Own(Vec::new()));
                return Ok(());
            }
            if let Some(storage) = self.inner.storage.immediate() {
                // It never waits: loading under the state lock makes it happen once.
                let loaded = storage.load_now(self.incoming())?;
                state.set_loaded(loaded.messages, loaded.token, self.incoming());
                return Ok(());
            }
        }
        let _gate = self.inner.load_gate.lock().await;
        if self.state().loaded.is_some() {
            return Ok(());
        }
        // Through the `dyn Storage` itself, not the blanket impl for `Arc`, which would box a
        // second future.
        let loaded = self.inner.storage.as_ref().load(self.incoming()).await?;
        self.state()
            .set_loaded(loaded.messages, loaded.token, self.incoming());
        Ok(())
    }

    /// The number of pending messages (stored and added), without consuming them.
    ///
    /// # Errors
    /// When loading fails (backend unavailable).
    pub async fn len(&self) -> Result<usize> {
        self.ensure_loaded().await?;
        let state = self.state();
        Ok(state.loaded.as_ref().map_or(0, Load::len) + state.queued.len())
    }

    /// Whether there is no pending message, without consuming.
    ///
    /// # Errors
    /// When loading fails.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Whether an equal message (level and text) is pending, without consuming.
    ///
    /// # Errors
    /// When loading fails.
    pub async fn contains(&self, message: &Message) -> Result<bool> {
        self.ensure_loaded().await?;
        let state = self.state();
        Ok(self.all(&state).any(|m| m == message))
    }

    /// Every pending message, oldest first, without consuming.
    ///
    /// # Errors
    /// When loading fails.
    pub async fn peek(&self) -> Result<Vec<Message>> {
        self.ensure_loaded().await?;
        let state = self.state();
        Ok(self.all(&state).cloned().collect())
    }

    fn all<'a>(&'a self, state: &'a State) -> impl Iterator<Item = &'a Message> {
        state
            .loaded
            .iter()
            .flat_map(|l| l.messages(self.shown()))
            .chain(&state.queued)
    }

    /// Every pending message, oldest first, consuming them (Django's iteration): at the response
    /// only messages added after this are stored. Reading again returns them again.
    ///
    /// The [`MessageList`] is shared with the handle, not copied: the handle keeps the
    /// messages for [`Messages::keep`], [`Messages::len`] and a second read.
    ///
    /// # Errors
    /// When loading fails; nothing is consumed then.
    pub async fn read(&self) -> Result<MessageList> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        let state = &mut *state;
        state.used = true;
        let loaded = state.loaded.get_or_insert_with(|| Load::Own(Vec::new()));
        match loaded {
            Load::Own(messages) => {
                messages.append(&mut state.queued);
                let messages = std::mem::take(messages);
                let len = messages.len();
                match self.inner.shown.set(messages) {
                    Ok(()) => {
                        *loaded = Load::Shown(len);
                        Ok(MessageList::shown(self.clone()))
                    }
                    // Loaded again after a save (which takes what was loaded): the cell
                    // holds the first read's list, which may still be held.
                    Err(messages) => {
                        let messages = MessageList::share(messages);
                        *loaded = Load::Shared(Arc::clone(&messages));
                        Ok(MessageList::shared(messages))
                    }
                }
            }
            Load::Shown(_) if state.queued.is_empty() => Ok(MessageList::shown(self.clone())),
            Load::Shown(len) => {
                // Adds since the first read: the cell is written once, its lists never change.
                let mut messages = Vec::with_capacity(*len + state.queued.len());
                messages.extend_from_slice(self.shown());
                messages.append(&mut state.queued);
                let messages = Arc::new(messages);
                *loaded = Load::Shared(Arc::clone(&messages));
                Ok(MessageList::shared(messages))
            }
            Load::Shared(messages) => {
                if !state.queued.is_empty() {
                    // Copies only when an earlier read's list is still held.
                    Arc::make_mut(messages).append(&mut state.queued);
                }
                Ok(MessageList::shared(Arc::clone(messages)))
            }
        }
    }

    /// Undoes consumption for this request: every message read stays pending.
    pub fn keep(&self) {
        self.state().used = false;
    }

    /// Whether the messages were consumed (read and not kept).
    pub fn is_consumed(&self) -> bool {
        self.state().used
    }

    /// Whether [`Messages::save`] may have anything to do: the request read or added and has
    /// not saved yet. When false, an adapter can skip calling it (it would return at once).
    ///
    /// Crate-private: a speed hook of [`Adapter::finish_now`](crate::adapter::Adapter::finish_now), the
    /// one way adapters end a request; `save` alone is always correct.
    pub(crate) fn needs_save(&self) -> bool {
        let state = self.state();
        !state.saved
            && (state.token.is_some()
                || state.added_new
                || state.read_attempted
                || state.identity != Identity::Keep)
    }

    /// Saves at the response, writing any `Set-Cookie` into `response`. Call once, after the
    /// handler; a second call does nothing.
    ///
    /// If the messages were consumed, only those added afterwards are stored; else if anything
    /// was added, unread and new are stored; else nothing is written and storage is not called.
    ///
    /// # Errors
    /// When the storage fails; the adapter reports it and still serves the response.
    pub async fn save(&self, response: &mut HeaderMap) -> Result<SaveReport> {
        let (vary, refused, hint, update) = match self.begin_save() {
            Pending::Done(report) => return Ok(report),
            Pending::Save {
                vary,
                refused,
                hint,
                update,
            } => (vary, refused, hint, update),
        };
        let incoming = self.incoming();
        let dropped = match self.inner.storage.immediate() {
            Some(storage) => storage.save_now(incoming, update, response)?,
            // Through the `dyn Storage` itself, not the blanket impl for `Arc`, which would
            // box a second future.
            None => {
                self.inner
                    .storage
                    .as_ref()
                    .save(incoming, update, response)
                    .await?
            }
        };
        crate::observe::dropped(dropped.len());
        if let Some(line) = hint {
            append_hint(response, &line);
        }
        Ok(SaveReport {
            vary,
            saved: true,
            dropped,
            refused,
            degraded: self.state().degraded.take(),
        })
    }

    /// [`Messages::save`] done at once when the storage never waits
    /// ([`Storage::immediate`]), so an adapter needs no boxed future; `None`, having done
    /// nothing, when the storage may wait.
    ///
    /// Crate-private: adapters reach it through
    /// [`Adapter::finish_now`](crate::adapter::Adapter::finish_now), which also shapes the response.
    pub(crate) fn save_now(&self, response: &mut HeaderMap) -> Option<Result<SaveReport>> {
        let storage = self.inner.storage.immediate()?;
        Some(match self.begin_save() {
            Pending::Done(report) => Ok(report),
            Pending::Save {
                vary,
                refused,
                hint,
                update,
            } => storage
                .save_now(self.incoming(), update, response)
                .inspect(|dropped| {
                    crate::observe::dropped(dropped.len());
                    if let Some(line) = &hint {
                        append_hint(response, line);
                    }
                })
                .map(|dropped| SaveReport {
                    vary,
                    saved: true,
                    dropped,
                    refused,
                    degraded: self.state().degraded.take(),
                }),
        })
    }

    /// Marks the handle saved and takes what storage must be told.
    fn begin_save(&self) -> Pending {
        let mut state = self.state();
        if state.saved {
            return Pending::Done(SaveReport::default());
        }
        state.saved = true;
        let identity = state.identity;
        let vary = state.read_attempted || state.added_new || identity != Identity::Keep;
        // Forgetting consumed everything pending when it was asked; `keep` cannot undo it.
        let consumed = state.used || identity.drops_pending();
        let queued = std::mem::take(&mut state.queued);
        let now = std::mem::take(&mut state.now);
        let stored = state.stored;
        let held = std::mem::take(&mut state.held);
        let redirect = state.redirect.take();
        let addressing = &self.inner.config.addressing;
        let mut rewrite = state.rewrite;
        let (unread, mut added) = match state.loaded.take() {
            Some(loaded) if !consumed => {
                // Moved out, unless the application still holds what it read, or it is the
                // handle's cell (read, then kept): copied then.
                let mut loaded = match loaded {
                    Load::Own(messages) => messages,
                    Load::Shown(_) => self.shown().to_vec(),
                    Load::Shared(messages) => Arc::unwrap_or_clone(messages),
                };
                let read_before = loaded.split_off(stored);
                let added = if read_before.is_empty() {
                    queued
                } else {
                    let mut added = read_before;
                    added.extend(queued);
                    added
                };
                if let Some(target) = &redirect {
                    // This page redirects unread: what was for it is for its redirect's page.
                    for &at in &state.for_page {
                        loaded[at].address = Some(addressing.address(target.clone()));
                        rewrite = true;
                    }
                }
                (merge_held(loaded, held), without_now(added, &now, 0))
            }
            // What was read is consumed, with the messages added before the read; what was
            // held for another page stays.
            Some(loaded) => {
                if state.used {
                    crate::observe::shown(loaded.len());
                }
                if !held.is_empty() {
                    rewrite = true;
                }
                (
                    held.into_iter().map(|(_, m)| m).collect(),
                    without_now(queued, &now, loaded.len() - stored),
                )
            }
            None => (Vec::new(), without_now(queued, &now, 0)),
        };
        if let Some(target) = redirect
            && addressing.on_redirect()
            && !state.unaddressed
        {
            // The last message takes the path itself: one message (the usual case) costs no
            // copy of it.
            let mut left = added.iter().filter(|m| m.address.is_none()).count();
            let mut target = Some(target);
            for message in added.iter_mut().filter(|m| m.address.is_none()) {
                left -= 1;
                let path = if left == 0 {
                    target.take()
                } else {
                    target.clone()
                };
                message.address = Some(addressing.address(path.unwrap_or_default()));
            }
        }
        // A rewrite replaces what is stored with `unread` (and the added ones): storages
        // rewrite on a consumed update.
        let consumed = consumed || rewrite;
        // What is stored changes with what the request carried (a hand-on, a page load
        // counted): the response depends on the cookie even when nothing was shown.
        let vary = vary || rewrite;
        let token = state.token.take();
        let hint = if self.inner.storage.immediate().is_none() {
            let before = Hint::parse(self.incoming().cookie_bytes(HINT_COOKIE));
            hint_after(
                before,
                token.is_some(),
                unread.iter().chain(&added),
                now_ms(),
            )
            .map(|(hint, secs)| hint.set_cookie_line(secs))
        } else {
            // What a storage that never waits keeps is read without a store call: no hint.
            None
        };
        let refused = state.refused;
        if token.is_none() && added.is_empty() && identity == Identity::Keep {
            return Pending::Done(SaveReport {
                vary,
                refused,
                ..SaveReport::default()
            });
        }
        Pending::Save {
            vary,
            refused,
            hint,
            update: Update {
                loaded: token,
                consumed,
                unread,
                added,
                overflow: Overflow::DropOldest,
                limits: self.inner.config.limits,
                identity,
                degraded: Degraded::to(self.inner.clone()),
            },
        }
    }
}

impl Messages {
    /// Hands `deliver` the messages this request added and has not read (its
    /// [`Messages::add_now`] ones included), unless the messages were consumed; when it returns
    /// `Some`, they are taken: delivered with the response (htmx's `HX-Trigger`, see
    /// [`Htmx`](crate::Htmx)), never stored. When it returns `None` nothing changes.
    pub fn take_added_with<T>(&self, deliver: impl FnOnce(&[Message]) -> Option<T>) -> Option<T> {
        let mut state = self.state();
        if state.used || state.saved || state.queued.is_empty() {
            return None;
        }
        let taken = deliver(&state.queued)?;
        crate::observe::shown(state.queued.len());
        // Added messages read and then kept sit in `loaded`, before the queued ones: they stay.
        let before = state.loaded.as_ref().map_or(0, |l| l.len() - state.stored);
        state.queued.clear();
        state.now.retain(|&position| position < before);
        state.added_new = before > 0;
        Some(taken)
    }
}

/// What [`Messages::begin_save`] leaves to do.
enum Pending {
    Done(SaveReport),
    Save {
        vary: bool,
        refused: usize,
        /// The hint cookie's `Set-Cookie` line, when it changes ([`HINT_COOKIE`]).
        hint: Option<String>,
        update: Update,
    },
}

impl State {
    /// Sets aside the messages addressed elsewhere; returns the ones this request shows.
    fn hold_addressed(&mut self, messages: Vec<Message>, incoming: &Incoming) -> Vec<Message> {
        let now = now_ms();
        let mut shown = Vec::with_capacity(messages.len());
        for (place, mut message) in messages.into_iter().enumerate() {
            match standing(&message, incoming, now) {
                Standing::Shown => shown.push(message),
                Standing::ForThisPage => {
                    self.for_page.push(shown.len());
                    shown.push(message);
                }
                Standing::Held => {
                    if incoming.is_page_load()
                        && let Some(address) = &mut message.address
                    {
                        // A page load of another page: one nearer the bound.
                        address.loads_left -= 1;
                        self.rewrite = true;
                    }
                    self.held.push((place, message));
                }
            }
        }
        shown
    }

    /// How many messages were added so far (read or not).
    fn added_count(&self) -> usize {
        self.loaded.as_ref().map_or(0, |l| l.len() - self.stored) + self.queued.len()
    }

    fn set_loaded(&mut self, mut messages: Vec<Message>, token: LoadToken, incoming: &Incoming) {
        if incoming.target().is_some() && messages.iter().any(|m| m.address.is_some()) {
            messages = self.hold_addressed(messages, incoming);
        }
        // Messages added before the load go after the stored ones, and are still queued.
        self.stored = messages.len();
        self.loaded = Some(Load::Own(messages));
        self.token = Some(token);
    }
}

/// Writes the hint cookie's line ([`HINT_COOKIE`]) into the response's headers.
fn append_hint(response: &mut HeaderMap, line: &str) {
    if let Ok(value) = http::HeaderValue::from_str(line) {
        response.append(http::header::SET_COOKIE, value);
    }
}

/// The shown stored messages `shown` and the `held` ones (with their places among the stored)
/// back in their stored order.
fn merge_held(shown: Vec<Message>, held: Vec<(usize, Message)>) -> Vec<Message> {
    if held.is_empty() {
        return shown;
    }
    let mut all = Vec::with_capacity(shown.len() + held.len());
    let mut shown = shown.into_iter();
    for (place, message) in held {
        while all.len() < place {
            match shown.next() {
                Some(m) => all.push(m),
                None => break,
            }
        }
        all.push(message);
    }
    all.extend(shown);
    all
}

/// `added`, whose first message is the `offset`-th added, without those added with
/// [`Messages::add_now`] (positions in `now`, ascending).
fn without_now(mut added: Vec<Message>, now: &[usize], offset: usize) -> Vec<Message> {
    if now.is_empty() {
        return added;
    }
    let mut position = offset;
    added.retain(|_| {
        let keep = now.binary_search(&position).is_err();
        position += 1;
        keep
    });
    added
}

impl fmt::Debug for Messages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Messages")
            .field("loaded", &state.loaded.as_ref().map(Load::len))
            .field("queued", &state.queued.len())
            .field("used", &state.used)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Loaded;

    /// The texts of an update's unread and added messages, and whether it consumed.
    type Saved = (Vec<String>, Vec<String>, bool);

    /// Loads two stored messages and records the update it is asked to save.
    #[derive(Default)]
    struct Recorder(Mutex<Option<Saved>>);

    #[async_trait::async_trait]
    impl Storage for Recorder {
        async fn load(&self, _: &Incoming) -> Result<Loaded> {
            Ok(Loaded {
                messages: vec![
                    Message::new(Level::INFO, "s1"),
                    Message::new(Level::INFO, "s2"),
                ],
                complete: true,
                token: LoadToken::new(()),
            })
        }

        async fn save(
            &self,
            _: &Incoming,
            update: Update,
            _: &mut HeaderMap,
        ) -> Result<Vec<Message>> {
            let texts = |list: &[Message]| list.iter().map(|m| m.text.clone()).collect();
            *self.0.lock().expect("lock") =
                Some((texts(&update.unread), texts(&update.added), update.consumed));
            Ok(Vec::new())
        }
    }

    fn handle() -> (Messages, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let messages = Messages::new(
            recorder.clone(),
            Incoming::default(),
            Arc::new(MessagesConfig::default()),
        );
        (messages, recorder)
    }

    fn now(messages: &Messages, text: &str) {
        assert!(messages.add_now(Message::new(Level::INFO, text)));
    }

    async fn saved(messages: &Messages, recorder: &Recorder) -> Saved {
        messages.save(&mut HeaderMap::new()).await.expect("saved");
        recorder
            .0
            .lock()
            .expect("lock")
            .take()
            .expect("save called")
    }

    #[tokio::test]
    async fn a_read_after_a_save_loads_again_and_leaves_the_first_list_alone() {
        let texts = |list: &[Message]| list.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
        let (messages, recorder) = handle();
        messages.info("a");
        let first = messages.read().await.expect("read");
        // The first read holds what was loaded and what was added before it.
        assert_eq!(texts(&first), ["s1", "s2", "a"]);
        assert_eq!(
            saved(&messages, &recorder).await,
            (Vec::new(), Vec::new(), true)
        );
        // The save took what was loaded: a later read loads again, into a list of its own.
        let again = messages.read().await.expect("read");
        assert_eq!(texts(&again), ["s1", "s2"]);
        assert_eq!(texts(&first), ["s1", "s2", "a"]);
        assert_eq!(first.clone().into_vec(), first);
    }

    #[tokio::test]
    async fn forgetting_after_a_read_empties_later_reads_but_not_the_list_held() {
        let (messages, _) = handle();
        let first = messages.read().await.expect("read");
        messages.forget_id().await.expect("forgotten");
        assert!(messages.read().await.expect("read").is_empty());
        messages.info("after");
        let after = messages.read().await.expect("read");
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].text, "after");
        assert_eq!(first.len(), 2);
    }

    #[tokio::test]
    async fn a_held_read_list_never_changes_and_keep_still_stores_everything() {
        let texts = |list: &[Message]| list.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
        let (messages, recorder) = handle();
        let first = messages.read().await.expect("read");
        assert_eq!(texts(&first), ["s1", "s2"]);
        // Kept in the handle's own cell, not copied.
        assert!(std::ptr::eq(first.as_ptr(), messages.shown().as_ptr()));
        messages.info("a");
        let second = messages.read().await.expect("read");
        // The list the application holds is not touched by a later read.
        assert_eq!(texts(&first), ["s1", "s2"]);
        assert_eq!(texts(&second), ["s1", "s2", "a"]);
        messages.info("b");
        messages.keep();
        // Still held while saving: the handle's own messages are copied, not taken.
        assert_eq!(
            saved(&messages, &recorder).await,
            (
                vec!["s1".into(), "s2".into()],
                vec!["a".into(), "b".into()],
                false
            )
        );
        assert_eq!(texts(&second), ["s1", "s2", "a"]);
    }

    #[tokio::test]
    async fn now_messages_are_left_out_wherever_they_were_added() {
        // Not loaded.
        let (messages, recorder) = handle();
        messages.info("a");
        now(&messages, "b");
        messages.info("c");
        now(&messages, "d");
        assert_eq!(
            saved(&messages, &recorder).await,
            (vec![], vec!["a".into(), "c".into()], false)
        );

        // Read (consumed): what was added before the read is consumed with the stored ones.
        let (messages, recorder) = handle();
        messages.info("a");
        now(&messages, "b");
        let shown: Vec<_> = messages
            .read()
            .await
            .expect("read")
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(shown, ["s1", "s2", "a", "b"]);
        messages.info("c");
        now(&messages, "d");
        messages.info("e");
        assert_eq!(
            saved(&messages, &recorder).await,
            (vec![], vec!["c".into(), "e".into()], true)
        );

        // Read, then kept: everything but the now messages stays.
        let (messages, recorder) = handle();
        now(&messages, "a");
        messages.info("b");
        messages.read().await.expect("read");
        now(&messages, "c");
        messages.info("d");
        messages.keep();
        assert_eq!(
            saved(&messages, &recorder).await,
            (
                vec!["s1".into(), "s2".into()],
                vec!["b".into(), "d".into()],
                false
            )
        );

        // Peeked (loaded, not consumed).
        let (messages, recorder) = handle();
        messages.info("a");
        assert_eq!(messages.len().await.expect("len"), 3);
        now(&messages, "b");
        messages.info("c");
        assert_eq!(
            saved(&messages, &recorder).await,
            (
                vec!["s1".into(), "s2".into()],
                vec!["a".into(), "c".into()],
                false
            )
        );
    }

    #[tokio::test]
    async fn forgetting_consumes_what_is_pending_and_what_was_added_so_far() {
        let (messages, recorder) = handle();
        messages.info("before");
        messages.forget_id().await.expect("forget");
        assert!(messages.peek().await.expect("peek").is_empty());
        messages.info("after");
        messages.keep();
        assert_eq!(
            saved(&messages, &recorder).await,
            (vec![], vec!["after".into()], true)
        );

        // Rotating with the messages kept changes nothing the handle decides, but still
        // reaches storage, which may keep an id.
        let (messages, recorder) = handle();
        assert!(!messages.needs_save());
        messages
            .rotate_id(Carry::Keep)
            .await
            .expect("rotate needs no load");
        assert!(messages.needs_save());
        assert_eq!(saved(&messages, &recorder).await, (vec![], vec![], false));

        let (messages, recorder) = handle();
        messages.info("dropped");
        messages.rotate_id(Carry::Drop).await.expect("rotate");
        assert_eq!(saved(&messages, &recorder).await, (vec![], vec![], true));
    }

    /// A storage whose format has no place for data: records what it is asked to store.
    #[derive(Default)]
    struct NoData(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl Storage for NoData {
        async fn load(&self, _: &Incoming) -> Result<Loaded> {
            Ok(Loaded::nothing())
        }

        async fn save(
            &self,
            _: &Incoming,
            update: Update,
            _: &mut HeaderMap,
        ) -> Result<Vec<Message>> {
            let mut saved = self.0.lock().expect("lock");
            saved.extend(update.into_messages().into_iter().map(|m| m.text));
            Ok(Vec::new())
        }

        fn carries_data(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn try_add_says_why() {
        let storage = Arc::new(NoData::default());
        let limits = Limits::default()
            .with_max_text_len(8)
            .with_max_messages(3)
            .with_max_bytes(20);
        let messages = Messages::new(
            storage.clone(),
            Incoming::default(),
            Arc::new(MessagesConfig::default().with_limits(limits)),
        );
        let info = |text: &str| Message::new(Level::INFO, text);
        let data = serde_json::json!(7);
        assert_eq!(messages.try_add(info("")), Ok(Added::EmptyText));
        assert_eq!(
            messages.try_add(Message::new(Level::DEBUG, "low")),
            Ok(Added::BelowLevel)
        );
        assert_eq!(messages.try_add(info("123456789")), Err(Refused::TooLarge));
        assert_eq!(
            messages.try_add(info("a").with_data(data.clone())),
            Err(Refused::DataNotSupported)
        );
        assert_eq!(messages.try_add(info("12345678")), Ok(Added::Queued));
        assert_eq!(messages.try_add(info("12345678")), Ok(Added::Queued));
        // 16 bytes pending: 5 more exceed the 20 allowed, 4 fit; then 3 messages are the most.
        assert_eq!(
            messages.try_add(info("12345")),
            Err(Refused::TooMuchPending)
        );
        // Shown now, never stored: its data is kept, only the limits count.
        assert_eq!(
            messages.try_add_now(info("now").with_data(data.clone())),
            Ok(Added::Queued)
        );
        assert_eq!(messages.try_add(info("x")), Err(Refused::TooMuchPending));
        assert!(!messages.add(info("y").with_data(data)));
        assert!(!messages.add(info("")));

        let report = messages.save(&mut HeaderMap::new()).await.expect("saved");
        assert_eq!(report.refused, 5);
        assert_eq!(*storage.0.lock().expect("lock"), ["12345678", "12345678"]);

        for (refused, kind, names) in [
            (
                Refused::TooLarge,
                crate::ErrorKind::SizeLimit,
                "max_text_len",
            ),
            (
                Refused::TooMuchPending,
                crate::ErrorKind::SizeLimit,
                "max_bytes",
            ),
            (
                Refused::DataNotSupported,
                crate::ErrorKind::Encode,
                "format=django",
            ),
        ] {
            assert!(refused.to_string().contains(names), "{refused}");
            let err = Error::from(refused);
            assert_eq!(err.kind(), kind);
            assert!(std::error::Error::source(&err).is_some());
        }
    }

    /// Saves successfully, reporting a failure it recovered from.
    struct Recovering;

    #[async_trait::async_trait]
    impl Storage for Recovering {
        async fn load(&self, _: &Incoming) -> Result<Loaded> {
            Ok(Loaded::nothing())
        }

        async fn save(
            &self,
            _: &Incoming,
            update: Update,
            _: &mut HeaderMap,
        ) -> Result<Vec<Message>> {
            update.degraded.report(Error::new(
                crate::ErrorKind::Unavailable,
                "the store is down",
            ));
            update
                .degraded
                .report(Error::new(crate::ErrorKind::Backend, "second"));
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn a_recovered_failure_is_in_the_report() {
        let messages = Messages::new(
            Arc::new(Recovering),
            Incoming::default(),
            Arc::new(MessagesConfig::default()),
        );
        messages.info("a");
        let report = messages.save(&mut HeaderMap::new()).await.expect("saved");
        let degraded = report.degraded.expect("reported");
        assert_eq!(
            degraded.kind(),
            crate::ErrorKind::Unavailable,
            "the first one"
        );
    }
}
