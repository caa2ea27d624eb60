//! The request-scoped handle: add, read, keep, and the end-of-request decision.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use http::HeaderMap;

use crate::error::Result;
use crate::level::{Level, LevelTags};
use crate::message::Message;
use crate::storage::{Incoming, LoadToken, Overflow, Storage, Update};

/// Per-application settings: the threshold below which messages are ignored and the tag map.
///
/// ```
/// use flash_core::{Config, Level, LevelTags};
/// let config = Config::default()
///     .threshold(Level::DEBUG)
///     .tags(LevelTags::default().set(Level::ERROR, "danger"));
/// assert_eq!(config.level(), Level::DEBUG);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    threshold: Level,
    tags: LevelTags,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: Level::INFO,
            tags: LevelTags::default(),
        }
    }
}

impl Config {
    /// Sets the lowest level that is kept (default [`Level::INFO`]).
    #[must_use]
    pub fn threshold(mut self, level: Level) -> Self {
        self.threshold = level;
        self
    }

    /// Sets the level → tag map.
    #[must_use]
    pub fn tags(mut self, tags: LevelTags) -> Self {
        self.tags = tags;
        self
    }

    /// The threshold.
    pub fn level(&self) -> Level {
        self.threshold
    }

    /// The tag map.
    pub fn level_tags(&self) -> &LevelTags {
        &self.tags
    }
}

/// What [`Messages::save`] did, for the adapter to shape the response.
#[derive(Debug, Default)]
pub struct SaveReport {
    /// The request read or wrote messages: the response must carry `Vary: Cookie`.
    pub vary: bool,
    /// The storage was called.
    pub saved: bool,
    /// Messages the storage could not keep (size limit), oldest first.
    pub dropped: Vec<Message>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Stored,
    Added,
    Now,
}

struct Entry {
    message: Message,
    origin: Origin,
}

#[derive(Default)]
struct State {
    /// `Some` once loaded: stored messages, followed by added ones moved here by a read
    /// (Django's `_loaded_messages`).
    loaded: Option<Vec<Entry>>,
    token: Option<LoadToken>,
    /// Added and not yet read (Django's `_queued_messages`).
    queued: Vec<Entry>,
    used: bool,
    added_new: bool,
    read_attempted: bool,
    level: Option<Level>,
    saved: bool,
}

struct Inner {
    storage: Arc<dyn Storage>,
    config: Arc<Config>,
    incoming: Incoming,
    state: Mutex<State>,
    // Serialises the one load of the request without holding `state` across an await.
    load_gate: tokio::sync::Mutex<()>,
}

/// The flash messages of one request: a cheap clone shared by the adapter and the handler.
///
/// Adding is synchronous and never reads storage. Reading is explicit and async: it loads once.
/// [`Messages::len`], [`Messages::contains`] and [`Messages::peek`] do not consume;
/// [`Messages::read`] does, and [`Messages::keep`] undoes it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use flash_core::{Config, Incoming, Keys, Key, KeyedStorage, Level, MemoryStore, Messages};
///
/// let storage = Arc::new(KeyedStorage::new(MemoryStore::new(), Keys::new(Key::generate())));
/// let config = Arc::new(Config::default());
///
/// // POST: add, then save into the response headers.
/// let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
/// messages.success("Article saved.");
/// messages.debug("below the threshold: ignored");
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
/// assert_eq!(shown[0].tags(), "success");
/// messages.save(&mut http::HeaderMap::new()).await?;
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Messages {
    inner: Arc<Inner>,
}

impl Messages {
    /// The handle for one request.
    pub fn new(storage: Arc<dyn Storage>, incoming: Incoming, config: Arc<Config>) -> Self {
        Messages {
            inner: Arc::new(Inner {
                storage,
                config,
                incoming,
                state: Mutex::new(State::default()),
                load_gate: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The application settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The tag map, for rendering: `message.tags_in(messages.level_tags())`.
    pub fn level_tags(&self) -> &LevelTags {
        self.inner.config.level_tags()
    }

    /// What the request carried.
    pub fn incoming(&self) -> &Incoming {
        &self.inner.incoming
    }

    /// The threshold for this request.
    pub fn level(&self) -> Level {
        self.state().level.unwrap_or(self.inner.config.level())
    }

    /// Sets the threshold for this request only; `None` returns to the application's.
    pub fn set_level(&self, level: impl Into<Option<Level>>) {
        self.state().level = level.into();
    }

    /// Queues `message` for a later request. Returns whether it was kept: empty text and levels
    /// below the threshold are ignored.
    pub fn add_message(&self, message: Message) -> bool {
        self.push(message, Origin::Added)
    }

    /// Shows `message` in this request only: it is read with the others and never stored
    /// (Rails' `flash.now`).
    pub fn add_now(&self, message: Message) -> bool {
        self.push(message, Origin::Now)
    }

    fn push(&self, message: Message, origin: Origin) -> bool {
        if message.text.is_empty() {
            return false;
        }
        let mut state = self.state();
        if message.level < state.level.unwrap_or(self.inner.config.level()) {
            return false;
        }
        if origin == Origin::Added {
            state.added_new = true;
        }
        state.queued.push(Entry { message, origin });
        true
    }

    /// Adds a message of `level` with `text`.
    pub fn add(&self, level: Level, text: impl Into<String>) -> bool {
        self.add_message(Message::new(level, text))
    }

    /// Adds a [`Level::DEBUG`] message.
    pub fn debug(&self, text: impl Into<String>) -> bool {
        self.add(Level::DEBUG, text)
    }

    /// Adds a [`Level::INFO`] message.
    pub fn info(&self, text: impl Into<String>) -> bool {
        self.add(Level::INFO, text)
    }

    /// Adds a [`Level::SUCCESS`] message.
    pub fn success(&self, text: impl Into<String>) -> bool {
        self.add(Level::SUCCESS, text)
    }

    /// Adds a [`Level::WARNING`] message.
    pub fn warning(&self, text: impl Into<String>) -> bool {
        self.add(Level::WARNING, text)
    }

    /// Adds a [`Level::ERROR`] message.
    pub fn error(&self, text: impl Into<String>) -> bool {
        self.add(Level::ERROR, text)
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
            if self.inner.incoming.is_prefetch() {
                // A prefetch neither sees nor consumes: behave as if nothing was stored,
                // without touching storage.
                state.loaded = Some(Vec::new());
                return Ok(());
            }
        }
        let _gate = self.inner.load_gate.lock().await;
        if self.state().loaded.is_some() {
            return Ok(());
        }
        // Through the `dyn Storage` itself, not the blanket impl for `Arc`, which would box a
        // second future.
        let loaded = self
            .inner
            .storage
            .as_ref()
            .load(&self.inner.incoming)
            .await?;
        let mut state = self.state();
        state.loaded = Some(
            loaded
                .messages
                .into_iter()
                .map(|message| Entry {
                    message,
                    origin: Origin::Stored,
                })
                .collect(),
        );
        state.token = Some(loaded.token);
        Ok(())
    }

    /// The number of pending messages (stored and added), without consuming them.
    ///
    /// # Errors
    /// When loading fails (backend unavailable).
    pub async fn len(&self) -> Result<usize> {
        self.ensure_loaded().await?;
        let state = self.state();
        Ok(state.loaded.as_ref().map_or(0, Vec::len) + state.queued.len())
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
        Ok(Self::all(&state).any(|m| m == message))
    }

    /// Every pending message, oldest first, without consuming.
    ///
    /// # Errors
    /// When loading fails.
    pub async fn peek(&self) -> Result<Vec<Message>> {
        self.ensure_loaded().await?;
        let state = self.state();
        Ok(Self::all(&state).cloned().collect())
    }

    fn all(state: &State) -> impl Iterator<Item = &Message> {
        state
            .loaded
            .iter()
            .flatten()
            .chain(&state.queued)
            .map(|e| &e.message)
    }

    /// Every pending message, oldest first, consuming them (Django's iteration): at the response
    /// only messages added after this are stored. Reading again returns them again.
    ///
    /// # Errors
    /// When loading fails; nothing is consumed then.
    pub async fn read(&self) -> Result<Vec<Message>> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        let state = &mut *state;
        state.used = true;
        let loaded = state.loaded.get_or_insert_with(Vec::new);
        loaded.append(&mut state.queued);
        Ok(loaded.iter().map(|e| e.message.clone()).collect())
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
    pub fn needs_save(&self) -> bool {
        let state = self.state();
        !state.saved && (state.token.is_some() || state.added_new || state.read_attempted)
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
        let update = {
            let mut state = self.state();
            if state.saved {
                return Ok(SaveReport::default());
            }
            state.saved = true;
            let vary = state.read_attempted || state.added_new;
            let keep = |e: Entry| (e.origin != Origin::Now).then_some(e.message);
            let consumed = state.used;
            let queued = std::mem::take(&mut state.queued);
            let (unread, added) = match state.loaded.take() {
                Some(loaded) if !consumed => {
                    let (stored, added): (Vec<_>, Vec<_>) =
                        loaded.into_iter().partition(|e| e.origin == Origin::Stored);
                    let unread = stored.into_iter().map(|e| e.message).collect();
                    let added: Vec<Message> =
                        added.into_iter().chain(queued).filter_map(keep).collect();
                    (unread, added)
                }
                _ => (Vec::new(), queued.into_iter().filter_map(keep).collect()),
            };
            let token = state.token.take();
            if token.is_none() && added.is_empty() {
                return Ok(SaveReport {
                    vary,
                    ..SaveReport::default()
                });
            }
            (
                vary,
                Update {
                    loaded: token,
                    consumed,
                    unread,
                    added,
                    overflow: Overflow::DropOldest,
                },
            )
        };
        let (vary, update) = update;
        let dropped = self
            .inner
            .storage
            .as_ref()
            .save(&self.inner.incoming, update, response)
            .await?;
        Ok(SaveReport {
            vary,
            saved: true,
            dropped,
        })
    }
}

impl fmt::Debug for Messages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Messages")
            .field("loaded", &state.loaded.as_ref().map(Vec::len))
            .field("queued", &state.queued.len())
            .field("used", &state.used)
            .finish_non_exhaustive()
    }
}
