#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod extract;
mod middleware;

pub use extract::{Flash, MissingFlashMiddleware};
pub use middleware::{FlashMiddleware, FlashService, ResponseFuture};

/// Re-exported: the core types handlers and storages use.
pub use flash_core::{
    Adapter, Config, Error, HtmlMessage, Htmx, Level, LevelTags, Message, MessageView, Messages,
    Storage,
};
