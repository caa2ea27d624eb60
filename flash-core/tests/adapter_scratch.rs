//! The adapter's scratch map (for frameworks whose headers are not an `http` map) on the
//! adapter kit's cookie storage, which never waits.

use std::sync::Arc;

use flash_core::{
    MessagesConfig,
    adapter::{Adapter, ResponseHeaders},
    storage::Incoming,
};

/// Response headers as `(name, value)` lines, as a framework without `http` types keeps them.
#[derive(Debug, Default)]
struct Lines(Vec<(&'static str, Vec<u8>)>);

impl ResponseHeaders for Lines {
    fn for_each_value(&self, name: &'static str, each: &mut dyn FnMut(&[u8])) {
        self.0
            .iter()
            .filter(|(n, _)| *n == name)
            .for_each(|(_, v)| each(v));
    }
    fn append(&mut self, name: &'static str, value: &[u8]) {
        self.0.push((name, value.to_vec()));
    }
    fn insert(&mut self, name: &'static str, value: &[u8]) {
        self.0.retain(|(n, _)| *n != name);
        self.append(name, value);
    }
}

impl Lines {
    fn get(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// The per-thread scratch map of a non-`http` framework is empty again after each request:
/// one request's `Set-Cookie` never reaches the next response.
#[tokio::test]
async fn the_scratch_map_carries_nothing_to_the_next_request() {
    let adapter = Adapter::new(
        Arc::new(flash_testkit::adapter_kit::KitCookieStorage),
        MessagesConfig::default(),
    );
    let first = adapter.messages(Incoming::default());
    first.success("one");
    let mut lines = Lines::default();
    let finished = adapter.finish_now(&first, &mut lines).expect("never waits");
    assert!(finished.cookie_set);
    assert_eq!(lines.get("set-cookie").len(), 1);

    // A second request that reads (nothing: it brings no cookie) and adds nothing: saved
    // through the scratch map, nothing to write.
    let second = adapter.messages(Incoming::default());
    assert!(second.read().await.expect("a read").is_empty());
    let mut lines = Lines::default();
    adapter
        .finish_now(&second, &mut lines)
        .expect("never waits");
    assert!(lines.get("set-cookie").is_empty(), "{lines:?}");

    // A third that adds: exactly its own line.
    let third = adapter.messages(Incoming::default());
    third.success("three");
    let mut lines = Lines::default();
    adapter.finish_now(&third, &mut lines).expect("never waits");
    let cookies = lines.get("set-cookie");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(
        cookies[0].starts_with("kit_messages=25.7468726565;"),
        "{cookies:?}"
    );
}
