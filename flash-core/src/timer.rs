//! The clock under every store-call deadline, so that flash-core needs no async runtime.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// A sleep of the application's async runtime: what a deadline waits on when flash-core is
/// built without its `tokio` feature.
///
/// With the `tokio` feature (the default) the keyed bridge's deadlines run on Tokio's timer
/// and no `Timer` is needed. Without it a [`ServerStorage`](crate::storage::ServerStorage) has
/// **no deadline** until the application gives it one with
/// [`ServerStorage::with_timer`](crate::storage::ServerStorage::with_timer): flash-core cannot
/// know which runtime polls it, and a deadline that blocks a thread would stall every request
/// on that thread. An application on another runtime hands over that runtime's sleep:
///
/// ```
/// use std::{future::Future, pin::Pin, time::Duration};
/// use flash_core::Key;
/// use flash_core::storage::{ServerStorage, MemoryStore, Timer};
/// # mod my_runtime { pub async fn sleep(_: std::time::Duration) {} }
///
/// struct RuntimeTimer;
///
/// impl Timer for RuntimeTimer {
///     fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
///         // The runtime's own: `smol::Timer::after`, `async_std::task::sleep`, a worker's timer…
///         Box::pin(my_runtime::sleep(duration))
///     }
/// }
///
/// let storage = ServerStorage::new(MemoryStore::new(), Key::generate()).with_timer(RuntimeTimer);
/// # let _ = storage;
/// ```
pub trait Timer: Send + Sync + 'static {
    /// A future that is ready once `duration` has passed.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Which clock a storage's deadlines run on.
#[derive(Clone)]
pub(crate) enum Clock {
    /// Tokio's timer (needs a runtime with its time driver, as every Tokio framework runs).
    #[cfg(feature = "tokio")]
    Tokio,
    /// The application's.
    Custom(Arc<dyn Timer>),
    /// None: calls run until the store answers (the store's own timeouts apply).
    #[cfg_attr(feature = "tokio", allow(dead_code))]
    Unbounded,
}

impl Default for Clock {
    fn default() -> Self {
        #[cfg(feature = "tokio")]
        return Clock::Tokio;
        #[cfg(not(feature = "tokio"))]
        return Clock::Unbounded;
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            #[cfg(feature = "tokio")]
            Clock::Tokio => "tokio",
            Clock::Custom(_) => "timer",
            Clock::Unbounded => "none",
        })
    }
}

impl Clock {
    /// `call`'s output, or `None` when `limit` passed first.
    pub(crate) async fn deadline<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = T>,
    ) -> Option<T> {
        match self {
            #[cfg(feature = "tokio")]
            Clock::Tokio => tokio::time::timeout(limit, call).await.ok(),
            Clock::Custom(timer) => {
                let mut call = std::pin::pin!(call);
                let mut sleep = timer.sleep(limit);
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(out) = call.as_mut().poll(cx) {
                        return Poll::Ready(Some(out));
                    }
                    sleep.as_mut().poll(cx).map(|()| None)
                })
                .await
            }
            Clock::Unbounded => Some(call.await),
        }
    }
}

/// Gives way once to the other tasks of the executor, whichever it is.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}
