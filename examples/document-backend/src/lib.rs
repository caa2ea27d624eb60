//! An example flash backend written only against flash-core's public API: one document per
//! client in a map, with a version compared on every write, as DynamoDB, MongoDB or a SQL row
//! would keep it. [`flash_core::storage::Documents`] turns it into an exactly-once keyed store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use flash_core::{
    Result,
    storage::{ClientId, DocumentStore, Documents, Versioned},
};

/// Documents in process memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MapDocuments(Arc<Mutex<HashMap<ClientId, Versioned>>>);

impl MapDocuments {
    /// An empty store, ready for the keyed bridge: `ServerStorage::new(MapDocuments::keyed(), keys)`.
    pub fn keyed() -> Documents<Self> {
        Documents::new(Self::default())
    }

    fn map(&self) -> MutexGuard<'_, HashMap<ClientId, Versioned>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[flash_core::async_trait]
impl DocumentStore for MapDocuments {
    async fn get(&self, client: &ClientId) -> Result<Option<Versioned>> {
        Ok(self.map().get(client).cloned())
    }

    async fn put(
        &self,
        client: &ClientId,
        new: Versioned,
        expected: Option<u64>,
        _expires: SystemTime,
    ) -> Result<bool> {
        let mut map = self.map();
        if map.get(client).map(|doc| doc.version) != expected {
            return Ok(false);
        }
        map.insert(*client, new);
        Ok(true)
    }

    async fn delete(&self, client: &ClientId, expected: u64) -> Result<bool> {
        let mut map = self.map();
        if map.get(client).map(|doc| doc.version) != Some(expected) {
            return Ok(false);
        }
        map.remove(client);
        Ok(true)
    }
}
