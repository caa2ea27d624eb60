//! Bounds on what one client can make the server hold.

/// Bounds on one client's messages, with defaults a user never notices.
///
/// A hostile client can send any request it likes, so every bound is enforced twice: by the
/// request handle at [`add`](crate::Messages::add) (a message that breaks a bound is refused
/// and reported with the dropped ones) and atomically inside every [`KeyedStore`]'s append
/// (`append` and the append of `settle`), which sees every message pending for the client
/// across all its requests.
///
/// At a bound the **newest** messages are refused: what is already pending was accepted first
/// and is never pushed out by a later add.
///
/// A message's size is [`Message::size`](crate::Message::size): the bytes of its text and extra
/// tags.
///
/// ```
/// use flash_core::Limits;
/// let limits = Limits::default().with_max_messages(20);
/// assert_eq!(limits.max_messages(), 20);
/// assert_eq!(limits.max_text_len(), Limits::DEFAULT_MAX_TEXT_LEN);
/// ```
///
/// [`KeyedStore`]: crate::storage::KeyedStore
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    max_text_len: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl Limits {
    /// The default longest text of one message, in bytes: 4 KiB.
    pub const DEFAULT_MAX_TEXT_LEN: usize = 4096;
    /// The default most messages pending for one client: 100.
    pub const DEFAULT_MAX_MESSAGES: usize = 100;
    /// The default most bytes pending for one client (sum of [`Message::size`]): 64 KiB.
    ///
    /// [`Message::size`]: crate::Message::size
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

    /// Sets the longest text (and extra tags) of one message, in bytes.
    #[must_use]
    pub const fn with_max_text_len(mut self, bytes: usize) -> Self {
        self.max_text_len = bytes;
        self
    }

    /// Sets the most messages pending for one client.
    #[must_use]
    pub const fn with_max_messages(mut self, count: usize) -> Self {
        self.max_messages = count;
        self
    }

    /// Sets the most bytes pending for one client (sum of [`Message::size`]).
    ///
    /// [`Message::size`]: crate::Message::size
    #[must_use]
    pub const fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The longest text of one message, in bytes.
    pub const fn max_text_len(&self) -> usize {
        self.max_text_len
    }

    /// The most messages pending for one client.
    pub const fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// The most bytes pending for one client.
    pub const fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// How many of `adding` (a prefix) fit beside `count` pending messages of `bytes` bytes.
    ///
    /// The one rule every store applies at append; a store that counts on the server applies
    /// the same arithmetic there.
    ///
    /// ```
    /// use flash_core::{Level, Limits, Message};
    /// let limits = Limits::default().with_max_messages(3);
    /// let adding = vec![Message::new(Level::INFO, "a"); 5];
    /// assert_eq!(limits.fitting(1, 1, &adding), 2);
    /// ```
    pub fn fitting(&self, count: usize, bytes: usize, adding: &[crate::Message]) -> usize {
        let (mut count, mut bytes) = (count, bytes);
        for (i, message) in adding.iter().enumerate() {
            let size = message.size();
            if size > self.max_text_len
                || count >= self.max_messages
                || bytes.saturating_add(size) > self.max_bytes
            {
                return i;
            }
            count += 1;
            bytes += size;
        }
        adding.len()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_len: Self::DEFAULT_MAX_TEXT_LEN,
            max_messages: Self::DEFAULT_MAX_MESSAGES,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}
