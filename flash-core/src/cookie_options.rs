//! Cookie attributes shared by every cookie flash sets.

use std::fmt::Write as _;
use std::time::Duration;

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};

/// The expiry attributes of a deletion cookie: fixed, so deleting formats no date.
const REMOVAL: &str = "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// `SameSite=Strict`: sent on same-site requests only.
    Strict,
    /// `SameSite=Lax`: also sent on top-level navigations from other sites (the default).
    Lax,
    /// `SameSite=None`: sent on cross-site requests too; forces `Secure`.
    None,
}

impl std::fmt::Display for SameSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        })
    }
}

/// Attributes of a cookie flash sets: `Path=/; HttpOnly; SameSite=Lax` by default.
///
/// The deletion cookie carries the same attributes, and `Secure` is forced whenever
/// `SameSite=None` (browsers reject such a cookie without it).
///
/// ```
/// use flash_core::CookieOptions;
/// let options = CookieOptions::default().secure(true).domain("example.com");
/// let mut response = http::HeaderMap::new();
/// options.append(&mut response, "messages", "v", None);
/// assert_eq!(response["set-cookie"], "messages=v; HttpOnly; SameSite=Lax; Secure; Path=/; Domain=example.com");
/// assert!(options.removal_line("messages").contains("Max-Age=0"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
    /// The attributes formatted once, when set: every response that writes a cookie uses them.
    attributes: String,
}

impl Default for CookieOptions {
    fn default() -> Self {
        CookieOptions {
            path: "/".to_owned(),
            domain: None,
            secure: false,
            http_only: true,
            same_site: Some(SameSite::Lax),
            attributes: String::new(),
        }
        .formatted()
    }
}

impl CookieOptions {
    /// Sets `Path` (default `/`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self.formatted()
    }

    /// Sets `Domain` (default: none, the host only).
    #[must_use]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self.formatted()
    }

    /// Sets `Secure` (default false; always on with `SameSite=None`).
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self.formatted()
    }

    /// Sets `HttpOnly` (default true).
    #[must_use]
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self.formatted()
    }

    /// Sets `SameSite` (default `Lax`; `None` omits the attribute).
    #[must_use]
    pub fn same_site(mut self, same_site: Option<SameSite>) -> Self {
        self.same_site = same_site;
        self.formatted()
    }

    /// Whether a cookie with these attributes may take the `__Host-` prefix: `Secure` (set, or
    /// forced by `SameSite=None`), no `Domain`, and `Path=/`.
    ///
    /// ```
    /// use flash_core::CookieOptions;
    /// assert!(!CookieOptions::default().allows_host_prefix());
    /// assert!(CookieOptions::default().secure(true).allows_host_prefix());
    /// assert!(!CookieOptions::default().secure(true).domain("example.com").allows_host_prefix());
    /// assert!(!CookieOptions::default().secure(true).path("/app").allows_host_prefix());
    /// ```
    pub fn allows_host_prefix(&self) -> bool {
        (self.secure || self.same_site == Some(SameSite::None))
            && self.domain.is_none()
            && self.path == "/"
    }

    /// The cookie `name=value` as the `cookie` crate writes it: what the fast lines are
    /// checked against.
    #[cfg(test)]
    fn build(
        &self,
        name: &str,
        value: String,
        max_age: Option<Duration>,
    ) -> cookie::Cookie<'static> {
        let mut cookie = cookie::Cookie::new(name.to_owned(), value);
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(self.same_site.map(|s| match s {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        }));
        cookie.set_secure(self.secure || self.same_site == Some(SameSite::None));
        if let Some(max_age) = max_age {
            cookie.set_max_age(cookie::time::Duration::seconds(max_age_secs(max_age)));
        }
        cookie
    }

    /// The attributes as they follow `name=value` in a `Set-Cookie` line (`"; HttpOnly; …"`), in
    /// the order the `cookie` crate writes them, without `Max-Age`.
    ///
    /// ```
    /// use flash_core::CookieOptions;
    /// assert_eq!(CookieOptions::default().attributes(), "; HttpOnly; SameSite=Lax; Path=/");
    /// ```
    pub fn attributes(&self) -> &str {
        &self.attributes
    }

    fn formatted(mut self) -> Self {
        let mut out = std::mem::take(&mut self.attributes);
        out.clear();
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if let Some(same_site) = self.same_site {
            let _ = write!(out, "; SameSite={same_site}");
        }
        if self.secure || self.same_site == Some(SameSite::None) {
            out.push_str("; Secure");
        }
        let _ = write!(out, "; Path={}", self.path);
        if let Some(domain) = &self.domain {
            let _ = write!(out, "; Domain={domain}");
        }
        self.attributes = out;
        self
    }

    /// Appends `Set-Cookie: name=value` with these attributes and an optional `Max-Age` to
    /// `response`, written in one buffer. The value is written as is: it must be made of
    /// cookie-safe characters (base64url, and `:` for Django's format).
    ///
    /// ```
    /// use flash_core::CookieOptions;
    /// let mut headers = http::HeaderMap::new();
    /// CookieOptions::default().append(&mut headers, "id", "abc", None);
    /// CookieOptions::default().append_removal(&mut headers, "old");
    /// let lines: Vec<_> = headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    /// assert_eq!(lines[0], "id=abc; HttpOnly; SameSite=Lax; Path=/");
    /// assert_eq!(
    ///     lines[1],
    ///     "old=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    /// );
    /// ```
    pub fn append(
        &self,
        response: &mut HeaderMap,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
    ) {
        let mut line = String::with_capacity(name.len() + value.len() + self.attributes.len() + 32);
        line.push_str(name);
        line.push('=');
        line.push_str(value);
        line.push_str(&self.attributes);
        if let Some(max_age) = max_age {
            let _ = write!(line, "; Max-Age={}", max_age_secs(max_age));
        }
        append_set_cookie_line(response, line);
    }

    /// Appends the `Set-Cookie` that deletes `name`: empty, expired (a fixed date in 1970), with
    /// the same attributes.
    pub fn append_removal(&self, response: &mut HeaderMap, name: &str) {
        append_set_cookie_line(response, self.removal_line(name));
    }

    /// The `Set-Cookie` line that deletes `name` (what [`CookieOptions::append_removal`]
    /// appends), for callers that keep it ready.
    ///
    /// ```
    /// use flash_core::CookieOptions;
    /// assert_eq!(
    ///     CookieOptions::default().removal_line("old"),
    ///     "old=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    /// );
    /// ```
    pub fn removal_line(&self, name: &str) -> String {
        let mut line =
            String::with_capacity(name.len() + 1 + self.attributes.len() + REMOVAL.len());
        line.push_str(name);
        line.push('=');
        line.push_str(&self.attributes);
        line.push_str(REMOVAL);
        line
    }

    /// The length of the `Set-Cookie` line these attributes add to `name=value`, in bytes
    /// (for size limits).
    pub fn line_overhead(&self, name: &str, max_age: Option<Duration>) -> usize {
        name.len()
            + 1
            + self.attributes.len()
            + max_age.map_or(0, |a| {
                "; Max-Age=".len() + max_age_secs(a).to_string().len()
            })
    }
}

/// Whole seconds, rounded up: a sub-second lifetime must not become `Max-Age=0`, which deletes.
fn max_age_secs(max_age: Duration) -> i64 {
    let secs = max_age.as_secs() + u64::from(max_age.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Appends a whole `Set-Cookie` line (`name=value; attributes`) to `response`. A line that is
/// not a valid header value (a path or domain with control characters) is logged and left out:
/// a response without the cookie is the safe outcome.
pub fn append_set_cookie_line(response: &mut HeaderMap, line: String) {
    match HeaderValue::try_from(line) {
        Ok(value) => {
            response.append(SET_COOKIE, value);
        }
        Err(err) => tracing::error!(%err, "a Set-Cookie line is not a valid header value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lines(headers: &HeaderMap) -> Vec<String> {
        headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect()
    }

    #[test]
    fn the_fast_line_matches_the_cookie_crate() {
        let variants = [
            CookieOptions::default(),
            CookieOptions::default().secure(true).domain("example.com"),
            CookieOptions::default()
                .same_site(Some(SameSite::None))
                .http_only(false)
                .path("/app"),
            CookieOptions::default().same_site(None),
            CookieOptions::default().same_site(Some(SameSite::Strict)),
        ];
        for options in variants {
            for max_age in [
                None,
                Some(Duration::from_millis(1500)),
                Some(Duration::from_secs(604800)),
            ] {
                let mut headers = HeaderMap::new();
                options.append(&mut headers, "n", "v.a:b", max_age);
                let expected = options.build("n", "v.a:b".to_owned(), max_age).to_string();
                assert_eq!(lines(&headers), std::slice::from_ref(&expected));
                assert_eq!(
                    options.line_overhead("n", max_age) + "v.a:b".len(),
                    expected.len()
                );
            }
            let mut headers = HeaderMap::new();
            options.append_removal(&mut headers, "n");
            let line = &lines(&headers)[0];
            let parsed = cookie::Cookie::parse(line.as_str()).expect("parses");
            assert_eq!(parsed.value(), "");
            assert_eq!(parsed.max_age(), Some(cookie::time::Duration::ZERO));
            assert_eq!(parsed.path(), Some(options.path.as_str()));
            assert_eq!(
                parsed.secure(),
                Some(true).filter(|_| options.secure || options.same_site == Some(SameSite::None))
            );
        }
    }
}
