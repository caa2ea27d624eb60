//! The flash cookie decoder on arbitrary input: never a panic, and whatever decodes
//! re-encodes to a value that decodes the same.
//!
//! The first byte picks the mode: even, the rest is the cookie value as is (the envelope:
//! separators, base64, signature); odd, the rest is a JSON payload that is signed first, so
//! the JSON reader behind the signature is reached.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_cookie::{Decoded, FlashCodec};
use flash_core::{Key, Keys};
use libfuzzer_sys::fuzz_target;

const NAME: &str = "messages";

fn codec() -> &'static FlashCodec {
    static CODEC: OnceLock<FlashCodec> = OnceLock::new();
    CODEC.get_or_init(|| FlashCodec::new(Keys::new(Key::from_bytes(&[7; 32]))))
}

fn fields(decoded: &Decoded) -> Vec<(i32, &str, Option<&str>, bool)> {
    decoded
        .messages
        .iter()
        .map(|m| {
            (
                m.level.value(),
                m.text.as_str(),
                m.extra_tags.as_deref(),
                m.trusted_html,
            )
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let value = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut value = URL_SAFE_NO_PAD.encode(rest);
        value.push('.');
        URL_SAFE_NO_PAD.encode_string(codec().keys().sign(NAME, rest), &mut value);
        value
    };
    if let Ok(decoded) = codec().decode(NAME, &value) {
        let again = codec()
            .encode(NAME, &decoded.messages, !decoded.complete)
            .expect("decoded messages re-encode");
        let back = codec()
            .decode(NAME, &again)
            .expect("a value we wrote decodes");
        assert_eq!(fields(&back), fields(&decoded));
        assert_eq!(back.complete, decoded.complete);
    }
});
