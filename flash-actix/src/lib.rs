#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod extract;
mod middleware;
#[cfg(feature = "actix-session")]
mod session;

pub use extract::{Flash, MissingFlashMiddleware};
pub use middleware::{Answer, FlashMiddleware, FlashService, ResponseFuture};
#[cfg(feature = "actix-session")]
pub use session::{ActixSession, ActixSessionStorage};

#[cfg(feature = "actix-session")]
use session::Bridge;

/// Without the feature `actix-session` there is no session to bridge.
#[cfg(not(feature = "actix-session"))]
enum Bridge {}

#[cfg(not(feature = "actix-session"))]
impl Bridge {
    fn capture(
        _: &actix_web::dev::ServiceRequest,
        _: &flash_core::adapter::Adapter,
    ) -> Option<Bridge> {
        None
    }

    fn extensions(&self) -> flash_core::http::Extensions {
        match *self {}
    }

    fn write_back(&self) {
        match *self {}
    }
}

/// Re-exported: the core types handlers and storages use.
pub use flash_core::{
    Error, HtmlMessage, Htmx, Level, LevelTags, Message, MessageView, Messages, MessagesConfig,
    adapter::Adapter, storage::Storage,
};
