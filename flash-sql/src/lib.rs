#![doc = include_str!("../README.md")]
//! ## Cargo features
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!("flash-sql needs at least one of the features `postgres`, `mysql`, `sqlite`");

mod builder;
mod error;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod table;

pub use builder::SqlStoreBuilder;
pub use store::{Driver, SqlStore};
pub use table::MAX_TABLE_NAME_LEN;

/// Re-exported: the `sqlx` version this crate is built on, for pools handed to
/// `SqlStore::from_*_pool`.
pub use sqlx;
