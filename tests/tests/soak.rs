//! The soak and fault run (see `flash_integration::soak`): the short version for every server
//! storage, asserting that nothing is lost, nothing is shown to another browser, and nothing is
//! shown twice where exactly once is promised (Redis, `cookie+redis`, the control: issue 19) nor
//! outside a fault on the other storages; and the full version (`scripts/soak`, ignored here) that writes
//! the table of RELIABILITY.md.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use flash_integration::Kind;
use flash_integration::soak::{self, Plan, Report, TABLE_HEADER};

fn check(report: &Report) {
    eprintln!("{TABLE_HEADER}{}", report.markdown_rows());
    let problems = report.problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

macro_rules! short {
    ($($name:ident => $kind:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if let Some(report) = soak::run($kind, &Plan::short()).await {
                check(&report);
            }
        }
    )*};
}

mod short {
    use super::*;

    short! {
        redis => Kind::Redis,
        postgres => Kind::Postgres,
        mysql => Kind::Mysql,
        cookie_redis => Kind::CookieRedis,
        cookie_postgres => Kind::CookiePostgres,
        sqlite_control => Kind::Sqlite,
    }
}

fn env_number(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The full run, one storage after another: `SOAK_SECONDS` of schedule per storage (45),
/// `SOAK_BROWSERS` browsers (16); the table goes to `SOAK_REPORT` (a file) when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes long: scripts/soak runs it"]
async fn full() {
    let plan = Plan::full(
        env_number("SOAK_SECONDS", 45),
        env_number("SOAK_BROWSERS", 16) as usize,
    );
    eprintln!("soak plan: {plan:?}");
    let mut table = TABLE_HEADER.to_owned();
    let mut problems = Vec::new();
    for kind in [
        Kind::Redis,
        Kind::Postgres,
        Kind::Mysql,
        Kind::CookieRedis,
        Kind::CookiePostgres,
        Kind::Sqlite,
    ] {
        let Some(report) = soak::run(kind, &plan).await else {
            continue;
        };
        eprintln!("{TABLE_HEADER}{}", report.markdown_rows());
        table.push_str(&report.markdown_rows());
        problems.extend(report.problems());
    }
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        std::fs::write(&path, &table).unwrap();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
