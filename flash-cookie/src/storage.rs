//! The signed-cookie [`Storage`](flash_core::storage::Storage).

use std::ops::Range;

use async_trait::async_trait;
use flash_core::http::header::SET_COOKIE;
use flash_core::http::{HeaderMap, HeaderValue};
use flash_core::{
    CookieOptions, Error, Keys, Message, Result,
    storage::{
        Found, ImmediateSimpleStorage, Incoming, Overflow, SimpleStorage, Stored,
        append_set_cookie_line,
    },
};

use crate::codec::{Codec, LineParts};
use crate::flash::FlashCodec;

/// The default cookie name, Django's.
pub const DEFAULT_COOKIE_NAME: &str = "messages";
/// The default limit on the cookie value, in bytes (Django's `max_cookie_size`).
pub const DEFAULT_MAX_SIZE: usize = 2048;
/// The hard limit on a whole `Set-Cookie` line, in bytes, whatever the configuration
/// (browsers keep at most 4096 bytes of name, value and attributes).
pub const MAX_SET_COOKIE_LEN: usize = 4096;

/// Flash messages kept in a signed cookie.
///
/// - The cookie (default name [`DEFAULT_COOKIE_NAME`]) has the [`CookieOptions`] attributes,
///   `Path=/; HttpOnly; SameSite=Lax` by default, and no `Max-Age` (it ends with the browser
///   session, as Django's).
/// - Its value is at most [`DEFAULT_MAX_SIZE`] bytes (configurable), and the whole
///   `Set-Cookie` line never exceeds [`MAX_SET_COOKIE_LEN`] bytes.
/// - Messages that do not fit: used alone ([`Overflow::DropOldest`]), the newest that fit are
///   kept and the dropped ones are returned by `save` (and logged as a `tracing` warning);
///   first in a [`Fallback`](crate::Fallback) ([`Overflow::Spill`]), the oldest that fit are
///   kept with the not-finished marker and the rest handed on.
/// - A tampered, truncated, garbage or wrongly keyed cookie reads as no messages and is
///   deleted by the response of a request that read it.
///
/// A cookie cannot be exactly-once across concurrent requests of one browser (two tabs may
/// both show a message): use a server-side store for that.
///
/// ```
/// use flash_cookie::CookieStorage;
/// use flash_core::{CookieOptions, Key, Keys};
///
/// let storage = CookieStorage::new(Keys::new(Key::derive("a long application secret", "flash.cookie")))
///     .with_cookie_name("flash")
///     .with_cookie_options(CookieOptions::default().secure(true))
///     .with_max_size(3000);
/// assert_eq!(storage.cookie_name(), "flash");
/// ```
#[derive(Debug, Clone)]
pub struct CookieStorage {
    codec: Codec,
    name: String,
    options: CookieOptions,
    chosen_max: usize,
    /// The effective limit on the value: the configured one within the `Set-Cookie` cap.
    max_size: usize,
    /// `name=`, the start of every line this storage writes.
    prefix: String,
    /// The deletion line, made once: a consuming read appends it by reference count.
    removal: Option<HeaderValue>,
    /// `<name>_to`: where Django's format keeps its messages' addresses.
    #[cfg(feature = "django")]
    to_name: String,
}

impl CookieStorage {
    /// Storage in flash's own format ([`FlashCodec`]), signed with `keys`.
    pub fn new(keys: impl Into<Keys>) -> Self {
        Self::from_codec(FlashCodec::new(keys))
    }

    /// Storage in the format of `codec`.
    pub fn from_codec(codec: impl Into<Codec>) -> Self {
        let mut storage = CookieStorage {
            codec: codec.into(),
            name: DEFAULT_COOKIE_NAME.to_owned(),
            options: CookieOptions::default(),
            chosen_max: DEFAULT_MAX_SIZE,
            max_size: 0,
            prefix: String::new(),
            removal: None,
            #[cfg(feature = "django")]
            to_name: String::new(),
        };
        storage.configured();
        storage
    }

    /// Storage speaking Django's `messages` cookie for Django's `SECRET_KEY` and
    /// `SECRET_KEY_FALLBACKS` (feature `django`); see [`DjangoCodec`](crate::DjangoCodec).
    ///
    /// Django's defaults match this storage's: cookie `messages`, 2048 bytes,
    /// `Path=/; HttpOnly; SameSite=Lax`. Set [`CookieStorage::with_cookie_options`] to mirror
    /// `SESSION_COOKIE_DOMAIN`, `SESSION_COOKIE_SECURE`, `SESSION_COOKIE_HTTPONLY` and
    /// `SESSION_COOKIE_SAMESITE` when the Django project changes them.
    ///
    /// ```
    /// let storage = flash_cookie::CookieStorage::django("django-secret", ["older-secret"]);
    /// assert_eq!(storage.cookie_name(), "messages");
    /// ```
    #[cfg(feature = "django")]
    pub fn django<S: AsRef<[u8]>>(
        secret: impl AsRef<[u8]>,
        fallbacks: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::from_codec(crate::django::DjangoCodec::new(secret).with_fallbacks(fallbacks))
    }

    /// Sets the cookie name (default [`DEFAULT_COOKIE_NAME`]). With flash's format the name
    /// is signed: renaming the cookie invalidates values already sent.
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self.configured();
        self
    }

    /// Sets the cookie attributes (default `Path=/; HttpOnly; SameSite=Lax`).
    #[must_use]
    pub fn with_cookie_options(mut self, options: CookieOptions) -> Self {
        self.options = options;
        self.configured();
        self
    }

    /// Sets the limit on the cookie value in bytes (default [`DEFAULT_MAX_SIZE`], Django's
    /// `max_cookie_size`; the facade's URL option `max_size=`). The
    /// whole `Set-Cookie` line stays within [`MAX_SET_COOKIE_LEN`] whatever this is.
    #[must_use]
    pub fn with_max_size(mut self, max: usize) -> Self {
        self.chosen_max = max;
        self.configured();
        self
    }

    /// The cookie name.
    pub fn cookie_name(&self) -> &str {
        &self.name
    }

    /// The format.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The cookie attributes.
    pub fn cookie_options(&self) -> &CookieOptions {
        &self.options
    }

    /// The longest value this storage writes: the limit set with
    /// [`with_max_size`](CookieStorage::with_max_size), lowered when needed so that the whole
    /// `Set-Cookie` line fits [`MAX_SET_COOKIE_LEN`].
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Recomputes what derives from the name, the attributes and the limit.
    fn configured(&mut self) {
        let overhead = self.options.line_overhead(&self.name, None);
        self.max_size = self
            .chosen_max
            .min(MAX_SET_COOKIE_LEN.saturating_sub(overhead));
        self.prefix = format!("{}=", self.name);
        #[cfg(feature = "django")]
        {
            self.to_name = format!("{}_to", self.name);
        }
        let removal = self.options.removal_line(&self.name);
        self.removal = match HeaderValue::try_from(removal) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::error!(cookie = %self.name, %err, "the cookie's deletion line is not a valid header value");
                None
            }
        };
    }

    /// What the request's cookie holds: an invalid cookie reads as no messages.
    fn stored(&self, request: &Incoming) -> Stored {
        match request.cookie(&self.name) {
            None | Some("") => Stored::nothing(),
            Some(value) => match self.codec.decode(&self.name, value) {
                Ok(decoded) => {
                    #[cfg(feature = "django")]
                    let decoded = {
                        let mut decoded = decoded;
                        self.read_addresses(request, value, &mut decoded.messages);
                        decoded
                    };
                    if decoded.complete {
                        Stored::messages(decoded.messages)
                    } else {
                        Stored::messages(decoded.messages).incomplete()
                    }
                }
                Err(err) => {
                    self.log_invalid(&err);
                    Stored::unreadable()
                }
            },
        }
    }

    fn log_invalid(&self, err: &Error) {
        tracing::debug!(cookie = %self.name, error = %err, "ignoring an invalid flash cookie");
    }

    fn delete(&self, response: &mut HeaderMap) {
        if let Some(removal) = &self.removal {
            response.append(SET_COOKIE, removal.clone());
        }
    }

    /// With Django's format: puts on the messages of the cookie's `value` the addresses its
    /// `<name>_to` cookie keeps for it.
    #[cfg(feature = "django")]
    fn read_addresses(&self, request: &Incoming, value: &str, messages: &mut [Message]) {
        if let (Some(django), Some(side)) = (self.codec.django(), request.cookie(&self.to_name))
            && !messages.is_empty()
        {
            django.open_addresses(&self.to_name, value, side, messages);
        }
    }

    /// With Django's format: writes the `<name>_to` cookie for the `messages` a `line` holds
    /// (or deletes it when none is addressed and the request had one).
    // Out of line: only Django's format has the side cookie, and a save in flash's format
    // runs through a call, not through this code (BENCHMARKS.md, issue 21.5).
    #[cfg(feature = "django")]
    #[inline(never)]
    fn write_addresses(
        &self,
        request: &Incoming,
        line: Option<&str>,
        messages: &[Message],
        response: &mut HeaderMap,
    ) {
        let Some(django) = self.codec.django() else {
            return;
        };
        let had = request.cookie_bytes(&self.to_name).is_some();
        let suffix = self.options.attributes();
        let value = line.and_then(|line| line.strip_prefix(&self.prefix)?.strip_suffix(suffix));
        let side = value.and_then(|value| {
            django
                .seal_addresses(&self.to_name, value, messages)
                .inspect_err(|err| tracing::warn!(cookie = %self.to_name, %err, "cannot keep the messages' addresses: they are shown anywhere"))
                .ok()
                .flatten()
        });
        match side {
            Some(side)
                if self.to_name.len() + 1 + side.len() + suffix.len() <= MAX_SET_COOKIE_LEN =>
            {
                append_set_cookie_line(response, format!("{}={side}{suffix}", self.to_name));
            }
            Some(_) => {
                // Too long for a cookie: unaddressed (shown by the next read) beats lost.
                tracing::warn!(cookie = %self.to_name, "the messages' addresses do not fit a cookie: they are shown anywhere");
                if had {
                    self.options.append_removal(response, &self.to_name);
                }
            }
            None if had => self.options.append_removal(response, &self.to_name),
            None => {}
        }
    }

    /// Writes `messages` (as many as fit) or deletes the cookie when there are none; returns
    /// the messages left out.
    fn write(
        &self,
        request: &Incoming,
        messages: Vec<Message>,
        present: bool,
        overflow: Overflow,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        #[cfg(not(feature = "django"))]
        let _ = request;
        if messages.is_empty() {
            if present {
                self.delete(response);
            }
            #[cfg(feature = "django")]
            self.write_addresses(request, None, &[], response);
            return Ok(messages);
        }
        let n = messages.len();
        let line = LineParts {
            prefix: &self.prefix,
            suffix: self.options.attributes(),
        };
        let packed = self
            .codec
            .pack(&self.name, &messages, overflow, self.max_size, line)?;
        let kept = packed.kept;
        #[cfg(feature = "django")]
        self.write_addresses(
            request,
            packed.line.as_deref(),
            &messages[kept.clone()],
            response,
        );
        match packed.line {
            Some(line) => append_set_cookie_line(response, line),
            None if present => self.delete(response),
            None => {}
        }
        if kept == (0..n) {
            return Ok(Vec::new());
        }
        Ok(self.left_out(messages, kept))
    }

    /// The messages a cookie could not keep: all but `kept`.
    // Rare, and out of the way of a save that fits (BENCHMARKS.md, issue 21.5).
    #[cold]
    #[inline(never)]
    fn left_out(&self, mut messages: Vec<Message>, kept: Range<usize>) -> Vec<Message> {
        tracing::debug!(cookie = %self.name, kept = kept.len(), of = messages.len(), limit = self.max_size, "flash messages do not all fit the cookie");
        let tail = messages.split_off(kept.end);
        messages.drain(kept);
        messages.extend(tail);
        messages
    }
}

/// Django's update rules are flash-core's ([`SimpleStorage`]); this says only how the cookie
/// is read and written.
#[async_trait]
impl SimpleStorage for CookieStorage {
    async fn get(&self, request: &Incoming) -> Result<Stored> {
        self.get_now(request)
    }

    async fn store(
        &self,
        request: &Incoming,
        messages: Vec<Message>,
        found: Found,
        overflow: Overflow,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        self.store_now(request, messages, found, overflow, response)
    }

    fn immediate_simple(&self) -> Option<&dyn ImmediateSimpleStorage> {
        Some(self)
    }

    /// Django's format has no place for a message's data: such a message is refused at add.
    fn stores_data(&self) -> bool {
        self.codec.carries_data()
    }

    /// Whether a cookie holding only `message` fits the value limit: a message that never
    /// fits is refused at add rather than dropped at the response.
    fn can_hold(&self, message: &Message) -> bool {
        // Most messages are far below the limit whatever their characters: JSON escapes a
        // byte into six at most, base64 adds a third, the signature and framing stay below
        // 256 bytes. Only a message near the limit is encoded to be sure.
        if message.size().saturating_mul(8).saturating_add(256) <= self.max_size {
            return true;
        }
        let line = LineParts {
            prefix: &self.prefix,
            suffix: self.options.attributes(),
        };
        self.codec
            .pack(
                &self.name,
                std::slice::from_ref(message),
                Overflow::DropOldest,
                self.max_size,
                line,
            )
            .is_ok_and(|packed| !packed.kept.is_empty())
    }
}

/// Everything is in the request and the response: nothing to wait for.
impl ImmediateSimpleStorage for CookieStorage {
    fn get_now(&self, request: &Incoming) -> Result<Stored> {
        Ok(self.stored(request))
    }

    fn store_now(
        &self,
        request: &Incoming,
        messages: Vec<Message>,
        found: Found,
        overflow: Overflow,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        self.write(
            request,
            messages,
            found != Found::Nothing,
            overflow,
            response,
        )
    }
}
