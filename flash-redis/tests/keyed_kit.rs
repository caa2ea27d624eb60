//! flash-core's keyed-store kit on Redis (`FLASH_REDIS_URL`) and, with feature `cluster`, on
//! Redis Cluster (`FLASH_REDIS_CLUSTER_URLS`): the store driven directly, every rule of the
//! `KeyedStore` contract, limits included. Each test has its own key prefix.

mod common;

mod standalone {
    use flash_redis::RedisStore;
    use flash_testkit::{Options, unavailable};

    async fn redis(options: Options) -> Option<RedisStore> {
        let url = super::common::redis_url();
        match RedisStore::builder(&url)
            .prefix(format!("flash-kit-{}", options.namespace))
            .connect()
            .await
        {
            Ok(store) => Some(store),
            Err(err) => unavailable(&format!("redis at {url}"), err),
        }
    }

    flash_testkit::keyed_store_tests!(redis);
}

#[cfg(feature = "cluster")]
mod cluster {
    use flash_redis::RedisStore;
    use flash_testkit::{Options, unavailable};

    async fn redis_cluster(options: Options) -> Option<RedisStore> {
        let urls = super::common::cluster_urls();
        match RedisStore::cluster_builder(urls.clone())
            .prefix(format!("flash-kit-{}", options.namespace))
            .connect()
            .await
        {
            Ok(store) => Some(store),
            Err(err) => unavailable(&format!("redis cluster at {urls:?}"), err),
        }
    }

    flash_testkit::keyed_store_tests!(redis_cluster);
}
