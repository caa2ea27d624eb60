//! The document adapter over an in-memory document store: the keyed-store kit and the
//! conformance suite (through the keyed bridge) both run on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use flash_core::{
    Result,
    storage::{ClientId, DocumentStore, Documents, Versioned},
};
use flash_testkit::{Harness, Options};

/// One document per client in a map, each write bumping the version. A document is gone
/// once its `expires` passes: `get` no longer returns it, and every write drops the expired.
#[derive(Default, Clone)]
struct InMemory(Arc<Mutex<HashMap<ClientId, (Versioned, SystemTime)>>>);

impl InMemory {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ClientId, (Versioned, SystemTime)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client's live document's version.
    fn version(
        docs: &HashMap<ClientId, (Versioned, SystemTime)>,
        client: &ClientId,
    ) -> Option<u64> {
        docs.get(client)
            .filter(|(_, expires)| *expires > SystemTime::now())
            .map(|(doc, _)| doc.version)
    }
}

#[flash_core::async_trait]
impl DocumentStore for InMemory {
    async fn get(&self, client: &ClientId) -> Result<Option<Versioned>> {
        let docs = self.map();
        Ok(docs
            .get(client)
            .filter(|(_, expires)| *expires > SystemTime::now())
            .map(|(doc, _)| doc.clone()))
    }

    async fn put(
        &self,
        client: &ClientId,
        new: Versioned,
        expected: Option<u64>,
        expires: SystemTime,
    ) -> Result<bool> {
        let mut docs = self.map();
        if Self::version(&docs, client) != expected {
            return Ok(false);
        }
        let now = SystemTime::now();
        docs.retain(|_, (_, expires)| *expires > now);
        docs.insert(*client, (new, expires));
        Ok(true)
    }

    async fn delete(&self, client: &ClientId, expected: u64) -> Result<bool> {
        let mut docs = self.map();
        if Self::version(&docs, client) != Some(expected) {
            return Ok(false);
        }
        docs.remove(client);
        Ok(true)
    }
}

async fn documents(_: Options) -> Option<Documents<InMemory>> {
    Some(Documents::new(InMemory::default()))
}

mod kit {
    flash_testkit::keyed_store_tests!(super::documents, in_process);
}

async fn bridged(options: Options) -> Option<Harness> {
    Some(Harness::keyed(
        Documents::new(InMemory::default()),
        &options,
    ))
}

mod conformance {
    flash_testkit::conformance_tests!(super::bridged);
}

/// A document that is not flash's counts as empty and is replaced by the next write.
#[tokio::test]
async fn an_unreadable_document_counts_as_empty() {
    use flash_core::{
        Level, Limits, Message,
        storage::{KeyedStore, LeaseId},
    };
    use std::time::Duration;

    let docs = InMemory::default();
    let client = ClientId::random();
    docs.put(
        &client,
        Versioned::new(b"not json".to_vec(), 7),
        None,
        SystemTime::now() + std::time::Duration::from_secs(60),
    )
    .await
    .expect("put");
    let store = Documents::new(docs.clone());
    let lease = LeaseId::random();
    let held = store
        .lease(&client, &lease, Duration::from_secs(30))
        .await
        .expect("lease");
    assert!(held.is_empty());
    let kept = store
        .append(
            &client,
            &[Message::new(Level::INFO, "fresh")],
            Duration::from_secs(60),
            &Limits::default(),
        )
        .await
        .expect("append");
    assert_eq!(kept, 1);
    let held = store
        .lease(&client, &lease, Duration::from_secs(30))
        .await
        .expect("lease");
    assert_eq!(held[0].text, "fresh");
}

/// A store that always loses the race makes the adapter give up with an error, not spin.
#[tokio::test]
async fn a_store_that_always_loses_fails_after_the_attempts() {
    use flash_core::{ErrorKind, Level, Limits, Message, storage::KeyedStore};
    use std::time::Duration;

    struct Busy;
    #[flash_core::async_trait]
    impl DocumentStore for Busy {
        async fn get(&self, _: &ClientId) -> Result<Option<Versioned>> {
            Ok(None)
        }
        async fn put(
            &self,
            _: &ClientId,
            _: Versioned,
            _: Option<u64>,
            _: SystemTime,
        ) -> Result<bool> {
            Ok(false)
        }
        async fn delete(&self, _: &ClientId, _: u64) -> Result<bool> {
            Ok(false)
        }
    }
    let err = Documents::new(Busy)
        .max_attempts(3)
        .append(
            &ClientId::random(),
            &[Message::new(Level::INFO, "m")],
            Duration::from_secs(60),
            &Limits::default(),
        )
        .await
        .expect_err("lost every race");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

/// The rule the `KeyedStore` docs state: a lease that expired but whose messages nobody took
/// again still holds them, for MemoryStore (the reference) and the document adapter alike.
#[tokio::test]
async fn an_expired_lease_nobody_took_again_still_holds_its_messages() {
    use flash_core::{
        Level, Limits, Message,
        storage::{KeyedStore, LeaseId, MemoryStore, Outcome},
    };
    use std::time::Duration;

    async fn check(store: &dyn KeyedStore, outcome: Outcome) {
        let client = ClientId::random();
        let long = Duration::from_secs(3600);
        let limits = Limits::default();
        let m = [Message::new(Level::INFO, "m1")];
        assert_eq!(
            store
                .append(&client, &m, long, &limits)
                .await
                .expect("append"),
            1
        );
        let late = LeaseId::random();
        let held = store.lease(&client, &late, Duration::from_millis(50)).await;
        assert_eq!(held.expect("lease").len(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        store
            .settle(&client, &late, outcome, &[], long, &limits)
            .await
            .expect("settle");
        let next = store
            .lease(&client, &LeaseId::random(), long)
            .await
            .expect("lease");
        match outcome {
            Outcome::Consumed => assert!(next.is_empty(), "the late consume did not delete"),
            Outcome::Released => assert_eq!(next.len(), 1, "the late release lost it"),
        }
    }

    for outcome in [Outcome::Consumed, Outcome::Released] {
        check(&MemoryStore::new(), outcome).await;
        check(&Documents::new(InMemory::default()), outcome).await;
    }
}
