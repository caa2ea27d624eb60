//! flash-core's conformance suite on Redis (`FLASH_REDIS_URL`) and, with feature `cluster`, on
//! Redis Cluster (`FLASH_REDIS_CLUSTER_URLS`). Each test isolates itself by its namespace, used
//! as the key prefix.

mod standalone {
    use flash_redis::RedisStore;
    use flash_testkit::{Harness, Options, unavailable};

    async fn redis(options: Options) -> Option<Harness> {
        let url = flash_testkit::urls::redis();
        match RedisStore::builder(&url)
            .prefix(format!("flash-conformance-{}", options.namespace))
            .connect()
            .await
        {
            Ok(store) => Some(Harness::keyed(store, &options)),
            Err(err) => unavailable(&format!("redis at {url}"), err),
        }
    }

    flash_testkit::conformance_tests!(redis);
}

#[cfg(feature = "cluster")]
mod cluster {
    use flash_redis::RedisStore;
    use flash_testkit::{Harness, Options, unavailable};

    async fn redis_cluster(options: Options) -> Option<Harness> {
        let urls = flash_testkit::urls::redis_cluster();
        match RedisStore::cluster_builder(urls.clone())
            .prefix(format!("flash-conformance-{}", options.namespace))
            .connect()
            .await
        {
            Ok(store) => Some(Harness::keyed(store, &options)),
            Err(err) => unavailable(&format!("redis cluster at {}", urls.join(",")), err),
        }
    }

    flash_testkit::conformance_tests!(redis_cluster);
}
