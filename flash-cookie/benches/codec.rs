//! The cookie codecs against the raw floor (serde_json + base64 + HMAC-SHA256 with a
//! pre-keyed MAC), in one run so the ratio holds on a noisy machine.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flash_cookie::FlashCodec;
use flash_core::storage::stored_form::{AsStoredList, FromStoredList};
use flash_core::{Key, Keys, Level, Message};
use hmac::Mac as _;

fn messages(n: usize) -> Vec<Message> {
    let levels = [Level::SUCCESS, Level::INFO, Level::WARNING, Level::ERROR];
    (0..n)
        .map(|i| {
            Message::new(
                levels[i % levels.len()],
                format!(
                    "Message number {i:02}: your profile was updated, and 3 notifications wait."
                ),
            )
        })
        .collect()
}

fn floor_encode(key: &Key, messages: &[Message]) -> String {
    let json = serde_json::to_vec(&AsStoredList(messages)).unwrap();
    let mut mac = key.mac();
    mac.update(&json);
    let signature = mac.finalize().into_bytes();
    let mut out = URL_SAFE_NO_PAD.encode(&json);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    out
}

fn floor_decode(key: &Key, value: &str) -> Vec<Message> {
    let (payload, signature) = value.split_once('.').unwrap();
    let json = URL_SAFE_NO_PAD.decode(payload).unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let mut mac = key.mac();
    mac.update(&json);
    mac.verify_slice(&signature).unwrap();
    serde_json::from_slice::<FromStoredList>(&json).unwrap().0
}

fn codec(c: &mut Criterion) {
    let key = Key::from_bytes(&[5; 32]);
    let codec = FlashCodec::new(Keys::new(key.clone()));
    #[cfg(feature = "django")]
    let django = flash_cookie::DjangoCodec::new("bench secret");
    let mut group = c.benchmark_group("cookie");
    for n in [3, 20] {
        let list = messages(n);
        let json_len = serde_json::to_vec(&AsStoredList(&list)).unwrap().len();
        let id = format!("{n} messages ({json_len} B JSON)");
        group.bench_with_input(BenchmarkId::new("floor encode", &id), &list, |b, list| {
            b.iter(|| floor_encode(&key, black_box(list)));
        });
        group.bench_with_input(BenchmarkId::new("flash encode", &id), &list, |b, list| {
            b.iter(|| codec.encode("messages", black_box(list), false).unwrap());
        });
        let floor_value = floor_encode(&key, &list);
        group.bench_with_input(
            BenchmarkId::new("floor decode", &id),
            &floor_value,
            |b, value| b.iter(|| floor_decode(&key, black_box(value))),
        );
        let value = codec.encode("messages", &list, false).unwrap();
        group.bench_with_input(BenchmarkId::new("flash decode", &id), &value, |b, value| {
            b.iter(|| codec.decode("messages", black_box(value)).unwrap());
        });
        #[cfg(feature = "django")]
        {
            group.bench_with_input(BenchmarkId::new("django encode", &id), &list, |b, list| {
                b.iter(|| django.encode(black_box(list), false).unwrap());
            });
            let value = django.encode(&list, false).unwrap();
            group.bench_with_input(
                BenchmarkId::new("django decode", &id),
                &value,
                |b, value| {
                    b.iter(|| django.decode(black_box(value)).unwrap());
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
