//! The keyed-store kit can fail: stores that break one rule of the contract on purpose (each
//! a wrapper around `MemoryStore`) make the kit's test of that rule panic, while rules they
//! keep still pass. The document stores, the stores with a server and the unreachable factory
//! are in `broken_documents.rs`, `broken_servers.rs` and `unreachable.rs`.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flash_core::{
    Limits, Message, Result, async_trait,
    storage::{ClientId, KeyedStore, LeaseId, MemoryStore, OperationId, Outcome},
};
use flash_testkit::keyed_kit::{self as kit, Inspect};
use flash_testkit::{KeyedFactory, Options};

/// The rule a [`Broken`] store breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    /// A consuming settle also consumes what the client's other live leases hold.
    ConsumesOtherLeases,
    /// A releasing settle also releases what the client's other live leases hold.
    ReleasesOtherLeases,
    /// A consuming settle also deletes what was appended after the lease.
    ConsumesLaterAppends,
    /// An append to an expired client brings its old messages back.
    RevivesExpired,
    /// A settle's append keeps the client's old expiry.
    SettleKeepsOldTtl,
    /// Limits are not enforced.
    IgnoresLimits,
    /// Limits are checked against a count read before the write, not in the same step.
    ChecksThenAppends,
    /// Expired clients are swept once a minute (`MemoryStore`'s default), not every
    /// `Options::sweep_interval`: a store without its sweeper, as far as a test can tell.
    NeverSweeps,
    /// Claims to remember operations, and applies a write sent again a second time.
    ForgetsOperations,
    /// Remembers only the 32 latest operations of a client (as flash-redis did before
    /// 2026-12-07), and applies an older one sent again a second time.
    ForgetsOldOperations,
}

struct Broken {
    inner: MemoryStore,
    breakage: Breakage,
    /// Every lease taken, per client.
    leases: Mutex<HashMap<ClientId, Vec<LeaseId>>>,
    /// Every message appended, and when the client expires, per client.
    log: Mutex<HashMap<ClientId, (Vec<Message>, Instant)>>,
    /// The latest operations and what each kept, per client (`ForgetsOldOperations`).
    recent: Mutex<HashMap<ClientId, VecDeque<(OperationId, usize)>>>,
}

/// No bound at all.
fn unlimited() -> Limits {
    Limits::default()
        .with_max_text_len(usize::MAX)
        .with_max_messages(usize::MAX)
        .with_max_bytes(usize::MAX)
}

impl Broken {
    fn new(breakage: Breakage, options: &Options) -> Self {
        let inner = if breakage == Breakage::NeverSweeps {
            MemoryStore::new()
        } else {
            MemoryStore::new().with_sweep_interval(options.sweep_interval)
        };
        Broken {
            inner,
            breakage,
            leases: Mutex::default(),
            log: Mutex::default(),
            recent: Mutex::default(),
        }
    }

    fn limits(&self, limits: &Limits) -> Limits {
        if self.breakage == Breakage::IgnoresLimits {
            unlimited()
        } else {
            *limits
        }
    }

    fn others(&self, client: &ClientId, lease: &LeaseId) -> Vec<LeaseId> {
        let leases = self.leases.lock().unwrap();
        let all = leases.get(client).cloned().unwrap_or_default();
        all.into_iter().filter(|l| l != lease).collect()
    }

    /// The client's expiry as the log knows it, and the messages it ever had.
    fn logged(&self, client: &ClientId) -> Option<(Vec<Message>, Instant)> {
        self.log.lock().unwrap().get(client).cloned()
    }

    fn log(&self, client: &ClientId, messages: &[Message], ttl: Duration) {
        let mut log = self.log.lock().unwrap();
        let entry = log
            .entry(*client)
            .or_insert_with(|| (Vec::new(), Instant::now()));
        entry.0.extend_from_slice(messages);
        entry.1 = Instant::now() + ttl;
    }
}

const UNLIMITED_TTL: Duration = Duration::from_secs(3600);

#[async_trait]
impl KeyedStore for Broken {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        if self.breakage == Breakage::RevivesExpired
            && let Some((old, expires)) = self.logged(client)
            && expires <= Instant::now()
        {
            self.inner
                .append(client, &old, UNLIMITED_TTL, &self.limits(limits))
                .await?;
        }
        if self.breakage == Breakage::ChecksThenAppends {
            // Read, then write: another append of the client runs in between.
            let (count, bytes) = self.logged(client).map_or((0, 0), |(logged, _)| {
                (logged.len(), logged.iter().map(Message::size).sum())
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
            let kept = limits.fitting(count, bytes, messages);
            self.inner
                .append(client, &messages[..kept], ttl, &unlimited())
                .await?;
            self.log(client, &messages[..kept], ttl);
            return Ok(kept);
        }
        let kept = self
            .inner
            .append(client, messages, ttl, &self.limits(limits))
            .await?;
        self.log(client, &messages[..kept], ttl);
        Ok(kept)
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        self.leases
            .lock()
            .unwrap()
            .entry(*client)
            .or_default()
            .push(*lease);
        self.inner.lease(client, lease, lease_timeout).await
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
        let limits = self.limits(limits);
        match (self.breakage, outcome) {
            (Breakage::ConsumesOtherLeases, Outcome::Consumed)
            | (Breakage::ReleasesOtherLeases, Outcome::Released) => {
                for other in self.others(client, lease) {
                    self.inner
                        .settle(client, &other, outcome, &[], ttl, &limits)
                        .await?;
                }
            }
            (Breakage::ConsumesLaterAppends, Outcome::Consumed) => {
                self.inner
                    .settle(client, lease, outcome, &[], ttl, &limits)
                    .await?;
                let sweep = LeaseId::random();
                self.inner.lease(client, &sweep, UNLIMITED_TTL).await?;
                self.inner
                    .settle(client, &sweep, Outcome::Consumed, &[], ttl, &limits)
                    .await?;
            }
            _ => {}
        }
        let ttl = match (self.breakage, self.logged(client)) {
            (Breakage::SettleKeepsOldTtl, Some((_, expires))) => {
                expires.saturating_duration_since(Instant::now())
            }
            _ => ttl,
        };
        let kept = self
            .inner
            .settle(client, lease, outcome, append, ttl, &limits)
            .await?;
        self.log(client, &append[..kept], ttl);
        Ok(kept)
    }

    fn remembers_operations(&self) -> Option<Duration> {
        self.inner.remembers_operations()
    }

    async fn append_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        if self.breakage == Breakage::ForgetsOperations {
            return self.append(client, messages, ttl, limits).await;
        }
        if self.breakage == Breakage::ForgetsOldOperations {
            let known = self
                .recent
                .lock()
                .unwrap()
                .get(client)
                .and_then(|ops| ops.iter().find(|(id, _)| id == op).map(|(_, kept)| *kept));
            if let Some(kept) = known {
                return Ok(kept);
            }
            let kept = self.append(client, messages, ttl, limits).await?;
            let mut recent = self.recent.lock().unwrap();
            let ops = recent.entry(*client).or_default();
            ops.push_back((*op, kept));
            if ops.len() > 32 {
                ops.pop_front();
            }
            return Ok(kept);
        }
        self.inner
            .append_once(op, client, messages, ttl, &self.limits(limits))
            .await
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
        if self.breakage == Breakage::ForgetsOperations {
            return self
                .settle(client, lease, outcome, append, ttl, limits)
                .await;
        }
        self.inner
            .settle_once(
                op,
                client,
                lease,
                outcome,
                append,
                ttl,
                &self.limits(limits),
            )
            .await
    }
}

#[async_trait]
impl Inspect for Broken {
    async fn held(&self, client: &ClientId) -> Result<usize> {
        self.inner.held(client).await
    }
}

fn broken(breakage: Breakage) -> KeyedFactory {
    KeyedFactory::new(move |options: Options| async move { Some(Broken::new(breakage, &options)) })
}

/// Whether `test` panicked.
async fn panics(test: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::spawn(test).await {
        Ok(()) => false,
        Err(err) => err.is_panic(),
    }
}

async fn assert_fails<F, Fut>(breakage: Breakage, name: &str, test: F)
where
    F: FnOnce(KeyedFactory) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    assert!(
        panics(test(broken(breakage))).await,
        "{name} passed on a store that {breakage:?}"
    );
}

/// The wrappers are working stores apart from their breakage: the rules they keep pass.
#[tokio::test(flavor = "multi_thread")]
async fn each_broken_store_keeps_the_other_rules() {
    for breakage in [
        Breakage::ConsumesOtherLeases,
        Breakage::ReleasesOtherLeases,
        Breakage::ConsumesLaterAppends,
        Breakage::RevivesExpired,
        Breakage::SettleKeepsOldTtl,
        Breakage::IgnoresLimits,
        Breakage::ChecksThenAppends,
        Breakage::NeverSweeps,
        Breakage::ForgetsOperations,
        Breakage::ForgetsOldOperations,
    ] {
        for (name, passed) in [
            (
                "append_keeps_order",
                !panics(kit::append_keeps_order(broken(breakage))).await,
            ),
            (
                "released_comes_back_in_order",
                !panics(kit::released_comes_back_in_order(broken(breakage))).await,
            ),
            (
                "consumed_deletes_what_the_lease_holds",
                !panics(kit::consumed_deletes_what_the_lease_holds(broken(breakage))).await,
            ),
        ] {
            assert!(passed, "{name} failed on a store that only {breakage:?}");
        }
    }
}

/// Issue 19: a store that claims to remember operations and applies a write sent again twice
/// fails the kit; the same store that keeps the rule passes it.
#[tokio::test(flavor = "multi_thread")]
async fn forgetting_operations_fails_the_kit() {
    assert_fails(
        Breakage::ForgetsOperations,
        "a_write_sent_again_is_applied_once",
        kit::a_write_sent_again_is_applied_once,
    )
    .await;
    assert!(
        !panics(kit::a_write_sent_again_is_applied_once(broken(
            Breakage::ChecksThenAppends
        )))
        .await
    );
}

/// A store that remembers only a client's 32 latest operations applies an older one sent
/// again twice: the kit fails it; `MemoryStore` itself passes.
#[tokio::test(flavor = "multi_thread")]
async fn forgetting_old_operations_fails_the_kit() {
    assert_fails(
        Breakage::ForgetsOldOperations,
        "a_write_sent_again_after_others_is_applied_once",
        kit::a_write_sent_again_after_others_is_applied_once,
    )
    .await;
    assert!(
        !panics(kit::a_write_sent_again_after_others_is_applied_once(
            broken(Breakage::ChecksThenAppends)
        ))
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consuming_another_live_lease_fails_the_kit() {
    assert_fails(
        Breakage::ConsumesOtherLeases,
        "consumed_spares_another_live_lease",
        kit::consumed_spares_another_live_lease,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn releasing_another_lease_fails_the_kit() {
    assert_fails(
        Breakage::ReleasesOtherLeases,
        "released_spares_another_lease",
        kit::released_spares_another_lease,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consuming_later_appends_fails_the_kit() {
    assert_fails(
        Breakage::ConsumesLaterAppends,
        "consumed_spares_later_appends",
        kit::consumed_spares_later_appends,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reviving_an_expired_client_fails_the_kit() {
    assert_fails(
        Breakage::RevivesExpired,
        "append_to_an_expired_client_starts_afresh",
        kit::append_to_an_expired_client_starts_afresh,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settle_that_keeps_the_old_ttl_fails_the_kit() {
    assert_fails(
        Breakage::SettleKeepsOldTtl,
        "settle_append_renews_the_ttl",
        kit::settle_append_renews_the_ttl,
    )
    .await;
}

/// Every limits test fails on a store that ignores the limits.
#[tokio::test(flavor = "multi_thread")]
async fn ignoring_limits_fails_every_limits_test() {
    let b = Breakage::IgnoresLimits;
    assert_fails(
        b,
        "append_beyond_max_messages_keeps_the_prefix",
        kit::append_beyond_max_messages_keeps_the_prefix,
    )
    .await;
    assert_fails(
        b,
        "append_beyond_max_bytes_keeps_the_prefix",
        kit::append_beyond_max_bytes_keeps_the_prefix,
    )
    .await;
    assert_fails(
        b,
        "pending_bytes_are_message_size",
        kit::pending_bytes_are_message_size,
    )
    .await;
    assert_fails(
        b,
        "settle_append_beyond_limits_keeps_the_prefix",
        kit::settle_append_beyond_limits_keeps_the_prefix,
    )
    .await;
    assert_fails(
        b,
        "settle_append_counts_after_consumption",
        kit::settle_append_counts_after_consumption,
    )
    .await;
    assert_fails(
        b,
        "concurrent_appends_never_exceed_max_messages",
        kit::concurrent_appends_never_exceed_max_messages,
    )
    .await;
    assert_fails(
        b,
        "concurrent_appends_never_exceed_max_bytes",
        kit::concurrent_appends_never_exceed_max_bytes,
    )
    .await;
    assert_fails(b, "too_long_text_is_refused", kit::too_long_text_is_refused).await;
}

/// A store that checks the limits in one step and appends in another lets 16 concurrent
/// appends of one client exceed them together.
#[tokio::test(flavor = "multi_thread")]
async fn checking_limits_apart_from_the_append_fails_the_kit() {
    let b = Breakage::ChecksThenAppends;
    assert_fails(
        b,
        "concurrent_appends_never_exceed_max_messages",
        kit::concurrent_appends_never_exceed_max_messages,
    )
    .await;
    assert_fails(
        b,
        "concurrent_appends_never_exceed_max_bytes",
        kit::concurrent_appends_never_exceed_max_bytes,
    )
    .await;
    // One append at a time, it keeps the limits.
    assert!(!panics(kit::append_beyond_max_messages_keeps_the_prefix(broken(b))).await);
}

/// A store that keeps expired clients until a sweep that comes a minute later fails the
/// expiry check, although flash never sees the expired messages (every other TTL test passes).
#[tokio::test(flavor = "multi_thread")]
async fn a_store_without_its_sweeper_fails_the_kit() {
    let b = Breakage::NeverSweeps;
    assert_fails(
        b,
        "what_is_written_expires_in_the_store",
        kit::what_is_written_expires_in_the_store,
    )
    .await;
    assert!(!panics(kit::append_to_an_expired_client_starts_afresh(broken(b))).await);
    assert!(!panics(kit::append_renews_the_ttl(broken(b))).await);
    // The same store sweeping every Options::sweep_interval passes.
    let good = KeyedFactory::new(|options: Options| async move {
        Some(MemoryStore::new().with_sweep_interval(options.sweep_interval))
    });
    assert!(!panics(kit::what_is_written_expires_in_the_store(good)).await);
}
