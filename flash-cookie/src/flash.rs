//! flash's own cookie format: `base64url(JSON) "." base64url(HMAC-SHA256)`.

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use flash_core::{
    Error, ErrorKind, Keys, Message, Result,
    storage::{Overflow, stored_form},
};
use serde::de::value::SeqAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

use crate::codec::{Decoded, LineParts, Packed};

/// The not-finished marker: a trailing `0` after the message arrays.
const MARKER: u8 = b'0';

/// flash's cookie format, signed with a [`Keys`] ring.
///
/// The value is `base64url(json) "." base64url(mac)`, both without padding:
/// - `json` is a compact JSON array of messages in their
///   [storage form](flash_core::storage::stored_form) (`[level, text, extra_tags?, 0|1?, data?]`),
///   followed by a `0` when the list is not finished (the rest overflowed to the next storage
///   of a [`Fallback`](crate::Fallback));
/// - `mac` is HMAC-SHA256 over the cookie name and `json`, each length-prefixed
///   ([`Keys::sign`]): a value cannot be replayed under another cookie name.
///
/// The first key signs; every key of the ring verifies, in constant time (rotation). The
/// signature is checked before the JSON is parsed.
///
/// ```
/// use flash_cookie::FlashCodec;
/// use flash_core::{Key, Keys, Level, Message};
///
/// let codec = FlashCodec::new(Keys::new(Key::derive("an application secret of some length", "flash.cookie")));
/// let value = codec.encode("messages", &[Message::new(Level::SUCCESS, "Saved.")], false)?;
/// assert_eq!(codec.decode("messages", &value)?.messages[0].text, "Saved.");
/// assert!(codec.decode("other_name", &value).is_err());
/// # Ok::<(), flash_core::Error>(())
/// ```
#[derive(Clone)]
pub struct FlashCodec {
    keys: Keys,
}

impl FlashCodec {
    /// The format signed with `keys` (the first signs, all verify).
    pub fn new(keys: impl Into<Keys>) -> Self {
        FlashCodec { keys: keys.into() }
    }

    /// The key ring.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The value of cookie `name` holding `messages` (and the not-finished marker when
    /// `not_finished`), with no size limit.
    ///
    /// # Errors
    /// [`ErrorKind::Encode`] when a message cannot be serialised.
    pub fn encode(&self, name: &str, messages: &[Message], not_finished: bool) -> Result<String> {
        let mut json = Json::new(messages, false)?;
        let bytes = json.finish(not_finished);
        Ok(self.seal(name, bytes))
    }

    /// The messages of the value of cookie `name`.
    ///
    /// # Errors
    /// [`ErrorKind::Integrity`] when the value is malformed, tampered with, signed by an
    /// unknown key or for another cookie name; [`ErrorKind::Decode`] when it is validly signed
    /// but not a list of messages.
    pub fn decode(&self, name: &str, value: &str) -> Result<Decoded> {
        let mut json = Scratch::lend();
        self.keys.open_token_into(name, value, &mut json)?;
        let payload: Payload = serde_json::from_slice(&json).map_err(|err| {
            Error::with_source(
                ErrorKind::Decode,
                "the signed payload is not a list of messages",
                err,
            )
        })?;
        Ok(Decoded {
            messages: payload.messages,
            complete: payload.complete,
        })
    }

    /// Packs as many of `messages` as fit in a value of `limit` bytes.
    pub(crate) fn pack(
        &self,
        name: &str,
        messages: &[Message],
        overflow: Overflow,
        limit: usize,
        line: LineParts<'_>,
    ) -> Result<Packed> {
        let sealed =
            |json: &[u8]| line.write(value_len(json.len()), |out| self.seal_into(name, json, out));
        let mut json = Json::new(messages, false)?;
        if value_len(json.len_with(false)) <= limit {
            let bytes = json.finish(false);
            return Ok(Packed {
                line: Some(sealed(bytes)),
                kept: 0..messages.len(),
            });
        }
        // Too long: write it again noting where each message ends, to cut it (rare, so the
        // common case does without that list).
        let mut json = Json::new(messages, true)?;
        let n = messages.len();
        match overflow {
            Overflow::DropOldest => {
                // Keep the newest: the smallest start whose suffix fits.
                let start = (0..n).find(|&i| value_len(json.suffix_len(i)) <= limit);
                Ok(match start {
                    Some(start) => Packed {
                        line: Some(sealed(json.suffix(start))),
                        kept: start..n,
                    },
                    None => Packed {
                        line: None,
                        kept: n..n,
                    },
                })
            }
            Overflow::Spill => {
                // Keep the oldest: the longest prefix that fits with the marker.
                let end = (0..n)
                    .rev()
                    .find(|&j| value_len(json.prefix_len(j)) <= limit);
                Ok(match end {
                    Some(end) => Packed {
                        line: Some(sealed(json.prefix(end))),
                        kept: 0..end,
                    },
                    None => Packed {
                        line: None,
                        kept: 0..0,
                    },
                })
            }
        }
    }

    fn seal(&self, name: &str, json: &[u8]) -> String {
        let mut out = String::with_capacity(value_len(json.len()));
        self.seal_into(name, json, &mut out);
        out
    }

    /// Appends the value for `json` to `out`.
    fn seal_into(&self, name: &str, json: &[u8], out: &mut String) {
        self.keys.sign_token_into(name, json, out);
    }
}

impl fmt::Debug for FlashCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashCodec")
            .field("keys", &self.keys.all().len())
            .finish()
    }
}

/// The length of the value whose JSON is `json_len` bytes long.
fn value_len(json_len: usize) -> usize {
    Keys::token_len(json_len)
}

/// The JSON array of messages: `[` then the messages separated by `,`; with `cuttable`, the
/// end offset of every message is recorded so that any prefix or suffix can be cut without
/// re-serialising.
struct Json {
    buf: Scratch,
    count: usize,
    ends: Vec<usize>,
}

thread_local! {
    /// The buffer [`Scratch`] lends: empty between uses.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A byte buffer the thread lends for one encode or decode and takes back when it is dropped,
/// so a cookie's JSON (written at a save, opened at a load) costs no allocation once the thread
/// has served a request. A buffer grown beyond [`Scratch::KEPT`] bytes is freed, not kept.
struct Scratch(Vec<u8>);

impl Scratch {
    /// Twice the 4096 bytes a browser keeps of a cookie.
    const KEPT: usize = 8192;

    fn lend() -> Self {
        Scratch(SCRATCH.try_with(Cell::take).unwrap_or_default())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.capacity() <= Self::KEPT {
            self.0.clear();
            let buffer = std::mem::take(&mut self.0);
            // During the thread's exit the buffer is simply freed.
            let _ = SCRATCH.try_with(|scratch| scratch.set(buffer));
        }
    }
}

impl Deref for Scratch {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Json {
    fn new(messages: &[Message], cuttable: bool) -> Result<Self> {
        let estimate = messages.iter().fold(2, |acc, m| {
            acc + m.text.len() + m.extra_tags.as_ref().map_or(0, String::len) + 20
        });
        let mut buf = Scratch::lend();
        buf.reserve(estimate);
        buf.push(b'[');
        let mut json = Json {
            buf,
            count: 0,
            ends: if cuttable {
                Vec::with_capacity(messages.len())
            } else {
                Vec::new()
            },
        };
        for message in messages {
            json.push(message, cuttable)?;
        }
        Ok(json)
    }

    fn push(&mut self, message: &Message, cuttable: bool) -> Result<()> {
        if self.count > 0 {
            self.buf.push(b',');
        }
        stored_form::to_writer(&mut *self.buf, message)?;
        self.count += 1;
        if cuttable {
            self.ends.push(self.buf.len());
        }
        Ok(())
    }

    /// The length of the whole array, with the marker when `not_finished`.
    fn len_with(&self, not_finished: bool) -> usize {
        match (self.count == 0, not_finished) {
            (_, false) => self.buf.len() + 1,
            (true, true) => self.buf.len() + 2,
            (false, true) => self.buf.len() + 3,
        }
    }

    /// Closes the whole array.
    fn finish(&mut self, not_finished: bool) -> &[u8] {
        if not_finished {
            if self.count > 0 {
                self.buf.push(b',');
            }
            self.buf.push(MARKER);
        }
        self.buf.push(b']');
        &self.buf
    }

    fn start(&self, i: usize) -> usize {
        // The byte before message `i`: the `[` for the first, its `,` for the others.
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    /// The length of `[messages i..]`, for `i` below the number of messages.
    fn suffix_len(&self, i: usize) -> usize {
        self.buf.len() - self.start(i) + 1
    }

    /// `[messages i..]`, cut in place, for `i` below the number of messages.
    fn suffix(&mut self, i: usize) -> &[u8] {
        let start = self.start(i);
        self.buf[start] = b'[';
        self.buf.push(b']');
        &self.buf[start..]
    }

    /// The length of `[messages ..j, 0]`.
    fn prefix_len(&self, j: usize) -> usize {
        if j == 0 { 3 } else { self.ends[j - 1] + 3 }
    }

    /// `[messages ..j, 0]`, cut in place.
    fn prefix(&mut self, j: usize) -> &[u8] {
        self.buf.truncate(if j == 0 { 1 } else { self.ends[j - 1] });
        if j > 0 {
            self.buf.push(b',');
        }
        self.buf.push(MARKER);
        self.buf.push(b']');
        &self.buf
    }
}

/// The decoded JSON array.
struct Payload {
    messages: Vec<Message>,
    complete: bool,
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages, optionally ending with the not-finished marker 0")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
        // The size hint is untrusted: bound the pre-allocation.
        let mut messages = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        let mut complete = true;
        while let Some(item) = seq.next_element::<Item>()? {
            if !complete {
                return Err(de::Error::custom(
                    "the not-finished marker must be the last element",
                ));
            }
            match item {
                Item::Message(message) => messages.push(message),
                Item::Marker => complete = false,
            }
        }
        Ok(Payload { messages, complete })
    }
}

/// One element of the array: a message, or the marker.
enum Item {
    Message(Message),
    Marker,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message array or the not-finished marker 0")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        stored_form::deserialize(SeqAccessDeserializer::new(seq)).map(Item::Message)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
        if v == 0 {
            Ok(Item::Marker)
        } else {
            Err(de::Error::invalid_value(de::Unexpected::Unsigned(v), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use flash_core::{Key, Level};

    use super::*;

    fn codec() -> FlashCodec {
        FlashCodec::new(Keys::new(Key::from_bytes(&[7; 32])))
    }

    #[test]
    fn value_len_is_exact() {
        for n in 0..100 {
            let json = vec![b'x'; n];
            assert_eq!(codec().seal("m", &json).len(), value_len(n), "{n}");
        }
    }

    #[test]
    fn cut_lengths_are_exact() {
        let messages: Vec<Message> = (0..5)
            .map(|i| Message::new(Level::INFO, "é\"".repeat(i + 1)).with_extra_tags("t"))
            .collect();
        let mut json = Json::new(&messages, true).expect("serialise");
        for i in 0..=5 {
            if i < 5 {
                let mut copy = Json {
                    buf: Scratch(json.buf.to_vec()),
                    count: json.count,
                    ends: json.ends.clone(),
                };
                let len = copy.suffix_len(i);
                let suffix = copy.suffix(i).to_vec();
                assert_eq!(suffix.len(), len);
                let back = stored_form::list_from_slice(&suffix).expect("valid JSON");
                assert_eq!(back, messages[i..]);
            }
            let mut copy = Json {
                buf: Scratch(json.buf.to_vec()),
                count: json.count,
                ends: json.ends.clone(),
            };
            let len = copy.prefix_len(i);
            let prefix = copy.prefix(i).to_vec();
            assert_eq!(prefix.len(), len);
            let back: Payload = serde_json::from_slice(&prefix).expect("valid JSON");
            assert_eq!(back.messages, messages[..i]);
            assert!(!back.complete);
        }
        let whole = json.len_with(true);
        assert_eq!(json.finish(true).len(), whole);
    }

    #[test]
    fn data_travels_in_the_cookie() {
        let sent = [
            Message::new(Level::INFO, "plain"),
            Message::new(Level::SUCCESS, "Deleted.")
                .with_data(serde_json::json!({"undo": "/a/7", "é": [1, null]})),
        ];
        let value = codec().encode("m", &sent, false).expect("encode");
        let back = codec().decode("m", &value).expect("decode").messages;
        assert_eq!(back, sent);
        assert_eq!(back[0].data, None);
        assert_eq!(back[1].data, sent[1].data);
    }

    #[test]
    fn marker_only_where_it_belongs() {
        for (json, ok) in [
            ("[]", true),
            ("[0]", true),
            ("[[20,\"a\"],0]", true),
            ("[0,[20,\"a\"]]", false),
            ("[0,0]", false),
            ("[1]", false),
            ("[\"x\"]", false),
            ("{}", false),
            ("[[20,\"a\"],[]]", false),
        ] {
            assert_eq!(serde_json::from_str::<Payload>(json).is_ok(), ok, "{json}");
        }
    }
}
