//! What `SessionStorage` keeps under `_messages`, checked against the values real Django 5.2
//! keeps (`tests/vectors/session_vectors.json`, copied from the shared Django vectors).

use std::sync::Arc;

use flash_core::http::HeaderMap;
use flash_core::{
    Level, Message, Messages, MessagesConfig,
    storage::{Incoming, Storage},
};
use flash_session::{MemorySession, SessionStorage};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    input: Vec<Input>,
    session_key: Option<String>,
    session_value: Option<String>,
    #[serde(default)]
    decoded_by_django: Vec<Decoded>,
    session_after: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct Input {
    level: i32,
    message: String,
    extra_tags: Option<String>,
    safe: bool,
}

#[derive(Deserialize)]
struct Decoded {
    level: i32,
    message: String,
    extra_tags: Option<String>,
    safe: bool,
    level_tag: String,
    tags: String,
}

fn vectors() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/session_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("session vectors");
    serde_json::from_str(&text).expect("session vectors parse")
}

fn message(input: &Input) -> Message {
    let mut m = Message::new(Level::new(input.level), input.message.clone());
    m.extra_tags = input.extra_tags.clone();
    m.trusted_html = input.safe;
    m
}

fn storage() -> Arc<dyn Storage> {
    Arc::new(SessionStorage::<MemorySession>::new())
}

fn request(session: &MemorySession) -> Incoming {
    let mut incoming = Incoming::default();
    incoming.extensions_mut().insert(session.clone());
    incoming
}

/// Messages at every level are kept, like Django's tests.
fn config() -> Arc<MessagesConfig> {
    Arc::new(MessagesConfig::default().with_level(Level::new(0)))
}

#[tokio::test]
async fn stores_what_django_stores() {
    let cases = vectors().cases;
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.session_value.is_some()) {
        let session = MemorySession::new();
        let messages = Messages::new(storage(), request(&session), config());
        for input in &case.input {
            assert!(messages.add(message(input)), "{}", case.name);
        }
        let mut response = HeaderMap::new();
        messages.save(&mut response).await.expect("save");
        assert!(
            response.is_empty(),
            "{}: a session storage sets no cookie",
            case.name
        );
        let entries = session.entries();
        let key = case.session_key.as_deref().expect("session_key");
        assert_eq!(entries.len(), 1, "{}", case.name);
        assert_eq!(
            entries[key],
            Value::String(case.session_value.clone().expect("session_value")),
            "{}",
            case.name
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} cases had a session value");
}

#[tokio::test]
async fn reads_what_django_stores() {
    for case in vectors().cases.iter().filter(|c| c.session_value.is_some()) {
        let session = MemorySession::new();
        session.set(
            case.session_key.clone().expect("session_key"),
            Value::String(case.session_value.clone().expect("session_value")),
        );
        let messages = Messages::new(storage(), request(&session), config());
        let read = messages.read().await.expect("read");
        assert_eq!(read.len(), case.decoded_by_django.len(), "{}", case.name);
        for (got, want) in read.iter().zip(&case.decoded_by_django) {
            assert_eq!(got.level.value(), want.level, "{}", case.name);
            assert_eq!(got.text, want.message, "{}", case.name);
            assert_eq!(got.extra_tags, want.extra_tags, "{}", case.name);
            assert_eq!(got.trusted_html, want.safe, "{}", case.name);
            let tags = messages.level_tags();
            assert_eq!(got.level_tag_in(tags), want.level_tag, "{}", case.name);
            assert_eq!(got.tags_in(tags), want.tags, "{}", case.name);
        }
        // Read in full: the key goes, as in Django's `consumed_removes_key`.
        messages.save(&mut HeaderMap::new()).await.expect("save");
        assert!(session.entries().is_empty(), "{}", case.name);
    }
}

#[tokio::test]
async fn consumed_removes_key() {
    let cases = vectors().cases;
    let case = cases
        .iter()
        .find(|c| c.name == "consumed_removes_key")
        .expect("the consumed_removes_key case");
    let session = MemorySession::new();
    let post = Messages::new(storage(), request(&session), config());
    post.info("shown once");
    post.save(&mut HeaderMap::new()).await.expect("save");
    assert!(!session.entries().is_empty());
    let get = Messages::new(storage(), request(&session), config());
    assert_eq!(get.read().await.expect("read").len(), 1);
    get.save(&mut HeaderMap::new()).await.expect("save");
    let after: serde_json::Map<String, Value> = session.entries().into_iter().collect();
    assert_eq!(Some(after), case.session_after);
}

#[tokio::test]
async fn unreadable_value_means_no_messages_and_is_replaced() {
    for bad in [
        Value::String("not json".into()),
        Value::String(r#"[["__json_message", 0, 20]]"#.into()),
        Value::from(42),
        serde_json::json!({"a": 1}),
        serde_json::json!([[1, 2, 3]]),
    ] {
        // Read and not consumed: the bad value is removed anyway.
        let session = MemorySession::new();
        session.set("_messages", bad.clone());
        let messages = Messages::new(storage(), request(&session), config());
        assert_eq!(messages.len().await.expect("len"), 0, "{bad}");
        messages.save(&mut HeaderMap::new()).await.expect("save");
        assert!(session.entries().is_empty(), "{bad}");

        // Only added: the bad value is replaced by the new message.
        session.set("_messages", bad.clone());
        let messages = Messages::new(storage(), request(&session), config());
        messages.info("fresh");
        messages.save(&mut HeaderMap::new()).await.expect("save");
        assert_eq!(
            session.entries()["_messages"],
            r#"[["__json_message", 0, 20, "fresh"]]"#,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn adding_appends_to_what_the_session_holds() {
    let session = MemorySession::new();
    for text in ["one", "two"] {
        let messages = Messages::new(storage(), request(&session), config());
        messages.info(text);
        messages.save(&mut HeaderMap::new()).await.expect("save");
    }
    assert_eq!(
        session.entries()["_messages"],
        r#"[["__json_message", 0, 20, "one"], ["__json_message", 0, 20, "two"]]"#
    );
    // Other session keys are left alone.
    session.set("user", Value::from(7));
    let messages = Messages::new(storage(), request(&session), config());
    assert_eq!(messages.read().await.expect("read").len(), 2);
    messages.save(&mut HeaderMap::new()).await.expect("save");
    assert_eq!(
        session.entries().into_iter().collect::<Vec<_>>(),
        [("user".to_owned(), Value::from(7))]
    );
}

#[tokio::test]
async fn custom_key() {
    let session = MemorySession::new();
    let storage: Arc<dyn Storage> =
        Arc::new(SessionStorage::<MemorySession>::new().with_session_key("flash"));
    let messages = Messages::new(storage, request(&session), config());
    messages.error("x");
    messages.save(&mut HeaderMap::new()).await.expect("save");
    assert_eq!(session.entries().keys().collect::<Vec<_>>(), ["flash"]);
}

#[tokio::test]
async fn without_a_session_is_a_config_error_naming_the_layer() {
    let storage = storage();
    assert!(storage.uses_extensions());
    let err = storage
        .load(&Incoming::default())
        .await
        .expect_err("no session");
    assert_eq!(err.kind(), flash_core::ErrorKind::Config);
    assert!(err.to_string().contains("MemorySession"), "{err}");

    let messages = Messages::new(storage, Incoming::default(), config());
    messages.info("lost?");
    let err = messages
        .save(&mut HeaderMap::new())
        .await
        .expect_err("no session");
    assert_eq!(err.kind(), flash_core::ErrorKind::Config);
}

#[cfg(feature = "tower-sessions")]
#[tokio::test]
async fn tower_sessions_missing_layer_message() {
    let storage = flash_session::TowerSessionStorage::new();
    let err = storage
        .load(&Incoming::default())
        .await
        .expect_err("no session");
    assert_eq!(err.kind(), flash_core::ErrorKind::Config);
    assert!(
        err.to_string()
            .contains("add tower_sessions::SessionManagerLayer outside the flash layer"),
        "{err}"
    );
}
