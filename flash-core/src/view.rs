//! What templates and JSON clients receive of a message: named fields, computed with the
//! application's tag map.

use std::fmt;
use std::ops::Deref;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Result;
use crate::level::{Level, LevelTags};
use crate::message::Message;
use crate::messages::Messages;

/// One message as a template or a JSON client receives it: Django's `Message` attributes,
/// computed with the application's tag map.
///
/// | field | Django | |
/// |---|---|---|
/// | `level` | `message.level` | the level's number (`25`) |
/// | `level_tag` | `message.level_tag` | the level's tag under the application's map (`"success"`) |
/// | `tags` | `message.tags` | extra tags and level tag joined by a space (`"undo success"`) |
/// | `extra_tags` | `message.extra_tags` | the extra tags, `""` when none |
/// | `message` | `message.message`, `{{ message }}` | the text; [`Display`](fmt::Display) gives it too |
/// | `safe` | `isinstance(message.message, SafeData)` | the text is trusted HTML |
/// | `data` | | the data beside the text, absent when none |
///
/// Serialised (JSON for API clients), it is an object with exactly these fields, `data` left
/// out when there is none:
///
/// ```
/// use flash_core::{Level, LevelTags, Message};
/// let tags = LevelTags::default().set(Level::SUCCESS, "ok");
/// let m = Message::new(Level::SUCCESS, "Deleted.")
///     .with_extra_tags("undo")
///     .with_data(serde_json::json!({"undo": "/articles/7/restore"}));
/// assert_eq!(
///     serde_json::to_value(m.view(&tags)).unwrap(),
///     serde_json::json!({
///         "level": 25, "level_tag": "ok", "tags": "undo ok", "extra_tags": "undo",
///         "message": "Deleted.", "safe": false, "data": {"undo": "/articles/7/restore"},
///     })
/// );
/// ```
///
/// # In templates
///
/// Django's loop works unchanged:
/// `{% for message in messages %}<li class="{{ message.tags }}">{{ message }}</li>{% endfor %}`.
/// Plain text is escaped and trusted HTML is not, with nothing asked of the template author:
/// - **minijinja** (feature `minijinja`): a view is a minijinja object, also when it travels
///   through serde (`context! { messages => views }`); its `message` field is a safe string
///   when the text is trusted HTML. For `{{ message }}` itself to keep trusted HTML, install
///   [`minijinja_formatter`](crate::minijinja_formatter) once on the environment (without it,
///   trusted HTML is escaped, never the reverse).
/// - **askama** (feature `askama`): give the template [`HtmlMessage`]s (`views.into_iter()
///   .map(HtmlMessage::from)`); `{{ message }}` writes escaped text or the trusted HTML, and
///   every field reads through it.
/// - **tera** (2.x, feature `tera`): insert `tera::Value::from(views)`; a tera value cannot
///   print as anything but its map, so the loop writes `{{ message.message }}` where Django
///   writes `{{ message }}` (the one change); `message.message` is a safe string when the text
///   is trusted HTML, so escaping is right with no filter. Other serde-based engines get the
///   plain map: there, `{{ message.message }}` is always escaped, trusted HTML included.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct MessageView {
    /// The level's number.
    pub level: i32,
    /// The level's tag under the application's map; `""` for a level it does not name.
    pub level_tag: String,
    /// Extra tags and the level tag joined by one space, empty parts skipped.
    pub tags: String,
    /// The extra tags, `""` when none.
    pub extra_tags: String,
    /// The text: plain text to escape, unless [`MessageView::safe`].
    pub message: String,
    /// The text is trusted HTML, to be rendered as is.
    pub safe: bool,
    /// The data beside the text, when the message has any.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

impl MessageView {
    /// The view of `message` under the tag map `tags`.
    pub fn new(message: &Message, tags: &LevelTags) -> Self {
        MessageView {
            level: message.level.value(),
            level_tag: message.level_tag_in(tags).to_owned(),
            tags: message.tags_in(tags),
            extra_tags: message.extra_tags.clone().unwrap_or_default(),
            message: message.text.clone(),
            safe: message.trusted_html,
            data: message.data.clone(),
        }
    }

    /// The level.
    pub fn level(&self) -> Level {
        Level::new(self.level)
    }

    /// The text as HTML: escaped, or as is when it is trusted HTML.
    ///
    /// ```
    /// use flash_core::{Level, LevelTags, Message};
    /// let tags = LevelTags::default();
    /// assert_eq!(Message::new(Level::INFO, "a<b").view(&tags).html(), "a&lt;b");
    /// assert_eq!(Message::new(Level::INFO, "<b>a</b>").trusted_html().view(&tags).html(), "<b>a</b>");
    /// ```
    pub fn html(&self) -> String {
        if self.safe {
            self.message.clone()
        } else {
            let mut out = String::with_capacity(self.message.len());
            escape_html(&self.message, &mut out);
            out
        }
    }
}

impl fmt::Display for MessageView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Serialize for MessageView {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        #[cfg(feature = "minijinja")]
        if minijinja::value::serializing_for_value() {
            // Into a minijinja context: travel as the object, so `{{ message }}` is the text.
            return minijinja::Value::from_object(self.clone()).serialize(serializer);
        }
        let fields = if self.data.is_some() { 7 } else { 6 };
        let mut s = serializer.serialize_struct("MessageView", fields)?;
        s.serialize_field("level", &self.level)?;
        s.serialize_field("level_tag", &self.level_tag)?;
        s.serialize_field("tags", &self.tags)?;
        s.serialize_field("extra_tags", &self.extra_tags)?;
        s.serialize_field("message", &self.message)?;
        s.serialize_field("safe", &self.safe)?;
        if let Some(data) = &self.data {
            s.serialize_field("data", data)?;
        }
        s.end()
    }
}

/// A [`MessageView`] whose [`Display`](fmt::Display) is HTML: the text escaped, or the trusted
/// HTML as is. Its fields read through it (`message.tags`). With feature `askama` it is
/// askama's `HtmlSafe`, so `{{ message }}` in an askama HTML template is right for both kinds
/// of text with no filter; any engine that prints `Display` unescaped can use it the same way.
///
/// ```
/// use flash_core::{HtmlMessage, Level, LevelTags, Message};
/// let tags = LevelTags::default();
/// let plain = HtmlMessage::from(Message::new(Level::INFO, "1 < 2").view(&tags));
/// assert_eq!(plain.to_string(), "1 &lt; 2");
/// assert_eq!(plain.tags, "info");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct HtmlMessage(pub MessageView);

impl From<MessageView> for HtmlMessage {
    fn from(view: MessageView) -> Self {
        HtmlMessage(view)
    }
}

impl Deref for HtmlMessage {
    type Target = MessageView;

    fn deref(&self) -> &MessageView {
        &self.0
    }
}

impl fmt::Display for HtmlMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.safe {
            f.write_str(&self.0.message)
        } else {
            let mut out = String::with_capacity(self.0.message.len());
            escape_html(&self.0.message, &mut out);
            f.write_str(&out)
        }
    }
}

#[cfg(feature = "askama")]
impl askama::filters::HtmlSafe for HtmlMessage {}

/// Escapes the characters HTML gives meaning to, in text and in quoted attributes.
fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

impl Messages {
    /// Every pending message as templates and JSON clients receive it, under the application's
    /// tag map, consuming them as [`Messages::read`] does.
    ///
    /// # Errors
    /// When loading fails; nothing is consumed then.
    pub async fn read_views(&self) -> Result<Vec<MessageView>> {
        Ok(self.read().await?.views(self.level_tags()))
    }

    /// Every pending message as [`Messages::read_views`] gives them, without consuming them.
    ///
    /// # Errors
    /// When loading fails.
    pub async fn peek_views(&self) -> Result<Vec<MessageView>> {
        let tags = self.level_tags();
        Ok(self
            .peek()
            .await?
            .iter()
            .map(|m| MessageView::new(m, tags))
            .collect())
    }

    /// The JSON answer for API clients: `{"messages": [view, …]}`, each view the fields of
    /// [`MessageView`]; consumes the messages as [`Messages::read`] does.
    ///
    /// # Errors
    /// When loading fails; nothing is consumed then.
    pub async fn read_json(&self) -> Result<serde_json::Value> {
        let views = self.read_views().await?;
        Ok(serde_json::json!({ "messages": views }))
    }
}

#[cfg(feature = "minijinja")]
mod engine_minijinja {
    use std::sync::Arc;

    use minijinja::value::{Enumerator, Object, Value};
    use minijinja::{AutoEscape, Error, Output, State};

    use super::MessageView;

    const FIELDS: &[&str] = &[
        "level",
        "level_tag",
        "tags",
        "extra_tags",
        "message",
        "safe",
        "data",
    ];

    impl Object for MessageView {
        fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
            Some(match key.as_str()? {
                "level" => Value::from(self.level),
                "level_tag" => Value::from(self.level_tag.as_str()),
                "tags" => Value::from(self.tags.as_str()),
                "extra_tags" => Value::from(self.extra_tags.as_str()),
                "message" if self.safe => Value::from_safe_string(self.message.clone()),
                "message" => Value::from(self.message.as_str()),
                "safe" => Value::from(self.safe),
                "data" => self
                    .data
                    .as_ref()
                    .map_or(Value::from(()), Value::from_serialize),
                _ => return None,
            })
        }

        fn enumerate(self: &Arc<Self>) -> Enumerator {
            Enumerator::Str(FIELDS)
        }

        fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl From<MessageView> for Value {
        fn from(view: MessageView) -> Value {
            Value::from_object(view)
        }
    }

    /// minijinja's default formatter, except that a [`MessageView`] printed whole
    /// (`{{ message }}`) keeps trusted HTML as is: install it once with
    /// `env.set_formatter(flash_core::minijinja_formatter)`. Plain text is escaped as any
    /// string is.
    ///
    /// # Errors
    /// As [`minijinja::escape_formatter`].
    pub fn minijinja_formatter(
        out: &mut Output<'_>,
        state: &State<'_, '_>,
        value: &Value,
    ) -> Result<(), Error> {
        if let Some(view) = value.downcast_object_ref::<MessageView>() {
            if view.safe && state.auto_escape() != AutoEscape::None {
                return out.write_str(&view.message).map_err(Error::from);
            }
            return minijinja::escape_formatter(out, state, &Value::from(view.message.as_str()));
        }
        minijinja::escape_formatter(out, state, value)
    }
}

#[cfg(feature = "minijinja")]
pub use engine_minijinja::minijinja_formatter;

#[cfg(feature = "tera")]
impl From<MessageView> for tera::Value {
    /// The view as a tera map; its `message` is a safe string when the text is trusted HTML,
    /// so `{{ message.message }}` escapes plain text only.
    fn from(view: MessageView) -> tera::Value {
        let mut map: std::collections::BTreeMap<&'static str, tera::Value> =
            std::collections::BTreeMap::new();
        map.insert("level", view.level.into());
        map.insert("level_tag", view.level_tag.into());
        map.insert("tags", view.tags.into());
        map.insert("extra_tags", view.extra_tags.into());
        map.insert(
            "message",
            if view.safe {
                tera::Value::safe_string(&view.message)
            } else {
                view.message.into()
            },
        );
        map.insert("safe", view.safe.into());
        if let Some(data) = &view.data {
            map.insert("data", tera::Value::from_serializable(data));
        }
        map.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_tag_map() {
        let tags = LevelTags::default()
            .set(Level::ERROR, "danger")
            .set(Level::DEBUG, "");
        let v = Message::new(Level::ERROR, "x")
            .with_extra_tags("form")
            .view(&tags);
        assert_eq!(
            (v.level, &*v.level_tag, &*v.tags, &*v.extra_tags),
            (40, "danger", "form danger", "form")
        );
        let v = Message::new(Level::DEBUG, "x").view(&tags);
        assert_eq!((&*v.level_tag, &*v.tags, &*v.extra_tags), ("", "", ""));
        assert_eq!(v.to_string(), "x");
        let json = serde_json::to_value(&v).expect("json");
        assert!(json.get("data").is_none());
        let back: MessageView = serde_json::from_value(json).expect("back");
        assert_eq!(back, v);
    }

    #[test]
    fn html_escapes_plain_text_only() {
        let tags = LevelTags::default();
        let plain = Message::new(Level::INFO, r#"<a href="x">'&'</a>"#).view(&tags);
        assert_eq!(
            plain.html(),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
        assert_eq!(HtmlMessage::from(plain.clone()).to_string(), plain.html());
        let trusted = Message::new(Level::INFO, "<b>x</b>")
            .trusted_html()
            .view(&tags);
        assert_eq!(HtmlMessage::from(trusted).to_string(), "<b>x</b>");
    }
}
