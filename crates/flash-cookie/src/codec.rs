//! The cookie value formats a [`CookieStorage`](crate::CookieStorage) can speak.

use std::ops::Range;

use flash_core::{Message, Overflow, Result};

use crate::flash::FlashCodec;

/// What a cookie value decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// False when the value ends with the not-finished marker: the rest of the messages
    /// overflowed to the next storage of a [`Fallback`](crate::Fallback).
    pub complete: bool,
}

/// The value chosen for a list of messages under a size limit.
#[derive(Debug)]
pub(crate) struct Packed {
    /// The cookie value, `None` when nothing is to be stored.
    pub(crate) value: Option<String>,
    /// The messages the value holds: a prefix (spill) or a suffix (drop oldest) of the list.
    pub(crate) kept: Range<usize>,
}

/// The format of a cookie value: flash's own signed JSON, or Django's (feature `django`).
///
/// ```
/// use flash_cookie::{Codec, FlashCodec};
/// use flash_core::{Key, Keys, Level, Message};
///
/// let codec = Codec::from(FlashCodec::new(Keys::new(Key::generate())));
/// let value = codec.encode("messages", &[Message::new(Level::INFO, "hi")], false)?;
/// let decoded = codec.decode("messages", &value)?;
/// assert_eq!(decoded.messages, [Message::new(Level::INFO, "hi")]);
/// assert!(decoded.complete);
/// # Ok::<(), flash_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Codec {
    /// flash's own format: `base64url(JSON) "." base64url(HMAC-SHA256)`.
    Flash(FlashCodec),
    /// Django's `messages` cookie (feature `django`).
    #[cfg(feature = "django")]
    Django(crate::django::DjangoCodec),
}

impl Codec {
    /// The value of cookie `name` holding `messages`, with the not-finished marker when
    /// `not_finished` is set. No size limit is applied.
    ///
    /// # Errors
    /// [`ErrorKind::Encode`](flash_core::ErrorKind::Encode) when the messages cannot be
    /// serialised.
    pub fn encode(&self, name: &str, messages: &[Message], not_finished: bool) -> Result<String> {
        match self {
            Codec::Flash(codec) => codec.encode(name, messages, not_finished),
            #[cfg(feature = "django")]
            Codec::Django(codec) => codec.encode(messages, not_finished),
        }
    }

    /// The messages of the value of cookie `name`.
    ///
    /// # Errors
    /// [`ErrorKind::Integrity`](flash_core::ErrorKind::Integrity) when the value is malformed,
    /// tampered with or signed by an unknown key;
    /// [`ErrorKind::Decode`](flash_core::ErrorKind::Decode) when it is validly signed but its
    /// content is not a list of messages.
    pub fn decode(&self, name: &str, value: &str) -> Result<Decoded> {
        match self {
            Codec::Flash(codec) => codec.decode(name, value),
            #[cfg(feature = "django")]
            Codec::Django(codec) => codec.decode(value),
        }
    }

    /// The value for as many of `messages` as fit in `limit` bytes under `overflow`.
    pub(crate) fn pack(
        &self,
        name: &str,
        messages: &[Message],
        overflow: Overflow,
        limit: usize,
    ) -> Result<Packed> {
        match self {
            Codec::Flash(codec) => codec.pack(name, messages, overflow, limit),
            #[cfg(feature = "django")]
            Codec::Django(codec) => codec.pack(messages, overflow, limit),
        }
    }
}

impl From<FlashCodec> for Codec {
    fn from(codec: FlashCodec) -> Self {
        Codec::Flash(codec)
    }
}

#[cfg(feature = "django")]
impl From<crate::django::DjangoCodec> for Codec {
    fn from(codec: crate::django::DjangoCodec) -> Self {
        Codec::Django(codec)
    }
}
