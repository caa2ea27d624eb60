//! Storage URLs: which backend, its driver URL, and flash's own options from the query.

use std::borrow::Cow;
use std::time::Duration;

use flash_core::SameSite;
use flash_core::{
    CookieOptions, Error, ErrorKind, Result,
    storage::{Redacted, redact_url},
};

/// A backend a storage URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Cookie,
    Session,
    Memory,
    Redis,
    RedisCluster,
    Postgres,
    Mysql,
    Sqlite,
}

/// One row of [`SCHEMES`]: everything the facade knows of a backend but how to build it.
pub(crate) struct SchemeRow {
    scheme: Scheme,
    /// How a URL may spell it, lowercase; the first is its name in messages.
    spellings: &'static [&'static str],
    /// The Cargo feature of the `flash` crate that compiles it in (`None`: always there).
    feature: Option<&'static str>,
    /// Whether that feature is on.
    compiled: bool,
    /// A server address follows the scheme (`redis://host…`); otherwise only `?options`.
    address: bool,
    /// A server-side store keyed by a client id (through `flash_core::storage::ServerStorage`): it takes
    /// the id cookie's options, `ttl`, `lease_timeout` and `call_timeout`.
    keyed: bool,
    /// The options of its own, beyond the cookie and keyed ones.
    options: &'static [&'static str],
}

const SQL_OPTIONS: &[&str] = &["table", "sweep", "migrate"];

/// Every backend a storage URL can name, in the order of [`Scheme`]: the one table the parser,
/// the option check, the feature check and the messages read.
const SCHEMES: [SchemeRow; 8] = [
    SchemeRow {
        scheme: Scheme::Cookie,
        spellings: &["cookie"],
        feature: Some("cookie"),
        compiled: cfg!(feature = "cookie"),
        address: false,
        keyed: false,
        options: &[],
    },
    SchemeRow {
        scheme: Scheme::Session,
        spellings: &["session"],
        feature: Some("session"),
        compiled: cfg!(feature = "session"),
        address: false,
        keyed: false,
        options: &["key"],
    },
    SchemeRow {
        scheme: Scheme::Memory,
        spellings: &["memory"],
        feature: None,
        compiled: true,
        address: false,
        keyed: true,
        options: &["sweep"],
    },
    SchemeRow {
        scheme: Scheme::Redis,
        spellings: &["redis", "rediss", "redis+unix", "unix"],
        feature: Some("redis"),
        compiled: cfg!(feature = "redis"),
        address: true,
        keyed: true,
        options: &["prefix", "shared_keys"],
    },
    SchemeRow {
        scheme: Scheme::RedisCluster,
        spellings: &["redis+cluster", "rediss+cluster"],
        feature: Some("redis-cluster"),
        compiled: cfg!(feature = "redis-cluster"),
        address: true,
        keyed: true,
        options: &["prefix", "shared_keys"],
    },
    SchemeRow {
        scheme: Scheme::Postgres,
        spellings: &["postgres", "postgresql"],
        feature: Some("postgres"),
        compiled: cfg!(feature = "postgres"),
        address: true,
        keyed: true,
        options: SQL_OPTIONS,
    },
    SchemeRow {
        scheme: Scheme::Mysql,
        spellings: &["mysql", "mariadb"],
        feature: Some("mysql"),
        compiled: cfg!(feature = "mysql"),
        address: true,
        keyed: true,
        options: SQL_OPTIONS,
    },
    SchemeRow {
        scheme: Scheme::Sqlite,
        spellings: &["sqlite"],
        feature: Some("sqlite"),
        compiled: cfg!(feature = "sqlite"),
        address: true,
        keyed: true,
        options: SQL_OPTIONS,
    },
];

impl Scheme {
    fn row(self) -> &'static SchemeRow {
        // `SCHEMES` is in the order of the enum (checked by a test).
        &SCHEMES[self as usize]
    }

    /// The scheme a URL spells `text` (any case).
    fn from_spelling(text: &str) -> Option<Scheme> {
        let text = text.to_ascii_lowercase();
        SCHEMES
            .iter()
            .find(|row| row.spellings.contains(&text.as_str()))
            .map(|row| row.scheme)
    }

    /// The Cargo feature of the `flash` crate that compiles this backend in.
    pub(crate) fn feature(self) -> Option<&'static str> {
        self.row().feature
    }

    /// Whether the backend is compiled in.
    pub(crate) fn compiled(self) -> bool {
        self.row().compiled
    }

    fn name(self) -> &'static str {
        self.row().spellings[0]
    }

    /// A server-side store keyed by a client id (through `flash_core::storage::ServerStorage`).
    pub(crate) fn is_keyed(self) -> bool {
        self.row().keyed
    }

    /// A server address follows the scheme.
    fn has_address(self) -> bool {
        self.row().address
    }
}

/// The format of the messages cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CookieFormat {
    /// flash's own: base64url(compact JSON) signed with HMAC-SHA256.
    #[default]
    Flash,
    /// Django's `messages` cookie, with the secret as Django's `SECRET_KEY`.
    Django,
}

/// flash's options from the URL's query.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Options {
    pub(crate) format: CookieFormat,
    pub(crate) cookie_name: Option<String>,
    pub(crate) max_size: Option<usize>,
    pub(crate) session_key: Option<String>,
    pub(crate) id_cookie: Option<String>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) lease_timeout: Option<Duration>,
    /// The deadline of every store call, in the bridge.
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) prefix: Option<String>,
    /// Redis: how many keys the clients share (`RedisStoreBuilder::shared_keys`).
    pub(crate) shared_keys: Option<u32>,
    pub(crate) table: Option<String>,
    /// SQL and memory: `None` for the default interval, `Some(None)` when sweeping is off.
    pub(crate) sweep: Option<Option<Duration>>,
    /// SQL: whether `open` creates or upgrades the table (`None`: as `StorageConfig::migrate`).
    pub(crate) migrate: Option<bool>,
    pub(crate) secure: Option<bool>,
    pub(crate) http_only: Option<bool>,
    pub(crate) same_site: Option<SameSite>,
    pub(crate) domain: Option<String>,
    pub(crate) path: Option<String>,
}

impl Options {
    /// The cookie attributes the options set, over the defaults.
    pub(crate) fn cookie_options(&self) -> CookieOptions {
        let mut options = CookieOptions::default();
        if let Some(secure) = self.secure {
            options = options.secure(secure);
        }
        if let Some(http_only) = self.http_only {
            options = options.http_only(http_only);
        }
        if let Some(same_site) = self.same_site {
            options = options.same_site(Some(same_site));
        }
        if let Some(domain) = &self.domain {
            options = options.domain(domain.clone());
        }
        if let Some(path) = &self.path {
            options = options.path(path.clone());
        }
        options
    }
}

/// A parsed storage URL.
#[derive(Clone, PartialEq)]
pub(crate) struct StorageUrl {
    /// `cookie+…`: the messages go in the cookie first and overflow into `scheme`.
    pub(crate) cookie_first: bool,
    /// The backend.
    pub(crate) scheme: Scheme,
    /// The URL handed to the driver: flash's options removed (empty for cookie, session, memory).
    pub(crate) driver_url: String,
    /// For `redis+cluster://`: one driver URL per node.
    pub(crate) nodes: Vec<String>,
    /// flash's options.
    pub(crate) options: Options,
}

/// The driver URLs hold the passwords: shown through the one redactor.
impl std::fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<Redacted<'_>> = self.nodes.iter().map(|n| Redacted(n)).collect();
        f.debug_struct("StorageUrl")
            .field("cookie_first", &self.cookie_first)
            .field("scheme", &self.scheme)
            .field("driver_url", &Redacted(&self.driver_url))
            .field("nodes", &nodes)
            .field("options", &self.options)
            .finish()
    }
}

const COOKIE_OPTIONS: &[&str] = &["format", "name", "max_size"];
const ATTRIBUTE_OPTIONS: &[&str] = &["secure", "http_only", "same_site", "domain", "path"];
const KEYED_OPTIONS: &[&str] = &["id_cookie", "ttl", "lease_timeout", "call_timeout"];
const ALL_OPTIONS: &[&str] = &[
    "format",
    "name",
    "max_size",
    "secure",
    "http_only",
    "same_site",
    "domain",
    "path",
    "key",
    "id_cookie",
    "ttl",
    "lease_timeout",
    "call_timeout",
    "prefix",
    "shared_keys",
    "table",
    "sweep",
    "migrate",
];

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

impl StorageUrl {
    /// Parses a storage URL; the error names what is wrong and what is accepted.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let shown = redact_url(url);
        let (cookie_first, rest) = match url.strip_prefix("cookie+") {
            Some(rest) => (true, rest),
            None => (false, url),
        };
        let scheme_end = rest.find([':', '?']).unwrap_or(rest.len());
        let scheme_text = &rest[..scheme_end];
        let scheme = match Scheme::from_spelling(scheme_text) {
            Some(scheme) => scheme,
            None if scheme_text.is_empty() => {
                return Err(config_error(format!(
                    "the storage URL `{shown}` is empty; use one of: cookie, cookie?format=django, \
                     session, memory, redis://…, redis+cluster://…, postgres://…, mysql://…, \
                     sqlite://…, or cookie+<one of those> for cookie-first overflow"
                )));
            }
            None => {
                return Err(config_error(format!(
                    "unknown storage `{scheme_text}` in `{shown}`; use one of: cookie, session, memory, \
                     redis://, rediss://, redis+cluster://, postgres://, mysql://, sqlite://, \
                     or cookie+<url>"
                )));
            }
        };
        if cookie_first && scheme == Scheme::Cookie {
            return Err(config_error(format!(
                "`{shown}`: cookie+ takes the store the cookie overflows into, not another cookie"
            )));
        }

        let (base, query) = split_query(rest);
        let after_scheme = &base[scheme_end.min(base.len())..];
        if !scheme.has_address() {
            // `cookie`, `cookie:`, `cookie://`: nothing may follow the scheme but the query.
            if !matches!(after_scheme, "" | ":" | "://") {
                return Err(config_error(format!(
                    "`{shown}`: `{}` takes no address, only options after `?`",
                    scheme.name()
                )));
            }
        }

        if scheme.has_address() && (!after_scheme.starts_with(':') || after_scheme.len() < 2) {
            return Err(config_error(format!(
                "`{shown}` has no address: write it as {}://host…",
                scheme.name()
            )));
        }

        let mut options = Options::default();
        let mut driver_pairs: Vec<&str> = Vec::new();
        for raw in query.split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = form_urlencoded::parse(raw.as_bytes()).next() else {
                continue;
            };
            if !ALL_OPTIONS.contains(&key.as_ref()) {
                if scheme.has_address() {
                    // The driver's own option (`sslmode`, `db`, …): handed on untouched.
                    driver_pairs.push(raw);
                    continue;
                }
                return Err(config_error(format!(
                    "unknown option `{key}` in `{shown}`; {} accepts: {}",
                    scheme.name(),
                    accepted(scheme, cookie_first).join(", ")
                )));
            }
            if !accepted(scheme, cookie_first).contains(&key.as_ref()) {
                return Err(config_error(format!(
                    "option `{key}` does not apply to `{shown}`; it accepts: {}",
                    accepted(scheme, cookie_first).join(", ")
                )));
            }
            set_option(&mut options, &key, value, &shown)?;
        }

        let mut driver_url = String::new();
        let mut nodes = Vec::new();
        if scheme.has_address() {
            let driver_query = driver_pairs.join("&");
            let driver_scheme = match scheme_text.to_ascii_lowercase() {
                // sqlx knows MariaDB as `mysql://`.
                s if s == "mariadb" => "mysql".to_owned(),
                s => s,
            };
            let base = format!("{driver_scheme}{}", encode_userinfo(after_scheme));
            let with_query = |base: &str| {
                if driver_query.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{driver_query}")
                }
            };
            if scheme == Scheme::RedisCluster {
                nodes = cluster_nodes(&base, &shown)?
                    .iter()
                    .map(|n| with_query(n))
                    .collect();
            }
            driver_url = with_query(&base);
        }
        Ok(StorageUrl {
            cookie_first,
            scheme,
            driver_url,
            nodes,
            options,
        })
    }

    /// Whether the storage signs anything (and so needs the secret).
    pub(crate) fn needs_secret(&self) -> bool {
        self.cookie_first || self.scheme != Scheme::Session
    }

    /// The Cargo features this URL needs that are not compiled in (empty when all are).
    pub(crate) fn missing_features(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.options.format == CookieFormat::Django && !cfg!(feature = "django") {
            // `django` brings `cookie` with it.
            missing.push("django");
        } else if (self.cookie_first || self.scheme == Scheme::Cookie) && !cfg!(feature = "cookie")
        {
            missing.push("cookie");
        }
        if self.scheme != Scheme::Cookie
            && !self.scheme.compiled()
            && let Some(feature) = self.scheme.feature()
        {
            missing.push(feature);
        }
        missing
    }
}

/// The options a URL of `scheme` accepts.
fn accepted(scheme: Scheme, cookie_first: bool) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    if cookie_first || scheme == Scheme::Cookie {
        keys.extend(COOKIE_OPTIONS);
    }
    if cookie_first || scheme == Scheme::Cookie || scheme.is_keyed() {
        keys.extend(ATTRIBUTE_OPTIONS);
    }
    if scheme.is_keyed() {
        keys.extend(KEYED_OPTIONS);
    }
    keys.extend(scheme.row().options);
    keys
}

fn set_option(options: &mut Options, key: &str, value: Cow<'_, str>, shown: &str) -> Result<()> {
    let bad = |expected: &str| {
        config_error(format!(
            "option `{key}={value}` in `{shown}` is not valid: expected {expected}"
        ))
    };
    let text = || {
        if value.is_empty() {
            Err(bad("a non-empty value"))
        } else {
            Ok(value.clone().into_owned())
        }
    };
    match key {
        "format" => {
            options.format = match value.to_ascii_lowercase().as_str() {
                "flash" => CookieFormat::Flash,
                "django" => CookieFormat::Django,
                _ => return Err(bad("`flash` or `django`")),
            }
        }
        "name" => options.cookie_name = Some(text()?),
        "max_size" => {
            options.max_size = Some(
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a positive number of bytes"))?,
            )
        }
        "key" => options.session_key = Some(text()?),
        "id_cookie" => options.id_cookie = Some(text()?),
        "ttl" => {
            options.ttl =
                Some(duration(&value).ok_or_else(|| bad("a duration (`3600`, `7d`, `12h`)"))?)
        }
        "lease_timeout" => {
            options.lease_timeout =
                Some(duration(&value).ok_or_else(|| bad("a duration (`30`, `30s`, `2m`)"))?)
        }
        "call_timeout" => {
            options.call_timeout = Some(
                duration(&value)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad("a duration longer than zero (`2s`, `500ms`)"))?,
            )
        }
        "prefix" => options.prefix = Some(text()?),
        "shared_keys" => {
            options.shared_keys = Some(
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a number of keys from 1 to 4294967295"))?,
            )
        }
        "table" => options.table = Some(text()?),
        "sweep" => {
            options.sweep = Some(match boolean(&value) {
                Some(false) => None,
                _ => Some(
                    duration(&value).ok_or_else(|| bad("an interval (`1h`, `15m`) or `off`"))?,
                ),
            })
        }
        "migrate" => options.migrate = Some(boolean(&value).ok_or_else(|| bad("true or false"))?),
        "secure" => options.secure = Some(boolean(&value).ok_or_else(|| bad("true or false"))?),
        "http_only" => {
            options.http_only = Some(boolean(&value).ok_or_else(|| bad("true or false"))?)
        }
        "same_site" => {
            options.same_site = Some(match value.to_ascii_lowercase().as_str() {
                "lax" => SameSite::Lax,
                "strict" => SameSite::Strict,
                "none" => SameSite::None,
                _ => return Err(bad("lax, strict or none")),
            })
        }
        "domain" => options.domain = Some(text()?),
        "path" => options.path = Some(text()?),
        _ => return Err(bad("a known option")),
    }
    Ok(())
}

/// A positive duration: whole seconds, or humantime's `7d`, `12h`, `1h 30m`.
pub(crate) fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).ok()?,
    };
    (!duration.is_zero()).then_some(duration)
}

/// `true`/`false` and the usual spellings (`1`, `yes`, `on`, …).
pub(crate) fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `url` cut before its query. After `scheme://` the user info runs to the last `@` (the one
/// reading `flash_core::storage::redact_url` shares), so a password holding an unencoded `?`, `#`, `/`
/// or `@` is read whole; an `@` in a query value is written `%40`.
fn split_query(url: &str) -> (&str, &str) {
    let from = match url.find("://") {
        Some(i) => url[i..].rfind('@').map_or(i, |at| i + at),
        None => 0,
    };
    match url[from..].find('?') {
        Some(q) => (&url[..from + q], &url[from + q + 1..]),
        None => (url, ""),
    }
}

/// `://user:password@host…` with the user info percent-encoded where a driver's URL parser
/// would otherwise end it early (`/`, `?`, `#`, …), so the driver reads the same password the
/// facade did. `%` is kept: a password written percent-encoded stays as it was.
fn encode_userinfo(after_scheme: &str) -> Cow<'_, str> {
    let Some(rest) = after_scheme.strip_prefix("://") else {
        return Cow::Borrowed(after_scheme);
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return Cow::Borrowed(after_scheme);
    };
    let special = |c: char| {
        c.is_ascii_control()
            || !c.is_ascii()
            || matches!(
                c,
                ' ' | '"'
                    | '#'
                    | '/'
                    | '<'
                    | '>'
                    | '?'
                    | '['
                    | '\\'
                    | ']'
                    | '^'
                    | '`'
                    | '{'
                    | '|'
                    | '}'
            )
    };
    if !userinfo.contains(special) {
        return Cow::Borrowed(after_scheme);
    }
    let mut encoded = String::from("://");
    for c in userinfo.chars() {
        if special(c) {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        } else {
            encoded.push(c);
        }
    }
    encoded.push('@');
    encoded.push_str(host);
    Cow::Owned(encoded)
}

/// `redis+cluster://:pw@a:7001,b:7002` → `redis://:pw@a:7001`, `redis://:pw@b:7002`: the user
/// info (up to the last `@`) is every node's.
fn cluster_nodes(base: &str, shown: &str) -> Result<Vec<String>> {
    let (scheme, rest) = base.split_once("://").ok_or_else(|| {
        config_error(format!(
            "`{shown}`: write it as redis+cluster://host:port,host:port"
        ))
    })?;
    let node_scheme = if scheme.eq_ignore_ascii_case("rediss+cluster") {
        "rediss"
    } else {
        "redis"
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((info, rest)) => (Some(info), rest),
        None => (None, rest),
    };
    let (hosts, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut nodes = Vec::new();
    for addr in hosts.split(',').map(str::trim) {
        if addr.is_empty() {
            return Err(config_error(format!("`{shown}` has an empty node address")));
        }
        let node = match userinfo {
            Some(info) => format!("{node_scheme}://{info}@{addr}{path}"),
            None => format!("{node_scheme}://{addr}{path}"),
        };
        nodes.push(node);
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> StorageUrl {
        match StorageUrl::parse(url) {
            Ok(parsed) => parsed,
            Err(err) => panic!("{url}: {err}"),
        }
    }

    fn error(url: &str) -> String {
        match StorageUrl::parse(url) {
            Ok(parsed) => panic!("{url} parsed: {parsed:?}"),
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Config, "{url}");
                err.to_string()
            }
        }
    }

    #[test]
    fn every_scheme() {
        let cases = [
            ("cookie", Scheme::Cookie, false, ""),
            ("cookie:", Scheme::Cookie, false, ""),
            ("cookie://", Scheme::Cookie, false, ""),
            ("session", Scheme::Session, false, ""),
            ("memory", Scheme::Memory, false, ""),
            (
                "redis://127.0.0.1:6379",
                Scheme::Redis,
                false,
                "redis://127.0.0.1:6379",
            ),
            (
                "rediss://h:6380/2",
                Scheme::Redis,
                false,
                "rediss://h:6380/2",
            ),
            (
                "redis+unix:///tmp/redis.sock",
                Scheme::Redis,
                false,
                "redis+unix:///tmp/redis.sock",
            ),
            (
                "redis+cluster://a:7001,b:7002",
                Scheme::RedisCluster,
                false,
                "redis+cluster://a:7001,b:7002",
            ),
            (
                "postgres://u@h/db",
                Scheme::Postgres,
                false,
                "postgres://u@h/db",
            ),
            (
                "postgresql://u@h/db",
                Scheme::Postgres,
                false,
                "postgresql://u@h/db",
            ),
            (
                "mysql://root@h:3306/test",
                Scheme::Mysql,
                false,
                "mysql://root@h:3306/test",
            ),
            (
                "mariadb://root@h/test",
                Scheme::Mysql,
                false,
                "mysql://root@h/test",
            ),
            (
                "sqlite://flash.db",
                Scheme::Sqlite,
                false,
                "sqlite://flash.db",
            ),
            ("sqlite::memory:", Scheme::Sqlite, false, "sqlite::memory:"),
            (
                "cookie+sqlite://flash-demo.db",
                Scheme::Sqlite,
                true,
                "sqlite://flash-demo.db",
            ),
            (
                "cookie+redis://127.0.0.1",
                Scheme::Redis,
                true,
                "redis://127.0.0.1",
            ),
            ("cookie+session", Scheme::Session, true, ""),
            ("cookie+memory", Scheme::Memory, true, ""),
            ("  REDIS://h  ", Scheme::Redis, false, "redis://h"),
        ];
        for (url, scheme, cookie_first, driver) in cases {
            let parsed = parse(url);
            assert_eq!(parsed.scheme, scheme, "{url}");
            assert_eq!(parsed.cookie_first, cookie_first, "{url}");
            assert_eq!(parsed.driver_url, driver, "{url}");
        }
    }

    #[test]
    fn the_scheme_table_is_in_the_enum_order_and_every_spelling_parses() {
        for (i, row) in SCHEMES.iter().enumerate() {
            assert_eq!(row.scheme as usize, i, "{}", row.spellings[0]);
            assert_eq!(row.scheme.row().spellings, row.spellings);
            for spelling in row.spellings {
                assert_eq!(
                    Scheme::from_spelling(spelling),
                    Some(row.scheme),
                    "{spelling}"
                );
                assert_eq!(
                    Scheme::from_spelling(&spelling.to_ascii_uppercase()),
                    Some(row.scheme)
                );
            }
            for option in row.options {
                assert!(ALL_OPTIONS.contains(option), "{option}");
            }
        }
        assert_eq!(Scheme::from_spelling("mongodb"), None);
    }

    #[test]
    fn migrate_is_an_sql_option() {
        assert_eq!(parse("sqlite://f.db").options.migrate, None);
        assert_eq!(
            parse("sqlite://f.db?migrate=false").options.migrate,
            Some(false)
        );
        assert_eq!(
            parse("cookie+postgres://h/db?migrate=off&sslmode=disable")
                .options
                .migrate,
            Some(false)
        );
        assert_eq!(
            parse("mariadb://h/db?migrate=1").options.migrate,
            Some(true)
        );
        assert!(error("redis://h?migrate=false").contains("does not apply"));
        assert!(error("memory?migrate=false").contains("does not apply"));
        assert!(error("sqlite://f.db?migrate=later").contains("true or false"));
    }

    #[test]
    fn cluster_nodes_carry_credentials_and_tls() {
        let parsed = parse("redis+cluster://:pw@a:7001,b:7002?prefix=p&protocol=resp3");
        assert_eq!(
            parsed.nodes,
            [
                "redis://:pw@a:7001?protocol=resp3",
                "redis://:pw@b:7002?protocol=resp3"
            ]
        );
        assert_eq!(parsed.options.prefix.as_deref(), Some("p"));
        assert_eq!(parse("rediss+cluster://a:1").nodes, ["rediss://a:1"]);
        assert!(error("redis+cluster://a:1,,b:2").contains("empty node"));
        assert_eq!(
            parse("redis+cluster://:p,w@a:1,b:2").nodes,
            ["redis://:p,w@a:1", "redis://:p,w@b:2"]
        );
    }

    /// A password may hold any character: the user info runs to the last `@`, and the driver
    /// gets it percent-encoded where its parser would cut it.
    #[test]
    fn a_password_holding_url_delimiters_is_read_whole() {
        let parsed = parse("redis://:S3cr3t?Pw@x@127.0.0.1:6390?prefix=p&db=1");
        assert_eq!(
            parsed.driver_url,
            "redis://:S3cr3t%3FPw@x@127.0.0.1:6390?db=1"
        );
        assert_eq!(parsed.options.prefix.as_deref(), Some("p"));
        assert_eq!(
            parse("postgres://u:a/b#c d@h/db").driver_url,
            "postgres://u:a%2Fb%23c%20d@h/db"
        );
        assert_eq!(parse("redis://:p%3Fw@h").driver_url, "redis://:p%3Fw@h");
        assert_eq!(
            parse("rediss+cluster://:a?b,c@h:1,h:2").nodes,
            ["rediss://:a%3Fb,c@h:1", "rediss://:a%3Fb,c@h:2"]
        );
    }

    #[test]
    fn options_are_taken_and_driver_options_handed_on() {
        let parsed = parse(
            "cookie+postgres://u:p@h/db?sslmode=disable&table=flash_x&ttl=2d&lease_timeout=45s\
             &call_timeout=500ms&id_cookie=fid&max_size=1000&name=msgs&secure=true&same_site=strict\
             &domain=example.com&path=/app&http_only=no&application_name=a%20b",
        );
        assert_eq!(
            parsed.driver_url,
            "postgres://u:p@h/db?sslmode=disable&application_name=a%20b"
        );
        let o = &parsed.options;
        assert_eq!(o.table.as_deref(), Some("flash_x"));
        assert_eq!(o.ttl, Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(o.lease_timeout, Some(Duration::from_secs(45)));
        assert_eq!(o.call_timeout, Some(Duration::from_millis(500)));
        assert_eq!(o.id_cookie.as_deref(), Some("fid"));
        assert_eq!(o.max_size, Some(1000));
        assert_eq!(o.cookie_name.as_deref(), Some("msgs"));
        assert_eq!(o.secure, Some(true));
        assert_eq!(o.http_only, Some(false));
        assert_eq!(o.same_site, Some(SameSite::Strict));
        assert_eq!(
            format!("n=v{}", o.cookie_options().attributes()),
            "n=v; SameSite=Strict; Secure; Path=/app; Domain=example.com"
        );

        let parsed = parse("redis://h/0?prefix=app%3Aflash&ttl=3600");
        assert_eq!(parsed.driver_url, "redis://h/0");
        assert_eq!(parsed.options.prefix.as_deref(), Some("app:flash"));
        assert_eq!(parsed.options.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(parsed.options.shared_keys, None);
        let parsed = parse("redis+cluster://a:7001,b:7002?shared_keys=1000000");
        assert_eq!(parsed.options.shared_keys, Some(1_000_000));

        let parsed = parse("cookie?format=django&name=messages");
        assert_eq!(parsed.options.format, CookieFormat::Django);
        assert_eq!(
            parse("session?key=_flash").options.session_key.as_deref(),
            Some("_flash")
        );
        assert_eq!(parse("mariadb://r@h/t?table=x").driver_url, "mysql://r@h/t");
        assert_eq!(parse("sqlite://f.db?sweep=off").options.sweep, Some(None));
        assert_eq!(
            parse("memory?sweep=30s").options.sweep,
            Some(Some(Duration::from_secs(30)))
        );
        assert_eq!(parse("cookie+memory?sweep=off").options.sweep, Some(None));
        assert_eq!(
            parse("sqlite://f.db?sweep=15m&mode=rwc").options.sweep,
            Some(Some(Duration::from_secs(900)))
        );
        assert_eq!(
            parse("sqlite://f.db?sweep=15m&mode=rwc").driver_url,
            "sqlite://f.db?mode=rwc"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(error("").contains("empty"));
        assert!(error("mongodb://h").contains("unknown storage `mongodb`"));
        assert!(error("cookie+cookie").contains("not another cookie"));
        assert!(error("cookie://host").contains("takes no address"));
        assert!(error("session:x").contains("takes no address"));
        assert!(error("redis:").contains("no address"));
        assert!(error("cookie?colour=red").contains("unknown option `colour`"));
        assert!(error("memory?sslmode=x").contains("unknown option"));
        assert!(error("redis://h?table=x").contains("option `table` does not apply"));
        assert!(error("postgres://h/db?prefix=x").contains("does not apply"));
        assert!(error("cookie?ttl=5").contains("does not apply"));
        assert!(error("redis://h?format=django").contains("does not apply"));
        assert!(error("session?format=django").contains("does not apply"));
        assert!(error("cookie?format=xml").contains("`flash` or `django`"));
        assert!(error("cookie?max_size=0").contains("positive"));
        for bad in ["0", "-1", "x", "4294967296"] {
            let shown = error(&format!("redis://h?shared_keys={bad}"));
            assert!(shown.contains("a number of keys"), "{shown}");
        }
        assert!(error("postgres://h/db?shared_keys=5").contains("does not apply"));
        assert!(error("cookie?max_size=-1").contains("positive"));
        assert!(error("redis://h?ttl=0").contains("duration"));
        assert!(error("redis://h?ttl=soon").contains("duration"));
        assert!(error("redis://h?lease_timeout=").contains("duration"));
        assert!(error("redis://h?call_timeout=0").contains("longer than zero"));
        assert!(error("cookie?call_timeout=1s").contains("does not apply"));
        assert!(error("cookie?secure=maybe").contains("true or false"));
        assert!(error("cookie?same_site=loose").contains("lax, strict or none"));
        assert!(error("redis://h?prefix=").contains("non-empty"));
        assert!(error("redis://h?sweep=1h").contains("does not apply"));
        assert!(error("memory?table=t").contains("does not apply"));
        assert!(error("cookie?sweep=1h").contains("does not apply"));
        assert!(error("sqlite://f.db?sweep=often").contains("`off`"));
        // Passwords never appear in errors.
        let err = error("postgres://u:hunter2@h/db?prefix=x");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("postgres://u:***@h/db"), "{err}");
    }

    #[test]
    fn durations_and_booleans() {
        assert_eq!(duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(duration("0"), None);
        assert_eq!(duration("-1"), None);
        assert_eq!(boolean("Yes"), Some(true));
        assert_eq!(boolean("off"), Some(false));
        assert_eq!(boolean("2"), None);
    }
}
