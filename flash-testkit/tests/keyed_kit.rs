//! The keyed-store kit on `MemoryStore`, driven directly.

use flash_core::storage::MemoryStore;
use flash_testkit::Options;

/// A store of the test's own, sweeping as often as the kit asks.
async fn memory(options: Options) -> Option<MemoryStore> {
    Some(MemoryStore::new().with_sweep_interval(options.sweep_interval))
}

flash_testkit::keyed_store_tests!(memory, in_process);
