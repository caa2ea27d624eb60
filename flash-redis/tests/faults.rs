//! Faults: a server that is unreachable or silent gives a typed `Unavailable` error within a
//! bounded time; killed connections are replaced by themselves and nothing is lost or doubled;
//! bad configuration is a typed error.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use flash_core::{
    ErrorKind, Level, Message,
    storage::{ClientId, KeyedStore, LeaseId, Outcome},
};
use flash_redis::RedisStore;
use redis::aio::MultiplexedConnection;

const LONG: Duration = Duration::from_secs(600);
/// Far above the timeouts the tests set (300 ms each), far below a hang.
const BOUND: Duration = Duration::from_secs(5);

fn msg(text: &str) -> Message {
    Message::new(Level::INFO, text)
}

fn quick(url: &str) -> flash_redis::RedisStoreBuilder {
    RedisStore::builder(url)
        .prefix(format!("flash-faults-{}", common::random_hex()))
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .call_timeout(Duration::from_secs(1))
}

fn assert_unavailable(result: flash_core::Result<impl std::fmt::Debug>, started: Instant) {
    let elapsed = started.elapsed();
    let err = result.expect_err("an unreachable server is an error");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the cause is kept: {err:?}"
    );
    assert!(elapsed < BOUND, "took {elapsed:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_not_a_hang() {
    // Nothing listens on port 1.
    let started = Instant::now();
    assert_unavailable(quick("redis://127.0.0.1:1").connect().await, started);

    let store = quick("redis://127.0.0.1:1")
        .connect_lazy()
        .expect("a lazy store needs no server");
    let client = ClientId::random();
    let started = Instant::now();
    assert_unavailable(
        store.lease(&client, &LeaseId::random(), LONG).await,
        started,
    );
    let started = Instant::now();
    assert_unavailable(
        store
            .append(&client, &[msg("a")], LONG, &flash_core::Limits::default())
            .await,
        started,
    );
    let started = Instant::now();
    assert_unavailable(
        store
            .settle(
                &client,
                &LeaseId::random(),
                Outcome::Consumed,
                &[msg("a")],
                LONG,
                &flash_core::Limits::default(),
            )
            .await,
        started,
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_not_a_hang() {
    // Accepts connections and reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("redis://127.0.0.1:{port}");

    let started = Instant::now();
    assert_unavailable(quick(&url).connect().await, started);

    let store = quick(&url).connect_lazy().expect("lazy");
    let client = ClientId::random();
    let started = Instant::now();
    assert_unavailable(
        store.lease(&client, &LeaseId::random(), LONG).await,
        started,
    );
    let started = Instant::now();
    assert_unavailable(
        store
            .append(&client, &[msg("a")], LONG, &flash_core::Limits::default())
            .await,
        started,
    );
    silent.abort();
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Outside a runtime, a lazy store cannot start its connection task.
    let err = RedisStore::builder("redis://127.0.0.1:6379")
        .connect_lazy()
        .expect_err("no runtime");
    assert_eq!(err.kind(), ErrorKind::Config);
    runtime.block_on(async {
        for url in [
            "",
            "http://127.0.0.1",
            "redis://127.0.0.1:notaport",
            "redis://h/notadb",
        ] {
            let err = RedisStore::builder(url).connect_lazy().expect_err(url);
            assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err:?}");
            let err = RedisStore::builder(url).connect().await.expect_err(url);
            assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err:?}");
        }
        for prefix in ["", "a{b", "a}", "with space"] {
            let err = RedisStore::builder("redis://127.0.0.1:6379")
                .prefix(prefix)
                .connect()
                .await
                .expect_err(prefix);
            assert_eq!(err.kind(), ErrorKind::Config);
        }
        let err = RedisStore::builder("redis://127.0.0.1:6379")
            .call_timeout(Duration::ZERO)
            .connect_lazy()
            .expect_err("zero timeout");
        assert_eq!(err.kind(), ErrorKind::Config);
        #[cfg(feature = "cluster")]
        {
            let err = RedisStore::cluster_builder(["redis://127.0.0.1:7001"])
                .connect_lazy()
                .expect_err("cluster is eager");
            assert_eq!(err.kind(), ErrorKind::Config);
            let err = RedisStore::cluster_builder(Vec::<String>::new())
                .connect()
                .await
                .expect_err("no seeds");
            assert!(
                matches!(err.kind(), ErrorKind::Config | ErrorKind::Unavailable),
                "{err:?}"
            );
        }
    });
    // Debug never shows a password.
    let builder = RedisStore::builder("redis://user:hunter2@127.0.0.1:6379");
    assert!(!format!("{builder:?}").contains("hunter2"));
}

/// A Redis ACL user of this test's own: the store connects as it, so the test can kill exactly
/// the store's connections (`CLIENT KILL USER`) while other tests run.
struct TestUser {
    name: String,
    password: String,
    admin: MultiplexedConnection,
}

impl TestUser {
    async fn create() -> Option<TestUser> {
        let mut admin = common::admin(&common::redis_url()).await?;
        let name = format!("flash-test-{}", common::random_hex());
        let password = common::random_hex();
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&name)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query_async(&mut admin)
            .await
            .expect("ACL SETUSER");
        Some(TestUser {
            name,
            password,
            admin,
        })
    }

    /// `FLASH_REDIS_URL` with this user's credentials.
    fn url(&self) -> String {
        let url = common::redis_url();
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let rest = match rest.split_once('@') {
            Some((userinfo, host)) if !userinfo.contains('/') => host,
            _ => rest,
        };
        format!("{scheme}://{}:{}@{rest}", self.name, self.password)
    }

    /// Kills every connection of this user; returns how many.
    async fn kill(&mut self) -> i64 {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&self.name)
            .query_async(&mut self.admin)
            .await
            .expect("CLIENT KILL USER")
    }

    /// How many connections this user has open.
    async fn connections(&mut self) -> usize {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut self.admin)
            .await
            .expect("CLIENT LIST");
        let me = format!("user={}", self.name);
        list.lines()
            .filter(|line| line.split_whitespace().any(|f| f == me))
            .count()
    }

    async fn drop_user(mut self) {
        let _: redis::RedisResult<i64> = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&self.name)
            .query_async(&mut self.admin)
            .await;
    }
}

#[tokio::test]
async fn killed_connections_come_back_and_nothing_is_lost() {
    let Some(mut user) = TestUser::create().await else {
        return;
    };
    let store = RedisStore::builder(user.url())
        .prefix(format!("flash-faults-{}", common::random_hex()))
        .connect()
        .await
        .expect("connect as the test user");
    assert_eq!(user.connections().await, 1, "one multiplexed connection");
    let client = ClientId::random();

    store
        .append(
            &client,
            &[msg("a"), msg("b")],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");
    assert!(user.kill().await >= 1, "the store's connection was killed");
    store
        .append(&client, &[msg("c")], LONG, &flash_core::Limits::default())
        .await
        .expect("the next append reconnects and succeeds");

    assert!(user.kill().await >= 1);
    let lease = LeaseId::random();
    let got = store
        .lease(&client, &lease, LONG)
        .await
        .expect("the next lease reconnects and succeeds");
    assert_eq!(
        got,
        [msg("a"), msg("b"), msg("c")],
        "nothing lost, nothing doubled"
    );

    assert!(user.kill().await >= 1);
    store
        .settle(
            &client,
            &lease,
            Outcome::Consumed,
            &[msg("d")],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("the next settle reconnects and succeeds");

    assert!(user.kill().await >= 1);
    let got = store
        .lease(&client, &LeaseId::random(), LONG)
        .await
        .expect("lease");
    assert_eq!(got, [msg("d")]);
    assert_eq!(user.connections().await, 1, "still one connection");
    user.drop_user().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_concurrent_appends_lose_and_double_nothing() {
    kills_during_concurrent_appends(None, 1).await;
}

/// The same with four clients in one shared key: their writes interleave in one value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_concurrent_appends_to_a_shared_key_lose_and_double_nothing() {
    kills_during_concurrent_appends(Some(1), 4).await;
}

/// 16 writers append 40 messages each to `clients` clients while the store's connections are
/// killed: every acknowledged message is stored exactly once, every failed one at most once.
async fn kills_during_concurrent_appends(shared_keys: Option<u32>, clients: usize) {
    let Some(mut user) = TestUser::create().await else {
        return;
    };
    let mut builder =
        RedisStore::builder(user.url()).prefix(format!("flash-faults-{}", common::random_hex()));
    if let Some(keys) = shared_keys {
        builder = builder.shared_keys(keys);
    }
    let store = builder.connect().await.expect("connect as the test user");
    let ids: Vec<ClientId> = (0..clients).map(|_| ClientId::random()).collect();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            let client = ids[w % clients];
            tokio::spawn(async move {
                let mut results = Vec::new();
                for i in 0..40 {
                    let text = format!("w{w}-{i}");
                    // Room for all 640: this test is about retries, not limits.
                    let roomy = flash_core::Limits::default().with_max_messages(1000);
                    let result = store.append(&client, &[msg(&text)], LONG, &roomy).await;
                    if let Ok(kept) = result {
                        assert_eq!(kept, 1, "{text}: an acknowledged append kept its message");
                    }
                    results.push((text, result.is_ok()));
                }
                results
            })
        })
        .collect();
    let mut killed = 0;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        killed += user.kill().await;
    }
    let mut outcomes = Vec::new();
    for writer in writers {
        outcomes.extend(writer.await.expect("writer"));
    }
    assert!(killed >= 1, "connections were killed while writing");

    let mut stored = Vec::new();
    for (c, client) in ids.iter().enumerate() {
        let got = store
            .lease(client, &LeaseId::random(), LONG)
            .await
            .expect("lease");
        for m in got {
            let writer: usize = m.text[1..m.text.find('-').expect("w<n>-<i>")]
                .parse()
                .expect("a writer");
            assert_eq!(
                writer % clients,
                c,
                "{} is stored for its own client",
                m.text
            );
            stored.push(m);
        }
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &stored {
        *counts.entry(m.text.as_str()).or_default() += 1;
    }
    let succeeded = outcomes.iter().filter(|(_, ok)| *ok).count();
    assert!(succeeded > 0);
    for (text, ok) in &outcomes {
        let n = counts.get(text.as_str()).copied().unwrap_or(0);
        if *ok {
            assert_eq!(n, 1, "{text} was acknowledged: stored exactly once");
        } else {
            assert!(n <= 1, "{text} failed: stored at most once");
        }
    }
    assert_eq!(stored.len(), counts.len(), "no message is stored twice");
    user.drop_user().await;
}

#[tokio::test]
async fn wrong_credentials_are_a_configuration_error() {
    let Some(user) = TestUser::create().await else {
        return;
    };
    let url = user.url().replacen(&user.password, "wrong-password", 1);
    let err = quick(&url).connect().await.expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    user.drop_user().await;
}

#[tokio::test]
async fn the_store_reconnects_when_the_server_is_back() {
    let Some(server) = common::OwnServer::start().await else {
        return;
    };
    let port = server.port;
    let store = quick(&server.url()).connect().await.expect("connect");
    let client = ClientId::random();
    store
        .append(
            &client,
            &[msg("before")],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("append");

    drop(server); // the server dies
    let started = Instant::now();
    assert_unavailable(
        store
            .append(
                &client,
                &[msg("down")],
                LONG,
                &flash_core::Limits::default(),
            )
            .await,
        started,
    );

    let Some(server) = common::OwnServer::start_on(port).await else {
        return;
    };
    // Back (empty: the private server keeps nothing): the store reconnects by itself.
    store
        .append(
            &client,
            &[msg("after")],
            LONG,
            &flash_core::Limits::default(),
        )
        .await
        .expect("the first call after the server is back succeeds");
    let got = store
        .lease(&client, &LeaseId::random(), LONG)
        .await
        .expect("lease");
    assert_eq!(got, [msg("after")]);
    drop(server);
}

/// Accepts connections on a loopback port and never reads or answers: a server that is stuck.
/// Returns its port and the task holding the sockets (abort it at the end).
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

/// The call timeout bounds everything: with the connect and response timeouts far longer,
/// a call still ends in about the call timeout, `Unavailable`.
const CALL: Duration = Duration::from_millis(700);

fn assert_about_the_deadline(result: flash_core::Result<impl std::fmt::Debug>, started: Instant) {
    let elapsed = started.elapsed();
    let err = result.expect_err("a silent server is an error");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(
        elapsed >= CALL - Duration::from_millis(50),
        "ended by the call timeout, not before: {elapsed:?} ({err})"
    );
    assert!(
        elapsed < CALL + Duration::from_millis(1500),
        "took {elapsed:?}"
    );
}

fn slow_parts(builder: flash_redis::RedisStoreBuilder) -> flash_redis::RedisStoreBuilder {
    builder
        .prefix(format!("flash-faults-{}", common::random_hex()))
        .connect_timeout(Duration::from_secs(30))
        .response_timeout(Duration::from_secs(30))
        .call_timeout(CALL)
}

#[tokio::test]
async fn the_call_timeout_bounds_connecting_and_every_call() {
    let (port, silent) = silent_server().await;
    let url = format!("redis://127.0.0.1:{port}");

    let started = Instant::now();
    assert_about_the_deadline(
        slow_parts(RedisStore::builder(&url)).connect().await,
        started,
    );

    let store = slow_parts(RedisStore::builder(&url))
        .connect_lazy()
        .expect("lazy");
    let client = ClientId::random();
    let limits = flash_core::Limits::default();
    let started = Instant::now();
    assert_about_the_deadline(
        store.lease(&client, &LeaseId::random(), LONG).await,
        started,
    );
    let started = Instant::now();
    assert_about_the_deadline(
        store.append(&client, &[msg("a")], LONG, &limits).await,
        started,
    );
    let started = Instant::now();
    assert_about_the_deadline(
        store
            .settle(
                &client,
                &LeaseId::random(),
                Outcome::Consumed,
                &[msg("a")],
                LONG,
                &limits,
            )
            .await,
        started,
    );

    #[cfg(feature = "cluster")]
    {
        let started = Instant::now();
        assert_about_the_deadline(
            slow_parts(RedisStore::cluster_builder([url.clone()]))
                .connect()
                .await,
            started,
        );
    }
    silent.abort();
}

/// A server that answered, then stops answering mid-session (`CLIENT PAUSE` on a private
/// server): every call ends in about the call timeout, `Unavailable`, and the store works
/// again once the server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_unavailable_within_the_deadline() {
    let Some(server) = common::OwnServer::start().await else {
        return;
    };
    let Some(mut admin) = common::admin(&server.url()).await else {
        return;
    };
    let store = slow_parts(RedisStore::builder(server.url()))
        .connect()
        .await
        .expect("connect");
    let client = ClientId::random();
    let limits = flash_core::Limits::default();
    assert_eq!(
        store
            .append(&client, &[msg("a")], LONG, &limits)
            .await
            .expect("append"),
        1
    );
    let paused = Instant::now();
    let pause = Duration::from_millis(2500);
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis().to_string())
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    let timed_out = LeaseId::random();
    let started = Instant::now();
    assert_about_the_deadline(store.lease(&client, &timed_out, LONG).await, started);
    let started = Instant::now();
    assert_about_the_deadline(
        store.append(&client, &[msg("b")], LONG, &limits).await,
        started,
    );
    // The pause ends by itself (the admin connection is paused too).
    tokio::time::sleep(pause.saturating_sub(paused.elapsed()) + Duration::from_millis(200)).await;
    // The timed-out calls may have been applied once the server resumed: the lease holds "a"
    // until it is released (as the bridge does after a failed load), the append may have kept
    // "b".
    store
        .settle(&client, &timed_out, Outcome::Released, &[], LONG, &limits)
        .await
        .expect("the store answers again");
    let got = store
        .lease(&client, &LeaseId::random(), LONG)
        .await
        .expect("the store answers again");
    assert!(got == [msg("a")] || got == [msg("a"), msg("b")], "{got:?}");
}

/// Every way a URL carries a secret, with the server unreachable: neither the error (its
/// Display, every source's Display, its Debug) nor the Debug of the builder or the store shows it.
#[tokio::test]
async fn no_error_or_debug_shows_a_password() {
    let socket = std::env::temp_dir().join(format!("flash-none-{}.sock", common::random_hex()));
    let urls = [
        format!("redis+unix://{}?pass=hunter2", socket.display()),
        format!("redis+unix://{}?db=0&user=u&pass=hunter2", socket.display()),
        "redis://u:pa/ss@h".to_owned(),
        "redis://u:pa/ss@127.0.0.1:1/0".to_owned(),
        "redis://u:p@ss@127.0.0.1:1".to_owned(),
        "redis://hunter2@127.0.0.1:1".to_owned(),
        "redis://:hunter2@127.0.0.1:1".to_owned(),
        "redis://user:hunter2@127.0.0.1:1/0".to_owned(),
        "redis://user:hunter2@127.0.0.1:notaport".to_owned(),
    ];
    let secrets = ["hunter2", "pa/ss", "p@ss"];
    let check = |url: &str, what: &str, shown: &str| {
        for secret in secrets {
            assert!(
                !shown.contains(secret),
                "{url}: {what} shows {secret:?}: {shown}"
            );
        }
    };
    let check_error = |url: &str, err: &flash_core::Error| {
        check(url, "the error", &err.to_string());
        check(url, "the error's Debug", &format!("{err:?}"));
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            check(url, "a source", &cause.to_string());
            check(url, "a source's Debug", &format!("{cause:?}"));
            source = cause.source();
        }
    };
    for url in &urls {
        check(url, "the builder's Debug", &format!("{:?}", quick(url)));
        let err = quick(url).connect().await.expect_err(url);
        assert!(
            matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Config),
            "{url}: {err:?}"
        );
        check_error(url, &err);
        match quick(url).connect_lazy() {
            Ok(store) => {
                check(url, "the store's Debug", &format!("{store:?}"));
                let err = store
                    .lease(&ClientId::random(), &LeaseId::random(), LONG)
                    .await
                    .expect_err(url);
                assert_eq!(err.kind(), ErrorKind::Unavailable, "{url}: {err:?}");
                check_error(url, &err);
            }
            Err(err) => check_error(url, &err),
        }
        #[cfg(feature = "cluster")]
        {
            let builder = RedisStore::cluster_builder([url.clone(), url.clone()])
                .connect_timeout(Duration::from_millis(300))
                .response_timeout(Duration::from_millis(300))
                .call_timeout(Duration::from_secs(1));
            check(url, "the cluster builder's Debug", &format!("{builder:?}"));
            let err = builder.connect().await.expect_err(url);
            check_error(url, &err);
        }
    }
}
