#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Json, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use flash_axum::{Flash, FlashLayer};
use flash_core::{Config, Level, Message, Storage};
use serde::{Deserialize, Serialize};
use tower_sessions::{MemoryStore as SessionStore, SessionManagerLayer};

/// The most copies one form post may add (`count`).
pub const MAX_COUNT: usize = 1000;

/// The demo's settings: threshold [`Level::DEBUG`], so every level shows.
pub fn config() -> Config {
    Config::default().threshold(Level::DEBUG)
}

/// The demo app over `storage`: every route of the contract, the flash layer, and an in-memory
/// tower-sessions layer (used when the storage keeps messages in the session; it sets no
/// cookie otherwise).
pub fn app(storage: Arc<dyn Storage>) -> Router {
    let state = Arc::new(Pages::new());
    Router::new()
        .route("/", get(index))
        .route("/messages", axum::routing::post(add_form))
        .route("/api/messages", get(list_json).post(add_json))
        .with_state(state)
        .layer(FlashLayer::new(storage, config()).on_error(|err| {
            tracing::warn!(%err, "the demo lost flash messages");
        }))
        .layer(SessionManagerLayer::new(SessionStore::default()).with_secure(false))
}

/// What a template sees of one message: flash-core's template-ready view.
pub use flash_core::MessageView;

/// The API's view: no `escaped` (JSON is not HTML).
#[derive(Serialize)]
struct ApiMessage {
    level: i32,
    level_tag: String,
    tags: String,
    text: String,
}

impl From<MessageView> for ApiMessage {
    fn from(view: MessageView) -> Self {
        ApiMessage {
            level: view.level,
            level_tag: view.level_tag,
            tags: view.tags,
            text: view.message,
        }
    }
}

const INDEX: &str = include_str!("index.html");

struct Pages {
    env: minijinja::Environment<'static>,
}

impl Pages {
    fn new() -> Self {
        let mut env = minijinja::Environment::new();
        // `{{ m }}` keeps trusted HTML; plain text is escaped as any string.
        env.set_formatter(flash_core::minijinja_formatter);
        // A compile-time constant template: covered by every test of `GET /`.
        if let Err(err) = env.add_template("index.html", INDEX) {
            tracing::error!(%err, "the demo page template does not parse");
        }
        Pages { env }
    }

    fn render(&self, views: &[MessageView], problem: Option<String>) -> Response {
        let rendered = self.env.get_template("index.html").and_then(|page| {
            page.render(minijinja::context! {
                messages => views,
                problem => problem,
                levels => ["debug", "info", "success", "warning", "error"],
            })
        });
        match rendered {
            Ok(html) => Html(html).into_response(),
            Err(err) => {
                tracing::error!(%err, "rendering the demo page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        }
    }
}

/// Reads (consuming) every pending message as views; a storage failure is reported, not fatal.
async fn read_views(flash: &Flash) -> Result<Vec<MessageView>, flash_core::Error> {
    flash.read_views().await
}

async fn index(State(pages): State<Arc<Pages>>, flash: Flash) -> Response {
    match read_views(&flash).await {
        Ok(views) => pages.render(&views, None),
        Err(err) => {
            tracing::warn!(%err, "could not load flash messages");
            pages.render(&[], Some(format!("Messages could not be loaded: {err}")))
        }
    }
}

/// A level as a form or JSON field: a name or an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum LevelField {
    Number(i32),
    Name(String),
}

impl LevelField {
    fn parse(self) -> Result<Level, BadRequest> {
        match self {
            LevelField::Number(n) => Ok(Level::new(n)),
            LevelField::Name(name) => name
                .parse()
                .map_err(|err: flash_core::ParseLevelError| BadRequest(err.to_string())),
        }
    }
}

#[derive(Deserialize)]
struct AddForm {
    level: String,
    text: String,
    #[serde(default)]
    extra_tags: Option<String>,
    #[serde(default)]
    count: Option<String>,
}

#[derive(Deserialize)]
struct AddJson {
    level: LevelField,
    text: String,
    #[serde(default)]
    extra_tags: Option<String>,
}

/// A request the demo refuses, with the reason.
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.0).into_response()
    }
}

fn message(level: Level, text: String, extra_tags: Option<String>) -> Message {
    let message = Message::new(level, text);
    match extra_tags {
        Some(extra) if !extra.trim().is_empty() => message.with_extra_tags(extra.trim()),
        _ => message,
    }
}

async fn add_form(flash: Flash, Form(form): Form<AddForm>) -> Result<Redirect, BadRequest> {
    let level = LevelField::Name(form.level).parse()?;
    let count = match form.count.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(count) => count
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_COUNT).contains(n))
            .ok_or_else(|| BadRequest(format!("count must be 1 to {MAX_COUNT}, not {count:?}")))?,
    };
    let message = message(level, form.text, form.extra_tags);
    for _ in 0..count {
        flash.add_message(message.clone());
    }
    Ok(Redirect::to("/"))
}

async fn list_json(flash: Flash) -> Response {
    match read_views(&flash).await {
        Ok(views) => {
            Json(views.into_iter().map(ApiMessage::from).collect::<Vec<_>>()).into_response()
        }
        Err(err) => {
            tracing::warn!(%err, "could not load flash messages");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": err.to_string() })),
            )
                .into_response()
        }
    }
}

async fn add_json(flash: Flash, Json(body): Json<AddJson>) -> Result<StatusCode, BadRequest> {
    let level = body.level.parse()?;
    flash.add_message(message(level, body.text, body.extra_tags));
    Ok(StatusCode::CREATED)
}
