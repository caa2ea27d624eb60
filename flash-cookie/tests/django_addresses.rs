//! Addressed messages in Django's cookie format: Django's `messages` value stays exactly what
//! Django writes and reads, the addresses ride beside it in `messages_to`, bound to that value.
#![cfg(feature = "django")]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::sync::Arc;

use flash_cookie::{CookieStorage, DjangoCodec};
use flash_core::adapter::{Adapter, RequestParts, Slot};
use flash_core::{Level, Message};
use serde_json::Value;

const SECRET: &str = "interop-test-secret-key-0123456789";
const FIXED_TIME: u64 = 1_767_225_600;

/// The cookie vectors real Django wrote: `FLASH_DJANGO_VECTORS` if set, else this crate's copy.
fn django_value(case: &str) -> String {
    let dir = std::env::var_os("FLASH_DJANGO_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(dir.join("cookie_vectors.json")).unwrap();
    let vectors: Value = serde_json::from_str(&text).unwrap();
    let case = vectors["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == case)
        .unwrap();
    case["cookie"]["value"].as_str().unwrap().to_owned()
}

fn adapter() -> Adapter {
    let codec = DjangoCodec::new(SECRET).with_clock(|| FIXED_TIME);
    Adapter::new(Arc::new(CookieStorage::from_codec(codec)))
}

/// One request through the adapter contract: `handler` gets the handle (when it asks) and
/// returns the status and `Location`; the response's `Set-Cookie` lines come back as pairs.
async fn send(
    adapter: &Adapter,
    method: &str,
    uri: &str,
    mode: &str,
    cookies: &[(String, String)],
    add: Option<Message>,
    location: Option<&str>,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut builder = flash_core::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("sec-fetch-mode", mode);
    if !cookies.is_empty() {
        let line: Vec<String> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        builder = builder.header("cookie", line.join("; "));
    }
    let mut request = builder.body(()).unwrap();
    let in_flight = adapter.begin_with(RequestParts::from(&request));
    request.extensions_mut().insert(in_flight.slot());
    let (parts, ()) = request.into_parts();
    let messages = parts
        .extensions
        .get::<Slot>()
        .unwrap()
        .messages(RequestParts::from(&parts))
        .unwrap();
    let mut shown = Vec::new();
    if let Some(message) = add {
        messages.add(message);
    } else if location.is_none() {
        shown = messages
            .read()
            .await
            .unwrap()
            .iter()
            .map(|m| m.text.clone())
            .collect();
    }
    let mut response = flash_core::http::Response::builder();
    response = match location {
        Some(location) => response.status(303).header("location", location),
        None => response.status(200),
    };
    let response = in_flight.finish(response.body(()).unwrap()).await;
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|line| {
            let pair = line.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect();
    (shown, set)
}

fn value<'a>(set: &'a [(String, String)], name: &str) -> Option<&'a str> {
    set.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A redirect's message: `messages` holds exactly the value Django writes for it (the Django
/// vector), `messages_to` its address; a `fetch` neither sees nor consumes it, the target's
/// page load shows it, once.
#[tokio::test]
async fn djangos_value_is_untouched_and_the_address_rides_beside() {
    let adapter = adapter();
    let saved = Message::new(Level::SUCCESS, "Profile saved.").with_extra_tags("");
    let (_, set) = send(
        &adapter,
        "POST",
        "/profile/edit",
        "navigate",
        &[],
        Some(saved),
        Some("/profile"),
    )
    .await;
    assert_eq!(
        value(&set, "messages"),
        Some(django_value("single_success").as_str())
    );
    assert!(value(&set, "messages_to").is_some(), "{set:?}");
    let jar = set.clone();

    let (shown, after_fetch) =
        send(&adapter, "GET", "/api/messages", "cors", &jar, None, None).await;
    assert!(shown.is_empty(), "a fetch showed {shown:?}");
    // Held, so what is stored stays as it was (rewritten at most, to the same value).
    for name in ["messages", "messages_to"] {
        if let Some(after) = value(&after_fetch, name) {
            assert_eq!(Some(after), value(&jar, name), "{name}");
        }
    }
    let (shown, _) = send(&adapter, "GET", "/", "navigate", &jar, None, None).await;
    assert!(shown.is_empty(), "another page showed {shown:?}");
    let (shown, after) = send(&adapter, "GET", "/profile", "navigate", &jar, None, None).await;
    assert_eq!(shown, ["Profile saved."]);
    // Consumed: both cookies deleted.
    assert_eq!(value(&after, "messages"), Some(""));
    assert_eq!(value(&after, "messages_to"), Some(""));
}

/// A `messages` value Django rewrote (or wrote itself) no longer matches the addresses: its
/// messages read unaddressed and the next read shows them, as Django would; a tampered
/// `messages_to` is ignored the same way.
#[tokio::test]
async fn addresses_of_another_value_are_ignored() {
    let adapter = adapter();
    let (_, set) = send(
        &adapter,
        "POST",
        "/form",
        "navigate",
        &[],
        Some(Message::new(Level::INFO, "Info message").with_extra_tags("")),
        Some("/elsewhere"),
    )
    .await;
    let to = value(&set, "messages_to").unwrap().to_owned();
    // The same messages, as Django wrote them: the very bytes, so the addresses still apply.
    assert_eq!(
        value(&set, "messages"),
        Some(django_value("single_info").as_str())
    );

    // Django's app replaced the value with another list.
    let django = django_value("single_warning");
    let jar = [
        ("messages".to_owned(), django.clone()),
        ("messages_to".to_owned(), to.clone()),
    ];
    let (shown, _) = send(&adapter, "GET", "/api", "cors", &jar, None, None).await;
    assert_eq!(shown, ["Disk almost full"]);

    // A tampered addresses cookie over the value it was made for.
    let mut tampered = to.clone();
    tampered.insert(0, 'A');
    let jar = [
        ("messages".to_owned(), django_value("single_info")),
        ("messages_to".to_owned(), tampered),
    ];
    let (shown, _) = send(&adapter, "GET", "/api", "cors", &jar, None, None).await;
    assert_eq!(shown, ["Info message"]);

    // The genuine pair: held for its page.
    let jar = [
        ("messages".to_owned(), django_value("single_info")),
        ("messages_to".to_owned(), to),
    ];
    let (shown, _) = send(&adapter, "GET", "/api", "cors", &jar, None, None).await;
    assert!(shown.is_empty());
}
