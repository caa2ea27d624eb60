//! Server-side stores keyed by a client id, and the bridge that makes one a [`Storage`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;

use crate::cookie_options::CookieOptions;
use crate::error::Result;
use crate::limits::Limits;
use crate::message::Message;
use crate::signing::Keys;
use crate::storage::{Incoming, LoadToken, Loaded, Storage, Update};

/// A client's random 128-bit id, carried in a signed cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId([u8; 16]);

impl ClientId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        crate::random::fill(&mut bytes);
        ClientId(bytes)
    }

    /// The id from its bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        ClientId(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id as 32 lowercase hex digits, for keys and rows.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.to_hex())
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The id of one lease: which request holds a client's messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId([u8; 16]);

impl LeaseId {
    /// A fresh random lease id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        crate::random::fill(&mut bytes);
        LeaseId(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id as 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({})", self.to_hex())
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// How a lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request showed the leased messages: delete them.
    Consumed,
    /// The request did not show them: make them visible again, in their original order.
    Released,
}

/// A server-side message store keyed by [`ClientId`], with leases for exactly-once delivery.
///
/// Every method is meant to be one round trip to the server and atomic. The contract:
/// - `append` adds messages at the end of the client's queue, as many as fit `limits` beside
///   what the client already has pending (a prefix: the newest are refused), and returns how
///   many it kept; they expire `ttl` after the client's last append at the earliest. The check
///   and the write are one atomic step: concurrent appends of one client never exceed the
///   limits together.
/// - `lease` takes every message of the client that is not under a live lease, in order, and
///   hides them from other leases for `lease_for` (after that they are visible again: a request
///   that died loses nothing).
/// - `settle` ends a lease (deleting or releasing only the messages still held by it) and
///   appends `append` under `limits` as `append` does, in one step; it returns how many of
///   `append` it kept.
///
/// The points an author meets, settled (the keyed-store kit, [`keyed_store_tests!`](crate::keyed_store_tests),
/// checks them; [`MemoryStore`](crate::MemoryStore) is the reference):
/// - **A lease that expired still holds what no other lease took.** Expiry only makes its
///   messages leasable again; until another lease takes them, settling the expired lease
///   consumes or releases them as if it had not expired. Once another lease took them they are
///   that lease's: the late settle leaves them alone (and appends its `append`).
/// - **The TTL is per client.** Every append that keeps at least one message (a settle's
///   included) moves the client's expiry to `ttl` from now, for everything pending, leased
///   messages included. Leasing and settling without appending do not renew it. When it
///   passes, all of the client's messages are gone at once, even before the server deletes
///   them: a later append or settle starts an empty queue and never brings them back.
/// - **Time precision.** Durations are given in milliseconds; a store may keep whole seconds
///   (rounding up). The kit expects a lease or TTL to be over at most 1 s after it is due
///   and not to end more than 0.7 s early: coarser timers, or a clock between the
///   application and the server that is off by more, fail it.
/// - Limits are counted against everything pending for the client, leased messages included.
///
/// Without atomic server-side operations, write a [`DocumentStore`](crate::DocumentStore)
/// instead: [`Documents`](crate::Documents) implements this trait over it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a flash `KeyedStore`",
    note = "implement `append`, `lease` and `settle` with `#[flash_core::async_trait]`, or implement `flash_core::DocumentStore` and wrap it in `flash_core::Documents`"
)]
#[async_trait]
pub trait KeyedStore: Send + Sync + 'static {
    /// Appends `messages` (never empty) to the client's queue, as many as fit `limits`.
    /// Returns how many were kept (a prefix of `messages`).
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize>;

    /// Leases the client's visible messages under `lease` for `lease_for`, oldest first.
    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_for: Duration,
    ) -> Result<Vec<Message>>;

    /// Ends `lease` with `outcome`, then appends `append` (possibly empty) as many as fit
    /// `limits`. Returns how many of `append` were kept (a prefix).
    async fn settle(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize>;
}

#[async_trait]
impl<S: KeyedStore + ?Sized> KeyedStore for Arc<S> {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        (**self).append(client, messages, ttl, limits).await
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_for: Duration,
    ) -> Result<Vec<Message>> {
        (**self).lease(client, lease, lease_for).await
    }

    async fn settle(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        (**self)
            .settle(client, lease, outcome, append, ttl, limits)
            .await
    }
}

/// The default name of the id cookie.
pub const DEFAULT_ID_COOKIE: &str = "flash_id";
/// The default time undelivered messages are kept: 7 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The default lease: how long a request may hold messages before they become visible again.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

struct KeyedToken {
    client: ClientId,
    lease: Option<LeaseId>,
}

/// A [`Storage`] over any [`KeyedStore`]: the client is identified by a random 128-bit id in a
/// signed cookie.
///
/// Store calls: none for a request without a valid id cookie that adds nothing, none for a
/// request that neither reads nor adds, one (`append`) for a request that only adds, one
/// (`lease`) per read, and one (`settle`, which also appends) at the response of a read that
/// found messages.
///
/// The id cookie is set when a message is stored for the client and refreshed with every append
/// (its `Max-Age` is the TTL); it is never cleared, so a message is never orphaned.
pub struct KeyedStorage<S> {
    store: S,
    keys: Keys,
    cookie_name: String,
    cookie: CookieOptions,
    ttl: Duration,
    lease_for: Duration,
}

impl<S: KeyedStore> KeyedStorage<S> {
    /// The bridge over `store`, signing the id cookie with `keys`.
    pub fn new(store: S, keys: impl Into<Keys>) -> Self {
        KeyedStorage {
            store,
            keys: keys.into(),
            cookie_name: DEFAULT_ID_COOKIE.to_owned(),
            cookie: CookieOptions::default(),
            ttl: DEFAULT_TTL,
            lease_for: DEFAULT_LEASE,
        }
    }

    /// Sets the id cookie's name (default [`DEFAULT_ID_COOKIE`]).
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// Sets the id cookie's attributes.
    #[must_use]
    pub fn cookie_options(mut self, options: CookieOptions) -> Self {
        self.cookie = options;
        self
    }

    /// Sets how long undelivered messages are kept (default [`DEFAULT_TTL`]).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the lease timeout (default [`DEFAULT_LEASE`]): after it, messages loaded by a
    /// request that never answered are visible again. Longer than the slowest request.
    #[must_use]
    pub fn lease_timeout(mut self, lease_for: Duration) -> Self {
        self.lease_for = lease_for;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The client id the request's cookie carries, if it is validly signed.
    pub fn client_id(&self, request: &Incoming) -> Option<ClientId> {
        let value = request.cookie(&self.cookie_name)?;
        let bytes = self.keys.verify_token(&self.cookie_name, value)?;
        Some(ClientId(bytes.try_into().ok()?))
    }

    fn set_id_cookie(&self, client: &ClientId, response: &mut HeaderMap) {
        let value = self.keys.sign_token(&self.cookie_name, client.as_bytes());
        self.cookie
            .append(response, &self.cookie_name, &value, Some(self.ttl));
    }
}

#[async_trait]
impl<S: KeyedStore> Storage for KeyedStorage<S> {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        let Some(client) = self.client_id(request) else {
            return Ok(Loaded::nothing());
        };
        let lease = LeaseId::random();
        let messages = self.store.lease(&client, &lease, self.lease_for).await?;
        let lease = (!messages.is_empty()).then_some(lease);
        Ok(Loaded {
            messages,
            complete: true,
            token: LoadToken::new(KeyedToken { client, lease }),
        })
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let token = update.loaded.and_then(LoadToken::into_inner::<KeyedToken>);
        let known = match &token {
            Some(token) => Some(token.client),
            None => self.client_id(request),
        };
        let outcome = if update.consumed {
            Outcome::Consumed
        } else {
            Outcome::Released
        };
        let limits = update.limits;
        let added = update.added;
        let kept = match (token.and_then(|t| t.lease), known) {
            (Some(lease), Some(client)) => {
                let kept = self
                    .store
                    .settle(&client, &lease, outcome, &added, self.ttl, &limits)
                    .await?;
                if kept > 0 {
                    self.set_id_cookie(&client, response);
                }
                kept
            }
            _ if added.is_empty() => {
                if known.is_none() && request.cookie(&self.cookie_name).is_some() {
                    // A cookie that does not verify is dropped rather than sent back forever.
                    self.cookie.append_removal(response, &self.cookie_name);
                }
                0
            }
            (_, known) => {
                let client = known.unwrap_or_else(ClientId::random);
                let kept = self
                    .store
                    .append(&client, &added, self.ttl, &limits)
                    .await?;
                if kept > 0 {
                    self.set_id_cookie(&client, response);
                }
                kept
            }
        };
        // What the store refused at the client's limits is reported as dropped.
        let mut refused = added;
        refused.drain(..kept.min(refused.len()));
        Ok(refused)
    }
}

impl<S: fmt::Debug> fmt::Debug for KeyedStorage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedStorage")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .field("cookie_name", &self.cookie_name)
            .field("ttl", &self.ttl)
            .field("lease_for", &self.lease_for)
            .finish()
    }
}
