//! Group 5, memory: allocations and bytes allocated per operation on the cookie path, counted
//! by a counting global allocator (`stats_alloc`) in this binary only (the timing groups run
//! without it). Counts are exact and deterministic: each case runs once to warm up, then
//! `RUNS` times inside one counted region.
//!
//! Cases (3 messages of ~40 characters):
//! - the codec: the floor's and flash's encode and decode, and the peer's store and load;
//! - the storage: `CookieStorage::save` (3 added; the count includes the 4 allocations of
//!   cloning the messages into the `Update`, which a request's handle also makes) and `load`;
//! - a whole request through axum (`oneshot`, body collected): `bare/<case>` and
//!   `flash/<case>` for add, read and idle; flash's own cost is the difference.
//!
//! - a whole request through actix-web (`actix_web::test::init_service`, the service called
//!   directly, body collected; the test requests are built before the counted region, as a
//!   server's parser would hand them over): `actix/<app>/<case>` for the bare handler, the floor
//!   (flash's cookie by hand), flash-actix and the peer (actix-web-flash-messages 0.5).
//!
//! Results go to stdout and to `target/criterion/flash-facts/memory.json` for
//! `scripts/bench-report`.
//!
//! `FLASH_MEMORY_ONLY=request/flash/read` (any axum case's id) counts that request alone and
//! skips actix-web, so that a profile (`valgrind --tool=dhat --num-callers=80`) shows its
//! allocation sites without the other cases'.
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

mod common;

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;

use actix_web::dev::ResponseHead;
use actix_web::http::StatusCode;
use actix_web_flash_messages::storage::FlashMessageStore;
use axum::Router;
use common::actix as actix_apps;
use common::{
    KEY, bare_routes, call, floor_routes, peer_cookie, peer_messages, peer_store, request,
    request_headers, routes, set_cookie_pair, test_request, update,
};
use flash_axum::FlashLayer;
use flash_benches::{fixtures, floor};
use flash_cookie::{Codec, CookieStorage, FlashCodec};
use flash_core::http::HeaderMap;
use flash_core::{
    Key, Keys,
    storage::{Incoming, Storage},
};
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const RUNS: usize = 1000;
const NAME: &str = "messages";

#[derive(Debug, Clone, Copy)]
struct Count {
    allocations: f64,
    bytes: f64,
}

/// Allocations and bytes per call of `f`, over `RUNS` calls after one warm-up call.
fn count(mut f: impl FnMut()) -> Count {
    f();
    let region = Region::new(GLOBAL);
    for _ in 0..RUNS {
        f();
    }
    let stats = region.change();
    Count {
        allocations: (stats.allocations + stats.reallocations) as f64 / RUNS as f64,
        bytes: (stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize) as f64
            / RUNS as f64,
    }
}

/// Like [`count`], for an async body run `RUNS` times inside one runtime entry.
fn count_async<F: Future<Output = ()>>(rt: &tokio::runtime::Runtime, f: impl Fn() -> F) -> Count {
    rt.block_on(f());
    let region = Region::new(GLOBAL);
    rt.block_on(async {
        for _ in 0..RUNS {
            f().await;
        }
    });
    let stats = region.change();
    Count {
        allocations: (stats.allocations + stats.reallocations) as f64 / RUNS as f64,
        bytes: (stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize) as f64
            / RUNS as f64,
    }
}

/// Allocations per request of an in-process actix app, the requests made before the counted
/// region (one warm-up request first).
fn count_actix<S, R, B>(sys: &actix_web::rt::SystemRunner, app: &S, make: impl Fn() -> R) -> Count
where
    S: actix_web::dev::Service<
            R,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let mut requests: Vec<R> = (0..=RUNS).map(|_| make()).collect();
    let mut next = requests.drain(..);
    if let Some(request) = next.next() {
        sys.block_on(actix_apps::call_quiet(app, request));
    }
    let region = Region::new(GLOBAL);
    sys.block_on(async {
        for request in next.by_ref() {
            actix_apps::call_quiet(app, request).await;
        }
    });
    let stats = region.change();
    Count {
        allocations: (stats.allocations + stats.reallocations) as f64 / RUNS as f64,
        bytes: (stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize) as f64
            / RUNS as f64,
    }
}

fn main() {
    if !flash_benches::selected("memory") || std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let mut rows: Vec<(String, Count)> = Vec::new();
    let mut record = |id: &str, c: Count| {
        println!(
            "memory/{id:<28} {:>7.1} allocations {:>9.1} bytes",
            c.allocations, c.bytes
        );
        rows.push((id.to_owned(), c));
    };

    // --- the codec, 3 messages
    let pairs = fixtures::floor_messages(3);
    let messages = fixtures::messages(3);
    let floor = floor::Floor::new(&KEY, NAME);
    let codec = Codec::from(FlashCodec::new(Keys::new(Key::from_mac_key(&KEY))));
    let value = codec.encode(NAME, &messages, false).expect("encode");
    record(
        "floor/encode",
        count(|| {
            black_box(floor.encode(black_box(&pairs)));
        }),
    );
    record(
        "floor/decode",
        count(|| {
            black_box(floor.decode(black_box(&value)));
        }),
    );
    record(
        "flash/encode",
        count(|| {
            black_box(codec.encode(NAME, black_box(&messages), false).ok());
        }),
    );
    record(
        "flash/decode",
        count(|| {
            black_box(codec.decode(NAME, black_box(&value)).ok());
        }),
    );

    // --- the storage: save 3 added into response headers; load them from the request
    let storage: Arc<dyn Storage> = Arc::new(CookieStorage::from_codec(codec.clone()));
    let mut response = HeaderMap::new();
    rt.block_on(storage.save(&Incoming::default(), update(&messages), &mut response))
        .expect("save");
    let cookie = set_cookie_pair(&response).expect("a flash cookie");
    let request_cookie = request_headers(&cookie);
    let empty = Incoming::default();
    // The update is part of what a request builds (the handle hands its messages over), so
    // it is counted; making the Incoming is counted in the request cases below.
    record(
        "flash-storage/encode",
        count_async(&rt, || async {
            let mut response = HeaderMap::new();
            black_box(storage.save(&empty, update(&messages), &mut response).await).ok();
        }),
    );
    let incoming = Incoming::from_headers(&request_cookie);
    record(
        "flash-storage/decode",
        count_async(&rt, || async {
            black_box(storage.load(&incoming).await).ok();
        }),
    );

    // --- the peer, its public store/load path
    let peer = peer_store();
    let peer_msgs = peer_messages(3);
    let peer_cookie = peer_cookie(&peer, &peer_msgs);
    let store_request = test_request(None);
    record(
        "peer/encode",
        count(|| {
            let mut head = ResponseHead::new(StatusCode::OK);
            black_box(peer.store(&peer_msgs, store_request.clone(), &mut head)).ok();
        }),
    );
    // A fresh request each time (the peer caches the parsed cookies in it): made outside the
    // counted region.
    let mut requests: Vec<_> = (0..=RUNS)
        .map(|_| test_request(Some(&peer_cookie)))
        .collect();
    let mut next = requests.drain(..);
    record(
        "peer/decode",
        count(|| {
            let request = next.next().expect("enough requests");
            black_box(peer.load(&request)).ok();
        }),
    );

    // --- whole requests through axum
    let flash_app = routes().layer(FlashLayer::new(storage.clone()));
    let bare_app = bare_routes();
    let floor_app = floor_routes();
    let noop_app = bare_routes().layer(tower::util::MapRequestLayer::new(
        |r: flash_core::http::Request<axum::body::Body>| r,
    ));
    let three = rt.block_on(async {
        let (response, _) = call(&flash_app, request("POST", "/add3", None)).await;
        set_cookie_pair(response.headers()).expect("a flash cookie")
    });
    let cases: [(&str, &Router, &str, &str, Option<&str>); 11] = [
        ("request/bare/add", &bare_app, "POST", "/add", None),
        ("request/floor/add", &floor_app, "POST", "/add", None),
        ("request/flash/add", &flash_app, "POST", "/add", None),
        ("request/bare/read", &bare_app, "GET", "/read", Some(&three)),
        (
            "request/floor/read",
            &floor_app,
            "GET",
            "/read",
            Some(&three),
        ),
        (
            "request/flash/read",
            &flash_app,
            "GET",
            "/read",
            Some(&three),
        ),
        ("request/bare/idle", &bare_app, "GET", "/idle", None),
        ("request/noop-layer/idle", &noop_app, "GET", "/idle", None),
        ("request/flash/idle", &flash_app, "GET", "/idle", None),
        (
            "request/bare/idle-with-cookie",
            &bare_app,
            "GET",
            "/idle",
            Some(&three),
        ),
        (
            "request/flash/idle-with-cookie",
            &flash_app,
            "GET",
            "/idle",
            Some(&three),
        ),
    ];
    let only = std::env::var("FLASH_MEMORY_ONLY").ok();
    for (id, app, method, path, cookie) in cases {
        if only.as_deref().is_some_and(|o| o != id) {
            continue;
        }
        record(
            id,
            count_async(&rt, || async {
                black_box(call(app, request(method, path, cookie)).await);
            }),
        );
    }

    if only.is_some() {
        return;
    }
    // --- whole requests through actix-web
    let sys = actix_web::rt::System::new();
    let flash_actix = sys.block_on(actix_web::test::init_service(
        actix_web::App::new()
            .wrap(flash_actix::FlashMiddleware::new(storage.clone()))
            .configure(actix_apps::flash_routes),
    ));
    let peer_actix = sys.block_on(actix_web::test::init_service(
        actix_web::App::new()
            .wrap(actix_apps::peer_framework())
            .configure(actix_apps::peer_routes),
    ));
    let bare_actix = sys.block_on(actix_web::test::init_service(
        actix_web::App::new().configure(actix_apps::bare_routes),
    ));
    let floor_actix = sys.block_on(actix_web::test::init_service(
        actix_web::App::new().configure(actix_apps::floor_routes),
    ));
    let make = |m: &str, p: &str, c: Option<&str>| actix_apps::request(m, p, c).to_request();
    let peer_three = sys.block_on(async {
        let reply = actix_apps::call(&peer_actix, make("POST", "/add3", None)).await;
        actix_apps::set_cookie_pair(&reply).expect("the peer's cookie")
    });
    let plain = [("add", "POST", "/add"), ("idle", "GET", "/idle")];
    for (case, method, path) in plain {
        record(
            &format!("actix/bare/{case}"),
            count_actix(&sys, &bare_actix, || make(method, path, None)),
        );
        if case == "add" {
            record(
                "actix/floor/add",
                count_actix(&sys, &floor_actix, || make(method, path, None)),
            );
        }
        record(
            &format!("actix/flash/{case}"),
            count_actix(&sys, &flash_actix, || make(method, path, None)),
        );
        record(
            &format!("actix/peer/{case}"),
            count_actix(&sys, &peer_actix, || make(method, path, None)),
        );
    }
    record(
        "actix/bare/read",
        count_actix(&sys, &bare_actix, || make("GET", "/read", Some(&three))),
    );
    record(
        "actix/floor/read",
        count_actix(&sys, &floor_actix, || make("GET", "/read", Some(&three))),
    );
    record(
        "actix/flash/read",
        count_actix(&sys, &flash_actix, || make("GET", "/read", Some(&three))),
    );
    record(
        "actix/peer/read",
        count_actix(&sys, &peer_actix, || {
            make("GET", "/read", Some(&peer_three))
        }),
    );

    let facts: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|(id, c)| {
            (
                id.clone(),
                json!({"allocations": c.allocations, "bytes": c.bytes}),
            )
        })
        .collect();
    match flash_benches::write_facts(
        "memory",
        &json!({"runs": RUNS, "messages": 3, "cases": facts}),
    ) {
        Ok(path) => println!("memory: written to {}", path.display()),
        Err(err) => println!("memory: could not write the facts file: {err}"),
    }
}
