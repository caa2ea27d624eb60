//! An example flash backend written only against flash-core's public API: one document per
//! client in a map, with a version compared on every write, as DynamoDB, MongoDB or a SQL row
//! would keep it. [`flash_core::storage::Documents`] turns it into an exactly-once keyed store.
//!
//! A document expires in the store itself, as a server's native TTL would do it: past its
//! `expires` a read no longer returns it and the next write drops it (flash's own time check
//! would hide it, but the map would only grow).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use flash_core::{
    Result,
    storage::{ClientId, DocumentStore, Documents, Versioned},
};

/// Documents in process memory, each with its expiry; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MapDocuments(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    documents: HashMap<ClientId, (Versioned, SystemTime)>,
    /// When the last write swept the expired documents.
    swept: Option<SystemTime>,
}

/// How often, at most, a write sweeps the expired documents: each sweep is a pass over all.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

impl State {
    /// The client's document, unless it has expired.
    fn live(&self, client: &ClientId) -> Option<&Versioned> {
        let now = SystemTime::now();
        self.documents
            .get(client)
            .filter(|(_, expires)| *expires > now)
            .map(|(doc, _)| doc)
    }

    /// Drops the expired documents, at most every [`SWEEP_EVERY`].
    fn sweep(&mut self) {
        let now = SystemTime::now();
        if self
            .swept
            .and_then(|last| now.duration_since(last).ok())
            .is_some_and(|since| since < SWEEP_EVERY)
        {
            return;
        }
        self.documents.retain(|_, (_, expires)| *expires > now);
        self.swept = Some(now);
    }
}

impl MapDocuments {
    /// An empty store, ready for the keyed bridge: `ServerStorage::new(MapDocuments::keyed(), keys)`.
    pub fn keyed() -> Documents<Self> {
        Documents::new(Self::default())
    }

    fn map(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[flash_core::async_trait]
impl DocumentStore for MapDocuments {
    async fn get(&self, client: &ClientId) -> Result<Option<Versioned>> {
        Ok(self.map().live(client).cloned())
    }

    async fn put(
        &self,
        client: &ClientId,
        new: Versioned,
        expected: Option<u64>,
        expires: SystemTime,
    ) -> Result<bool> {
        let mut state = self.map();
        if state.live(client).map(|doc| doc.version) != expected {
            return Ok(false);
        }
        state.sweep();
        state.documents.insert(*client, (new, expires));
        Ok(true)
    }

    async fn delete(&self, client: &ClientId, expected: u64) -> Result<bool> {
        let mut state = self.map();
        if state.live(client).map(|doc| doc.version) != Some(expected) {
            return Ok(false);
        }
        state.documents.remove(client);
        Ok(true)
    }
}
