//! The cookie value formats a [`CookieStorage`](crate::CookieStorage) can speak.

use std::ops::Range;

use flash_core::{Message, Result, storage::Overflow};

use crate::flash::FlashCodec;

/// What a cookie value decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The whole `Set-Cookie` line carrying the value, `None` when nothing is to be stored.
    pub(crate) line: Option<String>,
    /// The messages the value holds: a prefix (spill) or a suffix (drop oldest) of the list.
    pub(crate) kept: Range<usize>,
}

/// What surrounds the value in a `Set-Cookie` line: `name=` before, the attributes after.
/// Codecs write the value straight between them, so a response costs one buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineParts<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) suffix: &'a str,
}

impl LineParts<'_> {
    /// The line for a value of `value_len` bytes written by `write`.
    pub(crate) fn write(&self, value_len: usize, write: impl FnOnce(&mut String)) -> String {
        let mut line = String::with_capacity(self.prefix.len() + value_len + self.suffix.len());
        line.push_str(self.prefix);
        write(&mut line);
        line.push_str(self.suffix);
        line
    }
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

    /// Whether the format keeps a message's data ([`Message::with_data`]): flash's does,
    /// Django's has no place for it (a [`CookieStorage`](crate::CookieStorage) in Django's
    /// format refuses such a message at add, see
    /// [`Storage::carries_data`](flash_core::storage::Storage::carries_data)).
    pub fn carries_data(&self) -> bool {
        match self {
            Codec::Flash(_) => true,
            #[cfg(feature = "django")]
            Codec::Django(_) => false,
        }
    }

    /// Django's format, whose addresses are kept beside it.
    #[cfg(feature = "django")]
    pub(crate) fn django(&self) -> Option<&crate::django::DjangoCodec> {
        match self {
            Codec::Django(codec) => Some(codec),
            Codec::Flash(_) => None,
        }
    }

    /// The `Set-Cookie` line for as many of `messages` as fit in a value of `limit` bytes
    /// under `overflow`.
    pub(crate) fn pack(
        &self,
        name: &str,
        messages: &[Message],
        overflow: Overflow,
        limit: usize,
        line: LineParts<'_>,
    ) -> Result<Packed> {
        match self {
            Codec::Flash(codec) => codec.pack(name, messages, overflow, limit, line),
            #[cfg(feature = "django")]
            Codec::Django(codec) => codec.pack(messages, overflow, limit, line),
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
