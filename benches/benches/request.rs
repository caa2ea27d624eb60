//! Group 2, request overhead through axum, in process (tower `oneshot` on the router): a
//! handler that adds a message and one that reads them, through `flash-axum` with the cookie
//! storage, beside the same handler with no flash layer; and the idle request (the handler
//! neither reads nor adds, with and without a flash cookie), which must make no store call (checked
//! in the setup with a counting keyed store) and cost next to nothing.
//!
//! Rows: `bare/<case>` and `flash/<case>`; the idle cases also run over the keyed bridge
//! (`keyed/<case>`, a counting in-memory store). `floor/<case>` is the physical floor of a
//! signed-cookie flash message: a handler that writes (or reads and deletes) the same cookie and
//! headers by hand with the bare crates, no flash code, so flash's own share can be told from
//! what any signed cookie costs.
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use common::{
    KEY, bare_routes, call, floor_routes, request, routes, server_storage, set_cookie_pair,
};
use criterion::{Criterion, criterion_group, criterion_main};
use flash_axum::FlashLayer;
use flash_cookie::{Codec, CookieStorage, FlashCodec};
use flash_core::{Key, Keys, storage::Storage};
use http::header::SET_COOKIE;
use http::{Request, StatusCode};
use http_body_util::BodyExt;

/// Times `iters` requests made by `make` on `app`, inside one runtime entry.
fn time_requests(
    rt: &tokio::runtime::Runtime,
    app: &Router,
    iters: u64,
    make: impl Fn() -> Request<Body>,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(call(app, make()).await);
        }
        start.elapsed()
    })
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let cookie_storage: Arc<dyn Storage> = Arc::new(CookieStorage::from_codec(Codec::from(
        FlashCodec::new(Keys::new(Key::from_mac_key(&KEY))),
    )));
    let flash = routes().layer(FlashLayer::new(cookie_storage));
    let bare = bare_routes();
    let floor = floor_routes();
    let (keyed, counts) = server_storage();
    let keyed = routes().layer(FlashLayer::new(keyed));

    // Setup and checks: the cookie a reader brings, and what each case does.
    let (three, cookie) = rt.block_on(async {
        let (response, _) = call(&flash, request("POST", "/add3", None)).await;
        let three = set_cookie_pair(response.headers()).expect("the add sets the flash cookie");
        let (response, body) = call(&flash, request("GET", "/read", Some(&three))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = std::str::from_utf8(&body).expect("an HTML body");
        assert_eq!(
            body.matches("<li>").count(),
            3,
            "the reader sees the 3 messages"
        );
        let (added, _) = call(&flash, request("POST", "/add", None)).await;
        // The floor does the same work: the same headers on an add, the same page and
        // headers on a read.
        let (floor_added, _) = call(&floor, request("POST", "/add", None)).await;
        assert_eq!(
            floor_added.headers(),
            added.headers(),
            "the floor adds as flash does"
        );
        let (read, read_body) = call(&flash, request("GET", "/read", Some(&three))).await;
        let (floor_read, floor_body) = call(&floor, request("GET", "/read", Some(&three))).await;
        assert_eq!(floor_body, read_body, "the floor reads the same messages");
        assert_eq!(
            floor_read.headers(),
            read.headers(),
            "the floor deletes as flash does"
        );
        (
            three,
            set_cookie_pair(added.headers()).expect("a flash cookie"),
        )
    });
    let (keyed_id, idle_checks) = rt.block_on(async {
        let (response, _) = call(&keyed, request("POST", "/add", None)).await;
        let id = set_cookie_pair(response.headers()).expect("the keyed add sets the id cookie");
        let before = counts.total();
        let mut checks = Vec::new();
        for (app, cookie) in [
            (&flash, None),
            (&flash, Some(cookie.as_str())),
            (&keyed, None),
            (&keyed, Some(id.as_str())),
        ] {
            let (response, _) = call(app, request("GET", "/idle", cookie)).await;
            checks.push(response.headers().get(SET_COOKIE).is_none());
            checks.push(response.headers().get(http::header::VARY).is_none());
        }
        assert_eq!(
            counts.total(),
            before,
            "an idle request makes no store call (with and without the id cookie)"
        );
        (id, checks)
    });
    assert!(
        idle_checks.iter().all(|ok| *ok),
        "an idle request writes no Set-Cookie and no Vary"
    );
    println!(
        "request: idle requests made 0 store calls and wrote no header (keyed store counted {} calls in setup, all from the add)",
        counts.total()
    );

    let setup_calls = counts.total();
    let mut group = c.benchmark_group("request");
    // A layer that does nothing: what axum charges for any layer, so the idle overhead that
    // is flash's own can be told apart.
    let noop = bare_routes().layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r));
    let cases: [(&str, &Router, &str, &str, Option<&str>); 15] = [
        ("bare/add", &bare, "POST", "/add", None),
        ("floor/add", &floor, "POST", "/add", None),
        ("flash/add", &flash, "POST", "/add", None),
        ("bare/read", &bare, "GET", "/read", Some(&three)),
        ("floor/read", &floor, "GET", "/read", Some(&three)),
        ("flash/read", &flash, "GET", "/read", Some(&three)),
        ("bare/idle", &bare, "GET", "/idle", None),
        ("noop-layer/idle", &noop, "GET", "/idle", None),
        ("flash/idle", &flash, "GET", "/idle", None),
        ("bare/idle-with-cookie", &bare, "GET", "/idle", Some(&three)),
        (
            "flash/idle-with-cookie",
            &flash,
            "GET",
            "/idle",
            Some(&three),
        ),
        ("keyed/idle", &keyed, "GET", "/idle", None),
        (
            "bare/idle-with-id-cookie",
            &bare,
            "GET",
            "/idle",
            Some(&keyed_id),
        ),
        (
            "keyed/idle-with-cookie",
            &keyed,
            "GET",
            "/idle",
            Some(&keyed_id),
        ),
        (
            "noop-layer/idle-with-cookie",
            &noop,
            "GET",
            "/idle",
            Some(&three),
        ),
    ];
    for (id, app, method, path, cookie) in cases {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| time_requests(&rt, app, iters, || request(method, path, cookie)))
        });
    }
    group.finish();
    let mut paired = serde_json::Map::new();
    if flash_benches::selected("request/paired") && !std::env::args().any(|a| a == "--list") {
        let sets: [PairedSet<'_>; 3] = [
            (
                "add",
                "POST",
                "/add",
                None,
                [("bare", &bare), ("floor", &floor), ("flash", &flash)],
            ),
            (
                "read",
                "GET",
                "/read",
                Some(&three),
                [("bare", &bare), ("floor", &floor), ("flash", &flash)],
            ),
            (
                "idle",
                "GET",
                "/idle",
                None,
                [("bare", &bare), ("noop-layer", &noop), ("flash", &flash)],
            ),
        ];
        for (case, method, path, cookie, apps) in sets {
            let mut cases: Vec<flash_benches::paired::Case<'_>> = apps
                .iter()
                .map(|&(_, app)| -> flash_benches::paired::Case<'_> {
                    let rt = &rt;
                    Box::new(move |batch| {
                        time_requests(rt, app, batch, || request(method, path, cookie))
                    })
                })
                .collect();
            let outcome = flash_benches::paired::run(
                &mut cases,
                flash_benches::paired::scaled_rounds(150),
                500,
            );
            let names = apps.map(|(name, _)| name);
            report_paired(&format!("in-process/{case}"), &names, &outcome);
            paired.insert(format!("in-process/{case}"), paired_facts(&names, &outcome));
        }
    }
    loopback(c, &flash, &bare, &floor, &three, &mut paired);
    assert_eq!(
        counts.total(),
        setup_calls,
        "the idle runs made no store call"
    );
    let facts = serde_json::json!({
        "idle_store_calls": counts.total() - setup_calls,
        "paired": paired,
    });
    if let Err(err) = flash_benches::write_facts("request", &facts) {
        println!("request: could not write the facts file: {err}");
    }
}

/// The same requests over loopback HTTP/1.1: axum served by hyper on 127.0.0.1, one keep-alive
/// connection of hyper's client, one request at a time (a bounded load). This is the cost a
/// request really has, against which flash's share is judged.
fn loopback(
    c: &mut Criterion,
    flash: &Router,
    bare: &Router,
    floor: &Router,
    three: &str,
    paired: &mut serde_json::Map<String, serde_json::Value>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let serve = |app: Router| {
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let addr = listener.local_addr().expect("an address");
            tokio::spawn(async move { axum::serve(listener, app).await });
            addr
        })
    };
    let flash_addr = serve(flash.clone());
    let bare_addr = serve(bare.clone());
    let floor_addr = serve(floor.clone());
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build_http();
    let send = |addr: std::net::SocketAddr, method: &str, path: &str, cookie: Option<&str>| {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(cookie) = cookie {
            builder = builder.header(http::header::COOKIE, cookie);
        }
        let request = builder
            .body(http_body_util::Empty::<axum::body::Bytes>::new())
            .expect("a request");
        let client = client.clone();
        async move {
            let response = client.request(request).await.expect("a response");
            let status = response.status();
            let body = response.into_body().collect().await.expect("a body");
            (status, body.to_bytes())
        }
    };
    // Check the served apps answer as in process.
    rt.block_on(async {
        let (status, body) = send(flash_addr, "GET", "/read", Some(three)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.windows(4).filter(|w| w == b"<li>").count(), 3);
    });
    let mut group = c.benchmark_group("request-http");
    let cases = [
        ("bare/add", bare_addr, "POST", "/add", None),
        ("floor/add", floor_addr, "POST", "/add", None),
        ("flash/add", flash_addr, "POST", "/add", None),
        ("bare/read", bare_addr, "GET", "/read", Some(three)),
        ("floor/read", floor_addr, "GET", "/read", Some(three)),
        ("flash/read", flash_addr, "GET", "/read", Some(three)),
        ("bare/idle", bare_addr, "GET", "/idle", None),
        ("flash/idle", flash_addr, "GET", "/idle", None),
    ];
    for (id, addr, method, path, cookie) in cases {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(send(addr, method, path, cookie).await);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    if !flash_benches::selected("request-http/paired") || std::env::args().any(|a| a == "--list") {
        return;
    }
    let sets = [
        ("add", "POST", "/add", None),
        ("read", "GET", "/read", Some(three)),
        ("idle", "GET", "/idle", None),
    ];
    let names = ["bare", "floor", "flash"];
    for (case, method, path, cookie) in sets {
        let mut cases: Vec<flash_benches::paired::Case<'_>> = [bare_addr, floor_addr, flash_addr]
            .into_iter()
            .map(|addr| -> flash_benches::paired::Case<'_> {
                let rt = &rt;
                let send = &send;
                Box::new(move |batch| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..batch {
                            std::hint::black_box(send(addr, method, path, cookie).await);
                        }
                        start.elapsed()
                    })
                })
            })
            .collect();
        let outcome =
            flash_benches::paired::run(&mut cases, flash_benches::paired::scaled_rounds(200), 40);
        report_paired(&format!("loopback/{case}"), &names, &outcome);
        paired.insert(format!("loopback/{case}"), paired_facts(&names, &outcome));
    }
}

fn report_paired(label: &str, names: &[&str], outcome: &flash_benches::paired::Outcome) {
    let parts: Vec<String> = names
        .iter()
        .zip(&outcome.per_call_ns)
        .zip(&outcome.ratio_to_first)
        .map(|((name, ns), ratio)| format!("{name} {ns:.0} ns ({ratio:.3}x)"))
        .collect();
    println!("request/paired/{label}: {}", parts.join(", "));
}

fn paired_facts(names: &[&str], outcome: &flash_benches::paired::Outcome) -> serde_json::Value {
    serde_json::json!({
        "rounds": outcome.rounds,
        "names": names,
        "per_call_ns": outcome.per_call_ns,
        "ratio_to_first": outcome.ratio_to_first,
    })
}

/// A paired in-process comparison: its name, the request, and the apps compared.
type PairedSet<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    [(&'a str, &'a Router); 3],
);

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<axum::body::Bytes>,
>;

criterion_group! {
    name = benches;
    config = flash_benches::criterion_config();
    targets = overhead
}
criterion_main!(benches);
