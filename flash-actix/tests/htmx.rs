//! htmx delivery through actix-web, and the assertions for application tests, on the keyed
//! memory store and the signed cookie.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::test as actix_test;
use actix_web::{App, HttpResponse, web};
use flash_actix::{Adapter, Flash, FlashMiddleware};
use flash_core::{
    Htmx, Key, Keys, Level, MessageView,
    storage::{MemoryStore, ServerStorage, Storage},
};
use flash_testkit::assert_messages;

/// What `response` left for the next request (`flash_testkit::messages_left`).
async fn left<B>(
    middleware: &Adapter,
    response: &ServiceResponse<B>,
    request_cookies: Option<&str>,
) -> flash_core::Result<Vec<MessageView>> {
    let set_cookies = response.headers().get_all(header::SET_COOKIE);
    flash_testkit::messages_left(middleware, request_cookies, set_cookies).await
}

fn storages() -> Vec<(&'static str, Arc<dyn Storage>)> {
    vec![
        (
            "memory",
            Arc::new(ServerStorage::new(
                MemoryStore::new(),
                Keys::new(Key::generate()),
            )),
        ),
        (
            "cookie",
            Arc::new(flash_cookie::CookieStorage::new(Keys::new(Key::generate()))),
        ),
    ]
}

async fn save(flash: Flash) -> HttpResponse {
    // Left for any read: this test is about htmx delivery (addressed messages, which only
    // their page shows, are the conformance suite's).
    flash.leave_unaddressed();
    flash.success("Saved.");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

async fn in_place(flash: Flash) -> HttpResponse {
    flash.info("In place.");
    HttpResponse::Ok()
        .insert_header(("hx-trigger", "closeModal"))
        .body("<tr></tr>")
}

async fn poll(flash: Flash) -> HttpResponse {
    flash.peek().await.unwrap();
    HttpResponse::Ok().body("poll")
}

async fn form(flash: Flash) -> HttpResponse {
    flash.deliver_pending_to_htmx();
    HttpResponse::Ok().body("form")
}

async fn api(flash: Flash) -> HttpResponse {
    HttpResponse::Ok().json(flash.read_json().await.unwrap())
}

fn trigger<B>(response: &ServiceResponse<B>) -> Option<serde_json::Value> {
    let value = response.headers().get("hx-trigger")?;
    Some(serde_json::from_slice(value.as_bytes()).unwrap())
}

fn next_cookie<B>(before: Option<&str>, response: &ServiceResponse<B>) -> String {
    flash_testkit::next_cookie_header(
        before,
        response
            .headers()
            .get_all(header::SET_COOKIE)
            .map(|v| v.as_bytes()),
    )
}

#[test]
fn htmx_delivery_through_actix() {
    actix_web::rt::System::new().block_on(htmx_delivery());
}

async fn htmx_delivery() {
    for (name, storage) in storages() {
        let middleware = Adapter::new(storage).htmx(Htmx::new());
        let app = actix_test::init_service(
            App::new()
                .wrap(FlashMiddleware::from(middleware.clone()))
                .route("/save", web::post().to(save))
                .route("/in-place", web::post().to(in_place))
                .route("/poll", web::get().to(poll))
                .route("/form", web::post().to(form))
                .route("/api/messages", web::get().to(api)),
        )
        .await;
        let call =
            |method: &str, uri: &str, htmx: &[(&'static str, &'static str)], cookie: &str| {
                let mut request = match method {
                    "POST" => actix_test::TestRequest::post(),
                    _ => actix_test::TestRequest::get(),
                }
                .uri(uri);
                for pair in htmx {
                    request = request.insert_header(*pair);
                }
                if !cookie.is_empty() {
                    request = request.insert_header((header::COOKIE, cookie.to_owned()));
                }
                request.to_request()
            };
        let htmx = &[("hx-request", "true")][..];

        // Added in an htmx request: in HX-Trigger, merged with the handler's list, not stored.
        let response = actix_test::call_service(&app, call("POST", "/in-place", htmx, "")).await;
        let detail = trigger(&response).unwrap();
        assert_eq!(detail["closeModal"], serde_json::Value::Null, "{name}");
        assert_eq!(detail["messages"][0]["message"], "In place.", "{name}");
        assert_eq!(detail["messages"][0]["tags"], "info", "{name}");
        assert_messages(&left(&middleware, &response, None).await.unwrap(), &[]);

        // Boosted: a full page, left alone.
        let boosted = &[("hx-request", "true"), ("hx-boosted", "true")][..];
        let response = actix_test::call_service(&app, call("POST", "/in-place", boosted, "")).await;
        assert_eq!(
            response.headers().get("hx-trigger").unwrap(),
            "closeModal",
            "{name}"
        );
        assert_messages(
            &left(&middleware, &response, None).await.unwrap(),
            &[(Level::INFO, "In place.")],
        );

        // A full-page POST's message is not taken by a polling htmx request ...
        let response = actix_test::call_service(&app, call("POST", "/save", &[], "")).await;
        assert!(trigger(&response).is_none(), "{name}");
        let cookie = next_cookie(None, &response);
        let response = actix_test::call_service(&app, call("GET", "/poll", htmx, &cookie)).await;
        assert!(trigger(&response).is_none(), "{name}");
        let cookie = next_cookie(Some(&cookie), &response);
        assert_messages(
            &left(&middleware, &response, Some(&cookie)).await.unwrap(),
            &[(Level::SUCCESS, "Saved.")],
        );
        // ... but rides along where the route opts in, consumed.
        let response = actix_test::call_service(&app, call("POST", "/form", htmx, &cookie)).await;
        assert_eq!(
            trigger(&response).unwrap()["messages"][0]["message"],
            "Saved.",
            "{name}"
        );
        let cookie = next_cookie(Some(&cookie), &response);
        assert_messages(
            &left(&middleware, &response, Some(&cookie)).await.unwrap(),
            &[],
        );

        // The JSON helper.
        let response = actix_test::call_service(&app, call("POST", "/save", &[], "")).await;
        let cookie = next_cookie(None, &response);
        let response =
            actix_test::call_service(&app, call("GET", "/api/messages", &[], &cookie)).await;
        let json: serde_json::Value = actix_test::read_body_json(response).await;
        assert_eq!(
            json,
            serde_json::json!({"messages": [{"level": 25, "level_tag": "success",
                "tags": "success", "extra_tags": "", "message": "Saved.", "safe": false}]}),
            "{name}"
        );
    }
}
