//! The conformance suite on `CookieStorage` (flash's format, and Django's with feature
//! `django`) and on `Fallback(CookieStorage, ServerStorage<MemoryStore>)`.

/// flash's own cookie format. A cookie cannot be exactly-once across concurrent requests of
/// one browser, and has no room for large messages: it declares no capability.
mod cookie {
    use flash_cookie::CookieStorage;
    use flash_testkit::{Capabilities, Harness, Options};

    async fn cookie(options: Options) -> Option<Harness> {
        let storage = CookieStorage::new(options.keys("flash.cookie"));
        Some(Harness::new(storage, Capabilities::NONE, "messages"))
    }

    flash_testkit::conformance_tests!(cookie);
}

/// Django's cookie format, with the options' secret as Django's `SECRET_KEY`.
#[cfg(feature = "django")]
mod django {
    use flash_cookie::CookieStorage;
    use flash_testkit::{Capabilities, Harness, Options};

    async fn django(options: Options) -> Option<Harness> {
        let storage = CookieStorage::django(&options.secret, [] as [&str; 0]);
        // Django's value has no place for an address: it is kept beside, in `messages_to`.
        Some(Harness::new(storage, Capabilities::NONE, "messages"))
    }

    flash_testkit::conformance_tests!(django);
}

/// A cookie in front of a keyed memory store: large messages overflow to the store. Two tabs
/// share one cookie, so it is not exactly-once either.
///
/// Store calls are checked as upper bounds: a message that fits the cookie costs none;
/// `tests/fallback.rs` counts the calls of each placement exactly.
mod fallback {
    use flash_cookie::{CookieStorage, Fallback};
    use flash_core::storage::{MemoryStore, ServerStorage};
    use flash_testkit::{Capabilities, CountingStore, Harness, Options};

    async fn fallback(options: Options) -> Option<Harness> {
        let store = CountingStore::new(MemoryStore::new());
        let calls = store.counts();
        let keyed = ServerStorage::new(store, options.keys("flash.id"))
            .with_ttl(options.ttl)
            .with_lease_timeout(options.lease_timeout);
        let storage = Fallback::new(CookieStorage::new(options.keys("flash.cookie")), keyed);
        let capabilities = Capabilities::NONE.with_large_messages(true);
        Some(Harness::new(storage, capabilities, "messages").with_calls(calls, false))
    }

    flash_testkit::conformance_tests!(fallback);
}
