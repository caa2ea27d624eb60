//! A real browser: headless Chromium, driven through chromedriver, on every framework the demo
//! runs on (axum, actix-web, poem). On the classic page it fills the demo's form, follows the
//! redirect, sees the message, reloads, and sees none. On the htmx page, with the real htmx
//! library, it posts the form in place, sees the message as a toast without a reload, and then
//! not again on `/`. On the page of addressed messages, the page's own script posts without
//! following the redirect, then a `fetch` of `/api/messages` and an htmx request read before
//! the redirect's page loads: they see nothing, and the page shows the message once.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/ensure-chromium` installs them),
//! and for the htmx and addressed pages htmx itself (`scripts/fetch-htmx` fetches the pinned
//! version from npm). Without them a test is skipped with one line, or fails under `CI=true`.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::future::Future;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::error::CmdError;
use fantoccini::{ClientBuilder, Locator};
use flash_demo::Serving;
use flash_integration::{Framework, Kind, Server, open, under_ci};
use hyper_util::client::legacy::connect::HttpConnector;

/// Where `scripts/fetch-htmx` puts the pinned htmx 2 release (git-ignored).
const HTMX_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/browser-assets/node_modules/htmx.org/dist/htmx.min.js"
);

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

/// Each scenario, once per framework.
macro_rules! on_every_framework {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn axum() {
                super::$scenario(super::Framework::Axum).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn actix() {
                super::$scenario(super::Framework::Actix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn poem() {
                super::$scenario(super::Framework::Poem).await;
            }
        }
    )*};
}

on_every_framework!(classic_page, htmx_page, addressed_page);

/// Something a browser test needs is missing: one `skipped` line, or a failure under CI.
fn missing(why: &str) {
    assert!(
        !under_ci(),
        "{why}: the browser test cannot be skipped under CI=true"
    );
    eprintln!("skipped: {why}");
}

/// Chromium and chromedriver, when both are installed.
fn chromium() -> Option<(PathBuf, PathBuf)> {
    let found = find_program("chromium").zip(find_program("chromedriver"));
    if found.is_none() {
        missing("chromium or chromedriver is not installed (run scripts/ensure-chromium)");
    }
    found
}

/// The form posts, the browser follows the redirect, the page shows the message once.
async fn classic_page(framework: Framework) {
    let Some(programs) = chromium() else {
        return;
    };
    in_chromium(programs, framework, Serving::default(), "/", drive).await;
}

/// htmx posts the form in place and the message shows as a toast, once.
async fn htmx_page(framework: Framework) {
    let Some(programs) = chromium() else {
        return;
    };
    let Some(serving) = with_htmx() else {
        return;
    };
    in_chromium(programs, framework, serving, "/htmx", drive_htmx).await;
}

/// Issue 19: other readers between the redirect and the page's load leave the message to the
/// page.
async fn addressed_page(framework: Framework) {
    let Some(programs) = chromium() else {
        return;
    };
    let Some(serving) = with_htmx() else {
        return;
    };
    in_chromium(programs, framework, serving, "/addressed", drive_addressed).await;
}

/// The demo serving htmx, when `scripts/fetch-htmx` has fetched it.
fn with_htmx() -> Option<Serving> {
    if Path::new(HTMX_FILE).is_file() {
        return Some(Serving::default().htmx_script(HTMX_FILE));
    }
    missing(&format!(
        "htmx is not at {HTMX_FILE} (run scripts/fetch-htmx)"
    ));
    None
}

/// Serves the demo on `framework` over the README's storage (cookie first, overflow into
/// SQLite), opens `path` in headless Chromium and runs `steps` with the browser, the page's
/// URL and the framework; the browser, chromedriver and the demo are stopped whatever happens.
async fn in_chromium<F, Fut>(
    (chromium, chromedriver): (PathBuf, PathBuf),
    framework: Framework,
    serving: Serving,
    path: &str,
    steps: F,
) where
    F: FnOnce(fantoccini::Client, String, Framework) -> Fut,
    Fut: Future<Output = Result<(), CmdError>> + Send + 'static,
{
    let Some(opened) = open(Kind::CookieSqlite).await else {
        return;
    };
    let server = Server::demo_serving(framework, opened.storage.clone(), serving).await;

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
    let url = server.url(path);
    let steps = tokio::spawn(steps(browser.clone(), url, framework)).await;
    let _ = browser.close().await;
    drop(driver);
    server.stop().await;
    match steps {
        Ok(result) => result.unwrap(),
        Err(panicked) => std::panic::resume_unwind(panicked.into_panic()),
    }
}

async fn drive(
    browser: fantoccini::Client,
    page: String,
    framework: Framework,
) -> Result<(), CmdError> {
    browser.goto(&page).await?;
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

/// The htmx page with the real htmx 2: the form is posted by htmx, the message comes back in
/// `HX-Trigger` and shows as a toast, the page is not reloaded; then `/`, loaded plainly, shows
/// it no more (delivered once).
async fn drive_htmx(
    browser: fantoccini::Client,
    page: String,
    framework: Framework,
) -> Result<(), CmdError> {
    browser.goto(&page).await?;
    assert_eq!(
        browser.find(Locator::Id("framework")).await?.text().await?,
        framework.name()
    );
    let version = browser
        .execute("return window.htmx ? window.htmx.version : null", vec![])
        .await?;
    assert!(
        version.as_str().is_some_and(|v| v.starts_with("2.")),
        "htmx 2 is loaded from the demo itself: {version}"
    );
    // Survives only if the page is not reloaded.
    browser.execute("window.__marker = 1", vec![]).await?;

    browser
        .find(Locator::Id("text"))
        .await?
        .send_keys("Toast from <b>htmx</b>")
        .await?;
    browser
        .find(Locator::Id("extra_tags"))
        .await?
        .send_keys("toast")
        .await?;
    browser
        .find(Locator::Id("level"))
        .await?
        .select_by_value("warning")
        .await?;
    browser.find(Locator::Id("submit")).await?.click().await?;

    let toast = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#toasts li"))
        .await?;
    assert_eq!(
        toast.text().await?,
        "Toast from <b>htmx</b>",
        "plain text, shown as text"
    );
    assert_eq!(toast.attr("class").await?.as_deref(), Some("toast warning"));
    assert_eq!(browser.find_all(Locator::Css("#toasts li")).await?.len(), 1);
    assert_eq!(
        browser
            .execute("return window.__marker === 1", vec![])
            .await?,
        serde_json::Value::Bool(true),
        "no full reload: the page's state is still there"
    );
    assert_eq!(browser.current_url().await?.path(), "/htmx");
    assert!(
        browser.find_all(Locator::Id("messages")).await?.is_empty(),
        "shown as a toast, not through a redirect to the page"
    );
    assert_eq!(
        browser
            .find(Locator::Id("text"))
            .await?
            .prop("value")
            .await?
            .as_deref(),
        Some(""),
        "the form is reset after a successful post"
    );

    let home = browser.current_url().await?.join("/").unwrap();
    browser.goto(home.as_str()).await?;
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("form[action='/messages']"))
        .await?;
    assert!(
        browser.find_all(Locator::Id("messages")).await?.is_empty(),
        "delivered in HX-Trigger, so not shown again"
    );
    Ok(())
}

/// The page's own script posts the form with `fetch` (`redirect: "manual"`: the browser keeps the
/// 303's cookies and loads no page), then reads as a polling widget (`fetch("/api/messages")`)
/// and an htmx fragment (`htmx.ajax` of `/`) do, and shows what each got with a link to `/`.
/// Only then is the redirect's page loaded (the link): the order is the script's, not a race.
/// The message is addressed to `/`: the two reads see nothing, `/` shows it once, a reload none.
async fn drive_addressed(
    browser: fantoccini::Client,
    page: String,
    framework: Framework,
) -> Result<(), CmdError> {
    browser.goto(&page).await?;
    assert_eq!(
        browser.find(Locator::Id("framework")).await?.text().await?,
        framework.name()
    );
    browser
        .find(Locator::Id("text"))
        .await?
        .send_keys("For the page")
        .await?;
    browser.find(Locator::Id("submit")).await?.click().await?;

    let go = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#go:not([hidden])"))
        .await?;
    let shown = async |id| browser.find(Locator::Id(id)).await?.text().await;
    assert_eq!(shown("posted").await?, "redirected, not followed");
    assert_eq!(
        shown("fetched").await?,
        "[]",
        "the widget's fetch neither sees nor takes the page's message"
    );
    assert_eq!(
        shown("htmx-shown").await?,
        "[]",
        "nor does an htmx request of the very page"
    );

    go.click().await?;
    let item = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#messages li"))
        .await?;
    assert_eq!(browser.current_url().await?.path(), "/");
    assert_eq!(item.text().await?, "For the page");
    assert_eq!(
        browser.find_all(Locator::Css("#messages li")).await?.len(),
        1,
        "once"
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
