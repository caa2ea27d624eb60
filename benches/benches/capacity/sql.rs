//! The SQL stores' part of the capacity bench: PostgreSQL, MariaDB and SQLite, each through
//! flash's public API (`Messages` over `ServerStorage` over `SqlStore`) beside the floor, the
//! fewest plain statements that do the same on a plain table, in the same run:
//!
//! - **bytes per pending client** with one 40-character message: the table's size on disk,
//!   indexes included, before and after `N` clients each add one message, divided by `N`
//!   (PostgreSQL `pg_total_relation_size`; MariaDB `data_length + index_length` after `ANALYZE
//!   TABLE`, flash's table of per-client lock rows included; SQLite the pages `dbstat` counts
//!   for the table and its indexes);
//! - **statements per PRG cycle** (a POST that adds one message, a GET that shows it): the
//!   statements sqlx sends, counted from its statement log (`sqlx::query` events); on MariaDB
//!   also the server's own count, `SHOW SESSION STATUS LIKE 'Com_%'` on the store's one
//!   connection, which includes what the stored procedures run;
//! - **time per cycle** as the application sees it (the server's work, the round trips over
//!   loopback, the driver; SQLite runs in process), flash and the floor in alternating rounds,
//!   the median of the rounds' own ratios;
//! - **the sweep of 10⁶ dead rows** (`FLASH_CAPACITY_DEAD`), inserted in one statement, while
//!   one task runs PRG cycles through the store under its 2 s call timeout: how long the sweep
//!   takes, and the slowest live call during it beside the slowest before it. A live call that
//!   failed (ran out of its deadline) is counted and reported.
//!
//! The floor's table holds the client, the message's JSON, an expiry and an id for the order,
//! with one index on `(client, id)`; a POST is one `INSERT`, a GET one `DELETE … RETURNING`.
//!
//! Each server gets its own tables (`flash_t_<unix time>_capacity<pid>…`, which the flash-sql
//! tests' clean-up removes if a run is interrupted) and drops them at the end; SQLite a
//! temporary file. Servers: `FLASH_POSTGRES_URL`, `FLASH_MYSQL_URL` (defaults on 127.0.0.1); an
//! unreachable one is skipped with one line. Knobs: `FLASH_CAPACITY_SQL_CLIENTS` (default
//! 5 000), `FLASH_CAPACITY_SQL_CYCLES` (default 500 per round), `FLASH_CAPACITY_ROUNDS`
//! (default 5), `FLASH_CAPACITY_DEAD` (default 1 000 000; 0 skips the sweep),
//! `FLASH_CAPACITY_STORES` (a comma list of `redis,postgres,mysql,sqlite`; default all).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flash_core::storage::{ClientId, KeyedStore, LeaseId, Outcome};
use flash_core::{Level, Limits, Message};
use flash_sql::SqlStore;
use flash_testkit::StatementCounter;
use sqlx::AssertSqlSafe;

use super::{Flash, TEXT, env_usize, median};

/// The message as flash stores it and as the floor stores it: the same JSON.
const BODY: &str = r#"[20,"You have 3 new notifications waiting now"]"#;

/// Whether `store` (`redis`, `postgres`, `mysql`, `sqlite`) is to be measured.
pub(crate) fn wanted(store: &str) -> bool {
    std::env::var("FLASH_CAPACITY_STORES").map_or(true, |list| {
        list.split(',')
            .any(|s| s.trim().eq_ignore_ascii_case(store))
    })
}

// --- counting sqlx's statements ------------------------------------------------------------------

/// Statements sqlx sent, on every thread: SQLite's run on sqlx's worker thread (installed as
/// the global subscriber in `sql_capacity`).
static STATEMENTS: LazyLock<StatementCounter> = LazyLock::new(StatementCounter::new);

fn statements() -> u64 {
    STATEMENTS.count()
}

// --- one server ------------------------------------------------------------------------------------

/// What differs between the servers: where, the floor's statements, the size of a table.
struct Server {
    name: &'static str,
    url: String,
    /// The floor table's `CREATE` statements (`{f}` is its name).
    floor_schema: &'static [&'static str],
    /// The floor's POST: client, body (`{f}` is the table).
    floor_insert: &'static str,
    /// The floor's GET: client; returns the bodies.
    floor_take: &'static str,
}

fn servers() -> Vec<Server> {
    let sqlite_path = std::env::temp_dir().join(format!(
        "flash-capacity-{}-{}.db",
        std::process::id(),
        unix_secs()
    ));
    vec![
        Server {
            name: "postgres",
            url: flash_testkit::urls::postgres(),
            floor_schema: &[
                "CREATE TABLE {f} (id BIGINT GENERATED ALWAYS AS IDENTITY, client BYTEA NOT NULL, \
                 body TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)",
                "CREATE INDEX {f}_client ON {f} (client, id)",
            ],
            floor_insert: "INSERT INTO {f} (client, body, expires_at) \
                           VALUES ($1, $2, now() + interval '7 days')",
            floor_take: "DELETE FROM {f} WHERE client = $1 AND expires_at > now() RETURNING body",
        },
        Server {
            name: "mysql",
            url: flash_testkit::urls::mysql(),
            floor_schema: &["CREATE TABLE {f} (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                 client BINARY(16) NOT NULL, body MEDIUMTEXT NOT NULL, expires_at DATETIME(6) NOT NULL, \
                 KEY {f}_client (client, id)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"],
            floor_insert: "INSERT INTO {f} (client, body, expires_at) \
                           VALUES (?, ?, UTC_TIMESTAMP(6) + INTERVAL 7 DAY)",
            // MariaDB has DELETE … RETURNING (MySQL 8 would need a SELECT first).
            floor_take: "DELETE FROM {f} WHERE client = ? AND expires_at > UTC_TIMESTAMP(6) \
                         RETURNING body",
        },
        Server {
            name: "sqlite",
            url: format!("sqlite://{}", sqlite_path.display()),
            floor_schema: &[
                "CREATE TABLE {f} (id INTEGER PRIMARY KEY, client BLOB NOT NULL, body TEXT NOT NULL, \
                 expires_at INTEGER NOT NULL)",
                "CREATE INDEX {f}_client ON {f} (client, id)",
            ],
            floor_insert: "INSERT INTO {f} (client, body, expires_at) VALUES (?1, ?2, \
                           CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + 604800000)",
            floor_take: "DELETE FROM {f} WHERE client = ?1 AND expires_at > \
                         CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) RETURNING body",
        },
    ]
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A pool for the floor and the measurements, beside the store's own.
enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

/// Runs `sql` (no parameters, no result) on `pool`.
async fn exec(pool: &Pool, sql: String) {
    let sql = AssertSqlSafe(sql);
    match pool {
        Pool::Postgres(p) => drop(sqlx::raw_sql(sql).execute(p).await.expect("statement")),
        Pool::MySql(p) => drop(sqlx::raw_sql(sql).execute(p).await.expect("statement")),
        Pool::Sqlite(p) => drop(sqlx::raw_sql(sql).execute(p).await.expect("statement")),
    }
}

/// One number from `sql` on `pool`.
async fn number(pool: &Pool, sql: String) -> f64 {
    let sql = AssertSqlSafe(sql);
    match pool {
        Pool::Postgres(p) => sqlx::query_scalar::<_, f64>(sql).fetch_one(p).await,
        Pool::MySql(p) => sqlx::query_scalar::<_, f64>(sql).fetch_one(p).await,
        Pool::Sqlite(p) => sqlx::query_scalar::<_, f64>(sql).fetch_one(p).await,
    }
    .expect("a number")
}

/// The floor's POST.
async fn floor_post(pool: &Pool, sql: &str, client: &[u8; 16]) {
    let sql = AssertSqlSafe(sql.to_owned());
    let client = client.as_slice();
    match pool {
        Pool::Postgres(p) => drop(sqlx::query(sql).bind(client).bind(BODY).execute(p).await),
        Pool::MySql(p) => drop(sqlx::query(sql).bind(client).bind(BODY).execute(p).await),
        Pool::Sqlite(p) => drop(sqlx::query(sql).bind(client).bind(BODY).execute(p).await),
    }
}

/// The floor's GET: how many messages it took.
async fn floor_get(pool: &Pool, sql: &str, client: &[u8; 16]) -> usize {
    let sql = AssertSqlSafe(sql.to_owned());
    let client = client.as_slice();
    match pool {
        Pool::Postgres(p) => {
            sqlx::query_scalar::<_, String>(sql)
                .bind(client)
                .fetch_all(p)
                .await
        }
        Pool::MySql(p) => {
            sqlx::query_scalar::<_, String>(sql)
                .bind(client)
                .fetch_all(p)
                .await
        }
        Pool::Sqlite(p) => {
            sqlx::query_scalar::<_, String>(sql)
                .bind(client)
                .fetch_all(p)
                .await
        }
    }
    .expect("floor GET")
    .len()
}

/// The bytes `tables` (and their indexes) take.
async fn table_bytes(pool: &Pool, tables: &[&str]) -> f64 {
    let mut total = 0.0;
    for t in tables {
        total +=
            match pool {
                Pool::Postgres(_) => {
                    number(
                        pool,
                        format!("SELECT pg_total_relation_size('\"{t}\"')::float8"),
                    )
                    .await
                }
                Pool::MySql(_) => {
                    exec(pool, format!("ANALYZE TABLE `{t}`")).await;
                    number(
                    pool,
                    format!(
                        "SELECT (data_length + index_length) * 1e0 FROM information_schema.tables \
                         WHERE table_schema = DATABASE() AND table_name = '{t}'"
                    ),
                )
                .await
                }
                Pool::Sqlite(_) => number(
                    pool,
                    format!(
                        "SELECT CAST(coalesce(sum(pgsize), 0) AS REAL) FROM dbstat WHERE name IN \
                         (SELECT name FROM sqlite_schema WHERE tbl_name = '{t}')"
                    ),
                )
                .await,
            };
    }
    total
}

/// MariaDB's own counters of the statements run on `pool`'s one connection (`Com_*`), by
/// kind. The binary protocol's commands (`Com_stmt_*`: prepare, execute, close) and the
/// `SHOW STATUS` that reads them are left out: a prepared statement's execution also counts
/// under its kind (`Com_insert`, …), and so does every statement a procedure runs.
async fn mysql_statements(pool: &sqlx::MySqlPool) -> BTreeMap<String, u64> {
    let rows: Vec<(String, String)> = sqlx::query_as("SHOW SESSION STATUS LIKE 'Com\\_%'")
        .fetch_all(pool)
        .await
        .expect("SHOW STATUS");
    rows.into_iter()
        .filter(|(name, _)| {
            name != "Com_show_status"
                && name != "Com_admin_commands"
                && !name.starts_with("Com_stmt_")
        })
        .filter_map(|(name, value)| Some((name, value.parse::<u64>().ok()?)))
        .collect()
}

/// What the counters moved by from `before` to `after`, per cycle: the total, and the kinds.
fn per_cycle(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    cycles: usize,
) -> (f64, String) {
    let mut total = 0;
    let mut kinds = Vec::new();
    for (name, value) in after {
        let moved = value.saturating_sub(before.get(name).copied().unwrap_or(0));
        if moved > 0 {
            total += moved;
            let kind = name.strip_prefix("Com_").unwrap_or(name);
            kinds.push(format!("{kind} {:.2}", moved as f64 / cycles as f64));
        }
    }
    (total as f64 / cycles as f64, kinds.join(", "))
}

/// The figures of one server.
struct Figures {
    bytes: (f64, f64),
    statements: (f64, f64),
    /// MariaDB's counts, flash's and the floor's, with their kinds.
    server_statements: Option<((f64, String), (f64, String))>,
    micros: (f64, f64),
    ratio: f64,
    sweep: Option<Sweep>,
}

async fn connect_pool(server: &Server) -> Result<Pool, String> {
    let pool = match server.name {
        "postgres" => sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&server.url)
            .await
            .map(Pool::Postgres),
        "mysql" => sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(1)
            .connect(&server.url)
            .await
            .map(Pool::MySql),
        _ => {
            let options: sqlx::sqlite::SqliteConnectOptions =
                server.url.parse().map_err(|e| format!("{e}"))?;
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    options
                        .create_if_missing(true)
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
                )
                .await
                .map(Pool::Sqlite)
        }
    };
    pool.map_err(|e| format!("{e}"))
}

async fn measure(server: &Server) -> Result<Figures, String> {
    let clients = env_usize("FLASH_CAPACITY_SQL_CLIENTS", 5_000).max(1);
    let cycles = env_usize("FLASH_CAPACITY_SQL_CYCLES", 500).max(1);
    let rounds = env_usize("FLASH_CAPACITY_ROUNDS", 5).max(1);
    let dead = env_usize("FLASH_CAPACITY_DEAD", 1_000_000);
    let admin = connect_pool(server).await?;
    let base = format!("flash_t_{}_capacity{}", unix_secs(), std::process::id());
    let (table, floor) = (format!("{base}_flash"), format!("{base}_floor"));
    // One connection: MariaDB's session counters are the store's, and every cycle runs alone.
    let store = SqlStore::builder(&server.url)
        .table(&table)
        .max_connections(1)
        .connect()
        .await
        .map_err(|e| format!("{e}"))?;
    store.migrate().await.map_err(|e| format!("{e}"))?;
    for statement in server.floor_schema {
        exec(&admin, statement.replace("{f}", &floor)).await;
    }
    let floor_insert = server.floor_insert.replace("{f}", &floor);
    let floor_take = server.floor_take.replace("{f}", &floor);
    let mut flash_tables = vec![table.clone()];
    if server.name == "mysql" {
        flash_tables.push(format!("{table}_clients"));
    }
    let flash_tables: Vec<&str> = flash_tables.iter().map(String::as_str).collect();
    println!(
        "{}: {clients} clients, {rounds} rounds of {cycles} PRG cycles (tables {table}, {floor})",
        server.name
    );

    // Bytes: each side from its empty table.
    let before = table_bytes(&admin, &flash_tables).await;
    let flash = Flash::new(store.clone());
    for _ in 0..clients {
        flash.post(None).await;
    }
    let flash_bytes = (table_bytes(&admin, &flash_tables).await - before) / clients as f64;
    let before = table_bytes(&admin, &[&floor]).await;
    for _ in 0..clients {
        floor_post(&admin, &floor_insert, ClientId::random().as_bytes()).await;
    }
    let floor_bytes = (table_bytes(&admin, &[&floor]).await - before) / clients as f64;

    // Cycles: flash and the floor in alternating rounds.
    let mut cookies = Vec::with_capacity(64);
    for _ in 0..64 {
        let cookie = flash.post(None).await;
        assert_eq!(flash.get(&cookie).await, 1);
        cookies.push(cookie);
    }
    let floor_clients: Vec<ClientId> = (0..64).map(|_| ClientId::random()).collect();
    let mysql_pool = store.mysql_pool().cloned();
    let server_count = async || match &mysql_pool {
        Some(pool) => Some(mysql_statements(pool).await),
        None => None,
    };
    let admin_server_count = async || match &admin {
        Pool::MySql(pool) => Some(mysql_statements(pool).await),
        _ => None,
    };
    let (mut f_time, mut l_time, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut f_stmt, mut l_stmt) = (0.0, 0.0);
    let mut server_stmt = None;
    for _ in 0..rounds {
        let c0 = server_count().await;
        let s0 = statements();
        let started = Instant::now();
        for i in 0..cycles {
            let cookie = &cookies[i % cookies.len()];
            flash.post(Some(cookie)).await;
            assert_eq!(flash.get(cookie).await, 1, "the PRG shows its message");
        }
        let f = started.elapsed().as_secs_f64() * 1e6 / cycles as f64;
        f_stmt = (statements() - s0) as f64 / cycles as f64;
        let c1 = server_count().await;
        let flash_server = c0.zip(c1).map(|(a, b)| per_cycle(&a, &b, cycles));

        let c0 = admin_server_count().await;
        let s0 = statements();
        let started = Instant::now();
        for i in 0..cycles {
            let client = floor_clients[i % floor_clients.len()].as_bytes();
            floor_post(&admin, &floor_insert, client).await;
            assert_eq!(floor_get(&admin, &floor_take, client).await, 1);
        }
        let l = started.elapsed().as_secs_f64() * 1e6 / cycles as f64;
        l_stmt = (statements() - s0) as f64 / cycles as f64;
        let c1 = admin_server_count().await;
        let floor_server = c0.zip(c1).map(|(a, b)| per_cycle(&a, &b, cycles));
        server_stmt = flash_server.zip(floor_server);
        f_time.push(f);
        l_time.push(l);
        ratios.push(f / l);
    }

    let sweep = if dead > 0 {
        Some(sweep_beside_live(server, &base, &admin, dead).await?)
    } else {
        None
    };

    // Clean up: the tables, and the routines named after flash's.
    match &admin {
        Pool::Postgres(_) => {
            for t in [&table, &floor, &format!("{base}_sweep")] {
                exec(&admin, format!("DROP TABLE IF EXISTS \"{t}\"")).await;
                exec(&admin, format!("DROP FUNCTION IF EXISTS \"{t}_append_v1\"")).await;
            }
        }
        Pool::MySql(pool) => {
            for t in [&table, &floor, &format!("{base}_sweep")] {
                exec(&admin, format!("DROP TABLE IF EXISTS `{t}`")).await;
                exec(&admin, format!("DROP TABLE IF EXISTS `{t}_clients`")).await;
            }
            let routines: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(routine_name AS CHAR) FROM information_schema.routines \
                 WHERE routine_schema = DATABASE() AND routine_name LIKE CONCAT(?, '%')",
            )
            .bind(&base)
            .fetch_all(pool)
            .await
            .unwrap_or_default();
            for name in routines {
                exec(&admin, format!("DROP PROCEDURE IF EXISTS `{name}`")).await;
            }
        }
        Pool::Sqlite(pool) => {
            pool.close().await;
            if let Some(path) = server.url.strip_prefix("sqlite://") {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
    Ok(Figures {
        bytes: (flash_bytes, floor_bytes),
        statements: (f_stmt, l_stmt),
        server_statements: server_stmt,
        micros: (median(&mut f_time), median(&mut l_time)),
        ratio: median(&mut ratios),
        sweep,
    })
}

// --- the sweep of a large backlog ------------------------------------------------------------------

struct Sweep {
    rows: u64,
    insert: Duration,
    took: Duration,
    /// Live calls before the sweep, and the slowest of them.
    calm: (u64, Duration),
    /// Live calls during the sweep, the slowest, and how many failed.
    during: (u64, Duration, u64),
}

/// Inserts `dead` dead rows (one per client) into a fresh table, then sweeps it while one task
/// runs PRG cycles through the store (the store's pool, as the application's; on SQLite its one
/// connection).
async fn sweep_beside_live(
    server: &Server,
    base: &str,
    admin: &Pool,
    dead: usize,
) -> Result<Sweep, String> {
    let table = format!("{base}_sweep");
    let store = SqlStore::builder(&server.url)
        .table(&table)
        .connect()
        .await
        .map_err(|e| format!("{e}"))?;
    store.migrate().await.map_err(|e| format!("{e}"))?;
    let started = Instant::now();
    let rows = i64::try_from(dead).unwrap_or(i64::MAX);
    let inserted = match admin {
        Pool::Postgres(p) => sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO \"{table}\" (client, body, size, expires_at) \
             SELECT uuid_send(gen_random_uuid()), '[20,\"gone\"]', 4, now() - interval '1 hour' \
             FROM generate_series(1, $1)"
        )))
        .bind(rows)
        .execute(p)
        .await
        .map(|r| r.rows_affected()),
        Pool::MySql(p) => {
            let digits = "(SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL \
                          SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 \
                          UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO `{table}` (client, body, size, expires_at) \
                 SELECT UNHEX(MD5(CONCAT(RAND(), a.n, b.n, c.n, d.n, e.n, f.n, g.n))), \
                        '[20,\"gone\"]', 4, UTC_TIMESTAMP(6) - INTERVAL 1 HOUR \
                 FROM {digits} a, {digits} b, {digits} c, {digits} d, {digits} e, {digits} f, \
                      {digits} g LIMIT ?"
            )))
            .bind(rows)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        }
        Pool::Sqlite(p) => sqlx::query(AssertSqlSafe(format!(
            "WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?1) \
             INSERT INTO \"{table}\" (client, body, size, expires_at) \
             SELECT randomblob(16), '[20,\"gone\"]', 4, \
                    CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) - 3600000 FROM s"
        )))
        .bind(rows)
        .execute(p)
        .await
        .map(|r| r.rows_affected()),
    }
    .map_err(|e| format!("bulk insert: {e}"))?;
    let insert = started.elapsed();
    if matches!(admin, Pool::Postgres(_)) {
        exec(admin, format!("ANALYZE \"{table}\"")).await;
    }
    println!(
        "{}: {inserted} dead rows inserted in {insert:.1?}; sweeping beside live requests",
        server.name
    );

    // Live PRG cycles through the store: the calm before, then during the sweep.
    let live = |store: SqlStore, until: Arc<AtomicBool>, budget: Option<u64>| async move {
        let limits = Limits::default();
        let hour = Duration::from_secs(3600);
        let (mut calls, mut slowest, mut failed) = (0u64, Duration::ZERO, 0u64);
        let message = [Message::new(Level::INFO, TEXT)];
        while !until.load(Ordering::SeqCst) && budget.is_none_or(|b| calls < b) {
            let client = ClientId::random();
            let lease = LeaseId::random();
            let t = Instant::now();
            let ok = store.append(&client, &message, hour, &limits).await.is_ok();
            let (a, t) = (t.elapsed(), Instant::now());
            let ok = ok && store.lease(&client, &lease, hour).await.is_ok();
            let (b, t) = (t.elapsed(), Instant::now());
            let ok = ok
                && store
                    .settle(&client, &lease, Outcome::Consumed, &[], hour, &limits)
                    .await
                    .is_ok();
            slowest = slowest.max(a).max(b).max(t.elapsed());
            calls += 3;
            failed += u64::from(!ok);
        }
        (calls, slowest, failed)
    };
    let never = Arc::new(AtomicBool::new(false));
    let (calm_calls, calm_slowest, _) = live(store.clone(), never, Some(3 * 300)).await;
    let done = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(live(store.clone(), done.clone(), None));
    let started = Instant::now();
    let swept = store.sweep().await.map_err(|e| format!("sweep: {e}"))?;
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let during = task.await.map_err(|e| format!("live task: {e}"))?;
    assert_eq!(swept, inserted, "the sweep deletes every dead row");
    store.close().await;
    Ok(Sweep {
        rows: swept,
        insert,
        took,
        calm: (calm_calls, calm_slowest),
        during,
    })
}

// --- the report ------------------------------------------------------------------------------------

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// Measures every wanted SQL server and prints the table.
pub(crate) async fn sql_capacity() {
    if tracing::subscriber::set_global_default(STATEMENTS.clone()).is_err() {
        println!(
            "sql: another tracing subscriber is set; statement counts would be wrong, skipped"
        );
        return;
    }
    tracing::callsite::rebuild_interest_cache();
    let mut results = Vec::new();
    for server in servers() {
        if !wanted(server.name) {
            continue;
        }
        match measure(&server).await {
            Ok(figures) => results.push((server.name, figures)),
            Err(err) => println!("{}: skipped ({err})", server.name),
        }
    }
    if results.is_empty() {
        return;
    }
    let title = |name: &str| match name {
        "postgres" => "PostgreSQL",
        "mysql" => "MariaDB",
        _ => "SQLite",
    };
    println!();
    println!("| SQL, per pending client or PRG cycle | store | flash | floor | flash / floor |");
    println!("|---|---|---|---|---|");
    for (name, f) in &results {
        let store = title(name);
        println!(
            "| bytes per pending client (table + indexes) | {store} | {:.0} | {:.0} | {:.2} |",
            f.bytes.0,
            f.bytes.1,
            f.bytes.0 / f.bytes.1
        );
        println!(
            "| statements per PRG cycle, sent (sqlx) | {store} | {:.2} | {:.2} | {:.2} |",
            f.statements.0,
            f.statements.1,
            f.statements.0 / f.statements.1
        );
        if let Some(((flash, _), (floor, _))) = &f.server_statements {
            println!(
                "| statements per PRG cycle, run by the server (`Com_*`, procedures' included) | {store} | {flash:.2} | {floor:.2} | {:.2} |",
                flash / floor
            );
        }
        println!(
            "| time per PRG cycle, µs (median round; ratio: median of the rounds') | {store} | {:.0} | {:.0} | {:.2} |",
            f.micros.0, f.micros.1, f.ratio
        );
    }
    for (name, f) in &results {
        if let Some(((_, flash), (_, floor))) = &f.server_statements {
            println!();
            println!(
                "{}: flash's statements per cycle (server): {flash}",
                title(name)
            );
            println!(
                "{}: floor's statements per cycle (server): {floor}",
                title(name)
            );
        }
    }
    let sweeps: Vec<_> = results
        .iter()
        .filter_map(|(name, f)| f.sweep.as_ref().map(|s| (title(name), s)))
        .collect();
    if !sweeps.is_empty() {
        println!();
        println!(
            "| sweep beside live PRG cycles | dead rows | bulk insert, s | sweep, s | live calls during | slowest live call during, ms | slowest before (calm), ms | live calls failed |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (store, s) in sweeps {
            println!(
                "| {store} | {} | {:.1} | {:.1} | {} | {} | {} ({} calls) | {} |",
                s.rows,
                s.insert.as_secs_f64(),
                s.took.as_secs_f64(),
                s.during.0,
                ms(s.during.1),
                ms(s.calm.1),
                s.calm.0,
                s.during.2
            );
        }
    }
}
