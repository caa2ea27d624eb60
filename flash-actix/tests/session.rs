//! Messages kept in actix-session's session (feature `actix-session`), through the public API:
//! actix-session's `CookieSessionStore` outside `FlashMiddleware` over flash's session storage.
#![cfg(feature = "actix-session")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::body::MessageBody;
use actix_web::cookie::Key;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::test as actix_test;
use actix_web::{App, HttpResponse, web};
use flash_actix::{ActixSessionStorage, Adapter, Flash, FlashMiddleware};
use flash_core::adapter::HINT_COOKIE;
use flash_core::{ErrorKind, Level, MessagesConfig, storage::Storage};
use flash_session::{MemorySession, SessionStorage};
use flash_testkit::next_cookie_header;

/// The text Django keeps under `_messages` for one success message.
const DJANGO_SAVED: &str = r#"[["__json_message", 0, 25, "Article saved."]]"#;

async fn save(flash: Flash) -> HttpResponse {
    flash.success("Article saved.");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

/// As `save`, for any page: unaddressed.
async fn save_for_any_page(flash: Flash) -> HttpResponse {
    flash.leave_unaddressed();
    save(flash).await
}

async fn show(flash: Flash) -> HttpResponse {
    let body: String = match flash.read().await {
        Ok(messages) => messages
            .iter()
            .map(|m| format!("{} {}\n", m.level.value(), m.text))
            .collect(),
        Err(err) => format!("unavailable: {err}\n"),
    };
    HttpResponse::Ok().body(body)
}

/// Asks for the messages and does nothing with them.
async fn idle(_flash: Flash) -> &'static str {
    "idle"
}

/// Shows the messages, then adds the one it showed again.
async fn again(flash: Flash) -> HttpResponse {
    let shown = flash.read().await.unwrap();
    flash.success("Article saved.");
    HttpResponse::Ok().body(shown.len().to_string())
}

/// Never touches flash.
async fn plain() -> &'static str {
    "plain"
}

/// The handler's own session use, beside flash's.
async fn login(session: Session, flash: Flash) -> HttpResponse {
    session.insert("user", "ada").unwrap();
    flash.info("Welcome, Ada.");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

/// What the session holds, as actix-session keeps it: `user`, then `_messages` (raw JSON texts).
async fn inspect(session: Session) -> HttpResponse {
    let entries = session.entries();
    let raw = |key: &str| entries.get(key).cloned().unwrap_or_default();
    HttpResponse::Ok().body(format!("{}\n{}", raw("user"), raw("_messages")))
}

/// Puts a value Django wrote into the session (one Django app sharing the session).
async fn from_django(session: Session) -> &'static str {
    session
        .insert(
            "_messages",
            r#"[["__json_message", 0, 40, "From Django.", "urgent"]]"#,
        )
        .unwrap();
    "stored"
}

fn session_middleware(key: &Key) -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
        .cookie_secure(false)
        .build()
}

/// The errors the hook was given.
type Seen = Arc<Mutex<Vec<(ErrorKind, String)>>>;

fn flash_middleware(storage: Arc<dyn Storage>, seen: &Seen) -> FlashMiddleware {
    let seen = seen.clone();
    let config = MessagesConfig::default().with_level(Level::DEBUG);
    FlashMiddleware::from(
        Adapter::new(storage)
            .with_config(config)
            .on_error(move |err| seen.lock().unwrap().push((err.kind(), err.to_string()))),
    )
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(show))
        .route("/save", web::post().to(save))
        .route("/idle", web::get().to(idle))
        .route("/again", web::get().to(again))
        .route("/save-for-any-page", web::post().to(save_for_any_page))
        .route("/plain", web::get().to(plain))
        .route("/login", web::post().to(login))
        .route("/inspect", web::get().to(inspect))
        .route("/django", web::post().to(from_django));
}

/// A browser: its cookies, as the responses set them.
#[derive(Default)]
struct Browser {
    cookies: Option<String>,
}

impl Browser {
    /// `request` with the browser's cookies.
    fn with(&self, request: actix_test::TestRequest) -> actix_test::TestRequest {
        match &self.cookies {
            Some(cookies) => request.insert_header((header::COOKIE, cookies.clone())),
            None => request,
        }
    }

    /// Keeps the cookies `response` sets; its status, `Set-Cookie` lines and body.
    async fn take<B: MessageBody>(
        &mut self,
        response: ServiceResponse<B>,
    ) -> (u16, Vec<String>, String) {
        let status = response.status().as_u16();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let next = next_cookie_header(
            self.cookies.as_deref(),
            set_cookies.iter().map(String::as_bytes),
        );
        self.cookies = (!next.is_empty()).then_some(next);
        let body = actix_test::read_body(response).await;
        // The hint cookie of addressed messages is flash-core's: these tests count the
        // storage's cookies.
        let set_cookies = set_cookies
            .into_iter()
            .filter(|line| !line.starts_with(HINT_COOKIE))
            .collect();
        (
            status,
            set_cookies,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }
}

/// Sends `request` from `browser` to `app`: status, `Set-Cookie` lines, body.
macro_rules! send {
    ($browser:expr, $app:expr, $request:expr) => {{
        let request = $browser.with($request).to_request();
        let response = actix_test::call_service($app, request).await;
        $browser.take(response).await
    }};
}

fn get(uri: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::get().uri(uri)
}

fn post(uri: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::post().uri(uri)
}

fn run(test: impl std::future::Future<Output = ()>) {
    actix_web::rt::System::new().block_on(test);
}

#[test]
fn post_redirect_get_shows_once() {
    run(async {
        let key = Key::generate();
        let seen = Seen::default();
        let storage = Arc::new(ActixSessionStorage::new());
        let app = actix_test::init_service(
            App::new()
                .configure(routes)
                .wrap(flash_middleware(storage, &seen))
                .wrap(session_middleware(&key)),
        )
        .await;
        let mut browser = Browser::default();

        // POST: the message goes into the session; the session cookie is the only cookie.
        let response = actix_test::call_service(&app, post("/save").to_request()).await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers().get(header::VARY).unwrap(), "Cookie");
        let all: Vec<_> = response.headers().get_all(header::SET_COOKIE).collect();
        let set: Vec<_> = all
            .iter()
            .filter(|line| !line.as_bytes().starts_with(HINT_COOKIE.as_bytes()))
            .collect();
        assert_eq!(set.len(), 1, "{set:?}");
        assert!(set[0].to_str().unwrap().starts_with("id="), "{set:?}");
        browser.cookies = Some(next_cookie_header(None, all.iter().map(|v| v.as_bytes())));

        // GET after the redirect: shown once, and removed from the session.
        let (status, set, body) = send!(browser, &app, get("/"));
        assert_eq!((status, body.as_str()), (200, "25 Article saved.\n"));
        assert_eq!(set.len(), 1, "the session is rewritten without the message");

        // Reload: nothing left.
        let (_, _, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "");
        assert!(
            seen.lock().unwrap().is_empty(),
            "{:?}",
            seen.lock().unwrap()
        );
    });
}

#[test]
fn messages_are_kept_in_djangos_session_form_beside_the_apps_values() {
    run(async {
        let key = Key::generate();
        let seen = Seen::default();
        let app = actix_test::init_service(
            App::new()
                .configure(routes)
                .wrap(flash_middleware(
                    Arc::new(ActixSessionStorage::new()),
                    &seen,
                ))
                .wrap(session_middleware(&key)),
        )
        .await;
        let mut browser = Browser::default();

        // The handler's own session value and flash's, in one request.
        let (status, _, _) = send!(browser, &app, post("/login"));
        assert_eq!(status, 303);
        send!(browser, &app, post("/save"));
        let (_, set, body) = send!(browser, &app, get("/inspect"));
        assert!(set.is_empty(), "inspecting changes nothing: {set:?}");
        let (user, messages) = body.split_once('\n').unwrap();
        assert_eq!(user, r#""ada""#);
        // A JSON text holding Django's JSON text, as Django's session serializer writes it.
        let stored: String = serde_json::from_str(messages).unwrap();
        assert_eq!(
            stored,
            r#"[["__json_message", 0, 20, "Welcome, Ada."], ["__json_message", 0, 25, "Article saved."]]"#
        );

        // Shown once; the app's value stays.
        let (_, _, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "20 Welcome, Ada.\n25 Article saved.\n");
        let (_, _, body) = send!(browser, &app, get("/inspect"));
        assert_eq!(body, "\"ada\"\n");

        // What Django wrote is read as Django reads it.
        send!(browser, &app, post("/django"));
        let (_, _, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "40 From Django.\n");
        let (_, _, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "");

        // And a message saved here reads back as Django's text.
        send!(browser, &app, post("/save"));
        let (_, _, body) = send!(browser, &app, get("/inspect"));
        let stored: String = serde_json::from_str(body.split_once('\n').unwrap().1).unwrap();
        assert_eq!(stored, DJANGO_SAVED);
        assert!(seen.lock().unwrap().is_empty());
    });
}

#[test]
fn idle_requests_do_not_rewrite_the_session() {
    run(async {
        let key = Key::generate();
        let seen = Seen::default();
        let app = actix_test::init_service(
            App::new()
                .configure(routes)
                .wrap(flash_middleware(
                    Arc::new(ActixSessionStorage::new()),
                    &seen,
                ))
                .wrap(session_middleware(&key)),
        )
        .await;
        let mut browser = Browser::default();

        // A fresh browser that only looks gets no session at all.
        for uri in ["/plain", "/idle", "/"] {
            let (status, set, _) = send!(browser, &app, get(uri));
            assert_eq!(status, 200);
            assert!(set.is_empty(), "{uri}: {set:?}");
        }

        // With a message pending: neither a route without flash nor one that only asks for
        // the handle rewrites the session, and the message waits.
        send!(browser, &app, post("/login"));
        let before = browser.cookies.clone();
        for uri in ["/plain", "/idle", "/inspect"] {
            let (status, set, _) = send!(browser, &app, get(uri));
            assert_eq!(status, 200);
            assert!(set.is_empty(), "{uri}: {set:?}");
        }
        assert_eq!(browser.cookies, before);

        // Reading consumes it (the session is rewritten), and a read that finds nothing
        // rewrites nothing.
        let (_, set, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "20 Welcome, Ada.\n");
        assert_eq!(set.len(), 1);
        let (_, set, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "");
        assert!(set.is_empty(), "{set:?}");

        // A save that leaves the value as it was (read, then the same message added again)
        // does not mark the session changed either. (Unaddressed, so `/again` shows it.)
        send!(browser, &app, post("/save-for-any-page"));
        let (_, set, body) = send!(browser, &app, get("/again"));
        assert_eq!(body, "1");
        assert!(set.is_empty(), "{set:?}");
        let (_, _, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "25 Article saved.\n");
        assert!(seen.lock().unwrap().is_empty());
    });
}

/// The session middleware registered first (inside flash's), or not at all: a clear
/// configuration error, handed to the hook, and the page still served.
#[test]
fn a_session_middleware_inside_flash_or_none_is_a_clear_error() {
    run(async {
        let key = Key::generate();
        for inside in [true, false] {
            let seen = Seen::default();
            let flash = flash_middleware(Arc::new(ActixSessionStorage::new()), &seen);
            let app = actix_test::init_service(
                App::new()
                    .configure(routes)
                    .wrap(actix_web::middleware::Condition::new(
                        inside,
                        session_middleware(&key),
                    ))
                    .wrap(flash),
            )
            .await;
            let mut browser = Browser::default();

            let (status, _, _) = send!(browser, &app, post("/save"));
            assert_eq!(status, 303, "inside: {inside}");
            let errors = std::mem::take(&mut *seen.lock().unwrap());
            assert_eq!(errors.len(), 1, "inside: {inside}: {errors:?}");
            let (kind, said) = &errors[0];
            assert_eq!(*kind, ErrorKind::Config);
            assert!(said.contains("no actix-session session"), "{said}");
            assert!(
                said.contains(
                    "actix_session::SessionMiddleware outside flash_actix::FlashMiddleware"
                ),
                "{said}"
            );

            // The page is served; the handler's read says why.
            let (status, _, body) = send!(browser, &app, get("/"));
            assert_eq!(status, 200);
            assert!(body.starts_with("unavailable: "), "{body}");
            assert!(body.contains("SessionMiddleware"), "{body}");
        }
    });
}

/// Any `SessionStorage` finds the bridged session (so does the `flash` facade's `session`),
/// and so does cookie-first overflow into the session (Django's default storage).
#[test]
fn any_session_storage_and_the_cookie_first_fallback_use_the_bridge() {
    run(async {
        let key = Key::generate();
        let seen = Seen::default();
        let app = actix_test::init_service(
            App::new()
                .configure(routes)
                .wrap(flash_middleware(
                    Arc::new(SessionStorage::<MemorySession>::new().with_session_key("_flash")),
                    &seen,
                ))
                .wrap(session_middleware(&key)),
        )
        .await;
        let mut browser = Browser::default();
        send!(browser, &app, post("/save"));
        let (_, _, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "25 Article saved.\n");
        assert!(seen.lock().unwrap().is_empty());

        // Cookie first: one message fits the cookie; the rest overflows into the session.
        let cookie =
            flash_cookie::CookieStorage::new(flash_core::Key::generate()).with_max_size(120);
        let storage = flash_cookie::Fallback::new(cookie, ActixSessionStorage::new());
        let app = actix_test::init_service(
            App::new()
                .configure(routes)
                .route(
                    "/many",
                    web::post().to(|flash: Flash| async move {
                        for i in 0..6 {
                            flash.info(format!("message number {i}"));
                        }
                        HttpResponse::SeeOther()
                            .insert_header((header::LOCATION, "/"))
                            .finish()
                    }),
                )
                .wrap(flash_middleware(Arc::new(storage), &seen))
                .wrap(session_middleware(&key)),
        )
        .await;
        let mut browser = Browser::default();
        let (_, set, _) = send!(browser, &app, post("/many"));
        assert_eq!(set.len(), 2, "a flash cookie and a session cookie: {set:?}");
        let (_, _, body) = send!(browser, &app, get("/inspect"));
        assert!(
            body.contains("message number 5"),
            "the overflow is in the session: {body}"
        );
        let (_, _, body) = send!(browser, &app, get("/"));
        let expected: String = (0..6).map(|i| format!("20 message number {i}\n")).collect();
        assert_eq!(body, expected);
        let (_, _, body) = send!(browser, &app, get("/"));
        assert_eq!(body, "");
        assert!(seen.lock().unwrap().is_empty());
    });
}
