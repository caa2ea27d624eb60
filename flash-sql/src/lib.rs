#![doc = include_str!("../README.md")]
//! ## Cargo features
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
// With no driver the crate still builds (`cargo package` verifies with the default features,
// which are none): every URL is then refused by `connect` with a `Config` error naming the
// feature to turn on, and the bodies that would dispatch to a driver are unreachable.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(unused_variables, unused_assignments, unreachable_code, dead_code)
)]

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
