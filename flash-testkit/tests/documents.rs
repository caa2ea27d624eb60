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

/// One document per client in a map, each write bumping the version.
#[derive(Default, Clone)]
struct InMemory(Arc<Mutex<HashMap<ClientId, Versioned>>>);

#[flash_core::async_trait]
impl DocumentStore for InMemory {
    async fn get(&self, client: &ClientId) -> Result<Option<Versioned>> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(client)
            .cloned())
    }

    async fn put(
        &self,
        client: &ClientId,
        new: Versioned,
        expected: Option<u64>,
        _expires: SystemTime,
    ) -> Result<bool> {
        let mut docs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if docs.get(client).map(|d| d.version) != expected {
            return Ok(false);
        }
        docs.insert(*client, new);
        Ok(true)
    }

    async fn delete(&self, client: &ClientId, expected: u64) -> Result<bool> {
        let mut docs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if docs.get(client).map(|d| d.version) != Some(expected) {
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
    flash_testkit::keyed_store_tests!(super::documents);
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
        SystemTime::now(),
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
