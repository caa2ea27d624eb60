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

/// A random 128-bit id type: `random`, `from_bytes`, `as_bytes`, `to_hex`, and `Debug` and
/// `Display` as hex (the three ids differ only in what they name).
macro_rules! random_id {
    ($(#[$meta:meta])* $name:ident, $from_bytes:literal, $to_hex:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; 16]);

        impl $name {
            #[doc = concat!("A fresh random `", stringify!($name), "`.")]
            pub fn random() -> Self {
                let mut bytes = [0u8; 16];
                crate::random::fill(&mut bytes);
                $name(bytes)
            }

            #[doc = $from_bytes]
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(bytes)
            }

            /// The id's bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            #[doc = $to_hex]
            pub fn to_hex(&self) -> String {
                hex(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

random_id!(
    /// A client's random 128-bit id, carried in a signed cookie.
    #[derive(PartialOrd, Ord)]
    ClientId,
    "The id from its bytes.",
    "The id as 32 lowercase hex digits, for keys and rows."
);

random_id!(
    /// The id of one lease: which request holds a client's messages.
    LeaseId,
    "The id from its bytes (a lease named in the carry cookie).",
    "The id as 32 lowercase hex digits."
);

random_id!(
    /// The id of one write (an append or a settle): the same write sent again under the same
    /// id is applied at most once by a store that remembers operations
    /// ([`KeyedStore::remembers_operations`]).
    OperationId,
    "The id from its bytes.",
    "The id as 32 lowercase hex digits."
);

/// 32 hex digits as 16 bytes.
fn unhex(text: &str) -> Option<[u8; 16]> {
    let digits = text.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
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
/// - **A settle is idempotent on its lease.** Settling a lease again (the bridge finishing a
///   settle whose answer never came) ends only what the lease still holds: nothing, once the
///   first settle was applied. Only its `append` is new each time, unless the store remembers
///   operations.
/// - **Operations, when the store remembers them** ([`KeyedStore::remembers_operations`]
///   returns `Some(window)`): [`append_once`](KeyedStore::append_once) and
///   [`settle_once`](KeyedStore::settle_once) name their write with an [`OperationId`]; a write
///   sent again under an id the client's store applied within `window` is not applied again
///   (no message added twice, no lease ended twice) and answers what the first one kept. Appends
///   and settles share one space of ids, per client. The bridge sends a write again when its
///   answer never came (a call past its deadline may still be applied later, when a stalled
///   connection delivers it): with this rule the late copy and the re-sent one are one write,
///   which is what makes a message carried across an outage show once. The store knows at
///   least the 200 latest writes of each client: a write sent again after fewer others is not
///   applied twice (it may be refused with an error instead of answered). A store that cannot
///   keep recent ids returns `None` (the default) and its `_once` calls are plain ones; the
///   bridge then counts what may show twice
///   ([`observe::MAYBE_DUPLICATED`](crate::observe::MAYBE_DUPLICATED)).
///
/// Without atomic server-side operations, write a [`DocumentStore`](crate::storage::DocumentStore)
/// instead: [`Documents`](crate::storage::Documents) implements this trait over it.
///
/// The calls as the bridge makes them, on [`MemoryStore`](crate::storage::MemoryStore):
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use flash_core::{Level, Limits, Message};
/// use flash_core::storage::{ClientId, KeyedStore, LeaseId, MemoryStore, Outcome};
///
/// let store = MemoryStore::new();
/// let (client, ttl, limits) = (ClientId::random(), Duration::from_secs(3600), Limits::default());
/// let saved = [Message::new(Level::SUCCESS, "Article saved.")];
/// assert_eq!(store.append(&client, &saved, ttl, &limits).await?, 1); // the POST
///
/// let lease = LeaseId::random(); // the GET
/// let shown = store.lease(&client, &lease, Duration::from_secs(30)).await?;
/// assert_eq!(shown[0].text, "Article saved.");
/// // Hidden from other leases until the lease ends or times out.
/// assert!(store.lease(&client, &LeaseId::random(), Duration::from_secs(30)).await?.is_empty());
/// store.settle(&client, &lease, Outcome::Consumed, &[], ttl, &limits).await?;
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
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

    /// How long the store remembers the id of a write it applied for a client (see the
    /// trait's contract, "Operations"); `None` (the default): it does not, and
    /// [`append_once`](Self::append_once) and [`settle_once`](Self::settle_once) are
    /// [`append`](Self::append) and [`settle`](Self::settle).
    fn remembers_operations(&self) -> Option<Duration> {
        None
    }

    /// [`append`](Self::append) under the operation id `op`: applied once however often it is
    /// sent within the store's window. The default forgets `op`.
    async fn append_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let _ = op;
        self.append(client, messages, ttl, limits).await
    }

    /// [`settle`](Self::settle) under the operation id `op`: applied once however often it is
    /// sent within the store's window. The default forgets `op`.
    #[allow(clippy::too_many_arguments)] // settle's arguments and the operation id
    async fn settle_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let _ = op;
        self.settle(client, lease, outcome, append, ttl, limits)
            .await
    }
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

    fn remembers_operations(&self) -> Option<Duration> {
        (**self).remembers_operations()
    }

    async fn append_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        (**self)
            .append_once(op, client, messages, ttl, limits)
            .await
    }

    async fn settle_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        (**self)
            .settle_once(op, client, lease, outcome, append, ttl, limits)
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

/// One write whose answer never came (or that never reached the store), carried in the carry
/// cookie until the store answers. A store call past its deadline may still be applied later
/// (a stalled connection delivers it when it heals), so the write keeps its operation id: the
/// next request sends it again under that id, and a store that remembers operations applies
/// the late copy and the re-sent one once.
#[derive(Clone, Debug)]
struct PendingWrite {
    op: OperationId,
    /// A settle's lease and outcome; `None`: an append.
    settle: Option<(LeaseId, Outcome)>,
    /// What the write appends that no page has shown yet.
    messages: Vec<Message>,
    /// The digests ([`digest`]) of what it appends that a page showed from the cookie, while
    /// the store did not answer: if the store applied the write after all, those copies are
    /// hidden from the next page and consumed. A digest, not the message: a few bytes of the
    /// 4 KB cookie each.
    shown: Vec<u64>,
}

impl PendingWrite {
    fn append(messages: Vec<Message>) -> Self {
        PendingWrite {
            op: OperationId::random(),
            settle: None,
            messages,
            shown: Vec::new(),
        }
    }

    /// What to send again under the write's id: its unshown messages, or a placeholder when
    /// everything it appends was shown (a store may record an id only when a write appends
    /// something, and the id must be recorded for the late copy to be refused).
    fn to_send(&self) -> Vec<Message> {
        if self.messages.is_empty() && !self.shown.is_empty() {
            vec![placeholder()]
        } else {
            self.messages.clone()
        }
    }
}

/// The text of a placeholder: the message the bridge appends under the id of a write whose
/// messages were all shown, so that the store records the id. Every read of the bridge hides
/// and consumes it; no page ever shows it.
const PLACEHOLDER_TEXT: &str = "flash: placeholder of a write already shown";

fn placeholder() -> Message {
    Message::new(crate::level::Level::new(i32::MIN), PLACEHOLDER_TEXT)
}

fn is_placeholder(message: &Message) -> bool {
    message.level == crate::level::Level::new(i32::MIN) && message.text == PLACEHOLDER_TEXT
}

/// A message's digest for the carry cookie's records of shown messages: FNV-1a over what
/// tells two messages apart (`Message`'s equality: level and text). Not a secret (the cookie
/// is signed); a collision would hide one of two messages with the same digest from the page
/// after an outage, never lose one from the store (hidden copies are consumed only when
/// found).
fn digest(message: &Message) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let level = message.level.value().to_le_bytes();
    for byte in level.iter().chain(message.text.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Removes from `messages` the first message with digest `d`; whether one was found.
fn remove_digest(messages: &mut Vec<Message>, d: u64) -> bool {
    match messages.iter().position(|m| digest(m) == d) {
        Some(i) => {
            messages.remove(i);
            true
        }
        None => false,
    }
}

/// The carry cookie's JSON: `{"w": [write, ...]}`, each write
/// `{"op": hex, "lease": hex, "consumed": bool, "m": [stored form, ...], "h": [hex digest, ...]}`.
/// A cookie written before operation ids (a plain list of messages) still reads, as one append.
#[derive(serde::Deserialize)]
struct CarryJson {
    w: Vec<WriteJson>,
}

#[derive(serde::Deserialize)]
struct WriteJson {
    op: String,
    #[serde(default)]
    lease: Option<String>,
    #[serde(default)]
    consumed: bool,
    m: Vec<crate::storage::stored_form::FromStored>,
    #[serde(default)]
    h: Vec<String>,
}

#[derive(serde::Serialize)]
struct CarryOut<'a> {
    w: Vec<WriteOut<'a>>,
}

#[derive(serde::Serialize)]
struct WriteOut<'a> {
    op: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    consumed: bool,
    m: Vec<crate::storage::stored_form::AsStored<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    h: Vec<String>,
}

fn encode_writes(writes: &[PendingWrite]) -> Option<Vec<u8>> {
    let out = CarryOut {
        w: writes
            .iter()
            .map(|w| WriteOut {
                op: w.op.to_hex(),
                lease: w.settle.map(|(l, _)| l.to_hex()),
                consumed: matches!(w.settle, Some((_, Outcome::Consumed))),
                m: w.messages
                    .iter()
                    .map(crate::storage::stored_form::AsStored)
                    .collect(),
                h: w.shown.iter().map(|d| format!("{d:016x}")).collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&out).ok()
}

fn decode_writes(json: &[u8]) -> Option<Vec<PendingWrite>> {
    if let Ok(old) = crate::storage::stored_form::list_from_slice(json) {
        return Some(vec![PendingWrite::append(old)]);
    }
    let carry: CarryJson = serde_json::from_slice(json).ok()?;
    carry
        .w
        .into_iter()
        .map(|w| {
            let op = OperationId(unhex(&w.op)?);
            let settle = match w.lease {
                Some(lease) => Some((
                    LeaseId(unhex(&lease)?),
                    if w.consumed {
                        Outcome::Consumed
                    } else {
                        Outcome::Released
                    },
                )),
                None => None,
            };
            let shown =
                w.h.iter()
                    .map(|d| u64::from_str_radix(d, 16).ok())
                    .collect::<Option<Vec<u64>>>()?;
            Some(PendingWrite {
                op,
                settle,
                messages: w.m.into_iter().map(|m| m.0).collect(),
                shown,
            })
        })
        .collect()
}

/// The carry cookie of a request.
enum CarryIn {
    Absent,
    /// Present but not validly signed, or not messages: ignored and deleted.
    Invalid,
    Valid(Vec<PendingWrite>),
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
    /// The store did not answer at load (or there is no client id to ask for): the carried
    /// writes, unfinished; the loaded messages are their unshown messages, in order.
    unfinished: Option<Vec<PendingWrite>>,
    /// How many leased messages were hidden from the page, as copies of messages shown before:
    /// the settle consumes them even when the request consumes nothing.
    hidden: usize,
}

/// A [`Storage`] over any [`KeyedStore`]: the client is identified by a random 128-bit id in a
/// signed cookie.
///
/// Store calls: none for a request without a valid id cookie that adds nothing, none for a
/// request that neither reads nor adds, one (`append`) for a request that only adds, one
/// (`lease`) per read, and one (`settle`, which also appends) at the response of a read that
/// found messages; after a fault, one more per write carried in the cookie, in the client's
/// next request.
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
/// - Exactly once across the fault: each write is named by an [`OperationId`], and one that
///   failed is carried under it (a settle with its lease). The client's next request finishes
///   the carried writes first, sending each again under its id, before it reads: a store that
///   remembers operations ([`KeyedStore::remembers_operations`]) applies the late copy of an
///   append (or settle) and the re-sent one once, and a settle cut after its page was shown is
///   finished before its lease can expire. A carried message shown while the store was down is
///   remembered as shown in the cookie; if its write reaches the store after all, that copy is
///   hidden from the next page and consumed.
///   The price, where exactly once cannot be had: a carried message lives in the browser, so
///   two tabs reading at once may both show it; with a store that forgets operations, a write
///   applied late after the client's next read shows its messages twice (counted in
///   [`observe::MAYBE_DUPLICATED`](crate::observe::MAYBE_DUPLICATED)). Shown twice is better
///   than lost.
///
/// The deadline runs on Tokio's timer with the `tokio` feature (the default), which needs a
/// Tokio runtime with its time driver enabled, as every Tokio-based framework runs. Without
/// that feature there is no deadline until the application gives a [`Timer`]
/// ([`ServerStorage::with_timer`]), and an abandoned lease comes back after the lease timeout.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use flash_core::{Key, Messages, MessagesConfig};
/// use flash_core::storage::{Incoming, MemoryStore, ServerStorage};
///
/// let storage = Arc::new(
///     ServerStorage::new(MemoryStore::new(), Key::generate())
///         .with_ttl(Duration::from_secs(24 * 3600)) // undelivered messages expire
///         .with_lease_timeout(Duration::from_secs(30)), // a crashed request's come back
/// );
/// let config = Arc::new(MessagesConfig::default());
///
/// // POST: one append; the response sets the signed id cookie.
/// let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
/// messages.success("Article saved.");
/// let mut response = http::HeaderMap::new();
/// messages.save(&mut response).await?;
/// let set_cookie = response["set-cookie"].to_str().unwrap();
/// let id = set_cookie.split(';').next().unwrap();
///
/// // GET with that cookie: a lease to read, a settle to consume.
/// let mut request = http::HeaderMap::new();
/// request.insert("cookie", id.parse().unwrap());
/// let messages = Messages::new(storage, Incoming::from_headers(&request), config);
/// assert_eq!(messages.read().await?[0].text, "Article saved.");
/// messages.save(&mut http::HeaderMap::new()).await?;
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
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
            .and_then(|json| decode_writes(&json))
            .map_or(CarryIn::Invalid, CarryIn::Valid)
    }

    /// Writes `writes` into the carry cookie within `limits` and one `Set-Cookie` line (or
    /// removes the cookie when nothing is left and the request sent one); returns the unshown
    /// messages that did not fit (the newest). What must not be lost goes first: the records
    /// of shown messages give way before any unshown message does (each one given up may show
    /// twice, and is counted).
    fn write_carry(
        &self,
        mut writes: Vec<PendingWrite>,
        limits: &Limits,
        carry_sent: bool,
        response: &mut HeaderMap,
    ) -> Vec<Message> {
        let backend = crate::observe::backend_name::<S>();
        let mut dropped = Vec::new();
        // The client's limits on what is carried (the oldest fit), and a first cut by size: a
        // message never takes fewer bytes in the cookie than its size.
        let unshown: Vec<Message> = writes.iter().flat_map(|w| w.messages.clone()).collect();
        let mut excess = unshown.len() - limits.fitting(0, 0, &unshown);
        let mut bytes: usize = unshown.iter().map(Message::size).sum();
        for write in writes.iter_mut().rev() {
            while excess > 0 || bytes > MAX_COOKIE_LINE {
                let Some(message) = write.messages.pop() else {
                    break;
                };
                bytes -= message.size();
                excess = excess.saturating_sub(1);
                dropped.push(message);
            }
        }
        let overhead = self.cookie.line_overhead(&self.carry_name, Some(self.ttl));
        loop {
            writes.retain(|w| !w.messages.is_empty() || !w.shown.is_empty() || w.settle.is_some());
            if writes.is_empty() {
                if carry_sent {
                    self.cookie.append_removal(response, &self.carry_name);
                }
                break;
            }
            if let Some(json) = encode_writes(&writes) {
                let value = self.keys.sign_token(&self.carry_name, &json);
                if overhead + value.len() <= MAX_COOKIE_LINE {
                    self.cookie
                        .append(response, &self.carry_name, &value, Some(self.ttl));
                    break;
                }
            }
            // Too long: the oldest record of a shown message goes first, then the newest
            // unshown message, then the oldest write.
            if let Some(write) = writes.iter_mut().find(|w| !w.shown.is_empty()) {
                write.shown.remove(0);
                crate::observe::maybe_duplicated(backend, "carry_full", 1);
            } else if let Some(write) = writes.iter_mut().rev().find(|w| !w.messages.is_empty()) {
                if let Some(message) = write.messages.pop() {
                    dropped.push(message);
                }
            } else {
                writes.remove(0);
            }
        }
        dropped.reverse();
        dropped
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
    /// writes in a cookie (the failed one last); anything else is returned.
    fn recover(
        &self,
        err: Error,
        writes: Vec<PendingWrite>,
        saving: &Saving<'_>,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        if err.kind() != ErrorKind::Unavailable {
            return Err(err);
        }
        Ok(self.carry(Some(err), writes, saving, response))
    }

    /// Carries `writes` in the cookie; `err`, the store's failure, goes to the error hook
    /// with what was carried. Returns what did not fit.
    fn carry(
        &self,
        err: Option<Error>,
        writes: Vec<PendingWrite>,
        saving: &Saving<'_>,
        response: &mut HeaderMap,
    ) -> Vec<Message> {
        let offered: usize = writes.iter().map(|w| w.messages.len()).sum();
        let dropped = self.write_carry(writes, saving.limits, saving.carry_sent, response);
        let carried = offered.saturating_sub(dropped.len());
        let Some(err) = err else {
            return dropped;
        };
        crate::observe::carried(carried);
        tracing::warn!(
            %err,
            carried,
            dropped = dropped.len(),
            "keyed store unavailable at save: the messages ride in the carry cookie"
        );
        // The hook's words: carried, not lost (and how many did not fit, if any).
        saving.degraded.report(Error::with_source(
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
        dropped
    }

    /// Sends the carried writes again, in order, under their own operation ids, before the
    /// request reads or writes anything else. With a store that remembers operations each is
    /// then applied exactly once, whether or not its first attempt was applied late; its shown
    /// messages are returned, to hide from the lease that follows. With one that does not, only
    /// the settles are finished (their lease part is idempotent; their messages stay carried).
    /// `skip_shown`: leave the writes holding shown messages for a request that reads (only a
    /// lease can hide them). Returns the hidden messages and the writes left; stops at the
    /// first failure, which is returned with the writes left.
    async fn finish_writes(
        &self,
        client: ClientId,
        writes: Vec<PendingWrite>,
        skip_shown: bool,
        limits: &Limits,
    ) -> (Vec<u64>, Vec<PendingWrite>, Option<Error>) {
        let remembers = self.store.remembers_operations().is_some();
        let mut hide = Vec::new();
        let mut left = Vec::new();
        let mut writes = writes.into_iter();
        while let Some(mut write) = writes.next() {
            if skip_shown && !write.shown.is_empty() {
                left.push(write);
                continue;
            }
            let answer = if remembers {
                let messages = write.to_send();
                match write.settle {
                    Some((lease, outcome)) => {
                        let settle = self.store.settle_once(
                            &write.op, &client, &lease, outcome, &messages, self.ttl, limits,
                        );
                        self.call("settle", settle).await
                    }
                    None if messages.is_empty() => Ok(0),
                    None => {
                        let append = self
                            .store
                            .append_once(&write.op, &client, &messages, self.ttl, limits);
                        self.call("append", append).await
                    }
                }
            } else {
                match write.settle {
                    Some((lease, outcome)) => {
                        let settle =
                            self.store
                                .settle(&client, &lease, outcome, &[], self.ttl, limits);
                        self.call("settle", settle).await
                    }
                    None => Ok(0),
                }
            };
            match answer {
                Ok(_) if remembers => hide.extend(write.shown),
                Ok(_) => {
                    write.settle = None;
                    left.push(write);
                }
                Err(err) => {
                    left.push(write);
                    left.extend(writes);
                    return (hide, left, Some(err));
                }
            }
        }
        (hide, left, None)
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
            let write = PendingWrite::append(moving.clone());
            let append = self
                .store
                .append_once(&write.op, &new, &moving, self.ttl, limits);
            match self.call("append", append).await {
                Ok(kept) => dropped = moving.split_off(kept.min(moving.len())),
                Err(err) => {
                    dropped = self.recover(err, vec![write], saving, response)?;
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
        let carry_sent = !matches!(carry, CarryIn::Absent);
        let writes = match carry {
            CarryIn::Valid(writes) => writes,
            _ => Vec::new(),
        };
        // The writes carried from earlier requests are finished first (a settle cut after its
        // page was shown, an append that timed out), before the lease can show their messages
        // again or their lease can expire.
        let (hide, left, failed) = match client {
            Some(client) if !writes.is_empty() => {
                let limits = Limits::default();
                self.finish_writes(client, writes.clone(), false, &limits)
                    .await
            }
            _ => (Vec::new(), writes.clone(), None),
        };
        let leased = match (client, failed) {
            (Some(client), None) => self.lease(client).await,
            (Some(_), Some(err)) => Err(err),
            (None, _) => Ok((Vec::new(), None)),
        };
        let (mut messages, lease) = match leased {
            Ok(found) if client.is_some() => found,
            Ok(_) => (Vec::new(), None),
            Err(err) if err.kind() == ErrorKind::Unavailable && !writes.is_empty() => {
                tracing::warn!(
                    %err,
                    "keyed store unavailable at load: showing the carried messages alone"
                );
                // Nothing is finished: every carried write stays as it came, to be sent again.
                return Ok(self.carried_alone(writes, client, carry_sent, Some(err)));
            }
            Err(err) => return Err(err),
        };
        if client.is_none() {
            return Ok(self.carried_alone(writes, None, carry_sent, None));
        }
        // Copies of messages a page already showed are hidden, and consumed by the settle;
        // so is any placeholder (written under the id of a write already shown).
        let backend = crate::observe::backend_name::<S>();
        let before = messages.len();
        messages.retain(|m| !is_placeholder(m));
        let mut hidden = before - messages.len();
        for d in hide {
            hidden += usize::from(remove_digest(&mut messages, d));
        }
        // A store that forgets operations: a carried message whose write was applied after all
        // is in the lease; its copy there is the one shown (or hidden, if shown before). One
        // not found may still be applied later: counted.
        let mut tail = Vec::new();
        for write in left {
            for d in write.shown {
                if remove_digest(&mut messages, d) {
                    hidden += 1;
                } else {
                    crate::observe::maybe_duplicated(backend, "store_forgets_operations", 1);
                }
            }
            for message in write.messages {
                if !messages.contains(&message) {
                    crate::observe::maybe_duplicated(backend, "store_forgets_operations", 1);
                    tail.push(message);
                }
            }
        }
        let carried = tail.len();
        // The store's messages are older than the carried ones.
        messages.extend(tail);
        Ok(Loaded {
            messages,
            complete: true,
            token: LoadToken::new(KeyedToken {
                client,
                lease,
                carried,
                carry_sent,
                load_error: None,
                unfinished: None,
                hidden,
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
        let token = loaded.and_then(LoadToken::into_inner::<KeyedToken<S>>);
        let carry_sent = match &token {
            Some(token) => token.carry_sent,
            None => request.cookie(&self.carry_name).is_some(),
        };
        let saving = Saving {
            limits: &limits,
            degraded: &degraded,
            carry_sent,
            id_sent: request.cookie(&self.cookie_name).is_some(),
        };
        let Some(mut token) = token else {
            return self
                .save_unread(request, identity, added, &saving, response)
                .await;
        };
        let load_failed = token.load_error.is_some();
        if let Some(err) = token.load_error.take() {
            degraded.report(err);
        }
        if let Some(mut writes) = token.unfinished.take() {
            if token.client.is_none() {
                // No id to finish them under: only what was not shown yet is worth carrying.
                for write in &mut writes {
                    write.settle = None;
                    write.shown.clear();
                }
            }
            // The store did not answer at load: the messages shown came from the cookie.
            if consumed {
                // `unread` is what stays (addressed to another page); the rest was shown.
                for write in &mut writes {
                    let mut staying = Vec::new();
                    for message in std::mem::take(&mut write.messages) {
                        match unread.iter().position(|m| *m == message) {
                            Some(i) => {
                                unread.remove(i);
                                staying.push(message);
                            }
                            None => write.shown.push(digest(&message)),
                        }
                    }
                    write.messages = staying;
                }
            }
            if identity != Identity::Keep {
                let mut moving: Vec<Message> =
                    writes.iter().flat_map(|w| w.messages.clone()).collect();
                moving.extend(added);
                return self
                    .save_identity(identity, (token.client, None), moving, &saving, response)
                    .await;
            }
            if added.is_empty() {
                return Ok(self.carry(None, writes, &saving, response));
            }
            let write = PendingWrite::append(added);
            if load_failed {
                // It did not answer a moment ago: carried without another wait.
                writes.push(write);
                let err = Error::new(
                    ErrorKind::Unavailable,
                    "the keyed store did not answer at load",
                );
                return Ok(self.carry(Some(err), writes, &saving, response));
            }
            let client = token.client.unwrap_or_else(ClientId::random);
            let messages = write.messages.clone();
            let append = self
                .store
                .append_once(&write.op, &client, &messages, self.ttl, &limits);
            return match self.call("append", append).await {
                Ok(kept) => {
                    if kept > 0 {
                        self.set_id_cookie(&client, response);
                    }
                    let mut dropped = self.carry(None, writes, &saving, response);
                    dropped.extend(messages.into_iter().skip(kept));
                    Ok(dropped)
                }
                Err(err) => {
                    self.set_id_cookie(&client, response);
                    writes.push(write);
                    self.recover(err, writes, &saving, response)
                }
            };
        }
        // The store answered at load. A consumed update's `unread` is what stays (messages
        // addressed to another page): all of it goes back to the store, after the settle
        // deletes what the lease held; so does everything when hidden copies must go.
        // Otherwise the carried ones are its tail.
        let consuming = consumed || token.hidden > 0;
        let mut pending = if consuming {
            std::mem::take(&mut unread)
        } else {
            unread.split_off(unread.len().saturating_sub(token.carried))
        };
        let (known, lease) = (token.client, token.lease.take());
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
        let op = OperationId::random();
        let stored = match (lease, known) {
            (Some(mut held), Some(client)) => {
                let outcome = if consuming {
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
                    .settle_once(&op, &client, &lease, outcome, &pending, self.ttl, &limits);
                let answer = self.call("settle", settle).await;
                Some((client, Some((lease, outcome)), answer))
            }
            _ if pending.is_empty() => None,
            (_, known) => {
                let client = known.unwrap_or_else(ClientId::random);
                let append = self
                    .store
                    .append_once(&op, &client, &pending, self.ttl, &limits);
                Some((client, None, self.call("append", append).await))
            }
        };
        match stored {
            Some((client, _, Ok(kept))) => {
                if kept > 0 {
                    self.set_id_cookie(&client, response);
                }
                if carry_sent {
                    self.cookie.append_removal(response, &self.carry_name);
                }
                // What the store refused at the client's limits is reported as dropped.
                Ok(pending.split_off(kept.min(pending.len())))
            }
            Some((client, settle, Err(err))) => {
                // The settle (or append) is carried under its operation id: the next request
                // finishes it, so what this page showed is not shown again.
                self.set_id_cookie(&client, response);
                let write = PendingWrite {
                    op,
                    settle,
                    messages: pending,
                    shown: Vec::new(),
                };
                self.recover(err, vec![write], &saving, response)
            }
            None => {
                if carry_sent {
                    self.cookie.append_removal(response, &self.carry_name);
                }
                Ok(Vec::new())
            }
        }
    }
}

impl<S: KeyedStore> ServerStorage<S> {
    /// A load that shows the carried messages alone: the store did not answer (`err`), or
    /// there is no client id to ask it for.
    fn carried_alone(
        &self,
        writes: Vec<PendingWrite>,
        client: Option<ClientId>,
        carry_sent: bool,
        err: Option<Error>,
    ) -> Loaded {
        let messages: Vec<Message> = writes.iter().flat_map(|w| w.messages.clone()).collect();
        Loaded {
            messages,
            complete: true,
            token: LoadToken::new(KeyedToken::<S> {
                client,
                lease: None,
                carried: 0,
                carry_sent,
                load_error: err,
                unfinished: Some(writes),
                hidden: 0,
            }),
        }
    }

    /// Saves a request that did not read: the carried writes are finished first (those that
    /// hold no shown message), then what it added is appended.
    async fn save_unread(
        &self,
        request: &Incoming,
        identity: Identity,
        added: Vec<Message>,
        saving: &Saving<'_>,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let known = self.client_id(request);
        let writes = match self.carry_in(request) {
            CarryIn::Valid(writes) => writes,
            _ => Vec::new(),
        };
        if identity != Identity::Keep {
            let mut moving: Vec<Message> = if identity == Identity::Rotate(Carry::Keep) {
                writes.iter().flat_map(|w| w.messages.clone()).collect()
            } else {
                Vec::new()
            };
            moving.extend(added);
            return self
                .save_identity(identity, (known, None), moving, saving, response)
                .await;
        }
        let had_writes = !writes.is_empty();
        let (mut left, failed) = match known {
            Some(client) if had_writes => {
                let (_, left, failed) = self
                    .finish_writes(client, writes, true, saving.limits)
                    .await;
                (left, failed)
            }
            _ => (writes, None),
        };
        if added.is_empty() {
            if known.is_none() && saving.id_sent && left.is_empty() {
                // A cookie that does not verify is dropped rather than sent back forever.
                self.cookie.append_removal(response, &self.cookie_name);
            }
            return Ok(match failed {
                Some(err) if err.kind() == ErrorKind::Unavailable => {
                    self.carry(Some(err), left, saving, response)
                }
                Some(err) => return Err(err),
                None if had_writes || saving.carry_sent => self.carry(None, left, saving, response),
                None => Vec::new(),
            });
        }
        let mut added = added;
        if failed.is_none() && self.store.remembers_operations().is_none() {
            // A store that forgets operations: carried messages go to the store ahead of the
            // added ones, in their order, as one new write (a late copy of their first write
            // would show twice: counted).
            let mut moving: Vec<Message> = Vec::new();
            for write in &mut left {
                moving.append(&mut write.messages);
            }
            crate::observe::maybe_duplicated(
                crate::observe::backend_name::<S>(),
                "store_forgets_operations",
                moving.len(),
            );
            moving.append(&mut added);
            added = moving;
        }
        let write = PendingWrite::append(added);
        if let Some(err) = failed {
            // The store did not answer a moment ago: carried without another wait.
            left.push(write);
            return self.recover(err, left, saving, response);
        }
        let client = known.unwrap_or_else(ClientId::random);
        let messages = write.messages.clone();
        let append = self
            .store
            .append_once(&write.op, &client, &messages, self.ttl, saving.limits);
        match self.call("append", append).await {
            Ok(kept) => {
                if kept > 0 {
                    self.set_id_cookie(&client, response);
                }
                let mut dropped = if had_writes || saving.carry_sent {
                    self.carry(None, left, saving, response)
                } else {
                    Vec::new()
                };
                dropped.extend(messages.into_iter().skip(kept));
                Ok(dropped)
            }
            Err(err) => {
                self.set_id_cookie(&client, response);
                left.push(write);
                self.recover(err, left, saving, response)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::level::Level;

    /// A carry cookie written before operation ids (a plain list of messages) still reads, as
    /// one append with a fresh id and nothing shown.
    #[test]
    fn an_old_carry_cookie_reads_as_one_append() {
        let writes = decode_writes(br#"[[20,"old"],[40,"older"]]"#).unwrap();
        assert_eq!(writes.len(), 1);
        let texts: Vec<&str> = writes[0].messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["old", "older"]);
        assert!(writes[0].settle.is_none() && writes[0].shown.is_empty());
    }

    /// What the cookie holds comes back as written: ids, the settle's lease and outcome, the
    /// messages and the digests of those shown; anything else is no carry.
    #[test]
    fn pending_writes_round_trip_through_the_cookie() {
        let shown = Message::new(Level::INFO, "shown");
        let writes = vec![
            PendingWrite {
                op: OperationId::random(),
                settle: Some((LeaseId::random(), Outcome::Consumed)),
                messages: vec![Message::new(Level::ERROR, "pending")],
                shown: vec![digest(&shown), u64::MAX, 0],
            },
            PendingWrite::append(vec![Message::new(Level::SUCCESS, "added")]),
        ];
        let back = decode_writes(&encode_writes(&writes).unwrap()).unwrap();
        assert_eq!(back.len(), 2);
        for (a, b) in writes.iter().zip(&back) {
            assert_eq!(a.op, b.op);
            assert_eq!(a.settle, b.settle);
            assert_eq!(a.messages, b.messages);
            assert_eq!(a.shown, b.shown);
        }
        for bad in [
            &br#"{"w":[{"op":"xyz","m":[]}]}"#[..],
            br#"{"w":[{"op":"00000000000000000000000000000000","m":[],"h":["nothex"]}]}"#,
            br#"{"w":[{"op":"00000000000000000000000000000000","lease":"1","m":[]}]}"#,
            b"garbage",
        ] {
            assert!(
                decode_writes(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// A digest tells messages apart as `Message`'s equality does (level and text), and a
    /// placeholder is never a message an application adds.
    #[test]
    fn digests_follow_message_equality() {
        let a = Message::new(Level::INFO, "saved");
        assert_eq!(
            digest(&a),
            digest(&Message::new(Level::INFO, "saved").with_extra_tags("x"))
        );
        assert_ne!(digest(&a), digest(&Message::new(Level::SUCCESS, "saved")));
        assert_ne!(digest(&a), digest(&Message::new(Level::INFO, "saved!")));
        let mut messages = vec![a.clone(), Message::new(Level::INFO, "other"), a.clone()];
        assert!(remove_digest(&mut messages, digest(&a)));
        assert_eq!(messages.len(), 2, "one copy removed, not every equal one");
        assert!(!remove_digest(&mut messages, digest(&placeholder())));
        assert!(is_placeholder(&placeholder()) && !is_placeholder(&a));
    }
}
