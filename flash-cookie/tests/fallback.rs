//! `Fallback(cookie, keyed MemoryStore)`: where messages land, what is read, and how many
//! store calls each request makes.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use flash_cookie::{Codec, CookieStorage, Fallback};
use flash_core::{
    Key, Keys, Limits, Message, MessagesConfig,
    storage::{DEFAULT_ID_COOKIE, MemoryStore, ServerStorage, Storage},
};
use flash_testkit::{CallCounts, Capabilities, Client, CountingStore, Harness};

const COOKIE: &str = "messages";

struct Setup {
    harness: Harness,
    client: Client,
    memory: MemoryStore,
    calls: CallCounts,
    codec: Codec,
}

fn setup(cookie: CookieStorage) -> Setup {
    setup_reading_behind(cookie, false)
}

fn setup_reading_behind(cookie: CookieStorage, read_behind: bool) -> Setup {
    let memory = MemoryStore::new();
    let store = CountingStore::new(memory.clone());
    let calls = store.counts();
    let keyed = ServerStorage::new(store, Keys::new(Key::generate()));
    let codec = cookie.codec().clone();
    let fallback = Fallback::new(cookie, keyed).read_behind_empty_first(read_behind);
    let harness =
        Harness::new(fallback, Capabilities::NONE, COOKIE).with_calls(calls.clone(), false);
    Setup {
        client: harness.client(),
        harness,
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

/// Django's tests use a 5000-character message, beyond the default longest text.
fn config() -> MessagesConfig {
    MessagesConfig::default().with_limits(Limits::default().with_max_text_len(8192))
}

impl Setup {
    async fn add(&self, texts: &[String]) {
        let request = self.client.request_with(config());
        for text in texts {
            assert!(request.info(text.clone()));
        }
        request.finish().await;
    }

    async fn read_all(&self) -> Vec<String> {
        let request = self.client.request_with(config());
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
/// A message left in the store behind a cookie that was emptied (lost, or emptied while an
/// outage held the store's lease) is shown at the next read only when the fallback reads
/// behind an empty first; Django's rule leaves it for the next add.
#[tokio::test]
async fn reading_behind_an_empty_cookie_shows_what_the_store_kept() {
    for read_behind in [true, false] {
        let setup = setup_reading_behind(flash_cookie(), read_behind);
        let text = random_text(5000);
        setup.add(std::slice::from_ref(&text)).await;
        assert_eq!(
            setup.in_cookie(),
            Some((Vec::new(), true)),
            "only the marker"
        );
        setup.client.set_cookie(COOKIE, "");
        let shown = setup.read_all().await;
        if read_behind {
            assert_eq!(shown, std::slice::from_ref(&text));
            assert!(setup.read_all().await.is_empty(), "shown once");
        } else {
            assert!(
                shown.is_empty(),
                "Django's rule: an empty cookie hides the store"
            );
            assert_eq!(setup.memory.client_count(), 1, "still waiting in the store");
        }
    }
}

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

/// What happens to the flash cookie between two requests of one browser (the id cookie of
/// the store stays).
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// One character of the value changed: the signature no longer matches.
    Tampered,
    /// The value cut in half.
    Truncated,
    /// The cookie gone (deleted by the user, or expired).
    Deleted,
}

impl Setup {
    /// The same browser with its flash cookie damaged.
    fn damage(&self, damage: Damage) {
        let value = self
            .client
            .cookie(COOKIE)
            .expect("a flash cookie to damage");
        match damage {
            Damage::Tampered => {
                let mut bytes = value.into_bytes();
                let middle = bytes.len() / 2;
                bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
                self.client
                    .set_cookie(COOKIE, &String::from_utf8(bytes).unwrap());
            }
            Damage::Truncated => self.client.set_cookie(COOKIE, &value[..value.len() / 2]),
            Damage::Deleted => {}
        }
    }

    /// The browser to use after `damage`: a deleted cookie means a jar with only the id
    /// cookie.
    fn damaged(self, damage: Damage) -> Setup {
        self.damage(damage);
        let Damage::Deleted = damage else {
            return self;
        };
        let client = self.harness.client();
        let id = self.client.cookie(DEFAULT_ID_COOKIE).expect("an id cookie");
        client.set_cookie(DEFAULT_ID_COOKIE, &id);
        Setup { client, ..self }
    }
}

/// Issue 12, repro 9: five large messages put three in the cookie (with the marker) and two
/// in the store; then the cookie is damaged, and 40 small messages and five large ones are
/// added, one request each for the small ones. Every read together returns the store's two,
/// then every new message, in the order added, each once; the cookie's three are lost with
/// the cookie. Afterwards both storages are empty.
async fn damaged_cookie_keeps_the_order(damage: Damage, read_first: bool) {
    damaged_cookie_keeps_the_order_in(setup(flash_cookie()), 3, damage, read_first).await;
}

/// The same for `setup`, whose cookie holds `in_cookie` of five 406-character messages.
async fn damaged_cookie_keeps_the_order_in(
    setup: Setup,
    in_cookie: usize,
    damage: Damage,
    read_first: bool,
) {
    let old: Vec<String> = (0..5).map(|_| random_text(406)).collect();
    setup.add(&old).await;
    assert_eq!(setup.in_cookie().unwrap().0, old[..in_cookie]);
    let setup = setup.damaged(damage);

    let mut read = Vec::new();
    if read_first {
        // A page that shows messages before anything new is added.
        read.extend(setup.read_all().await);
    }
    let small: Vec<String> = (0..40).map(|i| format!("new {i}")).collect();
    for text in &small {
        setup.add(std::slice::from_ref(text)).await;
    }
    let large: Vec<String> = (0..5).map(|_| random_text(406)).collect();
    setup.add(&large).await;
    read.extend(setup.read_all().await);

    let mut expected = old[in_cookie..].to_vec();
    expected.extend(small);
    expected.extend(large);
    assert_eq!(read.len(), expected.len(), "{damage:?}: not each once");
    assert_eq!(read, expected, "{damage:?}: out of order");
    assert!(setup.read_all().await.is_empty());
    assert_eq!(setup.in_cookie(), None);
    assert_eq!(setup.memory.client_count(), 0, "the store was emptied");
}

#[tokio::test]
async fn a_tampered_cookie_keeps_the_order_of_the_store() {
    damaged_cookie_keeps_the_order(Damage::Tampered, false).await;
    damaged_cookie_keeps_the_order(Damage::Tampered, true).await;
}

#[tokio::test]
async fn a_truncated_cookie_keeps_the_order_of_the_store() {
    damaged_cookie_keeps_the_order(Damage::Truncated, false).await;
    damaged_cookie_keeps_the_order(Damage::Truncated, true).await;
}

#[tokio::test]
async fn a_deleted_cookie_keeps_the_order_of_the_store() {
    damaged_cookie_keeps_the_order(Damage::Deleted, false).await;
    damaged_cookie_keeps_the_order(Damage::Deleted, true).await;
}

/// Django's cookie format: the rule is Fallback's, whatever the first storage.
#[cfg(feature = "django")]
#[tokio::test]
async fn a_damaged_django_cookie_keeps_the_order_of_the_store() {
    for damage in [Damage::Tampered, Damage::Truncated, Damage::Deleted] {
        for read_first in [false, true] {
            let django = CookieStorage::django("django secret", [] as [&str; 0]);
            damaged_cookie_keeps_the_order_in(setup(django), 4, damage, read_first).await;
        }
    }
}

/// After the cookie is damaged, a request that reads and adds: the store's messages, which it
/// did not show, go before the new one.
#[tokio::test]
async fn a_read_that_adds_after_a_damaged_cookie_keeps_the_order() {
    for damage in [Damage::Tampered, Damage::Truncated, Damage::Deleted] {
        let setup = setup(flash_cookie());
        let old: Vec<String> = (0..5).map(|_| random_text(406)).collect();
        setup.add(&old).await;
        let setup = setup.damaged(damage);

        let request = setup.client.request();
        let mut read: Vec<String> = request
            .read()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        request.info("added while reading");
        request.finish().await;
        read.extend(setup.read_all().await);

        let mut expected = old[3..].to_vec();
        expected.push("added while reading".into());
        assert_eq!(read, expected, "{damage:?}");
        assert!(setup.read_all().await.is_empty());
        assert_eq!(
            setup.memory.client_count(),
            0,
            "{damage:?}: the store was emptied"
        );
    }
}

#[test]
fn uses_extensions_if_either_does() {
    struct Extended;
    #[flash_core::async_trait]
    impl Storage for Extended {
        async fn load(
            &self,
            _: &flash_core::storage::Incoming,
        ) -> flash_core::Result<flash_core::storage::Loaded> {
            Ok(flash_core::storage::Loaded::nothing())
        }
        async fn save(
            &self,
            _: &flash_core::storage::Incoming,
            _: flash_core::storage::Update,
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

/// A message may land in either storage: data is carried only if both keep it, so Django's
/// format in front (or behind) makes the composition refuse data at add.
#[test]
fn carries_data_only_if_both_do() {
    let keyed = || ServerStorage::new(MemoryStore::new(), Keys::new(Key::generate()));
    assert!(flash_cookie().carries_data());
    assert!(Fallback::new(flash_cookie(), keyed()).carries_data());
    assert!(Fallback::new(flash_cookie(), flash_cookie()).carries_data());
    #[cfg(feature = "django")]
    {
        let django = || CookieStorage::django("a secret of some length for the test", [""; 0]);
        assert!(!django().carries_data());
        assert!(!Fallback::new(django(), keyed()).carries_data());
        assert!(!Fallback::new(flash_cookie(), django()).carries_data());
    }
}
