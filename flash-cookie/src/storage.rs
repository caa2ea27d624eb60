//! The signed-cookie [`Storage`].

use async_trait::async_trait;
use flash_core::http::header::SET_COOKIE;
use flash_core::http::{HeaderMap, HeaderValue};
use flash_core::{
    CookieOptions, Error, ImmediateStorage, Incoming, Keys, LoadToken, Loaded, Message, Overflow,
    Result, Storage, Update, append_set_cookie_line,
};

use crate::codec::{Codec, Decoded, LineParts};
use crate::flash::FlashCodec;

/// The default cookie name, Django's.
pub const DEFAULT_COOKIE_NAME: &str = "messages";
/// The default limit on the cookie value, in bytes (Django's `max_cookie_size`).
pub const DEFAULT_MAX_VALUE_LEN: usize = 2048;
/// The hard limit on a whole `Set-Cookie` line, in bytes, whatever the configuration
/// (browsers keep at most 4096 bytes of name, value and attributes).
pub const MAX_SET_COOKIE_LEN: usize = 4096;

/// Flash messages kept in a signed cookie.
///
/// - The cookie (default name [`DEFAULT_COOKIE_NAME`]) has the [`CookieOptions`] attributes,
///   `Path=/; HttpOnly; SameSite=Lax` by default, and no `Max-Age` (it ends with the browser
///   session, as Django's).
/// - Its value is at most [`DEFAULT_MAX_VALUE_LEN`] bytes (configurable), and the whole
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
///     .cookie_name("flash")
///     .cookie_options(CookieOptions::default().secure(true))
///     .max_value_len(3000);
/// assert_eq!(storage.name(), "flash");
/// ```
#[derive(Debug, Clone)]
pub struct CookieStorage {
    codec: Codec,
    name: String,
    options: CookieOptions,
    max_value_len: usize,
    /// The effective limit on the value: the configured one within the `Set-Cookie` cap.
    limit: usize,
    /// `name=`, the start of every line this storage writes.
    prefix: String,
    /// The deletion line, made once: a consuming read appends it by reference count.
    removal: Option<HeaderValue>,
}

/// What the request's cookie holds.
enum Carried {
    Absent,
    Invalid(Error),
    Valid(Decoded),
}

// What `load` remembers for `save`, one zero-sized type per case: a boxed zero-sized
// token does not allocate.
/// `load` found no cookie.
struct NoCookie;
/// `load` found a cookie that decoded.
struct ValidCookie;
/// `load` found a cookie that did not decode: the response deletes it.
struct InvalidCookie;

/// Whether the request carried a cookie and whether it was invalid, per the token of `load`.
fn loaded_cookie(token: &LoadToken) -> Option<(bool, bool)> {
    if token.get::<ValidCookie>().is_some() {
        Some((true, false))
    } else if token.get::<NoCookie>().is_some() {
        Some((false, false))
    } else if token.get::<InvalidCookie>().is_some() {
        Some((true, true))
    } else {
        None
    }
}

impl CookieStorage {
    /// Storage in flash's own format ([`FlashCodec`]), signed with `keys`.
    pub fn new(keys: impl Into<Keys>) -> Self {
        Self::with_codec(FlashCodec::new(keys))
    }

    /// Storage in the format of `codec`.
    pub fn with_codec(codec: impl Into<Codec>) -> Self {
        let mut storage = CookieStorage {
            codec: codec.into(),
            name: DEFAULT_COOKIE_NAME.to_owned(),
            options: CookieOptions::default(),
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            limit: 0,
            prefix: String::new(),
            removal: None,
        };
        storage.configured();
        storage
    }

    /// Storage speaking Django's `messages` cookie for Django's `SECRET_KEY` and
    /// `SECRET_KEY_FALLBACKS` (feature `django`); see [`DjangoCodec`](crate::DjangoCodec).
    ///
    /// Django's defaults match this storage's: cookie `messages`, 2048 bytes,
    /// `Path=/; HttpOnly; SameSite=Lax`. Set [`CookieStorage::cookie_options`] to mirror
    /// `SESSION_COOKIE_DOMAIN`, `SESSION_COOKIE_SECURE`, `SESSION_COOKIE_HTTPONLY` and
    /// `SESSION_COOKIE_SAMESITE` when the Django project changes them.
    ///
    /// ```
    /// let storage = flash_cookie::CookieStorage::django("django-secret", ["older-secret"]);
    /// assert_eq!(storage.name(), "messages");
    /// ```
    #[cfg(feature = "django")]
    pub fn django<S: AsRef<[u8]>>(
        secret: impl AsRef<[u8]>,
        fallbacks: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::with_codec(crate::django::DjangoCodec::new(secret).with_fallbacks(fallbacks))
    }

    /// Sets the cookie name (default [`DEFAULT_COOKIE_NAME`]). With flash's format the name
    /// is signed: renaming the cookie invalidates values already sent.
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self.configured();
        self
    }

    /// Sets the cookie attributes (default `Path=/; HttpOnly; SameSite=Lax`).
    #[must_use]
    pub fn cookie_options(mut self, options: CookieOptions) -> Self {
        self.options = options;
        self.configured();
        self
    }

    /// Sets the limit on the cookie value in bytes (default [`DEFAULT_MAX_VALUE_LEN`]). The
    /// whole `Set-Cookie` line stays within [`MAX_SET_COOKIE_LEN`] whatever this is.
    #[must_use]
    pub fn max_value_len(mut self, max: usize) -> Self {
        self.max_value_len = max;
        self.configured();
        self
    }

    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The cookie attributes.
    pub fn options(&self) -> &CookieOptions {
        &self.options
    }

    /// The longest value this storage writes: the configured limit, lowered so that the
    /// `Set-Cookie` line fits [`MAX_SET_COOKIE_LEN`].
    pub fn value_limit(&self) -> usize {
        self.limit
    }

    /// Recomputes what derives from the name, the attributes and the limit.
    fn configured(&mut self) {
        let overhead = self.options.line_overhead(&self.name, None);
        self.limit = self
            .max_value_len
            .min(MAX_SET_COOKIE_LEN.saturating_sub(overhead));
        self.prefix = format!("{}=", self.name);
        let removal = self.options.removal_line(&self.name);
        self.removal = match HeaderValue::try_from(removal) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::error!(cookie = %self.name, %err, "the cookie's deletion line is not a valid header value");
                None
            }
        };
    }

    fn carried(&self, request: &Incoming) -> Carried {
        match request.cookie(&self.name) {
            None | Some("") => Carried::Absent,
            Some(value) => match self.codec.decode(&self.name, value) {
                Ok(decoded) => Carried::Valid(decoded),
                Err(err) => Carried::Invalid(err),
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

    /// Writes `messages` (as many as fit) or deletes the cookie when there are none; returns
    /// the messages left out.
    fn write(
        &self,
        mut messages: Vec<Message>,
        present: bool,
        overflow: Overflow,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        if messages.is_empty() {
            if present {
                self.delete(response);
            }
            return Ok(messages);
        }
        let n = messages.len();
        let line = LineParts {
            prefix: &self.prefix,
            suffix: self.options.attributes(),
        };
        let packed = self
            .codec
            .pack(&self.name, &messages, overflow, self.limit, line)?;
        match packed.line {
            Some(line) => append_set_cookie_line(response, line),
            None if present => self.delete(response),
            None => {}
        }
        let kept = packed.kept;
        if kept == (0..n) {
            return Ok(Vec::new());
        }
        let tail = messages.split_off(kept.end);
        messages.drain(kept);
        messages.extend(tail);
        match overflow {
            Overflow::DropOldest => tracing::warn!(
                cookie = %self.name,
                dropped = messages.len(),
                kept = n - messages.len(),
                limit = self.limit,
                "flash messages do not fit the cookie: the oldest were dropped"
            ),
            Overflow::Spill => tracing::debug!(
                cookie = %self.name,
                spilled = messages.len(),
                kept = n - messages.len(),
                "flash messages overflow the cookie: the newest go to the next storage"
            ),
        }
        Ok(messages)
    }
}

#[async_trait]
impl Storage for CookieStorage {
    async fn load(&self, request: &Incoming) -> Result<Loaded> {
        self.load_now(request)
    }

    async fn save(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        self.save_now(request, update, response)
    }

    fn immediate(&self) -> Option<&dyn ImmediateStorage> {
        Some(self)
    }
}

/// Everything is in the request and the response: nothing to wait for.
impl ImmediateStorage for CookieStorage {
    fn load_now(&self, request: &Incoming) -> Result<Loaded> {
        Ok(match self.carried(request) {
            Carried::Absent => Loaded {
                messages: Vec::new(),
                complete: true,
                token: LoadToken::new(NoCookie),
            },
            Carried::Invalid(err) => {
                self.log_invalid(&err);
                Loaded {
                    messages: Vec::new(),
                    complete: true,
                    token: LoadToken::new(InvalidCookie),
                }
            }
            Carried::Valid(decoded) => Loaded {
                messages: decoded.messages,
                complete: decoded.complete,
                token: LoadToken::new(ValidCookie),
            },
        })
    }

    fn save_now(
        &self,
        request: &Incoming,
        update: Update,
        response: &mut HeaderMap,
    ) -> Result<Vec<Message>> {
        let overflow = update.overflow;
        let token = update.loaded.as_ref().and_then(loaded_cookie);
        match token {
            Some((present, invalid)) => {
                if !update.consumed && update.added.is_empty() {
                    // Loaded and left as it was: write nothing, unless what was there is bad.
                    if invalid {
                        self.delete(response);
                    }
                    return Ok(Vec::new());
                }
                self.write(update.into_messages(), present, overflow, response)
            }
            None => {
                if update.added.is_empty() {
                    return Ok(Vec::new());
                }
                // Not loaded: keep what the request carries, then the new ones (Django's rule).
                let (mut messages, present) = match self.carried(request) {
                    Carried::Absent => (Vec::new(), false),
                    Carried::Invalid(err) => {
                        self.log_invalid(&err);
                        (Vec::new(), true)
                    }
                    Carried::Valid(decoded) => (decoded.messages, true),
                };
                if messages.is_empty() {
                    messages = update.added;
                } else {
                    messages.extend(update.added);
                }
                self.write(messages, present, overflow, response)
            }
        }
    }
}
