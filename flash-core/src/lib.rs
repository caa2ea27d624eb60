#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod adapter;
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
mod storage;
pub mod stored_form;
mod view;

pub use adapter::{Adapter, Finished, Htmx, HtmxRequest, ResponseHeaders, vary_on_cookie};
pub use cookie_options::{CookieOptions, SameSite, append_set_cookie_line};
pub use document::{DEFAULT_DOCUMENT_ATTEMPTS, DocumentStore, Documents, Versioned};
pub use error::{Error, ErrorKind, Result};
pub use keyed::{
    ClientId, DEFAULT_CALL_TIMEOUT, DEFAULT_ID_COOKIE, DEFAULT_LEASE, DEFAULT_TTL, HOST_ID_COOKIE,
    KeyedStorage, KeyedStore, LeaseId, MAX_SPAN, Outcome,
};
pub use level::{Level, LevelTags, ParseLevelError};
pub use limits::Limits;
pub use memory::{DEFAULT_SWEEP_INTERVAL, MemoryStore, SweepTask};
pub use message::Message;
pub use message_list::MessageList;
pub use messages::{Added, Messages, MessagesConfig, Refused, SaveReport};
pub use redact::{Redacted, redact_url};
pub use signing::{Key, Keys, MIN_KEY_LEN, SIGNATURE_LEN, decode_signature};
pub use simple::{Found, ImmediateSimpleStorage, SimpleStorage, Stored};
pub use storage::{
    Carry, Degraded, Identity, ImmediateStorage, Incoming, LoadToken, Loaded, Overflow,
    PREFETCH_HEADERS, Storage, Update, is_prefetch,
};
#[cfg(feature = "minijinja")]
pub use view::minijinja_formatter;
pub use view::{HtmlMessage, MessageView};

/// Re-exported for storages and adapters: the `async_trait` attribute the traits use.
pub use async_trait::async_trait;
/// Re-exported: the `http` crate whose header types the storage trait uses.
pub use http;
