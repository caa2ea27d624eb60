//! The soak and fault run: virtual browsers, each with its own cookie jar, doing
//! `POST /messages` → 303 → `GET /` cycles against the demo app (in process, on loopback) while a
//! [`FaultProxy`](crate::proxy::FaultProxy) between the demo and its server passes, drops,
//! passes, stalls and passes again. Every message carries a unique tag (browser and sequence),
//! so what was lost and what was shown twice is counted.
//!
//! A message is *sent* when its `POST` was answered `303`; it is *lost* when its browser never
//! saw it, by the end of a final drain of `GET`s with the proxy passing; *duplicated* when its
//! browser saw it more than once. Requests, errors and latencies count in the phase a request
//! started in; a loss counts in the phase of its `POST`; a duplicate in the phase of the `GET`
//! that first showed it (the fault phase, when that `GET` overlapped one: its settle is the one
//! that was cut).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::proxy::Fault;
use crate::{Kind, Server, open_with};

/// How one soak run goes: the browsers, the fault schedule, and the bounds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Virtual browsers, each with its own cookie jar, one request at a time.
    pub browsers: usize,
    /// The length of each of the three passing phases.
    pub pass: Duration,
    /// How long the proxy drops (closes everything, refuses connections).
    pub drop: Duration,
    /// How long the proxy stalls (longer than a store call's deadline).
    pub stall: Duration,
    /// `POST`s per cycle before its `GET` (two texts of `text_len` overflow the 2 KB cookie value, so
    /// `cookie+<store>` reaches its store).
    pub posts_per_cycle: usize,
    /// The most cycles one browser runs (bounds the count as the phases bound the time).
    pub max_cycles: usize,
    /// Padding added to each message's tag on `cookie+<store>` (to overflow the cookie); the
    /// server stores alone get [`SERVER_TEXT_LEN`], a realistic size: while the store is down
    /// what a request adds rides in one carry cookie of at most 4 KB, and what does not fit
    /// there is reported dropped by the bridge (a documented limit, not a silent loss).
    pub text_len: usize,
    /// What one browser waits for one response before counting it failed.
    pub request_timeout: Duration,
    /// The storage's lease (`lease_timeout=` in its URL): how long messages read by a request whose
    /// settle was cut stay hidden.
    pub lease: Duration,
    /// The final drain after the schedule (proxy passing): every browser reads until then.
    pub drain: Duration,
    /// A browser's pause between cycles.
    pub think: Duration,
}

impl Plan {
    /// The short version CI runs: a few seconds per storage, four browsers.
    pub fn short() -> Plan {
        let lease = Duration::from_secs(3);
        Plan {
            browsers: 4,
            pass: Duration::from_secs(1),
            drop: Duration::from_millis(1500),
            stall: Duration::from_secs(3),
            posts_per_cycle: 2,
            max_cycles: 500,
            text_len: 1000,
            request_timeout: Duration::from_secs(10),
            lease,
            drain: lease + Duration::from_secs(2),
            think: Duration::from_millis(10),
        }
    }

    /// The full version: `seconds` of schedule per storage (20 % for each passing phase, 15 %
    /// dropping, 25 % stalling, at least 3 s), `browsers` browsers.
    pub fn full(seconds: u64, browsers: usize) -> Plan {
        let total = Duration::from_secs(seconds.max(10));
        let lease = Duration::from_secs(5);
        Plan {
            browsers: browsers.max(1),
            pass: total / 5,
            drop: total * 3 / 20,
            stall: (total / 4).max(Duration::from_secs(3)),
            posts_per_cycle: 2,
            max_cycles: 100_000,
            text_len: 1000,
            request_timeout: Duration::from_secs(30),
            lease,
            drain: lease + Duration::from_secs(5),
            think: Duration::from_millis(10),
        }
    }

    fn steps(&self) -> Vec<(Fault, Duration)> {
        vec![
            (Fault::Pass, self.pass),
            (Fault::Drop, self.drop),
            (Fault::Pass, self.pass),
            (Fault::Stall, self.stall),
            (Fault::Pass, self.pass),
        ]
    }
}

/// One row of the table: one phase of one storage's run.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// The phase: its fault and length (`drain` for the final one, `all` for the total).
    pub fault: String,
    /// Whether a fault was active in this phase (duplicates are allowed only then).
    pub faulty: bool,
    /// HTTP requests started in this phase.
    pub requests: usize,
    /// Requests that failed: no answer within the timeout, a connection error, a 5xx, or any
    /// status but the expected 303 / 200.
    pub errors: usize,
    /// Pages served 200 that said the messages could not be loaded (charged like a
    /// duplicate: to the fault the `GET` overlapped, if any).
    pub unread_pages: usize,
    /// Messages whose `POST` was answered 303, charged to this phase as their losses would be
    /// (the first fault between the `POST` and the end of the next `GET`, else the `POST`'s
    /// phase).
    pub sent: usize,
    /// Sent messages never shown.
    pub lost: usize,
    /// Messages shown more than once.
    pub duplicated: usize,
    /// Messages shown to a browser that did not add them (must never happen).
    pub misdelivered: usize,
    /// The 99th percentile of request latency.
    pub p99: Option<Duration>,
    /// The slowest request (how long a hang lasted).
    pub max: Option<Duration>,
    latencies: Vec<Duration>,
}

impl Row {
    fn add(&mut self, other: &Row) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.unread_pages += other.unread_pages;
        self.sent += other.sent;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.misdelivered += other.misdelivered;
        self.latencies.extend_from_slice(&other.latencies);
    }

    fn finish(&mut self) {
        self.latencies.sort_unstable();
        self.p99 = match self.latencies.len() {
            0 => None,
            n => Some(self.latencies[(n * 99).div_ceil(100) - 1]),
        };
        self.max = self.latencies.last().copied();
    }
}

/// What one storage's run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The storage (scheme) name.
    pub storage: String,
    /// One row per phase, then the drain.
    pub rows: Vec<Row>,
    /// Every phase together.
    pub total: Row,
    /// Whether the design promises no duplicate on this storage even across a fault (see
    /// [`promises_exactly_once`]).
    pub exactly_once: bool,
}

/// Whether a storage promises exactly once across a fault (issue 19): its store remembers
/// operations (Redis), so a write applied late and its carried copy are one write and a cut
/// settle is finished by the client's next request; or it has no fault at all (the SQLite
/// control). The SQL stores forget operations (`KeyedStore::remembers_operations` is `None`):
/// their cut settles are finished too, but a write the server applies after the client's next
/// read may show twice, so their duplicates are counted and explained, not forbidden.
pub fn promises_exactly_once(kind: Kind) -> bool {
    matches!(kind, Kind::Redis | Kind::CookieRedis | Kind::Sqlite)
}

impl Report {
    /// The table rows of this run, in Markdown.
    pub fn markdown_rows(&self) -> String {
        let mut out = String::new();
        for row in self.rows.iter().chain([&self.total]) {
            let millis = |d: Option<Duration>| {
                d.map_or_else(|| "–".to_owned(), |d| format!("{}", d.as_millis()))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                self.storage,
                row.fault,
                row.requests,
                row.errors,
                row.unread_pages,
                row.sent,
                row.lost,
                row.duplicated,
                row.misdelivered,
                millis(row.p99),
                millis(row.max),
            );
        }
        out
    }

    /// What breaks the promises: any loss or misdelivery, a duplicate in a run without a
    /// fault, or a run that sent nothing while passing.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let faulted = self.rows.iter().any(|row| row.faulty);
        for row in &self.rows {
            let at = format!("{} / {}", self.storage, row.fault);
            if row.lost > 0 {
                problems.push(format!("{at}: {} of {} sent lost", row.lost, row.sent));
            }
            if row.misdelivered > 0 {
                problems.push(format!(
                    "{at}: {} shown to another browser",
                    row.misdelivered
                ));
            }
            // Where the design promises exactly once, a duplicate anywhere is a failure. Else
            // a duplicate comes from a write the fault cut after the server applied it, on a
            // store that cannot tell the late copy from the carried one; it may show in the
            // pass after the fault, so only a run with no fault at all must have none.
            // RELIABILITY.md counts and explains them.
            if row.duplicated > 0 && self.exactly_once {
                problems.push(format!(
                    "{at}: {} shown twice where exactly once is promised",
                    row.duplicated
                ));
            } else if row.duplicated > 0 && !faulted {
                problems.push(format!(
                    "{at}: {} shown twice without a fault",
                    row.duplicated
                ));
            }
        }
        if self.rows.first().is_some_and(|row| row.sent == 0) {
            problems.push(format!("{}: nothing was sent while passing", self.storage));
        }
        problems
    }
}

/// The Markdown table header matching [`Report::markdown_rows`].
pub const TABLE_HEADER: &str = "| storage | fault | requests | errors | pages without messages | sent | lost | duplicated | misdelivered | p99 ms | max ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// The storage's name in reports.
pub fn storage_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Redis => "redis://",
        Kind::Postgres => "postgres://",
        Kind::Mysql => "mysql://",
        Kind::CookieRedis => "cookie+redis://",
        Kind::CookiePostgres => "cookie+postgres://",
        Kind::Sqlite => "sqlite:// (control, no proxy)",
        Kind::CookieSqlite => "cookie+sqlite://",
        Kind::Cookie => "cookie",
        Kind::Session => "session",
        Kind::Memory => "memory",
    }
}

/// Which phase the run is in: an index into the schedule, its length meaning "draining".
struct Clock {
    phase: AtomicUsize,
    faults: Vec<Fault>,
}

impl Clock {
    fn now(&self) -> usize {
        self.phase.load(Ordering::SeqCst)
    }

    fn draining(&self) -> bool {
        self.now() >= self.faults.len()
    }

    /// The phase a request spanning `start..=end` is charged with: the first faulty one it
    /// overlapped, else the one it started in.
    fn span(&self, start: usize, end: usize) -> usize {
        (start..=end)
            .find(|&i| self.faults.get(i).is_some_and(|f| *f != Fault::Pass))
            .unwrap_or(start)
    }
}

/// What one browser saw, per phase.
struct Browser {
    id: usize,
    http: reqwest::Client,
    base: String,
    tallies: Vec<Row>,
    /// Tags sent (answered 303) and read since, with the phase charged with their loss.
    sent: Vec<(String, usize)>,
    /// Tags sent since the last `GET`, with the phase their `POST` started in.
    pending: Vec<(String, usize)>,
    /// Tags of this browser seen: how often, and the phase charged with the first showing.
    seen: HashMap<String, (usize, usize)>,
    sequence: usize,
}

impl Browser {
    fn new(id: usize, base: String, phases: usize, timeout: Duration) -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .unwrap();
        Browser {
            id,
            http,
            base,
            tallies: vec![Row::default(); phases + 1],
            sent: Vec::new(),
            pending: Vec::new(),
            seen: HashMap::new(),
            sequence: 0,
        }
    }

    fn prefix(&self) -> String {
        format!("soak-b{:03}-", self.id)
    }

    async fn post(&mut self, clock: &Clock, text_len: usize) {
        self.sequence += 1;
        let tag = format!("{}{:06}", self.prefix(), self.sequence);
        let text = format!("{tag} {}", "x".repeat(text_len));
        let phase = clock.now();
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/messages", self.base))
            .form(&[("level", "info"), ("text", text.as_str())])
            .send()
            .await;
        let tally = &mut self.tallies[phase];
        tally.requests += 1;
        tally.latencies.push(started.elapsed());
        match response {
            Ok(response) if response.status() == StatusCode::SEE_OTHER => {
                // Read the (empty) body so the connection is reused.
                let _ = response.bytes().await;
                self.pending.push((tag, phase));
            }
            _ => tally.errors += 1,
        }
    }

    async fn get(&mut self, clock: &Clock) {
        let phase = clock.now();
        let started = Instant::now();
        let page = match self.http.get(format!("{}/", self.base)).send().await {
            Ok(response) if response.status() == StatusCode::OK => response.text().await.ok(),
            _ => None,
        };
        let tally = &mut self.tallies[phase];
        tally.requests += 1;
        tally.latencies.push(started.elapsed());
        // Between its POST and the end of this GET a message is at risk: a loss is charged to
        // the first fault in that window, if any.
        let end = clock.now();
        for (tag, posted) in self.pending.drain(..) {
            self.sent.push((tag, clock.span(posted, end)));
        }
        let Some(page) = page else {
            tally.errors += 1;
            return;
        };
        let charged = clock.span(phase, end);
        if page.contains("class=\"problem\"") {
            self.tallies[charged].unread_pages += 1;
        }
        let prefix = self.prefix();
        if debugging() {
            let tags: Vec<_> = crate::page::texts(&page)
                .iter()
                .map(|t| t.split_whitespace().next().unwrap_or_default().to_owned())
                .collect();
            let problem = page.contains("class=\"problem\"");
            eprintln!(
                "b{} GET {phase}..={end}: {tags:?} problem={problem}",
                self.id
            );
        }
        for text in crate::page::texts(&page) {
            let tag = text
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            if !tag.starts_with(&prefix) {
                self.tallies[charged].misdelivered += 1;
                continue;
            }
            self.seen
                .entry(tag)
                .and_modify(|(count, _)| *count += 1)
                .or_insert((1, charged));
        }
    }

    async fn run(mut self, plan: Arc<Plan>, clock: Arc<Clock>, drain_until: Instant) -> Browser {
        let mut cycles = 0;
        while !clock.draining() && cycles < plan.max_cycles {
            for _ in 0..plan.posts_per_cycle {
                self.post(&clock, plan.text_len).await;
            }
            self.get(&clock).await;
            cycles += 1;
            tokio::time::sleep(plan.think).await;
        }
        // The count bound may end the cycles early: wait for the schedule to end.
        while !clock.draining() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Drain to the end, even when everything was seen: a read whose settle was cut shows
        // its messages again once their lease ends, and that duplicate must be counted.
        while Instant::now() < drain_until {
            self.get(&clock).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self
    }
}

/// `SOAK_DEBUG` set: every page's tags and every lost tag go to stderr.
fn debugging() -> bool {
    std::env::var_os("SOAK_DEBUG").is_some()
}

fn label(fault: Fault, length: Duration) -> String {
    format!("{} {:.1}s", fault.name(), length.as_secs_f64())
}

/// The padding of a message on a server store without a cookie in front.
pub const SERVER_TEXT_LEN: usize = 200;

/// Runs the plan against the demo over `kind`, its server behind a fault proxy. An unreachable
/// server fails; `None` when the run opted in to skipping (`FLASH_TESTKIT_SKIP_UNREACHABLE=1`).
pub async fn run(kind: Kind, plan: &Plan) -> Option<Report> {
    let mut plan = plan.clone();
    if !matches!(
        kind,
        Kind::CookieRedis | Kind::CookiePostgres | Kind::CookieSqlite
    ) {
        plan.text_len = plan.text_len.min(SERVER_TEXT_LEN);
    }
    let plan = &plan;
    let lease = format!("{}ms", plan.lease.as_millis());
    let opened = open_with(kind, true, &[("lease_timeout", &lease)]).await?;
    let server = Server::demo(opened.storage.clone()).await;
    let steps = plan.steps();
    let proxied = opened.proxy.is_some();
    let clock = Arc::new(Clock {
        phase: AtomicUsize::new(0),
        // Without a proxy nothing is faulty: the control run.
        faults: steps
            .iter()
            .map(|(fault, _)| if proxied { *fault } else { Fault::Pass })
            .collect(),
    });
    let schedule: Duration = steps.iter().map(|(_, length)| *length).sum();
    let drain_until = Instant::now() + schedule + plan.drain;
    let plan = Arc::new(plan.clone());
    let base = format!("http://{}", server.addr);
    let browsers: Vec<_> = (0..plan.browsers)
        .map(|id| {
            let browser = Browser::new(id, base.clone(), steps.len(), plan.request_timeout);
            tokio::spawn(browser.run(plan.clone(), clock.clone(), drain_until))
        })
        .collect();

    for (index, (fault, length)) in steps.iter().enumerate() {
        if let Some(proxy) = &opened.proxy {
            proxy.set(*fault);
        }
        clock.phase.store(index, Ordering::SeqCst);
        tokio::time::sleep(*length).await;
    }
    if let Some(proxy) = &opened.proxy {
        proxy.set(Fault::Pass);
    }
    clock.phase.store(steps.len(), Ordering::SeqCst);

    let mut rows: Vec<Row> = steps
        .iter()
        .zip(&clock.faults)
        .map(|((fault, length), effective)| Row {
            fault: if proxied {
                label(*fault, *length)
            } else {
                format!("none {:.1}s", length.as_secs_f64())
            },
            faulty: *effective != Fault::Pass,
            ..Row::default()
        })
        .collect();
    rows.push(Row {
        fault: format!("drain {:.1}s", plan.drain.as_secs_f64()),
        ..Row::default()
    });
    for browser in browsers {
        let browser = browser.await.expect("a browser panicked");
        for (row, tally) in rows.iter_mut().zip(&browser.tallies) {
            row.add(tally);
        }
        for (tag, phase) in browser.sent.iter().chain(&browser.pending) {
            rows[*phase].sent += 1;
            if !browser.seen.contains_key(tag) {
                if debugging() {
                    eprintln!("lost {tag} in phase {phase}");
                }
                rows[*phase].lost += 1;
            }
        }
        for (count, charged) in browser.seen.values() {
            if *count > 1 {
                rows[*charged].duplicated += 1;
            }
        }
    }
    let mut total = Row {
        fault: "all".to_owned(),
        ..Row::default()
    };
    for row in &mut rows {
        total.add(row);
        row.finish();
    }
    total.finish();
    server.stop().await;
    drop(opened);
    Some(Report {
        storage: storage_name(kind).to_owned(),
        rows,
        total,
        exactly_once: promises_exactly_once(kind),
    })
}
