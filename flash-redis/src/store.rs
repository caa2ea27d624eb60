//! The store: [`KeyedStore`] on Redis, one Lua script per operation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_core::storage::stored_form::{self, FromStored};
use flash_core::{
    Error, ErrorKind, Limits, Message, Result,
    storage::{ClientId, KeyedStore, LeaseId, MAX_SPAN, OperationId, Outcome, Redacted},
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, Script, ScriptInvocation, ServerErrorKind};

use crate::config::{RedisStoreBuilder, Target};
use crate::value;

/// The Lua scripts, compiled into the crate. Each is one `EVALSHA`; the `redis` crate loads a
/// script (`SCRIPT LOAD`) and retries when the server answers `NOSCRIPT`.
struct Scripts {
    append: Script,
    lease: Script,
    settle: Script,
}

impl Scripts {
    fn new(shared: bool) -> Self {
        if shared {
            // Shared keys: the prologue reads the key, `shared.lua` walks it once for this
            // client's value, the common paths are the same functions as with one key per
            // client, and `shared_writes.lua` redefines common.lua's writes for the slow paths.
            // The settle keeps its one-command path.
            return Scripts {
                append: Script::new(concat!(
                    include_str!("lua/shared_member.lua"),
                    include_str!("lua/shared_get.lua"),
                    include_str!("lua/fast.lua"),
                    include_str!("lua/shared.lua"),
                    include_str!("lua/shared_append.lua"),
                    include_str!("lua/common.lua"),
                    include_str!("lua/shared_writes.lua"),
                    include_str!("lua/append_slow.lua")
                )),
                lease: Script::new(concat!(
                    include_str!("lua/shared_member.lua"),
                    include_str!("lua/shared_get.lua"),
                    include_str!("lua/fast.lua"),
                    include_str!("lua/shared.lua"),
                    include_str!("lua/shared_lease.lua"),
                    include_str!("lua/common.lua"),
                    include_str!("lua/shared_writes.lua"),
                    include_str!("lua/lease_slow.lua")
                )),
                settle: Script::new(concat!(
                    include_str!("lua/shared_member.lua"),
                    include_str!("lua/settle.lua"),
                    include_str!("lua/shared.lua"),
                    include_str!("lua/common.lua"),
                    include_str!("lua/shared_writes.lua"),
                    include_str!("lua/settle_slow.lua")
                )),
            };
        }
        Scripts {
            // Each script is its common path, then the helpers, then its other paths: the
            // common path returns before Lua has defined a helper (but the two small functions
            // of fast.lua, which shared keys run too).
            append: Script::new(concat!(
                include_str!("lua/fast.lua"),
                include_str!("lua/append.lua"),
                include_str!("lua/common.lua"),
                include_str!("lua/append_slow.lua")
            )),
            lease: Script::new(concat!(
                include_str!("lua/fast.lua"),
                include_str!("lua/lease.lua"),
                include_str!("lua/common.lua"),
                include_str!("lua/lease_slow.lua")
            )),
            settle: Script::new(concat!(
                include_str!("lua/settle.lua"),
                include_str!("lua/common.lua"),
                include_str!("lua/settle_slow.lua")
            )),
        }
    }

    fn all(&self) -> [&Script; 3] {
        [&self.append, &self.lease, &self.settle]
    }
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

struct Inner {
    connection: Connection,
    target: Target,
    prefix: String,
    call_timeout: Duration,
    /// How many keys the clients share (`RedisStoreBuilder::shared_keys`); `None`: one each.
    shared_keys: Option<u32>,
    scripts: Scripts,
    /// What each lease that took messages answered about consuming them, until its settle.
    consumed: Mutex<Remembered>,
}

/// What a lease's answer says about its own end: the SHA-1 of the client's value as the lease
/// wrote it, and the value once the lease is consumed (empty: no key) with its deadline (ms),
/// computed here from that answer. A settle that consumes and appends nothing sends them, and
/// finishes in one command when the value did not change meanwhile.
struct Consumed {
    sha1: String,
    value: Vec<u8>,
    deadline: u64,
}

/// At most this many leases awaiting their settle are remembered, holding at most
/// `MAX_REMEMBERED_BYTES` of values; past either the memory starts over, and the settles of
/// the leases forgotten take one command more.
const MAX_REMEMBERED_LEASES: usize = 65_536;
const MAX_REMEMBERED_BYTES: usize = 32 << 20;

/// The leases awaiting their settle, and the bytes of the values remembered for them.
#[derive(Default)]
struct Remembered {
    leases: HashMap<(ClientId, LeaseId), Consumed>,
    bytes: usize,
}

/// A [`KeyedStore`] on Redis or Redis Cluster: exactly-once delivery with leases, one round trip
/// per call, and a TTL on every client's messages.
///
/// Clones share one multiplexed connection that reconnects by itself. See the crate docs for the
/// key layout and what each guarantee rests on.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use flash_core::{Key, storage::ServerStorage};
/// use flash_redis::RedisStore;
///
/// // Connects on first use, so the application starts while Redis is down; `connect` would
/// // connect now and load the scripts.
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .prefix("myapp-flash")
///     .connect_lazy()?;
/// assert_eq!(store.call_timeout(), flash_core::DEFAULT_CALL_TIMEOUT);
/// // The bridge gives each browser a random id in a signed cookie.
/// let storage = ServerStorage::new(store, Key::generate());
/// # let _ = storage;
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Longest TTL or lease sent to the server: flash-core's [`MAX_SPAN`] (a longer `Duration` is
/// clamped).
const MAX_MILLIS: u128 = MAX_SPAN.as_millis();
/// Shortest time a retried write is recognised as already applied.
const MIN_DEDUPE_WINDOW: Duration = Duration::from_secs(60);

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://` for TLS when the `redis` crate's TLS feature is enabled, `redis+unix://`)
    /// with the default prefix and timeouts.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a bad URL; [`ErrorKind::Unavailable`] when the server cannot be
    /// reached within the call timeout.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// A builder for a store on the Redis server at `url`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Single(url.into()))
    }

    /// Connects to the Redis Cluster whose seed nodes are `urls` (any reachable subset of the
    /// cluster's masters) with the default prefix and timeouts.
    ///
    /// # Errors
    /// As [`RedisStore::connect`].
    #[cfg(feature = "cluster")]
    pub async fn connect_cluster<I, U>(urls: I) -> Result<Self>
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        Self::cluster_builder(urls).connect().await
    }

    /// A builder for a store on the Redis Cluster whose seed nodes are `urls`.
    #[cfg(feature = "cluster")]
    pub fn cluster_builder<I, U>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        RedisStoreBuilder::new(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The bound on one store call (the builder's
    /// [`call_timeout`](RedisStoreBuilder::call_timeout)).
    pub fn call_timeout(&self) -> Duration {
        self.inner.call_timeout
    }

    /// Whether the store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        match self.inner.connection {
            Connection::Single(_) => false,
            #[cfg(feature = "cluster")]
            Connection::Cluster(_) => true,
        }
    }

    /// The one key that holds all of `client`'s state: `<prefix>:<client id in base64url>`
    /// (a string; see the crate docs for its value), or with
    /// [`shared_keys`](RedisStoreBuilder::shared_keys) the key it shares with others,
    /// `<prefix>:shared:<number of keys>:<n>`.
    pub fn client_key(&self, client: &ClientId) -> String {
        match self.inner.shared_keys {
            Some(keys) => shared_key(&self.inner.prefix, keys, client),
            None => client_key(&self.inner.prefix, client),
        }
    }

    /// A call of `script` on `client`'s key (and, with shared keys, naming the client first).
    fn invoke<'a>(&self, script: &'a Script, client: &ClientId) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation.key(self.client_key(client));
        if self.inner.shared_keys.is_some() {
            invocation.arg(&client.as_bytes()[..]);
        }
        invocation
    }

    pub(crate) async fn open(builder: RedisStoreBuilder) -> Result<Self> {
        let scripts = Scripts::new(builder.shared_keys.is_some());
        let timeout = builder.call_timeout;
        let connecting = async {
            match &builder.target {
                Target::Single(url) => {
                    let client = redis::Client::open(url.as_str())?;
                    let config = manager_config(&builder);
                    let mut manager = ConnectionManager::new_with_config(client, config).await?;
                    // Load the scripts now, so that the first calls are one round trip each.
                    let mut pipe = redis::pipe();
                    for script in scripts.all() {
                        pipe.load_script(script).ignore();
                    }
                    pipe.exec_async(&mut manager).await?;
                    Ok(Connection::Single(manager))
                }
                #[cfg(feature = "cluster")]
                Target::Cluster(urls) => {
                    let client =
                        redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
                            .connection_timeout(builder.connect_timeout)
                            .response_timeout(builder.response_timeout)
                            // The client's own retries (redirections, reconnections) are
                            // bounded by this, as the whole call is by our own timeout.
                            .overall_response_timeout(Some(builder.call_timeout))
                            .build()?;
                    let mut connection = client.get_async_connection().await?;
                    for script in scripts.all() {
                        script.load_async(&mut connection).await?;
                    }
                    Ok::<_, RedisError>(Connection::Cluster(connection))
                }
            }
        };
        let connection = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => {
                let context = format!("connecting to {}", describe(&builder.target));
                return Err(map_error(context, err));
            }
            Err(elapsed) => {
                return Err(Error::with_source(
                    ErrorKind::Unavailable,
                    format!(
                        "connecting to {}: no answer within {timeout:?}",
                        describe(&builder.target)
                    ),
                    elapsed,
                ));
            }
        };
        Ok(Self::assemble(builder, connection, scripts))
    }

    #[allow(clippy::infallible_destructuring_match)] // refutable with feature `cluster`
    pub(crate) fn open_lazy(builder: RedisStoreBuilder) -> Result<Self> {
        let url = match &builder.target {
            Target::Single(url) => url,
            #[cfg(feature = "cluster")]
            Target::Cluster(_) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "a Redis Cluster store connects eagerly: use `connect().await`",
                ));
            }
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                "RedisStoreBuilder::connect_lazy must be called inside a Tokio runtime",
            ));
        }
        let context = || format!("configuring {}", describe(&builder.target));
        let client = redis::Client::open(url.as_str()).map_err(|e| map_error(context(), e))?;
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config(&builder))
            .map_err(|e| map_error(context(), e))?;
        let scripts = Scripts::new(builder.shared_keys.is_some());
        Ok(Self::assemble(
            builder,
            Connection::Single(manager),
            scripts,
        ))
    }

    fn assemble(builder: RedisStoreBuilder, connection: Connection, scripts: Scripts) -> Self {
        tracing::debug!(
            target = %describe(&builder.target),
            prefix = %builder.prefix,
            "flash-redis store ready"
        );
        RedisStore {
            inner: Arc::new(Inner {
                connection,
                target: builder.target,
                prefix: builder.prefix,
                call_timeout: builder.call_timeout,
                shared_keys: builder.shared_keys,
                scripts,
                consumed: Mutex::new(Remembered::default()),
            }),
        }
    }

    /// Runs one script: one `EVALSHA` (plus `SCRIPT LOAD` after the server lost its script
    /// cache), retried once after a lost connection (every script is idempotent under a retry),
    /// all bounded by the call timeout.
    async fn run<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T> {
        let attempts = async {
            match self.eval::<T>(invocation).await {
                Err(err) if worth_a_retry(&err) => {
                    tracing::debug!(error = %err, what, "flash-redis: connection lost, retrying once");
                    self.eval::<T>(invocation).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.inner.call_timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let context = format!("{what} on {}", describe(&self.inner.target));
                let err = map_error(context, err);
                tracing::debug!(error = %err, "flash-redis call failed");
                Err(err)
            }
            Err(elapsed) => {
                let err = Error::with_source(
                    ErrorKind::Unavailable,
                    format!(
                        "{what} on {}: no answer within {:?}",
                        describe(&self.inner.target),
                        self.inner.call_timeout
                    ),
                    elapsed,
                );
                tracing::debug!(error = %err, "flash-redis call timed out");
                Err(err)
            }
        }
    }

    async fn eval<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match &self.inner.connection {
            Connection::Single(connection) => {
                invocation.invoke_async(&mut connection.clone()).await
            }
            #[cfg(feature = "cluster")]
            Connection::Cluster(connection) => {
                invocation.invoke_async(&mut connection.clone()).await
            }
        }
    }

    fn remember_consumed(&self, client: &ClientId, lease: &LeaseId, consumed: Consumed) {
        let mut map = self
            .inner
            .consumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if consumed.value.len() > MAX_REMEMBERED_BYTES / 64 {
            // A value this large (a shared key of many clients at their limits) is read again
            // by the settle rather than held here.
            return;
        }
        if map.leases.len() >= MAX_REMEMBERED_LEASES
            || map.bytes + consumed.value.len() > MAX_REMEMBERED_BYTES
        {
            map.leases.clear();
            map.bytes = 0;
        }
        map.bytes += consumed.value.len();
        if let Some(old) = map.leases.insert((*client, *lease), consumed) {
            map.bytes -= old.value.len();
        }
    }

    fn take_consumed(&self, client: &ClientId, lease: &LeaseId) -> Option<Consumed> {
        let mut map = self
            .inner
            .consumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let consumed = map.leases.remove(&(*client, *lease))?;
        map.bytes -= consumed.value.len();
        Some(consumed)
    }

    fn dedupe_window_ms(&self) -> u64 {
        u64::try_from(millis(MIN_DEDUPE_WINDOW.max(self.inner.call_timeout * 2)))
            .unwrap_or(u64::MAX)
    }

    /// Applies an append under the operation id `op` (a retry with the same id is applied once).
    /// Returns whether this call applied it, and how many messages it kept (a retry returns
    /// what the first attempt kept).
    pub(crate) async fn append_as(
        &self,
        op: &LeaseId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<(bool, usize)> {
        self.append_sent(op, now_ms(), client, messages, ttl, limits)
            .await
    }

    /// [`RedisStore::append_as`] first sent at `now` (ms): the store's own retry sends the
    /// same call again, time included.
    async fn append_sent(
        &self,
        op: &LeaseId,
        now: u64,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<(bool, usize)> {
        // What cannot fit even an empty queue is never sent: a hostile request's thousands of
        // messages cost no bandwidth.
        let messages = &messages[..limits.fitting(0, 0, messages)];
        if messages.is_empty() {
            return Ok((false, 0));
        }
        let encoded = encode(messages)?;
        let (window, ttl) = (self.dedupe_window_ms(), ttl_ms(ttl));
        // The value of a client with nothing stored: every message sent fits an empty client.
        let id = op_id(op);
        let fresh = value::fresh(now.saturating_add(ttl), &id, now, &encoded);
        let mut invocation = self.invoke(&self.inner.scripts.append, client);
        invocation
            .arg(now)
            .arg(&id[..])
            .arg(window)
            .arg(ttl)
            .arg(fresh)
            .arg(ttl.max(window));
        limit_args(&mut invocation, limits, messages, &encoded);
        let (applied, kept): (i64, i64) = self.run("append", &invocation).await?;
        Ok((applied == 1, kept_count(kept, messages.len())))
    }

    /// Settles under the operation id `op` (a retry with the same id is applied once). Returns
    /// as [`RedisStore::append_as`] does.
    #[allow(clippy::too_many_arguments)] // the trait's arguments and the operation id
    pub(crate) async fn settle_as(
        &self,
        op: &LeaseId,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<(bool, usize)> {
        let append = &append[..limits.fitting(0, 0, append)];
        let encoded = encode(append)?;
        let outcome = match outcome {
            Outcome::Consumed => "consumed",
            Outcome::Released => "released",
        };
        let consumed = self.take_consumed(client, lease);
        let now = now_ms();
        let mut invocation = self.invoke(&self.inner.scripts.settle, client);
        invocation
            .arg(now)
            .arg(&op_id(op)[..])
            .arg(self.dedupe_window_ms())
            .arg(short_id(lease))
            .arg(outcome)
            .arg(ttl_ms(ttl));
        match &consumed {
            // Nothing left to keep once consumed (or all of it expired meanwhile): GETDEL.
            Some(c) if c.value.is_empty() || c.deadline <= now => {
                invocation.arg(&c.sha1).arg("").arg("")
            }
            Some(c) => invocation.arg(&c.sha1).arg(&c.value).arg(c.deadline - now),
            None => invocation.arg("").arg("").arg(""),
        };
        limit_args(&mut invocation, limits, append, &encoded);
        let (applied, kept): (i64, i64) = self.run("settle", &invocation).await?;
        Ok((applied == 1, kept_count(kept, append.len())))
    }
}

#[async_trait]
impl KeyedStore for RedisStore {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let (_, kept) = self
            .append_as(&LeaseId::random(), client, messages, ttl, limits)
            .await?;
        Ok(kept)
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        let now = now_ms();
        let mut invocation = self.invoke(&self.inner.scripts.lease, client);
        invocation
            .arg(now)
            .arg(short_id(lease))
            .arg(ttl_ms(lease_timeout));
        let raw: Option<Vec<u8>> = self.run("lease", &invocation).await?;
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        // The value the lease wrote: its messages are those it holds; what is left once they
        // are consumed is computed here, not in Lua. With shared keys the answer is the whole
        // key, and so is what the settle writes.
        let members = self
            .inner
            .shared_keys
            .map(|_| value::members(&raw).unwrap_or_default());
        let own = match &members {
            Some(members) => members
                .iter()
                .find(|(who, _, _)| *who == &client.as_bytes()[..])
                .map(|&(_, _, own)| own),
            None => Some(&raw[..]),
        };
        let parsed = own
            .and_then(value::Value::parse)
            .and_then(|v| v.lease_index(short_id(lease)).map(|mine| (v, mine)));
        let Some((written, mine)) = parsed else {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "lease on {}: the script answered a value flash cannot read",
                    describe(&self.inner.target)
                ),
            ));
        };
        let window = self.dedupe_window_ms();
        let left = written.consumed(mine, now, window);
        let deadline = left.deadline(window);
        let consumed = if left.msgs.is_empty() && left.ops.is_empty() {
            Vec::new()
        } else {
            left.to_bytes()
        };
        let (value, deadline) = match &members {
            Some(members) => {
                let own = (!consumed.is_empty()).then_some((&consumed[..], deadline));
                value::replace_member(members, client.as_bytes(), own, now)
            }
            None => (consumed, deadline),
        };
        self.remember_consumed(
            client,
            lease,
            Consumed {
                sha1: sha1_smol::Sha1::from(&raw).digest().to_string(),
                value,
                deadline,
            },
        );
        let held = written
            .msgs
            .iter()
            .filter(|m| m.holder == mine)
            .map(|m| m.body);
        Ok(decode(client, held))
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
        let (_, kept) = self
            .settle_as(
                &LeaseId::random(),
                client,
                lease,
                outcome,
                append,
                ttl,
                limits,
            )
            .await?;
        Ok(kept)
    }

    /// The scripts keep the client's operation ids for the dedupe window: at most 255 entries,
    /// the oldest folded into one past that, and a write that may be one of those is refused
    /// with an error, never applied twice (common.lua).
    fn remembers_operations(&self) -> Option<Duration> {
        Some(Duration::from_millis(self.dedupe_window_ms()))
    }

    async fn append_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let op = LeaseId::from_bytes(*op.as_bytes());
        let (_, kept) = self.append_as(&op, client, messages, ttl, limits).await?;
        Ok(kept)
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
        let op = LeaseId::from_bytes(*op.as_bytes());
        let (_, kept) = self
            .settle_as(&op, client, lease, outcome, append, ttl, limits)
            .await?;
        Ok(kept)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.inner.target)
            .field("prefix", &self.inner.prefix)
            .field("call_timeout", &self.inner.call_timeout)
            .field("shared_keys", &self.inner.shared_keys)
            .finish()
    }
}

/// The shared key of `client` among `keys`: client ids are random (and reach the store only
/// signed, so a client cannot pick its key), so their first bytes spread clients evenly. The
/// name holds the number of keys: two numbers never name one key, so a store reading the
/// other's keys (the facade's previous storage, after a change of number) never sees its own
/// writes there.
pub(crate) fn shared_key(prefix: &str, keys: u32, client: &ClientId) -> String {
    let mut first = [0u8; 8];
    first.copy_from_slice(&client.as_bytes()[..8]);
    format!(
        "{prefix}:shared:{keys}:{}",
        u64::from_le_bytes(first) % u64::from(keys)
    )
}

pub(crate) fn client_key(prefix: &str, client: &ClientId) -> String {
    // base64url, not hex: 22 characters instead of 32 keep `flash:<id>` within a 32-byte
    // allocation, 16 bytes less per client.
    format!("{prefix}:{}", URL_SAFE_NO_PAD.encode(client.as_bytes()))
}

/// The application's clock in ms: the scripts' one time (see the crate docs, "TTL and time").
fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// A TTL or lease in ms, as the scripts take it.
fn ttl_ms(duration: Duration) -> u64 {
    u64::try_from(millis(duration)).unwrap_or(u64::MAX)
}

/// The 8 bytes of an operation or lease id the scripts keep: one client never has enough live
/// ids at once for 64 random bits to collide.
fn short_id(id: &LeaseId) -> &[u8] {
    &id.as_bytes()[..8]
}

/// The id under which the scripts record an operation: its first 8 bytes, never all zero
/// (common.lua's `FORGOTTEN` marks the ids the value no longer holds).
fn op_id(op: &LeaseId) -> [u8; 8] {
    let mut id = [0u8; 8];
    id.copy_from_slice(short_id(op));
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn manager_config(builder: &RedisStoreBuilder) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(builder.connect_timeout))
        .set_response_timeout(Some(builder.response_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// Milliseconds, rounded up (a lease or TTL is never shorter than asked), at most [`MAX_SPAN`].
fn millis(duration: Duration) -> u128 {
    let nanos = duration.as_nanos();
    nanos.div_ceil(1_000_000).min(MAX_MILLIS)
}

/// Each message packed as the client's value holds it (visible, its size as flash counts it
/// ([`Message::size`]), its stored form): the scripts check the limits against the sizes and
/// append the records as they are.
fn encode(messages: &[Message]) -> Result<Vec<Vec<u8>>> {
    messages
        .iter()
        .map(|m| {
            let json = stored_form::to_vec(m)?;
            let mut out = Vec::with_capacity(json.len() + 9);
            value::record(&mut out, 0, size_of(m), &json);
            Ok(out)
        })
        .collect()
}

/// A message's size as the limits count it, as the value holds it (4 bytes; no message that
/// fits any limit a store can hold is larger).
fn size_of(message: &Message) -> u32 {
    u32::try_from(message.size()).unwrap_or(u32::MAX)
}

/// The limits, then each message as a pair (size, record): the tail of append's and settle's
/// arguments.
fn limit_args(
    invocation: &mut ScriptInvocation<'_>,
    limits: &Limits,
    messages: &[Message],
    encoded: &[Vec<u8>],
) {
    invocation
        .arg(limits.max_text_len())
        .arg(limits.max_messages())
        .arg(limits.max_bytes());
    for (message, record) in messages.iter().zip(encoded) {
        invocation.arg(message.size()).arg(record.as_slice());
    }
}

/// How many were kept, from a script's answer (never more than offered, never negative).
fn kept_count(kept: i64, offered: usize) -> usize {
    usize::try_from(kept).map_or(offered, |kept| kept.min(offered))
}

/// Decodes leased messages. An entry that is not a message (written by something else) is
/// skipped with a warning rather than failing every read of the client until its TTL: it stays
/// under the lease and is deleted with the others when the lease is consumed.
fn decode<'a>(client: &ClientId, raw: impl IntoIterator<Item = &'a [u8]>) -> Vec<Message> {
    raw.into_iter()
        .filter_map(|bytes| match serde_json::from_slice::<FromStored>(bytes) {
            Ok(FromStored(message)) => Some(message),
            Err(err) => {
                tracing::warn!(%client, error = %err, "flash-redis: skipped a stored entry that is not a message");
                None
            }
        })
        .collect()
}

/// A lost or refused connection: the connection manager reconnects, so one retry can succeed;
/// on a cluster, also a redirection the cluster client gave up following (its slot map is being
/// rebuilt after reconnecting). A timeout is not retried (the server may still be working on the
/// first attempt).
fn worth_a_retry(err: &RedisError) -> bool {
    !err.is_timeout()
        && (err.is_connection_dropped() || err.is_unrecoverable_error() || err.is_cluster_error())
}

fn map_error(context: String, err: RedisError) -> Error {
    use redis::ErrorKind as K;
    // Refused credentials arrive as an error kind (RESP2's AUTH) or as a server code (RESP3's
    // HELLO, ACL checks).
    let refused = matches!(err.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
    let kind = match err.kind() {
        _ if refused => ErrorKind::Config,
        K::Io | K::ClusterConnectionNotFound => ErrorKind::Unavailable,
        K::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown,
        ) => ErrorKind::Unavailable,
        K::InvalidClientConfig | K::AuthenticationFailed | K::Server(ServerErrorKind::NoPerm) => {
            ErrorKind::Config
        }
        _ => ErrorKind::Backend,
    };
    Error::with_source(kind, context, err)
}

fn describe(target: &Target) -> String {
    match target {
        Target::Single(url) => format!("redis at {}", Redacted(url)),
        #[cfg(feature = "cluster")]
        Target::Cluster(urls) => format!(
            "redis cluster at {}",
            urls.iter()
                .map(|u| Redacted(u).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_up_and_clamp() {
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_nanos(1)), 1);
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::from_micros(1500)), 2);
        assert_eq!(millis(Duration::MAX), MAX_MILLIS);
    }

    #[tokio::test]
    async fn what_leases_remember_for_their_settle_is_bounded() {
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .connect_lazy()
            .expect("lazy");
        let consumed = |len: usize| Consumed {
            sha1: String::new(),
            value: vec![0; len],
            deadline: 1,
        };
        let (client, lease) = (ClientId::random(), LeaseId::random());
        store.remember_consumed(&client, &lease, consumed(MAX_REMEMBERED_BYTES / 64 + 1));
        assert!(
            store.take_consumed(&client, &lease).is_none(),
            "too large to hold"
        );
        let leases: Vec<LeaseId> = (0..100).map(|_| LeaseId::random()).collect();
        for lease in &leases {
            store.remember_consumed(&client, lease, consumed(MAX_REMEMBERED_BYTES / 64));
            let held = store.inner.consumed.lock().expect("lock").bytes;
            assert!(held <= MAX_REMEMBERED_BYTES, "{held}");
        }
        // Past the bound the memory started over: the latest are still there.
        assert!(store.take_consumed(&client, &leases[99]).is_some());
        assert!(store.take_consumed(&client, &leases[0]).is_none());
        assert!(
            store.take_consumed(&client, &leases[99]).is_none(),
            "taken once"
        );
        let left = store.inner.consumed.lock().expect("lock");
        assert_eq!(left.bytes, left.leases.len() * (MAX_REMEMBERED_BYTES / 64));
    }

    #[test]
    fn shared_keys_spread_clients_by_their_id() {
        let a = ClientId::from_bytes([1; 16]);
        let mut b = [1; 16];
        b[0] = 2;
        let b = ClientId::from_bytes(b);
        assert_eq!(shared_key("app", 1, &a), "app:shared:1:0");
        assert_eq!(shared_key("app", 2, &a), "app:shared:2:1");
        assert_eq!(shared_key("app", 20, &a), "app:shared:20:13");
        assert_ne!(shared_key("app", 1000, &a), shared_key("app", 1000, &b));
        assert_eq!(shared_key("app", 1000, &a), shared_key("app", 1000, &a));
        let spread: std::collections::HashSet<String> = (0..1000)
            .map(|_| shared_key("app", 16, &ClientId::random()))
            .collect();
        assert_eq!(spread.len(), 16, "every key used");
    }

    #[test]
    fn one_short_key_per_client() {
        let client = ClientId::from_bytes([0xab; 16]);
        assert_eq!(client_key("app", &client), "app:q6urq6urq6urq6urq6urqw");
        // `flash:` and the id fit a 32-byte allocation (3 bytes of header, 1 of terminator).
        assert_eq!(client_key("flash", &client).len(), 28);
    }

    #[test]
    fn errors_map_to_kinds() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(map_error("x".into(), io).kind(), ErrorKind::Unavailable);
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(worth_a_retry(&dropped));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!worth_a_retry(&timeout));
        assert_eq!(
            map_error("x".into(), timeout).kind(),
            ErrorKind::Unavailable
        );
        let server = RedisError::from((
            redis::ErrorKind::Server(ServerErrorKind::ResponseError),
            "boom",
        ));
        let mapped = map_error("x".into(), server);
        assert_eq!(mapped.kind(), ErrorKind::Backend);
        assert!(std::error::Error::source(&mapped).is_some());
        let config = RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad"));
        assert_eq!(map_error("x".into(), config).kind(), ErrorKind::Config);
    }

    #[test]
    fn garbage_entries_are_skipped() {
        let client = ClientId::from_bytes([1; 16]);
        let good = stored_form::to_vec(&Message::new(flash_core::Level::INFO, "hi")).expect("json");
        let out = decode(&client, [&b"not json"[..], &good, b"[1]"]);
        assert_eq!(out, vec![Message::new(flash_core::Level::INFO, "hi")]);
    }
}

/// Against the server at `FLASH_REDIS_URL`: what a retry after a lost connection relies on.
#[cfg(test)]
mod retried_calls {
    use super::*;
    use flash_core::Level;

    const LONG: Duration = Duration::from_secs(600);

    async fn store() -> Option<RedisStore> {
        let url = flash_testkit::urls::redis();
        let prefix = format!("flash-unit-{}", &LeaseId::random().to_hex()[..16]);
        match RedisStore::builder(&url).prefix(prefix).connect().await {
            Ok(store) => Some(store),
            Err(err) => flash_testkit::unavailable(&format!("redis at {url}"), err),
        }
    }

    fn msg(text: &str) -> Message {
        Message::new(Level::INFO, text)
    }

    #[tokio::test]
    async fn a_write_retried_under_its_operation_id_is_applied_once() {
        let Some(store) = store().await else {
            return;
        };
        let limits = Limits::default();
        let client = ClientId::random();
        let op = LeaseId::random();
        let append = |op, messages: Vec<Message>| {
            let store = store.clone();
            async move {
                store
                    .append_as(&op, &client, &messages, LONG, &limits)
                    .await
                    .expect("append")
            }
        };
        assert_eq!(append(op, vec![msg("a")]).await, (true, 1));
        assert_eq!(append(op, vec![msg("a")]).await, (false, 1), "a retry");
        let lease = LeaseId::random();
        let got = store.lease(&client, &lease, LONG).await.expect("lease");
        assert_eq!(got, [msg("a")]);

        let op = LeaseId::random();
        let settle = |op| {
            let store = store.clone();
            async move {
                store
                    .settle_as(
                        &op,
                        &client,
                        &lease,
                        Outcome::Consumed,
                        &[msg("b")],
                        LONG,
                        &limits,
                    )
                    .await
                    .expect("settle")
            }
        };
        assert_eq!(settle(op).await, (true, 1));
        assert_eq!(settle(op).await, (false, 1));
        let got = store
            .lease(&client, &LeaseId::random(), LONG)
            .await
            .expect("lease");
        assert_eq!(got, [msg("b")], "the settle's append is applied once");
        // Another operation id is another write.
        assert_eq!(append(LeaseId::random(), vec![msg("c")]).await, (true, 1));
    }

    /// More writes for one client than its value keeps ids for (254): the oldest are forgotten,
    /// and a write sent again as the store's own retry sends it (its first time included)
    /// after its id was forgotten is refused with an error, never applied twice; the ids still
    /// kept answer as before, and a new write is applied. Checked on both append paths: a key
    /// with messages, and a key that holds only operations.
    #[tokio::test]
    async fn a_write_whose_id_was_forgotten_is_refused_not_applied_twice() {
        let Some(store) = store().await else {
            return;
        };
        let limits = Limits::default().with_max_messages(1000);
        for only_ops in [false, true] {
            let client = ClientId::random();
            let start = now_ms();
            let append = |op, at: u64, text: String| {
                let store = store.clone();
                async move {
                    store
                        .append_sent(&op, at, &client, &[msg(&text)], LONG, &limits)
                        .await
                }
            };
            let ops: Vec<LeaseId> = (0..300).map(|_| LeaseId::random()).collect();
            for (i, op) in ops.iter().enumerate() {
                let at = start + i as u64;
                let first = append(*op, at, format!("m{i}"))
                    .await
                    .unwrap_or_else(|err| {
                        panic!("write {i}: {err}: {:?}", std::error::Error::source(&err))
                    });
                assert_eq!(first, (true, 1), "write {i}");
                if only_ops {
                    // Read and consumed at once: the key keeps only the operations.
                    let lease = LeaseId::random();
                    store.lease(&client, &lease, LONG).await.expect("lease");
                    store
                        .settle(&client, &lease, Outcome::Consumed, &[], LONG, &limits)
                        .await
                        .expect("settle");
                }
            }
            // 300 writes, 254 ids kept: the first 46 were folded into one entry.
            let err = append(ops[0], start, "m0".into())
                .await
                .expect_err("a forgotten write sent again");
            let source = std::error::Error::source(&err).map(ToString::to_string);
            assert!(
                source
                    .as_deref()
                    .is_some_and(|s| s.contains("may already be applied")),
                "{err}: {source:?}"
            );
            append(ops[45], start + 45, "m45".into())
                .await
                .expect_err("the last one forgotten");
            assert_eq!(
                append(ops[46], start + 46, "m46".into())
                    .await
                    .expect("kept"),
                (false, 1),
                "the oldest id kept"
            );
            assert_eq!(
                append(ops[299], start + 299, "m299".into())
                    .await
                    .expect("kept"),
                (false, 1)
            );
            let fresh = LeaseId::random();
            assert_eq!(
                append(fresh, now_ms() + 1000, "new".into())
                    .await
                    .expect("new"),
                (true, 1),
                "a write sent after the forgotten ones is applied"
            );
            let got = store
                .lease(&client, &LeaseId::random(), LONG)
                .await
                .expect("lease");
            let mut expected: Vec<Message> = if only_ops {
                Vec::new()
            } else {
                (0..300).map(|i| msg(&format!("m{i}"))).collect()
            };
            expected.push(msg("new"));
            assert_eq!(got, expected, "every write stored once");
        }
    }

    /// The client's messages were read and consumed between a write and its retry: the key
    /// then holds only the recent operations, and the append's path for that key (string
    /// slices, no helper) still knows the write.
    #[tokio::test]
    async fn a_retry_after_its_messages_were_read_is_applied_once() {
        let Some(store) = store().await else {
            return;
        };
        let limits = Limits::default();
        let client = ClientId::random();
        let read = || {
            let store = store.clone();
            async move {
                let lease = LeaseId::random();
                let got = store.lease(&client, &lease, LONG).await.expect("lease");
                store
                    .settle(&client, &lease, Outcome::Consumed, &[], LONG, &limits)
                    .await
                    .expect("settle");
                got
            }
        };
        let (first, second) = (LeaseId::random(), LeaseId::random());
        let two = [msg("a"), msg("b")];
        assert_eq!(
            store
                .append_as(&first, &client, &two, LONG, &limits)
                .await
                .expect("append"),
            (true, 2)
        );
        assert_eq!(read().await, two);
        assert_eq!(
            store
                .append_as(&first, &client, &two, LONG, &limits)
                .await
                .expect("retry"),
            (false, 2),
            "a retry after the read answers what the first attempt kept"
        );
        assert_eq!(
            store
                .append_as(&second, &client, &[msg("c")], LONG, &limits)
                .await
                .expect("append"),
            (true, 1),
            "another operation is another write"
        );
        assert_eq!(read().await, [msg("c")]);
        for op in [first, second] {
            assert!(
                !store
                    .append_as(&op, &client, &two, LONG, &limits)
                    .await
                    .expect("retry")
                    .0
            );
        }
        assert!(read().await.is_empty(), "no retry wrote anything");
    }

    #[tokio::test]
    async fn a_retried_write_answers_what_the_first_attempt_kept() {
        let Some(store) = store().await else {
            return;
        };
        let limits = Limits::default().with_max_messages(3);
        let client = ClientId::random();
        let five: Vec<Message> = ["a", "b", "c", "d", "e"].map(msg).to_vec();
        let op = LeaseId::random();
        let first = store
            .append_as(&op, &client, &five[..2], LONG, &limits)
            .await
            .expect("append");
        assert_eq!(first, (true, 2));
        let other = LeaseId::random();
        let first = store
            .append_as(&other, &client, &five[2..], LONG, &limits)
            .await
            .expect("append");
        assert_eq!(first, (true, 1), "one more fits");
        // The client is full now, yet the retries answer as their first attempts did (a retry
        // that answered 0 would have the bridge report kept messages as dropped) ...
        let retried = store
            .append_as(&other, &client, &five[2..], LONG, &limits)
            .await
            .expect("retry");
        assert_eq!(retried, (false, 1));
        // ... even after the client's messages were consumed and room was freed.
        let lease = LeaseId::random();
        assert_eq!(
            store.lease(&client, &lease, LONG).await.expect("lease"),
            five[..3]
        );
        let op2 = LeaseId::random();
        let settled = store
            .settle_as(
                &op2,
                &client,
                &lease,
                Outcome::Consumed,
                &five,
                LONG,
                &limits,
            )
            .await
            .expect("settle");
        assert_eq!(settled, (true, 3), "consuming freed the room first");
        let retried = store
            .settle_as(
                &op2,
                &client,
                &lease,
                Outcome::Consumed,
                &five,
                LONG,
                &limits,
            )
            .await
            .expect("retry");
        assert_eq!(retried, (false, 3));
        let retried = store
            .append_as(&op, &client, &five[..2], LONG, &limits)
            .await
            .expect("retry");
        assert_eq!(retried, (false, 2));
        assert_eq!(
            store
                .lease(&client, &LeaseId::random(), LONG)
                .await
                .expect("lease"),
            five[..3],
            "no retry added anything"
        );
    }

    #[tokio::test]
    async fn a_lease_retried_under_its_id_returns_what_it_holds() {
        let Some(store) = store().await else {
            return;
        };
        let client = ClientId::random();
        store
            .append(&client, &[msg("a"), msg("b")], LONG, &Limits::default())
            .await
            .expect("append");
        let lease = LeaseId::random();
        let first = store.lease(&client, &lease, LONG).await.expect("lease");
        let retried = store.lease(&client, &lease, LONG).await.expect("retry");
        assert_eq!(first, retried);
        assert_eq!(first, [msg("a"), msg("b")]);
        // ... while any other lease sees them held.
        assert!(
            store
                .lease(&client, &LeaseId::random(), LONG)
                .await
                .expect("lease")
                .is_empty()
        );
        // A settle without an append is idempotent by itself.
        for _ in 0..2 {
            store
                .settle(
                    &client,
                    &lease,
                    Outcome::Consumed,
                    &[],
                    LONG,
                    &Limits::default(),
                )
                .await
                .expect("settle");
        }
        assert!(
            store
                .lease(&client, &LeaseId::random(), LONG)
                .await
                .expect("lease")
                .is_empty()
        );
    }
}
