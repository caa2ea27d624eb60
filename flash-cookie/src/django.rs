//! Django's `messages` cookie (feature `django`).

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use flash_core::{
    Error, ErrorKind, Key, Keys, Level, Message, Result,
    storage::{Overflow, SIGNATURE_LEN},
};
use hmac::Mac as _;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::codec::{Decoded, LineParts, Packed};

/// Django's not-finished marker, the last element of a cookie whose rest overflowed.
pub const NOT_FINISHED: &str = "__messagesnotfinished__";
/// The salt of Django's message cookie signer (`CookieStorage.key_salt`).
pub const KEY_SALT: &str = "django.contrib.messages";
/// The first element of a message array in Django's JSON.
const MESSAGE_KEY: &str = "__json_message";
/// The largest decompressed payload accepted (a zip bomb needs the key, but still).
const MAX_DECOMPRESSED: u64 = 1 << 20;
const SIGNATURE_B64_LEN: usize = (SIGNATURE_LEN * 4).div_ceil(3);
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Writes without padding, reads as Python's `urlsafe_b64decode` after Django re-pads.
const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Django's `messages` cookie format (Django ≥ 3.2, unchanged through 6.x), for a
/// `SECRET_KEY` and its `SECRET_KEY_FALLBACKS`.
///
/// A value is Django's `TimestampSigner` output, `payload ":" timestamp ":" signature`:
/// - `payload` is base64url (no padding) of the ASCII-only compact JSON list of messages,
///   each `["__json_message", safe, level, text]` plus `extra_tags` when it is not `None`;
///   zlib-compressed and prefixed with `.` when that saves at least two bytes; a list that
///   overflowed ends with the string `"__messagesnotfinished__"`;
/// - `timestamp` is the signing time in base 62 (Django does not check it for messages);
/// - `signature` is base64url of HMAC-SHA256 over `payload ":" timestamp`, keyed with
///   `sha256("django.contrib.messages" + "signer" + "django.http.cookies" + SECRET_KEY)`.
///
/// The current secret signs; it and every fallback verify. Reading follows Django (the
/// payload is read as latin-1, a level may be a numeric string); a validly signed payload
/// that Django would crash on, or that is not a list of messages, is an error here.
///
/// ```
/// use flash_cookie::DjangoCodec;
/// use flash_core::{Level, Message};
///
/// let codec = DjangoCodec::new("django-insecure-secret-key").with_clock(|| 1_767_225_600);
/// let value = codec.encode(&[Message::new(Level::INFO, "Hi").with_extra_tags("")], false)?;
/// assert_eq!(value, "W1siX19qc29uX21lc3NhZ2UiLDAsMjAsIkhpIiwiIl1d:1vb66i:\
///                    v9DH8ephnTGFoTlHIZVbGa9WKWxJjT1VSWRxDOIXGcY");
/// assert_eq!(codec.decode(&value)?.messages[0].text, "Hi");
/// # Ok::<(), flash_core::Error>(())
/// ```
#[derive(Clone)]
pub struct DjangoCodec {
    keys: Keys,
    clock: Clock,
}

impl DjangoCodec {
    /// The format for Django's `SECRET_KEY`.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        DjangoCodec {
            keys: Keys::new(signing_key(secret.as_ref())),
            clock: Arc::new(unix_now),
        }
    }

    /// Adds one of Django's `SECRET_KEY_FALLBACKS`: values it signed still verify.
    #[must_use]
    pub fn with_fallback(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.keys = self.keys.with_fallback(signing_key(secret.as_ref()));
        self
    }

    /// Adds every secret of `fallbacks`, in order (Django's `SECRET_KEY_FALLBACKS`).
    #[must_use]
    pub fn with_fallbacks<S: AsRef<[u8]>>(self, fallbacks: impl IntoIterator<Item = S>) -> Self {
        fallbacks
            .into_iter()
            .fold(self, |codec, secret| codec.with_fallback(secret))
    }

    /// Replaces the clock that stamps new values (seconds since the Unix epoch), to reproduce
    /// a value exactly in a test.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The value holding `messages`, ending with the not-finished marker when
    /// `not_finished`, with no size limit.
    ///
    /// # Errors
    /// [`ErrorKind::Encode`] when a message cannot be serialised.
    pub fn encode(&self, messages: &[Message], not_finished: bool) -> Result<String> {
        let parts = Parts::new(messages)?;
        let mut json = Vec::with_capacity(parts.buf.len() + NOT_FINISHED.len() + 8);
        parts.json(0..messages.len(), not_finished, &mut json);
        self.seal(&json)
    }

    /// The messages of a value.
    ///
    /// # Errors
    /// [`ErrorKind::Integrity`] when the value is malformed, tampered with or signed by none
    /// of the secrets; [`ErrorKind::Decode`] when it is validly signed but not a list of
    /// messages (the payloads that crash Django included).
    pub fn decode(&self, value: &str) -> Result<Decoded> {
        let signed = self.unsign(value)?;
        let (payload, timestamp) = signed
            .rsplit_once(':')
            .ok_or_else(|| decode_error("the signed value has no timestamp"))?;
        if timestamp.is_empty() || !timestamp.bytes().all(|b| BASE62.contains(&b)) {
            return Err(decode_error("the timestamp is not base 62"));
        }
        let (compressed, payload) = match payload.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, payload),
        };
        let mut data = B64.decode(payload).map_err(|err| {
            Error::with_source(ErrorKind::Decode, "the payload is not base64url", err)
        })?;
        if compressed {
            data = inflate(&data)?;
        }
        let text = latin1(data);
        let items: Vec<Value> = serde_json::from_str(&text).map_err(|err| {
            Error::with_source(ErrorKind::Decode, "the payload is not a JSON list", err)
        })?;
        from_items(items)
    }

    /// Packs as many of `messages` as fit in `limit` bytes, as Django's `CookieStorage._store`
    /// does: when the whole list is too large, a binary search finds how many to keep (the
    /// newest under [`Overflow::DropOldest`], the oldest under [`Overflow::Spill`]), and the
    /// kept list ends with the not-finished marker either way.
    pub(crate) fn pack(
        &self,
        messages: &[Message],
        overflow: Overflow,
        limit: usize,
        line: LineParts<'_>,
    ) -> Result<Packed> {
        // zlib dominates this format's cost: the value is copied into the line.
        let line_of = |value: String| line.write(value.len(), |out| out.push_str(&value));
        let n = messages.len();
        let parts = Parts::new(messages)?;
        let mut json = Vec::with_capacity(parts.buf.len() + NOT_FINISHED.len() + 8);
        parts.json(0..n, false, &mut json);
        let whole = self.seal(&json)?;
        if whole.len() <= limit {
            return Ok(Packed {
                line: Some(line_of(whole)),
                kept: 0..n,
            });
        }
        let mut too_large = |range: std::ops::Range<usize>| -> Result<bool> {
            json.clear();
            parts.json(range, true, &mut json);
            Ok(self.seal(&json)?.len() > limit)
        };
        let kept = match overflow {
            Overflow::DropOldest => {
                // Django's bisect_keep_right: the first start whose suffix fits.
                let (mut lo, mut hi) = (0, n);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if too_large(mid..n)? {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo..n
            }
            Overflow::Spill => {
                // Django's bisect_keep_left: the first end whose prefix is too large.
                let (mut lo, mut hi) = (0, n);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if too_large(0..mid + 1)? {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                0..lo
            }
        };
        json.clear();
        parts.json(kept.clone(), true, &mut json);
        let value = self.seal(&json)?;
        // Django would write an oversized marker-only value; never exceed the limit.
        Ok(if value.len() <= limit {
            Packed {
                line: Some(line_of(value)),
                kept,
            }
        } else {
            let empty = match overflow {
                Overflow::DropOldest => n..n,
                Overflow::Spill => 0..0,
            };
            Packed {
                line: None,
                kept: empty,
            }
        })
    }

    /// `base64url(zlib?(json)) ":" timestamp ":" signature`, compressed when that saves at
    /// least two bytes (Django's `sign_object(..., compress=True)`).
    fn seal(&self, json: &[u8]) -> Result<String> {
        let mut encoder = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(json.len() / 2 + 16),
            flate2::Compression::default(),
        );
        let compressed = encoder
            .write_all(json)
            .and_then(|()| encoder.finish())
            .map_err(|err| Error::with_source(ErrorKind::Encode, "zlib compression failed", err))?;
        let (prefix, data) = if compressed.len() + 1 < json.len() {
            (".", compressed.as_slice())
        } else {
            ("", json)
        };
        let mut out = String::with_capacity(
            prefix.len() + (data.len() * 4).div_ceil(3) + 2 + 12 + SIGNATURE_B64_LEN,
        );
        out.push_str(prefix);
        B64.encode_string(data, &mut out);
        out.push(':');
        push_base62(&mut out, (self.clock)());
        let mut mac = self.keys.signing().mac();
        mac.update(out.as_bytes());
        let signature = mac.finalize().into_bytes();
        out.push(':');
        B64.encode_string(signature, &mut out);
        Ok(out)
    }

    /// The signed part (`payload ":" timestamp`) of a value whose signature verifies under one
    /// of the keys, compared in constant time.
    fn unsign<'v>(&self, value: &'v str) -> Result<&'v str> {
        let (signed, signature) = value
            .rsplit_once(':')
            .ok_or_else(|| integrity("no signature separator"))?;
        // Django compares the base64 text: only the canonical encoding is accepted.
        let expected = flash_core::storage::decode_signature(signature)?;
        let verified = self.keys.all().iter().any(|key| {
            let mut mac = key.mac();
            mac.update(signed.as_bytes());
            mac.verify_slice(&expected).is_ok()
        });
        if verified {
            Ok(signed)
        } else {
            Err(integrity("the signature does not match any key"))
        }
    }
}

/// The addresses of a Django `messages` value, kept beside it in the cookie `<name>_to`.
///
/// Django's format has no place for an address, and a Django app on the same domain must keep
/// reading the value as it is: so the value stays Django's, and the addresses go in a second
/// cookie that Django never reads. Its value is flash's signed token (this codec's keys, the
/// cookie's name signed with it) over the first 16 bytes of the SHA-256 of the `messages`
/// value it describes, then [`stored_form::addresses_to_vec`](flash_core::storage::stored_form::addresses_to_vec)'s
/// array. A `messages` value that Django (or anything else) rewrote no longer matches: its
/// messages read unaddressed, shown by the next read, which is what Django would do.
impl DjangoCodec {
    /// The `<name>_to` value for the `messages` cookie `value` holding `messages`, `None`
    /// when none is addressed.
    pub(crate) fn seal_addresses(
        &self,
        to_name: &str,
        value: &str,
        messages: &[Message],
    ) -> Result<Option<String>> {
        let Some(addresses) = flash_core::storage::stored_form::addresses_to_vec(messages)? else {
            return Ok(None);
        };
        let mut payload = Vec::with_capacity(BINDING_LEN + addresses.len());
        payload.extend_from_slice(&binding(value));
        payload.extend_from_slice(&addresses);
        Ok(Some(self.keys.sign_token(to_name, &payload)))
    }

    /// Puts on `messages`, read from the `messages` cookie `value`, the addresses the
    /// `<name>_to` cookie's `side` value gives them, when it is validly signed and describes
    /// this very value; otherwise they stay unaddressed.
    pub(crate) fn open_addresses(
        &self,
        to_name: &str,
        value: &str,
        side: &str,
        messages: &mut [Message],
    ) {
        let Some(payload) = self.keys.verify_token(to_name, side) else {
            tracing::debug!(cookie = %to_name, "ignoring an invalid addresses cookie");
            return;
        };
        match payload.split_at_checked(BINDING_LEN) {
            Some((bound, addresses)) if bound == binding(value) => {
                if let Err(err) =
                    flash_core::storage::stored_form::apply_addresses(messages, addresses)
                {
                    tracing::debug!(cookie = %to_name, %err, "ignoring unreadable addresses");
                }
            }
            // Written for another value: the messages were rewritten since (by Django?).
            _ => {
                tracing::debug!(cookie = %to_name, "the addresses describe another messages value")
            }
        }
    }
}

/// How many bytes of the value's SHA-256 bind the addresses to it.
const BINDING_LEN: usize = 16;

fn binding(value: &str) -> [u8; BINDING_LEN] {
    let digest = Sha256::digest(value.as_bytes());
    let mut out = [0; BINDING_LEN];
    out.copy_from_slice(&digest[..BINDING_LEN]);
    out
}

impl fmt::Debug for DjangoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DjangoCodec")
            .field("keys", &self.keys.all().len())
            .finish_non_exhaustive()
    }
}

/// Django's cookie signing key: `salted_hmac`'s key for the salt
/// `"django.contrib.messages" + "signer"` and the secret `"django.http.cookies" + SECRET_KEY`.
fn signing_key(secret: &[u8]) -> Key {
    let mut hasher = Sha256::new();
    hasher.update(KEY_SALT.as_bytes());
    hasher.update(b"signer");
    hasher.update(b"django.http.cookies");
    hasher.update(secret);
    Key::from_mac_key(&hasher.finalize())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn push_base62(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 11];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = BASE62[(n % 62) as usize];
        n /= 62;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

fn integrity(context: &'static str) -> Error {
    Error::new(ErrorKind::Integrity, context)
}

fn decode_error(context: &'static str) -> Error {
    Error::new(ErrorKind::Decode, context)
}

fn inflate(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4);
    flate2::read::ZlibDecoder::new(data)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|err| {
            Error::with_source(ErrorKind::Decode, "the payload is not zlib data", err)
        })?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(decode_error("the decompressed payload is too large"));
    }
    Ok(out)
}

/// Bytes read as latin-1, as Django does: each byte is the code point of the same value.
fn latin1(data: Vec<u8>) -> String {
    match String::from_utf8(data) {
        Ok(text) if text.is_ascii() => text,
        Ok(text) => text.chars().flat_map(utf8_as_latin1).collect(),
        Err(err) => err.into_bytes().into_iter().map(char::from).collect(),
    }
}

fn utf8_as_latin1(c: char) -> impl Iterator<Item = char> {
    let mut buf = [0u8; 4];
    let len = c.encode_utf8(&mut buf).len();
    buf.into_iter().take(len).map(char::from)
}

/// The messages of a decoded JSON list, following Django's `MessageDecoder` and `_get`.
fn from_items(mut items: Vec<Value>) -> Result<Decoded> {
    let complete = !matches!(items.last(), Some(Value::String(s)) if s == NOT_FINISHED);
    if !complete {
        items.pop();
    }
    let messages = items
        .into_iter()
        .map(message_from)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| decode_error("the payload holds something other than messages"))?;
    Ok(Decoded { messages, complete })
}

/// `["__json_message", safe, level, message(, extra_tags)]` as Django's `Message(*obj[2:])`.
fn message_from(item: Value) -> Option<Message> {
    let Value::Array(fields) = item else {
        return None;
    };
    if !(4..=5).contains(&fields.len()) {
        return None;
    }
    let mut fields = fields.into_iter();
    let (key, safe, level, text) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let extra = fields.next().unwrap_or(Value::Null);
    if key.as_str() != Some(MESSAGE_KEY) {
        return None;
    }
    let Value::String(text) = text else {
        return None;
    };
    let extra_tags = match extra {
        Value::Null => None,
        Value::String(s) => Some(s),
        _ => return None,
    };
    Some(Message {
        level: Level::new(python_int(&level)?),
        text,
        extra_tags,
        trusted_html: truthy(&safe),
        data: None,
        address: None,
    })
}

/// Python's `int(level)` for the JSON values it accepts, within `i32`.
fn python_int(value: &Value) -> Option<i32> {
    match value {
        Value::Bool(b) => Some(i32::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i32::try_from(i).ok(),
            None => {
                let f = n.as_f64()?.trunc();
                (f.is_finite() && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX))
                    .then_some(f as i32)
            }
        },
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Python's truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Every message serialised once, in Django's form, one after the other.
struct Parts {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Parts {
    fn new(messages: &[Message]) -> Result<Self> {
        let estimate = messages.iter().fold(0, |acc, m| {
            acc + m.text.len() + m.extra_tags.as_ref().map_or(0, String::len) + 32
        });
        let mut parts = Parts {
            buf: Vec::with_capacity(estimate),
            ends: Vec::with_capacity(messages.len()),
        };
        for message in messages {
            if message.data.is_some() {
                // Django's `Message` has no place for it: dropping it would be silent loss.
                return Err(Error::new(
                    ErrorKind::Encode,
                    "a message carries data, which Django's cookie format cannot hold: use flash's own format (no `format=django`) or add the message without data",
                ));
            }
            let mut serializer =
                serde_json::Serializer::with_formatter(&mut parts.buf, AsciiFormatter);
            DjangoMessage(message)
                .serialize(&mut serializer)
                .map_err(|err| {
                    Error::with_source(ErrorKind::Encode, "cannot serialise a message", err)
                })?;
            parts.ends.push(parts.buf.len());
        }
        Ok(parts)
    }

    fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// `[parts in range(, "__messagesnotfinished__")]` appended to `out`.
    fn json(&self, range: std::ops::Range<usize>, not_finished: bool, out: &mut Vec<u8>) {
        out.push(b'[');
        let mut first = true;
        for i in range {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(self.part(i));
        }
        if not_finished {
            if !first {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(NOT_FINISHED.as_bytes());
            out.push(b'"');
        }
        out.push(b']');
    }
}

/// A message in Django's JSON form.
struct DjangoMessage<'a>(&'a Message);

impl Serialize for DjangoMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut seq = serializer.serialize_seq(Some(if m.extra_tags.is_some() { 5 } else { 4 }))?;
        seq.serialize_element(MESSAGE_KEY)?;
        seq.serialize_element(&u8::from(m.trusted_html))?;
        seq.serialize_element(&m.level.value())?;
        seq.serialize_element(&m.text)?;
        if let Some(extra) = &m.extra_tags {
            seq.serialize_element(extra)?;
        }
        seq.end()
    }
}

/// Compact JSON that is ASCII only, as Python's `json.dumps` (`ensure_ascii=True`): every
/// character outside `' '..='~'` that serde_json does not escape itself becomes `\uXXXX`
/// (lowercase, UTF-16 surrogate pairs beyond the BMP).
struct AsciiFormatter;

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            writer.write_all(&bytes[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&bytes[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_refused_with_a_clear_error() {
        let codec = DjangoCodec::new("a secret of some length for the test");
        let with_data = [
            Message::new(Level::INFO, "plain"),
            Message::new(Level::INFO, "undo").with_data(serde_json::json!({"id": 7})),
        ];
        let err = codec.encode(&with_data, false).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Encode);
        assert!(err.to_string().contains("Django"), "{err}");
        assert!(err.to_string().contains("data"), "{err}");
        assert!(codec.encode(&with_data[..1], false).is_ok());
    }

    /// Through the request handle: the message with data is refused at add, with the typed
    /// reason, and the response's cookie carries the others (nothing dropped in silence).
    #[tokio::test]
    async fn data_is_refused_at_add_and_the_others_are_stored() {
        use std::sync::Arc;

        use flash_core::http::HeaderMap;
        use flash_core::http::header::{COOKIE, SET_COOKIE};
        use flash_core::{
            Added, Messages, MessagesConfig, Refused,
            storage::{Incoming, Storage},
        };

        let storage = Arc::new(crate::CookieStorage::django(
            "a secret of some length for the test",
            [] as [&str; 0],
        ));
        assert!(!storage.carries_data());
        let messages = Messages::new(
            storage.clone(),
            Incoming::default(),
            Arc::new(MessagesConfig::default()),
        );
        let undo = Message::new(Level::SUCCESS, "Deleted.").with_data(serde_json::json!({"id": 7}));
        assert_eq!(
            messages.try_add(Message::new(Level::INFO, "before").with_extra_tags("t")),
            Ok(Added::Queued)
        );
        let refused = messages.try_add(undo.clone()).expect_err("refused at add");
        assert_eq!(refused, Refused::DataNotSupported);
        assert!(refused.to_string().contains("format=django"), "{refused}");
        assert_eq!(flash_core::Error::from(refused).kind(), ErrorKind::Encode);
        assert!(!messages.add(undo), "add says so too");
        assert!(messages.success("after"));
        // Shown in this request only, never stored: its data is no trouble.
        assert_eq!(
            messages
                .try_add_now(Message::new(Level::INFO, "now").with_data(serde_json::json!([1]))),
            Ok(Added::Queued)
        );

        let mut response = HeaderMap::new();
        let report = messages.save(&mut response).await.expect("saved");
        assert_eq!(report.refused, 2);
        assert!(report.dropped.is_empty());
        let line = response[SET_COOKIE].to_str().expect("ascii");
        let pair = line.split(';').next().expect("a pair");

        let mut request = HeaderMap::new();
        request.insert(COOKIE, pair.parse().expect("a header"));
        let loaded = storage
            .immediate()
            .expect("immediate")
            .load_now(&Incoming::from_headers(&request))
            .expect("loaded");
        let texts: Vec<_> = loaded.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["before", "after"]);
        assert_eq!(loaded.messages[0].extra_tags.as_deref(), Some("t"));
    }

    #[test]
    fn base62_matches_django() {
        for (n, s) in [(0, "0"), (61, "z"), (62, "10"), (1_767_225_600, "1vb66i")] {
            let mut out = String::new();
            push_base62(&mut out, n);
            assert_eq!(out, s);
        }
        let mut out = String::new();
        push_base62(&mut out, u64::MAX);
        assert_eq!(out, "LygHa16AHYF");
    }

    #[test]
    fn json_is_ascii_like_python() {
        let m = Message::new(Level::INFO, "é\u{7f}\n\u{1}\"\\/🎉").with_extra_tags("x");
        let parts = Parts::new(std::slice::from_ref(&m)).expect("serialise");
        assert_eq!(
            std::str::from_utf8(&parts.buf).expect("ascii"),
            r#"["__json_message",0,20,"\u00e9\u007f\n\u0001\"\\/\ud83c\udf89","x"]"#
        );
    }

    #[test]
    fn latin1_reads_bytes_as_code_points() {
        assert_eq!(latin1(b"abc".to_vec()), "abc");
        assert_eq!(latin1("é".as_bytes().to_vec()), "Ã©");
        assert_eq!(latin1(vec![0xff, b'a']), "ÿa");
    }

    #[test]
    fn python_int_and_truthiness() {
        assert_eq!(python_int(&Value::from("30")), Some(30));
        assert_eq!(python_int(&Value::from(" +7 ")), Some(7));
        assert_eq!(python_int(&Value::from(30.9)), Some(30));
        assert_eq!(python_int(&Value::from(true)), Some(1));
        assert_eq!(python_int(&Value::from(1e300)), None);
        assert_eq!(python_int(&Value::Null), None);
        assert!(truthy(&Value::from(2)));
        assert!(!truthy(&Value::from(0.0)));
        assert!(!truthy(&Value::from("")));
    }
}
