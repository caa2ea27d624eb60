//! Issue 20, point 5: the demo's `/metrics` (Prometheus text, the `metrics` feature the demo
//! enables) shows what flash did: after a PRG flow, added and shown counts that match, and
//! store call latency histograms per backend; after a Redis outage (a private redis-server,
//! stopped mid-test), messages carried in the cookie and the store's failed calls.
//!
//! One test for everything, run in order: the recorder is the process's, so counts are
//! compared before and after each step, with nothing else running in this binary.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Framework, Served, send};
use flash::storage::{Key, Keys};
use flash::storage::{MemoryStore, ServerStorage, Storage};
use flash_demo::Serving;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};

/// The value of the sample `name{labels}` (labels as Prometheus prints them, in any order is
/// not needed: the exporter prints them sorted as registered), summed over every sample whose
/// labels contain each of `having`.
fn sample(text: &str, name: &str, having: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((metric, labels)) => (metric, labels),
                None => (series, ""),
            };
            (metric == name && having.iter().all(|h| labels.contains(h)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

async fn scrape(app: &Served) -> String {
    let (status, headers, body) = send(app.get("/metrics")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let content_type = headers[CONTENT_TYPE].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    body
}

fn cookies(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| !c.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

fn form(app: &Served, body: &str) -> reqwest::RequestBuilder {
    app.post("/messages")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_owned())
}

/// A PRG flow of `n` copies: added and shown grow by `n` each.
async fn prg(app: &Served, n: usize) {
    let before = scrape(app).await;
    let (status, headers, _) = send(form(app, &format!("level=info&text=counted&count={n}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let page = send(app.get("/").header(COOKIE, cookies(&headers))).await.2;
    assert_eq!(page.matches("counted").count(), n, "{page}");
    let after = scrape(app).await;
    let grew = |name| sample(&after, name, &[]) - sample(&before, name, &[]);
    assert_eq!(grew("flash_messages_added_total"), n as f64, "{after}");
    assert_eq!(grew("flash_messages_shown_total"), n as f64, "{after}");
}

/// A redis-server of the test's own on a free port, killed on drop.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = match Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => {
                common::unavailable("redis-server (the binary)", &err.to_string());
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(OwnRedis { child, port });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        common::unavailable("a private redis-server", "it did not listen within 10 s");
        None
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_what_flash_did() {
    for framework in [Framework::Axum, Framework::Actix] {
        let storage: Arc<dyn Storage> = Arc::new(ServerStorage::new(
            MemoryStore::new(),
            Keys::new(Key::generate()),
        ));
        let app = Served::start(framework, storage, Serving::default().with_metrics());
        prg(&app, 1).await;
        prg(&app, 3).await;
        let text = scrape(&app).await;
        assert!(
            sample(
                &text,
                "flash_store_call_duration_seconds_count",
                &["backend=\"memory\"", "call=\"append\""]
            ) >= 2.0,
            "{text}"
        );
        assert!(
            text.contains("# TYPE flash_store_call_duration_seconds histogram"),
            "{text}"
        );

        // A Redis outage: the store stops answering; the post still succeeds, its message
        // carried in the signed carry cookie, and the store's failed call is counted.
        let Some(mut redis) = OwnRedis::start() else {
            return;
        };
        let storage = flash::StorageConfig::new(format!("redis://127.0.0.1:{}", redis.port))
            .secret("the metrics test's secret, 32 bytes or more")
            .open()
            .await
            .unwrap();
        let app = Served::start(framework, storage, Serving::default().with_metrics());
        prg(&app, 1).await;
        let before = scrape(&app).await;
        redis.stop();
        let (status, headers, _) = send(form(&app, "level=warning&text=while+down")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(cookies(&headers).contains("flash_id_carry="), "{headers:?}");
        let after = scrape(&app).await;
        let grew =
            |name, having: &[&str]| sample(&after, name, having) - sample(&before, name, having);
        assert_eq!(grew("flash_messages_carried_total", &[]), 1.0, "{after}");
        assert!(
            grew(
                "flash_store_call_errors_total",
                &["backend=\"redis\"", "kind=\"unavailable\""]
            ) >= 1.0,
            "{after}"
        );
        assert!(
            sample(
                &after,
                "flash_store_call_duration_seconds_count",
                &["backend=\"redis\""]
            ) >= 2.0,
            "latency per backend: {after}"
        );
    }
}
