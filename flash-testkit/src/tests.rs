//! The suite's behaviours, one public async function each; [`conformance_tests!`](crate::conformance_tests)
//! expands them into tests.

use std::collections::HashMap;
use std::time::Duration;

use super::{Factory, Harness, Options};
use flash_core::{Level, LevelTags, Message, MessagesConfig};

macro_rules! harness {
    ($factory:expr) => {
        harness!($factory, Options::new())
    };
    ($factory:expr, $options:expr) => {
        match $factory.harness($options).await {
            Some(harness) => harness,
            None => return,
        }
    };
}

fn skip(test: &str, why: &str) {
    eprintln!("skipped: {test}: the storage declares no {why}");
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

/// Stores `texts` as INFO messages for `client` in one request.
async fn seed(client: &super::Client, texts: &[&str]) {
    let request = client.request();
    for text in texts {
        assert!(request.info(*text), "seed message {text:?} refused");
    }
    request.finish().await;
}

/// Reads (consuming) everything pending for `client` in one request.
async fn read_all(client: &super::Client) -> Vec<Message> {
    let request = client.request();
    let messages = request.read().await.expect("read");
    request.finish().await;
    messages.into_vec()
}

/// Django's six-message set: INFO, 29, DEBUG with `extra-tag`, WARNING, ERROR, SUCCESS.
fn add_level_messages(messages: &flash_core::Messages) {
    messages.add_message(Level::INFO, "A generic info message");
    messages.add_message(Level::new(29), "Some custom level");
    messages.add(Message::new(Level::DEBUG, "A debugging message").with_extra_tags("extra-tag"));
    messages.add_message(Level::WARNING, "A warning");
    messages.add_message(Level::ERROR, "An error");
    messages.add_message(Level::SUCCESS, "This was a triumph.");
}

async fn stored_count_at(
    factory: Factory,
    level: Option<Level>,
    config: MessagesConfig,
) -> Option<usize> {
    let harness = factory.harness(Options::new()).await?;
    let client = harness.client();
    let request = client.request_with(config);
    if let Some(level) = level {
        request.set_level(level);
    }
    add_level_messages(&request);
    request.finish().await;
    Some(read_all(&client).await.len())
}

/// Adding counts, sets `added_new`, and two added messages are stored.
pub async fn add_counts_and_added_new(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    let request = client.request();
    assert!(!request.added_new());
    assert!(request.add_message(Level::INFO, "Test message 1"));
    assert!(request.added_new());
    assert!(request.add(Message::new(Level::INFO, "Test message 2").with_extra_tags("tag")));
    assert_eq!(request.len().await.expect("len"), 2);
    request.finish().await;
    assert_eq!(
        texts(&read_all(&client).await),
        ["Test message 1", "Test message 2"]
    );
}

/// Empty text is ignored: nothing added, nothing written.
pub async fn empty_text_is_ignored(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    let request = client.request();
    assert!(!request.add_message(Level::INFO, ""));
    assert!(!request.added_new());
    let response = request.finish().await;
    assert!(
        response.set_cookies().is_empty(),
        "{:?}",
        response.set_cookies()
    );
    assert!(!response.report.saved);
    assert!(read_all(&client).await.is_empty());
}

/// The default minimum level (INFO) keeps 5 of Django's six messages.
pub async fn default_level_keeps_five(factory: Factory) {
    if let Some(n) = stored_count_at(factory, None, MessagesConfig::default()).await {
        assert_eq!(n, 5);
    }
}

/// A request minimum level of 5 keeps all six.
pub async fn low_level_keeps_all(factory: Factory) {
    if let Some(n) = stored_count_at(factory, Some(Level::new(5)), MessagesConfig::default()).await
    {
        assert_eq!(n, 6);
    }
}

/// A request minimum level of WARNING keeps two.
pub async fn high_level_keeps_two(factory: Factory) {
    if let Some(n) = stored_count_at(factory, Some(Level::WARNING), MessagesConfig::default()).await
    {
        assert_eq!(n, 2);
    }
}

/// A custom request minimum level of 29 keeps three.
pub async fn custom_level_keeps_three(factory: Factory) {
    if let Some(n) = stored_count_at(factory, Some(Level::new(29)), MessagesConfig::default()).await
    {
        assert_eq!(n, 3);
    }
}

/// The application's minimum level applies; a request's overrides it, and `None` restores it.
pub async fn app_level_applies(factory: Factory) {
    let config = MessagesConfig::default().with_level(Level::WARNING);
    if let Some(n) = stored_count_at(factory.clone(), None, config.clone()).await {
        assert_eq!(n, 2);
    }
    if let Some(n) = stored_count_at(factory, Some(Level::DEBUG), config).await {
        assert_eq!(n, 6);
    }
    let harness = Harness::new(
        flash_core::storage::ServerStorage::new(
            flash_core::storage::MemoryStore::new(),
            flash_core::Key::generate(),
        ),
        super::Capabilities::ALL,
        "",
    );
    let request = harness
        .client()
        .request_with(MessagesConfig::default().with_level(Level::ERROR));
    assert_eq!(request.level(), Level::ERROR);
    request.set_level(Level::DEBUG);
    assert_eq!(request.level(), Level::DEBUG);
    request.set_level(None);
    assert_eq!(request.level(), Level::ERROR);
}

/// `level_tag` and `tags` after a round trip through storage, with the default map.
pub async fn tags_follow_the_tag_map(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    let request = client.request();
    request.set_level(Level::DEBUG);
    add_level_messages(&request);
    request.finish().await;
    let messages = read_all(&client).await;
    let map = LevelTags::default();
    let tags: Vec<String> = messages.iter().map(|m| m.tags_in(&map)).collect();
    assert_eq!(
        tags,
        ["info", "", "extra-tag debug", "warning", "error", "success"]
    );
    let level_tags: Vec<&str> = messages.iter().map(|m| m.level_tag_in(&map)).collect();
    assert_eq!(
        level_tags,
        ["info", "", "debug", "warning", "error", "success"]
    );
}

/// A custom tag map (ERROR → "bad", DEBUG → "", 29 → "custom") and custom levels.
pub async fn custom_tag_map_and_custom_levels(factory: Factory) {
    let harness = harness!(factory);
    let map = LevelTags::default()
        .set(Level::ERROR, "bad")
        .set(Level::DEBUG, "")
        .set(Level::new(29), "custom");
    let config = MessagesConfig::default()
        .with_level_tags(map)
        .with_level(Level::DEBUG);
    let client = harness.client();
    let request = client.request_with(config.clone());
    add_level_messages(&request);
    request.add_message(Level::new(7), "below debug, custom");
    request.finish().await;
    let request = client.request_with(config);
    let messages = request.read().await.expect("read");
    let tags: Vec<String> = messages
        .iter()
        .map(|m| m.tags_in(request.level_tags()))
        .collect();
    assert_eq!(
        tags,
        ["info", "custom", "extra-tag", "warning", "bad", "success"]
    );
    assert_eq!(
        messages.iter().map(|m| m.level.value()).collect::<Vec<_>>(),
        [20, 29, 10, 30, 40, 25]
    );
    request.finish().await;
}

/// Extra tags (including an empty string) and the trusted-HTML flag survive storage.
pub async fn extra_tags_and_html_flag_survive(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    let sent = [
        Message::new(Level::INFO, "plain"),
        Message::new(Level::INFO, "empty extra").with_extra_tags(""),
        Message::new(Level::WARNING, "two extra").with_extra_tags("a b"),
        Message::new(Level::SUCCESS, "<b>bold</b>").trusted_html(),
        Message::new(Level::ERROR, "<i>both</i>")
            .with_extra_tags("x")
            .trusted_html(),
    ];
    let request = client.request();
    for m in &sent {
        request.add(m.clone());
    }
    request.finish().await;
    let got = read_all(&client).await;
    assert_eq!(got.len(), sent.len());
    for (got, sent) in got.iter().zip(&sent) {
        assert_eq!(got, sent);
        assert_eq!(got.extra_tags, sent.extra_tags, "{}", sent.text);
        assert_eq!(got.trusted_html, sent.trusted_html, "{}", sent.text);
    }
}

/// Data beside the text ([`Message::with_data`]) travels, with the extra tags and the HTML
/// flag, through every storage that carries data; one that cannot
/// ([`Storage::carries_data`](flash_core::storage::Storage::carries_data) is false) is checked by
/// [`data_is_refused_at_add_where_it_cannot_travel`].
pub async fn data_travels_beside_the_text(factory: Factory) {
    let harness = harness!(factory);
    if !harness.storage.carries_data() {
        skip(
            "data_travels_beside_the_text",
            "data (checked by data_is_refused_at_add_where_it_cannot_travel)",
        );
        return;
    }
    let client = harness.client();
    let sent = [
        Message::new(Level::INFO, "no data"),
        Message::new(Level::SUCCESS, "Deleted.")
            .with_extra_tags("undo")
            .with_data(
                serde_json::json!({"undo": "/articles/7/restore", "ids": [7, 8], "é": null}),
            ),
        Message::new(Level::WARNING, "<b>x</b>")
            .trusted_html()
            .with_data(serde_json::json!({"nested": {"deep": true}, "n": 1.5})),
        Message::new(Level::ERROR, "a string").with_data(serde_json::json!("text 🎉")),
    ];
    let request = client.request();
    for m in &sent {
        assert_eq!(
            request.try_add(m.clone()),
            Ok(flash_core::Added::Queued),
            "{}",
            m.text
        );
    }
    let response = request.finish().await;
    assert!(response.report.dropped.is_empty());
    assert_eq!(response.report.refused, 0);
    let got = read_all(&client).await;
    assert_eq!(got.len(), sent.len());
    for (got, sent) in got.iter().zip(&sent) {
        assert_eq!(got, sent);
        assert_eq!(got.data, sent.data, "{}", sent.text);
        assert_eq!(got.extra_tags, sent.extra_tags, "{}", sent.text);
        assert_eq!(got.trusted_html, sent.trusted_html, "{}", sent.text);
    }
}

/// A storage that cannot carry data refuses a message with data at add, with
/// [`Refused::DataNotSupported`](flash_core::Refused::DataNotSupported), counts it as refused, and
/// stores the other messages of the request: nothing is dropped in silence. One that carries
/// data queues it. Either way a message shown in this request only (`add_now`) keeps its data.
pub async fn data_is_refused_at_add_where_it_cannot_travel(factory: Factory) {
    let harness = harness!(factory);
    let carries = harness.storage.carries_data();
    let client = harness.client();
    let with_data =
        Message::new(Level::SUCCESS, "Deleted.").with_data(serde_json::json!({"undo": "/a/7"}));
    let request = client.request();
    assert!(request.info("before"));
    assert_eq!(
        request.try_add(Message::new(Level::WARNING, "tagged").with_extra_tags("t")),
        Ok(flash_core::Added::Queued)
    );
    let outcome = request.try_add(with_data.clone());
    assert!(request.info("after"));
    let response = request.finish().await;
    assert!(response.report.dropped.is_empty());
    let got = read_all(&client).await;
    if carries {
        assert_eq!(outcome, Ok(flash_core::Added::Queued));
        assert_eq!(response.report.refused, 0);
        assert_eq!(texts(&got), ["before", "tagged", "Deleted.", "after"]);
        assert_eq!(got[2].data, with_data.data);
    } else {
        let refused = outcome.expect_err("refused at add");
        assert_eq!(refused, flash_core::Refused::DataNotSupported);
        assert!(refused.to_string().contains("without data"), "{refused}");
        assert_eq!(response.report.refused, 1);
        assert_eq!(texts(&got), ["before", "tagged", "after"]);
        // add refuses it too, saying only false.
        assert!(!client.request().add(with_data.clone()));
    }
    assert_eq!(got[1].extra_tags.as_deref(), Some("t"));

    // Shown now and never stored: the data stays whatever the storage.
    let request = client.request();
    assert_eq!(
        request.try_add_now(with_data.clone()),
        Ok(flash_core::Added::Queued)
    );
    let shown = request.read().await.expect("read");
    assert_eq!(texts(&shown), ["Deleted."]);
    assert_eq!(shown[0].data, with_data.data);
    request.finish().await;
    assert!(read_all(&client).await.is_empty());
}

/// `len`, `is_empty`, `contains` and `peek` do not consume; reading does.
pub async fn reading_does_not_consume_until_iterated(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    seed(&client, &["one", "two"]).await;

    let request = client.request();
    assert_eq!(request.len().await.expect("len"), 2);
    assert!(!request.is_empty().await.expect("is_empty"));
    assert!(
        request
            .contains(&Message::new(Level::INFO, "one"))
            .await
            .expect("contains")
    );
    assert!(
        !request
            .contains(&Message::new(Level::ERROR, "one"))
            .await
            .expect("contains")
    );
    assert_eq!(texts(&request.peek().await.expect("peek")), ["one", "two"]);
    assert!(!request.is_consumed());
    request.finish().await;

    assert_eq!(texts(&read_all(&client).await), ["one", "two"]);
    assert!(read_all(&client).await.is_empty(), "read consumes");
}

/// Existing messages + add + read: nothing is stored.
pub async fn existing_add_read_stores_nothing(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    seed(&client, &["Test message 1", "Test message 2"]).await;
    let request = client.request();
    request.info("Test message 3");
    assert_eq!(
        texts(&request.read().await.expect("read")),
        ["Test message 1", "Test message 2", "Test message 3"]
    );
    request.finish().await;
    assert!(read_all(&client).await.is_empty());
}

/// Existing messages + read + add: only the new one is stored.
pub async fn existing_read_add_stores_one(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    seed(&client, &["Test message 1", "Test message 2"]).await;
    let request = client.request();
    assert_eq!(request.read().await.expect("read").len(), 2);
    request.info("Test message 3");
    request.finish().await;
    assert_eq!(texts(&read_all(&client).await), ["Test message 3"]);
}

/// Adding without reading keeps what was stored: two added are stored; existing + one added
/// gives three.
pub async fn add_then_update_stores_two(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    seed(&client, &["Test message 1", "Test message 2"]).await;
    assert_eq!(
        texts(&read_all(&client).await),
        ["Test message 1", "Test message 2"]
    );
    seed(&client, &["Test message 1", "Test message 2"]).await;
    seed(&client, &["Test message 3"]).await;
    assert_eq!(
        texts(&read_all(&client).await),
        ["Test message 1", "Test message 2", "Test message 3"]
    );
}

/// A request that adds nothing and consumes nothing writes nothing: no `Set-Cookie`.
pub async fn no_update_writes_nothing(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();

    let response = client.request().finish().await;
    assert!(response.set_cookies().is_empty());
    assert!(!response.report.saved);
    assert!(!response.report.vary);

    seed(&client, &["one", "two"]).await;
    let response = client.request().finish().await;
    assert!(
        response.set_cookies().is_empty(),
        "{:?}",
        response.set_cookies()
    );
    assert!(!response.report.saved);

    let request = client.request();
    assert_eq!(request.len().await.expect("len"), 2);
    let response = request.finish().await;
    assert!(
        response.set_cookies().is_empty(),
        "{:?}",
        response.set_cookies()
    );
    assert!(
        response.report.vary,
        "a response that read messages varies on Cookie"
    );
    assert_eq!(read_all(&client).await.len(), 2);
}

/// Five requests each add one message per level; one reading request sees all 25 in order.
pub async fn twenty_five_messages_in_order(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    let levels = [
        Level::DEBUG,
        Level::INFO,
        Level::SUCCESS,
        Level::WARNING,
        Level::ERROR,
    ];
    let mut expected = Vec::new();
    for r in 0..5 {
        let request = client.request_with(MessagesConfig::default().with_level(Level::DEBUG));
        for level in levels {
            let text = format!("request {r} level {level}");
            assert!(request.add_message(level, text.clone()));
            expected.push((level, text));
        }
        request.finish().await;
    }
    let got: Vec<(Level, String)> = read_all(&client)
        .await
        .into_iter()
        .map(|m| (m.level, m.text))
        .collect();
    assert_eq!(got, expected);
}

/// `keep()` undoes consumption: read messages stay pending, with any added after.
pub async fn keep_undoes_consumption(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    seed(&client, &["one", "two"]).await;
    let request = client.request();
    assert_eq!(request.read().await.expect("read").len(), 2);
    assert!(request.is_consumed());
    request.keep();
    assert!(!request.is_consumed());
    request.finish().await;
    assert_eq!(texts(&read_all(&client).await), ["one", "two"]);

    seed(&client, &["one", "two"]).await;
    let request = client.request();
    request.info("three");
    assert_eq!(request.read().await.expect("read").len(), 3);
    request.keep();
    request.info("four");
    request.finish().await;
    assert_eq!(
        texts(&read_all(&client).await),
        ["one", "two", "three", "four"]
    );
}

/// `now` messages are read in this request and never stored.
pub async fn now_messages_are_never_stored(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    let request = client.request();
    assert!(request.add_now(Message::new(Level::WARNING, "only now")));
    assert!(!request.added_new(), "a now message is not stored");
    assert_eq!(texts(&request.peek().await.expect("peek")), ["only now"]);
    let calls_before = harness.calls.as_ref().map(|c| c.total());
    let response = request.finish().await;
    assert!(
        response.set_cookies().is_empty(),
        "{:?}",
        response.set_cookies()
    );
    assert_eq!(harness.calls.as_ref().map(|c| c.total()), calls_before);

    let request = client.request();
    request.info("stored");
    request.add_now(Message::new(Level::INFO, "shown now"));
    assert_eq!(
        texts(&request.peek().await.expect("peek")),
        ["stored", "shown now"]
    );
    request.finish().await;
    assert_eq!(texts(&read_all(&client).await), ["stored"]);

    let request = client.request();
    request.add_now(Message::new(Level::INFO, "now, read"));
    request.info("later");
    assert_eq!(request.read().await.expect("read").len(), 2);
    request.keep();
    request.finish().await;
    assert_eq!(texts(&read_all(&client).await), ["later"]);
}

/// Unicode, emoji and characters special to cookies and HTML survive storage unchanged.
pub async fn unicode_and_emoji_survive(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    let sent = [
        "Ünïcödé ✓ — «ok»",
        "日本語のメッセージ",
        "emoji 🎉👍🏽 and a flag 🇫🇷",
        "cookie specials ; , = \" \\ and <script>alert(1)</script>",
        "line\nbreak\ttab",
    ];
    seed(&client, &sent).await;
    assert_eq!(texts(&read_all(&client).await), sent);
}

/// What is pending for one client stays within its [`Limits`](flash_core::Limits) across requests,
/// whatever the storage: requests that each add within the limits, without reading, never make
/// the client hold more than `max_messages` messages or `max_bytes` bytes, and at a bound the
/// newest are refused (the oldest, accepted first, stay). A storage that appends without
/// limits (a session re-encoded whole at every request, growing without end) fails here.
pub async fn pending_stays_within_the_limits_across_requests(factory: Factory) {
    let harness = harness!(factory);
    // Messages of 5 bytes: small enough for every storage, a cookie included.
    let text = |round: usize, i: usize| format!("r{round}m{i:02}");
    let add_rounds = |client: &super::Client, config: &MessagesConfig, rounds: usize| {
        let (client, config) = (client.clone(), config.clone());
        async move {
            for round in 0..rounds {
                let request = client.request_with(config.clone());
                for i in 0..3 {
                    assert!(
                        request.info(text(round, i)),
                        "within one request's limits, {round}/{i} is accepted"
                    );
                }
                request.finish().await;
            }
        }
    };

    // The count: 5 messages at most, 12 added over four requests.
    let count = flash_core::Limits::default().with_max_messages(5);
    let client = harness.client();
    add_rounds(&client, &MessagesConfig::default().with_limits(count), 4).await;
    let got = read_all(&client).await;
    assert_eq!(
        texts(&got),
        ["r0m00", "r0m01", "r0m02", "r1m00", "r1m01"],
        "max_messages 5 across requests: the oldest five stay"
    );

    // The bytes: 32 at most (six messages of 5 bytes), 15 messages added over five requests.
    let bytes = flash_core::Limits::default().with_max_bytes(32);
    let client = harness.client();
    add_rounds(&client, &MessagesConfig::default().with_limits(bytes), 5).await;
    let got = read_all(&client).await;
    let held: usize = got.iter().map(Message::size).sum();
    assert!(
        held <= 32,
        "max_bytes 32 across requests: {held} bytes pending"
    );
    assert_eq!(
        texts(&got),
        ["r0m00", "r0m01", "r0m02", "r1m00", "r1m01", "r1m02"],
        "max_bytes 32: the oldest six stay"
    );
}

/// Texts of 10 KB and more survive (storages without a small size limit).
pub async fn large_texts_survive(factory: Factory) {
    let harness = harness!(factory);
    if !harness.capabilities.large_messages() {
        return skip("large_texts_survive", "room for large messages");
    }
    let client = harness.client();
    let big: Vec<String> = (0..3)
        // Just under the default limit of one message's text.
        .map(|i| format!("{i}:") + &"é🎉abcdefgh".repeat(290))
        .collect();
    let refs: Vec<&str> = big.iter().map(String::as_str).collect();
    seed(&client, &refs).await;
    assert!(big[0].len() >= 4000 && big[0].len() <= flash_core::Limits::DEFAULT_MAX_TEXT_LEN);
    assert_eq!(texts(&read_all(&client).await), refs);
}

/// A prefetch request neither sees nor consumes messages.
pub async fn prefetch_neither_sees_nor_consumes(factory: Factory) {
    let harness = harness!(factory);
    let client = harness.client();
    seed(&client, &["for the real visit"]).await;
    let request = client.prefetch();
    assert_eq!(request.len().await.expect("len"), 0);
    assert!(request.read().await.expect("read").is_empty());
    let response = request.finish().await;
    assert!(
        response.set_cookies().is_empty(),
        "{:?}",
        response.set_cookies()
    );
    assert_eq!(texts(&read_all(&client).await), ["for the real visit"]);
}

async fn established(harness: &Harness) -> super::Client {
    let client = harness.client();
    seed(&client, &["establish"]).await;
    assert_eq!(texts(&read_all(&client).await), ["establish"]);
    client
}

/// 8 concurrent tasks × 500 rounds of one client: every message is read exactly once.
pub async fn concurrent_reads_deliver_exactly_once(factory: Factory) {
    let harness = harness!(factory);
    if !harness.capabilities.exactly_once() {
        return skip(
            "concurrent_reads_deliver_exactly_once",
            "exactly-once delivery",
        );
    }
    const TASKS: usize = 8;
    const ROUNDS: usize = 500;
    let client = established(&harness).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for r in 0..ROUNDS {
                let request = client.request();
                request.info(format!("{t}-{r}"));
                request.finish().await;
                let request = client.request();
                seen.extend(
                    request
                        .read()
                        .await
                        .expect("read")
                        .into_iter()
                        .map(|m| m.text),
                );
                request.finish().await;
            }
            seen
        }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for text in task.await.expect("task") {
            *counts.entry(text).or_default() += 1;
        }
    }
    for m in read_all(&client).await {
        *counts.entry(m.text).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(counts.len(), TASKS * ROUNDS, "messages lost");
}

/// Concurrent adds of one client lose nothing, and each task's messages keep their order.
pub async fn concurrent_adds_lose_nothing(factory: Factory) {
    let harness = harness!(factory);
    if !harness.capabilities.exactly_once() {
        return skip("concurrent_adds_lose_nothing", "exactly-once delivery");
    }
    // 96 messages: within the default limit of pending messages for one client.
    const TASKS: usize = 8;
    const ADDS: usize = 12;
    let client = established(&harness).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ADDS {
                seed(&client, &[&format!("{t}-{i}")]).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let got = read_all(&client).await;
    assert_eq!(got.len(), TASKS * ADDS);
    for t in 0..TASKS {
        let mine: Vec<usize> = got
            .iter()
            .filter_map(|m| m.text.strip_prefix(&format!("{t}-")))
            .map(|i| i.parse().expect("index"))
            .collect();
        assert_eq!(mine, (0..ADDS).collect::<Vec<_>>(), "task {t} order");
    }
}

/// A message loaded but not read goes back in its place; meanwhile no other request sees it.
pub async fn unread_messages_come_back_in_order(factory: Factory) {
    let harness = harness!(factory);
    if !harness.capabilities.exactly_once() {
        return skip(
            "unread_messages_come_back_in_order",
            "exactly-once delivery",
        );
    }
    let client = established(&harness).await;
    seed(&client, &["m1", "m2"]).await;
    let holder = client.request();
    assert_eq!(texts(&holder.peek().await.expect("peek")), ["m1", "m2"]);

    let other = client.request();
    assert!(
        other.read().await.expect("read").is_empty(),
        "messages held by another request must be hidden"
    );
    other.finish().await;
    seed(&client, &["m3"]).await;

    holder.info("m4");
    holder.finish().await;
    assert_eq!(texts(&read_all(&client).await), ["m1", "m2", "m3", "m4"]);
}

/// A request that dies between load and save loses nothing: after the lease timeout the
/// messages come back, in order.
pub async fn dropped_request_loses_nothing(factory: Factory) {
    let options = Options {
        lease_timeout: Duration::from_millis(400),
        ..Options::new()
    };
    let harness = harness!(factory, options);
    if !harness.capabilities.lease_timeout() {
        return skip("dropped_request_loses_nothing", "lease timeout");
    }
    let client = established(&harness).await;
    seed(&client, &["m1", "m2"]).await;
    let crashed = client.request();
    assert_eq!(crashed.read().await.expect("read").len(), 2);
    crashed.abandon();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(texts(&read_all(&client).await), ["m1", "m2"]);
}

/// Undelivered messages expire after the TTL.
pub async fn undelivered_messages_expire(factory: Factory) {
    let options = Options {
        ttl: Duration::from_millis(800),
        ..Options::new()
    };
    let harness = harness!(factory, options);
    if !harness.capabilities.ttl() {
        return skip("undelivered_messages_expire", "TTL");
    }
    let fresh = harness.client();
    seed(&fresh, &["read in time"]).await;
    assert_eq!(texts(&read_all(&fresh).await), ["read in time"]);

    let late = harness.client();
    seed(&late, &["expires"]).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        read_all(&late).await.is_empty(),
        "expired messages delivered"
    );
}

/// Store calls: none when idle or without an id cookie, one to add, one lease + at most one
/// settle to read. Exact for a keyed storage; upper bounds for a composition.
pub async fn store_calls_are_counted(factory: Factory) {
    let harness = harness!(factory);
    let Some(calls) = harness.calls.clone() else {
        return skip("store_calls_are_counted", "counted store");
    };
    let exact = harness.calls_exact;
    let check = |made: usize, expected: usize, what: &str| {
        if exact {
            assert_eq!(made, expected, "{what}");
        } else {
            assert!(
                made <= expected,
                "{what}: {made} calls, at most {expected} expected"
            );
        }
    };
    let before = calls.total();
    let client = harness.client();

    let request = client.request();
    assert_eq!(request.len().await.expect("len"), 0);
    request.finish().await;
    client.request().finish().await;
    assert_eq!(calls.total(), before, "no state cookie: no store call");

    seed(&client, &["one"]).await;
    check(
        calls.total() - before,
        1,
        "a write-only request is one append",
    );

    let idle = calls.total();
    client.request().finish().await;
    assert_eq!(
        calls.total(),
        idle,
        "a request that neither reads nor adds: no call"
    );

    let start = calls.total();
    let request = client.request();
    assert_eq!(request.read().await.expect("read").len(), 1);
    request.info("two");
    request.finish().await;
    assert!(
        calls.total() - start <= 2,
        "read + write: at most two calls"
    );

    let start = calls.total();
    assert_eq!(read_all(&client).await.len(), 1);
    check(
        calls.total() - start,
        2,
        "a read that found messages: lease + settle",
    );

    let start = calls.total();
    assert!(read_all(&client).await.is_empty());
    check(
        calls.total() - start,
        1,
        "a read that found nothing needs no settle",
    );
}

fn variants(valid: &str) -> Vec<(&'static str, String)> {
    let mut tampered = valid.to_owned().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let mut last = valid.to_owned();
    let end = last.pop().map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
    last.push(end);
    vec![
        ("tampered", tampered),
        ("tampered last character", last),
        ("truncated", valid[..valid.len() / 2].to_owned()),
        ("truncated by one", valid[..valid.len() - 1].to_owned()),
        ("garbage", "not-a-flash-cookie!".to_owned()),
        ("separators only", ".:.:".to_owned()),
        ("base64 junk", "AAAA.BBBB".to_owned()),
        ("huge", "A".repeat(8000)),
        ("quoted", format!("\"{valid}\"x")),
    ]
}

/// A tampered, truncated, empty or garbage state cookie means "no messages", never a panic or
/// an error, and a bad cookie is deleted.
pub async fn bad_state_cookie_means_no_messages(factory: Factory) {
    let harness = harness!(factory);
    if harness.state_cookie.is_empty() {
        return skip("bad_state_cookie_means_no_messages", "state cookie");
    }
    let name = harness.state_cookie.clone();
    let owner = harness.client();
    seed(&owner, &["secret message"]).await;
    let valid = owner.cookie(&name).expect("a state cookie after adding");

    let mut cases = variants(&valid);
    cases.push(("empty", String::new()));
    for (case, value) in cases {
        let client = harness.client();
        client.set_cookie(&name, &value);
        let request = client.request();
        let got = request
            .read()
            .await
            .unwrap_or_else(|err| panic!("{case}: a bad cookie must mean no messages, not {err}"));
        assert!(got.is_empty(), "{case}: got {got:?}");
        let response = request.finish().await;
        if !value.is_empty() {
            assert!(
                response.deletes(&name),
                "{case}: bad cookie not deleted: {:?}",
                response.set_cookies()
            );
        }
        // Adding with a bad cookie works and replaces it.
        let client = harness.client();
        client.set_cookie(&name, &value);
        seed(&client, &["fresh"]).await;
        assert_eq!(texts(&read_all(&client).await), ["fresh"], "{case}");
    }
    assert_eq!(texts(&read_all(&owner).await), ["secret message"]);
}

/// A cookie signed with a key the storage does not hold means "no messages" and is deleted.
pub async fn wrong_key_means_no_messages(factory: Factory) {
    let signer = Options::new();
    let harness = harness!(factory.clone(), signer.clone());
    if harness.state_cookie.is_empty() {
        return skip("wrong_key_means_no_messages", "state cookie");
    }
    let other = Options {
        secret: format!("another-secret-{}-abcdefghijklmnop", signer.namespace),
        ..signer
    };
    let stranger = harness!(factory, other);
    let client = harness.client();
    seed(&client, &["signed with the first key"]).await;
    let client = client.with_harness(stranger);
    let request = client.request();
    assert!(request.read().await.expect("read").is_empty());
    let response = request.finish().await;
    assert!(
        response.deletes(&harness.state_cookie),
        "{:?}",
        response.set_cookies()
    );
}

/// A request that read and was dropped without saving (the client went away, the handler
/// panicked) gives its messages back at once, not after the lease timeout (30 s here).
pub async fn abandoned_request_releases_at_once(factory: Factory) {
    let harness = harness!(factory);
    if !harness.capabilities.lease_timeout {
        return skip("abandoned_request_releases_at_once", "lease timeout");
    }
    let client = established(&harness).await;
    seed(&client, &["m1", "m2"]).await;
    let abandoned = client.request();
    assert_eq!(texts(&abandoned.read().await.expect("read")), ["m1", "m2"]);
    abandoned.abandon();
    // The release runs in a spawned task: give it a moment, far below the lease timeout.
    let mut back = Vec::new();
    for _ in 0..50 {
        back = read_all(&client).await;
        if !back.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        texts(&back),
        ["m1", "m2"],
        "the abandoned lease was not released"
    );
    assert!(read_all(&client).await.is_empty(), "delivered twice");
}

/// `forget_id` (logout): nothing that was pending or added before it is shown again; what is
/// added after it is. A keyed storage removes the id cookie, and the old id holds nothing.
pub async fn forget_id_deletes_what_is_pending(factory: Factory) {
    let harness = harness!(factory);
    let keyed = harness.calls_exact;
    let name = harness.state_cookie.clone();
    let client = harness.client();
    seed(&client, &["before logout"]).await;
    let old = client.cookie(&name);

    let request = client.request();
    request.info("added before forgetting");
    request.forget_id().await.expect("forget");
    assert!(request.peek().await.expect("peek").is_empty());
    request.info("logged out");
    request.finish().await;
    if keyed {
        assert_ne!(client.cookie(&name), old, "the id was not changed");
        let thief = harness.client();
        thief.set_cookie(&name, old.as_deref().expect("an id cookie"));
        assert!(
            read_all(&thief).await.is_empty(),
            "the forgotten id still holds messages"
        );
    }
    assert_eq!(texts(&read_all(&client).await), ["logged out"]);

    // Forgetting with nothing added afterwards: nothing pending, and no id cookie left.
    seed(&client, &["pending"]).await;
    let request = client.request();
    request.forget_id().await.expect("forget");
    let response = request.finish().await;
    if keyed {
        assert!(response.deletes(&name), "{:?}", response.set_cookies());
    }
    assert!(read_all(&client).await.is_empty());
}

/// `rotate_id` (login): with `Carry::Keep` the pending messages follow the client, in order,
/// with those added after; with `Carry::Drop` only those added after remain. A keyed storage
/// gives a new id, and the old one holds nothing.
pub async fn rotate_id_moves_or_drops_what_is_pending(factory: Factory) {
    use flash_core::storage::Carry;
    let harness = harness!(factory);
    let keyed = harness.calls_exact;
    let name = harness.state_cookie.clone();
    let client = harness.client();
    seed(&client, &["m1", "m2"]).await;
    let old = client.cookie(&name);

    // Not read by the rotating request.
    let request = client.request();
    request.info("m3");
    request.rotate_id(Carry::Keep).await.expect("rotate");
    request.info("m4");
    request.finish().await;
    if keyed {
        assert_ne!(client.cookie(&name), old, "the id was not rotated");
        let thief = harness.client();
        thief.set_cookie(&name, old.as_deref().expect("an id cookie"));
        assert!(
            read_all(&thief).await.is_empty(),
            "the old id kept messages"
        );
    }
    assert_eq!(texts(&read_all(&client).await), ["m1", "m2", "m3", "m4"]);

    // Peeked (not consumed) by the rotating request.
    seed(&client, &["p1", "p2"]).await;
    let request = client.request();
    assert_eq!(texts(&request.peek().await.expect("peek")), ["p1", "p2"]);
    request.rotate_id(Carry::Keep).await.expect("rotate");
    request.finish().await;
    assert_eq!(texts(&read_all(&client).await), ["p1", "p2"]);

    // Dropped.
    seed(&client, &["d1"]).await;
    let request = client.request();
    request.info("d2");
    request.rotate_id(Carry::Drop).await.expect("rotate");
    request.info("welcome");
    request.finish().await;
    assert_eq!(texts(&read_all(&client).await), ["welcome"]);
}

/// Reads (consuming) what a request shows, and ends it.
async fn shown(request: super::Request) -> Vec<String> {
    let messages = request.read().await.expect("read");
    request.finish().await;
    messages.iter().map(|m| m.text.clone()).collect()
}

fn addressed(harness: &Harness, test: &str) -> bool {
    if !harness.capabilities.addresses() {
        skip(test, "addressed messages");
        return false;
    }
    true
}

/// POST → 303 → reads by a `fetch`, a `HEAD`, a page load of another path and a request with
/// no path's page... before the target's page load: only the target shows the message, once.
pub async fn a_redirect_addresses_its_messages_to_its_page(factory: Factory) {
    let harness = harness!(factory);
    if !addressed(&harness, "a_redirect_addresses_its_messages_to_its_page") {
        return;
    }
    let client = harness.client();
    let config = MessagesConfig::default();
    let post = client.to("/articles", "POST", Some("navigate"), config.clone());
    post.success("Saved.");
    post.redirect("/articles/7?tab=2").await;

    assert!(
        shown(client.fetch("/api/messages", config.clone()))
            .await
            .is_empty()
    );
    assert!(
        shown(client.fetch("/articles/7", config.clone()))
            .await
            .is_empty()
    );
    let head = client.to("/articles/7", "HEAD", None, config.clone());
    assert!(shown(head).await.is_empty());
    assert!(shown(client.page("/", config.clone())).await.is_empty());
    assert_eq!(
        shown(client.page("/articles/7", config.clone())).await,
        ["Saved."]
    );
    assert!(
        shown(client.page("/articles/7", config.clone()))
            .await
            .is_empty()
    );
    assert!(shown(client.page("/", config)).await.is_empty());
}

/// Reads by other requests show the unaddressed messages and leave the addressed ones, in
/// their order, for their page.
pub async fn other_reads_leave_addressed_messages_in_order(factory: Factory) {
    let harness = harness!(factory);
    if !addressed(&harness, "other_reads_leave_addressed_messages_in_order") {
        return;
    }
    let client = harness.client();
    let config = MessagesConfig::default();
    seed(&client, &["plain 1"]).await;
    let post = client.to("/form", "POST", Some("navigate"), config.clone());
    post.info("for b 1");
    post.add(Message::new(Level::INFO, "for c").addressed_to("/c"));
    post.info("for b 2");
    post.redirect("/b").await;
    seed(&client, &["plain 2"]).await;

    // A fetch shows and consumes the unaddressed ones only.
    assert_eq!(
        shown(client.fetch("/b", config.clone())).await,
        ["plain 1", "plain 2"]
    );
    // A request that reads and keeps, and adds: the addressed ones stay where they were.
    let keeping = client.page("/a", config.clone());
    assert!(keeping.read().await.expect("read").is_empty());
    keeping.keep();
    keeping.info("plain 3");
    keeping.finish().await;
    assert_eq!(
        shown(client.page("/b", config.clone())).await,
        ["for b 1", "for b 2", "plain 3"]
    );
    assert_eq!(shown(client.page("/c", config.clone())).await, ["for c"]);
    assert!(shown(client.page("/c", config)).await.is_empty());
}

/// A message whose page is never visited is shown by a read once its bound passes: in page
/// loads of other pages, or in time.
pub async fn an_unvisited_address_is_shown_after_its_bound(factory: Factory) {
    let harness = harness!(factory);
    if !addressed(&harness, "an_unvisited_address_is_shown_after_its_bound") {
        return;
    }
    let client = harness.client();
    let by_loads = MessagesConfig::default().with_addressing(
        flash_core::Addressing::default()
            .with_loads(2)
            .with_time(Duration::from_secs(3600)),
    );
    let post = client.to("/form", "POST", Some("navigate"), by_loads.clone());
    post.info("lost page");
    post.redirect("/never").await;
    // Fetches do not count; page loads of other pages do.
    assert!(
        shown(client.fetch("/api", by_loads.clone()))
            .await
            .is_empty()
    );
    assert!(shown(client.page("/a", by_loads.clone())).await.is_empty());
    assert!(
        shown(client.fetch("/api", by_loads.clone()))
            .await
            .is_empty()
    );
    assert!(shown(client.page("/b", by_loads.clone())).await.is_empty());
    assert_eq!(
        shown(client.fetch("/api", by_loads.clone())).await,
        ["lost page"]
    );
    assert!(shown(client.page("/never", by_loads)).await.is_empty());

    // By time: the checks hold however slow the machine is. A fetch known to have ended
    // before the bound passed must not show the message; one after it must.
    let bound = Duration::from_secs(2);
    let by_time = MessagesConfig::default()
        .with_addressing(flash_core::Addressing::default().with_time(bound));
    let started = std::time::Instant::now();
    let post = client.to("/form", "POST", Some("navigate"), by_time.clone());
    post.info("late");
    post.redirect("/never").await;
    let addressed_by = std::time::Instant::now();
    let early = shown(client.fetch("/api", by_time.clone())).await;
    if started.elapsed() < bound {
        assert!(early.is_empty(), "shown before its bound: {early:?}");
        let after = (addressed_by + bound + Duration::from_millis(200))
            .saturating_duration_since(std::time::Instant::now());
        tokio::time::sleep(after).await;
        assert_eq!(shown(client.fetch("/api", by_time)).await, ["late"]);
    } else {
        // This machine took longer than the bound to get here: the fetch came after it.
        assert_eq!(early, ["late"]);
    }
}

/// A page that redirects without reading hands its messages on to its own redirect's page;
/// `leave_unaddressed` and `Addressing::off` leave what a request adds for any read.
pub async fn a_page_that_redirects_unread_hands_its_messages_on(factory: Factory) {
    let harness = harness!(factory);
    if !addressed(
        &harness,
        "a_page_that_redirects_unread_hands_its_messages_on",
    ) {
        return;
    }
    let client = harness.client();
    let config = MessagesConfig::default();
    let post = client.to("/login", "POST", Some("navigate"), config.clone());
    post.success("Welcome.");
    post.redirect("/articles").await;
    // `/articles` → `/articles/`, the handler never touching its messages.
    client
        .page("/articles", config.clone())
        .redirect("/articles/")
        .await;
    assert!(
        shown(client.page("/articles", config.clone()))
            .await
            .is_empty()
    );
    assert!(
        shown(client.fetch("/articles/", config.clone()))
            .await
            .is_empty()
    );
    assert_eq!(
        shown(client.page("/articles/", config.clone())).await,
        ["Welcome."]
    );

    let post = client.to("/x", "POST", Some("navigate"), config.clone());
    post.leave_unaddressed();
    post.info("anywhere");
    post.redirect("/y").await;
    assert_eq!(shown(client.fetch("/api", config)).await, ["anywhere"]);

    let off = MessagesConfig::default().with_addressing(flash_core::Addressing::off());
    let post = client.to("/x", "POST", Some("navigate"), off.clone());
    post.info("off");
    post.redirect("/y").await;
    assert_eq!(shown(client.fetch("/api", off)).await, ["off"]);
}
