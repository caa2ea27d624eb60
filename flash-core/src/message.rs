//! One flash message.

use std::fmt;

use crate::level::{Level, LevelTags};

/// A flash message: a level, the text, optional extra tags, whether the text is trusted HTML,
/// and optional data beside the text (a small JSON value: an undo URL, an id to highlight).
///
/// Two messages are equal when their level and text are (extra tags, the HTML flag and the data
/// are not compared), as in Django.
///
/// A message has no tags of its own: its level's tag depends on the application's tag map. What
/// templates and JSON clients receive is a [`MessageView`](crate::MessageView), made with that
/// map by [`Messages::read_views`](crate::Messages::read_views) (or
/// [`Message::view`] given the map).
///
/// ```
/// use flash_core::{Level, LevelTags, Message};
/// let m = Message::new(Level::ERROR, "Could not save.")
///     .with_extra_tags("form")
///     .with_data(serde_json::json!({"field": "title"}));
/// let tags = LevelTags::default().set(Level::ERROR, "danger");
/// assert_eq!(m.tags_in(&tags), "form danger");
/// assert_eq!(m.view(&tags).level_tag, "danger");
/// assert_eq!(m, Message::new(Level::ERROR, "Could not save."));
/// ```
///
/// # Serialised
///
/// `Message` implements neither `Serialize` nor `Deserialize`: what a template or a JSON
/// response receives is its [`MessageView`](crate::MessageView), with named fields. The compact
/// form backends store it in is theirs, in [`stored_form`](crate::storage::stored_form).
#[derive(Clone)]
pub struct Message {
    /// The level.
    pub level: Level,
    /// The text. Plain text unless [`Message::trusted_html`] is set: escape it when rendering.
    pub text: String,
    /// Extra tags, space separated, put before the level tag in [`Message::tags_in`].
    pub extra_tags: Option<String>,
    /// The text is trusted HTML and is rendered without escaping (Django's `mark_safe`).
    pub trusted_html: bool,
    /// Data beside the text, for templates and JSON clients (never `Some(Value::Null)`: see
    /// [`Message::with_data`]). Counted in [`Message::size`]. flash's own cookie format and
    /// every keyed store carry it; Django's cookie and session formats cannot
    /// ([`Storage::carries_data`](crate::storage::Storage::carries_data) is false), and
    /// [`Messages::try_add`](crate::Messages::try_add) refuses a message with data there
    /// ([`Refused::DataNotSupported`](crate::Refused::DataNotSupported)).
    pub data: Option<serde_json::Value>,
    /// The page the message is for ([`Address`]): only a page load of that path shows it, until
    /// its bound passes. `None`: any read shows it. Set by the request handle when the response
    /// redirects (see [`Addressing`](crate::Addressing)), or by the application with
    /// [`Message::addressed_to`].
    pub address: Option<Address>,
}

/// Where a message is to be shown: the page at one path, until a bound (a number of page loads
/// of other pages, or a time), after which any read shows it.
///
/// Reads by other requests (another path, an htmx or `fetch` request, a `HEAD`) neither show
/// nor consume an addressed message; the target's page load shows it once. See
/// [`Addressing`](crate::Addressing) for why, and how to turn it off.
///
/// ```
/// use flash_core::{Address, Level, Message};
/// let m = Message::new(Level::INFO, "Order placed.").addressed_to("/orders/7");
/// assert_eq!(m.address.as_ref().map(Address::path), Some("/orders/7"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub(crate) path: String,
    /// Page loads of other pages still waited through; at 0 the message is unaddressed.
    pub(crate) loads_left: u16,
    /// Unix time in milliseconds after which the message is unaddressed; 0 until the request
    /// handle sets the bound from [`Addressing`](crate::Addressing).
    pub(crate) until_ms: u64,
}

impl Address {
    /// The page at `path` (a path, with a query only when the application addresses by query:
    /// [`Addressing::with_query`](crate::Addressing::with_query)); the bound is set from the
    /// application's [`Addressing`](crate::Addressing) when the message is added.
    pub fn new(path: impl Into<String>) -> Self {
        Address {
            path: path.into(),
            loads_left: 0,
            until_ms: 0,
        }
    }

    /// The page, as the request's path (and query, when addressed by query) spells it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many page loads of other pages it still waits through.
    pub fn loads_left(&self) -> u16 {
        self.loads_left
    }

    /// When it stops waiting for its page (`None` before the bound is set).
    pub fn until(&self) -> Option<std::time::SystemTime> {
        (self.until_ms > 0)
            .then(|| std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.until_ms))
    }

    /// An address with its bound as stored: for storages that decode it.
    pub fn from_stored(path: impl Into<String>, loads_left: u16, until_ms: u64) -> Self {
        Address {
            path: path.into(),
            loads_left,
            until_ms,
        }
    }

    /// Unix time in milliseconds after which it is unaddressed: for storages that encode it.
    pub fn until_ms(&self) -> u64 {
        self.until_ms
    }
}

impl Message {
    /// A plain-text message with no extra tags.
    pub fn new(level: Level, text: impl Into<String>) -> Self {
        Message {
            level,
            text: text.into(),
            extra_tags: None,
            trusted_html: false,
            data: None,
            address: None,
        }
    }

    /// Addresses the message to the page at `path`: only a page load of that path shows it,
    /// until the application's bound passes ([`Addressing`](crate::Addressing)). A response that
    /// redirects leaves an explicit address alone.
    #[must_use]
    pub fn addressed_to(mut self, path: impl Into<String>) -> Self {
        self.address = Some(Address::new(path));
        self
    }

    /// Sets the data carried beside the text, typically a small JSON object
    /// (`json!({"undo": "/articles/7/restore"})`); `null` means no data. It weighs in
    /// [`Message::size`] as its compact JSON, against the same [`Limits`](crate::Limits) as the
    /// text.
    ///
    /// ```
    /// use flash_core::{Level, Message};
    /// let m = Message::new(Level::SUCCESS, "Deleted.").with_data(serde_json::json!({"id": 7}));
    /// assert_eq!(m.size(), "Deleted.".len() + r#"{"id":7}"#.len());
    /// assert_eq!(m.view(&Default::default()).data, Some(serde_json::json!({"id": 7})));
    /// ```
    #[must_use]
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = (!data.is_null()).then_some(data);
        self
    }

    /// Sets the extra tags.
    #[must_use]
    pub fn with_extra_tags(mut self, extra_tags: impl Into<String>) -> Self {
        self.extra_tags = Some(extra_tags.into());
        self
    }

    /// Marks the text as trusted HTML, to be rendered without escaping.
    #[must_use]
    pub fn trusted_html(mut self) -> Self {
        self.trusted_html = true;
        self
    }

    /// The bytes the message weighs against [`Limits`](crate::Limits): its text, extra tags and
    /// the compact JSON of its data.
    pub fn size(&self) -> usize {
        self.text.len()
            + self.extra_tags.as_deref().map_or(0, str::len)
            + self.data.as_ref().map_or(0, json_len)
    }

    /// The level's tag under the application's tag map `tags` (there is no tag without one:
    /// an application may rename or blank any level's tag).
    pub fn level_tag_in<'a>(&self, tags: &'a LevelTags) -> &'a str {
        tags.tag(self.level)
    }

    /// What a template or a JSON client receives of this message, under the tag map `tags`.
    pub fn view(&self, tags: &LevelTags) -> crate::MessageView {
        crate::MessageView::new(self, tags)
    }

    /// Extra tags and the level tag joined by one space, empty parts skipped, under `tags`
    /// (Django's `message.tags`).
    ///
    /// ```
    /// use flash_core::{Level, LevelTags, Message};
    /// let tags = LevelTags::default().set(Level::DEBUG, "");
    /// assert_eq!(Message::new(Level::DEBUG, "x").with_extra_tags("x").tags_in(&tags), "x");
    /// assert_eq!(Message::new(Level::new(3), "x").tags_in(&tags), "");
    /// ```
    pub fn tags_in(&self, tags: &LevelTags) -> String {
        let level_tag = tags.tag(self.level);
        match self.extra_tags.as_deref() {
            Some(extra) if !extra.is_empty() && !level_tag.is_empty() => {
                format!("{extra} {level_tag}")
            }
            Some(extra) if !extra.is_empty() => extra.to_owned(),
            _ => level_tag.to_owned(),
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.level == other.level && self.text == other.text
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("level", &self.level).field("text", &self.text);
        if let Some(extra) = &self.extra_tags {
            d.field("extra_tags", extra);
        }
        if self.trusted_html {
            d.field("trusted_html", &true);
        }
        if let Some(data) = &self.data {
            d.field("data", data);
        }
        if let Some(address) = &self.address {
            d.field("address", &address.path);
        }
        d.finish()
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The length of `value`'s compact JSON, without building it.
fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` into a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_django() {
        let tags = LevelTags::default();
        let m = Message::new(Level::DEBUG, "x").with_extra_tags("extra-tag");
        assert_eq!(m.tags_in(&tags), "extra-tag debug");
        assert_eq!(Message::new(Level::new(1), "x").tags_in(&tags), "");
        assert_eq!(
            Message::new(Level::new(1), "x")
                .with_extra_tags("t")
                .tags_in(&tags),
            "t"
        );
        assert_eq!(Message::new(Level::INFO, "x").tags_in(&tags), "info");
    }

    #[test]
    fn data_weighs_in_the_size() {
        let plain = Message::new(Level::INFO, "abc").with_extra_tags("t");
        assert_eq!(plain.size(), 4);
        let with = plain.clone().with_data(serde_json::json!({"k": "é"}));
        assert_eq!(with.size(), 4 + r#"{"k":"é"}"#.len());
        assert_eq!(plain.with_data(serde_json::Value::Null).data, None);
    }
}
