//! Dropping messages that do not fit the cookie is logged at WARN with the count. A binary of
//! its own: the subscriber is the process's, with no other test's thread to race.
#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::{Arc, Mutex};

use flash_cookie::CookieStorage;
use flash_core::http::HeaderMap;
use flash_core::{
    Key, Keys, Level, Message,
    storage::{Incoming, Storage, Update},
};

/// Captures what the storage logs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn dropped_messages_are_logged_with_their_count() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let storage = CookieStorage::new(Keys::new(Key::from_bytes(&[42; 32])));
    let messages: Vec<Message> = (0..30)
        .map(|i| Message::new(Level::INFO, format!("{i:03}-{}", "x".repeat(100))))
        .collect();
    let mut response = HeaderMap::new();
    let dropped = storage
        .save(
            &Incoming::default(),
            Update::new(None).with_added(messages),
            &mut response,
        )
        .await
        .unwrap();
    assert!(!dropped.is_empty());

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(
        logs.contains(&format!("dropped={}", dropped.len())),
        "{logs}"
    );
}
