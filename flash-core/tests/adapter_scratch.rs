//! The adapter's scratch map (for frameworks whose headers are not an `http` map) on the
//! adapter kit's cookie storage, which never waits.

use std::sync::Arc;

use std::future::Future as _;
use std::task::{Context, Poll, Waker};

use flash_core::Messages;
use flash_core::adapter::{Adapter, HandlerResponse, InFlight, RequestParts, ResponseHeaders};

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

impl HandlerResponse for Lines {
    fn status(&self) -> u16 {
        200
    }
}

/// Ends the request, asserting the end needs no waiting (a storage that never waits).
fn finish_at_once(in_flight: InFlight, lines: Lines) -> Lines {
    let mut finishing = std::pin::pin!(in_flight.finish(lines));
    match finishing
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(lines) => lines,
        Poll::Pending => panic!("a storage that never waits made the end wait"),
    }
}

fn handle(in_flight: &InFlight) -> Messages {
    let headers = flash_core::http::HeaderMap::new();
    in_flight
        .slot()
        .messages(RequestParts::new("GET", &headers, None))
        .expect("in flight")
}

/// The per-thread scratch map of a non-`http` framework is empty again after each request:
/// one request's `Set-Cookie` never reaches the next response.
#[tokio::test]
async fn the_scratch_map_carries_nothing_to_the_next_request() {
    let adapter = Adapter::new(Arc::new(flash_testkit::adapter_kit::KitCookieStorage));
    let first = adapter.begin();
    handle(&first).success("one");
    let lines = finish_at_once(first, Lines::default());
    assert_eq!(lines.get("set-cookie").len(), 1);
    assert_eq!(lines.get("cache-control"), ["private, no-store"]);

    // A second request that reads (nothing: it brings no cookie) and adds nothing: saved
    // through the scratch map, nothing to write.
    let second = adapter.begin();
    assert!(handle(&second).read().await.expect("a read").is_empty());
    let lines = finish_at_once(second, Lines::default());
    assert!(lines.get("set-cookie").is_empty(), "{lines:?}");

    // A third that adds: exactly its own line.
    let third = adapter.begin();
    handle(&third).success("three");
    let lines = finish_at_once(third, Lines::default());
    let cookies = lines.get("set-cookie");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(
        cookies[0].starts_with("kit_messages=5b5b32352c227468726565225d5d;"),
        "{cookies:?}"
    );
}
