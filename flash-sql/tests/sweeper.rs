//! The keyed-store kit's expiry check fails `SqlStore` without its sweeper: flash never shows
//! an expired row, but the table keeps it. With the sweeper (as the kit's factories run it)
//! the same store passes (`keyed_kit::what_is_written_expires_in_the_store` in sqlite.rs).
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use flash_core::storage::ClientId;
use flash_testkit::keyed_kit::{self as kit, Inspected};
use flash_testkit::{KeyedFactory, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_its_sweeper_fails_the_kit() {
    let unswept = KeyedFactory::new(|options: Options| async move {
        let store = common::sqlite_kit(options).await?;
        let raw = store.clone();
        Some(Inspected::new(store, move |client: ClientId| {
            let raw = raw.clone();
            async move { common::count_rows(&raw, &client).await }
        }))
    });
    let failed = tokio::spawn(kit::what_is_written_expires_in_the_store(unswept))
        .await
        .is_err_and(|err| err.is_panic());
    assert!(
        failed,
        "the expiry check passed a store whose table is never swept"
    );
}
