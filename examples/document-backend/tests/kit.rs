//! The example backend passes the keyed-store kit and the conformance suite.

use document_backend::MapDocuments;
use flash_testkit::{Harness, Options};

async fn store(_: Options) -> Option<flash_core::storage::Documents<MapDocuments>> {
    Some(MapDocuments::keyed())
}

async fn harness(options: Options) -> Option<Harness> {
    Some(Harness::keyed(MapDocuments::keyed(), &options))
}

mod kit {
    flash_testkit::keyed_store_tests!(super::store, in_process);
}

mod conformance {
    flash_testkit::conformance_tests!(super::harness);
}
