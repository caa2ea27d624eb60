//! The test servers, in one place for every crate's tests and benchmarks: each URL comes from
//! its environment variable at run time (an empty value counts as unset), else the local
//! default. `scripts/redis-cluster` starts the default cluster on ports 7001-7003.
//!
//! ```
//! use flash_testkit::urls;
//! assert!(urls::redis().starts_with("redis"));
//! assert!(!urls::redis_cluster().is_empty());
//! assert!(urls::redis_cluster_url().starts_with("redis+cluster://"));
//! ```

/// Environment variable: the Redis server.
pub const ENV_REDIS: &str = "FLASH_REDIS_URL";
/// Environment variable: the Redis Cluster nodes, comma separated.
pub const ENV_REDIS_CLUSTER: &str = "FLASH_REDIS_CLUSTER_URLS";
/// Environment variable: the PostgreSQL server.
pub const ENV_POSTGRES: &str = "FLASH_POSTGRES_URL";
/// Environment variable: the MySQL / MariaDB server.
pub const ENV_MYSQL: &str = "FLASH_MYSQL_URL";

/// Environment variable: `1` (or `true`) lets a kit test whose server is unreachable end as
/// skipped, printing `SKIPPED <test>: ...` in the test output, instead of failing. `CI=true`
/// overrides it: under CI an unreachable server always fails.
pub const ENV_SKIP_UNREACHABLE: &str = "FLASH_TESTKIT_SKIP_UNREACHABLE";

/// The local Redis server.
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";
/// The local Redis Cluster (`scripts/redis-cluster`), comma separated.
pub const DEFAULT_REDIS_CLUSTER: &str =
    "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003";
/// The local PostgreSQL server.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The local MySQL / MariaDB server.
pub const DEFAULT_MYSQL: &str = "mysql://root@127.0.0.1:3306/test";

/// The environment variable `name`, or `default` when it is unset, empty or not UTF-8.
pub fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The Redis server ([`ENV_REDIS`], default [`DEFAULT_REDIS`]).
pub fn redis() -> String {
    var(ENV_REDIS, DEFAULT_REDIS)
}

/// The Redis Cluster's node URLs ([`ENV_REDIS_CLUSTER`], default [`DEFAULT_REDIS_CLUSTER`]).
pub fn redis_cluster() -> Vec<String> {
    var(ENV_REDIS_CLUSTER, DEFAULT_REDIS_CLUSTER)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The Redis Cluster as one storage URL of the `flash` facade: `redis+cluster://a:1,b:2,…`.
pub fn redis_cluster_url() -> String {
    let hosts: Vec<String> = redis_cluster()
        .iter()
        .map(|node| {
            node.split_once("://")
                .map_or(node.as_str(), |(_, rest)| rest)
                .to_owned()
        })
        .collect();
    format!("redis+cluster://{}", hosts.join(","))
}

/// The PostgreSQL server ([`ENV_POSTGRES`], default [`DEFAULT_POSTGRES`]).
pub fn postgres() -> String {
    var(ENV_POSTGRES, DEFAULT_POSTGRES)
}

/// The MySQL / MariaDB server ([`ENV_MYSQL`], default [`DEFAULT_MYSQL`]).
pub fn mysql() -> String {
    var(ENV_MYSQL, DEFAULT_MYSQL)
}
