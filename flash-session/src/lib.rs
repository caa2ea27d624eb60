#![doc = include_str!("../README.md")]
//! ## Cargo features
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod format;
mod handle;
mod store;

pub use handle::{BridgedSession, MemorySession, SessionHandle};
pub use store::{DEFAULT_SESSION_KEY, SessionStorage};

/// [`SessionStorage`] over the session `tower_sessions::SessionManagerLayer` puts in each request
/// (feature `tower-sessions`).
///
/// The session layer must wrap the flash layer, so the session is in the request extensions when
/// flash loads and saves:
///
/// ```
/// use std::sync::Arc;
/// use flash_core::{MessagesConfig, Messages, storage::{Incoming, Storage}};
/// use flash_session::TowerSessionStorage;
/// use tower_sessions::{MemoryStore, Session};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let storage: Arc<dyn Storage> = Arc::new(TowerSessionStorage::new());
/// // What `SessionManagerLayer` does for each request, in short:
/// let session = Session::new(None, Arc::new(MemoryStore::default()), None);
/// let mut incoming = Incoming::default();
/// incoming.extensions_mut().insert(session.clone());
///
/// let messages = Messages::new(storage, incoming, Arc::new(MessagesConfig::default()));
/// messages.info("Saved.");
/// messages.save(&mut http::HeaderMap::new()).await?;
/// let kept = session.get_value("_messages").await.unwrap();
/// assert_eq!(kept, Some(r#"[["__json_message", 0, 20, "Saved."]]"#.into()));
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "tower-sessions")]
pub type TowerSessionStorage = SessionStorage<tower_sessions::Session>;
