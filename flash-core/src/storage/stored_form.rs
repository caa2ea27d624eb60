//! The storage form of a message, for backends: not for templates or API clients.
//!
//! flash's own formats (its signed cookie, every keyed store, the carry cookie of
//! [`ServerStorage`](crate::storage::ServerStorage), [`Documents`](crate::storage::Documents)) keep a message as a
//! compact JSON array, the shortest of:
//!
//! - `[level, text]`;
//! - `[level, text, extra_tags]`;
//! - `[level, text, extra_tags|null, 1]` for trusted HTML;
//! - `[level, text, extra_tags|null, 0|1, data]` for a message with data;
//! - `[level, text, extra_tags|null, 0|1, data|null, [path, loads_left, until_ms]]` for a
//!   message addressed to a page ([`Address`]).
//!
//! Every shorter form stays readable (`null` data reads as none), so values written before data
//! or addresses existed still load. A value written with an address is not readable by a
//! version before 0.x that added it (it has one element more): roll an upgrade out before
//! relying on addressed messages across versions. Anything else (another length, a level that is not an integer, a flag
//! that is not `0` or `1`) is an error, never a panic.
//!
//! This form is private to the backends that write it. [`Message`] itself implements neither
//! `Serialize` nor `Deserialize`, so an array never reaches a template or a JSON response by
//! accident: what those receive is a [`MessageView`](crate::MessageView), with named fields,
//! made with the application's tag map ([`Message::view`],
//! [`Messages::read_views`](crate::Messages::read_views)).
//!
//! ```
//! use flash_core::{Level, Message, storage::stored_form};
//!
//! let m = Message::new(Level::SUCCESS, "Deleted.").with_data(serde_json::json!({"id": 7}));
//! let bytes = stored_form::to_vec(&m)?;
//! assert_eq!(bytes, br#"[25,"Deleted.",null,0,{"id":7}]"#);
//! let back = stored_form::from_slice(&bytes)?;
//! assert_eq!((back.text.as_str(), back.data), ("Deleted.", m.data));
//!
//! // A list, as flash's cookie keeps it.
//! let list = stored_form::list_to_vec(&[Message::new(Level::INFO, "a")])?;
//! assert_eq!(list, br#"[[20,"a"]]"#);
//! assert_eq!(stored_form::list_from_slice(&list)?[0].text, "a");
//! # Ok::<(), flash_core::Error>(())
//! ```
//!
//! Inside a backend's own serde types, the module works with `#[serde(with)]`, and the
//! wrappers [`AsStored`] (to write) and [`FromStored`] (to read) with any serde format:
//!
//! ```
//! use flash_core::storage::stored_form::{self, AsStored, FromStored};
//! use flash_core::{Level, Message};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Row {
//!     id: u64,
//!     #[serde(with = "flash_core::storage::stored_form")]
//!     message: Message,
//! }
//!
//! let row = Row { id: 1, message: Message::new(Level::INFO, "hi") };
//! let json = serde_json::to_string(&row).unwrap();
//! assert_eq!(json, r#"{"id":1,"message":[20,"hi"]}"#);
//! assert_eq!(serde_json::from_str::<Row>(&json).unwrap().message.text, "hi");
//!
//! let mut buf = Vec::new(); // a buffer reused across messages
//! serde_json::to_writer(&mut buf, &AsStored(&row.message)).unwrap();
//! let FromStored(back) = serde_json::from_slice(&buf).unwrap();
//! assert_eq!(back, row.message);
//! ```

use std::fmt;
use std::io;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};
use crate::level::Level;
use crate::message::{Address, Message};

/// Writes a message in its storage form through serde (`serde_json::to_writer(&mut buf,
/// &AsStored(&message))`): borrows, copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct AsStored<'a>(pub &'a Message);

/// Reads a message from its storage form through serde
/// (`serde_json::from_slice::<FromStored>(bytes)?.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromStored(pub Message);

/// Writes a list of messages in their storage form through serde: a JSON array of arrays.
#[derive(Debug, Clone, Copy)]
pub struct AsStoredList<'a>(pub &'a [Message]);

/// Reads a list of messages in their storage form through serde.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromStoredList(pub Vec<Message>);

impl From<FromStored> for Message {
    fn from(stored: FromStored) -> Self {
        stored.0
    }
}

impl From<FromStoredList> for Vec<Message> {
    fn from(stored: FromStoredList) -> Self {
        stored.0
    }
}

/// Serialises `message` in its storage form: for `#[serde(with = "flash_core::storage::stored_form")]`
/// on a [`Message`] field.
///
/// # Errors
/// When `serializer` fails.
pub fn serialize<S: Serializer>(message: &Message, serializer: S) -> Result<S::Ok, S::Error> {
    AsStored(message).serialize(serializer)
}

/// Deserialises a message from its storage form: for
/// `#[serde(with = "flash_core::storage::stored_form")]` on a [`Message`] field.
///
/// # Errors
/// When the input is not a message in its storage form.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Message, D::Error> {
    deserializer.deserialize_seq(MessageVisitor)
}

/// Writes `message`'s compact JSON storage form to `writer` (a reused buffer costs no
/// allocation).
///
/// # Errors
/// [`ErrorKind::Encode`] when `writer` fails.
pub fn to_writer<W: io::Write>(writer: W, message: &Message) -> Result<()> {
    serde_json::to_writer(writer, &AsStored(message)).map_err(encode_error)
}

/// `message`'s compact JSON storage form.
///
/// # Errors
/// [`ErrorKind::Encode`] when it cannot be serialised.
pub fn to_vec(message: &Message) -> Result<Vec<u8>> {
    serde_json::to_vec(&AsStored(message)).map_err(encode_error)
}

/// `message`'s compact JSON storage form, as text.
///
/// # Errors
/// [`ErrorKind::Encode`] when it cannot be serialised.
pub fn to_string(message: &Message) -> Result<String> {
    serde_json::to_string(&AsStored(message)).map_err(encode_error)
}

/// The message whose JSON storage form is `bytes`.
///
/// # Errors
/// [`ErrorKind::Decode`] when `bytes` is not one; the serde error is the source.
pub fn from_slice(bytes: &[u8]) -> Result<Message> {
    serde_json::from_slice::<FromStored>(bytes)
        .map(|stored| stored.0)
        .map_err(decode_error)
}

/// The message whose JSON storage form is `text`.
///
/// # Errors
/// [`ErrorKind::Decode`] when `text` is not one; the serde error is the source.
pub fn from_str(text: &str) -> Result<Message> {
    from_slice(text.as_bytes())
}

/// The compact JSON array of `messages` in their storage form.
///
/// # Errors
/// [`ErrorKind::Encode`] when they cannot be serialised.
pub fn list_to_vec(messages: &[Message]) -> Result<Vec<u8>> {
    serde_json::to_vec(&AsStoredList(messages)).map_err(encode_error)
}

/// The messages whose JSON array in storage form is `bytes`.
///
/// # Errors
/// [`ErrorKind::Decode`] when `bytes` is not one; the serde error is the source.
pub fn list_from_slice(bytes: &[u8]) -> Result<Vec<Message>> {
    serde_json::from_slice::<FromStoredList>(bytes)
        .map(|stored| stored.0)
        .map_err(decode_error)
}

/// The addresses of `messages`, for a format that keeps the messages where it has no place for
/// an address (Django's cookie and session formats): a JSON array
/// `[[position, path, loads_left, until_ms], …]` of the addressed ones, `None` when none is.
///
/// The format keeps it beside the messages, bound to the value it describes (a hash of it), so
/// that a value another program rewrote (Django itself) is never given addresses meant for
/// another list.
///
/// ```
/// use flash_core::{Address, Level, Message, storage::stored_form};
/// let mut messages = vec![Message::new(Level::INFO, "anywhere"), Message::new(Level::INFO, "to b")];
/// messages[1].address = Some(Address::from_stored("/b", 3, 1_700_000_000_000));
/// let addresses = stored_form::addresses_to_vec(&messages)?.unwrap();
/// assert_eq!(addresses, br#"[[1,"/b",3,1700000000000]]"#);
/// messages[1].address = None;
/// stored_form::apply_addresses(&mut messages, &addresses)?;
/// assert_eq!(messages[1].address.as_ref().map(Address::path), Some("/b"));
/// assert_eq!(stored_form::addresses_to_vec(&[Message::new(Level::INFO, "a")])?, None);
/// # Ok::<(), flash_core::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Encode`] when they cannot be serialised.
pub fn addresses_to_vec(messages: &[Message]) -> Result<Option<Vec<u8>>> {
    let addressed: Vec<(usize, &str, u16, u64)> = messages
        .iter()
        .enumerate()
        .filter_map(|(at, m)| {
            let a = m.address.as_ref()?;
            Some((at, a.path.as_str(), a.loads_left, a.until_ms))
        })
        .collect();
    if addressed.is_empty() {
        return Ok(None);
    }
    serde_json::to_vec(&addressed)
        .map(Some)
        .map_err(encode_error)
}

/// Puts back on `messages` the addresses [`addresses_to_vec`] wrote for them; a position
/// beyond the list is ignored.
///
/// # Errors
/// [`ErrorKind::Decode`] when `bytes` is not such an array; `messages` are then unchanged.
pub fn apply_addresses(messages: &mut [Message], bytes: &[u8]) -> Result<()> {
    let addressed: Vec<(usize, String, u16, u64)> =
        serde_json::from_slice(bytes).map_err(decode_error)?;
    for (at, path, loads_left, until_ms) in addressed {
        if let Some(message) = messages.get_mut(at) {
            message.address = Some(crate::message::Address::from_stored(
                path, loads_left, until_ms,
            ));
        }
    }
    Ok(())
}

fn encode_error(err: serde_json::Error) -> Error {
    Error::with_source(
        ErrorKind::Encode,
        "cannot serialise a message in its stored form",
        err,
    )
}

fn decode_error(err: serde_json::Error) -> Error {
    Error::with_source(
        ErrorKind::Decode,
        "not a message in flash's stored form",
        err,
    )
}

impl Serialize for AsStored<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let len = if m.address.is_some() {
            6
        } else if m.data.is_some() {
            5
        } else if m.trusted_html {
            4
        } else if m.extra_tags.is_some() {
            3
        } else {
            2
        };
        let mut seq = serializer.serialize_seq(Some(len))?;
        seq.serialize_element(&m.level)?;
        seq.serialize_element(&m.text)?;
        if len >= 3 {
            seq.serialize_element(&m.extra_tags)?;
        }
        if len >= 4 {
            seq.serialize_element(&u8::from(m.trusted_html))?;
        }
        if len >= 5 {
            seq.serialize_element(&m.data)?;
        }
        if let Some(address) = &m.address {
            seq.serialize_element(&(&address.path, address.loads_left, address.until_ms))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for FromStored {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer).map(FromStored)
    }
}

impl Serialize for AsStoredList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(AsStored))
    }
}

impl<'de> Deserialize<'de> for FromStoredList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;

        impl<'de> Visitor<'de> for ListVisitor {
            type Value = FromStoredList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of message arrays")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FromStoredList, A::Error> {
                // The size hint is untrusted: bound the pre-allocation.
                let mut messages = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(FromStored(message)) = seq.next_element()? {
                    messages.push(message);
                }
                Ok(FromStoredList(messages))
            }
        }

        deserializer.deserialize_seq(ListVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message array [level, text, extra_tags?, html?, data?, address?]")
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
        let data = seq
            .next_element::<serde_json::Value>()?
            .filter(|data| !data.is_null());
        let address =
            seq.next_element::<(String, u16, u64)>()?
                .map(|(path, loads_left, until_ms)| Address {
                    path,
                    loads_left,
                    until_ms,
                });
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(7, &self));
        }
        Ok(Message {
            level,
            text,
            extra_tags,
            trusted_html,
            data,
            address,
        })
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
            Message::new(Level::INFO, "d").with_data(serde_json::json!({"undo": "/x", "n": [1]})),
            Message::new(Level::INFO, "d")
                .with_extra_tags("t")
                .trusted_html()
                .with_data(serde_json::json!("text")),
            Message::new(Level::INFO, "to").addressed_to("/orders/7?tab=1"),
        ];
        for m in &cases {
            let json = to_string(m).expect("serialise");
            let back = from_str(&json).expect("deserialise");
            assert_eq!(&back, m);
            assert_eq!(back.extra_tags, m.extra_tags);
            assert_eq!(back.trusted_html, m.trusted_html);
            assert_eq!(back.data, m.data);
            assert_eq!(back.address, m.address);
            assert_eq!(to_vec(m).expect("serialise"), json.as_bytes());
        }
        let list = list_to_vec(&cases).expect("serialise");
        let back = list_from_slice(&list).expect("deserialise");
        assert_eq!(back, cases);
        assert!(back.iter().zip(&cases).all(|(b, m)| b.data == m.data
            && b.extra_tags == m.extra_tags
            && b.trusted_html == m.trusted_html));
        assert_eq!(list_to_vec(&[]).expect("serialise"), b"[]");
    }

    #[test]
    fn the_bytes_are_the_stored_bytes() {
        let exact = [
            (Message::new(Level::INFO, "a"), r#"[20,"a"]"#),
            (
                Message::new(Level::INFO, "a").with_extra_tags("t"),
                r#"[20,"a","t"]"#,
            ),
            (
                Message::new(Level::INFO, "a").trusted_html(),
                r#"[20,"a",null,1]"#,
            ),
            (
                Message::new(Level::SUCCESS, "Deleted.").with_data(serde_json::json!({"id": 7})),
                r#"[25,"Deleted.",null,0,{"id":7}]"#,
            ),
            (
                Message {
                    address: Some(Address::from_stored("/a/", 3, 1_700_000_000_000)),
                    ..Message::new(Level::INFO, "a")
                },
                r#"[20,"a",null,0,null,["/a/",3,1700000000000]]"#,
            ),
        ];
        for (m, json) in exact {
            assert_eq!(to_string(&m).expect("serialise"), json);
            let mut buf = b"x".to_vec();
            to_writer(&mut buf, &m).expect("serialise");
            assert_eq!(&buf[1..], json.as_bytes());
        }
    }

    #[test]
    fn old_forms_still_read() {
        // The forms written before data existed still load, with no data.
        for old in [r#"[20,"a"]"#, r#"[20,"a","t"]"#, r#"[20,"a",null,1]"#] {
            let m = from_str(old).expect("old form");
            assert_eq!((m.level, m.text.as_str(), m.data), (Level::INFO, "a", None));
        }
        assert!(from_str(r#"[20,"a",null,1]"#).expect("html").trusted_html);
        let m = from_str(r#"[20,"a",null,0,null]"#).expect("null data");
        assert_eq!(m.data, None);
    }

    #[test]
    fn malformed_stored_form_is_an_error() {
        for bad in [
            "[]",
            "[20]",
            r#"["20","a"]"#,
            r#"[20,"a",null,7]"#,
            r#"[20,"a",null,1,{},0]"#,
            r#"[20,"a",null,1,{},["/",1,2],0]"#,
            r#"[20,"a",null,1,{},["/",1]]"#,
            r#"[20,"a",null,1,{},["/",-1,2]]"#,
            r#"[20,"a",null,2,{}]"#,
            "{}",
            "",
            "not json",
        ] {
            let err = from_str(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Decode, "{bad}");
            assert!(std::error::Error::source(&err).is_some(), "{bad}");
        }
        for bad in ["[[20]]", r#"[[20,"a"],1]"#, r#"{"a":[20,"a"]}"#] {
            assert_eq!(
                list_from_slice(bad.as_bytes()).expect_err(bad).kind(),
                ErrorKind::Decode
            );
        }
    }

    #[test]
    fn a_failing_writer_is_an_encode_error() {
        struct Broken;
        impl io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = to_writer(Broken, &Message::new(Level::INFO, "a")).expect_err("broken");
        assert_eq!(err.kind(), ErrorKind::Encode);
    }
}
