//! The keyed bridge under a store that fails or stalls on demand (a wrapper around
//! `MemoryStore`): deadlines, released leases, messages carried while the store is down, the
//! id cookie's name and minting.
#![allow(clippy::unwrap_used)] // a test store: a poisoned lock or a failed call is a failed test

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flash_core::{
    CookieOptions, Error, ErrorKind, Key, Limits, Message, Result, async_trait,
    storage::{ClientId, KeyedStore, LeaseId, MemoryStore, OperationId, Outcome, ServerStorage},
};
use flash_testkit::{Capabilities, Client, Harness};

/// A write the store received during a stall and applies when the stall ends (a stalled
/// connection delivers what it held when it heals): the bridge has given up on it by then.
enum Deferred {
    Append(
        Option<OperationId>,
        ClientId,
        Vec<Message>,
        Duration,
        Limits,
    ),
    Settle(
        Option<OperationId>,
        ClientId,
        LeaseId,
        Outcome,
        Vec<Message>,
        Duration,
        Limits,
    ),
    Lease(ClientId, LeaseId, Duration),
}

impl Deferred {
    /// Makes the call on `store`: a write answers how many it kept, a lease how many it took.
    async fn apply(self, store: &MemoryStore) -> Result<usize> {
        match self {
            Deferred::Append(Some(op), c, m, ttl, l) => {
                store.append_once(&op, &c, &m, ttl, &l).await
            }
            Deferred::Append(None, c, m, ttl, l) => store.append(&c, &m, ttl, &l).await,
            Deferred::Settle(Some(op), c, lease, o, m, ttl, l) => {
                store.settle_once(&op, &c, &lease, o, &m, ttl, &l).await
            }
            Deferred::Settle(None, c, lease, o, m, ttl, l) => {
                store.settle(&c, &lease, o, &m, ttl, &l).await
            }
            Deferred::Lease(c, lease, t) => store.lease(&c, &lease, t).await.map(|m| m.len()),
        }
    }
}

/// What the store does now: answer, fail as unreachable, answer only after a pause (having
/// done the work, as a server whose reply is late), or stall (nothing answers; what was sent
/// is applied, in order, when [`Faults::heal`] ends the stall).
#[derive(Clone, Default)]
struct Faults {
    down: Arc<AtomicBool>,
    lease_delay_ms: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    /// Fail the next N settles as unreachable (not applied).
    failing_settles: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<Deferred>>>,
}

impl Faults {
    fn down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Ends the stall: every call the store received meanwhile is applied now, in order.
    async fn heal(&self, store: &MemoryStore) {
        self.resume();
        self.deliver(store).await;
    }

    /// The store answers new calls again; what it held is not applied yet.
    fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// Applies what the store held during the stall, in order (late: nobody waits for it).
    async fn deliver(&self, store: &MemoryStore) {
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        for call in held {
            call.apply(store).await.unwrap();
        }
    }

    /// During a stall: keeps the call to apply at the heal and never answers (the bridge's
    /// deadline cuts the wait).
    async fn hold<T>(&self, call: Deferred) -> Result<T> {
        self.held.lock().unwrap().push(call);
        std::future::pending().await
    }

    fn stalled(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Unavailable, "the test store is down"));
        }
        Ok(())
    }

    fn check_settle(&self) -> Result<()> {
        self.check()?;
        let failing = &self.failing_settles;
        if failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::new(ErrorKind::Unavailable, "the settle was cut"));
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
    /// Whether the store remembers operations (forwards them to `MemoryStore`, which does).
    remembers: bool,
}

impl Faulty {
    /// A write through the faults: refused while the store is down (a settle also while
    /// settles are failing), held while it stalls, else applied and answered (late, when
    /// answers are delayed).
    async fn write(&self, call: Deferred) -> Result<usize> {
        match call {
            Deferred::Settle(..) => self.faults.check_settle()?,
            _ => self.faults.check()?,
        }
        if self.faults.stalled() {
            return self.faults.hold(call).await;
        }
        let kept = call.apply(&self.inner).await;
        self.faults.after(false).await;
        kept
    }
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
        let call = Deferred::Append(None, *client, messages.to_vec(), ttl, *limits);
        self.write(call).await
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        self.faults.check()?;
        if self.faults.stalled() {
            let call = Deferred::Lease(*client, *lease, lease_timeout);
            return self.faults.hold(call).await;
        }
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
        let call = Deferred::Settle(
            None,
            *client,
            *lease,
            outcome,
            append.to_vec(),
            ttl,
            *limits,
        );
        self.write(call).await
    }

    fn remembers_operations(&self) -> Option<Duration> {
        self.remembers
            .then(|| self.inner.remembers_operations())
            .flatten()
    }

    /// Without `remembers`, the operation id is forgotten, as by a store that cannot keep it.
    async fn append_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let op = self.remembers.then_some(*op);
        let call = Deferred::Append(op, *client, messages.to_vec(), ttl, *limits);
        self.write(call).await
    }

    async fn settle_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        let op = self.remembers.then_some(*op);
        let call = Deferred::Settle(op, *client, *lease, outcome, append.to_vec(), ttl, *limits);
        self.write(call).await
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
    setup_store(false, configure)
}

fn setup_store(
    remembers: bool,
    configure: impl FnOnce(ServerStorage<Faulty>) -> ServerStorage<Faulty>,
) -> Setup {
    let faults = Faults::default();
    let memory = MemoryStore::new();
    let store = Faulty {
        inner: memory.clone(),
        faults: faults.clone(),
        remembers,
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
        client.cookie(&s.id).is_some(),
        "an id: the carried write is finished under it"
    );

    // The redirect's GET, the store still down: the carried messages alone, once.
    let request = client.request();
    assert_eq!(
        texts(&request.read().await.expect("read")),
        ["saved while down", "second"]
    );
    let response = request.finish().await;
    // The cookie now remembers what was shown, to hide a copy the store may apply late.
    assert!(!response.deletes(&s.carry), "{:?}", response.set_cookies());
    assert!(read_all(&client).await.is_empty(), "shown twice");
    s.faults.down(false);
    assert!(read_all(&client).await.is_empty(), "shown twice");
    assert!(
        client.cookie(&s.carry).is_none(),
        "finished: no carry cookie"
    );
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

/// Issue 19: an append that timed out is carried under its operation id, and the copy the store
/// applies late is the same write as the one the next request sends again: with a store that
/// remembers operations the message shows once, whatever the order of the late copy, the
/// carried read and the store's return. A store that forgets them shows it twice when the late
/// copy lands after the next read (the case the operation id exists for).
#[tokio::test]
async fn a_late_append_and_its_carried_copy_are_one_write() {
    for remembers in [true, false] {
        // A short lease: the stalled GET's lease is delivered late too, and holds what it
        // finds until it expires.
        let lease = Duration::from_millis(300);
        let s = setup_store(remembers, |storage| storage.with_lease_timeout(lease));
        let client = s.harness.client();
        s.faults.stall();
        let report = seed(&client, &["m1"]).await;
        assert!(report.degraded.is_some(), "the append timed out");
        // The redirect's GET during the stall: the carried copy, alone.
        assert_eq!(read_all(&client).await, ["m1"]);
        // The store answers again, but the stalled append is still on its way.
        s.faults.resume();
        assert!(read_all(&client).await.is_empty(), "shown twice");
        s.faults.deliver(&s.memory).await;
        tokio::time::sleep(lease * 2).await;
        let later = read_all(&client).await;
        if remembers {
            assert!(later.is_empty(), "the late append was applied again");
            assert!(client.cookie(&s.carry).is_none());
        } else {
            assert_eq!(later, ["m1"], "a store that forgets operations");
        }
    }

    // The late copy applied before the next read: shown once, from the store.
    for remembers in [true, false] {
        let s = setup_store(remembers, |storage| storage);
        let client = s.harness.client();
        s.faults.stall();
        seed(&client, &["m1"]).await;
        s.faults.heal(&s.memory).await;
        seed(&client, &["m2"]).await;
        if remembers {
            assert_eq!(read_all(&client).await, ["m1", "m2"]);
        } else {
            // The add moved the carried copy into the store beside the late one (in order,
            // but twice): a store that forgets operations cannot tell them apart (counted).
            assert_eq!(read_all(&client).await, ["m1", "m1", "m2"]);
        }
        assert!(read_all(&client).await.is_empty(), "shown twice");
        assert!(client.cookie(&s.carry).is_none());
    }

    // Applied, and answered after the deadline (a slow reply, not a stall).
    let s = setup_store(true, |storage| storage);
    let client = s.harness.client();
    s.faults.delay_ms.store(STALL_MS, Ordering::SeqCst);
    assert!(seed(&client, &["slow"]).await.degraded.is_some());
    s.faults.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(read_all(&client).await, ["slow"]);
    assert!(read_all(&client).await.is_empty(), "shown twice");
}

/// Issue 19: a read whose settle was cut after the page was shown names the settle in the carry
/// cookie; the next request of the client (a read or not) finishes it first, so the messages do
/// not come back when the lease expires. Nothing added meanwhile is lost.
#[tokio::test]
async fn a_cut_settle_is_finished_by_the_next_request() {
    for (remembers, next_reads) in [(true, false), (false, false), (true, true), (false, true)] {
        let lease = Duration::from_millis(300);
        let s = setup_store(remembers, |storage| storage.with_lease_timeout(lease));
        let client = s.harness.client();
        seed(&client, &["m1"]).await;
        s.faults.failing_settles.store(1, Ordering::SeqCst);
        let request = client.request();
        assert_eq!(texts(&request.read().await.expect("read")), ["m1"]);
        assert!(request.info("added by the page"));
        let response = request.finish().await;
        assert!(response.report.degraded.is_some(), "the settle failed");
        assert!(client.cookie(&s.carry).is_some(), "the settle is carried");
        if next_reads {
            assert_eq!(read_all(&client).await, ["added by the page"]);
        } else {
            assert!(seed(&client, &["m2"]).await.degraded.is_none());
        }
        assert!(client.cookie(&s.carry).is_none(), "finished");
        tokio::time::sleep(lease * 2).await;
        let rest = read_all(&client).await;
        if next_reads {
            assert!(rest.is_empty(), "{rest:?}: shown again after the lease");
        } else {
            assert_eq!(rest, ["added by the page", "m2"], "shown again, or lost");
        }
    }
}

/// A settle whose answer was lost in a stall is sent again under its operation id: applied
/// once, its appended messages once.
#[tokio::test]
async fn a_stalled_settle_is_applied_once() {
    let s = setup_store(true, |storage| storage);
    let client = s.harness.client();
    seed(&client, &["m1"]).await;
    let request = client.request();
    assert_eq!(texts(&request.read().await.expect("read")), ["m1"]);
    assert!(request.info("added with the settle"));
    s.faults.stall();
    assert!(request.finish().await.report.degraded.is_some());
    s.faults.heal(&s.memory).await;
    assert_eq!(read_all(&client).await, ["added with the settle"]);
    assert!(read_all(&client).await.is_empty(), "shown twice");
}

/// A long stall with large messages: every page shows what the cookie carries, and the records
/// of what was shown (a digest each) still fit the cookie beside the new messages, so none of
/// the late copies shows when the store heals.
#[tokio::test]
async fn the_records_of_shown_messages_fit_a_long_stall() {
    let s = setup_store(true, |storage| storage);
    let client = s.harness.client();
    s.faults.stall();
    let mut shown = Vec::new();
    for i in 0..8 {
        let text = format!("{i}:{}", "x".repeat(1000));
        let report = seed(&client, &[text.as_str()]).await;
        assert!(report.dropped.is_empty(), "{i}: dropped");
        shown.extend(read_all(&client).await);
    }
    assert_eq!(shown.len(), 8, "each page showed its message once");
    s.faults.heal(&s.memory).await;
    assert!(read_all(&client).await.is_empty(), "a late copy showed");
    assert!(read_all(&client).await.is_empty());
    assert!(client.cookie(&s.carry).is_none(), "finished");
}
