//! flash-core with no async runtime: every future here is polled by `futures`' own executor,
//! never by Tokio. scripts/test runs this file with `--no-default-features` (flash-core
//! without its `tokio` feature); it passes with the feature on as well, since every storage
//! here is given a runtime-neutral timer.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use flash_core::http::HeaderMap;
use flash_core::storage::{
    ClientId, Incoming, KeyedStore, LeaseId, MemoryStore, Outcome, ServerStorage, Timer,
};
use flash_core::{ErrorKind, Key, Keys, Level, Limits, Message, Messages, MessagesConfig, Result};
use futures::executor::block_on;

/// A timer of no runtime: a thread sleeps, then wakes the task (what a runtime's timer does).
struct ThreadTimer;

struct ThreadSleep {
    done: Arc<AtomicBool>,
    duration: Option<Duration>,
}

impl Future for ThreadSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if let Some(duration) = self.duration.take() {
            let (done, waker) = (self.done.clone(), cx.waker().clone());
            std::thread::spawn(move || {
                std::thread::sleep(duration);
                done.store(true, Ordering::SeqCst);
                waker.wake();
            });
        }
        Poll::Pending
    }
}

impl Timer for ThreadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(ThreadSleep {
            done: Arc::new(AtomicBool::new(false)),
            duration: Some(duration),
        })
    }
}

/// A memory store whose calls never answer while `hang` is set (a server that stalls), or
/// answer only after `delay_ms` (a slow one).
#[derive(Clone, Default)]
struct Stalling {
    store: MemoryStore,
    hang: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

impl Stalling {
    async fn gate(&self) {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            ThreadTimer.sleep(Duration::from_millis(delay)).await;
        }
    }
}

#[flash_core::async_trait]
impl KeyedStore for Stalling {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        self.gate().await;
        self.store.append(client, messages, ttl, limits).await
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        self.gate().await;
        self.store.lease(client, lease, lease_timeout).await
    }

    async fn settle(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        self.gate().await;
        self.store
            .settle(client, lease, outcome, append, ttl, limits)
            .await
    }
}

fn keys() -> Keys {
    Keys::new(Key::from_bytes(&[7; 32]))
}

/// The `Cookie` header of the next request: the name=value part of each `Set-Cookie` line.
fn cookies_of(response: &HeaderMap) -> HeaderMap {
    let pairs: Vec<&str> = response
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap())
        .collect();
    let mut request = HeaderMap::new();
    request.insert("cookie", pairs.join("; ").parse().unwrap());
    request
}

#[test]
fn a_post_a_redirect_and_a_get_without_a_runtime() {
    let storage = Arc::new(ServerStorage::new(MemoryStore::new(), keys()).with_timer(ThreadTimer));
    let config = Arc::new(MessagesConfig::default());
    block_on(async {
        let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
        messages.success("Saved.");
        messages.add_message(Level::WARNING, "Check the title.");
        let mut response = HeaderMap::new();
        messages.save(&mut response).await.unwrap();

        let request = cookies_of(&response);
        let messages = Messages::new(
            storage.clone(),
            Incoming::from_headers(&request),
            config.clone(),
        );
        let shown = messages.read().await.unwrap();
        let texts: Vec<&str> = shown.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["Saved.", "Check the title."]);
        messages.save(&mut HeaderMap::new()).await.unwrap();

        let messages = Messages::new(storage, Incoming::from_headers(&request), config);
        assert!(messages.is_empty().await.unwrap(), "shown once");
    });
}

/// A store that stalls fails the read with `Unavailable` within the deadline, on the
/// application's timer: never "no messages", never a hang.
#[test]
fn a_stalled_store_is_unavailable_within_the_deadline_on_the_given_timer() {
    let store = Stalling::default();
    let hang = store.hang.clone();
    let storage = Arc::new(
        ServerStorage::new(store, keys())
            .with_call_timeout(Duration::from_millis(200))
            .with_timer(ThreadTimer),
    );
    let config = Arc::new(MessagesConfig::default());
    block_on(async {
        let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
        messages.info("pending");
        let mut response = HeaderMap::new();
        messages.save(&mut response).await.unwrap();
        let request = cookies_of(&response);

        hang.store(true, Ordering::SeqCst);
        let messages = Messages::new(
            storage.clone(),
            Incoming::from_headers(&request),
            config.clone(),
        );
        let started = Instant::now();
        let err = messages.read().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the deadline is 200 ms; took {:?}",
            started.elapsed()
        );
        drop(messages);

        // Back up: the message was never lost (its lease, never granted, is no obstacle).
        hang.store(false, Ordering::SeqCst);
        let messages = Messages::new(storage, Incoming::from_headers(&request), config);
        let texts: Vec<String> = messages
            .read()
            .await
            .unwrap()
            .iter()
            .map(|m| m.text.clone())
            .collect();
        assert_eq!(texts, ["pending"]);
    });
}

/// Without the `tokio` feature and without a timer there is no deadline: a slow store is
/// waited for, and its answer used (the documented trade; see `storage::Timer`).
#[cfg(not(feature = "tokio"))]
#[test]
fn without_tokio_and_without_a_timer_a_slow_store_is_waited_for() {
    let store = Stalling::default();
    let delay = store.delay_ms.clone();
    let storage =
        Arc::new(ServerStorage::new(store, keys()).with_call_timeout(Duration::from_millis(50)));
    let config = Arc::new(MessagesConfig::default());
    block_on(async {
        let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
        messages.info("late");
        let mut response = HeaderMap::new();
        messages.save(&mut response).await.unwrap();
        let request = cookies_of(&response);

        delay.store(300, Ordering::SeqCst);
        let started = Instant::now();
        let messages = Messages::new(storage, Incoming::from_headers(&request), config);
        let texts: Vec<String> = messages
            .read()
            .await
            .unwrap()
            .iter()
            .map(|m| m.text.clone())
            .collect();
        assert_eq!(texts, ["late"]);
        assert!(started.elapsed() >= Duration::from_millis(300));
    });
}
