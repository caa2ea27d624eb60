//! The cookie storage with no async runtime: every future here is polled by `futures`' own
//! executor, never by Tokio. scripts/test runs this file with `--no-default-features`, where
//! flash-core is built without its `tokio` feature.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::Arc;

use flash_cookie::CookieStorage;
use flash_core::http::HeaderMap;
use flash_core::storage::{Incoming, Storage};
use flash_core::{Key, Keys, Level, Messages, MessagesConfig};
use futures::executor::block_on;

fn next_request(response: &HeaderMap) -> HeaderMap {
    let pairs: Vec<&str> = response
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap())
        .collect();
    let mut request = HeaderMap::new();
    request.insert("cookie", pairs.join("; ").parse().unwrap());
    request
}

/// Adds two messages, then reads them on the next request: shown once, in order.
fn round_trip(storage: Arc<dyn Storage>) {
    let config = Arc::new(MessagesConfig::default());
    block_on(async {
        let messages = Messages::new(storage.clone(), Incoming::default(), config.clone());
        messages.success("Saved.");
        messages.add_message(Level::ERROR, "Not sent: café ☕");
        let mut response = HeaderMap::new();
        messages.save(&mut response).await.unwrap();

        let request = next_request(&response);
        let messages = Messages::new(
            storage.clone(),
            Incoming::from_headers(&request),
            config.clone(),
        );
        let texts: Vec<String> = messages
            .read()
            .await
            .unwrap()
            .iter()
            .map(|m| m.text.clone())
            .collect();
        assert_eq!(texts, ["Saved.", "Not sent: café ☕"]);
        let mut response = HeaderMap::new();
        messages.save(&mut response).await.unwrap();

        // The read cleared the cookie: the next request sees nothing.
        let request = next_request(&response);
        let messages = Messages::new(storage, Incoming::from_headers(&request), config);
        assert!(messages.is_empty().await.unwrap());
    });
}

#[test]
fn flash_format_round_trips_without_a_runtime() {
    round_trip(Arc::new(CookieStorage::new(Keys::new(Key::from_bytes(
        &[3; 32],
    )))));
}

#[cfg(feature = "django")]
#[test]
fn django_format_round_trips_without_a_runtime() {
    let secret = "a Django SECRET_KEY shared with the Rust service";
    round_trip(Arc::new(CookieStorage::django(secret, &[] as &[&str])));
}
