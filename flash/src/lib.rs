#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod config;
mod open;
mod previous;
mod url;

use std::sync::Arc;

use flash_core::storage::Storage;

pub use flash_core::*;

pub use config::{
    DEFAULT_STORAGE, ENV_DEV, ENV_SECRET, ENV_SECRET_FALLBACKS, ENV_SECRET_PREVIOUS, ENV_STORAGE,
    ENV_STORAGE_PREVIOUS, StorageConfig,
};
pub use previous::{PREVIOUS_LOG_TARGET, WithPrevious};

#[cfg(feature = "cookie")]
pub use flash_cookie::{CookieStorage, Fallback};
#[cfg(feature = "redis")]
pub use flash_redis::RedisStore;
#[cfg(feature = "session")]
pub use flash_session::{SessionHandle, SessionStorage, TowerSessionStorage};

/// The backend crates, each behind its feature.
pub mod backends {
    #[cfg(feature = "cookie")]
    pub use flash_cookie as cookie;
    #[cfg(feature = "redis")]
    pub use flash_redis as redis;
    #[cfg(feature = "session")]
    pub use flash_session as session;
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    pub use flash_sql as sql;
}

/// Opens the storage at `url`, signing with `secret`: `StorageConfig::new(url).secret(secret)
/// .open()`. See [`StorageConfig`] for key rotation and development mode.
///
/// # Errors
/// As [`StorageConfig::open`].
pub async fn open(url: &str, secret: &str) -> Result<Arc<dyn Storage>> {
    StorageConfig::new(url).secret(secret).open().await
}

/// Opens the storage the environment names: `FLASH_STORAGE` (default `cookie`),
/// `FLASH_SECRET`, `FLASH_SECRET_FALLBACKS`, `FLASH_DEV`. See [`StorageConfig::from_env`].
///
/// # Errors
/// As [`StorageConfig::from_env`] and [`StorageConfig::open`].
pub async fn open_from_env() -> Result<Arc<dyn Storage>> {
    StorageConfig::from_env()?.open().await
}
