//! Django interop: the vectors real Django wrote (`tests/vectors/`, see its README), read and
//! reproduced by the `django` format.
#![cfg(feature = "django")]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::sync::Arc;

use cookie::Cookie;
use flash_cookie::{CookieStorage, DjangoCodec, Fallback, NOT_FINISHED};
use flash_core::SameSite;
use flash_core::http::HeaderMap;
use flash_core::http::header::{COOKIE, SET_COOKIE};
use flash_core::{
    CookieOptions, Key, Keys, Level, Message, Messages, MessagesConfig,
    storage::{Incoming, MemoryStore, ServerStorage, Storage, Update},
};
use flash_testkit::CountingStore;
use serde_json::Value;

const SECRET: &str = "interop-test-secret-key-0123456789";
const OLD_SECRET: &str = "interop-old-secret-key-9876543210";
const FIXED_TIME: u64 = 1_767_225_600;

/// The vectors: `FLASH_DJANGO_VECTORS` if set, else the copy in this crate (CI has no other).
fn vectors(file: &str) -> Value {
    let dir = std::env::var_os("FLASH_DJANGO_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"),
        PathBuf::from,
    );
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn codec() -> DjangoCodec {
    DjangoCodec::new(SECRET).with_clock(|| FIXED_TIME)
}

fn options(settings: Option<&Value>) -> CookieOptions {
    let mut options = CookieOptions::default();
    let Some(settings) = settings else {
        return options;
    };
    if let Some(domain) = settings["SESSION_COOKIE_DOMAIN"].as_str() {
        options = options.domain(domain);
    }
    if let Some(secure) = settings["SESSION_COOKIE_SECURE"].as_bool() {
        options = options.secure(secure);
    }
    if let Some(http_only) = settings["SESSION_COOKIE_HTTPONLY"].as_bool() {
        options = options.http_only(http_only);
    }
    if let Some(same_site) = settings["SESSION_COOKIE_SAMESITE"].as_str() {
        options = options.same_site(Some(match same_site {
            "Strict" => SameSite::Strict,
            "None" => SameSite::None,
            _ => SameSite::Lax,
        }));
    }
    options
}

fn storage(settings: Option<&Value>) -> CookieStorage {
    CookieStorage::from_codec(codec()).with_cookie_options(options(settings))
}

fn message(v: &Value) -> Message {
    Message {
        level: Level::new(i32::try_from(v["level"].as_i64().unwrap()).unwrap()),
        text: v["message"].as_str().unwrap().to_owned(),
        extra_tags: v["extra_tags"].as_str().map(str::to_owned),
        trusted_html: v["safe"].as_bool().unwrap(),
        data: None,
        address: None,
    }
}

fn messages(list: &Value) -> Vec<Message> {
    list.as_array().unwrap().iter().map(message).collect()
}

/// Asserts that `ours` are Django's decoded messages, field by field, tags included.
fn assert_same(ours: &[Message], django: &Value, context: &str) {
    let django = django.as_array().unwrap();
    assert_eq!(ours.len(), django.len(), "{context}: count");
    for (m, d) in ours.iter().zip(django) {
        let expected = message(d);
        assert_eq!(m.level, expected.level, "{context}");
        assert_eq!(m.text, expected.text, "{context}");
        assert_eq!(m.extra_tags, expected.extra_tags, "{context}");
        assert_eq!(m.trusted_html, expected.trusted_html, "{context}");
        let tags = flash_core::LevelTags::default();
        assert_eq!(
            m.level_tag_in(&tags),
            d["level_tag"].as_str().unwrap(),
            "{context}"
        );
        assert_eq!(m.tags_in(&tags), d["tags"].as_str().unwrap(), "{context}");
    }
}

fn request(cookie: Option<&str>) -> Incoming {
    let mut headers = HeaderMap::new();
    if let Some(value) = cookie {
        headers.insert(COOKIE, format!("messages={value}").parse().unwrap());
    }
    Incoming::from_headers(&headers)
}

fn set_cookies(response: &HeaderMap) -> Vec<Cookie<'static>> {
    response
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
        .collect()
}

fn is_removal(cookie: &Cookie<'_>) -> bool {
    cookie.value().is_empty() || cookie.max_age().is_some_and(|a| a.is_zero())
}

/// Compares our `Set-Cookie` with Django's, attribute by attribute. Where flash is stricter on
/// purpose it may add: `Secure` whenever `SameSite=None`; and the deletion cookie carries the
/// same attributes as the cookie (Django drops `HttpOnly` and `Secure` from it).
fn assert_same_line(ours: &Cookie<'_>, django: &str, context: &str) {
    let django = Cookie::parse(django.to_owned()).unwrap();
    assert_eq!(ours.name(), django.name(), "{context}");
    if is_removal(&django) {
        assert!(is_removal(ours), "{context}: not a deletion: {ours}");
    } else {
        assert_eq!(
            ours.http_only().unwrap_or(false),
            django.http_only().unwrap_or(false),
            "{context}"
        );
    }
    assert_eq!(ours.path(), django.path(), "{context}");
    assert_eq!(
        ours.domain().map(|d| d.trim_start_matches('.')),
        django.domain().map(|d| d.trim_start_matches('.')),
        "{context}"
    );
    assert_eq!(ours.same_site(), django.same_site(), "{context}");
    if django.secure() == Some(true) || ours.same_site() == Some(cookie::SameSite::None) {
        assert_eq!(ours.secure(), Some(true), "{context}");
    } else if !is_removal(&django) {
        assert_ne!(ours.secure(), Some(true), "{context}");
    }
    assert_eq!(
        ours.max_age().is_some(),
        django.max_age().is_some(),
        "{context}"
    );
}

/// Stores `input` the way Django's `update()` does for a request without a cookie.
async fn store(storage: &CookieStorage, input: Vec<Message>) -> (HeaderMap, Vec<Message>) {
    let mut response = HeaderMap::new();
    let unstored = storage
        .save(
            &request(None),
            Update::new(None).with_added(input),
            &mut response,
        )
        .await
        .unwrap();
    (response, unstored)
}

#[test]
fn key_derivation_is_the_one_recorded() {
    let meta = &vectors("cookie_vectors.json")["meta"];
    assert_eq!(meta["SECRET_KEY"], SECRET);
    assert_eq!(meta["fixed_time"], FIXED_TIME);
    assert_eq!(meta["key_salt"], flash_cookie::KEY_SALT);
    assert_eq!(meta["not_finished"], NOT_FINISHED);
    assert_eq!(meta["max_cookie_size"], flash_cookie::DEFAULT_MAX_SIZE);
    let signing = meta["signing"].as_str().unwrap();
    assert!(signing.contains(
        "sha256(b'django.contrib.messages' + b'signer' + b'django.http.cookies' + SECRET_KEY)"
    ));
}

#[tokio::test]
async fn every_case_decodes_and_encodes_as_django() {
    let cases = vectors("cookie_vectors.json")["cases"].clone();
    let mut checked = 0;
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let Some(decoded) = case.get("decoded_by_django") else {
            continue;
        };
        let value = case["cookie"]["value"].as_str().unwrap();
        let parts = &case["parts"];

        // Decoding Django's value gives Django's messages, tags and all_retrieved.
        let ours = codec()
            .decode(value)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same(&ours.messages, &decoded["iterated"], name);
        assert_eq!(
            ours.complete,
            decoded["_get_all_retrieved"].as_bool().unwrap(),
            "{name}"
        );

        // Encoding the input as Django's update() did.
        let input = messages(&case["input"]);
        let ours_value = if name == "empty_list_encode_empty" {
            codec().encode(&input, false).unwrap()
        } else {
            let storage = storage(case.get("settings"));
            let (response, unstored) = store(&storage, input).await;
            assert_same(&unstored, &case["unstored_returned_by_update"], name);
            let lines = set_cookies(&response);
            assert_eq!(lines.len(), 1, "{name}");
            assert_same_line(
                &lines[0],
                case["cookie"]["set_cookie_header"].as_str().unwrap(),
                name,
            );
            lines[0].value().to_owned()
        };
        if parts["compressed"] == false {
            assert_eq!(ours_value, value, "{name}: byte for byte");
        } else {
            // Another zlib gives other bytes: the value must decode to the same.
            assert!(
                ours_value.starts_with('.'),
                "{name}: compressed as Django did"
            );
            let back = codec().decode(&ours_value).unwrap();
            assert_same(&back.messages, &decoded["iterated"], name);
            assert_eq!(back.complete, ours.complete, "{name}");
            assert!(ours_value.len() <= 2048, "{name}");
        }
        checked += 1;
    }
    assert_eq!(checked, 18, "every case with a value was checked");
}

#[tokio::test]
async fn cases_without_a_value_write_what_django_wrote() {
    let cases = vectors("cookie_vectors.json")["cases"].clone();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        match name {
            // Nothing added or everything below the minimum level: no Set-Cookie at all.
            "empty_not_used" | "debug_filtered_default_level" => {
                assert!(case["cookie"].is_null(), "{name}");
                let config = MessagesConfig::default().with_level(Level::new(
                    i32::try_from(case["recording_level"].as_i64().unwrap_or(20)).unwrap(),
                ));
                let handle =
                    Messages::new(Arc::new(storage(None)), request(None), Arc::new(config));
                for m in messages(&case["input"]) {
                    handle.add(m);
                }
                let mut response = HeaderMap::new();
                handle.save(&mut response).await.unwrap();
                assert!(response.get(SET_COOKIE).is_none(), "{name}");
            }
            // Read and emptied: the cookie is deleted with Django's attributes. (Django also
            // deletes a cookie the request did not have; flash only deletes one it had.)
            "empty_used" | "attrs_overridden_delete" | "attrs_samesite_none_delete" => {
                let storage = storage(case.get("settings"));
                let existing = codec()
                    .encode(&[Message::new(Level::INFO, "x")], false)
                    .unwrap();
                let handle = Messages::new(
                    Arc::new(storage),
                    request(Some(&existing)),
                    Arc::new(MessagesConfig::default()),
                );
                assert_eq!(handle.read().await.unwrap().len(), 1);
                let mut response = HeaderMap::new();
                handle.save(&mut response).await.unwrap();
                let lines = set_cookies(&response);
                assert_eq!(lines.len(), 1, "{name}");
                assert_same_line(
                    &lines[0],
                    case["cookie"]["set_cookie_header"].as_str().unwrap(),
                    name,
                );
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn tampered_values_give_no_messages_and_are_deleted() {
    let tampered = vectors("cookie_vectors.json")["tampered"].clone();
    for case in tampered.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let value = case["cookie_value"].as_str().unwrap();
        let django = &case["cookie_storage"];
        // Django shows messages only for these (validly signed, well-formed for Django).
        let django_messages = django["iterated"]
            .as_array()
            .is_some_and(|list| list.iter().all(|m| m.get("level").is_some()))
            && django.get("_get_exception").is_none();

        let result = codec().decode(value);
        let failed = result.is_err();
        match name {
            "valid_reference" | "signed_level_is_string" | "signed_utf8_raw_json" => {
                assert!(django_messages, "{name}");
                let ours = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_same(&ours.messages, &django["iterated"], name);
                assert!(ours.complete, "{name}");
            }
            "signed_sentinel_only" => {
                let ours = result.unwrap();
                assert!(ours.messages.is_empty(), "{name}");
                assert!(!ours.complete, "{name}: all_retrieved is false");
                assert_eq!(django["_get_all_retrieved"], false);
            }
            _ => {
                // Tampered, wrongly signed, or signed but malformed (Django crashes on some
                // and shows raw strings for others): no messages.
                assert!(result.is_err(), "{name}: {result:?}");
            }
        }

        // Through the storage: never a panic; a bad value is deleted by a request that read it.
        let storage = storage(None);
        let incoming = request(Some(value).filter(|v| !v.is_empty()));
        let loaded = storage.load(&incoming).await.unwrap();
        let mut response = HeaderMap::new();
        storage
            .save(
                &incoming,
                Update::new(Some(loaded.token)).with_unread(loaded.messages),
                &mut response,
            )
            .await
            .unwrap();
        let deleted = set_cookies(&response).iter().any(is_removal);
        assert_eq!(deleted, failed && !value.is_empty(), "{name}");
        if let Some(line) = django["response_cookie_if_not_iterated"]["set_cookie_header"].as_str()
        {
            assert!(deleted, "{name}: Django deleted it");
            assert_same_line(&set_cookies(&response)[0], line, name);
        }
    }
}

#[test]
fn key_rotation_behaves_as_recorded() {
    let cases = vectors("cookie_vectors.json")["key_rotation"].clone();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let fallbacks: Vec<&str> = case["SECRET_KEY_FALLBACKS"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let codec = DjangoCodec::new(case["SECRET_KEY"].as_str().unwrap())
            .with_fallbacks(&fallbacks)
            .with_clock(|| FIXED_TIME);
        let value = case["cookie_value"].as_str().unwrap();
        if name == "new_signatures_always_use_current_key" {
            let input = [Message::new(Level::INFO, "signed with old key")];
            assert_eq!(codec.encode(&input, false).unwrap(), value, "{name}");
            assert!(
                DjangoCodec::new(OLD_SECRET).decode(value).is_err(),
                "{name}"
            );
            continue;
        }
        match case["decoded"].as_array() {
            Some(_) => {
                let ours = codec
                    .decode(value)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_same(&ours.messages, &case["decoded"], name);
            }
            None => assert!(codec.decode(value).is_err(), "{name}"),
        }
    }
}

fn incompressible(len: usize, seed: u64) -> String {
    // splitmix64: deterministic, and as incompressible for zlib as random text.
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            char::from(CHARS[usize::try_from((z ^ (z >> 31)) % 62).unwrap()])
        })
        .collect()
}

type Composed = Fallback<CookieStorage, ServerStorage<CountingStore<MemoryStore>>>;

/// Django's cookie in front of a keyed memory store; the store (clones share messages) and
/// its call counts.
fn fallback() -> (Composed, MemoryStore, flash_testkit::CallCounts) {
    let memory = MemoryStore::new();
    let store = CountingStore::new(memory.clone());
    let calls = store.counts();
    let keyed = ServerStorage::new(store, Keys::new(Key::generate()));
    (Fallback::new(storage(None), keyed), memory, calls)
}

/// A browser's jar for the fallback tests: `messages` and the id cookie.
fn carry(previous: &Incoming, response: &HeaderMap) -> Incoming {
    let mut jar: Vec<(String, String)> = ["messages", flash_core::storage::DEFAULT_ID_COOKIE]
        .iter()
        .filter_map(|n| previous.cookie(n).map(|v| ((*n).to_owned(), v.to_owned())))
        .collect();
    for cookie in set_cookies(response) {
        jar.retain(|(n, _)| n != cookie.name());
        if !is_removal(&cookie) {
            jar.push((cookie.name().to_owned(), cookie.value().to_owned()));
        }
    }
    let mut headers = HeaderMap::new();
    if !jar.is_empty() {
        let line = jar
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        headers.insert(COOKIE, line.parse().unwrap());
    }
    Incoming::from_headers(&headers)
}

#[tokio::test]
async fn fallback_overflow_splits_as_django() {
    let case = vectors("fallback_vectors.json")["cases"][0].clone();
    assert_eq!(case["name"], "overflow_15x200");
    let input = messages(&case["input"]);
    let (storage, memory, _calls) = fallback();
    let storage = Arc::new(storage);
    let config = Arc::new(MessagesConfig::default());

    let handle = Messages::new(storage.clone(), request(None), config.clone());
    for m in input.clone() {
        handle.add(m);
    }
    let mut response = HeaderMap::new();
    let report = handle.save(&mut response).await.unwrap();
    assert_eq!(
        report.dropped.len(),
        case["unstored"].as_array().unwrap().len()
    );
    assert_eq!(memory.client_count(), 1, "the rest went to the store");

    // The cookie holds what Django's held: the oldest nine and the marker.
    let cookie = set_cookies(&response)
        .into_iter()
        .find(|c| c.name() == "messages")
        .unwrap();
    assert_same_line(
        &cookie,
        case["cookie"]["set_cookie_header"].as_str().unwrap(),
        "overflow",
    );
    let in_cookie = codec().decode(cookie.value()).unwrap();
    let raw = case["cookie_decoded_raw"].as_array().unwrap();
    assert_eq!(raw.last().unwrap(), NOT_FINISHED);
    assert_same(
        &in_cookie.messages,
        &Value::from(raw[..raw.len() - 1].to_vec()),
        "overflow",
    );
    assert!(!in_cookie.complete);
    // And Django reads the same from Django's cookie.
    let django_cookie = codec()
        .decode(case["cookie"]["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(django_cookie.messages, in_cookie.messages);

    // Reading back gives all fifteen in order; reading empties both.
    let next = carry(&request(None), &response);
    let handle = Messages::new(storage.clone(), next, config.clone());
    let read = handle.read().await.unwrap();
    let order: Vec<&str> = read.iter().map(|m| &m.text[..2]).collect();
    let expected: Vec<&str> = case["read_back_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(order, expected);
    assert_eq!(read, input);
    let mut after = HeaderMap::new();
    handle.save(&mut after).await.unwrap();
    let lines = set_cookies(&after);
    let deletion = lines.iter().find(|c| c.name() == "messages").unwrap();
    assert_same_line(
        deletion,
        case["after_read_cookie"]["set_cookie_header"]
            .as_str()
            .unwrap(),
        "after read",
    );
    assert_eq!(memory.client_count(), 0, "the store was emptied");
}

#[tokio::test]
async fn fallback_single_large_message_leaves_only_the_marker() {
    let case = vectors("fallback_vectors.json")["cases"][1].clone();
    assert_eq!(case["name"], "single_5000_char_message");
    let (storage, memory, _calls) = fallback();
    let text = incompressible(5000, 1);
    let (response, unstored) = {
        let mut response = HeaderMap::new();
        let unstored = storage
            .save(
                &request(None),
                Update::new(None)
                    .with_added(vec![
                        Message::new(Level::ERROR, text.clone()).with_extra_tags(""),
                    ])
                    // Django's 5000-character message, beyond the default longest text.
                    .with_limits(flash_core::Limits::default().with_max_text_len(8192)),
                &mut response,
            )
            .await
            .unwrap();
        (response, unstored)
    };
    assert!(unstored.is_empty());
    assert_eq!(memory.client_count(), 1);
    let cookie = set_cookies(&response)
        .into_iter()
        .find(|c| c.name() == "messages")
        .unwrap();
    // Uncompressed: byte for byte.
    assert_eq!(cookie.value(), case["cookie"]["value"].as_str().unwrap());
    let next = carry(&request(None), &response);
    let loaded = storage.load(&next).await.unwrap();
    assert_eq!(loaded.messages, [Message::new(Level::ERROR, text)]);
}

#[tokio::test]
async fn fallback_marker_only_cookie_reads_the_store_and_no_cookie_does_not() {
    let cases = vectors("fallback_vectors.json")["cases"].clone();
    let marker_only = &cases[2];
    assert_eq!(marker_only["name"], "sentinel_only_cookie_plus_session");
    let (storage, _memory, calls) = fallback();
    let storage = Arc::new(storage);
    let config = Arc::new(MessagesConfig::default());

    // A request carrying the marker-only cookie adds: the cookie is left as is, the message
    // goes to the store.
    let first = request(marker_only["cookie_value"].as_str());
    let handle = Messages::new(storage.clone(), first, config.clone());
    handle.info("from session");
    let mut response = HeaderMap::new();
    handle.save(&mut response).await.unwrap();
    assert!(
        set_cookies(&response)
            .iter()
            .all(|c| c.name() != "messages")
    );
    assert_eq!(
        calls.leases(),
        0,
        "a write-only request never reads the store"
    );

    let next = carry(&request(marker_only["cookie_value"].as_str()), &response);
    let handle = Messages::new(
        storage.clone(),
        carry(&next, &HeaderMap::new()),
        config.clone(),
    );
    let read = handle.read().await.unwrap();
    assert_same(&read, &marker_only["result"]["iterated"], "marker only");
    let mut after = HeaderMap::new();
    handle.save(&mut after).await.unwrap();
    // Django leaves the marker-only cookie behind; flash deletes it (it held the marker).
    assert!(
        set_cookies(&after)
            .iter()
            .any(|c| c.name() == "messages" && is_removal(c))
    );

    // No messages cookie: the store is not read even though it has a message.
    let no_cookie = &cases[3];
    assert_eq!(no_cookie["name"], "no_cookie_session_has_data");
    let handle = Messages::new(
        storage.clone(),
        carry(&next, &HeaderMap::new()),
        config.clone(),
    );
    handle.info("from session");
    handle.save(&mut HeaderMap::new()).await.unwrap();
    let leases = calls.leases();
    let only_id = {
        let mut headers = HeaderMap::new();
        let id = next.cookie(flash_core::storage::DEFAULT_ID_COOKIE).unwrap();
        headers.insert(
            COOKIE,
            format!("{}={id}", flash_core::storage::DEFAULT_ID_COOKIE)
                .parse()
                .unwrap(),
        );
        Incoming::from_headers(&headers)
    };
    let handle = Messages::new(storage.clone(), only_id, config);
    assert!(handle.read().await.unwrap().is_empty());
    assert!(
        no_cookie["result"]["iterated"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    handle.save(&mut HeaderMap::new()).await.unwrap();
    assert_eq!(calls.leases(), leases, "the store was not read");
}

#[tokio::test]
async fn update_semantics_with_two_existing_follow_django() {
    let cases =
        vectors("behaviour_vectors.json")["behaviour"]["update_semantics_with_2_existing"].clone();
    let existing = [
        Message::new(Level::INFO, "Test message 1"),
        Message::new(Level::INFO, "Test message 2"),
    ];
    let value = codec().encode(&existing, false).unwrap();
    for case in cases.as_array().unwrap() {
        let actions: Vec<&str> = case["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let handle = Messages::new(
            Arc::new(storage(None)),
            request(Some(&value)),
            Arc::new(MessagesConfig::default()),
        );
        for action in &actions {
            match *action {
                "add" => assert!(handle.info("Test message 3")),
                "read" => drop(handle.read().await.unwrap()),
                "len" => drop(handle.len().await.unwrap()),
                other => panic!("unknown action {other}"),
            }
        }
        let mut response = HeaderMap::new();
        handle.save(&mut response).await.unwrap();
        let lines = set_cookies(&response);
        let context = format!("{actions:?}");
        assert_eq!(
            !lines.is_empty(),
            case["set_cookie_emitted"].as_bool().unwrap(),
            "{context}"
        );
        assert_eq!(
            lines.iter().any(is_removal),
            case["cookie_deleted"].as_bool().unwrap(),
            "{context}"
        );
        if let Some(stored) = case["stored_messages"].as_array().filter(|s| !s.is_empty()) {
            let ours = codec().decode(lines[0].value()).unwrap();
            let texts: Vec<&str> = ours.messages.iter().map(|m| m.text.as_str()).collect();
            let expected: Vec<&str> = stored.iter().map(|s| s.as_str().unwrap()).collect();
            assert_eq!(texts, expected, "{context}");
        }
    }
}
