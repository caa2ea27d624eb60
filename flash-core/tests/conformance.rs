//! The conformance suite on `MemoryStore` through the keyed bridge.

use flash_core::MemoryStore;
use flash_core::testkit::{Harness, Options};

async fn memory(options: Options) -> Option<Harness> {
    Some(Harness::keyed(MemoryStore::new(), &options))
}

flash_core::conformance_tests!(memory);
