//! The README's app on poem: a POST adds "Article saved." and redirects; the page shows it once.
use flash::poem::{Flash, FlashMiddleware};
use poem::{
    EndpointExt, Route, get, handler,
    listener::TcpListener,
    web::{Html, Redirect},
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // FLASH_STORAGE names the storage (default: a signed cookie), FLASH_SECRET signs it.
    let storage = flash::open_from_env().await?;
    let app = Route::new()
        .at("/", get(page).post(save))
        .with(FlashMiddleware::new(storage));
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    poem::Server::new(TcpListener::bind(addr)).run(app).await?;
    Ok(())
}

#[handler]
fn save(flash: Flash) -> Redirect {
    flash.success("Article saved.");
    Redirect::see_other("/")
}

#[handler]
async fn page(flash: Flash) -> Html<String> {
    // Shown once, then gone. A storage that is down shows nothing and loses nothing.
    let messages = flash.read_views().await.unwrap_or_default();
    let mut templates = minijinja::Environment::new();
    templates.set_formatter(flash::minijinja_formatter);
    let page = templates
        .template_from_named_str("page.html", PAGE)
        .and_then(|page| page.render(minijinja::context! { messages }));
    Html(page.unwrap_or_else(|error| error.to_string()))
}

const PAGE: &str = r#"
{% for message in messages %}<div class="{{ message.tags }}">{{ message }}</div>{% endfor %}
<form method="post"><button>Save</button></form>
"#;
