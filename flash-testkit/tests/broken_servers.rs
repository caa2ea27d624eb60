//! The keyed-store kit's outage tests fail stores with a server that break one rule on
//! purpose, each a mutation of a good one: a toy store that makes one round trip to its server
//! (connect, send a byte, read a byte) before each call, under its deadline, then serves from
//! memory. Mutations: a lease that answers a connection error with "no messages" (flash then
//! never carries the request's messages in the cookie), a round trip without a deadline (a
//! server that hangs hangs the request), and an error of the wrong kind.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use flash_core::storage::{ClientId, KeyedStore, LeaseId, MemoryStore, Outcome};
use flash_core::{Error, ErrorKind, Limits, Message, Result, async_trait};
use flash_testkit::Options;
use flash_testkit::keyed_kit::{self as kit, ServerAt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    /// None: the good store.
    None,
    /// A lease that cannot reach the server answers "no messages".
    EmptyOnError,
    /// The round trip has no deadline.
    NoDeadline,
    /// A connection error is a `Backend` error, not `Unavailable`.
    WrongKind,
}

struct Remote {
    addr: SocketAddr,
    deadline: Duration,
    inner: MemoryStore,
    breakage: Breakage,
}

impl Remote {
    /// One round trip to the server.
    async fn reach(&self) -> Result<()> {
        let trip = async {
            let mut socket = tokio::net::TcpStream::connect(self.addr).await?;
            socket.write_all(b"?").await?;
            let mut answer = [0u8; 1];
            socket.read_exact(&mut answer).await?;
            Ok::<_, std::io::Error>(())
        };
        let kind = if self.breakage == Breakage::WrongKind {
            ErrorKind::Backend
        } else {
            ErrorKind::Unavailable
        };
        let result = if self.breakage == Breakage::NoDeadline {
            trip.await
        } else {
            tokio::time::timeout(self.deadline, trip)
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        };
        result.map_err(|err| Error::with_source(kind, "reaching the toy server", err))
    }
}

#[async_trait]
impl KeyedStore for Remote {
    async fn append(
        &self,
        client: &ClientId,
        messages: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        self.reach().await?;
        self.inner.append(client, messages, ttl, limits).await
    }

    async fn lease(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        lease_timeout: Duration,
    ) -> Result<Vec<Message>> {
        match self.reach().await {
            Err(_) if self.breakage == Breakage::EmptyOnError => return Ok(Vec::new()),
            other => other?,
        }
        self.inner.lease(client, lease, lease_timeout).await
    }

    async fn settle(
        &self,
        client: &ClientId,
        lease: &LeaseId,
        outcome: Outcome,
        append: &[Message],
        ttl: Duration,
        limits: &Limits,
    ) -> Result<usize> {
        self.reach().await?;
        self.inner
            .settle(client, lease, outcome, append, ttl, limits)
            .await
    }
}

fn at(breakage: Breakage) -> ServerAt {
    ServerAt::new(move |options: Options, addr| async move {
        Ok(Remote {
            addr,
            deadline: options.call_timeout,
            inner: MemoryStore::new(),
            breakage,
        })
    })
}

/// Whether `test` panicked.
async fn panics(test: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::spawn(test).await {
        Ok(()) => false,
        Err(err) => err.is_panic(),
    }
}

/// A server that answers every byte with one: the toy store works against it.
async fn answering_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                while socket.read_exact(&mut byte).await.is_ok() {
                    if socket.write_all(b"!").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The good toy store works while its server answers and passes both outage tests.
#[tokio::test(flavor = "multi_thread")]
async fn the_good_store_passes() {
    let addr = answering_server().await;
    let store = at(Breakage::None)
        .store(Options::new(), addr)
        .await
        .unwrap();
    let client = ClientId::random();
    let limits = Limits::default();
    let m = [Message::new(flash_core::Level::INFO, "m")];
    assert_eq!(
        store
            .append(&client, &m, Duration::from_secs(60), &limits)
            .await
            .unwrap(),
        1
    );
    let got = store
        .lease(&client, &LeaseId::random(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);

    assert!(!panics(kit::a_closed_port_is_unavailable(at(Breakage::None))).await);
    assert!(
        !panics(kit::a_server_that_never_answers_is_unavailable(at(
            Breakage::None
        )))
        .await
    );
}

/// "No messages" for a store it cannot reach fails both outage tests.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_answering_no_messages_on_error_fails_the_kit() {
    let b = Breakage::EmptyOnError;
    assert!(panics(kit::a_closed_port_is_unavailable(at(b))).await);
    assert!(panics(kit::a_server_that_never_answers_is_unavailable(at(b))).await);
    assert!(panics(kit::a_server_that_hangs_up_is_unavailable(at(b))).await);
}

/// A call without a deadline hangs on a server that never answers: the kit fails it (it
/// waits the deadline plus a slack, not for ever). A closed port fails fast even so.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_without_a_deadline_fails_the_kit() {
    let b = Breakage::NoDeadline;
    assert!(panics(kit::a_server_that_never_answers_is_unavailable(at(b))).await);
    assert!(!panics(kit::a_closed_port_is_unavailable(at(b))).await);
}

/// An outage reported as a `Backend` error fails both outage tests.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_of_the_wrong_kind_fails_the_kit() {
    let b = Breakage::WrongKind;
    assert!(panics(kit::a_closed_port_is_unavailable(at(b))).await);
    assert!(panics(kit::a_server_that_never_answers_is_unavailable(at(b))).await);
    assert!(panics(kit::a_server_that_hangs_up_is_unavailable(at(b))).await);
}
