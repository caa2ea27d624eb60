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

/// The cookie that tells, from the request alone, which pages have messages addressed to them
/// pending: `flash_to`. Written with the save of a storage that may wait (a keyed store, a
/// session) whenever that set changes; a redirect looks for messages to hand on only when it
/// names the redirecting page, so a client with nothing pending costs no store call.
///
/// Its value is a short hash of each path (8 hex digits, `.`-separated, at most
/// [`HINT_MAX_PAGES`]; beyond, `*`: any page), never the paths themselves. It is not signed,
/// and need not be: it only decides whether a redirect loads its client's own messages. A
/// forged or stale hint costs its client one store call; a lost one (cookies cleared, a
/// concurrent request's write) delays a hand-on until the message's bound, which then shows it
/// anywhere. It expires with the last address's time bound.
pub const HINT_COOKIE: &str = "flash_to";

/// How many pages the [`HINT_COOKIE`] names before it says "any page" (`*`).
pub const HINT_MAX_PAGES: usize = 16;

/// A page's entry in the hint: FNV-1a (32 bits) of its address path. A fixed function, not
/// std's randomly keyed hasher: the hint written by one process is read by another.
fn hint_hash(path: &str) -> u32 {
    path.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// What a request's hint cookie says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Hint {
    /// No cookie, or nothing readable in it.
    #[default]
    Nothing,
    /// These pages (their hashes, sorted, no duplicates).
    Pages(Vec<u32>),
    /// Any page.
    Any,
}

impl Hint {
    /// Reads a hint cookie's value; anything unreadable is ignored.
    pub(crate) fn parse(value: Option<&[u8]>) -> Hint {
        let Some(value) = value else {
            return Hint::Nothing;
        };
        if value == b"*" {
            return Hint::Any;
        }
        let mut pages: Vec<u32> = value
            .split(|&b| b == b'.')
            .take(HINT_MAX_PAGES)
            .filter_map(|entry| {
                let entry = std::str::from_utf8(entry).ok()?;
                (entry.len() == 8)
                    .then(|| u32::from_str_radix(entry, 16).ok())
                    .flatten()
            })
            .collect();
        pages.sort_unstable();
        pages.dedup();
        if pages.is_empty() {
            Hint::Nothing
        } else {
            Hint::Pages(pages)
        }
    }

    /// The hint naming `paths`.
    pub(crate) fn of<'a>(paths: impl IntoIterator<Item = &'a str>) -> Hint {
        let mut pages: Vec<u32> = paths.into_iter().map(hint_hash).collect();
        pages.sort_unstable();
        pages.dedup();
        if pages.is_empty() {
            Hint::Nothing
        } else if pages.len() > HINT_MAX_PAGES {
            Hint::Any
        } else {
            Hint::Pages(pages)
        }
    }

    /// This hint and `other`'s pages.
    pub(crate) fn union(self, other: Hint) -> Hint {
        match (self, other) {
            (Hint::Any, _) | (_, Hint::Any) => Hint::Any,
            (Hint::Nothing, hint) | (hint, Hint::Nothing) => hint,
            (Hint::Pages(mut a), Hint::Pages(b)) => {
                a.extend(b);
                a.sort_unstable();
                a.dedup();
                if a.len() > HINT_MAX_PAGES {
                    Hint::Any
                } else {
                    Hint::Pages(a)
                }
            }
        }
    }

    /// Whether it names every page `other` names.
    pub(crate) fn covers(&self, other: &Hint) -> bool {
        match (self, other) {
            (_, Hint::Nothing) | (Hint::Any, _) => true,
            (Hint::Nothing, _) | (Hint::Pages(_), Hint::Any) => false,
            (Hint::Pages(mine), Hint::Pages(theirs)) => {
                theirs.iter().all(|page| mine.binary_search(page).is_ok())
            }
        }
    }

    /// Whether it names the page of a request to `target` (path and query): by its path, or
    /// by path and query for an application that addresses by query.
    pub(crate) fn names(&self, target: &str) -> bool {
        match self {
            Hint::Nothing => false,
            Hint::Any => true,
            Hint::Pages(pages) => {
                let path = target.split(['?', '#']).next().unwrap_or(target);
                pages.binary_search(&hint_hash(path)).is_ok()
                    || (path.len() != target.len()
                        && pages.binary_search(&hint_hash(target)).is_ok())
            }
        }
    }

    /// The `Set-Cookie` line writing this hint, alive for `max_age_secs` (removing the cookie
    /// when there is nothing to name).
    pub(crate) fn set_cookie_line(&self, max_age_secs: u64) -> String {
        let value = match self {
            Hint::Nothing => {
                return format!("{HINT_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
            }
            Hint::Any => "*".to_owned(),
            Hint::Pages(pages) => pages
                .iter()
                .map(|page| format!("{page:08x}"))
                .collect::<Vec<_>>()
                .join("."),
        };
        format!("{HINT_COOKIE}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax")
    }
}

/// The hint a save leaves, from the request's and what remains stored: `None` when the cookie
/// need not change. `known` says the request loaded what was stored (so `stored` is all that
/// remains, and the hint is written anew); otherwise what it adds joins what the request's
/// hint named.
///
/// A hint naming a page nothing is addressed to any more is left to expire rather than
/// removed: a read that consumes sets no cookie for it (a keyed store's read sets none at all),
/// and a stale entry costs at most one store call, by a redirect of that page, until it
/// expires.
pub(crate) fn hint_after<'a>(
    before: Hint,
    known: bool,
    stored: impl IntoIterator<Item = &'a Message>,
    now: u64,
) -> Option<(Hint, u64)> {
    let mut until = now;
    let live = stored.into_iter().filter_map(|m| {
        let address = m.address.as_ref()?;
        let alive = address.loads_left > 0 && (address.until_ms == 0 || address.until_ms > now);
        alive.then(|| {
            until = until.max(address.until_ms);
            address.path.as_str()
        })
    });
    let pages = Hint::of(live.collect::<Vec<_>>());
    let after = match (&pages, known) {
        (Hint::Nothing, _) => return None,
        // Everything it names is named already.
        (_, true) if before.covers(&pages) => return None,
        (_, true) => pages,
        // Written again even when it names the same pages: its lifetime is the new address's.
        (_, false) => before.union(pages),
    };
    // Alive as long as the last address: past its time bound every message shows anywhere.
    let secs = until.saturating_sub(now).div_ceil(1000).max(1);
    Some((after, secs))
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
    fn the_hint_names_pages_by_path_and_is_bounded() {
        let hint = Hint::of(["/b", "/a", "/b"]);
        let Hint::Pages(pages) = &hint else {
            panic!("{hint:?}")
        };
        assert_eq!(pages.len(), 2);
        assert!(hint.names("/a") && hint.names("/b?x=1") && !hint.names("/c"));
        let line = hint.set_cookie_line(60);
        let value = line
            .strip_prefix("flash_to=")
            .and_then(|l| l.split(';').next())
            .unwrap_or_default();
        assert_eq!(Hint::parse(Some(value.as_bytes())), hint);
        assert!(line.contains("Max-Age=60"));
        // Garbage reads as nothing; too many pages as any page.
        assert_eq!(Hint::parse(Some(b"zz.\xff")), Hint::Nothing);
        assert_eq!(Hint::parse(None), Hint::Nothing);
        let many: Vec<String> = (0..=HINT_MAX_PAGES).map(|i| format!("/{i}")).collect();
        let any = Hint::of(many.iter().map(String::as_str));
        assert_eq!(any, Hint::Any);
        assert!(any.names("/anything"));
        assert_eq!(Hint::parse(Some(b"*")), Hint::Any);
        assert!(any.covers(&hint) && !hint.covers(&any) && hint.covers(&Hint::of(["/a"])));
    }

    #[test]
    fn a_save_writes_the_hint_only_when_it_names_a_new_page() {
        let addressing = Addressing::default();
        let now = now_ms();
        let mut to_b = Message::new(crate::Level::INFO, "to b");
        to_b.address = Some(addressing.address("/b".to_owned()));
        let plain = Message::new(crate::Level::INFO, "plain");
        // Nothing addressed: no cookie.
        assert_eq!(hint_after(Hint::Nothing, true, [&plain], now), None);
        // A new page: written, alive for the address's time bound.
        let (hint, secs) =
            hint_after(Hint::Nothing, true, [&to_b], now).expect("a new page is written");
        assert!(hint.names("/b"));
        assert_eq!(secs, 60);
        // Named already by a request that loaded: nothing to write.
        assert_eq!(hint_after(hint.clone(), true, [&to_b], now), None);
        // Consumed: the stale hint is left to expire.
        assert_eq!(hint_after(hint.clone(), true, [], now), None);
        // Added without loading: joined to what the request named.
        let mut to_c = plain.clone();
        to_c.address = Some(addressing.address("/c".to_owned()));
        let (joined, _) = hint_after(hint, false, [&to_c], now).expect("an added page is written");
        assert!(joined.names("/b") && joined.names("/c"));
        // Past its bound, an address needs no hint.
        assert_eq!(hint_after(Hint::Nothing, true, [&to_b], now + 61_000), None);
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
