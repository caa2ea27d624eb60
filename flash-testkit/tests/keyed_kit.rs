//! The keyed-store kit on `MemoryStore`, driven directly.

use flash_core::storage::MemoryStore;
use flash_testkit::Options;

async fn memory(_: Options) -> Option<MemoryStore> {
    Some(MemoryStore::new())
}

flash_testkit::keyed_store_tests!(memory);
