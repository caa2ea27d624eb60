//! What an operator sees: counters and histograms through the [`metrics`] facade, and
//! `tracing` spans around store calls. Nothing here is recorded unless the application
//! installs a `metrics` recorder (an exporter such as `metrics-exporter-prometheus`); without
//! one every call is a no-op. No label ever holds a secret or a message's text.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `flash_messages_added_total` | counter | | messages queued by `add` (and `add_now`) |
//! | `flash_messages_shown_total` | counter | | messages read by a request that consumed them, or delivered in htmx's `HX-Trigger` |
//! | `flash_messages_refused_total` | counter | `reason` | messages refused at `add`: `too_large`, `too_much_pending`, `data_not_supported`, `too_large_for_storage` |
//! | `flash_messages_dropped_total` | counter | | messages a save could not keep (a full cookie, the client's limits across requests) |
//! | `flash_messages_carried_total` | counter | | messages carried in the signed carry cookie while the keyed store was unavailable |
//! | `flash_store_call_duration_seconds` | histogram | `backend`, `call` | each keyed store call (`append`, `lease`, `settle`), failed ones included |
//! | `flash_store_call_errors_total` | counter | `backend`, `call`, `kind` | failed store calls, by [`ErrorKind`] (`unavailable`, `backend`, …; a call past its deadline is `unavailable`) |
//! | `flash_leases_expired_total` | counter | `backend` | leases settled after their lease timeout had passed (the request took longer than `lease_timeout`: its messages may have been shown twice) |
//! | `flash_messages_maybe_duplicated_total` | counter | `backend`, `reason` | messages carried across an outage that may show twice: `store_forgets_operations` (a store whose `remembers_operations` is `None`), `carry_full` (a shown message's record did not fit the carry cookie) |

use std::time::Instant;

use crate::error::ErrorKind;
use crate::messages::Refused;

/// Messages queued by `add` and `add_now`.
pub const ADDED: &str = "flash_messages_added_total";
/// Messages shown: read by a request that consumed them, or delivered in `HX-Trigger`.
pub const SHOWN: &str = "flash_messages_shown_total";
/// Messages refused at `add`, by `reason`.
pub const REFUSED: &str = "flash_messages_refused_total";
/// Messages a save could not keep.
pub const DROPPED: &str = "flash_messages_dropped_total";
/// Messages carried in the carry cookie while the keyed store was unavailable.
pub const CARRIED: &str = "flash_messages_carried_total";
/// Keyed store call latency, by `backend` and `call`.
pub const STORE_CALL_DURATION: &str = "flash_store_call_duration_seconds";
/// Failed keyed store calls, by `backend`, `call` and `kind`.
pub const STORE_CALL_ERRORS: &str = "flash_store_call_errors_total";
/// Leases settled after their lease timeout, by `backend`.
pub const LEASES_EXPIRED: &str = "flash_leases_expired_total";
/// Messages carried across an outage that may show twice, by `backend` and `reason`:
/// `store_forgets_operations` (the store cannot recognise a late write as one already sent,
/// [`KeyedStore::remembers_operations`](crate::storage::KeyedStore::remembers_operations) is
/// `None`), `carry_full` (the record of a shown message did not fit the carry cookie).
pub const MAYBE_DUPLICATED: &str = "flash_messages_maybe_duplicated_total";

pub(crate) fn added() {
    metrics::counter!(ADDED).increment(1);
}

pub(crate) fn shown(n: usize) {
    if n > 0 {
        metrics::counter!(SHOWN).increment(n as u64);
    }
}

// Rare: out of the way of an add that is kept.
#[cold]
#[inline(never)]
pub(crate) fn refused(reason: Refused) {
    metrics::counter!(REFUSED, "reason" => reason_label(reason)).increment(1);
}

pub(crate) fn dropped(n: usize) {
    if n > 0 {
        metrics::counter!(DROPPED).increment(n as u64);
    }
}

pub(crate) fn carried(n: usize) {
    if n > 0 {
        metrics::counter!(CARRIED).increment(n as u64);
    }
}

pub(crate) fn lease_expired(backend: &'static str) {
    metrics::counter!(LEASES_EXPIRED, "backend" => backend).increment(1);
}

pub(crate) fn maybe_duplicated(backend: &'static str, reason: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!(MAYBE_DUPLICATED, "backend" => backend, "reason" => reason)
            .increment(n as u64);
    }
}

fn reason_label(reason: Refused) -> &'static str {
    match reason {
        Refused::TooLarge => "too_large",
        Refused::TooMuchPending => "too_much_pending",
        Refused::DataNotSupported => "data_not_supported",
        Refused::TooLargeForStorage => "too_large_for_storage",
    }
}

/// An [`ErrorKind`] as a label value.
pub(crate) fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Integrity => "integrity",
        ErrorKind::Encode => "encode",
        ErrorKind::Decode => "decode",
        ErrorKind::SizeLimit => "size_limit",
        ErrorKind::Config => "config",
        ErrorKind::Backend => "backend",
    }
}

/// A store's name as a label: its type's name without path, generics or a `Store` suffix,
/// lowercase (`MemoryStore` → `memory`, `RedisStore` → `redis`, `SqlStore` → `sql`).
pub(crate) fn backend_name<S: ?Sized>() -> &'static str {
    let full = std::any::type_name::<S>();
    let plain = full.split('<').next().unwrap_or(full);
    let last = plain.rsplit("::").next().unwrap_or(plain);
    let name = last
        .strip_suffix("Store")
        .filter(|n| !n.is_empty())
        .unwrap_or(last);
    // Leaked once per store type (a handful per process): labels need a `'static` str.
    static NAMES: std::sync::Mutex<Vec<(&'static str, &'static str)>> =
        std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, label)) = names.iter().find(|(f, _)| *f == full) {
        return label;
    }
    let label: &'static str = Box::leak(name.to_ascii_lowercase().into_boxed_str());
    names.push((full, label));
    label
}

/// One store call being timed; [`StoreCall::finish`] records it.
pub(crate) struct StoreCall {
    backend: &'static str,
    call: &'static str,
    started: Instant,
}

impl StoreCall {
    pub(crate) fn start(backend: &'static str, call: &'static str) -> Self {
        StoreCall {
            backend,
            call,
            started: Instant::now(),
        }
    }

    /// Records the call's latency and, when it failed, its error kind (`None`: its deadline
    /// passed, counted as `unavailable`).
    pub(crate) fn finish(self, answer: Option<std::result::Result<(), ErrorKind>>) {
        let elapsed = self.started.elapsed();
        metrics::histogram!(STORE_CALL_DURATION, "backend" => self.backend, "call" => self.call)
            .record(elapsed.as_secs_f64());
        let (outcome, kind) = match answer {
            Some(Ok(())) => ("ok", None),
            Some(Err(kind)) => ("error", Some(kind_label(kind))),
            None => ("timeout", Some(kind_label(ErrorKind::Unavailable))),
        };
        if let Some(kind) = kind {
            metrics::counter!(
                STORE_CALL_ERRORS,
                "backend" => self.backend,
                "call" => self.call,
                "kind" => kind
            )
            .increment(1);
        }
        tracing::Span::current().record("outcome", outcome);
        tracing::trace!(
            backend = self.backend,
            call = self.call,
            outcome,
            micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "flash store call"
        );
    }
}
