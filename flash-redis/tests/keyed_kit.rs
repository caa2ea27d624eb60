//! flash-core's keyed-store kit on Redis (`FLASH_REDIS_URL`) and, with feature `cluster`, on
//! Redis Cluster (`FLASH_REDIS_CLUSTER_URLS`): the store driven directly, every rule of the
//! `KeyedStore` contract, limits, expiry in the server and outages included. Each test has its
//! own key prefix. Both run again with shared keys (`RedisStoreBuilder::shared_keys`), two keys
//! for all of a test's clients, so that clients share a key.

mod common;

/// How long flash-redis keeps a client's key after its last write whatever the TTL: the
/// dedupe window of its retried writes (`MIN_DEDUPE_WINDOW`, 60 s; twice the call timeout
/// when that is longer). The kit's expiry check waits for it.
const DEDUPE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// An error of the kit's raw reads.
fn backend(err: redis::RedisError) -> flash_core::Error {
    flash_core::Error::with_source(
        flash_core::ErrorKind::Backend,
        "reading a client's key",
        err,
    )
}

/// How many entries of `client` a key's value holds: with shared keys, whether the client is
/// among the key's clients (past its deadline or not, as the server still holds it); else
/// whether the key exists. Read from the layout the crate docs give.
fn entries(raw: Option<Vec<u8>>, client: &flash_core::storage::ClientId) -> usize {
    match raw.as_deref().map(common::shared_ids) {
        None => 0,
        Some(None) => 1,
        Some(Some(ids)) => usize::from(ids.contains(client.as_bytes())),
    }
}

/// Shared by every test's clients: two keys, so that clients share one.
const SHARED_KEYS: u32 = 2;

mod standalone {
    use std::net::SocketAddr;

    use flash_redis::RedisStore;
    use flash_testkit::keyed_kit::Inspected;
    use flash_testkit::{Options, unavailable};

    /// The store, and what a client's key holds for it, read on a connection of the kit's own.
    pub(super) async fn redis_with(
        options: Options,
        shared: Option<u32>,
    ) -> Option<Inspected<RedisStore>> {
        let url = super::common::redis_url();
        let mut builder =
            RedisStore::builder(&url).prefix(format!("flash-kit-{}", options.namespace));
        if let Some(keys) = shared {
            builder = builder.shared_keys(keys);
        }
        let store = match builder.connect().await {
            Ok(store) => store,
            Err(err) => return unavailable(&format!("redis at {url}"), err),
        };
        let admin = super::common::admin(&url).await?;
        let keys = store.clone();
        Some(
            Inspected::new(store, move |client| {
                let (mut admin, key) = (admin.clone(), keys.client_key(&client));
                async move {
                    let raw: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut admin)
                        .await
                        .map_err(super::backend)?;
                    Ok(super::entries(raw, &client))
                }
            })
            .retention(super::DEDUPE_WINDOW),
        )
    }

    async fn redis(options: Options) -> Option<Inspected<RedisStore>> {
        redis_with(options, None).await
    }

    /// The store built lazily against `addr`.
    pub(super) async fn redis_at(
        options: Options,
        addr: SocketAddr,
    ) -> flash_core::Result<RedisStore> {
        RedisStore::builder(format!("redis://{addr}"))
            .prefix(format!("flash-kit-{}", options.namespace))
            .call_timeout(options.call_timeout)
            .connect_lazy()
    }

    flash_testkit::keyed_store_tests!(redis, at = redis_at);
}

mod shared {
    use std::net::SocketAddr;

    use flash_redis::RedisStore;
    use flash_testkit::Options;
    use flash_testkit::keyed_kit::Inspected;

    async fn redis_shared(options: Options) -> Option<Inspected<RedisStore>> {
        super::standalone::redis_with(options, Some(super::SHARED_KEYS)).await
    }

    async fn redis_shared_at(options: Options, addr: SocketAddr) -> flash_core::Result<RedisStore> {
        RedisStore::builder(format!("redis://{addr}"))
            .prefix(format!("flash-kit-{}", options.namespace))
            .call_timeout(options.call_timeout)
            .shared_keys(super::SHARED_KEYS)
            .connect_lazy()
    }

    flash_testkit::keyed_store_tests!(redis_shared, at = redis_shared_at);
}

#[cfg(feature = "cluster")]
mod cluster {
    use std::net::SocketAddr;

    use flash_redis::RedisStore;
    use flash_testkit::keyed_kit::Inspected;
    use flash_testkit::{Options, unavailable};

    /// The store, and what a client's key holds for it, read on a cluster connection of the
    /// kit's own.
    pub(super) async fn redis_cluster_with(
        options: Options,
        shared: Option<u32>,
    ) -> Option<Inspected<RedisStore>> {
        let urls = super::common::cluster_urls();
        let service = format!("redis cluster at {urls:?}");
        let mut builder = RedisStore::cluster_builder(urls.clone())
            .prefix(format!("flash-kit-{}", options.namespace));
        if let Some(keys) = shared {
            builder = builder.shared_keys(keys);
        }
        let store = match builder.connect().await {
            Ok(store) => store,
            Err(err) => return unavailable(&service, err),
        };
        let admin = match redis::cluster::ClusterClient::new(urls) {
            Ok(client) => match client.get_async_connection().await {
                Ok(connection) => connection,
                Err(err) => return unavailable(&service, err),
            },
            Err(err) => return unavailable(&service, err),
        };
        let keys = store.clone();
        Some(
            Inspected::new(store, move |client| {
                let (mut admin, key) = (admin.clone(), keys.client_key(&client));
                async move {
                    let raw: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut admin)
                        .await
                        .map_err(super::backend)?;
                    Ok(super::entries(raw, &client))
                }
            })
            .retention(super::DEDUPE_WINDOW),
        )
    }

    async fn redis_cluster(options: Options) -> Option<Inspected<RedisStore>> {
        redis_cluster_with(options, None).await
    }

    async fn redis_cluster_shared(options: Options) -> Option<Inspected<RedisStore>> {
        redis_cluster_with(options, Some(super::SHARED_KEYS)).await
    }

    /// A cluster store connects eagerly (it must learn the slots): against `addr` it fails
    /// to build, which the kit accepts as `Unavailable` within the deadline.
    async fn redis_cluster_at(
        options: Options,
        addr: SocketAddr,
    ) -> flash_core::Result<RedisStore> {
        RedisStore::cluster_builder([format!("redis://{addr}")])
            .prefix(format!("flash-kit-{}", options.namespace))
            .call_timeout(options.call_timeout)
            .connect()
            .await
    }

    flash_testkit::keyed_store_tests!(redis_cluster, at = redis_cluster_at);

    mod shared {
        use super::{redis_cluster_at, redis_cluster_shared};

        flash_testkit::keyed_store_tests!(redis_cluster_shared, at = redis_cluster_at);
    }
}
