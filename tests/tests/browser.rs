//! A real browser: headless Chromium, driven through chromedriver, fills the demo's form,
//! follows the redirect, sees the message, reloads, and sees none; on both frameworks (axum and
//! actix-web).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/ensure-chromium` installs them).
//! Without them the test is skipped with one line, or fails under `CI=true`.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use flash_integration::{Framework, Kind, Server, open, under_ci};
use hyper_util::client::legacy::connect::HttpConnector;

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(program: &std::path::Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            // Its own process group, so the browsers it starts go down with it.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Driver { child, port }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = format!("http://127.0.0.1:{}/status", self.port);
        let http = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(response) = http.get(&status).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {status} within 20 s");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and every Chromium process it started (same process group).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_on_axum() {
    chromium_posts_follows_the_redirect_and_sees_the_message_once(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_on_actix() {
    chromium_posts_follows_the_redirect_and_sees_the_message_once(Framework::Actix).await;
}

async fn chromium_posts_follows_the_redirect_and_sees_the_message_once(framework: Framework) {
    let (Some(chromium), Some(chromedriver)) =
        (find_program("chromium"), find_program("chromedriver"))
    else {
        let why = "chromium or chromedriver is not installed (run scripts/ensure-chromium)";
        assert!(
            !under_ci(),
            "{why}: the browser test cannot be skipped under CI=true"
        );
        eprintln!("skipped: {why}");
        return;
    };
    // The README's storage: cookie first, overflow into SQLite.
    let Some(opened) = open(Kind::CookieSqlite).await else {
        return;
    };
    let server = Server::demo_on(framework, opened.storage.clone()).await;

    let driver = Driver::start(&chromedriver);
    driver.wait_ready().await;
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap();

    // Run the steps in a task so a failed assertion still closes the browser.
    let url = server.url("/");
    let steps = tokio::spawn({
        let browser = browser.clone();
        async move { drive(&browser, &url, framework).await }
    })
    .await;
    let _ = browser.close().await;
    drop(driver);
    server.stop().await;
    match steps {
        Ok(result) => result.unwrap(),
        Err(panicked) => std::panic::resume_unwind(panicked.into_panic()),
    }
}

async fn drive(
    browser: &fantoccini::Client,
    page: &str,
    framework: Framework,
) -> Result<(), fantoccini::error::CmdError> {
    browser.goto(page).await?;
    assert_eq!(
        browser.find(Locator::Id("framework")).await?.text().await?,
        framework.name(),
        "the page names the framework serving it"
    );
    assert!(
        browser.find_all(Locator::Id("messages")).await?.is_empty(),
        "a new visitor has no messages"
    );

    browser
        .find(Locator::Id("text"))
        .await?
        .send_keys("Hello from <b>Chromium</b>")
        .await?;
    browser
        .find(Locator::Id("extra_tags"))
        .await?
        .send_keys("browser")
        .await?;
    browser
        .find(Locator::Id("level"))
        .await?
        .select_by_value("warning")
        .await?;
    browser.find(Locator::Id("submit")).await?.click().await?;

    // The POST answers 303; the browser follows it back to the page, which shows the message.
    let item = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#messages li"))
        .await?;
    assert_eq!(browser.current_url().await?.path(), "/");
    assert_eq!(
        item.text().await?,
        "Hello from <b>Chromium</b>",
        "escaped, shown as text"
    );
    assert_eq!(
        item.attr("class").await?.as_deref(),
        Some("browser warning")
    );
    assert_eq!(
        browser.find_all(Locator::Css("#messages li")).await?.len(),
        1
    );

    browser.refresh().await?;
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("form[action='/messages']"))
        .await?;
    assert!(
        browser.find_all(Locator::Id("messages")).await?.is_empty(),
        "a reload shows no message"
    );
    Ok(())
}
