//! What the kit does not cover: the extractor without the middleware, and one handle per
//! request.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use actix_web::test as actix_test;
use actix_web::{App, HttpResponse, web};
use flash_actix::{Flash, FlashMiddleware};
use flash_core::{
    Key,
    storage::{MemoryStore, ServerStorage},
};

async fn twice(first: Flash, second: Flash) -> HttpResponse {
    first.success("added through the first");
    let seen = second.peek().await.unwrap();
    HttpResponse::Ok().body(seen.len().to_string())
}

#[test]
fn missing_middleware_is_a_500_naming_the_fix() {
    actix_web::rt::System::new().block_on(missing_middleware());
}

async fn missing_middleware() {
    let app = actix_test::init_service(App::new().route("/", web::get().to(twice))).await;
    let response =
        actix_test::call_service(&app, actix_test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(response.status(), 500);
    let body = actix_test::read_body(response).await;
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .contains("flash_actix::FlashMiddleware"),
        "{body:?}"
    );
}

#[test]
fn every_extraction_shares_one_handle() {
    actix_web::rt::System::new().block_on(one_handle());
}

async fn one_handle() {
    let storage = Arc::new(ServerStorage::new(MemoryStore::new(), Key::generate()));
    let app = actix_test::init_service(
        App::new()
            .wrap(FlashMiddleware::new(storage))
            .route("/", web::get().to(twice)),
    )
    .await;
    let response =
        actix_test::call_service(&app, actix_test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("set-cookie"));
    assert_eq!(actix_test::read_body(response).await, "1");
}
