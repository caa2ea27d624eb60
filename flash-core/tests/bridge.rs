//! The keyed bridge under a store that fails or stalls on demand (a wrapper around
//! `MemoryStore`): deadlines, released leases, messages carried while the store is down, the
//! id cookie's name and minting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flash_core::{
    CookieOptions, Error, ErrorKind, Key, Limits, Message, Result, async_trait,
    storage::{ClientId, KeyedStore, LeaseId, MemoryStore, Outcome, ServerStorage},
};
use flash_testkit::{Capabilities, Client, Harness};

/// What the store does now: answer, fail as unreachable, or answer only after a pause (having
/// done the work, as a server whose reply is late).
#[derive(Clone, Default)]
struct Faults {
    down: Arc<AtomicBool>,
    lease_delay_ms: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
}

impl Faults {
    fn down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Unavailable, "the test store is down"));
        }
        Ok(())
    }

    async fn after(&self, lease: bool) {
        let ms = if lease {
            self.lease_delay_ms.load(Ordering::SeqCst)
        } else {
            self.delay_ms.load(Ordering::SeqCst)
        };
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

struct Faulty {
    inner: MemoryStore,
    faults: Faults,
}

#[async_trait]
impl KeyedStore for Faulty {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        self.faults.check()?;
        let kept = self.inner.append(client, messages, ttl, limits).await;
        self.faults.after(false).await;
        kept
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        self.faults.check()?;
        let leased = self.inner.lease(client, lease, lease_timeout).await;
        self.faults.after(true).await;
        leased
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
        self.faults.check()?;
        let kept = self
            .inner
            .settle(client, lease, outcome, append, ttl, limits)
            .await;
        self.faults.after(false).await;
        kept
    }
}

const DEADLINE: Duration = Duration::from_millis(200);
/// Far beyond the deadline: a call this slow must have been cut by it.
const STALL_MS: u64 = 10_000;

struct Setup {
    harness: Harness,
    faults: Faults,
    memory: MemoryStore,
    id: String,
    carry: String,
}

fn setup_with(configure: impl FnOnce(ServerStorage<Faulty>) -> ServerStorage<Faulty>) -> Setup {
    let faults = Faults::default();
    let memory = MemoryStore::new();
    let store = Faulty {
        inner: memory.clone(),
        faults: faults.clone(),
    };
    let storage = configure(ServerStorage::new(store, Key::generate()).with_call_timeout(DEADLINE));
    let (id, carry) = (
        storage.cookie_name().to_owned(),
        storage.carry_cookie_name().to_owned(),
    );
    Setup {
        harness: Harness::new(storage, Capabilities::ALL, id.clone()),
        faults,
        memory,
        id,
        carry,
    }
}

fn setup() -> Setup {
    setup_with(|storage| storage)
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

async fn seed(client: &Client, texts: &[&str]) -> flash_core::SaveReport {
    let request = client.request();
    for text in texts {
        assert!(request.info(*text));
    }
    request.finish().await.report
}

async fn read_all(client: &Client) -> Vec<String> {
    let request = client.request();
    let messages = request.read().await.expect("read");
    request.finish().await;
    messages.into_iter().map(|m| m.text).collect()
}

#[tokio::test]
async fn a_stalled_store_call_fails_as_unavailable_at_the_deadline() {
    let s = setup();
    let client = s.harness.client();
    seed(&client, &["m1"]).await;
    s.faults.lease_delay_ms.store(STALL_MS, Ordering::SeqCst);

    let started = Instant::now();
    let request = client.request();
    let err = request.read().await.expect_err("the lease stalls");
    let waited = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("lease"), "{err}");
    assert!(
        waited < Duration::from_millis(STALL_MS / 2),
        "the call was not cut at its deadline: {waited:?}"
    );
    drop(request);

    // The stalled lease was applied all the same; the bridge released it, so the message is
    // back at once rather than after the 30 s lease.
    s.faults.lease_delay_ms.store(0, Ordering::SeqCst);
    let mut back = Vec::new();
    for _ in 0..50 {
        back = read_all(&client).await;
        if !back.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(back, ["m1"]);
    assert!(read_all(&client).await.is_empty(), "shown twice");
}

#[tokio::test]
async fn an_abandoned_request_gives_its_messages_back_at_once() {
    let s = setup();
    let client = s.harness.client();
    seed(&client, &["m1", "m2"]).await;
    let request = client.request();
    assert_eq!(request.read().await.expect("read").len(), 2);
    // A handler that panicked: the handle is dropped without a save.
    request.abandon();
    let mut back = Vec::new();
    for _ in 0..50 {
        back = read_all(&client).await;
        if !back.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(back, ["m1", "m2"]);
    assert!(read_all(&client).await.is_empty(), "shown twice");
}

#[tokio::test]
async fn added_while_down_is_carried_and_shown_once_while_still_down() {
    let s = setup();
    let client = s.harness.client();
    s.faults.down(true);
    let report = seed(&client, &["saved while down", "second"]).await;
    let degraded = report.degraded.expect("the failure is reported");
    assert_eq!(degraded.kind(), ErrorKind::Unavailable);
    assert!(report.dropped.is_empty());
    assert!(client.cookie(&s.carry).is_some(), "no carry cookie");
    assert!(
        client.cookie(&s.id).is_none(),
        "no id: nothing is in the store"
    );

    // The redirect's GET, the store still down: the carried messages alone, once.
    let request = client.request();
    assert_eq!(
        texts(&request.read().await.expect("read")),
        ["saved while down", "second"]
    );
    let response = request.finish().await;
    assert!(response.deletes(&s.carry), "{:?}", response.set_cookies());
    assert!(read_all(&client).await.is_empty(), "shown twice");
    s.faults.down(false);
    assert!(read_all(&client).await.is_empty(), "shown twice");
}

#[tokio::test]
async fn a_stalled_append_is_carried_too() {
    let s = setup();
    let client = s.harness.client();
    s.faults.delay_ms.store(STALL_MS, Ordering::SeqCst);
    let started = Instant::now();
    let report = seed(&client, &["slow"]).await;
    assert!(started.elapsed() < Duration::from_millis(STALL_MS / 2));
    let degraded = report.degraded.expect("reported");
    assert_eq!(degraded.kind(), ErrorKind::Unavailable);
    assert!(degraded.to_string().contains("append"), "{degraded}");
    assert!(client.cookie(&s.carry).is_some());
}

#[tokio::test]
async fn carried_messages_follow_the_store_s_older_ones_once_it_is_back() {
    let s = setup();
    let client = s.harness.client();
    seed(&client, &["older 1", "older 2"]).await;
    s.faults.down(true);
    let report = seed(&client, &["while down"]).await;
    assert!(report.degraded.is_some());
    // Read while down: the carried one alone; kept (not consumed) it stays carried.
    let request = client.request();
    assert_eq!(texts(&request.peek().await.expect("peek")), ["while down"]);
    assert!(request.finish().await.report.degraded.is_some());
    s.faults.down(false);

    let request = client.request();
    assert_eq!(
        texts(&request.read().await.expect("read")),
        ["older 1", "older 2", "while down"]
    );
    let response = request.finish().await;
    assert!(response.deletes(&s.carry), "{:?}", response.set_cookies());
    assert!(response.report.degraded.is_none());
    assert!(read_all(&client).await.is_empty(), "shown twice");
}

#[tokio::test]
async fn carried_messages_not_read_move_into_the_store_when_it_is_back() {
    let s = setup();
    let client = s.harness.client();
    seed(&client, &["older"]).await;
    s.faults.down(true);
    seed(&client, &["carried"]).await;
    s.faults.down(false);

    // Added without reading: the carried message goes to the store first, in its place.
    let response = {
        let request = client.request();
        request.info("newest");
        request.finish().await
    };
    assert!(response.deletes(&s.carry), "{:?}", response.set_cookies());
    assert_eq!(read_all(&client).await, ["older", "carried", "newest"]);

    // Peeked (not consumed) with the store back: moved into the store too.
    s.faults.down(true);
    seed(&client, &["carried again"]).await;
    s.faults.down(false);
    let request = client.request();
    assert_eq!(
        texts(&request.peek().await.expect("peek")),
        ["carried again"]
    );
    let response = request.finish().await;
    assert!(response.deletes(&s.carry), "{:?}", response.set_cookies());
    assert!(client.cookie(&s.carry).is_none());
    assert_eq!(read_all(&client).await, ["carried again"]);
}

#[tokio::test]
async fn adding_while_down_again_keeps_what_was_carried() {
    let s = setup();
    let client = s.harness.client();
    s.faults.down(true);
    seed(&client, &["first"]).await;
    seed(&client, &["second"]).await;
    assert_eq!(read_all(&client).await, ["first", "second"]);
}

#[tokio::test]
async fn a_tampered_carry_cookie_is_ignored_and_deleted() {
    let s = setup();
    let client = s.harness.client();
    s.faults.down(true);
    seed(&client, &["genuine"]).await;
    s.faults.down(false);
    let valid = client.cookie(&s.carry).expect("carried");
    let forged = {
        // Another payload under the genuine signature.
        let (_, signature) = valid.rsplit_once('.').expect("a signed token");
        format!("W1syMCwiZm9yZ2VkIl1d.{signature}")
    };
    for value in [
        forged,
        valid[..valid.len() - 1].to_owned(),
        "garbage".to_owned(),
    ] {
        client.set_cookie(&s.carry, &value);
        let request = client.request();
        assert!(request.read().await.expect("read").is_empty(), "{value}");
        let response = request.finish().await;
        assert!(response.deletes(&s.carry), "{:?}", response.set_cookies());
        assert!(client.cookie(&s.carry).is_none());
    }
}

#[tokio::test]
async fn what_does_not_fit_the_carry_cookie_is_reported_dropped() {
    let s = setup();
    let client = s.harness.client();
    s.faults.down(true);
    let request = client.request();
    for i in 0..5 {
        assert!(request.info(format!("{i}:{}", "x".repeat(1000))));
    }
    let response = request.finish().await;
    let line = response
        .set_cookies()
        .into_iter()
        .find(|l| l.starts_with(&format!("{}=", s.carry)))
        .expect("a carry cookie");
    assert!(line.len() <= 4096, "{} bytes", line.len());
    let dropped = &response.report.dropped;
    assert!(!dropped.is_empty(), "5 KB cannot fit one cookie");
    let kept = read_all(&client).await;
    assert_eq!(kept.len() + dropped.len(), 5);
    // The oldest are kept, as a store keeps them.
    assert!(
        kept.iter()
            .enumerate()
            .all(|(i, t)| t.starts_with(&format!("{i}:")))
    );
}

#[tokio::test]
async fn the_id_cookie_takes_the_host_prefix_when_it_may() {
    let secure = CookieOptions::default().secure(true);
    let s = setup_with(|storage| storage.with_cookie_options(secure.clone()));
    assert_eq!(s.id, "__Host-flash_id");
    let client = s.harness.client();
    let response = {
        let request = client.request();
        request.info("hello");
        request.finish().await
    };
    let line = &response.set_cookies()[0];
    assert!(line.starts_with("__Host-flash_id="), "{line}");
    assert!(line.contains("; Secure") && line.contains("; Path=/") && !line.contains("Domain"));
    assert_eq!(read_all(&client).await, ["hello"]);

    let s = setup_with(|storage| storage.with_cookie_options(secure.clone().domain("example.com")));
    assert_eq!(s.id, "flash_id");
    let s = setup_with(|storage| storage.with_cookie_options(secure.clone().path("/app")));
    assert_eq!(s.id, "flash_id");
    let s = setup_with(|storage| storage.with_cookie_options(CookieOptions::default()));
    assert_eq!(s.id, "flash_id");
    let s = setup_with(|storage| {
        storage
            .with_cookie_options(secure.clone())
            .with_cookie_name("mine")
    });
    assert_eq!(s.id, "mine");
    let s = setup_with(|storage| storage.with_cookie_name("mine").with_cookie_options(secure));
    assert_eq!(s.id, "mine");
}

#[tokio::test]
async fn an_id_is_minted_only_without_a_valid_id_cookie() {
    let s = setup();
    let client = s.harness.client();
    seed(&client, &["one"]).await;
    let id = client.cookie(&s.id).expect("an id");
    seed(&client, &["two"]).await;
    assert_eq!(client.cookie(&s.id), Some(id.clone()), "a valid id is kept");
    assert_eq!(read_all(&client).await, ["one", "two"]);
    seed(&client, &["three"]).await;
    assert_eq!(client.cookie(&s.id), Some(id.clone()));

    client.set_cookie(&s.id, &format!("{id}x"));
    seed(&client, &["four"]).await;
    let minted = client.cookie(&s.id).expect("an id");
    assert_ne!(minted, id, "an id that fails verification is replaced");
    assert_eq!(read_all(&client).await, ["four"]);
    assert_eq!(
        s.memory.client_count(),
        1,
        "the old id's message stays, unreached"
    );
}

#[tokio::test]
async fn rotating_while_the_store_is_down_carries_the_messages() {
    let s = setup();
    let client = s.harness.client();
    s.faults.down(true);
    let request = client.request();
    request.info("welcome");
    request
        .rotate_id(flash_core::storage::Carry::Keep)
        .await
        .expect("rotating needs no read");
    let response = request.finish().await;
    assert!(response.report.degraded.is_some());
    assert_eq!(read_all(&client).await, ["welcome"]);
}

#[tokio::test]
async fn forgetting_while_the_store_is_down_still_forgets_the_id() {
    let s = setup();
    let client = s.harness.client();
    seed(&client, &["before logout"]).await;
    let old = client.cookie(&s.id).expect("an id");
    s.faults.down(true);
    let request = client.request();
    request.info("added before logout");
    let err = request
        .forget_id()
        .await
        .expect_err("nothing can be loaded");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    request.info("logged out");
    let response = request.finish().await;
    assert!(response.report.degraded.is_some());
    let new = client.cookie(&s.id).expect("a new id for the new message");
    assert_ne!(new, old);
    s.faults.down(false);
    assert_eq!(read_all(&client).await, ["logged out"]);
}
