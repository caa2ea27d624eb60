//! The HTTP flows every storage URL runs against the demo app.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, HeaderMap, LOCATION, VARY};
use serde_json::{Value, json};

use crate::page::{self, Item};
use crate::{Framework, Kind, Server, client, open};

async fn start(framework: Framework, kind: Kind) -> Option<(Server, crate::Opened)> {
    let opened = open(kind).await?;
    let server = Server::demo_on(framework, opened.storage.clone()).await;
    Some((server, opened))
}

fn assert_vary_cookie(headers: &HeaderMap, what: &str) {
    let vary: Vec<_> = headers
        .get_all(VARY)
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(
        vary.iter()
            .any(|v| v.split(',').any(|t| t.trim() == "cookie")),
        "{what}: Vary must name Cookie, got {vary:?}"
    );
}

async fn post_form(
    http: &reqwest::Client,
    server: &Server,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let response = http
        .post(server.url("/messages"))
        .form(fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "POST /messages");
    assert_eq!(response.headers()[LOCATION], "/");
    response
}

async fn get_page(http: &reqwest::Client, server: &Server) -> (HeaderMap, String) {
    let response = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET /");
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

/// POST → 303 → GET shows the message once, a reload shows none, and every response that read
/// or wrote messages carries `Vary: Cookie`.
pub async fn post_redirect_get_once(framework: Framework, kind: Kind) {
    let Some((server, _opened)) = start(framework, kind).await else {
        return;
    };
    let http = client();

    let (headers, body) = get_page(&http, &server).await;
    assert_eq!(page::messages(&body), None, "a new client has no messages");
    assert_vary_cookie(&headers, "first GET");

    let response = post_form(
        &http,
        &server,
        &[("level", "success"), ("text", "Article saved.")],
    )
    .await;
    assert_vary_cookie(response.headers(), "POST");
    // A flash cookie makes the response uncacheable; with session storage the cookie is the
    // session layer's (tower-sessions), not flash's.
    if kind != Kind::Session && response.headers().contains_key(reqwest::header::SET_COOKIE) {
        assert_eq!(response.headers()[CACHE_CONTROL], "private, no-store");
    }

    let (headers, body) = get_page(&http, &server).await;
    assert_vary_cookie(&headers, "GET after the redirect");
    assert_eq!(
        page::messages(&body).unwrap(),
        [Item {
            class: "success".into(),
            html: "Article saved.".into()
        }]
    );

    let (headers, body) = get_page(&http, &server).await;
    assert_vary_cookie(&headers, "reload");
    assert_eq!(page::messages(&body), None, "shown once: {body}");

    // Every level, in order, with extra tags and a custom level.
    for (level, text) in [
        ("debug", "d"),
        ("info", "i"),
        ("warning", "w"),
        ("error", "e"),
        ("35", "custom"),
    ] {
        post_form(
            &http,
            &server,
            &[("level", level), ("text", text), ("extra_tags", "x")],
        )
        .await;
    }
    let (_, body) = get_page(&http, &server).await;
    let classes: Vec<_> = page::messages(&body)
        .unwrap()
        .into_iter()
        .map(|i| (i.class, i.html))
        .collect();
    assert_eq!(
        classes,
        [
            ("x debug".to_owned(), "d".to_owned()),
            ("x info".into(), "i".into()),
            ("x warning".into(), "w".into()),
            ("x error".into(), "e".into()),
            ("x".into(), "custom".into()),
        ]
    );
    server.stop().await;
}

/// As many messages as a client may have pending (`Limits::DEFAULT_MAX_MESSAGES`), added by one
/// request, all arrive, once; as many added one per request arrive in order, once. With the
/// cookie alone, bounded by 4 KB, the documented behaviour holds instead: the newest that fit are
/// kept, in order, and shown once.
pub async fn many_arrive_in_order_once(framework: Framework, kind: Kind) {
    let Some((server, _opened)) = start(framework, kind).await else {
        return;
    };
    let http = client();
    const MANY: usize = flash_core::Limits::DEFAULT_MAX_MESSAGES;
    let many = MANY.to_string();

    post_form(
        &http,
        &server,
        &[("level", "info"), ("text", "bulk"), ("count", &many)],
    )
    .await;
    let (_, body) = get_page(&http, &server).await;
    let shown = page::messages(&body).unwrap();
    assert!(shown.iter().all(|i| i.html == "bulk" && i.class == "info"));
    if kind.size_bounded() {
        assert!(
            (1..=MANY).contains(&shown.len()),
            "the cookie keeps what fits: {}",
            shown.len()
        );
    } else {
        assert_eq!(shown.len(), MANY, "all of them, none twice");
    }
    let (_, body) = get_page(&http, &server).await;
    assert_eq!(page::messages(&body), None, "none twice");

    let expected: Vec<String> = (0..MANY).map(|i| format!("m{i:03}")).collect();
    for text in &expected {
        let response = http
            .post(server.url("/api/messages"))
            .json(&json!({ "level": "info", "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let (_, body) = get_page(&http, &server).await;
    let shown = page::texts(&body);
    if kind.size_bounded() {
        assert!(!shown.is_empty() && shown.len() <= MANY);
        assert_eq!(
            shown,
            expected[MANY - shown.len()..],
            "the newest are kept, in order"
        );
    } else {
        assert_eq!(shown, expected, "in order, none lost, none twice");
    }
    let (_, body) = get_page(&http, &server).await;
    assert_eq!(page::messages(&body), None, "none twice");
    server.stop().await;
}

/// Text and tags are HTML-escaped on the page, returned as they were by the API.
pub async fn text_is_escaped(framework: Framework, kind: Kind) {
    let Some((server, _opened)) = start(framework, kind).await else {
        return;
    };
    let http = client();
    let evil = r#"<script>alert("flash")</script>"#;
    post_form(
        &http,
        &server,
        &[
            ("level", "error"),
            ("text", evil),
            ("extra_tags", r#"a"><b"#),
        ],
    )
    .await;
    let (_, body) = get_page(&http, &server).await;
    assert!(!body.contains("<script>"), "{body}");
    // The injected tag, not the page's own `"><button` (the sign-in forms).
    assert!(!body.contains("a\"><b"), "{body}");
    assert_eq!(
        page::messages(&body).unwrap(),
        [Item {
            class: "a&quot;&gt;&lt;b error".into(),
            html: "&lt;script&gt;alert(&quot;flash&quot;)&lt;&#x2f;script&gt;".into(),
        }]
    );

    // Through the API: a form post redirects, which addresses its message to the redirect's
    // page, so only that page would show it.
    let added = http
        .post(server.url("/api/messages"))
        .json(&json!({"level": "info", "text": evil}))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success(), "{}", added.status());
    let listed: Value = http
        .get(server.url("/api/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed[0]["message"], evil,
        "JSON carries the text as it was"
    );
    server.stop().await;
}

/// A prefetch neither sees nor consumes; the next real request does.
pub async fn prefetch_consumes_nothing(framework: Framework, kind: Kind) {
    let Some((server, _opened)) = start(framework, kind).await else {
        return;
    };
    let http = client();
    post_form(&http, &server, &[("level", "info"), ("text", "kept")]).await;
    for (name, value) in [
        ("sec-purpose", "prefetch;prerender"),
        ("purpose", "prefetch"),
    ] {
        let response = http
            .get(server.url("/"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_vary_cookie(response.headers(), "prefetch");
        let body = response.text().await.unwrap();
        assert_eq!(
            page::messages(&body),
            None,
            "{name}: a prefetch sees nothing"
        );
    }
    let (_, body) = get_page(&http, &server).await;
    assert_eq!(page::texts(&body), ["kept"], "nothing was consumed");
    server.stop().await;
}

/// The JSON API: 201 on add, the array of template-ready views (`level`, `level_tag`, `tags`,
/// `extra_tags`, `message`, `safe`) on read, consumed.
pub async fn json_api(framework: Framework, kind: Kind) {
    let Some((server, _opened)) = start(framework, kind).await else {
        return;
    };
    let http = client();
    for (body, status) in [
        (
            json!({"level": "warning", "text": "api", "extra_tags": "x"}),
            StatusCode::CREATED,
        ),
        (json!({"level": 35, "text": "custom"}), StatusCode::CREATED),
        (
            json!({"level": "loud", "text": "no"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = http
            .post(server.url("/api/messages"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
    }
    let response = http.get(server.url("/api/messages")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_vary_cookie(response.headers(), "GET /api/messages");
    let listed: Value = response.json().await.unwrap();
    assert_eq!(
        listed,
        json!([
            {"level": 30, "level_tag": "warning", "tags": "x warning", "extra_tags": "x",
             "message": "api", "safe": false},
            {"level": 35, "level_tag": "", "tags": "", "extra_tags": "", "message": "custom",
             "safe": false},
        ])
    );
    let listed: Value = http
        .get(server.url("/api/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    server.stop().await;
}

/// Two tabs of one client (one cookie jar) add and read concurrently: every message is shown
/// in exactly one of them. Only for the keyed server stores, which promise it; a cookie
/// cannot (both tabs send the same cookie).
pub async fn two_tabs_each_message_once(framework: Framework, kind: Kind) {
    assert!(kind.exactly_once(), "only server stores promise this");
    let Some((server, _opened)) = start(framework, kind).await else {
        return;
    };
    let http = client();
    // The first message gives the client its id cookie; both tabs then share it.
    post_form(&http, &server, &[("level", "info"), ("text", "first")]).await;

    let tab = |name: &'static str| {
        let http = http.clone();
        let url_add = server.url("/api/messages");
        let url_read = server.url("/api/messages");
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..25 {
                let response = http
                    .post(&url_add)
                    .json(&json!({"level": "info", "text": format!("{name}-{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
                let listed: Vec<HashMap<String, Value>> = http
                    .get(&url_read)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                seen.extend(
                    listed
                        .into_iter()
                        .map(|m| m["message"].as_str().unwrap().to_owned()),
                );
            }
            seen
        })
    };
    let (a, b) = tokio::join!(tab("a"), tab("b"));
    let mut seen: Vec<String> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    let (_, body) = get_page(&http, &server).await;
    seen.extend(page::texts(&body));

    let mut expected: Vec<String> = (0..25)
        .flat_map(|i| [format!("a-{i}"), format!("b-{i}")])
        .collect();
    expected.push("first".to_owned());
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "every message shown in exactly one tab");
    server.stop().await;
}
