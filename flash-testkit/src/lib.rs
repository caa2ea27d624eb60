#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![allow(clippy::print_stderr, clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod adapter_kit;
mod app;
mod client;
mod counting;
pub mod keyed_kit;
mod statements;
pub mod tests;
pub mod urls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use app::{assert_messages, messages_left, next_cookie_header};
pub use client::{Client, Request, Response};
pub use counting::{CallCounts, CountingStore};
pub use keyed_kit::KeyedFactory;
pub use statements::StatementCounter;

use flash_core::Key;
use flash_core::storage::{Incoming, Storage};
use flash_core::storage::{KeyedStore, ServerStorage};
use flash_core::{Keys, MessagesConfig};

/// What a factory is asked for. Made by [`Options::new`] (fields may be added).
///
/// ```
/// use flash_testkit::Options;
///
/// // What a factory does with them: isolate, sign, time as asked.
/// let options = Options::new();
/// let table = format!("flash_{}", options.namespace); // unique to this test
/// let keys = options.keys("flash.id"); // derived from `options.secret`
/// assert_ne!(Options::new().namespace, options.namespace);
/// # let _ = (table, keys);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Unique per test (and shared by the harnesses one test asks for): isolate by it.
    pub namespace: String,
    /// The secret to derive signing keys from.
    pub secret: String,
    /// The TTL of undelivered messages.
    pub ttl: Duration,
    /// The lease timeout.
    pub lease_timeout: Duration,
    /// The deadline of each keyed store call: generous (10 s), since the suite checks what is
    /// delivered and a loaded machine must not turn a slow call into a carried message. The
    /// keyed-store kit's outage tests give their store 1 s.
    pub call_timeout: Duration,
    /// How often a store that removes expired data on a schedule (a sweeper) runs it in the
    /// kit: 500 ms. The keyed-store kit expects what expired gone within a TTL plus this
    /// interval (plus a slack).
    pub sweep_interval: Duration,
}

impl Options {
    /// Defaults with a fresh namespace and secret.
    pub fn new() -> Self {
        // 16 hex digits of a fresh random id: short enough for a table name.
        let mut namespace = flash_core::storage::ClientId::random().to_hex();
        namespace.truncate(16);
        Options {
            secret: format!("conformance-secret-{namespace}-0123456789abcdef"),
            namespace,
            ttl: Duration::from_secs(3600),
            lease_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
            sweep_interval: Duration::from_millis(500),
        }
    }

    /// The signing keys derived from [`Options::secret`] for `purpose`.
    pub fn keys(&self, purpose: &str) -> Keys {
        Keys::new(Key::derive(&self.secret, purpose))
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// Which guarantees a storage gives; the suite skips a test whose guarantee is missing.
///
/// Start from [`Capabilities::ALL`] or [`Capabilities::NONE`] and change what differs:
///
/// ```
/// use flash_testkit::Capabilities;
/// const SESSION: Capabilities = Capabilities::NONE.with_large_messages(true);
/// assert!(SESSION.large_messages() && !SESSION.exactly_once());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    exactly_once: bool,
    lease_timeout: bool,
    ttl: bool,
    large_messages: bool,
    addresses: bool,
}

impl Capabilities {
    /// Everything: a keyed server-side store.
    pub const ALL: Capabilities = Capabilities {
        exactly_once: true,
        lease_timeout: true,
        ttl: true,
        large_messages: true,
        addresses: true,
    };

    /// Nothing beyond the Django semantics (a cookie).
    pub const NONE: Capabilities = Capabilities {
        exactly_once: false,
        lease_timeout: false,
        ttl: false,
        large_messages: false,
        addresses: true,
    };

    /// Concurrent requests of one client see each message exactly once, and concurrent adds
    /// are never lost (server-side stores; not a cookie).
    pub const fn exactly_once(&self) -> bool {
        self.exactly_once
    }

    /// Messages loaded by a request that died come back after the lease timeout.
    pub const fn lease_timeout(&self) -> bool {
        self.lease_timeout
    }

    /// Undelivered messages expire after [`Options::ttl`].
    pub const fn ttl(&self) -> bool {
        self.ttl
    }

    /// Messages of 10 KB and more fit.
    pub const fn large_messages(&self) -> bool {
        self.large_messages
    }

    /// Messages keep their address ([`Address`](flash_core::Address)): only their page shows them.
    /// Every storage does (a cookie too) unless its format has no place for it.
    pub const fn addresses(&self) -> bool {
        self.addresses
    }

    /// Sets [`addresses`](Self::addresses).
    #[must_use]
    pub const fn with_addresses(mut self, yes: bool) -> Self {
        self.addresses = yes;
        self
    }

    /// Sets [`exactly_once`](Self::exactly_once).
    #[must_use]
    pub const fn with_exactly_once(mut self, yes: bool) -> Self {
        self.exactly_once = yes;
        self
    }

    /// Sets [`lease_timeout`](Self::lease_timeout).
    #[must_use]
    pub const fn with_lease_timeout(mut self, yes: bool) -> Self {
        self.lease_timeout = yes;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub const fn with_ttl(mut self, yes: bool) -> Self {
        self.ttl = yes;
        self
    }

    /// Sets [`large_messages`](Self::large_messages).
    #[must_use]
    pub const fn with_large_messages(mut self, yes: bool) -> Self {
        self.large_messages = yes;
        self
    }
}

type RequestHook = Arc<dyn Fn(u64, &mut Incoming) + Send + Sync>;

/// A storage under test, with what it declares and, for keyed stores, its call counts.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use flash_core::storage::MemoryStore;
/// use flash_testkit::{Harness, Options};
///
/// let harness = Harness::keyed(MemoryStore::new(), &Options::new());
/// let browser = harness.client();
/// let post = browser.request();
/// post.success("Article saved.");
/// post.finish().await; // the browser's jar keeps the id cookie
/// let get = browser.request();
/// assert_eq!(get.read().await?[0].text, "Article saved.");
/// get.finish().await;
/// let calls = harness.calls.expect("a keyed harness counts its store's calls");
/// assert_eq!((calls.appends(), calls.leases(), calls.settles()), (1, 1, 1));
/// # Ok::<(), flash_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Harness {
    /// The storage.
    pub storage: Arc<dyn Storage>,
    /// What it guarantees.
    pub capabilities: Capabilities,
    /// The cookie that carries the client's state (messages or an id).
    pub state_cookie: String,
    /// Store calls, when the storage is a keyed store behind [`CountingStore`].
    pub calls: Option<CallCounts>,
    /// Every message goes to the counted store (a keyed storage alone), so counts are exact;
    /// false for a composition (a cookie in front) where they are upper bounds.
    pub calls_exact: bool,
    request_hook: Option<RequestHook>,
}

impl Harness {
    /// A harness for any storage.
    pub fn new(
        storage: impl Storage,
        capabilities: Capabilities,
        state_cookie: impl Into<String>,
    ) -> Self {
        Harness {
            storage: Arc::new(storage),
            capabilities,
            state_cookie: state_cookie.into(),
            calls: None,
            calls_exact: false,
            request_hook: None,
        }
    }

    /// A harness for a storage already shared (as `flash::open` returns it).
    pub fn shared(
        storage: Arc<dyn Storage>,
        capabilities: Capabilities,
        state_cookie: impl Into<String>,
    ) -> Self {
        Harness {
            storage,
            capabilities,
            state_cookie: state_cookie.into(),
            calls: None,
            calls_exact: false,
            request_hook: None,
        }
    }

    /// A keyed store behind the [`ServerStorage`] bridge, with counted calls, the options' TTL,
    /// lease timeout, call deadline and keys, and every capability.
    pub fn keyed<S: KeyedStore>(store: S, options: &Options) -> Self {
        let counting = CountingStore::new(store);
        let calls = counting.counts();
        let storage = ServerStorage::new(counting, options.keys("flash.id"))
            .with_ttl(options.ttl)
            .with_lease_timeout(options.lease_timeout)
            .with_call_timeout(options.call_timeout);
        Harness {
            state_cookie: storage.cookie_name().to_owned(),
            storage: Arc::new(storage),
            capabilities: Capabilities::ALL,
            calls: Some(calls),
            calls_exact: true,
            request_hook: None,
        }
    }

    /// Counts calls of the keyed store behind this harness's storage, built by hand around a
    /// [`CountingStore`]. `exact`: every message goes to that store, so the suite checks exact
    /// counts; otherwise (a cookie in front) the counts are checked as upper bounds.
    #[must_use]
    pub fn with_calls(mut self, calls: CallCounts, exact: bool) -> Self {
        self.calls = Some(calls);
        self.calls_exact = exact;
        self
    }

    /// Runs `hook` on every request built by a [`Client`] (its id, the request): to attach a
    /// session, for example.
    #[must_use]
    pub fn with_request_hook(
        mut self,
        hook: impl Fn(u64, &mut Incoming) + Send + Sync + 'static,
    ) -> Self {
        self.request_hook = Some(Arc::new(hook));
        self
    }

    /// A new browser with an empty cookie jar.
    pub fn client(&self) -> Client {
        Client::new(self.clone())
    }

    /// The request handle for a request of `client` with the default [`MessagesConfig`].
    pub fn config(&self) -> Arc<MessagesConfig> {
        Arc::new(MessagesConfig::default())
    }
}

/// Reports a server the factory could not reach; the kits' factories call it when they fail
/// to connect. The test **fails** (this panics, naming the server and the error), unless the
/// run opted in to skipping with [`urls::ENV_SKIP_UNREACHABLE`] (`FLASH_TESTKIT_SKIP_UNREACHABLE=1`)
/// and `CI` is not `true`: then it returns `None`, the test ends early as passed, and a line
/// `SKIPPED <test>: ...` is written to the test harness's own output (beside `test <test> ...
/// ok`, not captured with the test's output).
pub fn unavailable<T>(service: &str, error: impl std::fmt::Display) -> Option<T> {
    let test = current_test();
    unreachable(&test, service, error)
}

std::thread_local! {
    /// The kit test running on this thread (set by the kits' macros), and whether it reported
    /// an unreachable server already.
    static CURRENT_TEST: std::cell::RefCell<(String, bool)> = const {
        std::cell::RefCell::new((String::new(), false))
    };
}

/// The name the harness shows for the kit test running on this thread: the macro's
/// `module_path!()::name` without the crate, else the thread's name.
fn current_test() -> String {
    let named = CURRENT_TEST.with(|t| t.borrow().0.clone());
    if !named.is_empty() {
        return named;
    }
    std::thread::current()
        .name()
        .unwrap_or("a kit test")
        .to_owned()
}

/// Runs `test` as the kit test at `path` (`module_path!()::name`): what [`unavailable`]
/// names when it skips. The kits' macros call it.
#[doc(hidden)]
pub fn __named<R>(path: &str, test: impl FnOnce() -> R) -> R {
    // libtest names a test by its path without the crate.
    let name = path.split_once("::").map_or(path, |(_, rest)| rest);
    CURRENT_TEST.with(|t| *t.borrow_mut() = (name.to_owned(), false));
    test()
}

/// Whether this thread's test reported an unreachable server already.
pub(crate) fn reported() -> bool {
    CURRENT_TEST.with(|t| t.borrow().1)
}

/// What a test does about a server it cannot reach, by the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// The test fails (the default; always under `CI=true`).
    Fail,
    /// The test is skipped, and says so in the harness's output
    /// ([`urls::ENV_SKIP_UNREACHABLE`] set, `CI` not set).
    Skip,
}

impl Unreachable {
    /// The policy for these values of `CI` and [`urls::ENV_SKIP_UNREACHABLE`].
    pub fn from_values(ci: Option<&str>, skip: Option<&str>) -> Self {
        let yes = |v: Option<&str>| v.is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        if yes(ci) || !yes(skip) {
            Unreachable::Fail
        } else {
            Unreachable::Skip
        }
    }

    /// The policy of this process's environment.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok();
        Self::from_values(
            var("CI").as_deref(),
            var(urls::ENV_SKIP_UNREACHABLE).as_deref(),
        )
    }
}

/// [`unavailable`] for a named test.
pub(crate) fn unreachable<T>(
    test: &str,
    service: &str,
    error: impl std::fmt::Display,
) -> Option<T> {
    match Unreachable::from_env() {
        Unreachable::Fail => panic!(
            "{service} is unreachable: {error}. Start it (or point its variable at it: see \
             flash-testkit's README); to skip its tests instead, set {}=1 (never under CI=true)",
            urls::ENV_SKIP_UNREACHABLE
        ),
        Unreachable::Skip => {
            use std::io::Write;
            CURRENT_TEST.with(|t| t.borrow_mut().1 = true);
            // Straight to the process's stdout: the harness captures `println!` of a passing
            // test and would swallow it.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "SKIPPED {test}: {service} is unreachable ({error}); {}=1",
                urls::ENV_SKIP_UNREACHABLE
            );
            let _ = out.flush();
            None
        }
    }
}

/// Runs one suite test on a fresh multi-threaded runtime (the suite's macro calls this).
pub fn run<F, Fut, T, TFut>(name: &str, factory: F, test: T)
where
    F: Fn(Options) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Harness>> + Send + 'static,
    T: FnOnce(Factory) -> TFut,
    TFut: Future<Output = ()>,
{
    let _ = name;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let factory: Factory = Factory(Arc::new(move |options| Box::pin(factory(options))));
    runtime.block_on(test(factory));
}

type BoxedFactory = Arc<
    dyn Fn(Options) -> std::pin::Pin<Box<dyn Future<Output = Option<Harness>> + Send>>
        + Send
        + Sync,
>;

/// The backend's factory, as the suite's tests receive it.
#[derive(Clone)]
pub struct Factory(BoxedFactory);

impl Factory {
    /// A harness for `options`, or `None` when the backend is unreachable and the run opted
    /// in to skipping (see [`unavailable`]); otherwise an unreachable backend fails the test.
    pub async fn harness(&self, options: Options) -> Option<Harness> {
        let harness = (self.0)(options).await;
        if harness.is_none() && !reported() {
            return unavailable("the storage's server", "the factory returned no harness");
        }
        harness
    }
}

/// Expands the conformance suite into one `#[test]` per behaviour for `factory`, an
/// `async fn(Options) -> Option<Harness>` (or a closure returning such a future).
///
/// ```
/// use flash_core::storage::MemoryStore;
/// use flash_testkit::{Harness, Options};
///
/// // tests/conformance.rs of a storage: a factory, then one `#[test]` per behaviour.
/// async fn memory(options: Options) -> Option<Harness> {
///     Some(Harness::keyed(MemoryStore::new(), &options))
/// }
///
/// flash_testkit::conformance_tests!(memory);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(
            $factory;
            add_counts_and_added_new,
            empty_text_is_ignored,
            default_level_keeps_five,
            low_level_keeps_all,
            high_level_keeps_two,
            custom_level_keeps_three,
            app_level_applies,
            tags_follow_the_tag_map,
            custom_tag_map_and_custom_levels,
            extra_tags_and_html_flag_survive,
            data_travels_beside_the_text,
            data_is_refused_at_add_where_it_cannot_travel,
            reading_does_not_consume_until_iterated,
            existing_add_read_stores_nothing,
            existing_read_add_stores_one,
            add_then_update_stores_two,
            no_update_writes_nothing,
            twenty_five_messages_in_order,
            keep_undoes_consumption,
            now_messages_are_never_stored,
            unicode_and_emoji_survive,
            large_texts_survive,
            pending_stays_within_the_limits_across_requests,
            prefetch_neither_sees_nor_consumes,
            concurrent_reads_deliver_exactly_once,
            concurrent_adds_lose_nothing,
            unread_messages_come_back_in_order,
            dropped_request_loses_nothing,
            undelivered_messages_expire,
            store_calls_are_counted,
            bad_state_cookie_means_no_messages,
            wrong_key_means_no_messages,
            abandoned_request_releases_at_once,
            forget_id_deletes_what_is_pending,
            rotate_id_moves_or_drops_what_is_pending,
            a_redirect_addresses_its_messages_to_its_page,
            other_reads_leave_addressed_messages_in_order,
            an_unvisited_address_is_shown_after_its_bound,
            a_page_that_redirects_unread_hands_its_messages_on,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::__named(concat!(module_path!(), "::", stringify!($name)), || {
                    $crate::run(stringify!($name), $factory, $crate::tests::$name)
                });
            }
        )*
    };
}
