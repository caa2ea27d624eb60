//! flash-core's keyed-store kit on Redis (`FLASH_REDIS_URL`) and, with feature `cluster`, on
//! Redis Cluster (`FLASH_REDIS_CLUSTER_URLS`): the store driven directly, every rule of the
//! `KeyedStore` contract, limits, expiry in the server and outages included. Each test has its
//! own key prefix.

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

mod standalone {
    use std::net::SocketAddr;

    use flash_redis::RedisStore;
    use flash_testkit::keyed_kit::Inspected;
    use flash_testkit::{Options, unavailable};

    /// The store, and `EXISTS` of a client's key on a connection of the kit's own.
    async fn redis(options: Options) -> Option<Inspected<RedisStore>> {
        let url = super::common::redis_url();
        let store = match RedisStore::builder(&url)
            .prefix(format!("flash-kit-{}", options.namespace))
            .connect()
            .await
        {
            Ok(store) => store,
            Err(err) => return unavailable(&format!("redis at {url}"), err),
        };
        let admin = super::common::admin(&url).await?;
        let keys = store.clone();
        Some(
            Inspected::new(store, move |client| {
                let (mut admin, key) = (admin.clone(), keys.client_key(&client));
                async move {
                    redis::cmd("EXISTS")
                        .arg(key)
                        .query_async(&mut admin)
                        .await
                        .map_err(super::backend)
                }
            })
            .retention(super::DEDUPE_WINDOW),
        )
    }

    /// The store built lazily against `addr`.
    async fn redis_at(options: Options, addr: SocketAddr) -> flash_core::Result<RedisStore> {
        RedisStore::builder(format!("redis://{addr}"))
            .prefix(format!("flash-kit-{}", options.namespace))
            .call_timeout(options.call_timeout)
            .connect_lazy()
    }

    flash_testkit::keyed_store_tests!(redis, at = redis_at);
}

#[cfg(feature = "cluster")]
mod cluster {
    use std::net::SocketAddr;

    use flash_redis::RedisStore;
    use flash_testkit::keyed_kit::Inspected;
    use flash_testkit::{Options, unavailable};

    /// The store, and `EXISTS` of a client's key on a cluster connection of the kit's own.
    async fn redis_cluster(options: Options) -> Option<Inspected<RedisStore>> {
        let urls = super::common::cluster_urls();
        let service = format!("redis cluster at {urls:?}");
        let store = match RedisStore::cluster_builder(urls.clone())
            .prefix(format!("flash-kit-{}", options.namespace))
            .connect()
            .await
        {
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
                    redis::cmd("EXISTS")
                        .arg(key)
                        .query_async(&mut admin)
                        .await
                        .map_err(super::backend)
                }
            })
            .retention(super::DEDUPE_WINDOW),
        )
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
}
