//! The document way in: a store with a conditional write (one document per client) becomes a
//! [`KeyedStore`] through [`Documents`], which holds the lease state machine, expiry, limits and
//! optimistic retries once for every such store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::keyed::{ClientId, KeyedStore, LeaseId, Outcome};
use crate::limits::Limits;
use crate::message::Message;

/// A client's document and its version, as [`DocumentStore::get`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Versioned {
    /// The document, opaque to the store.
    pub document: Vec<u8>,
    /// The version written with it: random, chosen by [`Documents`] at each write, so a
    /// version never comes back after a delete (no ABA).
    pub version: u64,
}

impl Versioned {
    /// A document at `version`.
    pub fn new(document: Vec<u8>, version: u64) -> Self {
        Versioned { document, version }
    }
}

/// A store of one opaque document per client with a conditional write: DynamoDB
/// (`ConditionExpression`), MongoDB (a filter on the version), Firestore and etcd
/// (transactions), any SQL row (`UPDATE ... WHERE version = ?`).
///
/// Wrapped in [`Documents`], it is a [`KeyedStore`] with every guarantee of one (exactly once
/// under concurrent requests, leases, a TTL, limits): the store only has to make each call
/// atomic. The store keeps the version it is given beside the document and compares it on
/// the next write; [`Documents`] picks a fresh random one for every write.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::SystemTime;
/// use flash_core::{Result, storage::{ClientId, DocumentStore, Documents, Versioned}};
///
/// #[derive(Default)]
/// struct InMemory(Mutex<HashMap<ClientId, Versioned>>);
///
/// #[flash_core::async_trait]
/// impl DocumentStore for InMemory {
///     async fn get(&self, client: &ClientId) -> Result<Option<Versioned>> {
///         Ok(self.0.lock().unwrap().get(client).cloned())
///     }
///
///     async fn put(&self, client: &ClientId, new: Versioned, expected: Option<u64>, _: SystemTime) -> Result<bool> {
///         let mut docs = self.0.lock().unwrap();
///         if docs.get(client).map(|d| d.version) != expected {
///             return Ok(false);
///         }
///         docs.insert(*client, new);
///         Ok(true)
///     }
///
///     async fn delete(&self, client: &ClientId, expected: u64) -> Result<bool> {
///         let mut docs = self.0.lock().unwrap();
///         if docs.get(client).map(|d| d.version) != Some(expected) {
///             return Ok(false);
///         }
///         docs.remove(client);
///         Ok(true)
///     }
/// }
///
/// let store = Documents::new(InMemory::default()); // a KeyedStore
/// # let _ = store;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a flash `DocumentStore`",
    note = "implement `get`, `put` (write if the version is still the expected one) and `delete` (the same condition) with `#[flash_core::async_trait]`, then wrap the store in `flash_core::storage::Documents` to get a `KeyedStore`"
)]
#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// The client's document and its version, if it has one.
    async fn get(&self, client: &ClientId) -> Result<Option<Versioned>>;

    /// Replaces the client's document and version with `new` if its version is still
    /// `expected` (`None`: only if the client has no document). Returns false, writing
    /// nothing, when another writer came first. The store lets the document go once
    /// `expires` passes (a native TTL, or a filter on read and a sweep): flash's own time check
    /// hides an expired document from flash, not from the server, which would fill
    /// (`flash_testkit::keyed_store_tests!` checks it).
    async fn put(
        &self,
        client: &ClientId,
        new: Versioned,
        expected: Option<u64>,
        expires: SystemTime,
    ) -> Result<bool>;

    /// Deletes the client's document if its version is still `expected`. Returns false,
    /// deleting nothing, when another writer came first.
    async fn delete(&self, client: &ClientId, expected: u64) -> Result<bool>;
}

/// How many times [`Documents`] reads and writes again after losing a race, by default.
pub const DEFAULT_DOCUMENT_ATTEMPTS: u32 = 100;

/// A [`DocumentStore`] as a [`KeyedStore`]: each call reads the client's document, changes it
/// and writes it back if no other writer came first, else starts again.
///
/// The document (JSON, opaque to the store) holds the client's pending messages, oldest first,
/// each with the lease holding it and until when, and the client's expiry time (milliseconds
/// since the Unix epoch, from the clock of the process that wrote it: keep the clocks of the
/// servers sharing a store in sync). A document that cannot be read counts as empty and is
/// replaced at the next write.
///
/// ```
/// # use std::{collections::HashMap, sync::Mutex, time::SystemTime};
/// # use flash_core::{Result, storage::{ClientId, DocumentStore, Versioned}};
/// # #[derive(Default)]
/// # struct MyDocuments(Mutex<HashMap<ClientId, Versioned>>);
/// # #[flash_core::async_trait]
/// # impl DocumentStore for MyDocuments {
/// #     async fn get(&self, client: &ClientId) -> Result<Option<Versioned>> {
/// #         Ok(self.0.lock().unwrap().get(client).cloned())
/// #     }
/// #     async fn put(&self, client: &ClientId, new: Versioned, expected: Option<u64>, _: SystemTime) -> Result<bool> {
/// #         let mut docs = self.0.lock().unwrap();
/// #         let fresh = docs.get(client).map(|d| d.version) == expected;
/// #         if fresh { docs.insert(*client, new); }
/// #         Ok(fresh)
/// #     }
/// #     async fn delete(&self, client: &ClientId, expected: u64) -> Result<bool> {
/// #         let mut docs = self.0.lock().unwrap();
/// #         let fresh = docs.get(client).map(|d| d.version) == Some(expected);
/// #         if fresh { docs.remove(client); }
/// #         Ok(fresh)
/// #     }
/// # }
/// use flash_core::Key;
/// use flash_core::storage::{Documents, ServerStorage};
///
/// // `MyDocuments` implements `DocumentStore` (see its example): get, put and delete, each
/// // conditional on the version.
/// let store = Documents::new(MyDocuments::default()).max_attempts(20); // a KeyedStore
/// let storage = ServerStorage::new(store, Key::generate());
/// # let _ = storage;
/// ```
#[derive(Debug, Clone)]
pub struct Documents<D> {
    store: D,
    attempts: u32,
}

impl<D: DocumentStore> Documents<D> {
    /// The keyed store over `store`.
    pub fn new(store: D) -> Self {
        Documents {
            store,
            attempts: DEFAULT_DOCUMENT_ATTEMPTS,
        }
    }

    /// Sets how many times a call tries again after losing a race to another writer of the
    /// same client (default [`DEFAULT_DOCUMENT_ATTEMPTS`]); after that it fails with
    /// [`ErrorKind::Unavailable`].
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The document store.
    pub fn store(&self) -> &D {
        &self.store
    }

    /// Reads the client's document, applies `change` (which returns its result and whether it
    /// changed the document) and writes the document back when it changed; again from the
    /// read when another writer came first.
    async fn update<R>(
        &self,
        client: &ClientId,
        mut change: impl FnMut(&mut Doc, u64) -> (R, bool) + Send,
    ) -> Result<R>
    where
        R: Send,
    {
        for _ in 0..self.attempts {
            let now = now_ms();
            let current = self.store.get(client).await?;
            let version = current.as_ref().map(|v| v.version);
            let mut doc = match &current {
                None => Doc::default(),
                Some(current) => match serde_json::from_slice::<Doc>(&current.document) {
                    Ok(doc) => doc,
                    Err(err) => {
                        tracing::warn!(error = %err, "replacing an unreadable flash document");
                        Doc {
                            expires: 0,
                            pending: Vec::new(),
                        }
                    }
                },
            };
            // An expired client's messages are gone, whether or not the store deleted them:
            // nothing below may bring them back.
            let stale = current.is_some() && doc.expires <= now;
            if stale {
                doc.pending.clear();
            }
            let (result, changed) = change(&mut doc, now);
            if !changed && !stale {
                return Ok(result);
            }
            let written = match version {
                Some(version) if doc.pending.is_empty() => {
                    self.store.delete(client, version).await?
                }
                None if doc.pending.is_empty() => true,
                _ => {
                    let bytes = serde_json::to_vec(&doc).map_err(|err| {
                        Error::with_source(ErrorKind::Encode, "encoding a flash document", err)
                    })?;
                    let expires = UNIX_EPOCH + Duration::from_millis(doc.expires);
                    let mut fresh = [0u8; 8];
                    crate::random::try_fill(&mut fresh)?;
                    let new = Versioned::new(bytes, u64::from_le_bytes(fresh));
                    self.store.put(client, new, version, expires).await?
                }
            };
            if written {
                return Ok(result);
            }
            // Another writer of this client came first: let it run, then read again.
            crate::timer::yield_now().await;
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "the document store lost every race to other writers of the same client; \
             raise `Documents::max_attempts` if this client is that busy",
        ))
    }
}

/// The document: what is pending for one client.
#[derive(Default, Serialize, Deserialize)]
struct Doc {
    /// When the client's messages expire, in ms since the Unix epoch.
    #[serde(rename = "e")]
    expires: u64,
    /// Pending messages, oldest first.
    #[serde(rename = "p")]
    pending: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "m", with = "crate::storage::stored_form")]
    message: Message,
    /// The lease holding it (hex), and until when (ms since the Unix epoch).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    lease: Option<(String, u64)>,
}

impl Doc {
    /// Appends what fits `limits` beside everything pending; returns how many.
    fn push(&mut self, messages: &[Message], ttl: Duration, limits: &Limits, now: u64) -> usize {
        let bytes = self.pending.iter().map(|e| e.message.size()).sum();
        let kept = limits.fitting(self.pending.len(), bytes, messages);
        if kept > 0 {
            self.expires = now.saturating_add(millis(ttl));
            self.pending.extend(messages[..kept].iter().map(|m| Entry {
                message: m.clone(),
                lease: None,
            }));
        }
        kept
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.min(crate::storage::MAX_SPAN).as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

#[async_trait]
impl<D: DocumentStore> KeyedStore for Documents<D> {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        self.update(client, |doc, now| {
            let kept = doc.push(messages, ttl, limits, now);
            (kept, kept > 0)
        })
        .await
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        let id = lease.to_hex();
        self.update(client, |doc, now| {
            let until = now.saturating_add(millis(lease_timeout));
            let taken: Vec<Message> = doc
                .pending
                .iter_mut()
                .filter(|e| e.lease.as_ref().is_none_or(|(_, until)| *until <= now))
                .map(|e| {
                    e.lease = Some((id.clone(), until));
                    e.message.clone()
                })
                .collect();
            let changed = !taken.is_empty();
            (taken, changed)
        })
        .await
    }

    async fn settle(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let id = lease.to_hex();
        self.update(client, |doc, now| {
            // A lease owns what it took until another lease takes it, expired or not.
            let held = |e: &Entry| e.lease.as_ref().is_some_and(|(l, _)| *l == id);
            let before = doc.pending.len();
            let mut changed = false;
            match outcome {
                Outcome::Consumed => {
                    doc.pending.retain(|e| !held(e));
                    changed = doc.pending.len() != before;
                }
                Outcome::Released => {
                    for entry in doc.pending.iter_mut().filter(|e| held(e)) {
                        entry.lease = None;
                        changed = true;
                    }
                }
            }
            let kept = doc.push(append, ttl, limits, now);
            (kept, changed || kept > 0)
        })
        .await
    }
}
