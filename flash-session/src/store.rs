//! [`SessionStorage`]: messages under one session key.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use async_trait::async_trait;
use flash_core::http::HeaderMap;
use flash_core::{
    Error, ErrorKind, Message, Result,
    storage::{Found, Incoming, Overflow, SimpleStorage, Stored},
};
use serde_json::Value;

use crate::format;
use crate::handle::{BridgedSession, SessionHandle};

/// The session key Django uses for messages.
pub const DEFAULT_SESSION_KEY: &str = "_messages";

/// A [`Storage`](flash_core::storage::Storage) keeping the messages inside the request's session, under one key
/// (default [`DEFAULT_SESSION_KEY`]), in exactly the form Django's `SessionStorage` keeps them.
///
/// The session handle `S` is looked up in the request extensions (so
/// [`uses_extensions`](flash_core::storage::Storage::uses_extensions) is true), else a
/// [`BridgedSession`] an adapter put there (flash-actix does, for actix-session): the session
/// layer must run outside the flash layer. Without it, `load` and `save` fail with
/// [`ErrorKind::Config`] and a message naming the missing layer.
///
/// As in Django: no size limit, the whole list is replaced on save (a request that only adds
/// reads the session first and appends), and the key is removed once every message is consumed.
/// Two concurrent requests of one session can both show a message: sessions are read, modified and
/// written whole. For exactly-once delivery across tabs use a keyed store.
///
/// Addressed messages ([`Addressing`](flash_core::Addressing)): Django's form has no place for
/// an address, and a Django app sharing the session must keep reading the value as it is. So
/// the value stays Django's and the addresses go under a second key, the messages' key followed
/// by `_to` (`_messages_to`), which Django never reads: `[binding, [[position, path,
/// loads_left, until_ms], …]]`, where `binding` is the first 16 bytes of the SHA-256 of the
/// value they describe, in hex. A value that Django rewrote no longer matches: its messages
/// read unaddressed and the next read shows them, as Django would.
///
/// ```
/// use flash_session::{MemorySession, SessionStorage};
/// let storage = SessionStorage::<MemorySession>::new().with_session_key("_flash");
/// assert_eq!(storage.session_key(), "_flash");
/// ```
pub struct SessionStorage<S> {
    key: Cow<'static, str>,
    session: PhantomData<fn() -> S>,
}

impl<S: SessionHandle + Clone> SessionStorage<S> {
    /// Messages under [`DEFAULT_SESSION_KEY`] of the session handle `S` found in the request.
    pub fn new() -> Self {
        SessionStorage {
            key: Cow::Borrowed(DEFAULT_SESSION_KEY),
            session: PhantomData,
        }
    }

    /// Sets the session key (default [`DEFAULT_SESSION_KEY`], as Django).
    #[must_use]
    pub fn with_session_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.key = key.into();
        self
    }

    /// The session key.
    pub fn session_key(&self) -> &str {
        &self.key
    }

    /// The request's `S`, else the session an adapter bridged ([`BridgedSession`]).
    fn session<'a>(&self, request: &'a Incoming) -> Result<&'a dyn SessionHandle> {
        let extensions = request.extensions();
        if let Some(session) = extensions.get::<S>() {
            return Ok(session);
        }
        match extensions.get::<BridgedSession>() {
            Some(bridged) => Ok(bridged.handle()),
            None => Err(Error::new(ErrorKind::Config, S::missing_layer())),
        }
    }

    /// The key the messages' addresses are kept under: the messages' key followed by `_to`.
    fn to_key(&self) -> String {
        format!("{}_to", self.key)
    }

    async fn stored(&self, session: &dyn SessionHandle) -> Result<Stored> {
        let Some(value) = session.get(&self.key).await? else {
            return Ok(Stored::nothing());
        };
        match format::decode(&value) {
            Ok(mut messages) => {
                if let (Value::String(text), false) = (&value, messages.is_empty())
                    && let Some(addresses) = session.get(&self.to_key()).await?
                {
                    format::apply_addresses(text, &addresses, &mut messages);
                }
                Ok(Stored::messages(messages))
            }
            Err(err) => {
                // Django would fail the request; a bad value means "no messages" and is replaced.
                tracing::warn!(key = %self.key, error = %err, "discarding unreadable session messages");
                Ok(Stored::unreadable())
            }
        }
    }
}

impl<S: SessionHandle + Clone> Default for SessionStorage<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Clone for SessionStorage<S> {
    fn clone(&self) -> Self {
        SessionStorage {
            key: self.key.clone(),
            session: PhantomData,
        }
    }
}

impl<S> fmt::Debug for SessionStorage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStorage")
            .field("key", &self.key)
            .field("session", &std::any::type_name::<S>())
            .finish()
    }
}

/// Django's update rules are flash-core's ([`SimpleStorage`]); this says only how the session
/// key is read and written.
#[async_trait]
impl<S: SessionHandle + Clone> SimpleStorage for SessionStorage<S> {
    async fn get(&self, request: &Incoming) -> Result<Stored> {
        self.stored(self.session(request)?).await
    }

    async fn store(
        &self,
        request: &Incoming,
        messages: Vec<Message>,
        found: Found,
        _overflow: Overflow,
        _response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let session = self.session(request)?;
        let to_key = self.to_key();
        let addresses = if messages.is_empty() {
            if found != Found::Nothing {
                session.remove(&self.key).await?;
            }
            None
        } else {
            let text = format::encode(&messages)?;
            let addresses = format::addresses(&text, &messages)?;
            session.insert(&self.key, Value::String(text)).await?;
            addresses
        };
        match addresses {
            Some(addresses) => session.insert(&to_key, addresses).await?,
            // Nothing addressed: no key left describing a list that is gone.
            None if (found != Found::Nothing || !messages.is_empty())
                && session.get(&to_key).await?.is_some() =>
            {
                session.remove(&to_key).await?;
            }
            None => {}
        }
        // No size limit: everything is stored.
        Ok(Vec::new())
    }

    fn reads_extensions(&self) -> bool {
        true
    }

    /// Django's session format has no place for a message's data: such a message is refused
    /// at add.
    fn stores_data(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flash_core::{Messages, MessagesConfig, storage::Storage};

    use super::*;
    use crate::MemorySession;

    async fn add(storage: &Arc<dyn Storage>, incoming: Incoming) -> Result<()> {
        let messages = Messages::new(
            storage.clone(),
            incoming,
            Arc::new(MessagesConfig::default()),
        );
        messages.info("Saved.");
        messages.save(&mut HeaderMap::new()).await.map(drop)
    }

    #[tokio::test]
    async fn the_requests_own_session_wins_over_a_bridged_one() {
        let storage: Arc<dyn Storage> = Arc::new(SessionStorage::<MemorySession>::new());
        let own = MemorySession::new();
        let bridged = MemorySession::new();

        let mut incoming = Incoming::default();
        incoming.extensions_mut().insert(own.clone());
        incoming
            .extensions_mut()
            .insert(BridgedSession::new(bridged.clone()));
        add(&storage, incoming).await.expect("saved");
        assert!(own.entries().contains_key(DEFAULT_SESSION_KEY));
        assert!(bridged.entries().is_empty());

        // Without one of its own, the bridged session is used.
        let mut incoming = Incoming::default();
        incoming
            .extensions_mut()
            .insert(BridgedSession::new(bridged.clone()));
        add(&storage, incoming).await.expect("saved");
        assert!(bridged.entries().contains_key(DEFAULT_SESSION_KEY));

        // With neither, the missing layer is named.
        let err = add(&storage, Incoming::default())
            .await
            .expect_err("no session");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("MemorySession"), "{err}");
    }
}
