//! An in-process keyed store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::Result;
use crate::keyed::{ClientId, KeyedStore, LeaseId, Outcome};
use crate::limits::Limits;
use crate::message::Message;

struct Pending {
    message: Message,
    lease: Option<(LeaseId, Instant)>,
}

struct Queue {
    pending: Vec<Pending>,
    expires: Instant,
}

struct State {
    clients: HashMap<ClientId, Queue>,
    sweep_interval: Duration,
    next_sweep: Instant,
}

impl State {
    /// Removes expired clients; returns how many were removed.
    fn sweep(&mut self, now: Instant) -> usize {
        let before = self.clients.len();
        self.clients.retain(|_, q| q.expires > now);
        self.next_sweep = now
            .checked_add(self.sweep_interval)
            .unwrap_or(now + crate::storage::MAX_SPAN);
        before - self.clients.len()
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
/// swept on a schedule with [`sweep_every`](Self::sweep_every).
///
/// ```
/// use flash_core::{Keys, Key, storage::{KeyedStorage, MemoryStore}};
/// let storage = KeyedStorage::new(MemoryStore::new(), Keys::new(Key::generate()));
/// # let _ = storage;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

/// How often, at most, a [`MemoryStore`] call sweeps expired clients by default: one minute.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl Default for MemoryStore {
    fn default() -> Self {
        let now = Instant::now();
        MemoryStore {
            state: Arc::new(Mutex::new(State {
                clients: HashMap::new(),
                sweep_interval: DEFAULT_SWEEP_INTERVAL,
                next_sweep: now + DEFAULT_SWEEP_INTERVAL,
            })),
        }
    }
}

impl MemoryStore {
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

    /// The number of clients with messages (expired ones included until swept).
    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    /// Removes expired clients now; returns how many were removed.
    pub fn sweep(&self) -> usize {
        self.lock().sweep(Instant::now())
    }

    /// Sweeps expired clients every `interval` on a Tokio task, for a store that may see no
    /// calls for long. The task ends when the returned [`SweepTask`] is dropped (or
    /// [`SweepTask::stop`]ped) and when every clone of the store is gone.
    ///
    /// # Panics
    /// Outside a Tokio runtime, as `tokio::spawn` does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flash_core::storage::MemoryStore;
    /// let store = MemoryStore::new();
    /// let sweeper = store.sweep_every(Duration::from_secs(60));
    /// // ... serve requests; dropping `sweeper` stops the task.
    /// drop(sweeper);
    /// # }
    /// ```
    #[must_use = "dropping the SweepTask stops the sweeping"]
    pub fn sweep_every(&self, interval: Duration) -> SweepTask {
        let state = Arc::downgrade(&self.state);
        let interval = interval.max(Duration::from_millis(1));
        let handle = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // The task holds the store weakly: it must not keep a dropped store alive.
                let Some(state) = state.upgrade() else {
                    return;
                };
                let removed = state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .sweep(Instant::now());
                if removed > 0 {
                    tracing::debug!(removed, "memory store: expired clients swept");
                }
            }
        });
        SweepTask(handle)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends what fits `limits` beside the client's pending messages; returns how many.
    fn push(
        clients: &mut HashMap<ClientId, Queue>,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
        now: Instant,
    ) -> usize {
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + crate::storage::MAX_SPAN);
        let queue = clients.entry(*client).or_insert_with(|| Queue {
            pending: Vec::new(),
            expires,
        });
        let bytes = queue.pending.iter().map(|p| p.message.size()).sum();
        let kept = limits.fitting(queue.pending.len(), bytes, messages);
        if kept > 0 {
            queue.expires = expires;
        }
        queue
            .pending
            .extend(messages[..kept].iter().map(|m| Pending {
                message: m.clone(),
                lease: None,
            }));
        if queue.pending.is_empty() {
            clients.remove(client);
        }
        kept
    }
}

/// The task of [`MemoryStore::sweep_every`]: dropping it stops the sweeping.
#[derive(Debug)]
pub struct SweepTask(tokio::task::JoinHandle<()>);

impl SweepTask {
    /// Stops the sweeping (as dropping does).
    pub fn stop(self) {}

    /// Whether the task has ended (stopped, or the store is gone).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl Drop for SweepTask {
    fn drop(&mut self) {
        self.0.abort();
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
        let now = Instant::now();
        let mut state = self.lock();
        state.sweep_if_due(now);
        let clients = &mut state.clients;
        if clients.get(client).is_some_and(|q| q.expires <= now) {
            clients.remove(client);
        }
        Ok(Self::push(clients, client, messages, ttl, limits, now))
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
        let clients = &mut state.clients;
        let Some(queue) = clients.get_mut(client) else {
            return Ok(Vec::new());
        };
        if queue.expires <= now {
            clients.remove(client);
            return Ok(Vec::new());
        }
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
        let now = Instant::now();
        let mut state = self.lock();
        state.sweep_if_due(now);
        let clients = &mut state.clients;
        // An expired client's messages are gone even before a sweep: the append below must
        // not bring them back.
        if clients.get(client).is_some_and(|q| q.expires <= now) {
            clients.remove(client);
        }
        if let Some(queue) = clients.get_mut(client) {
            let held = |p: &Pending| p.lease.is_some_and(|(id, _)| id == *lease);
            match outcome {
                Outcome::Consumed => queue.pending.retain(|p| !held(p)),
                Outcome::Released => queue
                    .pending
                    .iter_mut()
                    .filter(|p| held(p))
                    .for_each(|p| p.lease = None),
            }
            if queue.pending.is_empty() && append.is_empty() {
                clients.remove(client);
            }
        }
        if append.is_empty() {
            return Ok(0);
        }
        Ok(Self::push(clients, client, append, ttl, limits, now))
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

    /// `sweep_every` removes expired clients with no call at all, and stops when its handle
    /// is dropped.
    #[tokio::test]
    async fn sweep_every_sweeps_until_stopped() {
        let store = MemoryStore::new();
        add(
            &store,
            &ClientId::random(),
            "gone",
            Duration::from_millis(50),
        )
        .await;
        let task = store.sweep_every(Duration::from_millis(20));
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
    #[tokio::test]
    async fn sweep_every_ends_with_the_store() {
        let store = MemoryStore::new();
        let task = store.sweep_every(Duration::from_millis(10));
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
