//! Repro 7 of issue 12: with `FLASH_SECRET` unset the demo no longer signs with a published
//! constant. It makes a random secret at the first start, keeps it beside the database file
//! (mode 0600), reuses it after a restart, says where it is and never what it is; a cookie
//! forged with the old constant (carrying the trusted-HTML flag) is not accepted.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Demo, Framework, browser, start_on};
use flash::{Level, Message, Messages, MessagesConfig, StorageConfig, storage::Incoming};

/// The secret the demo signed with before, published in its source.
const PUBLISHED: &str = "flash-demo development secret: public, never use it in production";

const PAYLOAD: &str = "<img src=x onerror=alert(1)>";

/// A `messages` cookie in the demo's format, signed with `secret`, holding one trusted-HTML
/// message: what an attacker who knows the secret can hand a victim.
async fn forged_cookie(secret: &str) -> String {
    let storage = StorageConfig::new("cookie")
        .secret(secret)
        .open()
        .await
        .unwrap();
    let messages = Messages::new(
        storage,
        Incoming::default(),
        Arc::new(MessagesConfig::default()),
    );
    assert!(messages.add(Message::new(Level::ERROR, PAYLOAD).trusted_html()));
    let mut response = http::HeaderMap::new();
    messages.save(&mut response).await.unwrap();
    let line = response[http::header::SET_COOKIE].to_str().unwrap();
    line.split(';').next().unwrap().to_owned()
}

async fn page_with_cookie(base: &str, cookie: &str) -> String {
    reqwest::Client::new()
        .get(format!("{base}/"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_secret_is_random_private_kept_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flash-demo.secret");
    let http = browser();

    // Run 1: the secret is made, stored with mode 0600, and a message waits in the cookie.
    let mut demo = Demo::start(dir.path(), &[], &["--addr", "127.0.0.1:0"]);
    let said = demo.wait_for("FLASH_SECRET is not set");
    assert!(said.contains("made now"), "{said}");
    assert!(
        said.contains("flash-demo.secret"),
        "the log says where: {said}"
    );
    let base = demo.base_url();
    let secret = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(
        secret.len() >= 64,
        "32 random bytes, hex: {} chars",
        secret.len()
    );
    assert_ne!(secret, PUBLISHED);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
        // Issue 20, repro 7: the SQLite file of the default storage is private too.
        let db = dir.path().join("flash-demo.db");
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "flash-demo.db: mode {:o}",
            mode & 0o777
        );
    }
    let response = http
        .post(format!("{base}/messages"))
        .form(&[("level", "info"), ("text", "signed before the restart")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    demo.interrupt();

    // Run 2, on actix-web (the start-up is the same for both): the same secret is read back,
    // so the cookie of run 1 still verifies.
    let mut demo = start_on(
        Framework::Actix,
        dir.path(),
        &[],
        &["--addr", "127.0.0.1:0"],
    );
    let said = demo.wait_for("FLASH_SECRET is not set");
    assert!(said.contains("read from"), "{said}");
    let base = demo.base_url();
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<li class="info">signed before the restart</li>"#),
        "the cookie of run 1 is valid in run 2: {page}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        secret,
        "the file is not rewritten"
    );
    demo.interrupt();

    let logged = demo_logs_hide(&secret, dir.path()).await;
    assert!(!logged.contains(&secret));
}

/// A third start's whole log, which must not hold the secret.
async fn demo_logs_hide(secret: &str, dir: &std::path::Path) -> String {
    let mut demo = Demo::start(dir, &[], &["--addr", "127.0.0.1:0"]);
    demo.base_url();
    demo.interrupt()
        .into_iter()
        .inspect(|line| assert!(!line.contains(secret), "the secret is logged: {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_cookie_forged_with_the_published_secret_is_refused() {
    let forged = forged_cookie(PUBLISHED).await;

    // The forgery is real: a demo that signs with the published constant renders it raw.
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(
        dir.path(),
        &[("FLASH_SECRET", PUBLISHED)],
        &["--addr", "127.0.0.1:0"],
    );
    let base = demo.base_url();
    let page = page_with_cookie(&base, &forged).await;
    assert!(
        page.contains(PAYLOAD),
        "the control forgery renders: {page}"
    );
    demo.interrupt();

    // Without FLASH_SECRET the demo's own random secret refuses it: nothing rendered, on
    // either framework.
    for framework in Framework::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut demo = start_on(framework, dir.path(), &[], &["--addr", "127.0.0.1:0"]);
        let base = demo.base_url();
        let page = page_with_cookie(&base, &forged).await;
        assert!(
            !page.contains(PAYLOAD),
            "{framework}: the forged HTML rendered: {page}"
        );
        assert!(!page.contains("alert(1)"), "{page}");
        assert!(
            !page.contains(r#"id="messages""#),
            "{framework}: no message at all: {page}"
        );
        demo.interrupt();
    }
}

/// The file is made once, whole, even by starts racing each other; a short one is refused.
#[test]
fn load_or_create_makes_one_secret_and_refuses_a_short_file() {
    use flash_demo::secret::{Origin, load_or_create};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash-demo.secret");
    let results: Vec<(String, Origin)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| load_or_create(&path).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = results
        .iter()
        .filter(|(_, o)| *o == Origin::Created)
        .count();
    assert_eq!(created, 1, "exactly one start makes it");
    assert!(
        results.iter().all(|(s, _)| *s == results[0].0),
        "one secret"
    );
    assert_eq!(
        load_or_create(&path).unwrap(),
        (results[0].0.clone(), Origin::Found)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");

    std::fs::write(&path, "short\n").unwrap();
    let err = load_or_create(&path).unwrap_err();
    assert!(err.to_string().contains("delete it"), "{err}");
}

/// Issue 20, repro 3: a secret file anyone else can read, owned by another user, or a symbolic
/// link (to a file that is itself private) is refused, with the fix in the message; the demo
/// does not start on it.
#[cfg(unix)]
#[test]
fn a_secret_file_others_could_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;

    use flash_demo::secret::load_or_create;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash-demo.secret");
    let (secret, _) = load_or_create(&path).unwrap();

    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{mode:o}");
        let said = err.to_string();
        assert!(said.contains(&format!("mode {mode:o}")), "{said}");
        assert!(said.contains("chmod 600"), "the fix: {said}");
        assert!(!said.contains(&secret), "{said}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(load_or_create(&path).unwrap().0, secret);

    // A link to a private file: whoever controls the link picks the secret.
    let link = dir.path().join("link.secret");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = load_or_create(&link).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(
        err.to_string().contains("FLASH_SECRET_FILE"),
        "the fix: {err}"
    );

    // Owned by another user (as root: hand the file to `nobody`; otherwise a root-owned file).
    let foreign = dir.path().join("foreign.secret");
    std::fs::copy(&path, &foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o600)).unwrap();
    let foreign = match std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)) {
        Ok(()) => foreign,
        Err(_) => std::path::PathBuf::from("/etc/passwd"),
    };
    let err = load_or_create(&foreign).unwrap_err();
    assert!(err.to_string().contains("owned by user"), "{err}");
}

/// The binary refuses to start on a secret file others can read (both frameworks share the
/// start), naming the fix.
#[cfg(unix)]
#[test]
fn the_demo_does_not_start_on_a_readable_secret_file() {
    use std::os::unix::fs::PermissionsExt as _;
    for framework in [Framework::Axum, Framework::Actix] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash-demo.secret");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut demo = start_on(framework, dir.path(), &[], &["--addr", "127.0.0.1:0"]);
        let said = demo.wait_for("chmod 600");
        assert!(said.contains("Refused"), "{said}");
        let status = demo.child.wait().unwrap();
        assert!(!status.success(), "{framework:?} started on a 0644 secret");
    }
}
