//! The conformance suite on `CookieStorage` (flash's format, and Django's with feature
//! `django`) and on `Fallback(CookieStorage, KeyedStorage<MemoryStore>)`.

/// flash's own cookie format. A cookie cannot be exactly-once across concurrent requests of
/// one browser, and has no room for large messages: it declares no capability.
mod cookie {
    use flash_cookie::CookieStorage;
    use flash_core::testkit::{Capabilities, Harness, Options};

    async fn cookie(options: Options) -> Option<Harness> {
        let storage = CookieStorage::new(options.keys("flash.cookie"));
        Some(Harness::new(storage, Capabilities::NONE, "messages"))
    }

    flash_core::conformance_tests!(cookie);
}

/// Django's cookie format, with the options' secret as Django's `SECRET_KEY`.
#[cfg(feature = "django")]
mod django {
    use flash_cookie::CookieStorage;
    use flash_core::testkit::{Capabilities, Harness, Options};

    async fn django(options: Options) -> Option<Harness> {
        let storage = CookieStorage::django(&options.secret, [] as [&str; 0]);
        Some(Harness::new(storage, Capabilities::NONE, "messages"))
    }

    flash_core::conformance_tests!(django);
}

/// A cookie in front of a keyed memory store: large messages overflow to the store. Two tabs
/// share one cookie, so it is not exactly-once either.
///
/// Every behaviour of the suite but `store_calls_are_counted`, whose premise is a storage that
/// sends every message to the keyed store ("a write-only request is one append"): here a
/// message that fits the cookie costs no store call at all. `tests/fallback.rs` counts the
/// calls this composition makes instead.
mod fallback {
    use flash_cookie::{CookieStorage, Fallback};
    use flash_core::testkit::{Capabilities, CountingStore, Harness, Options};
    use flash_core::{KeyedStorage, MemoryStore};

    async fn fallback(options: Options) -> Option<Harness> {
        let store = CountingStore::new(MemoryStore::new());
        let calls = store.counts();
        let keyed = KeyedStorage::new(store, options.keys("flash.id"))
            .ttl(options.ttl)
            .lease_timeout(options.lease_timeout);
        let storage = Fallback::new(CookieStorage::new(options.keys("flash.cookie")), keyed);
        let capabilities = Capabilities {
            large_messages: true,
            ..Capabilities::NONE
        };
        Some(Harness::new(storage, capabilities, "messages").with_calls(calls))
    }

    flash_core::__conformance_tests!(
        fallback;
        add_counts_and_added_new,
        empty_text_is_ignored,
        default_threshold_keeps_five,
        low_threshold_keeps_all,
        high_threshold_keeps_two,
        custom_threshold_keeps_three,
        app_threshold_applies,
        tags_follow_the_tag_map,
        custom_tag_map_and_custom_levels,
        extra_tags_and_html_flag_survive,
        reading_does_not_consume_until_iterated,
        existing_add_read_stores_nothing,
        existing_read_add_stores_one,
        add_then_update_stores_two,
        no_update_writes_nothing,
        twenty_five_messages_in_order,
        keep_undoes_consumption,
        now_messages_are_never_stored,
        unicode_and_emoji_survive,
        large_texts_survive,
        prefetch_neither_sees_nor_consumes,
        concurrent_reads_deliver_exactly_once,
        concurrent_adds_lose_nothing,
        unread_messages_come_back_in_order,
        dropped_request_loses_nothing,
        undelivered_messages_expire,
        bad_state_cookie_means_no_messages,
        wrong_key_means_no_messages,
    );
}
