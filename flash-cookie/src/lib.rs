#![doc = include_str!("../README.md")]
//! ## Cargo features
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod codec;
#[cfg(feature = "django")]
mod django;
mod fallback;
mod flash;
mod storage;

pub use codec::{Codec, Decoded};
#[cfg(feature = "django")]
pub use django::{DjangoCodec, KEY_SALT, NOT_FINISHED};
pub use fallback::Fallback;
pub use flash::FlashCodec;
pub use storage::{CookieStorage, DEFAULT_COOKIE_NAME, DEFAULT_MAX_SIZE, MAX_SET_COOKIE_LEN};
