//! Building a ready storage from a parsed URL.

use std::sync::Arc;

use flash_core::{Error, ErrorKind, KeyedStorage, KeyedStore, MemoryStore, Result, Storage};

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

/// A background task that ends when this is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A storage and the background tasks it needs (sweepers): dropping the last handle to the
/// storage stops them, so `open` leaves nothing running that the caller cannot stop.
struct Owning {
    storage: Arc<dyn Storage>,
    _tasks: Vec<AbortOnDrop>,
}

#[async_trait::async_trait]
impl Storage for Owning {
    async fn load(&self, request: &flash_core::Incoming) -> Result<flash_core::Loaded> {
        self.storage.load(request).await
    }

    async fn save(
        &self,
        request: &flash_core::Incoming,
        update: flash_core::Update,
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

    fn immediate(&self) -> Option<&dyn flash_core::ImmediateStorage> {
        self.storage.immediate()
    }
}

/// The Tokio runtime a sweeper runs on.
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

/// Drops the memory store's expired clients every `every`, until aborted.
fn spawn_memory_sweeper(store: MemoryStore, every: std::time::Duration) -> Result<AbortOnDrop> {
    let task = runtime("memory")?.spawn(async move {
        let mut ticks = tokio::time::interval(every.max(std::time::Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: nothing has expired yet.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let removed = store.sweep();
            if removed > 0 {
                tracing::debug!(removed, "flash memory sweep");
            }
        }
    });
    Ok(AbortOnDrop(task.abort_handle()))
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
        storage = storage.cookie_name(name.clone());
    }
    if let Some(max) = options.max_size {
        storage = storage.max_size(max);
    }
    storage.cookie_options(options.cookie_options())
}

fn keyed<S: KeyedStore>(url: &StorageUrl, store: S, secrets: &Secrets) -> Arc<dyn Storage> {
    let options = &url.options;
    let mut storage =
        KeyedStorage::new(store, secrets.keys(ID_PURPOSE)).cookie_options(options.cookie_options());
    if let Some(name) = &options.id_cookie {
        storage = storage.cookie_name(name.clone());
    }
    if let Some(ttl) = options.ttl {
        storage = storage.ttl(ttl);
    }
    if let Some(lease) = options.lease_timeout {
        storage = storage.lease_timeout(lease);
    }
    Arc::new(storage)
}

async fn build_inner(
    url: &StorageUrl,
    keys: Option<&Secrets>,
    migrate: bool,
    tasks: &mut Vec<AbortOnDrop>,
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
                storage = storage.key(key.clone());
            }
            Ok(Arc::new(storage))
        }
        Scheme::Memory => {
            let store = MemoryStore::new();
            if let Some(every) = url.options.sweep.unwrap_or(Some(DEFAULT_MEMORY_SWEEP)) {
                tasks.push(spawn_memory_sweeper(store.clone(), every)?);
            }
            Ok(keyed(url, store, secrets(keys)?))
        }
        #[cfg(feature = "redis")]
        Scheme::Redis => {
            let mut builder = flash_redis::RedisStore::builder(url.driver_url.clone());
            if let Some(prefix) = &url.options.prefix {
                builder = builder.prefix(prefix.clone());
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
                let task = store.spawn_sweeper(every)?;
                tasks.push(AbortOnDrop(task.abort_handle()));
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
