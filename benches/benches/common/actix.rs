//! The actix-web app of the actix group, in four versions with the same routes (`POST /add`,
//! `POST /add3`, `GET /read`, `GET /idle`) and the same responses: flash-actix, the peer
//! (actix-web-flash-messages 0.5 with its signed cookie store), no flash layer at all (`bare`),
//! and the floor (flash's signed cookie and headers written by hand with the bare crates).

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_flash_messages::{FlashMessage, IncomingFlashMessages};
use flash_actix::Flash;
use flash_benches::fixtures;

use super::{ADDED, FLOOR_ATTRIBUTES, FLOOR_NAME, FLOOR_REMOVAL, floor, peer_messages, render};

async fn add(flash: Flash) -> HttpResponse {
    flash.success(ADDED);
    HttpResponse::Ok().body("saved")
}

async fn add_three(flash: Flash) -> HttpResponse {
    for message in fixtures::messages(3) {
        flash.add(message);
    }
    HttpResponse::Ok().body("saved")
}

async fn read(flash: Flash) -> HttpResponse {
    let shown = flash.read().await.unwrap_or_default();
    HttpResponse::Ok().body(render(shown.iter().map(|m| m.text.as_str())))
}

async fn idle() -> HttpResponse {
    HttpResponse::Ok().body("nothing to see")
}

async fn bare_add() -> HttpResponse {
    HttpResponse::Ok().body("saved")
}

async fn bare_read() -> HttpResponse {
    let texts = fixtures::pairs(3);
    HttpResponse::Ok().body(render(texts.iter().map(|(_, text)| text.as_str())))
}

async fn peer_add() -> HttpResponse {
    FlashMessage::success(ADDED).send();
    HttpResponse::Ok().body("saved")
}

async fn peer_add_three() -> HttpResponse {
    for message in peer_messages(3) {
        message.send();
    }
    HttpResponse::Ok().body("saved")
}

async fn peer_read(messages: IncomingFlashMessages) -> HttpResponse {
    HttpResponse::Ok().body(render(messages.iter().map(FlashMessage::content)))
}

/// The floor of an add on actix-web: flash's cookie value made with the bare crates, and the
/// same `Set-Cookie`, `Vary` and `Cache-Control` headers flash-actix writes.
async fn floor_add() -> HttpResponse {
    let value = floor().encode(&[(25, ADDED.to_owned())]);
    let mut line =
        String::with_capacity(FLOOR_NAME.len() + 1 + value.len() + FLOOR_ATTRIBUTES.len());
    line.push_str(FLOOR_NAME);
    line.push('=');
    line.push_str(&value);
    line.push_str(FLOOR_ATTRIBUTES);
    HttpResponse::Ok()
        .insert_header((SET_COOKIE, line))
        .insert_header((VARY, "Cookie"))
        .insert_header((CACHE_CONTROL, "private, no-store"))
        .body("saved")
}

/// The floor of a read on actix-web: find the cookie, verify and decode it with the bare
/// crates, render the texts, delete the cookie.
async fn floor_read(request: HttpRequest) -> HttpResponse {
    let messages = request
        .headers()
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(FLOOR_NAME)?.strip_prefix('='))
        .and_then(|value| floor().decode(value))
        .unwrap_or_default();
    HttpResponse::Ok()
        .insert_header((SET_COOKIE, FLOOR_REMOVAL))
        .insert_header((VARY, "Cookie"))
        .insert_header((CACHE_CONTROL, "private, no-store"))
        .body(render(messages.iter().map(|(_, text)| text.as_str())))
}

/// flash-actix's routes (wrap the app in a `FlashMiddleware`).
pub(crate) fn flash_routes(config: &mut web::ServiceConfig) {
    config
        .route("/add", web::post().to(add))
        .route("/add3", web::post().to(add_three))
        .route("/read", web::get().to(read))
        .route("/idle", web::get().to(idle));
}

/// The peer's routes (wrap the app in its `FlashMessagesFramework`).
pub(crate) fn peer_routes(config: &mut web::ServiceConfig) {
    config
        .route("/add", web::post().to(peer_add))
        .route("/add3", web::post().to(peer_add_three))
        .route("/read", web::get().to(peer_read))
        .route("/idle", web::get().to(idle));
}

/// The same handlers with no flash layer (the read renders the same 3 texts).
pub(crate) fn bare_routes(config: &mut web::ServiceConfig) {
    config
        .route("/add", web::post().to(bare_add))
        .route("/read", web::get().to(bare_read))
        .route("/idle", web::get().to(idle));
}

/// The floor: flash's cookie and headers by hand, no flash code.
pub(crate) fn floor_routes(config: &mut web::ServiceConfig) {
    config
        .route("/add", web::post().to(floor_add))
        .route("/read", web::get().to(floor_read))
        .route("/idle", web::get().to(idle));
}

/// The peer's middleware over the benches' peer cookie store (see [`super::peer_store`]).
pub(crate) fn peer_framework() -> actix_web_flash_messages::FlashMessagesFramework {
    actix_web_flash_messages::FlashMessagesFramework::builder(super::peer_store()).build()
}

/// A test request with an optional `Cookie` header, as the in-process rows send it.
pub(crate) fn request(
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> actix_web::test::TestRequest {
    let method = if method == "POST" {
        Method::POST
    } else {
        Method::GET
    };
    let request = actix_web::test::TestRequest::default()
        .method(method)
        .uri(path);
    match cookie {
        Some(cookie) => request.insert_header((COOKIE, cookie)),
        None => request,
    }
}

/// What a response carried: its status, its headers (sorted `name: value` lines) and its body.
pub(crate) type Reply = (u16, Vec<String>, actix_web::web::Bytes);

/// Calls an in-process actix app and collects the whole response.
pub(crate) async fn call<S, R, B>(app: &S, request: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = app.call(request).await.expect("a response");
    let status = response.status().as_u16();
    let mut headers: Vec<String> = response
        .headers()
        .iter()
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    headers.sort();
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap_or_default();
    (status, headers, body)
}

/// Calls an in-process actix app as a timed row does: the response's body collected, nothing
/// else looked at.
pub(crate) async fn call_quiet<S, R, B>(app: &S, request: R)
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    if let Ok(response) = app.call(request).await {
        std::hint::black_box(actix_web::body::to_bytes(response.into_body()).await.ok());
    }
}

/// The `name=value` pair of the reply's `Set-Cookie` line, as a browser sends it back.
pub(crate) fn set_cookie_pair(reply: &Reply) -> Option<String> {
    let line = reply
        .1
        .iter()
        .find_map(|h| h.strip_prefix("set-cookie: "))?;
    Some(super::cookie_pair(line))
}

/// The number of `<li>` items in a page.
pub(crate) fn items(body: &[u8]) -> usize {
    body.windows(4).filter(|w| w == b"<li>").count()
}
