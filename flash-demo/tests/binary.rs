//! The `flash-demo` binary as the README runs it: it starts, says where and with which storage,
//! serves the flow, and stops cleanly on Ctrl-C (SIGINT).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Demo, Framework, post_then_get};

/// The README's main command: no environment at all, so the default storage (cookie first,
/// overflow into `flash-demo.db` in the working directory) and the development secret.
#[tokio::test]
async fn runs_with_the_defaults_and_stops_on_ctrl_c() {
    defaults_then_ctrl_c(&["--addr", "127.0.0.1:0"], "axum").await;
}

/// The same on actix-web, chosen with the flag.
#[tokio::test]
async fn runs_on_actix_with_the_flag_and_stops_on_ctrl_c() {
    defaults_then_ctrl_c(&["--addr", "127.0.0.1:0", "--framework", "actix"], "actix").await;
}

async fn defaults_then_ctrl_c(args: &[&str], framework: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), &[], args);
    let warning = demo.wait_for("FLASH_SECRET is not set");
    assert!(warning.contains("WARN"), "{warning}");
    let base = demo.base_url();
    assert!(
        demo.seen.last().unwrap().contains(&format!(
            "storage: cookie+sqlite://flash-demo.db, framework: {framework}"
        )),
        "{:?}",
        demo.seen
    );
    post_then_get(&base).await;
    demo.interrupt();
    assert!(
        dir.path().join("flash-demo.db").exists(),
        "the SQLite file is where it ran"
    );
    assert!(
        dir.path().join("flash-demo.secret").exists(),
        "the secret is kept beside it"
    );
}

#[tokio::test]
async fn flash_addr_storage_and_framework_come_from_the_environment() {
    for framework in Framework::ALL {
        from_the_environment(framework).await;
    }
}

async fn from_the_environment(framework: Framework) {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a secret of at least thirty-two bytes, for this test";
    let mut demo = Demo::start(
        dir.path(),
        &[
            ("FLASH_ADDR", "127.0.0.1:0"),
            ("FLASH_STORAGE", "cookie"),
            ("FLASH_SECRET", secret),
            ("FLASH_FRAMEWORK", framework.name()),
        ],
        &[],
    );
    let base = demo.base_url();
    assert!(
        demo.seen
            .last()
            .unwrap()
            .contains(&format!("storage: cookie, framework: {framework}")),
        "{:?}",
        demo.seen
    );
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
            vec![("FLASH_FRAMEWORK", "rocket")],
            vec!["--addr", "127.0.0.1:0"],
        ),
        (
            vec![],
            vec!["--addr", "127.0.0.1:0", "--framework", "rocket"],
        ),
        (
            vec![("FLASH_SECRET", "short")],
            vec!["--addr", "127.0.0.1:0"],
        ),
    ] {
        let output = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("FLASH_STORAGE")
            .env_remove("FLASH_FRAMEWORK")
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

/// Repro 4 of issue 12: with the server down, no password of any URL form reaches the log, the
/// page or the JSON error (`redis+unix://…?pass=` and a password holding `/` leaked before).
#[tokio::test]
async fn no_url_form_shows_its_password_with_the_server_down() {
    for framework in Framework::ALL {
        no_password_shown(framework).await;
    }
}

async fn no_password_shown(framework: Framework) {
    for (url, secret) in [
        (
            "redis+unix:///nonexistent/flash-demo.sock?pass=hunter2",
            "hunter2",
        ),
        ("redis://u:hun/ter2@127.0.0.1:1/0", "ter2"),
        ("redis://hunter2@127.0.0.1:1", "hunter2"),
        ("cookie+redis://:hun@ter2@127.0.0.1:1", "ter2"),
        ("postgres://app:hun/ter2@127.0.0.1:1/db", "ter2"),
        (
            "cookie+postgres://app@127.0.0.1:1/db?password=hunter2",
            "hunter2",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut demo = common::start_on(
            framework,
            dir.path(),
            &[("FLASH_STORAGE", url)],
            &["--addr", "127.0.0.1:0"],
        );
        let mut shown = match demo.started() {
            common::Started::Exited(said) => said,
            common::Started::Serving(base) => {
                // A store that connects lazily: the page and the JSON error meet the outage.
                let http = common::browser();
                let page = http.get(format!("{base}/")).send().await.unwrap();
                let page = page.text().await.unwrap();
                let json = http
                    .get(format!("{base}/api/messages"))
                    .send()
                    .await
                    .unwrap();
                let json = json.text().await.unwrap();
                demo.interrupt();
                format!("{page}\n{json}\n{}", demo.seen.join("\n"))
            }
        };
        while let Ok(line) = demo.lines.recv_timeout(Duration::from_millis(200)) {
            shown.push_str(&line);
        }
        assert!(!shown.contains(secret), "{url}: shown: {shown}");
        assert!(
            shown.contains(&flash::storage::redact_url(url)),
            "{url}: the storage is named, redacted: {shown}"
        );
    }
}

/// `FLASH_DEMO_HTMX` names the htmx file served at `/assets/htmx.min.js` (the log says so); a
/// path with no file is a `404` and a log line saying the htmx page is a plain form.
#[tokio::test]
async fn the_htmx_file_comes_from_flash_demo_htmx() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("htmx.min.js");
    std::fs::write(&script, "/* htmx */\n").unwrap();
    let missing = dir.path().join("missing.js");
    for (framework, path, served) in [
        (Framework::Axum, &script, true),
        (Framework::Actix, &missing, false),
    ] {
        let mut demo = common::start_on(
            framework,
            dir.path(),
            &[
                ("FLASH_STORAGE", "cookie"),
                (
                    "FLASH_SECRET",
                    "a secret of at least thirty-two bytes, for this test",
                ),
                ("FLASH_DEMO_HTMX", path.to_str().unwrap()),
            ],
            &["--addr", "127.0.0.1:0"],
        );
        let base = demo.base_url();
        let said = demo.seen.join("\n");
        let expected = if served {
            format!("the htmx page /htmx loads htmx from {}", path.display())
        } else {
            format!("no htmx file at {}", path.display())
        };
        assert!(said.contains(&expected), "{framework}: {said}");
        let response = common::browser()
            .get(format!("{base}/assets/htmx.min.js"))
            .send()
            .await
            .unwrap();
        if served {
            assert_eq!(response.status(), reqwest::StatusCode::OK, "{framework}");
            assert_eq!(response.text().await.unwrap(), "/* htmx */\n");
        } else {
            assert_eq!(
                response.status(),
                reqwest::StatusCode::NOT_FOUND,
                "{framework}"
            );
        }
        demo.interrupt();
    }
}
