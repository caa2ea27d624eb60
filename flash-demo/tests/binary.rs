//! The `flash-demo` binary as the README runs it: it starts, says where and with which storage,
//! serves the flow, and stops cleanly on Ctrl-C (SIGINT).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The running binary; killed if the test fails before stopping it.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Demo {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flash-demo"));
        command
            .args(args)
            .current_dir(dir)
            .env_remove("FLASH_STORAGE")
            .env_remove("FLASH_SECRET")
            .env_remove("FLASH_ADDR")
            .env_remove("FLASH_DEV")
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
    fn wait_for(&mut self, needle: &str) -> String {
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
    fn base_url(&mut self) -> String {
        let line = self.wait_for("flash demo on http://");
        let start = line.find("http://").unwrap();
        line[start..].split_whitespace().next().unwrap().to_owned()
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits for a clean exit.
    fn interrupt(mut self) {
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
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post_then_get(base: &str) {
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
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<li class="success">from the binary</li>"#),
        "{page}"
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

/// The README's main command: no environment at all, so the default storage (cookie first,
/// overflow into `flash-demo.db` in the working directory) and the development secret.
#[tokio::test]
async fn runs_with_the_defaults_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), &[], &["--addr", "127.0.0.1:0"]);
    let warning = demo.wait_for("FLASH_SECRET is not set");
    assert!(warning.contains("WARN"), "{warning}");
    let base = demo.base_url();
    assert!(
        demo.seen
            .last()
            .unwrap()
            .contains("storage: cookie+sqlite://flash-demo.db"),
        "{:?}",
        demo.seen
    );
    post_then_get(&base).await;
    demo.interrupt();
    assert!(
        dir.path().join("flash-demo.db").exists(),
        "the SQLite file is where it ran"
    );
}

#[tokio::test]
async fn flash_addr_and_storage_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a secret of at least thirty-two bytes, for this test";
    let mut demo = Demo::start(
        dir.path(),
        &[
            ("FLASH_ADDR", "127.0.0.1:0"),
            ("FLASH_STORAGE", "cookie"),
            ("FLASH_SECRET", secret),
        ],
        &[],
    );
    let base = demo.base_url();
    assert!(demo.seen.last().unwrap().contains("storage: cookie"));
    assert!(!demo.seen.join("\n").contains("FLASH_SECRET is not set"));
    assert!(
        !demo.seen.join("\n").contains(secret),
        "the secret is never printed"
    );
    post_then_get(&base).await;
    demo.interrupt();
}

#[test]
fn passwords_are_not_printed_and_bad_settings_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: opening fails, and the message must not show the password.
    let mut demo = Demo::start(
        dir.path(),
        &[("FLASH_STORAGE", "redis://:hunter2@127.0.0.1:1/0")],
        &["--addr", "127.0.0.1:0"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let exited = loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            break Some(status);
        }
        if let Ok(line) = demo.lines.recv_timeout(Duration::from_millis(50)) {
            let serving = line.contains("flash demo on http://");
            demo.seen.push(line);
            if serving {
                // A lazily connecting store starts anyway.
                break None;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the demo neither served nor failed"
        );
    };
    while let Ok(line) = demo.lines.recv_timeout(Duration::from_millis(300)) {
        demo.seen.push(line);
    }
    let said = demo.seen.join("\n");
    assert!(
        !said.contains("hunter2"),
        "the password is never printed: {said}"
    );
    assert!(said.contains("redis://"), "the storage is named: {said}");
    if let Some(status) = exited {
        assert!(!status.success());
        assert!(said.contains("ERROR"), "{said}");
    }
    drop(demo);

    for (env, args) in [
        (vec![("FLASH_STORAGE", "nosuch://x")], vec![]),
        (vec![], vec!["--addr", "not-an-address"]),
        (vec![], vec!["--bogus"]),
        (
            vec![("FLASH_SECRET", "short")],
            vec!["--addr", "127.0.0.1:0"],
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_flash-demo"))
            .args(&args)
            .current_dir(dir.path())
            .env_remove("FLASH_STORAGE")
            .env_remove("FLASH_DEV")
            .envs(env.iter().copied())
            .env(
                "FLASH_STORAGE",
                env.iter()
                    .find(|(n, _)| *n == "FLASH_STORAGE")
                    .map_or("cookie", |(_, v)| v),
            )
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{env:?} {args:?} must fail: {said}"
        );
        assert!(said.contains("ERROR"), "{env:?} {args:?}: {said}");
    }
}
