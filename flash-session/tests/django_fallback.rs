//! Django's default message storage, `FallbackStorage(CookieStorage, SessionStorage)`, rebuilt
//! as `Fallback(CookieStorage::django, SessionStorage)` and checked against what real Django 5.2
//! did (`tests/vectors/fallback_vectors.json`, copied from the shared Django vectors).

use std::sync::Arc;

use flash_cookie::{CookieStorage, DjangoCodec, Fallback};
use flash_core::http::HeaderMap;
use flash_core::http::header::{COOKIE, SET_COOKIE};
use flash_core::{
    Level, Limits, Message, Messages, MessagesConfig,
    storage::{Incoming, Storage},
};
use flash_session::{MemorySession, SessionStorage};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Vectors {
    meta: Meta,
    cases: Vec<Value>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "SECRET_KEY")]
    secret_key: String,
    fixed_time: u64,
}

fn vectors() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/fallback_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("fallback vectors");
    serde_json::from_str(&text).expect("fallback vectors parse")
}

fn case<'a>(vectors: &'a Vectors, name: &str) -> &'a Value {
    vectors
        .cases
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn codec(meta: &Meta) -> DjangoCodec {
    let time = meta.fixed_time;
    DjangoCodec::new(&meta.secret_key).with_clock(move || time)
}

/// Django's default storage, with the vectors' secret and clock.
fn django_default(meta: &Meta) -> Arc<dyn Storage> {
    Arc::new(Fallback::new(
        CookieStorage::from_codec(codec(meta)),
        SessionStorage::<MemorySession>::new(),
    ))
}

/// A request carrying `cookie` (the `messages` cookie value, if any) and `session`.
fn request(cookie: Option<&str>, session: &MemorySession) -> Incoming {
    let mut headers = HeaderMap::new();
    if let Some(value) = cookie {
        headers.insert(COOKIE, format!("messages={value}").parse().expect("header"));
    }
    let mut incoming = Incoming::from_headers(&headers);
    incoming.extensions_mut().insert(session.clone());
    incoming
}

fn all_levels() -> Arc<MessagesConfig> {
    Arc::new(MessagesConfig::default().with_level(Level::new(0)))
}

/// The `messages` value a response sets (`None`: no `Set-Cookie` at all; `Some("")`: deleted).
fn set_value(response: &HeaderMap) -> Option<String> {
    let line = response.get(SET_COOKIE)?.to_str().expect("ASCII");
    assert!(line.starts_with("messages="), "{line}");
    let value = line
        .split(';')
        .next()
        .and_then(|p| p.strip_prefix("messages="))
        .expect("value");
    let deleted = line.contains("Max-Age=0") || value.is_empty() || value == "\"\"";
    Some(if deleted {
        String::new()
    } else {
        value.to_owned()
    })
}

fn input(case: &Value) -> Vec<Message> {
    case["input"]
        .as_array()
        .expect("input")
        .iter()
        .map(|m| {
            let mut message = Message::new(
                Level::new(m["level"].as_i64().expect("level") as i32),
                m["message"].as_str().expect("message"),
            );
            message.extra_tags = m["extra_tags"].as_str().map(str::to_owned);
            message.trusted_html = m["safe"].as_bool().expect("safe");
            message
        })
        .collect()
}

/// `len` pseudo-random alphanumeric characters (a fixed xorshift sequence).
fn incompressible(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

#[tokio::test]
async fn overflow_keeps_the_oldest_in_the_cookie_and_the_rest_in_the_session() {
    let vectors = vectors();
    let case = case(&vectors, "overflow_15x200");
    let storage = django_default(&vectors.meta);
    let session = MemorySession::new();
    let messages = input(case);

    let post = Messages::new(storage.clone(), request(None, &session), all_levels());
    for m in &messages {
        assert!(post.add(m.clone()));
    }
    let mut response = HeaderMap::new();
    let report = post.save(&mut response).await.expect("save");
    assert!(report.dropped.is_empty(), "Django left nothing unstored");

    // The cookie: the oldest messages that fit, then the not-finished marker. Django's value is
    // zlib-compressed, and another zlib gives other bytes: compare what it decodes to.
    let value = set_value(&response).expect("a messages cookie");
    assert!(value.len() <= 2048, "{}", value.len());
    let in_cookie = codec(&vectors.meta)
        .decode(&value)
        .expect("our cookie decodes");
    assert!(
        !in_cookie.complete,
        "the cookie ends with the not-finished marker"
    );
    let django_cookie = codec(&vectors.meta)
        .decode(case["cookie"]["value"].as_str().expect("value"))
        .expect("Django's cookie decodes");
    assert_eq!(in_cookie.messages, django_cookie.messages);
    assert_eq!(texts(&in_cookie.messages), texts(&messages[..9]));

    // The session: exactly the text Django kept under `_messages`.
    let entries = session.entries();
    assert_eq!(
        entries["_messages"],
        Value::String(
            case["session_value"]
                .as_str()
                .expect("session_value")
                .to_owned()
        )
    );

    // Read back in order, then both are emptied.
    let get = Messages::new(storage, request(Some(&value), &session), all_levels());
    let read = get.read().await.expect("read");
    let order: Vec<&str> = read.iter().map(|m| &m.text[..2]).collect();
    let want: Vec<&str> = case["read_back_order"]
        .as_array()
        .expect("order")
        .iter()
        .map(|v| v.as_str().expect("str"))
        .collect();
    assert_eq!(order, want);
    let mut response = HeaderMap::new();
    get.save(&mut response).await.expect("save");
    assert_eq!(
        set_value(&response).as_deref(),
        Some(""),
        "the cookie is deleted"
    );
    assert_eq!(
        Value::Object(session.entries().into_iter().collect()),
        case["after_read_session"]
    );
}

#[tokio::test]
async fn a_message_too_large_for_the_cookie_goes_to_the_session() {
    let vectors = vectors();
    let case = case(&vectors, "single_5000_char_message");
    let storage = django_default(&vectors.meta);
    let session = MemorySession::new();
    // Django's text was random: it does not compress into the cookie either.
    let text = incompressible(5000);

    // Django has no limit on a message's text: this one is above flash's default 4 KiB.
    let config = MessagesConfig::default()
        .with_level(Level::new(0))
        .with_limits(Limits::default().with_max_text_len(8192));
    let post = Messages::new(storage.clone(), request(None, &session), Arc::new(config));
    assert!(post.add(Message::new(Level::INFO, text.clone()).with_extra_tags("")));
    let mut response = HeaderMap::new();
    post.save(&mut response).await.expect("save");

    // Uncompressed, so byte for byte Django's: the cookie holds only the marker.
    let value = set_value(&response).expect("a messages cookie");
    assert_eq!(value, case["cookie"]["value"].as_str().expect("value"));
    let stored = session.entries()["_messages"].clone();
    assert_eq!(
        stored.as_str().expect("a JSON text").len() as u64,
        case["session_value_length"].as_u64().expect("length")
    );

    let get = Messages::new(storage, request(Some(&value), &session), all_levels());
    assert_eq!(texts(&get.read().await.expect("read")), [text.as_str()]);
}

#[tokio::test]
async fn a_marker_only_cookie_reads_the_session() {
    let vectors = vectors();
    let case = case(&vectors, "sentinel_only_cookie_plus_session");
    let storage = django_default(&vectors.meta);
    let cookie = case["cookie_value"].as_str().expect("cookie_value");
    let seed = || {
        let session = MemorySession::new();
        session.set(
            "_messages",
            Value::String(case["session_value"].as_str().expect("session").to_owned()),
        );
        session
    };
    let result = &case["result"];
    let want: Vec<&str> = result["iterated"]
        .as_array()
        .expect("iterated")
        .iter()
        .map(|m| m["message"].as_str().expect("message"))
        .collect();

    // Not iterated: nothing is written, as in Django.
    let session = seed();
    let peek = Messages::new(
        storage.clone(),
        request(Some(cookie), &session),
        all_levels(),
    );
    assert_eq!(texts(&peek.peek().await.expect("peek")), want);
    let mut response = HeaderMap::new();
    peek.save(&mut response).await.expect("save");
    assert!(result["response_cookie_if_not_iterated"].is_null());
    assert_eq!(set_value(&response), None);
    assert_eq!(session.entries().len(), 1, "the session keeps its message");

    // Iterated: the session's key is gone. Django leaves the marker-only cookie in place
    // (`response_cookie_after_full_read` is null); flash may delete it, but never sets a value.
    let session = seed();
    let get = Messages::new(storage, request(Some(cookie), &session), all_levels());
    assert_eq!(texts(&get.read().await.expect("read")), want);
    let mut response = HeaderMap::new();
    get.save(&mut response).await.expect("save");
    assert!(result["response_cookie_after_full_read"].is_null());
    assert!(matches!(set_value(&response).as_deref(), None | Some("")));
    assert_eq!(
        Value::Object(session.entries().into_iter().collect()),
        result["session_after_full_read"]
    );
}

#[tokio::test]
async fn without_a_cookie_the_session_is_not_read() {
    let vectors = vectors();
    let case = case(&vectors, "no_cookie_session_has_data");
    let storage = django_default(&vectors.meta);
    let session = MemorySession::new();
    session.set(
        "_messages",
        Value::String(case["session_value"].as_str().expect("session").to_owned()),
    );
    let result = &case["result"];

    let get = Messages::new(storage, request(None, &session), all_levels());
    let read = get.read().await.expect("read");
    assert_eq!(
        read.len(),
        result["iterated"].as_array().expect("iterated").len()
    );
    assert!(read.is_empty());
    let mut response = HeaderMap::new();
    get.save(&mut response).await.expect("save");
    assert_eq!(set_value(&response), None);
    assert_eq!(
        Value::Object(session.entries().into_iter().collect()),
        result["session_after_full_read"]
    );
}
