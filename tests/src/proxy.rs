//! A TCP fault proxy between the demo and a real server, switched at run time between passing
//! bytes, dropping every connection (and refusing new ones), and stalling (connections stay
//! open, nothing is forwarded).
//!
//! Loopback only: it listens on a free `127.0.0.1` port and forwards to one upstream address.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards every byte both ways.
    Pass,
    /// Closes every open connection and refuses new ones (the port is closed): a server that is
    /// down.
    Drop,
    /// Keeps connections open (and accepts new ones) but forwards nothing: a server or network
    /// that hangs. What was sent meanwhile is delivered when the proxy passes again.
    Stall,
}

impl Fault {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Drop => "drop",
            Fault::Stall => "stall",
        }
    }
}

/// A running fault proxy; stops (closing every connection) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<Fault>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free loopback port, passing.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = listen().await?;
        let addr = listener.local_addr()?;
        let (mode, watched) = watch::channel(Fault::Pass);
        let task = tokio::spawn(serve(listener, addr, upstream, watched));
        Ok(FaultProxy {
            addr,
            upstream,
            mode,
            task,
        })
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Switches to `fault` now (existing connections included).
    pub fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        *self.mode.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every relay.
        self.task.abort();
    }
}

/// Binds `addr` (again, after a drop: the port stays the one in the storage's URL).
fn rebind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Connections closed by the drop may sit in TIME_WAIT on this port.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A loopback listener on a free port below Linux's ephemeral range (32768 and up): while the
/// proxy drops, its port is closed, and a port from that range could meanwhile be taken as the
/// local end of some outgoing connection, so the proxy could not listen again. Falls back to
/// `127.0.0.1:0`.
async fn listen() -> io::Result<TcpListener> {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..64 {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = 20_000 + u16::try_from(random % 12_000).unwrap_or(0);
        if let Ok(listener) = rebind(SocketAddr::from(([127, 0, 0, 1], port))) {
            return Ok(listener);
        }
    }
    TcpListener::bind("127.0.0.1:0").await
}

async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Fault>,
) {
    let mut relays = JoinSet::new();
    let mut listener = Some(listener);
    loop {
        let fault = *mode.borrow_and_update();
        if fault == Fault::Drop {
            // Closing the listener makes new connects fail with "connection refused".
            listener = None;
            relays.abort_all();
        } else if listener.is_none() {
            match rebind(addr) {
                Ok(bound) => listener = Some(bound),
                Err(err) => {
                    eprintln!("the fault proxy could not listen on {addr} again ({err}); retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        while relays.try_join_next().is_some() {}
        match &listener {
            Some(bound) => tokio::select! {
                accepted = bound.accept() => {
                    if let Ok((client, _)) = accepted {
                        relays.spawn(relay(client, upstream, mode.clone()));
                    }
                }
                changed = mode.changed() => if changed.is_err() { return },
            },
            None => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Fault>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either side closing (or a drop) ends both: dropping the halves closes both sockets.
    tokio::select! {
        () = pump(client_read, server_write, mode.clone()) => {}
        () = pump(server_read, client_write, mode) => {}
    }
}

/// Waits while stalled; `true` when passing, `false` when dropped (or the proxy stopped).
async fn until_pass(mode: &mut watch::Receiver<Fault>) -> bool {
    match mode.wait_for(|fault| *fault != Fault::Stall).await {
        Ok(fault) => *fault == Fault::Pass,
        Err(_) => false,
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Fault>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !until_pass(&mut mode).await {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            // A switch while waiting for bytes: look at the new mode first.
            changed = mode.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just as a stall began are held until it ends.
        if !until_pass(&mut mode).await {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> io::Result<Vec<u8>> {
        stream.write_all(b"ping").await?;
        let mut got = [0u8; 4];
        match tokio::time::timeout(within, stream.read_exact(&mut got)).await {
            Ok(read) => read.map(|_| got.to_vec()),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no echo")),
        }
    }

    #[tokio::test]
    async fn passes_drops_stalls_and_recovers() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let short = Duration::from_millis(300);
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, short).await.unwrap(), b"ping");

        // Drop: the open connection ends and the port refuses new ones.
        proxy.set(Fault::Drop);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(short, stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "closed: {closed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = TcpStream::connect(proxy.addr()).await;
        assert!(refused.is_err(), "new connections are refused");

        // Pass again on the same port.
        proxy.set(Fault::Pass);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, short).await.unwrap(), b"ping");

        // Stall: nothing comes back, the connection stays open, new ones are accepted.
        proxy.set(Fault::Stall);
        let stalled = round_trip(&mut stream, short).await;
        assert_eq!(stalled.unwrap_err().kind(), io::ErrorKind::TimedOut);
        let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
        during.write_all(b"late").await.unwrap();

        // Pass: what was held is delivered on both connections.
        proxy.set(Fault::Pass);
        let mut got = [0u8; 4];
        tokio::time::timeout(short, stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"ping");
        tokio::time::timeout(short, during.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"late");
    }
}
