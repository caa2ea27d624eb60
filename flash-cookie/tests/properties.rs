//! Properties of both codecs: any messages round-trip, any input decodes without a panic, and
//! the storage never writes more than its limit.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_cookie::{Codec, CookieStorage, Decoded, FlashCodec, MAX_SET_COOKIE_LEN};
use flash_core::http::HeaderMap;
use flash_core::http::header::SET_COOKIE;
use flash_core::{
    Key, Keys, Level, Message,
    storage::{Incoming, Overflow, Storage, Update},
};
use proptest::prelude::*;

fn keys() -> Keys {
    Keys::new(Key::from_bytes(&[9; 32]))
}

#[allow(unused_mut)]
fn codecs() -> Vec<Codec> {
    let mut codecs = vec![Codec::from(FlashCodec::new(keys()))];
    #[cfg(feature = "django")]
    codecs.push(Codec::from(
        flash_cookie::DjangoCodec::new("property secret").with_fallback("older"),
    ));
    codecs
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<i32>(),
        ".*",
        proptest::option::of(".*"),
        any::<bool>(),
    )
        .prop_map(|(level, text, extra_tags, trusted_html)| Message {
            level: Level::new(level),
            text,
            extra_tags,
            trusted_html,
            data: None,
            address: None,
        })
}

type Fields = (i32, String, Option<String>, bool);

fn fields(messages: &[Message]) -> Vec<Fields> {
    messages
        .iter()
        .map(|m| {
            (
                m.level.value(),
                m.text.clone(),
                m.extra_tags.clone(),
                m.trusted_html,
            )
        })
        .collect()
}

fn check_decoded(decoded: &Decoded) {
    // Whatever decodes re-encodes to a value that decodes the same.
    for codec in codecs() {
        if let Ok(value) = codec.encode("messages", &decoded.messages, !decoded.complete) {
            let back = codec.decode("messages", &value).unwrap();
            assert_eq!(fields(&back.messages), fields(&decoded.messages));
        }
    }
}

proptest! {
    #[test]
    fn any_messages_round_trip(
        messages in proptest::collection::vec(message(), 0..12),
        not_finished in any::<bool>(),
    ) {
        for codec in codecs() {
            let value = codec.encode("messages", &messages, not_finished).unwrap();
            prop_assert!(value.is_ascii());
            prop_assert!(!value.contains([';', ',', ' ', '"', '\\']), "{}", value);
            let decoded = codec.decode("messages", &value).unwrap();
            prop_assert_eq!(fields(&decoded.messages), fields(&messages));
            prop_assert_eq!(decoded.complete, !not_finished);
        }
    }

    #[test]
    fn any_string_decodes_without_panic(value in ".*") {
        for codec in codecs() {
            if let Ok(decoded) = codec.decode("messages", &value) {
                check_decoded(&decoded);
            }
        }
    }

    #[test]
    fn any_value_shaped_string_decodes_without_panic(
        value in "[A-Za-z0-9_.:=-]{0,120}",
    ) {
        for codec in codecs() {
            let _ = codec.decode("messages", &value);
        }
    }

    /// Arbitrary bytes behind a valid flash signature reach the JSON reader.
    #[test]
    fn any_signed_flash_payload_decodes_without_panic(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut value = URL_SAFE_NO_PAD.encode(&payload);
        value.push('.');
        URL_SAFE_NO_PAD.encode_string(keys().sign("messages", &payload), &mut value);
        if let Ok(decoded) = FlashCodec::new(keys()).decode("messages", &value) {
            check_decoded(&decoded);
        }
    }

    /// Arbitrary JSON-ish text behind a valid flash signature.
    #[test]
    fn any_signed_flash_json_decodes_without_panic(json in r#"\[(\[-?[0-9]{1,12},"[a-z]*"(,(null|"x"|1|0|\[\]))*\]|0|"x"|\[\]|,)*\]?"#) {
        let payload = json.as_bytes();
        let mut value = URL_SAFE_NO_PAD.encode(payload);
        value.push('.');
        URL_SAFE_NO_PAD.encode_string(keys().sign("messages", payload), &mut value);
        if let Ok(decoded) = FlashCodec::new(keys()).decode("messages", &value) {
            check_decoded(&decoded);
        }
    }

    /// Whatever the messages and the limit, the storage writes at most the limit (and never a
    /// `Set-Cookie` line over 4096 bytes), and what it keeps plus what it returns is the list.
    #[test]
    fn the_storage_respects_its_limit(
        messages in proptest::collection::vec(message(), 1..30),
        limit in 0usize..6000,
        spill in any::<bool>(),
    ) {
        for codec in codecs() {
            let storage = CookieStorage::from_codec(codec.clone()).with_max_size(limit);
            let overflow = if spill { Overflow::Spill } else { Overflow::DropOldest };
            let mut response = HeaderMap::new();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let rest = runtime.block_on(storage.save(
                &Incoming::default(),
                Update::new(None)
.with_added(messages.clone())
.with_overflow(overflow),
                &mut response,
            )).unwrap();
            let kept = match response.get(SET_COOKIE) {
                None => Vec::new(),
                Some(line) => {
                    let line = line.to_str().unwrap();
                    prop_assert!(line.len() <= MAX_SET_COOKIE_LEN);
                    let value = line.split(';').next().unwrap().split_once('=').unwrap().1;
                    prop_assert!(value.len() <= limit.min(storage.max_size()));
                    codec.decode("messages", value).unwrap().messages
                }
            };
            let all: Vec<Message> = if spill {
                kept.iter().chain(&rest).cloned().collect()
            } else {
                rest.iter().chain(&kept).cloned().collect()
            };
            prop_assert_eq!(fields(&all), fields(&messages));
        }
    }
}

#[cfg(feature = "django")]
mod django {
    use flash_cookie::DjangoCodec;
    use flash_core::Key;
    use hmac::Mac as _;
    use sha2::{Digest as _, Sha256};

    use super::*;

    fn sign(payload: &str) -> String {
        let key = Key::from_mac_key(
            &Sha256::new()
                .chain_update(b"django.contrib.messagessignerdjango.http.cookies")
                .chain_update("property secret")
                .finalize(),
        );
        let mut value = format!("{payload}:1vb66i");
        let mut mac = key.mac();
        mac.update(value.as_bytes());
        value.push(':');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut value);
        value
    }

    proptest! {
        /// Arbitrary bytes behind a valid Django signature reach the latin-1 and JSON readers.
        #[test]
        fn any_signed_django_payload_decodes_without_panic(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let value = sign(&URL_SAFE_NO_PAD.encode(&payload));
            if let Ok(decoded) = DjangoCodec::new("property secret").decode(&value) {
                check_decoded(&decoded);
            }
        }

        /// Arbitrary JSON-ish text in Django's message shape, signed.
        #[test]
        fn any_signed_django_json_decodes_without_panic(
            json in r#"\[(\["__json_message",(0|1|true|null|"s"|2\.5),(-?[0-9]{1,12}|"[ 0-9+-]{0,5}"|1e9|null|true),("[a-z\\]*"|7|null)(,("t"|null|3))?(,1)?\]|"__messagesnotfinished__"|,|\[\])*\]?"#,
        ) {
            let value = sign(&URL_SAFE_NO_PAD.encode(json.as_bytes()));
            if let Ok(decoded) = DjangoCodec::new("property secret").decode(&value) {
                check_decoded(&decoded);
            }
        }
    }
}
