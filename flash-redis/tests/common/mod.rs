//! Shared by the integration tests: server URLs, stores, a private redis-server.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flash_redis::RedisStore;
use flash_testkit::unavailable;

/// `FLASH_REDIS_URL`, read at run time.
pub fn redis_url() -> String {
    flash_testkit::urls::redis()
}

/// `FLASH_REDIS_CLUSTER_URLS` (comma separated), read at run time.
pub fn cluster_urls() -> Vec<String> {
    flash_testkit::urls::redis_cluster()
}

/// The ids of the clients a shared key's value holds, in order (past their deadline or not),
/// read from the layout the crate docs give (`0xFB`, then per client its id, deadline, length
/// and value); `None` when the value is not a shared key's.
pub fn shared_ids(raw: &[u8]) -> Option<Vec<[u8; 16]>> {
    let (&magic, mut rest) = raw.split_first()?;
    if magic != 0xFB {
        return None;
    }
    let mut ids = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(22..26)?.try_into().ok()?) as usize;
        ids.push(rest[..16].try_into().ok()?);
        rest = rest.get(26 + len..)?;
    }
    Some(ids)
}

/// A random hex string (for prefixes, user names).
pub fn random_hex() -> String {
    flash_core::storage::LeaseId::random().to_hex()[..16].to_owned()
}

/// A store on `FLASH_REDIS_URL` with a fresh prefix, or `None` (skipped) when it is down.
pub async fn store() -> Option<RedisStore> {
    store_with_prefix(&format!("flash-test-{}", random_hex())).await
}

/// A store on `FLASH_REDIS_URL` with `prefix`, or `None` (skipped) when it is down.
pub async fn store_with_prefix(prefix: &str) -> Option<RedisStore> {
    let url = redis_url();
    match RedisStore::builder(&url).prefix(prefix).connect().await {
        Ok(store) => Some(store),
        Err(err) => unavailable(&format!("redis at {url}"), err),
    }
}

/// A plain connection to `url` for checks behind the store's back.
pub async fn admin(url: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = match redis::Client::open(url) {
        Ok(client) => client,
        Err(err) => return unavailable(&format!("redis at {url}"), err),
    };
    match client.get_multiplexed_async_connection().await {
        Ok(connection) => Some(connection),
        Err(err) => unavailable(&format!("redis at {url}"), err),
    }
}

/// A redis-server of this test's own, on a free port, killed on drop: for measurements that
/// read server-global statistics (the slow log), which other tests must not disturb.
pub struct OwnServer {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl OwnServer {
    /// Starts one on a free port, or returns `None` (skipped; a failure under `CI=true`) when
    /// `redis-server` is not installed.
    pub async fn start() -> Option<OwnServer> {
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = match free_port() {
                Ok(port) => port,
                Err(err) => return unavailable("a free local port", err),
            };
            match Self::try_start(port).await {
                Ok(server) => return Some(server),
                Err(err) => last_error = err,
            }
        }
        unavailable("a private redis-server", last_error)
    }

    /// Starts one on `port` (to bring a stopped one back).
    pub async fn start_on(port: u16) -> Option<OwnServer> {
        match Self::try_start(port).await {
            Ok(server) => Some(server),
            Err(err) => unavailable("a private redis-server", err),
        }
    }

    async fn try_start(port: u16) -> Result<OwnServer, String> {
        let dir = std::env::temp_dir().join(format!("flash-redis-test-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args([
                "--slowlog-log-slower-than",
                "-1",
                "--slowlog-max-len",
                "100000",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server (the binary): {e}"))?;
        let mut server = OwnServer { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server on port {port} exited with {status}"));
            }
            if let Ok(client) = redis::Client::open(server.url().as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "redis-server on port {port} did not answer within 10 s"
        ))
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The slow log of a server whose `slowlog-log-slower-than` is 0: every command, in order.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// The client's address; `?:0` for commands a Lua script ran.
    pub addr: String,
    /// How long the server spent executing it, in microseconds (a script call: the whole
    /// script).
    pub micros: u64,
}

impl Logged {
    /// Whether a Lua script ran it (as opposed to a client sending it).
    pub fn by_script(&self) -> bool {
        self.addr == "?:0"
    }
}

/// Reads and clears the slow log, oldest first, leaving out `admin`'s own commands.
pub async fn take_slowlog(admin: &mut redis::aio::MultiplexedConnection) -> Vec<Logged> {
    let me: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(admin)
        .await
        .expect("CLIENT INFO");
    let my_addr = me
        .split_whitespace()
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr= in CLIENT INFO")
        .to_owned();
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(admin)
        .await
        .expect("SLOWLOG GET");
    let () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(admin)
        .await
        .expect("SLOWLOG RESET");
    let mut out: Vec<(i64, Logged)> = entries
        .into_iter()
        .map(|entry| {
            let redis::Value::Array(fields) = entry else {
                panic!("a slow log entry is an array: {entry:?}");
            };
            let id: i64 = redis::from_redis_value_ref(&fields[0]).expect("id");
            let micros: u64 = redis::from_redis_value_ref(&fields[2]).expect("duration");
            // Binary arguments (ids, packed values) are shown lossily.
            let args: Vec<Vec<u8>> = redis::from_redis_value_ref(&fields[3]).expect("args");
            let args = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let addr: String = redis::from_redis_value_ref(&fields[4]).expect("addr");
            (id, Logged { args, addr, micros })
        })
        .filter(|(_, logged)| logged.addr != my_addr)
        .collect();
    out.sort_by_key(|(id, _)| *id);
    out.into_iter().map(|(_, logged)| logged).collect()
}

/// Turns logging every command on (`on`) or off on a private server.
pub async fn log_every_command(admin: &mut redis::aio::MultiplexedConnection, on: bool) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(if on { 0 } else { -1 })
        .query_async(admin)
        .await
        .expect("CONFIG SET");
}

/// The messages a client's key holds, read behind the store's back: (size, stored form,
/// lease holder) each, oldest first; empty without a key.
pub async fn stored(
    admin: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Vec<(i64, Vec<u8>, i64)> {
    redis::Script::new(
        r"local raw = redis.call('GET', KEYS[1])
        if not raw then return {} end
        local _, _, nops, nleases, pos = struct.unpack('>BI6BB', raw)
        pos = pos + 18 * nops + 14 * nleases
        local out = {}
        while pos <= #raw do
          local holder, size, len = struct.unpack('>BI4I4', raw, pos)
          out[#out + 1] = { size, string.sub(raw, pos + 9, pos + 8 + len), holder }
          pos = pos + 9 + len
        end
        return out",
    )
    .key(key)
    .invoke_async(admin)
    .await
    .expect("reading a client's key")
}

/// Puts an entry that is not a message (`value`, counted as `size`) at the end of a client's
/// queue, behind the store's back.
pub async fn inject(
    admin: &mut redis::aio::MultiplexedConnection,
    key: &str,
    size: i64,
    value: &[u8],
) {
    let () = redis::Script::new(
        r"local raw = redis.call('GET', KEYS[1])
        local record = struct.pack('>BI4I4', 0, tonumber(ARGV[1]), #ARGV[2]) .. ARGV[2]
        redis.call('SET', KEYS[1], raw .. record, 'KEEPTTL')",
    )
    .key(key)
    .arg(size)
    .arg(value)
    .invoke_async(admin)
    .await
    .expect("injecting an entry");
}
