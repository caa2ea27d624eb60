//! The keyed-store kit: the [`KeyedStore`] contract, checked on the store directly (not
//! through the [`ServerStorage`](flash_core::storage::ServerStorage) bridge), one public async function per
//! rule; [`keyed_store_tests!`](crate::keyed_store_tests) expands them into tests.
//!
//! The functions are public so that a test can also run one by hand, for example to show that
//! a store that breaks a rule makes it panic (`flash-testkit/tests/broken_stores.rs`).
//!
//! Every test works on fresh random [`ClientId`]s, so tests sharing one server never see each
//! other's messages; timing tests sleep a few seconds at most.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Options;
use flash_core::storage::{
    ClientId, DocumentStore, Documents, KeyedStore, LeaseId, MemoryStore, OperationId, Outcome,
};
use flash_core::{ErrorKind, Level, Limits, Message, async_trait};

/// What the kit asks a store under test beyond the [`KeyedStore`] contract: how much of a
/// client's data the store itself still holds. The kit's expiry check
/// ([`what_is_written_expires_in_the_store`]) needs it, since flash's own time check hides an
/// expired client from every [`KeyedStore`] call whether or not the store ever deletes it.
///
/// The kit implements it for [`MemoryStore`] and for every [`Documents`] (through
/// [`DocumentStore::get`]); wrap any other store in [`Inspected`] with a function that reads
/// the server directly (Redis: `EXISTS` of the client's key; SQL: a `COUNT(*)` of its rows).
#[async_trait]
pub trait Inspect: KeyedStore {
    /// How many entries (keys, rows, documents) the store holds for `client` now, as the
    /// server has them: expired entries the server has not deleted yet count.
    async fn held(&self, client: &ClientId) -> flash_core::Result<usize>;

    /// How long after a client's TTL the store may still hold its data by design, at most
    /// (flash-redis keeps a client's key for its dedupe window after the last write): the
    /// kit waits this much longer. Zero by default.
    fn retention(&self) -> Duration {
        Duration::ZERO
    }
}

/// The clients the store holds, expired ones included until swept: the kit gives each test a
/// store of its own, so they are the test's.
#[async_trait]
impl Inspect for MemoryStore {
    async fn held(&self, _client: &ClientId) -> flash_core::Result<usize> {
        Ok(self.client_count())
    }
}

/// The client's document as the document store returns it, however old: a store must not
/// return a document long after its `expires` (a native TTL, or a filter on read plus a sweep).
#[async_trait]
impl<D: DocumentStore> Inspect for Documents<D> {
    async fn held(&self, client: &ClientId) -> flash_core::Result<usize> {
        Ok(usize::from(self.store().get(client).await?.is_some()))
    }
}

type Probe = Arc<
    dyn Fn(ClientId) -> Pin<Box<dyn Future<Output = flash_core::Result<usize>> + Send>>
        + Send
        + Sync,
>;

/// A store with the function that answers [`Inspect::held`] for it, and anything that must
/// live as long as it (a sweeper's task): what a backend's kit factory returns.
///
/// ```
/// use flash_core::storage::{ClientId, MemoryStore};
/// use flash_testkit::keyed_kit::Inspected;
///
/// let memory = MemoryStore::new();
/// let raw = memory.clone();
/// let store = Inspected::new(memory, move |_client: ClientId| {
///     let raw = raw.clone();
///     async move { Ok(raw.client_count()) }
/// });
/// # let _ = store;
/// ```
pub struct Inspected<S> {
    store: S,
    probe: Probe,
    retention: Duration,
    kept: Vec<Box<dyn Any + Send + Sync>>,
}

impl<S: KeyedStore> Inspected<S> {
    /// `store`, inspected by `held`: how many entries the server holds for a client, read
    /// directly from the server (never through `store`'s own calls).
    pub fn new<F, Fut>(store: S, held: F) -> Self
    where
        F: Fn(ClientId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = flash_core::Result<usize>> + Send + 'static,
    {
        Inspected {
            store,
            probe: Arc::new(move |client| Box::pin(held(client))),
            retention: Duration::ZERO,
            kept: Vec::new(),
        }
    }

    /// Declares how long after a client's TTL the store may still hold its data
    /// ([`Inspect::retention`]).
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Keeps `value` (a sweeper's task) alive as long as the store.
    #[must_use]
    pub fn keeping(mut self, value: impl Any + Send + Sync) -> Self {
        self.kept.push(Box::new(value));
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

#[async_trait]
impl<S: KeyedStore> KeyedStore for Inspected<S> {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> flash_core::Result<usize> {
        self.store.append(client, messages, ttl, limits).await
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> flash_core::Result<Vec<Message>> {
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
    ) -> flash_core::Result<usize> {
        self.store
            .settle(client, lease, outcome, append, ttl, limits)
            .await
    }

    fn remembers_operations(&self) -> Option<Duration> {
        self.store.remembers_operations()
    }

    async fn append_once(
        &self,
        op: &OperationId,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> flash_core::Result<usize> {
        self.store
            .append_once(op, client, messages, ttl, limits)
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
    ) -> flash_core::Result<usize> {
        self.store
            .settle_once(op, client, lease, outcome, append, ttl, limits)
            .await
    }
}

#[async_trait]
impl<S: KeyedStore> Inspect for Inspected<S> {
    async fn held(&self, client: &ClientId) -> flash_core::Result<usize> {
        (self.probe)(*client).await
    }

    fn retention(&self) -> Duration {
        self.retention
    }
}

type BoxedKeyedFactory = Arc<
    dyn Fn(Options) -> Pin<Box<dyn Future<Output = Option<Arc<dyn Inspect>>> + Send>> + Send + Sync,
>;

/// The store factory the kit's tests receive: an `async fn(Options) -> Option<S>` for any
/// `S:` [`Inspect`]. `None` means the server is unreachable.
#[derive(Clone)]
pub struct KeyedFactory(BoxedKeyedFactory);

impl KeyedFactory {
    /// Wraps `factory`.
    pub fn new<F, Fut, S>(factory: F) -> Self
    where
        F: Fn(Options) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<S>> + Send + 'static,
        S: Inspect,
    {
        let factory = Arc::new(factory);
        KeyedFactory(Arc::new(move |options| {
            let future = factory(options);
            Box::pin(async move { future.await.map(|s| Arc::new(s) as Arc<dyn Inspect>) })
        }))
    }

    /// A store for `test`, or `None` when the factory found no server: then the test fails,
    /// unless the run opted in to skipping (see [`unavailable`](crate::unavailable)).
    pub async fn store(&self, test: &str) -> Option<Arc<dyn Inspect>> {
        let store = (self.0)(Options::new()).await;
        if store.is_none() && !crate::reported() {
            let _ = test;
            return crate::unavailable("the keyed store's server", "the factory found none");
        }
        store
    }
}

/// Runs one kit test for `factory` on a fresh multi-threaded runtime (the macro calls this).
pub fn run<F, Fut, S, T, TFut>(factory: F, test: T)
where
    F: Fn(Options) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<S>> + Send + 'static,
    S: Inspect,
    T: FnOnce(KeyedFactory) -> TFut,
    TFut: Future<Output = ()>,
{
    runtime().block_on(test(KeyedFactory::new(factory)));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

type BoxedServerAt = Arc<
    dyn Fn(
            Options,
            SocketAddr,
        ) -> Pin<Box<dyn Future<Output = flash_core::Result<Arc<dyn KeyedStore>>> + Send>>
        + Send
        + Sync,
>;

/// The second factory of a store with a server, as the outage tests receive it: an
/// `async fn(Options, SocketAddr) -> flash_core::Result<S>` that builds the store to talk to
/// the given address instead of its server, with [`Options::call_timeout`] as its deadline,
/// without reaching the server yet (connect lazily: flash serves while a store is down).
#[derive(Clone)]
pub struct ServerAt(BoxedServerAt);

impl ServerAt {
    /// Wraps `factory`.
    pub fn new<F, Fut, S>(factory: F) -> Self
    where
        F: Fn(Options, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = flash_core::Result<S>> + Send + 'static,
        S: KeyedStore,
    {
        let factory = Arc::new(factory);
        ServerAt(Arc::new(move |options, addr| {
            let future = factory(options, addr);
            Box::pin(async move { future.await.map(|s| Arc::new(s) as Arc<dyn KeyedStore>) })
        }))
    }

    /// The store, built to talk to `addr`.
    pub async fn store(
        &self,
        options: Options,
        addr: SocketAddr,
    ) -> flash_core::Result<Arc<dyn KeyedStore>> {
        (self.0)(options, addr).await
    }
}

/// Runs one outage test for `factory` on a fresh multi-threaded runtime (the macro calls this).
pub fn run_at<F, Fut, S, T, TFut>(factory: F, test: T)
where
    F: Fn(Options, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = flash_core::Result<S>> + Send + 'static,
    S: KeyedStore,
    T: FnOnce(ServerAt) -> TFut,
    TFut: Future<Output = ()>,
{
    runtime().block_on(test(ServerAt::new(factory)));
}

/// Expands the keyed-store kit into one `#[test]` per rule of the [`KeyedStore`] contract for
/// `factory`, an `async fn(Options) -> Option<S>` where `S:` [`Inspect`] (or a closure
/// returning such a future). Each test runs on its own multi-threaded Tokio runtime, so the
/// calling crate needs no Tokio macros.
///
/// The second argument says where the store's server is:
/// - `at = store_at`: the store talks to a server. `store_at` is an
///   `async fn(Options, SocketAddr) -> flash_core::Result<S>` that builds the same store to
///   talk to the given address instead, with [`Options::call_timeout`] as its deadline and
///   without reaching the server yet. The outage tests point it at a closed port, at a
///   server that accepts and never answers, and at one that hangs up at once: every call must
///   fail with
///   [`ErrorKind::Unavailable`] within the deadline, never answer "no messages".
/// - `in_process`: the store has no server to lose (memory, a file opened in the process).
///
/// The factory isolates by [`Options::namespace`] where its server needs it (a key prefix, a
/// table; the tests already use fresh client ids), runs its sweeper (if expiry needs one)
/// every [`Options::sweep_interval`], and returns `None` when its server cannot be reached,
/// best through [`unavailable`](super::unavailable): the test then fails, unless the run opted
/// in to skipping with `FLASH_TESTKIT_SKIP_UNREACHABLE=1` (see the crate's README).
///
/// In a backend's `tests/keyed_kit.rs` (needs `flash-testkit` as a dev-dependency):
///
/// ```no_run
/// # mod my_backend {
/// #     use std::time::Duration;
/// #     use flash_core::{Limits, Message, Result};
/// #     use flash_core::storage::{ClientId, KeyedStore, LeaseId, MemoryStore, Outcome};
/// #     // A stand-in for your store: only its shape matters here.
/// #     #[derive(Clone)]
/// #     pub struct MyStore(MemoryStore);
/// #     pub struct Builder;
/// #     impl MyStore {
/// #         pub async fn connect(_url: &str, _namespace: &str) -> Result<Self> { Ok(MyStore(MemoryStore::new())) }
/// #         pub fn builder(_url: String) -> Builder { Builder }
/// #         pub async fn raw_count(&self, _client: &ClientId) -> Result<usize> { Ok(0) }
/// #     }
/// #     impl Builder {
/// #         pub fn call_timeout(self, _deadline: Duration) -> Self { self }
/// #         pub fn connect_lazy(self) -> Result<MyStore> { Ok(MyStore(MemoryStore::new())) }
/// #     }
/// #     #[flash_core::async_trait]
/// #     impl KeyedStore for MyStore {
/// #         async fn append(&self, c: &ClientId, m: &[Message], ttl: Duration, l: &Limits) -> Result<usize> {
/// #             self.0.append(c, m, ttl, l).await
/// #         }
/// #         async fn lease(&self, c: &ClientId, id: &LeaseId, t: Duration) -> Result<Vec<Message>> {
/// #             self.0.lease(c, id, t).await
/// #         }
/// #         async fn settle(&self, c: &ClientId, id: &LeaseId, o: Outcome, m: &[Message], ttl: Duration, l: &Limits) -> Result<usize> {
/// #             self.0.settle(c, id, o, m, ttl, l).await
/// #         }
/// #     }
/// # }
/// use std::net::SocketAddr;
/// use flash_testkit::{Options, keyed_kit::Inspected, unavailable};
///
/// async fn store(options: Options) -> Option<Inspected<my_backend::MyStore>> {
///     let url = flash_testkit::urls::var("MY_URL", "my://127.0.0.1");
///     match my_backend::MyStore::connect(&url, &options.namespace).await {
///         // `held`: how many entries the server holds for a client, read directly.
///         Ok(store) => Some(Inspected::new(store.clone(), move |client| {
///             let store = store.clone();
///             async move { store.raw_count(&client).await }
///         })),
///         Err(err) => unavailable("my server (MY_URL)", err),
///     }
/// }
///
/// async fn store_at(options: Options, addr: SocketAddr) -> flash_core::Result<my_backend::MyStore> {
///     my_backend::MyStore::builder(format!("my://{addr}"))
///         .call_timeout(options.call_timeout)
///         .connect_lazy()
/// }
///
/// flash_testkit::keyed_store_tests!(store, at = store_at);
/// # // A doctest is not built with `--test`: what the `#[test]` functions call is checked here.
/// # fn main() {
/// #     use flash_testkit::keyed_kit::{a_closed_port_is_unavailable, append_keeps_order, run, run_at};
/// #     let _ = || run(store, append_keeps_order);
/// #     let _ = || run_at(store_at, a_closed_port_is_unavailable);
/// # }
/// ```
///
/// The tests are the public functions of [`keyed_kit`](crate::keyed_kit), which a test can
/// also call by hand with a [`KeyedFactory`] or a [`ServerAt`].
#[macro_export]
macro_rules! keyed_store_tests {
    ($factory:expr, in_process $(,)?) => {
        $crate::__keyed_store_tests!($factory);
    };
    ($factory:expr, at = $at:expr $(,)?) => {
        $crate::__keyed_store_tests!($factory);
        $crate::__keyed_outage_tests!(
            $at;
            a_closed_port_is_unavailable,
            a_server_that_never_answers_is_unavailable,
            a_server_that_hangs_up_is_unavailable,
        );
    };
    ($factory:expr $(,)?) => {
        ::core::compile_error!(
            "keyed_store_tests!: say where the store's server is: \
             `keyed_store_tests!(factory, at = store_at)` for a store with a server (store_at \
             builds it against a given address), `keyed_store_tests!(factory, in_process)` for \
             a store without one"
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __keyed_store_tests {
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
            what_is_written_expires_in_the_store,
            append_beyond_max_messages_keeps_the_prefix,
            append_beyond_max_bytes_keeps_the_prefix,
            pending_bytes_are_message_size,
            settle_append_beyond_limits_keeps_the_prefix,
            settle_append_counts_after_consumption,
            concurrent_appends_never_exceed_max_messages,
            concurrent_appends_never_exceed_max_bytes,
            too_long_text_is_refused,
            a_settle_sent_again_ends_nothing_more,
            a_write_sent_again_is_applied_once,
            a_write_sent_again_after_others_is_applied_once,
        );
    };
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::__named(concat!(module_path!(), "::", stringify!($name)), || {
                    $crate::keyed_kit::run($factory, $crate::keyed_kit::$name)
                });
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __keyed_outage_tests {
    ($at:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::__named(concat!(module_path!(), "::", stringify!($name)), || {
                    $crate::keyed_kit::run_at($at, $crate::keyed_kit::$name)
                });
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

/// How many appends of one client the concurrency tests run at once.
const CONCURRENT: usize = 32;

/// Concurrent appends of one client, [`CONCURRENT`] at once: together they keep exactly what
/// fits.
async fn concurrent_appends(store: Arc<dyn KeyedStore>, limits: Limits, text: &'static str) {
    let client = ClientId::random();
    let tasks: Vec<_> = (0..CONCURRENT)
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
    let fit = limits.fitting(0, 0, &vec![info(text); CONCURRENT * 10]);
    assert_eq!(pending.len(), fit, "fewer kept than fit");
}

/// 32 concurrent appends of 10 messages each never exceed `max_messages` together, and each
/// says truly how many it kept (a read-modify-write without a condition loses appends).
pub async fn concurrent_appends_never_exceed_max_messages(factory: KeyedFactory) {
    let store = store!(factory, "concurrent_appends_never_exceed_max_messages");
    concurrent_appends(store, Limits::default().with_max_messages(25), "m").await;
}

/// 32 concurrent appends of 10 messages each never exceed `max_bytes` together.
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

/// How long after the TTL, beyond one [`Options::sweep_interval`], a store may still hold
/// what expired: a loaded machine, a server's own expiry cycle (Redis samples keys with a
/// TTL ten times a second).
const EXPIRY_SLACK: Duration = Duration::from_secs(3);

/// What a store writes expires in the store itself, not only behind flash's own time check:
/// [`Inspect::held`] answers 0 for every client of the test once its TTL (1 s), the store's
/// declared [`Inspect::retention`] and one [`Options::sweep_interval`] (plus a slack of 3 s)
/// have passed: messages appended, messages under a live lease, and messages a settle
/// appended. A store that never sets a TTL (a
/// memcached key without an expiry, a SQL table without its sweeper) fills its server.
pub async fn what_is_written_expires_in_the_store(factory: KeyedFactory) {
    let store = store!(factory, "what_is_written_expires_in_the_store");
    let (appended, leased, settled) = (ClientId::random(), ClientId::random(), ClientId::random());
    append(&*store, &appended, &["a1", "a2"], SHORT_TTL).await;
    append(&*store, &leased, &["l1"], SHORT_TTL).await;
    assert_eq!(
        lease(&*store, &leased, &LeaseId::random(), HOLD)
            .await
            .len(),
        1
    );
    let id = LeaseId::random();
    assert!(lease(&*store, &settled, &id, HOLD).await.is_empty());
    let kept = store
        .settle(
            &settled,
            &id,
            Outcome::Consumed,
            &infos(&["s1"]),
            SHORT_TTL,
            &Limits::default(),
        )
        .await
        .expect("settle");
    assert_eq!(kept, 1);
    let written = Instant::now();
    let clients = [
        ("appended", appended),
        ("leased", leased),
        ("settled", settled),
    ];
    for (what, client) in &clients {
        let held = store.held(client).await.expect("Inspect::held");
        assert!(
            held > 0,
            "Inspect::held sees nothing of a client whose messages were just {what}: it must \
             read what the server holds"
        );
    }
    tokio::time::sleep(SHORT_TTL).await;
    let due = SHORT_TTL + store.retention() + Options::new().sweep_interval + EXPIRY_SLACK;
    loop {
        // Calls of other clients: a store may sweep with its traffic (MemoryStore does).
        let _ = lease(&*store, &ClientId::random(), &LeaseId::random(), HOLD).await;
        let mut left = Vec::new();
        for (what, client) in &clients {
            let held = store.held(client).await.expect("Inspect::held");
            if held > 0 {
                left.push(format!("{held} of the client whose messages were {what}"));
            }
        }
        if left.is_empty() {
            return;
        }
        assert!(
            written.elapsed() < due,
            "{:?} after the TTL of {SHORT_TTL:?} passed (declared retention {:?}), the store \
             still holds {}: a store must expire what it writes itself (a native TTL, or a \
             sweeper every Options::sweep_interval), not leave it to flash's own time check",
            written.elapsed() - SHORT_TTL,
            store.retention(),
            left.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The deadline the outage tests give the store ([`Options::call_timeout`]).
const OUTAGE_DEADLINE: Duration = Duration::from_secs(1);
/// How late past its deadline a call of the outage tests may fail: a loaded machine.
const OUTAGE_SLACK: Duration = Duration::from_secs(2);

/// The store pointed at a port nothing listens on: every call fails with
/// [`ErrorKind::Unavailable`] within its deadline; a lease never answers "no messages".
pub async fn a_closed_port_is_unavailable(at: ServerAt) {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
        listener.local_addr().expect("its address")
    };
    outage(at, addr, "a closed port").await;
}

/// The store pointed at a server that accepts connections and never answers (a server that
/// hangs): every call fails with [`ErrorKind::Unavailable`] within its deadline; a lease never
/// answers "no messages".
pub async fn a_server_that_never_answers_is_unavailable(at: ServerAt) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free local port");
    let addr = listener.local_addr().expect("its address");
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    outage(at, addr, "a server that never answers").await;
    silent.abort();
}

/// The store pointed at a server that accepts each connection and closes it at once (a
/// failing server): every call fails with [`ErrorKind::Unavailable`] within its deadline; a
/// lease never answers "no messages".
pub async fn a_server_that_hangs_up_is_unavailable(at: ServerAt) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free local port");
    let addr = listener.local_addr().expect("its address");
    let closing = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    outage(at, addr, "a server that hangs up at once").await;
    closing.abort();
}

async fn outage(at: ServerAt, addr: SocketAddr, what: &str) {
    let mut options = Options::new();
    options.call_timeout = OUTAGE_DEADLINE;
    let bound = OUTAGE_DEADLINE + OUTAGE_SLACK;
    let started = Instant::now();
    let store = match tokio::time::timeout(bound, at.store(options, addr)).await {
        Ok(Ok(store)) => store,
        // A store that connects as it is built (a cluster client learning its slots) fails
        // there: the application sees the outage at start, not as "no messages". Its calls
        // cannot be checked.
        Ok(Err(err)) => {
            assert_eq!(
                err.kind(),
                ErrorKind::Unavailable,
                "building the store against {what} failed with {err}, not Unavailable"
            );
            assert!(
                started.elapsed() <= bound,
                "building the store against {what} failed after {:?}, beyond its deadline of \
                 {OUTAGE_DEADLINE:?}",
                started.elapsed()
            );
            return;
        }
        Err(_) => panic!("building the store against {what} took longer than {bound:?}"),
    };
    let client = ClientId::random();
    let lease_id = LeaseId::random();
    let limits = Limits::default();
    let message = [info("lost")];
    fails_in_time(what, "append", bound, async {
        let kept = store.append(&client, &message, LONG, &limits).await?;
        Ok(format!("Ok({kept} kept)"))
    })
    .await;
    fails_in_time(what, "lease", bound, async {
        let got = store.lease(&client, &lease_id, HOLD).await?;
        Ok(format!("Ok({} messages)", got.len()))
    })
    .await;
    for (call, outcome, append) in [
        ("settle (Consumed)", Outcome::Consumed, &message[..]),
        ("settle (Released)", Outcome::Released, &[][..]),
    ] {
        fails_in_time(what, call, bound, async {
            let kept = store
                .settle(&client, &lease_id, outcome, append, LONG, &limits)
                .await?;
            Ok(format!("Ok({kept} kept)"))
        })
        .await;
    }
}

/// One call of the outage tests against `what`: it must fail with [`ErrorKind::Unavailable`]
/// within `bound`. `answer` is the call, its success shown for the failure message.
async fn fails_in_time(
    what: &str,
    call: &str,
    bound: Duration,
    answer: impl Future<Output = flash_core::Result<String>>,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(bound, answer).await;
    let elapsed = started.elapsed();
    match result {
        Err(_) => panic!("{call} against {what} was still running after {bound:?}"),
        Ok(Ok(answer)) => panic!(
            "{call} against {what} answered {answer} instead of an error: flash then \
             shows or stores nothing and never carries the request's messages in the cookie"
        ),
        Ok(Err(err)) => {
            assert_eq!(
                err.kind(),
                ErrorKind::Unavailable,
                "{call} against {what} failed with {err}, not Unavailable"
            );
            assert!(
                elapsed <= bound,
                "{call} against {what} failed after {elapsed:?}, beyond its deadline of \
                 {OUTAGE_DEADLINE:?}"
            );
        }
    }
}

/// A settle sent again (the bridge finishing a settle whose answer never came) ends nothing
/// more: what the lease held is gone once, and a newer lease's messages are untouched.
pub async fn a_settle_sent_again_ends_nothing_more(factory: KeyedFactory) {
    let store = store!(factory, "a_settle_sent_again_ends_nothing_more");
    let client = ClientId::random();
    append(&*store, &client, &["m1"], LONG).await;
    let first = LeaseId::random();
    assert_eq!(texts(&lease(&*store, &client, &first, HOLD).await), ["m1"]);
    settle(&*store, &client, &first, Outcome::Consumed, &[]).await;
    append(&*store, &client, &["m2"], LONG).await;
    let second = LeaseId::random();
    assert_eq!(texts(&lease(&*store, &client, &second, HOLD).await), ["m2"]);
    settle(&*store, &client, &first, Outcome::Consumed, &[]).await;
    settle(&*store, &client, &first, Outcome::Released, &[]).await;
    assert!(
        visible(&*store, &client).await.is_empty(),
        "a settle sent again released another lease's messages"
    );
    settle(&*store, &client, &second, Outcome::Released, &[]).await;
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m2"],
        "a settle sent again consumed another lease's messages"
    );
}

/// How many of a client's latest writes a store that remembers operations must still know:
/// the bridge sends a write again at the client's next request, and a client (several tabs, a
/// script) may write this often in between.
pub const MIN_OPERATIONS_PER_CLIENT: usize = 200;

/// A store that remembers operations applies a write sent again once even after
/// [`MIN_OPERATIONS_PER_CLIENT`] other writes of the same client: it answers what the first
/// kept, or an error (a store may refuse what it can no longer tell apart), and the message is
/// stored once. Skipped (one line) for a store that does not remember them.
pub async fn a_write_sent_again_after_others_is_applied_once(factory: KeyedFactory) {
    let store = store!(factory, "a_write_sent_again_after_others_is_applied_once");
    if store.remembers_operations().is_none() {
        eprintln!(
            "skipped: a_write_sent_again_after_others_is_applied_once: the store remembers no operations"
        );
        return;
    }
    let client = ClientId::random();
    let limits = Limits::default().with_max_messages(MIN_OPERATIONS_PER_CLIENT + 10);
    let op = OperationId::random();
    let kept = store
        .append_once(&op, &client, &infos(&["first"]), LONG, &limits)
        .await
        .expect("append_once");
    assert_eq!(kept, 1);
    for i in 0..MIN_OPERATIONS_PER_CLIENT {
        let text = format!("m{i}");
        store
            .append_once(
                &OperationId::random(),
                &client,
                &infos(&[&text]),
                LONG,
                &limits,
            )
            .await
            .expect("append_once");
    }
    if let Ok(kept) = store
        .append_once(&op, &client, &infos(&["first"]), LONG, &limits)
        .await
    {
        assert_eq!(kept, 1, "a write sent again answers what the first kept");
    }
    let visible = visible(&*store, &client).await;
    let firsts = visible.iter().filter(|m| m.text == "first").count();
    assert_eq!(
        firsts, 1,
        "a write sent again after {MIN_OPERATIONS_PER_CLIENT} others was applied {firsts} times"
    );
    assert_eq!(visible.len(), MIN_OPERATIONS_PER_CLIENT + 1);
}

/// The shortest window a store that remembers operations may declare: the bridge sends a write
/// again at the client's next request, which comes seconds (not hours) after an outage ends.
pub const MIN_OPERATION_WINDOW: Duration = Duration::from_secs(60);

/// A store that remembers operations (`remembers_operations` is `Some`) applies a write sent
/// again under its operation id once, for appends and settles alike, in one space of ids per
/// client; another id is another write, even with the same messages. Skipped (one line) for a
/// store that does not remember them: the bridge then counts what may show twice.
pub async fn a_write_sent_again_is_applied_once(factory: KeyedFactory) {
    let store = store!(factory, "a_write_sent_again_is_applied_once");
    let Some(window) = store.remembers_operations() else {
        eprintln!("skipped: a_write_sent_again_is_applied_once: the store remembers no operations");
        return;
    };
    assert!(
        window >= MIN_OPERATION_WINDOW,
        "a window of {window:?} is shorter than {MIN_OPERATION_WINDOW:?}"
    );
    let (client, limits) = (ClientId::random(), Limits::default());
    let op = OperationId::random();
    for _ in 0..2 {
        let kept = store
            .append_once(&op, &client, &infos(&["m1", "m2"]), LONG, &limits)
            .await
            .expect("append_once");
        assert_eq!(kept, 2, "a write sent again answers what the first kept");
    }
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m1", "m2"],
        "an append sent again was applied twice"
    );
    store
        .append_once(
            &OperationId::random(),
            &client,
            &infos(&["m1"]),
            LONG,
            &limits,
        )
        .await
        .expect("append_once");
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m1", "m2", "m1"],
        "another operation id is another write"
    );

    let held = LeaseId::random();
    assert_eq!(lease(&*store, &client, &held, HOLD).await.len(), 3);
    let settle_op = OperationId::random();
    for _ in 0..2 {
        let kept = store
            .settle_once(
                &settle_op,
                &client,
                &held,
                Outcome::Consumed,
                &infos(&["m3"]),
                LONG,
                &limits,
            )
            .await
            .expect("settle_once");
        assert_eq!(kept, 1);
    }
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m3"],
        "a settle sent again appended twice"
    );
    store
        .append_once(&settle_op, &client, &infos(&["m4"]), LONG, &limits)
        .await
        .expect("append_once");
    assert_eq!(
        texts(&visible(&*store, &client).await),
        ["m3"],
        "appends and settles share one space of operation ids"
    );
    let other = ClientId::random();
    store
        .append_once(&op, &other, &infos(&["x"]), LONG, &limits)
        .await
        .expect("append_once");
    assert_eq!(
        texts(&visible(&*store, &other).await),
        ["x"],
        "operation ids are per client"
    );
}
