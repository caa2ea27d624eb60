//! The conformance suite can fail a storage that appends without limits: a `Storage` written
//! directly (not through `SimpleStorage`, which applies the limits for it) that keeps whatever
//! each request adds fails `pending_stays_within_the_limits_across_requests`; the same storage
//! honouring `Update::limits` passes it.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flash_core::http::HeaderMap;
use flash_core::http::header::SET_COOKIE;
use flash_core::storage::{Incoming, LoadToken, Loaded, Storage, Update};
use flash_core::{Message, Result, async_trait};
use flash_testkit::{Capabilities, Harness, Options, run, tests};

const COOKIE: &str = "plug_id";

/// Every client's messages in memory, found by an id cookie; `limited` decides whether the
/// save honours the client's limits.
#[derive(Clone, Default)]
struct Plug {
    clients: Arc<Mutex<HashMap<String, Vec<Message>>>>,
    next: Arc<Mutex<u64>>,
    limited: bool,
}

#[async_trait]
impl Storage for Plug {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        let messages = request
            .cookie(COOKIE)
            .and_then(|id| self.clients.lock().unwrap().get(id).cloned())
            .unwrap_or_default();
        Ok(Loaded::new(messages, LoadToken::new(())))
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let id = match request.cookie(COOKIE) {
            Some(id) => id.to_owned(),
            None => {
                let mut next = self.next.lock().unwrap();
                *next += 1;
                let id = format!("c{next}");
                response.append(SET_COOKIE, format!("{COOKIE}={id}").parse().unwrap());
                id
            }
        };
        let limits = update.limits;
        let was_loaded = update.was_loaded();
        let consumed = update.consumed;
        let mut clients = self.clients.lock().unwrap();
        let held = clients.entry(id).or_default();
        let mut pending = if was_loaded {
            if consumed {
                Vec::new()
            } else {
                update.unread.clone()
            }
        } else {
            std::mem::take(held)
        };
        pending.extend(update.added);
        let dropped = if self.limited {
            let fitting = limits.fitting(0, 0, &pending);
            pending.split_off(fitting)
        } else {
            Vec::new()
        };
        *held = pending;
        Ok(dropped)
    }
}

fn plug(limited: bool) -> impl Fn(Options) -> std::future::Ready<Option<Harness>> + Send + Sync {
    move |_| {
        let storage = Plug {
            limited,
            ..Plug::default()
        };
        std::future::ready(Some(Harness::new(
            storage,
            Capabilities::NONE.with_large_messages(true),
            COOKIE,
        )))
    }
}

#[test]
fn a_storage_appending_without_limits_fails_the_suite() {
    let failed = std::panic::catch_unwind(|| {
        run(
            "pending_stays_within_the_limits_across_requests",
            plug(false),
            tests::pending_stays_within_the_limits_across_requests,
        );
    });
    assert!(failed.is_err(), "the suite passed a storage without limits");
}

#[test]
fn the_same_storage_honouring_the_limits_passes() {
    run(
        "pending_stays_within_the_limits_across_requests",
        plug(true),
        tests::pending_stays_within_the_limits_across_requests,
    );
    // And the suite's basics, so the plug is a fair one.
    run(
        "twenty_five_messages_in_order",
        plug(true),
        tests::twenty_five_messages_in_order,
    );
}
