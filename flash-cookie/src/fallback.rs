//! Two storages, the second taking what does not fit the first.

use async_trait::async_trait;
use flash_core::http::HeaderMap;
use flash_core::{
    ErrorKind, Limits, Message, Result,
    storage::{Degraded, Identity, Incoming, LoadToken, Loaded, Overflow, Storage, Update},
};

/// Two storages as one, with Django's `FallbackStorage` algorithm: the first (a cookie)
/// holds the oldest messages that fit, the second (a server-side store) the rest.
///
/// - **Load** reads the first; it reads the second only when the first ends with the
///   not-finished marker ([`Loaded::complete`] is false). A cookie without the marker never
///   costs a call to the second.
/// - **Save** gives the first storage every pending message under [`Overflow::Spill`] and
///   the rest to the second; a storage that held messages and now holds none is emptied.
/// - **A request that only adds** never loads the second while the first holds messages:
///   when the first is complete it takes the existing and new messages that fit and the rest
///   is appended to the second; when the first already ends with the marker it is left as is
///   and the new messages go to the second.
/// - **A first storage that holds nothing** (no cookie, or one tampered with, truncated or
///   expired) may have lost the head of messages whose tail the second still holds, and
///   those are older than anything added now. So before anything is written over an empty
///   first, the second is loaded and its messages go first: every message reaches the reader
///   once, in the order it was added (those only in the lost cookie are gone with it).
///   Reading alone keeps Django's rule and does not look behind an empty first; what the
///   second holds is delivered with the next save that writes. For a keyed second storage
///   this costs a call only for a client with a valid id cookie, one that overflowed before.
///
/// ```
/// use flash_cookie::{CookieStorage, Fallback};
/// use flash_core::{Key, Keys, storage::{ServerStorage, MemoryStore}};
///
/// let secret = "a long application secret, from the environment";
/// let storage = Fallback::new(
///     CookieStorage::new(Keys::new(Key::derive(secret, "flash.cookie"))),
///     ServerStorage::new(MemoryStore::new(), Keys::new(Key::derive(secret, "flash.id"))),
/// );
/// # let _: &dyn flash_core::storage::Storage = &storage;
/// ```
#[derive(Debug, Clone)]
pub struct Fallback<A, B> {
    first: A,
    second: B,
    read_behind_empty: bool,
}

/// Each storage's own token, and how many of the loaded messages came from the first.
struct FallbackToken {
    first: LoadToken,
    first_len: usize,
    second: Option<LoadToken>,
}

impl<A: Storage, B: Storage> Fallback<A, B> {
    /// `first`, overflowing to `second`.
    pub fn new(first: A, second: B) -> Self {
        Fallback {
            first,
            second,
            read_behind_empty: false,
        }
    }

    /// Whether a read also asks the second storage when the first holds nothing (default
    /// false: Django's rule, which never looks behind an empty first).
    ///
    /// Turn it on when the second is a keyed server store: messages it holds while the
    /// first is empty (its cookie was lost, or a lease cut by an outage ran out after the
    /// cookie was emptied) are then shown at the client's next read instead of at its next
    /// add. The price is one store call per read of a client with an empty cookie and a
    /// valid id cookie; a client that never overflowed has no id cookie and costs nothing.
    #[must_use]
    pub fn read_behind_empty_first(mut self, yes: bool) -> Self {
        self.read_behind_empty = yes;
        self
    }

    /// The first storage.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The second storage.
    pub fn second(&self) -> &B {
        &self.second
    }

    /// A request that added messages without loading.
    async fn save_added(
        &self,
        request: &Incoming,
        added: Vec<Message>,
        (overflow, limits): (Overflow, Limits),
        (identity, degraded): (Identity, &Degraded),
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let first = self.first.load(request).await?;
        if first.complete && first.messages.is_empty() {
            // The first may have lost its part (see the type's docs): what the second holds
            // goes before the new messages.
            match self.second.load(request).await {
                Ok(second) => {
                    let mut pending = second.messages;
                    pending.extend(added);
                    return self
                        .rewrite(
                            request,
                            first.token,
                            Some(second.token),
                            pending,
                            (overflow, limits),
                            (identity, degraded),
                            response,
                        )
                        .await;
                }
                // The second is down: its older messages stay where they are, the new ones are
                // saved as if it held none (the first takes what fits, the second's save
                // carries the rest). Order across the outage gives way; nothing is lost.
                Err(err) if err.kind() == ErrorKind::Unavailable => {
                    tracing::warn!(
                        %err,
                        "the fallback's second storage is unavailable: saving without its messages"
                    );
                    degraded.report(err);
                }
                Err(err) => return Err(err),
            }
        }
        let (unread, mut to_first, to_second) = if first.complete {
            (first.messages, added, Vec::new())
        } else {
            (first.messages, Vec::new(), added)
        };
        // The client's limits bound both storages together: what the first holds and what
        // it sends on count against what the second may keep.
        let beyond = to_first.split_off(limits.fitting(unread.len(), bytes(&unread), &to_first));
        let given = (
            unread.len() + to_first.len(),
            bytes(&unread) + bytes(&to_first),
        );
        let mut rest = self
            .first
            .save(
                request,
                Update::new(Some(first.token))
                    .with_unread(unread)
                    .with_added(to_first)
                    .with_overflow(Overflow::Spill)
                    .with_limits(limits)
                    .with_identity(identity)
                    .with_degraded(degraded.clone()),
                response,
            )
            .await?;
        let left = left_beside(limits, given, &rest);
        rest.extend(to_second);
        if rest.is_empty() {
            return Ok(beyond);
        }
        let dropped = self
            .second
            .save(
                request,
                Update::new(None)
                    .with_added(rest)
                    .with_overflow(overflow)
                    .with_limits(left)
                    .with_identity(identity)
                    .with_degraded(degraded.clone()),
                response,
            )
            .await?;
        Ok(joined(dropped, beyond))
    }

    /// Replaces the first storage's content by the oldest of `pending` that fit and gives the
    /// rest to the second: in place of what it held when it was loaded (`second`), else
    /// appended.
    #[allow(clippy::too_many_arguments)]
    async fn rewrite(
        &self,
        request: &Incoming,
        first: LoadToken,
        second: Option<LoadToken>,
        pending: Vec<Message>,
        (overflow, limits): (Overflow, Limits),
        (identity, degraded): (Identity, &Degraded),
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        // Everything the client has pending: the newest beyond its limits are dropped.
        let mut pending = pending;
        let beyond = pending.split_off(limits.fitting(0, 0, &pending));
        let given = (pending.len(), bytes(&pending));
        let rest = self
            .first
            .save(
                request,
                Update::new(Some(first))
                    .with_consumed(true)
                    .with_added(pending)
                    .with_overflow(Overflow::Spill)
                    .with_limits(limits)
                    .with_identity(identity)
                    .with_degraded(degraded.clone()),
                response,
            )
            .await?;
        let left = left_beside(limits, given, &rest);
        let dropped = match second {
            // The second was read: its messages were in `pending`; it keeps only the rest.
            Some(second) => {
                self.second
                    .save(
                        request,
                        Update::new(Some(second))
                            .with_consumed(true)
                            .with_added(rest)
                            .with_overflow(overflow)
                            .with_limits(left)
                            .with_identity(identity)
                            .with_degraded(degraded.clone()),
                        response,
                    )
                    .await?
            }
            None if rest.is_empty() => rest,
            None => {
                self.second
                    .save(
                        request,
                        Update::new(None)
                            .with_added(rest)
                            .with_overflow(overflow)
                            .with_limits(left)
                            .with_identity(identity)
                            .with_degraded(degraded.clone()),
                        response,
                    )
                    .await?
            }
        };
        Ok(joined(dropped, beyond))
    }
}

/// The bytes of `messages` as [`Limits`] count them.
fn bytes(messages: &[Message]) -> usize {
    messages.iter().map(Message::size).sum()
}

/// The part of `limits` left for the second storage, once the first kept what it was
/// `given` (a count and bytes) but `rest`, which it sends on.
fn left_beside(limits: Limits, given: (usize, usize), rest: &[Message]) -> Limits {
    let kept = given.0.saturating_sub(rest.len());
    let kept_bytes = given.1.saturating_sub(bytes(rest));
    limits
        .with_max_messages(limits.max_messages().saturating_sub(kept))
        .with_max_bytes(limits.max_bytes().saturating_sub(kept_bytes))
}

/// What neither storage kept, oldest first.
fn joined(mut dropped: Vec<Message>, beyond: Vec<Message>) -> Vec<Message> {
    dropped.extend(beyond);
    dropped
}

#[async_trait]
impl<A: Storage, B: Storage> Storage for Fallback<A, B> {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        let first = self.first.load(request).await?;
        let first_len = first.messages.len();
        let look_behind = self.read_behind_empty && first_len == 0;
        if first.complete && !look_behind {
            return Ok(Loaded::new(
                first.messages,
                LoadToken::new(FallbackToken {
                    first: first.token,
                    first_len,
                    second: None,
                }),
            ));
        }
        let second = match self.second.load(request).await {
            Ok(second) => second,
            // Looking behind an empty first is a courtesy: a second that is down leaves the
            // read as Django's would be (empty), its messages waiting for the next read.
            Err(err) if first.complete && err.kind() == ErrorKind::Unavailable => {
                tracing::warn!(%err, "the fallback's second storage is unavailable at read");
                return Ok(Loaded::new(
                    first.messages,
                    LoadToken::new(FallbackToken {
                        first: first.token,
                        first_len,
                        second: None,
                    }),
                ));
            }
            Err(err) => return Err(err),
        };
        let mut messages = first.messages;
        messages.extend(second.messages);
        Ok(Loaded::new(
            messages,
            LoadToken::new(FallbackToken {
                first: first.token,
                first_len,
                second: Some(second.token),
            }),
        )
        .with_complete(second.complete))
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let overflow = update.overflow;
        let limits = update.limits;
        // Both storages learn what happened to the client's id; one without an id ignores it.
        let identity = update.identity;
        let degraded = &update.degraded;
        let Some(token) = update
            .loaded
            .and_then(LoadToken::into_inner::<FallbackToken>)
        else {
            if update.added.is_empty() && identity == Identity::Keep {
                return Ok(Vec::new());
            }
            return self
                .save_added(
                    request,
                    update.added,
                    (overflow, limits),
                    (identity, degraded),
                    response,
                )
                .await;
        };
        if !update.consumed && update.added.is_empty() {
            // Nothing changed: each storage gets its own messages back as unread (a lease is
            // released, a bad cookie deleted), and writes nothing else.
            let mut first_unread = update.unread;
            let second_unread = first_unread.split_off(token.first_len.min(first_unread.len()));
            self.first
                .save(
                    request,
                    Update::new(Some(token.first))
                        .with_unread(first_unread)
                        .with_overflow(Overflow::Spill)
                        .with_limits(limits)
                        .with_identity(identity)
                        .with_degraded(degraded.clone()),
                    response,
                )
                .await?;
            if let Some(second) = token.second {
                self.second
                    .save(
                        request,
                        Update::new(Some(second))
                            .with_unread(second_unread)
                            .with_overflow(overflow)
                            .with_limits(limits)
                            .with_identity(identity)
                            .with_degraded(degraded.clone()),
                        response,
                    )
                    .await?;
            }
            return Ok(Vec::new());
        }
        let mut pending = update.unread;
        pending.extend(update.added);
        let mut second = token.second;
        if second.is_none() && token.first_len == 0 && !pending.is_empty() {
            // The first held nothing and may have lost its part (see the type's docs): what
            // the second holds, not shown by this request, goes first.
            let loaded = self.second.load(request).await?;
            let mut all = loaded.messages;
            all.append(&mut pending);
            pending = all;
            second = Some(loaded.token);
        }
        self.rewrite(
            request,
            token.first,
            second,
            pending,
            (overflow, limits),
            (identity, degraded),
            response,
        )
        .await
    }

    fn uses_extensions(&self) -> bool {
        self.first.uses_extensions() || self.second.uses_extensions()
    }

    /// A message too large for the first goes to the second.
    fn can_hold(&self, message: &Message) -> bool {
        self.first.can_hold(message) || self.second.can_hold(message)
    }

    /// A message may land in either storage: data is carried only if both keep it.
    fn carries_data(&self) -> bool {
        self.first.carries_data() && self.second.carries_data()
    }
}
