//! `Fallback(cookie, keyed MemoryStore)`: where messages land, what is read, and how many
//! store calls each request makes.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use flash_cookie::{Codec, CookieStorage, Fallback};
use flash_core::testkit::{CallCounts, Capabilities, Client, CountingStore, Harness};
use flash_core::{Key, KeyedStorage, Keys, MemoryStore, Message, Storage};

const COOKIE: &str = "messages";

struct Setup {
    client: Client,
    memory: MemoryStore,
    calls: CallCounts,
    codec: Codec,
}

fn setup(cookie: CookieStorage) -> Setup {
    let memory = MemoryStore::new();
    let store = CountingStore::new(memory.clone());
    let calls = store.counts();
    let keyed = KeyedStorage::new(store, Keys::new(Key::generate()));
    let codec = cookie.codec().clone();
    let harness = Harness::new(Fallback::new(cookie, keyed), Capabilities::NONE, COOKIE)
        .with_calls(calls.clone(), false);
    Setup {
        client: harness.client(),
        memory,
        calls,
        codec,
    }
}

fn flash_cookie() -> CookieStorage {
    CookieStorage::new(Keys::new(Key::generate()))
}

/// Random letters and digits: about as incompressible as text gets (Django's own test uses
/// `get_random_string`).
fn random_text(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).unwrap();
    bytes
        .into_iter()
        .map(|b| char::from(CHARS[usize::from(b) % CHARS.len()]))
        .collect()
}

impl Setup {
    async fn add(&self, texts: &[String]) {
        let request = self.client.request();
        for text in texts {
            assert!(request.info(text.clone()));
        }
        request.finish().await;
    }

    async fn read_all(&self) -> Vec<String> {
        let request = self.client.request();
        let read = request.read().await.unwrap();
        request.finish().await;
        read.into_iter().map(|m| m.text).collect()
    }

    /// The messages in the cookie, and whether it ends with the not-finished marker.
    fn in_cookie(&self) -> Option<(Vec<String>, bool)> {
        let value = self.client.cookie(COOKIE)?;
        let decoded = self.codec.decode(COOKIE, &value).unwrap();
        Some((
            decoded.messages.into_iter().map(|m| m.text).collect(),
            !decoded.complete,
        ))
    }
}

/// Five 406-character random messages (Django's `test_max_cookie_length` size): the cookie
/// holds the oldest that fit with the marker, the store the rest; reading returns all five in
/// order and empties both.
async fn five_messages_of_406(setup: Setup, in_cookie: usize) {
    let texts: Vec<String> = (0..5).map(|_| random_text(406)).collect();
    setup.add(&texts).await;
    let (cookie, marker) = setup.in_cookie().unwrap();
    assert_eq!(cookie, texts[..in_cookie]);
    assert!(marker);
    assert!(setup.client.cookie(COOKIE).unwrap().len() <= 2048);
    assert_eq!(setup.memory.client_count(), 1);
    assert_eq!(setup.calls.appends(), 1);

    assert_eq!(setup.read_all().await, texts);
    assert_eq!(setup.in_cookie(), None, "the cookie was deleted");
    assert_eq!(setup.memory.client_count(), 0, "the store was emptied");
    assert!(setup.read_all().await.is_empty());
}

/// flash's format does not compress: 4 × 406 characters is 2256 bytes of base64, so three
/// fit under the 2048-byte limit and two go to the store.
#[tokio::test]
async fn five_messages_of_406_flash_format_keeps_three_in_the_cookie() {
    five_messages_of_406(setup(flash_cookie()), 3).await;
}

/// Django's format compresses random letters and digits to about 6 bits each: four fit, one
/// goes to the store, as in Django.
#[cfg(feature = "django")]
#[tokio::test]
async fn five_messages_of_406_django_format_keeps_four_in_the_cookie() {
    five_messages_of_406(
        setup(CookieStorage::django("django secret", [] as [&str; 0])),
        4,
    )
    .await;
}

async fn one_message_of_5000(setup: Setup) {
    let text = random_text(5000);
    setup.add(std::slice::from_ref(&text)).await;
    assert_eq!(
        setup.in_cookie(),
        Some((Vec::new(), true)),
        "only the marker"
    );
    assert_eq!(setup.memory.client_count(), 1);

    assert_eq!(setup.read_all().await, [text]);
    assert_eq!(setup.in_cookie(), None);
    assert_eq!(setup.memory.client_count(), 0);
}

#[tokio::test]
async fn one_message_of_5000_leaves_only_the_marker_in_the_cookie() {
    one_message_of_5000(setup(flash_cookie())).await;
}

#[cfg(feature = "django")]
#[tokio::test]
async fn one_message_of_5000_leaves_only_the_marker_in_the_django_cookie() {
    one_message_of_5000(setup(CookieStorage::django(
        "django secret",
        [] as [&str; 0],
    )))
    .await;
}

/// A cookie without the marker never costs a store call: not to add, not to read, not to
/// empty.
#[tokio::test]
async fn a_cookie_without_the_marker_never_touches_the_store() {
    let setup = setup(flash_cookie());
    setup.add(&["one".to_owned(), "two".to_owned()]).await;
    assert_eq!(
        setup.in_cookie(),
        Some((vec!["one".into(), "two".into()], false))
    );
    setup.add(&["three".to_owned()]).await;

    let request = setup.client.request();
    assert_eq!(request.len().await.unwrap(), 3);
    request.finish().await;
    assert_eq!(setup.read_all().await, ["one", "two", "three"]);
    assert_eq!(setup.in_cookie(), None);
    assert!(setup.read_all().await.is_empty());
    assert_eq!(setup.calls.total(), 0, "{:?}", setup.calls);
}

/// A request that only adds never reads the store: with the marker in the cookie the cookie is
/// left as is and the new message is appended to the store, after the ones already there.
#[tokio::test]
async fn adding_behind_the_marker_appends_to_the_store_without_reading_it() {
    let setup = setup(flash_cookie());
    let big: Vec<String> = (0..5).map(|_| random_text(406)).collect();
    setup.add(&big).await;
    let before = setup.client.cookie(COOKIE).unwrap();

    let request = setup.client.request();
    request.info("small");
    let response = request.finish().await;
    assert!(
        response
            .set_cookies()
            .iter()
            .all(|l| !l.starts_with("messages="))
    );
    assert_eq!(setup.client.cookie(COOKIE).unwrap(), before);
    assert_eq!((setup.calls.appends(), setup.calls.leases()), (2, 0));

    let mut expected = big.clone();
    expected.push("small".into());
    assert_eq!(setup.read_all().await, expected);
}

/// A request that only adds, with a complete cookie: existing and new messages that fit stay
/// in the cookie, the rest is appended to the store.
#[tokio::test]
async fn adding_to_a_full_cookie_spills_the_newest() {
    let setup = setup(flash_cookie());
    let first: Vec<String> = (0..2).map(|_| random_text(406)).collect();
    setup.add(&first).await;
    assert_eq!(setup.in_cookie(), Some((first.clone(), false)));
    assert_eq!(setup.calls.total(), 0);

    let second: Vec<String> = (0..2).map(|_| random_text(406)).collect();
    setup.add(&second).await;
    let (cookie, marker) = setup.in_cookie().unwrap();
    assert_eq!(
        cookie,
        [first[0].clone(), first[1].clone(), second[0].clone()]
    );
    assert!(marker);
    assert_eq!((setup.calls.appends(), setup.calls.leases()), (1, 0));

    let all: Vec<String> = first.into_iter().chain(second).collect();
    assert_eq!(setup.read_all().await, all);
}

/// Loading without consuming releases the store's lease and writes nothing; the messages
/// come back, in order.
#[tokio::test]
async fn peeking_releases_the_store_and_writes_nothing() {
    let setup = setup(flash_cookie());
    let texts: Vec<String> = (0..5).map(|_| random_text(406)).collect();
    setup.add(&texts).await;

    let request = setup.client.request();
    assert_eq!(request.len().await.unwrap(), 5);
    let response = request.finish().await;
    assert!(
        response
            .set_cookies()
            .iter()
            .all(|l| !l.starts_with("messages="))
    );
    assert_eq!((setup.calls.leases(), setup.calls.settles()), (1, 1));
    assert_eq!(setup.read_all().await, texts);
}

/// Reading some, then adding: the pending ones are redistributed, oldest first.
#[tokio::test]
async fn reading_then_adding_keeps_only_the_new() {
    let setup = setup(flash_cookie());
    let texts: Vec<String> = (0..5).map(|_| random_text(406)).collect();
    setup.add(&texts).await;

    let request = setup.client.request();
    assert_eq!(request.read().await.unwrap().len(), 5);
    request.info("after reading");
    request.finish().await;
    assert_eq!(
        setup.in_cookie(),
        Some((vec!["after reading".into()], false))
    );
    assert_eq!(setup.memory.client_count(), 0, "the store was emptied");
    assert_eq!(setup.read_all().await, ["after reading"]);
}

#[test]
fn uses_extensions_if_either_does() {
    struct Extended;
    #[flash_core::async_trait]
    impl Storage for Extended {
        async fn load(&self, _: &flash_core::Incoming) -> flash_core::Result<flash_core::Loaded> {
            Ok(flash_core::Loaded::nothing())
        }
        async fn save(
            &self,
            _: &flash_core::Incoming,
            _: flash_core::Update,
            _: &mut flash_core::http::HeaderMap,
        ) -> flash_core::Result<Vec<Message>> {
            Ok(Vec::new())
        }
        fn uses_extensions(&self) -> bool {
            true
        }
    }
    assert!(!Fallback::new(flash_cookie(), flash_cookie()).uses_extensions());
    assert!(Fallback::new(flash_cookie(), Extended).uses_extensions());
    assert!(Fallback::new(Extended, flash_cookie()).uses_extensions());
}
