//! The poem session bridge (feature `session`): flash's session storages over the
//! `poem::session::Session` of the request.
//!
//! poem's `Session` is shared and `Send`, so no copy is needed: the middleware puts a handle on
//! it in the request ([`PoemSession`], and a [`BridgedSession`] for any other
//! `SessionStorage`), the storage reads and writes the session itself, and poem's session
//! middleware (outside flash's) persists it after flash has saved.

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;
use flash_core::Result;
use flash_core::adapter::Adapter;
use flash_session::{BridgedSession, SessionHandle, SessionStorage};
use poem::Request;
use poem::session::Session;
use serde_json::Value;

/// [`SessionStorage`] over poem's session of each request (feature `session`). Any
/// `SessionStorage` works under [`FlashMiddleware`](crate::FlashMiddleware) (the `flash`
/// facade's `session` too): the middleware also hands the session over as a [`BridgedSession`].
pub type PoemSessionStorage = SessionStorage<PoemSession>;

/// poem's `Session` of one request as flash's session storage reads and writes it (feature
/// `session`). poem's `CookieSession` or `ServerSession` must wrap
/// [`FlashMiddleware`](crate::FlashMiddleware): `route.with(flash).with(CookieSession::new(…))`
/// (the middleware added last runs first). Without it, reads and saves fail with
/// [`ErrorKind::Config`](flash_core::ErrorKind::Config) and a message saying so.
#[derive(Clone)]
pub struct PoemSession(Session);

impl fmt::Debug for PoemSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Session values can be personal data: show only the keys.
        let entries = self.0.entries();
        f.debug_struct("PoemSession")
            .field("keys", &entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
impl SessionHandle for PoemSession {
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.0.get::<Value>(key))
    }

    async fn insert(&self, key: &str, value: Value) -> Result<()> {
        if self.0.get::<Value>(key).as_ref() != Some(&value) {
            self.0.set(key, value);
        }
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<()> {
        // A key that is absent stays absent without marking the session changed.
        if self.0.get::<Value>(key).is_some() {
            self.0.remove(key);
        }
        Ok(())
    }

    fn missing_layer() -> Cow<'static, str> {
        Cow::Borrowed(
            "no poem session in the request: add poem::session::CookieSession (or ServerSession) \
             outside flash_poem::FlashMiddleware (call `.with(session)` after `.with(flash)`: the \
             middleware added last runs first)",
        )
    }
}

/// Puts the request's poem session in its extensions as flash's storages look for it, when the
/// storage reads extensions and poem's session middleware ran before flash's.
pub(crate) fn bridge(adapter: &Adapter, request: &mut Request) {
    if !adapter.uses_extensions() {
        return;
    }
    if let Some(session) = request.extensions().get::<Session>().cloned() {
        let handle = PoemSession(session);
        request.extensions_mut().insert(handle.clone());
        request.extensions_mut().insert(BridgedSession::new(handle));
    }
}
