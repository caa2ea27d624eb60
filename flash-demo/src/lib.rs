#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Json, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use flash_axum::{Flash, FlashLayer};
use flash_core::{Config, Level, LevelTags, Message, Storage, redact_url};
use serde::{Deserialize, Serialize};
use tower_sessions::{MemoryStore as SessionStore, SessionManagerLayer};

pub mod secret;

/// The most copies one form post may add (`count`); flash's [`Limits`](flash_core::Limits)
/// refuse what one client may not have pending long before that.
pub const MAX_COUNT: usize = 1000;

/// The largest request body the demo reads (64 KiB); a larger one is a `413`.
pub const MAX_BODY: usize = 64 * 1024;

/// The framework serving the demo unless [`Serving::framework`] says otherwise.
pub const FRAMEWORK: &str = "axum";

/// What end users see when the storage fails; the details go to the log.
pub const UNAVAILABLE: &str = "Messages are unavailable right now.";

/// What a cross-site form post gets (`403`).
pub const CROSS_SITE: &str = "Cross-site form posts are refused.";

/// The demo's settings: threshold [`Level::DEBUG`], so every level shows, and flash's default
/// [`Limits`](flash_core::Limits).
pub fn config() -> Config {
    Config::default().threshold(Level::DEBUG)
}

/// What the page says is serving it: the web framework and the storage, its URL redacted by
/// [`flash_core::redact_url`].
///
/// ```
/// let serving = flash_demo::Serving::new("redis://:hunter2@127.0.0.1:6379").framework("actix");
/// assert_eq!(serving.storage(), "redis://:***@127.0.0.1:6379");
/// assert_eq!(serving.framework_name(), "actix");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    framework: String,
    storage: String,
}

impl Serving {
    /// The storage at `storage_url` (shown redacted), served by [`FRAMEWORK`].
    pub fn new(storage_url: &str) -> Self {
        Serving {
            framework: FRAMEWORK.to_owned(),
            storage: redact_url(storage_url.trim()),
        }
    }

    /// Sets the framework's name.
    #[must_use]
    pub fn framework(mut self, name: impl Into<String>) -> Self {
        self.framework = name.into();
        self
    }

    /// The framework's name.
    pub fn framework_name(&self) -> &str {
        &self.framework
    }

    /// The storage URL, redacted.
    pub fn storage(&self) -> &str {
        &self.storage
    }
}

impl Default for Serving {
    /// A storage built in code, served by [`FRAMEWORK`].
    fn default() -> Self {
        Serving::new("a storage built in code")
    }
}

/// The demo app over `storage`, saying it is served by [`FRAMEWORK`] from a storage built in
/// code; see [`app_serving`].
pub fn app(storage: Arc<dyn Storage>) -> Router {
    app_serving(storage, Serving::default())
}

/// The demo app over `storage`: every route of the contract, the flash layer, an in-memory
/// tower-sessions layer (used when the storage keeps messages in the session; it sets no
/// cookie otherwise), a body limit of [`MAX_BODY`], and cross-site posts refused.
pub fn app_serving(storage: Arc<dyn Storage>, serving: Serving) -> Router {
    let state = Arc::new(Pages::new(serving));
    Router::new()
        .route("/", get(index))
        .route("/messages", axum::routing::post(add_form))
        .route("/api/messages", get(list_json).post(add_json))
        .with_state(state)
        .layer(FlashLayer::new(storage, config()).on_error(|err| {
            tracing::warn!(error = %err, "the demo lost flash messages");
        }))
        .layer(SessionManagerLayer::new(SessionStore::default()).with_secure(false))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Outermost: a refused post reaches neither the session nor flash.
        .layer(middleware::from_fn(refuse_cross_site))
}

/// Whether a request that changes state comes from another site.
///
/// `Sec-Fetch-Site` (sent by every current browser) decides when present: only `same-origin`
/// and `none` (typed, bookmarked) pass; `same-site` is refused too, since a sibling subdomain is
/// another application. Without it, an `Origin` must name the host the request was sent to
/// (`null` never does). A request with neither (curl, scripts, old browsers on same-origin
/// posts) passes: a browser always sends one of them on a cross-site post.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    match (origin_host, host.to_str()) {
        (Some(origin_host), Ok(host)) => !origin_host.eq_ignore_ascii_case(host),
        _ => true,
    }
}

async fn refuse_cross_site(request: Request, next: Next) -> Response {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state && is_cross_site(request.headers()) {
        tracing::warn!(
            path = request.uri().path(),
            origin = ?request.headers().get(header::ORIGIN),
            sec_fetch_site = ?request.headers().get("sec-fetch-site"),
            "refused a cross-site post"
        );
        return (StatusCode::FORBIDDEN, CROSS_SITE).into_response();
    }
    next.run(request).await
}

/// What a template (or the JSON API) sees of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageView {
    /// The level's integer value.
    pub level: i32,
    /// The level's tag (`"info"`), empty for an unnamed level.
    pub level_tag: String,
    /// Extra tags and the level tag, for a `class` attribute.
    pub tags: String,
    /// The text as added.
    pub text: String,
    /// The text ready for HTML: escaped, unless the message is trusted HTML.
    pub escaped: String,
}

impl MessageView {
    /// The view of `message` under the tag map `tags`.
    pub fn new(message: &Message, tags: &LevelTags) -> Self {
        let escaped = if message.trusted_html {
            message.text.clone()
        } else {
            minijinja::HtmlEscape(&message.text).to_string()
        };
        MessageView {
            level: message.level.value(),
            level_tag: message.level_tag_in(tags).to_owned(),
            tags: message.tags_in(tags),
            text: message.text.clone(),
            escaped,
        }
    }
}

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
            text: view.text,
        }
    }
}

const INDEX: &str = include_str!("index.html");

struct Pages {
    env: minijinja::Environment<'static>,
    serving: Serving,
}

impl Pages {
    fn new(serving: Serving) -> Self {
        let mut env = minijinja::Environment::new();
        // A compile-time constant template: covered by every test of `GET /`.
        if let Err(err) = env.add_template("index.html", INDEX) {
            tracing::error!(%err, "the demo page template does not parse");
        }
        Pages { env, serving }
    }

    fn render(&self, views: &[MessageView], problem: Option<&str>) -> Response {
        let rendered = self.env.get_template("index.html").and_then(|page| {
            page.render(minijinja::context! {
                messages => views,
                problem => problem,
                levels => ["debug", "info", "success", "warning", "error"],
                framework => self.serving.framework_name(),
                storage => self.serving.storage(),
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
    let messages = flash.read().await?;
    let tags = flash.level_tags();
    Ok(messages.iter().map(|m| MessageView::new(m, tags)).collect())
}

async fn index(State(pages): State<Arc<Pages>>, flash: Flash) -> Response {
    match read_views(&flash).await {
        Ok(views) => pages.render(&views, None),
        Err(err) => {
            tracing::warn!(error = %err, "could not load flash messages");
            pages.render(&[], Some(UNAVAILABLE))
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

/// The message the fields describe; a text (with its extra tags) longer than the app's
/// [`Limits`](flash_core::Limits) allow is refused here, before any copy is made.
fn message(
    flash: &Flash,
    level: Level,
    text: String,
    extra_tags: Option<String>,
) -> Result<Message, BadRequest> {
    let message = Message::new(level, text);
    let message = match extra_tags {
        Some(extra) if !extra.trim().is_empty() => message.with_extra_tags(extra.trim()),
        _ => message,
    };
    let max = flash.config().limits().max_text_len();
    if message.size() > max {
        return Err(BadRequest(format!(
            "the text and extra tags are {} bytes; at most {max} are accepted",
            message.size()
        )));
    }
    Ok(message)
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
    let message = message(&flash, level, form.text, form.extra_tags)?;
    // Flash's limits refuse the copies one client may not have pending: stop at the first.
    let added = (0..count)
        .take_while(|_| flash.add_message(message.clone()))
        .count();
    if added < count {
        tracing::info!(
            added,
            refused = count - added,
            "copies beyond flash's limits refused"
        );
    }
    Ok(Redirect::to("/"))
}

async fn list_json(flash: Flash) -> Response {
    match read_views(&flash).await {
        Ok(views) => {
            Json(views.into_iter().map(ApiMessage::from).collect::<Vec<_>>()).into_response()
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not load flash messages");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": UNAVAILABLE })),
            )
                .into_response()
        }
    }
}

async fn add_json(flash: Flash, Json(body): Json<AddJson>) -> Result<StatusCode, BadRequest> {
    let level = body.level.parse()?;
    flash.add_message(message(&flash, level, body.text, body.extra_tags)?);
    Ok(StatusCode::CREATED)
}
