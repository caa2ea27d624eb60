//! The JSON Django's `SessionStorage` keeps: `[["__json_message", safe, level, text(, extra)], …]`
//! written as Python's `json` module writes it (`", "` separators, ASCII only).

use std::fmt;
use std::io;

use flash_core::{Error, ErrorKind, Level, Message};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The marker Django's `MessageEncoder` puts first in every encoded message.
const MESSAGE_KEY: &str = "__json_message";

/// One message in Django's form.
struct Entry<'a>(&'a Message);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        if m.data.is_some() {
            // Django's `Message` has no place for it: refused, never dropped in silence.
            return Err(serde::ser::Error::custom(
                "a message carries data, which Django's session format cannot hold",
            ));
        }
        let len = if m.extra_tags.is_some() { 5 } else { 4 };
        let mut seq = serializer.serialize_seq(Some(len))?;
        seq.serialize_element(MESSAGE_KEY)?;
        seq.serialize_element(&u8::from(m.trusted_html))?;
        seq.serialize_element(&m.level)?;
        seq.serialize_element(&m.text)?;
        if let Some(extra) = &m.extra_tags {
            seq.serialize_element(extra)?;
        }
        seq.end()
    }
}

/// A decoded message in Django's form.
struct Decoded(Message);

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Decoded;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a Django message ["__json_message", 0|1, level, text, extra_tags?]"#)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Decoded, A::Error> {
                let key: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                if key != MESSAGE_KEY {
                    return Err(de::Error::invalid_value(de::Unexpected::Str(&key), &self));
                }
                let safe: Safe = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let level: Level = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(2, &self))?;
                let text: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(3, &self))?;
                let extra_tags: Option<String> = seq.next_element()?.flatten();
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(6, &self));
                }
                Ok(Decoded(Message {
                    level,
                    text,
                    extra_tags,
                    trusted_html: safe.0,
                    data: None,
                    address: None,
                }))
            }
        }

        deserializer.deserialize_seq(EntryVisitor)
    }
}

/// Django's `is_safedata` flag: `0`/`1` (booleans accepted too).
struct Safe(bool);

impl<'de> Deserialize<'de> for Safe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(b) => Ok(Safe(b)),
            Value::Number(n) if n.as_u64() == Some(0) => Ok(Safe(false)),
            Value::Number(n) if n.as_u64() == Some(1) => Ok(Safe(true)),
            other => Err(de::Error::invalid_value(
                de::Unexpected::Other(&other.to_string()),
                &"0 or 1",
            )),
        }
    }
}

/// Writes JSON as CPython's `json.dumps` does by default: `", "` and `": "` separators and every
/// character outside printable ASCII as a `\uXXXX` escape (surrogate pairs beyond the BMP).
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json has already escaped quotes, backslashes and control characters; what is left
        // to escape is DEL and everything beyond ASCII.
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            start = i + c.len_utf8();
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// The session value Django's `SessionStorage` keeps for `messages`: a JSON text.
pub(crate) fn encode(messages: &[Message]) -> Result<String, Error> {
    let mut out = Vec::with_capacity(64 * messages.len() + 2);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    serializer
        .collect_seq(messages.iter().map(Entry))
        .map_err(|err| Error::with_source(ErrorKind::Encode, "session messages", err))?;
    // Only ASCII is written.
    String::from_utf8(out)
        .map_err(|err| Error::with_source(ErrorKind::Encode, "session messages", err))
}

/// The messages in a session value: Django's JSON text, or the same list already parsed.
pub(crate) fn decode(value: &Value) -> Result<Vec<Message>, Error> {
    let decoded: Result<Vec<Decoded>, _> = match value {
        Value::String(text) => serde_json::from_str(text),
        Value::Array(_) => Vec::<Decoded>::deserialize(value),
        Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(Error::new(
                ErrorKind::Decode,
                "session messages are neither a JSON text nor a list",
            ));
        }
    };
    decoded
        .map(|list| list.into_iter().map(|d| d.0).collect())
        .map_err(|err| Error::with_source(ErrorKind::Decode, "session messages", err))
}

/// How many bytes of the value's SHA-256 bind the addresses to it.
const BINDING_LEN: usize = 16;

fn binding(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..BINDING_LEN]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the `_to` key keeps for the messages of the session value `text`: `[binding,
/// addresses]`, `None` when none is addressed.
pub(crate) fn addresses(text: &str, messages: &[Message]) -> Result<Option<Value>, Error> {
    let Some(bytes) = flash_core::storage::stored_form::addresses_to_vec(messages)? else {
        return Ok(None);
    };
    let addresses: Value = serde_json::from_slice(&bytes)
        .map_err(|err| Error::with_source(ErrorKind::Encode, "session addresses", err))?;
    Ok(Some(Value::Array(vec![
        Value::String(binding(text)),
        addresses,
    ])))
}

/// Puts on `messages`, read from the session value `text`, the addresses the `_to` key keeps
/// for that very value; anything else (another value's, unreadable) leaves them unaddressed.
pub(crate) fn apply_addresses(text: &str, kept: &Value, messages: &mut [Message]) {
    let Some([Value::String(bound), addresses]) = kept.as_array().map(Vec::as_slice) else {
        tracing::debug!("ignoring unreadable session addresses");
        return;
    };
    if *bound != binding(text) {
        // Written for another value: the messages were rewritten since (by Django?).
        tracing::debug!("the session addresses describe another messages value");
        return;
    }
    let applied = serde_json::to_vec(addresses)
        .map_err(|err| Error::with_source(ErrorKind::Decode, "session addresses", err))
        .and_then(|bytes| flash_core::storage::stored_form::apply_addresses(messages, &bytes));
    if let Err(err) = applied {
        tracing::debug!(%err, "ignoring unreadable session addresses");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_python_does() {
        let m = Message::new(Level::INFO, "é\u{7f}\u{1f389}\n\"\\/ ~").with_extra_tags("t");
        assert_eq!(
            encode(&[m]).expect("encode"),
            r#"[["__json_message", 0, 20, "\u00e9\u007f\ud83c\udf89\n\"\\/ ~", "t"]]"#
        );
        assert_eq!(encode(&[]).expect("encode"), "[]");
    }

    #[test]
    fn addresses_ride_beside_the_value_they_describe() {
        let mut to_b = Message::new(Level::INFO, "to b");
        to_b.address = Some(flash_core::Address::from_stored("/b", 3, 1_700_000_000_000));
        let messages = vec![Message::new(Level::INFO, "anywhere"), to_b];
        let text = encode(&messages).expect("encode");
        // Django's value is what Django writes: no trace of the address.
        assert_eq!(
            text,
            r#"[["__json_message", 0, 20, "anywhere"], ["__json_message", 0, 20, "to b"]]"#
        );
        let kept = addresses(&text, &messages)
            .expect("encode")
            .expect("one is addressed");
        let mut read = decode(&Value::String(text.clone())).expect("decode");
        apply_addresses(&text, &kept, &mut read);
        assert_eq!(read, messages);
        // A value rewritten since (by Django) stays unaddressed.
        let other = encode(&[Message::new(Level::INFO, "to b")]).expect("encode");
        let mut read = decode(&Value::String(other.clone())).expect("decode");
        apply_addresses(&other, &kept, &mut read);
        assert!(read.iter().all(|m| m.address.is_none()));
        assert_eq!(
            addresses(&other, &[Message::new(Level::INFO, "x")]).expect("encode"),
            None
        );
    }

    #[test]
    fn round_trips() {
        let all = vec![
            Message::new(Level::new(-3), "a").trusted_html(),
            Message::new(Level::ERROR, "\u{1}x\u{10ffff}").with_extra_tags(""),
        ];
        let text = encode(&all).expect("encode");
        let back = decode(&Value::String(text)).expect("decode");
        assert_eq!(back, all);
        assert!(back[0].trusted_html && back[0].extra_tags.is_none());
        assert_eq!(back[1].extra_tags.as_deref(), Some(""));
    }

    #[test]
    fn rejects_what_is_not_django_messages() {
        for bad in [
            "",
            "{}",
            "[1]",
            r#"[["__json_message"]]"#,
            r#"[["__other", 0, 20, "x"]]"#,
            r#"[["__json_message", 2, 20, "x"]]"#,
            r#"[["__json_message", 0, "20", "x"]]"#,
            r#"[["__json_message", 0, 20, 5]]"#,
            r#"[["__json_message", 0, 20, "x", "", 1]]"#,
            r#"[["__json_message", 0, 99999999999, "x"]]"#,
            r#"[["__json_message", 0, 20, "\ud83c"]]"#,
        ] {
            let err = decode(&Value::String(bad.to_owned())).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Decode, "{bad}");
        }
        assert!(decode(&Value::Bool(true)).is_err());
        assert!(decode(&Value::Null).expect("null").is_empty());
    }
}
