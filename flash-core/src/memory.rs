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

/// A [`KeyedStore`] in process memory, with every delivery guarantee: exactly once under
/// concurrent requests, leases that time out, and a TTL.
///
/// For tests, development and single-process deployments: messages do not survive a restart
/// and are not shared between processes. Clones share the same messages.
///
/// ```
/// use flash_core::{KeyedStorage, Keys, Key, MemoryStore};
/// let storage = KeyedStorage::new(MemoryStore::new(), Keys::new(Key::generate()));
/// # let _ = storage;
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    clients: Arc<Mutex<HashMap<ClientId, Queue>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of clients with messages (expired ones included until swept).
    pub fn client_count(&self) -> usize {
        self.lock().len()
    }

    /// Removes expired clients; returns how many were removed.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut clients = self.lock();
        let before = clients.len();
        clients.retain(|_, q| q.expires > now);
        before - clients.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientId, Queue>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
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
        let expires = now.checked_add(ttl).unwrap_or(now + DEFAULT_FAR);
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

const DEFAULT_FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

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
        let mut clients = self.lock();
        if clients.get(client).is_some_and(|q| q.expires <= now) {
            clients.remove(client);
        }
        Ok(Self::push(&mut clients, client, messages, ttl, limits, now))
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_for: Duration,
    ) -> Result<Vec<Message>> {
        let now = Instant::now();
        let mut clients = self.lock();
        let Some(queue) = clients.get_mut(client) else {
            return Ok(Vec::new());
        };
        if queue.expires <= now {
            clients.remove(client);
            return Ok(Vec::new());
        }
        let until = now.checked_add(lease_for).unwrap_or(now + DEFAULT_FAR);
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
        let mut clients = self.lock();
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
        Ok(Self::push(&mut clients, client, append, ttl, limits, now))
    }
}
