//! actix-session for the demo's session storages on actix-web: session state in process memory
//! (as the axum demo keeps tower-sessions' `MemoryStore`), the session id in a signed, encrypted
//! cookie. Sessions last as long as the process, or their time to live.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_session::SessionMiddleware;
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::{Key, time};

/// The state of every session, by session id.
#[derive(Clone, Default)]
pub(crate) struct MemorySessions(Arc<Mutex<HashMap<String, Held>>>);

struct Held {
    state: HashMap<String, String>,
    expires: Instant,
}

impl MemorySessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `state` under `key` for `ttl`, dropping the sessions that expired.
    fn put(&self, key: &SessionKey, state: HashMap<String, String>, ttl: &time::Duration) {
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, held| held.expires > now);
        sessions.insert(
            key.as_ref().to_owned(),
            Held {
                state,
                expires: expiry(now, ttl),
            },
        );
    }
}

fn expiry(now: Instant, ttl: &time::Duration) -> Instant {
    let seconds = u64::try_from(ttl.whole_seconds()).unwrap_or(0);
    now.checked_add(Duration::from_secs(seconds)).unwrap_or(now)
}

/// A new session id: 32 random bytes, hex.
fn new_key() -> Result<SessionKey, anyhow::Error> {
    let hex = flash::storage::Key::random_secret()
        .map_err(|err| anyhow::anyhow!("no OS randomness: {err}"))?;
    Ok(SessionKey::try_from(hex)?)
}

impl SessionStore for MemorySessions {
    async fn load(&self, key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let sessions = self.lock();
        Ok(sessions
            .get(key.as_ref())
            .filter(|held| held.expires > Instant::now())
            .map(|held| held.state.clone()))
    }

    async fn save(
        &self,
        state: HashMap<String, String>,
        ttl: &time::Duration,
    ) -> Result<SessionKey, SaveError> {
        let key = new_key().map_err(SaveError::Other)?;
        self.put(&key, state, ttl);
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: HashMap<String, String>,
        ttl: &time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        self.put(&key, state, ttl);
        Ok(key)
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &time::Duration) -> anyhow::Result<()> {
        if let Some(held) = self.lock().get_mut(key.as_ref()) {
            held.expires = expiry(Instant::now(), ttl);
        }
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        self.lock().remove(key.as_ref());
        Ok(())
    }
}

/// The demo's actix sessions: the store every worker shares and the cookie key.
#[derive(Clone)]
pub(crate) struct Sessions {
    store: MemorySessions,
    key: Key,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sessions(..)")
    }
}

impl Sessions {
    /// Sessions with a random cookie key; `None` (logged) without OS randomness.
    pub(crate) fn new() -> Option<Sessions> {
        let mut bytes = [0u8; 64];
        match getrandom::fill(&mut bytes) {
            Ok(()) => Some(Sessions {
                store: MemorySessions::default(),
                key: Key::from(&bytes),
            }),
            Err(err) => {
                tracing::error!(%err, "no OS randomness for the session cookie key: sessions are off");
                None
            }
        }
    }
}

/// actix-session's middleware over `sessions`; without them, one to leave switched off
/// (`actix_web::middleware::Condition`), over an empty store and a key that signs nothing.
pub(crate) fn middleware(sessions: Option<&Sessions>) -> SessionMiddleware<MemorySessions> {
    let (store, key) = match sessions {
        Some(sessions) => (sessions.store.clone(), sessions.key.clone()),
        None => (MemorySessions::default(), Key::from(&[0; 64])),
    };
    // Plain http on localhost, as the axum demo's session cookie.
    SessionMiddleware::builder(store, key)
        .cookie_secure(false)
        .build()
}
