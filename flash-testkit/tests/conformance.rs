//! The conformance suite on `MemoryStore` through the keyed bridge.

use flash_core::storage::MemoryStore;
use flash_testkit::{Harness, Options};

async fn memory(options: Options) -> Option<Harness> {
    Some(Harness::keyed(MemoryStore::new(), &options))
}

flash_testkit::conformance_tests!(memory);
