//! A keyed store wrapper that counts calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use flash_core::Limits;
use flash_core::Message;
use flash_core::Result;
use flash_core::storage::{ClientId, KeyedStore, LeaseId, OperationId, Outcome};

/// Calls made to a [`CountingStore`], by kind.
#[derive(Debug, Clone, Default)]
pub struct CallCounts(Arc<[AtomicUsize; 3]>);

impl CallCounts {
    /// `append` calls.
    pub fn appends(&self) -> usize {
        self.0[0].load(Ordering::SeqCst)
    }
    /// `lease` calls.
    pub fn leases(&self) -> usize {
        self.0[1].load(Ordering::SeqCst)
    }
    /// `settle` calls.
    pub fn settles(&self) -> usize {
        self.0[2].load(Ordering::SeqCst)
    }
    /// Every call.
    pub fn total(&self) -> usize {
        self.appends() + self.leases() + self.settles()
    }
}

/// Wraps a keyed store and counts its calls.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use flash_core::storage::{ClientId, KeyedStore, MemoryStore};
/// use flash_core::{Level, Limits, Message};
/// use flash_testkit::CountingStore;
///
/// let store = CountingStore::new(MemoryStore::new());
/// let counts = store.counts(); // shared: read them after handing the store on
/// let hello = [Message::new(Level::INFO, "Hello.")];
/// let ttl = Duration::from_secs(60);
/// store.append(&ClientId::random(), &hello, ttl, &Limits::default()).await?;
/// assert_eq!((counts.appends(), counts.total()), (1, 1));
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    counts: CallCounts,
}

impl<S> CountingStore<S> {
    /// Counts calls to `inner`.
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            counts: CallCounts::default(),
        }
    }

    /// The counters (shared).
    pub fn counts(&self) -> CallCounts {
        self.counts.clone()
    }

    fn bump(&self, i: usize) {
        self.counts.0[i].fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl<S: KeyedStore> KeyedStore for CountingStore<S> {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        self.bump(0);
        self.inner.append(client, messages, ttl, limits).await
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        self.bump(1);
        self.inner.lease(client, lease, lease_timeout).await
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
        self.bump(2);
        self.inner
            .settle(client, lease, outcome, append, ttl, limits)
            .await
    }

    fn remembers_operations(&self) -> Option<Duration> {
        self.inner.remembers_operations()
    }

    async fn append_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        self.bump(0);
        self.inner
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
        self.bump(2);
        self.inner
            .settle_once(op, client, lease, outcome, append, ttl, limits)
            .await
    }
}
