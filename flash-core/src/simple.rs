//! The simple way in: a storage that reads a client's messages and replaces them whole, as
//! Django's `_get` and `_store`; one [`Storage`] over it owns Django's update rules.

use async_trait::async_trait;
use http::HeaderMap;

use crate::error::{Error, ErrorKind, Result};
use crate::limits::Limits;
use crate::message::Message;
use crate::storage::{ImmediateStorage, Incoming, LoadToken, Loaded, Overflow, Storage, Update};

/// What a [`SimpleStorage`] found for the request: nothing, messages, or a value it could not
/// read (which the response removes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing is stored: an empty [`SimpleStorage::store`] has nothing to remove.
    Nothing,
    /// A value that was read.
    Readable,
    /// A value that could not be read (tampered, garbage, wrong key): it reads as no messages
    /// and the response removes it even when nothing else changes.
    Unreadable,
}

/// What [`SimpleStorage::get`] returns.
#[derive(Debug)]
#[non_exhaustive]
pub struct Stored {
    /// The stored messages, oldest first.
    pub messages: Vec<Message>,
    /// False when only the first part is stored and the rest overflowed to another storage
    /// (Django's not-finished marker).
    pub complete: bool,
    /// What was found.
    pub found: Found,
}

impl Stored {
    /// Nothing stored.
    pub fn nothing() -> Self {
        Stored {
            messages: Vec::new(),
            complete: true,
            found: Found::Nothing,
        }
    }

    /// A value that was read, holding `messages` (possibly none).
    pub fn messages(messages: Vec<Message>) -> Self {
        Stored {
            messages,
            complete: true,
            found: Found::Readable,
        }
    }

    /// A value that could not be read: no messages, removed by the response.
    pub fn unreadable() -> Self {
        Stored {
            messages: Vec::new(),
            complete: true,
            found: Found::Unreadable,
        }
    }

    /// Marks the messages as the first part only (Django's not-finished marker).
    #[must_use]
    pub fn incomplete(mut self) -> Self {
        self.complete = false;
        self
    }
}

/// The simple way to write a storage, in the spirit of Django's `BaseStorage._get` and
/// `_store`: read the client's messages, and replace them with the ones that remain.
///
/// Every `SimpleStorage` is a [`Storage`]: flash-core's one implementation applies Django's
/// update rules, so a storage restates none of them:
/// - a request that read and showed its messages stores only what it added afterwards;
/// - a request that read and did not show them stores the unread ones, then the added ones;
/// - a request that only added reads what is stored first, then stores it with the added ones
///   after it;
/// - a request that read and changed nothing writes nothing (but removes an unreadable value);
/// - what does not fit is returned by `store`: under [`Overflow::DropOldest`] the dropped
///   ones, under [`Overflow::Spill`] the newest ones, which the next storage of a chain keeps.
///
/// What this gives is Django's semantics, per request: two concurrent requests of one client
/// may both show a message, and an add may be lost to a concurrent rewrite. For exactly-once
/// delivery write a [`DocumentStore`](crate::storage::DocumentStore) or a
/// [`KeyedStore`](crate::storage::KeyedStore).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use flash_core::http::HeaderMap;
/// use flash_core::{MessagesConfig, Message, Messages, Result, storage::{Found, Incoming, Overflow, SimpleStorage, Stored}};
///
/// /// Every client shares one list: for the example only.
/// #[derive(Default)]
/// struct Global(Mutex<Option<Vec<Message>>>);
///
/// #[flash_core::async_trait]
/// impl SimpleStorage for Global {
///     async fn get(&self, _: &Incoming) -> Result<Stored> {
///         Ok(match self.0.lock().unwrap().clone() {
///             Some(messages) => Stored::messages(messages),
///             None => Stored::nothing(),
///         })
///     }
///
///     async fn store(
///         &self,
///         _: &Incoming,
///         messages: Vec<Message>,
///         _: Found,
///         _: Overflow,
///         _: &mut HeaderMap,
///     ) -> Result<Vec<Message>> {
///         *self.0.lock().unwrap() = (!messages.is_empty()).then_some(messages);
///         Ok(Vec::new())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let storage = Arc::new(Global::default());
/// let config = Arc::new(MessagesConfig::default());
/// let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
/// messages.info("Saved.");
/// messages.save(&mut HeaderMap::new()).await?;
/// let next = Messages::new(storage.clone(), Incoming::default(), config);
/// assert_eq!(next.read().await?[0].text, "Saved.");
/// next.save(&mut HeaderMap::new()).await?;
/// assert!(storage.0.lock().unwrap().is_none());
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a flash `SimpleStorage`",
    note = "implement `get` (read the client's messages) and `store` (replace them) with `#[flash_core::async_trait]`; every `SimpleStorage` is a `Storage`"
)]
#[async_trait]
pub trait SimpleStorage: Send + Sync + 'static {
    /// Reads the messages the request carries or points to (Django's `_get`).
    async fn get(&self, request: &Incoming) -> Result<Stored>;

    /// Replaces the stored messages with `messages`, oldest first (Django's `_store`): when it
    /// is empty, removes what is stored unless `found` is [`Found::Nothing`]. `found` is what
    /// [`get`](Self::get) returned for this request. Returns the messages that were not
    /// stored (see [`Overflow`]); a storage without a size limit returns none.
    async fn store(
        &self,
        request: &Incoming,
        messages: Vec<Message>,
        found: Found,
        overflow: Overflow,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>>;

    /// Whether this storage reads request extensions (a session): what
    /// [`Storage::uses_extensions`] answers. Default: false.
    fn reads_extensions(&self) -> bool {
        false
    }

    /// Whether this storage's format keeps a message's data ([`Message::with_data`]): what
    /// [`Storage::carries_data`] answers. Default: true; a format with no place for data
    /// (Django's) returns false, and the request handle refuses such a message at add.
    fn stores_data(&self) -> bool {
        true
    }

    /// Whether this storage could hold `message` alone: what [`Storage::can_hold`] answers.
    /// Default: true; a storage with a hard size bound (a cookie) says false for a message
    /// larger than it, which is then refused at add.
    fn can_hold(&self, message: &Message) -> bool {
        let _ = message;
        true
    }

    /// The same storage as one that never waits (everything it reads and writes is in the
    /// request and the response, as a cookie's), so the request is served without a boxed
    /// future. Default: `None`. Optional and for speed only, under the rules of
    /// [`Storage::immediate`]: `None` is always correct, and a `Some` behaves exactly as `get`
    /// and `store`.
    fn immediate_simple(&self) -> Option<&dyn ImmediateSimpleStorage> {
        None
    }
}

/// A [`SimpleStorage`] whose `get` and `store` never wait: what
/// [`SimpleStorage::immediate_simple`] hands out. It must behave exactly as `get` and `store`.
pub trait ImmediateSimpleStorage: Send + Sync {
    /// What [`SimpleStorage::get`] returns, at once.
    ///
    /// # Errors
    /// As [`SimpleStorage::get`].
    fn get_now(&self, request: &Incoming) -> Result<Stored>;

    /// What [`SimpleStorage::store`] does, at once.
    ///
    /// # Errors
    /// As [`SimpleStorage::store`].
    fn store_now(
        &self,
        request: &Incoming,
        messages: Vec<Message>,
        found: Found,
        overflow: Overflow,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>>;
}

// What `load` remembers for `save`, one zero-sized type per case: a boxed zero-sized token
// does not allocate, which keeps the cookie path free of allocations here.
struct FoundNothing;
struct FoundReadable;
struct FoundUnreadable;

fn token(found: Found) -> LoadToken {
    match found {
        Found::Nothing => LoadToken::new(FoundNothing),
        Found::Readable => LoadToken::new(FoundReadable),
        Found::Unreadable => LoadToken::new(FoundUnreadable),
    }
}

fn found(token: &LoadToken) -> Found {
    if token.get::<FoundNothing>().is_some() {
        Found::Nothing
    } else if token.get::<FoundUnreadable>().is_some() {
        Found::Unreadable
    } else {
        // Readable, or a token of another storage (never expected): "something may be there"
        // is the answer that never leaves stale messages behind.
        Found::Readable
    }
}

fn loaded(stored: Stored) -> Loaded {
    Loaded {
        messages: stored.messages,
        complete: stored.complete,
        token: token(stored.found),
    }
}

/// What `save` does, by Django's rules; the one place they are written.
enum Step {
    /// Nothing changed: write nothing.
    Nothing,
    /// Replace what is stored with these.
    Store(Vec<Message>, Found),
    /// Not loaded, only added: read what is stored, then store it followed by these.
    Append(Vec<Message>),
}

fn step(update: Update) -> Step {
    match update.loaded.as_ref().map(found) {
        Some(found) if !update.consumed && update.added.is_empty() => match found {
            // Loaded and left as it was, but what was there is bad: remove it.
            Found::Unreadable => Step::Store(Vec::new(), found),
            _ => Step::Nothing,
        },
        Some(found) => Step::Store(update.into_messages(), found),
        None if update.added.is_empty() => Step::Nothing,
        None => Step::Append(update.added),
    }
}

fn appended(stored: Stored, added: Vec<Message>) -> (Vec<Message>, Found) {
    let mut messages = stored.messages;
    if messages.is_empty() {
        messages = added;
    } else {
        messages.extend(added);
    }
    (messages, stored.found)
}

/// `messages` (everything that will be pending for the client) cut to `limits`: the oldest
/// that fit are kept, the newest beyond a bound are returned, never stored. Checked here,
/// where the whole list is known, because a request's own adds are only what it added: a
/// client posting again and again would otherwise grow a session or a cookie without end.
fn within_limits(messages: &mut Vec<Message>, limits: &Limits) -> Vec<Message> {
    let fitting = limits.fitting(0, 0, messages);
    if fitting == messages.len() {
        return Vec::new();
    }
    beyond_limits(messages, fitting)
}

// Rare, and out of the way of a save that fits (BENCHMARKS.md, issue 21.5).
#[cold]
#[inline(never)]
fn beyond_limits(messages: &mut Vec<Message>, fitting: usize) -> Vec<Message> {
    let beyond = messages.split_off(fitting);
    tracing::warn!(
        refused = beyond.len(),
        kept = fitting,
        "flash messages beyond the client's limits were dropped at store"
    );
    beyond
}

fn log_left_out(left: &[Message], overflow: Overflow) {
    if !left.is_empty() {
        log_left(left, overflow);
    }
}

#[cold]
#[inline(never)]
fn log_left(left: &[Message], overflow: Overflow) {
    match overflow {
        Overflow::DropOldest => tracing::warn!(
            dropped = left.len(),
            "flash messages do not fit the storage: the oldest were dropped"
        ),
        Overflow::Spill => tracing::debug!(
            spilled = left.len(),
            "flash messages overflow the storage: the newest go to the next storage"
        ),
    }
}

#[async_trait]
impl<T: SimpleStorage> Storage for T {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        Ok(loaded(self.get(request).await?))
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let (overflow, limits) = (update.overflow, update.limits);
        let (mut messages, found) = match step(update) {
            Step::Nothing => return Ok(Vec::new()),
            Step::Store(messages, found) => (messages, found),
            Step::Append(added) => appended(self.get(request).await?, added),
        };
        let beyond = within_limits(&mut messages, &limits);
        let left = self
            .store(request, messages, found, overflow, response)
            .await?;
        log_left_out(&left, overflow);
        Ok(joined(left, beyond))
    }

    fn uses_extensions(&self) -> bool {
        self.reads_extensions()
    }

    fn carries_data(&self) -> bool {
        self.stores_data()
    }

    fn can_hold(&self, message: &Message) -> bool {
        SimpleStorage::can_hold(self, message)
    }

    fn immediate(&self) -> Option<&dyn ImmediateStorage> {
        self.immediate_simple()
            .map(|_| self as &dyn ImmediateStorage)
    }
}

/// Reached only through [`Storage::immediate`], which hands it out only when
/// [`SimpleStorage::immediate_simple`] is `Some`.
impl<T: SimpleStorage> ImmediateStorage for T {
    fn load_now(&self, request: &Incoming) -> Result<Loaded> {
        Ok(loaded(now(self)?.get_now(request)?))
    }

    fn save_now(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let now = now(self)?;
        let (overflow, limits) = (update.overflow, update.limits);
        let (mut messages, found) = match step(update) {
            Step::Nothing => return Ok(Vec::new()),
            Step::Store(messages, found) => (messages, found),
            Step::Append(added) => appended(now.get_now(request)?, added),
        };
        let beyond = within_limits(&mut messages, &limits);
        let left = now.store_now(request, messages, found, overflow, response)?;
        log_left_out(&left, overflow);
        Ok(joined(left, beyond))
    }
}

/// What was not stored, oldest first: what the storage left out (it is older than what the
/// limits cut), then what was beyond the limits.
fn joined(mut left: Vec<Message>, beyond: Vec<Message>) -> Vec<Message> {
    if left.is_empty() {
        return beyond;
    }
    left.extend(beyond);
    left
}

fn now<T: SimpleStorage>(storage: &T) -> Result<&dyn ImmediateSimpleStorage> {
    storage.immediate_simple().ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "this storage waits: call `Storage::load` and `save`, not `ImmediateStorage`",
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::level::Level;

    /// A storage holding one list, recording each `store` call.
    struct Recording {
        held: Mutex<Stored>,
        stores: Mutex<Vec<(Vec<String>, Found)>>,
    }

    impl Recording {
        fn new(held: Stored) -> Self {
            Recording {
                held: Mutex::new(held),
                stores: Mutex::new(Vec::new()),
            }
        }

        fn stores(&self) -> Vec<(Vec<String>, Found)> {
            self.stores.lock().expect("lock").clone()
        }
    }

    #[async_trait]
    impl SimpleStorage for Recording {
        async fn get(&self, _: &Incoming) -> Result<Stored> {
            let held = self.held.lock().expect("lock");
            Ok(Stored {
                messages: held.messages.clone(),
                complete: held.complete,
                found: held.found,
            })
        }

        async fn store(
            &self,
            _: &Incoming,
            messages: Vec<Message>,
            found: Found,
            _: Overflow,
            _: &mut HeaderMap,
        ) -> Result<Vec<Message>> {
            let texts = messages.iter().map(|m| m.text.clone()).collect();
            self.stores.lock().expect("lock").push((texts, found));
            Ok(Vec::new())
        }
    }

    fn infos(texts: &[&str]) -> Vec<Message> {
        texts
            .iter()
            .map(|t| Message::new(Level::INFO, *t))
            .collect()
    }

    fn texts(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    async fn save(storage: &Recording, update: impl FnOnce(Loaded) -> Update) {
        let request = Incoming::default();
        let loaded = storage.load(&request).await.expect("load");
        storage
            .save(&request, update(loaded), &mut HeaderMap::new())
            .await
            .expect("save");
    }

    #[tokio::test]
    async fn django_update_rules() {
        // Read and shown, then added: only what was added after.
        let s = Recording::new(Stored::messages(infos(&["old"])));
        save(&s, |l| {
            Update::new(Some(l.token))
                .with_consumed(true)
                .with_added(infos(&["new"]))
        })
        .await;
        assert_eq!(s.stores(), [(texts(&["new"]), Found::Readable)]);

        // Read, not shown, added: unread then added.
        let s = Recording::new(Stored::messages(infos(&["old"])));
        save(&s, |l| {
            Update::new(Some(l.token))
                .with_unread(l.messages)
                .with_added(infos(&["new"]))
        })
        .await;
        assert_eq!(s.stores(), [(texts(&["old", "new"]), Found::Readable)]);

        // Read, nothing changed: nothing written.
        let s = Recording::new(Stored::messages(infos(&["old"])));
        save(&s, |l| Update::new(Some(l.token)).with_unread(l.messages)).await;
        assert!(s.stores().is_empty());

        // Read an unreadable value, nothing changed: it is removed.
        let s = Recording::new(Stored::unreadable());
        save(&s, |l| Update::new(Some(l.token))).await;
        assert_eq!(s.stores(), [(Vec::new(), Found::Unreadable)]);

        // Read and shown everything: an empty store, which removes.
        let s = Recording::new(Stored::messages(infos(&["old"])));
        save(&s, |l| Update::new(Some(l.token)).with_consumed(true)).await;
        assert_eq!(s.stores(), [(Vec::new(), Found::Readable)]);
    }

    #[tokio::test]
    async fn an_add_without_a_read_appends_to_what_is_stored() {
        let s = Recording::new(Stored::messages(infos(&["old"])));
        let request = Incoming::default();
        let update = Update::new(None).with_added(infos(&["new"]));
        s.save(&request, update, &mut HeaderMap::new())
            .await
            .expect("save");
        assert_eq!(s.stores(), [(texts(&["old", "new"]), Found::Readable)]);

        // Nothing loaded, nothing added: not even a read.
        let s = Recording::new(Stored::nothing());
        s.save(&request, Update::new(None), &mut HeaderMap::new())
            .await
            .expect("save");
        assert!(s.stores().is_empty());
    }

    #[test]
    fn a_storage_that_waits_is_not_immediate() {
        let s = Recording::new(Stored::nothing());
        assert!(Storage::immediate(&s).is_none());
        let err = s.load_now(&Incoming::default()).expect_err("not immediate");
        assert_eq!(err.kind(), ErrorKind::Config);
    }
}
