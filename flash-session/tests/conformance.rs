//! The conformance suite, run on `SessionStorage` with an in-memory session and with a real
//! `tower_sessions::Session` over tower-sessions' `MemoryStore`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use flash_testkit::{Capabilities, Harness, Options};

/// What a session storage gives beyond Django's semantics: room for large messages only (sessions
/// are read and written whole, and expire with the session, not with flash's TTL).
/// Django's session value has no place for an address: it is kept beside, under `_messages_to`.
const SESSION: Capabilities = Capabilities::NONE.with_large_messages(true);

/// One session per simulated browser, as a session layer keeps one per session cookie.
#[cfg(feature = "tower-sessions")]
fn per_client<S: Clone + Send + Sync + 'static>(
    new: impl Fn() -> S + Send + Sync + 'static,
) -> impl Fn(u64, &mut flash_core::storage::Incoming) + Send + Sync + 'static {
    let sessions: std::sync::Arc<Mutex<HashMap<u64, S>>> = std::sync::Arc::default();
    move |client, incoming| {
        let session = sessions
            .lock()
            .expect("sessions")
            .entry(client)
            .or_insert_with(&new)
            .clone();
        incoming.extensions_mut().insert(session);
    }
}

mod memory_session {
    use super::*;
    use flash_session::{MemorySession, SessionStorage};

    static SESSIONS: LazyLock<Mutex<HashMap<u64, MemorySession>>> = LazyLock::new(Mutex::default);

    async fn factory(_options: Options) -> Option<Harness> {
        // Shared by every harness of a test, so a browser keeps its session across harnesses.
        let hook = |client: u64, incoming: &mut flash_core::storage::Incoming| {
            let session = SESSIONS
                .lock()
                .expect("sessions")
                .entry(client)
                .or_default()
                .clone();
            incoming.extensions_mut().insert(session);
        };
        Some(
            Harness::new(SessionStorage::<MemorySession>::new(), SESSION, "")
                .with_request_hook(hook),
        )
    }

    flash_testkit::conformance_tests!(factory);
}

#[cfg(feature = "tower-sessions")]
mod tower_session {
    use super::*;
    use std::sync::Arc;

    use flash_session::TowerSessionStorage;
    use tower_sessions::{MemoryStore, Session};

    async fn factory(_options: Options) -> Option<Harness> {
        let store = Arc::new(MemoryStore::default());
        let hook = per_client(move || Session::new(None, store.clone(), None));
        Some(Harness::new(TowerSessionStorage::new(), SESSION, "").with_request_hook(hook))
    }

    flash_testkit::conformance_tests!(factory);
}
