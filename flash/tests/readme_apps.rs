//! The apps the READMEs open with are the examples (`cargo run -p flash-messages --example axum|actix|
//! poem`), word for word, and each serves: POST → 303 → GET shows "Article saved." once, and
//! the reload shows nothing. The examples compile with the facade's features, so the READMEs'
//! first blocks do too (they are also doctests, `no_run`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SHOWN: &str = r#"<div class="success">Article saved.</div>"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the facade sits in the workspace")
        .to_owned()
}

/// The example's code as a reader sees it: without its `//!` line (the crate doc rustc asks of
/// an example).
fn example(name: &str) -> String {
    let path = repo().join("flash/examples").join(format!("{name}.rs"));
    let text = std::fs::read_to_string(&path).expect("the example exists");
    text.lines()
        .filter(|line| !line.starts_with("//!"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The first Rust block of a README.
fn first_rust_block(readme: &str) -> String {
    let text = std::fs::read_to_string(repo().join(readme)).expect("the README exists");
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|line| line.starts_with("```rust"))
        .unwrap_or_else(|| panic!("{readme} has no Rust block"));
    lines
        .take_while(|line| !line.starts_with("```"))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn every_readme_opens_with_its_example_app() {
    for (readme, app) in [
        ("README.md", "axum"),
        ("flash/README.md", "axum"),
        ("flash-axum/README.md", "axum"),
        ("flash-actix/README.md", "actix"),
        ("flash-poem/README.md", "poem"),
    ] {
        assert_eq!(
            first_rust_block(readme),
            example(app),
            "{readme}'s first block must be flash/examples/{app}.rs (without its //! line)"
        );
    }
}

/// Names the flash items a reader meets before the first `success(`: the README's promise is
/// at most three.
#[test]
fn at_most_three_flash_names_before_the_first_success() {
    for app in ["axum", "actix", "poem"] {
        let code = example(app);
        let before = &code[..code.find(".success(").expect("the app adds a message")];
        let mut names: Vec<&str> = Vec::new();
        for (at, _) in before.match_indices("flash::") {
            let path = &before[at + "flash::".len()..];
            if let Some(list) = path.split_once("::{").map(|(_, rest)| rest) {
                let list = &list[..list.find('}').expect("a closed use list")];
                names.extend(list.split(',').map(str::trim).filter(|n| !n.is_empty()));
            } else {
                let end = path
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(path.len());
                names.push(&path[..end]);
            }
        }
        names.sort_unstable();
        names.dedup();
        assert!(
            names.len() <= 3,
            "{app}: {} flash names before success: {names:?}",
            names.len()
        );
    }
}

/// The built example, built here when this test runs alone (`cargo test` of the whole package
/// builds the examples anyway).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let target_dir = profile_dir.parent().expect("the target directory");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "flash", "--example", name])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(repo())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    path
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

async fn serve_and_flow(app: &str, storage: &str) {
    let port = free_port();
    let mut child = Command::new(binary(app));
    child
        .env("ADDR", format!("127.0.0.1:{port}"))
        .env("FLASH_DEV", "1")
        .env("FLASH_STORAGE", storage)
        .env_remove("FLASH_SECRET")
        .env_remove("FLASH_SECRET_FALLBACKS")
        .env_remove("FLASH_STORAGE_PREVIOUS")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _running = Running(child.spawn().expect("the example starts"));

    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let base = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.get(&base).send().await {
            Ok(page) => {
                assert!(page.status().is_success(), "{app}: {}", page.status());
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{app} never served on {base}: {error}"),
        }
    }

    let posted = client.post(&base).send().await.expect("POST /");
    assert_eq!(
        posted.status(),
        303,
        "{app} on {storage}: the POST redirects"
    );
    assert_eq!(posted.headers()["location"], "/");
    let page = client.get(&base).send().await.expect("GET /");
    let body = page.text().await.expect("the page");
    assert_eq!(
        body.matches(SHOWN).count(),
        1,
        "{app} on {storage}: shown once after the redirect: {body}"
    );
    let reload = client.get(&base).send().await.expect("GET / again");
    let body = reload.text().await.expect("the page");
    assert!(
        !body.contains("Article saved."),
        "{app} on {storage}: gone on reload: {body}"
    );
}

#[tokio::test]
async fn the_axum_app_shows_a_message_once() {
    serve_and_flow("axum", "cookie").await;
    serve_and_flow("axum", "memory").await;
}

#[tokio::test]
async fn the_actix_app_shows_a_message_once() {
    serve_and_flow("actix", "cookie").await;
    serve_and_flow("actix", "memory").await;
}

#[tokio::test]
async fn the_poem_app_shows_a_message_once() {
    serve_and_flow("poem", "cookie").await;
    serve_and_flow("poem", "memory").await;
}
