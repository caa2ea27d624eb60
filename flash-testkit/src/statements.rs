//! Counting the statements sqlx sends, for tests and benches that count round trips.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::subscriber::Interest;
use tracing::{Event, Metadata, span};

/// The `tracing` target of sqlx's statement log: one event per statement sent.
const SQLX_QUERY: &str = "sqlx::query";

/// A `tracing` subscriber that counts the statements sqlx sends (its `sqlx::query` events) and
/// records nothing else. Install it as the default subscriber: for the whole process with
/// `tracing::subscriber::set_global_default` (SQLite's statements run on sqlx's worker
/// thread), or for one thread with `tracing::subscriber::set_default`. Clones share the count.
///
/// ```
/// use flash_testkit::StatementCounter;
///
/// let counter = StatementCounter::new();
/// tracing::subscriber::with_default(counter.clone(), || {
///     tracing::debug!(target: "sqlx::query", "SELECT 1"); // as sqlx logs a statement
///     tracing::debug!(target: "my_app", "not a statement");
/// });
/// assert_eq!(counter.take(), 1);
/// assert_eq!(counter.count(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The statements counted so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// The statements counted so far, and the count back to zero.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::SeqCst)
    }
}

impl tracing::Subscriber for StatementCounter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target() == SQLX_QUERY {
            Interest::always()
        } else {
            Interest::never()
        }
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == SQLX_QUERY
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() == SQLX_QUERY {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
}
