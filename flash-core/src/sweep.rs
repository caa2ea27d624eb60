//! The one way a store sweeps on a schedule: [`SweepTask`].

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// A store's sweeper running on the Tokio runtime: dropping it (or calling
/// [`SweepTask::stop`]) stops the sweeping. Every store's `spawn_sweeper(every)` returns one
/// (`MemoryStore::spawn_sweeper`, `SqlStore::spawn_sweeper`), so every sweeper stops the same
/// way: keep the task as long as the store serves.
///
/// A backend author makes one with [`SweepTask::spawn`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> flash_core::Result<()> {
/// use std::time::Duration;
/// use flash_core::storage::MemoryStore;
///
/// let store = MemoryStore::new();
/// let sweeper = store.spawn_sweeper(Duration::from_secs(60))?;
/// assert!(!sweeper.is_finished());
/// drop(sweeper); // the sweeping stops here
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "dropping the SweepTask stops the sweeping"]
pub struct SweepTask(tokio::task::JoinHandle<()>);

impl SweepTask {
    /// Runs `round` now and then every `every` (at least a millisecond) on the current Tokio
    /// runtime, until the task is dropped or `round` answers `false` (the store is gone). A round
    /// that runs late is not made up for: the next waits a whole interval. `store` names the
    /// store in the error.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when called outside a Tokio runtime.
    pub fn spawn<F, Fut>(store: &'static str, every: Duration, mut round: F) -> Result<SweepTask>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|err| {
            Error::with_source(
                ErrorKind::Config,
                format!("{store}::spawn_sweeper needs a Tokio runtime"),
                err,
            )
        })?;
        let every = every.max(Duration::from_millis(1));
        Ok(SweepTask(runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if !round().await {
                    return;
                }
            }
        })))
    }

    /// Stops the sweeping (as dropping does).
    pub fn stop(self) {}

    /// Whether the task has ended (stopped, or the store is gone).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl Drop for SweepTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn outside_a_runtime_is_a_config_error() {
        let err =
            SweepTask::spawn("TestStore", Duration::from_secs(1), || async { true }).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.to_string().contains("TestStore::spawn_sweeper"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn dropping_stops_the_rounds() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let rounds = Arc::new(AtomicUsize::new(0));
        let counted = rounds.clone();
        let task = SweepTask::spawn("TestStore", Duration::from_millis(5), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                true
            }
        })
        .unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(rounds.load(Ordering::SeqCst) >= 2);
        drop(task);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after = rounds.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            rounds.load(Ordering::SeqCst),
            after,
            "a dropped task still swept"
        );
    }
}
