//! The `flash-demo` binary, started as `cargo run -p flash-demo` starts it, for the tests.
#![allow(
    dead_code,
    unreachable_pub,
    unused_imports,
    unused_macros,
    clippy::unwrap_used,
    clippy::print_stderr
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flash::storage::Storage;
pub use flash_demo::Framework;
use flash_demo::Serving;
use tokio::sync::oneshot;

/// Each `async fn(Framework)` named, as one test per framework: `on_axum::name`,
/// `on_actix::name`, `on_poem::name`.
macro_rules! on_every_framework {
    ($($name:ident),* $(,)?) => {
        $crate::common::on_every_framework!(@on on_axum, Axum; $($name),*);
        $crate::common::on_every_framework!(@on on_actix, Actix; $($name),*);
        $crate::common::on_every_framework!(@on on_poem, Poem; $($name),*);
    };
    (@on $module:ident, $framework:ident; $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Framework::$framework).await;
                }
            )*
        }
    };
}
pub(crate) use on_every_framework;

/// The binary on `framework`, chosen through `FLASH_FRAMEWORK`.
pub fn start_on(framework: Framework, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Demo {
    let mut env = env.to_vec();
    env.push(("FLASH_FRAMEWORK", framework.name()));
    Demo::start(dir, &env, args)
}

/// The running binary; killed if the test fails before stopping it.
pub struct Demo {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Demo {
    /// The binary as `cargo run -p flash-demo` starts it (axum unless `env` or `args` say).
    pub fn start(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Demo {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(dir)
            .env_remove("FLASH_FRAMEWORK")
            .env_remove("FLASH_STORAGE")
            .env_remove("FLASH_SECRET")
            .env_remove("FLASH_ADDR")
            .env_remove("FLASH_DEV")
            .env_remove("FLASH_SECRET_FILE")
            .env_remove("FLASH_STORAGE_PREVIOUS")
            .env_remove("FLASH_SECRET_PREVIOUS")
            .env_remove("FLASH_SECRET_FALLBACKS")
            .env_remove("FLASH_DEMO_HTMX")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Demo {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line with {needle:?}; the demo said:\n{}",
            self.seen.join("\n")
        );
    }

    /// The base URL the demo logged.
    pub fn base_url(&mut self) -> String {
        let line = self.wait_for("flash demo on http://");
        let start = line.find("http://").unwrap();
        line[start..].split_whitespace().next().unwrap().to_owned()
    }

    /// Sends SIGINT (what Ctrl-C sends), waits for a clean exit, and returns all it said.
    pub fn interrupt(&mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status after Ctrl-C: {status}");
                break;
            }
            assert!(Instant::now() < deadline, "still running 15 s after Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_for("stopped");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn post_then_get(base: &str) {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .post(format!("{base}/messages"))
        .form(&[("level", "success"), ("text", "from the binary")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    // Between the redirect and the page load, a widget's fetch and a link checker's HEAD: the
    // message is addressed to `/`, so neither shows nor consumes it (issue 19).
    let api = http
        .get(format!("{base}/api/messages"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), reqwest::StatusCode::OK);
    assert_eq!(
        api.text().await.unwrap(),
        "[]",
        "the API took the page's message"
    );
    let head = http.head(format!("{base}/")).send().await.unwrap();
    assert_eq!(head.status(), reqwest::StatusCode::OK);
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        page.matches(r#"<li class="success">from the binary</li>"#)
            .count(),
        1,
        "shown once: {page}"
    );
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("id=\"messages\""), "{page}");
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_flash-demo");

/// How a start ended: serving at a base URL, or exited with what it said.
pub enum Started {
    Serving(String),
    Exited(String),
}

impl Demo {
    /// Waits until the demo serves or exits.
    pub fn started(&mut self) -> Started {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                let serving = line.contains("flash demo on http://");
                self.seen.push(line.clone());
                if serving {
                    let start = line.find("http://").unwrap();
                    return Started::Serving(
                        line[start..].split_whitespace().next().unwrap().to_owned(),
                    );
                }
            } else if self.child.try_wait().unwrap().is_some() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return Started::Exited(self.seen.join("\n"));
            }
            assert!(
                Instant::now() < deadline,
                "the demo neither served nor exited: {}",
                self.seen.join("\n")
            );
        }
    }
}

/// A browser: a cookie jar, no redirects followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A server the test needs is not there: a failure, or skipped with a `SKIPPED` line in the
/// test output when the run opted in (`FLASH_TESTKIT_SKIP_UNREACHABLE=1`, never under `CI=true`).
pub fn unavailable(what: &str, said: &str) {
    let _: Option<()> = flash::testkit::unavailable(what, said);
}

/// The demo app served in process on a free loopback port by `framework`, as the binary serves
/// it ([`Framework::serve`]); stops when dropped.
pub struct Served {
    pub base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Served {
    pub fn start(framework: Framework, storage: Arc<dyn Storage>, serving: Serving) -> Served {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            framework
                .serve(storage, serving, listener, stopped)
                .await
                .unwrap();
        });
        Served {
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            stop: Some(stop),
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    pub fn http_head(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.head(format!("{}{path}", self.base))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Sends `request`: the status, the headers and the body as text.
pub async fn send(
    request: reqwest::RequestBuilder,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}
