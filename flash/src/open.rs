//! Building a ready storage from a parsed URL.

use std::sync::Arc;

use flash_core::{
    Error, ErrorKind, Result, SweepTask,
    storage::{KeyedStore, MemoryStore, ServerStorage, Storage},
};

use crate::config::Secrets;
use crate::url::{Scheme, StorageUrl};

/// The key-derivation purpose of flash-format message cookies.
#[cfg(feature = "cookie")]
pub(crate) const COOKIE_PURPOSE: &str = "flash.cookie";
/// The key-derivation purpose of the client-id cookie of keyed stores.
pub(crate) const ID_PURPOSE: &str = "flash.id";

/// How often an SQL store deletes expired messages, unless the URL says `sweep=…`.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub(crate) const DEFAULT_SWEEP: std::time::Duration = std::time::Duration::from_secs(3600);

/// How often the memory store drops expired clients, unless the URL says `sweep=…`: a pass
/// over the clients under the store's lock, cheap enough to run often.
pub(crate) const DEFAULT_MEMORY_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// A storage and the background tasks it needs (sweepers): dropping the last handle to the
/// storage stops them, so `open` leaves nothing running that the caller cannot stop.
struct Owning {
    storage: Arc<dyn Storage>,
    _tasks: Vec<SweepTask>,
}

#[async_trait::async_trait]
impl Storage for Owning {
    async fn load(
        &self,
        request: &flash_core::storage::Incoming,
    ) -> Result<flash_core::storage::Loaded> {
        self.storage.load(request).await
    }

    async fn save(
        &self,
        request: &flash_core::storage::Incoming,
        update: flash_core::storage::Update,
        response: &mut flash_core::http::HeaderMap,
    ) -> Result<Vec<flash_core::Message>> {
        self.storage.save(request, update, response).await
    }

    fn uses_extensions(&self) -> bool {
        self.storage.uses_extensions()
    }

    fn carries_data(&self) -> bool {
        self.storage.carries_data()
    }

    fn can_hold(&self, message: &flash_core::Message) -> bool {
        self.storage.can_hold(message)
    }

    fn immediate(&self) -> Option<&dyn flash_core::storage::ImmediateStorage> {
        self.storage.immediate()
    }
}

/// The Tokio runtime a sweeper runs on; its error says what the URL can do about it.
fn runtime(what: &str) -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|err| {
        Error::with_source(
            ErrorKind::Config,
            format!(
                "the {what} sweeper needs a Tokio runtime: open the storage inside one, or add \
                 `sweep=off` to the URL and sweep yourself"
            ),
            err,
        )
    })
}

fn secrets(secrets: Option<&Secrets>) -> Result<&Secrets> {
    // `StorageConfig::resolve` resolves the secret for every storage that signs.
    secrets.ok_or_else(|| Error::new(ErrorKind::Config, "this storage needs a secret"))
}

/// Builds the storage `url` names, owning the background tasks it started.
pub(crate) async fn build(
    url: &StorageUrl,
    keys: Option<&Secrets>,
    migrate: bool,
) -> Result<Arc<dyn Storage>> {
    let mut tasks = Vec::new();
    let inner = build_inner(url, keys, migrate, &mut tasks).await?;
    let storage = if url.cookie_first {
        cookie_first(url, keys, inner)?
    } else {
        inner
    };
    if tasks.is_empty() {
        return Ok(storage);
    }
    Ok(Arc::new(Owning {
        storage,
        _tasks: tasks,
    }))
}

#[cfg(feature = "cookie")]
fn cookie_first(
    url: &StorageUrl,
    keys: Option<&Secrets>,
    inner: Arc<dyn Storage>,
) -> Result<Arc<dyn Storage>> {
    let cookie = cookie(url, secrets(keys)?);
    // Behind the cookie, a keyed store's messages are shown at the next read even when the
    // cookie is empty (lost, or emptied while an outage held a lease); the session keeps
    // Django's rule.
    let keyed = url.scheme.is_keyed();
    Ok(Arc::new(
        flash_cookie::Fallback::new(cookie, inner).read_behind_empty_first(keyed),
    ))
}

#[cfg(not(feature = "cookie"))]
fn cookie_first(
    _url: &StorageUrl,
    _keys: Option<&Secrets>,
    _inner: Arc<dyn Storage>,
) -> Result<Arc<dyn Storage>> {
    // `StorageConfig::resolve` reports the missing feature first.
    Err(Error::new(
        ErrorKind::Config,
        "cookie+ needs the `cookie` feature",
    ))
}

#[cfg(feature = "cookie")]
fn cookie(url: &StorageUrl, secrets: &Secrets) -> flash_cookie::CookieStorage {
    use crate::url::CookieFormat;
    let options = &url.options;
    let mut storage = match options.format {
        CookieFormat::Flash => flash_cookie::CookieStorage::new(secrets.keys(COOKIE_PURPOSE)),
        #[cfg(feature = "django")]
        CookieFormat::Django => flash_cookie::CookieStorage::django(
            secrets.current.as_str(),
            secrets.fallbacks.iter().map(|s| s.as_str()),
        ),
        // `StorageUrl::missing_features` refuses `format=django` without the feature.
        #[cfg(not(feature = "django"))]
        CookieFormat::Django => flash_cookie::CookieStorage::new(secrets.keys(COOKIE_PURPOSE)),
    };
    if let Some(name) = &options.cookie_name {
        storage = storage.with_cookie_name(name.clone());
    }
    if let Some(max) = options.max_size {
        storage = storage.with_max_size(max);
    }
    storage.with_cookie_options(options.cookie_options())
}

fn keyed<S: KeyedStore>(url: &StorageUrl, store: S, secrets: &Secrets) -> Arc<dyn Storage> {
    let options = &url.options;
    let mut storage = ServerStorage::new(store, secrets.keys(ID_PURPOSE))
        .with_cookie_options(options.cookie_options());
    if let Some(name) = &options.id_cookie {
        storage = storage.with_cookie_name(name.clone());
    }
    if let Some(ttl) = options.ttl {
        storage = storage.with_ttl(ttl);
    }
    if let Some(lease) = options.lease_timeout {
        storage = storage.with_lease_timeout(lease);
    }
    if let Some(deadline) = options.call_timeout {
        storage = storage.with_call_timeout(deadline);
    }
    Arc::new(storage)
}

async fn build_inner(
    url: &StorageUrl,
    keys: Option<&Secrets>,
    migrate: bool,
    tasks: &mut Vec<SweepTask>,
) -> Result<Arc<dyn Storage>> {
    // Only the SQL stores have a table to create.
    let _ = migrate;
    match url.scheme {
        #[cfg(feature = "cookie")]
        Scheme::Cookie => Ok(Arc::new(cookie(url, secrets(keys)?))),
        #[cfg(feature = "session")]
        Scheme::Session => {
            let mut storage = flash_session::TowerSessionStorage::new();
            if let Some(key) = &url.options.session_key {
                storage = storage.with_session_key(key.clone());
            }
            Ok(Arc::new(storage))
        }
        Scheme::Memory => {
            let store = MemoryStore::new();
            if let Some(every) = url.options.sweep.unwrap_or(Some(DEFAULT_MEMORY_SWEEP)) {
                runtime("memory")?;
                tasks.push(store.spawn_sweeper(every)?);
            }
            Ok(keyed(url, store, secrets(keys)?))
        }
        #[cfg(feature = "redis")]
        Scheme::Redis => {
            let mut builder = flash_redis::RedisStore::builder(url.driver_url.clone());
            if let Some(prefix) = &url.options.prefix {
                builder = builder.prefix(prefix.clone());
            }
            if let Some(keys) = url.options.shared_keys {
                builder = builder.shared_keys(keys);
            }
            let store = builder.connect().await?;
            Ok(keyed(url, store, secrets(keys)?))
        }
        #[cfg(feature = "redis-cluster")]
        Scheme::RedisCluster => {
            let mut builder = flash_redis::RedisStore::cluster_builder(url.nodes.clone());
            if let Some(prefix) = &url.options.prefix {
                builder = builder.prefix(prefix.clone());
            }
            if let Some(keys) = url.options.shared_keys {
                builder = builder.shared_keys(keys);
            }
            let store = builder.connect().await?;
            Ok(keyed(url, store, secrets(keys)?))
        }
        #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
        Scheme::Postgres | Scheme::Mysql | Scheme::Sqlite => {
            let mut builder = flash_sql::SqlStore::builder(url.driver_url.clone());
            if let Some(table) = &url.options.table {
                builder = builder.table(table.clone());
            }
            let store = builder.connect().await?;
            if migrate {
                store.migrate().await?;
            }
            if let Some(every) = url.options.sweep.unwrap_or(Some(DEFAULT_SWEEP)) {
                runtime("SQL")?;
                tasks.push(store.spawn_sweeper(every)?);
            }
            Ok(keyed(url, store, secrets(keys)?))
        }
        #[allow(unreachable_patterns)]
        scheme => Err(Error::new(
            ErrorKind::Config,
            format!(
                "the `{}` backend is not compiled in",
                scheme.feature().unwrap_or("memory")
            ),
        )),
    }
}

/// What one cookie of a storage is, for the switch's plan.
#[derive(Debug, Clone, PartialEq)]
enum CookieRole {
    /// It holds the messages, in this format.
    Messages(crate::url::CookieFormat),
    /// It holds the client id of a keyed store.
    Id,
    /// It holds the messages a keyed store could not take (its carry cookie).
    Carry,
}

/// One cookie a storage reads and writes.
#[derive(Debug)]
struct CookieUse {
    name: String,
    role: CookieRole,
}

/// The cookies the storage at `url` uses (a session's cookie is the framework's, not flash's).
fn cookies_of(url: &StorageUrl) -> Vec<CookieUse> {
    let mut cookies = Vec::new();
    if url.cookie_first || url.scheme == Scheme::Cookie {
        #[cfg(feature = "cookie")]
        let default = flash_cookie::DEFAULT_COOKIE_NAME;
        #[cfg(not(feature = "cookie"))]
        let default = "messages";
        cookies.push(CookieUse {
            name: url
                .options
                .cookie_name
                .clone()
                .unwrap_or_else(|| default.to_owned()),
            role: CookieRole::Messages(url.options.format),
        });
    }
    if url.scheme.is_keyed() {
        // The bridge's own naming rule (the `__Host-` prefix when the options allow it).
        let mut storage = ServerStorage::new(MemoryStore::new(), flash_core::Key::generate())
            .with_cookie_options(url.options.cookie_options());
        if let Some(name) = &url.options.id_cookie {
            storage = storage.with_cookie_name(name.clone());
        }
        cookies.push(CookieUse {
            name: storage.cookie_name().to_owned(),
            role: CookieRole::Id,
        });
        cookies.push(CookieUse {
            name: storage.carry_cookie_name().to_owned(),
            role: CookieRole::Carry,
        });
    }
    cookies
}

/// Whether the two URLs name one server-side store (the same rows or keys).
fn same_store(a: &StorageUrl, b: &StorageUrl) -> bool {
    // Each `memory` is a store of its own.
    a.scheme.is_keyed()
        && a.scheme != Scheme::Memory
        && a.scheme == b.scheme
        && a.driver_url == b.driver_url
        && a.nodes == b.nodes
        && a.options.prefix == b.options.prefix
        // Shared keys hold a client elsewhere than its own key does.
        && a.options.shared_keys == b.options.shared_keys
        && a.options.table == b.options.table
}

/// How the previous storage is composed with the current one.
#[derive(Debug, Default)]
struct Plan {
    /// Cookies the current storage reads as its own: the previous never sees them.
    hidden: Vec<String>,
    /// Every cookie the current storage uses.
    current: Vec<String>,
    /// The current storage would overwrite a cookie the previous keeps messages or ids in.
    drain_before_add: bool,
    /// The previous storage's server-side store is the current's: only its cookie is drained.
    cookie_only: bool,
}

/// Plans the switch from `previous` to `current`. A cookie both use is the current's: the
/// previous never sees it when the current reads it as its own (same role, format and a key
/// the current verifies), and an add drains the previous first when the current would
/// overwrite it (another format or key). An id cookie both verify points both stores at one
/// client: both read it, the current keeps it.
fn plan(
    (current, current_secrets): (&StorageUrl, Option<&Secrets>),
    (previous, previous_secrets): (&StorageUrl, Option<&Secrets>),
) -> Plan {
    let verifies = match (current_secrets, previous_secrets) {
        (Some(current), Some(previous)) => std::iter::once(&current.current)
            .chain(&current.fallbacks)
            .any(|s| s.as_str() == previous.current.as_str()),
        _ => false,
    };
    let current_cookies = cookies_of(current);
    let mut plan = Plan {
        current: current_cookies.iter().map(|c| c.name.clone()).collect(),
        cookie_only: same_store(current, previous),
        ..Plan::default()
    };
    for cookie in cookies_of(previous) {
        if plan.cookie_only && cookie.role != CookieRole::Messages(previous.options.format) {
            continue;
        }
        let Some(theirs) = current_cookies.iter().find(|c| c.name == cookie.name) else {
            continue;
        };
        match (&cookie.role, theirs.role == cookie.role && verifies) {
            (CookieRole::Id, true) => {}
            (_, true) => plan.hidden.push(cookie.name),
            (_, false) => plan.drain_before_add = true,
        }
    }
    plan
}

/// Wraps `current` so that it drains the storage at `previous`, never writing to it. The
/// previous storage opens without migration or sweeper; one that cannot be reached now is
/// opened again at a later read.
pub(crate) async fn with_previous(
    current_storage: Arc<dyn Storage>,
    current: (&StorageUrl, Option<&Secrets>),
    previous: (&StorageUrl, Option<&Secrets>),
) -> Result<Arc<dyn Storage>> {
    let plan = plan(current, previous);
    let (previous_url, previous_secrets) = previous;
    let mut url = previous_url.clone();
    // Never write to the previous storage: no table created, no sweeper deleting.
    url.options.sweep = Some(None);
    url.options.migrate = Some(false);
    if plan.cookie_only {
        if !url.cookie_first {
            tracing::info!(
                target: crate::previous::PREVIOUS_LOG_TARGET,
                "the previous storage's store is the current one: nothing to drain"
            );
            return Ok(current_storage);
        }
        url.cookie_first = false;
        url.scheme = Scheme::Cookie;
    }
    let read_by_current = cookies_of(&url)
        .iter()
        .all(|c| plan.hidden.contains(&c.name));
    if url.scheme == Scheme::Cookie && read_by_current {
        tracing::info!(
            target: crate::previous::PREVIOUS_LOG_TARGET,
            "the current storage reads the previous storage's cookie itself: nothing to drain"
        );
        return Ok(current_storage);
    }
    let previous_storage = match build(&url, previous_secrets, false).await {
        Ok(storage) => storage,
        Err(err) if err.kind() == ErrorKind::Unavailable => {
            tracing::warn!(
                target: crate::previous::PREVIOUS_LOG_TARGET,
                %err,
                "the previous storage cannot be reached: the current one serves alone, the \
                 previous is tried again at later reads"
            );
            Arc::new(Reopening::new(url, previous_secrets.cloned()))
        }
        Err(err) => return Err(err),
    };
    Ok(Arc::new(
        crate::previous::WithPrevious::new(current_storage, previous_storage)
            .hide_from_previous(plan.hidden)
            .current_cookies(plan.current)
            .drain_before_add(plan.drain_before_add),
    ))
}

/// How long a previous storage that could not be opened waits before the next attempt.
const REOPEN_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// A previous storage that could not be reached at start: opened at a read, at most one
/// attempt every [`REOPEN_AFTER`] and one at a time; meanwhile each read fails at once as
/// unavailable (which the composition reports and reads past), so no request waits on it.
struct Reopening {
    url: StorageUrl,
    secrets: Option<Secrets>,
    opened: std::sync::OnceLock<Arc<dyn Storage>>,
    /// When it was last tried; held while an attempt runs.
    tried: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Reopening {
    fn new(url: StorageUrl, secrets: Option<Secrets>) -> Self {
        Reopening {
            url,
            secrets,
            opened: std::sync::OnceLock::new(),
            tried: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn storage(&self) -> Result<Arc<dyn Storage>> {
        if let Some(storage) = self.opened.get() {
            return Ok(storage.clone());
        }
        let not_yet = || {
            Error::new(
                ErrorKind::Unavailable,
                "the previous storage could not be reached; it is tried again shortly",
            )
        };
        let Ok(mut tried) = self.tried.try_lock() else {
            return Err(not_yet());
        };
        if tried.elapsed() < REOPEN_AFTER {
            return Err(not_yet());
        }
        *tried = tokio::time::Instant::now();
        let storage = build(&self.url, self.secrets.as_ref(), false).await?;
        tracing::info!(
            target: crate::previous::PREVIOUS_LOG_TARGET,
            "the previous storage is reachable again"
        );
        Ok(self.opened.get_or_init(|| storage).clone())
    }
}

#[async_trait::async_trait]
impl Storage for Reopening {
    async fn load(
        &self,
        request: &flash_core::storage::Incoming,
    ) -> Result<flash_core::storage::Loaded> {
        self.storage().await?.load(request).await
    }

    async fn save(
        &self,
        request: &flash_core::storage::Incoming,
        update: flash_core::storage::Update,
        response: &mut flash_core::http::HeaderMap,
    ) -> Result<Vec<flash_core::Message>> {
        // A save follows a load that succeeded: the storage is open.
        match self.opened.get() {
            Some(storage) => storage.save(request, update, response).await,
            None => Ok(Vec::new()),
        }
    }

    fn uses_extensions(&self) -> bool {
        self.url.scheme == Scheme::Session
    }
}
