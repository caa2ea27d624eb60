//! The keyed-store kit fails document stores that break one rule on purpose, each a mutation
//! of a good in-memory document store behind `Documents`: one that keeps a document after its
//! `expires` (a memcached key stored without an expiry: flash's own time check hides the
//! messages, the server fills), and one whose write ignores the expected version (a
//! read-modify-write without a condition: concurrent appends overwrite each other).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use flash_core::Result;
use flash_core::storage::{ClientId, DocumentStore, Documents, Versioned};
use flash_testkit::keyed_kit as kit;
use flash_testkit::{KeyedFactory, Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    /// None: the good store.
    None,
    /// `put` ignores `expires`: documents stay until overwritten or deleted.
    NoExpiry,
    /// `put` and `delete` ignore the expected version: the last writer wins.
    NoCondition,
}

type Map = HashMap<ClientId, (Versioned, Option<SystemTime>)>;

#[derive(Clone)]
struct MapDocs {
    docs: Arc<Mutex<Map>>,
    breakage: Breakage,
}

impl MapDocs {
    fn live(docs: &Map, client: &ClientId) -> Option<Versioned> {
        docs.get(client)
            .filter(|(_, expires)| expires.is_none_or(|e| e > SystemTime::now()))
            .map(|(doc, _)| doc.clone())
    }
}

#[flash_core::async_trait]
impl DocumentStore for MapDocs {
    async fn get(&self, client: &ClientId) -> Result<Option<Versioned>> {
        Ok(Self::live(&self.docs.lock().unwrap(), client))
    }

    async fn put(
        &self,
        client: &ClientId,
        new: Versioned,
        expected: Option<u64>,
        expires: SystemTime,
    ) -> Result<bool> {
        if self.breakage == Breakage::NoCondition {
            // Another writer gets in between the read and the write.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        // The check and the write hold one lock: a compare-and-set split in two lets two
        // writers that read the same version both win.
        let mut docs = self.docs.lock().unwrap();
        let current = Self::live(&docs, client).map(|doc| doc.version);
        if self.breakage != Breakage::NoCondition && current != expected {
            return Ok(false);
        }
        let expires = (self.breakage != Breakage::NoExpiry).then_some(expires);
        let now = SystemTime::now();
        docs.retain(|_, (_, e)| e.is_none_or(|e| e > now));
        docs.insert(*client, (new, expires));
        Ok(true)
    }

    async fn delete(&self, client: &ClientId, expected: u64) -> Result<bool> {
        let mut docs = self.docs.lock().unwrap();
        if self.breakage != Breakage::NoCondition
            && Self::live(&docs, client).map(|doc| doc.version) != Some(expected)
        {
            return Ok(false);
        }
        docs.remove(client);
        Ok(true)
    }
}

fn store(breakage: Breakage) -> KeyedFactory {
    KeyedFactory::new(move |_: Options| async move {
        Some(Documents::new(MapDocs {
            docs: Arc::default(),
            breakage,
        }))
    })
}

/// Whether `test` panicked.
async fn panics(test: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::spawn(test).await {
        Ok(()) => false,
        Err(err) => err.is_panic(),
    }
}

/// The good store passes the checks its mutations fail.
#[tokio::test(flavor = "multi_thread")]
async fn the_good_document_store_passes() {
    let good = || store(Breakage::None);
    assert!(!panics(kit::what_is_written_expires_in_the_store(good())).await);
    assert!(!panics(kit::concurrent_appends_never_exceed_max_messages(good())).await);
    assert!(!panics(kit::concurrent_appends_never_exceed_max_bytes(good())).await);
}

/// A document kept past its `expires` is invisible to flash (every TTL rule of the contract
/// holds) but fails the check that the store itself lets it go.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_without_expiry_fails_the_kit() {
    let b = || store(Breakage::NoExpiry);
    assert!(
        panics(kit::what_is_written_expires_in_the_store(b())).await,
        "what_is_written_expires_in_the_store passed a store that never expires"
    );
    assert!(!panics(kit::append_to_an_expired_client_starts_afresh(b())).await);
    assert!(!panics(kit::append_renews_the_ttl(b())).await);
}

/// Concurrent appends through a write without a condition overwrite each other: the kit sees
/// appends that said they kept messages no longer there.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_without_a_condition_fails_the_kit() {
    let b = || store(Breakage::NoCondition);
    assert!(
        panics(kit::concurrent_appends_never_exceed_max_messages(b())).await,
        "concurrent_appends_never_exceed_max_messages passed a store without a conditional write"
    );
    assert!(
        panics(kit::concurrent_appends_never_exceed_max_bytes(b())).await,
        "concurrent_appends_never_exceed_max_bytes passed a store without a conditional write"
    );
    // One call at a time, it is a working store.
    assert!(!panics(kit::append_keeps_order(b())).await);
}
