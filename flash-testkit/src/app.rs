//! For application tests: what a response left for the client's next request, and Django's
//! `assertMessages`.

use flash_core::{Level, MessageView, Result, adapter::Adapter, storage::Incoming};

/// The messages a response left for the client's next request, as templates receive them,
/// without consuming them, on any storage: the cookie decoded, or the keyed store asked (its
/// lease given back untouched). `request_cookies` is the `Cookie` header the request was sent
/// with (`None` for a fresh browser), `set_cookies` the response's `Set-Cookie` values (any
/// framework's `get_all("set-cookie")`, or byte strings); the next
/// request's cookies are made from both, as a browser makes them ([`next_cookie_header`]).
/// Compare with [`assert_messages`].
///
/// # Errors
/// When the storage fails to load or to give its lease back.
pub async fn messages_left(
    adapter: &Adapter,
    request_cookies: Option<&str>,
    set_cookies: impl IntoIterator<Item = impl AsRef<[u8]>>,
) -> Result<Vec<MessageView>> {
    let next = next_cookie_header(request_cookies, set_cookies);
    let messages = adapter.messages(Incoming::new([next.as_bytes()], false));
    let views = messages.peek_views().await?;
    messages.save(&mut http::HeaderMap::new()).await?;
    Ok(views)
}

/// The `Cookie` header a browser sends after a response: `request_cookies` with the response's
/// `Set-Cookie` lines applied (a value replaced or added, a cookie expired by `Max-Age=0` or a
/// past `Expires` removed). Attributes other than those are not checked: this is for tests.
///
/// ```
/// use flash_testkit::next_cookie_header;
/// let next = next_cookie_header(
///     Some("a=1; flash=old; b=2"),
///     [
///         &b"flash=new; Path=/; HttpOnly"[..],
///         b"a=; Max-Age=0; Path=/",
///         b"b=; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
///         b"c=3",
///     ],
/// );
/// assert_eq!(next, "flash=new; c=3");
/// assert_eq!(next_cookie_header(None, [""; 0]), "");
/// ```
pub fn next_cookie_header(
    request_cookies: Option<&str>,
    set_cookies: impl IntoIterator<Item = impl AsRef<[u8]>>,
) -> String {
    let mut jar: Vec<(String, String)> = request_cookies
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    for line in set_cookies {
        let Ok(line) = std::str::from_utf8(line.as_ref()) else {
            continue;
        };
        let Ok(cookie) = cookie::Cookie::parse(line) else {
            continue;
        };
        jar.retain(|(name, _)| name != cookie.name());
        let expired = cookie.max_age().is_some_and(|age| age.is_zero())
            || cookie
                .expires_datetime()
                .is_some_and(|at| at <= cookie::time::OffsetDateTime::now_utc());
        if !expired {
            jar.push((cookie.name().to_owned(), cookie.value().to_owned()));
        }
    }
    jar.iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Asserts that `left` ([`messages_left`]) holds exactly `expected`, as levels and texts in
/// order (Django's `assertMessages`); on a difference the panic prints both lists.
///
/// ```
/// use flash_core::{Level, LevelTags, Message};
/// use flash_testkit::assert_messages;
/// let left = vec![Message::new(Level::SUCCESS, "Saved.").view(&LevelTags::default())];
/// assert_messages(&left, &[(Level::SUCCESS, "Saved.")]);
/// let wrong = std::panic::catch_unwind(|| assert_messages(&left, &[(Level::INFO, "Saved.")]));
/// assert!(wrong.is_err());
/// ```
///
/// # Panics
/// When the lists differ.
#[track_caller]
pub fn assert_messages(left: &[MessageView], expected: &[(Level, &str)]) {
    let got: Vec<(Level, &str)> = left
        .iter()
        .map(|view| (view.level(), view.message.as_str()))
        .collect();
    if got != expected {
        let list = |items: &[(Level, &str)]| {
            items
                .iter()
                .map(|(level, text)| format!("\n    {level:?} {text:?}"))
                .collect::<String>()
        };
        panic!(
            "the messages left for the next request differ\n  left ({}):{}\n  expected ({}):{}",
            got.len(),
            list(&got),
            expected.len(),
            list(expected),
        );
    }
}
