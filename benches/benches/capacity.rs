//! Capacity: what one client costs the store, beside the floor measured in the same run.
//!
//! `cargo bench -p flash-benches --bench capacity` starts a private `redis-server` on a free
//! loopback port (nothing else touches it, so its counters are flash's alone) and measures,
//! through flash's public API (`Messages` over `ServerStorage` over `RedisStore`):
//!
//! - **bytes per pending client**: `INFO memory`'s `used_memory` before and after `N` clients
//!   each add one 40-character message (a POST), divided by `N`; once right away (inside the
//!   retry-dedupe window) and once after it has passed;
//! - **commands per PRG cycle**: `INFO commandstats` (every command the server ran, those a Lua
//!   script ran included) over `C` cycles, each a POST that adds one message and a GET that
//!   reads and consumes it, divided by `C`;
//! - **server CPU per cycle**: `INFO cpu` (`used_cpu_sys + used_cpu_user`: all of Redis' CPU,
//!   network included) over the same cycles;
//! - the same for **shared keys** (`RedisStoreBuilder::shared_keys`, one key per
//!   `FLASH_CAPACITY_CLIENTS_PER_KEY` clients, default 10): its cycles run in the same rounds,
//!   its memory after the per-client layout's, from an empty server again;
//! - **Redis' own cost of one key**: `N` keys named as flash names a client, each with a 1-byte
//!   value and an expiry, the least any one-key-per-client layout can cost.
//!
//! Each beside the **floor**, the fewest plain commands that do the same over one pooled
//! connection: `RPUSH` + `EXPIRE` at the POST, `LRANGE` + `DEL` at the GET (and the same four
//! pipelined as two round trips, the stricter floor). Flash and the floor run in alternating
//! rounds and each round's ratio is computed from the two halves of that round; the median
//! round is reported, so a noisy neighbour moves both sides of a ratio.
//!
//! Knobs (environment): `FLASH_CAPACITY_CLIENTS` (default 20 000), `FLASH_CAPACITY_CYCLES`
//! (default 2 000 per round), `FLASH_CAPACITY_ROUNDS` (default 5), `FLASH_CAPACITY_WINDOW`
//! (seconds to wait for the dedupe window before the second memory reading; default 61, 0 skips
//! it). Without `redis-server` installed the Redis part prints one line and is skipped.
//!
//! The tables go to stdout and to `<criterion dir>/flash-facts/capacity-redis.json`, from
//! which `scripts/bench-report` writes section 7 of BENCHMARKS.md.
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flash_core::http::HeaderMap;
use flash_core::http::header::{COOKIE, SET_COOKIE};
use flash_core::storage::{Incoming, KeyedStore, ServerStorage, Storage};
use flash_core::{Key, Keys, Messages, MessagesConfig};
use flash_redis::RedisStore;
use redis::aio::ConnectionManager;

#[path = "capacity/sql.rs"]
mod sql;

/// The message every client has pending: 40 characters.
const TEXT: &str = "You have 3 new notifications waiting now";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

// --- a private redis-server ------------------------------------------------------------------

struct OwnRedis {
    child: Child,
    dir: std::path::PathBuf,
    url: String,
}

impl OwnRedis {
    async fn start() -> Result<OwnRedis, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("flash-capacity-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server (the binary): {e}"))?;
        let mut server = OwnRedis {
            child,
            dir,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server exited with {status}"));
            }
            if let Ok(mut admin) = server.admin().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut admin)
                    .await
                    .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("redis-server did not answer within 10 s".to_owned())
    }

    async fn admin(&self) -> redis::RedisResult<ConnectionManager> {
        ConnectionManager::new(redis::Client::open(self.url.as_str())?).await
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `INFO <section>` as `field → value`.
async fn info(admin: &mut ConnectionManager, section: &str) -> BTreeMap<String, String> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(admin)
        .await
        .expect("INFO");
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

async fn used_memory(admin: &mut ConnectionManager) -> f64 {
    info(admin, "memory").await["used_memory"]
        .parse()
        .expect("used_memory")
}

async fn cpu_seconds(admin: &mut ConnectionManager) -> f64 {
    let cpu = info(admin, "cpu").await;
    let field = |name: &str| cpu[name].parse::<f64>().expect("a cpu figure");
    field("used_cpu_sys") + field("used_cpu_user")
}

/// Calls and µs of command time per command since the last `CONFIG RESETSTAT`, the admin's
/// own left out.
async fn commandstats(admin: &mut ConnectionManager) -> BTreeMap<String, (u64, u64)> {
    info(admin, "commandstats")
        .await
        .into_iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cmdstat_")?.to_owned();
            let field = |key: &str| v.split(',').find_map(|f| f.strip_prefix(key))?.parse().ok();
            Some((name, (field("calls=")?, field("usec=")?)))
        })
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat" | "ping"))
        .collect()
}

async fn reset_stats(admin: &mut ConnectionManager) {
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(admin)
        .await
        .expect("CONFIG RESETSTAT");
}

// --- flash through its public API --------------------------------------------------------------

/// Flash over one store (Redis here, the SQL stores in `capacity/sql.rs`): POSTs and GETs as
/// an application makes them.
struct Flash {
    storage: Arc<dyn Storage>,
    config: Arc<MessagesConfig>,
}

impl Flash {
    fn new(store: impl KeyedStore) -> Flash {
        let storage: Arc<dyn Storage> = Arc::new(ServerStorage::new(
            store,
            Keys::new(Key::from_mac_key(b"0123456789abcdef0123456789abcdef")),
        ));
        Flash {
            storage,
            config: Arc::new(MessagesConfig::default()),
        }
    }

    /// A POST that adds one message; returns the client's cookie header.
    async fn post(&self, cookie: Option<&HeaderMap>) -> HeaderMap {
        let incoming = cookie.map_or_else(Incoming::default, Incoming::from_headers);
        let messages = Messages::new(self.storage.clone(), incoming, self.config.clone());
        messages.info(TEXT);
        let mut response = HeaderMap::new();
        messages.save(&mut response).await.expect("flash save");
        if let Some(cookie) = cookie {
            return cookie.clone();
        }
        let pair = response
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("an id cookie")
            .to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, pair.parse().expect("a cookie header"));
        headers
    }

    /// A GET that shows (and so consumes) what is pending.
    async fn get(&self, cookie: &HeaderMap) -> usize {
        let messages = Messages::new(
            self.storage.clone(),
            Incoming::from_headers(cookie),
            self.config.clone(),
        );
        let shown = messages.read().await.expect("flash read").len();
        messages
            .save(&mut HeaderMap::new())
            .await
            .expect("flash save");
        shown
    }
}

// --- the floor ---------------------------------------------------------------------------------

async fn floor_cycle(conn: &mut ConnectionManager, key: &str, pipelined: bool) -> usize {
    let message = r#"[20,"You have 3 new notifications waiting now"]"#;
    if pipelined {
        let () = redis::pipe()
            .rpush(key, message)
            .ignore()
            .expire(key, 604_800)
            .ignore()
            .query_async(conn)
            .await
            .expect("floor POST");
        let (shown,): (Vec<String>,) = redis::pipe()
            .lrange(key, 0, -1)
            .del(key)
            .ignore()
            .query_async(conn)
            .await
            .expect("floor GET");
        return shown.len();
    }
    let _: i64 = redis::cmd("RPUSH")
        .arg(key)
        .arg(message)
        .query_async(conn)
        .await
        .expect("RPUSH");
    let _: i64 = redis::cmd("EXPIRE")
        .arg(key)
        .arg(604_800)
        .query_async(conn)
        .await
        .expect("EXPIRE");
    let shown: Vec<String> = redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .expect("LRANGE");
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("DEL");
    shown.len()
}

// --- the Redis measurement ---------------------------------------------------------------------

/// One batch of cycles: commands and CPU seconds per cycle, and the command mix.
struct Batch {
    commands: f64,
    cpu_us: f64,
    /// Command time (`INFO commandstats`' usec): the server's work without the network's.
    command_us: f64,
    mix: BTreeMap<String, (u64, u64)>,
}

async fn measure<F, Fut>(admin: &mut ConnectionManager, cycles: usize, run: F) -> Batch
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    reset_stats(admin).await;
    let cpu = cpu_seconds(admin).await;
    run().await;
    let cpu = cpu_seconds(admin).await - cpu;
    let mix = commandstats(admin).await;
    let total: u64 = mix.values().map(|(calls, _)| calls).sum();
    let usec: u64 = mix.values().map(|(_, usec)| usec).sum();
    Batch {
        commands: total as f64 / cycles as f64,
        command_us: usec as f64 / cycles as f64,
        cpu_us: cpu * 1e6 / cycles as f64,
        mix,
    }
}

fn mix_line(mix: &BTreeMap<String, (u64, u64)>, cycles: usize) -> String {
    mix.iter()
        .map(|(name, (calls, usec))| {
            format!(
                "{name} {:.2} ({:.1} µs each)",
                *calls as f64 / cycles as f64,
                *usec as f64 / (*calls).max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn redis_capacity() {
    let server = match OwnRedis::start().await {
        Ok(server) => server,
        Err(err) => {
            println!("redis: skipped ({err})");
            return;
        }
    };
    let clients = env_usize("FLASH_CAPACITY_CLIENTS", 20_000);
    let cycles = env_usize("FLASH_CAPACITY_CYCLES", 2_000);
    let rounds = env_usize("FLASH_CAPACITY_ROUNDS", 5).max(1);
    let window = env_usize("FLASH_CAPACITY_WINDOW", 61);
    let mut admin = server.admin().await.expect("admin connection");
    let store = RedisStore::connect(&server.url).await.expect("the store");
    let flash = Flash::new(store);
    let per_key = env_usize("FLASH_CAPACITY_CLIENTS_PER_KEY", 10).max(1);
    let shared_keys = u32::try_from((clients / per_key).max(1)).unwrap_or(u32::MAX);
    let shared = Flash::new(
        RedisStore::builder(&server.url)
            .prefix("flash-shared")
            .shared_keys(shared_keys)
            .connect()
            .await
            .expect("the shared-keys store"),
    );
    let mut floor_conn = server.admin().await.expect("floor connection");
    println!(
        "redis: private redis-server at {}, {clients} clients, {rounds} rounds of {cycles} PRG cycles",
        server.url
    );

    // Memory: the floor's list first, then flash, each from an empty server.
    let before = used_memory(&mut admin).await;
    for i in 0..clients {
        let key = format!("flash:{i:032x}");
        let () = redis::pipe()
            .rpush(&key, r#"[20,"You have 3 new notifications waiting now"]"#)
            .ignore()
            .expire(&key, 604_800)
            .ignore()
            .query_async(&mut floor_conn)
            .await
            .expect("floor RPUSH");
    }
    let floor_bytes = (used_memory(&mut admin).await - before) / clients as f64;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .expect("FLUSHALL");
    // Redis' own cost of a key named as flash names a client, a 1-byte value, an expiry.
    let before = used_memory(&mut admin).await;
    for i in 0..clients {
        let key = format!("flash:{i:022x}");
        let () = redis::cmd("SET")
            .arg(&key)
            .arg("x")
            .arg("PX")
            .arg(604_800_000)
            .query_async(&mut floor_conn)
            .await
            .expect("a bare key");
    }
    let key_bytes = (used_memory(&mut admin).await - before) / clients as f64;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .expect("FLUSHALL");
    let before = used_memory(&mut admin).await;
    let mut cookies = Vec::with_capacity(clients);
    for _ in 0..clients {
        cookies.push(flash.post(None).await);
    }
    let during = (used_memory(&mut admin).await - before) / clients as f64;
    let window_started = Instant::now();

    // Cycles: flash, the floor, the pipelined floor, in alternating rounds.
    let prg: Vec<HeaderMap> = {
        let mut prg = Vec::with_capacity(64);
        for _ in 0..64 {
            let cookie = flash.post(None).await;
            assert_eq!(flash.get(&cookie).await, 1);
            prg.push(cookie);
        }
        prg
    };
    let prg_shared: Vec<HeaderMap> = {
        let mut prg = Vec::with_capacity(64);
        for _ in 0..64 {
            let cookie = shared.post(None).await;
            assert_eq!(shared.get(&cookie).await, 1);
            prg.push(cookie);
        }
        prg
    };
    let (mut s_cmd, mut s_cpu, mut s_ratio, mut shared_mix) =
        (Vec::new(), Vec::new(), Vec::new(), BTreeMap::new());
    let (mut f_cmd, mut f_cpu, mut l_cmd, mut l_cpu, mut p_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut f_work, mut l_work) = (Vec::new(), Vec::new());
    let (mut ratio, mut ratio_pipe) = (Vec::new(), Vec::new());
    let (mut flash_mix, mut floor_mix) = (BTreeMap::new(), BTreeMap::new());
    for _ in 0..rounds {
        let f = measure(&mut admin, cycles, || async {
            for i in 0..cycles {
                let cookie = &prg[i % prg.len()];
                flash.post(Some(cookie)).await;
                assert_eq!(flash.get(cookie).await, 1, "the PRG shows its message");
            }
        })
        .await;
        let sh = measure(&mut admin, cycles, || async {
            for i in 0..cycles {
                let cookie = &prg_shared[i % prg_shared.len()];
                shared.post(Some(cookie)).await;
                assert_eq!(shared.get(cookie).await, 1, "the PRG shows its message");
            }
        })
        .await;
        let conn = &mut floor_conn;
        let l = measure(&mut admin, cycles, || async move {
            for i in 0..cycles {
                let key = format!("floor:{:032x}", i % 64);
                assert_eq!(floor_cycle(conn, &key, false).await, 1);
            }
        })
        .await;
        let conn = &mut floor_conn;
        let p = measure(&mut admin, cycles, || async move {
            for i in 0..cycles {
                let key = format!("floor:{:032x}", i % 64);
                assert_eq!(floor_cycle(conn, &key, true).await, 1);
            }
        })
        .await;
        ratio.push(f.cpu_us / l.cpu_us);
        s_ratio.push(sh.cpu_us / l.cpu_us);
        s_cmd.push(sh.commands);
        s_cpu.push(sh.cpu_us);
        shared_mix = sh.mix;
        ratio_pipe.push(f.cpu_us / p.cpu_us);
        f_cmd.push(f.commands);
        f_work.push(f.command_us);
        l_work.push(l.command_us);
        f_cpu.push(f.cpu_us);
        l_cmd.push(l.commands);
        l_cpu.push(l.cpu_us);
        p_cpu.push(p.cpu_us);
        flash_mix = f.mix;
        floor_mix = l.mix;
    }

    let after = if window > 0 {
        let wait = Duration::from_secs(window as u64).saturating_sub(window_started.elapsed());
        println!("redis: waiting {wait:?} for the dedupe window to pass");
        tokio::time::sleep(wait).await;
        // Let the server's active expiry remove what the window left behind.
        let mut keys: i64 = -1;
        for _ in 0..60 {
            let now: i64 = redis::cmd("DBSIZE")
                .query_async(&mut admin)
                .await
                .expect("DBSIZE");
            if now == keys {
                break;
            }
            keys = now;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Some((used_memory(&mut admin).await - before) / clients as f64)
    } else {
        None
    };

    // Shared keys' memory, from an empty server again.
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .expect("FLUSHALL");
    let before = used_memory(&mut admin).await;
    for _ in 0..clients {
        shared.post(None).await;
    }
    let shared_during = (used_memory(&mut admin).await - before) / clients as f64;
    let shared_after = if window > 0 {
        println!("redis: waiting {window} s for the shared keys' dedupe window to pass");
        tokio::time::sleep(Duration::from_secs(window as u64)).await;
        Some((used_memory(&mut admin).await - before) / clients as f64)
    } else {
        None
    };

    let version = info(&mut admin, "server")
        .await
        .get("redis_version")
        .cloned()
        .unwrap_or_default();
    println!();
    println!("| Redis, per pending client or PRG cycle | flash | floor | flash / floor |");
    println!("|---|---|---|---|");
    println!(
        "| bytes per pending client, inside the dedupe window | {during:.0} | {floor_bytes:.0} | {:.2} |",
        during / floor_bytes
    );
    if let Some(after) = after {
        println!(
            "| bytes per pending client, after the window | {after:.0} | {floor_bytes:.0} | {:.2} |",
            after / floor_bytes
        );
    }
    println!(
        "| shared keys ({per_key} clients a key): bytes per pending client, inside the window | {shared_during:.0} | {floor_bytes:.0} | {:.2} |",
        shared_during / floor_bytes
    );
    if let Some(after) = shared_after {
        println!(
            "| shared keys: bytes per pending client, after the window | {after:.0} | {floor_bytes:.0} | {:.2} |",
            after / floor_bytes
        );
    }
    let (fc, lc) = (median(&mut f_cmd), median(&mut l_cmd));
    let sc = median(&mut s_cmd);
    println!(
        "| shared keys: commands per PRG cycle | {sc:.2} | {lc:.2} | {:.2} |",
        sc / lc
    );
    println!(
        "| shared keys: Redis CPU per cycle, µs | {:.1} | {:.1} | {:.2} (median of the rounds' ratios) |",
        median(&mut s_cpu),
        median(&mut l_cpu),
        median(&mut s_ratio)
    );
    println!(
        "| commands per PRG cycle (`INFO commandstats`) | {fc:.2} | {lc:.2} | {:.2} |",
        fc / lc
    );
    println!(
        "| Redis CPU per cycle, µs (`INFO cpu`, median round) | {:.1} | {:.1} | {:.2} (median of the rounds' ratios) |",
        median(&mut f_cpu),
        median(&mut l_cpu),
        median(&mut ratio)
    );
    println!(
        "| Redis CPU per cycle, µs, against the pipelined floor | {:.1} | {:.1} | {:.2} |",
        median(&mut f_cpu),
        median(&mut p_cpu),
        median(&mut ratio_pipe)
    );
    println!();
    println!(
        "flash's commands per cycle: {}",
        mix_line(&flash_mix, cycles)
    );
    println!(
        "shared keys' commands per cycle: {}",
        mix_line(&shared_mix, cycles)
    );
    println!(
        "floor's commands per cycle: {}",
        mix_line(&floor_mix, cycles)
    );
    let mut ratio_list: Vec<String> = ratio.iter().map(|r| format!("{r:.2}")).collect();
    ratio_list.sort();
    println!(
        "CPU ratio per round (flash / floor): {}",
        ratio_list.join(" ")
    );
    let mut shared_list: Vec<String> = s_ratio.iter().map(|r| format!("{r:.2}")).collect();
    shared_list.sort();
    println!(
        "CPU ratio per round (shared keys / floor): {}",
        shared_list.join(" ")
    );
    println!("Redis' own cost of one key (1-byte value, expiry): {key_bytes:.0} B");
    let (work, floor_work) = (median(&mut f_work), median(&mut l_work));
    println!(
        "command time per cycle (`INFO commandstats` usec, no network): flash {work:.1} µs, floor {floor_work:.1} µs"
    );

    let (cpu, floor_cpu, pipe_cpu) = (median(&mut f_cpu), median(&mut l_cpu), median(&mut p_cpu));
    let facts = serde_json::json!({
        "store": format!("Redis {version}"),
        "clients": clients,
        "cycles": cycles,
        "rounds": rounds,
        "window_s": window,
        "bytes_during": during,
        "bytes_after": after,
        "bytes_floor": floor_bytes,
        "bytes_key": key_bytes,
        "commands": fc,
        "commands_floor": lc,
        "cpu_us": cpu,
        "cpu_floor_us": floor_cpu,
        "cpu_pipelined_floor_us": pipe_cpu,
        "cpu_ratio": median(&mut ratio),
        "cpu_ratio_pipelined": median(&mut ratio_pipe),
        "cpu_ratios": ratio,
        "command_us": work,
        "command_floor_us": floor_work,
        "mix": mix_line(&flash_mix, cycles),
        "floor_mix": mix_line(&floor_mix, cycles),
        "shared": {
            "clients_per_key": per_key,
            "keys": shared_keys,
            "bytes_during": shared_during,
            "bytes_after": shared_after,
            "commands": sc,
            "cpu_us": median(&mut s_cpu),
            "cpu_ratio": median(&mut s_ratio),
            "cpu_ratios": s_ratio,
            "mix": mix_line(&shared_mix, cycles),
        },
    });
    match flash_benches::write_facts("capacity-redis", &facts) {
        Ok(path) => println!("facts: {}", path.display()),
        Err(err) => println!("facts not written: {err}"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a test run (`cargo test --benches`) passes nothing we
    // use, and runs the whole measurement small.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if sql::wanted("redis") {
        runtime.block_on(redis_capacity());
    }
    runtime.block_on(sql::sql_capacity());
}
