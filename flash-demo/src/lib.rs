#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use flash::{
    Level, Message, Messages, MessagesConfig, Refused,
    adapter::{Adapter, Htmx},
    storage::{Carry, Storage, redact_url},
};
use serde::{Deserialize, Serialize};

mod actix_sessions;
#[cfg(feature = "metrics")]
mod metrics;
mod on_actix;
mod on_axum;
mod on_poem;
pub mod secret;
mod serve;

pub use on_axum::{app, app_serving};

/// The most copies one form post may add (`count`); flash's [`Limits`](flash::Limits)
/// refuse what one client may not have pending long before that.
pub const MAX_COUNT: usize = 1000;

/// The largest request body the demo reads (64 KiB); a larger one is a `413`.
pub const MAX_BODY: usize = 64 * 1024;

/// The framework serving the demo unless [`Serving::framework`] says otherwise.
pub const FRAMEWORK: &str = "axum";

/// What end users see when the storage fails; the details go to the log.
pub const UNAVAILABLE: &str = "Messages are unavailable right now.";

/// The header every response of the demo carries: browsers must not guess a type (a `400`
/// echoing input is text, never HTML or script).
pub const NOSNIFF: (&str, &str) = ("x-content-type-options", "nosniff");

/// What a cross-site form post gets (`403`).
pub const CROSS_SITE: &str = "Cross-site form posts are refused.";

/// Environment variable: the framework serving the demo, `axum` (the default), `actix` or
/// `poem`.
pub const ENV_FRAMEWORK: &str = "FLASH_FRAMEWORK";

/// Environment variable: the htmx 2 file (`htmx.min.js`) the binary serves at [`HTMX_SCRIPT`]
/// for the htmx page ([`Serving::htmx_script`]).
pub const ENV_HTMX: &str = "FLASH_DEMO_HTMX";

/// Where the htmx page loads htmx from: the demo serves the file [`Serving::htmx_script`]
/// names there (never a CDN), or answers `404`, and the page is then a plain form.
pub const HTMX_SCRIPT: &str = "/assets/htmx.min.js";

/// The pages a form post may return to (its `next` field): the classic page and the htmx page.
pub const PAGES: [&str; 2] = ["/", "/htmx"];

/// The largest htmx file the demo serves (htmx 2's minified file is about 50 KiB).
const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// The demo's settings: minimum level [`Level::DEBUG`], so every level shows, and flash's default
/// [`Limits`](flash::Limits).
pub fn config() -> MessagesConfig {
    MessagesConfig::default().with_level(Level::DEBUG)
}

/// The web framework serving the demo. Both serve the same routes, pages and JSON from one
/// [`Site`]; only routing and extraction differ.
///
/// ```
/// use flash_demo::Framework;
/// assert_eq!("actix".parse::<Framework>(), Ok(Framework::Actix));
/// assert_eq!("AXUM".parse::<Framework>(), Ok(Framework::Axum));
/// assert!("rocket".parse::<Framework>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framework {
    /// axum 0.8 through `flash-axum` (the default).
    #[default]
    Axum,
    /// actix-web 4 through `flash-actix`.
    Actix,
    /// poem 3 through `flash-poem`.
    Poem,
}

impl Framework {
    /// Every framework the demo runs on.
    pub const ALL: [Framework; 3] = [Framework::Axum, Framework::Actix, Framework::Poem];

    /// Its name, as `FLASH_FRAMEWORK` and the page spell it.
    pub fn name(self) -> &'static str {
        match self {
            Framework::Axum => "axum",
            Framework::Actix => "actix",
            Framework::Poem => "poem",
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Framework {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Framework::ALL
            .into_iter()
            .find(|framework| framework.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| format!("unknown framework {name:?}: axum, actix or poem"))
    }
}

/// What the page says is serving it: the web framework and the storage, its URL redacted by
/// [`flash::storage::redact_url`].
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
    htmx_script: Option<PathBuf>,
    metrics: bool,
}

impl Serving {
    /// The storage at `storage_url` (shown redacted), served by [`FRAMEWORK`], without htmx.
    pub fn new(storage_url: &str) -> Self {
        Serving {
            framework: FRAMEWORK.to_owned(),
            storage: redact_url(storage_url.trim()),
            htmx_script: None,
            metrics: false,
        }
    }

    /// Serves `GET /metrics`: flash's counters and histograms ([`flash::observe`]) in
    /// Prometheus' text format, from the process's recorder (installed by the first call).
    /// The binary turns it on; without the `metrics` feature `/metrics` stays a `404`.
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn with_metrics(mut self) -> Self {
        self.metrics = metrics::handle().is_some();
        self
    }

    /// Serves the file at `path` (htmx 2's `htmx.min.js`) at [`HTMX_SCRIPT`] for the htmx
    /// page. It is read at each request, so a file fetched after the start is served too;
    /// while it is absent the script is a `404` and the htmx page works as a plain form.
    #[must_use]
    pub fn htmx_script(mut self, path: impl Into<PathBuf>) -> Self {
        self.htmx_script = Some(path.into());
        self
    }

    /// The htmx file served at [`HTMX_SCRIPT`], when one was given.
    pub fn htmx_script_path(&self) -> Option<&Path> {
        self.htmx_script.as_deref()
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

/// The demo, framework-neutral: the flash adapter over the storage (one
/// [`flash::adapter::Adapter`], from which both `flash-axum`'s layer and `flash-actix`'s middleware
/// are made), the page, and every route's logic. [`Site::axum`] and [`Site::actix`] only route
/// requests to it. A cheap clone.
#[derive(Clone)]
pub struct Site {
    adapter: Adapter,
    pages: Arc<Pages>,
    /// actix-session's store and key, when the storage keeps messages in the session.
    sessions: Option<actix_sessions::Sessions>,
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("serving", &self.pages.serving)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// The demo over `storage`, saying `serving` serves it; with the demo's [`config`], a
    /// failed save logged as lost messages, and htmx delivery on ([`Htmx`]: a form posted by
    /// htmx gets its messages in `HX-Trigger`).
    pub fn new(storage: Arc<dyn Storage>, serving: Serving) -> Self {
        let adapter = Adapter::new(storage)
            .with_config(config())
            .htmx(Htmx::new())
            .on_error(|err| {
                // Failed saves (the messages are lost) and failures a save recovered from
                // (`is_recovered`: a keyed store down, its messages carried in a cookie; a
                // previous storage not drained, its messages waiting there): the words say
                // which, the error says how.
                if err.is_recovered() {
                    tracing::warn!(error = %err, "flash: saved despite a storage failure");
                } else {
                    tracing::error!(error = %err, "flash: this request's messages are lost");
                }
            });
        let sessions = if adapter.uses_extensions() {
            actix_sessions::Sessions::new()
        } else {
            None
        };
        Site {
            adapter,
            pages: Arc::new(Pages::new(serving)),
            sessions,
        }
    }

    /// What the page says serves it.
    pub fn serving(&self) -> &Serving {
        &self.pages.serving
    }

    /// The flash adapter both frameworks' layers are made from.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    /// `GET /`, `GET /htmx` and `GET /addressed`: the page, with the pending messages
    /// (consumed).
    async fn page(&self, page: Page, flash: &Messages) -> Reply {
        match read_views(flash).await {
            Ok(views) => self.pages.render(page, &views, None),
            Err(err) => {
                tracing::warn!(error = %err, "could not load flash messages");
                self.pages.render(page, &[], Some(UNAVAILABLE))
            }
        }
    }

    /// `POST /messages`: adds `count` copies, then redirects to the page the form names
    /// (`next`, one of [`PAGES`]; `/` when absent). A form posted by htmx (not boosted) is
    /// answered in place instead, `204 No Content`: the adapter delivers the messages in
    /// `HX-Trigger`, so they show without a reload and are never stored.
    fn add_form(&self, flash: &Messages, content_type: Option<&[u8]>, body: &[u8]) -> Reply {
        let in_place = flash.htmx_request().is_some_and(|kind| kind.is_partial());
        match add_form(flash, content_type, body) {
            Ok(_) if in_place => {
                // The form is where the user looks: messages still pending (added by a JSON
                // client, say) ride along in the same event. Only on success: a refused post
                // leaves them for the page.
                flash.deliver_pending_to_htmx();
                Reply::status(204)
            }
            Ok(next) => Reply::see_other(next),
            Err(refused) => refused,
        }
    }

    /// `POST /sign-in`: what an application does at login, for flash: [`Messages::rotate_id`],
    /// so the client's id (a server store's `flash_id` cookie) is new. Whoever knew the old
    /// one (a shared computer, or a validly signed id planted from a sibling subdomain:
    /// cookie tossing) reads nothing sent to the client from now on; what was pending follows
    /// the client ([`Carry::Keep`]). The demo has no accounts: this is the flash half of a
    /// login. Redirects to `/`.
    async fn sign_in(&self, flash: &Messages) -> Reply {
        match flash.rotate_id(Carry::Keep).await {
            Ok(()) => {
                flash.success("Signed in: your flash id is new.");
            }
            Err(err) => tracing::warn!(error = %err, "could not rotate the flash id"),
        }
        Reply::see_other(PAGES[0])
    }

    /// `POST /sign-out`: what an application does at logout, for flash:
    /// [`Messages::forget_id`] deletes what was pending and drops the id; the message added
    /// afterwards is stored under a new one. Redirects to `/`.
    async fn sign_out(&self, flash: &Messages) -> Reply {
        if let Err(err) = flash.forget_id().await {
            tracing::warn!(error = %err, "could not forget the flash id");
        }
        flash.info("Signed out.");
        Reply::see_other(PAGES[0])
    }

    /// `GET /metrics`: Prometheus' text format, when [`Serving::with_metrics`] is on.
    fn metrics(&self) -> Reply {
        #[cfg(feature = "metrics")]
        if self.pages.serving.metrics
            && let Some(handle) = metrics::handle()
        {
            return Reply {
                content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
                body: handle.render(),
                ..Reply::status(200)
            };
        }
        Reply::text(404, "no metrics here (the demo's `metrics` feature)")
    }

    /// `GET /assets/htmx.min.js`: the htmx file [`Serving::htmx_script`] names, or `404`.
    async fn htmx_script(&self) -> Reply {
        let Some(path) = self.pages.serving.htmx_script_path() else {
            return Reply::text(404, "htmx is not served here (see FLASH_DEMO_HTMX)");
        };
        match read_script(path).await {
            Ok(script) => Reply {
                content_type: Some("text/javascript; charset=utf-8"),
                body: script,
                ..Reply::status(200)
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Reply::text(404, "htmx is not served here (see FLASH_DEMO_HTMX)")
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "cannot serve the htmx file");
                Reply::text(500, "the htmx file could not be read")
            }
        }
    }

    /// `GET /api/messages`: the pending messages as JSON (consumed).
    async fn list(&self, flash: &Messages) -> Reply {
        match read_views(flash).await {
            Ok(views) => Reply::json(200, &views),
            Err(err) => {
                tracing::warn!(error = %err, "could not load flash messages");
                Reply::json(503, &serde_json::json!({ "error": UNAVAILABLE }))
            }
        }
    }

    /// `POST /api/messages`: adds one message.
    fn add_json(&self, flash: &Messages, content_type: Option<&[u8]>, body: &[u8]) -> Reply {
        match add_json(flash, content_type, body) {
            Ok(()) => Reply::status(201),
            Err(refused) => refused,
        }
    }
}

/// A response, framework-neutral: each framework turns it into its own.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: Option<&'static str>,
    location: Option<&'static str>,
    body: String,
}

impl Reply {
    fn status(status: u16) -> Self {
        Reply {
            status,
            content_type: None,
            location: None,
            body: String::new(),
        }
    }

    fn text(status: u16, body: impl Into<String>) -> Self {
        Reply {
            content_type: Some("text/plain; charset=utf-8"),
            body: body.into(),
            ..Reply::status(status)
        }
    }

    fn html(body: String) -> Self {
        Reply {
            content_type: Some("text/html; charset=utf-8"),
            body,
            ..Reply::status(200)
        }
    }

    fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_string(value) {
            Ok(body) => Reply {
                content_type: Some("application/json"),
                body,
                ..Reply::status(status)
            },
            Err(err) => {
                tracing::error!(%err, "encoding JSON failed");
                Reply::text(500, "the answer could not be encoded")
            }
        }
    }

    fn see_other(location: &'static str) -> Self {
        Reply {
            location: Some(location),
            ..Reply::status(303)
        }
    }

    fn bad_request(why: String) -> Self {
        Reply::text(400, why)
    }
}

/// Whether a request that changes state comes from another site, from its headers (`header`
/// gives a header's first value by lowercase name). The demo serves plain `http`.
///
/// `Sec-Fetch-Site` (sent by every current browser) decides when present: only `same-origin`
/// and `none` (typed, bookmarked) pass; `same-site` is refused too, since a sibling subdomain is
/// another application. Without it, an `Origin` must name this very origin: scheme (`http`),
/// host and port (a missing port is the scheme's default) all equal to the request's, as
/// browsers compare origins; `null` never does. A request with neither (curl, scripts, old
/// browsers on same-origin posts) passes: a browser always sends one of them on a cross-site
/// post.
///
/// ```
/// let headers = [("origin", "https://demo.example"), ("host", "demo.example")];
/// let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes());
/// assert!(flash_demo::is_cross_site(header), "another scheme is another origin");
/// let headers = [("origin", "http://demo.example:80"), ("host", "demo.example")];
/// let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes());
/// assert!(!flash_demo::is_cross_site(header));
/// assert!(!flash_demo::is_cross_site(|_: &str| None));
/// ```
pub fn is_cross_site<'a>(header: impl Fn(&'static str) -> Option<&'a [u8]>) -> bool {
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, b"same-origin" | b"none");
    }
    let Some(origin) = header("origin") else {
        return false;
    };
    let Some(host) = header("host") else {
        return true;
    };
    let ours = std::str::from_utf8(host)
        .ok()
        .and_then(|host| Origin::parse(SCHEME, host));
    let theirs = std::str::from_utf8(origin).ok().and_then(|origin| {
        let (scheme, rest) = origin.split_once("://")?;
        Origin::parse(scheme, rest)
    });
    match (ours, theirs) {
        (Some(ours), Some(theirs)) => ours != theirs,
        _ => true,
    }
}

/// The scheme the demo serves (it has no TLS of its own).
const SCHEME: &str = "http";

/// A web origin: scheme, host and port, compared as browsers compare them.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// `host[:port]` (or `[v6][:port]`) served over `scheme` (`http` or `https`, whose default
    /// port fills a missing one); `None` for anything else (a path, user info, another scheme).
    fn parse(scheme: &str, authority: &str) -> Option<Origin> {
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ', '\\']) {
            return None;
        }
        let (host, port) = match authority.rfind(':') {
            Some(colon) if !authority[colon..].contains(']') => {
                (&authority[..colon], authority[colon + 1..].parse().ok()?)
            }
            _ => (authority, default),
        };
        if host.is_empty() {
            return None;
        }
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// The `403` for a request of `method` to `path` that changes state and comes from another
/// site (see [`is_cross_site`]), logged; `None` lets the request through.
fn refuse_cross_site<'a>(
    method: &str,
    path: &str,
    header: impl Fn(&'static str) -> Option<&'a [u8]>,
) -> Option<Reply> {
    let changes_state = !matches!(method, "GET" | "HEAD" | "OPTIONS");
    if !changes_state || !is_cross_site(&header) {
        return None;
    }
    let shown = |name| header(name).map(String::from_utf8_lossy);
    tracing::warn!(
        path,
        origin = ?shown("origin"),
        sec_fetch_site = ?shown("sec-fetch-site"),
        "refused a cross-site post"
    );
    Some(Reply::text(403, CROSS_SITE))
}

/// The htmx file at `path`, when it is UTF-8 text of at most [`MAX_SCRIPT_BYTES`].
async fn read_script(path: &Path) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(path).await?;
    let mut script = String::new();
    // One byte more than allowed tells a file that is too large from one that just fits.
    let read = file
        .take(MAX_SCRIPT_BYTES + 1)
        .read_to_string(&mut script)
        .await?;
    if read as u64 > MAX_SCRIPT_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_SCRIPT_BYTES} bytes: not an htmx file"
        )));
    }
    Ok(script)
}

/// What a template (or the JSON API) sees of one message: flash-core's template-ready view.
pub use flash::MessageView;

/// The demo's templates: the layout and the form's fields every page shares, and each page.
const TEMPLATES: [(&str, &str); 5] = [
    ("layout.html", include_str!("layout.html")),
    ("fields.html", include_str!("fields.html")),
    ("index.html", include_str!("index.html")),
    ("htmx.html", include_str!("htmx.html")),
    ("addressed.html", include_str!("addressed.html")),
];

/// A page of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// `GET /`: the form posts, the server redirects, the page shows the message.
    Index,
    /// `GET /htmx`: the form is posted by htmx, the message shows as a toast.
    Htmx,
    /// `GET /addressed`: the page's script posts the form without following the redirect, reads
    /// as a polling widget and an htmx fragment do, and shows what they got: nothing, since
    /// the message is addressed to the redirect's page.
    Addressed,
}

impl Page {
    fn template(self) -> &'static str {
        match self {
            Page::Index => "index.html",
            Page::Htmx => "htmx.html",
            Page::Addressed => "addressed.html",
        }
    }
}

struct Pages {
    env: minijinja::Environment<'static>,
    serving: Serving,
}

impl Pages {
    fn new(serving: Serving) -> Self {
        let mut env = minijinja::Environment::new();
        // `{{ m }}` prints a message's text: escaped, unless it is trusted HTML.
        env.set_formatter(flash::minijinja_formatter);
        // Compile-time constant templates: covered by every test of `GET /` and `GET /htmx`.
        for (name, source) in TEMPLATES {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(%err, name, "a demo page template does not parse");
            }
        }
        Pages { env, serving }
    }

    fn render(&self, page: Page, views: &[MessageView], problem: Option<&str>) -> Reply {
        let rendered = self.env.get_template(page.template()).and_then(|template| {
            template.render(minijinja::context! {
                messages => views,
                problem => problem,
                levels => ["debug", "info", "success", "warning", "error"],
                framework => self.serving.framework_name(),
                storage => self.serving.storage(),
                htmx_script => HTMX_SCRIPT,
            })
        });
        match rendered {
            Ok(html) => Reply::html(html),
            Err(err) => {
                tracing::error!(%err, "rendering the demo page failed");
                Reply::text(500, "the page could not be rendered")
            }
        }
    }
}

/// Reads (consuming) every pending message as views; a storage failure is reported, not fatal.
async fn read_views(flash: &Messages) -> Result<Vec<MessageView>, flash::Error> {
    flash.read_views().await
}

/// A level as a form or JSON field: a name or an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum LevelField {
    Number(i32),
    Name(String),
}

impl LevelField {
    fn parse(self) -> Result<Level, Reply> {
        match self {
            LevelField::Number(n) => Ok(Level::new(n)),
            LevelField::Name(name) => name
                .parse()
                .map_err(|err: flash::ParseLevelError| Reply::bad_request(err.to_string())),
        }
    }
}

/// The form `POST /messages` reads.
struct AddForm {
    level: String,
    text: String,
    extra_tags: Option<String>,
    count: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct AddJson {
    level: LevelField,
    text: String,
    #[serde(default)]
    extra_tags: Option<String>,
}

/// The media type of a `Content-Type` value, lowercase, without parameters.
fn media_type(content_type: Option<&[u8]>) -> Option<String> {
    let value = std::str::from_utf8(content_type?).ok()?;
    let essence = value.split(';').next().unwrap_or(value);
    Some(essence.trim().to_ascii_lowercase())
}

/// The fields of a form body; the last of a repeated field counts, unknown fields are ignored.
fn parse_form(content_type: Option<&[u8]>, body: &[u8]) -> Result<AddForm, Reply> {
    if media_type(content_type).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(Reply::text(
            415,
            "expected a form (application/x-www-form-urlencoded)",
        ));
    }
    let (mut level, mut text, mut extra_tags, mut count, mut next) = (None, None, None, None, None);
    for (name, value) in form_urlencoded::parse(body) {
        let field = match &*name {
            "level" => &mut level,
            "text" => &mut text,
            "extra_tags" => &mut extra_tags,
            "count" => &mut count,
            "next" => &mut next,
            _ => continue,
        };
        *field = Some(value.into_owned());
    }
    let missing = |name: &str| Reply::bad_request(format!("the form lacks the field `{name}`"));
    Ok(AddForm {
        level: level.ok_or_else(|| missing("level"))?,
        text: text.ok_or_else(|| missing("text"))?,
        extra_tags,
        count,
        next,
    })
}

/// The message the fields describe; a text (with its extra tags) longer than the app's
/// [`Limits`](flash::Limits) allow is refused here, before any copy is made.
fn message(
    flash: &Messages,
    level: Level,
    text: String,
    extra_tags: Option<String>,
) -> Result<Message, Reply> {
    let message = Message::new(level, text);
    let message = match extra_tags {
        Some(extra) if !extra.trim().is_empty() => message.with_extra_tags(extra.trim()),
        _ => message,
    };
    let max = flash.config().limits().max_text_len();
    if message.size() > max {
        return Err(Reply::bad_request(format!(
            "the text and extra tags are {} bytes; at most {max} are accepted",
            message.size()
        )));
    }
    Ok(message)
}

/// Adds the form's copies; the page to redirect to (its `next`, checked before anything is
/// added).
fn add_form(
    flash: &Messages,
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<&'static str, Reply> {
    let form = parse_form(content_type, body)?;
    // Only the demo's own pages: a `next` naming anything else would be an open redirect.
    let next = match form.next.as_deref().map(str::trim) {
        None | Some("") => PAGES[0],
        Some(next) => PAGES
            .into_iter()
            .find(|page| *page == next)
            .ok_or_else(|| {
                Reply::bad_request(format!("next must be one of {PAGES:?}, not {next:?}"))
            })?,
    };
    let level = LevelField::Name(form.level).parse()?;
    let count = match form.count.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(count) => count
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_COUNT).contains(n))
            .ok_or_else(|| {
                Reply::bad_request(format!("count must be 1 to {MAX_COUNT}, not {count:?}"))
            })?,
    };
    let message = message(flash, level, form.text, form.extra_tags)?;
    // Flash's limits refuse the copies one client may not have pending: stop at the first.
    let mut added = 0;
    while added < count {
        match flash.try_add(message.clone()) {
            Ok(_) => added += 1,
            Err(Refused::TooMuchPending) => break,
            Err(refused) => return Err(refused_reply(refused)),
        }
    }
    if added < count {
        tracing::info!(
            added,
            refused = count - added,
            "copies beyond flash's limits refused"
        );
    }
    Ok(next)
}

fn add_json(flash: &Messages, content_type: Option<&[u8]>, body: &[u8]) -> Result<(), Reply> {
    let json = media_type(content_type)
        .is_some_and(|media| media == "application/json" || media.ends_with("+json"));
    if !json {
        return Err(Reply::text(415, "expected JSON (application/json)"));
    }
    let body: AddJson = serde_json::from_slice(body)
        .map_err(|err| Reply::bad_request(format!("the JSON body is not a message: {err}")))?;
    let level = body.level.parse()?;
    match flash.try_add(message(flash, level, body.text, body.extra_tags)?) {
        Ok(_) => Ok(()),
        Err(refused) => Err(refused_reply(refused)),
    }
}

/// A message flash refused at add, answered with flash's reason: `413` when the storage can
/// never hold it (a cookie too small, no store to overflow into), `400` otherwise. Nothing
/// is reported as waiting that will not arrive.
fn refused_reply(refused: Refused) -> Reply {
    let status = match refused {
        Refused::TooLargeForStorage | Refused::TooLarge => 413,
        _ => 400,
    };
    tracing::info!(reason = ?refused, "a flash message refused at add");
    Reply::text(status, format!("not added: {refused}"))
}
