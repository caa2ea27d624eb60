//! One flash message.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::level::{Level, LevelTags};

/// A flash message: a level, the text, optional extra tags, and whether the text is trusted HTML.
///
/// Two messages are equal when their level and text are (extra tags and the HTML flag are not
/// compared), as in Django.
///
/// ```
/// use flash_core::{Level, Message};
/// let m = Message::new(Level::ERROR, "Could not save.").with_extra_tags("form");
/// assert_eq!(m.level_tag(), "error");
/// assert_eq!(m.tags(), "form error");
/// assert_eq!(m, Message::new(Level::ERROR, "Could not save."));
/// ```
///
/// # Stored form
///
/// Backends store a message as a compact JSON array: `[level, text]`, `[level, text, extra_tags]`,
/// or `[level, text, extra_tags|null, 1]` for trusted HTML.
#[derive(Clone)]
pub struct Message {
    /// The level.
    pub level: Level,
    /// The text. Plain text unless [`Message::trusted_html`] is set: escape it when rendering.
    pub text: String,
    /// Extra tags, space separated, put before the level tag in [`Message::tags`].
    pub extra_tags: Option<String>,
    /// The text is trusted HTML and is rendered without escaping (Django's `mark_safe`).
    pub trusted_html: bool,
}

impl Message {
    /// A plain-text message with no extra tags.
    pub fn new(level: Level, text: impl Into<String>) -> Self {
        Message {
            level,
            text: text.into(),
            extra_tags: None,
            trusted_html: false,
        }
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

    /// The bytes the message weighs against [`Limits`](crate::Limits): its text and extra tags.
    pub fn size(&self) -> usize {
        self.text.len() + self.extra_tags.as_deref().map_or(0, str::len)
    }

    /// The level's tag under the default mapping.
    pub fn level_tag(&self) -> &'static str {
        self.level.default_tag().unwrap_or("")
    }

    /// The level's tag under `tags`.
    pub fn level_tag_in<'a>(&self, tags: &'a LevelTags) -> &'a str {
        tags.tag(self.level)
    }

    /// Extra tags and the level tag joined by one space, empty parts skipped (default mapping).
    pub fn tags(&self) -> String {
        self.tags_in(&LevelTags::default())
    }

    /// Extra tags and the level tag joined by one space, empty parts skipped, under `tags`.
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
        d.finish()
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = if self.trusted_html {
            4
        } else if self.extra_tags.is_some() {
            3
        } else {
            2
        };
        let mut seq = serializer.serialize_seq(Some(len))?;
        seq.serialize_element(&self.level)?;
        seq.serialize_element(&self.text)?;
        if len >= 3 {
            seq.serialize_element(&self.extra_tags)?;
        }
        if len == 4 {
            seq.serialize_element(&1u8)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessageVisitor;

        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = Message;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a message array [level, text, extra_tags?, html?]")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Message, A::Error> {
                let level: Level = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let text: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let extra_tags: Option<String> = seq.next_element()?.flatten();
                let trusted_html = match seq.next_element::<u8>()? {
                    None | Some(0) => false,
                    Some(1) => true,
                    Some(other) => {
                        return Err(de::Error::invalid_value(
                            de::Unexpected::Unsigned(other.into()),
                            &"0 or 1",
                        ));
                    }
                };
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(5, &self));
                }
                Ok(Message {
                    level,
                    text,
                    extra_tags,
                    trusted_html,
                })
            }
        }

        deserializer.deserialize_seq(MessageVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips() {
        let cases = [
            Message::new(Level::INFO, "plain"),
            Message::new(Level::new(29), "x").with_extra_tags(""),
            Message::new(Level::ERROR, "<b>hi</b>").trusted_html(),
            Message::new(Level::DEBUG, "é 🎉")
                .with_extra_tags("a b")
                .trusted_html(),
        ];
        for m in cases {
            let json = serde_json::to_string(&m).expect("serialise");
            let back: Message = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, m);
            assert_eq!(back.extra_tags, m.extra_tags);
            assert_eq!(back.trusted_html, m.trusted_html);
        }
        assert_eq!(
            serde_json::to_string(&Message::new(Level::INFO, "a")).expect("serialise"),
            r#"[20,"a"]"#
        );
    }

    #[test]
    fn malformed_stored_form_is_an_error() {
        for bad in [
            "[]",
            "[20]",
            r#"["20","a"]"#,
            r#"[20,"a",null,7]"#,
            r#"[20,"a",null,1,0]"#,
            "{}",
        ] {
            assert!(serde_json::from_str::<Message>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_follow_django() {
        let m = Message::new(Level::DEBUG, "x").with_extra_tags("extra-tag");
        assert_eq!(m.tags(), "extra-tag debug");
        assert_eq!(Message::new(Level::new(1), "x").tags(), "");
        assert_eq!(
            Message::new(Level::new(1), "x").with_extra_tags("t").tags(),
            "t"
        );
        assert_eq!(Message::new(Level::INFO, "x").tags(), "info");
    }
}
