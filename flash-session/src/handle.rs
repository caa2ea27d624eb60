//! The session of one request, as flash needs it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use flash_core::Result;
use serde_json::Value;

/// The session of the current request: JSON values under string keys.
///
/// A session framework's per-request handle implements this (it is implemented for
/// `tower_sessions::Session` with the feature `tower-sessions`); the framework's layer puts the
/// handle in the request extensions, where [`SessionStorage`](crate::SessionStorage) finds it.
/// Object safe: `Arc<dyn SessionHandle>` implements it too.
///
/// ```
/// use flash_session::{MemorySession, SessionHandle};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let session = MemorySession::new();
/// session.insert("k", serde_json::json!([1])).await?;
/// assert_eq!(session.get("k").await?, Some(serde_json::json!([1])));
/// session.remove("k").await?;
/// assert_eq!(session.get("k").await?, None);
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait SessionHandle: Send + Sync + 'static {
    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Value>>;

    /// Sets `key` to `value`.
    async fn insert(&self, key: &str, value: Value) -> Result<()>;

    /// Removes `key` (nothing happens when it is absent).
    async fn remove(&self, key: &str) -> Result<()>;

    /// What to tell the developer when no handle of this type is in the request: which layer is
    /// missing and where it goes.
    fn missing_layer() -> Cow<'static, str>
    where
        Self: Sized,
    {
        Cow::Owned(format!(
            "no session in the request: the session layer must put a `{}` in the request \
             extensions, and run outside (before) the flash layer",
            std::any::type_name::<Self>()
        ))
    }
}

#[async_trait]
impl<S: SessionHandle + ?Sized> SessionHandle for Arc<S> {
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        (**self).get(key).await
    }

    async fn insert(&self, key: &str, value: Value) -> Result<()> {
        (**self).insert(key, value).await
    }

    async fn remove(&self, key: &str) -> Result<()> {
        (**self).remove(key).await
    }
}

/// A session an adapter hands flash for a framework whose own session is not a
/// [`SessionHandle`] (actix-session's `Session` cannot leave its thread): any handle, shared.
///
/// The adapter puts it in the request extensions; [`SessionStorage<S>`](crate::SessionStorage)
/// uses it when the request holds no `S`. So one storage (`TowerSessionStorage`, the `flash`
/// facade's `session`) keeps messages in tower-sessions' session under axum and in the session
/// flash-actix bridges under actix-web.
///
/// ```
/// use std::sync::Arc;
/// use flash_core::{MessagesConfig, Messages, storage::{Incoming, Storage}};
/// use flash_session::{BridgedSession, MemorySession, SessionStorage};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // A storage looking for a `MemorySession` finds the bridged one instead.
/// let storage: Arc<dyn Storage> = Arc::new(SessionStorage::<MemorySession>::new());
/// let session = MemorySession::new();
/// let mut incoming = Incoming::default();
/// incoming.extensions_mut().insert(BridgedSession::new(session.clone()));
/// let messages = Messages::new(storage, incoming, Arc::new(MessagesConfig::default()));
/// messages.info("Saved.");
/// messages.save(&mut http::HeaderMap::new()).await?;
/// assert_eq!(session.entries()["_messages"], r#"[["__json_message", 0, 20, "Saved."]]"#);
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct BridgedSession(Arc<dyn SessionHandle>);

impl BridgedSession {
    /// Bridges `handle`.
    pub fn new(handle: impl SessionHandle) -> Self {
        BridgedSession(Arc::new(handle))
    }

    /// The bridged handle.
    pub fn handle(&self) -> &dyn SessionHandle {
        &*self.0
    }
}

impl std::fmt::Debug for BridgedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgedSession").finish_non_exhaustive()
    }
}

/// A session kept in process memory; clones share it.
///
/// For tests and examples, and for frameworks that keep their own session map: put one per
/// client in the request extensions.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use flash_session::{MemorySession, SessionHandle};
/// use serde_json::json;
///
/// let session = MemorySession::new();
/// session.set("user", json!("ada")); // a test's starting state
/// let shared = session.clone(); // clones share the values
/// shared.insert("_messages", json!("[]")).await?;
/// assert_eq!(session.get("user").await?, Some(json!("ada")));
/// assert_eq!(session.entries().len(), 2);
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct MemorySession {
    values: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl MemorySession {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Value>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every value in the session.
    pub fn entries(&self) -> BTreeMap<String, Value> {
        self.lock().clone()
    }

    /// Sets `key` to `value` without awaiting (to prepare a test).
    pub fn set(&self, key: impl Into<String>, value: Value) {
        self.lock().insert(key.into(), value);
    }
}

impl std::fmt::Debug for MemorySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Session values can be personal data: show only the keys.
        f.debug_struct("MemorySession")
            .field("keys", &self.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
impl SessionHandle for MemorySession {
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.lock().get(key).cloned())
    }

    async fn insert(&self, key: &str, value: Value) -> Result<()> {
        self.lock().insert(key.to_owned(), value);
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<()> {
        self.lock().remove(key);
        Ok(())
    }
}

#[cfg(feature = "tower-sessions")]
mod tower {
    use std::borrow::Cow;

    use async_trait::async_trait;
    use flash_core::{Error, ErrorKind, Result};
    use serde_json::Value;

    use super::SessionHandle;

    fn backend(context: &'static str, err: tower_sessions::session::Error) -> Error {
        let kind = match err {
            tower_sessions::session::Error::SerdeJson(_) => ErrorKind::Decode,
            _ => ErrorKind::Backend,
        };
        Error::with_source(kind, context, err)
    }

    /// The session `tower_sessions::SessionManagerLayer` puts in the request extensions.
    #[async_trait]
    impl SessionHandle for tower_sessions::Session {
        async fn get(&self, key: &str) -> Result<Option<Value>> {
            self.get_value(key)
                .await
                .map_err(|e| backend("reading the tower-sessions session", e))
        }

        async fn insert(&self, key: &str, value: Value) -> Result<()> {
            self.insert_value(key, value)
                .await
                .map(drop)
                .map_err(|e| backend("writing the tower-sessions session", e))
        }

        async fn remove(&self, key: &str) -> Result<()> {
            self.remove_value(key)
                .await
                .map(drop)
                .map_err(|e| backend("writing the tower-sessions session", e))
        }

        fn missing_layer() -> Cow<'static, str> {
            Cow::Borrowed(
                "no tower_sessions::Session in the request: add tower_sessions::SessionManagerLayer \
                 outside the flash layer (in axum, call `.layer(session_layer)` after \
                 `.layer(flash_layer)`: the layer added last runs first)",
            )
        }
    }
}
