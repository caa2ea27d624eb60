#![doc = include_str!("../README.md")]
//! ## Cargo features
//!
//! All additive: enable any set of storages, then choose one at run time by URL.
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod config;
mod open;
mod previous;
mod url;

use std::sync::Arc;

// The application's vocabulary, by name: what a handler, a template and `main` use. What
// framework and backend authors need lives in `adapter` and `storage` (and in flash-core).
pub use config::StorageConfig;
pub use flash_core::{
    Added, Address, Addressing, Error, ErrorKind, Level, LevelTags, Limits, Message, MessageList,
    MessageView, Messages, MessagesConfig, ParseLevelError, Refused, Result,
};

#[cfg(feature = "askama")]
pub use flash_core::HtmlMessage;
#[cfg(feature = "minijinja")]
pub use flash_core::minijinja_formatter;

#[cfg(feature = "actix")]
#[doc(inline)]
pub use flash_actix as actix;
#[cfg(feature = "axum")]
#[doc(inline)]
pub use flash_axum as axum;
#[cfg(feature = "poem")]
#[doc(inline)]
pub use flash_poem as poem;

#[cfg(feature = "testkit")]
#[doc(inline)]
pub use flash_testkit as testkit;

#[doc(inline)]
pub use flash_core::{adapter, observe};

/// The environment [`open_from_env`] reads, and the storage it opens when none is named.
pub mod env {
    pub use crate::config::{
        DEFAULT_STORAGE, ENV_DEV, ENV_SECRET, ENV_SECRET_FALLBACKS, ENV_SECRET_PREVIOUS,
        ENV_STORAGE, ENV_STORAGE_PREVIOUS,
    };
}

/// The storages and what they are made of: for an application that builds one in code
/// rather than from a URL, and for backend authors (the traits a store implements; the kits
/// that check it are in the crate `flash-testkit`).
pub mod storage {
    #[doc(inline)]
    pub use flash_core::storage::*;
    pub use flash_core::{Key, Keys, async_trait};

    pub use crate::previous::{PREVIOUS_LOG_TARGET, WithPrevious};

    #[cfg(feature = "cookie")]
    pub use flash_cookie::{CookieStorage, Fallback};
    #[cfg(feature = "redis")]
    pub use flash_redis::RedisStore;
    #[cfg(feature = "session")]
    pub use flash_session::{SessionHandle, SessionStorage, TowerSessionStorage};
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    pub use flash_sql::SqlStore;

    /// The backend crates, each behind its feature, for what the types above do not cover
    /// (builders, Django's formats, the SQL schema).
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
}

/// Opens the storage at `url`, signing with `secret`: `StorageConfig::new(url).secret(secret)
/// .open()`. See [`StorageConfig`] for key rotation and development mode.
///
/// # Errors
/// As [`StorageConfig::open`].
pub async fn open(url: &str, secret: &str) -> Result<Arc<dyn storage::Storage>> {
    StorageConfig::new(url).secret(secret).open().await
}

/// Opens the storage the environment names: `FLASH_STORAGE` (default `cookie`, the signed
/// cookie), `FLASH_SECRET`, `FLASH_SECRET_FALLBACKS`, `FLASH_DEV` (see [`env`](mod@env) and
/// [`StorageConfig::from_env`]).
///
/// # Errors
/// As [`StorageConfig::from_env`] and [`StorageConfig::open`].
pub async fn open_from_env() -> Result<Arc<dyn storage::Storage>> {
    StorageConfig::from_env()?.open().await
}
