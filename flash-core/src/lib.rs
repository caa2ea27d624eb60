#![doc = include_str!("../README.md")]
//! ## Cargo features
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod address;
mod cookie_options;
mod document;
mod error;
mod keyed;
mod level;
mod limits;
mod memory;
mod message;
mod message_list;
mod messages;
mod random;
mod redact;
mod signing;
mod simple;
#[path = "storage.rs"]
mod storage_trait;
#[cfg(feature = "tokio")]
mod sweep;
mod timer;
mod view;

pub mod adapter;
pub mod observe;

pub mod storage {
    //! For backend authors: the three ways a store plugs in, and everything a backend is made of.
    //!
    //! | Your store has | Implement |
    //! |---|---|
    //! | per-client state carried by the request (a cookie, a session) | [`SimpleStorage`] |
    //! | a conditional write on one document or row per client | [`DocumentStore`], wrapped in [`Documents`] |
    //! | server-side atomic operations (scripts, statements) | [`KeyedStore`] |
    //!
    //! A [`KeyedStore`] (a [`Documents`] included) serves requests through [`ServerStorage`],
    //! which gives each client a signed id cookie; [`MemoryStore`] is the in-process reference.
    //! Any of them is a [`Storage`], the trait the request handle drives; [`Incoming`] is the
    //! request as a storage sees it. Messages are written down in the [`stored_form`]; signed
    //! values use the helpers here and the application's [`Keys`](crate::Keys). The kits that
    //! check a backend are in the crate `flash-testkit`.

    pub use crate::cookie_options::append_set_cookie_line;
    pub use crate::document::{DEFAULT_DOCUMENT_ATTEMPTS, DocumentStore, Documents, Versioned};
    pub use crate::keyed::{
        ClientId, DEFAULT_ID_COOKIE, DEFAULT_LEASE, DEFAULT_TTL, HOST_ID_COOKIE, KeyedStore,
        LeaseId, MAX_SPAN, OperationId, Outcome, ServerStorage,
    };
    pub use crate::memory::{DEFAULT_SWEEP_INTERVAL, MemoryStore};
    pub use crate::redact::{Redacted, redact_url};
    pub use crate::signing::{MIN_KEY_LEN, SIGNATURE_LEN, decode_signature};
    pub use crate::simple::{Found, ImmediateSimpleStorage, SimpleStorage, Stored};
    pub(crate) use crate::storage_trait::ReportSink;
    pub use crate::storage_trait::{
        Carry, Degraded, Identity, ImmediateStorage, Incoming, LoadToken, Loaded, Overflow,
        Storage, Update,
    };
    pub use crate::timer::Timer;

    pub mod stored_form;
}

pub use adapter::Htmx;
pub use address::{Addressing, DEFAULT_ADDRESS_LOADS, DEFAULT_ADDRESS_TIME};
pub use cookie_options::{CookieOptions, SameSite};
pub use error::{Error, ErrorKind, Result};
pub use keyed::DEFAULT_CALL_TIMEOUT;
pub use level::{Level, LevelTags, ParseLevelError};
pub use limits::Limits;
pub use message::{Address, Message};
pub use message_list::MessageList;
pub use messages::{Added, Messages, MessagesConfig, Refused, SaveReport};
pub use signing::{Key, Keys};
#[cfg(feature = "tokio")]
pub use sweep::SweepTask;
#[cfg(feature = "minijinja")]
pub use view::minijinja_formatter;
pub use view::{HtmlMessage, MessageView};

/// Re-exported for storages and adapters: the `async_trait` attribute the traits use.
pub use async_trait::async_trait;
/// Re-exported: the `http` crate whose header types the storage trait uses.
pub use http;
