//! Group 1, the cookie codec: encode+sign, verify+decode and the round trip of 3 and 20
//! messages, for flash's own format and Django's, beside the floor (the same bytes through the
//! bare crates) and the peer (actix-web-flash-messages' cookie store), in one run.
//!
//! Rows: `<impl>/<op>` with the message count as the parameter:
//! - `floor`, `flash`, `django-floor`, `django`: the value codecs alone (`Codec::encode` /
//!   `Codec::decode`);
//! - `flash-storage`, `django-storage`: `CookieStorage` saving into response headers and
//!   loading from the request, the path a request takes: its immediate side
//!   (`Storage::immediate`, `save_now` / `load_now`), which the request handle and flash-axum
//!   use for a storage that never waits, with no boxed future;
//! - `peer`: `CookieMessageStore::store` into a response head and `load` from a request, its
//!   public path (which also writes and parses the cookie header).
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

mod common;

use std::hint::black_box;
use std::sync::Arc;

use actix_web::dev::ResponseHead;
use actix_web::http::StatusCode;
use actix_web_flash_messages::storage::FlashMessageStore;
use common::{
    DJANGO_SECRET, KEY, cookie_pair, peer_cookie, peer_messages, peer_store, request_headers,
    test_request, update,
};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use flash_benches::{fixtures, floor};
use flash_cookie::{Codec, CookieStorage, DjangoCodec, FlashCodec};
use flash_core::http::HeaderMap;
use flash_core::http::header::SET_COOKIE;
use flash_core::{
    Key, Keys, Message,
    storage::{Incoming, Storage},
};

const NAME: &str = "messages";
const SIZES: [usize; 2] = [3, 20];

fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");

    let floor = floor::Floor::new(&KEY, NAME);
    let flash = Codec::from(FlashCodec::new(Keys::new(Key::from_mac_key(&KEY))));
    let django_floor = floor::DjangoFloor::new(DJANGO_SECRET);
    let django = Codec::from(DjangoCodec::new(DJANGO_SECRET));
    let flash_storage: Arc<dyn Storage> = Arc::new(CookieStorage::from_codec(flash.clone()));
    let django_storage: Arc<dyn Storage> = Arc::new(CookieStorage::from_codec(django.clone()));
    let peer = peer_store();

    for n in SIZES {
        let pairs = fixtures::floor_messages(n);
        let messages: Vec<Message> = fixtures::messages(n);

        // The floor and flash make the same bytes: checked, so both sides do the same work.
        let floor_value = floor.encode(&pairs);
        let flash_value = flash.encode(NAME, &messages, false).expect("encode");
        assert_eq!(
            floor_value, flash_value,
            "flash's format is the floor's bytes"
        );
        assert_eq!(
            flash.decode(NAME, &floor_value).expect("decode").messages,
            messages
        );
        let django_floor_value = django_floor.encode(&pairs);
        let django_value = django.encode(NAME, &messages, false).expect("encode");
        assert_eq!(
            django
                .decode(NAME, &django_floor_value)
                .expect("decode")
                .messages,
            messages
        );
        assert_eq!(django_floor.decode(&django_value), Some(pairs.clone()));
        println!(
            "codec/{n}: flash value {} B, django value {} B",
            flash_value.len(),
            django_value.len()
        );

        // --- the bare floor
        group.bench_with_input(BenchmarkId::new("floor/encode", n), &pairs, |b, p| {
            b.iter(|| floor.encode(black_box(p)))
        });
        group.bench_with_input(BenchmarkId::new("floor/decode", n), &floor_value, |b, v| {
            b.iter(|| floor.decode(black_box(v)))
        });
        group.bench_with_input(BenchmarkId::new("floor/roundtrip", n), &pairs, |b, p| {
            b.iter(|| floor.decode(&floor.encode(black_box(p))))
        });

        // --- flash's codec
        group.bench_with_input(BenchmarkId::new("flash/encode", n), &messages, |b, m| {
            b.iter(|| flash.encode(NAME, black_box(m), false))
        });
        group.bench_with_input(BenchmarkId::new("flash/decode", n), &flash_value, |b, v| {
            b.iter(|| flash.decode(NAME, black_box(v)))
        });
        group.bench_with_input(BenchmarkId::new("flash/roundtrip", n), &messages, |b, m| {
            b.iter(|| {
                let value = flash.encode(NAME, black_box(m), false).expect("encode");
                flash.decode(NAME, &value)
            })
        });

        // --- Django's format: floor and flash
        group.bench_with_input(
            BenchmarkId::new("django-floor/encode", n),
            &pairs,
            |b, p| b.iter(|| django_floor.encode(black_box(p))),
        );
        group.bench_with_input(
            BenchmarkId::new("django-floor/decode", n),
            &django_floor_value,
            |b, v| b.iter(|| django_floor.decode(black_box(v))),
        );
        group.bench_with_input(
            BenchmarkId::new("django-floor/roundtrip", n),
            &pairs,
            |b, p| b.iter(|| django_floor.decode(&django_floor.encode(black_box(p)))),
        );
        group.bench_with_input(BenchmarkId::new("django/encode", n), &messages, |b, m| {
            b.iter(|| django.encode(NAME, black_box(m), false))
        });
        group.bench_with_input(
            BenchmarkId::new("django/decode", n),
            &django_value,
            |b, v| b.iter(|| django.decode(NAME, black_box(v))),
        );
        group.bench_with_input(
            BenchmarkId::new("django/roundtrip", n),
            &messages,
            |b, m| {
                b.iter(|| {
                    let value = django.encode(NAME, black_box(m), false).expect("encode");
                    django.decode(NAME, &value)
                })
            },
        );

        // --- the storage path: save into response headers, load from the request
        for (label, storage) in [
            ("flash-storage", &flash_storage),
            ("django-storage", &django_storage),
        ] {
            let mut response = HeaderMap::new();
            ready(
                storage
                    .as_ref()
                    .save(&Incoming::default(), update(&messages), &mut response),
            )
            .expect("save");
            let set_cookie = response
                .get(SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .expect("a Set-Cookie header");
            let incoming_headers = request_headers(&cookie_pair(set_cookie));
            let loaded = ready(
                storage
                    .as_ref()
                    .load(&Incoming::from_headers(&incoming_headers)),
            )
            .expect("load");
            assert_eq!(loaded.messages, messages);

            // The timed path is the one the request handle and flash-axum take: the storage's
            // immediate side, no boxed future (the setup above went through `Storage`).
            let now = storage.immediate().expect("the cookie storage never waits");
            group.bench_with_input(
                BenchmarkId::new(format!("{label}/encode"), n),
                &messages,
                |b, m| {
                    b.iter_batched_ref(
                        || (update(m), response_headers()),
                        |(update, response)| {
                            let update = std::mem::replace(update, empty_update());
                            now.save_now(&Incoming::default(), update, response)
                        },
                        BatchSize::SmallInput,
                    )
                },
            );
            group.bench_function(BenchmarkId::new(format!("{label}/decode"), n), |b| {
                b.iter_batched_ref(
                    || Incoming::from_headers(&incoming_headers),
                    |incoming| now.load_now(incoming),
                    BatchSize::SmallInput,
                )
            });
            group.bench_with_input(
                BenchmarkId::new(format!("{label}/roundtrip"), n),
                &messages,
                |b, m| {
                    b.iter_batched_ref(
                        || {
                            (
                                update(m),
                                response_headers(),
                                Incoming::from_headers(&incoming_headers),
                            )
                        },
                        |(update, response, incoming)| {
                            let update = std::mem::replace(update, empty_update());
                            let saved = now.save_now(&Incoming::default(), update, response);
                            (saved, now.load_now(incoming))
                        },
                        BatchSize::SmallInput,
                    )
                },
            );
        }

        // --- the Set-Cookie line alone: built as a `cookie::Cookie` with flash's default
        // attributes (`to_string` and a header value), and written directly into one buffer of
        // the right size (what `CookieOptions` does).
        let options = flash_core::CookieOptions::default();
        let suffix = options.attributes().to_owned();
        assert_eq!(
            set_cookie_direct(NAME, &flash_value, &suffix),
            cookie_crate_line(NAME, flash_value.clone()).to_string(),
            "the direct line is the same bytes"
        );
        group.bench_with_input(
            BenchmarkId::new("set-cookie/cookie-crate", n),
            &flash_value,
            |b, v| {
                b.iter_batched_ref(
                    || (v.clone(), HeaderMap::new()),
                    |(value, response)| {
                        let value = std::mem::take(value);
                        let line = cookie_crate_line(NAME, value).to_string();
                        if let Ok(value) = http::HeaderValue::try_from(line) {
                            response.append(http::header::SET_COOKIE, value);
                        }
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        group.bench_with_input(
            BenchmarkId::new("set-cookie/direct", n),
            &flash_value,
            |b, v| {
                b.iter_batched_ref(
                    HeaderMap::new,
                    |response| {
                        let line = set_cookie_direct(NAME, black_box(v), &suffix);
                        if let Ok(value) = flash_core::http::HeaderValue::try_from(line) {
                            response.append(SET_COOKIE, value);
                        }
                    },
                    BatchSize::SmallInput,
                )
            },
        );

        // --- the peer: actix-web-flash-messages' cookie store, public store/load path
        let peer_msgs = peer_messages(n);
        let peer_cookie = peer_cookie(&peer, &peer_msgs);
        let back = peer
            .load(&test_request(Some(&peer_cookie)))
            .expect("peer load");
        assert_eq!(back.len(), n);
        println!(
            "codec/{n}: peer value {} B",
            peer_cookie.len() - "_flash=".len()
        );

        group.bench_with_input(BenchmarkId::new("peer/encode", n), &peer_msgs, |b, m| {
            b.iter_batched_ref(
                || (test_request(None), peer_response()),
                |(request, head)| peer.store(black_box(m), request.clone(), head),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("peer/decode", n), |b| {
            b.iter_batched_ref(
                || test_request(Some(&peer_cookie)),
                |request| peer.load(request),
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("peer/roundtrip", n), &peer_msgs, |b, m| {
            b.iter_batched_ref(
                || {
                    (
                        test_request(None),
                        peer_response(),
                        test_request(Some(&peer_cookie)),
                    )
                },
                |(request, head, incoming)| {
                    let stored = peer.store(black_box(m), request.clone(), head);
                    (stored, peer.load(incoming))
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    paired_round_trips(&floor, &flash, &flash_storage, &peer);
}

/// The round trip of 3 and 20 messages, the floor, flash's codec, its storage path and the
/// peer interleaved ([`flash_benches::paired`]): the ratios the targets are judged on.
fn paired_round_trips(
    floor: &floor::Floor,
    flash: &Codec,
    storage: &Arc<dyn Storage>,
    peer: &actix_web_flash_messages::storage::CookieMessageStore,
) {
    if !flash_benches::selected("codec/paired") || std::env::args().any(|a| a == "--list") {
        return;
    }
    let now = storage.immediate().expect("the cookie storage never waits");
    let mut facts = serde_json::Map::new();
    for n in SIZES {
        let pairs = fixtures::floor_messages(n);
        let messages = fixtures::messages(n);
        let peer_msgs = peer_messages(n);
        let value = flash.encode(NAME, &messages, false).expect("encode");
        let incoming_headers = request_headers(&format!("{NAME}={value}"));
        let peer_cookie = peer_cookie(peer, &peer_msgs);
        let timed = |run: &mut dyn FnMut()| {
            let start = std::time::Instant::now();
            run();
            start.elapsed()
        };
        let mut cases: Vec<flash_benches::paired::Case<'_>> = vec![
            Box::new(|batch| {
                timed(&mut || {
                    for _ in 0..batch {
                        let value = floor.encode(black_box(&pairs));
                        black_box(floor.decode(&value));
                    }
                })
            }),
            Box::new(|batch| {
                timed(&mut || {
                    for _ in 0..batch {
                        let value = flash.encode(NAME, black_box(&messages), false);
                        black_box(value.map(|v| flash.decode(NAME, &v)).ok());
                    }
                })
            }),
            Box::new(|batch| {
                let mut inputs: Vec<_> = (0..batch)
                    .map(|_| {
                        (
                            update(&messages),
                            response_headers(),
                            Incoming::from_headers(&incoming_headers),
                        )
                    })
                    .collect();
                timed(&mut || {
                    for (update, response, incoming) in inputs.iter_mut() {
                        let update = std::mem::replace(update, empty_update());
                        let saved = now.save_now(&Incoming::default(), update, response);
                        let _ = black_box((saved, now.load_now(incoming)));
                    }
                })
            }),
            Box::new(|batch| {
                let mut inputs: Vec<_> = (0..batch)
                    .map(|_| {
                        (
                            test_request(None),
                            peer_response(),
                            test_request(Some(&peer_cookie)),
                        )
                    })
                    .collect();
                timed(&mut || {
                    for (request, head, incoming) in inputs.iter_mut() {
                        let stored = peer.store(black_box(&peer_msgs), request.clone(), head);
                        let _ = black_box((stored, peer.load(incoming)));
                    }
                })
            }),
        ];
        let outcome =
            flash_benches::paired::run(&mut cases, flash_benches::paired::scaled_rounds(150), 200);
        let [floor_ns, codec_ns, storage_ns, peer_ns] = outcome.per_call_ns[..] else {
            unreachable!("four cases")
        };
        let r = &outcome.ratio_to_first;
        println!(
            "codec/paired/roundtrip/{n}: floor {floor_ns:.0} ns, codec {codec_ns:.0} ns ({:.2}x), \
             storage {storage_ns:.0} ns ({:.2}x), peer {peer_ns:.0} ns ({:.2}x the storage)",
            r[1],
            r[2],
            r[3] / r[2]
        );
        facts.insert(
            format!("roundtrip/{n}"),
            serde_json::json!({
                "rounds": outcome.rounds,
                "floor_ns": floor_ns,
                "codec_ns": codec_ns,
                "storage_ns": storage_ns,
                "peer_ns": peer_ns,
                "codec_over_floor": r[1],
                "storage_over_floor": r[2],
                "peer_over_storage": r[3] / r[2],
                "peer_over_codec": r[3] / r[1],
            }),
        );
    }
    if let Err(err) = flash_benches::write_facts("codec", &serde_json::Value::Object(facts)) {
        println!("codec: could not write the facts file: {err}");
    }
}

/// The output of a future that is ready at its first poll (the cookie storage never waits):
/// no runtime in the measurement, as an adapter polls it inside its own task.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the cookie storage never waits"),
    }
}

/// `name=value` and the attributes, precomputed once, in one buffer of the right size.
fn set_cookie_direct(name: &str, value: &str, suffix: &str) -> String {
    let mut line = String::with_capacity(name.len() + 1 + value.len() + suffix.len());
    line.push_str(name);
    line.push('=');
    line.push_str(value);
    line.push_str(suffix);
    line
}

/// The headers of a response as a handler returns it, already carrying `Content-Type` (so
/// the map is allocated, as in a real response).
fn response_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        flash_core::http::header::CONTENT_TYPE,
        flash_core::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers
}

/// The peer's response head, likewise.
fn peer_response() -> ResponseHead {
    let mut head = ResponseHead::new(StatusCode::OK);
    head.headers_mut().insert(
        actix_web::http::header::CONTENT_TYPE,
        actix_web::http::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    head
}

/// The cookie with flash's default attributes (`HttpOnly; SameSite=Lax; Path=/`), built by
/// the `cookie` crate.
fn cookie_crate_line(name: &'static str, value: String) -> cookie::Cookie<'static> {
    cookie::Cookie::build((name, value))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .build()
}

fn empty_update() -> flash_core::storage::Update {
    update(&[])
}

criterion_group! {
    name = benches;
    config = flash_benches::criterion_config();
    targets = codecs
}
criterion_main!(benches);
