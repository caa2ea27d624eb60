//! Issue 20, the demo as a safe example, on both frameworks: `nosniff` on every response, the
//! Origin compared by scheme, host and port, and a sign-in that gives the client a new flash
//! id, so an id planted from a sibling subdomain (cookie tossing) reads nothing afterwards.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Framework, Served, send};
use flash::storage::{Key, Keys};
use flash::storage::{MemoryStore, ServerStorage, Storage};
use flash_demo::Serving;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, HOST, HeaderMap, SET_COOKIE};

common::on_every_framework!(
    every_response_says_nosniff,
    the_origin_must_match_scheme_host_and_port,
    sign_in_gives_a_new_id_so_a_planted_one_reads_nothing,
    a_message_the_cookie_can_never_hold_is_refused_with_the_reason,
);

fn memory() -> Arc<dyn Storage> {
    Arc::new(ServerStorage::new(
        MemoryStore::new(),
        Keys::new(Key::generate()),
    ))
}

fn demo(framework: Framework) -> Served {
    Served::start(framework, memory(), Serving::default())
}

fn form(app: &Served, path: &str, body: &str) -> reqwest::RequestBuilder {
    app.post(path)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_owned())
}

/// Repro 7: a `400` echoing input, a `403`, a `404`, a `405`, a `413`, a `415`, the page, the
/// JSON, a redirect: all carry `X-Content-Type-Options: nosniff`.
async fn every_response_says_nosniff(framework: Framework) {
    let app = demo(framework);
    let big = format!("level=info&text={}", "x".repeat(flash_demo::MAX_BODY + 10));
    let requests = [
        (app.get("/"), StatusCode::OK),
        (app.get("/htmx"), StatusCode::OK),
        (app.get("/api/messages"), StatusCode::OK),
        (app.get("/nowhere"), StatusCode::NOT_FOUND),
        (app.post("/"), StatusCode::METHOD_NOT_ALLOWED),
        (
            form(&app, "/messages", "level=<script>&text=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            form(&app, "/messages", "level=info&text=ok"),
            StatusCode::SEE_OTHER,
        ),
        (form(&app, "/messages", &big), StatusCode::PAYLOAD_TOO_LARGE),
        (
            app.post("/messages")
                .header(CONTENT_TYPE, "text/plain")
                .body("x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            form(&app, "/messages", "level=info&text=x").header("sec-fetch-site", "cross-site"),
            StatusCode::FORBIDDEN,
        ),
        (form(&app, "/sign-in", ""), StatusCode::SEE_OTHER),
    ];
    for (request, expected) in requests {
        let (status, headers, body) = send(request).await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(
            headers
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{status}: {headers:?}"
        );
    }
}

/// Repro 5: without `Sec-Fetch-Site`, an `Origin` of another scheme (`https`, `ftp`) or port
/// on the demo's `http` origin is refused; the very origin (default port spelled or not) passes.
async fn the_origin_must_match_scheme_host_and_port(framework: Framework) {
    let app = demo(framework);
    let post = |host: &str, origin: &str| {
        form(&app, "/messages", "level=info&text=x")
            .header(HOST, host)
            .header("origin", origin)
    };
    for (host, origin) in [
        ("demo.example:3000", "https://demo.example:3000"),
        ("demo.example:3000", "ftp://demo.example:3000"),
        ("demo.example:3000", "http://demo.example:3001"),
        ("demo.example:3000", "http://demo.example"),
        ("demo.example", "https://demo.example"),
        ("demo.example", "http://demo.example:8080"),
        ("demo.example", "http://demo.example/"),
        ("[::1]:3000", "https://[::1]:3000"),
    ] {
        let (status, _, _) = send(post(host, origin)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin} on {host}");
    }
    for (host, origin) in [
        ("demo.example:3000", "http://demo.example:3000"),
        ("demo.example", "http://demo.example"),
        ("demo.example", "http://demo.example:80"),
        ("demo.example:80", "http://demo.example"),
        ("[::1]:3000", "http://[::1]:3000"),
    ] {
        let (status, _, body) = send(post(host, origin)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{origin} on {host}: {body}");
    }
}

fn flash_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|line| line.starts_with("flash_id="))
        .map(|line| line.split(';').next().unwrap().to_owned())
}

async fn page(app: &Served, cookie: &str) -> String {
    send(app.get("/").header(COOKIE, cookie)).await.2
}

/// Repro 7, cookie tossing: the attacker gets a validly signed `flash_id` of its own and plants
/// it in the victim's browser (from a sibling subdomain). Before the fix the app never changed
/// it, so the attacker read the victim's messages. Signing in rotates it: what the victim is
/// sent afterwards is stored under an id the attacker does not know.
async fn sign_in_gives_a_new_id_so_a_planted_one_reads_nothing(framework: Framework) {
    let app = demo(framework);
    // The attacker's own id, validly signed by the site.
    let (_, headers, _) = send(form(&app, "/messages", "level=info&text=bait")).await;
    let planted = flash_id(&headers).expect("a server store sets flash_id");
    assert!(page(&app, &planted).await.contains("bait"));

    // The victim, carrying the planted id, signs in.
    let (status, headers, _) = send(form(&app, "/sign-in", "").header(COOKIE, &planted)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let own = flash_id(&headers).expect("sign-in sets a new flash_id");
    assert_ne!(own, planted, "the id is rotated at sign-in");
    let (status, _, _) =
        send(form(&app, "/messages", "level=warning&text=victim+secret").header(COOKIE, &own))
            .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // The attacker, with the planted id, reads nothing of it.
    let seen = page(&app, &planted).await;
    assert!(!seen.contains("victim secret"), "{seen}");
    assert!(!seen.contains("Signed in"), "{seen}");
    // The victim reads both.
    let seen = page(&app, &own).await;
    assert!(seen.contains("Signed in: your flash id is new."), "{seen}");
    assert!(seen.contains("victim secret"), "{seen}");

    // Sign-out forgets the id: what was pending is gone, "Signed out." is under a new id.
    send(form(&app, "/messages", "level=info&text=left+behind").header(COOKIE, &own)).await;
    let (status, headers, _) = send(form(&app, "/sign-out", "").header(COOKIE, &own)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let after = flash_id(&headers).expect("a new id for the sign-out message");
    assert_ne!(after, own);
    let seen = page(&app, &after).await;
    assert!(seen.contains("Signed out."), "{seen}");
    assert!(!seen.contains("left behind"), "{seen}");
    assert!(!page(&app, &own).await.contains("left behind"));
}

async fn open(url: &str) -> Arc<dyn Storage> {
    flash::StorageConfig::new(url)
        .secret("the operators tests' secret, 32 bytes or more")
        .open()
        .await
        .unwrap()
}

/// Repro 2: a 4,000-character text (the form allows 4,096) never fits the 2,048-byte cookie.
/// It was accepted (`303`, or `204` in place for htmx, whose page then said it "waits for the
/// next page load") and dropped at the response with only a WARN. Now it is refused at add:
/// `413` with flash's reason, for the form, htmx (whose page shows the answer as a toast) and
/// JSON alike; with a store to overflow into (`cookie+memory`) it is kept.
async fn a_message_the_cookie_can_never_hold_is_refused_with_the_reason(framework: Framework) {
    let app = Served::start(framework, open("cookie").await, Serving::new("cookie"));
    let text = "z".repeat(4000);
    let body = format!("level=info&text={text}");
    let requests = [
        form(&app, "/messages", &body),
        form(&app, "/messages", &format!("{body}&next=/htmx"))
            .header("hx-request", "true")
            .header("sec-fetch-site", "same-origin"),
        app.post("/api/messages")
            .header(CONTENT_TYPE, "application/json")
            .body(format!(r#"{{"level": "info", "text": "{text}"}}"#)),
    ];
    for request in requests {
        let (status, headers, said) = send(request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{said}");
        assert!(
            said.contains("larger than this storage can ever hold"),
            "the reason: {said}"
        );
        assert!(headers.get(SET_COOKIE).is_none(), "{headers:?}");
        assert!(headers.get("hx-trigger").is_none(), "{headers:?}");
    }
    // A text that fits is still added.
    let (status, _, _) = send(form(&app, "/messages", "level=info&text=fits")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Cookie first, overflowing into a store: the same text is kept and shown.
    let app = Served::start(
        framework,
        open("cookie+memory").await,
        Serving::new("cookie+memory"),
    );
    let (status, headers, _) = send(form(&app, "/messages", &body)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookies: Vec<String> = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let shown = page(&app, &cookies.join("; ")).await;
    assert!(shown.contains(&text), "kept in the overflow store");
}
