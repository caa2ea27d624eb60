//! Server-side stores keyed by a client id, and the bridge that makes one a [`Storage`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;

use crate::cookie_options::CookieOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::Limits;
use crate::message::Message;
use crate::signing::Keys;
use crate::storage::{Carry, Degraded, Identity, Incoming, LoadToken, Loaded, Storage, Update};
use crate::timer::{Clock, Timer};

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

/// `bytes` as lowercase hex digits: the one hex encoder of the workspace.
pub(crate) fn hex(bytes: &[u8]) -> String {
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
///   hides them from other leases for `lease_timeout` (after that they are visible again: a request
///   that died loses nothing).
/// - `settle` ends a lease (deleting or releasing only the messages still held by it) and
///   appends `append` under `limits` as `append` does, in one step; it returns how many of
///   `append` it kept.
///
/// The points an author meets, settled (the keyed-store kit, `flash_testkit::keyed_store_tests!`,
/// checks them; [`MemoryStore`](crate::storage::MemoryStore) is the reference):
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
/// Without atomic server-side operations, write a [`DocumentStore`](crate::storage::DocumentStore)
/// instead: [`Documents`](crate::storage::Documents) implements this trait over it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a flash `KeyedStore`",
    note = "implement `append`, `lease` and `settle` with `#[flash_core::async_trait]`, or implement `flash_core::storage::DocumentStore` and wrap it in `flash_core::storage::Documents`"
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

    /// Leases the client's visible messages under `lease` for `lease_timeout`, oldest first.
    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
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
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        (**self).lease(client, lease, lease_timeout).await
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
/// The default name of the id cookie when its attributes allow the `__Host-` prefix
/// (`Secure`, no `Domain`, `Path=/`): the browser then refuses it from a sibling subdomain or
/// over plain HTTP.
pub const HOST_ID_COOKIE: &str = "__Host-flash_id";
/// The default time undelivered messages are kept: 7 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The default lease: how long a request may hold messages before they become visible again.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The longest TTL or lease a store needs to honour: 100 years. A longer [`Duration`] (up to
/// [`Duration::MAX`]) is cut to this, so `now + span` never overflows a timestamp in any store.
/// The one "far future" of every store: memory, document, Redis and SQL clamp to it.
pub const MAX_SPAN: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// The default deadline of one store call: 2 seconds.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The carry cookie's name is the id cookie's with this suffix.
const CARRY_SUFFIX: &str = "_carry";
/// The longest `Set-Cookie` line browsers are sure to keep.
const MAX_COOKIE_LINE: usize = 4096;

/// A lease a request holds. Dropped while still held (the request was abandoned, or the lease
/// call timed out and may still have been applied), it is released at once by a spawned task,
/// so the messages come back without waiting for the lease timeout.
/// Without `tokio` there is nothing to spawn the release on: the fields it needs go unread.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
struct HeldLease<S: KeyedStore> {
    store: Arc<S>,
    client: ClientId,
    lease: LeaseId,
    ttl: Duration,
    call_timeout: Duration,
    clock: Clock,
    held: bool,
    /// When the lease was taken, to tell a settle that comes after its lease timeout.
    taken: std::time::Instant,
}

impl<S: KeyedStore> HeldLease<S> {
    /// The lease, which the caller now ends itself: dropping no longer releases it.
    fn take(&mut self) -> LeaseId {
        self.held = false;
        self.lease
    }
}

impl<S: KeyedStore> Drop for HeldLease<S> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        self.release_in_background();
    }
}

impl<S: KeyedStore> HeldLease<S> {
    /// Releases the lease from a spawned task. Without a runtime to spawn on (no Tokio
    /// runtime running, or flash-core built without `tokio`) the lease simply times out.
    #[cfg(feature = "tokio")]
    fn release_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("no runtime to release an abandoned lease; it times out");
            return;
        };
        let (store, client, lease) = (self.store.clone(), self.client, self.lease);
        let (ttl, call_timeout, clock) = (self.ttl, self.call_timeout, self.clock.clone());
        runtime.spawn(async move {
            let limits = Limits::default();
            let release = store.settle(&client, &lease, Outcome::Released, &[], ttl, &limits);
            match clock.deadline(call_timeout, release).await {
                Some(Ok(_)) => tracing::debug!("abandoned lease released"),
                Some(Err(err)) => {
                    tracing::warn!(%err, "releasing an abandoned lease failed; it times out")
                }
                None => tracing::warn!("releasing an abandoned lease timed out; it times out"),
            }
        });
    }

    #[cfg(not(feature = "tokio"))]
    fn release_in_background(&self) {
        tracing::debug!(
            "no runtime to release an abandoned lease (feature `tokio` off); it times out"
        );
    }
}

/// The carry cookie of a request.
enum CarryIn {
    Absent,
    /// Present but not validly signed, or not messages: ignored and deleted.
    Invalid,
    Valid(Vec<Message>),
}

/// What one save needs besides the messages.
struct Saving<'a> {
    limits: &'a Limits,
    degraded: &'a Degraded,
    /// The request sent a carry cookie (valid or not).
    carry_sent: bool,
    /// The request sent an id cookie (valid or not).
    id_sent: bool,
}

struct KeyedToken<S: KeyedStore> {
    client: Option<ClientId>,
    lease: Option<HeldLease<S>>,
    /// How many of the loaded messages came from the carry cookie (after the store's).
    carried: usize,
    /// A carry cookie was sent (valid or not).
    carry_sent: bool,
    /// The store failed at load and the carried messages were shown alone.
    load_error: Option<Error>,
}

/// A [`Storage`] over any [`KeyedStore`]: the client is identified by a random 128-bit id in a
/// signed cookie.
///
/// Store calls: none for a request without a valid id cookie that adds nothing, none for a
/// request that neither reads nor adds, one (`append`) for a request that only adds, one
/// (`lease`) per read, and one (`settle`, which also appends) at the response of a read that
/// found messages.
///
/// # The id cookie
///
/// Its name is [`DEFAULT_ID_COOKIE`], or [`HOST_ID_COOKIE`] when the cookie options are
/// `Secure` with no `Domain` and `Path=/`; a name set with [`ServerStorage::cookie_name`] is
/// kept as given. An id is minted only when a message is stored for a request that carries no
/// id cookie or one that fails verification; a valid id is kept for the client's life. The
/// cookie is set when a message is stored and refreshed with every append (its `Max-Age` is
/// the TTL); it is never cleared by the bridge, so a message is never orphaned, unless the
/// application forgets or rotates the id ([`Messages::forget_id`](crate::Messages::forget_id),
/// [`Messages::rotate_id`](crate::Messages::rotate_id)).
///
/// # Slow or failing stores
///
/// Every store call has a deadline ([`ServerStorage::with_call_timeout`], default
/// [`DEFAULT_CALL_TIMEOUT`]); one that does not answer in time fails with
/// [`ErrorKind::Unavailable`] naming the call. What the client sees:
/// - A request that read and then was abandoned (the client went away, the handler panicked:
///   the request handle was dropped without saving) or whose `lease` call timed out releases its
///   lease at once, from a spawned task when a Tokio runtime is running: the messages come back
///   on the next read, once, instead of after the lease timeout. Should the release fail, the
///   lease timeout brings them back.
/// - Messages added while the store is down (`append` or `settle` failing with
///   `Unavailable`) are not lost: they ride in a second signed cookie, the id cookie's name
///   followed by `_carry`, as long as its `Set-Cookie` line stays within 4096 bytes (the rest
///   are reported dropped). The save succeeds, logs the failure at WARN and hands it to the
///   application in [`SaveReport::degraded`](crate::SaveReport::degraded). The next read shows
///   the store's messages first, then the carried ones, once; a read while the store is still
///   down shows the carried ones alone. Carried messages not consumed move into the store as
///   soon as it answers. A carry cookie that fails verification is ignored and deleted.
///   The price, where exactly once cannot be had: a carried message lives in the browser, so
///   two tabs reading at once may both show it; an `append` or `settle` that timed out but
///   was applied after all shows its messages twice; and messages read by a request whose
///   `settle` failed are shown again after the lease timeout. Shown twice is better than lost.
///
/// The deadline runs on Tokio's timer with the `tokio` feature (the default), which needs a
/// Tokio runtime with its time driver enabled, as every Tokio-based framework runs. Without
/// that feature there is no deadline until the application gives a [`Timer`]
/// ([`ServerStorage::with_timer`]), and an abandoned lease comes back after the lease timeout.
pub struct ServerStorage<S> {
    store: Arc<S>,
    keys: Keys,
    /// The name set by the application, if any.
    chosen_name: Option<String>,
    cookie_name: String,
    carry_name: String,
    cookie: CookieOptions,
    ttl: Duration,
    lease_timeout: Duration,
    call_timeout: Duration,
    clock: Clock,
}

impl<S: KeyedStore> ServerStorage<S> {
    /// The bridge over `store`, signing the id cookie with `keys`.
    pub fn new(store: S, keys: impl Into<Keys>) -> Self {
        ServerStorage {
            store: Arc::new(store),
            keys: keys.into(),
            chosen_name: None,
            cookie_name: String::new(),
            carry_name: String::new(),
            cookie: CookieOptions::default(),
            ttl: DEFAULT_TTL,
            lease_timeout: DEFAULT_LEASE,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            clock: Clock::default(),
        }
        .named()
    }

    /// Sets the id cookie's name, kept as given (default [`DEFAULT_ID_COOKIE`], or
    /// [`HOST_ID_COOKIE`] when the options allow the prefix).
    ///
    /// ```
    /// use flash_core::{CookieOptions, Key, storage::{ServerStorage, MemoryStore}};
    /// let storage = ServerStorage::new(MemoryStore::new(), Key::generate());
    /// assert_eq!(storage.cookie_name(), "flash_id");
    /// let storage = storage.with_cookie_options(CookieOptions::default().secure(true));
    /// assert_eq!(storage.cookie_name(), "__Host-flash_id");
    /// assert_eq!(storage.carry_cookie_name(), "__Host-flash_id_carry");
    /// let storage = storage.with_cookie_name("my_id");
    /// assert_eq!(storage.cookie_name(), "my_id");
    /// ```
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.chosen_name = Some(name.into());
        self.named()
    }

    /// Sets the attributes of the id and carry cookies.
    #[must_use]
    pub fn with_cookie_options(mut self, options: CookieOptions) -> Self {
        self.cookie = options;
        self.named()
    }

    fn named(mut self) -> Self {
        self.cookie_name = match &self.chosen_name {
            Some(name) => name.clone(),
            None if self.cookie.allows_host_prefix() => HOST_ID_COOKIE.to_owned(),
            None => DEFAULT_ID_COOKIE.to_owned(),
        };
        self.carry_name = format!("{}{CARRY_SUFFIX}", self.cookie_name);
        self
    }

    /// Sets how long undelivered messages are kept (default [`DEFAULT_TTL`]).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the lease timeout (default [`DEFAULT_LEASE`]): after it, messages loaded by a
    /// request that never answered are visible again. Longer than the slowest request.
    #[must_use]
    pub fn with_lease_timeout(mut self, lease_timeout: Duration) -> Self {
        self.lease_timeout = lease_timeout;
        self
    }

    /// Sets the deadline of each store call (default [`DEFAULT_CALL_TIMEOUT`]): a call that
    /// has not answered by then fails with [`ErrorKind::Unavailable`].
    #[must_use]
    pub fn with_call_timeout(mut self, call_timeout: Duration) -> Self {
        self.call_timeout = call_timeout;
        self
    }

    /// Runs the deadlines on `timer`, the application runtime's sleep: for an application
    /// without Tokio (flash-core built without its `tokio` feature), where calls otherwise
    /// have no deadline. With Tokio, Tokio's timer is used already.
    #[must_use]
    pub fn with_timer(mut self, timer: impl Timer) -> Self {
        self.clock = Clock::Custom(Arc::new(timer));
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The id cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// The attributes of the id and carry cookies.
    pub fn cookie_options(&self) -> &CookieOptions {
        &self.cookie
    }

    /// How long undelivered messages are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The lease timeout.
    pub fn lease_timeout(&self) -> Duration {
        self.lease_timeout
    }

    /// The deadline of each store call.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The name of the cookie that carries messages while the store is down.
    pub fn carry_cookie_name(&self) -> &str {
        &self.carry_name
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

    fn carry_in(&self, request: &Incoming) -> CarryIn {
        let Some(value) = request.cookie(&self.carry_name) else {
            return CarryIn::Absent;
        };
        self.keys
            .verify_token(&self.carry_name, value)
            .and_then(|json| crate::storage::stored_form::list_from_slice(&json).ok())
            .map_or(CarryIn::Invalid, CarryIn::Valid)
    }

    /// Writes as many of `messages` as fit `limits` and one `Set-Cookie` line into the carry
    /// cookie (the oldest: a prefix, as a store keeps them); returns the rest.
    fn write_carry(
        &self,
        mut messages: Vec<Message>,
        limits: &Limits,
        carry_sent: bool,
        response: &mut HeaderMap,
    ) -> Vec<Message> {
        let overhead = self.cookie.line_overhead(&self.carry_name, Some(self.ttl));
        let value = |n: usize| {
            let json = crate::storage::stored_form::list_to_vec(&messages[..n]).ok()?;
            let value = self.keys.sign_token(&self.carry_name, &json);
            (overhead + value.len() <= MAX_COOKIE_LINE).then_some(value)
        };
        // The line grows with each message: search the longest prefix that fits.
        let (mut fit, mut over) = (0, limits.fitting(0, 0, &messages) + 1);
        let mut best = None;
        while fit + 1 < over {
            let mid = (fit + over) / 2;
            match value(mid) {
                Some(v) => (fit, best) = (mid, Some(v)),
                None => over = mid,
            }
        }
        let rest = messages.split_off(fit);
        match best {
            Some(value) => self
                .cookie
                .append(response, &self.carry_name, &value, Some(self.ttl)),
            None if carry_sent => self.cookie.append_removal(response, &self.carry_name),
            None => {}
        }
        rest
    }

    /// Runs one store call under the deadline (see [`ServerStorage::timed`]).
    async fn call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.timed(what, call)
            .await
            .unwrap_or_else(|| Err(self.timed_out(what)))
    }

    /// Runs one store call under the deadline (`None` when it passed), timed and traced: its
    /// latency and failures go to the `metrics` facade ([`observe`](crate::observe)), and a
    /// `flash_store_call` span carries the backend, the call and its outcome (never a message
    /// or a secret).
    async fn timed<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Option<Result<T>> {
        use tracing::Instrument as _;
        let backend = crate::observe::backend_name::<S>();
        let span = tracing::debug_span!(
            "flash_store_call",
            backend,
            call = what,
            outcome = tracing::field::Empty
        );
        async move {
            let timed = crate::observe::StoreCall::start(backend, what);
            let answer = self.clock.deadline(self.call_timeout, call).await;
            timed.finish(
                answer
                    .as_ref()
                    .map(|r| r.as_ref().map(drop).map_err(Error::kind)),
            );
            answer
        }
        .instrument(span)
        .await
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the keyed store's {what} call did not answer within {} ms",
                self.call_timeout.as_millis()
            ),
        )
    }

    /// Leases the client's messages. A lease call that timed out may still have been applied:
    /// its lease is released then.
    async fn lease(&self, client: ClientId) -> Result<(Vec<Message>, Option<HeldLease<S>>)> {
        let mut held = HeldLease {
            store: self.store.clone(),
            client,
            lease: LeaseId::random(),
            ttl: self.ttl,
            call_timeout: self.call_timeout,
            clock: self.clock.clone(),
            held: true,
            taken: std::time::Instant::now(),
        };
        let lease = self.store.lease(&client, &held.lease, self.lease_timeout);
        match self.timed("lease", lease).await {
            Some(Ok(messages)) if messages.is_empty() => {
                held.take();
                Ok((messages, None))
            }
            Some(Ok(messages)) => Ok((messages, Some(held))),
            Some(Err(err)) => {
                // The store answered: nothing was leased.
                held.take();
                Err(err)
            }
            // Maybe applied after all: `held` is released as it drops.
            None => Err(self.timed_out("lease")),
        }
    }

    /// The failure of a save call: an unavailable store is recovered from by carrying the
    /// messages in a cookie; anything else is returned.
    fn recover(
        &self,
        err: Error,
        carry: Vec<Message>,
        saving: &Saving<'_>,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let Saving {
            limits,
            degraded,
            carry_sent,
            ..
        } = *saving;
        if err.kind() != ErrorKind::Unavailable {
            return Err(err);
        }
        let offered = carry.len();
        let dropped = self.write_carry(carry, limits, carry_sent, response);
        let carried = offered - dropped.len();
        crate::observe::carried(carried);
        tracing::warn!(
            %err,
            carried,
            dropped = dropped.len(),
            "keyed store unavailable at save: the messages ride in the carry cookie"
        );
        // The hook's words: carried, not lost (and how many did not fit, if any).
        degraded.report(Error::with_source(
            ErrorKind::Unavailable,
            format!(
                "{}; {carried} flash messages are carried in the signed `{}` cookie until \
                 the store answers, {} dropped",
                err.context(),
                self.carry_name,
                dropped.len()
            ),
            err,
        ));
        Ok(dropped)
    }

    /// Saves a request that rotated or forgot the client's id: `moving` goes to the new id.
    async fn save_identity(
        &self,
        identity: Identity,
        (old, mut lease): (Option<ClientId>, Option<HeldLease<S>>),
        mut moving: Vec<Message>,
        saving: &Saving<'_>,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let Saving {
            limits, degraded, ..
        } = *saving;
        if identity == Identity::Rotate(Carry::Keep)
            && lease.is_none()
            && let Some(old) = old
        {
            // Not read by the request: what is pending for the old id is leased here.
            match self.lease(old).await {
                Ok((mut found, held)) => {
                    found.append(&mut moving);
                    moving = found;
                    lease = held;
                }
                Err(err) => {
                    // Left under the old id, which the client no longer has, until the TTL.
                    tracing::warn!(%err, "rotating the id: its pending messages stay behind");
                    degraded.report(err);
                }
            }
        }
        let new = match identity {
            Identity::Forget if moving.is_empty() => None,
            _ => Some(ClientId::random()),
        };
        // The new id first: a failure here leaves the old messages where they were.
        let mut dropped = Vec::new();
        let mut carried = false;
        if let (Some(new), false) = (new, moving.is_empty()) {
            match self
                .call("append", self.store.append(&new, &moving, self.ttl, limits))
                .await
            {
                Ok(kept) => dropped = moving.split_off(kept.min(moving.len())),
                Err(err) => {
                    dropped = self.recover(err, moving, saving, response)?;
                    carried = true;
                }
            }
        }
        if let (Some(old), Some(mut held)) = (old, lease) {
            let lease = held.take();
            let settled = self.call(
                "settle",
                self.store
                    .settle(&old, &lease, Outcome::Consumed, &[], self.ttl, limits),
            );
            if let Err(err) = settled.await {
                // They stay under the old id, which the client no longer has, until the TTL.
                tracing::warn!(%err, "the messages of a forgotten id stay until their TTL");
                degraded.report(err);
            }
        }
        match new {
            Some(new) => self.set_id_cookie(&new, response),
            None if saving.id_sent => self.cookie.append_removal(response, &self.cookie_name),
            None => {}
        }
        if saving.carry_sent && !carried {
            self.cookie.append_removal(response, &self.carry_name);
        }
        Ok(dropped)
    }
}

#[async_trait]
impl<S: KeyedStore> Storage for ServerStorage<S> {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        let client = self.client_id(request);
        let carry = self.carry_in(request);
        if client.is_none() && matches!(carry, CarryIn::Absent) {
            return Ok(Loaded::nothing());
        }
        let (mut messages, lease, load_error) = match client {
            Some(client) => match (self.lease(client).await, &carry) {
                (Ok((messages, lease)), _) => (messages, lease, None),
                (Err(err), CarryIn::Valid(_)) if err.kind() == ErrorKind::Unavailable => {
                    tracing::warn!(
                        %err,
                        "keyed store unavailable at load: showing the carried messages alone"
                    );
                    (Vec::new(), None, Some(err))
                }
                (Err(err), _) => return Err(err),
            },
            None => (Vec::new(), None, None),
        };
        let carry_sent = !matches!(carry, CarryIn::Absent);
        let carried = match carry {
            // The store's messages are older than the carried ones.
            CarryIn::Valid(carried) => {
                let n = carried.len();
                messages.extend(carried);
                n
            }
            _ => 0,
        };
        Ok(Loaded {
            messages,
            complete: true,
            token: LoadToken::new(KeyedToken {
                client,
                lease,
                carried,
                carry_sent,
                load_error,
            }),
        })
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let Update {
            loaded,
            consumed,
            mut unread,
            added,
            limits,
            identity,
            degraded,
            ..
        } = update;
        // The client, its lease, whether a carry cookie was sent, and the carried messages
        // still pending; `unread` keeps the store's own.
        let (known, lease, carry_sent, mut pending) =
            match loaded.and_then(LoadToken::into_inner::<KeyedToken<S>>) {
                Some(mut token) => {
                    if let Some(err) = token.load_error.take() {
                        degraded.report(err);
                    }
                    // A consumed update's `unread` is what stays (messages addressed to another
                    // page): all of it goes back to the store, after the settle deletes what
                    // the lease held. Otherwise the carried ones are its tail.
                    let carried = if consumed {
                        std::mem::take(&mut unread)
                    } else {
                        unread.split_off(unread.len().saturating_sub(token.carried))
                    };
                    (token.client, token.lease.take(), token.carry_sent, carried)
                }
                None => match self.carry_in(request) {
                    CarryIn::Absent => (self.client_id(request), None, false, Vec::new()),
                    CarryIn::Invalid => (self.client_id(request), None, true, Vec::new()),
                    CarryIn::Valid(carried) => (self.client_id(request), None, true, carried),
                },
            };
        let saving = Saving {
            limits: &limits,
            degraded: &degraded,
            carry_sent,
            id_sent: request.cookie(&self.cookie_name).is_some(),
        };
        if identity != Identity::Keep {
            let moving = if identity == Identity::Rotate(Carry::Keep) {
                unread.append(&mut pending);
                unread.extend(added);
                unread
            } else {
                added
            };
            return self
                .save_identity(identity, (known, lease), moving, &saving, response)
                .await;
        }
        // Carried messages not consumed go to the store with the added ones, after the
        // store's own: they are newer.
        pending.extend(added);
        let stored = match (lease, known) {
            (Some(mut held), Some(client)) => {
                let outcome = if consumed {
                    Outcome::Consumed
                } else {
                    Outcome::Released
                };
                if held.taken.elapsed() > self.lease_timeout {
                    // The request outlived its lease: another may have shown these messages.
                    crate::observe::lease_expired(crate::observe::backend_name::<S>());
                }
                let lease = held.take();
                let settle = self
                    .store
                    .settle(&client, &lease, outcome, &pending, self.ttl, &limits);
                Some((client, self.call("settle", settle).await))
            }
            _ if pending.is_empty() => {
                if known.is_none() && saving.id_sent {
                    // A cookie that does not verify is dropped rather than sent back forever.
                    self.cookie.append_removal(response, &self.cookie_name);
                }
                None
            }
            (_, known) => {
                let client = known.unwrap_or_else(ClientId::random);
                let append = self.store.append(&client, &pending, self.ttl, &limits);
                Some((client, self.call("append", append).await))
            }
        };
        match stored {
            Some((client, Ok(kept))) => {
                if kept > 0 {
                    self.set_id_cookie(&client, response);
                }
                if carry_sent {
                    self.cookie.append_removal(response, &self.carry_name);
                }
                // What the store refused at the client's limits is reported as dropped.
                Ok(pending.split_off(kept.min(pending.len())))
            }
            Some((_, Err(err))) => self.recover(err, pending, &saving, response),
            None => {
                if carry_sent {
                    self.cookie.append_removal(response, &self.carry_name);
                }
                Ok(Vec::new())
            }
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ServerStorage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStorage")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .field("cookie_name", &self.cookie_name)
            .field("ttl", &self.ttl)
            .field("lease_timeout", &self.lease_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("clock", &self.clock)
            .finish()
    }
}
