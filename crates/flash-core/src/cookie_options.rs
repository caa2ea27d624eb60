//! Cookie attributes shared by every cookie flash sets.

use std::time::Duration;

use cookie::{Cookie, SameSite};

/// Attributes of a cookie flash sets: `Path=/; HttpOnly; SameSite=Lax` by default.
///
/// The deletion cookie carries the same attributes, and `Secure` is forced whenever
/// `SameSite=None` (browsers reject such a cookie without it).
///
/// ```
/// use flash_core::CookieOptions;
/// let options = CookieOptions::default().secure(true).domain("example.com");
/// let set = options.build("messages", "v".to_owned(), None).to_string();
/// assert_eq!(set, "messages=v; HttpOnly; SameSite=Lax; Secure; Path=/; Domain=example.com");
/// let removal = options.removal("messages").to_string();
/// assert!(removal.contains("Max-Age=0"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

impl Default for CookieOptions {
    fn default() -> Self {
        CookieOptions {
            path: "/".to_owned(),
            domain: None,
            secure: false,
            http_only: true,
            same_site: Some(SameSite::Lax),
        }
    }
}

impl CookieOptions {
    /// Sets `Path` (default `/`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets `Domain` (default: none, the host only).
    #[must_use]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Sets `Secure` (default false; always on with `SameSite=None`).
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Sets `HttpOnly` (default true).
    #[must_use]
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// Sets `SameSite` (default `Lax`; `None` omits the attribute).
    #[must_use]
    pub fn same_site(mut self, same_site: Option<SameSite>) -> Self {
        self.same_site = same_site;
        self
    }

    /// The cookie `name=value` with these attributes and an optional `Max-Age`.
    pub fn build(&self, name: &str, value: String, max_age: Option<Duration>) -> Cookie<'static> {
        let mut cookie = Cookie::new(name.to_owned(), value);
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(self.same_site);
        cookie.set_secure(self.secure || self.same_site == Some(SameSite::None));
        if let Some(max_age) = max_age {
            // Round up: a sub-second lifetime must not become `Max-Age=0`, which deletes.
            let secs = max_age.as_secs() + u64::from(max_age.subsec_nanos() > 0);
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            cookie.set_max_age(cookie::time::Duration::seconds(secs));
        }
        cookie
    }

    /// The cookie that deletes `name`: empty, expired, with the same attributes.
    pub fn removal(&self, name: &str) -> Cookie<'static> {
        let mut cookie = self.build(name, String::new(), None);
        cookie.make_removal();
        cookie
    }

    /// The longest `Set-Cookie` line these attributes add to `name=value`, in bytes (for size
    /// limits).
    pub fn overhead(&self, name: &str, max_age: Option<Duration>) -> usize {
        self.build(name, String::new(), max_age).to_string().len()
    }
}
