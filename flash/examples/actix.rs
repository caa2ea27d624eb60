//! The README's app on actix: a POST adds "Article saved." and redirects; the page shows it once.
use actix_web::{App, HttpResponse, HttpServer, http::header, web};
use flash::actix::{Flash, FlashMiddleware};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // FLASH_STORAGE names the storage (default: a signed cookie), FLASH_SECRET signs it.
    let storage = flash::open_from_env().await?;
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    HttpServer::new(move || {
        App::new()
            .wrap(FlashMiddleware::new(storage.clone()))
            .route("/", web::get().to(page))
            .route("/", web::post().to(save))
    })
    .bind(addr)?
    .run()
    .await?;
    Ok(())
}

async fn save(flash: Flash) -> HttpResponse {
    flash.success("Article saved.");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

async fn page(flash: Flash) -> HttpResponse {
    // Shown once, then gone. A storage that is down shows nothing and loses nothing.
    let messages = flash.read_views().await.unwrap_or_default();
    let mut templates = minijinja::Environment::new();
    templates.set_formatter(flash::minijinja_formatter);
    let page = templates
        .template_from_named_str("page.html", PAGE)
        .and_then(|page| page.render(minijinja::context! { messages }));
    let page = page.unwrap_or_else(|error| error.to_string());
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

const PAGE: &str = r#"
{% for message in messages %}<div class="{{ message.tags }}">{{ message }}</div>{% endfor %}
<form method="post"><button>Save</button></form>
"#;
