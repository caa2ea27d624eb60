//! `CookieStorage` in flash's format: attributes, limits, bad cookies, rotation.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use flash_cookie::{Codec, CookieStorage, FlashCodec, MAX_SET_COOKIE_LEN};
use flash_core::SameSite;
use flash_core::http::HeaderMap;
use flash_core::http::header::{COOKIE, SET_COOKIE};
use flash_core::{
    CookieOptions, ErrorKind, Key, Keys, Level, Message,
    storage::{Incoming, Overflow, Storage, Update},
};

fn keys() -> Keys {
    Keys::new(Key::from_bytes(&[42; 32]))
}

fn request(value: Option<&str>) -> Incoming {
    let mut headers = HeaderMap::new();
    if let Some(value) = value {
        headers.insert(COOKIE, format!("messages={value}").parse().unwrap());
    }
    Incoming::from_headers(&headers)
}

fn lines(response: &HeaderMap) -> Vec<String> {
    response
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn value_of(line: &str) -> &str {
    line.split(';').next().unwrap().split_once('=').unwrap().1
}

fn added(messages: Vec<Message>) -> Update {
    Update::new(None).with_added(messages)
}

async fn save(
    storage: &CookieStorage,
    incoming: &Incoming,
    update: Update,
) -> (Vec<String>, Vec<Message>) {
    let mut response = HeaderMap::new();
    let unstored = storage.save(incoming, update, &mut response).await.unwrap();
    (lines(&response), unstored)
}

fn texts(n: usize, len: usize) -> Vec<Message> {
    (0..n)
        .map(|i| Message::new(Level::INFO, format!("{i:03}-{}", "x".repeat(len))))
        .collect()
}

#[tokio::test]
async fn the_cookie_has_the_default_attributes_and_round_trips() {
    let storage = CookieStorage::new(keys());
    let (set, unstored) = save(&storage, &request(None), added(texts(2, 10))).await;
    assert!(unstored.is_empty());
    assert_eq!(set.len(), 1);
    let line = &set[0];
    assert!(line.starts_with("messages="), "{line}");
    assert!(line.ends_with("; HttpOnly; SameSite=Lax; Path=/"), "{line}");
    assert!(
        !line.contains("Max-Age"),
        "a browser-session cookie: {line}"
    );

    let loaded = storage.load(&request(Some(value_of(line)))).await.unwrap();
    assert_eq!(loaded.messages, texts(2, 10));
    assert!(loaded.complete);
}

#[tokio::test]
async fn the_deletion_cookie_carries_the_same_attributes() {
    let options = CookieOptions::default()
        .domain("example.com")
        .same_site(Some(SameSite::None));
    let storage = CookieStorage::new(keys()).with_cookie_options(options);
    let (set, _) = save(&storage, &request(None), added(texts(1, 1))).await;
    assert!(
        set[0].contains("Secure"),
        "SameSite=None forces Secure: {}",
        set[0]
    );
    let value = value_of(&set[0]).to_owned();

    let incoming = request(Some(&value));
    let loaded = storage.load(&incoming).await.unwrap();
    let update = Update::new(Some(loaded.token)).with_consumed(true);
    let (set, _) = save(&storage, &incoming, update).await;
    assert_eq!(set.len(), 1);
    for attribute in [
        "messages=;",
        "Max-Age=0",
        "Domain=example.com",
        "Path=/",
        "SameSite=None",
        "Secure",
        "HttpOnly",
    ] {
        assert!(set[0].contains(attribute), "{attribute} in {}", set[0]);
    }
}

#[tokio::test]
async fn consumed_without_a_cookie_writes_nothing() {
    let storage = CookieStorage::new(keys());
    let incoming = request(None);
    let loaded = storage.load(&incoming).await.unwrap();
    let update = Update::new(Some(loaded.token)).with_consumed(true);
    assert_eq!(
        save(&storage, &incoming, update).await.0,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn loaded_and_left_alone_writes_nothing() {
    let storage = CookieStorage::new(keys());
    let (set, _) = save(&storage, &request(None), added(texts(2, 1))).await;
    let incoming = request(Some(value_of(&set[0])));
    let loaded = storage.load(&incoming).await.unwrap();
    let update = Update::new(Some(loaded.token)).with_unread(loaded.messages);
    assert!(save(&storage, &incoming, update).await.0.is_empty());
}

#[tokio::test]
async fn adding_without_loading_keeps_what_the_cookie_holds() {
    let storage = CookieStorage::new(keys());
    let (set, _) = save(&storage, &request(None), added(texts(2, 1))).await;
    let incoming = request(Some(value_of(&set[0])));
    let (set, _) = save(
        &storage,
        &incoming,
        added(vec![Message::new(Level::ERROR, "new")]),
    )
    .await;
    let loaded = storage
        .load(&request(Some(value_of(&set[0]))))
        .await
        .unwrap();
    let mut expected = texts(2, 1);
    expected.push(Message::new(Level::ERROR, "new"));
    assert_eq!(loaded.messages, expected);
}

#[tokio::test]
async fn too_many_messages_keep_the_newest_and_report_the_dropped() {
    let storage = CookieStorage::new(keys());
    let messages = texts(30, 100);
    // The warning it logs is checked in tests/drop_warning.rs, a binary of its own: a
    // subscriber set for one test's thread races the other tests' threads here.
    let (set, dropped) = save(&storage, &request(None), added(messages.clone())).await;

    assert_eq!(set.len(), 1);
    let value = value_of(&set[0]);
    assert!(value.len() <= 2048, "{}", value.len());
    let kept = storage.load(&request(Some(value))).await.unwrap();
    assert!(kept.complete, "flash's format marks nothing when dropping");
    assert!(!dropped.is_empty() && !kept.messages.is_empty());
    // The dropped are the oldest, the kept the newest, and together they are everything.
    let mut all = dropped.clone();
    all.extend(kept.messages.clone());
    assert_eq!(all, messages);
    // As many as fit: one more would not.
    let one_more = &messages[dropped.len() - 1..];
    let bigger = FlashCodec::new(keys())
        .encode("messages", one_more, false)
        .unwrap();
    assert!(bigger.len() > 2048);
}

#[tokio::test]
async fn nothing_fits_drops_everything_and_deletes_the_cookie() {
    let storage = CookieStorage::new(keys());
    let (set, _) = save(&storage, &request(None), added(texts(1, 1))).await;
    let incoming = request(Some(value_of(&set[0])));
    let loaded = storage.load(&incoming).await.unwrap();
    let update = Update::new(Some(loaded.token))
        .with_consumed(true)
        .with_added(texts(1, 3000));
    let (set, dropped) = save(&storage, &incoming, update).await;
    assert_eq!(dropped, texts(1, 3000));
    assert_eq!(set.len(), 1);
    assert!(set[0].contains("Max-Age=0"), "{}", set[0]);
}

#[tokio::test]
async fn the_set_cookie_line_never_exceeds_4096_bytes() {
    let long_domain = format!("{}.example.com", "d".repeat(200));
    for storage in [
        CookieStorage::new(keys()).with_max_size(1 << 20),
        CookieStorage::new(keys())
            .with_max_size(1 << 20)
            .with_cookie_options(
                CookieOptions::default()
                    .domain(long_domain.clone())
                    .secure(true),
            ),
    ] {
        assert!(storage.max_size() < MAX_SET_COOKIE_LEN);
        for n in [1, 5, 15, 60] {
            let (set, dropped) = save(&storage, &request(None), added(texts(n, 150))).await;
            assert!(set[0].len() <= MAX_SET_COOKIE_LEN, "{} bytes", set[0].len());
            assert_eq!(dropped.is_empty(), n <= 15, "{n}");
        }
    }
    // A limit below the envelope keeps nothing rather than writing a larger cookie.
    let tiny = CookieStorage::new(keys()).with_max_size(10);
    let (set, dropped) = save(&tiny, &request(None), added(texts(1, 1))).await;
    assert!(set.is_empty());
    assert_eq!(dropped.len(), 1);
}

#[tokio::test]
async fn spilling_keeps_the_oldest_and_marks_the_cookie() {
    let storage = CookieStorage::new(keys());
    let messages = texts(30, 100);
    let update = added(messages.clone()).with_overflow(Overflow::Spill);
    let (set, rest) = save(&storage, &request(None), update).await;
    let kept = storage
        .load(&request(Some(value_of(&set[0]))))
        .await
        .unwrap();
    assert!(!kept.complete);
    let mut all = kept.messages.clone();
    all.extend(rest);
    assert_eq!(all, messages);
}

#[tokio::test]
async fn bad_cookies_mean_no_messages_and_are_deleted() {
    let storage = CookieStorage::new(keys());
    let (set, _) = save(&storage, &request(None), added(texts(2, 5))).await;
    let valid = value_of(&set[0]).to_owned();
    let other_key = CookieStorage::new(Keys::new(Key::from_bytes(&[1; 32])));
    let (other, _) = save(&other_key, &request(None), added(texts(2, 5))).await;
    let renamed = FlashCodec::new(keys())
        .encode("flash", &texts(2, 5), false)
        .unwrap();
    let bad = [
        valid[1..].to_owned(),
        valid[..valid.len() - 1].to_owned(),
        valid.replace('.', ""),
        format!("{valid}."),
        format!("A{valid}"),
        value_of(&other[0]).to_owned(),
        renamed,
        "garbage".to_owned(),
        ".".to_owned(),
        "x".repeat(5000),
    ];
    for value in bad {
        let incoming = request(Some(&value));
        let loaded = storage.load(&incoming).await.unwrap();
        assert!(loaded.messages.is_empty(), "{value}");
        let update = Update::new(Some(loaded.token));
        let (set, _) = save(&storage, &incoming, update).await;
        assert_eq!(set.len(), 1, "{value}");
        assert!(
            set[0].starts_with("messages=;") && set[0].contains("Max-Age=0"),
            "{}",
            set[0]
        );
    }
}

#[test]
fn errors_say_what_failed() {
    let codec = FlashCodec::new(keys());
    let value = codec.encode("messages", &texts(1, 1), false).unwrap();
    assert_eq!(
        codec.decode("other", &value).unwrap_err().kind(),
        ErrorKind::Integrity
    );
    assert_eq!(
        codec.decode("messages", "abc").unwrap_err().kind(),
        ErrorKind::Integrity
    );
    // Validly signed, not messages: a decode error, with serde_json's cause.
    let payload = br#"{"not":"a list"}"#;
    let forged = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}",
            engine.encode(payload),
            engine.encode(keys().sign("messages", payload))
        )
    };
    let err = codec.decode("messages", &forged).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn rotation_signs_with_the_new_key_and_reads_the_old() {
    let old = Key::derive("the old secret, long enough for a key", "flash.cookie");
    let new = Key::derive("the new secret, long enough for a key", "flash.cookie");
    let before = FlashCodec::new(Keys::new(old.clone()));
    let during = FlashCodec::new(Keys::new(new.clone()).with_fallback(old.clone()));
    let after = FlashCodec::new(Keys::new(new));

    let old_value = before.encode("messages", &texts(1, 1), false).unwrap();
    assert_eq!(
        during.decode("messages", &old_value).unwrap().messages,
        texts(1, 1)
    );
    assert!(after.decode("messages", &old_value).is_err());

    let new_value = during.encode("messages", &texts(1, 1), false).unwrap();
    assert!(after.decode("messages", &new_value).is_ok());
    assert!(before.decode("messages", &new_value).is_err());
}

#[test]
fn debug_shows_no_key_material() {
    let storage = CookieStorage::new(Keys::new(Key::from_bytes(&[0xAB; 32])));
    let debug = format!("{storage:?}");
    assert!(
        !debug.to_lowercase().contains("ab, ab") && !debug.contains("171"),
        "{debug}"
    );
    assert!(debug.contains("FlashCodec"), "{debug}");
    assert!(matches!(storage.codec(), Codec::Flash(_)));
}
