//! An in-process keyed store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::Result;
use crate::keyed::{ClientId, KeyedStore, LeaseId, OperationId, Outcome};
use crate::limits::Limits;
use crate::message::Message;
#[cfg(feature = "tokio")]
use crate::sweep::SweepTask;

struct Pending {
    message: Message,
    lease: Option<(LeaseId, Instant)>,
}

struct Queue {
    pending: Vec<Pending>,
    expires: Instant,
}

impl Queue {
    fn bytes(&self) -> usize {
        self.pending.iter().map(|p| p.message.size()).sum()
    }
}

struct State {
    clients: HashMap<ClientId, Queue>,
    /// The bytes of every pending message of every client ([`Message::size`]).
    bytes: usize,
    max_clients: usize,
    max_bytes: usize,
    sweep_interval: Duration,
    next_sweep: Instant,
    last_sweep: Instant,
    /// The writes applied under an operation id in the last [`OPERATION_WINDOW`], with what
    /// each kept; the oldest first in `op_order`, at most [`MAX_OPERATIONS`].
    ops: HashMap<(ClientId, OperationId), usize>,
    op_order: VecDeque<(Instant, ClientId, OperationId)>,
}

/// How long a [`MemoryStore`] remembers the id of a write it applied: ten minutes.
pub(crate) const OPERATION_WINDOW: Duration = Duration::from_secs(600);

/// The most operation ids a [`MemoryStore`] remembers for all clients together; past it the
/// oldest are forgotten first (each costs about 64 bytes).
const MAX_OPERATIONS: usize = 65_536;

impl State {
    /// Removes expired clients; returns how many were removed.
    fn sweep(&mut self, now: Instant) -> usize {
        let before = self.clients.len();
        let mut freed = 0;
        self.clients.retain(|_, q| {
            let keep = q.expires > now;
            if !keep {
                freed += q.bytes();
            }
            keep
        });
        self.bytes -= freed;
        self.last_sweep = now;
        self.next_sweep = now
            .checked_add(self.sweep_interval)
            .unwrap_or(now + crate::storage::MAX_SPAN);
        before - self.clients.len()
    }

    /// What the write `op` of `client` kept, if it was applied within the window.
    fn applied(&mut self, client: &ClientId, op: &OperationId, now: Instant) -> Option<usize> {
        while let Some((at, c, o)) = self.op_order.front() {
            if now.saturating_duration_since(*at) < OPERATION_WINDOW
                && self.op_order.len() <= MAX_OPERATIONS
            {
                break;
            }
            self.ops.remove(&(*c, *o));
            self.op_order.pop_front();
        }
        self.ops.get(&(*client, *op)).copied()
    }

    /// Records that the write `op` of `client` was applied now and kept `kept`.
    fn remember(&mut self, client: &ClientId, op: &OperationId, kept: usize, now: Instant) {
        self.ops.insert((*client, *op), kept);
        self.op_order.push_back((now, *client, *op));
    }

    /// Removes `client` and what it had pending.
    fn remove(&mut self, client: &ClientId) {
        if let Some(queue) = self.clients.remove(client) {
            self.bytes -= queue.bytes();
        }
    }

    /// Removes `client` when it has expired.
    fn remove_expired(&mut self, client: &ClientId, now: Instant) {
        if self.clients.get(client).is_some_and(|q| q.expires <= now) {
            self.remove(client);
        }
    }

    /// Sweeps when the interval has passed since the last sweep: a client that never comes
    /// back is removed by the traffic of the others, at the cost of one pass over the clients
    /// per interval.
    fn sweep_if_due(&mut self, now: Instant) {
        if now >= self.next_sweep {
            let removed = self.sweep(now);
            if removed > 0 {
                tracing::debug!(removed, "memory store: expired clients swept");
            }
        }
    }
}

/// A [`KeyedStore`] in process memory, with every delivery guarantee: exactly once under
/// concurrent requests, leases that time out, and a TTL.
///
/// For tests, development and single-process deployments: messages do not survive a restart
/// and are not shared between processes. Clones share the same messages.
///
/// Expired clients are removed without help: the first call after each
/// [`with_sweep_interval`](Self::with_sweep_interval) (default [`DEFAULT_SWEEP_INTERVAL`])
/// sweeps the whole store, so a client that never returns is held for its TTL plus one
/// interval at most, as long as other clients make calls. A store that may go quiet for long can also be
/// swept on a schedule with `spawn_sweeper` (feature `tokio`), or by calling
/// [`sweep`](Self::sweep) from the application's own timer.
///
/// ```
/// use flash_core::{Keys, Key, storage::{ServerStorage, MemoryStore}};
/// let storage = ServerStorage::new(MemoryStore::new(), Keys::new(Key::generate()));
/// # let _ = storage;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

/// How often, at most, a [`MemoryStore`] call sweeps expired clients by default: one minute.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// A full store sweeps expired clients at most this often: a flood at the bound must not buy
/// a pass over every client with each request.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Default for MemoryStore {
    fn default() -> Self {
        let now = Instant::now();
        MemoryStore {
            state: Arc::new(Mutex::new(State {
                clients: HashMap::new(),
                bytes: 0,
                max_clients: Self::DEFAULT_MAX_CLIENTS,
                max_bytes: Self::DEFAULT_MAX_BYTES,
                last_sweep: now,
                sweep_interval: DEFAULT_SWEEP_INTERVAL,
                next_sweep: now + DEFAULT_SWEEP_INTERVAL,
                ops: HashMap::new(),
                op_order: VecDeque::new(),
            })),
        }
    }
}

impl MemoryStore {
    /// The most clients a store holds messages for by default: 10,000.
    pub const DEFAULT_MAX_CLIENTS: usize = 10_000;

    /// The most bytes of messages ([`Message::size`]) a store holds for all its clients
    /// together by default: 16 MiB (with the default [`Limits`], 256 clients at their full
    /// 64 KiB, or 10,000 clients averaging 1.6 KiB).
    pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how often, at most, a call sweeps expired clients (default
    /// [`DEFAULT_SWEEP_INTERVAL`]). Each sweep is one pass over the clients under the store's
    /// lock: a shorter interval frees memory sooner and costs more passes. Shared by clones.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flash_core::storage::MemoryStore;
    /// let store = MemoryStore::new().with_sweep_interval(Duration::from_secs(10));
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_sweep_interval(self, interval: Duration) -> Self {
        {
            let mut state = self.lock();
            let now = Instant::now();
            state.sweep_interval = interval;
            state.next_sweep = now
                .checked_add(interval)
                .unwrap_or(now + crate::storage::MAX_SPAN);
        }
        self
    }

    /// Sets the most clients the store holds messages for (default [`MemoryStore::DEFAULT_MAX_CLIENTS`]).
    /// When it is full, expired clients are swept at once; if none has expired, messages for
    /// a new client are refused (the append keeps none), and the clients already there are
    /// served as before. Shared by clones.
    #[must_use]
    pub fn with_max_clients(self, clients: usize) -> Self {
        self.lock().max_clients = clients;
        self
    }

    /// Sets the most bytes of messages ([`Message::size`]) held for all clients together
    /// (default [`MemoryStore::DEFAULT_MAX_BYTES`]). With the per-client [`Limits`] this bounds the
    /// store's memory whatever clients send: an append that would pass it keeps only the
    /// messages that fit (the newest are refused), after sweeping expired clients. Shared by
    /// clones.
    ///
    /// ```
    /// use flash_core::storage::MemoryStore;
    /// let store = MemoryStore::new().with_max_clients(1000).with_max_bytes(8 << 20);
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_max_bytes(self, bytes: usize) -> Self {
        self.lock().max_bytes = bytes;
        self
    }

    /// The number of clients with messages (expired ones included until swept).
    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    /// The bytes of messages held for all clients ([`Message::size`]; expired ones included
    /// until swept).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Removes expired clients now; returns how many were removed.
    pub fn sweep(&self) -> usize {
        self.lock().sweep(Instant::now())
    }

    /// Sweeps expired clients now and then every `every` on the current Tokio runtime, for a
    /// store that may see no calls for long. The sweeping stops when the returned
    /// [`SweepTask`] is dropped (or [`SweepTask::stop`]ped) and when every clone of the store
    /// is gone.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) outside a Tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> flash_core::Result<()> {
    /// use std::time::Duration;
    /// use flash_core::storage::MemoryStore;
    /// let store = MemoryStore::new();
    /// let sweeper = store.spawn_sweeper(Duration::from_secs(60))?;
    /// // ... serve requests; dropping `sweeper` stops the sweeping.
    /// drop(sweeper);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    pub fn spawn_sweeper(&self, every: Duration) -> Result<SweepTask> {
        // The task holds the store weakly: it must not keep a dropped store alive.
        let state = Arc::downgrade(&self.state);
        SweepTask::spawn("MemoryStore", every, move || {
            let state = state.upgrade();
            async move {
                let Some(state) = state else {
                    return false;
                };
                let removed = state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .sweep(Instant::now());
                if removed > 0 {
                    tracing::debug!(removed, "memory store: expired clients swept");
                }
                true
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends what fits `limits` beside the client's pending messages, and the store's own
    /// bounds (clients, bytes); returns how many.
    fn push(
        state: &mut State,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
        now: Instant,
    ) -> usize {
        let new_client = !state.clients.contains_key(client);
        let total: usize = messages.iter().map(Message::size).sum();
        let full = (new_client && state.clients.len() >= state.max_clients)
            || state.bytes.saturating_add(total) > state.max_bytes;
        if full && now.saturating_duration_since(state.last_sweep) >= FULL_SWEEP_EVERY {
            // Full: what has expired makes room first.
            state.sweep(now);
        }
        if new_client && state.clients.len() >= state.max_clients {
            tracing::warn!(
                clients = state.clients.len(),
                "memory store full (max_clients): messages for a new client refused"
            );
            return 0;
        }
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + crate::storage::MAX_SPAN);
        let room = state.max_bytes.saturating_sub(state.bytes);
        let queue = state.clients.entry(*client).or_insert_with(|| Queue {
            pending: Vec::new(),
            expires,
        });
        let bytes = queue.bytes();
        let mut kept = limits.fitting(queue.pending.len(), bytes, messages);
        // The store's own bound on all clients' bytes: a prefix that fits the room left.
        let mut added = 0;
        for (i, message) in messages[..kept].iter().enumerate() {
            if added + message.size() > room {
                tracing::warn!(
                    refused = kept - i,
                    "memory store full (max_bytes): the newest messages refused"
                );
                kept = i;
                break;
            }
            added += message.size();
        }
        if kept > 0 {
            queue.expires = expires;
        }
        queue
            .pending
            .extend(messages[..kept].iter().map(|m| Pending {
                message: m.clone(),
                lease: None,
            }));
        let empty = queue.pending.is_empty();
        state.bytes += added;
        if empty {
            state.clients.remove(client);
        }
        kept
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("clients", &self.client_count())
            .finish()
    }
}

#[async_trait]
impl KeyedStore for MemoryStore {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        Ok(self.append_as(None, client, messages, ttl, limits))
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        let now = Instant::now();
        let mut state = self.lock();
        state.sweep_if_due(now);
        state.remove_expired(client, now);
        let Some(queue) = state.clients.get_mut(client) else {
            return Ok(Vec::new());
        };
        let until = now
            .checked_add(lease_timeout)
            .unwrap_or(now + crate::storage::MAX_SPAN);
        Ok(queue
            .pending
            .iter_mut()
            .filter(|p| p.lease.is_none_or(|(_, until)| until <= now))
            .map(|p| {
                p.lease = Some((*lease, until));
                p.message.clone()
            })
            .collect())
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
        Ok(self.settle_as(None, client, lease, outcome, append, ttl, limits))
    }

    fn remembers_operations(&self) -> Option<Duration> {
        Some(OPERATION_WINDOW)
    }

    async fn append_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        Ok(self.append_as(Some(op), client, messages, ttl, limits))
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
        Ok(self.settle_as(Some(op), client, lease, outcome, append, ttl, limits))
    }
}

impl MemoryStore {
    /// Runs `write` under the lock, once per operation: a write sent again under an `op` the
    /// client applied within the window is not run, and answers what the first one kept.
    fn once(
        &self,
        op: Option<&OperationId>,
        client: &ClientId,
        write: impl FnOnce(&mut State, Instant) -> usize,
    ) -> usize {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(kept) = op.and_then(|op| state.applied(client, op, now)) {
            return kept;
        }
        let kept = write(&mut state, now);
        if let Some(op) = op {
            state.remember(client, op, kept, now);
        }
        kept
    }

    /// `append`, under the operation `op` when there is one.
    fn append_as(
        &self,
        op: Option<&OperationId>,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> usize {
        self.once(op, client, |state, now| {
            state.sweep_if_due(now);
            state.remove_expired(client, now);
            Self::push(state, client, messages, ttl, limits, now)
        })
    }

    /// `settle`, under the operation `op` when there is one.
    #[allow(clippy::too_many_arguments)] // settle's arguments and the operation id
    fn settle_as(
        &self,
        op: Option<&OperationId>,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> usize {
        self.once(op, client, |state, now| {
            Self::settle_locked(state, client, lease, outcome, append, ttl, limits, now)
        })
    }

    #[allow(clippy::too_many_arguments)] // settle's arguments, the state and the time
    fn settle_locked(
        state: &mut State,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
        now: Instant,
    ) -> usize {
        state.sweep_if_due(now);
        // An expired client's messages are gone even before a sweep: the append below must
        // not bring them back.
        state.remove_expired(client, now);
        let mut freed = 0;
        let mut emptied = false;
        if let Some(queue) = state.clients.get_mut(client) {
            let held = |p: &Pending| p.lease.is_some_and(|(id, _)| id == *lease);
            match outcome {
                Outcome::Consumed => queue.pending.retain(|p| {
                    let consumed = held(p);
                    if consumed {
                        freed += p.message.size();
                    }
                    !consumed
                }),
                Outcome::Released => queue
                    .pending
                    .iter_mut()
                    .filter(|p| held(p))
                    .for_each(|p| p.lease = None),
            }
            emptied = queue.pending.is_empty() && append.is_empty();
        }
        state.bytes -= freed;
        if emptied {
            state.clients.remove(client);
        }
        if append.is_empty() {
            return 0;
        }
        Self::push(state, client, append, ttl, limits, now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::level::Level;

    const LONG: Duration = Duration::from_secs(3600);

    async fn add(store: &MemoryStore, client: &ClientId, text: &str, ttl: Duration) {
        let message = Message::new(Level::INFO, text);
        let kept = store
            .append(client, &[message], ttl, &Limits::default())
            .await
            .unwrap();
        assert_eq!(kept, 1);
    }

    /// Issue 20, repro 6: the store's own bounds hold whatever clients send. A new client
    /// beyond `max_clients` is refused; an append past `max_bytes` keeps the prefix that fits;
    /// consumed and expired messages give their room back.
    #[tokio::test]
    async fn the_store_holds_at_most_its_clients_and_bytes() {
        let store = MemoryStore::new().with_max_clients(3).with_max_bytes(100);
        let ten = || Message::new(Level::INFO, "0123456789");
        let clients: Vec<ClientId> = (0..3).map(|_| ClientId::random()).collect();
        for client in &clients {
            add(&store, client, "0123456789", LONG).await;
        }
        let append = |client: ClientId, n: usize| {
            let store = store.clone();
            async move {
                store
                    .append(&client, &vec![ten(); n], LONG, &Limits::default())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(append(ClientId::random(), 1).await, 0, "a fourth client");
        assert_eq!(store.client_count(), 3);
        assert_eq!(store.bytes(), 30);
        assert_eq!(
            append(clients[0], 10).await,
            7,
            "the prefix that fits 100 bytes"
        );
        assert_eq!(store.bytes(), 100);
        assert_eq!(append(clients[1], 1).await, 0, "full");

        // Consuming gives the room back.
        let lease = LeaseId::random();
        assert_eq!(
            store.lease(&clients[0], &lease, LONG).await.unwrap().len(),
            8
        );
        store
            .settle(
                &clients[0],
                &lease,
                Outcome::Consumed,
                &[],
                LONG,
                &Limits::default(),
            )
            .await
            .unwrap();
        assert_eq!(store.bytes(), 20);
        assert_eq!(store.client_count(), 2);
        assert_eq!(
            append(ClientId::random(), 2).await,
            2,
            "room for a new client"
        );
        assert_eq!(store.bytes(), 40);

        // Expired clients make room when the store is full (swept at most once a second).
        let store = MemoryStore::new().with_max_clients(1);
        let short = Duration::from_millis(10);
        store
            .append(&ClientId::random(), &[ten()], short, &Limits::default())
            .await
            .unwrap();
        tokio::time::sleep(FULL_SWEEP_EVERY + Duration::from_millis(50)).await;
        let kept = store
            .append(&ClientId::random(), &[ten()], LONG, &Limits::default())
            .await
            .unwrap();
        assert_eq!(kept, 1, "the expired client was swept to make room");
        assert_eq!(store.client_count(), 1);
        assert_eq!(store.bytes(), 10);
    }

    /// A client that never returns is removed by other clients' calls once the sweep interval
    /// has passed, without anyone calling `sweep`.
    #[tokio::test]
    async fn calls_sweep_expired_clients_lazily() {
        let store = MemoryStore::new().with_sweep_interval(Duration::from_millis(50));
        add(
            &store,
            &ClientId::random(),
            "gone",
            Duration::from_millis(100),
        )
        .await;
        add(&store, &ClientId::random(), "stays", LONG).await;
        assert_eq!(store.client_count(), 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
        // The lease of a third, unknown client is enough.
        let leased = store
            .lease(&ClientId::random(), &LeaseId::random(), LONG)
            .await
            .unwrap();
        assert!(leased.is_empty());
        assert_eq!(store.client_count(), 1);
    }

    /// Within the interval, calls do not sweep (one pass per interval at most).
    #[tokio::test]
    async fn calls_do_not_sweep_before_the_interval() {
        let store = MemoryStore::new();
        add(
            &store,
            &ClientId::random(),
            "expired",
            Duration::from_millis(10),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        add(&store, &ClientId::random(), "other", LONG).await;
        assert_eq!(store.client_count(), 2, "swept before the default minute");
        assert_eq!(store.sweep(), 1);
        assert_eq!(store.client_count(), 1);
    }

    /// `spawn_sweeper` removes expired clients with no call at all, and stops when its handle
    /// is dropped.
    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn spawn_sweeper_sweeps_until_stopped() {
        let store = MemoryStore::new();
        add(
            &store,
            &ClientId::random(),
            "gone",
            Duration::from_millis(50),
        )
        .await;
        let task = store.spawn_sweeper(Duration::from_millis(20)).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(store.client_count(), 0);
        assert!(!task.is_finished());

        task.stop();
        add(
            &store,
            &ClientId::random(),
            "not swept",
            Duration::from_millis(10),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.client_count(), 1, "a stopped task still swept");
    }

    /// The task holds the store weakly: it ends when every clone of the store is gone.
    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn spawn_sweeper_ends_with_the_store() {
        let store = MemoryStore::new();
        let task = store.spawn_sweeper(Duration::from_millis(10)).unwrap();
        drop(store);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(task.is_finished());
    }

    /// A settle that appends to an expired client does not bring its old messages back.
    #[tokio::test]
    async fn settle_after_expiry_starts_afresh() {
        let store = MemoryStore::new();
        let client = ClientId::random();
        let lease = LeaseId::random();
        add(&store, &client, "old", Duration::from_millis(50)).await;
        assert_eq!(store.lease(&client, &lease, LONG).await.unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let new = [Message::new(Level::INFO, "new")];
        let kept = store
            .settle(
                &client,
                &lease,
                Outcome::Released,
                &new,
                LONG,
                &Limits::default(),
            )
            .await
            .unwrap();
        assert_eq!(kept, 1);
        let leased = store
            .lease(&client, &LeaseId::random(), LONG)
            .await
            .unwrap();
        assert_eq!(leased, new);
    }
}
