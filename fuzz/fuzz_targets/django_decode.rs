//! The Django cookie decoder on arbitrary input: never a panic, and whatever decodes
//! re-encodes to a value that decodes the same.
//!
//! The first byte picks the mode: 0 mod 3, the rest is the cookie value as is (separators,
//! base64, signature, timestamp); 1, the rest is a payload signed as Django signs it, so the
//! latin-1 and JSON readers behind the signature are reached; 2, the same zlib-compressed with
//! the `.` prefix, for the decompressor.
#![no_main]

use std::io::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_cookie::{Decoded, DjangoCodec};
use flash_core::Key;
use hmac::Mac as _;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest as _, Sha256};

const SECRET: &str = "fuzzing-secret-key";

fn codec() -> &'static DjangoCodec {
    static CODEC: OnceLock<DjangoCodec> = OnceLock::new();
    CODEC.get_or_init(|| DjangoCodec::new(SECRET).with_clock(|| 1_767_225_600))
}

/// Django's signature, computed independently of the codec.
fn key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let digest = Sha256::new()
            .chain_update(b"django.contrib.messagessignerdjango.http.cookies")
            .chain_update(SECRET)
            .finalize();
        Key::from_mac_key(&digest)
    })
}

fn sign(payload: &str) -> String {
    let mut value = format!("{payload}:1vb66i");
    let mut mac = key().mac();
    mac.update(value.as_bytes());
    value.push(':');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut value);
    value
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
    let value = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => sign(&URL_SAFE_NO_PAD.encode(rest)),
        _ => {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(rest).expect("compress to memory");
            let compressed = encoder.finish().expect("compress to memory");
            sign(&format!(".{}", URL_SAFE_NO_PAD.encode(compressed)))
        }
    };
    if let Ok(decoded) = codec().decode(&value) {
        let again = codec()
            .encode(&decoded.messages, !decoded.complete)
            .expect("decoded messages re-encode");
        let back = codec().decode(&again).expect("a value we wrote decodes");
        assert_eq!(fields(&back), fields(&decoded));
        assert_eq!(back.complete, decoded.complete);
    }
});
