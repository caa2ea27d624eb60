//! Group 6, request overhead through actix-web: the same actix app (`POST /add` adds one
//! message, `GET /read` shows 3 and consumes them, `GET /idle` touches nothing) served four
//! ways, paired as the axum group is:
//!
//! - `bare`: no flash layer (the read renders the same 3 texts);
//! - `floor`: flash's signed cookie and headers written by hand with the bare crates, no flash
//!   code (checked equal to flash-actix's in the setup): what any signed-cookie flash message
//!   costs on actix-web;
//! - `flash`: flash-actix's `FlashMiddleware` and `Flash` extractor over flash's cookie storage;
//! - `peer`: actix-web-flash-messages 0.5 with its signed cookie store (`FlashMessage::send`,
//!   `IncomingFlashMessages`), which writes its cookie (a removal when nothing was sent) on
//!   every response, idle ones included.
//!
//! In process (`actix_web::test::init_service`, the service called directly, body collected;
//! the test request is built inside the timed loop for every app alike) and over loopback
//! HTTP/1.1 (the four apps as scopes `/bare`, `/floor`, `/flash`, `/peer` of one `HttpServer`
//! with one worker on 127.0.0.1, hyper's client, one keep-alive connection, one request at a
//! time). Criterion rows `actix/<app>/<case>` and
//! `actix-http/<app>/<case>`, then the paired runs (`flash_benches::paired`) that the targets
//! are judged on; they go to `flash-facts/actix.json` for `scripts/bench-report`.
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

mod common;

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::rt::SystemRunner;
use actix_web::{App, HttpServer, test, web};
use common::actix::{self as apps, items};
use criterion::{Criterion, criterion_group, criterion_main};
use flash_actix::FlashMiddleware;
use flash_cookie::{Codec, CookieStorage, FlashCodec};
use flash_core::{Key, Keys, storage::Storage};
use http::Request;
use http_body_util::BodyExt;

/// Runs `iters` requests of one kind on one app and returns the time they took.
type Runner<'a> = Rc<dyn Fn(u64, &'static str, &'static str, Option<&str>) -> Duration + 'a>;

/// A runner for an in-process app: the requests are made and answered inside one entry into
/// the actix runtime.
fn runner<'a, S, R, B>(
    sys: &'a SystemRunner,
    app: &'a S,
    make: impl Fn(&str, &str, Option<&str>) -> R + 'a,
) -> Runner<'a>
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error> + 'a,
    B: MessageBody + 'a,
    R: 'a,
{
    Rc::new(move |iters, method, path, cookie| {
        sys.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                apps::call_quiet(app, make(method, path, cookie)).await;
            }
            start.elapsed()
        })
    })
}

/// Serves an actix app factory on a loopback port from its own thread (an actix `System`
/// with one worker) and returns the address.
macro_rules! serve {
    ($factory:expr) => {{
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("an address");
        let factory = $factory;
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(factory)
                    .workers(1)
                    .disable_signals()
                    .keep_alive(Duration::from_secs(3600))
                    .listen(listener)
                    .expect("the listener is usable")
                    .run()
                    .await
            })
        });
        addr
    }};
}

/// One paired comparison: its name, the request, and each app's runner with the cookie it
/// gets (the peer reads its own cookie).
type Set<'a> = (
    &'static str,
    &'static str,
    &'static str,
    Vec<(&'static str, Runner<'a>, Option<&'a str>)>,
);

fn run_paired(
    label: &str,
    sets: Vec<Set<'_>>,
    rounds: usize,
    batch: u64,
    paired: &mut serde_json::Map<String, serde_json::Value>,
) {
    for (case, method, path, apps) in sets {
        let mut cases: Vec<flash_benches::paired::Case<'_>> = apps
            .iter()
            .map(|(_, run, cookie)| -> flash_benches::paired::Case<'_> {
                let run = run.clone();
                let cookie = *cookie;
                Box::new(move |batch| run(batch, method, path, cookie))
            })
            .collect();
        let outcome = flash_benches::paired::run(
            &mut cases,
            flash_benches::paired::scaled_rounds(rounds),
            batch,
        );
        let names: Vec<&str> = apps.iter().map(|(name, _, _)| *name).collect();
        let parts: Vec<String> = names
            .iter()
            .zip(&outcome.per_call_ns)
            .zip(&outcome.ratio_to_first)
            .map(|((name, ns), ratio)| format!("{name} {ns:.0} ns ({ratio:.3}x)"))
            .collect();
        println!("actix/paired/{label}/{case}: {}", parts.join(", "));
        paired.insert(
            format!("{label}/{case}"),
            serde_json::json!({
                "rounds": outcome.rounds,
                "names": names,
                "per_call_ns": outcome.per_call_ns,
                "ratio_to_first": outcome.ratio_to_first,
            }),
        );
    }
}

fn actix(c: &mut Criterion) {
    if !["actix", "actix/paired", "actix-http/paired"]
        .iter()
        .any(|group| flash_benches::selected(group))
    {
        return;
    }
    let sys = actix_web::rt::System::new();
    let storage = || -> Arc<dyn Storage> {
        Arc::new(CookieStorage::from_codec(Codec::from(FlashCodec::new(
            Keys::new(Key::from_mac_key(&common::KEY)),
        ))))
    };
    let middleware = FlashMiddleware::new(storage());
    let flash = sys.block_on(test::init_service(
        App::new()
            .wrap(middleware.clone())
            .configure(apps::flash_routes),
    ));
    let peer = sys.block_on(test::init_service(
        App::new()
            .wrap(apps::peer_framework())
            .configure(apps::peer_routes),
    ));
    let bare = sys.block_on(test::init_service(App::new().configure(apps::bare_routes)));
    let floor = sys.block_on(test::init_service(App::new().configure(apps::floor_routes)));

    // Setup and checks: the cookies the readers bring, and that the four apps do the same work.
    let (three, peer_three) = sys.block_on(async {
        let req = |m: &str, p: &str, c: Option<&str>| apps::request(m, p, c).to_request();
        let added = apps::call(&flash, req("POST", "/add3", None)).await;
        let three = apps::set_cookie_pair(&added).expect("the add sets flash's cookie");
        let read = apps::call(&flash, req("GET", "/read", Some(&three))).await;
        assert_eq!(read.0, 200);
        assert_eq!(items(&read.2), 3, "flash's reader sees the 3 messages");
        let bare_read = apps::call(&bare, req("GET", "/read", Some(&three))).await;
        assert_eq!(
            bare_read.2, read.2,
            "the bare handler renders the same page"
        );
        let floor_read = apps::call(&floor, req("GET", "/read", Some(&three))).await;
        assert_eq!(floor_read.2, read.2, "the floor reads the same messages");
        assert_eq!(
            floor_read.1, read.1,
            "the floor deletes as flash-actix does"
        );
        let flash_add = apps::call(&flash, req("POST", "/add", None)).await;
        let floor_add = apps::call(&floor, req("POST", "/add", None)).await;
        assert_eq!(
            floor_add.1, flash_add.1,
            "the floor adds as flash-actix does"
        );
        let idle = apps::call(&flash, req("GET", "/idle", None)).await;
        assert!(
            idle.1
                .iter()
                .all(|h| !h.starts_with("set-cookie") && !h.starts_with("vary")),
            "flash-actix writes no header on an idle request: {:?}",
            idle.1
        );

        let peer_added = apps::call(&peer, req("POST", "/add3", None)).await;
        let peer_three = apps::set_cookie_pair(&peer_added).expect("the peer sets its cookie");
        let peer_read = apps::call(&peer, req("GET", "/read", Some(&peer_three))).await;
        assert_eq!(peer_read.2, read.2, "the peer shows the same page");
        let peer_idle = apps::call(&peer, req("GET", "/idle", None)).await;
        println!(
            "actix: flash-actix idle response headers {:?}; the peer's {:?}",
            idle.1, peer_idle.1
        );
        (three, peer_three)
    });

    let make = |m: &str, p: &str, c: Option<&str>| apps::request(m, p, c).to_request();
    let flash_run = runner(&sys, &flash, make);
    let peer_run = runner(&sys, &peer, make);
    let bare_run = runner(&sys, &bare, make);
    let floor_run = runner(&sys, &floor, make);
    let rows: [(&str, &Runner<'_>, &str, &str, Option<&str>); 11] = [
        ("bare/add", &bare_run, "POST", "/add", None),
        ("floor/add", &floor_run, "POST", "/add", None),
        ("flash/add", &flash_run, "POST", "/add", None),
        ("peer/add", &peer_run, "POST", "/add", None),
        ("bare/read", &bare_run, "GET", "/read", Some(&three)),
        ("floor/read", &floor_run, "GET", "/read", Some(&three)),
        ("flash/read", &flash_run, "GET", "/read", Some(&three)),
        ("peer/read", &peer_run, "GET", "/read", Some(&peer_three)),
        ("bare/idle", &bare_run, "GET", "/idle", None),
        ("flash/idle", &flash_run, "GET", "/idle", None),
        ("peer/idle", &peer_run, "GET", "/idle", None),
    ];
    let mut group = c.benchmark_group("actix");
    for (id, run, method, path, cookie) in rows {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| run(iters, method, path, cookie))
        });
    }
    group.finish();

    let listing = std::env::args().any(|a| a == "--list");
    let mut paired = serde_json::Map::new();
    if flash_benches::selected("actix/paired") && !listing {
        let sets = sets(
            [&bare_run, &floor_run, &flash_run, &peer_run],
            &three,
            &peer_three,
        );
        run_paired("in-process", sets, 150, 500, &mut paired);
    }

    // Over loopback: the four apps as scopes of one server with one worker, so every case is
    // served by the same thread (on this loaded machine, four servers' threads were woken with
    // different delays, which showed as differences of tens of microseconds).
    let addr = serve!(move || App::new()
        .service(web::scope("/bare").configure(apps::bare_routes))
        .service(web::scope("/floor").configure(apps::floor_routes))
        .service(
            web::scope("/flash")
                .wrap(middleware.clone())
                .configure(apps::flash_routes)
        )
        .service(
            web::scope("/peer")
                .wrap(apps::peer_framework())
                .configure(apps::peer_routes)
        ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build_http();
    let send = |app: &str, method: &str, path: &str, cookie: Option<&str>| {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{addr}/{app}{path}"));
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
    rt.block_on(async {
        for (app, cookie) in [("flash", &three), ("peer", &peer_three), ("floor", &three)] {
            let (status, body) = send(app, "GET", "/read", Some(cookie)).await;
            assert_eq!(status, 200);
            assert_eq!(
                items(&body),
                3,
                "served over loopback, the reader sees 3 messages"
            );
        }
    });
    let http_runner = |app: &'static str| -> Runner<'_> {
        let rt = &rt;
        let send = &send;
        Rc::new(move |iters, method, path, cookie| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(send(app, method, path, cookie).await);
                }
                start.elapsed()
            })
        })
    };
    let flash_http = http_runner("flash");
    let peer_http = http_runner("peer");
    let bare_http = http_runner("bare");
    let floor_http = http_runner("floor");
    let rows: [(&str, &Runner<'_>, &str, &str, Option<&str>); 11] = [
        ("bare/add", &bare_http, "POST", "/add", None),
        ("floor/add", &floor_http, "POST", "/add", None),
        ("flash/add", &flash_http, "POST", "/add", None),
        ("peer/add", &peer_http, "POST", "/add", None),
        ("bare/read", &bare_http, "GET", "/read", Some(&three)),
        ("floor/read", &floor_http, "GET", "/read", Some(&three)),
        ("flash/read", &flash_http, "GET", "/read", Some(&three)),
        ("peer/read", &peer_http, "GET", "/read", Some(&peer_three)),
        ("bare/idle", &bare_http, "GET", "/idle", None),
        ("flash/idle", &flash_http, "GET", "/idle", None),
        ("peer/idle", &peer_http, "GET", "/idle", None),
    ];
    let mut group = c.benchmark_group("actix-http");
    for (id, run, method, path, cookie) in rows {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| run(iters, method, path, cookie))
        });
    }
    group.finish();
    if flash_benches::selected("actix-http/paired") && !listing {
        let sets = sets(
            [&bare_http, &floor_http, &flash_http, &peer_http],
            &three,
            &peer_three,
        );
        run_paired("loopback", sets, 200, 40, &mut paired);
    }
    if !paired.is_empty() {
        let facts = serde_json::json!({ "paired": paired });
        if let Err(err) = flash_benches::write_facts("actix", &facts) {
            println!("actix: could not write the facts file: {err}");
        }
    }
}

/// The three paired comparisons: add and read (bare, floor, flash, peer), idle (bare, flash,
/// peer; the floor's idle handler is the bare one).
fn sets<'a>(
    [bare, floor, flash, peer]: [&Runner<'a>; 4],
    three: &'a str,
    peer_three: &'a str,
) -> Vec<Set<'a>> {
    let four = |cookie: Option<&'a str>, peer_cookie: Option<&'a str>| {
        vec![
            ("bare", bare.clone(), cookie),
            ("floor", floor.clone(), cookie),
            ("flash", flash.clone(), cookie),
            ("peer", peer.clone(), peer_cookie),
        ]
    };
    vec![
        ("add", "POST", "/add", four(None, None)),
        ("read", "GET", "/read", four(Some(three), Some(peer_three))),
        (
            "idle",
            "GET",
            "/idle",
            vec![
                ("bare", bare.clone(), None),
                ("flash", flash.clone(), None),
                ("peer", peer.clone(), None),
            ],
        ),
    ]
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<axum::body::Bytes>,
>;

criterion_group! {
    name = benches;
    config = flash_benches::criterion_config();
    targets = actix
}
criterion_main!(benches);
