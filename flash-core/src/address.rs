//! Addressed messages: what a redirect adds is for the page it redirects to.
//!
//! Why: between a redirect and the page load, other requests of the same client read messages
//! too (a polling widget's `fetch`, an htmx fragment, a link checker's `HEAD`, a second tab).
//! Each would show and consume the messages meant for the page the user was sent to, which then
//! shows nothing. An addressed message is shown only by a page load of its path; the other
//! reads leave it pending, in its place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::message::{Address, Message};
use crate::storage::Incoming;

/// The application's rule for addressed messages ([`MessagesConfig::with_addressing`]).
///
/// By default, when a response redirects (a `301`, `302`, `303`, `307` or `308` with a
/// `Location`), what the request added is addressed to the redirect's path (its query left
/// out): only a page load of that path shows it. A target that itself redirects without
/// reading (`/articles` → `/articles/`, a login redirect) hands its messages on to its own
/// redirect's target. Nothing is lost: once the bound passes (3 page loads of other pages that
/// read messages, or 60 seconds, whichever comes first) the message is unaddressed and any read
/// shows it.
///
/// Reads that are not page loads never show an addressed message (`HEAD`, `OPTIONS`, htmx
/// requests that are not boosted, `fetch` and XHR: `Sec-Fetch-Mode` other than `navigate`), nor
/// do page loads of another path. A request whose adapter gives no path shows everything.
///
/// Opt out for the whole application with [`Addressing::off`], for one request with
/// [`Messages::leave_unaddressed`](crate::Messages::leave_unaddressed); address one message
/// yourself with [`Message::addressed_to`].
///
/// ```
/// use std::time::Duration;
/// use flash_core::{Addressing, MessagesConfig};
/// let config = MessagesConfig::default()
///     .with_addressing(Addressing::default().with_loads(5).with_time(Duration::from_secs(30)));
/// assert_eq!(config.addressing().loads(), 5);
/// assert!(!MessagesConfig::default().with_addressing(Addressing::off()).addressing().on_redirect());
/// ```
///
/// [`MessagesConfig::with_addressing`]: crate::MessagesConfig::with_addressing
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    on_redirect: bool,
    query: bool,
    loads: u16,
    time: Duration,
}

/// The default bound in page loads of other pages: 3.
pub const DEFAULT_ADDRESS_LOADS: u16 = 3;
/// The default bound in time: 60 seconds.
pub const DEFAULT_ADDRESS_TIME: Duration = Duration::from_secs(60);

impl Default for Addressing {
    fn default() -> Self {
        Addressing {
            on_redirect: true,
            query: false,
            loads: DEFAULT_ADDRESS_LOADS,
            time: DEFAULT_ADDRESS_TIME,
        }
    }
}

impl Addressing {
    /// No message is addressed on a redirect (messages the application addresses itself still
    /// are): every read shows every message, as before addressing existed.
    pub fn off() -> Self {
        Addressing {
            on_redirect: false,
            ..Addressing::default()
        }
    }

    /// Addresses by path and query (`/search?q=x`) instead of by path alone.
    #[must_use]
    pub fn with_query(mut self, query: bool) -> Self {
        self.query = query;
        self
    }

    /// Sets the bound in page loads of other pages (that read messages) after which an
    /// addressed message is shown anywhere (at least 1).
    #[must_use]
    pub fn with_loads(mut self, loads: u16) -> Self {
        self.loads = loads.max(1);
        self
    }

    /// Sets the bound in time after which an addressed message is shown anywhere.
    #[must_use]
    pub fn with_time(mut self, time: Duration) -> Self {
        self.time = time;
        self
    }

    /// Whether a redirect addresses what its request added.
    pub fn on_redirect(&self) -> bool {
        self.on_redirect
    }

    /// Whether the address includes the query.
    pub fn query(&self) -> bool {
        self.query
    }

    /// The bound in page loads of other pages.
    pub fn loads(&self) -> u16 {
        self.loads
    }

    /// The bound in time.
    pub fn time(&self) -> Duration {
        self.time
    }

    /// An address to `path` with this bound, from now.
    pub(crate) fn address(&self, path: String) -> Address {
        Address {
            path,
            loads_left: self.loads,
            until_ms: now_ms().saturating_add(millis(self.time)),
        }
    }

    /// Sets the bound of an address the application made ([`Message::addressed_to`]).
    pub(crate) fn bound(&self, message: &mut Message) {
        if let Some(address) = &mut message.address
            && address.until_ms == 0
        {
            *address = self.address(std::mem::take(&mut address.path));
        }
    }

    /// The address a redirect to `location` gives, from a request to `from` (its path and
    /// query): the location's path (and query when addressed by query), resolved against the
    /// request's path when relative. `None` for a location that is no URL path.
    pub(crate) fn target_of(&self, location: &str, from: &str) -> Option<String> {
        let location = location.trim();
        let location = location.split('#').next().unwrap_or_default();
        let path_and_query = if let Some(rest) = location
            .strip_prefix("http://")
            .or_else(|| location.strip_prefix("https://"))
            .or_else(|| location.strip_prefix("//"))
        {
            // Another origin's path would wait out its bound; a same-origin URL is the norm.
            match rest.find('/') {
                Some(at) => rest[at..].to_owned(),
                None => "/".to_owned(),
            }
        } else if location.starts_with('/') {
            location.to_owned()
        } else if location.is_empty() || location.contains(':') {
            return None;
        } else {
            // Relative: against the request path's directory.
            let base = from.split('?').next().unwrap_or(from);
            let dir = &base[..base.rfind('/').map_or(0, |at| at + 1)];
            if let Some(query) = location.strip_prefix('?') {
                format!("{base}?{query}")
            } else {
                format!("{}{location}", if dir.is_empty() { "/" } else { dir })
            }
        };
        Some(if self.query {
            path_and_query
        } else {
            path_and_query
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
    }
}

/// How one loaded message stands for this request.
pub(crate) enum Standing {
    /// Shown: unaddressed, past its bound, or addressed to this page load.
    Shown,
    /// Addressed to this page load: shown, and handed on if the request redirects unread.
    ForThisPage,
    /// Addressed elsewhere: kept pending, unseen.
    Held,
}

/// Where `message` stands for `incoming` at `now` (unix ms).
pub(crate) fn standing(message: &Message, incoming: &Incoming, now: u64) -> Standing {
    let (Some(address), Some(target)) = (&message.address, incoming.target()) else {
        return Standing::Shown;
    };
    if address.loads_left == 0 || (address.until_ms > 0 && now >= address.until_ms) {
        return Standing::Shown;
    }
    if !incoming.is_page_load() {
        return Standing::Held;
    }
    let path = if address.path.contains('?') {
        target
    } else {
        target.split('?').next().unwrap_or(target)
    };
    if path == address.path {
        Standing::ForThisPage
    } else {
        Standing::Held
    }
}

/// The time now in unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether `status` redirects with a `Location` (`300` and `304` do not).
pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_are_paths() {
        let a = Addressing::default();
        assert_eq!(a.target_of("/b?x=1#f", "/a").as_deref(), Some("/b"));
        assert_eq!(
            a.clone()
                .with_query(true)
                .target_of("/b?x=1", "/a")
                .as_deref(),
            Some("/b?x=1")
        );
        assert_eq!(
            a.target_of("https://example.com/p/q?x", "/").as_deref(),
            Some("/p/q")
        );
        assert_eq!(
            a.target_of("https://example.com", "/").as_deref(),
            Some("/")
        );
        assert_eq!(
            a.target_of("edit", "/articles/7").as_deref(),
            Some("/articles/edit")
        );
        assert_eq!(a.target_of("edit", "x").as_deref(), Some("/edit"));
        assert_eq!(a.target_of("mailto:x@y", "/"), None);
        assert_eq!(a.target_of("", "/"), None);
    }

    #[test]
    fn only_a_page_load_of_the_path_shows_an_addressed_message() {
        let addressing = Addressing::default();
        let mut m = Message::new(crate::Level::INFO, "to b");
        m.address = Some(addressing.address("/b".to_owned()));
        let now = now_ms();
        let page = |method, target| {
            Incoming::default()
                .with_page_load(true)
                .with_target(method, target)
        };
        assert!(matches!(
            standing(&m, &page("GET", "/b?x"), now),
            Standing::ForThisPage
        ));
        assert!(matches!(
            standing(&m, &page("GET", "/a"), now),
            Standing::Held
        ));
        assert!(matches!(
            standing(&m, &page("HEAD", "/b"), now),
            Standing::Held
        ));
        let fetch = page("GET", "/b").with_page_load(false);
        assert!(matches!(standing(&m, &fetch, now), Standing::Held));
        // No path given: everything shows.
        assert!(matches!(
            standing(&m, &Incoming::default(), now),
            Standing::Shown
        ));
        // Past the time bound, or out of page loads: shown anywhere.
        assert!(matches!(
            standing(&m, &fetch, now + 61_000),
            Standing::Shown
        ));
        if let Some(a) = m.address.as_mut() {
            a.loads_left = 0;
        }
        assert!(matches!(standing(&m, &fetch, now), Standing::Shown));
    }
}
