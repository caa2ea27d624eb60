#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod extract;
mod layer;

pub use extract::{Flash, MissingFlashLayer};
pub use layer::{FlashLayer, FlashService, ResponseFuture};

/// Re-exported: the core types handlers and storages use.
pub use flash_core::{
    Error, HtmlMessage, Htmx, Level, LevelTags, Message, MessageView, Messages, MessagesConfig,
    adapter::Adapter, storage::Storage,
};
