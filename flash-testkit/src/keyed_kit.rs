//! The keyed-store kit: the [`KeyedStore`] contract, checked on the store directly (not
//! through the [`ServerStorage`](flash_core::storage::ServerStorage) bridge), one public async function per
//! rule; [`keyed_store_tests!`](crate::keyed_store_tests) expands them into tests.
//!
//! The functions are public so that a test can also run one by hand, for example to show that
//! a store that breaks a rule makes it panic (`flash-testkit/tests/broken_stores.rs`).
//!
//! Every test works on fresh random [`ClientId`]s, so tests sharing one server never see each
//! other's messages; timing tests sleep a few seconds at most.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::Options;
use flash_core::storage::{ClientId, KeyedStore, LeaseId, Outcome};
use flash_core::{Level, Limits, Message};

type BoxedKeyedFactory = Arc<
    dyn Fn(Options) -> Pin<Box<dyn Future<Output = Option<Arc<dyn KeyedStore>>> + Send>>
        + Send
        + Sync,
>;

/// The store factory the kit's tests receive: an `async fn(Options) -> Option<S>` for any
/// `S: KeyedStore` (`Arc<dyn KeyedStore>` included). `None` means the server is unreachable.
#[derive(Clone)]
pub struct KeyedFactory(BoxedKeyedFactory);

impl KeyedFactory {
    /// Wraps `factory`.
    pub fn new<F, Fut, S>(factory: F) -> Self
    where
        F: Fn(Options) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<S>> + Send + 'static,
        S: KeyedStore,
    {
        let factory = Arc::new(factory);
        KeyedFactory(Arc::new(move |options| {
            let future = factory(options);
            Box::pin(async move { future.await.map(|s| Arc::new(s) as Arc<dyn KeyedStore>) })
        }))
    }

    /// A store for `test`, or `None` when the factory found no server: then the test is
    /// skipped with one line on stderr, and under `CI=true` it fails.
    pub async fn store(&self, test: &str) -> Option<Arc<dyn KeyedStore>> {
        let store = (self.0)(Options::new()).await;
        if store.is_none() {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{test}: the keyed store is unavailable under CI=true");
            }
            eprintln!("skipped: {test}: the keyed store is unavailable");
        }
        store
    }
}

/// Runs one kit test for `factory` on a fresh multi-threaded runtime (the macro calls this).
pub fn run<F, Fut, S, T, TFut>(factory: F, test: T)
where
    F: Fn(Options) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<S>> + Send + 'static,
    S: KeyedStore,
    T: FnOnce(KeyedFactory) -> TFut,
    TFut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(test(KeyedFactory::new(factory)));
}

/// Expands the keyed-store kit into one `#[test]` per rule of the [`KeyedStore`] contract for
/// `factory`, an `async fn(Options) -> Option<S>` where `S: KeyedStore` (or a closure
/// returning such a future). Each test runs on its own multi-threaded Tokio runtime, so the
/// calling crate needs no Tokio macros.
///
/// The factory isolates by [`Options::namespace`] where its server needs it (a key prefix, a
/// table; the tests already use fresh client ids) and returns `None` when its server cannot be
/// reached, best through [`unavailable`](super::unavailable): the test is then skipped with one
/// line on stderr, and fails under `CI=true`.
///
/// In a backend's `tests/keyed_kit.rs` (needs `flash-testkit` as a dev-dependency):
///
/// ```ignore
/// use flash_testkit::{Options, unavailable};
///
/// async fn store(options: Options) -> Option<my_backend::MyStore> {
///     let url = std::env::var("MY_URL").unwrap_or_else(|_| "my://127.0.0.1".into());
///     match my_backend::MyStore::connect(&url, &options.namespace).await {
///         Ok(store) => Some(store),
///         Err(err) => unavailable("my server", err),
///     }
/// }
///
/// flash_testkit::keyed_store_tests!(store);
/// ```
///
/// The tests are the public functions of [`testkit::keyed_kit`](crate::keyed_kit),
/// which a test can also call by hand with a [`KeyedFactory`].
#[macro_export]
macro_rules! keyed_store_tests {
    ($factory:expr) => {
        $crate::__keyed_store_tests!(
            $factory;
            append_keeps_order,
            append_keeps_every_field,
            lease_hides_from_other_leases,
            consumed_deletes_what_the_lease_holds,
            consumed_spares_another_live_lease,
            consumed_spares_later_appends,
            released_comes_back_in_order,
            released_spares_another_lease,
            expired_lease_is_leasable_again,
            settle_of_an_expired_lease_spares_the_new_holder,
            settle_of_an_unknown_lease_changes_nothing,
            append_to_an_expired_client_starts_afresh,
            settle_append_to_an_expired_client_starts_afresh,
            append_renews_the_ttl,
            settle_append_renews_the_ttl,
            append_beyond_max_messages_keeps_the_prefix,
            append_beyond_max_bytes_keeps_the_prefix,
            pending_bytes_are_message_size,
            settle_append_beyond_limits_keeps_the_prefix,
            settle_append_counts_after_consumption,
            concurrent_appends_never_exceed_max_messages,
            concurrent_appends_never_exceed_max_bytes,
            too_long_text_is_refused,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __keyed_store_tests {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::keyed_kit::run($factory, $crate::keyed_kit::$name);
            }
        )*
    };
}

macro_rules! store {
    ($factory:expr, $name:literal) => {
        match $factory.store($name).await {
            Some(store) => store,
            None => return,
        }
    };
}

/// A TTL no test outlives.
const LONG: Duration = Duration::from_secs(3600);
/// A lease no test outlives.
const HOLD: Duration = Duration::from_secs(60);
/// A lease that ends within a test.
const SHORT_LEASE: Duration = Duration::from_millis(500);
/// Long enough after [`SHORT_LEASE`] for any server's clock.
const AFTER_SHORT_LEASE: Duration = Duration::from_millis(1500);
/// A TTL that ends within a test.
const SHORT_TTL: Duration = Duration::from_millis(1000);
/// Long enough after [`SHORT_TTL`].
const AFTER_SHORT_TTL: Duration = Duration::from_millis(2500);
/// The TTL of the renewal tests, and the pause between their appends: two pauses outlive the
/// TTL, one does not.
const RENEW_TTL: Duration = Duration::from_millis(2000);
const RENEW_PAUSE: Duration = Duration::from_millis(1300);

fn info(text: &str) -> Message {
    Message::new(Level::INFO, text)
}

fn infos(texts: &[&str]) -> Vec<Message> {
    texts.iter().map(|t| info(t)).collect()
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

async fn append(store: &dyn KeyedStore, client: &ClientId, texts: &[&str], ttl: Duration) {
    let kept = store
        .append(client, &infos(texts), ttl, &Limits::default())
        .await
        .expect("append");
    assert_eq!(
        kept,
        texts.len(),
        "append under the limits kept only {kept}"
    );
}

async fn lease(
    store: &dyn KeyedStore,
    client: &ClientId,
    lease: &LeaseId,
    lease_timeout: Duration,
) -> Vec<Message> {
    store
        .lease(client, lease, lease_timeout)
        .await
        .expect("lease")
}

/// Everything visible for `client` now, leased and released again.
async fn visible(store: &dyn KeyedStore, client: &ClientId) -> Vec<Message> {
    let id = LeaseId::random();
    let messages = lease(store, client, &id, HOLD).await;
    settle(store, client, &id, Outcome::Released, &[]).await;
    messages
}

async fn settle(
    store: &dyn KeyedStore,
    client: &ClientId,
    lease: &LeaseId,
    outcome: Outcome,
    append: &[&str],
) -> usize {
    store
        .settle(
            client,
            lease,
            outcome,
            &infos(append),
            LONG,
            &Limits::default(),
        )
        .await
        .expect("settle")
}

/// `append` adds at the end of the client's queue and returns how many it kept; a lease
/// returns them oldest first; another client sees none of them.
pub async fn append_keeps_order(factory: KeyedFactory) {
    let store = store!(factory, "append_keeps_order");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], LONG).await;
    append(&*store, &client, &["m3"], LONG).await;
    append(&*store, &client, &["m4", "m5"], LONG).await;
    let leased = lease(&*store, &client, &LeaseId::random(), HOLD).await;
    assert_eq!(texts(&leased), ["m1", "m2", "m3", "m4", "m5"]);
    assert!(visible(&*store, &ClientId::random()).await.is_empty());
}

/// Level, text, extra tags, the trusted-HTML flag and the data come back as appended.
pub async fn append_keeps_every_field(factory: KeyedFactory) {
    let store = store!(factory, "append_keeps_every_field");
    let client = ClientId::random();
    let messages = vec![
        Message::new(Level::new(29), "custom level, ünïcödé ✓ 🎉").with_extra_tags("a b"),
        Message::new(Level::ERROR, "<b>bold</b>").trusted_html(),
        Message::new(Level::DEBUG, "plain"),
        Message::new(Level::SUCCESS, "with data")
            .with_extra_tags("undo")
            .with_data(serde_json::json!({"undo": "/a/7", "ids": [7, 8], "é": {"x": null}})),
    ];
    let kept = store
        .append(&client, &messages, LONG, &Limits::default())
        .await
        .expect("append");
    assert_eq!(kept, 4);
    let leased = lease(&*store, &client, &LeaseId::random(), HOLD).await;
    assert_eq!(leased, messages);
    for (got, sent) in leased.iter().zip(&messages) {
        assert_eq!(got.extra_tags, sent.extra_tags);
        assert_eq!(got.trusted_html, sent.trusted_html);
        assert_eq!(got.data, sent.data);
    }
}

/// A live lease hides its messages from other leases; messages appended later are visible
/// to the next lease.
pub async fn lease_hides_from_other_leases(factory: KeyedFactory) {
    let store = store!(factory, "lease_hides_from_other_leases");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], LONG).await;
    let first = lease(&*store, &client, &LeaseId::random(), HOLD).await;
    assert_eq!(texts(&first), ["m1", "m2"]);
    assert!(
        lease(&*store, &client, &LeaseId::random(), HOLD)
            .await
            .is_empty(),
        "a live lease's messages were leased again"
    );
    append(&*store, &client, &["m3"], LONG).await;
    let second = lease(&*store, &client, &LeaseId::random(), HOLD).await;
    assert_eq!(texts(&second), ["m3"]);
}

/// Settling `Consumed` deletes the lease's messages.
pub async fn consumed_deletes_what_the_lease_holds(factory: KeyedFactory) {
    let store = store!(factory, "consumed_deletes_what_the_lease_holds");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], LONG).await;
    let id = LeaseId::random();
    assert_eq!(lease(&*store, &client, &id, HOLD).await.len(), 2);
    assert_eq!(
        settle(&*store, &client, &id, Outcome::Consumed, &[]).await,
        0
    );
    assert!(visible(&*store, &client).await.is_empty());
}

/// Settling `Consumed` does not delete the messages another live lease holds.
pub async fn consumed_spares_another_live_lease(factory: KeyedFactory) {
    let store = store!(factory, "consumed_spares_another_live_lease");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], LONG).await;
    let first = LeaseId::random();
    assert_eq!(lease(&*store, &client, &first, HOLD).await.len(), 2);
    append(&*store, &client, &["m3"], LONG).await;
    let second = LeaseId::random();
    assert_eq!(texts(&lease(&*store, &client, &second, HOLD).await), ["m3"]);

    settle(&*store, &client, &first, Outcome::Consumed, &[]).await;
    settle(&*store, &client, &second, Outcome::Released, &[]).await;
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m3"],
        "consuming one lease deleted another live lease's messages"
    );
}

/// Settling `Consumed` does not delete messages appended after the lease was taken.
pub async fn consumed_spares_later_appends(factory: KeyedFactory) {
    let store = store!(factory, "consumed_spares_later_appends");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], LONG).await;
    let id = LeaseId::random();
    assert_eq!(lease(&*store, &client, &id, HOLD).await.len(), 2);
    append(&*store, &client, &["m3"], LONG).await;
    append(&*store, &client, &["m4"], LONG).await;
    settle(&*store, &client, &id, Outcome::Consumed, &["m5"]).await;
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m3", "m4", "m5"],
        "consuming a lease deleted messages appended after it"
    );
}

/// Settling `Released` puts the messages back in their original order, before later ones.
pub async fn released_comes_back_in_order(factory: KeyedFactory) {
    let store = store!(factory, "released_comes_back_in_order");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2", "m3"], LONG).await;
    let id = LeaseId::random();
    assert_eq!(lease(&*store, &client, &id, HOLD).await.len(), 3);
    append(&*store, &client, &["m4"], LONG).await;
    assert_eq!(
        settle(&*store, &client, &id, Outcome::Released, &["m5"]).await,
        1
    );
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m1", "m2", "m3", "m4", "m5"]
    );
}

/// Settling `Released` does not release the messages another live lease holds.
pub async fn released_spares_another_lease(factory: KeyedFactory) {
    let store = store!(factory, "released_spares_another_lease");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], LONG).await;
    let first = LeaseId::random();
    assert_eq!(lease(&*store, &client, &first, HOLD).await.len(), 2);
    append(&*store, &client, &["m3"], LONG).await;
    let second = LeaseId::random();
    assert_eq!(texts(&lease(&*store, &client, &second, HOLD).await), ["m3"]);

    settle(&*store, &client, &first, Outcome::Released, &[]).await;
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m1", "m2"],
        "releasing one lease released another live lease's messages"
    );
    settle(&*store, &client, &second, Outcome::Consumed, &[]).await;
    assert_eq!(texts(&visible(&*store, &client).await), ["m1", "m2"]);
}

/// A lease that was never settled ends by itself: its messages are leasable again, in order.
pub async fn expired_lease_is_leasable_again(factory: KeyedFactory) {
    let store = store!(factory, "expired_lease_is_leasable_again");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], LONG).await;
    assert_eq!(
        lease(&*store, &client, &LeaseId::random(), SHORT_LEASE)
            .await
            .len(),
        2
    );
    append(&*store, &client, &["m3"], LONG).await;
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    assert_eq!(
        texts(&lease(&*store, &client, &LeaseId::random(), HOLD).await),
        ["m1", "m2", "m3"]
    );
}

/// A lease that expired and whose messages another lease took: settling the first, either
/// way, does not touch the second's messages.
pub async fn settle_of_an_expired_lease_spares_the_new_holder(factory: KeyedFactory) {
    let store = store!(factory, "settle_of_an_expired_lease_spares_the_new_holder");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], LONG).await;
    let late = LeaseId::random();
    assert_eq!(lease(&*store, &client, &late, SHORT_LEASE).await.len(), 2);
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    let holder = LeaseId::random();
    assert_eq!(lease(&*store, &client, &holder, HOLD).await.len(), 2);

    settle(&*store, &client, &late, Outcome::Released, &[]).await;
    assert!(
        lease(&*store, &client, &LeaseId::random(), HOLD)
            .await
            .is_empty(),
        "an expired lease released the new holder's messages"
    );
    settle(&*store, &client, &late, Outcome::Consumed, &[]).await;
    settle(&*store, &client, &holder, Outcome::Released, &[]).await;
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m1", "m2"],
        "an expired lease consumed the new holder's messages"
    );
}

/// Settling a lease that holds nothing (never taken, or of another client) changes nothing
/// but appends.
pub async fn settle_of_an_unknown_lease_changes_nothing(factory: KeyedFactory) {
    let store = store!(factory, "settle_of_an_unknown_lease_changes_nothing");
    let client = ClientId::random();
    append(&*store, &client, &["m1"], LONG).await;
    let held = LeaseId::random();
    assert_eq!(lease(&*store, &client, &held, HOLD).await.len(), 1);
    settle(
        &*store,
        &client,
        &LeaseId::random(),
        Outcome::Consumed,
        &["m2"],
    )
    .await;
    settle(&*store, &ClientId::random(), &held, Outcome::Consumed, &[]).await;
    settle(&*store, &client, &held, Outcome::Released, &[]).await;
    assert_eq!(texts(&visible(&*store, &client).await), ["m1", "m2"]);
}

/// Appending to a client whose messages expired starts an empty queue: the old messages do
/// not come back.
pub async fn append_to_an_expired_client_starts_afresh(factory: KeyedFactory) {
    let store = store!(factory, "append_to_an_expired_client_starts_afresh");
    let client = ClientId::random();
    append(&*store, &client, &["old1", "old2"], SHORT_TTL).await;
    tokio::time::sleep(AFTER_SHORT_TTL).await;
    append(&*store, &client, &["new"], LONG).await;
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["new"],
        "an append brought expired messages back"
    );
}

/// Settling a lease of a client whose messages expired meanwhile, with messages to append:
/// only the new ones are pending after it.
pub async fn settle_append_to_an_expired_client_starts_afresh(factory: KeyedFactory) {
    let store = store!(factory, "settle_append_to_an_expired_client_starts_afresh");
    let client = ClientId::random();
    append(&*store, &client, &["old1", "old2"], SHORT_TTL).await;
    let id = LeaseId::random();
    assert_eq!(lease(&*store, &client, &id, HOLD).await.len(), 2);
    tokio::time::sleep(AFTER_SHORT_TTL).await;
    assert_eq!(
        settle(&*store, &client, &id, Outcome::Released, &["new"]).await,
        1
    );
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["new"],
        "a settle's append brought expired messages back"
    );
}

/// An append renews the TTL of everything pending for the client.
pub async fn append_renews_the_ttl(factory: KeyedFactory) {
    let store = store!(factory, "append_renews_the_ttl");
    let client = ClientId::random();
    append(&*store, &client, &["m1"], RENEW_TTL).await;
    tokio::time::sleep(RENEW_PAUSE).await;
    append(&*store, &client, &["m2"], RENEW_TTL).await;
    tokio::time::sleep(RENEW_PAUSE).await;
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m1", "m2"],
        "an append did not renew the TTL"
    );
    tokio::time::sleep(RENEW_TTL).await;
    assert!(visible(&*store, &client).await.is_empty(), "never expired");
}

/// The append of a settle renews the TTL as an append does.
pub async fn settle_append_renews_the_ttl(factory: KeyedFactory) {
    let store = store!(factory, "settle_append_renews_the_ttl");
    let client = ClientId::random();
    append(&*store, &client, &["m1", "m2"], RENEW_TTL).await;
    tokio::time::sleep(RENEW_PAUSE).await;
    let id = LeaseId::random();
    assert_eq!(lease(&*store, &client, &id, HOLD).await.len(), 2);
    let kept = store
        .settle(
            &client,
            &id,
            Outcome::Released,
            &infos(&["m3"]),
            RENEW_TTL,
            &Limits::default(),
        )
        .await
        .expect("settle");
    assert_eq!(kept, 1);
    tokio::time::sleep(RENEW_PAUSE).await;
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m1", "m2", "m3"],
        "a settle's append did not renew the TTL"
    );
}

/// Beyond `max_messages`, an append keeps exactly the prefix that fits and says how many.
pub async fn append_beyond_max_messages_keeps_the_prefix(factory: KeyedFactory) {
    let store = store!(factory, "append_beyond_max_messages_keeps_the_prefix");
    let client = ClientId::random();
    let limits = Limits::default().with_max_messages(3);
    let kept = |messages: Vec<Message>| {
        let store = store.clone();
        async move {
            store
                .append(&client, &messages, LONG, &limits)
                .await
                .expect("append")
        }
    };
    assert_eq!(kept(infos(&["m1", "m2"])).await, 2);
    assert_eq!(kept(infos(&["m3", "m4", "m5"])).await, 1);
    assert_eq!(kept(infos(&["m6"])).await, 0);
    assert_eq!(texts(&visible(&*store, &client).await), ["m1", "m2", "m3"]);
}

/// Beyond `max_bytes`, an append keeps exactly the prefix that fits and says how many.
pub async fn append_beyond_max_bytes_keeps_the_prefix(factory: KeyedFactory) {
    let store = store!(factory, "append_beyond_max_bytes_keeps_the_prefix");
    let client = ClientId::random();
    let limits = Limits::default().with_max_bytes(10);
    let append = |messages: Vec<Message>| {
        let store = store.clone();
        async move {
            store
                .append(&client, &messages, LONG, &limits)
                .await
                .expect("append")
        }
    };
    assert_eq!(append(infos(&["aaaa"])).await, 1);
    // 4 + 4 fits, 4 + 4 + 4 does not; the 2-byte one after it is refused too (a prefix).
    assert_eq!(append(infos(&["bbbb", "cccc", "dd"])).await, 1);
    assert_eq!(append(infos(&["ee"])).await, 1);
    assert_eq!(append(infos(&["f"])).await, 0);
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["aaaa", "bbbb", "ee"]
    );
}

/// Pending bytes are counted as [`Message::size`]: text and extra tags.
pub async fn pending_bytes_are_message_size(factory: KeyedFactory) {
    let store = store!(factory, "pending_bytes_are_message_size");
    let client = ClientId::random();
    let limits = Limits::default().with_max_bytes(12);
    // Size 3 + 3 = 6 each: two fit in 12 bytes, a third does not.
    let tagged: Vec<Message> = ["m1_", "m2_", "m3_"]
        .iter()
        .map(|t| Message::new(Level::INFO, *t).with_extra_tags("tag"))
        .collect();
    assert_eq!(tagged[0].size(), 6);
    let kept = store
        .append(&client, &tagged, LONG, &limits)
        .await
        .expect("append");
    assert_eq!(kept, 2, "extra tags not counted in the pending bytes");
    assert_eq!(texts(&visible(&*store, &client).await), ["m1_", "m2_"]);
}

/// The append of a settle keeps exactly the prefix that fits beside what stays pending.
pub async fn settle_append_beyond_limits_keeps_the_prefix(factory: KeyedFactory) {
    let store = store!(factory, "settle_append_beyond_limits_keeps_the_prefix");
    let client = ClientId::random();
    let limits = Limits::default().with_max_messages(4);
    append(&*store, &client, &["m1", "m2"], LONG).await;
    let id = LeaseId::random();
    assert_eq!(lease(&*store, &client, &id, HOLD).await.len(), 2);
    let kept = store
        .settle(
            &client,
            &id,
            Outcome::Released,
            &infos(&["m3", "m4", "m5"]),
            LONG,
            &limits,
        )
        .await
        .expect("settle");
    assert_eq!(kept, 2);
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m1", "m2", "m3", "m4"]
    );
}

/// A consuming settle frees its messages' room before appending; another lease's messages
/// still count.
pub async fn settle_append_counts_after_consumption(factory: KeyedFactory) {
    let store = store!(factory, "settle_append_counts_after_consumption");
    let client = ClientId::random();
    let limits = Limits::default().with_max_messages(3);
    append(&*store, &client, &["m1", "m2"], LONG).await;
    let id = LeaseId::random();
    assert_eq!(lease(&*store, &client, &id, HOLD).await.len(), 2);
    append(&*store, &client, &["m3"], LONG).await;
    let other = LeaseId::random();
    assert_eq!(lease(&*store, &client, &other, HOLD).await.len(), 1);
    let kept = store
        .settle(
            &client,
            &id,
            Outcome::Consumed,
            &infos(&["n1", "n2", "n3"]),
            LONG,
            &limits,
        )
        .await
        .expect("settle");
    assert_eq!(kept, 2);
    settle(&*store, &client, &other, Outcome::Released, &[]).await;
    assert_eq!(texts(&visible(&*store, &client).await), ["m3", "n1", "n2"]);
}

/// Concurrent appends of one client, 16 at once: together they keep exactly what fits.
async fn concurrent_appends(store: Arc<dyn KeyedStore>, limits: Limits, text: &'static str) {
    let client = ClientId::random();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch = vec![info(text); 10];
                store
                    .append(&client, &batch, LONG, &limits)
                    .await
                    .expect("append")
            })
        })
        .collect();
    let mut kept = 0;
    for task in tasks {
        kept += task.await.expect("append task");
    }
    let pending = visible(&*store, &client).await;
    let bytes: usize = pending.iter().map(Message::size).sum();
    assert!(
        pending.len() <= limits.max_messages() && bytes <= limits.max_bytes(),
        "{} messages of {bytes} bytes pending beyond {limits:?}",
        pending.len()
    );
    assert_eq!(kept, pending.len(), "the appends reported {kept} kept");
    let fit = limits.fitting(0, 0, &vec![info(text); 160]);
    assert_eq!(pending.len(), fit, "fewer kept than fit");
}

/// 16 concurrent appends of 10 messages each never exceed `max_messages` together.
pub async fn concurrent_appends_never_exceed_max_messages(factory: KeyedFactory) {
    let store = store!(factory, "concurrent_appends_never_exceed_max_messages");
    concurrent_appends(store, Limits::default().with_max_messages(25), "m").await;
}

/// 16 concurrent appends of 10 messages each never exceed `max_bytes` together.
pub async fn concurrent_appends_never_exceed_max_bytes(factory: KeyedFactory) {
    let store = store!(factory, "concurrent_appends_never_exceed_max_bytes");
    concurrent_appends(store, Limits::default().with_max_bytes(250), "ten bytes!").await;
}

/// A message longer than `max_text_len` is refused, and so is everything after it in the
/// same append (a prefix is kept).
pub async fn too_long_text_is_refused(factory: KeyedFactory) {
    let store = store!(factory, "too_long_text_is_refused");
    let client = ClientId::random();
    let limits = Limits::default().with_max_text_len(8);
    let messages = infos(&["short", "nine bytes", "ok"]);
    let kept = store
        .append(&client, &messages, LONG, &limits)
        .await
        .expect("append");
    assert_eq!(kept, 1);
    let id = LeaseId::random();
    assert_eq!(lease(&*store, &client, &id, HOLD).await.len(), 1);
    let kept = store
        .settle(
            &client,
            &id,
            Outcome::Released,
            &infos(&["ninebytes"]),
            LONG,
            &limits,
        )
        .await
        .expect("settle");
    assert_eq!(kept, 0, "a settle's append kept a text beyond max_text_len");
    assert_eq!(texts(&visible(&*store, &client).await), ["short"]);
}
